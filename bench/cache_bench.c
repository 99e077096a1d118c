/* Cache microbenchmark: get/put throughput with 1 and 2 threads (hits and misses), for items-like
 * decimal keys ("12345", inline in the entry) and for uuid keys (36 bytes, stored out of line),
 * memory overhead per entry, and RSS under a fill-heavy run against the configured bound. Prints
 * "key value" lines that bench/run.sh turns into the report. Keys are rendered before the timed
 * loops (decimal ids for misses with a few divisions), so the figures are the cache's. */
#include "cdcache/cache.h"
#include "cdcache/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY 200
#define KEYS 100000

static struct cache *c;
static char body[BODY + 1];
static long ops_per_thread = 5000000;

/* The keys of the timed loops, rendered once: decimal ids 1..KEYS (resource 0) and uuids
 * (resource 1). */
static char dec_keys[KEYS + 1][8];
static uint8_t dec_len[KEYS + 1];
static char uuid_keys[KEYS + 1][36];
static bool use_uuid;

/* n in decimal into out (at least 20 bytes); returns the length. */
static uint32_t u64_dec(uint64_t n, char *out)
{
    char tmp[20];
    uint32_t len = 0, i;
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (i = 0; i < len; i++)
        out[i] = tmp[len - 1 - i];
    return len;
}

static void uuid_of(uint64_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = n * 0x9E3779B97F4A7C15ULL, y = ~n * 0xC2B2AE3D27D4EB4FULL;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        out[i] = hex[(i < 18 ? x >> (4 * (i % 16)) : y >> (4 * (i % 16))) & 15];
    }
}

static struct cache_key key_n(uint64_t n)
{
    if (use_uuid)
        return (struct cache_key){1, 36, uuid_keys[n]};
    return (struct cache_key){0, dec_len[n], dec_keys[n]};
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static long hit_keys = KEYS; /* hits over all keys, or over a hot set that fits in the CPU caches */

static void *hits(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    long n = 0;
    for (long i = 0; i < ops_per_thread; i++) {
        struct cache_value *v;
        uint64_t lease;
        if (cache_lookup(c, key_n(xorshift(&seed) % (uint64_t)hit_keys + 1), 0, &v, &lease) ==
            CACHE_HIT) {
            size_t len;
            n += (long)cache_value_body(v, &len)[0];
            cache_value_release(v);
        }
    }
    return (void *)n;
}

static void *misses(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 7;
    for (long i = 0; i < ops_per_thread; i++) {
        struct cache_value *v;
        uint64_t lease;
        char kb[20];
        /* ids of at most 8 digits, inline like items' (a 9-digit one is stored out of line) */
        struct cache_key key = {0, u64_dec(xorshift(&seed) % 90000000 + KEYS + 10, kb), kb};
        if (cache_lookup(c, key, 0, &v, &lease) == CACHE_MISS)
            cache_fill_abort(c, key, lease);
        else
            cache_value_release(v);
    }
    return NULL;
}

static void *puts_(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 3;
    for (long i = 0; i < ops_per_thread / 4; i++) {
        char kb[20];
        struct cache_key key = {0, u64_dec(xorshift(&seed) % (KEYS * 4) + 1, kb), kb};
        cache_fill(c, key, cache_lease(c, key), i + 1, body, BODY, NULL);
    }
    return NULL;
}

static double run(void *(*fn)(void *), int threads, long ops)
{
    pthread_t t[8];
    int64_t t0 = now_mono_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (double)ops * threads / ((double)(now_mono_ns() - t0) / 1e9);
}

static long rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static struct cache *mk(size_t bytes, unsigned shards)
{
    struct cache_options o = {.max_bytes = bytes,
                              .shards = shards,
                              .resources = 2,
                              .negative_entries = true,
                              .fill_wait_ms = 1000};
    return cache_create(&o);
}

/* Bytes of RSS per entry beyond key and body, measured in a fresh process: 1M entries of BODY
 * bytes, or ("mixed") of sizes spread evenly over 100..499 bytes, where malloc's rounding to 16
 * averages out instead of landing wherever one fixed size puts it. */
static int overhead(bool mixed)
{
    static char big[500];
    long base = rss_kb();
    double bodies = 0, charged = 0;
    const int64_t n = 1000000;

    memset(big, 'x', sizeof(big));
    c = mk(1u << 30, 64);
    for (int64_t k = 1; k <= n; k++) {
        size_t len = mixed ? 100 + (size_t)(k % 400) : BODY;
        char kb[20];
        struct cache_key key = {0, u64_dec((uint64_t)k, kb), kb};
        cache_fill(c, key, cache_lease(c, key), 1, big, len, NULL);
        bodies += (double)len;
        charged += (double)cache_entry_cost(key.len, len) - (double)len - (double)sizeof(int64_t);
    }
    printf("entry_overhead_charged%s %.1f\n", mixed ? "_mixed" : "", charged / (double)n);
    printf("entry_overhead_rss%s %.1f\n", mixed ? "_mixed" : "",
           ((double)(rss_kb() - base) * 1024 - bodies) / (double)n - (double)sizeof(int64_t));
    return 0;
}

/* A fill-heavy run in a fresh process: 10x the bound in distinct keys; RSS must stay within the
 * bound + 10%. */
static int fill_heavy(void)
{
    size_t cap = 64u << 20;
    long base = rss_kb(), peak = 0;
    c = mk(cap, 64);
    for (int64_t k = 1; k <= (int64_t)(10 * cap / cache_entry_cost(7, BODY)); k++) {
        char kb[20];
        struct cache_key key = {0, u64_dec((uint64_t)k, kb), kb};
        cache_fill(c, key, cache_lease(c, key), 1, body, BODY, NULL);
        if (k % 16384 == 0 && rss_kb() - base > peak)
            peak = rss_kb() - base;
    }
    printf("rss_cap_bytes %zu\nrss_peak_bytes %ld\nrss_ratio %.3f\n", cap, peak * 1024,
           (double)peak * 1024 / (double)cap);
    return 0;
}

int main(int argc, char **argv)
{
    memset(body, 'x', BODY);
    if (argc > 1 && strcmp(argv[1], "overhead") == 0)
        return overhead(false);
    if (argc > 1 && strcmp(argv[1], "overhead-mixed") == 0)
        return overhead(true);
    if (argc > 1 && strcmp(argv[1], "rss") == 0)
        return fill_heavy();
    if (argc > 1)
        ops_per_thread = strtol(argv[1], NULL, 10);
    for (uint64_t k = 1; k <= KEYS; k++) {
        dec_len[k] = (uint8_t)u64_dec(k, dec_keys[k]);
        uuid_of(k, uuid_keys[k]);
    }
    /* uuid keys first, in a cache of their own, so that the decimal figures below are measured
     * on the same cache as before keys were text */
    c = mk(1u << 30, 64);
    use_uuid = true;
    for (uint64_t k = 1; k <= KEYS; k++)
        cache_fill(c, key_n(k), cache_lease(c, key_n(k)), 1, body, BODY, NULL);
    hit_keys = 1000;
    printf("hits_uuid_hot_1t %.0f\n", run(hits, 1, ops_per_thread));
    printf("hits_uuid_hot_2t %.0f\n", run(hits, 2, ops_per_thread));
    hit_keys = KEYS;
    printf("hits_uuid_1t %.0f\n", run(hits, 1, ops_per_thread));
    printf("hits_uuid_2t %.0f\n", run(hits, 2, ops_per_thread));
    cache_destroy(c);
    c = mk(1u << 30, 64);
    use_uuid = false;
    for (uint64_t k = 1; k <= KEYS; k++)
        cache_fill(c, key_n(k), cache_lease(c, key_n(k)), 1, body, BODY, NULL);
    use_uuid = false;
    hit_keys = 1000;
    printf("hits_hot_1t %.0f\n", run(hits, 1, ops_per_thread));
    printf("hits_hot_2t %.0f\n", run(hits, 2, ops_per_thread));
    hit_keys = KEYS;
    printf("hits_1t %.0f\n", run(hits, 1, ops_per_thread));
    printf("hits_2t %.0f\n", run(hits, 2, ops_per_thread));
    printf("misses_1t %.0f\n", run(misses, 1, ops_per_thread));
    printf("misses_2t %.0f\n", run(misses, 2, ops_per_thread));
    printf("puts_1t %.0f\n", run(puts_, 1, ops_per_thread / 4));
    printf("puts_2t %.0f\n", run(puts_, 2, ops_per_thread / 4));
    cache_destroy(c);
    return 0;
}
