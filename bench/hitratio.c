/* Hit-ratio simulator: replays traces through the real cache (src/cache.c), unsharded and sharded.
 *
 *   hitratio write-traces DIR
 *       writes the synthetic traces (zipf0.8, zipf0.99, zipf1.2, scan, shift; 100k keys, 2M
 *       requests each) to DIR/<name>.oracleGeneral, in libCacheSim's oracleGeneral binary format
 *       (24-byte packed records: u32 time, u64 object id, u32 size, i64 next access), so that
 *       bench/hitratio.py replays the very same requests through libcachesim's reference policies.
 *   hitratio replay FILE SHARDS CAP [CAP...]
 *       replays an oracleGeneral FILE through the real cache with SHARDS shards and room for CAP
 *       entries (the bound is CAP entries' cost); prints "CAP HIT_RATIO SHARDS_USED" per size
 *       (the cache gives each shard at least CACHE_MIN_SHARD_BYTES, so a small bound has fewer).
 *   hitratio
 *       the legacy report that bench/run.py parses today ("trace size_pct policy hit_ratio", with
 *       our cache under the names sieve and sieve-64shards, whatever its policy, and this file's
 * own LRU and S3-FIFO). bench/hitratio.py, with libcachesim's references, supersedes it; it goes
 *       once run.py calls hitratio.py. */
#include "cdcache/cache.h"
#include "cdcache/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 100000
#define NREQ  2000000
#define BODY  16

static uint64_t rng = 88172645463325252ULL;
static double unif(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double *zipf_cdf(double alpha)
{
    double *cdf = xmalloc(NKEYS * sizeof(*cdf)), sum = 0;
    for (int i = 0; i < NKEYS; i++)
        sum += 1.0 / pow(i + 1, alpha);
    for (int i = 0; i < NKEYS; i++)
        cdf[i] = (i == 0 ? 0 : cdf[i - 1]) + 1.0 / pow(i + 1, alpha) / sum;
    return cdf;
}

static int zipf(const double *cdf)
{
    double u = unif();
    int lo = 0, hi = NKEYS - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Traces: keys are 1-based; rank r of a Zipf draw maps to a scattered key so hot keys spread out.
 */
static int64_t *make_trace(const char *kind, int64_t *maxkey)
{
    int64_t *t = xmalloc(NREQ * sizeof(*t));
    double alpha = strcmp(kind, "zipf0.8") == 0 ? 0.8 : strcmp(kind, "zipf1.2") == 0 ? 1.2 : 0.99;
    double *cdf = zipf_cdf(alpha);
    int64_t next_scan = NKEYS + 1;
    long i = 0;

    while (i < NREQ) {
        if (strcmp(kind, "scan") == 0 && i > 0 && i % 20000 == 0) {
            for (int k = 0; k < 5000 && i < NREQ; k++)
                t[i++] = next_scan++; /* a one-time scan of keys never seen again */
            continue;
        }
        {
            int64_t r = zipf(cdf);
            if (strcmp(kind, "shift") == 0)
                r = (r + (i / 250000) * (NKEYS / 10)) % NKEYS; /* the hot set moves */
            t[i++] = (r * 7919) % NKEYS + 1;
        }
    }
    free(cdf);
    *maxkey = next_scan;
    return t;
}

/* --- LRU reference --- */
static double lru(const int64_t *t, int64_t maxkey, long cap)
{
    int32_t *prev = xcalloc((size_t)maxkey + 1, 4), *next = xcalloc((size_t)maxkey + 1, 4);
    char *in = xcalloc((size_t)maxkey + 1, 1);
    int32_t head = 0, tail = 0; /* 0 = none */
    long size = 0, hits = 0;

    for (long i = 0; i < NREQ; i++) {
        int32_t k = (int32_t)t[i];
        if (in[k]) {
            hits++;
            if (head == k)
                continue;
            next[prev[k]] = next[k]; /* unlink (k is not head, so prev[k] != 0) */
            if (next[k])
                prev[next[k]] = prev[k];
            else
                tail = prev[k];
        } else {
            if (size == cap) {
                int32_t v = tail;
                tail = prev[v];
                if (tail)
                    next[tail] = 0;
                else
                    head = 0;
                in[v] = 0;
                size--;
            }
            in[k] = 1;
            size++;
        }
        prev[k] = 0;
        next[k] = head;
        if (head)
            prev[head] = k;
        head = k;
        if (!tail)
            tail = k;
    }
    free(prev);
    free(next);
    free(in);
    return (double)hits / NREQ;
}

/* --- S3-FIFO reference (Yang et al., SOSP '23): small FIFO (10%), main FIFO, ghost FIFO --- */
struct fifo {
    int32_t *q;
    long cap, head, len;
};
static void f_push(struct fifo *f, int32_t k)
{
    f->q[(f->head + f->len++) % f->cap] = k;
}
static int32_t f_pop(struct fifo *f)
{
    int32_t k = f->q[f->head];
    f->head = (f->head + 1) % f->cap;
    f->len--;
    return k;
}

/* Inserts k at the head of main, first evicting from its tail (a second chance for entries with a
 * frequency left, which spend one). */
static void main_insert(struct fifo *m, char *where, char *freq, int32_t k)
{
    while (m->len == m->cap) {
        int32_t v = f_pop(m);
        if (freq[v] > 0) {
            freq[v]--;
            f_push(m, v);
        } else {
            where[v] = 0;
        }
    }
    where[k] = 2;
    freq[k] = 0;
    f_push(m, k);
}

static double s3fifo(const int64_t *t, int64_t maxkey, long cap)
{
    long scap = cap / 10 > 0 ? cap / 10 : 1, mcap = cap - scap > 0 ? cap - scap : 1;
    struct fifo s = {xmalloc((size_t)scap * 4), scap, 0, 0},
                m = {xmalloc((size_t)mcap * 4), mcap, 0, 0};
    struct fifo g = {xmalloc((size_t)mcap * 4), mcap, 0, 0};
    char *where = xcalloc((size_t)maxkey + 1, 1); /* 0 none, 1 small, 2 main, 3 ghost */
    char *freq = xcalloc((size_t)maxkey + 1, 1);
    long hits = 0;

    for (long i = 0; i < NREQ; i++) {
        int32_t k = (int32_t)t[i];
        if (where[k] == 1 || where[k] == 2) {
            hits++;
            if (freq[k] < 3)
                freq[k]++;
            continue;
        }
        if (where[k] == 3) { /* seen recently: straight to main */
            main_insert(&m, where, freq, k);
            continue;
        }
        while (s.len == scap) {
            int32_t v = f_pop(&s);
            if (freq[v] > 0) { /* accessed while small: promote */
                main_insert(&m, where, freq, v);
            } else {
                if (g.len == mcap) {
                    int32_t old = f_pop(&g);
                    if (where[old] == 3)
                        where[old] = 0;
                }
                where[v] = 3;
                f_push(&g, v);
            }
        }
        where[k] = 1;
        freq[k] = 0;
        f_push(&s, k);
    }
    free(s.q);
    free(m.q);
    free(g.q);
    free(where);
    free(freq);
    return (double)hits / NREQ;
}

/* --- the real cache --- */
/* The hit ratio; *used (when not NULL) is the shards the cache really had (cache_shards()). */
static double ours(const int64_t *t, long n, long cap, unsigned shards, unsigned *used)
{
    /* keys as the service has them: the decimal text of the id, 8 bytes at most (inline) */
    struct cache_options o = {.max_bytes = (size_t)cap * cache_entry_cost(8, BODY),
                              .shards = shards,
                              .resources = 1,
                              .negative_entries = false,
                              .fill_wait_ms = 1000};
    struct cache *c = cache_create(&o);
    long hits = 0;
    for (long i = 0; i < n; i++) {
        struct cache_value *v;
        uint64_t lease;
        char kb[24];
        int kl = snprintf(kb, sizeof(kb), "%lld", (long long)t[i]);
        struct cache_key key = {0, (uint32_t)kl, kb};
        if (cache_lookup(c, key, 0, &v, &lease) == CACHE_HIT) {
            hits++;
            cache_value_release(v);
        } else {
            cache_fill(c, key, lease, 1, "0123456789abcdef", BODY, NULL);
        }
    }
    if (used)
        *used = cache_shards(c);
    cache_destroy(c);
    return n ? (double)hits / n : 0;
}

/* libCacheSim's oracleGeneral record. */
struct __attribute__((packed)) og_rec {
    uint32_t time;
    uint64_t id;
    uint32_t size;
    int64_t next;
};
_Static_assert(sizeof(struct og_rec) == 24, "oracleGeneral records are 24 bytes");

static int write_traces(const char *dir)
{
    static const char *const traces[] = {"zipf0.8", "zipf0.99", "zipf1.2", "scan", "shift"};
    struct og_rec *recs = xmalloc(NREQ * sizeof(*recs));

    for (size_t ti = 0; ti < sizeof(traces) / sizeof(traces[0]); ti++) {
        char path[4096];
        int64_t maxkey;
        int64_t *t = make_trace(traces[ti], &maxkey);
        FILE *f;
        int n = snprintf(path, sizeof(path), "%s/%s.oracleGeneral", dir, traces[ti]);

        if (n < 0 || (size_t)n >= sizeof(path)) {
            fprintf(stderr, "hitratio: path too long\n");
            return 1;
        }
        for (long i = 0; i < NREQ; i++)
            recs[i] = (struct og_rec){(uint32_t)i, (uint64_t)t[i], 1, -1};
        free(t);
        f = fopen(path, "wb");
        if (!f || fwrite(recs, sizeof(*recs), NREQ, f) != NREQ || fclose(f) != 0) {
            fprintf(stderr, "hitratio: %s: %s\n", path, strerror(errno));
            return 1;
        }
        printf("%s\n", path);
    }
    free(recs);
    return 0;
}

/* Reads an oracleGeneral file's object ids (at most 2^26 requests: 1.6 GB of records). */
static int64_t *read_trace(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    long cap = 1 << 20, len = 0;
    int64_t *t;
    struct og_rec r;

    if (!f) {
        fprintf(stderr, "hitratio: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    t = xmalloc((size_t)cap * sizeof(*t));
    while (len < (1L << 26) && fread(&r, sizeof(r), 1, f) == 1) {
        if (len == cap) {
            int64_t *g = xmalloc((size_t)cap * 2 * sizeof(*g));
            memcpy(g, t, (size_t)len * sizeof(*t));
            free(t);
            t = g;
            cap *= 2;
        }
        t[len++] = (int64_t)(r.id & INT64_MAX);
    }
    fclose(f);
    *n = len;
    return t;
}

static int replay(int argc, char **argv)
{
    long n;
    char *end;
    unsigned long shards = strtoul(argv[3], &end, 10);
    int64_t *t;

    if (*end || shards == 0 || shards > 4096) {
        fprintf(stderr, "hitratio: bad shard count %s\n", argv[3]);
        return 2;
    }
    t = read_trace(argv[2], &n);
    if (!t)
        return 1;
    for (int i = 4; i < argc; i++) {
        long cap = strtol(argv[i], &end, 10);
        if (*end || cap <= 0) {
            fprintf(stderr, "hitratio: bad size %s\n", argv[i]);
            free(t);
            return 2;
        }
        unsigned used;
        double hr = ours(t, n, cap, (unsigned)shards, &used);
        printf("%ld %.6f %u\n", cap, hr, used);
        fflush(stdout);
    }
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const traces[] = {"zipf0.8", "zipf0.99", "zipf1.2", "scan", "shift"};
    static const double sizes[] = {0.001, 0.01, 0.1};

    if (argc == 3 && strcmp(argv[1], "write-traces") == 0)
        return write_traces(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "replay") == 0)
        return replay(argc, argv);
    if (argc != 1) {
        fprintf(stderr, "usage: hitratio [write-traces DIR | replay FILE SHARDS CAP...]\n");
        return 2;
    }

    for (size_t ti = 0; ti < sizeof(traces) / sizeof(traces[0]); ti++) {
        int64_t maxkey;
        int64_t *t = make_trace(traces[ti], &maxkey);
        for (size_t si = 0; si < 3; si++) {
            long cap = (long)(NKEYS * sizes[si]);
            printf("%s %.1f sieve %.4f\n", traces[ti], sizes[si] * 100,
                   ours(t, NREQ, cap, 1, NULL));
            printf("%s %.1f sieve-64shards %.4f\n", traces[ti], sizes[si] * 100,
                   ours(t, NREQ, cap, 64, NULL));
            printf("%s %.1f lru %.4f\n", traces[ti], sizes[si] * 100, lru(t, maxkey, cap));
            printf("%s %.1f s3fifo %.4f\n", traces[ti], sizes[si] * 100, s3fifo(t, maxkey, cap));
            fflush(stdout);
        }
        free(t);
    }
    return 0;
}
