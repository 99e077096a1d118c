/* Query-string checking (see query.h). One pass over the segments; names and values are decoded
 * into fixed buffers, so nothing is allocated and a hostile query costs at most its own length. */
#include "cdcache/query.h"
#include "cdcache/error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long query_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    assert(outlen > 0);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= outlen)
            return -2;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Copies the decoded name to field, control bytes shown as '?' (a name may hold any byte). */
static void set_field(char *field, size_t fieldlen, const char *name, size_t n)
{
    size_t i;

    if (!field || fieldlen == 0)
        return;
    for (i = 0; i < n && i + 1 < fieldlen; i++)
        field[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
    field[i] = '\0';
}

int query_parse(const char *qs, size_t len, const char *const *names, size_t count,
                struct query_values *out, char *err, size_t errlen, char *field, size_t fieldlen)
{
    size_t pos = 0;

    assert(count <= QUERY_MAX_PARAMS);
    memset(out, 0, sizeof(*out));
    if (field && fieldlen)
        field[0] = '\0';
    while (qs && pos < len) {
        const char *seg = qs + pos, *amp = memchr(seg, '&', len - pos);
        size_t seglen = amp ? (size_t)(amp - seg) : len - pos;
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        char name[QUERY_VALUE_MAX];
        long dn;
        size_t idx = count;

        pos += seglen + 1;
        if (seglen == 0)
            continue;
        dn = query_decode(seg, nlen, name, sizeof(name));
        if (dn < 0) {
            set_field(field, fieldlen, seg, nlen);
            snprintf(err, errlen, "parameter '%s': %s", field ? field : "",
                     dn == -1 ? "malformed %-escape in the name" : "unknown parameter");
            return CDC_EINVAL;
        }
        for (size_t i = 0; i < count; i++)
            if (strlen(names[i]) == (size_t)dn && memcmp(names[i], name, (size_t)dn) == 0)
                idx = i;
        set_field(field, fieldlen, name, (size_t)dn);
        if (idx == count) {
            char takes[96] = "none";
            size_t t = 0;
            for (size_t i = 0; i < count; i++) {
                int k = snprintf(takes + t, sizeof(takes) - t, "%s%s",
                                 i == 0 ? "" : (i + 1 == count ? " and " : ", "), names[i]);
                if (k < 0 || (size_t)k >= sizeof(takes) - t)
                    break;
                t += (size_t)k;
            }
            snprintf(err, errlen, "parameter '%s': unknown parameter (this route takes %s)",
                     field ? field : "", takes);
            return CDC_EINVAL;
        }
        if (out->present[idx]) {
            snprintf(err, errlen, "parameter '%s': given twice", names[idx]);
            return CDC_EINVAL;
        }
        out->present[idx] = true;
        if (eq) {
            dn = query_decode(eq + 1, seglen - nlen - 1, out->value[idx], sizeof(out->value[idx]));
            if (dn < 0) {
                snprintf(err, errlen, "parameter '%s': %s", names[idx],
                         dn == -1 ? "malformed %-escape in the value" : "value too long");
                return CDC_EINVAL;
            }
        }
    }
    return 0;
}
