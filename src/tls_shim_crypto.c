/* Built as libcdcache-tls-crypto.so with the soname "libcrypto.so" (see src/tls.c): Debian's
 * civetweb 1.15 dlopen()s that name, which only libssl-dev's symlink provides; through this
 * object's dependency on libcrypto.so.3 it finds the functions it wants. The one function below
 * exists so the linker keeps that dependency (meson links with --as-needed). */
#include <openssl/crypto.h>

unsigned long cdcache_tls_shim_openssl_version(void);

unsigned long cdcache_tls_shim_openssl_version(void)
{
    return OpenSSL_version_num();
}
