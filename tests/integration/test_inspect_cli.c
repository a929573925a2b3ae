/* `agentlora inspect`, run as a real process (AL_CLI names the binary): exit codes 0, 1
 * and 2, the description of good folders, and the first problem of broken ones. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "test_support.h"
#include "tiny_model.h"

static char *write_model(const struct tiny_model_spec *spec, const struct tiny_model_edits *edits)
{
    char *dir = test_tmpdir();
    cr_assert_eq(tiny_model_write_edited(spec, edits, dir), 0, "%s", al_error_message());
    return dir;
}

static void assert_contains(const char *output, const char *fragment)
{
    cr_assert(output && strstr(output, fragment), "output lacks \"%s\":\n%s", fragment, output ? output : "(none)");
}

Test(inspect_cli, describes_a_good_llama)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.rope_llama3 = true;
    char *dir = write_model(&spec, NULL);
    char *out = NULL;
    int status = test_run_cli(&out, "inspect", dir, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "LlamaForCausalLM");
    assert_contains(out, "layers:              2");
    assert_contains(out, "hidden size:         64");
    assert_contains(out, "4 (kv heads 2, head_dim 16)");
    assert_contains(out, "intermediate size:   128");
    assert_contains(out, "vocab size:          128");
    assert_contains(out, "llama3 (factor 8");
    assert_contains(out, "untied");
    assert_contains(out, "qkv bias:            no");
    assert_contains(out, "weights dtype:       F32");
    assert_contains(out, "model.safetensors");
    /* 128x64 embeddings and lm_head, two layers of 36992, the final norm. */
    assert_contains(out, "90.43 K (90432)");
    assert_contains(out, "model.layers.0.self_attn.k_proj.weight");
    assert_contains(out, "[32, 64]");
    assert_contains(out, "model.layers.0.mlp.down_proj.weight");
    assert_contains(out, "[64, 128]");
    free(out);
    free(dir);
}

Test(inspect_cli, describes_sharded_tied_qwen2)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.arch = AL_ARCH_QWEN2;
    spec.tied = true;
    spec.dtype = AL_DTYPE_BF16;
    spec.shards = 2;
    char *dir = write_model(&spec, NULL);
    char *out = NULL;
    int status = test_run_cli(&out, "inspect", dir, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "Qwen2ForCausalLM");
    assert_contains(out, "tied");
    assert_contains(out, "qkv bias:            yes");
    assert_contains(out, "weights dtype:       BF16");
    assert_contains(out, "model-00001-of-00002.safetensors");
    assert_contains(out, "model-00002-of-00002.safetensors");
    assert_contains(out, "model.layers.0.self_attn.q_proj.bias");
    free(out);
    free(dir);
}

/* The golden folders: layers windowed by max_window_layers, and Qwen3 with its layer_types
 * and per-head q/k norms. */
Test(inspect_cli, prints_each_layers_attention_window)
{
    char *out = NULL;
    int status = test_run_cli(&out, "inspect", "tests/golden/qwen2_window_tiny/model", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "attention per layer:\n  layer 0:           full (causal)\n"
                         "  layers 1-2:        sliding window of 4 tokens\n");
    assert_contains(out, "q/k norm:            no");
    free(out);
    status = test_run_cli(&out, "inspect", "tests/golden/qwen3_tiny/model", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "Qwen3ForCausalLM");
    assert_contains(out, "  layer 0:           sliding window of 6 tokens\n  layer 1:           full (causal)\n");
    assert_contains(out, "q/k norm:            yes");
    assert_contains(out, "model.layers.0.self_attn.q_norm.weight           [24]");
    free(out);
}

Test(inspect_cli, broken_folder_exits_1_naming_the_problem)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {
        .reshape = "model.layers.1.self_attn.v_proj.weight", .reshape_ndim = 2, .reshape_to = {16, 64}};
    char *dir = write_model(&spec, &edits);
    char *out = NULL;
    int status = test_run_cli(&out, "inspect", dir, NULL);
    cr_assert_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "agentlora inspect: ");
    assert_contains(out, "tensor model.layers.1.self_attn.v_proj.weight has shape [16, 64], config.json implies "
                         "[32, 64]");
    cr_assert_null(strstr(out, "architecture:"), "nothing is described for a broken folder:\n%s", out);
    free(out);
    free(dir);
}

Test(inspect_cli, missing_tensor_and_bad_config_exit_1)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.omit = "model.embed_tokens.weight"};
    char *dir = write_model(&spec, &edits);
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "inspect", dir, NULL), 1);
    assert_contains(out, "model.embed_tokens.weight is missing");
    free(out);

    const char *config = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"big\"}";
    free(test_write_file(dir, "config.json", config, strlen(config)));
    cr_assert_eq(test_run_cli(&out, "inspect", dir, NULL), 1);
    assert_contains(out, "config.json: field hidden_size");
    assert_contains(out, "\"big\"");
    free(out);

    cr_assert_eq(test_run_cli(&out, "inspect", "/nonexistent/model-folder", NULL), 1);
    assert_contains(out, "/nonexistent/model-folder");
    free(out);
    free(dir);
}

Test(inspect_cli, usage)
{
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "inspect", NULL), 2, "missing MODEL_DIR is a usage error");
    assert_contains(out, "usage: agentlora inspect MODEL_DIR");
    free(out);
    cr_assert_eq(test_run_cli(&out, "inspect", "--help", NULL), 0);
    assert_contains(out, "usage: agentlora inspect MODEL_DIR");
    free(out);
    cr_assert_eq(test_run_cli(&out, "inspect", "a", "b", NULL), 2);
    assert_contains(out, "unexpected argument 'b'");
    free(out);
    cr_assert_eq(test_run_cli(&out, "inspect", "--verbose", NULL), 2);
    assert_contains(out, "'--verbose'");
    free(out);
}
