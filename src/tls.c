/* TLS for the HTTP port (see tls.h).
 *
 * Why loading needs help. Debian builds civetweb 1.15 with its CMake defaults: TLS on, OpenSSL
 * loaded at run time with dlopen("libcrypto.so") and dlopen("libssl.so"), and the OpenSSL 1.1
 * function table (OPENSSL_API_1_1). That table lists SSL_get_peer_certificate, which OpenSSL 3 no
 * longer exports (it is a macro for SSL_get1_peer_certificate), so libssl fails to load. civetweb
 * then goes on anyway: the failed first load leaves its crypto-library refcount raised, a second
 * initialisation inside mg_start() takes the early "already initialised" return, and every worker
 * calls the NULL SSL_get_peer_certificate right after its first successful SSL_accept (the crash at
 * address 0). The names "libssl.so"/"libcrypto.so" are also the -dev packages' symlinks, absent on
 * a host that has only the run-time libraries.
 *
 * The fix stays on our side of the ABI: two small shared objects built with cdcache, whose sonames
 * are "libssl.so" and "libcrypto.so" and which depend on libssl.so.3/libcrypto.so.3. We load them
 * by path before civetweb looks; the dynamic loader then hands them to civetweb's dlopen (a name
 * that matches a loaded object's soname is that object), and civetweb's dlsym finds every OpenSSL 3
 * function through their dependencies plus SSL_get_peer_certificate in our shim.
 *
 * The SSL_CTX is civetweb's, but its options come from OpenSSL 1.1's numbers, several of which mean
 * something else in OpenSSL 3 (e.g. 1.1's SSL_OP_ALL turns off the extended master secret and
 * allows client renegotiation there). tls_setup_server_ctx() therefore resets the options to
 * OpenSSL 3's own defaults plus what we want, sets the lowest protocol with the proper API, and
 * loads the certificate and key itself.
 *
 * Threads: tls_library_init() runs once under init_lock; the rest keeps no state. OpenSSL's error
 * queue is per thread. */
#include "cdcache/tls.h"
#include "cdcache/error.h"
#include "cdcache/log.h"

#include <civetweb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef CDCACHE_TLS_SHIM_DIR
#define CDCACHE_TLS_SHIM_DIR "/usr/local/lib/cdcache"
#endif

/* The two shims (meson.build builds them next to the binary and installs them in
 * CDCACHE_TLS_SHIM_DIR), each with the soname civetweb asks dlopen() for. */
static const struct shim {
    const char *file;   /* file name of the shim */
    const char *soname; /* the name civetweb 1.15 dlopen()s (its CMake SSL_LIB / CRYPTO_LIB) */
    const char *probe;  /* a symbol civetweb must find through that name */
} shims[] = {
    {"libcdcache-tls-crypto.so", "libcrypto.so", "CRYPTO_free"},
    {"libcdcache-tls-ssl.so", "libssl.so", "SSL_get_peer_certificate"},
};

/* init_lock guards init_state and init_msg: tls_library_init() runs its body once. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_state = 1; /* 1: not yet; 0: done; negative: the CDC_E* it failed with */
static char init_msg[512];

bool tls_parse_min_version(const char *s, enum tls_min_version *out)
{
    if (strcmp(s, "1.2") == 0) {
        *out = TLS_MIN_1_2;
        return true;
    }
    if (strcmp(s, "1.3") == 0) {
        *out = TLS_MIN_1_3;
        return true;
    }
    return false;
}

/* The reason of OpenSSL's latest error in this thread ("no start line", "key values mismatch"):
 * library text, never file content. Empties the queue. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error(); /* the first: "no start line", not the outer "PEM lib" */
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* Refuses to ask for a passphrase (OpenSSL's default would prompt on the terminal) and records that
 * one was wanted, so the error can say the key is encrypted. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf, (void)size, (void)rwflag;
    *(bool *)userdata = true;
    return 0;
}

/* Checks that path can be opened for reading; names key and path otherwise. */
static int check_readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char ebuf[128];

    if (f) {
        fclose(f);
        return 0;
    }
    snprintf(err, errlen, "config: %s: cannot read %s: %s", key, path,
             strerror_r(errno, ebuf, sizeof(ebuf)));
    return CDC_ECONFIG;
}

/* Loads the chain and the key into ctx and checks that they match. The password callback is
 * replaced. Returns 0 or CDC_ECONFIG with err naming the key at fault. */
static int load_pair(SSL_CTX *ctx, const char *cert_path, const char *key_path, char *err,
                     size_t errlen)
{
    const char *key_file = (key_path && key_path[0]) ? key_path : cert_path;
    const char *key_name = (key_path && key_path[0]) ? "http.tls_key" : "http.tls_certificate";
    bool asked = false;
    char why[160];

    if (check_readable("http.tls_certificate", cert_path, err, errlen) ||
        check_readable(key_name, key_file, err, errlen))
        return CDC_ECONFIG;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        snprintf(err, errlen, "config: http.tls_certificate: no usable PEM certificate in %s (%s)",
                 cert_path, ssl_reason(why, sizeof(why)));
        return CDC_ECONFIG;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen,
                     "config: %s: the private key in %s does not belong to the certificate in %s "
                     "(http.tls_certificate)",
                     key_name, key_file, cert_path);
        else if (asked)
            snprintf(err, errlen,
                     "config: %s: the private key in %s is encrypted; give an unencrypted key "
                     "(readable only by the service)",
                     key_name, key_file);
        else if (key_file == cert_path)
            snprintf(err, errlen,
                     "config: http.tls_certificate: no usable private key in %s (%s); put the key "
                     "in that file too or set http.tls_key",
                     cert_path, ssl_reason(why, sizeof(why)));
        else
            snprintf(err, errlen, "config: http.tls_key: no usable PEM private key in %s (%s)",
                     key_file, ssl_reason(why, sizeof(why)));
        SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
        ERR_clear_error();
        return CDC_ECONFIG;
    }
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen,
                 "config: %s: the private key in %s does not belong to the certificate in %s "
                 "(http.tls_certificate)",
                 key_name, key_file, cert_path);
        ERR_clear_error();
        return CDC_ECONFIG;
    }
    return 0;
}

int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc;

    if (!ctx) {
        char why[160];
        snprintf(err, errlen, "config: http.tls_certificate: OpenSSL cannot make a context (%s)",
                 ssl_reason(why, sizeof(why)));
        return CDC_ECONFIG;
    }
    rc = load_pair(ctx, cert_path, key_path, err, errlen);
    SSL_CTX_free(ctx);
    return rc;
}

/* Where the shims are: next to the running binary (the build folder, or wherever a package put
 * both), else the install folder. Writes the folder into dir; returns 0 or CDC_EIO. */
static int find_shim_dir(char *dir, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *cands[2] = {NULL, CDCACHE_TLS_SHIM_DIR};

    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            cands[0] = exe;
        }
    }
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        char path[4200];
        int w;
        if (!cands[i])
            continue;
        w = snprintf(path, sizeof(path), "%s/%s", cands[i], shims[0].file);
        if (w < 0 || (size_t)w >= sizeof(path) || access(path, R_OK) != 0)
            continue;
        w = snprintf(dir, len, "%s", cands[i]);
        if (w < 0 || (size_t)w >= len)
            continue;
        return 0;
    }
    return CDC_EIO;
}

/* The body of tls_library_init(), under init_lock. */
static int do_library_init_locked(char *err, size_t errlen)
{
    char dir[4096];
    unsigned got;

    if (find_shim_dir(dir, sizeof(dir))) {
        snprintf(err, errlen,
                 "tls: %s not found next to the binary nor in %s (built with cdcache; Debian's "
                 "civetweb cannot load OpenSSL 3 without it)",
                 shims[0].file, CDCACHE_TLS_SHIM_DIR);
        return CDC_EIO;
    }
    for (size_t i = 0; i < sizeof(shims) / sizeof(shims[0]); i++) {
        char path[4200];
        void *h, *seen;
        int w = snprintf(path, sizeof(path), "%s/%s", dir, shims[i].file);

        if (w < 0 || (size_t)w >= sizeof(path)) {
            snprintf(err, errlen, "tls: shim path too long");
            return CDC_EIO;
        }
        /* kept loaded for good: civetweb holds pointers into it until the process ends */
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!h) {
            snprintf(err, errlen, "tls: cannot load %.256s: %.200s", path, dlerror());
            return CDC_EIO;
        }
        /* The premise: civetweb's dlopen(soname) now finds this object and the symbol it needs. */
        seen = dlopen(shims[i].soname, RTLD_NOW | RTLD_NOLOAD);
        if (seen != h || !dlsym(seen, shims[i].probe)) {
            snprintf(err, errlen, "tls: \"%s\" does not resolve to %.256s (or lacks %s)",
                     shims[i].soname, path, shims[i].probe);
            if (seen)
                dlclose(seen);
            return CDC_EIO;
        }
        dlclose(seen); /* drops the reference NOLOAD took; h keeps it loaded */
    }
    got = mg_init_library(MG_FEATURES_TLS);
    if (!(got & MG_FEATURES_TLS)) {
        snprintf(err, errlen, "tls: civetweb could not initialise OpenSSL (features 0x%x)", got);
        return CDC_EIO;
    }
    return 0;
}

int tls_library_init(char *err, size_t errlen)
{
    int rc;

    pthread_mutex_lock(&init_lock);
    if (init_state == 1)
        init_state = do_library_init_locked(init_msg, sizeof(init_msg));
    rc = init_state;
    pthread_mutex_unlock(&init_lock);
    assert(rc <= 0);
    if (rc)
        snprintf(err, errlen, "%s", init_msg);
    return rc;
}

int tls_setup_server_ctx(void *ssl_ctx, const char *cert_path, const char *key_path,
                         enum tls_min_version min, char *err, size_t errlen)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX *fresh = SSL_CTX_new(TLS_server_method());
    uint64_t want;
    X509 *leaf;
    int rc;

    assert(ctx);
    if (!fresh) {
        char why[160];
        snprintf(err, errlen, "tls: OpenSSL cannot make a context (%s)",
                 ssl_reason(why, sizeof(why)));
        return CDC_EIO;
    }
    /* OpenSSL 3's defaults for a new server context, then ours; drops civetweb's 1.1-numbered bits
     */
    want = SSL_CTX_get_options(fresh) | SSL_OP_ALL | SSL_OP_NO_COMPRESSION |
           SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_free(fresh);
    SSL_CTX_clear_options(ctx, ~want);
    SSL_CTX_set_options(ctx, want);
    assert(SSL_CTX_get_options(ctx) == want);
    assert(!(SSL_CTX_get_options(ctx) &
             (SSL_OP_NO_EXTENDED_MASTER_SECRET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION)));
    if (SSL_CTX_set_min_proto_version(ctx, min == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION) !=
            1 ||
        SSL_CTX_set_max_proto_version(ctx, 0) != 1) {
        snprintf(err, errlen, "config: http.tls_min_version: OpenSSL refused it");
        ERR_clear_error();
        return CDC_ECONFIG;
    }
    rc = load_pair(ctx, cert_path, key_path, err, errlen);
    if (rc)
        return rc;
    leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        LOG_WARN("tls: the certificate in %s (http.tls_certificate) has expired; clients that "
                 "verify it will refuse the connection",
                 cert_path);
    return 0;
}

/* Appends s[0..n) to out at *pos. Returns 0 or CDC_ETOOBIG. */
static int put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    if (*pos + n + 1 > outlen)
        return CDC_ETOOBIG;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return 0;
}

bool tls_listen_wants_tls(const char *listen)
{
    const char *p = listen;

    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0 && (p[n - 1] == 's' || p[n - 1] == 'r'))
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

int tls_listen_spec(const char *listen, char *out, size_t outlen)
{
    bool as_written = tls_listen_wants_tls(listen);
    const char *p = listen;
    size_t pos = 0;

    if (outlen == 0)
        return CDC_ETOOBIG;
    out[0] = '\0';
    while (*p) {
        size_t n = strcspn(p, ",");
        if (put(out, outlen, &pos, p, n))
            return CDC_ETOOBIG;
        if (!as_written && n > 0 && p[n - 1] >= '0' && p[n - 1] <= '9' &&
            put(out, outlen, &pos, "s", 1))
            return CDC_ETOOBIG;
        p += n;
        if (*p == ',') {
            if (put(out, outlen, &pos, ",", 1))
                return CDC_ETOOBIG;
            p++;
        }
    }
    return 0;
}
