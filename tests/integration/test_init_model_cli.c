/* `agentlora init-model`, run as a real process (AL_CLI names the binary): a folder built
 * with the demo tokenizer has the tokenizer's vocabulary and special ids and passes
 * `agentlora inspect`; sharding from the command line; exit codes 1 and 2. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/model_files.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"

static void assert_contains(const char *output, const char *fragment)
{
    cr_assert(output && strstr(output, fragment), "output lacks \"%s\":\n%s", fragment, output ? output : "(none)");
}

static char *new_out_dir(void)
{
    char *parent = test_tmpdir();
    char *dir = al_path_join(parent, "model");
    free(parent);
    return dir;
}

static void expect_same_bytes(const char *from_dir, const char *to_dir, const char *name)
{
    char *from = al_path_join(from_dir, name), *to = al_path_join(to_dir, name);
    size_t from_length, to_length;
    char *a = al_file_read_all(from, &from_length), *b = al_file_read_all(to, &to_length);
    cr_assert(a && b, "%s: %s", name, al_error_message());
    cr_expect(from_length == to_length && memcmp(a, b, from_length) == 0, "%s was not copied verbatim", name);
    free(a);
    free(b);
    free(from);
    free(to);
}

Test(init_model_cli, with_the_demo_tokenizer_the_vocab_matches_the_tokenizer)
{
    char *dir = new_out_dir();
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--out", dir, "--tokenizer", DEMO_TOKENIZER, "--seed", "4", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "vocab 2048");
    free(out);

    struct al_tokenizer *tokenizer = al_tokenizer_load(dir);
    cr_assert(tokenizer, "the copied tokenizer must load: %s", al_error_message());
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, dir), 0, "%s", al_error_message());
    cr_expect_eq(files.config.vocab_size, al_tokenizer_vocab_size(tokenizer));
    cr_expect_eq(files.embed_tokens->shape[0], al_tokenizer_vocab_size(tokenizer));
    cr_expect_eq(files.config.bos_token_id, -1, "the demo tokenizer has no BOS");
    cr_expect_eq(files.config.num_eos_token_ids, 1);
    cr_expect_eq(files.config.eos_token_ids[0], al_tokenizer_eos_id(tokenizer));
    cr_expect_eq(files.config.eos_token_ids[0], al_tokenizer_piece_to_id(tokenizer, "<|im_end|>"));
    cr_expect_eq(files.dtype, AL_DTYPE_BF16, "bf16 is the default");
    cr_expect_eq(files.config.hidden_size, 64, "tiny is the default preset");
    al_model_files_close(&files);
    al_tokenizer_free(tokenizer);
    expect_same_bytes(DEMO_TOKENIZER, dir, "tokenizer.json");
    expect_same_bytes(DEMO_TOKENIZER, dir, "tokenizer_config.json");

    status = test_run_cli(&out, "inspect", dir, NULL);
    cr_assert_eq(status, 0, "inspect exit %d:\n%s", status, out);
    assert_contains(out, "vocab size:          2048");
    free(out);
    free(dir);
}

Test(init_model_cli, options_set_dtype_vocab_and_shards)
{
    char *dir = new_out_dir();
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--out", dir, "--preset", "tiny", "--vocab", "1000", "--dtype",
                              "f32", "--shard-bytes", "300000", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "model.safetensors.index.json");
    free(out);
    char *index = al_path_join(dir, "model.safetensors.index.json");
    cr_expect(al_file_exists(index), "a model above --shard-bytes is sharded");
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, dir), 0, "%s", al_error_message());
    cr_expect_eq(files.config.vocab_size, 1000);
    cr_expect_eq(files.dtype, AL_DTYPE_F32);
    cr_expect_eq(files.config.torch_dtype, AL_DTYPE_F32);
    al_model_files_close(&files);
    status = test_run_cli(&out, "inspect", dir, NULL);
    cr_assert_eq(status, 0, "inspect exit %d:\n%s", status, out);
    free(out);
    free(index);
    free(dir);
}

Test(init_model_cli, same_options_give_identical_weights)
{
    char *a = new_out_dir(), *b = new_out_dir();
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "init-model", "--out", a, "--seed", "17", NULL), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run_cli(&out, "init-model", "--out", b, "--seed", "17", NULL), 0, "%s", out);
    free(out);
    expect_same_bytes(a, b, "model.safetensors");
    expect_same_bytes(a, b, "config.json");
    free(a);
    free(b);
}

Test(init_model_cli, help_lists_every_option_and_preset)
{
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--help", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    static const char *const fragments[] = {"--out", "--preset", "--tokenizer", "--vocab", "--dtype", "--seed",
                                            "--shard-bytes", "tiny", "smollm2-135m", "llama-3.2-1b",
                                            "llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "exit status"};
    for (size_t i = 0; i < sizeof fragments / sizeof fragments[0]; i++)
        assert_contains(out, fragments[i]);
    free(out);
    status = test_run_cli(&out, "--help", NULL);
    assert_contains(out, "init-model");
    free(out);
}

Test(init_model_cli, usage_errors_exit_2)
{
    char *dir = new_out_dir();
    struct {
        const char *args[6];
        const char *message;
    } cases[] = {
        {{"init-model", NULL}, "--out is required"},
        {{"init-model", "--out", dir, "--dtype", "f8", NULL}, "--dtype"},
        {{"init-model", "--out", dir, "--preset", "gpt-5", NULL}, "unknown model preset"},
        {{"init-model", "--out", dir, "--vocab", "12x", NULL}, "--vocab"},
        {{"init-model", "--out", dir, "--seed", "-1", NULL}, "--seed"},
        {{"init-model", "--out", dir, "--shard-bytes", "0", NULL}, "--shard-bytes"},
        {{"init-model", "--out", dir, "stray", NULL}, "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        const char *const *a = cases[i].args;
        int status = test_run_cli(&out, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        cr_expect_eq(status, 2, "case %zu: exit %d:\n%s", i, status, out);
        assert_contains(out, cases[i].message);
        free(out);
    }
    cr_expect(!al_dir_exists(dir), "a usage error writes nothing");
    free(dir);
}

Test(init_model_cli, failures_exit_1_with_the_reason)
{
    char *dir = new_out_dir();
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "init-model", "--out", dir, NULL), 0, "%s", out);
    free(out);
    int status = test_run_cli(&out, "init-model", "--out", dir, NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "already holds config.json");
    free(out);

    char *other = new_out_dir();
    status = test_run_cli(&out, "init-model", "--out", other, "--tokenizer", "no/such/tokenizer", NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "no/such/tokenizer");
    free(out);
    status = test_run_cli(&out, "init-model", "--out", other, "--tokenizer", DEMO_TOKENIZER, "--vocab", "100",
                          NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "smaller than the vocabulary");
    free(out);
    cr_expect(!al_dir_exists(other), "a failed tokenizer check writes nothing");
    free(other);
    free(dir);
}
