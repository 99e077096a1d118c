/* Fuzzes list queries (filter.h) on the shipped resource's descriptor: whatever parses must give a
 * statement within the parameter cap and a next-page query that parses back; a refusal names a
 * field. */
#include "../fixtures.h"
#include "cdcache/filter.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct resource *items;
    struct filter *f = NULL, *again = NULL;
    char err[256], field[128];
    const char *params[FILTER_MAX_PARAMS];
    struct buf sql, next;
    int n = 0;

    if (!items)
        items = fixtures_items_resource(0); /* lives as long as the process */
    if (filter_parse(items, (const char *)data, size, 1000, 1 << 20, &f, err, sizeof(err), field,
                     sizeof(field))) {
        if (!field[0] && !err[0])
            __builtin_trap();
        return 0;
    }
    buf_init(&sql, 1 << 20);
    buf_init(&next, 1 << 16);
    if (filter_sql(f, "\"id\"", &sql, params, &n) == 0 && (n < 0 || n > FILTER_MAX_PARAMS))
        __builtin_trap();
    if (filter_next_query(f, NULL, "42", &next) == 0 &&
        filter_parse(items, next.data ? next.data : "", next.len, 1000, 1 << 20, &again, err,
                     sizeof(err), field, sizeof(field)))
        __builtin_trap(); /* a next page we made must parse */
    filter_free(again);
    filter_free(f);
    buf_free(&sql);
    buf_free(&next);
    return 0;
}
