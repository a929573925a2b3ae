/* safetensors: reading (one file, or shards through model.safetensors.index.json) and
 * writing. Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. */
#ifndef AGENTLORA_SAFETENSORS_H
#define AGENTLORA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "agentlora/dtype.h"

#define AL_MAX_DIMS 8

struct al_tensor_view {
    const char *name;
    enum al_dtype dtype;
    int ndim;
    int64_t shape[AL_MAX_DIMS];
    int64_t count;      /* product of shape (1 for a scalar) */
    const void *data;   /* points into the mapped file */
    size_t nbytes;
    const char *file;   /* the file that holds it, for error messages */
};

/* ---- one file ---- */

struct al_safetensors;

/* Maps and validates a file: header length inside the file, header JSON, every dtype
 * known, shapes non-negative, offsets inside the data section, sizes matching
 * dtype x shape, no two tensors overlapping, no duplicate names. Errors name the file
 * and, where there is one, the tensor. */
struct al_safetensors *al_safetensors_open(const char *path);
void al_safetensors_close(struct al_safetensors *st);

int al_safetensors_count(const struct al_safetensors *st);
const struct al_tensor_view *al_safetensors_tensor(const struct al_safetensors *st, int index);
const struct al_tensor_view *al_safetensors_find(const struct al_safetensors *st, const char *name);
/* A value of __metadata__, or NULL. */
const char *al_safetensors_metadata(const struct al_safetensors *st, const char *key);

/* ---- a model's tensors, from one file or several shards ---- */

struct al_tensor_store;

/* Opens DIR/model.safetensors, or, when DIR/model.safetensors.index.json exists, every
 * shard its weight_map names (each tensor must be in the shard the index says). */
struct al_tensor_store *al_tensor_store_open(const char *model_dir);
void al_tensor_store_close(struct al_tensor_store *store);
int al_tensor_store_count(const struct al_tensor_store *store);
const struct al_tensor_view *al_tensor_store_tensor(const struct al_tensor_store *store, int index);
const struct al_tensor_view *al_tensor_store_find(const struct al_tensor_store *store, const char *name);

/* ---- writing ---- */

struct al_safetensors_writer;

struct al_safetensors_writer *al_safetensors_writer_create(void);
void al_safetensors_writer_free(struct al_safetensors_writer *writer);
/* Adds a tensor; the data is copied. Names must be unique. */
int al_safetensors_writer_add(struct al_safetensors_writer *writer, const char *name, enum al_dtype dtype,
                              int ndim, const int64_t *shape, const void *data);
/* Adds a string to __metadata__ ({"format": "pt"} is always written). */
int al_safetensors_writer_set_metadata(struct al_safetensors_writer *writer, const char *key, const char *value);
/* Writes the file atomically (al_file_write_atomic); header padded with spaces to a
 * multiple of 8 bytes; tensors in the order they were added. */
int al_safetensors_writer_write(struct al_safetensors_writer *writer, const char *path);

#endif
