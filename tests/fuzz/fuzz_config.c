/* Fuzzes config loading (libcyaml schema + our checks) through a file, as the binary reads it. */
#include "cdcache/config.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    char err[512];
    struct config *cfg = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/cdcache-fuzz-%d.yaml", (int)getpid());
    f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    if (config_load(path, &cfg, err, sizeof(err)) == 0)
        config_free(cfg);
    unlink(path);
    return 0;
}
