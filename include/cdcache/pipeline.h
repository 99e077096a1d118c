/* What the pipeline around the replicas needs from the declared resources: Debezium Server's
 * properties (the captured tables, the publication, the streams) and the SQL that prepares a table
 * for cdcache (its version column and trigger, the publication, the DDL signal). Derived from the
 * config alone; prints, never connects, except prepare's --apply, which runs the SQL it printed.
 *
 * Commands (main.c): `cdcache debezium-config --config FILE` and
 * `cdcache prepare --config FILE [--apply] [--revert]`. */
#ifndef CDCACHE_PIPELINE_H
#define CDCACHE_PIPELINE_H

#include "cdcache/config.h"
#include "cdcache/util.h"

/* Appends the Debezium Server properties for cfg's resources to out (properties format, one key per
 * line, with comments): debezium.source.table.include.list (every resource's table, the watermark
 * and DDL tables), debezium.source.publication.name (autocreate disabled: prepare owns it),
 * debezium.source.topic.prefix, debezium.source.slot.name, and each stream's name as a comment.
 * Returns 0 or CDC_ETOOBIG. */
int pipeline_debezium_properties(const struct config *cfg, struct buf *out);

/* Appends the idempotent SQL that prepares cfg's resources (revert: the SQL that undoes it) to out.
 * Returns 0 or CDC_ETOOBIG. */
int pipeline_prepare_sql(const struct config *cfg, bool revert, struct buf *out);

/* Runs sql (pipeline_prepare_sql()'s text: one transaction) on its own connection to conninfo,
 * closed before it returns. Returns 0, or CDC_EDB with PostgreSQL's message in err (never the
 * conninfo, which may hold a password). */
int pipeline_apply(const char *conninfo, int connect_timeout_ms, const char *sql, char *err,
                   size_t errlen);

#endif
