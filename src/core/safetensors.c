/* safetensors: a validating reader over a read-only mapping, the sharded tensor store
 * behind model.safetensors.index.json, and the writer.
 *
 * Files come from the internet, so the reader treats every number in the header as
 * hostile: the header length is checked against the file, every range against the data
 * section, every range's length against dtype x shape (with overflow checks), and the
 * ranges against each other, before any tensor is handed out. */
#include "agentlora/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"

/* The reference implementation refuses headers above 100 MB; the largest real headers
 * are a few MB, so anything bigger is a corrupt or hostile length field. */
#define MAX_HEADER_BYTES 100000000ULL
#define HEADER_LENGTH_BYTES 8
/* Headers are padded so that the data section (and so every tensor written in order by
 * an aligned writer) starts on an 8-byte boundary. */
#define HEADER_ALIGNMENT 8
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly. */
#define MAX_EXACT_JSON_INTEGER 9007199254740992.0

#define METADATA_KEY "__metadata__"
#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"

/* ---- name lookup shared by files and stores ---- */

static int compare_views_by_name(const void *a, const void *b)
{
    const struct al_tensor_view *x = *(const struct al_tensor_view *const *)a;
    const struct al_tensor_view *y = *(const struct al_tensor_view *const *)b;
    return strcmp(x->name, y->name);
}

static int compare_name_to_view(const void *key, const void *element)
{
    const struct al_tensor_view *view = *(const struct al_tensor_view *const *)element;
    return strcmp((const char *)key, view->name);
}

/* Sorts views by name so lookups are binary searches; returns the first duplicated
 * name, or NULL when all names are distinct. */
static const char *sort_by_name(const struct al_tensor_view **sorted, int count)
{
    qsort(sorted, (size_t)count, sizeof *sorted, compare_views_by_name);
    for (int i = 1; i < count; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            return sorted[i]->name;
    return NULL;
}

static const struct al_tensor_view *find_sorted(const struct al_tensor_view *const *sorted, int count,
                                                const char *name)
{
    if (count == 0)
        return NULL;
    const struct al_tensor_view *const *hit =
        bsearch(name, sorted, (size_t)count, sizeof *sorted, compare_name_to_view);
    return hit ? *hit : NULL;
}

/* ---- one file ---- */

struct al_safetensors {
    struct al_mapped_file file;
    struct al_tensor_view *tensors; /* header order */
    int count;
    const struct al_tensor_view **by_name;
    cJSON *header;                  /* owns the names the views point at */
    const cJSON *metadata;          /* inside header, or NULL */
};

static uint64_t read_le_u64(const uint8_t *bytes)
{
    uint64_t value = 0;
    for (int i = HEADER_LENGTH_BYTES - 1; i >= 0; i--)
        value = (value << 8) | bytes[i];
    return value;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_to_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double value = item->valuedouble;
    if (!isfinite(value) || value < 0 || value != floor(value) || value > MAX_EXACT_JSON_INTEGER)
        return -1;
    *out = (uint64_t)value;
    return 0;
}

static int parse_shape(struct al_tensor_view *view, const cJSON *shape, const char *path)
{
    if (!cJSON_IsArray(shape))
        return al_fail("%s: tensor %s: shape must be an array of non-negative integers", path, view->name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > AL_MAX_DIMS)
        return al_fail("%s: tensor %s: %d dimensions, at most %d are supported", path, view->name, ndim,
                       AL_MAX_DIMS);
    uint64_t count = 1;
    bool overflow = false;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t extent;
        if (json_to_uint(dim, &extent) != 0)
            return al_fail("%s: tensor %s: shape must be an array of non-negative integers", path, view->name);
        view->shape[d++] = (int64_t)extent;
        overflow |= __builtin_mul_overflow(count, extent, &count);
    }
    if (overflow || count > (uint64_t)INT64_MAX)
        return al_fail("%s: tensor %s: shape has too many elements", path, view->name);
    view->ndim = ndim;
    view->count = (int64_t)count;
    return 0;
}

/* Fills one view from its header entry; offsets are checked against data_size. */
static int parse_tensor_entry(struct al_tensor_view *view, const cJSON *entry, const uint8_t *data,
                              uint64_t data_size, const char *path)
{
    view->name = entry->string;
    view->file = path;
    if (!cJSON_IsObject(entry))
        return al_fail("%s: tensor %s: entry must be an object with dtype, shape and data_offsets", path,
                       view->name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dtype))
        return al_fail("%s: tensor %s: missing dtype", path, view->name);
    if (al_dtype_parse(dtype->valuestring, &view->dtype) != 0)
        return al_fail("%s: tensor %s: unknown dtype \"%s\"", path, view->name, dtype->valuestring);
    if (parse_shape(view, cJSON_GetObjectItemCaseSensitive(entry, "shape"), path) != 0)
        return -1;

    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        json_to_uint(cJSON_GetArrayItem(offsets, 0), &begin) != 0 ||
        json_to_uint(cJSON_GetArrayItem(offsets, 1), &end) != 0)
        return al_fail("%s: tensor %s: data_offsets must be two non-negative integers [begin, end]", path,
                       view->name);
    if (begin > end)
        return al_fail("%s: tensor %s: data_offsets [%llu, %llu] end before they begin", path, view->name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return al_fail("%s: tensor %s: data_offsets [%llu, %llu] run past the data section (%llu bytes)", path,
                       view->name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    uint64_t expected;
    if (__builtin_mul_overflow((uint64_t)view->count, (uint64_t)al_dtype_size(view->dtype), &expected) ||
        end - begin != expected)
        return al_fail("%s: tensor %s: holds %llu bytes, but %s x %lld elements needs %llu", path, view->name,
                       (unsigned long long)(end - begin), al_dtype_name(view->dtype), (long long)view->count,
                       (unsigned long long)expected);
    view->nbytes = (size_t)(end - begin);
    view->data = data + begin;
    return 0;
}

static int parse_metadata(const cJSON *metadata, const char *path)
{
    if (!cJSON_IsObject(metadata))
        return al_fail("%s: __metadata__ must be an object of strings", path);
    const cJSON *value;
    cJSON_ArrayForEach(value, metadata) {
        if (!cJSON_IsString(value))
            return al_fail("%s: __metadata__ value \"%s\" must be a string", path, value->string);
    }
    return 0;
}

static int compare_views_by_offset(const void *a, const void *b)
{
    const struct al_tensor_view *x = *(const struct al_tensor_view *const *)a;
    const struct al_tensor_view *y = *(const struct al_tensor_view *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

/* Bytes a wrong header length leaves at the front of the data section: JSON padding. */
static size_t leading_padding(const uint8_t *data, uint64_t data_size)
{
    size_t n = 0;
    while (n < data_size && n < HEADER_ALIGNMENT && data[n] == ' ')
        n++;
    return n;
}

/* The rules of the format: the tensors, sorted by offset, tile the data section exactly,
 * from its first byte to the file's last, with no gap and no overlap. A header length
 * that is off by a few bytes shifts where the data section begins, and so every tensor,
 * which only this check notices: it leaves bytes uncovered at the end (or past it). */
static int check_data_tiling(const struct al_tensor_view **order, int count, const uint8_t *data,
                             uint64_t data_size, const char *path)
{
    uint64_t covered = 0; /* bytes [0, covered) of the data section are accounted for */
    const struct al_tensor_view *previous = NULL;
    for (int i = 0; i < count; i++) {
        const struct al_tensor_view *t = order[i];
        if (t->nbytes == 0)
            continue;
        uint64_t begin = (uint64_t)((const uint8_t *)t->data - data);
        if (previous && begin < covered)
            return al_fail("%s: tensors %s and %s overlap in the data section", path, previous->name, t->name);
        if (begin > covered)
            return al_fail("%s: %llu bytes of the data section before tensor %s belong to no tensor (a gap at "
                           "data offset %llu)",
                           path, (unsigned long long)(begin - covered), t->name, (unsigned long long)covered);
        covered = begin + t->nbytes;
        previous = t;
    }
    if (covered == data_size)
        return 0;
    size_t padding = leading_padding(data, data_size);
    if (padding > 0 && padding == data_size - covered)
        return al_fail("%s: the header length is %zu bytes short: the data section starts with the header's "
                       "padding, so every tensor would be read %zu bytes off",
                       path, padding, padding);
    return al_fail("%s: %llu trailing bytes after the last tensor (the data section is %llu bytes, the tensors "
                   "cover %llu): a wrong header length or extra data",
                   path, (unsigned long long)(data_size - covered), (unsigned long long)data_size,
                   (unsigned long long)covered);
}

/* Sorts the ranges by start and checks the tiling. Empty tensors occupy no bytes. */
static int check_layout(const struct al_tensor_view *tensors, int count, const uint8_t *data, uint64_t data_size,
                        const char *path)
{
    const struct al_tensor_view **order = malloc(sizeof *order * (size_t)(count ? count : 1));
    if (!order)
        return al_fail("%s: out of memory", path);
    for (int i = 0; i < count; i++)
        order[i] = &tensors[i];
    qsort(order, (size_t)count, sizeof *order, compare_views_by_offset);
    int rc = check_data_tiling(order, count, data, data_size, path);
    free(order);
    return rc;
}

/* Parses the JSON header: everything after the closing brace must be padding. The text
 * is parsed from a NUL-terminated copy, not from the mapping: cJSON releases before
 * 1.7.18 can read one byte past an unterminated string, and past the end of a mapping
 * that byte may not exist. */
static cJSON *parse_header_json(const char *mapped, size_t length, const char *path)
{
    char *text = malloc(length + 1);
    if (!text)
        return al_fail_null("%s: out of memory for a %zu-byte header", path, length);
    memcpy(text, mapped, length);
    text[length] = '\0';
    const char *end = NULL;
    cJSON *header = cJSON_ParseWithLengthOpts(text, length, &end, 0);
    size_t stopped = end && end >= text ? (size_t)(end - text) : 0;
    size_t trailing = stopped;
    while (header && trailing < length && strchr(" \t\n\r", text[trailing]) && text[trailing])
        trailing++;
    free(text);
    if (!header)
        return al_fail_null("%s: header is not valid JSON (near byte %zu of %zu)", path, stopped, length);
    if (trailing < length) {
        cJSON_Delete(header);
        return al_fail_null("%s: header has bytes after its JSON (at byte %zu of %zu)", path, trailing, length);
    }
    if (!cJSON_IsObject(header)) {
        cJSON_Delete(header);
        return al_fail_null("%s: header must be a JSON object", path);
    }
    return header;
}

static int parse_header(struct al_safetensors *st)
{
    const char *path = st->file.path;
    if (st->file.size < HEADER_LENGTH_BYTES)
        return al_fail("%s: file is %zu bytes, too short to hold the 8-byte header length", path, st->file.size);
    uint64_t header_length = read_le_u64(st->file.data);
    uint64_t available = st->file.size - HEADER_LENGTH_BYTES;
    if (header_length > available)
        return al_fail("%s: header length %llu runs past the end of the file (%zu bytes); truncated or not a "
                       "safetensors file",
                       path, (unsigned long long)header_length, st->file.size);
    if (header_length > MAX_HEADER_BYTES)
        return al_fail("%s: header length %llu exceeds the %llu-byte limit", path,
                       (unsigned long long)header_length, MAX_HEADER_BYTES);
    const char *text = (const char *)st->file.data + HEADER_LENGTH_BYTES;
    st->header = parse_header_json(text, (size_t)header_length, path);
    if (!st->header)
        return -1;

    const uint8_t *data = st->file.data + HEADER_LENGTH_BYTES + header_length;
    uint64_t data_size = available - header_length;
    int entries = cJSON_GetArraySize(st->header);
    st->tensors = calloc((size_t)(entries ? entries : 1), sizeof *st->tensors);
    st->by_name = calloc((size_t)(entries ? entries : 1), sizeof *st->by_name);
    if (!st->tensors || !st->by_name)
        return al_fail("%s: out of memory", path);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, st->header) {
        if (strcmp(entry->string, METADATA_KEY) == 0) {
            /* A second __metadata__ would be a duplicate key; catch it as one. */
            if (st->metadata)
                return al_fail("%s: duplicate key __metadata__ in header", path);
            if (parse_metadata(entry, path) != 0)
                return -1;
            st->metadata = entry;
            continue;
        }
        struct al_tensor_view *view = &st->tensors[st->count];
        if (parse_tensor_entry(view, entry, data, data_size, path) != 0)
            return -1;
        st->by_name[st->count] = view;
        st->count++;
    }
    const char *duplicate = sort_by_name(st->by_name, st->count);
    if (duplicate)
        return al_fail("%s: tensor %s appears twice in the header", path, duplicate);
    return check_layout(st->tensors, st->count, data, data_size, path);
}

struct al_safetensors *al_safetensors_open(const char *path)
{
    struct al_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return al_fail_null("%s: out of memory", path);
    if (al_file_map(&st->file, path) != 0) {
        free(st);
        return NULL;
    }
    if (parse_header(st) != 0) {
        al_safetensors_close(st);
        return NULL;
    }
    return st;
}

void al_safetensors_close(struct al_safetensors *st)
{
    if (!st)
        return;
    cJSON_Delete(st->header);
    free(st->tensors);
    free(st->by_name);
    al_file_unmap(&st->file);
    free(st);
}

int al_safetensors_count(const struct al_safetensors *st)
{
    return st->count;
}

const struct al_tensor_view *al_safetensors_tensor(const struct al_safetensors *st, int index)
{
    return index >= 0 && index < st->count ? &st->tensors[index] : NULL;
}

const struct al_tensor_view *al_safetensors_find(const struct al_safetensors *st, const char *name)
{
    return find_sorted(st->by_name, st->count, name);
}

const char *al_safetensors_metadata(const struct al_safetensors *st, const char *key)
{
    if (!st->metadata)
        return NULL;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(st->metadata, key);
    return cJSON_IsString(value) ? value->valuestring : NULL;
}

/* ---- a model's tensors, from one file or several shards ---- */

struct al_tensor_store {
    struct al_safetensors **files;
    int n_files;
    const struct al_tensor_view **tensors; /* file order, or the index's weight_map order */
    int count;
    const struct al_tensor_view **by_name;
};

void al_tensor_store_close(struct al_tensor_store *store)
{
    if (!store)
        return;
    for (int i = 0; i < store->n_files; i++)
        al_safetensors_close(store->files[i]);
    free(store->files);
    free(store->tensors);
    free(store->by_name);
    free(store);
}

static int store_index_by_name(struct al_tensor_store *store, const char *source)
{
    store->by_name = malloc(sizeof *store->by_name * (size_t)(store->count ? store->count : 1));
    if (!store->by_name)
        return al_fail("%s: out of memory", source);
    memcpy(store->by_name, store->tensors, sizeof *store->by_name * (size_t)store->count);
    const char *duplicate = sort_by_name(store->by_name, store->count);
    if (duplicate)
        return al_fail("%s: tensor %s is listed twice", source, duplicate);
    return 0;
}

static int open_single_file(struct al_tensor_store *store, const char *path)
{
    store->files = malloc(sizeof *store->files);
    if (!store->files)
        return al_fail("%s: out of memory", path);
    store->files[0] = al_safetensors_open(path);
    if (!store->files[0])
        return -1;
    store->n_files = 1;
    const struct al_safetensors *st = store->files[0];
    store->tensors = malloc(sizeof *store->tensors * (size_t)(st->count ? st->count : 1));
    if (!store->tensors)
        return al_fail("%s: out of memory", path);
    for (int i = 0; i < st->count; i++)
        store->tensors[i] = &st->tensors[i];
    store->count = st->count;
    return store_index_by_name(store, path);
}

/* Shard names come from a downloaded file: keep them inside the model folder. */
static int check_shard_name(const char *shard, const char *tensor, const char *index_path)
{
    if (shard[0] == '\0' || strchr(shard, '/') || strcmp(shard, ".") == 0 || strcmp(shard, "..") == 0)
        return al_fail("%s: tensor %s is mapped to \"%s\", which is not a file name in the model folder",
                       index_path, tensor, shard);
    return 0;
}

/* The shard of this name, opened on first use. */
static struct al_safetensors *shard_for(struct al_tensor_store *store, const char *model_dir, const char *shard,
                                        const char **shard_names)
{
    for (int i = 0; i < store->n_files; i++)
        if (strcmp(shard_names[i], shard) == 0)
            return store->files[i];
    char *path = al_path_join(model_dir, shard);
    if (!path)
        return al_fail_null("out of memory");
    struct al_safetensors *st = NULL;
    if (!al_file_exists(path))
        al_fail("%s: shard %s named by %s does not exist", path, shard, INDEX_FILE);
    else
        st = al_safetensors_open(path);
    free(path);
    if (!st)
        return NULL;
    shard_names[store->n_files] = shard;
    store->files[store->n_files++] = st;
    return st;
}

/* Every tensor a shard holds must be one the index maps to that shard; anything else
 * would be silently ignored by one loader and used by another. */
static int check_shards_hold_only_indexed(const struct al_tensor_store *store, const cJSON *weight_map,
                                          const char **shard_names, const char *index_path)
{
    for (int f = 0; f < store->n_files; f++) {
        const struct al_safetensors *st = store->files[f];
        for (int i = 0; i < st->count; i++) {
            const char *name = st->tensors[i].name;
            const cJSON *mapped = cJSON_GetObjectItemCaseSensitive(weight_map, name);
            if (!mapped)
                return al_fail("%s: tensor %s is not listed in %s", st->file.path, name, index_path);
            if (strcmp(mapped->valuestring, shard_names[f]) != 0)
                return al_fail("%s: tensor %s is here, but %s maps it to %s", st->file.path, name, index_path,
                               mapped->valuestring);
        }
    }
    return 0;
}

static int open_sharded(struct al_tensor_store *store, const char *model_dir, const char *index_path)
{
    cJSON *index = al_json_load_file(index_path);
    if (!index)
        return -1;
    int rc = -1;
    const char **shard_names = NULL;
    const cJSON *weight_map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    int entries = cJSON_GetArraySize(weight_map);
    if (!cJSON_IsObject(weight_map)) {
        al_fail("%s: weight_map must be an object mapping tensor names to shard files", index_path);
        goto done;
    }
    size_t slots = (size_t)(entries ? entries : 1);
    store->files = calloc(slots, sizeof *store->files);
    store->tensors = calloc(slots, sizeof *store->tensors);
    shard_names = calloc(slots, sizeof *shard_names);
    if (!store->files || !store->tensors || !shard_names) {
        al_fail("%s: out of memory", index_path);
        goto done;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, weight_map) {
        if (!cJSON_IsString(entry)) {
            al_fail("%s: weight_map entry %s must be a shard file name", index_path, entry->string);
            goto done;
        }
        if (check_shard_name(entry->valuestring, entry->string, index_path) != 0)
            goto done;
        struct al_safetensors *st = shard_for(store, model_dir, entry->valuestring, shard_names);
        if (!st)
            goto done;
        const struct al_tensor_view *view = al_safetensors_find(st, entry->string);
        if (!view) {
            al_fail("%s: tensor %s is mapped to shard %s, which does not contain it", index_path, entry->string,
                    entry->valuestring);
            goto done;
        }
        store->tensors[store->count++] = view;
    }
    if (check_shards_hold_only_indexed(store, weight_map, shard_names, index_path) != 0)
        goto done;
    rc = store_index_by_name(store, index_path);
done:
    free(shard_names);
    cJSON_Delete(index);
    return rc;
}

struct al_tensor_store *al_tensor_store_open(const char *model_dir)
{
    struct al_tensor_store *store = calloc(1, sizeof *store);
    char *index_path = al_path_join(model_dir, INDEX_FILE);
    char *single_path = al_path_join(model_dir, SINGLE_FILE);
    int rc;
    if (!store || !index_path || !single_path)
        rc = al_fail("out of memory");
    else if (al_file_exists(index_path))
        rc = open_sharded(store, model_dir, index_path);
    else if (al_file_exists(single_path))
        rc = open_single_file(store, single_path);
    else
        rc = al_fail("%s: no %s or %s in the model folder", model_dir, SINGLE_FILE, INDEX_FILE);
    free(index_path);
    free(single_path);
    if (rc != 0) {
        al_tensor_store_close(store);
        return NULL;
    }
    return store;
}

int al_tensor_store_count(const struct al_tensor_store *store)
{
    return store->count;
}

const struct al_tensor_view *al_tensor_store_tensor(const struct al_tensor_store *store, int index)
{
    return index >= 0 && index < store->count ? store->tensors[index] : NULL;
}

const struct al_tensor_view *al_tensor_store_find(const struct al_tensor_store *store, const char *name)
{
    return find_sorted(store->by_name, store->count, name);
}

/* ---- writing ---- */

struct pending_tensor {
    char *name;
    enum al_dtype dtype;
    int ndim;
    int64_t shape[AL_MAX_DIMS];
    void *data;
    size_t nbytes;
};

struct al_safetensors_writer {
    struct pending_tensor *tensors;
    int count, capacity;
    cJSON *metadata;
};

struct al_safetensors_writer *al_safetensors_writer_create(void)
{
    struct al_safetensors_writer *writer = calloc(1, sizeof *writer);
    if (!writer)
        return al_fail_null("out of memory");
    writer->metadata = cJSON_CreateObject();
    if (!writer->metadata || !cJSON_AddStringToObject(writer->metadata, "format", "pt")) {
        al_safetensors_writer_free(writer);
        return al_fail_null("out of memory");
    }
    return writer;
}

void al_safetensors_writer_free(struct al_safetensors_writer *writer)
{
    if (!writer)
        return;
    for (int i = 0; i < writer->count; i++) {
        free(writer->tensors[i].name);
        free(writer->tensors[i].data);
    }
    free(writer->tensors);
    cJSON_Delete(writer->metadata);
    free(writer);
}

static bool writer_has(const struct al_safetensors_writer *writer, const char *name)
{
    for (int i = 0; i < writer->count; i++)
        if (strcmp(writer->tensors[i].name, name) == 0)
            return true;
    return false;
}

static int check_new_tensor(const struct al_safetensors_writer *writer, const char *name, enum al_dtype dtype,
                            int ndim, const int64_t *shape, size_t *nbytes)
{
    if (!name || !*name || strcmp(name, METADATA_KEY) == 0)
        return al_fail("safetensors writer: invalid tensor name \"%s\"", name ? name : "(null)");
    if ((unsigned)dtype >= AL_DTYPE_COUNT)
        return al_fail("safetensors writer: tensor %s: unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > AL_MAX_DIMS)
        return al_fail("safetensors writer: tensor %s: %d dimensions, at most %d are supported", name, ndim,
                       AL_MAX_DIMS);
    if (writer_has(writer, name))
        return al_fail("safetensors writer: tensor %s added twice", name);
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return al_fail("safetensors writer: tensor %s: negative extent %lld", name, (long long)shape[d]);
        if (__builtin_mul_overflow(count, (uint64_t)shape[d], &count))
            return al_fail("safetensors writer: tensor %s: shape has too many elements", name);
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(count, (uint64_t)al_dtype_size(dtype), &bytes) || bytes > SIZE_MAX)
        return al_fail("safetensors writer: tensor %s: too large", name);
    *nbytes = (size_t)bytes;
    return 0;
}

int al_safetensors_writer_add(struct al_safetensors_writer *writer, const char *name, enum al_dtype dtype,
                              int ndim, const int64_t *shape, const void *data)
{
    size_t nbytes = 0;
    if (check_new_tensor(writer, name, dtype, ndim, shape, &nbytes) != 0)
        return -1;
    if (nbytes > 0 && !data)
        return al_fail("safetensors writer: tensor %s: no data given", name);
    if (writer->count == writer->capacity) {
        int capacity = writer->capacity ? writer->capacity * 2 : 16;
        struct pending_tensor *grown = realloc(writer->tensors, sizeof *grown * (size_t)capacity);
        if (!grown)
            return al_fail("safetensors writer: out of memory");
        writer->tensors = grown;
        writer->capacity = capacity;
    }
    struct pending_tensor *t = &writer->tensors[writer->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return al_fail("safetensors writer: out of memory for tensor %s", name);
    }
    if (nbytes)
        memcpy(t->data, data, nbytes);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->nbytes = nbytes;
    writer->count++;
    return 0;
}

int al_safetensors_writer_set_metadata(struct al_safetensors_writer *writer, const char *key, const char *value)
{
    if (!key || !value)
        return al_fail("safetensors writer: metadata key and value must be strings");
    cJSON *string = cJSON_CreateString(value);
    if (!string)
        return al_fail("safetensors writer: out of memory");
    if (cJSON_HasObjectItem(writer->metadata, key))
        cJSON_ReplaceItemInObjectCaseSensitive(writer->metadata, key, string);
    else
        cJSON_AddItemToObject(writer->metadata, key, string);
    return 0;
}

/* Integers go in as raw JSON text: cJSON prints large doubles in exponent notation,
 * which readers expecting integers reject. */
static cJSON *raw_integer(uint64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)value);
    return cJSON_CreateRaw(text);
}

/* Appends item to an array (name NULL) or object; false when out of memory, with item freed. */
static bool attach(cJSON *parent, const char *name, cJSON *item)
{
    bool ok = item && (name ? cJSON_AddItemToObject(parent, name, item) : cJSON_AddItemToArray(parent, item));
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

static cJSON *tensor_entry(const struct pending_tensor *t, uint64_t begin)
{
    cJSON *entry = cJSON_CreateObject();
    bool ok = entry && cJSON_AddStringToObject(entry, "dtype", al_dtype_name(t->dtype));
    cJSON *shape = ok ? cJSON_AddArrayToObject(entry, "shape") : NULL;
    cJSON *offsets = shape ? cJSON_AddArrayToObject(entry, "data_offsets") : NULL;
    ok = offsets != NULL;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = attach(shape, NULL, raw_integer((uint64_t)t->shape[d]));
    ok = ok && attach(offsets, NULL, raw_integer(begin)) && attach(offsets, NULL, raw_integer(begin + t->nbytes));
    if (!ok) {
        cJSON_Delete(entry);
        return NULL;
    }
    return entry;
}

/* The header JSON: __metadata__ first, then the tensors in the order they were added,
 * laid out back to back. */
static char *build_header(const struct al_safetensors_writer *writer, uint64_t *data_size)
{
    cJSON *header = cJSON_CreateObject();
    if (!header || !cJSON_AddItemReferenceToObject(header, METADATA_KEY, writer->metadata)) {
        cJSON_Delete(header);
        return NULL;
    }
    uint64_t offset = 0;
    for (int i = 0; i < writer->count; i++) {
        if (!attach(header, writer->tensors[i].name, tensor_entry(&writer->tensors[i], offset))) {
            cJSON_Delete(header);
            return NULL;
        }
        offset += writer->tensors[i].nbytes;
    }
    char *text = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    *data_size = offset;
    return text;
}

int al_safetensors_writer_write(struct al_safetensors_writer *writer, const char *path)
{
    uint64_t data_size = 0;
    char *json = build_header(writer, &data_size);
    if (!json)
        return al_fail("%s: out of memory building the safetensors header", path);
    size_t json_length = strlen(json);
    size_t header_length = (json_length + HEADER_ALIGNMENT - 1) / HEADER_ALIGNMENT * HEADER_ALIGNMENT;
    size_t total = HEADER_LENGTH_BYTES + header_length + (size_t)data_size;
    uint8_t *buffer = malloc(total);
    if (!buffer) {
        free(json);
        return al_fail("%s: out of memory (%zu bytes)", path, total);
    }
    for (int i = 0; i < HEADER_LENGTH_BYTES; i++)
        buffer[i] = (uint8_t)((uint64_t)header_length >> (8 * i));
    memcpy(buffer + HEADER_LENGTH_BYTES, json, json_length);
    memset(buffer + HEADER_LENGTH_BYTES + json_length, ' ', header_length - json_length);
    uint8_t *cursor = buffer + HEADER_LENGTH_BYTES + header_length;
    for (int i = 0; i < writer->count; i++) {
        if (writer->tensors[i].nbytes)
            memcpy(cursor, writer->tensors[i].data, writer->tensors[i].nbytes);
        cursor += writer->tensors[i].nbytes;
    }
    free(json);
    int rc = al_file_write_atomic(path, buffer, total);
    free(buffer);
    return rc;
}
