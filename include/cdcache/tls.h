/* TLS on the replica's HTTP port: checks the configured certificate and key, makes Debian's
 * civetweb able to load OpenSSL 3, and sets up the SSL_CTX civetweb creates. See src/tls.c for why
 * the loading needs help. */
#ifndef CDCACHE_TLS_H
#define CDCACHE_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* The lowest protocol a client may use, from http.tls_min_version ("1.2" or "1.3"). */
enum tls_min_version { TLS_MIN_1_2 = 12, TLS_MIN_1_3 = 13 };

/* Parses "1.2" or "1.3". Returns true and writes *out on success. */
bool tls_parse_min_version(const char *s, enum tls_min_version *out);

/* Loads the certificate chain (PEM, leaf first) from cert_path and the private key from key_path
 * (NULL or "": from cert_path too) into a scratch context and checks that they belong together.
 * Pure check, no side effects; thread-safe. Returns 0, or CDC_ECONFIG with a message in err naming
 * the config key at fault (http.tls_certificate or http.tls_key) and the file, never its content.
 * An encrypted key is refused (nothing could type its passphrase). */
int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen);

/* Makes civetweb's TLS usable and initialises it (mg_init_library(MG_FEATURES_TLS)); call before
 * the first mg_start() of a TLS port and before any other mg_init_library() call. Idempotent and
 * thread-safe; the first outcome is kept. Returns 0, or CDC_EIO with the reason in err. */
int tls_library_init(char *err, size_t errlen);

/* Sets up ssl_ctx (an SSL_CTX * that civetweb made) for serving: the options and the lowest
 * protocol this build wants, the certificate chain and the key. Meant for civetweb's init_ssl
 * callback, in the thread that calls mg_start(). Borrowed arguments. Returns 0, or CDC_ECONFIG with
 * a message in err naming the config key at fault. */
int tls_setup_server_ctx(void *ssl_ctx, const char *cert_path, const char *key_path,
                         enum tls_min_version min, char *err, size_t errlen);

/* Writes into out the civetweb listening_ports form of listen with TLS on: every port that has no
 * suffix gets "s" ("127.0.0.1:8443" -> "127.0.0.1:8443s"). A list that already names a port with
 * "s" is taken as written (the operator chose which ports are TLS). Returns 0, or CDC_ETOOBIG when
 * out is too small. */
int tls_listen_spec(const char *listen, char *out, size_t outlen);

/* Whether a civetweb listening_ports list names a TLS port ("s") or an HTTPS redirect ("r"). */
bool tls_listen_wants_tls(const char *listen);

#endif
