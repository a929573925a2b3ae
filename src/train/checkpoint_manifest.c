/* The MANIFEST: proof that a checkpoint is complete and intact.
 *
 *   agentlora-checkpoint 1
 *   step 100
 *   file 5f0c21aa 1207 adapter_config.json
 *   ...
 *   manifest-crc32c 0d3e9b11
 *
 * One line per file: CRC-32C (hex), size in bytes, name. The last line is the CRC-32C of
 * every byte before it, so a damaged MANIFEST is detected like any other file. It is
 * written after every other file has been fsynced, so its presence means "complete". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "train/checkpoint_internal.h"

#define MANIFEST_HEADER "agentlora-checkpoint 1\n"
#define MANIFEST_CRC_TAG "manifest-crc32c "
#define MANIFEST_LINE_MAX 512

const char *const al_checkpoint_files[] = {
    "adapter_config.json",
    "adapter_model.safetensors",
    CHECKPOINT_OPTIMIZER,
    CHECKPOINT_STATE,
};
const int al_checkpoint_file_count = (int)(sizeof al_checkpoint_files / sizeof al_checkpoint_files[0]);

/* Size and checksum of a file, read through a mapping. */
static int measure_file(const char *path, uint64_t *size, uint32_t *crc)
{
    struct al_mapped_file file;
    if (al_file_map(&file, path) != 0)
        return -1;
    *size = file.size;
    *crc = al_crc32c(file.data, file.size);
    al_file_unmap(&file);
    return 0;
}

int al_checkpoint_write_manifest(const char *dir, int64_t step)
{
    size_t capacity = 256 + (size_t)al_checkpoint_file_count * MANIFEST_LINE_MAX, used = 0;
    char *text = malloc(capacity);
    if (!text)
        return al_fail("out of memory");
    used += (size_t)snprintf(text + used, capacity - used, MANIFEST_HEADER "step %" PRId64 "\n", step);
    for (int i = 0; i < al_checkpoint_file_count; i++) {
        char *path = al_path_join(dir, al_checkpoint_files[i]);
        uint64_t size = 0;
        uint32_t crc = 0;
        int rc = path ? measure_file(path, &size, &crc) : al_fail("out of memory");
        free(path);
        if (rc != 0) {
            free(text);
            return -1;
        }
        used += (size_t)snprintf(text + used, capacity - used, "file %08" PRIx32 " %" PRIu64 " %s\n", crc, size,
                                 al_checkpoint_files[i]);
    }
    used += (size_t)snprintf(text + used, capacity - used, MANIFEST_CRC_TAG "%08" PRIx32 "\n", al_crc32c(text, used));
    char *path = al_path_join(dir, CHECKPOINT_MANIFEST);
    int rc = path ? al_file_write_atomic(path, text, used) : al_fail("out of memory");
    free(path);
    free(text);
    return rc;
}

/* ---- verification ---- */

/* The MANIFEST's last line must be the checksum of everything before it. */
static int check_manifest_checksum(const char *text, size_t length, const char *path)
{
    if (length == 0 || text[length - 1] != '\n')
        return al_fail("%s: truncated (no final newline)", path);
    const char *last = text + length - 1;
    while (last > text && last[-1] != '\n')
        last--;
    uint32_t stored = 0;
    char extra;
    if (strncmp(last, MANIFEST_CRC_TAG, strlen(MANIFEST_CRC_TAG)) != 0 ||
        sscanf(last + strlen(MANIFEST_CRC_TAG), "%8" SCNx32 "%c", &stored, &extra) != 2 || extra != '\n')
        return al_fail("%s: the last line is not the manifest checksum (truncated or damaged)", path);
    uint32_t actual = al_crc32c(text, (size_t)(last - text));
    if (actual != stored)
        return al_fail("%s: damaged (checksum %08" PRIx32 ", recorded %08" PRIx32 ")", path, actual, stored);
    return 0;
}

static int check_file(const char *dir, const char *name, uint32_t crc, uint64_t size)
{
    char *path = al_path_join(dir, name);
    if (!path)
        return al_fail("out of memory");
    int rc = 0;
    uint64_t actual_size = 0;
    uint32_t actual_crc = 0;
    if (!al_file_exists(path))
        rc = al_fail("%s: missing", path);
    else if (measure_file(path, &actual_size, &actual_crc) != 0)
        rc = -1;
    else if (actual_size != size)
        rc = al_fail("%s: %" PRIu64 " bytes, the manifest says %" PRIu64 " (truncated or damaged)", path,
                     actual_size, size);
    else if (actual_crc != crc)
        rc = al_fail("%s: damaged (CRC-32C %08" PRIx32 ", the manifest says %08" PRIx32 ")", path, actual_crc, crc);
    free(path);
    return rc;
}

/* Checks each "file" line and that every required file is listed. */
static int check_listed_files(const char *dir, char *text, const char *manifest_path)
{
    bool listed[16] = {false};
    char *save = NULL;
    int line_number = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_number++;
        if (strncmp(line, "file ", 5) != 0)
            continue;
        uint32_t crc;
        uint64_t size;
        char name[256];
        if (sscanf(line, "file %8" SCNx32 " %" SCNu64 " %255s", &crc, &size, name) != 3)
            return al_fail("%s: line %d is not 'file CRC SIZE NAME'", manifest_path, line_number);
        int index = -1;
        for (int i = 0; i < al_checkpoint_file_count; i++)
            if (strcmp(name, al_checkpoint_files[i]) == 0)
                index = i;
        if (index < 0)
            return al_fail("%s: line %d lists an unexpected file '%s'", manifest_path, line_number, name);
        if (check_file(dir, name, crc, size) != 0)
            return -1;
        listed[index] = true;
    }
    for (int i = 0; i < al_checkpoint_file_count; i++)
        if (!listed[i])
            return al_fail("%s: does not list %s", manifest_path, al_checkpoint_files[i]);
    return 0;
}

int al_checkpoint_verify(const char *dir)
{
    char *path = al_path_join(dir, CHECKPOINT_MANIFEST);
    if (!path)
        return al_fail("out of memory");
    int rc = -1;
    size_t length = 0;
    char *text = NULL;
    if (!al_dir_exists(dir))
        al_fail("%s: no such checkpoint folder", dir);
    else if (!al_file_exists(path))
        al_fail("%s: no MANIFEST: the checkpoint is incomplete (interrupted while being written?)", dir);
    else if ((text = al_file_read_all(path, &length)) != NULL && check_manifest_checksum(text, length, path) == 0) {
        if (strncmp(text, MANIFEST_HEADER, strlen(MANIFEST_HEADER)) != 0)
            al_fail("%s: not an agentlora checkpoint manifest (version 1)", path);
        else
            rc = check_listed_files(dir, text, path);
    }
    if (rc != 0)
        al_error_context("checkpoint %s refused", dir);
    free(text);
    free(path);
    return rc;
}
