/* Decode microbenchmark: time per entry to decode and render recorded Debezium entries
 * (tests/fixtures/items-events.jsonl) with dbz_decode(), one thread, no I/O. Prints "key value"
 * lines that bench/run.py puts in the report next to the consumer's apply rate. */
#include "cdcache/debezium.h"
#include "cdcache/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 256

struct entry {
    struct dbz_field f[4];
    size_t n;
    char op[12];
};

/* Loads the recorded entries (one JSON object per line with a "fields" array). The fixture is
 * trusted test data, so a malformed line simply ends the load. */
static size_t load(const char *path, struct entry *out)
{
    FILE *fp = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, n = 0;

    if (!fp) {
        perror(path);
        exit(2);
    }
    while (n < MAX_ENTRIES && getline(&line, &cap, fp) > 0) {
        cJSON *j = cJSON_Parse(line);
        cJSON *fields = cJSON_GetObjectItem(j, "fields");
        int nf = cJSON_GetArraySize(fields);
        struct entry *e = &out[n];

        if (!j || nf < 2)
            break;
        e->n = 0;
        for (int i = 0; i + 1 < nf && e->n < 4; i += 2, e->n++) {
            const char *k = cJSON_GetArrayItem(fields, i)->valuestring;
            const char *v = cJSON_GetArrayItem(fields, i + 1)->valuestring;
            e->f[e->n] = (struct dbz_field){xstrdup(k), strlen(k), xstrdup(v), strlen(v)};
        }
        cJSON_Delete(j);
        n++;
    }
    free(line);
    fclose(fp);
    return n;
}

/* Decodes entry e `iters` times; returns ns per decode. */
static double time_decode(const struct entry *e, long iters)
{
    char err[160];
    int64_t t0 = now_mono_ns();
    long ok = 0;

    for (long i = 0; i < iters; i++) {
        struct dbz_event ev;
        if (dbz_decode(e->f, e->n, &ev, err, sizeof(err)) == 0)
            ok += (long)ev.body.len;
        dbz_event_clear(&ev);
    }
    if (ok < 0)
        puts("impossible");
    return (double)(now_mono_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
    static struct entry entries[MAX_ENTRIES];
    long iters = argc > 2 ? atol(argv[2]) : 200000;
    size_t n;
    double total = 0;
    char err[160];

    if (argc < 2) {
        fprintf(stderr, "usage: %s items-events.jsonl [iterations [update-only]]\n", argv[0]);
        return 2;
    }
    n = load(argv[1], entries);
    for (size_t i = 0; i < n; i++) {
        struct dbz_event ev;
        int rc = dbz_decode(entries[i].f, entries[i].n, &ev, err, sizeof(err));
        snprintf(entries[i].op, sizeof(entries[i].op), "%s", rc ? "poison" : dbz_op_name(ev.op));
        dbz_event_clear(&ev);
    }
    /* The update envelope is what the apply benchmark writes; report it on its own. */
    for (size_t i = 0; i < n; i++)
        if (strcmp(entries[i].op, "u") == 0) {
            double ns = time_decode(&entries[i], iters);
            printf("decode_update_ns %.1f\n", ns);
            printf("decode_update_value_bytes %zu\n", entries[i].f[entries[i].n - 1].value_len);
            break;
        }
    if (argc > 3 && strcmp(argv[3], "update-only") == 0) /* for profiling the common case */
        return 0;
    for (size_t i = 0; i < n; i++)
        total += time_decode(&entries[i], iters / (long)n + 1);
    printf("decode_mix_ns %.1f\n", total / (double)n);
    printf("decode_mix_entries %zu\n", n);
    return 0;
}
