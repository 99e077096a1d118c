/* Metrics: relaxed atomics bumped by workers, summed when /metrics renders. Statuses are indexed
 * directly (100..599), so recording is one atomic add and rendering skips zeros. Rendering goes
 * through three writers (family, sample, histogram series), so every series has the same shape. */
#include "cdcache/metrics.h"
#include "cdcache/cdc.h"
#include "cdcache/db.h"
#include "cdcache/error.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define STATUS_MIN  100
#define STATUS_SPAN 500

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
#define NLAT (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
static const double propagation_buckets[] = {
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020, 0.025, 0.030,
    0.040, 0.050, 0.075, 0.100, 0.150, 0.200, 0.300, 0.500, 0.750, 1.0,   2.0,   5.0,   10.0};
#define NPROP (sizeof(propagation_buckets) / sizeof(propagation_buckets[0]))

static const char *const route_labels[] = {
#define METRICS_ROUTE_LABEL(name, label) label,
    METRICS_ROUTES(METRICS_ROUTE_LABEL)
#undef METRICS_ROUTE_LABEL
};

/* A histogram: per-bucket counts (not cumulative; the last is +Inf) and the sum in nanoseconds. */
struct histogram {
    _Atomic uint64_t counts[NPROP > NLAT ? NPROP + 1 : NLAT + 1];
    _Atomic uint64_t sum_ns;
};

struct metrics {
    _Atomic uint64_t requests[ROUTE_COUNT][STATUS_SPAN];
    struct histogram latency[ROUTE_COUNT];
    _Atomic uint64_t xcache[XCACHE_COUNT];
    struct histogram propagation;
};

struct metrics *metrics_create(void)
{
    return xcalloc(1, sizeof(struct metrics));
}

void metrics_destroy(struct metrics *m)
{
    free(m);
}

static void observe(struct histogram *h, const double *bounds, size_t n, int64_t ns)
{
    double s;
    size_t b = 0;

    if (ns < 0)
        ns = 0;
    s = (double)ns / 1e9;
    while (b < n && s > bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->counts[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)ns, memory_order_relaxed);
}

void metrics_request(struct metrics *m, enum metrics_route route, int status, int64_t ns)
{
    if (status >= STATUS_MIN && status < STATUS_MIN + STATUS_SPAN)
        atomic_fetch_add_explicit(&m->requests[route][status - STATUS_MIN], 1,
                                  memory_order_relaxed);
    observe(&m->latency[route], latency_buckets, NLAT, ns);
}

void metrics_xcache(struct metrics *m, enum metrics_xcache kind)
{
    atomic_fetch_add_explicit(&m->xcache[kind], 1, memory_order_relaxed);
}

void metrics_propagation(struct metrics *m, int64_t ms)
{
    observe(&m->propagation, propagation_buckets, NPROP, ms * 1000000);
}

static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* Prometheus text exposition; the first failed append (the page's cap) sticks in rc. */
struct page {
    struct buf *out;
    int rc;
};

/* Starts a metric family: HELP (when there is one) and TYPE. */
static void family(struct page *p, const char *name, const char *type, const char *help)
{
    if (help)
        p->rc |= buf_printf(p->out, "# HELP %s %s\n", name, help);
    p->rc |= buf_printf(p->out, "# TYPE %s %s\n", name, type);
}

/* One sample; labels is `key="value"` text or NULL. */
static void sample(struct page *p, const char *name, const char *labels, double v)
{
    /* counters print as integers (exact up to 2^53), fractions with 9 significant digits */
    bool whole = v < 9007199254740992.0 && v > -9007199254740992.0 && v == (double)(int64_t)v;
    p->rc |= buf_printf(p->out, whole ? "%s%s%s%s %.0f\n" : "%s%s%s%s %.9g\n", name,
                        labels ? "{" : "", labels ? labels : "", labels ? "}" : "", v);
}

static void scalar(struct page *p, const char *name, const char *type, const char *help, double v)
{
    family(p, name, type, help);
    sample(p, name, NULL, v);
}

/* The series of one histogram (cumulative buckets, sum in seconds, count); labels as in sample().
 */
static void histogram_series(struct page *p, const char *name, const char *labels,
                             struct histogram *h, const double *bounds, size_t n)
{
    char series[128], lab[192];
    uint64_t cum = 0;

    snprintf(series, sizeof(series), "%s_bucket", name);
    for (size_t b = 0; b <= n; b++) {
        char le[32];
        cum += ld(&h->counts[b]);
        if (b < n)
            snprintf(le, sizeof(le), "%g", bounds[b]);
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(lab, sizeof(lab), "%s%sle=\"%s\"", labels ? labels : "", labels ? "," : "", le);
        sample(p, series, lab, (double)cum);
    }
    snprintf(series, sizeof(series), "%s_sum", name);
    sample(p, series, labels, (double)ld(&h->sum_ns) / 1e9);
    snprintf(series, sizeof(series), "%s_count", name);
    sample(p, series, labels, (double)cum);
}

int metrics_render(struct metrics *m, const struct cache_stats *cs, const struct cdc_status *cdc,
                   const struct db_stats *db, struct buf *out)
{
    static const char *const xc[] = {"hit", "miss", "bypass"};
    const uint64_t *r = cdc->results;
    struct page p = {out, 0};
    char lab[160];

    family(&p, "cdcache_http_requests_total", "counter", "HTTP requests by route and status.");
    for (int rt = 0; rt < ROUTE_COUNT; rt++)
        for (int s = 0; s < STATUS_SPAN; s++) {
            uint64_t v = ld(&m->requests[rt][s]);
            if (!v)
                continue;
            snprintf(lab, sizeof(lab), "route=\"%s\",status=\"%d\"", route_labels[rt],
                     s + STATUS_MIN);
            sample(&p, "cdcache_http_requests_total", lab, (double)v);
        }
    family(&p, "cdcache_http_request_duration_seconds", "histogram", "Request latency by route.");
    for (int rt = 0; rt < ROUTE_COUNT; rt++) {
        snprintf(lab, sizeof(lab), "route=\"%s\"", route_labels[rt]);
        histogram_series(&p, "cdcache_http_request_duration_seconds", lab, &m->latency[rt],
                         latency_buckets, NLAT);
    }
    family(&p, "cdcache_item_reads_total", "counter",
           "Item reads by how they were served (X-Cache).");
    for (int k = 0; k < XCACHE_COUNT; k++) {
        snprintf(lab, sizeof(lab), "x_cache=\"%s\"", xc[k]);
        sample(&p, "cdcache_item_reads_total", lab, (double)ld(&m->xcache[k]));
    }

    scalar(&p, "cdcache_cache_hits_total", "counter", NULL, (double)cs->hits);
    scalar(&p, "cdcache_cache_negative_hits_total", "counter", NULL, (double)cs->negative_hits);
    scalar(&p, "cdcache_cache_misses_total", "counter", NULL, (double)cs->misses);
    scalar(&p, "cdcache_cache_evictions_total", "counter",
           "Entries evicted to stay within the byte bound.", (double)cs->evictions);
    scalar(&p, "cdcache_cache_invalidations_total", "counter",
           "Entries removed by change events, deletes and writes.", (double)cs->invalidations);
    scalar(&p, "cdcache_cache_flushes_total", "counter", NULL, (double)cs->flushes);
    scalar(&p, "cdcache_cache_fills_total", "counter", NULL, (double)cs->fills);
    scalar(&p, "cdcache_cache_refreshes_total", "counter", NULL, (double)cs->refreshes);
    scalar(&p, "cdcache_cache_fill_waits_total", "counter",
           "Misses that waited for another fill of the same key.", (double)cs->fill_waits);
    scalar(&p, "cdcache_cache_fill_wait_timeouts_total", "counter", NULL,
           (double)cs->fill_wait_timeouts);
    scalar(&p, "cdcache_cache_entries", "gauge", NULL, (double)cs->entries);
    scalar(&p, "cdcache_cache_bytes", "gauge", NULL, (double)cs->bytes);
    scalar(&p, "cdcache_cache_max_bytes", "gauge", NULL, (double)cs->max_bytes);
    family(&p, "cdcache_cache_fill_rejections_total", "counter", "Fills not installed, by reason.");
    for (int k = 0; k < CACHE_REJECT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "reason=\"%s\"", cache_reject_name((enum cache_reject)k));
        sample(&p, "cdcache_cache_fill_rejections_total", lab, (double)cs->rejected[k]);
    }

    family(&p, "cdcache_cdc_events_total", "counter", "Stream entries by what applying them did.");
    for (int k = 0; k < CDC_RESULT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "result=\"%s\"", cdc_result_name((enum cdc_result)k));
        sample(&p, "cdcache_cdc_events_total", lab, (double)r[k]);
    }
    scalar(&p, "cdcache_cdc_events_applied_total", "counter", NULL,
           (double)(r[CDC_RESULT_REFRESHED] + r[CDC_RESULT_EVICTED] + r[CDC_RESULT_ABSENT] +
                    r[CDC_RESULT_INCOMPLETE] + r[CDC_RESULT_TRUNCATE]));
    scalar(&p, "cdcache_cdc_events_ignored_total", "counter", NULL,
           (double)(r[CDC_RESULT_STALE] + r[CDC_RESULT_TOMBSTONE]));
    scalar(&p, "cdcache_cdc_events_poison_total", "counter", NULL, (double)r[CDC_RESULT_POISON]);
    scalar(&p, "cdcache_cdc_heartbeats_total", "counter", NULL, (double)cdc->heartbeats);
    scalar(&p, "cdcache_cdc_watermarks_total", "counter",
           "Watermark-row changes read (they vouch for freshness).", (double)cdc->watermarks);
    scalar(&p, "cdcache_cdc_reconnects_total", "counter", NULL, (double)cdc->reconnects);
    scalar(&p, "cdcache_cdc_gap_flushes_total", "counter",
           "Cache flushes because events may have been lost.", (double)cdc->gap_flushes);
    scalar(&p, "cdcache_cdc_attached", "gauge", NULL, cdc->attached ? 1 : 0);
    scalar(&p, "cdcache_cdc_vouching", "gauge",
           "1 when reads may be served from the cache, 0 while bypassing.", cdc->vouching ? 1 : 0);
    scalar(&p, "cdcache_cdc_lag_seconds", "gauge",
           "Time since the pipeline last vouched for freshness (-1: never).",
           cdc->staleness_ms < 0 ? -1.0 : (double)cdc->staleness_ms / 1000.0);
    scalar(&p, "cdcache_cdc_max_staleness_seconds", "gauge", NULL,
           (double)cdc->max_staleness_ms / 1000.0);
    family(&p, "cdcache_cdc_propagation_seconds", "histogram",
           "Commit in PostgreSQL to applied here.");
    histogram_series(&p, "cdcache_cdc_propagation_seconds", NULL, &m->propagation,
                     propagation_buckets, NPROP);

    scalar(&p, "cdcache_stream_trims_total", "counter",
           "Retention passes this replica ran holding the trim lock.", (double)cdc->trims);
    scalar(&p, "cdcache_stream_trimmed_entries_total", "counter", NULL, (double)cdc->trimmed);
    scalar(&p, "cdcache_stream_groups_removed_total", "counter",
           "Consumer groups of gone replicas deleted.", (double)cdc->groups_removed);
    scalar(&p, "cdcache_stream_consumers_removed_total", "counter", NULL,
           (double)cdc->consumers_removed);
    scalar(&p, "cdcache_stream_length", "gauge", "Entries in the change stream (-1: unknown).",
           (double)cdc->stream_length);

    family(&p, "cdcache_db_queries_total", "counter", "Statements sent to PostgreSQL.");
    for (int k = 0; k < DB_STMT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "statement=\"%s\"", db_statement_name((enum db_statement)k));
        sample(&p, "cdcache_db_queries_total", lab, (double)db->queries[k]);
    }
    scalar(&p, "cdcache_db_errors_total", "counter", NULL, (double)db->errors);
    scalar(&p, "cdcache_db_pool_waits_total", "counter",
           "Statements that waited for a pooled connection.", (double)db->pool_waits);
    scalar(&p, "cdcache_db_pool_timeouts_total", "counter", NULL, (double)db->pool_timeouts);
    scalar(&p, "cdcache_db_pool_connections", "gauge", NULL, (double)db->pool_open);
    scalar(&p, "cdcache_db_pool_idle", "gauge", NULL, (double)db->pool_idle);
    return p.rc ? CDC_ETOOBIG : 0;
}
