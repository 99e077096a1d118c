/* Schema migrations, compatible with golang-migrate: files NNNNNN_name.up.sql /
 * NNNNNN_name.down.sql in one folder, and a schema_migrations(version bigint, dirty boolean) table
 * holding the current version. Each step runs in one transaction under an advisory lock, so
 * concurrent runs serialise. */
#ifndef CDCACHE_MIGRATE_H
#define CDCACHE_MIGRATE_H

#include <stdio.h>

/* cmd: "up" (all pending), "down" (steps migrations; steps <= 0 means all), "status".
 * Progress goes to out. Returns 0, CDC_EINVAL (bad folder or files), CDC_EDB. */
int migrate_run(const char *conninfo, const char *dir, const char *cmd, int steps, FILE *out);

#endif
