/* Decode microbenchmark: time per entry to decode and render recorded Debezium entries
 * (tests/fixtures/items-events.jsonl, loaded by the tests' own loader) with dbz_decode(), one
 * thread, no I/O. Prints "key value" lines that bench/run.py puts in the report next to the
 * consumer's apply rate. usage: decode_bench [iterations [update-only]] */
#include "cdcache/debezium.h"
#include "cdcache/util.h"
#include "fixtures.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct resource *items;

/* Decodes entry e `iters` times; returns ns per decode. */
static double time_decode(const struct fixture_entry *e, long iters)
{
    char err[160];
    int64_t t0 = now_mono_ns();
    long ok = 0;

    for (long i = 0; i < iters; i++) {
        struct dbz_event ev;
        if (dbz_decode(items, e->fields, e->nfields, &ev, err, sizeof(err)) == 0)
            ok += (long)ev.body.len;
        dbz_event_clear(&ev);
    }
    if (ok < 0)
        puts("impossible");
    return (double)(now_mono_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    size_t n, update = SIZE_MAX;
    struct fixture_entry *entries = fixtures_load_events("items-events.jsonl", &n);
    double total = 0;
    char err[160];

    items = fixtures_items_resource(0);
    if (iters <= 0) {
        fprintf(stderr, "usage: %s [iterations [update-only]]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < n && update == SIZE_MAX; i++) {
        struct dbz_event ev;
        if (dbz_decode(items, entries[i].fields, entries[i].nfields, &ev, err, sizeof(err)) == 0 &&
            ev.op == DBZ_OP_UPDATE)
            update = i;
        dbz_event_clear(&ev);
    }
    /* The update envelope is what the apply benchmark writes; report it on its own. */
    if (update != SIZE_MAX) {
        const struct fixture_entry *e = &entries[update];
        printf("decode_update_ns %.1f\n", time_decode(e, iters));
        printf("decode_update_value_bytes %zu\n", e->fields[e->nfields - 1].value_len);
    }
    if (argc > 2 && strcmp(argv[2], "update-only") == 0) /* for profiling the common case */
        return 0;
    for (size_t i = 0; i < n; i++)
        total += time_decode(&entries[i], iters / (long)n + 1);
    printf("decode_mix_ns %.1f\n", total / (double)n);
    printf("decode_mix_entries %zu\n", n);
    fixtures_free(entries, n);
    fixtures_resource_free(items);
    return 0;
}
