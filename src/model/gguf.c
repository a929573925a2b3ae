/* GGUF reading: maps the file, parses the header, metadata and tensor infos with every
 * length and offset checked against the file, and answers look-ups. Dequantisation lives
 * in gguf_dequantize.c, the Llama/Hugging Face mapping in gguf_model.c. */
#include "agentlora/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "model/gguf_internal.h"

static const uint8_t GGUF_MAGIC[4] = {'G', 'G', 'U', 'F'};
/* Versions 2 and 3 share this layout (3 added big-endian files, whose byte-swapped version
 * number is refused here); version 1 used 32-bit counts. */
enum { GGUF_MIN_VERSION = 2, GGUF_MAX_VERSION = 3 };

/* The smallest encodings, to bound counts by the bytes left before allocating:
 * a key/value is a string length, a value type and at least one byte of value; a tensor
 * info is a name length, a dim count, one dim, a type and an offset. */
enum { MIN_KV_BYTES = 8 + 4 + 1, MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8 };

struct allocation {
    struct allocation *next;
    max_align_t data[];
};

struct al_gguf {
    struct al_mapped_file file;
    uint32_t version;
    uint64_t alignment;
    int kv_count;
    struct al_gguf_kv *kvs;
    int tensor_count;
    struct al_gguf_tensor *tensors;
    struct allocation *allocations; /* strings and string arrays, freed at close */
};

struct cursor {
    const uint8_t *at;
    const uint8_t *end;
    const uint8_t *begin;
    const char *path;
};

static void *gguf_alloc(struct al_gguf *g, size_t size)
{
    struct allocation *a = malloc(sizeof *a + size);
    if (!a)
        return al_fail_null("%s: out of memory (%zu bytes)", g->file.path, size);
    a->next = g->allocations;
    g->allocations = a;
    return a->data;
}

static size_t bytes_left(const struct cursor *c)
{
    return (size_t)(c->end - c->at);
}

static int take(struct cursor *c, void *out, size_t n, const char *what)
{
    if (bytes_left(c) < n)
        return al_fail("%s: file ends inside %s (offset %zu, %zu bytes needed, %zu left)", c->path, what,
                       (size_t)(c->at - c->begin), n, bytes_left(c));
    memcpy(out, c->at, n);
    c->at += n;
    return 0;
}

static int take_u32(struct cursor *c, uint32_t *out, const char *what)
{
    return take(c, out, sizeof *out, what);
}

static int take_u64(struct cursor *c, uint64_t *out, const char *what)
{
    return take(c, out, sizeof *out, what);
}

/* A string: u64 length, bytes. Returns a pointer into the file; the caller copies. */
static int take_string(struct cursor *c, const char **bytes, uint64_t *length, const char *what)
{
    if (take_u64(c, length, what) < 0)
        return -1;
    if (*length > bytes_left(c))
        return al_fail("%s: %s has length %" PRIu64 " but only %zu bytes are left in the file", c->path, what,
                       *length, bytes_left(c));
    *bytes = (const char *)c->at;
    c->at += *length;
    return 0;
}

static char *copy_string(struct al_gguf *g, const char *bytes, uint64_t length, const char *what)
{
    if (memchr(bytes, '\0', length))
        return al_fail_null("%s: %s contains a NUL byte", g->file.path, what);
    char *s = gguf_alloc(g, length + 1);
    if (!s)
        return NULL;
    memcpy(s, bytes, length);
    s[length] = '\0';
    return s;
}

static size_t scalar_size(enum al_gguf_value_type type)
{
    switch (type) {
    case AL_GGUF_UINT8: case AL_GGUF_INT8: case AL_GGUF_BOOL: return 1;
    case AL_GGUF_UINT16: case AL_GGUF_INT16: return 2;
    case AL_GGUF_UINT32: case AL_GGUF_INT32: case AL_GGUF_FLOAT32: return 4;
    case AL_GGUF_UINT64: case AL_GGUF_INT64: case AL_GGUF_FLOAT64: return 8;
    default: return 0; /* STRING, ARRAY, unknown */
    }
}

/* Decodes one little-endian scalar at p into the value's u, i and f. */
static void decode_scalar(enum al_gguf_value_type type, const uint8_t *p, struct al_gguf_value *v)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } x;
    memcpy(&x, p, scalar_size(type));
    switch (type) {
    case AL_GGUF_UINT8: case AL_GGUF_BOOL: v->u = x.u8; v->i = x.u8; break;
    case AL_GGUF_INT8: v->i = x.i8; v->u = (uint64_t)v->i; break;
    case AL_GGUF_UINT16: v->u = x.u16; v->i = x.u16; break;
    case AL_GGUF_INT16: v->i = x.i16; v->u = (uint64_t)v->i; break;
    case AL_GGUF_UINT32: v->u = x.u32; v->i = x.u32; break;
    case AL_GGUF_INT32: v->i = x.i32; v->u = (uint64_t)v->i; break;
    case AL_GGUF_UINT64: v->u = x.u64; v->i = (int64_t)x.u64; break;
    case AL_GGUF_INT64: v->i = x.i64; v->u = (uint64_t)x.i64; break;
    case AL_GGUF_FLOAT32: v->f = x.f32; return;
    case AL_GGUF_FLOAT64: v->f = x.f64; return;
    default: return;
    }
    v->f = type == AL_GGUF_UINT64 ? (double)v->u : (double)v->i;
}

static int read_string_array(struct al_gguf *g, struct cursor *c, struct al_gguf_value *v, const char *key)
{
    /* Each element needs at least its 8-byte length. */
    if (v->count > bytes_left(c) / 8)
        return al_fail("%s: key %s: array of %" PRIu64 " strings cannot fit in the %zu bytes left", g->file.path,
                       key, v->count, bytes_left(c));
    const uint8_t *start = c->at;
    uint64_t total = 0;
    for (uint64_t k = 0; k < v->count; k++) {
        const char *bytes;
        uint64_t length;
        if (take_string(c, &bytes, &length, "a string array element") < 0) {
            al_error_context("key %s, element %" PRIu64, key, k);
            return -1;
        }
        if (memchr(bytes, '\0', length))
            return al_fail("%s: key %s, element %" PRIu64 " contains a NUL byte", g->file.path, key, k);
        total += length + 1;
    }
    char **strings = gguf_alloc(g, v->count * sizeof *strings + total);
    if (!strings)
        return -1;
    char *chars = (char *)(strings + v->count);
    struct cursor again = {start, c->at, c->begin, c->path};
    for (uint64_t k = 0; k < v->count; k++) {
        const char *bytes;
        uint64_t length;
        take_string(&again, &bytes, &length, "a string array element");
        memcpy(chars, bytes, length);
        chars[length] = '\0';
        strings[k] = chars;
        chars += length + 1;
    }
    v->strings = (const char *const *)strings;
    return 0;
}

static int read_value(struct al_gguf *g, struct cursor *c, struct al_gguf_value *v, const char *key)
{
    uint32_t type = 0;
    if (take_u32(c, &type, "a value type") < 0)
        return -1;
    if (type >= AL_GGUF_VALUE_TYPE_COUNT)
        return al_fail("%s: key %s has unknown value type %" PRIu32, g->file.path, key, type);
    v->type = type;
    if (type == AL_GGUF_STRING) {
        const char *bytes;
        uint64_t length;
        if (take_string(c, &bytes, &length, "a string value") < 0) {
            al_error_context("key %s", key);
            return -1;
        }
        v->str = copy_string(g, bytes, length, key);
        return v->str ? 0 : -1;
    }
    if (type != AL_GGUF_ARRAY) {
        uint8_t raw[8];
        if (take(c, raw, scalar_size(type), "a scalar value") < 0) {
            al_error_context("key %s", key);
            return -1;
        }
        decode_scalar(type, raw, v);
        if (type == AL_GGUF_BOOL && v->u > 1)
            return al_fail("%s: key %s: bool value %" PRIu64 " is neither 0 nor 1", g->file.path, key, v->u);
        return 0;
    }
    uint32_t elem_type = 0;
    if (take_u32(c, &elem_type, "an array element type") < 0 || take_u64(c, &v->count, "an array length") < 0) {
        al_error_context("key %s", key);
        return -1;
    }
    if (elem_type >= AL_GGUF_VALUE_TYPE_COUNT)
        return al_fail("%s: key %s: array of unknown value type %" PRIu32, g->file.path, key, elem_type);
    if (elem_type == AL_GGUF_ARRAY)
        return al_fail("%s: key %s: arrays of arrays are not supported", g->file.path, key);
    v->elem_type = elem_type;
    if (elem_type == AL_GGUF_STRING)
        return read_string_array(g, c, v, key);
    size_t size = scalar_size(elem_type);
    if (v->count > bytes_left(c) / size)
        return al_fail("%s: key %s: array of %" PRIu64 " elements of %zu bytes runs past the end of the file",
                       g->file.path, key, v->count, size);
    v->elems = c->at;
    c->at += v->count * size;
    return 0;
}

static int find_kv_index(const struct al_gguf *g, int count, const char *key)
{
    for (int k = 0; k < count; k++)
        if (strcmp(g->kvs[k].key, key) == 0)
            return k;
    return -1;
}

static int read_metadata(struct al_gguf *g, struct cursor *c, uint64_t count)
{
    if (count > bytes_left(c) / MIN_KV_BYTES)
        return al_fail("%s: metadata count %" PRIu64 " cannot fit in the %zu bytes of the file", g->file.path, count,
                       g->file.size);
    g->kvs = calloc(count ? count : 1, sizeof *g->kvs);
    if (!g->kvs)
        return al_fail("%s: out of memory", g->file.path);
    for (uint64_t k = 0; k < count; k++) {
        const char *bytes;
        uint64_t length;
        if (take_string(c, &bytes, &length, "a metadata key") < 0) {
            al_error_context("metadata entry %" PRIu64, k);
            return -1;
        }
        char *key = copy_string(g, bytes, length, "a metadata key");
        if (!key)
            return -1;
        if (find_kv_index(g, (int)k, key) >= 0)
            return al_fail("%s: key %s appears twice", g->file.path, key);
        g->kvs[k].key = key;
        if (read_value(g, c, &g->kvs[k].value, key) < 0)
            return -1;
        g->kv_count = (int)k + 1;
    }
    return 0;
}

static int read_alignment(struct al_gguf *g)
{
    int64_t alignment;
    if (al_gguf_get_int_or(g, "general.alignment", AL_GGUF_DEFAULT_ALIGNMENT, &alignment) < 0)
        return -1;
    if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
        return al_fail("%s: general.alignment %" PRId64 " is not a positive power of two", g->file.path, alignment);
    g->alignment = (uint64_t)alignment;
    return 0;
}

static int read_tensor_info(struct al_gguf *g, struct cursor *c, struct al_gguf_tensor *t, uint64_t index)
{
    const char *bytes;
    uint64_t length;
    if (take_string(c, &bytes, &length, "a tensor name") < 0) {
        al_error_context("tensor info %" PRIu64, index);
        return -1;
    }
    t->name = copy_string(g, bytes, length, "a tensor name");
    if (!t->name)
        return -1;
    t->file = g->file.path;
    uint32_t ndim = 0;
    if (take_u32(c, &ndim, "a tensor's dimension count") < 0) {
        al_error_context("tensor %s", t->name);
        return -1;
    }
    if (ndim < 1 || ndim > AL_GGUF_MAX_DIMS)
        return al_fail("%s: tensor %s has %" PRIu32 " dimensions (1 to %d allowed)", g->file.path, t->name, ndim,
                       AL_GGUF_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t dims[AL_GGUF_MAX_DIMS];
    for (uint32_t d = 0; d < ndim; d++)
        if (take_u64(c, &dims[d], "a tensor dimension") < 0) {
            al_error_context("tensor %s", t->name);
            return -1;
        }
    uint32_t type = 0;
    if (take_u32(c, &type, "a tensor type") < 0 || take_u64(c, &t->offset, "a tensor offset") < 0) {
        al_error_context("tensor %s", t->name);
        return -1;
    }
    t->type = (enum al_ggml_type)type;
    /* GGUF lists dimensions fastest-first; row-major readers want them slowest-first. */
    uint64_t count = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        if (dims[d] == 0 || dims[d] > INT64_MAX || count > INT64_MAX / dims[d])
            return al_fail("%s: tensor %s: dimension %" PRIu32 " is %" PRIu64 " (zero, or the size overflows)",
                           g->file.path, t->name, d, dims[d]);
        count *= dims[d];
        t->shape[ndim - 1 - d] = (int64_t)dims[d];
    }
    t->count = (int64_t)count;
    struct al_ggml_layout layout;
    if (!al_ggml_layout_of(t->type, &layout)) {
        t->nbytes = 0; /* unknown layout: its size cannot be checked, and it cannot be read */
        return 0;
    }
    if (dims[0] % (uint64_t)layout.block_values != 0)
        return al_fail("%s: tensor %s: rows of %" PRIu64 " values are not a whole number of %s blocks of %d",
                       g->file.path, t->name, dims[0], al_ggml_type_name(t->type), layout.block_values);
    uint64_t blocks = count / (uint64_t)layout.block_values;
    if (blocks > SIZE_MAX / (uint64_t)layout.block_bytes)
        return al_fail("%s: tensor %s is too large", g->file.path, t->name);
    t->nbytes = (size_t)(blocks * (uint64_t)layout.block_bytes);
    return 0;
}

static int find_tensor_index(const struct al_gguf *g, int count, const char *name)
{
    for (int k = 0; k < count; k++)
        if (strcmp(g->tensors[k].name, name) == 0)
            return k;
    return -1;
}

static int read_tensor_infos(struct al_gguf *g, struct cursor *c, uint64_t count)
{
    if (count > bytes_left(c) / MIN_TENSOR_INFO_BYTES)
        return al_fail("%s: tensor count %" PRIu64 " cannot fit in the %zu bytes of the file", g->file.path, count,
                       g->file.size);
    g->tensors = calloc(count ? count : 1, sizeof *g->tensors);
    if (!g->tensors)
        return al_fail("%s: out of memory", g->file.path);
    for (uint64_t k = 0; k < count; k++) {
        if (read_tensor_info(g, c, &g->tensors[k], k) < 0)
            return -1;
        if (find_tensor_index(g, (int)k, g->tensors[k].name) >= 0)
            return al_fail("%s: tensor %s appears twice", g->file.path, g->tensors[k].name);
        g->tensor_count = (int)k + 1;
    }
    return 0;
}

/* Writers (gguf-py, llama.cpp) lay the tensors out in the order of their infos, each at
 * the aligned end of the one before, and llama.cpp refuses any other layout. Checking
 * it catches overlapping data, and a type or shape changed in a tensor info (which
 * changes how many bytes the tensor needs) before anything is read as the wrong type. */
static int check_tensors_in_sequence(const struct al_gguf *g)
{
    uint64_t expected = 0;
    bool known = true; /* false after a type of unknown size: its end cannot be computed */
    for (int k = 0; k < g->tensor_count; k++) {
        const struct al_gguf_tensor *t = &g->tensors[k];
        if (known && t->offset != expected)
            return al_fail("%s: tensor %s: data at offset %" PRIu64 ", but %s ends at %" PRIu64 " (aligned to %" PRIu64
                           "): the two %s, so a tensor's type or shape does not match its data",
                           g->file.path, t->name, t->offset, k > 0 ? g->tensors[k - 1].name : "the data before it",
                           expected, g->alignment, t->offset < expected ? "overlap" : "leave a gap");
        struct al_ggml_layout layout;
        known = al_ggml_layout_of(t->type, &layout);
        expected = (t->offset + t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    return 0;
}

/* Places every tensor inside the data section, which starts at the first aligned offset
 * after the tensor infos. */
static int place_tensors(struct al_gguf *g, size_t header_end)
{
    uint64_t data_start = (header_end + g->alignment - 1) / g->alignment * g->alignment;
    if (data_start > g->file.size && g->tensor_count > 0)
        return al_fail("%s: the data section (offset %" PRIu64 ") starts past the end of the file (%zu bytes)",
                       g->file.path, data_start, g->file.size);
    uint64_t data_size = data_start <= g->file.size ? g->file.size - data_start : 0;
    for (int k = 0; k < g->tensor_count; k++) {
        struct al_gguf_tensor *t = &g->tensors[k];
        if (t->offset % g->alignment != 0)
            return al_fail("%s: tensor %s: offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                           g->file.path, t->name, t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return al_fail("%s: tensor %s: bytes %" PRIu64 "..%" PRIu64 " of the data section lie outside it "
                           "(%" PRIu64 " bytes)", g->file.path, t->name, t->offset, t->offset + t->nbytes, data_size);
        t->data = g->file.data + data_start + t->offset;
    }
    return check_tensors_in_sequence(g);
}

static int parse(struct al_gguf *g)
{
    struct cursor c = {g->file.data, g->file.data + g->file.size, g->file.data, g->file.path};
    uint8_t magic[4];
    if (g->file.size < sizeof magic || memcmp(g->file.data, GGUF_MAGIC, sizeof magic) != 0)
        return al_fail("%s: not a GGUF file (it does not start with \"GGUF\")", g->file.path);
    take(&c, magic, sizeof magic, "the magic");
    uint64_t tensor_count = 0, kv_count = 0;
    if (take_u32(&c, &g->version, "the version") < 0)
        return -1;
    if (g->version < GGUF_MIN_VERSION || g->version > GGUF_MAX_VERSION)
        return al_fail("%s: GGUF version %" PRIu32 " is not supported (%d to %d are)", g->file.path, g->version,
                       GGUF_MIN_VERSION, GGUF_MAX_VERSION);
    if (take_u64(&c, &tensor_count, "the tensor count") < 0 || take_u64(&c, &kv_count, "the metadata count") < 0)
        return -1;
    if (read_metadata(g, &c, kv_count) < 0 || read_alignment(g) < 0 || read_tensor_infos(g, &c, tensor_count) < 0)
        return -1;
    return place_tensors(g, (size_t)(c.at - c.begin));
}

struct al_gguf *al_gguf_open(const char *path)
{
    struct al_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return al_fail_null("%s: out of memory", path);
    if (al_file_map(&g->file, path) < 0) {
        free(g);
        return NULL;
    }
    if (parse(g) < 0) {
        al_gguf_close(g);
        return NULL;
    }
    return g;
}

void al_gguf_close(struct al_gguf *g)
{
    if (!g)
        return;
    while (g->allocations) {
        struct allocation *next = g->allocations->next;
        free(g->allocations);
        g->allocations = next;
    }
    free(g->kvs);
    free(g->tensors);
    al_file_unmap(&g->file);
    free(g);
}

const char *al_gguf_path(const struct al_gguf *g) { return g->file.path; }
uint32_t al_gguf_version(const struct al_gguf *g) { return g->version; }
uint64_t al_gguf_alignment(const struct al_gguf *g) { return g->alignment; }
int al_gguf_kv_count(const struct al_gguf *g) { return g->kv_count; }
int al_gguf_tensor_count(const struct al_gguf *g) { return g->tensor_count; }

const struct al_gguf_kv *al_gguf_kv(const struct al_gguf *g, int index)
{
    return index >= 0 && index < g->kv_count ? &g->kvs[index] : NULL;
}

const struct al_gguf_value *al_gguf_find(const struct al_gguf *g, const char *key)
{
    int k = find_kv_index(g, g->kv_count, key);
    return k >= 0 ? &g->kvs[k].value : NULL;
}

const struct al_gguf_tensor *al_gguf_tensor(const struct al_gguf *g, int index)
{
    return index >= 0 && index < g->tensor_count ? &g->tensors[index] : NULL;
}

const struct al_gguf_tensor *al_gguf_find_tensor(const struct al_gguf *g, const char *name)
{
    int k = find_tensor_index(g, g->tensor_count, name);
    return k >= 0 ? &g->tensors[k] : NULL;
}

static bool is_integer_type(enum al_gguf_value_type type)
{
    return scalar_size(type) > 0 && type != AL_GGUF_FLOAT32 && type != AL_GGUF_FLOAT64 && type != AL_GGUF_BOOL;
}

static const struct al_gguf_value *require(const struct al_gguf *g, const char *key)
{
    const struct al_gguf_value *v = al_gguf_find(g, key);
    if (!v)
        return al_fail_null("%s: metadata key %s is missing", g->file.path, key);
    return v;
}

int al_gguf_get_int(const struct al_gguf *g, const char *key, int64_t *out)
{
    const struct al_gguf_value *v = require(g, key);
    if (!v)
        return -1;
    if (!is_integer_type(v->type))
        return al_fail("%s: metadata key %s is not an integer (value type %d)", g->file.path, key, (int)v->type);
    if (v->type == AL_GGUF_UINT64 && v->u > INT64_MAX)
        return al_fail("%s: metadata key %s: %" PRIu64 " is too large", g->file.path, key, v->u);
    *out = v->i;
    return 0;
}

int al_gguf_get_float(const struct al_gguf *g, const char *key, double *out)
{
    const struct al_gguf_value *v = require(g, key);
    if (!v)
        return -1;
    if (scalar_size(v->type) == 0 || v->type == AL_GGUF_BOOL)
        return al_fail("%s: metadata key %s is not a number (value type %d)", g->file.path, key, (int)v->type);
    *out = v->f;
    return 0;
}

int al_gguf_get_string(const struct al_gguf *g, const char *key, const char **out)
{
    const struct al_gguf_value *v = require(g, key);
    if (!v)
        return -1;
    if (v->type != AL_GGUF_STRING)
        return al_fail("%s: metadata key %s is not a string (value type %d)", g->file.path, key, (int)v->type);
    *out = v->str;
    return 0;
}

int al_gguf_get_int_or(const struct al_gguf *g, const char *key, int64_t fallback, int64_t *out)
{
    if (!al_gguf_find(g, key)) {
        *out = fallback;
        return 0;
    }
    return al_gguf_get_int(g, key, out);
}

int al_gguf_get_float_or(const struct al_gguf *g, const char *key, double fallback, double *out)
{
    if (!al_gguf_find(g, key)) {
        *out = fallback;
        return 0;
    }
    return al_gguf_get_float(g, key, out);
}

int al_gguf_get_array(const struct al_gguf *g, const char *key, enum al_gguf_value_type elem_type,
                      const struct al_gguf_value **out)
{
    const struct al_gguf_value *v = require(g, key);
    if (!v)
        return -1;
    if (v->type != AL_GGUF_ARRAY || v->elem_type != elem_type)
        return al_fail("%s: metadata key %s is not an array of value type %d", g->file.path, key, (int)elem_type);
    *out = v;
    return 0;
}

int64_t al_gguf_array_int(const struct al_gguf_value *array, uint64_t i)
{
    struct al_gguf_value v = {0};
    decode_scalar(array->elem_type, array->elems + i * scalar_size(array->elem_type), &v);
    return v.i;
}

double al_gguf_array_float(const struct al_gguf_value *array, uint64_t i)
{
    struct al_gguf_value v = {0};
    decode_scalar(array->elem_type, array->elems + i * scalar_size(array->elem_type), &v);
    return v.f;
}
