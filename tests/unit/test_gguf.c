/* GGUF reading: the committed tiny Llama GGUF (tests/golden/gguf, written by the gguf
 * Python package) reads back with the metadata it was given and every tensor dequantised
 * exactly as the package dequantises it; hand-built hostile files fail with messages that
 * name the problem. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"
#include "agentlora/tokenizer.h"
#include "gguf_bytes.h"
#include "test_support.h"

#define GOLDEN_GGUF "tests/golden/gguf/tiny-llama.gguf"
#define GOLDEN_EXPECTED "tests/golden/gguf/expected.json"

/* The C dequantisers follow ggml's arithmetic, as the gguf package's numpy code does, so
 * sampled values must be identical; sums in float64 over the same float32 values may
 * differ only by summation order. */
#define SUM_REL_TOLERANCE 1e-9

static struct al_gguf *open_golden(void)
{
    struct al_gguf *g = al_gguf_open(GOLDEN_GGUF);
    cr_assert(g, "%s", al_error_message());
    return g;
}

Test(gguf_read, header_and_metadata)
{
    struct al_gguf *g = open_golden();
    cr_assert_eq(al_gguf_version(g), 3);
    cr_assert_eq(al_gguf_alignment(g), 32);
    cr_assert_eq(al_gguf_tensor_count(g), 21);
    const char *arch;
    cr_assert_eq(al_gguf_get_string(g, "general.architecture", &arch), 0);
    cr_assert_str_eq(arch, "llama");
    int64_t heads, layers;
    cr_assert_eq(al_gguf_get_int(g, "llama.attention.head_count", &heads), 0);
    cr_assert_eq(al_gguf_get_int(g, "llama.block_count", &layers), 0);
    cr_assert_eq(heads, 4);
    cr_assert_eq(layers, 2);
    double eps;
    cr_assert_eq(al_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    cr_assert_float_eq(eps, 1e-5, 1e-12);
    const struct al_gguf_value *tokens, *types;
    cr_assert_eq(al_gguf_get_array(g, "tokenizer.ggml.tokens", AL_GGUF_STRING, &tokens), 0);
    cr_assert_eq(tokens->count, 2048);
    cr_assert_str_eq(tokens->strings[2042], "<|im_start|>");
    cr_assert_eq(al_gguf_get_array(g, "tokenizer.ggml.token_type", AL_GGUF_INT32, &types), 0);
    cr_assert_eq(al_gguf_array_int(types, 2042), 3); /* control */
    cr_assert_eq(al_gguf_array_int(types, 100), 1);  /* normal */
    al_gguf_close(g);
}

Test(gguf_read, typed_reads_name_the_key_and_file)
{
    struct al_gguf *g = open_golden();
    int64_t v;
    cr_assert_eq(al_gguf_get_int(g, "llama.no_such_key", &v), -1);
    cr_assert(strstr(al_error_message(), "llama.no_such_key") && strstr(al_error_message(), "tiny-llama.gguf"),
              "%s", al_error_message());
    cr_assert_eq(al_gguf_get_int(g, "general.architecture", &v), -1);
    cr_assert(strstr(al_error_message(), "not an integer"), "%s", al_error_message());
    cr_assert_eq(al_gguf_get_int_or(g, "llama.no_such_key", 77, &v), 0);
    cr_assert_eq(v, 77);
    al_gguf_close(g);
}

Test(gguf_read, shapes_are_row_major)
{
    struct al_gguf *g = open_golden();
    const struct al_gguf_tensor *t = al_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    cr_assert(t);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 64);  /* out */
    cr_assert_eq(t->shape[1], 256); /* in */
    cr_assert_eq(t->type, AL_GGML_Q4_K);
    cr_assert_eq(t->nbytes, 64 * 144);
    cr_assert_null(al_gguf_find_tensor(g, "blk.9.ffn_down.weight"));
    al_gguf_close(g);
}

/* Compares a dequantised tensor with the generator's summary: shape, sampled values
 * exactly, sum and sum of squares. */
static void check_against_summary(const char *name, const float *x, int64_t count, const cJSON *summary)
{
    const cJSON *samples = cJSON_GetObjectItem(summary, "samples");
    const cJSON *pair;
    cr_assert(cJSON_GetArraySize(samples) > 8, "%s", name);
    cJSON_ArrayForEach(pair, samples) {
        int64_t index = (int64_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
        float want = (float)cJSON_GetArrayItem(pair, 1)->valuedouble;
        cr_assert_lt(index, count, "%s", name);
        cr_assert_eq(x[index], want, "%s[%lld] = %.9g, expected %.9g", name, (long long)index, x[index], want);
    }
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < count; i++) {
        sum += x[i];
        squares += (double)x[i] * x[i];
    }
    double want_sum = cJSON_GetObjectItem(summary, "sum")->valuedouble;
    double want_squares = cJSON_GetObjectItem(summary, "sum_squares")->valuedouble;
    cr_assert_leq(fabs(sum - want_sum), SUM_REL_TOLERANCE * want_squares + 1e-9, "%s: sum %.12g vs %.12g", name, sum,
                  want_sum);
    cr_assert_leq(fabs(squares - want_squares), SUM_REL_TOLERANCE * want_squares, "%s: sum of squares %.12g vs %.12g",
                  name, squares, want_squares);
}

Test(gguf_read, every_tensor_dequantises_as_the_gguf_package_does)
{
    struct al_gguf *g = open_golden();
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    cr_assert(expected, "%s", al_error_message());
    const cJSON *tensors = cJSON_GetObjectItem(expected, "gguf_tensors");
    cr_assert_eq(cJSON_GetArraySize(tensors), al_gguf_tensor_count(g));
    bool seen[31] = {0};
    const cJSON *entry;
    cJSON_ArrayForEach(entry, tensors) {
        const struct al_gguf_tensor *t = al_gguf_find_tensor(g, entry->string);
        cr_assert(t, "%s missing", entry->string);
        cr_assert_str_eq(al_ggml_type_name(t->type), cJSON_GetObjectItem(entry, "type")->valuestring);
        const cJSON *shape = cJSON_GetObjectItem(entry, "shape");
        cr_assert_eq(cJSON_GetArraySize(shape), t->ndim, "%s", t->name);
        for (int d = 0; d < t->ndim; d++)
            cr_assert_eq(t->shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble, "%s", t->name);
        float *x = malloc((size_t)t->count * sizeof *x);
        cr_assert_eq(al_gguf_dequantize(t, x), 0, "%s", al_error_message());
        check_against_summary(t->name, x, t->count, entry);
        free(x);
        seen[t->type] = true;
    }
    /* The fixture really holds every supported type. */
    enum al_ggml_type all[] = {AL_GGML_F32, AL_GGML_F16, AL_GGML_BF16, AL_GGML_Q8_0,
                               AL_GGML_Q4_0, AL_GGML_Q4_1, AL_GGML_Q4_K, AL_GGML_Q6_K};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        cr_assert(seen[all[k]], "no %s tensor in the fixture", al_ggml_type_name(all[k]));
    cJSON_Delete(expected);
    al_gguf_close(g);
}

/* ---- hostile files, built byte by byte ---- */

static void put_header(struct bytes *b, uint64_t tensors, uint64_t kvs)
{
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, tensors);
    put_u64(b, kvs);
}

/* One 2-D tensor info; shape fastest-first as the file stores it. */
static void put_tensor_info(struct bytes *b, const char *name, uint64_t ne0, uint64_t ne1, uint32_t type,
                            uint64_t offset)
{
    put_string(b, name);
    put_u32(b, 2);
    put_u64(b, ne0);
    put_u64(b, ne1);
    put_u32(b, type);
    put_u64(b, offset);
}

static void pad_to(struct bytes *b, size_t alignment)
{
    while (b->size % alignment)
        b->data[b->size++] = 0;
}

/* A valid file: one kv (general.architecture = "llama") and one 32 x 2 F32 tensor. */
static void build_valid(struct bytes *b, uint32_t type, uint64_t offset)
{
    memset(b, 0, sizeof *b);
    put_header(b, 1, 1);
    put_string(b, "general.architecture");
    put_u32(b, AL_GGUF_STRING);
    put_string(b, "llama");
    put_tensor_info(b, "w", 32, 2, type, offset);
    pad_to(b, 32);
    b->size += 64 * 4; /* zeros: enough for 64 F32 values */
}

static char *write_bytes(const struct bytes *b, const char *name)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, name, b->data, b->size);
    free(dir);
    return path;
}

/* Opening must fail and the message must contain every given fragment. */
static void expect_open_error(const struct bytes *b, const char *fragment, const char *fragment2)
{
    char *path = write_bytes(b, "hostile.gguf");
    struct al_gguf *g = al_gguf_open(path);
    cr_assert_null(g, "opened a hostile file that should fail with \"%s\"", fragment);
    const char *msg = al_error_message();
    cr_assert(strstr(msg, "hostile.gguf"), "message does not name the file: %s", msg);
    cr_assert(strstr(msg, fragment), "expected \"%s\" in: %s", fragment, msg);
    if (fragment2)
        cr_assert(strstr(msg, fragment2), "expected \"%s\" in: %s", fragment2, msg);
    free(path);
}

Test(gguf_hostile, valid_builder_file_opens)
{
    struct bytes b;
    build_valid(&b, AL_GGML_F32, 0);
    char *path = write_bytes(&b, "valid.gguf");
    struct al_gguf *g = al_gguf_open(path);
    cr_assert(g, "%s", al_error_message());
    const struct al_gguf_tensor *t = al_gguf_find_tensor(g, "w");
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 32);
    al_gguf_close(g);
    free(path);
}

Test(gguf_hostile, bad_magic)
{
    struct bytes b;
    build_valid(&b, AL_GGML_F32, 0);
    b.data[0] = 'X';
    expect_open_error(&b, "not a GGUF file", NULL);
}

Test(gguf_hostile, unsupported_version)
{
    struct bytes b;
    build_valid(&b, AL_GGML_F32, 0);
    b.data[4] = 1;
    expect_open_error(&b, "version 1", NULL);
}

Test(gguf_hostile, huge_counts)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 1, UINT64_C(1) << 60);
    expect_open_error(&b, "metadata count", NULL);
    memset(&b, 0, sizeof b);
    put_header(&b, UINT64_C(1) << 61, 0);
    expect_open_error(&b, "tensor count", NULL);
}

Test(gguf_hostile, string_longer_than_file)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 0, 1);
    put_u64(&b, UINT64_C(1) << 40);
    put(&b, "general", 7);
    expect_open_error(&b, "length", NULL);
}

Test(gguf_hostile, huge_array)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 0, 1);
    put_string(&b, "tokenizer.ggml.tokens");
    put_u32(&b, AL_GGUF_ARRAY);
    put_u32(&b, AL_GGUF_STRING);
    put_u64(&b, UINT64_C(1) << 62);
    expect_open_error(&b, "tokenizer.ggml.tokens", "cannot fit");
}

Test(gguf_hostile, unknown_value_type)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 0, 1);
    put_string(&b, "general.thing");
    put_u32(&b, 77);
    expect_open_error(&b, "general.thing", "unknown value type 77");
}

Test(gguf_hostile, offset_outside_the_data)
{
    struct bytes b;
    build_valid(&b, AL_GGML_F32, 1 << 20);
    expect_open_error(&b, "tensor w", "outside");
}

Test(gguf_hostile, misaligned_offset)
{
    struct bytes b;
    build_valid(&b, AL_GGML_F32, 4);
    expect_open_error(&b, "tensor w", "alignment");
}

Test(gguf_hostile, block_type_with_partial_rows)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 1, 0);
    put_tensor_info(&b, "blk.0.attn_q.weight", 40, 1, AL_GGML_Q8_0, 0);
    pad_to(&b, 32);
    b.size += 128;
    expect_open_error(&b, "blk.0.attn_q.weight", "whole number");
}

Test(gguf_hostile, dimension_overflow)
{
    struct bytes b;
    memset(&b, 0, sizeof b);
    put_header(&b, 1, 0);
    put_tensor_info(&b, "w", UINT64_C(1) << 40, UINT64_C(1) << 40, AL_GGML_F32, 0);
    expect_open_error(&b, "tensor w", "overflows");
}

Test(gguf_hostile, unsupported_type_is_named_at_dequantisation)
{
    struct bytes b;
    build_valid(&b, 6 /* Q5_0 */, 0);
    char *path = write_bytes(&b, "q5.gguf");
    struct al_gguf *g = al_gguf_open(path);
    cr_assert(g, "%s", al_error_message());
    const struct al_gguf_tensor *t = al_gguf_find_tensor(g, "w");
    float x[64];
    cr_assert_eq(al_gguf_dequantize(t, x), -1);
    cr_assert(strstr(al_error_message(), "Q5_0") && strstr(al_error_message(), "tensor w"), "%s",
              al_error_message());
    al_gguf_close(g);
    free(path);
}

Test(gguf_hostile, every_truncation_of_the_golden_file_fails_cleanly)
{
    size_t size;
    char *whole = al_file_read_all(GOLDEN_GGUF, &size);
    cr_assert(whole);
    char *dir = test_tmpdir();
    /* Every cut inside the header and metadata (where parsing is intricate), then a
     * stride through the tensor data. */
    for (size_t cut = 0; cut < size; cut += cut < 70000 ? 7 : 4093) {
        char *path = test_write_file(dir, "cut.gguf", whole, cut);
        struct al_gguf *g = al_gguf_open(path);
        cr_assert_null(g, "a file cut at %zu of %zu bytes opened", cut, size);
        cr_assert(strlen(al_error_message()) > 0);
        free(path);
    }
    free(dir);
    free(whole);
}

/* ---- metadata a Llama conversion cannot accept ---- */

/* A file with only string metadata: key/value pairs, NULL-terminated. */
static void build_strings(struct bytes *b, const char *const *pairs)
{
    memset(b, 0, sizeof *b);
    uint64_t n = 0;
    while (pairs[2 * n])
        n++;
    put_header(b, 0, n);
    for (uint64_t k = 0; k < n; k++) {
        put_string(b, pairs[2 * k]);
        put_u32(b, AL_GGUF_STRING);
        put_string(b, pairs[2 * k + 1]);
    }
}

static struct al_gguf *open_built(const struct bytes *b)
{
    char *path = write_bytes(b, "meta.gguf");
    struct al_gguf *g = al_gguf_open(path);
    cr_assert(g, "%s", al_error_message());
    free(path);
    return g;
}

Test(gguf_hostile, other_architectures_are_refused_by_name)
{
    struct bytes b;
    build_strings(&b, (const char *const[]){"general.architecture", "qwen2", NULL});
    struct al_gguf *g = open_built(&b);
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), -1);
    cr_assert(strstr(al_error_message(), "qwen2") && strstr(al_error_message(), "meta.gguf"), "%s",
              al_error_message());
    al_gguf_close(g);
}

Test(gguf_hostile, rope_scaling_is_refused)
{
    struct bytes b;
    build_strings(&b, (const char *const[]){"general.architecture", "llama", "llama.rope.scaling.type", "yarn",
                                            NULL});
    struct al_gguf *g = open_built(&b);
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), -1);
    cr_assert(strstr(al_error_message(), "yarn"), "%s", al_error_message());
    al_gguf_close(g);
}

Test(gguf_hostile, sentencepiece_tokenizers_cannot_be_converted)
{
    struct bytes b;
    build_strings(&b, (const char *const[]){"general.architecture", "llama", "tokenizer.ggml.model", "llama", NULL});
    struct al_gguf *g = open_built(&b);
    char *dir = test_tmpdir();
    cr_assert_eq(al_gguf_write_tokenizer(g, dir), -1);
    cr_assert(strstr(al_error_message(), "tokenizer.ggml.model") && strstr(al_error_message(), "\"llama\""), "%s",
              al_error_message());
    free(dir);
    al_gguf_close(g);
}

Test(gguf_hostile, missing_hyper_parameter_is_named)
{
    struct bytes b;
    build_strings(&b, (const char *const[]){"general.architecture", "llama", NULL});
    struct al_gguf *g = open_built(&b);
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), -1);
    cr_assert(strstr(al_error_message(), "llama.context_length") && strstr(al_error_message(), "missing"), "%s",
              al_error_message());
    al_gguf_close(g);
}

/* ---- tokenizer metadata to tokenizer.json ---- */

static void put_key(struct bytes *b, const char *key, uint32_t type)
{
    put_string(b, key);
    put_u32(b, type);
}

static void put_string_array(struct bytes *b, const char *key, const char *const *items, uint64_t n)
{
    put_key(b, key, AL_GGUF_ARRAY);
    put_u32(b, AL_GGUF_STRING);
    put_u64(b, n);
    for (uint64_t k = 0; k < n; k++)
        put_string(b, items[k]);
}

/* A four-token byte-level BPE ("a", "b", "ab" from one merge, and control token <s>) that
 * asks for bos to be prepended. */
static void build_small_bpe(struct bytes *b)
{
    static const char *const tokens[] = {"a", "b", "ab", "<s>"};
    static const char *const merges[] = {"a b"};
    static const int32_t types[] = {1, 1, 1, 3};
    memset(b, 0, sizeof *b);
    put_header(b, 0, 7);
    put_key(b, "tokenizer.ggml.model", AL_GGUF_STRING);
    put_string(b, "gpt2");
    put_key(b, "tokenizer.ggml.pre", AL_GGUF_STRING);
    put_string(b, "smollm");
    put_string_array(b, "tokenizer.ggml.tokens", tokens, 4);
    put_string_array(b, "tokenizer.ggml.merges", merges, 1);
    put_key(b, "tokenizer.ggml.token_type", AL_GGUF_ARRAY);
    put_u32(b, AL_GGUF_INT32);
    put_u64(b, 4);
    put(b, types, sizeof types);
    put_key(b, "tokenizer.ggml.bos_token_id", AL_GGUF_UINT32);
    put_u32(b, 3);
    put_key(b, "tokenizer.ggml.add_bos_token", AL_GGUF_BOOL);
    uint8_t yes = 1;
    put(b, &yes, 1);
}

Test(gguf_tokenizer, merges_control_tokens_and_add_bos_reach_the_tokenizer)
{
    struct bytes b;
    build_small_bpe(&b);
    struct al_gguf *g = open_built(&b);
    char *dir = test_tmpdir();
    cr_assert_eq(al_gguf_write_tokenizer(g, dir), 0, "%s", al_error_message());
    struct al_tokenizer *tok = al_tokenizer_load(dir);
    cr_assert(tok, "%s", al_error_message());
    struct al_tokens ids = {0};
    const char *text = "ab<s>a";
    cr_assert_eq(al_tokenizer_encode(tok, text, strlen(text), AL_TOKENIZE_ADD_SPECIAL | AL_TOKENIZE_PARSE_SPECIAL,
                                     &ids), 0, "%s", al_error_message());
    /* bos, the merged "ab", the control token parsed as one id, then "a". */
    int32_t want[] = {3, 2, 3, 0};
    cr_assert_eq(ids.count, 4);
    for (size_t k = 0; k < 4; k++)
        cr_assert_eq(ids.ids[k], want[k], "id %zu is %d", k, ids.ids[k]);
    al_tokens_free(&ids);
    al_tokenizer_free(tok);
    free(dir);
    al_gguf_close(g);
}

Test(gguf_tokenizer, unknown_pre_tokenizer_is_named)
{
    struct bytes b;
    build_small_bpe(&b);
    /* Replace "smollm" (same length) by a name no table knows. */
    uint8_t *at = memmem(b.data, b.size, "smollm", 6);
    cr_assert(at);
    memcpy(at, "zzz-v9", 6);
    struct al_gguf *g = open_built(&b);
    char *dir = test_tmpdir();
    cr_assert_eq(al_gguf_write_tokenizer(g, dir), -1);
    cr_assert(strstr(al_error_message(), "zzz-v9") && strstr(al_error_message(), "tokenizer.ggml.pre"), "%s",
              al_error_message());
    free(dir);
    al_gguf_close(g);
}

/* ---- corrupted bytes ---- */

/* Opens a corrupted file and, when it opens, uses everything in it: whatever the bytes,
 * the reader must either refuse them with a message or hand out tensors and values that
 * stay inside the file (the sanitizer build checks the "inside"). */
static void exercise(const char *path, const char *scratch)
{
    al_error_clear();
    struct al_gguf *g = al_gguf_open(path);
    if (!g) {
        cr_assert(strlen(al_error_message()) > 0, "refused without a message");
        return;
    }
    for (int k = 0; k < al_gguf_tensor_count(g); k++) {
        const struct al_gguf_tensor *t = al_gguf_tensor(g, k);
        if (!al_ggml_type_supported(t->type) || t->count > 1 << 20)
            continue;
        float *x = malloc((size_t)t->count * sizeof *x);
        cr_assert_eq(al_gguf_dequantize(t, x), 0, "%s", al_error_message());
        free(x);
    }
    al_gguf_write_tokenizer(g, scratch); /* may refuse; must not misbehave */
    al_gguf_close(g);
}

Test(gguf_hostile, every_single_byte_corruption_is_refused_or_read_safely)
{
    struct bytes files[2];
    build_valid(&files[0], AL_GGML_Q8_0, 0);
    build_small_bpe(&files[1]);
    char *dir = test_tmpdir();
    static const uint8_t flips[] = {0x01, 0x10, 0x80, 0xFF};
    int opened = 0, refused = 0;
    for (int f = 0; f < 2; f++)
        for (size_t at = 0; at < files[f].size; at++)
            for (size_t k = 0; k < sizeof flips; k++) {
                struct bytes b = files[f];
                b.data[at] ^= flips[k];
                char *path = test_write_file(dir, "flipped.gguf", b.data, b.size);
                al_error_clear();
                struct al_gguf *probe = al_gguf_open(path);
                probe ? opened++ : refused++;
                al_gguf_close(probe);
                exercise(path, dir);
                free(path);
            }
    /* Both outcomes occur: flips in the data are harmless, flips in lengths are not. */
    cr_assert_gt(opened, 0);
    cr_assert_gt(refused, 0);
    free(dir);
}
