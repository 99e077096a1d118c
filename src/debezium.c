/* Debezium entry decoding. The value envelope (schemas disabled) is
 *   {"before":{..}|null,"after":{..}|null,"source":{..,"ts_ms":..},"op":"c|u|d|r|t","ts_ms":..}
 * and the key is {"id":N}. The after-image is rendered through item_render(), the same code that
 * renders query rows, so the cached bytes are identical whichever path filled them.
 *
 * The envelope is read with the json scanner, not a tree: the whole value is validated once, and
 * only op, before/after, source.ts_ms and the seven columns are looked at. Strings without escapes
 * are borrowed from the Redis reply; nothing is allocated unless an escaped name or description is
 * longer than a stack buffer. (With cJSON's tree this was 3.3 us per update envelope, most of it
 * allocation and number parsing; see bench/decode_bench.c.) */
#include "cdcache/debezium.h"
#include "cdcache/error.h"
#include "cdcache/item.h"
#include "cdcache/json.h"

#include <stdio.h>
#include <stdlib.h>
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

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return CDC_EDECODE;
}

/* A positive integer id (number or numeric string). */
static bool positive_id(const struct json_span *id, int64_t *key)
{
    int64_t v;
    if (!json_span_i64(id, &v) || v <= 0)
        return false;
    *key = v;
    return true;
}

/* The id of {"id":N,...} when positive; false for anything else, including invalid JSON (the
 * whole text is validated, not only up to the id). */
static bool key_from_object(const char *s, size_t len, int64_t *key)
{
    struct json_cursor c;
    struct json_members it;
    struct json_span name, val, id = {0};
    const char *why;
    int r;

    json_cursor_init(&c, s, len);
    if (json_members_open(&it, &c, &why))
        return false;
    while ((r = json_members_next(&it, &name, &val, &why)) == 1)
        if (id.kind == JSON_NONE && json_string_equals(&name, "id"))
            id = val;
    return r == 0 && json_at_end(&it.c) && positive_id(&id, key);
}

enum { COL_ID, COL_NAME, COL_DESCRIPTION, COL_PRICE, COL_CREATED, COL_UPDATED, COL_VERSION, NCOLS };

struct member_name {
    const char *text;
    size_t len;
};
#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
static const struct member_name col_names[NCOLS] = {
    NAME("id"),         NAME("name"),       NAME("description"), NAME("price"),
    NAME("created_at"), NAME("updated_at"), NAME("version")};
enum { SRC_TS_MS, SRC_SEQUENCE, NSRC };
static const struct member_name source_names[NSRC] = {NAME("ts_ms"), NAME("sequence")};

/* The parts of the envelope that decoding looks at; kind JSON_NONE when absent. Where a name is
 * duplicated, the first counts. `after` and `source` are walked once, in place: their columns and
 * ts_ms are picked out on the way. */
struct envelope {
    struct json_span op, before, after, source, ts_ms;
    struct json_span cols[NCOLS]; /* the after-image's columns, when after is an object */
    struct json_span src[NSRC];   /* source.ts_ms, source.sequence */
};

/* Walks the object value of the iterator's current member, keeping the first value of each of
 * names[0..n) in vals, and continues the iterator after it; *whole is the object's span. */
static int pick_members(struct json_members *it, const struct member_name *names, size_t n,
                        struct json_span *vals, struct json_span *whole, const char **why)
{
    struct json_members sub;
    struct json_span name, val;
    int r;

    json_members_enter(it, &sub);
    while ((r = json_members_next(&sub, &name, &val, why)) == 1)
        for (size_t i = 0; i < n; i++)
            if (vals[i].kind == JSON_NONE &&
                json_string_equals_n(&name, names[i].text, names[i].len)) {
                vals[i] = val;
                break;
            }
    if (r != 0) {
        it->c.pos = sub.c.pos;
        return CDC_EINVAL;
    }
    return json_members_leave(it, &sub, whole, why);
}

/* The slot of a top-level member's name, NULL when decoding does not need it. */
static struct json_span *envelope_slot(struct envelope *env, const struct json_span *name)
{
    if (json_string_equals(name, "op"))
        return &env->op;
    if (json_string_equals(name, "before"))
        return &env->before;
    if (json_string_equals(name, "after"))
        return &env->after;
    if (json_string_equals(name, "source"))
        return &env->source;
    if (json_string_equals(name, "ts_ms"))
        return &env->ts_ms;
    return NULL;
}

/* Validates the whole value and picks out the envelope's parts. */
static int read_envelope(const char *s, size_t len, struct envelope *env, char *err, size_t errlen)
{
    struct json_cursor c;
    struct json_members it;
    struct json_span name, val;
    const char *why = "";
    int r;

    memset(env, 0, sizeof(*env));
    json_cursor_init(&c, s, len);
    if (json_members_open(&it, &c, &why) == 0) {
        while ((r = json_members_name(&it, &name, &why)) == 1) {
            struct json_span *slot = envelope_slot(env, &name);
            if (slot && slot->kind != JSON_NONE)
                slot = NULL; /* a duplicate: validated, not used */
            if (slot == &env->after && json_members_at_object(&it))
                r = pick_members(&it, col_names, NCOLS, env->cols, slot, &why);
            else if (slot == &env->source && json_members_at_object(&it))
                r = pick_members(&it, source_names, NSRC, env->src, slot, &why);
            else
                r = json_members_value(&it, slot ? slot : &val, &why);
            if (r != 0)
                break;
        }
        if (r == 0 && json_at_end(&it.c))
            return 0;
        if (r == 0)
            why = "trailing data after the object";
    }
    snprintf(err, errlen, "value is not a JSON object (%s at byte %zu)", why, it.c.pos);
    return CDC_EDECODE;
}

/* The id of an object span {"id":N,...} when positive. */
static bool key_from_span(const struct json_span *obj, int64_t *key)
{
    return obj->kind == JSON_OBJECT && key_from_object(obj->p, obj->len, key);
}

/* A column's text: borrowed from the input when it has no escapes, else decoded into `stack` or,
 * when longer, into `heap` (a new allocation the caller frees). */
static const char *column_text(const struct json_span *s, char *stack, size_t cap, char **heap,
                               size_t *len)
{
    char *out = stack;
    long n;

    if (!s->escaped) {
        *len = s->len;
        return s->p;
    }
    if (s->len >= cap)
        out = *heap = xmalloc(s->len + 1);
    n = json_string_decode(s, out, s->len + 1);
    *len = n < 0 ? 0 : (size_t)n;
    return out;
}

/* A short column as a NUL-terminated string in out[0..cap); false when it does not fit (a valid
 * price or timestamp always does; item_render() rejects the empty string given instead). */
static bool column_cstr(const struct json_span *s, char *out, size_t cap)
{
    return s->len < cap && json_string_decode(s, out, cap) >= 0;
}

/* Renders the after-image's columns into ev->body, or marks the event incomplete. A column of the
 * wrong type is poison (CDC_EDECODE); a missing column or Debezium's placeholder for an unchanged
 * TOASTed value makes the after-image incomplete (evict, don't refresh). */
static int decode_after(const struct json_span *v, struct dbz_event *ev, char *err, size_t errlen)
{
    struct item_fields f;
    char name_buf[512], desc_buf[2048], price[48], created[48], updated[48];
    char *name_heap = NULL, *desc_heap = NULL;
    bool whole = true;
    int64_t num;
    char rerr[96];
    int rc = 0;

    for (int i = 0; i < NCOLS; i++) {
        if (v[i].kind == JSON_NONE || json_string_equals(&v[i], DBZ_UNAVAILABLE)) {
            whole = false;
            continue;
        }
        if ((i == COL_ID || i == COL_VERSION) ? !json_span_i64(&v[i], &num)
                                              : v[i].kind != JSON_STRING) {
            snprintf(err, errlen, "after-image column %s has the wrong type%s", col_names[i].text,
                     i == COL_PRICE ? " (is decimal.handling.mode=string?)" : "");
            return CDC_EDECODE;
        }
    }
    if (!whole) {
        ev->complete = false;
        return 0;
    }
    memset(&f, 0, sizeof(f));
    json_span_i64(&v[COL_ID], &f.id);
    json_span_i64(&v[COL_VERSION], &f.version);
    f.name = column_text(&v[COL_NAME], name_buf, sizeof(name_buf), &name_heap, &f.name_len);
    f.description = column_text(&v[COL_DESCRIPTION], desc_buf, sizeof(desc_buf), &desc_heap,
                                &f.description_len);
    f.price = column_cstr(&v[COL_PRICE], price, sizeof(price)) ? price : "";
    f.created_at = column_cstr(&v[COL_CREATED], created, sizeof(created)) ? created : "";
    f.updated_at = column_cstr(&v[COL_UPDATED], updated, sizeof(updated)) ? updated : "";
    if (item_render(&f, &ev->body, rerr, sizeof(rerr))) {
        rc = fail(err, errlen, rerr);
    } else {
        ev->complete = true;
        ev->version = f.version;
    }
    free(name_heap);
    free(desc_heap);
    return rc;
}

static int op_from_span(const struct json_span *op, enum dbz_op *out)
{
    static const struct {
        const char *name;
        enum dbz_op op;
    } ops[] = {{"c", DBZ_OP_CREATE},
               {"u", DBZ_OP_UPDATE},
               {"r", DBZ_OP_READ},
               {"d", DBZ_OP_DELETE},
               {"t", DBZ_OP_TRUNCATE}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (json_string_equals(op, ops[i].name)) {
            *out = ops[i].op;
            return 0;
        }
    return CDC_EDECODE;
}

/* source.sequence is the text of a JSON array ["<lastCommitLsn>","<lsn>"]. Debezium's PostgreSQL
 * connector restores lastCommitLsn from its offsets, so it is null only until the first commit
 * after a start without offsets. Absent or unreadable: false (no claim either way). */
static bool sequence_is_fresh(const struct json_span *seq)
{
    char text[128];
    long n;

    if (seq->kind != JSON_STRING)
        return false;
    if (seq->len >= 5 && memcmp(seq->p, "[null", 5) == 0)
        return true; /* the head needs no escapes: this is how Debezium writes it */
    if (!seq->escaped || seq->len >= sizeof(text))
        return false;
    n = json_string_decode(seq, text, sizeof(text));
    return n >= 5 && memcmp(text, "[null", 5) == 0;
}

int dbz_decode(const struct dbz_field *fields, size_t n, struct dbz_event *ev, char *err,
               size_t errlen)
{
    const char *kjson, *vjson;
    size_t klen, vlen;
    struct envelope env;
    int64_t aid = 0;
    int rc;

    memset(ev, 0, sizeof(*ev));
    buf_init(&ev->body, DBZ_BODY_CAP);
    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen))
        return fail(err, errlen, "entry has neither one field (compact) nor key and value fields");

    if (!is_null_marker(kjson, klen))
        ev->has_key = key_from_object(kjson, klen, &ev->key);
    if (is_null_marker(vjson, vlen)) {
        if (!ev->has_key)
            return fail(err, errlen, "tombstone without a readable key");
        ev->op = DBZ_OP_TOMBSTONE;
        return 0;
    }
    if (read_envelope(vjson, vlen, &env, err, errlen))
        return CDC_EDECODE;
    (void)json_span_i64(&env.src[SRC_TS_MS], &ev->source_ts_ms); /* stays 0 when absent */
    ev->source_fresh = sequence_is_fresh(&env.src[SRC_SEQUENCE]);
    if (!ev->has_key)
        ev->has_key =
            positive_id(&env.cols[COL_ID], &ev->key) || key_from_span(&env.before, &ev->key);
    if (env.op.kind != JSON_STRING)
        return fail(err, errlen, "value has no op");
    if (op_from_span(&env.op, &ev->op))
        return fail(err, errlen, "unknown op");
    if (ev->op == DBZ_OP_TRUNCATE)
        return 0;
    if (!ev->has_key)
        return fail(err, errlen, "no id in the key, after or before");
    if (ev->op == DBZ_OP_DELETE)
        return 0;
    if (env.after.kind != JSON_OBJECT)
        return fail(err, errlen, "create/update/read without an after-image");
    rc = decode_after(env.cols, ev, err, errlen);
    if (rc == 0 && ev->complete && (!positive_id(&env.cols[COL_ID], &aid) || aid != ev->key)) {
        buf_free(&ev->body);
        ev->complete = false;
        rc = fail(err, errlen, "key and after-image disagree on id");
    }
    return rc;
}

int dbz_decode_watermark(const struct dbz_field *fields, size_t n, struct dbz_watermark *wm)
{
    static const struct member_name wm_names[2] = {NAME("seq"), NAME("origin")};
    const char *kjson, *vjson;
    size_t klen, vlen;
    struct envelope env;
    struct json_span vals[2] = {{0}, {0}};
    char err[8];

    memset(wm, 0, sizeof(*wm));
    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen) ||
        read_envelope(vjson, vlen, &env, err, sizeof(err)))
        return CDC_EDECODE;
    /* A watermark row's change event carries its commit time in source.ts_ms; a heartbeat only
     * has the top-level ts_ms. */
    if (!json_span_i64(&env.src[SRC_TS_MS], &wm->ts_ms) && !json_span_i64(&env.ts_ms, &wm->ts_ms))
        return CDC_EDECODE;
    wm->source_fresh = sequence_is_fresh(&env.src[SRC_SEQUENCE]);
    if (env.after.kind == JSON_OBJECT) {
        struct json_cursor c;
        struct json_members it;
        struct json_span name, val;
        const char *why;

        json_cursor_init(&c, env.after.p, env.after.len);
        if (json_members_open(&it, &c, &why) == 0)
            while (json_members_next(&it, &name, &val, &why) == 1)
                for (int i = 0; i < 2; i++)
                    if (vals[i].kind == JSON_NONE &&
                        json_string_equals_n(&name, wm_names[i].text, wm_names[i].len))
                        vals[i] = val;
        wm->has_seq = json_span_i64(&vals[0], &wm->seq) && json_span_i64(&vals[1], &wm->origin);
    }
    return 0;
}
