/* The API's description, openapi.yaml at the repository root, embedded at build time
 * (scripts/openapi-embed.py, a meson custom_target): the YAML byte for byte, and the same document
 * as JSON. Served by GET /openapi.yaml and GET /openapi.json. Immutable; each array also ends in a
 * NUL that its length does not count. */
#ifndef CDCACHE_OPENAPI_H
#define CDCACHE_OPENAPI_H

#include <stddef.h>

extern const char openapi_yaml[];
extern const size_t openapi_yaml_len;
extern const char openapi_json[];
extern const size_t openapi_json_len;

#endif
