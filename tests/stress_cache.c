/* Concurrency stress for the cache, without a test framework so it runs under ThreadSanitizer
 * (criterion's forking runner does not start under TSan). Readers, fillers, a CDC-like applier and
 * flushers race on a small key space of three resources with a tight byte bound: resource 0 has
 * decimal ids ("42"), resource 1 uuids (36 bytes), resource 2 text keys of 9 to 140 bytes with
 * embedded NULs. Every body names its resource, key and version, so a reader that saw freed or
 * torn memory, another key's body, or a body that does not match its version, fails the run.
 *
 * Flushes are checked too. A flusher raises started[r], flushes, then raises done[r]. A filler
 * stamps its body with started[r] read after it took its lease. A reader that read done[r] = d
 * before its lookup and is served a body stamped below d was served an entry that a flush which
 * ended before the lookup began should have killed: the stamp was read before that flush began,
 * so the lease was taken before it. */
#include "cdcache/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RES  3
#define KEYS 256
#define OPS  200000

static struct cache *c;
static atomic_long failures, stale_after_flush;
static atomic_bool readers_done;
static _Atomic int64_t versions[RES][KEYS]; /* the "database": newest version of each key */
static _Atomic uint64_t started[RES], done[RES];

/* Key n of resource res, written into buf (at least 160 bytes); returns it. */
static struct cache_key key_of(unsigned res, int n, char *buf)
{
    int len;
    if (res == 0) {
        len = snprintf(buf, 160, "%d", n);
    } else if (res == 1) {
        len = snprintf(buf, 160, "0000%04x-aaaa-4bbb-8ccc-%012d", (unsigned)n * 2654435761u % 65536,
                       n);
    } else {
        len = 9 + n % 132;
        memset(buf, '~', (size_t)len);
        snprintf(buf, 16, "t%d", n);    /* its NUL stays inside the key */
        buf[len - 1] = (char)(n % 251); /* and so may another NUL, or a high byte */
    }
    return (struct cache_key){res, (uint32_t)len, buf};
}

/* "r|key-as-hex|version|era(20 digits)|pad" */
static size_t body_for(struct cache_key k, int64_t version, uint64_t era, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "%u|", k.res);
    for (uint32_t i = 0; i < k.len && o + 3 < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%02x", (unsigned char)k.p[i]);
    o += (size_t)snprintf(out + o, n - o, "|%lld|%020llu|%0*d", (long long)version,
                          (unsigned long long)era, (int)(k.len % 100), 0);
    return o < n ? o : n - 1;
}

static void *reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char kbuf[160], want[1024], body[1024];
    for (int i = 0; i < OPS; i++) {
        unsigned res = (unsigned)rand_r(&seed) % RES;
        int n = rand_r(&seed) % KEYS;
        struct cache_key k = key_of(res, n, kbuf);
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        uint64_t d = atomic_load(&done[res]);
        if (cache_lookup(c, k, 0, &v, &lease) == CACHE_HIT) {
            size_t len, wl;
            const char *b = cache_value_body(v, &len);
            if (!cache_value_negative(v)) {
                /* the era is the 20 digits before the last '|' */
                uint64_t era = 0;
                const char *bar = memrchr(b, '|', len);
                if (!bar || bar - b < 20) {
                    atomic_fetch_add(&failures, 1);
                } else {
                    for (const char *q = bar - 20; q < bar; q++)
                        era = era * 10 + (uint64_t)(*q - '0');
                    wl = body_for(k, cache_value_version(v), era, want, sizeof(want));
                    if (len != wl || memcmp(b, want, len) != 0)
                        atomic_fetch_add(&failures, 1);
                    else if (era < d)
                        atomic_fetch_add(&stale_after_flush, 1);
                }
            }
            cache_value_release(v);
        } else if (lease) {
            int64_t ver = atomic_load(&versions[res][n]);
            uint64_t era = atomic_load(&started[res]);
            size_t bl = body_for(k, ver, era, body, sizeof(body));
            if (ver == 0)
                cache_fill(c, k, lease, -1, NULL, 0, NULL);
            else
                cache_fill(c, k, lease, ver, body, bl, NULL);
        }
    }
    return NULL;
}

static void flush_all(void)
{
    for (unsigned r = 0; r < RES; r++)
        atomic_fetch_add(&started[r], 1);
    cache_flush(c);
    for (unsigned r = 0; r < RES; r++)
        atomic_fetch_add(&done[r], 1);
}

static void *writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char kbuf[160], body[1024];
    for (int i = 0; i < OPS / 4; i++) {
        unsigned res = (unsigned)rand_r(&seed) % RES;
        int n = rand_r(&seed) % KEYS;
        int r = rand_r(&seed) % 1000;
        struct cache_key k = key_of(res, n, kbuf);
        if (r < 850) {
            int64_t ver = atomic_fetch_add(&versions[res][n], 1) + 1;
            size_t bl = body_for(k, ver, atomic_load(&started[res]), body, sizeof(body));
            cache_apply(c, k, ver, body, bl);
        } else if (r < 998) {
            cache_evict(c, k);
        } else {
            flush_all();
        }
    }
    return NULL;
}

/* Flushes one resource at a time, every few hundred microseconds, until the readers are done. */
static void *flusher(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&readers_done)) {
        unsigned res = (unsigned)rand_r(&seed) % RES;
        atomic_fetch_add(&started[res], 1);
        cache_flush_resource(c, res);
        atomic_fetch_add(&done[res], 1);
        usleep(2000 + (unsigned)rand_r(&seed) % 3000);
    }
    return NULL;
}

int main(void)
{
    struct cache_options o = {.max_bytes = 96 * 1024,
                              .shards = 8,
                              .resources = RES,
                              .negative_entries = true,
                              .fill_wait_ms = 50,
                              /* 8 shards of 12 KiB: a tight bound, yet several locks */
                              .min_shard_bytes = 8 * 1024};
    pthread_t t[8];
    struct cache_stats st, rs;
    uint64_t res_bytes = 0;

    c = cache_create(&o);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)(i + 1));
    for (int i = 4; i < 6; i++)
        pthread_create(&t[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    pthread_create(&t[6], NULL, flusher, (void *)(uintptr_t)7);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    atomic_store(&readers_done, true);
    pthread_join(t[6], NULL);
    cache_stats(c, &st);
    for (unsigned r = 0; r < RES; r++) {
        cache_stats_resource(c, r, &rs);
        res_bytes += rs.bytes;
    }
    cache_destroy(c);
    if (st.bytes > st.max_bytes || res_bytes > st.bytes || atomic_load(&failures) ||
        atomic_load(&stale_after_flush)) {
        fprintf(stderr,
                "stress: %ld bad reads, %ld served after their flush, %llu bytes of %llu "
                "(resources' %llu)\n",
                atomic_load(&failures), atomic_load(&stale_after_flush),
                (unsigned long long)st.bytes, (unsigned long long)st.max_bytes,
                (unsigned long long)res_bytes);
        return 1;
    }
    printf(
        "stress: ok (%llu hits, %llu fills, %llu evictions, %llu rejected as void, %llu resource "
        "flushes)\n",
        (unsigned long long)st.hits, (unsigned long long)st.fills, (unsigned long long)st.evictions,
        (unsigned long long)st.rejected[CACHE_REJECT_LEASE_VOID],
        (unsigned long long)(atomic_load(&done[0]) + atomic_load(&done[1]) +
                             atomic_load(&done[2])));
    return 0;
}
