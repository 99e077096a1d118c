/* Metrics: relaxed atomics bumped by workers, summed when /metrics renders. Statuses are indexed
 * directly (100..599), so recording is one atomic add and rendering skips zeros. */
#include "cdcache/metrics.h"
#include "cdcache/cdc.h"
#include "cdcache/db.h"
#include "cdcache/error.h"

#include <stdatomic.h>
#include <stdlib.h>

#define STATUS_MIN  100
#define STATUS_SPAN 500

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
#define NLAT (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
static const int64_t propagation_buckets_ms[] = {1,   2,   3,   4,   5,    6,    8,    10,   12,
                                                 15,  20,  25,  30,  40,   50,   75,   100,  150,
                                                 200, 300, 500, 750, 1000, 2000, 5000, 10000};
#define NPROP (sizeof(propagation_buckets_ms) / sizeof(propagation_buckets_ms[0]))

static const char *const route_labels[] = {
#define METRICS_ROUTE_LABEL(name, label) label,
    METRICS_ROUTES(METRICS_ROUTE_LABEL)
#undef METRICS_ROUTE_LABEL
};

struct metrics {
    _Atomic uint64_t requests[ROUTE_COUNT][STATUS_SPAN];
    _Atomic uint64_t latency[ROUTE_COUNT][NLAT + 1];
    _Atomic uint64_t latency_sum_ns[ROUTE_COUNT];
    _Atomic uint64_t xcache[XCACHE_COUNT];
    _Atomic uint64_t prop[NPROP + 1];
    _Atomic uint64_t prop_sum_ms;
};

struct metrics *metrics_create(void)
{
    return xcalloc(1, sizeof(struct metrics));
}

void metrics_destroy(struct metrics *m)
{
    free(m);
}

void metrics_request(struct metrics *m, enum metrics_route route, int status, int64_t ns)
{
    size_t b = 0;
    double s = (double)ns / 1e9;

    if (status >= STATUS_MIN && status < STATUS_MIN + STATUS_SPAN)
        atomic_fetch_add_explicit(&m->requests[route][status - STATUS_MIN], 1,
                                  memory_order_relaxed);
    while (b < NLAT && s > latency_buckets[b])
        b++;
    atomic_fetch_add_explicit(&m->latency[route][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_ns[route], (uint64_t)(ns > 0 ? ns : 0),
                              memory_order_relaxed);
}

void metrics_xcache(struct metrics *m, enum metrics_xcache kind)
{
    atomic_fetch_add_explicit(&m->xcache[kind], 1, memory_order_relaxed);
}

void metrics_propagation(struct metrics *m, int64_t ms)
{
    size_t b = 0;
    if (ms < 0)
        ms = 0;
    while (b < NPROP && ms > propagation_buckets_ms[b])
        b++;
    atomic_fetch_add_explicit(&m->prop[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->prop_sum_ms, (uint64_t)ms, memory_order_relaxed);
}

static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

int metrics_render(struct metrics *m, const struct cache_stats *cs, const struct cdc_status *cdc,
                   const struct db_stats *db, struct buf *out)
{
    static const char *const xc[] = {"hit", "miss", "bypass"};
    int rc = 0;

    rc |= buf_puts(out, "# HELP cdcache_http_requests_total HTTP requests by route and status.\n"
                        "# TYPE cdcache_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < STATUS_SPAN; s++) {
            uint64_t v = ld(&m->requests[r][s]);
            if (v)
                rc |= buf_printf(out,
                                 "cdcache_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                 route_labels[r], s + STATUS_MIN, (unsigned long long)v);
        }
    rc |= buf_puts(out, "# HELP cdcache_http_request_duration_seconds Request latency by route.\n"
                        "# TYPE cdcache_http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NLAT; b++) {
            cum += ld(&m->latency[r][b]);
            if (b < NLAT)
                rc |= buf_printf(
                    out,
                    "cdcache_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_labels[r], latency_buckets[b], (unsigned long long)cum);
            else
                rc |= buf_printf(
                    out,
                    "cdcache_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                    "cdcache_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                    "cdcache_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    route_labels[r], (unsigned long long)cum, route_labels[r],
                    (double)ld(&m->latency_sum_ns[r]) / 1e9, route_labels[r],
                    (unsigned long long)cum);
        }
    }
    rc |= buf_puts(out,
                   "# HELP cdcache_item_reads_total Item reads by how they were served (X-Cache).\n"
                   "# TYPE cdcache_item_reads_total counter\n");
    for (int k = 0; k < XCACHE_COUNT; k++)
        rc |= buf_printf(out, "cdcache_item_reads_total{x_cache=\"%s\"} %llu\n", xc[k],
                         (unsigned long long)ld(&m->xcache[k]));

    rc |= buf_printf(
        out,
        "# TYPE cdcache_cache_hits_total counter\ncdcache_cache_hits_total %llu\n"
        "# TYPE cdcache_cache_negative_hits_total counter\ncdcache_cache_negative_hits_total %llu\n"
        "# TYPE cdcache_cache_misses_total counter\ncdcache_cache_misses_total %llu\n"
        "# HELP cdcache_cache_evictions_total Entries evicted to stay within the byte bound.\n"
        "# TYPE cdcache_cache_evictions_total counter\ncdcache_cache_evictions_total %llu\n"
        "# HELP cdcache_cache_invalidations_total Entries removed by change events, deletes and "
        "writes.\n"
        "# TYPE cdcache_cache_invalidations_total counter\ncdcache_cache_invalidations_total %llu\n"
        "# TYPE cdcache_cache_flushes_total counter\ncdcache_cache_flushes_total %llu\n"
        "# TYPE cdcache_cache_fills_total counter\ncdcache_cache_fills_total %llu\n"
        "# TYPE cdcache_cache_refreshes_total counter\ncdcache_cache_refreshes_total %llu\n"
        "# HELP cdcache_cache_fill_waits_total Misses that waited for another fill of the same "
        "key.\n"
        "# TYPE cdcache_cache_fill_waits_total counter\ncdcache_cache_fill_waits_total %llu\n"
        "# TYPE cdcache_cache_fill_wait_timeouts_total "
        "counter\ncdcache_cache_fill_wait_timeouts_total %llu\n"
        "# TYPE cdcache_cache_entries gauge\ncdcache_cache_entries %llu\n"
        "# TYPE cdcache_cache_bytes gauge\ncdcache_cache_bytes %llu\n"
        "# TYPE cdcache_cache_max_bytes gauge\ncdcache_cache_max_bytes %llu\n"
        "# HELP cdcache_cache_fill_rejections_total Fills not installed, by reason.\n"
        "# TYPE cdcache_cache_fill_rejections_total counter\n",
        (unsigned long long)cs->hits, (unsigned long long)cs->negative_hits,
        (unsigned long long)cs->misses, (unsigned long long)cs->evictions,
        (unsigned long long)cs->invalidations, (unsigned long long)cs->flushes,
        (unsigned long long)cs->fills, (unsigned long long)cs->refreshes,
        (unsigned long long)cs->fill_waits, (unsigned long long)cs->fill_wait_timeouts,
        (unsigned long long)cs->entries, (unsigned long long)cs->bytes,
        (unsigned long long)cs->max_bytes);
    for (int r = 0; r < CACHE_REJECT_COUNT; r++)
        rc |= buf_printf(out, "cdcache_cache_fill_rejections_total{reason=\"%s\"} %llu\n",
                         cache_reject_name((enum cache_reject)r),
                         (unsigned long long)cs->rejected[r]);

    rc |=
        buf_puts(out, "# HELP cdcache_cdc_events_total Stream entries by what applying them did.\n"
                      "# TYPE cdcache_cdc_events_total counter\n");
    for (int r = 0; r < CDC_RESULT_COUNT; r++)
        rc |= buf_printf(out, "cdcache_cdc_events_total{result=\"%s\"} %llu\n",
                         cdc_result_name((enum cdc_result)r), (unsigned long long)cdc->results[r]);
    {
        const uint64_t *r = cdc->results;
        uint64_t applied = r[CDC_RESULT_REFRESHED] + r[CDC_RESULT_EVICTED] + r[CDC_RESULT_ABSENT] +
                           r[CDC_RESULT_INCOMPLETE] + r[CDC_RESULT_TRUNCATE];
        uint64_t ignored = r[CDC_RESULT_STALE] + r[CDC_RESULT_TOMBSTONE];
        rc |= buf_printf(
            out,
            "# TYPE cdcache_cdc_events_applied_total counter\ncdcache_cdc_events_applied_total "
            "%llu\n"
            "# TYPE cdcache_cdc_events_ignored_total counter\ncdcache_cdc_events_ignored_total "
            "%llu\n"
            "# TYPE cdcache_cdc_events_poison_total counter\ncdcache_cdc_events_poison_total %llu\n"
            "# TYPE cdcache_cdc_heartbeats_total counter\ncdcache_cdc_heartbeats_total %llu\n"
            "# HELP cdcache_cdc_watermarks_total Watermark-row changes read (they vouch for "
            "freshness).\n"
            "# TYPE cdcache_cdc_watermarks_total counter\ncdcache_cdc_watermarks_total %llu\n"
            "# TYPE cdcache_cdc_reconnects_total counter\ncdcache_cdc_reconnects_total %llu\n"
            "# HELP cdcache_cdc_gap_flushes_total Cache flushes because events may have been "
            "lost.\n"
            "# TYPE cdcache_cdc_gap_flushes_total counter\ncdcache_cdc_gap_flushes_total %llu\n"
            "# TYPE cdcache_cdc_attached gauge\ncdcache_cdc_attached %d\n"
            "# HELP cdcache_cdc_vouching 1 when reads may be served from the cache, 0 while "
            "bypassing.\n"
            "# TYPE cdcache_cdc_vouching gauge\ncdcache_cdc_vouching %d\n"
            "# HELP cdcache_cdc_lag_seconds Time since the pipeline was last heard from (-1: "
            "never).\n"
            "# TYPE cdcache_cdc_lag_seconds gauge\ncdcache_cdc_lag_seconds %.3f\n"
            "# TYPE cdcache_cdc_max_staleness_seconds gauge\ncdcache_cdc_max_staleness_seconds "
            "%.3f\n",
            (unsigned long long)applied, (unsigned long long)ignored,
            (unsigned long long)r[CDC_RESULT_POISON], (unsigned long long)cdc->heartbeats,
            (unsigned long long)cdc->watermarks, (unsigned long long)cdc->reconnects,
            (unsigned long long)cdc->gap_flushes, cdc->attached ? 1 : 0, cdc->vouching ? 1 : 0,
            cdc->staleness_ms < 0 ? -1.0 : (double)cdc->staleness_ms / 1000.0,
            (double)cdc->max_staleness_ms / 1000.0);
    }
    rc |= buf_printf(
        out,
        "# HELP cdcache_stream_trims_total Retention passes this replica ran holding the "
        "trim lock.\n# TYPE cdcache_stream_trims_total counter\ncdcache_stream_trims_total %llu\n"
        "# TYPE cdcache_stream_trimmed_entries_total counter\n"
        "cdcache_stream_trimmed_entries_total %llu\n"
        "# HELP cdcache_stream_groups_removed_total Consumer groups of gone replicas deleted.\n"
        "# TYPE cdcache_stream_groups_removed_total counter\n"
        "cdcache_stream_groups_removed_total %llu\n"
        "# TYPE cdcache_stream_consumers_removed_total counter\n"
        "cdcache_stream_consumers_removed_total %llu\n"
        "# HELP cdcache_stream_length Entries in the change stream (-1: unknown).\n"
        "# TYPE cdcache_stream_length gauge\ncdcache_stream_length %lld\n",
        (unsigned long long)cdc->trims, (unsigned long long)cdc->trimmed,
        (unsigned long long)cdc->groups_removed, (unsigned long long)cdc->consumers_removed,
        (long long)cdc->stream_length);
    rc |= buf_puts(out, "# HELP cdcache_db_queries_total Statements sent to PostgreSQL.\n"
                        "# TYPE cdcache_db_queries_total counter\n");
    for (int i = 0; i < DB_STMT_COUNT; i++)
        rc |=
            buf_printf(out, "cdcache_db_queries_total{statement=\"%s\"} %llu\n",
                       db_statement_name((enum db_statement)i), (unsigned long long)db->queries[i]);
    rc |= buf_printf(
        out,
        "# TYPE cdcache_db_errors_total counter\ncdcache_db_errors_total %llu\n"
        "# HELP cdcache_db_pool_waits_total Statements that waited for a pooled connection.\n"
        "# TYPE cdcache_db_pool_waits_total counter\ncdcache_db_pool_waits_total %llu\n"
        "# TYPE cdcache_db_pool_timeouts_total counter\ncdcache_db_pool_timeouts_total %llu\n"
        "# TYPE cdcache_db_pool_connections gauge\ncdcache_db_pool_connections %llu\n"
        "# TYPE cdcache_db_pool_idle gauge\ncdcache_db_pool_idle %llu\n",
        (unsigned long long)db->errors, (unsigned long long)db->pool_waits,
        (unsigned long long)db->pool_timeouts, (unsigned long long)db->pool_open,
        (unsigned long long)db->pool_idle);
    rc |= buf_puts(out,
                   "# HELP cdcache_cdc_propagation_seconds Commit in PostgreSQL to applied here.\n"
                   "# TYPE cdcache_cdc_propagation_seconds histogram\n");
    {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NPROP; b++) {
            cum += ld(&m->prop[b]);
            if (b < NPROP)
                rc |=
                    buf_printf(out, "cdcache_cdc_propagation_seconds_bucket{le=\"%g\"} %llu\n",
                               (double)propagation_buckets_ms[b] / 1000.0, (unsigned long long)cum);
        }
        rc |= buf_printf(out,
                         "cdcache_cdc_propagation_seconds_bucket{le=\"+Inf\"} %llu\n"
                         "cdcache_cdc_propagation_seconds_sum %.3f\n"
                         "cdcache_cdc_propagation_seconds_count %llu\n",
                         (unsigned long long)cum, (double)ld(&m->prop_sum_ms) / 1000.0,
                         (unsigned long long)cum);
    }
    return rc ? CDC_ETOOBIG : 0;
}
