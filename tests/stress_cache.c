/* Concurrency stress for the cache, without a test framework so it runs under ThreadSanitizer
 * (criterion's forking runner does not start under TSan). Readers, fillers, a CDC-like applier and
 * a flusher race on a small key space with a tight byte bound. Every body names its key and
 * version, so a reader that saw freed or torn memory, or a body that does not match its version,
 * fails the run. */
#include "cdcache/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS 512
#define OPS  200000

static struct cache *c;
static atomic_long failures;
static _Atomic int64_t versions[KEYS]; /* the "database": newest version of each key */

static void body_for(int64_t key, int64_t version, char *out, size_t n)
{
    snprintf(out, n, "{\"id\":%lld,\"version\":%lld,\"pad\":\"%0*d\"}", (long long)key,
             (long long)version, (int)(key % 200), 0);
}

static void *reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < OPS; i++) {
        int64_t key = rand_r(&seed) % KEYS;
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        if (cache_lookup(c, key, 0, &v, &lease) == CACHE_HIT) {
            size_t len;
            const char *b = cache_value_body(v, &len);
            char want[512];
            if (!cache_value_negative(v)) {
                body_for(key, cache_value_version(v), want, sizeof(want));
                if (len != strlen(want) || memcmp(b, want, len) != 0)
                    atomic_fetch_add(&failures, 1);
            }
            cache_value_release(v);
        } else if (lease) {
            int64_t ver = atomic_load(&versions[key]);
            char body[512];
            body_for(key, ver, body, sizeof(body));
            if (ver == 0)
                cache_fill(c, key, lease, -1, NULL, 0, NULL);
            else
                cache_fill(c, key, lease, ver, body, strlen(body), NULL);
        }
    }
    return NULL;
}

static void *writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < OPS / 4; i++) {
        int64_t key = rand_r(&seed) % KEYS;
        int r = rand_r(&seed) % 100;
        char body[512];
        if (r < 85) {
            int64_t ver = atomic_fetch_add(&versions[key], 1) + 1;
            body_for(key, ver, body, sizeof(body));
            cache_apply(c, key, ver, body, strlen(body));
        } else if (r < 99) {
            cache_evict(c, key);
        } else {
            cache_flush(c);
        }
    }
    return NULL;
}

int main(void)
{
    struct cache_options o = {48 * 1024, 8, true, 50};
    pthread_t t[6];
    struct cache_stats st;

    c = cache_create(&o);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)(i + 1));
    for (int i = 4; i < 6; i++)
        pthread_create(&t[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    cache_stats(c, &st);
    cache_destroy(c);
    if (st.bytes > st.max_bytes || atomic_load(&failures)) {
        fprintf(stderr, "stress: %ld bad reads, %llu bytes of %llu\n", atomic_load(&failures),
                (unsigned long long)st.bytes, (unsigned long long)st.max_bytes);
        return 1;
    }
    printf("stress: ok (%llu hits, %llu fills, %llu evictions, %llu rejected as void)\n",
           (unsigned long long)st.hits, (unsigned long long)st.fills,
           (unsigned long long)st.evictions,
           (unsigned long long)st.rejected[CACHE_REJECT_LEASE_VOID]);
    return 0;
}
