/* CORS policy (see cors.h): a list of exact origins, or "*". Parsed once at start; a lookup walks
 * the list (at most CORS_MAX_ORIGINS short strings). */
#include "cdcache/cors.h"
#include "cdcache/util.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cors {
    bool any; /* "*" */
    int n;
    char *origins[CORS_MAX_ORIGINS];
};

/* scheme://host[:port], scheme http or https, host of letters, digits, '-', '.' (or an IPv6
 * literal in brackets), port 1..65535. */
static bool origin_valid(const char *s, size_t n)
{
    size_t i, host;

    if (n > 8 && strncasecmp(s, "https://", 8) == 0)
        i = 8;
    else if (n > 7 && strncasecmp(s, "http://", 7) == 0)
        i = 7;
    else
        return false;
    host = i;
    if (s[i] == '[') {
        while (i < n && s[i] != ']')
            i++;
        if (i == n)
            return false;
        i++;
    } else {
        while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
            i++;
    }
    if (i == host)
        return false;
    if (i < n && s[i] == ':') {
        size_t digits = 0;
        long port = 0;
        for (i++; i < n && isdigit((unsigned char)s[i]) && digits < 6; i++, digits++)
            port = port * 10 + (s[i] - '0');
        if (digits == 0 || port < 1 || port > 65535)
            return false;
    }
    return i == n;
}

struct cors *cors_create(const char *origins, char *err, size_t errlen)
{
    struct cors *c = xcalloc(1, sizeof(*c));
    const char *rest = origins ? origins : "", *p;
    size_t n;

    while ((p = csv_next(&rest, &n))) {
        if (n == 1 && p[0] == '*') {
            c->any = true;
        } else if (n > CORS_ORIGIN_MAX || !origin_valid(p, n)) {
            snprintf(err, errlen,
                     "config: http.cors_origins: \"%.*s\" is not an origin such as "
                     "https://app.example.com (scheme, host, optional port; no path) or *",
                     (int)(n > 80 ? 80 : n), p);
            cors_destroy(c);
            return NULL;
        } else if (c->n == CORS_MAX_ORIGINS) {
            snprintf(err, errlen, "config: http.cors_origins: at most %d origins",
                     CORS_MAX_ORIGINS);
            cors_destroy(c);
            return NULL;
        } else {
            /* browsers send scheme and host in lower case; the answer must repeat the origin
             * exactly as sent, so the list is kept in that form and compared exactly */
            char *o = xstrndup(p, n);
            for (char *q = o; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            c->origins[c->n++] = o;
        }
    }
    return c;
}

void cors_destroy(struct cors *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->origins[i]);
    free(c);
}

bool cors_enabled(const struct cors *c)
{
    return c->any || c->n > 0;
}

const char *cors_allow_origin(const struct cors *c, const char *origin)
{
    assert(c->n >= 0 && c->n <= CORS_MAX_ORIGINS);
    if (!origin || !origin[0])
        return NULL;
    if (c->any)
        return "*";
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->origins[i], origin) == 0)
            return c->origins[i];
    return NULL;
}
