/* Fuzzes stream entry decoding: the input is split at the first NUL into a field name and a value
 * (compact format), and also decoded as a heartbeat. */
#include "cdcache/debezium.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t klen = nul ? (size_t)(nul - s) : size;
    struct dbz_field f = {s, klen, nul ? nul + 1 : "", nul ? size - klen - 1 : 0};
    struct dbz_event ev;
    char err[160];
    int64_t ts;

    if (dbz_decode(&f, 1, &ev, err, sizeof(err)) == 0 && ev.complete && ev.body.len == 0)
        __builtin_trap();
    dbz_event_clear(&ev);
    dbz_decode_heartbeat(&f, 1, &ts);
    return 0;
}
