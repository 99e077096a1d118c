/* The served API description: openapi.yaml (embedded at build time, openapi.h) is the base that
 * holds the fixed routes, the shared components and problem types, and the /items paths as the
 * template of every resource's routes; apidoc_render() turns it into the document of one
 * resource_set: for each resource, /NAME and /NAME/{key} with the methods the resource takes, a
 * key parameter typed by the key column, and the row, request-body and page schemas generated from
 * the columns (the README's "Representation" and row.h's write rules).
 *
 * Built once per resource_set generation (catalog.h) and kept by the caller: nothing here is on a
 * request's path. Pure: no I/O, no globals; reentrant. The output is deterministic: the same set
 * and base give the same bytes. */
#ifndef CDCACHE_APIDOC_H
#define CDCACHE_APIDOC_H

#include "cdcache/resource.h"
#include "cdcache/util.h"

#include <stddef.h>

/* Renders the document of set from base_json[0..base_len) (openapi_json, the base as JSON) and
 * appends it to json (compact JSON and a newline) and to yaml (the same tree as block YAML; JSON
 * strings, numbers and keys quoted as JSON writes them, so YAML 1.1 and 1.2 readers agree). Both
 * buffers are the caller's (their caps bound the output); on failure they are left as they were.
 * Returns 0; CDC_EINVAL when the base is not JSON, lacks the /items templates, or a resource has no
 * valid key column; CDC_ETOOBIG when a buffer's cap is hit. Out of memory aborts (util.h). */
int apidoc_render(const struct resource_set *set, const char *base_json, size_t base_len,
                  struct buf *json, struct buf *yaml);

#endif
