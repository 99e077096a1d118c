/* Log lines through the public header: JSON lines stay valid JSON whatever a message quotes, carry
 * the replica and the fields; text lines quote values that would break key=value. */
#include "cdcache/log.h"

#include <cJSON.h>
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

/* Runs fn with stderr sent to a pipe; returns what it wrote (static buffer). */
static const char *capture(void (*fn)(void))
{
    static char out[8192];
    int p[2], saved = dup(STDERR_FILENO);
    ssize_t n;

    cr_assert_eq(pipe(p), 0);
    dup2(p[1], STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    n = read(p[0], out, sizeof(out) - 1);
    close(p[0]);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void log_hostile(void)
{
    log_set_format(LOG_FORMAT_JSON);
    log_set_replica("r-1");
    LOG_WARN("bad \xff\xfe byte, \"quote\", back\\slash, tab\t, nl\n, overlong \xc0\xaf, ok é");
}

Test(log, json_lines_stay_valid_whatever_the_message_holds)
{
    const char *line = capture(log_hostile);
    size_t len = strlen(line);
    cr_assert(len > 2, "nothing logged");
    cr_assert_eq(strchr(line, '\n'), line + len - 1, "one line: %s", line);
    cJSON *j = cJSON_Parse(line);
    cr_assert_not_null(j, "not JSON: %s", line);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "replica")->valuestring, "r-1");
    const char *msg = cJSON_GetObjectItem(j, "msg")->valuestring;
    cr_assert(strstr(msg, "bad \xef\xbf\xbd\xef\xbf\xbd byte, \"quote\", back\\slash, tab\t, nl\n"),
              "%s", msg);
    cr_assert(strstr(msg, "overlong \xef\xbf\xbd\xef\xbf\xbd, ok \xc3\xa9"), "%s", msg);
    cr_assert_not_null(cJSON_GetObjectItem(j, "time"));
    cJSON_Delete(j);
}

static void log_access_json(void)
{
    struct log_field f[] = {{"method", "GET", 0}, {"status", NULL, 404}, {"path", "/a\"b", 0}};
    log_set_format(LOG_FORMAT_JSON);
    log_set_replica("r-2");
    log_fields(LOG_LEVEL_INFO, "access", f, 3);
}

Test(log, fields_are_members)
{
    cJSON *j = cJSON_Parse(capture(log_access_json));
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "access");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "GET");
    cr_assert_eq(cJSON_GetObjectItem(j, "status")->valueint, 404);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/a\"b");
    cJSON_Delete(j);
}

static void log_access_text(void)
{
    struct log_field f[] = {
        {"method", "GET", 0}, {"status", NULL, 200}, {"path", "/a b", 0}, {"cache", "", 0}};
    log_set_format(LOG_FORMAT_TEXT);
    log_fields(LOG_LEVEL_INFO, "access", f, 4);
}

Test(log, text_lines_quote_what_would_break_key_value)
{
    const char *line = capture(log_access_text);
    cr_assert(strstr(line, " info  access method=GET status=200 path=\"/a b\" cache=\"\"\n"), "%s",
              line);
}

Test(log, formats_parse_by_name)
{
    enum log_format f;
    cr_assert_eq(log_parse_format("json", &f), 0);
    cr_assert_eq(f, LOG_FORMAT_JSON);
    cr_assert_eq(log_parse_format("auto", &f), 0);
    cr_assert_neq(log_parse_format("JSON", &f), 0);
}
