/* Fuzzes the request body parser (row.h) in every mode, on the shipped resource's descriptor. */
#include "../fixtures.h"
#include "cdcache/row.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct resource *items;
    char err[256], field[128];

    if (!items)
        items = fixtures_items_resource(0); /* lives as long as the process */
    for (int mode = ROW_CREATE; mode <= ROW_UPSERT; mode++) {
        struct row_input in;
        if (row_input_parse(items, (const char *)data, size, (enum row_mode)mode, &in, err,
                            sizeof(err), field, sizeof(field)) == 0) {
            for (size_t i = 0; i < in.n; i++)
                if (in.col[i] < 0 || (size_t)in.col[i] >= items->ncolumns ||
                    in.col[i] == items->version)
                    __builtin_trap();
            row_input_free(&in);
        }
    }
    return 0;
}
