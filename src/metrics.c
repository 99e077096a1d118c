/* Metrics: relaxed atomics bumped by workers, summed when /metrics renders. Statuses are indexed
 * directly (100..599), so recording is one atomic add and rendering skips zeros. Rendering goes
 * through three writers (family, sample, histogram series), so every series has the same shape. */
#include "cdcache/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const char *metrics_route_label(enum metrics_route route)
{
    return (unsigned)route < sizeof(route_labels) / sizeof(route_labels[0]) ? route_labels[route]
                                                                            : "other";
}

/* A histogram: per-bucket counts (not cumulative; the last is +Inf) and the sum in nanoseconds. */
struct histogram {
    _Atomic uint64_t counts[NPROP > NLAT ? NPROP + 1 : NLAT + 1];
    _Atomic uint64_t sum_ns;
};

/* One resource's routes: counts by status, and latency. */
struct resource_routes {
    _Atomic uint64_t requests[RROUTE_COUNT][STATUS_SPAN];
    struct histogram latency[RROUTE_COUNT];
};

struct metrics {
    _Atomic uint64_t requests[ROUTE_COUNT][STATUS_SPAN];
    struct histogram latency[ROUTE_COUNT];
    struct resource_routes *res; /* nres */
    size_t nres;
    _Atomic uint64_t xcache[XCACHE_COUNT];
    struct histogram propagation;
};

static const struct {
    const char *method;
    bool row;
} resource_routes[] = {
#define METRICS_RESOURCE_ROUTE_ROW(name, method, row) {method, row},
    METRICS_RESOURCE_ROUTES(METRICS_RESOURCE_ROUTE_ROW)
#undef METRICS_RESOURCE_ROUTE_ROW
};

struct metrics *metrics_create(size_t nresources)
{
    struct metrics *m = xcalloc(1, sizeof(*m));

    m->nres = nresources;
    m->res = xcalloc(nresources ? nresources : 1, sizeof(*m->res));
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    free(m->res);
    free(m);
}

const char *metrics_resource_route_label(enum metrics_resource_route rr, const char *name,
                                         const char *key, char *out, size_t cap)
{
    if ((unsigned)rr >= RROUTE_COUNT)
        snprintf(out, cap, "other");
    else if (resource_routes[rr].row)
        snprintf(out, cap, "%s /%s/{%s}", resource_routes[rr].method, name, key);
    else
        snprintf(out, cap, "%s /%s", resource_routes[rr].method, name);
    return out;
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

void metrics_resource_request(struct metrics *m, enum metrics_resource_route rr, unsigned res,
                              int status, int64_t ns)
{
    if (res >= m->nres || (unsigned)rr >= RROUTE_COUNT)
        return;
    if (status >= STATUS_MIN && status < STATUS_MIN + STATUS_SPAN)
        atomic_fetch_add_explicit(&m->res[res].requests[rr][status - STATUS_MIN], 1,
                                  memory_order_relaxed);
    observe(&m->res[res].latency[rr], latency_buckets, NLAT, ns);
}

void metrics_xcache(struct metrics *m, enum metrics_xcache kind)
{
    atomic_fetch_add_explicit(&m->xcache[kind], 1, memory_order_relaxed);
}

void metrics_propagation(struct metrics *m, int64_t ms)
{
    /* clamped before scaling: a commit time far in the past (a bad clock, a forged entry) must not
     * overflow the multiplication; a day is beyond the last bucket */
    if (ms > 86400000)
        ms = 86400000;
    else if (ms < 0)
        ms = 0; /* an entry stamped in the future (clock skew) */
    observe(&m->propagation, propagation_buckets, NPROP, ms * 1000000);
}

static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

void metrics_family(struct metrics_page *p, const char *name, const char *type, const char *help)
{
    if (help)
        p->rc |= buf_printf(p->out, "# HELP %s %s\n", name, help);
    p->rc |= buf_printf(p->out, "# TYPE %s %s\n", name, type);
}

void metrics_sample(struct metrics_page *p, const char *name, const char *labels, double v)
{
    /* counters print as integers (exact up to 2^53), fractions with 9 significant digits */
    bool whole = v < 9007199254740992.0 && v > -9007199254740992.0 && v == (double)(int64_t)v;
    p->rc |= buf_printf(p->out, whole ? "%s%s%s%s %.0f\n" : "%s%s%s%s %.9g\n", name,
                        labels ? "{" : "", labels ? labels : "", labels ? "}" : "", v);
}

void metrics_scalar(struct metrics_page *p, const char *name, const char *type, const char *help,
                    double v)
{
    metrics_family(p, name, type, help);
    metrics_sample(p, name, NULL, v);
}

/* The series of one histogram (cumulative buckets, sum in seconds, count); labels as in
 * metrics_sample().
 */
static void histogram_series(struct metrics_page *p, const char *name, const char *labels,
                             struct histogram *h, const double *bounds, size_t n)
{
    char series[128], lab[1024];
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
        metrics_sample(p, series, lab, (double)cum);
    }
    snprintf(series, sizeof(series), "%s_sum", name);
    metrics_sample(p, series, labels, (double)ld(&h->sum_ns) / 1e9);
    snprintf(series, sizeof(series), "%s_count", name);
    metrics_sample(p, series, labels, (double)cum);
}

/* The request counts of one route by status. */
static void requests_series(struct metrics_page *p, const char *route, _Atomic uint64_t *counts)
{
    struct buf lab;

    buf_init(&lab, 4096);
    for (int s = 0; s < STATUS_SPAN; s++) {
        uint64_t v = ld(&counts[s]);
        if (!v)
            continue;
        buf_reset(&lab);
        buf_puts(&lab, "route=\"");
        buf_json_escape(&lab, route, strlen(route)); /* Prometheus escapes as JSON does */
        buf_printf(&lab, "\",status=\"%d\"", s + STATUS_MIN);
        metrics_sample(p, "cdcache_http_requests_total", lab.data, (double)v);
    }
    buf_free(&lab);
}

static void latency_series(struct metrics_page *p, const char *route, struct histogram *h)
{
    struct buf lab;

    buf_init(&lab, 4096);
    buf_puts(&lab, "route=\"");
    buf_json_escape(&lab, route, strlen(route));
    buf_puts(&lab, "\"");
    histogram_series(p, "cdcache_http_request_duration_seconds", lab.data, h, latency_buckets,
                     NLAT);
    buf_free(&lab);
}

void metrics_render(struct metrics *m, struct metrics_page *p, const char *const *names,
                    const char *const *keys)
{
    static const char *const xc[] = {"hit", "miss", "bypass"};
    char lab[160], route[512];

    metrics_family(p, "cdcache_http_requests_total", "counter",
                   "HTTP requests by route and status.");
    for (size_t i = 0; i < m->nres; i++)
        for (int rr = 0; rr < RROUTE_COUNT; rr++)
            requests_series(p,
                            metrics_resource_route_label((enum metrics_resource_route)rr, names[i],
                                                         keys[i], route, sizeof(route)),
                            m->res[i].requests[rr]);
    for (int rt = 0; rt < ROUTE_COUNT; rt++)
        requests_series(p, route_labels[rt], m->requests[rt]);
    metrics_family(p, "cdcache_http_request_duration_seconds", "histogram",
                   "Request latency by route.");
    for (size_t i = 0; i < m->nres; i++)
        for (int rr = 0; rr < RROUTE_COUNT; rr++)
            latency_series(p,
                           metrics_resource_route_label((enum metrics_resource_route)rr, names[i],
                                                        keys[i], route, sizeof(route)),
                           &m->res[i].latency[rr]);
    for (int rt = 0; rt < ROUTE_COUNT; rt++)
        latency_series(p, route_labels[rt], &m->latency[rt]);
    metrics_family(p, "cdcache_item_reads_total", "counter",
                   "Item reads by how they were served (X-Cache).");
    for (int k = 0; k < XCACHE_COUNT; k++) {
        snprintf(lab, sizeof(lab), "x_cache=\"%s\"", xc[k]);
        metrics_sample(p, "cdcache_item_reads_total", lab, (double)ld(&m->xcache[k]));
    }
    metrics_family(p, "cdcache_cdc_propagation_seconds", "histogram",
                   "Commit in PostgreSQL to applied here.");
    histogram_series(p, "cdcache_cdc_propagation_seconds", NULL, &m->propagation,
                     propagation_buckets, NPROP);
}
