/* Metrics through their public header: the page writers and the propagation histogram's edges. */
#include "cdcache/metrics.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

static double sample_of(const char *page, const char *series)
{
    const char *p = strstr(page, series);
    cr_assert(p, "no %s in:\n%s", series, page);
    return strtod(p + strlen(series), NULL);
}

Test(metrics, propagation_takes_any_commit_time)
{
    struct metrics *m = metrics_create(0);
    struct metrics_page p;
    struct buf out;

    /* a commit time far in the past or in the future (a forged entry, a bad clock): the times run
     * under UBSan in make test-sanitize, where an overflowing multiplication halts */
    metrics_propagation(m, INT64_MAX - 1);
    metrics_propagation(m, -9223370241553614153LL);
    metrics_propagation(m, INT64_MIN);
    metrics_propagation(m, 3);
    buf_init(&out, 1 << 20);
    p.out = &out;
    p.rc = 0;
    metrics_render(m, &p, NULL, NULL);
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(buf_append(&out, "", 1), 0);
    cr_assert_eq(sample_of(out.data, "cdcache_cdc_propagation_seconds_count "), 4);
    cr_assert_eq(sample_of(out.data, "cdcache_cdc_propagation_seconds_bucket{le=\"0.001\"} "), 2,
                 "times before the commit count as 0");
    cr_assert_eq(sample_of(out.data, "cdcache_cdc_propagation_seconds_bucket{le=\"10\"} "), 3);
    cr_assert_eq(sample_of(out.data, "cdcache_cdc_propagation_seconds_sum "), 86400.003,
                 "a day at most per entry");
    buf_free(&out);
    metrics_destroy(m);
}

Test(metrics, writers_shape_a_family)
{
    struct metrics_page p;
    struct buf out;

    buf_init(&out, 1 << 16);
    p.out = &out;
    p.rc = 0;
    metrics_scalar(&p, "x_total", "counter", "Things.", 3);
    metrics_family(&p, "y", "gauge", NULL);
    metrics_sample(&p, "y", "k=\"v\"", 0.5);
    cr_assert_eq(buf_append(&out, "", 1), 0);
    cr_assert_str_eq(out.data, "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n"
                               "# TYPE y gauge\ny{k=\"v\"} 0.5\n");
    buf_free(&out);
}

Test(metrics, resource_routes_are_labelled_by_resource_and_key)
{
    const char *names[] = {"items", "customers"}, *keys[] = {"id", "customer_id"};
    struct metrics *m = metrics_create(2);
    char label[128];
    struct metrics_page p;
    struct buf out;

    metrics_resource_request(m, RROUTE_GET, 0, 200, 1000);
    metrics_resource_request(m, RROUTE_GET, 1, 200, 1000);
    metrics_resource_request(m, RROUTE_GET, 1, 200, 1000);
    metrics_resource_request(m, RROUTE_DELETE, 1, 404, 1000);
    metrics_resource_request(m, RROUTE_GET, 2, 200, 1000); /* no such resource: ignored */
    cr_assert_str_eq(
        metrics_resource_route_label(RROUTE_LIST, "customers", "customer_id", label, sizeof(label)),
        "GET /customers");
    buf_init(&out, 1 << 20);
    p.out = &out;
    p.rc = 0;
    metrics_render(m, &p, names, keys);
    cr_assert_eq(buf_append(&out, "", 1), 0);
    cr_assert_eq(sample_of(out.data, "cdcache_http_requests_total{route=\"GET /items/{id}\","
                                     "status=\"200\"} "),
                 1);
    cr_assert_eq(sample_of(out.data, "cdcache_http_requests_total{route=\"GET "
                                     "/customers/{customer_id}\",status=\"200\"} "),
                 2);
    cr_assert_eq(sample_of(out.data, "cdcache_http_requests_total{route=\"DELETE "
                                     "/customers/{customer_id}\",status=\"404\"} "),
                 1);
    buf_free(&out);
    metrics_destroy(m);
}
