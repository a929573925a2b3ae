/* Model folder validation (al_model_files_open) on tiny random folders: good ones of
 * every architecture, dtype and layout, and one broken folder per kind of problem, each
 * message checked for the file and the tensor it names. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/model_files.h"
#include "test_support.h"
#include "tiny_model.h"

static char *write_model(const struct tiny_model_spec *spec, const struct tiny_model_edits *edits)
{
    char *dir = test_tmpdir();
    cr_assert_not_null(dir);
    cr_assert_eq(tiny_model_write_edited(spec, edits, dir), 0, "%s", al_error_message());
    return dir;
}

static void open_ok(struct al_model_files *files, const char *dir)
{
    cr_assert_eq(al_model_files_open(files, dir), 0, "%s", al_error_message());
}

static void expect_open_fails(const char *dir, const char *fragment1, const char *fragment2)
{
    struct al_model_files files;
    al_error_clear();
    cr_assert_eq(al_model_files_open(&files, dir), -1, "the folder was accepted");
    const char *message = al_error_message();
    cr_assert(strstr(message, fragment1), "message lacks \"%s\": %s", fragment1, message);
    if (fragment2)
        cr_assert(strstr(message, fragment2), "message lacks \"%s\": %s", fragment2, message);
}

static void assert_shape(const struct al_tensor_view *t, int64_t rows, int64_t cols)
{
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, cols ? 2 : 1, "%s has %d dims", t->name, t->ndim);
    cr_assert_eq(t->shape[0], rows, "%s rows", t->name);
    if (cols)
        cr_assert_eq(t->shape[1], cols, "%s cols", t->name);
}

Test(model_files_good, untied_f32_llama)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    char *dir = write_model(&spec, NULL);
    struct al_model_files files;
    open_ok(&files, dir);
    cr_assert_eq(files.config.arch, AL_ARCH_LLAMA);
    cr_assert_eq(files.dtype, AL_DTYPE_F32);
    assert_shape(files.embed_tokens, 128, 64);
    assert_shape(files.final_norm, 64, 0);
    assert_shape(files.lm_head, 128, 64);
    for (int i = 0; i < 2; i++) {
        const struct al_layer_tensors *l = &files.layers[i];
        assert_shape(l->input_layernorm, 64, 0);
        assert_shape(l->q_proj, 64, 64);
        assert_shape(l->k_proj, 32, 64);
        assert_shape(l->v_proj, 32, 64);
        assert_shape(l->o_proj, 64, 64);
        assert_shape(l->post_attention_layernorm, 64, 0);
        assert_shape(l->gate_proj, 128, 64);
        assert_shape(l->up_proj, 128, 64);
        assert_shape(l->down_proj, 64, 128);
        cr_assert_null(l->q_bias);
    }
    cr_assert_str_eq(files.layers[1].down_proj->name, "model.layers.1.mlp.down_proj.weight");
    /* The bytes are the values the helper drew. */
    int64_t count = 0;
    float *expected = tiny_model_tensor_values(&spec, "model.layers.1.self_attn.k_proj.weight", &count);
    cr_assert_eq(count, 32 * 64);
    float *stored = malloc(sizeof *stored * (size_t)count);
    memcpy(stored, files.layers[1].k_proj->data, sizeof *stored * (size_t)count);
    cr_assert_eq(test_max_abs_error(stored, expected, count), 0.0);
    free(stored);
    free(expected);
    al_model_files_close(&files);
    free(dir);
}

Test(model_files_good, tied_bf16_llama_with_rope_scaling)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.tied = true;
    spec.dtype = AL_DTYPE_BF16;
    spec.rope_llama3 = true;
    char *dir = write_model(&spec, NULL);
    struct al_model_files files;
    open_ok(&files, dir);
    cr_assert_eq(files.dtype, AL_DTYPE_BF16);
    cr_assert_null(files.lm_head, "tied embeddings have no lm_head");
    cr_assert(files.config.tie_word_embeddings);
    cr_assert(files.config.rope_llama3);
    cr_assert_eq(files.config.torch_dtype, AL_DTYPE_BF16);
    cr_assert_eq(files.layers[0].q_proj->nbytes, 64 * 64 * 2);
    al_model_files_close(&files);
    free(dir);
}

Test(model_files_good, tied_with_lm_head_present_is_accepted)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    char *dir = write_model(&spec, NULL); /* writes lm_head.weight */
    spec.tied = true;
    char *config = tiny_model_config_json(&spec);
    free(test_write_file(dir, "config.json", config, strlen(config)));
    free(config);
    struct al_model_files files;
    open_ok(&files, dir);
    cr_assert_null(files.lm_head, "a tied model ignores a stored lm_head");
    al_model_files_close(&files);
    free(dir);
}

Test(model_files_good, qwen2_f16_biases_and_wide_heads)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.arch = AL_ARCH_QWEN2;
    spec.dtype = AL_DTYPE_F16;
    spec.head_dim = 32; /* 4 x 32 = 128 != hidden 64, as Qwen and Mistral Nemo allow */
    spec.tied = true;
    char *dir = write_model(&spec, NULL);
    struct al_model_files files;
    open_ok(&files, dir);
    cr_assert(files.config.attention_qkv_bias);
    cr_assert_eq(files.dtype, AL_DTYPE_F16);
    const struct al_layer_tensors *l = &files.layers[1];
    assert_shape(l->q_proj, 128, 64);
    assert_shape(l->k_proj, 64, 64);
    assert_shape(l->o_proj, 64, 128);
    assert_shape(l->q_bias, 128, 0);
    assert_shape(l->k_bias, 64, 0);
    assert_shape(l->v_bias, 64, 0);
    al_model_files_close(&files);
    free(dir);
}

Test(model_files_good, sharded_mistral)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.arch = AL_ARCH_MISTRAL;
    spec.shards = 3;
    spec.num_layers = 3;
    char *dir = write_model(&spec, NULL);
    char *index = al_path_join(dir, "model.safetensors.index.json");
    cr_assert(al_file_exists(index));
    struct al_model_files files;
    open_ok(&files, dir);
    cr_assert_eq(al_tensor_store_count(files.store), tiny_model_tensor_count(&spec));
    cr_assert(strstr(files.embed_tokens->file, "model-00001-of-00003.safetensors"), "%s", files.embed_tokens->file);
    cr_assert(strstr(files.lm_head->file, "model-00003-of-00003.safetensors"), "%s", files.lm_head->file);
    al_model_files_close(&files);
    free(index);
    free(dir);
}

Test(model_files_good, rotary_inv_freq_is_tolerated)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.extra = "model.layers.1.self_attn.rotary_emb.inv_freq"};
    char *dir = write_model(&spec, &edits);
    struct al_model_files files;
    open_ok(&files, dir);
    al_model_files_close(&files);
    free(dir);
}

Test(model_files_bad, missing_tensor)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.omit = "model.layers.1.mlp.up_proj.weight"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "tensor model.layers.1.mlp.up_proj.weight is missing", "model.safetensors");
    free(dir);
}

Test(model_files_bad, missing_lm_head_when_untied)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.omit = "lm_head.weight"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "tensor lm_head.weight is missing", NULL);
    free(dir);
}

Test(model_files_bad, missing_tensor_in_sharded_folder_names_the_index)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.shards = 2;
    struct tiny_model_edits edits = {.omit = "model.norm.weight"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "model.safetensors.index.json", "tensor model.norm.weight is missing");
    free(dir);
}

Test(model_files_bad, unexpected_tensor)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.extra = "model.layers.0.self_attn.q_norm.weight"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "model.safetensors: unexpected tensor model.layers.0.self_attn.q_norm.weight", NULL);
    free(dir);
}

Test(model_files_bad, layer_beyond_the_config_is_unexpected)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.extra = "model.layers.2.input_layernorm.weight"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "unexpected tensor model.layers.2.input_layernorm.weight", NULL);
    free(dir);
}

Test(model_files_bad, bias_in_a_llama_is_unexpected)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.extra = "model.layers.0.self_attn.k_proj.bias"};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "unexpected tensor model.layers.0.self_attn.k_proj.bias", NULL);
    free(dir);
}

Test(model_files_bad, shape_contradicting_config)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {
        .reshape = "model.layers.0.self_attn.k_proj.weight", .reshape_ndim = 2, .reshape_to = {64, 64}};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir,
                      "model.safetensors: tensor model.layers.0.self_attn.k_proj.weight has shape [64, 64], "
                      "config.json implies [32, 64]",
                      NULL);
    free(dir);
}

Test(model_files_bad, rank_contradicting_config)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.reshape = "model.norm.weight", .reshape_ndim = 2, .reshape_to = {1, 64}};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "tensor model.norm.weight has shape [1, 64], config.json implies [64]", NULL);
    free(dir);
}

Test(model_files_bad, integer_dtype)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.retype = "model.layers.1.mlp.gate_proj.weight", .retype_to = AL_DTYPE_I32};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "tensor model.layers.1.mlp.gate_proj.weight has dtype I32", "model.safetensors");
    free(dir);
}

Test(model_files_bad, mixed_float_dtypes)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    struct tiny_model_edits edits = {.retype = "model.layers.0.post_attention_layernorm.weight",
                                     .retype_to = AL_DTYPE_BF16};
    char *dir = write_model(&spec, &edits);
    expect_open_fails(dir, "tensor model.layers.0.post_attention_layernorm.weight has dtype BF16",
                      "share one dtype");
    free(dir);
}

Test(model_files_bad, config_or_weights_missing)
{
    char *dir = test_tmpdir();
    expect_open_fails(dir, "config.json", NULL);
    struct tiny_model_spec spec = tiny_model_default_spec();
    char *config = tiny_model_config_json(&spec);
    free(test_write_file(dir, "config.json", config, strlen(config)));
    free(config);
    expect_open_fails(dir, "model.safetensors", NULL);
    char *nowhere = al_path_join(dir, "does-not-exist");
    expect_open_fails(nowhere, "does-not-exist", "not a directory");
    free(nowhere);
    free(dir);
}

Test(model_files_bad, config_contradicting_weights_names_config_field)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    char *dir = write_model(&spec, NULL);
    spec.intermediate_size = 96; /* config says 96, the weights hold 128 */
    char *config = tiny_model_config_json(&spec);
    free(test_write_file(dir, "config.json", config, strlen(config)));
    free(config);
    expect_open_fails(dir, "tensor model.layers.0.mlp.gate_proj.weight has shape [128, 64]",
                      "config.json implies [96, 64]");
    free(dir);
}
