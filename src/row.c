/* Rows: one loop over the descriptor's columns, each value handed to its type's codec (codec.c).
 * Rendering writes `{"col":value,...}` for the exposed columns in table order; the member names
 * are JSON-escaped once per row from the descriptor (a column name may hold any character). */
#include "cdcache/row.h"
#include "cdcache/codec.h"
#include "cdcache/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t row_select_count(const struct resource *r)
{
    size_t n = 1; /* the version column */
    for (size_t i = 0; i < r->ncolumns; i++)
        n += r->columns[i].exposed;
    return n;
}

int row_select_column(const struct resource *r, size_t i)
{
    for (size_t c = 0; c < r->ncolumns; c++)
        if (r->columns[c].exposed && i-- == 0)
            return (int)c;
    return r->version;
}

static int member_name(struct buf *out, const struct resource_column *c, bool first)
{
    int rc = buf_append(out, first ? "{" : ",", 1);
    if (rc == 0 && c->member)
        return buf_puts(out, c->member);
    if (rc == 0)
        rc = buf_append(out, "\"", 1);
    if (rc == 0)
        rc = buf_json_escape(out, c->name, strlen(c->name));
    if (rc == 0)
        rc = buf_append(out, "\":", 2);
    return rc;
}

int row_render_pg(const struct resource *r, const char *const *vals, const int *lens,
                  struct buf *out, int64_t *version)
{
    size_t n = row_select_count(r), k = 0;
    int rc = 0;

    for (size_t c = 0; c < r->ncolumns && rc == 0; c++) {
        if (!r->columns[c].exposed)
            continue;
        rc = member_name(out, &r->columns[c], k == 0);
        if (rc == 0)
            rc = vals[k] ? codec_render_pg(&r->columns[c].type, vals[k], (size_t)lens[k], out)
                         : buf_append(out, "null", 4);
        k++;
    }
    if (rc == 0)
        rc = buf_append(out, k ? "}" : "{}", k ? 1 : 2);
    if (rc == 0 && (!vals[n - 1] || !parse_i64(vals[n - 1], (size_t)lens[n - 1], version)))
        rc = CDC_EINVAL;
    return rc;
}

int row_render_dbz(const struct resource *r, const struct json_span *cols, struct buf *out,
                   int64_t *version)
{
    const struct json_span *v = &cols[r->version];
    bool first = true, missing = v->kind == JSON_NONE;
    size_t mark = out->len;
    int rc = 0;

    if (!missing && !json_span_i64(v, version))
        return CDC_EDECODE;
    /* every present column is rendered, so that a value of the wrong type (poison) is told from
     * a column that is missing (the schema moved on: evict) */
    for (size_t c = 0; c < r->ncolumns && rc == 0; c++) {
        if (!r->columns[c].exposed)
            continue;
        if (cols[c].kind == JSON_NONE) {
            missing = true;
            continue;
        }
        rc = member_name(out, &r->columns[c], first);
        if (rc == 0)
            rc = codec_render_dbz(&r->columns[c].type, &cols[c], out);
        first = false;
    }
    if (rc == 0 && missing)
        rc = CDC_EREJECTED;
    if (rc == 0)
        rc = buf_append(out, first ? "{}" : "}", first ? 2 : 1);
    if (rc && out->data) {
        out->len = mark; /* nothing of a refused row stays */
        out->data[mark] = '\0';
    }
    return rc;
}

static int fail(char *err, size_t errlen, char *field, size_t fieldlen, const char *name,
                size_t namelen, const char *msg)
{
    snprintf(field, fieldlen, "%.*s", (int)namelen, name);
    snprintf(err, errlen, namelen ? "field '%.*s': %s" : "%.*s%s", (int)namelen, name, msg);
    return CDC_EINVAL;
}

void row_input_free(struct row_input *in)
{
    if (!in)
        return;
    buf_free(&in->store);
    memset(in, 0, sizeof(*in));
}

/* True when the array v (validated JSON) holds an array: a request writes arrays of one dimension
 * (as the API description says), so that no ragged shape reaches PostgreSQL. */
static bool nested_array(const struct json_span *v)
{
    bool in_string = false;
    int depth = 0;

    for (size_t i = 0; i < v->len; i++) {
        char c = v->p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' && ++depth > 1) {
            return true;
        } else if (c == ']') {
            depth--;
        }
    }
    return false;
}

static bool named(const struct row_input *in, int col)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->col[i] == col)
            return true;
    return false;
}

int row_input_parse(const struct resource *r, const char *body, size_t len, enum row_mode mode,
                    struct row_input *in, char *err, size_t errlen, char *field, size_t fieldlen)
{
    size_t offs[ROW_MAX_COLUMNS];
    bool isnull[ROW_MAX_COLUMNS];
    struct json_cursor cur;
    struct json_members it;
    struct json_span name, value;
    const char *why = NULL;
    char decoded[256];
    int rc, more;

    memset(in, 0, sizeof(*in));
    buf_init(&in->store, len * 4 + 1024);
    field[0] = '\0';
    json_cursor_init(&cur, body, len);
    if (json_members_open(&it, &cur, &why)) {
        rc = fail(err, errlen, field, fieldlen, "", 0, "body must be a JSON object");
        goto fail;
    }
    while ((more = json_members_next(&it, &name, &value, &why)) == 1) {
        long nl = json_string_decode(&name, decoded, sizeof(decoded));
        int c = nl < 0 ? -1 : resource_column(r, decoded, (size_t)nl);
        const struct resource_column *col = c >= 0 ? &r->columns[c] : NULL;
        size_t fl = nl < 0 ? 0 : (size_t)nl;

        if (!col || !col->exposed) {
            rc = fail(err, errlen, field, fieldlen, decoded, fl, "unknown field");
            goto fail;
        }
        if (named(in, c)) {
            rc = fail(err, errlen, field, fieldlen, decoded, fl, "given twice");
            goto fail;
        }
        if (c == r->version || col->generated) {
            rc = fail(err, errlen, field, fieldlen, decoded, fl, "is read-only");
            goto fail;
        }
        /* a value drawn from a sequence (serial, identity) is the server's to give: one given
         * here would collide with the sequence's later values */
        if (col->serial && (mode == ROW_CREATE || (c != r->key && mode != ROW_PATCH))) {
            rc = fail(err, errlen, field, fieldlen, decoded, fl, "is assigned by the server");
            goto fail;
        }
        if (c == r->key) {
            /* a key is read as a route key is: a number's digits or a string's text, so that
             * the seed's {"id":"1"} still names row 1 */
            char ktext[sizeof(in->key)];
            long kl = -1;
            int64_t iv;
            bool integral = col->type.kind == CODEC_INT2 || col->type.kind == CODEC_INT4 ||
                            col->type.kind == CODEC_INT8;
            if (value.kind == JSON_STRING)
                kl = json_string_decode(&value, ktext, sizeof(ktext));
            else if (value.kind == JSON_NUMBER && integral && json_span_i64(&value, &iv))
                kl = snprintf(ktext, sizeof(ktext), "%lld", (long long)iv); /* 17.0 is 17 */
            else if (value.kind == JSON_NUMBER && value.len < sizeof(ktext))
                kl = (long)value.len, memcpy(ktext, value.p, value.len);
            if (kl < 0 ||
                codec_key_canon(&col->type, ktext, (size_t)kl, in->key, sizeof(in->key),
                                &(size_t){0}) ||
                (col->serial && (in->key[0] == '-' || strcmp(in->key, "0") == 0))) {
                rc = fail(err, errlen, field, fieldlen, decoded, fl, "not a valid key");
                goto fail;
            }
            in->has_key = true;
            if (mode != ROW_CREATE)
                continue; /* the key names the row; it is not written */
        }
        if (in->n == ROW_MAX_COLUMNS) {
            rc = fail(err, errlen, field, fieldlen, decoded, fl, "too many fields");
            goto fail;
        }
        {
            char cerr[160] = "";
            size_t start = in->store.len;
            bool null = false;
            if (col->type.array && value.kind == JSON_ARRAY && nested_array(&value)) {
                rc = fail(err, errlen, field, fieldlen, decoded, fl,
                          "an array of one dimension (elements or null) is expected");
                goto fail;
            }
            rc = codec_param(&col->type, &value, &in->store, &null, cerr, sizeof(cerr));
            if (rc == 0 && null && !col->nullable)
                rc = CDC_EINVAL, snprintf(cerr, sizeof(cerr), "must not be null");
            if (rc == 0 && !null && !col->type.array &&
                !resource_label_ok(col, in->store.data + start, in->store.len - start))
                rc = CDC_EINVAL,
                snprintf(cerr, sizeof(cerr), "is not a label of %s", col->sql_type);
            if (rc == 0)
                rc = buf_append(&in->store, "", 1); /* each value NUL-terminated in store */
            if (rc) {
                rc = fail(err, errlen, field, fieldlen, decoded, fl,
                          cerr[0] ? cerr : "invalid value");
                goto fail;
            }
            offs[in->n] = start;
            isnull[in->n] = null;
            in->col[in->n++] = c;
        }
    }
    if (more < 0 || !json_at_end(&it.c)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: %s", it.c.pos,
                 more < 0 && why ? why : "trailing data after the object");
        rc = fail(err, errlen, field, fieldlen, "", 0, msg);
        goto fail;
    }
    if (mode == ROW_UPSERT)
        mode = in->has_key ? ROW_REPLACE : ROW_CREATE;
    for (size_t c = 0; c < r->ncolumns; c++) {
        const struct resource_column *col = &r->columns[c];
        bool required = col->exposed && !col->generated && (int)c != r->version &&
                        !col->has_default && (mode == ROW_CREATE || mode == ROW_REPLACE) &&
                        !((int)c == r->key && mode == ROW_REPLACE);
        if (!required || named(in, (int)c))
            continue;
        if (mode == ROW_REPLACE && col->nullable && in->n < ROW_MAX_COLUMNS) {
            offs[in->n] = 0;
            isnull[in->n] = true; /* replaced: a nullable column left out becomes NULL */
            in->col[in->n++] = (int)c;
            continue;
        }
        if (mode == ROW_CREATE && col->nullable)
            continue;
        rc = fail(err, errlen, field, fieldlen, col->name, strlen(col->name), "is required");
        goto fail;
    }
    if (mode == ROW_PATCH && in->n == 0) {
        rc = fail(err, errlen, field, fieldlen, "", 0,
                  "nothing to update: the body names no writable column");
        goto fail;
    }
    for (size_t i = 0; i < in->n; i++)
        in->val[i] = isnull[i] ? NULL : in->store.data + offs[i];
    return 0;
fail:
    row_input_free(in);
    return CDC_EINVAL;
}
