/* Built as libcdcache-tls-ssl.so with the soname "libssl.so" and a dependency on libssl.so.3 (see
 * src/tls.c for why). Debian's civetweb 1.15 dlopen()s "libssl.so" and looks up the OpenSSL 1.1
 * function table; every name but one is found in libssl.so.3 through this object's dependency. The
 * one OpenSSL 3 dropped is defined here. Nothing else belongs in this file: whatever it defines, a
 * dlsym() through the name "libssl.so" finds before OpenSSL. */
#include <openssl/ssl.h>

/* In OpenSSL 3 the old name is a macro for the new one. */
#undef SSL_get_peer_certificate

/* OpenSSL 1.1's SSL_get_peer_certificate: the peer's certificate with its reference count raised
 * (the caller frees it with X509_free, as civetweb does), or NULL. SSL_get1_peer_certificate is the
 * same function under its OpenSSL 3 name. Not a cdcache_ name: the name is the point. */
X509 *SSL_get_peer_certificate(const SSL *s);

X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
