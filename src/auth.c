/* Bearer tokens (see auth.h). The token lists are parsed once; a check walks every configured token
 * of the class with a comparison whose time depends only on the lengths involved, never on where
 * the first differing byte is, and does not stop at the first match. */
#include "cdcache/auth.h"
#include "cdcache/util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_MAX_TOKENS 64

struct token_list {
    char *tokens[AUTH_MAX_TOKENS];
    size_t lens[AUTH_MAX_TOKENS];
    int n;
};

struct auth {
    struct token_list write, read;
};

/* Splits csv into list. Returns 0, or -1 with err set naming key. */
static int parse_list(const char *csv, struct token_list *list, const char *key, char *err,
                      size_t errlen)
{
    const char *rest = csv, *p;
    size_t n;

    while ((p = csv_next(&rest, &n))) {
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) {
                snprintf(err, errlen,
                         "config: %s: a token may hold only visible ASCII characters (no spaces)",
                         key);
                return -1;
            }
        if (list->n == AUTH_MAX_TOKENS) {
            snprintf(err, errlen, "config: %s: at most %d tokens", key, AUTH_MAX_TOKENS);
            return -1;
        }
        list->tokens[list->n] = xstrndup(p, n);
        list->lens[list->n] = n;
        list->n++;
    }
    return 0;
}

struct auth *auth_create(const char *write_tokens, const char *read_tokens, char *err,
                         size_t errlen)
{
    struct auth *a = xcalloc(1, sizeof(*a));

    if (parse_list(write_tokens ? write_tokens : "", &a->write, "auth.write_tokens", err, errlen) ||
        parse_list(read_tokens ? read_tokens : "", &a->read, "auth.read_tokens", err, errlen)) {
        auth_destroy(a);
        return NULL;
    }
    return a;
}

static void free_list(struct token_list *l)
{
    for (int i = 0; i < l->n; i++) {
        /* tokens are secrets: do not leave them in freed memory */
        volatile char *t = l->tokens[i];
        for (size_t k = 0; k < l->lens[i]; k++)
            t[k] = 0;
        free(l->tokens[i]);
    }
}

void auth_destroy(struct auth *a)
{
    if (!a)
        return;
    free_list(&a->write);
    free_list(&a->read);
    free(a);
}

/* Compares a[0..alen) with b[0..blen) in time that depends only on alen. */
static bool equal_ct(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ (blen ? b[i % blen] : 0));
    return diff == 0;
}

static bool in_list(const struct token_list *l, const char *t, size_t n)
{
    bool found = false;
    for (int i = 0; i < l->n; i++)
        found |= equal_ct(t, n, l->tokens[i], l->lens[i]);
    return found;
}

bool auth_required(const struct auth *a, bool write)
{
    return write ? a->write.n > 0 : a->read.n > 0;
}

enum auth_result auth_check(const struct auth *a, const char *authorization, bool write)
{
    const char *t;
    size_t n;
    bool ok;

    if (!auth_required(a, write))
        return AUTH_OK;
    if (!authorization)
        return AUTH_MISSING;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return AUTH_MISSING;
    t = authorization + 7;
    while (*t == ' ')
        t++;
    n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    if (n == 0)
        return AUTH_MISSING;
    ok = in_list(&a->write, t, n);
    if (!write)
        ok |= in_list(&a->read, t, n);
    return ok ? AUTH_OK : AUTH_INVALID;
}
