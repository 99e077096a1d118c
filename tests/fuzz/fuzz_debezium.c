/* Fuzzes stream entry decoding: the input is split at the first NUL into a field name and a value
 * (compact format), and also decoded as a heartbeat. Differential on success: the scanner is
 * stricter than cJSON, so whatever it accepts cJSON must parse too, with the same op, and the body
 * rendered from the after-image must be JSON that carries the after-image's name and description
 * exactly (escapes decoded the same way). */
#include "../fixtures.h"
#include "cdcache/debezium.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *text_of(const cJSON *obj, const char *name)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static void check_against_cjson(const struct dbz_field *f, const struct dbz_event *ev)
{
    cJSON *val, *body;
    const char *op, *want, *got;

    if (ev->op == DBZ_OP_TOMBSTONE)
        return;
    val = cJSON_ParseWithLength(f->value, f->value_len);
    if (!cJSON_IsObject(val))
        __builtin_trap();
    op = text_of(val, "op");
    if (!op || strcmp(op, dbz_op_name(ev->op)) != 0)
        __builtin_trap();
    if (ev->complete) {
        const cJSON *after = cJSON_GetObjectItemCaseSensitive(val, "after");
        body = cJSON_ParseWithLength(ev->body.data, ev->body.len);
        if (!cJSON_IsObject(body))
            __builtin_trap();
        for (int i = 0; i < 2; i++) {
            const char *col = i ? "description" : "name";
            want = text_of(after, col);
            got = text_of(body, col);
            if (!want || !got || strcmp(want, got) != 0)
                __builtin_trap();
        }
        cJSON_Delete(body);
    }
    cJSON_Delete(val);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t klen = nul ? (size_t)(nul - s) : size;
    struct dbz_field f = {s, klen, nul ? nul + 1 : "", nul ? size - klen - 1 : 0};
    struct dbz_event ev;
    char err[160];
    struct dbz_watermark wm;
    static struct resource *items;
    char table[256];

    if (!items)
        items = fixtures_items_resource(0); /* lives as long as the process */
    if (dbz_decode(items, &f, 1, &ev, err, sizeof(err)) == 0) {
        if (ev.complete && ev.body.len == 0)
            __builtin_trap();
        check_against_cjson(&f, &ev);
    }
    dbz_event_clear(&ev);
    /* the watermark chain's links: a decoded seq is an exact integer, never a guess */
    if (dbz_decode_watermark(&f, 1, &wm) == 0 && wm.has_seq && !memmem(s, size, "seq", 3))
        __builtin_trap();
    (void)dbz_decode_ddl(&f, 1, table, sizeof(table));
    return 0;
}
