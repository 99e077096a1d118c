/* Debezium entry decoding. The value envelope (schemas disabled) is
 *   {"before":{..}|null,"after":{..}|null,"source":{..,"ts_ms":..},"op":"c|u|d|r|t","ts_ms":..}
 * and the key is {"id":N}. The after-image is rendered through item_render(), the same code that
 * renders query rows, so the cached bytes are identical whichever path filled them. */
#include "cdcache/debezium.h"
#include "cdcache/error.h"
#include "cdcache/item.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DBZ_BODY_CAP (1u << 20)

const char *dbz_op_name(enum dbz_op op)
{
    switch (op) {
    case DBZ_OP_CREATE:
        return "c";
    case DBZ_OP_UPDATE:
        return "u";
    case DBZ_OP_DELETE:
        return "d";
    case DBZ_OP_READ:
        return "r";
    case DBZ_OP_TRUNCATE:
        return "t";
    case DBZ_OP_TOMBSTONE:
        return "tombstone";
    }
    return "?";
}

void dbz_event_clear(struct dbz_event *ev)
{
    if (ev)
        buf_free(&ev->body);
}

/* Finds the key and value JSON of an entry: the one field of the "compact" format (its name is the
 * key), or the "key" and "value" fields of the "extended" one. Borrowed from fields. */
static bool entry_key_value(const struct dbz_field *fields, size_t n, const char **k, size_t *klen,
                            const char **v, size_t *vlen)
{
    *k = *v = NULL;
    *klen = *vlen = 0;
    if (n == 1) {
        *k = fields[0].name;
        *klen = fields[0].name_len;
        *v = fields[0].value;
        *vlen = fields[0].value_len;
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].name_len == 3 && memcmp(fields[i].name, "key", 3) == 0) {
            *k = fields[i].value;
            *klen = fields[i].value_len;
        } else if (fields[i].name_len == 5 && memcmp(fields[i].name, "value", 5) == 0) {
            *v = fields[i].value;
            *vlen = fields[i].value_len;
        }
    }
    return *k && *v;
}

static bool is_null_marker(const char *s, size_t n)
{
    return n == strlen(DBZ_NULL_MARKER) && memcmp(s, DBZ_NULL_MARKER, n) == 0;
}

/* A JSON integer: a number that is integral and exact in a double (|v| <= 2^53), or a numeric
 * string. */
static bool json_i64(const cJSON *j, int64_t *out)
{
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (cJSON_IsString(j))
        return parse_i64_str(j->valuestring, out);
    return false;
}

static bool key_from_object(const cJSON *obj, int64_t *key)
{
    return cJSON_IsObject(obj) && json_i64(cJSON_GetObjectItemCaseSensitive(obj, "id"), key) &&
           *key > 0;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return CDC_EDECODE;
}

static bool placeholder(const cJSON *j)
{
    return cJSON_IsString(j) && strcmp(j->valuestring, DBZ_UNAVAILABLE) == 0;
}

/* Renders `after` into ev->body, or marks the event incomplete. A column of the wrong type is
 * poison (CDC_EDECODE); a missing column or Debezium's placeholder for an unchanged TOASTed value
 * makes the after-image incomplete (evict, don't refresh). */
static int decode_after(const cJSON *after, struct dbz_event *ev, char *err, size_t errlen)
{
    static const char *const cols[] = {"id",         "name",       "description", "price",
                                       "created_at", "updated_at", "version"};
    const cJSON *v[7];
    struct item_fields f;
    bool whole = true;
    int64_t num;
    char rerr[96];

    for (int i = 0; i < 7; i++) {
        v[i] = cJSON_GetObjectItemCaseSensitive(after, cols[i]);
        if (!v[i] || placeholder(v[i])) {
            whole = false;
            continue;
        }
        if ((i == 0 || i == 6) ? !json_i64(v[i], &num) : !cJSON_IsString(v[i])) {
            snprintf(err, errlen, "after-image column %s has the wrong type%s", cols[i],
                     i == 3 ? " (is decimal.handling.mode=string?)" : "");
            return CDC_EDECODE;
        }
    }
    if (!whole) {
        ev->complete = false;
        return 0;
    }
    memset(&f, 0, sizeof(f));
    json_i64(v[0], &f.id);
    json_i64(v[6], &f.version);
    f.name = v[1]->valuestring;
    f.name_len = strlen(f.name);
    f.description = v[2]->valuestring;
    f.description_len = strlen(f.description);
    f.price = v[3]->valuestring;
    f.created_at = v[4]->valuestring;
    f.updated_at = v[5]->valuestring;
    if (item_render(&f, &ev->body, rerr, sizeof(rerr)))
        return fail(err, errlen, rerr);
    ev->complete = true;
    ev->version = f.version;
    return 0;
}

int dbz_decode(const struct dbz_field *fields, size_t n, struct dbz_event *ev, char *err,
               size_t errlen)
{
    const char *kjson, *vjson;
    size_t klen, vlen;
    cJSON *key = NULL, *val = NULL;
    const cJSON *op, *before, *after, *source;
    int rc = CDC_EDECODE;

    memset(ev, 0, sizeof(*ev));
    buf_init(&ev->body, DBZ_BODY_CAP);
    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen))
        return fail(err, errlen, "entry has neither one field (compact) nor key and value fields");

    if (!is_null_marker(kjson, klen)) {
        key = cJSON_ParseWithLength(kjson, klen);
        if (key_from_object(key, &ev->key))
            ev->has_key = true;
    }
    if (is_null_marker(vjson, vlen)) {
        if (!ev->has_key) {
            rc = fail(err, errlen, "tombstone without a readable key");
            goto out;
        }
        ev->op = DBZ_OP_TOMBSTONE;
        rc = 0;
        goto out;
    }
    val = cJSON_ParseWithLength(vjson, vlen);
    if (!cJSON_IsObject(val)) {
        rc = fail(err, errlen, "value is not a JSON object");
        goto out;
    }
    op = cJSON_GetObjectItemCaseSensitive(val, "op");
    before = cJSON_GetObjectItemCaseSensitive(val, "before");
    after = cJSON_GetObjectItemCaseSensitive(val, "after");
    source = cJSON_GetObjectItemCaseSensitive(val, "source");
    if (cJSON_IsObject(source)) {
        int64_t ts;
        if (json_i64(cJSON_GetObjectItemCaseSensitive(source, "ts_ms"), &ts))
            ev->source_ts_ms = ts;
    }
    if (!ev->has_key)
        ev->has_key = key_from_object(after, &ev->key) || key_from_object(before, &ev->key);
    if (!cJSON_IsString(op) || strlen(op->valuestring) != 1) {
        rc = fail(err, errlen, "value has no op");
        goto out;
    }
    switch (op->valuestring[0]) {
    case 'c':
        ev->op = DBZ_OP_CREATE;
        break;
    case 'u':
        ev->op = DBZ_OP_UPDATE;
        break;
    case 'r':
        ev->op = DBZ_OP_READ;
        break;
    case 'd':
        ev->op = DBZ_OP_DELETE;
        break;
    case 't':
        ev->op = DBZ_OP_TRUNCATE;
        break;
    default:
        rc = fail(err, errlen, "unknown op");
        goto out;
    }
    if (ev->op == DBZ_OP_TRUNCATE) {
        rc = 0;
        goto out;
    }
    if (!ev->has_key) {
        rc = fail(err, errlen, "no id in the key, after or before");
        goto out;
    }
    if (ev->op == DBZ_OP_DELETE) {
        rc = 0;
        goto out;
    }
    if (!cJSON_IsObject(after)) {
        rc = fail(err, errlen, "create/update/read without an after-image");
        goto out;
    }
    rc = decode_after(after, ev, err, errlen);
    if (rc == 0 && ev->complete) {
        int64_t aid = 0;
        if (!json_i64(cJSON_GetObjectItemCaseSensitive(after, "id"), &aid) || aid != ev->key) {
            buf_free(&ev->body);
            ev->complete = false;
            rc = fail(err, errlen, "key and after-image disagree on id");
        }
    }
out:
    cJSON_Delete(key);
    cJSON_Delete(val);
    return rc;
}

int dbz_decode_heartbeat(const struct dbz_field *fields, size_t n, int64_t *ts_ms)
{
    const char *kjson, *vjson;
    size_t klen, vlen;
    cJSON *val;
    const cJSON *source;
    int64_t ts;
    int rc = CDC_EDECODE;

    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen))
        return CDC_EDECODE;
    val = cJSON_ParseWithLength(vjson, vlen);
    source = cJSON_GetObjectItemCaseSensitive(val, "source");
    if (cJSON_IsObject(source) &&
        json_i64(cJSON_GetObjectItemCaseSensitive(source, "ts_ms"), &ts)) {
        *ts_ms = ts;
        rc = 0;
    } else if (cJSON_IsObject(val) &&
               json_i64(cJSON_GetObjectItemCaseSensitive(val, "ts_ms"), &ts)) {
        *ts_ms = ts;
        rc = 0;
    }
    cJSON_Delete(val);
    return rc;
}
