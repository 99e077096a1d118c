/* pipeline: Debezium Server's properties and prepare's SQL, as text, for tests/schemas/shop.yaml
 * (items with its own version column; customers and orders without). The SQL itself runs against a
 * real PostgreSQL in tests/integration/test_prepare.py. */
#include "cdcache/config.h"
#include "cdcache/error.h"
#include "cdcache/pipeline.h"
#include "cdcache/util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config *load_shop(void)
{
    char path[512], err[512];
    struct config *c = NULL;
    snprintf(path, sizeof(path), "%s/../schemas/shop.yaml", FIXTURES_DIR);
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

static char *text_of(const struct config *c, int which)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    cr_assert_eq(which == 0   ? pipeline_debezium_properties(c, &b)
                 : which == 1 ? pipeline_prepare_sql(c, false, &b)
                              : pipeline_prepare_sql(c, true, &b),
                 0);
    return buf_steal(&b, NULL);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void cleanup(void)
{
    unsetenv("CDCACHE_CDC_TOPIC_PREFIX");
    unsetenv("CDCACHE_CDC_PUBLICATION");
}
TestSuite(pipeline, .fini = cleanup);

Test(pipeline, debezium_properties_for_shop)
{
    struct config *c = load_shop();
    char *t = text_of(c, 0);
    cr_assert(strstr(t, "\ndebezium.source.table.include.list=inventory.items,shop.customers,"
                        "shop.orders,inventory.cdcache_watermark,cdcache.ddl_signal\n"),
              "%s", t);
    cr_assert(strstr(t, "\ndebezium.source.publication.name=cdcache_items\n"), "%s", t);
    cr_assert(strstr(t, "\ndebezium.source.publication.autocreate.mode=disabled\n"), "%s", t);
    cr_assert(strstr(t, "\ndebezium.source.topic.prefix=cdcache\n"), "%s", t);
    cr_assert(strstr(t, "\ndebezium.source.slot.name=cdcache\n"), "%s", t);
    cr_assert(strstr(t, "#   /items: cdcache.inventory.items\n"), "%s", t);
    cr_assert(strstr(t, "#   /customers: cdcache.shop.customers\n"), "%s", t);
    cr_assert(strstr(t, "#   /orders: cdcache.shop.orders\n"), "%s", t);
    cr_assert(strstr(t, "#   DDL signal: cdcache.cdcache.ddl_signal\n"), "%s", t);
    /* every line is a comment or one key=value: appendable to application.properties */
    for (const char *l = t; *l; l = strchr(l, '\n') + 1) {
        cr_assert(l[0] == '#' || (strchr(l, '=') && strchr(l, '=') < strchr(l, '\n')), "%s", l);
    }
    free(t);
    config_free(c);
}

Test(pipeline, debezium_properties_follow_the_config)
{
    struct config *c;
    char *t;
    setenv("CDCACHE_CDC_TOPIC_PREFIX", "shopdb", 1);
    setenv("CDCACHE_CDC_PUBLICATION", "shop_pub", 1);
    c = load_shop();
    t = text_of(c, 0);
    cr_assert(strstr(t, "\ndebezium.source.topic.prefix=shopdb\n"), "%s", t);
    cr_assert(strstr(t, "\ndebezium.source.publication.name=shop_pub\n"), "%s", t);
    cr_assert(strstr(t, "#   /customers: shopdb.shop.customers\n"), "%s", t);
    free(t);
    t = text_of(c, 1);
    cr_assert(strstr(t, "CREATE PUBLICATION \"shop_pub\" FOR TABLE"), "%s", t);
    free(t);
    config_free(c);
}

Test(pipeline, prepare_sql_for_shop)
{
    struct config *c = load_shop();
    char *t = text_of(c, 1);
    cr_assert(strstr(t, "BEGIN;\n") && strstr(t, "COMMIT;\n"), "one transaction");
    cr_assert(strstr(t, "pg_advisory_xact_lock("), "concurrent prepares serialise");
    cr_assert(strstr(t, "CREATE SCHEMA IF NOT EXISTS cdcache;"));
    cr_assert(strstr(t, "CREATE SEQUENCE IF NOT EXISTS cdcache.version_seq AS bigint;"));
    cr_assert(strstr(t, "NEW.cdcache_version := nextval('cdcache.version_seq');"));
    cr_assert(strstr(t, "CREATE TABLE IF NOT EXISTS cdcache.ddl_signal (\n"
                        "    tbl text PRIMARY KEY,\n"
                        "    seq bigint NOT NULL DEFAULT 1,\n"
                        "    at timestamptz NOT NULL DEFAULT now()\n);"));
    cr_assert(strstr(t, "ON ddl_command_end\n            WHEN TAG IN ('ALTER TABLE'"));
    cr_assert(strstr(t, "ON CONFLICT (tbl) DO UPDATE SET seq = s.seq + 1"));
    cr_assert(strstr(t, "ALTER EVENT TRIGGER cdcache_ddl_signal ENABLE ALWAYS;"));
    /* customers and orders get the column and the trigger; items is left alone */
    cr_assert(strstr(t, "ALTER TABLE \"shop\".\"customers\" ADD COLUMN cdcache_version bigint NOT "
                        "NULL\n            DEFAULT nextval('cdcache.version_seq');"),
              "%s", t);
    cr_assert(strstr(t, "ALTER TABLE \"shop\".\"orders\" ADD COLUMN cdcache_version"));
    cr_assert(strstr(t, "CREATE TRIGGER cdcache_version BEFORE INSERT OR UPDATE ON "
                        "\"shop\".\"customers\"\n            FOR EACH ROW EXECUTE FUNCTION "
                        "cdcache.bump_version();"));
    cr_assert(strstr(t, "ALTER TABLE \"shop\".\"orders\" ENABLE ALWAYS TRIGGER cdcache_version;"));
    cr_assert_null(strstr(t, "ALTER TABLE \"inventory\".\"items\""), "a declared version column "
                                                                     "leaves the table alone");
    cr_assert(strstr(t, "resources[0].version_column: inventory.items has no such column"));
    cr_assert(strstr(t, "resources[1].table: shop.customers does not exist"));
    cr_assert(strstr(t, "CREATE PUBLICATION \"cdcache_items\" FOR TABLE \"inventory\".\"items\", "
                        "\"shop\".\"customers\", \"shop\".\"orders\", "
                        "\"inventory\".\"cdcache_watermark\", \"cdcache\".\"ddl_signal\";"));
    cr_assert(strstr(t, "ALTER PUBLICATION \"cdcache_items\" SET TABLE \"inventory\".\"items\", "));
    free(t);
    config_free(c);
}

/* A second run must issue no DDL on a user's table (an ALTER TABLE that changes nothing would still
 * fire the DDL signal and flush every replica): every ALTER/CREATE on one sits inside an IF. */
Test(pipeline, prepare_sql_is_guarded)
{
    struct config *c = load_shop();
    char *t = text_of(c, 1);
    size_t ifs = count(t, "    IF NOT EXISTS (") + count(t, "    IF (SELECT tgenabled");
    cr_assert_eq(count(t, "ALTER TABLE \"shop\""), 4, "%s", t);
    cr_assert_eq(count(t, "CREATE TRIGGER "), 2);
    /* per prepared table: column, trigger, enable; plus items' column check and the event trigger
     */
    cr_assert_geq(ifs, 2 * 3 + 1 + 1);
    for (const char *p = t; (p = strstr(p, "ALTER TABLE \"shop\"")); p++) {
        const char *then = NULL;
        for (const char *q = t; (q = strstr(q, "THEN\n")) && q < p; q++)
            then = q;
        cr_assert_not_null(then);
        cr_assert_null(memmem(then, (size_t)(p - then), "END IF", 6), "unguarded: %.80s", p);
    }
    /* no CREATE that fails or changes something the second time */
    cr_assert_eq(count(t, "CREATE TABLE "), count(t, "CREATE TABLE IF NOT EXISTS "));
    cr_assert_eq(count(t, "CREATE SCHEMA "), count(t, "CREATE SCHEMA IF NOT EXISTS "));
    cr_assert_eq(count(t, "CREATE FUNCTION"), 0, "functions are CREATE OR REPLACE");
    free(t);
    config_free(c);
}

Test(pipeline, revert_sql_for_shop)
{
    struct config *c = load_shop();
    char *t = text_of(c, 2);
    cr_assert(strstr(t, "BEGIN;\n") && strstr(t, "COMMIT;\n"));
    cr_assert(strstr(t, "DROP EVENT TRIGGER IF EXISTS cdcache_ddl_signal;"));
    cr_assert(strstr(t, "DROP TRIGGER IF EXISTS cdcache_version ON \"shop\".\"customers\";"));
    cr_assert(strstr(t, "ALTER TABLE \"shop\".\"orders\" DROP COLUMN cdcache_version;"));
    cr_assert_null(strstr(t, "\"inventory\".\"items\""), "items keeps its own version column");
    cr_assert(strstr(t, "ALTER PUBLICATION \"cdcache_items\" SET TABLE "
                        "\"inventory\".\"cdcache_watermark\";"));
    cr_assert(strstr(t, "DROP TABLE IF EXISTS cdcache.ddl_signal;"));
    cr_assert_null(strstr(t, "DROP SEQUENCE"),
                   "a revert keeps the sequence: versions never repeat");
    cr_assert_null(strstr(t, " CASCADE;"), "revert drops only what prepare made");
    free(t);
    config_free(c);
}

Test(pipeline, names_are_quoted)
{
    struct config *c;
    char *t;
    setenv("CDCACHE_CDC_PUBLICATION", "we\"ird'pub", 1);
    c = load_shop();
    t = text_of(c, 1);
    cr_assert(strstr(t, "CREATE PUBLICATION \"we\"\"ird'pub\" FOR TABLE"), "%s", t);
    cr_assert(strstr(t, "pubname = 'we\"ird''pub'"), "%s", t);
    free(t);
    config_free(c);
}
