/* Files: read-only mappings, whole-file reads, atomic writes, JSON files, paths. */
#ifndef AGENTLORA_FILE_H
#define AGENTLORA_FILE_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

struct al_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char *path;
};

/* Maps a whole file read-only. */
int al_file_map(struct al_mapped_file *file, const char *path);
void al_file_unmap(struct al_mapped_file *file);

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
char *al_file_read_all(const char *path, size_t *length);

/* Writes data to path through path.tmp.<pid>, fsync, rename, then fsyncs the directory,
 * so that a crash leaves either the old file or the complete new one. */
int al_file_write_atomic(const char *path, const void *data, size_t size);

/* fsyncs a directory (after creating or renaming entries in it). */
int al_fsync_dir(const char *dir);

int al_file_exists(const char *path);
int al_dir_exists(const char *path);
/* mkdir -p */
int al_mkdirs(const char *path);

/* Parses a JSON file; the error names the file and the place where parsing stopped. */
struct cJSON *al_json_load_file(const char *path);

/* Joins two path parts with one '/'; the caller frees. NULL only when out of memory. */
char *al_path_join(const char *dir, const char *name);

/* printf into a new string; the caller frees. */
char *al_strdup_printf(const char *fmt, ...);

#endif
