/* safetensors: writer -> reader round trips, every kind of malformed file, and the
 * sharded tensor store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"
#include "test_support.h"

/* ---- helpers ---- */

static void fill_bytes(uint8_t *bytes, size_t n, uint64_t seed)
{
    struct al_rng rng;
    al_rng_seed(&rng, seed, 3);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)al_rng_u32(&rng);
}

/* A file made of an 8-byte length, the header text as given, and data_size bytes. */
static char *write_raw(const char *dir, const char *name, uint64_t declared_length, const char *header,
                       size_t data_size)
{
    size_t header_size = strlen(header);
    size_t total = 8 + header_size + data_size;
    uint8_t *bytes = calloc(1, total);
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)(declared_length >> (8 * i));
    memcpy(bytes + 8, header, header_size);
    fill_bytes(bytes + 8 + header_size, data_size, 11);
    char *path = test_write_file(dir, name, bytes, total);
    free(bytes);
    cr_assert_not_null(path);
    return path;
}

static char *write_header(const char *dir, const char *name, const char *header, size_t data_size)
{
    return write_raw(dir, name, strlen(header), header, data_size);
}

/* Opening must fail, and the message must name the file and each given fragment. */
static void expect_open_fails(const char *path, const char *fragment1, const char *fragment2)
{
    al_error_clear();
    struct al_safetensors *st = al_safetensors_open(path);
    const char *message = al_error_message();
    cr_assert_null(st, "%s opened but should have been rejected", path);
    cr_assert(strstr(message, path), "message does not name the file: %s", message);
    if (fragment1)
        cr_assert(strstr(message, fragment1), "message lacks \"%s\": %s", fragment1, message);
    if (fragment2)
        cr_assert(strstr(message, fragment2), "message lacks \"%s\": %s", fragment2, message);
}

/* ---- round trip ---- */

Test(safetensors_roundtrip, every_dtype_metadata_order_and_alignment)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "all.safetensors");
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    cr_assert_not_null(w);

    /* One tensor per dtype, added in reverse dtype order so that insertion order differs
     * from both alphabetical and enum order, with shapes of rank 0 to 3. */
    uint8_t *payload[AL_DTYPE_COUNT];
    int64_t shapes[AL_DTYPE_COUNT][3];
    char names[AL_DTYPE_COUNT][32];
    for (int k = 0; k < AL_DTYPE_COUNT; k++) {
        enum al_dtype dtype = (enum al_dtype)(AL_DTYPE_COUNT - 1 - k);
        int ndim = k % 4;
        int64_t count = 1;
        for (int d = 0; d < ndim; d++) {
            shapes[k][d] = 2 + d + k % 3;
            count *= shapes[k][d];
        }
        size_t nbytes = (size_t)count * al_dtype_size(dtype);
        payload[k] = malloc(nbytes);
        fill_bytes(payload[k], nbytes, (uint64_t)k + 100);
        snprintf(names[k], sizeof names[k], "t%02d.%s", AL_DTYPE_COUNT - k, al_dtype_name(dtype));
        cr_assert_eq(al_safetensors_writer_add(w, names[k], dtype, ndim, shapes[k], payload[k]), 0, "%s",
                     al_error_message());
    }
    int64_t empty_shape[2] = {0, 5};
    cr_assert_eq(al_safetensors_writer_add(w, "empty", AL_DTYPE_F32, 2, empty_shape, NULL), 0);
    cr_assert_eq(al_safetensors_writer_set_metadata(w, "purpose", "round \"trip\" test"), 0);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0, "%s", al_error_message());
    al_safetensors_writer_free(w);

    /* The header length is a multiple of 8 and the padding is spaces. */
    size_t size = 0;
    uint8_t *raw = (uint8_t *)al_file_read_all(path, &size);
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--)
        header_length = header_length << 8 | raw[i];
    cr_assert_eq(header_length % 8, 0, "header length %llu is not a multiple of 8",
                 (unsigned long long)header_length);
    const char *header = (const char *)raw + 8;
    size_t json_end = header_length;
    while (json_end > 0 && header[json_end - 1] == ' ')
        json_end--;
    cr_assert_eq(header[json_end - 1], '}', "header must end in } before its padding");
    cr_assert(strncmp(header, "{\"__metadata__\":", 16) == 0, "metadata comes first");
    free(raw);

    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_not_null(st, "%s", al_error_message());
    cr_assert_eq(al_safetensors_count(st), AL_DTYPE_COUNT + 1);
    cr_assert_str_eq(al_safetensors_metadata(st, "format"), "pt");
    cr_assert_str_eq(al_safetensors_metadata(st, "purpose"), "round \"trip\" test");
    cr_assert_null(al_safetensors_metadata(st, "absent"));

    const uint8_t *previous_end = NULL;
    for (int k = 0; k < AL_DTYPE_COUNT; k++) {
        const struct al_tensor_view *t = al_safetensors_tensor(st, k);
        enum al_dtype dtype = (enum al_dtype)(AL_DTYPE_COUNT - 1 - k);
        cr_assert_str_eq(t->name, names[k], "tensor %d out of insertion order", k);
        cr_assert_eq(t->dtype, dtype);
        cr_assert_eq(t->ndim, k % 4);
        for (int d = 0; d < t->ndim; d++)
            cr_assert_eq(t->shape[d], shapes[k][d]);
        cr_assert_eq(t->nbytes, (size_t)t->count * al_dtype_size(dtype));
        cr_assert_eq(memcmp(t->data, payload[k], t->nbytes), 0, "data of %s differs", t->name);
        /* Data laid out back to back in insertion order, from an 8-aligned start. */
        if (previous_end)
            cr_assert_eq((const uint8_t *)t->data, previous_end);
        else
            cr_assert_eq(((uintptr_t)t->data) % 8, 0, "data section is not 8-byte aligned");
        previous_end = (const uint8_t *)t->data + t->nbytes;
        cr_assert_eq(al_safetensors_find(st, names[k]), t);
        cr_assert_str_eq(t->file, path);
        free(payload[k]);
    }
    const struct al_tensor_view *empty = al_safetensors_find(st, "empty");
    cr_assert_not_null(empty);
    cr_assert_eq(empty->count, 0);
    cr_assert_eq(empty->nbytes, 0);
    cr_assert_null(al_safetensors_find(st, "nope"));
    cr_assert_null(al_safetensors_tensor(st, AL_DTYPE_COUNT + 1));
    al_safetensors_close(st);
    free(path);
    free(dir);
}

Test(safetensors_roundtrip, float_values_survive)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "floats.safetensors");
    float values[24];
    test_fill_random(values, 24, 5, 3.0f);
    int64_t shape[2] = {4, 6};
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    cr_assert_eq(al_safetensors_writer_add(w, "w", AL_DTYPE_F32, 2, shape, values), 0);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0, "%s", al_error_message());
    al_safetensors_writer_free(w);
    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_not_null(st, "%s", al_error_message());
    const struct al_tensor_view *t = al_safetensors_find(st, "w");
    float back[24];
    memcpy(back, t->data, sizeof back);
    cr_assert_eq(test_max_abs_error(back, values, 24), 0.0);
    al_safetensors_close(st);
    free(path);
    free(dir);
}

Test(safetensors_writer, rejects_duplicates_and_bad_input)
{
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    float x[2] = {1, 2};
    int64_t shape[1] = {2}, negative[1] = {-2};
    cr_assert_eq(al_safetensors_writer_add(w, "a", AL_DTYPE_F32, 1, shape, x), 0);
    cr_assert_eq(al_safetensors_writer_add(w, "a", AL_DTYPE_F32, 1, shape, x), -1);
    cr_assert(strstr(al_error_message(), "a added twice"), "%s", al_error_message());
    cr_assert_eq(al_safetensors_writer_add(w, "__metadata__", AL_DTYPE_F32, 1, shape, x), -1);
    cr_assert_eq(al_safetensors_writer_add(w, "b", AL_DTYPE_F32, 1, negative, x), -1);
    cr_assert(strstr(al_error_message(), "tensor b"), "%s", al_error_message());
    cr_assert_eq(al_safetensors_writer_add(w, "c", AL_DTYPE_COUNT, 1, shape, x), -1);
    cr_assert_eq(al_safetensors_writer_add(w, "d", AL_DTYPE_F32, AL_MAX_DIMS + 1, shape, x), -1);
    al_safetensors_writer_free(w);
}

Test(safetensors_writer, format_metadata_can_be_replaced_not_duplicated)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "meta.safetensors");
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    cr_assert_eq(al_safetensors_writer_set_metadata(w, "step", "1"), 0);
    cr_assert_eq(al_safetensors_writer_set_metadata(w, "step", "2"), 0);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0, "%s", al_error_message());
    al_safetensors_writer_free(w);
    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_not_null(st, "%s", al_error_message());
    cr_assert_eq(al_safetensors_count(st), 0);
    cr_assert_str_eq(al_safetensors_metadata(st, "step"), "2");
    cr_assert_str_eq(al_safetensors_metadata(st, "format"), "pt");
    al_safetensors_close(st);
    free(path);
    free(dir);
}

/* ---- malformed files ---- */

Test(safetensors_malformed, missing_and_empty_files)
{
    char *dir = test_tmpdir();
    char *missing = al_path_join(dir, "missing.safetensors");
    expect_open_fails(missing, "cannot open", NULL);
    char *empty = test_write_file(dir, "empty.safetensors", "", 0);
    expect_open_fails(empty, "too short", NULL);
    char *tiny = test_write_file(dir, "tiny.safetensors", "\x10\x00\x00", 3);
    expect_open_fails(tiny, "too short", NULL);
    free(missing);
    free(empty);
    free(tiny);
    free(dir);
}

Test(safetensors_malformed, truncated_data)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "cut.safetensors");
    float values[64] = {0};
    int64_t shape[1] = {64};
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    al_safetensors_writer_add(w, "first", AL_DTYPE_F32, 1, shape, values);
    al_safetensors_writer_add(w, "second", AL_DTYPE_F32, 1, shape, values);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0);
    al_safetensors_writer_free(w);
    size_t size = 0;
    char *bytes = al_file_read_all(path, &size);
    /* Cut in the middle of the second tensor: the header is intact, its range is not. */
    char *cut = test_write_file(dir, "cut2.safetensors", bytes, size - 100);
    expect_open_fails(cut, "tensor second", "past the data section");
    free(cut);
    free(bytes);
    free(path);
    free(dir);
}

Test(safetensors_malformed, every_prefix_of_a_valid_file_fails_cleanly)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "whole.safetensors");
    uint16_t values[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    al_safetensors_writer_add(w, "x", AL_DTYPE_BF16, 2, shape, values);
    al_safetensors_writer_add(w, "y", AL_DTYPE_F16, 2, shape, values);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0);
    al_safetensors_writer_free(w);
    size_t size = 0;
    char *bytes = al_file_read_all(path, &size);
    for (size_t cut = 0; cut < size; cut++) {
        char *prefix = test_write_file(dir, "prefix.safetensors", bytes, cut);
        expect_open_fails(prefix, NULL, NULL);
        free(prefix);
    }
    free(bytes);
    free(path);
    free(dir);
}

Test(safetensors_malformed, random_corruption_never_crashes)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "good.safetensors");
    float values[8] = {0};
    int64_t shape[1] = {8};
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    al_safetensors_writer_add(w, "a", AL_DTYPE_F32, 1, shape, values);
    al_safetensors_writer_add(w, "b", AL_DTYPE_F32, 1, shape, values);
    al_safetensors_writer_set_metadata(w, "k", "v");
    cr_assert_eq(al_safetensors_writer_write(w, path), 0);
    al_safetensors_writer_free(w);
    size_t size = 0;
    char *good = al_file_read_all(path, &size);
    struct al_rng rng;
    al_rng_seed(&rng, 2024, 1);
    int rejected = 0;
    for (int trial = 0; trial < 400; trial++) {
        char *bad = malloc(size);
        memcpy(bad, good, size);
        int flips = 1 + (int)al_rng_below(&rng, 3);
        for (int f = 0; f < flips; f++) /* mostly the header, where the structure is */
            bad[al_rng_below(&rng, (uint32_t)(size < 200 ? size : 200))] = (char)al_rng_u32(&rng);
        char *file = test_write_file(dir, "bad.safetensors", bad, size);
        al_error_clear();
        struct al_safetensors *st = al_safetensors_open(file);
        if (!st) {
            rejected++;
            cr_assert(strstr(al_error_message(), file), "message does not name the file: %s",
                      al_error_message());
        } else {
            /* Whatever was accepted must describe ranges inside the file. */
            for (int i = 0; i < al_safetensors_count(st); i++) {
                const struct al_tensor_view *t = al_safetensors_tensor(st, i);
                cr_assert_eq(t->nbytes, (size_t)t->count * al_dtype_size(t->dtype));
            }
            al_safetensors_close(st);
        }
        free(file);
        free(bad);
    }
    cr_assert_gt(rejected, 100, "corruption was almost never detected (%d of 400)", rejected);
    free(good);
    free(path);
    free(dir);
}

Test(safetensors_malformed, header_length_past_the_end)
{
    char *dir = test_tmpdir();
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    char *path = write_raw(dir, "long.safetensors", 5000, header, 4);
    expect_open_fails(path, "header length 5000", "past the end");
    char *huge = write_raw(dir, "huge.safetensors", UINT64_MAX, header, 4);
    expect_open_fails(huge, "past the end", NULL);
    free(path);
    free(huge);
    free(dir);
}

Test(safetensors_malformed, invalid_header_json)
{
    char *dir = test_tmpdir();
    char *broken = write_header(dir, "broken.safetensors", "{\"a\":{\"dtype\":\"F32\",", 0);
    expect_open_fails(broken, "not valid JSON", NULL);
    char *array = write_header(dir, "array.safetensors", "[1, 2, 3]", 0);
    expect_open_fails(array, "JSON object", NULL);
    char *trailing = write_header(dir, "trailing.safetensors", "{} garbage", 0);
    expect_open_fails(trailing, "after its JSON", NULL);
    char *zero = write_header(dir, "zero.safetensors", "", 16);
    expect_open_fails(zero, "not valid JSON", NULL);
    char *not_object = write_header(dir, "entry.safetensors", "{\"w\": 5}", 0);
    expect_open_fails(not_object, "tensor w", "object");
    char *bad_meta = write_header(dir, "meta.safetensors", "{\"__metadata__\": {\"step\": 5}}", 0);
    expect_open_fails(bad_meta, "__metadata__", "step");
    /* Unterminated escapes at the very end of the header must not be read past. */
    char *escape = write_header(dir, "escape.safetensors", "{\"a\\", 0);
    expect_open_fails(escape, "not valid JSON", NULL);
    char *unicode = write_header(dir, "unicode.safetensors", "{\"a\": \"\\u12", 0);
    expect_open_fails(unicode, "not valid JSON", NULL);
    char *nul = test_write_file(dir, "nul.safetensors", "\x08\0\0\0\0\0\0\0{}\0     ", 16);
    expect_open_fails(nul, "after its JSON", NULL);
    free(escape);
    free(unicode);
    free(nul);
    free(broken);
    free(array);
    free(trailing);
    free(zero);
    free(not_object);
    free(bad_meta);
    free(dir);
}

Test(safetensors_malformed, offsets_out_of_bounds)
{
    char *dir = test_tmpdir();
    char *path = write_header(dir, "oob.safetensors",
                              "{\"w\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 16);
    expect_open_fails(path, "tensor w", "past the data section");
    char *reversed = write_header(dir, "rev.safetensors",
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16);
    expect_open_fails(reversed, "tensor w", "end before they begin");
    char *negative = write_header(dir, "neg.safetensors",
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16);
    expect_open_fails(negative, "tensor w", "data_offsets");
    char *missing = write_header(dir, "noofs.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 16);
    expect_open_fails(missing, "tensor w", "data_offsets");
    free(path);
    free(reversed);
    free(negative);
    free(missing);
    free(dir);
}

Test(safetensors_malformed, overlapping_tensors)
{
    char *dir = test_tmpdir();
    char *path = write_header(dir, "overlap.safetensors",
                              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                              24);
    expect_open_fails(path, "tensors a and b overlap", NULL);
    /* One tensor wholly inside another, listed first. */
    char *nested = write_header(dir, "nested.safetensors",
                                "{\"inner\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                                "\"outer\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                "\"after\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[16,18]}}",
                                18);
    expect_open_fails(nested, "outer", "inner");
    /* Touching ranges and empty tensors are fine. */
    char *touching = write_header(dir, "touching.safetensors",
                                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                  "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                                  16);
    struct al_safetensors *st = al_safetensors_open(touching);
    cr_assert_not_null(st, "%s", al_error_message());
    cr_assert_eq(al_safetensors_count(st), 3);
    al_safetensors_close(st);
    free(path);
    free(nested);
    free(touching);
    free(dir);
}

Test(safetensors_malformed, size_not_matching_dtype_and_shape)
{
    char *dir = test_tmpdir();
    char *path = write_header(dir, "size.safetensors",
                              "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16);
    expect_open_fails(path, "tensor w", "needs 12");
    char *bf16 = write_header(dir, "bf16.safetensors",
                              "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,32]}}", 32);
    expect_open_fails(bf16, "tensor w", "needs 16");
    /* Shapes whose element count overflows must not wrap around to a matching size. */
    char *overflow = write_header(dir, "overflow.safetensors",
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                                  "\"data_offsets\":[0,0]}}",
                                  0);
    expect_open_fails(overflow, "tensor w", NULL);
    free(path);
    free(bf16);
    free(overflow);
    free(dir);
}

Test(safetensors_malformed, bad_dtype_and_shape)
{
    char *dir = test_tmpdir();
    char *unknown = write_header(dir, "dtype.safetensors",
                                 "{\"w\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fails(unknown, "tensor w", "unknown dtype \"F31\"");
    char *numeric = write_header(dir, "dtype2.safetensors",
                                 "{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fails(numeric, "tensor w", "dtype");
    char *negative = write_header(dir, "shape.safetensors",
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fails(negative, "tensor w", "shape");
    char *fraction = write_header(dir, "shape2.safetensors",
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4);
    expect_open_fails(fraction, "tensor w", "shape");
    char *deep = write_header(dir, "shape3.safetensors",
                              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fails(deep, "tensor w", "dimensions");
    free(unknown);
    free(numeric);
    free(negative);
    free(fraction);
    free(deep);
    free(dir);
}

Test(safetensors_malformed, duplicate_keys)
{
    char *dir = test_tmpdir();
    char *path = write_header(dir, "dup.safetensors",
                              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                              8);
    expect_open_fails(path, "tensor w appears twice", NULL);
    char *meta = write_header(dir, "dupmeta.safetensors",
                              "{\"__metadata__\":{\"a\":\"b\"},\"__metadata__\":{\"a\":\"c\"}}", 0);
    expect_open_fails(meta, "duplicate key __metadata__", NULL);
    free(path);
    free(meta);
    free(dir);
}

/* ---- the sharded store ---- */

/* Writes a shard holding the named F32 [2] tensors, each filled with its position. */
static void write_shard(const char *dir, const char *file, const char *const *names, int n)
{
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    int64_t shape[1] = {2};
    for (int i = 0; i < n; i++) {
        float values[2] = {(float)i, (float)i + 0.5f};
        cr_assert_eq(al_safetensors_writer_add(w, names[i], AL_DTYPE_F32, 1, shape, values), 0);
    }
    char *path = al_path_join(dir, file);
    cr_assert_eq(al_safetensors_writer_write(w, path), 0, "%s", al_error_message());
    free(path);
    al_safetensors_writer_free(w);
}

static void write_index(const char *dir, const char *weight_map_json)
{
    char *text = al_strdup_printf("{\"metadata\": {\"total_size\": 32}, \"weight_map\": %s}", weight_map_json);
    free(test_write_file(dir, "model.safetensors.index.json", text, strlen(text)));
    free(text);
}

static char *two_shard_folder(void)
{
    char *dir = test_tmpdir();
    const char *first[] = {"a", "b"}, *second[] = {"c", "d"};
    write_shard(dir, "model-00001-of-00002.safetensors", first, 2);
    write_shard(dir, "model-00002-of-00002.safetensors", second, 2);
    return dir;
}

static void expect_store_fails(const char *dir, const char *fragment1, const char *fragment2)
{
    al_error_clear();
    struct al_tensor_store *store = al_tensor_store_open(dir);
    const char *message = al_error_message();
    cr_assert_null(store, "store opened but should have been rejected");
    cr_assert(strstr(message, fragment1), "message lacks \"%s\": %s", fragment1, message);
    if (fragment2)
        cr_assert(strstr(message, fragment2), "message lacks \"%s\": %s", fragment2, message);
}

Test(safetensors_store, two_shards)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"d\": \"model-00002-of-00002.safetensors\", \"a\": \"model-00001-of-00002.safetensors\","
                     " \"c\": \"model-00002-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\"}");
    struct al_tensor_store *store = al_tensor_store_open(dir);
    cr_assert_not_null(store, "%s", al_error_message());
    cr_assert_eq(al_tensor_store_count(store), 4);
    /* Tensors come in the index's order. */
    cr_assert_str_eq(al_tensor_store_tensor(store, 0)->name, "d");
    cr_assert_str_eq(al_tensor_store_tensor(store, 3)->name, "b");
    const struct al_tensor_view *c = al_tensor_store_find(store, "c");
    cr_assert_not_null(c);
    cr_assert(strstr(c->file, "model-00002-of-00002.safetensors"), "%s", c->file);
    float values[2];
    memcpy(values, c->data, sizeof values);
    cr_assert_float_eq(values[1], 0.5f, 0, "c is the first tensor of its shard");
    const struct al_tensor_view *b = al_tensor_store_find(store, "b");
    cr_assert(strstr(b->file, "model-00001-of-00002.safetensors"), "%s", b->file);
    cr_assert_null(al_tensor_store_find(store, "e"));
    al_tensor_store_close(store);
    free(dir);
}

Test(safetensors_store, single_file)
{
    char *dir = test_tmpdir();
    const char *names[] = {"x", "y", "z"};
    write_shard(dir, "model.safetensors", names, 3);
    struct al_tensor_store *store = al_tensor_store_open(dir);
    cr_assert_not_null(store, "%s", al_error_message());
    cr_assert_eq(al_tensor_store_count(store), 3);
    cr_assert_str_eq(al_tensor_store_tensor(store, 1)->name, "y");
    cr_assert_not_null(al_tensor_store_find(store, "z"));
    al_tensor_store_close(store);
    free(dir);
}

Test(safetensors_store, missing_shard)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
                     " \"c\": \"model-00002-of-00003.safetensors\"}");
    expect_store_fails(dir, "model-00002-of-00003.safetensors", "does not exist");
    free(dir);
}

Test(safetensors_store, tensor_in_the_wrong_shard)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\","
                     " \"c\": \"model-00002-of-00002.safetensors\", \"d\": \"model-00002-of-00002.safetensors\"}");
    expect_store_fails(dir, "tensor b", "model-00002-of-00002.safetensors");
    free(dir);
}

Test(safetensors_store, shard_tensor_missing_from_index)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
                     " \"c\": \"model-00002-of-00002.safetensors\"}");
    expect_store_fails(dir, "tensor d", "not listed");
    free(dir);
}

Test(safetensors_store, bad_index)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"a\": \"../model-00001-of-00002.safetensors\"}");
    expect_store_fails(dir, "tensor a", "not a file name");
    write_index(dir, "[\"a\"]");
    expect_store_fails(dir, "weight_map", "model.safetensors.index.json");
    write_index(dir, "{\"a\": 3}");
    expect_store_fails(dir, "weight_map entry a", NULL);
    free(test_write_file(dir, "model.safetensors.index.json", "{\"weight_map\": ", 15));
    expect_store_fails(dir, "model.safetensors.index.json", "invalid JSON");
    free(dir);
}

Test(safetensors_store, corrupt_shard_is_named)
{
    char *dir = two_shard_folder();
    write_index(dir, "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
                     " \"c\": \"model-00002-of-00002.safetensors\", \"d\": \"model-00002-of-00002.safetensors\"}");
    free(test_write_file(dir, "model-00002-of-00002.safetensors", "\x05\0\0\0\0\0\0\0{", 9));
    expect_store_fails(dir, "model-00002-of-00002.safetensors", "past the end");
    free(dir);
}

Test(safetensors_store, empty_folder)
{
    char *dir = test_tmpdir();
    expect_store_fails(dir, dir, "model.safetensors");
    free(dir);
}
