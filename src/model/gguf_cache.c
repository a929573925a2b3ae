/* GGUF files where a model folder is expected: converted once into "<file>.hf" and reused
 * while the file is unchanged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"

#define CACHE_SUFFIX ".hf"
#define SOURCE_FILE "gguf_source.json"

bool al_path_is_gguf(const char *path)
{
    /* Only a regular file can be one; opening a FIFO to look would block. */
    if (!al_file_exists(path))
        return false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char magic[4];
    bool is_gguf = fread(magic, 1, sizeof magic, f) == sizeof magic && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return is_gguf;
}

/* What identifies one version of the source file, and the conversion asked for. */
static char *source_record(const char *gguf_path, enum al_dtype dtype)
{
    struct stat st;
    if (stat(gguf_path, &st) != 0) {
        al_fail_errno("%s: cannot stat", gguf_path);
        return NULL;
    }
    return al_strdup_printf("{\"size\": %lld, \"mtime_sec\": %lld, \"mtime_nsec\": %ld, \"dtype\": \"%s\"}\n",
                            (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
                            al_dtype_name(dtype));
}

char *al_gguf_model_dir(const char *gguf_path, enum al_dtype dtype)
{
    char *record = source_record(gguf_path, dtype);
    if (!record)
        return NULL;
    char *dir = al_strdup_printf("%s" CACHE_SUFFIX, gguf_path);
    char *marker = dir ? al_path_join(dir, SOURCE_FILE) : NULL;
    int rc = marker ? 0 : al_fail("out of memory");
    if (rc == 0 && al_file_exists(marker)) {
        char *recorded = al_file_read_all(marker, NULL);
        bool same = recorded && strcmp(recorded, record) == 0;
        free(recorded);
        if (!same)
            rc = al_fail("%s was converted from another version of %s (or with another dtype than %s); delete it "
                         "to convert again", dir, gguf_path, al_dtype_name(dtype));
    } else if (rc == 0) {
        rc = al_gguf_convert(gguf_path, dir, dtype);
        if (rc != 0)
            al_error_context("converting %s into %s", gguf_path, dir);
        else
            rc = al_file_write_atomic(marker, record, strlen(record));
    }
    free(record);
    free(marker);
    if (rc != 0) {
        free(dir);
        return NULL;
    }
    return dir;
}
