/* Fuzzes the request body parser in every mode. */
#include "cdcache/body.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[200], field[64];
    for (int mode = BODY_CREATE; mode <= BODY_UPSERT; mode++) {
        struct item_input in;
        if (body_parse_item((const char *)data, size, (enum body_mode)mode, &in, err, sizeof(err),
                            field, sizeof(field)) == 0) {
            if (in.has_price && strlen(in.price) == 0)
                __builtin_trap();
            body_item_free(&in);
        }
    }
    return 0;
}
