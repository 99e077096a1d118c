/* The row cache, keyed by (resource, key bytes).
 *
 * Layout: N shards (a power of two), picked by the key's hash. Each shard has one mutex that
 * guards its hash table, its eviction queues and ghost, its byte count and its counters (those per
 * resource included). A hit holds the lock only to find the node, take a reference on the value,
 * bump its read count and one counter; the body is copied to the socket after the lock is dropped.
 * Each shard evicts on its own within its share of the bound, so cache_create() gives every shard
 * at least min_shard_bytes (64 KiB by default) and uses fewer shards for a small bound: 64 shards
 * of a 100-entry bound held one entry or none each and lost half the hits (bench/hitratio).
 *
 * One allocation per entry (struct cache_value): its links, guarded by the shard lock while it is
 * in the shard, and its response (key, version, body), immutable once created. Entries are
 * refcounted: the shard holds one reference while the entry is linked, each reader one more. A
 * refresh links a new entry in the old one's place and drops the shard's reference to the old one,
 * so a worker still writing an old body keeps it alive until it calls cache_value_release().
 *
 * The entry header is 56 bytes (48 before keys had a resource and bytes):
 *   hnext, newer, older     24  links: hash chain, queue (shard lock)
 *   kw                       8  a key of at most 8 bytes, inline (key_word()); a longer key's
 *                               64-bit hash, its bytes then sit at the start of body[]
 *   version:40 | len:24      8  immutable
 *   refs | lease:28,freq:2,  8  refs atomic; the lease, the read count, the queue (main or
 *          main:1,pending:1     small) and the pending flag under the shard lock
 *   rk | gen                 8  res << 16 | key length, and the resource generation (immutable)
 * then body[]: [key bytes when longer than 8] [response]. A lookup of a short key compares kw and
 * rk (two words) and never touches body[]; a long key compares its hash first, then memcmp().
 * cache_entry_cost() charges the malloc chunk (header, out-of-line key and response), a bucket
 * pointer and a 16-bit ghost slot, so that RSS stays within cache.max_bytes; the hash chains run at
 * load factor 2 and the ghost has one slot per bucket.
 *
 * Per-resource flush in O(1): each resource has a generation (c->gen, atomic). An entry carries
 * the generation it (or the lease it was filled under) was created in; when its resource's
 * generation has moved on it is dead: never served, unlinked when a lookup, a fill or an event
 * meets it, and evicted before any live entry: after a flush each shard's sweep cursor walks its
 * small queue, then its main queue, once from the tail, unlinking dead entries, as far as room is
 * needed (and a few nodes per insert without pressure, so a flushed resource's memory comes back
 * even in a cache that is not full); eviction also drops any it meets, whatever its lease. A dead
 * pending node takes its lease with it, so a fill under a lease taken before the flush is rejected
 * (LEASE_VOID). Generations are 32-bit: an entry would have to survive 2^32 flushes of its
 * resource, unmet by any lookup and by eviction, to look alive again.
 * Each shard counts entries and bytes per resource for one generation (struct res_shard.gen);
 * counts of older generations move to the shard's dead_* counters when the shard next syncs that
 * resource (res_sync_locked(), before anything links an entry, and when stats are read), so the
 * per-resource figures drop to 0 at once after a flush while the totals (and the byte bound) keep
 * counting dead entries until they are unlinked. cache_flush() (a continuity break, rare) stays
 * eager: it unlinks every entry under each shard's lock in turn, so the memory comes back at once.
 *
 * Eviction is S3-FIFO (Yang et al., SOSP '23) with an adaptive main queue. Per shard: a small
 * FIFO (SMALL_PCT of the shard's bound) that new keys enter, a main FIFO, and a ghost that
 * remembers recently evicted keys by a 16-bit fingerprint. An entry has a 2-bit read count; a hit
 * only bumps it, so hits never reorder a list (unlike LRU) and the lock is held briefly. Eviction
 * takes small's tail while small is over its share: read there, it moves to main; unread, it goes
 * (a one-time key never reaches main, so scans pass through). Otherwise main's tail: read since it
 * last passed, it goes round again with one read less; unread, it goes. A key the ghost remembers
 * enters main directly. Plain S3-FIFO keeps a formerly hot entry for up to three rounds of main
 * after its reads stop, which costs hits when popularity shifts (bench/hitratio's shift trace: 5
 * points behind ARC); so, as ARC weighs its two ghosts, a ghost hit on a key small evicted (new
 * keys are being turned away) raises age_bias, one on a key main evicted (main let go too soon)
 * lowers it, and age_bias percent of main's read entries lose all their reads when they pass the
 * tail. bench/hitratio.py compares it with libcachesim's LRU, ARC, SIEVE, S3-FIFO, W-TinyLFU and
 * 2Q: within a point of the best on every trace and size, at 64 shards and at one.
 *
 * Fill leases (after "Scaling Memcache at Facebook"): a miss takes a lease on the key, stored on
 * the node. Any CDC event for the key voids it, so a fill whose query raced a change is rejected
 * instead of installing a row older than the change. Other misses of a leased key wait on the
 * shard's condition variable for the fill (at most one database fill per key per replica). Versions
 * are checked as well: a value never replaces one with a higher or equal version.
 *
 * Locks: one mutex per shard; no function holds two. The epochs, generations and flush counters in
 * struct cache are atomics read without a lock. The queues, ghost and age_bias are per shard,
 * under its lock: eviction never looks at another shard.
 */
#include "cdcache/cache.h"
#include "cdcache/error.h"
#include "cdcache/metrics.h"
#include "cdcache/util.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void (*cache_test_before_fill)(struct cache_key key);
uint64_t (*cache_test_hash)(uint64_t h);

/* The key hash as the cache uses it: the test hook may weaken it to force collisions. */
static inline uint64_t hash_final(uint64_t h)
{
    return cache_test_hash ? cache_test_hash(h) : h;
}

#define TOUCH_RING 64

#define VERSION_BITS 40 /* versions up to 2^39 - 1: a row updated every microsecond for 6 days */
#define LEN_BITS     24 /* bodies under 16 MiB */
#define LEASE_BITS   28
#define VERSION_MAX  ((INT64_C(1) << (VERSION_BITS - 1)) - 1)
#define LEN_MAX      ((UINT64_C(1) << LEN_BITS) - 1)
#define LEASE_MASK   ((UINT32_C(1) << LEASE_BITS) - 1)
#define KEY_INLINE   8 /* keys up to this many bytes live in the header's kw word */
#define FREQ_MAX     3 /* reads an entry's freq counts up to (2 bits) */
#define SMALL_PCT    6 /* the small queue's share of a shard's bound, percent */
/* Aging: a ghost hit on a key small evicted raises age_bias by AGE_UP, one on a key main evicted
 * lowers it by AGE_DOWN (see make_room_locked()); percent, within 0..100. */
#define AGE_UP   1
#define AGE_DOWN 6

_Static_assert(CACHE_MAX_RESOURCES <= 65536, "res is 16 bits of rk");
_Static_assert(CACHE_MAX_KEY < 65536, "the key length is 16 bits of rk");

struct cache_value {
    struct cache_value *hnext;         /* hash chain (shard lock) */
    struct cache_value *newer, *older; /* small or main queue, newest at head (shard lock) */
    uint64_t kw;                       /* immutable: key_word() inline, or the long key's hash */
    int64_t version : VERSION_BITS;    /* immutable; < 0: a negative entry ("not found") */
    uint64_t len : LEN_BITS;           /* immutable; the response's length, not NUL-terminated */
    _Atomic uint32_t refs;
    uint32_t lease : LEASE_BITS; /* fill lease, 0 = none (shard lock, like the fields below) */
    uint32_t freq : 2;           /* hits since inserted or last passed over, capped at FREQ_MAX */
    uint32_t main : 1;           /* in the main queue (else the small one) */
    uint32_t pending : 1;        /* a lease only, no response yet */
    uint32_t rk;                 /* immutable: res << 16 | key length */
    uint32_t gen;                /* immutable: the resource generation the entry belongs to */
    char body[];                 /* [key bytes when the key is longer than KEY_INLINE] [response] */
};
_Static_assert(sizeof(struct cache_value) == 56, "the entry header is part of the memory budget");

/* A key prepared once per call: the caller's key, its inline word and its hash. */
struct kref {
    struct cache_key k;
    uint64_t kw; /* key_word() when k.len <= KEY_INLINE, else h */
    uint64_t h;
    uint32_t rk;
};

/* One resource's figures in one shard (shard lock). entries and bytes count the linked entries of
 * generation gen only; see the DESIGN comment. */
struct res_shard {
    uint64_t hits, misses, negative_hits, fills, refreshes, evictions, invalidations;
    uint64_t entries, bytes;
    uint32_t gen;
};

/* A FIFO of entries, newest at head, linked through newer/older (shard lock). */
struct queue {
    struct cache_value *head, *tail;
    size_t bytes; /* the cost of its entries */
};

enum { Q_SMALL, Q_MAIN };

struct cache_shard {
    pthread_mutex_t lock;      /* guards every field below */
    pthread_cond_t lease_done; /* broadcast when a lease on any key of the shard ends */
    struct cache_value **buckets;
    size_t nbuckets;
    size_t count;      /* every linked entry, dead ones included */
    struct queue q[2]; /* [Q_SMALL], [Q_MAIN] */
    uint16_t *ghost;   /* [nbuckets]: fingerprints of keys evicted from small, 0 = empty */
    /* The sweep: after any cache_flush_resource() (seen through swept_flushes), a cursor that walks
     * the small queue from its tail, then the main one, unlinking dead entries. */
    struct cache_value *sweep;
    unsigned sweep_q;
    int age_bias; /* percent of main's read entries that lose every read when they pass its tail */
    int age_acc;  /* age_bias's running sum, to apply it without a random number */
    uint64_t swept_flushes;
    bool sweeping;
    size_t bytes, max_bytes;           /* bytes: every linked entry's cost, dead ones included */
    uint64_t dead_entries, dead_bytes; /* of generations that res_sync_locked() retired */
    uint32_t next_lease;
    /* The keys most recently touched by invalidations (hash and resource), with the epoch of each,
     * so a write that could not take its lease before the key existed can still ask "did an event
     * touch it since?". Two keys with one hash both look touched: safe, it only refuses a fill. */
    struct {
        uint64_t h;
        uint32_t res;
        uint64_t epoch;
    } touched[TOUCH_RING];
    unsigned touched_next;
    uint64_t touched_floor; /* epoch of the newest record pushed out of the ring */
    struct res_shard *rs;   /* [c->nres], owned */
    struct {
        uint64_t stale_ignored, fill_waits, fill_wait_timeouts, flushes;
        uint64_t rejected[CACHE_REJECT_COUNT];
    } st; /* per-shard counters, summed on read */
} __attribute__((aligned(64)));

struct cache {
    /* Read by every call; written only by cache_create() and cache_flush_resource() (gen). */
    struct cache_shard *shards;
    unsigned nshards;
    unsigned nres;
    uint64_t seed; /* of the key hash, per cache, so that colliding keys cannot be prepared */
    bool negative_entries;
    int fill_wait_ms;
    size_t max_bytes;
    _Atomic uint32_t gen[CACHE_MAX_RESOURCES]; /* each resource's generation */
    /* Written by every change event: kept off the lines above, which every hit reads. The
     * allocation is only 16-aligned, so a whole line of padding rather than an alignment. */
    char pad_[64];
    _Atomic uint64_t epoch;       /* counts invalidations (events, evictions by writes, flushes) */
    _Atomic uint64_t flush_epoch; /* epoch of the last whole flush */
    _Atomic uint64_t flush_count; /* cache_flush_resource() calls, every resource's */
    _Atomic uint64_t res_flush_epoch[CACHE_MAX_RESOURCES]; /* epoch of each one's last flush */
    _Atomic uint64_t res_flushes[CACHE_MAX_RESOURCES];     /* cache_flush_resource() calls */
};

static const char *const reject_names[] = {
#define CACHE_REJECT_NAME(name, text) text,
    CACHE_REJECT_REASONS(CACHE_REJECT_NAME)
#undef CACHE_REJECT_NAME
};

const char *cache_reject_name(enum cache_reject r)
{
    return (unsigned)r < CACHE_REJECT_COUNT ? reject_names[r] : "unknown";
}

/* --- keys and hashing --- */

/* The 64x64 -> 128 multiply folded to 64 bits (wyhash's mum): one multiply mixes both inputs. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __extension__ unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define P0 0xa0761d6478bd642fULL
#define P1 0xe7037ed1a0b428dbULL
#define P2 0x8ebc6af09c88c6e3ULL
#define P3 0x589965cc75374cc3ULL

/* A key of at most 8 bytes as one word, with no call to memcpy: two overlapping 4-byte loads for
 * 4..8 bytes, three byte loads for 1..3. Given the length (compared beside it in rk), the word
 * determines every byte, so equal words and lengths mean equal keys. */
static inline uint64_t key_word(const char *p, uint32_t len)
{
    if (len >= 4)
        return rd32(p) | rd32(p + len - 4) << 32;
    if (len)
        return (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[len >> 1] << 8 |
               (uint64_t)(unsigned char)p[len - 1] << 16;
    return 0;
}

static inline uint64_t hash_short(uint64_t seed, uint64_t kw, uint32_t rk)
{
    return mum(kw ^ seed ^ P0, (uint64_t)rk ^ P1);
}

/* wyhash's scheme over 16-byte blocks, with the resource and length mixed into the seed. len is
 * more than KEY_INLINE, so the last two words can always be read inside the key. */
static uint64_t hash_long(uint64_t seed, const char *p, size_t len, uint32_t rk)
{
    const char *end = p + len;
    uint64_t h = mum(seed ^ P0, (uint64_t)rk ^ P1);
    uint64_t a, b;
    size_t n = len;

    assert(len > KEY_INLINE);
    while (n > 16) {
        h = mum(rd64(p) ^ P1, rd64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    /* the last 1..16 bytes, as the key's last two words (overlapping what came before) */
    a = len > 16 ? rd64(end - 16) : rd64(end - len);
    b = rd64(end - 8);
    return mum(P2 ^ len, mum(a ^ P2, b ^ h ^ P3));
}

/* Inlined (like find_locked()) so that on the hit path the prepared key stays in registers. */
#define HOT_PATH inline __attribute__((always_inline))

static HOT_PATH void kref_init(const struct cache *c, struct cache_key key, struct kref *k)
{
    k->k = key;
    k->rk = key.res << 16 | key.len;
    if (key.len <= KEY_INLINE) {
        k->kw = key_word(key.p, key.len);
        k->h = hash_final(hash_short(c->seed, k->kw, k->rk));
    } else {
        k->h = hash_final(hash_long(c->seed, key.p, key.len, k->rk));
        k->kw = k->h;
    }
}

/* A key the cache can hold. res beyond the resources is a caller's bug (asserted); in a release
 * build, and for keys longer than CACHE_MAX_KEY, the key is simply never cached. */
static bool key_ok(const struct cache *c, struct cache_key key)
{
    assert(key.res < c->nres);
    return key.res < c->nres && key.len <= CACHE_MAX_KEY && (key.p || key.len == 0);
}

static inline unsigned entry_res(const struct cache_value *v)
{
    return v->rk >> 16;
}

static inline size_t entry_klen(const struct cache_value *v)
{
    return v->rk & 0xffff;
}

/* Bytes of the key stored out of line, at the start of body[]. */
static inline size_t key_out(size_t key_len)
{
    return key_len > KEY_INLINE ? key_len : 0;
}

static uint64_t entry_hash(const struct cache *c, const struct cache_value *v)
{
    return entry_klen(v) <= KEY_INLINE ? hash_final(hash_short(c->seed, v->kw, v->rk)) : v->kw;
}

static inline bool entry_is(const struct cache_value *v, const struct kref *k)
{
    return v->kw == k->kw && v->rk == k->rk &&
           (k->k.len <= KEY_INLINE || memcmp(v->body, k->k.p, k->k.len) == 0);
}

static inline bool entry_live(struct cache *c, const struct cache_value *v)
{
    return v->gen == atomic_load_explicit(&c->gen[entry_res(v)], memory_order_acquire);
}

size_t cache_entry_cost(size_t key_len, size_t len)
{
    /* What the entry really takes: its malloc chunk (glibc: the request plus an 8-byte header,
     * rounded up to 16, at least 32), its share of the hash buckets (between a half and one
     * pointer per entry at load factor 2; the upper end is charged) and of the ghost (one 16-bit
     * fingerprint per bucket, so again the upper end). Charging this rather than the struct size
     * keeps RSS within the configured bound. */
    size_t chunk = (sizeof(struct cache_value) + key_out(key_len) + len + 8 + 15) & ~(size_t)15;
    return (chunk < 32 ? 32 : chunk) + sizeof(struct cache_value *) + sizeof(uint16_t);
}

static size_t entry_cost(const struct cache_value *v)
{
    return cache_entry_cost(entry_klen(v), v->len);
}

/* True when the header's packed fields can hold version and len (see fits()). */
static bool fits(int64_t version, size_t len)
{
    return version <= VERSION_MAX && len <= LEN_MAX;
}

/* A new entry holding one reference (the shard's, once linked), of generation gen. A pending entry
 * has no response. Callers check fits() first. */
static struct cache_value *entry_new(const struct kref *k, uint32_t gen, int64_t version,
                                     bool pending, const char *body, size_t len)
{
    size_t ko = key_out(k->k.len);
    struct cache_value *v = xmalloc(sizeof(*v) + ko + len);

    memset(v, 0, sizeof(*v));
    atomic_init(&v->refs, 1);
    v->kw = k->kw;
    v->rk = k->rk;
    v->gen = gen;
    v->version = version;
    v->pending = pending;
    v->len = len;
    if (ko)
        memcpy(v->body, k->k.p, ko);
    if (len)
        memcpy(v->body + ko, body, len);
    return v;
}

void cache_value_release(struct cache_value *v)
{
    if (v) {
        uint32_t was = atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel);
        assert(was >= 1);
        if (was == 1)
            free(v);
    }
}

const char *cache_value_body(const struct cache_value *v, size_t *len)
{
    *len = v->len;
    return v->body + key_out(entry_klen(v));
}

int64_t cache_value_version(const struct cache_value *v)
{
    return v->version;
}

bool cache_value_negative(const struct cache_value *v)
{
    return v->version < 0;
}

static uint64_t seed_new(void)
{
    struct timespec ts;
    uint64_t x;

    clock_gettime(CLOCK_REALTIME, &ts);
    x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)(uintptr_t)&ts;
    return mum(x ^ P0, P3) | 1;
}

struct cache *cache_create(const struct cache_options *opt)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    size_t min_shard = opt->min_shard_bytes ? opt->min_shard_bytes : CACHE_MIN_SHARD_BYTES;
    unsigned n = 1;

    while (n < opt->shards && n < 4096)
        n <<= 1;
    /* Shard-aware sizing: each shard runs its own eviction over its share of the bound, and a share
     * of a few entries is no cache at all (64 shards of a 100-entry bound held 1 or 2 entries each
     * and lost half the hits of one shard). Halve the shards until each has min_shard bytes. */
    while (n > 1 && opt->max_bytes / n < min_shard)
        n >>= 1;
    c->nshards = n;
    /* 0 (an options struct from before resources existed) is one resource */
    c->nres = opt->resources == 0                    ? 1
              : opt->resources > CACHE_MAX_RESOURCES ? CACHE_MAX_RESOURCES
                                                     : opt->resources;
    c->seed = seed_new();
    c->negative_entries = opt->negative_entries;
    c->fill_wait_ms = opt->fill_wait_ms;
    c->max_bytes = opt->max_bytes;
    c->shards = xcalloc(n, sizeof(*c->shards));
    for (unsigned i = 0; i < n; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_condattr_t ca;
        pthread_mutexattr_t ma;
        pthread_mutexattr_init(&ma);
        /* adaptive: spin briefly before sleeping; shard critical sections are a few dozen ns, and
         * with hundreds of worker threads a sleeping waiter costs a scheduler round trip */
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
        pthread_mutex_init(&s->lock, &ma);
        pthread_mutexattr_destroy(&ma);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->lease_done, &ca);
        pthread_condattr_destroy(&ca);
        s->nbuckets = 64;
        s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
        s->ghost = xcalloc(s->nbuckets, sizeof(*s->ghost));
        s->max_bytes = opt->max_bytes / n;
        s->next_lease = 1;
        s->rs = xcalloc(c->nres, sizeof(*s->rs));
    }
    return c;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        for (int q = Q_SMALL; q <= Q_MAIN; q++) {
            struct cache_value *nd = s->q[q].head;
            while (nd) {
                struct cache_value *next = nd->older;
                cache_value_release(nd);
                nd = next;
            }
        }
        free(s->buckets);
        free(s->ghost);
        free(s->rs);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->lease_done);
    }
    free(c->shards);
    free(c);
}

unsigned cache_shards(const struct cache *c)
{
    return c->nshards;
}

static struct cache_shard *shard_of(struct cache *c, const struct kref *k)
{
    return &c->shards[(k->h >> 40) & (c->nshards - 1)];
}

/* --- the functions below require the shard lock (suffix _locked) --- */

/* Brings the shard's per-resource counts to res's current generation: the counts of an older one
 * are now dead entries'. Returns the generation, which the caller stamps on what it links. */
static uint32_t res_sync_locked(struct cache *c, struct cache_shard *s, unsigned res)
{
    struct res_shard *r = &s->rs[res];
    uint32_t g = atomic_load_explicit(&c->gen[res], memory_order_acquire);

    if (r->gen != g) {
        s->dead_entries += r->entries;
        s->dead_bytes += r->bytes;
        r->entries = 0;
        r->bytes = 0;
        r->gen = g;
    }
    return g;
}

/* Counts v in (add) or out of the shard's figures: its resource's when it is of the generation
 * the shard counts for it, the dead ones' otherwise. */
static void account_locked(struct cache_shard *s, const struct cache_value *v, bool add)
{
    struct res_shard *r = &s->rs[entry_res(v)];
    size_t cost = entry_cost(v);
    bool live = v->gen == r->gen;
    uint64_t *entries = live ? &r->entries : &s->dead_entries;
    uint64_t *bytes = live ? &r->bytes : &s->dead_bytes;

    if (add) {
        s->count++;
        s->bytes += cost;
        (*entries)++;
        *bytes += cost;
        return;
    }
    assert(s->count > 0 && s->bytes >= cost);
    assert(*entries > 0 && *bytes >= cost);
    s->count--;
    s->bytes -= cost;
    (*entries)--;
    *bytes -= cost;
}

static void remove_locked(struct cache *c, struct cache_shard *s, struct cache_value *nd);
static void sweep_locked(struct cache *c, struct cache_shard *s, bool until_room, size_t need,
                         const struct cache_value *keep, size_t steps);
static bool make_room_locked(struct cache *c, struct cache_shard *s, size_t need,
                             const struct cache_value *keep);

/* Finds key's live node and moves it to the front of its chain, so that at load factor 2 the keys
 * being read sit first and a hit on a hot key does not walk through cold nodes (each a cache
 * miss). A node of a flushed generation is unlinked and reported absent. */
static HOT_PATH struct cache_value *find_locked(struct cache *c, struct cache_shard *s,
                                                const struct kref *k)
{
    struct cache_value **head = &s->buckets[k->h & (s->nbuckets - 1)];
    struct cache_value **pp = head;
    struct cache_value *nd;

    while ((nd = *pp) && !entry_is(nd, k))
        pp = &nd->hnext;
    if (!nd)
        return NULL;
    if (!entry_live(c, nd)) {
        remove_locked(c, s, nd);
        return NULL;
    }
    if (pp != head) {
        *pp = nd->hnext;
        nd->hnext = *head;
        *head = nd;
    }
    return nd;
}

static void grow_locked(struct cache *c, struct cache_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct cache_value **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct cache_value *nd = s->buckets[i];
        while (nd) {
            struct cache_value *next = nd->hnext;
            size_t j = entry_hash(c, nd) & (n - 1);
            nd->hnext = b[j];
            b[j] = nd;
            nd = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    /* the ghost grows with the table; its old fingerprints go (a few more misses go to small) */
    free(s->ghost);
    s->ghost = xcalloc(n, sizeof(*s->ghost));
}

/* Links nd at the head of queue q. */
static void q_push_locked(struct cache_shard *s, struct cache_value *nd, unsigned q)
{
    struct queue *Q = &s->q[q];

    nd->main = q == Q_MAIN;
    nd->newer = NULL;
    nd->older = Q->head;
    if (Q->head)
        Q->head->newer = nd;
    Q->head = nd;
    if (!Q->tail)
        Q->tail = nd;
    Q->bytes += entry_cost(nd);
}

/* Unlinks nd from its queue; the sweep cursor, if on nd, moves on to the next newer node. */
static void q_unlink_locked(struct cache_shard *s, struct cache_value *nd)
{
    struct queue *Q = &s->q[nd->main ? Q_MAIN : Q_SMALL];
    size_t cost = entry_cost(nd);

    if (s->sweep == nd)
        s->sweep = nd->newer;
    if (nd->newer)
        nd->newer->older = nd->older;
    else
        Q->head = nd->older;
    if (nd->older)
        nd->older->newer = nd->newer;
    else
        Q->tail = nd->newer;
    assert(!Q->head == !Q->tail);
    assert(Q->bytes >= cost);
    Q->bytes -= cost;
}

/* The ghost: a direct-mapped table of 16-bit fingerprints of evicted keys (15 bits of hash, and
 * which queue evicted it), one slot per hash bucket, so that it remembers about as many keys as
 * the shard holds (a newer key in the slot forgets an older one: an approximately FIFO ghost). A
 * fingerprint that two keys share only sends a key to main that would have gone to small: a policy
 * slip, never a wrong answer. */
static inline size_t ghost_slot(const struct cache_shard *s, uint64_t h, uint16_t *fp)
{
    uint64_t g = mum(h ^ P2, P3);
    *fp = (uint16_t)(g >> 48) | 2; /* never 0, the empty slot; bit 0 says which queue */
    return (size_t)g & (s->nbuckets - 1);
}

/* Remembers nd, evicted from its queue. */
static void ghost_add_locked(struct cache *c, struct cache_shard *s, const struct cache_value *nd)
{
    uint16_t fp;
    size_t i = ghost_slot(s, entry_hash(c, nd), &fp);
    s->ghost[i] = (uint16_t)(fp & ~1u) | nd->main;
}

/* True (and forgets it) when k was evicted recently. A key evicted from small and read again says
 * that main keeps what is no longer read: age faster; one evicted from main and read again says
 * the opposite (ARC's two ghosts, applied to how long main keeps a read entry). */
static bool ghost_take_locked(struct cache_shard *s, const struct kref *k)
{
    uint16_t fp;
    size_t i = ghost_slot(s, k->h, &fp);

    if ((s->ghost[i] | 1) != (fp | 1))
        return false;
    if (s->ghost[i] & 1)
        s->age_bias = s->age_bias > AGE_DOWN ? s->age_bias - AGE_DOWN : 0;
    else
        s->age_bias = s->age_bias + AGE_UP < 100 ? s->age_bias + AGE_UP : 100;
    s->ghost[i] = 0;
    return true;
}

/* Links a new pending node for k, of its resource's current generation: in the main queue when the
 * ghost remembers k (it was evicted, and is read again), else in the small one. */
static struct cache_value *insert_locked(struct cache *c, struct cache_shard *s,
                                         const struct kref *k)
{
    uint32_t gen = res_sync_locked(c, s, k->k.res);
    struct cache_value *nd = entry_new(k, gen, 0, true, NULL, 0);
    size_t j;

    sweep_locked(c, s, false, 0, NULL, 4); /* without pressure, a flushed resource's bytes too */
    /* A lease node is charged like any entry (a long key makes it up to ~600 bytes). When nothing
     * can go (every entry leased), it is linked anyway: the excess is bounded by the fills in
     * flight, and their fills or aborts take it back. */
    make_room_locked(c, s, entry_cost(nd), NULL);
    if (s->count >= 2 * s->nbuckets)
        grow_locked(c, s);
    j = k->h & (s->nbuckets - 1);
    nd->hnext = s->buckets[j];
    s->buckets[j] = nd;
    q_push_locked(s, nd, ghost_take_locked(s, k) ? Q_MAIN : Q_SMALL);
    account_locked(s, nd, true);
    return nd;
}

static void remove_locked(struct cache *c, struct cache_shard *s, struct cache_value *nd)
{
    struct cache_value **pp = &s->buckets[entry_hash(c, nd) & (s->nbuckets - 1)];
    while (*pp != nd) {
        assert(*pp); /* nd is linked in its bucket */
        pp = &(*pp)->hnext;
    }
    *pp = nd->hnext;
    q_unlink_locked(s, nd);
    account_locked(s, nd, false);
    if (nd->lease)
        pthread_cond_broadcast(&s->lease_done);
    cache_value_release(nd);
}

/* Unlinks dead entries at the sweep cursor, at most steps nodes, and (until_room) only while need
 * more bytes do not fit. A new cache_flush_resource() restarts the walk from the tail. */
static void sweep_locked(struct cache *c, struct cache_shard *s, bool until_room, size_t need,
                         const struct cache_value *keep, size_t steps)
{
    uint64_t f = atomic_load_explicit(&c->flush_count, memory_order_acquire);

    if (f != s->swept_flushes) {
        s->swept_flushes = f;
        s->sweep = s->q[Q_SMALL].tail;
        s->sweep_q = Q_SMALL;
        s->sweeping = true;
    }
    while (s->sweeping && steps-- > 0 && (!until_room || s->bytes + need > s->max_bytes)) {
        struct cache_value *nd = s->sweep;
        if (!nd && s->sweep_q == Q_SMALL) {
            /* small is done; an entry it promoted since went to main, which comes next */
            s->sweep_q = Q_MAIN;
            s->sweep = nd = s->q[Q_MAIN].tail;
        }
        if (!nd) {
            s->sweeping = false; /* reached main's head: every older entry was looked at */
            break;
        }
        s->sweep = nd->newer;
        if (nd != keep && !entry_live(c, nd))
            remove_locked(c, s, nd);
    }
}

/* S3-FIFO: evicts until need more bytes fit. From small's tail while small holds more than
 * SMALL_PCT of the shard's bound (or main is empty): an entry read there moves to main, one that
 * was not is evicted. Otherwise from main's tail: an entry read since it last passed the tail goes
 * round again with one read less (or, for age_bias percent of them, with none left), one that was
 * not is evicted. The ghost remembers what either queue evicts. Nodes with a fill in flight go
 * round unevicted. A dead node (its resource was flushed) goes whenever
 * eviction meets it, read or leased: it is spared nothing and not counted as an eviction. Returns
 * false when nothing more can be evicted. */
static bool make_room_locked(struct cache *c, struct cache_shard *s, size_t need,
                             const struct cache_value *keep)
{
    /* each node can pass a tail at most FREQ_MAX + 2 times before it goes, unless it is leased */
    size_t budget = (FREQ_MAX + 2) * s->count + 2;
    size_t spins = 0; /* leased nodes passed over since the last eviction */

    sweep_locked(c, s, true, need, keep, SIZE_MAX); /* dead entries go first */
    while (s->bytes + need > s->max_bytes) {
        bool small = s->q[Q_SMALL].tail &&
                     (s->q[Q_SMALL].bytes * 100 > s->max_bytes * SMALL_PCT || !s->q[Q_MAIN].tail);
        struct cache_value *nd;

        if (spins > s->count && s->q[small ? Q_MAIN : Q_SMALL].tail)
            small = !small; /* the queue it would take holds only fills in flight: the other */
        nd = small ? s->q[Q_SMALL].tail : s->q[Q_MAIN].tail;
        if (!nd || budget-- == 0)
            return false;
        assert(nd->main == !small);
        if (nd != keep && !entry_live(c, nd)) {
            remove_locked(c, s, nd);
            continue;
        }
        if (nd->lease || nd == keep) {
            q_unlink_locked(s, nd);
            q_push_locked(s, nd, small ? Q_SMALL : Q_MAIN);
            spins++;
            continue;
        }
        if (small && nd->freq > 0) {
            q_unlink_locked(s, nd);
            nd->freq = 0;
            q_push_locked(s, nd, Q_MAIN);
            continue;
        }
        if (!small && nd->freq > 0) {
            q_unlink_locked(s, nd);
            s->age_acc += s->age_bias;
            if (s->age_acc >= 100) {
                s->age_acc -= 100;
                nd->freq = 0;
            } else {
                nd->freq--;
            }
            q_push_locked(s, nd, Q_MAIN);
            continue;
        }
        ghost_add_locked(c, s, nd);
        s->rs[entry_res(nd)].evictions++;
        remove_locked(c, s, nd);
        spins = 0;
    }
    return true;
}

/* Links v in nd's place (same hash chain slot, same queue and position, same reads and lease) and
 * drops the shard's reference to nd, after evicting others to make room. v has nd's key and
 * generation. Takes ownership of v; on failure frees it and returns the reason, leaving nd in
 * place. On success *out is v. */
static int replace_locked(struct cache *c, struct cache_shard *s, struct cache_value *nd,
                          struct cache_value *v, struct cache_value **out, enum cache_reject *why)
{
    struct cache_value **pp;
    size_t vc = entry_cost(v), nc = entry_cost(nd);

    assert(v->kw == nd->kw && v->rk == nd->rk && v->gen == nd->gen);
    if (vc > s->max_bytes) {
        *why = CACHE_REJECT_TOO_LARGE;
        goto fail;
    }
    /* also when v is no larger: a lease node linked over the bound (insert_locked) is put right */
    if (!make_room_locked(c, s, vc > nc ? vc - nc : 0, nd)) {
        *why = CACHE_REJECT_NO_ROOM;
        goto fail;
    }
    pp = &s->buckets[entry_hash(c, nd) & (s->nbuckets - 1)];
    while (*pp != nd)
        pp = &(*pp)->hnext;
    *pp = v;
    v->hnext = nd->hnext;
    v->newer = nd->newer;
    v->older = nd->older;
    v->freq = nd->freq;
    v->main = nd->main;
    v->lease = nd->lease;
    {
        struct queue *Q = &s->q[v->main ? Q_MAIN : Q_SMALL];
        if (v->newer)
            v->newer->older = v;
        else
            Q->head = v;
        if (v->older)
            v->older->newer = v;
        else
            Q->tail = v;
        Q->bytes = Q->bytes - nc + vc;
    }
    if (s->sweep == nd)
        s->sweep = v;
    account_locked(s, nd, false);
    account_locked(s, v, true);
    cache_value_release(nd);
    *out = v;
    return 0;
fail:
    cache_value_release(v);
    return CDC_EREJECTED;
}

/* Ends nd's fill lease, waking its waiters; a lease-only entry goes with it. */
static void end_lease_locked(struct cache *c, struct cache_shard *s, struct cache_value *nd)
{
    if (nd->lease) {
        nd->lease = 0;
        pthread_cond_broadcast(&s->lease_done);
    }
    if (nd->pending)
        remove_locked(c, s, nd);
}

/* Removes an entry because its row changed (counted apart from capacity evictions). */
static void invalidate_locked(struct cache *c, struct cache_shard *s, struct cache_value *nd)
{
    s->rs[entry_res(nd)].invalidations++;
    remove_locked(c, s, nd);
}

/* Gives key a new fill lease (creating its node), replacing any other; returns it. */
static uint64_t lease_locked(struct cache *c, struct cache_shard *s, const struct kref *k)
{
    struct cache_value *nd = find_locked(c, s, k);
    if (!nd)
        nd = insert_locked(c, s, k);
    s->next_lease = (s->next_lease + 1) & LEASE_MASK;
    if (s->next_lease == 0) /* 0 means "no lease": skip it when the counter wraps */
        s->next_lease = 1;
    nd->lease = s->next_lease;
    return nd->lease;
}

static void touch_locked(struct cache *c, struct cache_shard *s, const struct kref *k)
{
    unsigned i = s->touched_next++ % TOUCH_RING;
    uint64_t e = atomic_fetch_add(&c->epoch, 1) + 1;
    if (s->touched[i].epoch > s->touched_floor)
        s->touched_floor = s->touched[i].epoch;
    s->touched[i].h = k->h;
    s->touched[i].res = k->k.res;
    s->touched[i].epoch = e;
}

static bool touched_since_locked(struct cache *c, struct cache_shard *s, const struct kref *k,
                                 uint64_t since)
{
    if (s->touched_floor > since || atomic_load(&c->flush_epoch) > since ||
        atomic_load(&c->res_flush_epoch[k->k.res]) > since)
        return true; /* the ring no longer reaches back that far, or a flush: assume the worst */
    for (unsigned i = 0; i < TOUCH_RING; i++)
        if (s->touched[i].h == k->h && s->touched[i].res == k->k.res && s->touched[i].epoch > since)
            return true;
    return false;
}

/* --- public functions: each takes the shard lock --- */

enum cache_lookup_result cache_lookup(struct cache *c, struct cache_key key, int64_t min_version,
                                      struct cache_value **out, uint64_t *lease)
{
    struct kref k;
    struct cache_shard *s;
    struct timespec deadline;
    bool waited = false;
    enum cache_lookup_result res;

    if (!key_ok(c, key)) {
        *lease = 0; /* never cached: serve from the database, do not fill */
        return CACHE_MISS;
    }
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct cache_value *nd = find_locked(c, s, &k);
        if (nd && !nd->pending &&
            (nd->version < 0 ? min_version <= 0 : nd->version >= min_version)) {
            /* A negative entry says "no row". A minimum version of 1 or more proves the row exists
             * (the client saw a write's ETag), so it is a miss like an older version. */
            if (nd->freq < FREQ_MAX)
                nd->freq++;
            atomic_fetch_add_explicit(&nd->refs, 1, memory_order_relaxed);
            *out = nd;
            if (nd->version < 0)
                s->rs[key.res].negative_hits++;
            else
                s->rs[key.res].hits++;
            res = CACHE_HIT;
            break;
        }
        if (nd && nd->lease) {
            /* Someone is filling this key: wait for that fill instead of querying again. */
            int rc;
            if (!waited) {
                int64_t ns = now_mono_ns() + (int64_t)c->fill_wait_ms * 1000000;
                deadline.tv_sec = ns / 1000000000;
                deadline.tv_nsec = ns % 1000000000;
                waited = true;
                s->st.fill_waits++;
            }
            rc = pthread_cond_timedwait(&s->lease_done, &s->lock, &deadline);
            if (rc == ETIMEDOUT) {
                s->st.fill_wait_timeouts++;
                s->rs[key.res].misses++;
                *lease = 0;
                res = CACHE_MISS;
                break;
            }
            continue;
        }
        *lease = lease_locked(c, s, &k);
        s->rs[key.res].misses++;
        res = CACHE_MISS;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return res;
}

uint64_t cache_lease(struct cache *c, struct cache_key key)
{
    struct kref k;
    struct cache_shard *s;
    uint64_t lease;

    if (!key_ok(c, key))
        return LEASE_MASK + UINT64_C(1); /* never matches a node: its fill is rejected */
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    lease = lease_locked(c, s, &k);
    pthread_mutex_unlock(&s->lock);
    return lease;
}

int cache_fill(struct cache *c, struct cache_key key, uint64_t lease, int64_t version,
               const char *body, size_t len, enum cache_reject *why)
{
    struct kref k;
    struct cache_shard *s;
    struct cache_value *nd;
    enum cache_reject reason = CACHE_REJECT_LEASE_VOID;
    bool negative = version < 0;
    int rc = CDC_EREJECTED;

    if (!key_ok(c, key)) {
        /* the key is past CACHE_MAX_KEY: counted (in shard 0, it has no shard of its own) */
        reason = CACHE_REJECT_TOO_LARGE;
        s = &c->shards[0];
        pthread_mutex_lock(&s->lock);
        goto out_count;
    }
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    if (cache_test_before_fill)
        cache_test_before_fill(key);
    pthread_mutex_lock(&s->lock);
    /* a node of a flushed generation is not found: a lease taken before the flush is void */
    nd = find_locked(c, s, &k);
    if (!nd || lease == 0 || nd->lease != (uint32_t)lease || lease > LEASE_MASK)
        goto out_count; /* voided: an invalidation, a flush or a newer lease came in between */
    if (negative && !c->negative_entries) {
        reason = CACHE_REJECT_NEGATIVE_OFF;
    } else if (!fits(version, len)) {
        reason = CACHE_REJECT_TOO_LARGE;
    } else if (!nd->pending && (negative || (nd->version >= 0 && nd->version >= version))) {
        reason = CACHE_REJECT_NOT_NEWER;
    } else {
        rc = replace_locked(c, s, nd,
                            entry_new(&k, nd->gen, negative ? -1 : version, false, body, len), &nd,
                            &reason);
        if (rc == 0)
            s->rs[key.res].fills++;
    }
    end_lease_locked(c, s, nd);
out_count:
    if (rc)
        s->st.rejected[reason]++;
    pthread_mutex_unlock(&s->lock);
    if (rc && why)
        *why = reason;
    return rc;
}

void cache_fill_abort(struct cache *c, struct cache_key key, uint64_t lease)
{
    struct kref k;
    struct cache_shard *s;
    struct cache_value *nd;

    if (lease == 0 || !key_ok(c, key))
        return;
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    nd = find_locked(c, s, &k);
    if (nd && nd->lease == (uint32_t)lease && lease <= LEASE_MASK)
        end_lease_locked(c, s, nd);
    pthread_mutex_unlock(&s->lock);
}

uint64_t cache_epoch(struct cache *c)
{
    return atomic_load(&c->epoch);
}

uint64_t cache_lease_since(struct cache *c, struct cache_key key, uint64_t since)
{
    struct kref k;
    struct cache_shard *s;
    uint64_t lease = 0;

    if (!key_ok(c, key))
        return 0;
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    if (!touched_since_locked(c, s, &k, since))
        lease = lease_locked(c, s, &k);
    pthread_mutex_unlock(&s->lock);
    return lease;
}

enum cache_apply_result cache_apply(struct cache *c, struct cache_key key, int64_t version,
                                    const char *body, size_t len)
{
    struct kref k;
    struct cache_shard *s;
    struct cache_value *nd;
    enum cache_apply_result res;
    enum cache_reject why;

    if (!key_ok(c, key))
        return CACHE_ABSENT; /* such a key is never cached */
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    touch_locked(c, s, &k);
    nd = find_locked(c, s, &k);
    if (!nd) {
        res = CACHE_ABSENT;
    } else if (nd->pending || nd->version < 0) {
        /* Only a lease, or "not found": drop it; the next read fills the committed row. */
        invalidate_locked(c, s, nd);
        res = CACHE_EVICTED;
    } else if (nd->version >= version) {
        end_lease_locked(c, s, nd); /* any fill in flight raced this event: void it */
        s->st.stale_ignored++;
        res = CACHE_OLD;
    } else if (!fits(version, len)) {
        invalidate_locked(c, s, nd); /* cannot hold it: the next read goes to the database */
        res = CACHE_EVICTED;
    } else if (replace_locked(c, s, nd, entry_new(&k, nd->gen, version, false, body, len), &nd,
                              &why) == 0) {
        end_lease_locked(c, s, nd);
        s->rs[key.res].refreshes++;
        res = CACHE_APPLIED;
    } else {
        invalidate_locked(c, s, nd);
        res = CACHE_EVICTED;
    }
    pthread_mutex_unlock(&s->lock);
    return res;
}

bool cache_evict(struct cache *c, struct cache_key key)
{
    struct kref k;
    struct cache_shard *s;
    struct cache_value *nd;

    if (!key_ok(c, key))
        return false;
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    touch_locked(c, s, &k);
    nd = find_locked(c, s, &k);
    if (nd)
        invalidate_locked(c, s, nd);
    pthread_mutex_unlock(&s->lock);
    return nd != NULL;
}

void cache_flush(struct cache *c)
{
    atomic_store(&c->flush_epoch, atomic_fetch_add(&c->epoch, 1) + 1);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        while (s->q[Q_SMALL].head)
            remove_locked(c, s, s->q[Q_SMALL].head);
        while (s->q[Q_MAIN].head)
            remove_locked(c, s, s->q[Q_MAIN].head);
        memset(s->ghost, 0, s->nbuckets * sizeof(*s->ghost));
        assert(s->count == 0 && s->bytes == 0 && s->dead_entries == 0);
        s->st.flushes++;
        pthread_mutex_unlock(&s->lock);
    }
}

void cache_flush_resource(struct cache *c, unsigned res)
{
    assert(res < c->nres);
    if (res >= c->nres)
        return;
    /* The flush epoch first, then the generation: a cache_lease_since() that still sees the old
     * generation stamps its lease with it, and that lease dies with the bump. */
    atomic_store(&c->res_flush_epoch[res], atomic_fetch_add(&c->epoch, 1) + 1);
    atomic_fetch_add(&c->gen[res], 1);
    atomic_fetch_add(&c->res_flushes[res], 1);
    atomic_fetch_add(&c->flush_count, 1);
}

/* Sums the shards' figures into *all (when not NULL) and into per[0..c->nres) (when not NULL). */
static void stats_collect(struct cache *c, struct cache_stats *all, struct cache_stats *per)
{
    if (all)
        memset(all, 0, sizeof(*all));
    if (per)
        memset(per, 0, c->nres * sizeof(*per));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (unsigned r = 0; r < c->nres; r++) {
            struct res_shard *rs = &s->rs[r];
            if (all) {
                all->hits += rs->hits;
                all->misses += rs->misses;
                all->negative_hits += rs->negative_hits;
                all->evictions += rs->evictions;
                all->invalidations += rs->invalidations;
                all->fills += rs->fills;
                all->refreshes += rs->refreshes;
            }
            if (per) {
                struct cache_stats *o = &per[r];
                res_sync_locked(c, s, r);
                o->hits += rs->hits;
                o->misses += rs->misses;
                o->negative_hits += rs->negative_hits;
                o->evictions += rs->evictions;
                o->invalidations += rs->invalidations;
                o->fills += rs->fills;
                o->refreshes += rs->refreshes;
                o->entries += rs->entries;
                o->bytes += rs->bytes;
            }
        }
        if (all) {
            all->stale_ignored += s->st.stale_ignored;
            all->fill_waits += s->st.fill_waits;
            all->fill_wait_timeouts += s->st.fill_wait_timeouts;
            for (int r = 0; r < CACHE_REJECT_COUNT; r++)
                all->rejected[r] += s->st.rejected[r];
            all->entries += s->count;
            all->bytes += s->bytes;
            if (i == 0)
                all->flushes = s->st.flushes;
        }
        pthread_mutex_unlock(&s->lock);
    }
    if (all) {
        all->max_bytes = c->max_bytes;
        /* every flush, whole or of one resource (a truncate, DDL, a poison entry without a key) */
        for (unsigned r = 0; r < c->nres; r++)
            all->flushes += atomic_load(&c->res_flushes[r]);
    }
    if (per) {
        uint64_t whole;
        pthread_mutex_lock(&c->shards[0].lock);
        whole = c->shards[0].st.flushes;
        pthread_mutex_unlock(&c->shards[0].lock);
        for (unsigned r = 0; r < c->nres; r++) {
            per[r].flushes = atomic_load(&c->res_flushes[r]) + whole;
            per[r].max_bytes = c->max_bytes;
        }
    }
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    stats_collect(c, out, NULL);
}

void cache_stats_resource(struct cache *c, unsigned res, struct cache_stats *out)
{
    struct cache_stats *per;

    memset(out, 0, sizeof(*out));
    assert(res < c->nres);
    if (res >= c->nres)
        return;
    per = xcalloc(c->nres, sizeof(*per));
    stats_collect(c, NULL, per);
    *out = per[res];
    free(per);
}

/* Writes `resource="<name>"` into lab, the name escaped as the Prometheus text format wants
 * (backslash, double quote and newline). A missing name is the resource's index. Returns false
 * when it does not fit. */
static bool resource_label(char *lab, size_t n, const char *const *names, unsigned r)
{
    char idx[16];
    const char *name = names && names[r] ? names[r] : NULL;
    size_t o = 0;
    static const char pre[] = "resource=\"";

    if (!name) {
        snprintf(idx, sizeof(idx), "%u", r);
        name = idx;
    }
    if (n < sizeof(pre) + 2)
        return false;
    memcpy(lab, pre, sizeof(pre) - 1);
    o = sizeof(pre) - 1;
    for (const char *q = name; *q; q++) {
        const char *esc = *q == '\\' ? "\\\\" : *q == '"' ? "\\\"" : *q == '\n' ? "\\n" : NULL;
        size_t el = esc ? 2 : 1;
        if (o + el + 2 > n) /* room for the closing quote and the NUL */
            return false;
        if (esc)
            memcpy(lab + o, esc, 2);
        else
            lab[o] = *q;
        o += el;
    }
    lab[o++] = '"';
    lab[o] = '\0';
    return true;
}

void cache_metrics_render(struct cache *c, struct metrics_page *p,
                          const char *const *resource_names, unsigned nresources)
{
    struct cache_stats cs, *per;
    char lab[64];
    char rlab[512];
    unsigned nr = nresources < c->nres ? nresources : c->nres;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } fam[] = {
        {"cdcache_cache_resource_entries", "gauge",
         "Entries in the cache, by resource (negative ones included, flushed ones not).",
         offsetof(struct cache_stats, entries)},
        {"cdcache_cache_resource_bytes", "gauge",
         "Bytes the resource's entries take (counted against the shared cache.max_bytes).",
         offsetof(struct cache_stats, bytes)},
        {"cdcache_cache_resource_hits_total", "counter",
         "Reads answered from a cached row, by resource.", offsetof(struct cache_stats, hits)},
        {"cdcache_cache_resource_misses_total", "counter",
         "Reads the cache could not answer (filled from PostgreSQL), by resource.",
         offsetof(struct cache_stats, misses)},
        {"cdcache_cache_resource_evictions_total", "counter",
         "Entries evicted to stay within the byte bound, by resource.",
         offsetof(struct cache_stats, evictions)},
        {"cdcache_cache_resource_flushes_total", "counter",
         "Flushes of the resource: its own (truncate, poison, DDL) and whole-cache ones.",
         offsetof(struct cache_stats, flushes)},
    };

    per = xcalloc(c->nres, sizeof(*per));
    stats_collect(c, &cs, per);
    metrics_scalar(p, "cdcache_cache_hits_total", "counter", "Reads answered from a cached item.",
                   (double)cs.hits);
    metrics_scalar(p, "cdcache_cache_negative_hits_total", "counter",
                   "Reads answered 404 from a cached absence (negative entry).",
                   (double)cs.negative_hits);
    metrics_scalar(p, "cdcache_cache_misses_total", "counter",
                   "Reads the cache could not answer (filled from PostgreSQL).", (double)cs.misses);
    metrics_scalar(p, "cdcache_cache_evictions_total", "counter",
                   "Entries evicted to stay within the byte bound.", (double)cs.evictions);
    metrics_scalar(p, "cdcache_cache_invalidations_total", "counter",
                   "Entries removed by change events, deletes and writes.",
                   (double)cs.invalidations);
    metrics_scalar(p, "cdcache_cache_flushes_total", "counter",
                   "Flushes: of the whole cache (continuity breaks) or of one resource (truncates, "
                   "DDL, poison without a key).",
                   (double)cs.flushes);
    metrics_scalar(p, "cdcache_cache_fills_total", "counter",
                   "Entries installed from PostgreSQL after a miss.", (double)cs.fills);
    metrics_scalar(p, "cdcache_cache_refreshes_total", "counter",
                   "Entries replaced by a newer after-image from the change stream.",
                   (double)cs.refreshes);
    metrics_scalar(p, "cdcache_cache_fill_waits_total", "counter",
                   "Misses that waited for another fill of the same key.", (double)cs.fill_waits);
    metrics_scalar(p, "cdcache_cache_fill_wait_timeouts_total", "counter",
                   "Misses that gave up waiting for another fill and read PostgreSQL.",
                   (double)cs.fill_wait_timeouts);
    metrics_scalar(p, "cdcache_cache_entries", "gauge",
                   "Entries in the cache, negative ones included.", (double)cs.entries);
    metrics_scalar(p, "cdcache_cache_bytes", "gauge",
                   "Bytes the cache's entries take (counted against cache.max_bytes).",
                   (double)cs.bytes);
    metrics_scalar(p, "cdcache_cache_max_bytes", "gauge",
                   "The cache's byte bound (cache.max_bytes).", (double)cs.max_bytes);
    metrics_family(p, "cdcache_cache_fill_rejections_total", "counter",
                   "Fills not installed, by reason.");
    for (int k = 0; k < CACHE_REJECT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "reason=\"%s\"", cache_reject_name((enum cache_reject)k));
        metrics_sample(p, "cdcache_cache_fill_rejections_total", lab, (double)cs.rejected[k]);
    }
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        metrics_family(p, fam[f].name, fam[f].type, fam[f].help);
        for (unsigned r = 0; r < nr; r++) {
            uint64_t v;
            if (!resource_label(rlab, sizeof(rlab), resource_names, r))
                continue; /* a name too long for a label: the totals above still count it */
            memcpy(&v, (const char *)&per[r] + fam[f].off, sizeof(v));
            metrics_sample(p, fam[f].name, rlab, (double)v);
        }
    }
    free(per);
}

/* --- warm-up support (warm.c): what is hot, and a lease that disturbs nothing --- */

/* A linked entry's key bytes into out (at least CACHE_MAX_KEY bytes); returns its length. A key of
 * at most KEY_INLINE bytes is rebuilt from its word (key_word() determines every byte, given the
 * length); a longer one sits at the start of body[]. */
static size_t entry_key_copy(const struct cache_value *v, char *out)
{
    size_t n = entry_klen(v);

    if (n > KEY_INLINE) {
        memcpy(out, v->body, n);
    } else if (n >= 4) {
        uint32_t lo = (uint32_t)v->kw, hi = (uint32_t)(v->kw >> 32);
        memcpy(out + n - 4, &hi, 4);
        memcpy(out, &lo, 4);
    } else if (n > 0) {
        out[0] = (char)(v->kw & 0xff);
        out[n >> 1] = (char)(v->kw >> 8 & 0xff);
        out[n - 1] = (char)(v->kw >> 16 & 0xff);
    }
    return n;
}

size_t cache_hot_keys(struct cache *c, unsigned res, size_t max,
                      void (*fn)(void *arg, const char *key, size_t len), void *arg)
{
    char key[CACHE_MAX_KEY];
    size_t found = 0;
    /* an even share per shard (rounded up), and a bounded walk: the lock is held for at most
     * 8 nodes per key wanted, never for the whole queue */
    size_t quota = (max + c->nshards - 1) / c->nshards;
    size_t walk = quota * 8;

    assert(res < c->nres);
    if (res >= c->nres || max == 0)
        return 0;
    for (unsigned i = 0; i < c->nshards && found < max; i++) {
        struct cache_shard *s = &c->shards[i];
        size_t taken = 0, steps = 0;
        pthread_mutex_lock(&s->lock);
        /* Hot: read again since it was inserted or last passed over (freq), main's entries (read
         * again after a first eviction or while in small) before small's. Read only: no read
         * count, queue order or counter changes, so S3-FIFO decides exactly as it would have
         * without the sample. */
        for (int q = Q_MAIN; q >= Q_SMALL; q--) {
            for (struct cache_value *v = s->q[q].head;
                 v && taken < quota && found < max && steps < walk; v = v->older, steps++) {
                if (v->freq == 0 || v->pending || v->version < 0 || entry_res(v) != res ||
                    !entry_live(c, v))
                    continue;
                fn(arg, key, entry_key_copy(v, key));
                taken++;
                found++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return found;
}

uint64_t cache_lease_absent(struct cache *c, struct cache_key key)
{
    struct kref k;
    struct cache_shard *s;
    uint64_t lease = 0;

    if (!key_ok(c, key))
        return 0;
    kref_init(c, key, &k);
    s = shard_of(c, &k);
    pthread_mutex_lock(&s->lock);
    if (!find_locked(c, s, &k))
        lease = lease_locked(c, s, &k);
    pthread_mutex_unlock(&s->lock);
    return lease;
}
