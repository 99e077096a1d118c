/* tls: the listening_ports rewrite, the min-version parser, and file checks that name the key.
 * Handshakes are tested against the real binary in tests/integration/test_tls.py. */
#include "cdcache/error.h"
#include "cdcache/tls.h"

#include <criterion/criterion.h>
#include <string.h>

static char out[256];
static char err[512];

Test(tls, every_port_gains_the_tls_suffix)
{
    cr_assert_eq(tls_listen_spec("127.0.0.1:8443", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "127.0.0.1:8443s");
    cr_assert_eq(tls_listen_spec("8443,[::1]:9443", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "8443s,[::1]:9443s");
}

Test(tls, a_list_that_names_its_tls_ports_is_taken_as_written)
{
    cr_assert_eq(tls_listen_spec("127.0.0.1:8080r,127.0.0.1:8443s", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "127.0.0.1:8080r,127.0.0.1:8443s");
    cr_assert_eq(tls_listen_spec("8080,8443s", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "8080,8443s");
}

Test(tls, a_short_buffer_is_an_error_not_a_cut_list)
{
    char small[8];
    cr_assert_eq(tls_listen_spec("127.0.0.1:8443", small, sizeof(small)), CDC_ETOOBIG);
    cr_assert_eq(tls_listen_spec("8443", small, 5), CDC_ETOOBIG, "no room for the s and the NUL");
    cr_assert_eq(tls_listen_spec("8443", small, 6), 0);
    cr_assert_str_eq(small, "8443s");
}

Test(tls, wants_tls)
{
    cr_assert(tls_listen_wants_tls("8443s"));
    cr_assert(tls_listen_wants_tls("8080,127.0.0.1:8081r"));
    cr_assert_not(tls_listen_wants_tls("127.0.0.1:8443"));
    cr_assert_not(tls_listen_wants_tls(""));
}

Test(tls, min_version)
{
    enum tls_min_version v = TLS_MIN_1_2;
    cr_assert(tls_parse_min_version("1.3", &v));
    cr_assert_eq(v, TLS_MIN_1_3);
    cr_assert(tls_parse_min_version("1.2", &v));
    cr_assert_eq(v, TLS_MIN_1_2);
    cr_assert_not(tls_parse_min_version("1.1", &v));
    cr_assert_not(tls_parse_min_version("1.2 ", &v));
    cr_assert_eq(v, TLS_MIN_1_2, "untouched on failure");
}

Test(tls, files_name_the_key)
{
    cr_assert_eq(tls_check_files("/nonexistent/cert.pem", "", err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.tls_certificate") && strstr(err, "/nonexistent/cert.pem"), "%s",
              err);
    /* a readable file that holds no certificate */
    cr_assert_eq(tls_check_files(FIXTURES_DIR "/../../meson.build", "", err, sizeof(err)),
                 CDC_ECONFIG);
    cr_assert(strstr(err, "http.tls_certificate") && strstr(err, "no usable PEM certificate"), "%s",
              err);
}
