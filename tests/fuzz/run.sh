#!/usr/bin/env bash
# Runs libFuzzer harnesses one after the other and prints what each explored.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS HARNESS...      (make fuzz, make fuzz-short)
#
# Each harness starts from its corpus in BUILD_DIR/corpus-<h> (kept between runs), its seeds in
# tests/fuzz/seeds/<h> and the inputs of past crashes in tests/fuzz/regressions/<h>, so a crash that
# is not fixed yet fails again at once; tests/fuzz/<h>.dict, when there is one, is its dictionary. Its output goes to BUILD_DIR/fuzz-<h>.log; a crash input to
# BUILD_DIR/artifacts/<h>/. The summary line per harness gives libFuzzer's final figures: edges
# ("cov", counted in the instrumented core library as well as the harness), features ("ft"),
# corpus size and executions.
#
# Exits 1 when a harness crashed, leaked, hung (-timeout) or ran out of memory, printing the end of
# its log (the stack) and the input; 0 otherwise, whatever the figures. Runs one fuzzer process at a
# time.
set -u

if [ $# -lt 3 ]; then
    echo "usage: $0 BUILD_DIR SECONDS HARNESS..." >&2
    exit 2
fi
build=$1
seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
failed=()

printf '%-14s %6s %7s %7s %7s %11s %9s  %s\n' harness seconds edges features corpus executions exec/s result
for h in "$@"; do
    bin=$build/tests/fuzz/fuzz_$h
    corpus=$build/corpus-$h
    artifacts=$build/artifacts/$h
    log=$build/fuzz-$h.log
    if [ ! -x "$bin" ]; then
        echo "$0: $bin is missing (make fuzz builds it)" >&2
        failed+=("$h")
        continue
    fi
    mkdir -p "$corpus" "$artifacts"
    dirs=("$corpus" "$src/seeds/$h")
    [ -d "$src/regressions/$h" ] && dirs+=("$src/regressions/$h")
    dict=()
    [ -f "$src/$h.dict" ] && dict=(-dict="$src/$h.dict")
    before=$(ls "$artifacts" | wc -l)
    # -timeout: an input that runs this long is a hang (fuzz_http gives up after 10 s on its own).
    # -max_len: request bodies and config files larger than this add nothing but time.
    "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    # The last status line: "#<runs> DONE cov: N ft: N corp: N/Nb ... exec/s: N rss: NMb" (or the
    # last "pulse"/"NEW" line when the run stopped on a crash).
    last=$(grep -a -E '^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+cov: ' "$log" | tail -n 1)
    runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
    field() { sed -nE "s#.* $1: ([0-9]+).*#\\1#p" <<<"$last"; }
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
    secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log")
    crashes=$(($(ls "$artifacts" | wc -l) - before))
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$h")
    fi
    printf '%-14s %6s %7s %7s %7s %11s %9s  %s\n' "fuzz_$h" "${secs:-?}" "$(field cov)" \
        "$(field ft)" "$(field corp)" "${execs:-${runs:-?}}" "$(field exec/s)" "$result"
    if [ "$result" != ok ]; then
        echo "---- $log (end) ----"
        grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 60
        ls -t "$artifacts" | head -n 3 | sed "s|^|input: $artifacts/|"
        echo "----"
    fi
    [ "$h" = http ] && grep -a '^fuzz_http: answers' "$log" | tail -n 1
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (minimise with: BIN -minimize_crash=1 -runs=10000 INPUT; keep it" \
        "in tests/fuzz/regressions/<harness>/)" >&2
    exit 1
fi
