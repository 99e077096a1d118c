/* The warm-up (see warm.h for the rule that keeps it from installing anything stale).
 *
 * Design. The consumer thread owns the only Redis connection a replica makes (README,
 * Observability), so the two Redis steps run there: warm_publish() every warm.publish_interval_ms
 * (SET ... PX: a bounded, self-expiring sample per replica, found through the retention registry
 * `<prefix>:replicas`, so no key scan is needed and the replica's ACL user needs nothing new), and
 * warm_collect() once, right after the groups are positioned. The fills run on the warm-up's own
 * thread so the consumer never waits for PostgreSQL: batches of warm.batch_keys keys, one
 * `SELECT ... WHERE key = ANY($1)` each (sql_get_many()), at most warm.batches_per_second, each key
 * leased before its batch is read and installed under that lease.
 *
 * Locks: `lock` guards plan, collected, state, done_ms and st; the fill thread takes it only
 * between batches, never across a statement or a cache call. Lock order: lock, then nothing (the
 * cache's shard locks are never taken while it is held). */
#include "cdcache/warm.h"
#include "cdcache/catalog.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"
#include "cdcache/sql.h"
#include "cdcache/util.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARM_SAMPLE_CAP (64u << 20) /* one sample's JSON, written or read */
#define WARM_MAX_PEERS  256         /* samples read at the start */

struct warm {
    const struct config *cfg;
    struct catalog *catalog;
    struct cache *cache;
    struct db *db;
    pthread_t thread;
    bool running;
    _Atomic bool stop;
    int64_t created_ms; /* the ready deadline counts from here (immutable) */
    const char *gate;   /* CDCACHE_TEST_FILL_GATE (tests only; immutable) */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* signalled when collected is set, or on stop */
    struct warm_plan *plan;
    bool collected;
    enum warm_state state;
    int64_t done_ms;
    struct warm_stats st;
};

static const char *const state_names[] = {"waiting", "filling", "done"};

const char *warm_state_name(enum warm_state s)
{
    return (unsigned)s <= WARM_DONE ? state_names[s] : "unknown";
}

/* --- one batch --- */

struct lease_ent {
    const char *key;
    uint64_t lease; /* 0: not leased, or already filled */
};

struct batch {
    struct cache *c;
    unsigned res;
    const struct warm_source *src;
    struct lease_ent *ents; /* sorted by key */
    size_t n;
    struct warm_stats *st;
};

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct lease_ent *)a)->key, ((const struct lease_ent *)b)->key);
}

static void batch_row(void *arg, const char *key, const char *body, size_t len, int64_t version)
{
    struct batch *b = arg;
    struct lease_ent probe = {key, 0};
    struct lease_ent *e = bsearch(&probe, b->ents, b->n, sizeof(*e), ent_cmp);
    struct cache_key k = {b->res, (uint32_t)strlen(key), key};

    if (!e || e->lease == 0)
        return; /* not asked for, or reported twice */
    if (b->src->before_fill)
        b->src->before_fill(b->src->arg, b->res, key);
    if (cache_fill(b->c, k, e->lease, version, body, len, NULL) == 0)
        b->st->warmed++;
    else
        b->st->rejected++;
    e->lease = 0;
}

int warm_fill_batch(struct cache *c, unsigned res, const char *const *keys, size_t n,
                    const struct warm_source *src, struct warm_stats *st)
{
    struct lease_ent *ents = xcalloc(n ? n : 1, sizeof(*ents));
    const char **want = xcalloc(n ? n : 1, sizeof(*want));
    struct batch b = {c, res, src, ents, 0, st};
    int rc = 0;

    /* the leases first: every one is taken before the rows are read */
    for (size_t i = 0; i < n; i++) {
        struct cache_key k = {res, (uint32_t)strlen(keys[i]), keys[i]};
        uint64_t lease = cache_lease_absent(c, k);
        if (lease == 0) {
            st->skipped++;
            continue;
        }
        ents[b.n].key = keys[i];
        ents[b.n].lease = lease;
        want[b.n] = keys[i];
        b.n++;
    }
    if (b.n == 0)
        goto out;
    qsort(ents, b.n, sizeof(*ents), ent_cmp);
    rc = src->fetch(src->arg, res, want, b.n, batch_row, &b);
    st->batches++;
    if (rc)
        st->failed++;
    for (size_t i = 0; i < b.n; i++) {
        if (ents[i].lease) {
            struct cache_key k = {res, (uint32_t)strlen(ents[i].key), ents[i].key};
            cache_fill_abort(c, k, ents[i].lease);
            if (rc == 0)
                st->missing++;
        }
    }
out:
    free(want);
    free(ents);
    return rc;
}

int64_t warm_pace_next(int64_t prev_ms, int64_t now_ms, int64_t per_second)
{
    int64_t gap = per_second > 0 ? 1000 / per_second : 0;

    if (prev_ms == 0 || prev_ms + gap <= now_ms)
        return now_ms; /* behind the pace: go now, without catching up in a burst */
    return prev_ms + gap;
}

/* --- samples --- */

int warm_sample_encode(struct buf *out, size_t nres, const char *const *names,
                       const char *const *const *keys, const size_t *nkeys)
{
    int bad = buf_puts(out, "{");

    for (size_t r = 0; r < nres; r++) {
        bad |= buf_puts(out, r ? ",\"" : "\"");
        bad |= buf_json_escape(out, names[r], strlen(names[r]));
        bad |= buf_puts(out, "\":[");
        for (size_t i = 0; i < nkeys[r]; i++) {
            bad |= buf_puts(out, i ? ",\"" : "\"");
            bad |= buf_json_escape(out, keys[r][i], strlen(keys[r][i]));
            bad |= buf_puts(out, "\"");
        }
        bad |= buf_puts(out, "]");
    }
    bad |= buf_puts(out, "}");
    return bad ? CDC_ETOOBIG : 0;
}

/* A set of strings (open addressing, FNV-1a), for dropping duplicate keys. */
struct strset {
    const char **slot;
    size_t cap; /* a power of two, at least twice the strings it will hold */
};

static bool strset_add(struct strset *s, const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = k; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) {
            s->slot[i] = k;
            return true;
        }
        if (strcmp(s->slot[i], k) == 0)
            return false;
    }
}

struct warm_plan *warm_plan_merge(const char *const *json, size_t nsamples, size_t nres,
                                  const char *const *names, size_t max_keys)
{
    struct warm_plan *p = xcalloc(1, sizeof(*p));
    cJSON **docs = xcalloc(nsamples ? nsamples : 1, sizeof(*docs));

    p->nres = nres;
    p->res = xcalloc(nres ? nres : 1, sizeof(*p->res));
    for (size_t s = 0; s < nsamples; s++)
        docs[s] = json[s] ? cJSON_Parse(json[s]) : NULL;
    for (size_t r = 0; r < nres; r++) {
        struct warm_plan_keys *out = &p->res[r];
        const cJSON **lists = xcalloc(nsamples ? nsamples : 1, sizeof(*lists));
        struct strset set = {NULL, 1};
        size_t total = 0;
        bool more = true;

        for (size_t s = 0; s < nsamples; s++) {
            const cJSON *l = cJSON_IsObject(docs[s])
                                 ? cJSON_GetObjectItemCaseSensitive(docs[s], names[r])
                                 : NULL;
            lists[s] = cJSON_IsArray(l) ? l->child : NULL;
            total += cJSON_IsArray(l) ? (size_t)cJSON_GetArraySize(l) : 0;
        }
        if (total > max_keys)
            total = max_keys;
        while (set.cap < 2 * total + 2)
            set.cap <<= 1;
        set.slot = xcalloc(set.cap, sizeof(*set.slot));
        out->keys = xcalloc(total ? total : 1, sizeof(*out->keys));
        /* in turn from each sample, so every peer's hottest keys come first */
        while (more && out->n < total) {
            more = false;
            for (size_t s = 0; s < nsamples && out->n < total; s++) {
                const cJSON *e = lists[s];
                if (!e)
                    continue;
                lists[s] = e->next;
                more = true;
                if (!cJSON_IsString(e) || !e->valuestring[0] ||
                    strlen(e->valuestring) > CACHE_MAX_KEY || !strset_add(&set, e->valuestring))
                    continue;
                out->keys[out->n++] = e->valuestring;
            }
        }
        /* the set and the list borrowed the documents' strings: copy them before those go */
        for (size_t i = 0; i < out->n; i++)
            out->keys[i] = xstrdup(out->keys[i]);
        free(set.slot);
        free(lists);
    }
    for (size_t s = 0; s < nsamples; s++)
        cJSON_Delete(docs[s]);
    free(docs);
    return p;
}

void warm_plan_free(struct warm_plan *p)
{
    if (!p)
        return;
    for (size_t r = 0; r < p->nres; r++) {
        for (size_t i = 0; i < p->res[r].n; i++)
            free(p->res[r].keys[i]);
        free(p->res[r].keys);
    }
    free(p->res);
    free(p);
}

/* --- Redis (consumer thread) --- */

struct key_list {
    char **keys;
    size_t n, cap;
};

static void collect_key(void *arg, const char *key, size_t len)
{
    struct key_list *l = arg;
    char *k;

    if (l->n == l->cap)
        return; /* cache_hot_keys() gives at most cap */
    k = xmalloc(len + 1);
    memcpy(k, key, len);
    k[len] = '\0';
    l->keys[l->n++] = k;
}

int warm_publish(struct warm *w, struct redisContext *ctx, const char *group)
{
    const struct resource_set *set = catalog_current(w->catalog);
    size_t nres = set ? set->n : 0;
    struct key_list *lists = xcalloc(nres ? nres : 1, sizeof(*lists));
    const char **names = xcalloc(nres ? nres : 1, sizeof(*names));
    size_t *counts = xcalloc(nres ? nres : 1, sizeof(*counts));
    char key[256];
    struct buf payload;
    redisReply *r = NULL;
    int rc = CDC_EREDIS;

    buf_init(&payload, WARM_SAMPLE_CAP);
    for (size_t i = 0; i < nres; i++) {
        lists[i].cap = (size_t)w->cfg->warm_sample_keys;
        lists[i].keys = xcalloc(lists[i].cap, sizeof(char *));
        cache_hot_keys(w->cache, (unsigned)i, lists[i].cap, collect_key, &lists[i]);
        names[i] = set->r[i].name;
        counts[i] = lists[i].n;
    }
    {
        const char *const **keys = xcalloc(nres ? nres : 1, sizeof(*keys));
        for (size_t i = 0; i < nres; i++)
            keys[i] = (const char *const *)lists[i].keys;
        rc = warm_sample_encode(&payload, nres, names, keys, counts);
        free(keys);
    }
    if (rc) {
        LOG_WARN("warm: the sample is over %u bytes: not published", WARM_SAMPLE_CAP);
        goto out;
    }
    rc = CDC_EREDIS;
    if (snprintf(key, sizeof(key), "%s:hot:%s", w->cfg->cdc_group_prefix, group) >=
        (int)sizeof(key))
        goto out;
    {
        char ttl[32];
        const char *argv[5] = {"SET", key, payload.data, "PX", ttl};
        size_t lens[5] = {3, strlen(key), payload.len, 2, 0};
        snprintf(ttl, sizeof(ttl), "%lld", (long long)w->cfg->warm_sample_ttl_ms);
        lens[4] = strlen(ttl);
        r = redisCommandArgv(ctx, 5, argv, lens);
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        LOG_WARN("warm: publishing the sample failed: %s", r          ? r->str
                                                           : ctx->err ? ctx->errstr
                                                                      : "no reply");
        goto out;
    }
    rc = 0;
    pthread_mutex_lock(&w->lock);
    w->st.published++;
    pthread_mutex_unlock(&w->lock);
out:
    freeReplyObject(r);
    for (size_t i = 0; i < nres; i++) {
        for (size_t k = 0; k < lists[i].n; k++)
            free(lists[i].keys[k]);
        free(lists[i].keys);
    }
    free(lists);
    free(names);
    free(counts);
    buf_free(&payload);
    return rc;
}

/* Hands plan (may be NULL: nothing to warm) to the fill thread. Takes ownership of plan. */
static void hand_over(struct warm *w, struct warm_plan *plan, size_t peers)
{
    uint64_t planned = 0;

    for (size_t r = 0; plan && r < plan->nres; r++)
        planned += plan->res[r].n;
    pthread_mutex_lock(&w->lock);
    assert(!w->collected);
    w->plan = plan;
    w->collected = true;
    w->st.planned = planned;
    w->st.peers = peers;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    LOG_INFO("warm: %llu keys to warm from %zu samples", (unsigned long long)planned, peers);
}

int warm_collect(struct warm *w, struct redisContext *ctx)
{
    const struct resource_set *set = catalog_current(w->catalog);
    size_t nres = set ? set->n : 0;
    redisReply *reg = NULL;
    redisReply **got = NULL;
    const char **json = NULL;
    const char **names = NULL;
    size_t peers = 0, sent = 0;
    int rc = CDC_EREDIS;
    bool collected;

    pthread_mutex_lock(&w->lock);
    collected = w->collected;
    pthread_mutex_unlock(&w->lock);
    if (collected)
        return 0; /* once per process: only a start is cold */
    reg = redisCommand(ctx, "HGETALL %s:replicas", w->cfg->cdc_group_prefix);
    if (!reg || reg->type != REDIS_REPLY_ARRAY)
        goto out;
    peers = reg->elements / 2 < WARM_MAX_PEERS ? reg->elements / 2 : WARM_MAX_PEERS;
    got = xcalloc(peers ? peers : 1, sizeof(*got));
    json = xcalloc(peers ? peers : 1, sizeof(*json));
    for (size_t i = 0; i < peers; i++) {
        const redisReply *g = reg->element[2 * i];
        if (g->type != REDIS_REPLY_STRING)
            continue;
        if (redisAppendCommand(ctx, "GET %s:hot:%b", w->cfg->cdc_group_prefix, g->str,
                               (size_t)g->len) != REDIS_OK)
            goto out;
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        if (redisGetReply(ctx, (void **)&got[i]) != REDIS_OK)
            goto out;
        if (got[i] && got[i]->type == REDIS_REPLY_STRING && got[i]->len <= WARM_SAMPLE_CAP)
            json[i] = got[i]->str;
    }
    names = xcalloc(nres ? nres : 1, sizeof(*names));
    for (size_t i = 0; i < nres; i++)
        names[i] = set->r[i].name;
    hand_over(w, warm_plan_merge(json, sent, nres, names, (size_t)w->cfg->warm_max_keys), sent);
    rc = 0;
out:
    if (rc && ctx->err) {
        /* the connection broke: the consumer reconnects, positions again and calls us again */
        LOG_WARN("warm: the peers' samples could not be read (%s): retried after the reconnect",
                 ctx->errstr);
    } else if (rc) {
        /* Redis answered, but not with samples (an ACL without HGETALL or GET on the key) */
        LOG_WARN("warm: the peers' samples could not be read (%s): starting cold",
                 reg && reg->type == REDIS_REPLY_ERROR ? reg->str : "unexpected reply");
        hand_over(w, NULL, 0);
    }
    for (size_t i = 0; got && i < peers; i++)
        freeReplyObject(got[i]);
    free(got);
    free(json);
    free(names);
    freeReplyObject(reg);
    return rc;
}

/* --- the fill thread --- */

static int fetch_pg(void *arg, unsigned res, const char *const *keys, size_t n, warm_row_fn row,
                    void *row_arg)
{
    struct warm *w = arg;
    const struct resource_set *set = catalog_current(w->catalog);

    if (!set || res >= set->n)
        return CDC_EINVAL;
    return sql_get_many(w->db, &set->r[res], keys, n, row, row_arg);
}

/* CDCACHE_TEST_FILL_GATE, as reads.c's: a fill of key K waits while the file <gate>/K exists, and
 * <gate>/K.waiting exists meanwhile, so a test can land a change between a batch's query and its
 * fill. */
static void gate_wait(void *arg, unsigned res, const char *key)
{
    struct warm *w = arg;

    (void)res;
    test_gate_wait(w->gate, key);
}

static void stats_add(struct warm_stats *to, const struct warm_stats *d)
{
    to->warmed += d->warmed;
    to->skipped += d->skipped;
    to->missing += d->missing;
    to->rejected += d->rejected;
    to->batches += d->batches;
    to->failed += d->failed;
}

static void *warm_main(void *arg)
{
    struct warm *w = arg;
    struct warm_source src = {fetch_pg, w->gate ? gate_wait : NULL, w};
    struct warm_plan *plan;
    int64_t prev = 0;
    size_t batch = (size_t)w->cfg->warm_batch_keys;

    pthread_setname_np(pthread_self(), "warm");
    pthread_mutex_lock(&w->lock);
    while (!w->collected && !atomic_load(&w->stop))
        pthread_cond_wait(&w->cond, &w->lock);
    plan = w->plan;
    w->plan = NULL;
    w->state = WARM_FILLING;
    pthread_mutex_unlock(&w->lock);

    for (size_t r = 0; plan && r < plan->nres; r++) {
        for (size_t i = 0; i < plan->res[r].n && !atomic_load(&w->stop); i += batch) {
            struct warm_stats d;
            size_t n = plan->res[r].n - i < batch ? plan->res[r].n - i : batch;
            int64_t at = warm_pace_next(prev, now_mono_ms(), w->cfg->warm_batches_per_second);
            while (now_mono_ms() < at && !atomic_load(&w->stop))
                usleep(1000);
            prev = at;
            memset(&d, 0, sizeof(d));
            if (warm_fill_batch(w->cache, (unsigned)r, (const char *const *)plan->res[r].keys + i,
                                n, &src, &d))
                LOG_WARN("warm: a batch of %zu keys failed: skipped", n);
            pthread_mutex_lock(&w->lock);
            stats_add(&w->st, &d);
            pthread_mutex_unlock(&w->lock);
        }
    }
    warm_plan_free(plan);
    pthread_mutex_lock(&w->lock);
    w->state = WARM_DONE;
    w->done_ms = now_mono_ms();
    LOG_INFO("warm: done in %lld ms: %llu entries warmed, %llu skipped, %llu rejected, %llu "
             "batches",
             (long long)(w->done_ms - w->created_ms), (unsigned long long)w->st.warmed,
             (unsigned long long)w->st.skipped, (unsigned long long)w->st.rejected,
             (unsigned long long)w->st.batches);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct warm *warm_create(const struct config *cfg, struct catalog *catalog, struct cache *cache,
                         struct db *db)
{
    struct warm *w = xcalloc(1, sizeof(*w));
    pthread_condattr_t ca;

    w->cfg = cfg;
    w->catalog = catalog;
    w->cache = cache;
    w->db = db;
    w->created_ms = now_mono_ms();
    w->gate = getenv("CDCACHE_TEST_FILL_GATE");
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->state = WARM_WAITING;
    return w;
}

int warm_start(struct warm *w)
{
    if (pthread_create(&w->thread, NULL, warm_main, w) != 0)
        return CDC_EINVAL;
    w->running = true;
    return 0;
}

void warm_stop(struct warm *w)
{
    if (!w || !w->running)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->running = false;
}

void warm_destroy(struct warm *w)
{
    if (!w)
        return;
    warm_stop(w);
    warm_plan_free(w->plan);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

bool warm_ready(struct warm *w)
{
    bool done;

    pthread_mutex_lock(&w->lock);
    done = w->state == WARM_DONE;
    pthread_mutex_unlock(&w->lock);
    return done || now_mono_ms() - w->created_ms >= w->cfg->warm_ready_deadline_ms;
}

void warm_stats(struct warm *w, struct warm_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->st;
    out->state = w->state;
    out->duration_ms = w->state == WARM_DONE ? w->done_ms - w->created_ms : -1;
    pthread_mutex_unlock(&w->lock);
}

void warm_metrics_render(struct warm *w, struct metrics_page *p)
{
    struct warm_stats st;

    warm_stats(w, &st);
    metrics_scalar(p, "cdcache_warm_done", "gauge",
                   "1 once the start-up warm-up has tried every key of the peers' samples.",
                   st.state == WARM_DONE ? 1 : 0);
    metrics_scalar(p, "cdcache_warm_keys_planned", "gauge",
                   "Distinct keys read from the peers' samples at start.", (double)st.planned);
    metrics_scalar(p, "cdcache_warm_entries_total", "counter", "Entries installed by the warm-up.",
                   (double)st.warmed);
    metrics_scalar(p, "cdcache_warm_skipped_total", "counter",
                   "Warm-up keys already cached or being filled by a read.", (double)st.skipped);
    metrics_scalar(p, "cdcache_warm_missing_total", "counter",
                   "Warm-up keys no longer in PostgreSQL.", (double)st.missing);
    metrics_scalar(p, "cdcache_warm_fill_rejections_total", "counter",
                   "Warm-up fills the cache refused (a change event or flush voided the lease).",
                   (double)st.rejected);
    metrics_scalar(p, "cdcache_warm_batches_total", "counter",
                   "Warm-up statements run against PostgreSQL.", (double)st.batches);
    metrics_scalar(p, "cdcache_warm_batch_failures_total", "counter",
                   "Warm-up statements that failed (their keys were skipped).", (double)st.failed);
    metrics_scalar(p, "cdcache_warm_samples_published_total", "counter",
                   "Hot-key samples this replica wrote to Redis.", (double)st.published);
    if (st.duration_ms >= 0)
        metrics_scalar(p, "cdcache_warm_duration_seconds", "gauge",
                       "From the start of the process until the warm-up was done.",
                       (double)st.duration_ms / 1000.0);
}
