/* Debezium entry decoding. The value envelope (schemas disabled) is
 *   {"before":{..}|null,"after":{..}|null,"source":{..,"ts_ms":..},"op":"c|u|d|r|t","ts_ms":..}
 * and the key is {"<key column>":value}. The after-image is rendered through row_render_dbz(), the
 * same per-type codecs that render query rows, so the cached bytes are identical whichever path
 * filled them.
 *
 * The envelope is read with the json scanner, not a tree: the whole value is validated once, and
 * only op, before/after, source.ts_ms and the after-image's members are looked at, each matched to
 * its column of the descriptor on the way. (With cJSON's tree this was 3.3 us per update envelope
 * for items, most of it allocation and number parsing; see bench/decode_bench.c.) */
#include "cdcache/debezium.h"
#include "cdcache/error.h"
#include "cdcache/codec.h"
#include "cdcache/row.h"
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

/* The member of {"<name>":v,...} named name, validating the whole text. */
static bool member_of(const char *s, size_t len, const char *name, struct json_span *out)
{
    struct json_cursor c;
    struct json_members it;
    struct json_span n, val;
    const char *why;
    int r;

    memset(out, 0, sizeof(*out));
    json_cursor_init(&c, s, len);
    if (json_members_open(&it, &c, &why))
        return false;
    while ((r = json_members_next(&it, &n, &val, &why)) == 1)
        if (out->kind == JSON_NONE && json_string_equals(&n, name))
            *out = val;
    return r == 0 && json_at_end(&it.c) && out->kind != JSON_NONE;
}

/* The key of resource r from a key or before-image object's text. */
static bool key_from_text(const struct resource *r, const char *s, size_t len, struct dbz_event *ev)
{
    const struct resource_column *k = &r->columns[r->key];
    struct json_span v;
    return member_of(s, len, k->name, &v) &&
           codec_key_dbz(&k->type, &v, ev->key, sizeof(ev->key), &ev->key_len) == 0;
}

static bool key_from_span(const struct resource *r, const struct json_span *v, struct dbz_event *ev)
{
    const struct resource_column *k = &r->columns[r->key];
    if (v->kind == JSON_OBJECT)
        return key_from_text(r, v->p, v->len, ev);
    return v->kind != JSON_NONE && v->kind != JSON_NULL &&
           codec_key_dbz(&k->type, v, ev->key, sizeof(ev->key), &ev->key_len) == 0;
}

struct member_name {
    const char *text;
    size_t len;
};
#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
enum { SRC_TS_MS, SRC_SEQUENCE, NSRC };
static const struct member_name source_names[NSRC] = {NAME("ts_ms"), NAME("sequence")};

/* The parts of the envelope that decoding looks at; kind JSON_NONE when absent. Where a name is
 * duplicated, the first counts. `after` and `source` are walked once, in place: the after-image's
 * columns (when a resource is given) and source's ts_ms are picked out on the way. */
struct envelope {
    struct json_span op, before, after, source, ts_ms;
    const struct resource *r;   /* NULL: the after-image's columns are not wanted */
    struct json_span *cols;     /* r->ncolumns slots */
    bool unknown;               /* the after-image has a member the descriptor does not know */
    struct json_span src[NSRC]; /* source.ts_ms, source.sequence */
};

/* Walks the after-image of the iterator's current member into env->cols (by column name) and
 * continues the iterator after it; *whole is the object's span. */
static int pick_columns(struct json_members *it, struct envelope *env, struct json_span *whole,
                        const char **why)
{
    struct json_members sub;
    struct json_span name, val;
    char text[256];
    int r, next = 0;

    json_members_enter(it, &sub);
    while ((r = json_members_next(&sub, &name, &val, why)) == 1) {
        int c;
        if (!name.escaped) {
            /* Debezium writes the columns in table order: try the next one first */
            const struct resource_column *h =
                (size_t)next < env->r->ncolumns ? &env->r->columns[next] : NULL;
            c = h && strncmp(h->name, name.p, name.len) == 0 && h->name[name.len] == '\0'
                    ? next
                    : resource_column(env->r, name.p, name.len);
        } else {
            long n = json_string_decode(&name, text, sizeof(text));
            c = n < 0 ? -1 : resource_column(env->r, text, (size_t)n);
        }
        if (c < 0)
            env->unknown = true;
        else if (env->cols[c].kind == JSON_NONE)
            env->cols[c] = val;
        next = c + 1;
    }
    if (r != 0) {
        it->c.pos = sub.c.pos;
        return CDC_EINVAL;
    }
    return json_members_leave(it, &sub, whole, why);
}

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

/* Validates the whole value and picks out the envelope's parts. env->r and env->cols are set by
 * the caller (or NULL); everything else is reset. */
static int read_envelope(const char *s, size_t len, struct envelope *env, char *err, size_t errlen)
{
    const struct resource *r = env->r;
    struct json_span *cols = env->cols;
    struct json_cursor c;
    struct json_members it;
    struct json_span name, val;
    const char *why = "";
    int rc;

    memset(env, 0, sizeof(*env));
    env->r = r;
    env->cols = cols;
    if (cols)
        memset(cols, 0, r->ncolumns * sizeof(*cols));
    json_cursor_init(&c, s, len);
    if (json_members_open(&it, &c, &why) == 0) {
        while ((rc = json_members_name(&it, &name, &why)) == 1) {
            struct json_span *slot = envelope_slot(env, &name);
            if (slot && slot->kind != JSON_NONE)
                slot = NULL; /* a duplicate: validated, not used */
            if (slot == &env->after && cols && json_members_at_object(&it))
                rc = pick_columns(&it, env, slot, &why);
            else if (slot == &env->source && json_members_at_object(&it))
                rc = pick_members(&it, source_names, NSRC, env->src, slot, &why);
            else
                rc = json_members_value(&it, slot ? slot : &val, &why);
            if (rc != 0)
                break;
        }
        if (rc == 0 && json_at_end(&it.c))
            return 0;
        if (rc == 0)
            why = "trailing data after the object";
    }
    snprintf(err, errlen, "value is not a JSON object (%s at byte %zu)", why, it.c.pos);
    return CDC_EDECODE;
}

/* Renders the after-image into ev->body, or marks the event incomplete (evict, don't refresh): a
 * column missing or unknown (the table changed), a placeholder for an unchanged TOASTed value, a
 * type whose change-event form cannot be rendered as a query's. A value of the wrong type is poison
 * (CDC_EDECODE). */
static int decode_after(const struct envelope *env, struct dbz_event *ev, char *err, size_t errlen)
{
    int rc;

    if (env->unknown)
        return 0;
    rc = row_render_dbz(env->r, env->cols, &ev->body, &ev->version);
    if (rc == CDC_EREJECTED) {
        buf_reset(&ev->body);
        return 0;
    }
    if (rc) {
        buf_reset(&ev->body);
        return fail(err, errlen,
                    rc == CDC_ETOOBIG ? "after-image too large"
                                      : "after-image has a value of the wrong type");
    }
    ev->complete = true;
    return 0;
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

int dbz_decode(const struct resource *r, const struct dbz_field *fields, size_t n,
               struct dbz_event *ev, char *err, size_t errlen)
{
    struct json_span cols[ROW_MAX_COLUMNS];
    const char *kjson, *vjson;
    size_t klen, vlen;
    struct envelope env;
    int rc;

    memset(ev, 0, sizeof(*ev));
    buf_init(&ev->body, DBZ_BODY_CAP);
    if (r->ncolumns > ROW_MAX_COLUMNS)
        return fail(err, errlen, "the table has more columns than a row may have");
    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen))
        return fail(err, errlen, "entry has neither one field (compact) nor key and value fields");

    if (!is_null_marker(kjson, klen))
        ev->has_key = key_from_text(r, kjson, klen, ev);
    if (is_null_marker(vjson, vlen)) {
        if (!ev->has_key)
            return fail(err, errlen, "tombstone without a readable key");
        ev->op = DBZ_OP_TOMBSTONE;
        return 0;
    }
    env.r = r;
    env.cols = cols;
    if (read_envelope(vjson, vlen, &env, err, errlen))
        return CDC_EDECODE;
    (void)json_span_i64(&env.src[SRC_TS_MS], &ev->source_ts_ms); /* stays 0 when absent */
    ev->source_fresh = sequence_is_fresh(&env.src[SRC_SEQUENCE]);
    if (!ev->has_key)
        ev->has_key = key_from_span(r, &cols[r->key], ev) || key_from_span(r, &env.before, ev);
    if (env.op.kind != JSON_STRING)
        return fail(err, errlen, "value has no op");
    if (op_from_span(&env.op, &ev->op))
        return fail(err, errlen, "unknown op");
    if (ev->op == DBZ_OP_TRUNCATE)
        return 0;
    if (!ev->has_key)
        return fail(err, errlen, "no key in the key, after or before");
    if (ev->op == DBZ_OP_DELETE)
        return 0;
    if (env.after.kind != JSON_OBJECT)
        return fail(err, errlen, "create/update/read without an after-image");
    rc = decode_after(&env, ev, err, errlen);
    if (rc == 0 && ev->complete) {
        /* the after-image's own key must name the entry's key */
        struct dbz_event probe;
        probe.key_len = 0;
        if (!key_from_span(r, &cols[r->key], &probe) || probe.key_len != ev->key_len ||
            memcmp(probe.key, ev->key, ev->key_len) != 0) {
            buf_reset(&ev->body);
            ev->complete = false;
            rc = fail(err, errlen, "key and after-image disagree on the key");
        }
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
    env.r = NULL;
    env.cols = NULL;
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

int dbz_decode_ddl(const struct dbz_field *fields, size_t n, char *out, size_t cap)
{
    const char *kjson, *vjson;
    size_t klen, vlen;
    struct envelope env;
    struct json_span tbl;
    char err[8];
    long len;

    env.r = NULL;
    env.cols = NULL;
    if (!entry_key_value(fields, n, &kjson, &klen, &vjson, &vlen))
        return CDC_EDECODE;
    /* the key is {"tbl":"schema.table"}; a truncate of the signal table has none (ignored) */
    if (is_null_marker(kjson, klen) || !member_of(kjson, klen, "tbl", &tbl) ||
        tbl.kind != JSON_STRING)
        return CDC_EDECODE;
    if (!is_null_marker(vjson, vlen) && read_envelope(vjson, vlen, &env, err, sizeof(err)))
        return CDC_EDECODE;
    len = json_string_decode(&tbl, out, cap);
    return len < 0 ? CDC_EDECODE : 0;
}
