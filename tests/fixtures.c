#include "fixtures.h"
#include "cdcache/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fixtures_read(const char *name)
{
    char path[1024];
    FILE *f;
    struct buf b;
    char chunk[4096];
    size_t k;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        abort();
    }
    buf_init(&b, 64u << 20);
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, k);
    fclose(f);
    return buf_steal(&b, NULL);
}

struct fixture_entry *fixtures_load_events(const char *name, size_t *n)
{
    char *text = fixtures_read(name);
    char *save = NULL;
    struct fixture_entry *out = NULL;
    size_t count = 0;

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cJSON *fields = cJSON_GetObjectItem(j, "fields");
        struct fixture_entry *e;
        int nf = cJSON_GetArraySize(fields);

        out = xrealloc(out, (count + 1) * sizeof(*out));
        e = &out[count++];
        memset(e, 0, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", cJSON_GetObjectItem(j, "id")->valuestring);
        for (int i = 0; i + 1 < nf && e->nfields < 4; i += 2) {
            const char *k = cJSON_GetArrayItem(fields, i)->valuestring;
            const char *v = cJSON_GetArrayItem(fields, i + 1)->valuestring;
            e->fields[e->nfields].name = xstrdup(k);
            e->fields[e->nfields].name_len = strlen(k);
            e->fields[e->nfields].value = xstrdup(v);
            e->fields[e->nfields].value_len = strlen(v);
            e->nfields++;
        }
        cJSON_Delete(j);
    }
    free(text);
    *n = count;
    return out;
}

void fixtures_free(struct fixture_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < e[i].nfields; k++) {
            free((char *)e[i].fields[k].name);
            free((char *)e[i].fields[k].value);
        }
    free(e);
}
