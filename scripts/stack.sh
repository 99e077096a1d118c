#!/usr/bin/env bash
# The native stack: PostgreSQL (wal_level=logical), Redis, Debezium Server, N cdcache replicas and a
# balancer, all under one state folder, each on its own port. Used by `make restart` (folder .stack, the
# public port 8080) and by the tests (a throwaway folder, every port free-picked).
#
# The balancer (the part "nginx" of PARTS, whichever it is): LB=kernel (the default) has no balancing
# process at all: every replica also listens on the public port LB_PORT with SO_REUSEPORT
# (http.shared_listen), joined once it is ready, and the kernel spreads new connections over them; a
# draining replica leaves the port first and, with net.ipv4.tcp_migrate_req=1, the kernel moves the
# connections still queued on it to the others. LB=nginx puts nginx on LB_PORT instead (an L7 front:
# TLS termination, edge rules), balancing over the replicas' own ports. `up` raises net.core.somaxconn
# (and tcp_max_syn_backlog) to 65535 and sets tcp_migrate_req=1 when it may (root), so that the
# replicas' listen backlog (http.listen_backlog) can hold thousands of idle connections the kernel
# defers (http.defer_accept_s).
#
#   stack.sh up   DIR   start or restart everything (idempotent; also from a stopped or half-started state)
#   stack.sh down DIR   stop everything, supervisord included
#   stack.sh stop DIR   stop only the parts named in PARTS (fault tests); supervisord keeps running
#   stack.sh logs DIR   show the recent logs of every component and of supervisord (FOLLOW=1 to follow)
#   stack.sh failover DIR       promote the streaming standby (STANDBY=1) to primary: stop Debezium, fence
#                               the old primary (immediate stop, as a crash), promote the standby, delete
#                               Debezium's offsets (they name the old primary's slot), start Debezium on the
#                               new primary (it creates a new slot); replicas keep running
#   stack.sh rolling-restart DIR  restart every replica, one at a time (each drains, exits, starts and is
#                               ready before the next), with no failed request through the public port
#   stack.sh reset-source DIR   the operator's source reset: stop Debezium, drop the replication slot,
#                               delete Debezium's offsets, start Debezium (new slot at the current WAL
#                               position); replicas keep running
#
# Environment: REPLICAS (default 2), LB (kernel or nginx, above; default kernel, or the mode the
# folder's last full `up` used for a partial one), LB_PORT (default 8080; 0 = pick a free one), FRESH=1 (recreate the
# database), PARTS (default "pg redis debezium replicas nginx": what `up` starts), BUILD_DIR (build),
# REPLICA_THREADS (http.threads; default the replica's, 1024), NGINX_WORKERS (2), NGINX_KEEPALIVE (LB=nginx:
# idle upstream connections per nginx worker; default REPLICA_THREADS / (2 x NGINX_WORKERS), so idle
# balancer connections never hold more than half of a replica's threads),
# STANDBY=1 (with pg: also a streaming standby of the primary, made with pg_basebackup -R under
# DIR/pg-standby, port `pg_standby` in DIR/ports.env; the replicas then connect with a multi-host conninfo,
# target_session_attrs=read-write, so that they follow a failover without a restart),
# PIPELINE_RT=1 (PostgreSQL, Redis and Debezium under SCHED_RR priority 1, root only: make bench uses
# it so that a load generator and hundreds of busy worker threads on the same two cores do not starve
# the CDC pipeline, as they could not on separate hosts; nice values do not help across the kernel's
# per-session autogroups).
#
# Ports: each part takes the port saved for it in DIR/ports.env if that is free, else the first free one
# from its base, skipping the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, where any
# program's outgoing connection may hold a port): PG_PORT_BASE 15432 (the standby's: PG_STANDBY_PORT_BASE,
# default PG_PORT_BASE), REDIS_PORT_BASE 16379, DBZ_HTTP_PORT_BASE 18088, REPLICA_PORT_BASE 8081. A base of
# 0 lets the kernel pick (the tests). A part that fails to bind (a port taken meanwhile) is started again
# on the next free port, up to BIND_RETRIES (default 2) times; a fixed LB_PORT is not moved.
# Everything listens on 127.0.0.1 only (the public port on LB_HOST, default 127.0.0.1).
# PG_MAX_SLOT_WAL_KEEP_SIZE (default 1GB; -1 = unlimited): max_slot_wal_keep_size of both clusters, so that
# a stopped Debezium cannot fill the disk with WAL held by its slot (past it, the slot is invalidated and
# needs a source reset).
# Redis: every step that needs its data waits until it has loaded its AOF (REDIS_LOAD_TIMEOUT, default
# 300 s); the offsets' DEL (FRESH=1, failover, reset-source) checks Redis's reply and that the keys are gone.
#
# Supervision: every part runs in the foreground under one supervisord per folder (Debian's `supervisor`):
# DIR/supervisord.conf, its unix socket DIR/supervisor.sock (no TCP port), its log DIR/supervisord.log, one
# program file a part in DIR/supervisor/programs/ (pg, pg-standby: by cluster folder; redis, debezium,
# replica-N, nginx). autorestart=true: a part that dies (kill -9, crash) is started again by supervisord
# with no command typed. `up` starts supervisord (or reuses it) and the parts in order, each waited for as
# before; `stop` stops the PARTS' programs (supervisord does not restart a stopped program); `down` stops
# them all and supervisord. Inspect with: supervisorctl -c DIR/supervisord.conf status
#
# Your tables: CONFIG=FILE (make restart passes it) lays FILE's YAML keys over every replica's generated
# config and over the stack's own DIR/cdcache.yaml (a deep merge with PyYAML: mappings merge, every other
# value, lists included, is replaced; a key set to null is removed; FILE's keys win). FILE is kept as
# DIR/config.overlay.yaml, so later partial `up`s (PARTS=...), failover and reset-source keep using it; a
# full `up` without CONFIG removes it (today's stack). From DIR/cdcache.yaml the stack derives Debezium's
# properties (`cdcache debezium-config`, appended to its application.properties: a later key wins) and,
# after the migrations and before Debezium starts, runs `cdcache prepare --apply` (README.md, "Your own tables"),
# then `cdcache check-config`; a failing prepare or check-config stops `up` with its message. Keys the
# stack sets per replica (http.listen, cdc.replica_id, postgres.conninfo, redis.*) are best left alone.
#
# Secrets: DIR/secrets.env (mode 0600, made once per folder, kept across restarts): the passwords of the
# Redis ACL users (scripts/redis-users.acl.in, loaded from DIR/redis/users.acl): default (the operator and
# this script; stack.env's REDIS_URL carries it), cdcache-debezium (Debezium's sink and offset store),
# cdcache-replica (the replicas); and with AUTH=1 the write token CDCACHE_TOKEN, which the replicas then
# require on POST/PUT/PATCH/DELETE (auth.write_tokens; stack.env has it). Without AUTH=1 writes are open.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-}
usage() { echo "usage: [STANDBY=1] [AUTH=1] [CONFIG=FILE] stack.sh up|down|stop|logs|failover|reset-source DIR" >&2; exit 2; }
[ -n "$cmd" ] && [ -n "$dir" ] || usage
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
REPLICAS=${REPLICAS:-2}
LB_PORT=${LB_PORT:-8080}
PARTS=${PARTS:-"pg redis debezium replicas nginx"}
# the balancer's mode: a full `up` takes LB (default kernel) and keeps it in DIR/lb.mode for what follows
if [ "$cmd" = up ] && [[ " $PARTS " == *" nginx "* ]]; then LB=${LB:-kernel}; else LB=${LB:-$(cat "$dir/lb.mode" 2>/dev/null || echo kernel)}; fi
case "$LB" in kernel | nginx) ;; *) echo "stack: error: LB must be kernel or nginx (got $LB)" >&2; exit 2 ;; esac
BUILD_DIR=${BUILD_DIR:-$here/build}
CDCACHE=${CDCACHE:-$BUILD_DIR/cdcache}
SLOT=${DEBEZIUM_SLOT:-cdcache}
OFFSETS_KEY=metadata:debezium:offsets
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
SV_CONF=$dir/supervisord.conf
SV_DIR=$dir/supervisor

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Outgoing connections take their local port from the kernel's ephemeral range; a server port inside it
# can be held by any program's connection at the moment the server binds. The fixed bases lie below the
# range (read here, at run time) and pick_port skips it. A base of 0 (the tests) lets the kernel pick.
EPH_LO=32768 EPH_HI=60999
read -r EPH_LO EPH_HI 2>/dev/null < /proc/sys/net/ipv4/ip_local_port_range || true
in_ephemeral() { [ "$1" -ge "$EPH_LO" ] && [ "$1" -le "$EPH_HI" ]; }
port_free() { # nothing listens on 127.0.0.1:PORT, and a server could bind it (no connection holds it either)
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 1
    python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT does not count
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1" 2>/dev/null
}
port_taken_by_other() { grep -s -v "^$1=" "$dir/ports.env" | cut -d= -f2 | grep -qx "$2"; }
pick_port() { # pick_port NAME BASE [FAILED]: the port saved for NAME if free, else a free one: from the
    # kernel if BASE is 0, else the first from BASE upwards outside the ephemeral range. With FAILED (a
    # port that could not be bound), the saved port is not tried and the search starts after FAILED.
    local name=$1 base=$2 failed=${3:-} saved p
    if [ -z "$failed" ]; then
        saved=$(grep -s "^$name=" "$dir/ports.env" | cut -d= -f2 || true)
        if [ -n "$saved" ] && port_free "$saved"; then
            if [ "$base" != 0 ] && in_ephemeral "$saved"; then
                say "note: $name keeps its saved port $saved, inside the ephemeral range $EPH_LO-$EPH_HI (delete its line in $dir/ports.env to move it)"
            fi
            echo "$saved"
            return
        fi
    fi
    if [ "$base" = 0 ]; then
        while :; do
            p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            [ "$p" != "$failed" ] && ! port_taken_by_other "$name" "$p" && break
        done
        echo "$p"
        return
    fi
    p=$base
    # a retry goes on after the port that failed, unless that was a saved port outside the search
    if [ -n "$failed" ] && [ "$failed" -ge "$base" ] && ! in_ephemeral "$failed"; then p=$((failed + 1)); fi
    while :; do
        in_ephemeral "$p" && p=$((EPH_HI + 1))
        [ "$p" -le 65535 ] || die "no free port for $name from $base up, outside the ephemeral range $EPH_LO-$EPH_HI"
        port_free "$p" && ! port_taken_by_other "$name" "$p" && break
        p=$((p + 1))
    done
    echo "$p"
}
# A failed bind (a port taken between pick_port and the server's bind) is retried on the next free port.
BIND_RETRIES=${BIND_RETRIES:-2}
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
bind_failed() { # bind_failed LOG OFFSET: the log, past OFFSET bytes, reports a port already in use
    tail -c +"$(($2 + 1))" "$1" 2>/dev/null |
        grep -Eqi 'could not bind|could not create any TCP/IP sockets|Address already in use|already bound|seems to be in use|cannot listen on'
}
save_port() { touch "$dir/ports.env"; sed -i "/^$1=/d" "$dir/ports.env"; echo "$1=$2" >> "$dir/ports.env"; }
saved_port() { grep -s "^$1=" "$dir/ports.env" | cut -d= -f2; }
next_bind_port() { # next_bind_port WHAT LOG NAME BASE: after a part could not bind the caller's `port`, moves
    # it to the next free one from BASE (counting the caller's `tries`), or dies after BIND_RETRIES
    [ "$tries" -lt "$BIND_RETRIES" ] || die "$1 could not bind 127.0.0.1:$port: see $2"
    tries=$((tries + 1))
    say "$1 could not bind 127.0.0.1:$port (in use); retrying on the next free port"
    port=$(pick_port "$3" "$4" "$port")
}

# ---------------------------------------------------------------- secrets
secret() { sed -n "s/^$1=//p" "$dir/secrets.env" 2>/dev/null | tail -n 1; }
ensure_secrets() { # makes DIR/secrets.env's missing entries (once per folder; later runs keep them)
    local k
    (
        umask 077
        touch "$dir/secrets.env"
        for k in REDIS_ADMIN_PASSWORD REDIS_DEBEZIUM_PASSWORD REDIS_REPLICA_PASSWORD; do
            [ -n "$(secret "$k")" ] || echo "$k=$(python3 -c 'import secrets; print(secrets.token_hex(24))')" >> "$dir/secrets.env"
        done
        if [ "${AUTH:-0}" = 1 ] && [ -z "$(secret CDCACHE_TOKEN)" ]; then
            echo "CDCACHE_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >> "$dir/secrets.env"
        fi
    )
    chmod 600 "$dir/secrets.env"
}
rcli() { # rcli PORT ARGS...: redis-cli on the stack's Redis, as its administrator (user default)
    local port=$1
    shift
    REDISCLI_AUTH=$(secret REDIS_ADMIN_PASSWORD) redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" "$@"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() { # stop_pid PIDFILE: TERM, then KILL after 10 s
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

# PIPELINE_RT: the pipeline's commands run under SCHED_RR (chrt execs the command: the pid stays the
# part's own, the one supervisord watches). Children inherit the policy.
PIPE_SCHED=()
if [ "${PIPELINE_RT:-0}" = 1 ]; then PIPE_SCHED=(chrt --rr 1); fi

find_java() { # prints a java binary of version >= 21
    local cands=() j v
    [ -n "${JAVA_HOME:-}" ] && cands+=("$JAVA_HOME/bin/java")
    for j in /usr/lib/jvm/*/bin/java; do cands+=("$j"); done
    for j in "${cands[@]}"; do
        [ -x "$j" ] || continue
        v=$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
        [ -n "$v" ] && [ "${v%%.*}" -ge 21 ] 2>/dev/null && { echo "$j"; return 0; }
    done
    return 1
}

# ---------------------------------------------------------------- supervisor
svctl() { supervisorctl -c "$SV_CONF" "$@"; }
sv_alive() { # supervisord of this folder answers on its socket
    [ -S "$dir/supervisor.sock" ] && [ -f "$SV_CONF" ] && [[ $(svctl pid 2>/dev/null) =~ ^[0-9]+$ ]]
}
sv_state() { # sv_state NAME: RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ... (empty: no such program)
    sv_alive_cached || return 0
    { svctl status "$1" 2>/dev/null || true; } | awk -v n="$1" '$1 == n { print $2 }'
}
SV_UP=0
sv_alive_cached() { [ $SV_UP = 1 ] || { sv_alive && SV_UP=1; }; }
sv_pid() { local p; p=$(svctl pid "$1" 2>/dev/null || true); [[ $p =~ ^[0-9]+$ ]] && echo "$p" || echo 0; }
sv_quote() { # one argument of a program's command: quoted for supervisor's shlex, % doubled
    local a=${1//%/%%}
    printf "'%s'" "${a//\'/\'\"\'\"\'}"
}

sv_up() { # starts this folder's supervisord, unless it runs
    mkdir -p "$SV_DIR/programs"
    chmod 700 "$SV_DIR"
    cat > "$SV_CONF.tmp" <<CONF
; generated by scripts/stack.sh: this stack's supervisord (one per folder); programs in $SV_DIR/programs
[unix_http_server]
file=$dir/supervisor.sock
chmod=0700

[supervisord]
logfile=$dir/supervisord.log
logfile_maxbytes=10MB
logfile_backups=2
pidfile=$SV_DIR/supervisord.pid
childlogdir=$SV_DIR
identifier=cdcache-stack
minfds=4096
umask=022

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$dir/supervisor.sock

[include]
files = $SV_DIR/programs/*.conf
CONF
    mv "$SV_CONF.tmp" "$SV_CONF"
    # the command of every program: ends what is left of the program's previous run (a killed nginx
    # master leaves workers that keep its port: processes of the old process group with this part's
    # working directory), records the pid, loads the part's environment and becomes the part's command
    cat > "$SV_DIR/run-part" <<'SCRIPT'
#!/bin/bash
# generated by scripts/stack.sh; supervisord's command for each part: run-part NAME PIDFILE ENVFILE COMMAND...
# PIDFILE, ENVFILE: - for none (PostgreSQL and nginx write their own pid files)
name=$1 pidfile=$2 envfile=$3
shift 3
pgf="$(dirname "$0")/$name.pgid"
cwd=$(pwd -P)
if [ -s "$pgf" ] && [ "$(cat "$pgf")" != $$ ]; then
    left=()
    for p in $(pgrep -g "$(cat "$pgf")" 2>/dev/null); do
        [ "$p" != $$ ] && [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$cwd" ] && left+=("$p")
    done
    if [ ${#left[@]} -gt 0 ]; then
        echo "run-part: $name: ending what is left of its previous run: pids ${left[*]}" >&2
        # nginx workers get SIGQUIT: they close their listening sockets at once (the new master can bind)
        # and finish their requests by themselves (worker_shutdown_timeout); anything else: SIGTERM, then
        # SIGKILL after 5 s
        workers=() others=()
        for p in "${left[@]}"; do
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nginx ]; then workers+=("$p"); kill -QUIT "$p" 2>/dev/null
            else others+=("$p"); kill -TERM "$p" 2>/dev/null; fi
        done
        holding() { # the leftovers that still run (others) or still listen (nginx workers)
            local p
            for p in "${others[@]}"; do kill -0 "$p" 2>/dev/null && echo "$p"; done
            if [ ${#workers[@]} -gt 0 ]; then
                ss -Hltnp 2>/dev/null | grep -oE "pid=($(IFS='|'; echo "${workers[*]}"))," | tr -dc '0-9\n'
            fi
        }
        for _ in $(seq 1 250); do [ -n "$(holding)" ] || break; sleep 0.02; done
        stuck=$(holding | sort -u)
        [ -z "$stuck" ] || kill -KILL $stuck 2>/dev/null
    fi
fi
echo $$ > "$pgf"
[ "$pidfile" = - ] || echo $$ > "$pidfile"
if [ "$envfile" != - ]; then . "$envfile"; fi
exec "$@"
SCRIPT
    chmod 700 "$SV_DIR/run-part"
    sv_alive && { SV_UP=1; return 0; }
    rm -f "$dir/supervisor.sock"
    # a clean environment: each part gets what it needs from its own environment file, so that a reused
    # supervisord does not pass on the variables of the run that started it
    env -i PATH="$PATH" LANG=C.UTF-8 HOME="${HOME:-/root}" supervisord -c "$SV_CONF" ||
        die "supervisord did not start: see $dir/supervisord.log"
    wait_for 20 "supervisord on $dir/supervisor.sock" sv_alive
    SV_UP=1
    say "supervisord on $dir/supervisor.sock (supervisorctl -c $SV_CONF status)"
}

sv_program() { # sv_program NAME DIRECTORY LOG STOPSIGNAL STOPWAITSECS STARTSECS PRIORITY PIDFILE ENVFILE COMMAND...
    # writes NAME's program file and loads it into supervisord (a changed one is stopped and reloaded)
    local name=$1 directory=$2 log=$3 sig=$4 wait=$5 startsecs=$6 prio=$7 pidfile=$8 envfile=$9 a cmdline
    shift 9
    cmdline="/bin/bash $(sv_quote "$SV_DIR/run-part") $(sv_quote "$name") $(sv_quote "$pidfile") $(sv_quote "$envfile")"
    for a in "$@"; do cmdline+=" $(sv_quote "$a")"; done
    cat > "$SV_DIR/programs/$name.conf.tmp" <<CONF
; generated by scripts/stack.sh
[program:$name]
command=$cmdline
directory=$directory
autostart=false
autorestart=true
startsecs=$startsecs
startretries=100
stopsignal=$sig
stopwaitsecs=$wait
stopasgroup=true
killasgroup=true
priority=$prio
redirect_stderr=true
stdout_logfile=$log
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=2
CONF
    mv "$SV_DIR/programs/$name.conf.tmp" "$SV_DIR/programs/$name.conf"
    svctl update "$name" >/dev/null
}
sv_env() { # sv_env FILE NAME=VALUE...: an environment file for run-part (mode 0600: it may hold secrets),
    # with every CDCACHE_* variable of this run first (the tests and operators tune parts that way)
    local f=$1 kv
    shift
    (
        umask 077
        {
            echo "# generated by scripts/stack.sh"
            while IFS= read -r kv; do printf 'export %q\n' "$kv"; done < <(env | grep -E '^CDCACHE_[A-Za-z0-9_]*=' || true)
            for kv in "$@"; do printf 'export %q\n' "$kv"; done
        } > "$f.tmp"
    )
    mv "$f.tmp" "$f"
}
sv_start() { # sv_start NAME...: starts the programs, in parallel (returns once each is up, or failed, per
    # supervisord: after its startsecs)
    local n pids=()
    for n in "$@"; do svctl start "$n" >/dev/null 2>&1 & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n" || true; done
}
sv_stop() { # sv_stop NAME...: stops the programs (supervisord does not restart a stopped program)
    local n pids=()
    for n in "$@"; do svctl stop "$n" >/dev/null 2>&1 & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n" || true; done
}
sv_wait_up() { # sv_wait_up NAME LOG OFFSET SECONDS WHAT CHECK...: after sv_start NAME, until CHECK passes.
    # 0: up; 2: the part could not bind its port (its log says so past OFFSET; the program is stopped). Dies
    # (and stops the program) if the part exits meanwhile (supervisord would start it again: `up` reports it
    # instead) or does not pass CHECK in time.
    local name=$1 log=$2 off=$3 secs=$4 what=$5 st pid pid0 n=0
    shift 5
    local end=$((SECONDS + secs))
    pid0=$(sv_pid "$name")
    while :; do
        if bind_failed "$log" "$off"; then sv_stop "$name"; return 2; fi
        if "$@" >/dev/null 2>&1; then
            bind_failed "$log" "$off" && { sv_stop "$name"; return 2; }
            return 0
        fi
        if [ $((n % 5)) = 0 ]; then
            st=$(sv_state "$name") pid=$(sv_pid "$name")
            case "$st" in
                STARTING | RUNNING) ;;
                *) bind_failed "$log" "$off" && { sv_stop "$name"; return 2; }
                   sv_stop "$name"; tail -n 30 "$log" >&2; die "$what: it exited (supervisord: ${st:-no such program}): see $log" ;;
            esac
            if [ "$pid0" = 0 ]; then
                pid0=$pid
            elif [ "$pid" != "$pid0" ]; then
                bind_failed "$log" "$off" && { sv_stop "$name"; return 2; }
                sv_stop "$name"; tail -n 30 "$log" >&2; die "$what: it exited (supervisord started it again): see $log"
            fi
        fi
        n=$((n + 1))
        [ $SECONDS -lt $end ] || { sv_stop "$name"; tail -n 30 "$log" >&2; die "timed out after ${secs}s waiting for $what: see $log"; }
        sleep 0.2
    done
}

# ---------------------------------------------------------------- stop
# Under supervisord: its programs are stopped (replicas: SIGTERM, they drain; PostgreSQL: SIGINT, a fast
# shutdown; Redis: SIGTERM, it syncs its AOF; nginx: SIGQUIT, graceful). Without it (a stack started by an
# older stack.sh, or a supervisord that was killed): the pid files, as before.
replica_programs() { # the replica-N programs supervisord knows, and those of this run
    { { svctl avail 2>/dev/null || true; } | awk '$1 ~ /^replica-[0-9]+$/ { print $1 }'
      for f in "$dir"/replica-*/; do [ -d "$f" ] && basename "$f"; done; } | sort -u
}
stop_replicas() {
    local f
    if sv_alive_cached; then
        # shellcheck disable=SC2046
        sv_stop $(replica_programs)
        rm -f "$dir"/replica-*/cdcache.pid
    else
        for f in "$dir"/replica-*/cdcache.pid; do [ -e "$f" ] && stop_pid "$f"; done
    fi
    return 0
}
stop_nginx() {
    if sv_alive_cached; then
        sv_stop nginx
        rm -f "$dir/nginx/nginx.pid"
    elif [ -f "$dir/nginx/nginx.pid" ]; then
        nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -s quit 2>/dev/null || true
        for _ in $(seq 1 50); do pid_alive "$dir/nginx/nginx.pid" || break; sleep 0.1; done
        stop_pid "$dir/nginx/nginx.pid"
    fi
}
stop_debezium() {
    if sv_alive_cached; then
        sv_stop debezium
        rm -f "$dir/debezium/debezium.pid"
    else
        stop_pid "$dir/debezium/debezium.pid"
    fi
}
stop_redis() {
    if sv_alive_cached; then
        sv_stop redis
        rm -f "$dir/redis/redis.pid"
    elif [ -f "$dir/redis/redis.pid" ]; then
        rcli "$(saved_port redis)" shutdown nosave >/dev/null 2>&1 || true
        stop_pid "$dir/redis/redis.pid"
    fi
}
stop_pg() { # both clusters: the primary and, if there is one, the standby (or a fenced old primary)
    local d
    if sv_alive_cached; then sv_stop pg pg-standby; fi
    for d in "$dir/pg/data" "$dir/pg-standby/data"; do
        if [ -f "$d/postmaster.pid" ] && kill -0 "$(head -n 1 "$d/postmaster.pid")" 2>/dev/null; then
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
        fi
    done
}
down() { # stops the parts named in $PARTS (all by default), front to back
    local p
    for p in replicas nginx debezium redis pg; do has_part "$p" && "stop_$p"; done
    return 0
}
down_all() { # every part, then supervisord
    PARTS="pg redis debezium replicas nginx" down
    if sv_alive; then
        local pid
        pid=$(svctl pid 2>/dev/null || true)
        svctl shutdown >/dev/null 2>&1 || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/supervisor.sock"
}

# ---------------------------------------------------------------- start
# Two cluster folders, DIR/pg and DIR/pg-standby (supervisord's programs pg and pg-standby). DIR/pg.primary
# names the one that is the primary ("pg" unless a failover promoted the standby); the other is the standby,
# or the fenced old primary after a failover (rebuilt as a standby by the next `STANDBY=1 up`). ports.env:
# `pg` is the primary's port, `pg_standby` the other folder's.
primary_name() { cat "$dir/pg.primary" 2>/dev/null || echo pg; }
standby_name() { if [ "$(primary_name)" = pg ]; then echo pg-standby; else echo pg; fi; }
pg_opts() { # pg_opts PORT FOLDER: the server options both clusters run with
    echo "-c port=$1 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$2 \
            -c wal_level=logical -c max_wal_senders=10 -c max_replication_slots=10 \
            -c max_connections=300 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_SYNC_COMMIT:-on} \
            -c max_slot_wal_keep_size=${PG_MAX_SLOT_WAL_KEEP_SIZE:-1GB}"
}
db_url() { echo "postgresql://postgres@127.0.0.1:$(saved_port pg)/cdcache"; }
replica_conninfo() { # with a standby: both hosts, libpq picks the one that accepts writes
    local sp
    sp=$(saved_port pg_standby)
    if [ -n "$sp" ]; then
        echo "postgresql://postgres@127.0.0.1:$(saved_port pg),127.0.0.1:$sp/cdcache?target_session_attrs=read-write"
    else
        db_url
    fi
}
pg_is_ours() { # pg_is_ours PORT DATADIR: the server on PORT accepts connections and runs from DATADIR
    [ "$(psql -X -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc 'SHOW data_directory' 2>/dev/null)" = "$2" ]
}
run_pg() { # run_pg FOLDER PORT EXTRA_OPTION...: the cluster DIR/FOLDER/data as supervisord's program
    # FOLDER (postgres in the foreground as user postgres; SIGINT: a fast shutdown). 0 once it accepts
    # connections; 2 if it could not bind PORT
    local folder=$1 port=$2 off opts
    shift 2
    local pd="$dir/$folder"
    read -ra opts <<< "$(pg_opts "$port" "$pd")"
    off=$(log_size "$pd/postgres.log")
    sv_program "$folder" "$pd" "$pd/postgres.log" INT 60 2 100 - - "${PIPE_SCHED[@]}" \
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$pd/data" "${opts[@]}" "$@"
    sv_start "$folder"
    sv_wait_up "$folder" "$pd/postgres.log" "$off" 120 "PostgreSQL ($pd) on 127.0.0.1:$port" pg_is_ours "$port" "$pd/data"
}

start_pg() {
    local port fresh=0 pd rc
    if [ "${FRESH:-0}" = 1 ]; then # a new database: the standby and the roles go with the old one
        rm -rf "$dir/pg-standby/data" "$dir/pg.primary"
    fi
    pd="$dir/$(primary_name)"
    port=$(pick_port pg "${PG_PORT_BASE:-15432}")
    mkdir -p "$pd"
    chown postgres:postgres "$pd"
    chmod 755 "$dir"
    if [ "${FRESH:-0}" = 1 ] && [ -d "$pd/data" ]; then rm -rf "$pd/data"; fi
    if [ ! -s "$pd/data/PG_VERSION" ]; then
        rm -rf "$pd/data"
        runuser -u postgres -- "$PGBIN/initdb" -D "$pd/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$pd/initdb.log" 2>&1 || die "initdb failed: see $pd/initdb.log"
        fresh=1
    fi
    local extra=()
    # WAL kept for a standby that was stopped with the stack (a physical slot would pin WAL forever
    # for a standby that never comes back)
    [ "${STANDBY:-0}" = 1 ] && extra=(-c wal_keep_size=256MB)
    local tries=0
    while :; do
        rc=0
        run_pg "$(primary_name)" "$port" "${extra[@]}" || rc=$?
        [ $rc = 0 ] && break
        next_bind_port "PostgreSQL" "$pd/postgres.log" pg "${PG_PORT_BASE:-15432}"
    done
    save_port pg "$port"
    psql_c() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
    if ! psql_c -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='cdcache'" | grep -q 1; then
        psql_c -d postgres -c "CREATE DATABASE cdcache" >/dev/null
        fresh=1
    fi
    # DIR/<cluster>/fresh: 1 while the offsets and streams of an older database may still be in Redis; set
    # for a new database, cleared only once reset_offsets_if_fresh has verified the reset (so that an
    # `up` that died before it retries it)
    if [ $fresh = 1 ] || [ ! -f "$pd/fresh" ]; then echo "$fresh" > "$pd/fresh"; fi
    DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cdcache"
    CDCACHE_POSTGRES_CONNINFO="$DATABASE_URL" "$CDCACHE" migrate up --dir "$here/migrations" >"$pd/migrate.log" 2>&1 \
        < /dev/null || { cat "$pd/migrate.log" >&2; die "migrations failed"; }
    # publication.autocreate.mode=disabled: the publication, the version columns and the DDL signal
    # are prepare's, made before Debezium starts
    prepare_tables
    say "PostgreSQL on 127.0.0.1:$port (wal_level=logical)$([ $fresh = 1 ] && echo ', new database')"
    if [ "${STANDBY:-0}" = 1 ]; then
        start_standby "$fresh"
    else
        sed -i '/^pg_standby=/d' "$dir/ports.env"
    fi
}

start_standby() { # start_standby FRESH: a streaming standby of the primary (pg_basebackup -R)
    local fresh=$1 pport sd port rc
    pport=$(saved_port pg)
    sd="$dir/$(standby_name)"
    # replication over 127.0.0.1 (initdb --auth=trust allows it; added if an older cluster lacks it)
    if ! grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$dir/$(primary_name)/data/pg_hba.conf"; then
        echo "host replication all 127.0.0.1/32 trust" >> "$dir/$(primary_name)/data/pg_hba.conf"
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/$(primary_name)/data" reload >/dev/null
    fi
    port=$(pick_port pg_standby "${PG_STANDBY_PORT_BASE:-${PG_PORT_BASE:-15432}}")
    mkdir -p "$sd"
    chown postgres:postgres "$sd"
    # a folder that is not a standby (a fenced old primary after a failover) or one of an older
    # database is made again from the primary
    if [ "$fresh" = 1 ] || [ ! -f "$sd/data/standby.signal" ]; then
        rm -rf "$sd/data"
        runuser -u postgres -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$sd/data" \
            -R -X stream -c fast >"$sd/basebackup.log" 2>&1 || die "pg_basebackup failed: see $sd/basebackup.log"
        say "standby made with pg_basebackup -R from 127.0.0.1:$pport into $sd/data"
    fi
    echo 0 > "$sd/fresh" # a copy of the primary: no reset pending if a failover promotes it
    # primary_conninfo on the command line wins over the one pg_basebackup wrote: the primary's port may change
    local tries=0
    while :; do
        rc=0
        run_pg "$(standby_name)" "$port" -c "primary_conninfo=host=127.0.0.1 port=$pport user=postgres application_name=standby" || rc=$?
        [ $rc = 0 ] && break
        next_bind_port "the standby" "$sd/postgres.log" pg_standby "${PG_STANDBY_PORT_BASE:-${PG_PORT_BASE:-15432}}"
    done
    save_port pg_standby "$port"
    wait_for 60 "the standby to stream from the primary" sh -c "psql -X -h 127.0.0.1 -p $pport -U postgres -d postgres -tAc \
        \"SELECT 1 FROM pg_stat_replication WHERE application_name='standby' AND state='streaming'\" | grep -q 1"
    say "PostgreSQL standby on 127.0.0.1:$port (streaming from 127.0.0.1:$pport)"
}

write_acl() { # DIR/redis/users.acl: scripts/redis-users.acl.in with this folder's passwords (comments dropped:
    # Redis's aclfile takes user lines only)
    (
        umask 077
        sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' \
            -e "s/@ADMIN_PASSWORD@/$(secret REDIS_ADMIN_PASSWORD)/" \
            -e "s/@DEBEZIUM_PASSWORD@/$(secret REDIS_DEBEZIUM_PASSWORD)/" \
            -e "s/@REPLICA_PASSWORD@/$(secret REDIS_REPLICA_PASSWORD)/" \
            "$here/scripts/redis-users.acl.in" > "$dir/redis/users.acl.tmp"
    )
    mv "$dir/redis/users.acl.tmp" "$dir/redis/users.acl"
}
redis_is_ours() { # redis_is_ours PORT: the server on PORT is supervisord's program redis (it may still be loading)
    local pid
    pid=$(sv_pid redis)
    [ "$pid" != 0 ] && rcli "$1" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"
}
start_redis() {
    local port tries=0 off rc
    mkdir -p "$dir/redis"
    write_acl
    port=$(pick_port redis "${REDIS_PORT_BASE:-16379}")
    while :; do
        cat > "$dir/redis/redis.conf" <<CONF
# generated by scripts/stack.sh; runs under supervisord (program redis), in the foreground
bind 127.0.0.1
protected-mode yes
port $port
dir $dir/redis
pidfile $dir/redis/redis.pid
logfile ""
daemonize no
appendonly yes
save ""
# ACL users (scripts/redis-users.acl.in): default (administrator), cdcache-debezium, cdcache-replica
aclfile $dir/redis/users.acl
CONF
        off=$(log_size "$dir/redis/redis.log")
        sv_program redis "$dir/redis" "$dir/redis/redis.log" TERM 60 1 200 - - "${PIPE_SCHED[@]}" \
            redis-server "$dir/redis/redis.conf"
        sv_start redis
        rc=0
        sv_wait_up redis "$dir/redis/redis.log" "$off" 20 "Redis on 127.0.0.1:$port" redis_is_ours "$port" || rc=$?
        [ $rc = 0 ] && break
        next_bind_port "Redis" "$dir/redis/redis.log" redis "${REDIS_PORT_BASE:-16379}"
    done
    save_port redis "$port"
    redis_wait_loaded "$port"
    say "Redis on 127.0.0.1:$port (ACL users: default, cdcache-debezium, cdcache-replica)"
}

redis_wait_loaded() { # redis_wait_loaded PORT: until Redis has loaded its AOF (it answers LOADING before)
    local port=$1 r="" end=$((SECONDS + ${REDIS_LOAD_TIMEOUT:-300}))
    while :; do
        r=$(rcli "$port" PING 2>&1 || true)
        if [ "$r" = PONG ] && rcli "$port" INFO persistence 2>/dev/null | tr -d '\r' | grep -qx 'loading:0'; then
            return 0
        fi
        [ $SECONDS -lt $end ] || die "Redis on 127.0.0.1:$port was not ready after ${REDIS_LOAD_TIMEOUT:-300}s (PING: $r)"
        sleep 0.2
    done
}

redis_del() { # redis_del WHAT KEY...: deletes the keys, checks Redis's reply, then checks that none is left.
    # redis-cli exits 0 on an error reply (LOADING, READONLY, ...): the reply itself must be read.
    local what=$1 port reply left
    shift
    port=$(saved_port redis)
    [ -n "$port" ] || die "$what: no Redis port in $dir/ports.env"
    redis_wait_loaded "$port"
    reply=$(rcli "$port" DEL "$@" 2>&1) || die "$what: redis-cli DEL $* on 127.0.0.1:$port failed: $reply"
    [[ $reply =~ ^[0-9]+$ ]] || die "$what: DEL $* on Redis 127.0.0.1:$port answered: $reply"
    left=$(rcli "$port" EXISTS "$@" 2>&1) || true
    [ "$left" = 0 ] || die "$what: after DEL, EXISTS $* on Redis 127.0.0.1:$port answers '$left' (expected 0)"
    echo "$reply"
}

# ---------------------------------------------------------------- the config: CONFIG's overlay, prepare
OVERLAY=$dir/config.overlay.yaml
STACK_CONFIG=$dir/cdcache.yaml
take_overlay() { # on `up`: CONFIG=FILE becomes DIR/config.overlay.yaml; a full up without it drops it
    if [ -n "${CONFIG:-}" ]; then
        [ -f "$CONFIG" ] || die "CONFIG=$CONFIG: no such file"
        python3 -c 'import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
if d is not None and not isinstance(d, dict):
    sys.exit(sys.argv[1] + ": not a YAML mapping of config sections")' "$CONFIG" 2>&1 || die "CONFIG=$CONFIG is not a usable YAML file"
        (umask 077; cp "$CONFIG" "$OVERLAY.tmp") && mv "$OVERLAY.tmp" "$OVERLAY"
        say "config: $CONFIG laid over every replica's config (kept as $OVERLAY)"
    elif has_part pg && has_part debezium && has_part replicas; then
        rm -f "$OVERLAY"
    elif [ -f "$OVERLAY" ]; then
        say "config: keeping $OVERLAY from an earlier CONFIG=... up"
    fi
}
overlay() { # overlay FILE: lays DIR/config.overlay.yaml (if any) over FILE, in place (mode 0600)
    [ -f "$OVERLAY" ] || return 0
    (umask 077; python3 - "$1" "$OVERLAY" "$1.merged" <<'PY'
import sys, yaml
def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge(a.get(k), v)
        return out
    return b
base = yaml.safe_load(open(sys.argv[1])) or {}
over = yaml.safe_load(open(sys.argv[2])) or {}
with open(sys.argv[3], "w") as f:
    f.write("# generated by scripts/stack.sh: its own keys with " + sys.argv[2] + " laid over them\n")
    yaml.safe_dump(merge(base, over), f, default_flow_style=False, sort_keys=False)
PY
    ) || die "config: could not lay $OVERLAY over $1"
    mv "$1.merged" "$1"
}
write_stack_config() { # DIR/cdcache.yaml: what prepare and debezium-config read (the primary, the overlay)
    (
        umask 077
        cat > "$STACK_CONFIG.tmp" <<CONF
# generated by scripts/stack.sh: read by cdcache prepare, check-config and debezium-config
postgres:
  conninfo: "$(db_url)"
  migrations_dir: "$here/migrations"
CONF
    )
    overlay "$STACK_CONFIG.tmp"
    mv "$STACK_CONFIG.tmp" "$STACK_CONFIG"
}
debezium_properties() { # Debezium's properties for the stack's resources (cdcache debezium-config)
    [ -f "$STACK_CONFIG" ] || write_stack_config
    "$CDCACHE" debezium-config --config "$STACK_CONFIG" 2>&1 || die "cdcache debezium-config failed (above)"
}
topic_prefix() { sed -n 's/^debezium.source.topic.prefix=//p' "$dir/debezium/config/application.properties" 2>/dev/null | tail -n 1 | grep . || echo cdcache; }
stack_streams() { # every stream the resources' tables, the watermark, the DDL signal and heartbeats write
    debezium_properties | sed -n 's/^#   [^:]*: \([^ ]*\)$/\1/p'
}
prepare_tables() { # after the migrations: prepare (idempotent), then check-config, on DIR/cdcache.yaml
    local out
    write_stack_config
    out=$("$CDCACHE" prepare --config "$STACK_CONFIG" --apply 2>&1) || die "cdcache prepare failed: $out"
    out=$("$CDCACHE" check-config --config "$STACK_CONFIG" 2>&1) || die "cdcache check-config failed: $out"
    say "prepared: $("$CDCACHE" debezium-config --config "$STACK_CONFIG" | sed -n 's/^debezium.source.table.include.list=//p')"
}

reset_offsets_if_fresh() {
    # A new database means Debezium's stored offsets (in Redis) point into a WAL that no longer exists,
    # and the slot is gone: drop them so Debezium starts clean. Old stream entries describe rows of the
    # old database; drop those too.
    local f n
    f="$dir/$(primary_name)/fresh"
    if [ "$(cat "$f" 2>/dev/null || echo 0)" = 1 ]; then
        local streams
        mapfile -t streams < <(stack_streams)
        n=$(redis_del "new database: resetting Debezium's offsets" "$OFFSETS_KEY" cdcache.inventory.items \
            __debezium-heartbeat.cdcache "${streams[@]}")
        echo 0 > "$f"
        say "new database: Debezium offsets and old streams reset ($n keys deleted; verified gone: $OFFSETS_KEY, ${streams[*]})"
    fi
}

debezium_streaming() { # debezium_streaming SINCE_MS: a heartbeat newer than SINCE_MS is in Redis
    local last
    last=$(rcli "$(saved_port redis)" XREVRANGE "__debezium-heartbeat.$(topic_prefix)" + - COUNT 1 2>/dev/null | head -n 1)
    [ -n "$last" ] && [[ ${last%%-*} =~ ^[0-9]+$ ]] && [ "${last%%-*}" -gt "$1" ]
}
start_debezium() {
    local dist java port d="$dir/debezium" t0 rc off
    dist=$("$here/scripts/debezium-fetch.sh")
    java=$(find_java) || die "Debezium Server $(cat "$here/debezium/VERSION") needs Java 21 or newer: none found in JAVA_HOME or /usr/lib/jvm (install a JDK 21+, e.g. Temurin, and set JAVA_HOME)"
    mkdir -p "$d/config"
    for f in run.sh lib lib_opt lib_metrics jmx connectors "$(cd "$dist" && ls debezium-server-*runner.jar)"; do
        ln -sfn "$dist/$f" "$d/$f"
    done
    # the shipped properties, then what the resources need (a key repeated later wins: SmallRye Config
    # loads a properties file into a map line by line)
    local props
    props=$(debezium_properties)
    { cat "$here/debezium/application.properties"; echo; echo "$props"; } > "$d/config/application.properties.tmp"
    mv "$d/config/application.properties.tmp" "$d/config/application.properties"
    port=$(pick_port debezium_http "${DBZ_HTTP_PORT_BASE:-18088}")
    local tries=0
    while :; do
        save_port debezium_http "$port"
        # its environment (application.properties reads it): Redis as the ACL user cdcache-debezium. 127.0.0.1
        # only: quarkus.http.host in application.properties; QUARKUS_HTTP_HOST would override it, and run.sh
        # would open JMX and the JMX exporter on all interfaces if JMX_HOST, JMX_PORT or JMX_EXPORTER_PORT
        # were set (supervisord's clean environment has none of them)
        sv_env "$SV_DIR/debezium.env" "JAVA_HOME=${java%/bin/java}" \
            "JAVA_OPTS=${JAVA_OPTS:-} -Xms256m -Xmx1g --add-opens=java.base/java.lang=ALL-UNNAMED" \
            "CDCACHE_REDIS_ADDRESS=127.0.0.1:$(saved_port redis)" \
            "CDCACHE_DEBEZIUM_REDIS_USER=cdcache-debezium" \
            "CDCACHE_DEBEZIUM_REDIS_PASSWORD=$(secret REDIS_DEBEZIUM_PASSWORD)" \
            "CDCACHE_PG_PORT=$(saved_port pg)" "CDCACHE_DEBEZIUM_HTTP_PORT=$port" \
            "CDCACHE_DEBEZIUM_HTTP_HOST=127.0.0.1"
        sv_program debezium "$d" "$d/debezium.log" TERM 30 10 300 "$d/debezium.pid" "$SV_DIR/debezium.env" \
            "${PIPE_SCHED[@]}" ./run.sh
        off=$(log_size "$d/debezium.log")
        t0=$(date +%s%N)
        sv_start debezium
        # streaming has begun once a heartbeat newer than the launch lands in Redis
        rc=0
        sv_wait_up debezium "$d/debezium.log" "$off" "${DEBEZIUM_START_TIMEOUT:-180}" "Debezium Server to stream" \
            debezium_streaming $((t0 / 1000000)) || rc=$?
        [ $rc = 0 ] && break
        next_bind_port "Debezium Server's HTTP port" "$d/debezium.log" debezium_http "${DBZ_HTTP_PORT_BASE:-18088}"
    done
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '%d.%d\n' $((ms / 1000)) $(((ms % 1000) / 100)) > "$d/startup_seconds"
    say "Debezium Server $(cat "$here/debezium/VERSION") streaming after $(cat "$d/startup_seconds")s (java: $java; Redis user cdcache-debezium)"
}

write_replica_config() { # write_replica_config I PORT (mode 0600: it holds the Redis password and the token)
    local f="$dir/replica-$1/config.yaml"
    (
        umask 077
        cat > "$f.tmp" <<CONF
# generated by scripts/stack.sh; runs under supervisord (program replica-$1)
http:
  listen: "127.0.0.1:$2"
$(if [ -n "${REPLICA_THREADS:-}" ]; then echo "  threads: $REPLICA_THREADS"; fi)
$(if [ "$LB" = kernel ] && [ -n "$(saved_port lb)" ]; then echo "  shared_listen: \"${LB_HOST:-127.0.0.1}:$(saved_port lb)\""; fi)
postgres:
  conninfo: "$(replica_conninfo)"
  migrations_dir: "$here/migrations"
redis:
  url: "redis://127.0.0.1:$(saved_port redis)"
  username: "cdcache-replica"
  password: "$(secret REDIS_REPLICA_PASSWORD)"
cdc:
  replica_id: "replica-$1"
  max_staleness_ms: ${MAX_STALENESS_MS:-5000}
log:
  level: ${LOG_LEVEL:-info}
CONF
        if [ "${AUTH:-0}" = 1 ]; then
            printf 'auth:\n  write_tokens: "%s"\n' "$(secret CDCACHE_TOKEN)" >> "$f.tmp"
        fi
    )
    overlay "$f.tmp"
    local out
    out=$("$CDCACHE" check-config --config "$f.tmp" 2>&1) || die "replica $1: cdcache check-config failed: $out"
    mv "$f.tmp" "$f"
}
replica_is_up() { # replica_is_up I PORT: answers /health, and is supervisord's program replica-I
    curl -fsS --max-time 5 "http://127.0.0.1:$2/health" >/dev/null 2>&1 && [ "$(sv_state "replica-$1")" != BACKOFF ] &&
        [ "$(sv_pid "replica-$1")" != 0 ]
}
replica_program() { # replica_program I: the program replica-I (not started)
    sv_env "$SV_DIR/replica-$1.env"
    sv_program "replica-$1" "$dir/replica-$1" "$dir/replica-$1/cdcache.log" TERM 30 2 400 \
        "$dir/replica-$1/cdcache.pid" "$SV_DIR/replica-$1.env" "$CDCACHE" serve --config "$dir/replica-$1/config.yaml"
}

start_replicas() {
    local i port urls=() tries rc off n
    # programs of replicas beyond REPLICAS (an earlier run had more) are removed
    for n in $(replica_programs); do
        i=${n#replica-}
        if [ "$i" -gt "$REPLICAS" ]; then
            rm -f "$SV_DIR/programs/$n.conf" "$SV_DIR/$n.env"
            svctl update "$n" >/dev/null 2>&1 || true
        fi
    done
    declare -A offs
    local names=()
    for i in $(seq 1 "$REPLICAS"); do
        mkdir -p "$dir/replica-$i"
        port=$(pick_port "replica$i" "${REPLICA_PORT_BASE:-8081}")
        save_port "replica$i" "$port"
        write_replica_config "$i" "$port"
        offs[$i]=$(log_size "$dir/replica-$i/cdcache.log")
        replica_program "$i"
        names+=("replica-$i")
    done
    sv_start "${names[@]}"
    for i in $(seq 1 "$REPLICAS"); do
        port=$(saved_port "replica$i")
        tries=0
        off=${offs[$i]}
        while :; do
            rc=0
            sv_wait_up "replica-$i" "$dir/replica-$i/cdcache.log" "$off" 30 "replica $i on 127.0.0.1:$port" \
                replica_is_up "$i" "$port" || rc=$?
            [ $rc = 0 ] && break
            next_bind_port "replica $i" "$dir/replica-$i/cdcache.log" "replica$i" "${REPLICA_PORT_BASE:-8081}"
            save_port "replica$i" "$port"
            write_replica_config "$i" "$port"
            off=$(log_size "$dir/replica-$i/cdcache.log")
            replica_program "$i"
            sv_start "replica-$i"
        done
        wait_for 60 "replica $i to be ready" curl -fsS --max-time 5 "http://127.0.0.1:$port/ready"
        urls+=("http://127.0.0.1:$port")
    done
    REPLICA_URLS=$(IFS=,; echo "${urls[*]}")
    say "$REPLICAS replicas: $REPLICA_URLS$([ "${AUTH:-0}" = 1 ] && echo ' (writes need the token: AUTH=1)')"
}

write_nginx_conf() { # write_nginx_conf PORT: nginx.conf balancing over every replica
    local port=$1 d="$dir/nginx" i
    {
        echo "# generated by scripts/stack.sh; runs under supervisord (program nginx), in the foreground"
        echo "worker_processes ${NGINX_WORKERS:-2};"
        echo "worker_shutdown_timeout 10s;"
        echo "pid $d/nginx.pid;"
        echo "error_log $d/logs/error.log warn;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        echo "  access_log off;"
        echo "  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;"
        echo "  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;"
        echo "  upstream cdcache {"
        for i in $(seq 1 "$REPLICAS"); do
            # no failure accounting: a replica that refuses a connection (restarting) costs one refused
            # connect (nothing was sent: proxy_next_upstream passes the request on, any method) and is
            # back in rotation the moment it listens; fail_timeout counts in whole seconds and kept a
            # ready replica out for up to 1 s (5 s before)
            echo "    server 127.0.0.1:$(saved_port "replica$i") max_fails=0;"
        done
        # Each replica gives every connection a thread (civetweb): the idle connections nginx keeps
        # (per worker, to any replica) must leave most of them free, or they hold every thread and
        # nothing else gets in (issue 9: /health timed out for ~58 s after a burst). Half of
        # http.threads (1024 by default) across the workers, and closed before the replica's
        # keep-alive timeout (5 s) so nginx never sends on a connection the replica is closing.
        echo "    keepalive ${NGINX_KEEPALIVE:-$(( ${REPLICA_THREADS:-1024} / (2 * ${NGINX_WORKERS:-2}) > 0 ? ${REPLICA_THREADS:-1024} / (2 * ${NGINX_WORKERS:-2}) : 1 ))};"
        echo "    keepalive_timeout 4s;"
        echo "  }"
        echo "  server {"
        echo "    listen ${LB_HOST:-127.0.0.1}:$port;"
        echo "    client_max_body_size 1m;"
        # nginx answers TRACE itself (an HTML 405 without Allow): the replica answers it instead,
        # as every other method, with problem+json and the path's Allow
        echo "    error_page 405 = @replica;"
        echo "    location / {"
        echo "      proxy_pass http://cdcache;"
        echo "      proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\";"
        echo "      proxy_set_header Host \$host;"
        echo "      proxy_next_upstream error timeout;"
        echo "    }"
        echo "    location @replica {"
        echo "      proxy_method \$request_method;"
        echo "      proxy_pass http://cdcache;"
        echo "      proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\";"
        echo "      proxy_set_header Host \$host;"
        echo "    }"
        echo "  }"
        echo "}"
    } > "$d/nginx.conf.tmp"
    mv "$d/nginx.conf.tmp" "$d/nginx.conf"
}

start_nginx() {
    local port d="$dir/nginx" rc off
    mkdir -p "$d/tmp" "$d/logs"
    if [ "$LB_PORT" = 0 ]; then port=$(pick_port lb 0); else port=$LB_PORT; port_free "$port" || die "port $port is in use: stop what holds it, or set LB_PORT"; fi
    local tries=0
    while :; do
        save_port lb "$port"
        write_nginx_conf "$port"
        chmod -R a+rwx "$d/tmp"
        nginx -t -c "$d/nginx.conf" -p "$d" >"$d/logs/test.out" 2>&1 || { cat "$d/logs/test.out" >&2; die "nginx: bad configuration $d/nginx.conf"; }
        off=$(log_size "$d/logs/nginx.out")
        sv_program nginx "$d" "$d/logs/nginx.out" QUIT 30 2 500 - - nginx -c "$d/nginx.conf" -p "$d" -g "daemon off;"
        sv_start nginx
        rc=0
        sv_wait_up nginx "$d/logs/nginx.out" "$off" 20 "nginx on 127.0.0.1:$port" \
            curl -fsS --max-time 5 "http://127.0.0.1:$port/health" || rc=$?
        [ $rc = 0 ] && break
        # a free-picked port (LB_PORT=0) taken meanwhile is retried; a fixed LB_PORT is the operator's choice
        if [ "$LB_PORT" = 0 ] && [ $tries -lt "$BIND_RETRIES" ]; then
            tries=$((tries + 1))
            say "nginx could not bind 127.0.0.1:$port (in use); retrying on another free port"
            port=$(pick_port lb 0 "$port")
            continue
        fi
        tail -n 20 "$d/logs/nginx.out" >&2
        die "nginx could not bind 127.0.0.1:$port: see $d/logs/nginx.out"
    done
    CDCACHE_URL="http://127.0.0.1:$port"
    say "nginx load balancer on $CDCACHE_URL"
}

tune_kernel() { # raises the listen limits the replicas' backlog needs, and lets a draining replica's
    # queued connections move to its peers (LB=kernel); root only, best effort, never lowers a value
    local k want cur
    for kv in net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 net.ipv4.tcp_migrate_req=1; do
        k=${kv%=*} want=${kv#*=}
        cur=$(sysctl -n "$k" 2>/dev/null || echo "")
        [ -n "$cur" ] || continue
        if [ "$cur" -lt "$want" ] && ! sysctl -qw "$k=$want" >/dev/null 2>&1; then
            say "note: cannot raise $k from $cur to $want (not root?): see README, Performance"
        fi
    done
}
pick_shared_port() { # LB=kernel: the public port, before the replicas' configs name it
    local port
    # replicas that keep running (PARTS without them) keep serving the port they joined
    if ! has_part replicas && [ -n "$(saved_port lb)" ]; then return 0; fi
    if [ "$LB_PORT" = 0 ]; then port=$(pick_port lb 0); else port=$LB_PORT; port_free "$port" || die "port $port is in use: stop what holds it, or set LB_PORT"; fi
    save_port lb "$port"
    # an earlier LB=nginx run's program is removed (its port is now the replicas')
    if [ -f "$SV_DIR/programs/nginx.conf" ]; then
        rm -f "$SV_DIR/programs/nginx.conf"
        svctl update nginx >/dev/null 2>&1 || true
    fi
}
start_shared() { # LB=kernel: every replica serves the public port once ready
    local port
    port=$(saved_port lb)
    wait_for 60 "the replicas on the shared port ${LB_HOST:-127.0.0.1}:$port" \
        curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/health"
    CDCACHE_URL="http://127.0.0.1:$port"
    say "public port $CDCACHE_URL: shared by the $REPLICAS replicas (SO_REUSEPORT, LB=kernel; LB=nginx for nginx)"
}

applied_total() { # applied_total URL: the replica's count of applied change events
    curl -fsS --max-time 5 "$1/metrics" | awk '$1=="cdcache_cdc_events_applied_total"{print $2}'
}

probe_pipeline() {
    # A change made in PostgreSQL must reach every replica through Debezium and Redis. The probe row uses
    # an id far above the sequence (ids the API hands out are unaffected) and is deleted at once.
    local i before=() url n ok
    if ! debezium_properties | grep -q '^debezium.source.table.include.list=\(.*,\)\?inventory.items\(,\|$\)'; then
        say "pipeline probe skipped: inventory.items is not a resource of this stack"
        return 0
    fi
    IFS=, read -ra urls <<< "$REPLICA_URLS"
    for url in "${urls[@]}"; do before+=("$(applied_total "$url")"); done
    psql -X -q -h 127.0.0.1 -p "$(saved_port pg)" -U postgres -d cdcache -c \
        "INSERT INTO inventory.items (id, name, description, price) VALUES (4503599627370496, 'probe', 'pipeline probe', 0);
         DELETE FROM inventory.items WHERE id = 4503599627370496;" >/dev/null
    local end=$((SECONDS + 60))
    while :; do
        ok=1
        for i in "${!urls[@]}"; do
            n=$(applied_total "${urls[$i]}")
            [ "${n:-0}" -ge $((before[i] + 2)) ] || ok=0
        done
        [ $ok = 1 ] && break
        [ $SECONDS -lt $end ] || die "a change did not reach every replica within 60s"
        sleep 0.1
    done
    say "pipeline carries changes end to end (PostgreSQL -> Debezium -> Redis -> ${#urls[@]} replicas)"
}

write_env() { # DIR/stack.env (mode 0600: REDIS_URL carries the Redis administrator's password)
    local token=""
    grep -qs '^  write_tokens:' "$dir/replica-1/config.yaml" && token=$(secret CDCACHE_TOKEN)
    (
        umask 077
        cat > "$dir/stack.env.tmp" <<ENV
# generated by scripts/stack.sh; source it: . $dir/stack.env
CDCACHE_URL=${CDCACHE_URL:-}
REPLICA_URLS=${REPLICA_URLS:-}
DATABASE_URL=$(db_url)
REDIS_URL=redis://default:$(secret REDIS_ADMIN_PASSWORD)@127.0.0.1:$(saved_port redis)
STACK_DIR=$dir
PG_PORT=$(saved_port pg)
REDIS_PORT=$(saved_port redis)
DEBEZIUM_STARTUP_SECONDS=$(cat "$dir/debezium/startup_seconds" 2>/dev/null || echo "")
SUPERVISOR_CONF=$SV_CONF
ENV
        if [ -n "$(saved_port pg_standby)" ]; then echo "PG_STANDBY_PORT=$(saved_port pg_standby)" >> "$dir/stack.env.tmp"; fi
        if [ -n "$token" ]; then echo "CDCACHE_TOKEN=$token" >> "$dir/stack.env.tmp"; fi
    )
    mv "$dir/stack.env.tmp" "$dir/stack.env"
    return 0
}

up() {
    [ -x "$CDCACHE" ] || die "$CDCACHE is missing: run make build"
    command -v supervisord >/dev/null || die "supervisord is missing: run make deps (Debian package supervisor)"
    ensure_secrets
    take_overlay
    down # under supervisord if it runs; else by pid files (a stack from before supervisord, or orphans)
    sv_up
    keep_env_urls
    has_part pg && start_pg
    has_part redis && start_redis
    has_part redis && has_part pg && reset_offsets_if_fresh
    has_part debezium && start_debezium
    if has_part nginx; then echo "$LB" > "$dir/lb.mode"; fi
    tune_kernel
    has_part nginx && [ "$LB" = kernel ] && pick_shared_port
    has_part replicas && start_replicas
    if has_part nginx; then if [ "$LB" = kernel ]; then start_shared; else start_nginx; fi; fi
    write_env
    if has_part debezium && has_part replicas; then probe_pipeline; fi
}

# ---------------------------------------------------------------- failover, source reset
keep_env_urls() { # parts not restarted keep their entries in stack.env
    CDCACHE_URL="" REPLICA_URLS=""
    if [ -f "$dir/stack.env" ]; then
        CDCACHE_URL=$(sed -n 's/^CDCACHE_URL=//p' "$dir/stack.env")
        REPLICA_URLS=$(sed -n 's/^REPLICA_URLS=//p' "$dir/stack.env")
    fi
}
replicas_running() {
    local f n=0
    for f in "$dir"/replica-*/cdcache.pid; do [ -e "$f" ] || continue; pid_alive "$f" || return 1; n=$((n + 1)); done
    [ $n -gt 0 ] && [ -n "$REPLICA_URLS" ]
}
pg_q() { # pg_q PORT SQL
    psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d cdcache -v ON_ERROR_STOP=1 -tAc "$2"
}
slot_lsn() { # slot_lsn PORT: the confirmed_flush_lsn of Debezium's slot (empty when there is none)
    pg_q "$1" "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name='$SLOT'"
}
restart_debezium_clean() { # restart_debezium_clean WHAT PORT: the tail of failover and reset-source
    # Debezium is stopped; its offsets name a slot that is gone, so they go too, and it starts without
    # them (it creates the slot at the current WAL position). Replicas are not restarted.
    redis_del "$1: deleting Debezium's offsets" "$OFFSETS_KEY" >/dev/null
    say "$1: Debezium's offsets deleted ($OFFSETS_KEY; verified gone)"
    start_debezium
    say "$1: Debezium streaming, slot $SLOT at $(slot_lsn "$2")"
    write_env
    if replicas_running; then probe_pipeline; fi
}

fence_pg() { # fence_pg FOLDER: stops the cluster as a crash would (an immediate shutdown: no shutdown
    # checkpoint, no last WAL sent) and so that supervisord does not start it again. supervisorctl stop
    # sends the program's stopsignal (SIGINT, a fast shutdown): the postmaster is frozen first and given
    # SIGQUIT too; both are pending when it resumes, and an immediate shutdown overrides a fast one.
    local folder=$1 pm job st
    local data="$dir/$folder/data"
    pm=$(sv_pid "$folder")
    if [ "$pm" != 0 ]; then
        kill -STOP "$pm"
        kill -QUIT "$pm"
        svctl stop "$folder" >/dev/null 2>&1 &
        job=$!
        for _ in $(seq 1 100); do
            st=$(sv_state "$folder")
            [ "$st" = STOPPING ] || [ "$st" = STOPPED ] && break
            sleep 0.1
        done
        kill -CONT "$pm" 2>/dev/null || true
        wait "$job" || true
    fi
    sv_stop "$folder" # whatever its state (a crashed primary in BACKOFF)
    # a postmaster not under supervisord (an older stack)
    if [ -f "$data/postmaster.pid" ] && kill -0 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

failover() {
    local old new oldname newname
    old=$(saved_port pg) new=$(saved_port pg_standby)
    oldname=$(primary_name) newname=$(standby_name)
    [ -n "$new" ] && [ -f "$dir/$newname/data/standby.signal" ] && [ -f "$dir/$newname/data/postmaster.pid" ] ||
        die "no running standby in $dir/$newname: start the stack with STANDBY=1"
    keep_env_urls
    stop_debezium
    say "failover: Debezium stopped"
    fence_pg "$oldname"
    say "failover: old primary fenced (immediate stop, as a crash; its supervisord program $oldname stopped) on 127.0.0.1:$old ($dir/$oldname)"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/$newname/data" -w -t 60 promote >/dev/null ||
        die "pg_ctl promote failed: see $dir/$newname/postgres.log"
    wait_for 60 "the promoted standby to accept writes" sh -c \
        "psql -X -h 127.0.0.1 -p $new -U postgres -d cdcache -tAc 'SELECT pg_is_in_recovery(), txid_current()' | grep -q '^f|'"
    echo "$newname" > "$dir/pg.primary"
    save_port pg "$new"
    save_port pg_standby "$old"
    say "failover: standby promoted, now the primary on 127.0.0.1:$new ($dir/$newname); the old primary's folder is fenced (rebuilt as a standby by STANDBY=1 up)"
    restart_debezium_clean failover "$new" # its offsets named the old primary's slot
    say "failover done: DATABASE_URL=$(db_url); replicas not restarted (multi-host conninfo, target_session_attrs=read-write)"
}

reset_source() {
    local port
    port=$(saved_port pg)
    keep_env_urls
    stop_debezium
    say "reset-source: Debezium stopped"
    wait_for 30 "slot $SLOT to be released" sh -c \
        "psql -X -h 127.0.0.1 -p $port -U postgres -d cdcache -tAc \"SELECT count(*) FROM pg_replication_slots WHERE slot_name='$SLOT' AND active\" | grep -qx 0"
    if [ "$(pg_q "$port" "SELECT count(*) FROM pg_replication_slots WHERE slot_name='$SLOT'")" = 1 ]; then
        say "reset-source: dropping slot $SLOT (confirmed_flush_lsn $(slot_lsn "$port"))"
        pg_q "$port" "SELECT pg_drop_replication_slot('$SLOT')" >/dev/null
    else
        say "reset-source: no slot $SLOT to drop"
    fi
    restart_debezium_clean reset-source "$port"
    say "reset-source done; replicas not restarted"
}

# ---------------------------------------------------------------- rolling restart
health_served() { # health_served PORT: how many GET /health the replica on PORT has answered
    curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
        awk 'index($0, "cdcache_http_requests_total{route=\"GET /health\"") == 1 { n += $NF } END { print n + 0 }'
}
lb_reaches() { # lb_reaches I PORT: a few GET /health through the public port reach replica I
    local before k
    before=$(health_served "$2")
    for k in 1 2 3 4 5 6 7 8; do curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$(saved_port lb)/health" || true; done
    [ "$(health_served "$2")" -gt "$before" ]
}
rolling_restart() {
    # One replica after the other: supervisord stops it (SIGTERM) and starts it again, and the next one
    # waits until it is ready. A stopping replica drains (src/http.c, http_stop): it leaves the shared
    # public port (LB=kernel; the connections queued on it move to the other replicas,
    # tcp_migrate_req) and refuses new connections on its own port, which nginx (LB=nginx) passes to
    # another replica whatever the method (nothing was sent); it answers on the connections clients or
    # nginx already hold with Connection: close, and exits once they have dropped them (nginx's idle
    # timeout, 4 s, is shorter than the replica's keep-alive timeout). So no request is lost on a
    # connection the replica closes -- not even a POST, which nginx may not pass to another replica
    # once sent.
    local names=() n i port
    for n in $({ svctl avail 2>/dev/null || true; } | awk '$1 ~ /^replica-[0-9]+$/ { print $1 }' | sort -V); do
        names+=("$n")
    done
    [ ${#names[@]} -ge 2 ] || die "a rolling restart needs at least 2 replicas (this stack has ${#names[@]})"
    for n in "${names[@]}"; do
        i=${n#replica-} port=$(saved_port "replica$i")
        say "rolling-restart: replica $i (pid $(sv_pid "$n")): draining and stopping"
        svctl stop "$n" >/dev/null || die "supervisord could not stop $n"
        svctl start "$n" >/dev/null || die "supervisord could not start $n: see $dir/$n/cdcache.log"
        wait_for 60 "replica $i on 127.0.0.1:$port" replica_is_up "$i" "$port"
        wait_for 60 "replica $i to be ready" curl -fsS --max-time 5 "http://127.0.0.1:$port/ready"
        # the next one waits until the public port sends to this one again (nginx: after its
        # fail_timeout; kernel: once the replica has joined the shared port), or two would be out at once
        if [ "$LB" = kernel ] || [ "$(sv_state nginx)" = RUNNING ]; then
            wait_for 30 "the public port to send requests to replica $i again" lb_reaches "$i" "$port"
        fi
        say "rolling-restart: replica $i ready again (pid $(sv_pid "$n"))"
    done
    say "rolling-restart done: ${#names[@]} replicas restarted one after the other"
}

logs() {
    local files=()
    for f in "$dir"/pg/postgres.log "$dir"/pg-standby/postgres.log "$dir"/redis/redis.log "$dir"/debezium/debezium.log \
             "$dir"/replica-*/cdcache.log "$dir"/nginx/logs/error.log "$dir"/nginx/logs/nginx.out "$dir"/supervisord.log; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || { say "no logs in $dir"; return 0; }
    if [ "${FOLLOW:-0}" = 1 ]; then tail -n 20 -F "${files[@]}"; else tail -n "${LINES_PER_LOG:-30}" "${files[@]}"; fi
}

case "$cmd" in
    up) up ;;
    down) down_all; say "stopped ($dir)" ;;
    stop) down ;;
    logs) logs ;;
    failover | reset-source | rolling-restart)
        sv_alive || die "the stack in $dir is not running under supervisord: start it with stack.sh up"
        SV_UP=1
        case "$cmd" in
            failover) failover ;;
            reset-source) reset_source ;;
            *) rolling_restart ;;
        esac
        ;;
    *) usage ;;
esac
