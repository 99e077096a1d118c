/* Fuzzes the row codec: PostgreSQL text, Debezium values, request values and keys, for every kind,
 * array or not, with any typmod. The first byte picks the kind and the array flag, the next two the
 * typmod; the rest is the value. Whatever renders must be one valid JSON value, and a refusal must
 * leave the output as it was. */
#include "cdcache/codec.h"
#include "cdcache/error.h"
#include "cdcache/json.h"
#include "cdcache/util.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const struct buf *b, size_t mark)
{
    struct json_cursor c;
    struct json_span v;
    const char *why;
    json_cursor_init(&c, b->data + mark, b->len - mark);
    if (json_value(&c, &v, &why) || !json_at_end(&c))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct codec_type t;
    struct buf out;
    const char *s;
    size_t n, mark = 1;
    char err[128], key[256];
    size_t keylen;
    bool is_null;

    if (size < 3)
        return 0;
    t.kind = (enum codec_kind)(data[0] % (CODEC_OTHER + 1));
    t.array = data[0] & 0x80;
    t.typmod = (int32_t)(int16_t)(data[1] | data[2] << 8);
    t.oid = data[0] & 0x40 ? 1007 : 0;
    s = (const char *)data + 3;
    n = size - 3;
    buf_init(&out, 1 << 16);
    buf_append(&out, "x", 1); /* a mark: a refusal must leave it alone */

    if (codec_render_pg(&t, s, n, &out) == 0)
        check_json(&out, mark);
    else if (out.len != mark)
        __builtin_trap();
    out.len = mark;

    {
        struct json_cursor c;
        struct json_span v;
        const char *why;
        json_cursor_init(&c, s, n);
        if (json_value(&c, &v, &why) == 0 && json_at_end(&c)) {
            (void)codec_dbz_unavailable(&t, &v);
            if (codec_render_dbz(&t, &v, &out) == 0)
                check_json(&out, mark);
            else if (out.len != mark)
                __builtin_trap();
            out.len = mark;
            if (codec_param(&t, &v, &out, &is_null, err, sizeof(err)) != 0 && out.len != mark)
                __builtin_trap();
            out.len = mark;
            if (codec_key_dbz(&t, &v, key, sizeof(key), &keylen) == 0 && strlen(key) != keylen)
                __builtin_trap();
        }
    }
    if (codec_param_text(&t, s, n, &out, err, sizeof(err)) != 0 && out.len != mark)
        __builtin_trap();
    if (codec_key_canon(&t, s, n, key, sizeof(key), &keylen) == 0) {
        char again[256];
        size_t againlen;
        /* canonical means a fixed point */
        if (codec_key_canon(&t, key, keylen, again, sizeof(again), &againlen) != 0 ||
            againlen != keylen || memcmp(again, key, keylen) != 0)
            __builtin_trap();
    }
    buf_free(&out);
    return 0;
}
