/* `agentlora convert` on damaged copies of the committed GGUF: whatever it cannot turn
 * into a folder that loads is refused, naming the file and the problem, and no folder is
 * left behind (a dim of 63, a token byte flipped into invalid UTF-8, a flipped byte that
 * breaks the merges, which only loading the written folder notices). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

#define GOLDEN_GGUF "tests/golden/gguf/tiny-llama.gguf"

struct golden {
    char *bytes;
    size_t size;
};

static void load_golden(struct golden *g)
{
    g->bytes = al_file_read_all(GOLDEN_GGUF, &g->size);
    cr_assert_not_null(g->bytes, "%s", al_error_message());
}

static size_t find(const struct golden *g, const char *text)
{
    const char *hit = memmem(g->bytes, g->size, text, strlen(text));
    cr_assert_not_null(hit, "%s not found in the golden GGUF", text);
    return (size_t)(hit - g->bytes);
}

/* Offset of the first dimension in the tensor info of `name`. */
static size_t first_dim_of(const struct golden *g, const char *name)
{
    return find(g, name) + strlen(name) + 4; /* the name, then the u32 dimension count */
}

static uint64_t u64_at(const struct golden *g, size_t at)
{
    uint64_t value;
    memcpy(&value, g->bytes + at, sizeof value);
    return value;
}

/* Offset of the bytes of token `index` in tokenizer.ggml.tokens (its length before). */
static size_t token_bytes(const struct golden *g, uint64_t index, uint64_t *length)
{
    size_t at = find(g, "tokenizer.ggml.tokens") + strlen("tokenizer.ggml.tokens");
    at += 4 + 4 + 8; /* value type, element type, count */
    for (uint64_t k = 0; k < index; k++)
        at += 8 + u64_at(g, at);
    *length = u64_at(g, at);
    return at + 8;
}

/* Converts the damaged bytes; the command must fail with the fragment and leave no folder. */
static void expect_refused(const struct golden *damaged, const char *fragment)
{
    char *dir = test_tmpdir();
    char *gguf = test_write_file(dir, "damaged.gguf", damaged->bytes, damaged->size);
    char *out = al_path_join(dir, "model");
    char *output = NULL;
    int status = test_run_cli(&output, "convert", "--gguf", gguf, "--out", out, NULL);
    cr_assert_eq(status, 1, "convert should fail: %s", output);
    cr_assert(strstr(output, "damaged.gguf"), "the message does not name the file: %s", output);
    cr_assert(strstr(output, fragment), "the message lacks \"%s\": %s", fragment, output);
    cr_assert(!strstr(output, "wrote"), "%s", output);
    cr_assert(!al_dir_exists(out), "a folder was left behind at %s", out);
    free(output);
    free(out);
    free(gguf);
    free(dir);
}

Test(convert_hostile_cli, a_dim_of_63_is_refused_before_writing)
{
    struct golden g;
    load_golden(&g);
    uint64_t dim = 63;
    memcpy(g.bytes + first_dim_of(&g, "blk.0.attn_norm.weight"), &dim, sizeof dim);
    expect_refused(&g, "has shape [63]");
    free(g.bytes);
}

Test(convert_hostile_cli, a_token_byte_flipped_into_invalid_utf8_is_refused)
{
    struct golden g;
    load_golden(&g);
    uint64_t length;
    size_t at = token_bytes(&g, 100, &length);
    g.bytes[at] = (char)0xff;
    expect_refused(&g, "tokenizer.ggml.tokens[100] is not valid UTF-8");
    free(g.bytes);
}

/* "_posts" becomes "_postr": valid UTF-8 and unique, but merges use the old token, which
 * the tokenizer loader refuses: only loading the written folder catches it. */
Test(convert_hostile_cli, a_folder_that_would_not_load_is_removed)
{
    struct golden g;
    load_golden(&g);
    uint64_t length;
    size_t at = token_bytes(&g, 1000, &length);
    cr_assert_eq(memcmp(g.bytes + at, "_posts", 6), 0, "token 1000 of the golden file is _posts");
    g.bytes[at + length - 1] ^= 0x01;
    expect_refused(&g, "the converted folder does not load, so it was removed");
    free(g.bytes);
}

Test(convert_hostile_cli, overlapping_tensor_data_is_refused)
{
    struct golden g;
    load_golden(&g);
    /* attn_k's offset (after its 2 dims and type) set to attn_q's. */
    size_t q = first_dim_of(&g, "blk.0.attn_q.weight") + 2 * 8 + 4;
    size_t k = first_dim_of(&g, "blk.0.attn_k.weight") + 2 * 8 + 4;
    memcpy(g.bytes + k, g.bytes + q, 8);
    expect_refused(&g, "overlap");
    free(g.bytes);
}
