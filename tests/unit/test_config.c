/* config.json parsing: real configurations of each supported architecture (values as
 * published on the Hugging Face hub), both generations of the rope fields, and an error
 * naming the file, the field and the value for each kind of bad input. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/config.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

#define SOURCE "fixtures/config.json"

/* meta-llama/Llama-3.2-1B */
static const char *const llama32_1b =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 128000, \"eos_token_id\": 128001, \"head_dim\": 64, \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"initializer_range\": 0.02, \"intermediate_size\": 8192,"
    " \"max_position_embeddings\": 131072, \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,"
    " \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.45.0.dev0\", \"use_cache\": true,"
    " \"vocab_size\": 128256}";

/* Qwen/Qwen2.5-0.5B-Instruct */
static const char *const qwen25_05b =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645, \"hidden_act\": \"silu\", \"hidden_size\": 896, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 4864, \"max_position_embeddings\": 32768, \"max_window_layers\": 21,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 14, \"num_hidden_layers\": 24,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
    " \"sliding_window\": 32768, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.43.1\", \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

/* mistralai/Mistral-7B-v0.1 */
static const char *const mistral_7b =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 4096,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.34.0.dev0\","
    " \"use_cache\": true, \"vocab_size\": 32000}";

/* Qwen/Qwen3-0.6B */
static const char *const qwen3_06b =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 1024, \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 28, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000, \"sliding_window\": null,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
    " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* What transformers 5 writes for a small Llama: rope_parameters, dtype, no architectures. */
static const char *const llama_transformers5 =
    "{\"attention_bias\": false, \"bos_token_id\": 1, \"eos_token_id\": [2, 7], \"head_dim\": 16,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 64, \"intermediate_size\": 128, \"dtype\": \"float32\","
    " \"max_position_embeddings\": 2048, \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"num_key_value_heads\": 2,"
    " \"pad_token_id\": null, \"rms_norm_eps\": 1e-06, \"rope_parameters\": {\"factor\": 8.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 64,"
    " \"rope_theta\": 20000.0, \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": false, \"vocab_size\": 100}";

static cJSON *parse_json(const char *text)
{
    cJSON *json = cJSON_Parse(text);
    cr_assert_not_null(json, "fixture is not valid JSON");
    return json;
}

static struct al_model_config parse_ok(const char *text)
{
    struct al_model_config c;
    cJSON *json = parse_json(text);
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), 0, "%s", al_error_message());
    cJSON_Delete(json);
    return c;
}

/* Parses the fixture with one field replaced (value_json NULL removes it); expects an
 * error naming the file and every given fragment. */
static void expect_error(const char *base, const char *field, const char *value_json, const char *fragment1,
                         const char *fragment2)
{
    cJSON *json = parse_json(base);
    cJSON_DeleteItemFromObjectCaseSensitive(json, field);
    if (value_json)
        cJSON_AddItemToObject(json, field, parse_json(value_json));
    struct al_model_config c;
    al_error_clear();
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), -1, "%s = %s was accepted", field,
                 value_json ? value_json : "(absent)");
    const char *message = al_error_message();
    cr_assert(strstr(message, SOURCE), "message does not name the file: %s", message);
    cr_assert(strstr(message, fragment1), "message lacks \"%s\": %s", fragment1, message);
    if (fragment2)
        cr_assert(strstr(message, fragment2), "message lacks \"%s\": %s", fragment2, message);
    cJSON_Delete(json);
}

/* Parses the fixture with one field replaced and expects success. */
static struct al_model_config parse_with(const char *base, const char *field, const char *value_json)
{
    cJSON *json = parse_json(base);
    cJSON_DeleteItemFromObjectCaseSensitive(json, field);
    if (value_json)
        cJSON_AddItemToObject(json, field, parse_json(value_json));
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), 0, "%s", al_error_message());
    cJSON_Delete(json);
    return c;
}

Test(config_parse, llama_3_2_with_llama3_rope_scaling)
{
    struct al_model_config c = parse_ok(llama32_1b);
    cr_assert_eq(c.arch, AL_ARCH_LLAMA);
    cr_assert_str_eq(c.architecture, "LlamaForCausalLM");
    cr_assert_eq(c.hidden_size, 2048);
    cr_assert_eq(c.intermediate_size, 8192);
    cr_assert_eq(c.num_hidden_layers, 16);
    cr_assert_eq(c.num_attention_heads, 32);
    cr_assert_eq(c.num_key_value_heads, 8);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.vocab_size, 128256);
    cr_assert_eq(c.max_position_embeddings, 131072);
    cr_assert_float_eq(c.rms_norm_eps, 1e-5f, 1e-12);
    cr_assert_float_eq(c.rope_theta, 500000.0, 0);
    cr_assert(c.rope_llama3);
    cr_assert_float_eq(c.rope_factor, 32.0f, 0);
    cr_assert_float_eq(c.rope_low_freq_factor, 1.0f, 0);
    cr_assert_float_eq(c.rope_high_freq_factor, 4.0f, 0);
    cr_assert_eq(c.rope_original_max_position, 8192);
    cr_assert(c.tie_word_embeddings);
    cr_assert(!c.attention_qkv_bias);
    cr_assert_eq(c.sliding_window, 0);
    cr_assert_eq(c.bos_token_id, 128000);
    cr_assert_eq(c.num_eos_token_ids, 1);
    cr_assert_eq(c.eos_token_ids[0], 128001);
    cr_assert_eq(c.torch_dtype, AL_DTYPE_BF16);
    /* The published size of Llama-3.2-1B. */
    cr_assert_eq(al_model_config_parameter_count(&c), 1235814400LL);
}

Test(config_parse, qwen2_5_has_qkv_bias_and_no_window)
{
    struct al_model_config c = parse_ok(qwen25_05b);
    cr_assert_eq(c.arch, AL_ARCH_QWEN2);
    cr_assert(c.attention_qkv_bias);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.num_key_value_heads, 2);
    cr_assert(!c.rope_llama3);
    cr_assert_float_eq(c.rope_theta, 1e6, 0);
    cr_assert_float_eq(c.rms_norm_eps, 1e-6f, 1e-13);
    cr_assert_eq(c.sliding_window, 0, "use_sliding_window is false");
    cr_assert(c.tie_word_embeddings);
    cr_assert_eq(c.bos_token_id, 151643);
    cr_assert_eq(c.eos_token_ids[0], 151645);
    /* Qwen2.5-0.5B: 494,032,768 parameters including the q/k/v biases. */
    cr_assert_eq(al_model_config_parameter_count(&c), 494032768LL);

    struct al_model_config windowed = parse_with(qwen25_05b, "use_sliding_window", "true");
    cr_assert_eq(windowed.sliding_window, 32768);
    /* transformers: layers from max_window_layers (21) on attend within the window. */
    for (int layer = 0; layer < windowed.num_hidden_layers; layer++)
        cr_assert_eq(al_model_config_layer_window(&windowed, layer), layer >= 21 ? 32768 : 0, "layer %d", layer);
    for (int layer = 0; layer < c.num_hidden_layers; layer++)
        cr_assert_eq(al_model_config_layer_window(&c, layer), 0, "layer %d", layer);
}

/* transformers 5's layer_types decides per layer and overrides max_window_layers. */
Test(config_parse, qwen2_layer_types_override_max_window_layers)
{
    cJSON *json = parse_json(qwen25_05b);
    cJSON_ReplaceItemInObjectCaseSensitive(json, "use_sliding_window", cJSON_CreateTrue());
    cJSON_ReplaceItemInObjectCaseSensitive(json, "num_hidden_layers", cJSON_CreateNumber(3));
    cJSON_ReplaceItemInObjectCaseSensitive(json, "sliding_window", cJSON_CreateNumber(8));
    cJSON_AddItemToObject(json, "layer_types",
                          parse_json("[\"sliding_attention\", \"full_attention\", \"sliding_attention\"]"));
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), 0, "%s", al_error_message());
    cr_assert_eq(al_model_config_layer_window(&c, 0), 8);
    cr_assert_eq(al_model_config_layer_window(&c, 1), 0);
    cr_assert_eq(al_model_config_layer_window(&c, 2), 8);
    cJSON_Delete(json);
}

Test(config_parse, qwen3_has_qk_norm_and_head_dim_from_config)
{
    struct al_model_config c = parse_ok(qwen3_06b);
    cr_assert_eq(c.arch, AL_ARCH_QWEN3);
    cr_assert_str_eq(c.architecture, "Qwen3ForCausalLM");
    cr_assert(c.qk_norm);
    cr_assert(!c.attention_qkv_bias);
    cr_assert_eq(c.head_dim, 128, "16 heads of 128 is not hidden_size 1024 / 16");
    cr_assert_eq(c.num_key_value_heads, 8);
    cr_assert_eq(c.sliding_window, 0);
    cr_assert_eq(c.max_position_embeddings, 40960);
    /* Qwen3-0.6B: 596,049,920 parameters, q_norm and k_norm included. */
    cr_assert_eq(al_model_config_parameter_count(&c), 596049920LL);
    /* Qwen3Config's head_dim default is 128, not hidden_size / heads. */
    struct al_model_config no_head_dim = parse_with(qwen3_06b, "head_dim", NULL);
    cr_assert_eq(no_head_dim.head_dim, 128);
    cr_assert_eq(parse_with(qwen3_06b, "architectures", NULL).arch, AL_ARCH_QWEN3, "model_type qwen3");
}

Test(config_errors, windows_that_cannot_be_honoured_name_the_field)
{
    cJSON *json = parse_json(qwen25_05b);
    cJSON_ReplaceItemInObjectCaseSensitive(json, "num_hidden_layers", cJSON_CreateNumber(2));
    char *two_layers = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    expect_error(two_layers, "layer_types", "[\"full_attention\"]", "layer_types", "a list of 2 layer types");
    expect_error(two_layers, "layer_types", "[\"full_attention\", \"chunked_attention\"]", "layer_types[1]",
                 "\"chunked_attention\"");
    /* A sliding layer without a window in force: transformers cannot build its mask. */
    expect_error(two_layers, "layer_types", "[\"full_attention\", \"sliding_attention\"]", "layer_types[1]",
                 "no sliding window is in force");
    free(two_layers);
    expect_error(qwen3_06b, "attention_bias", "true", "attention_bias", "Qwen3ForCausalLM");
    expect_error(mistral_7b, "sliding_window", "0", "sliding_window", "0");
}

Test(config_parse, mistral_7b_sliding_window_untied)
{
    struct al_model_config c = parse_ok(mistral_7b);
    cr_assert_eq(c.arch, AL_ARCH_MISTRAL);
    cr_assert_str_eq(c.architecture, "MistralForCausalLM");
    cr_assert_eq(c.sliding_window, 4096);
    cr_assert(!c.tie_word_embeddings);
    cr_assert(!c.attention_qkv_bias);
    cr_assert_eq(c.head_dim, 128);
    cr_assert_float_eq(c.rope_theta, 10000.0, 0);
    cr_assert_eq(al_model_config_parameter_count(&c), 7241732096LL);

    for (int layer = 0; layer < c.num_hidden_layers; layer++)
        cr_assert_eq(al_model_config_layer_window(&c, layer), 4096, "Mistral windows every layer (%d)", layer);

    struct al_model_config no_window = parse_with(mistral_7b, "sliding_window", "null");
    cr_assert_eq(no_window.sliding_window, 0);
    cr_assert_eq(al_model_config_layer_window(&no_window, 0), 0);
    /* MistralConfig's default when the field is absent. */
    cr_assert_eq(parse_with(mistral_7b, "sliding_window", NULL).sliding_window, 4096);
}

Test(config_parse, head_dim_independent_of_hidden_size)
{
    /* Mistral-Nemo: hidden 5120 with 32 heads of 128 (32 x 128 = 4096 != 5120). */
    cJSON *json = parse_json(mistral_7b);
    cJSON_ReplaceItemInObjectCaseSensitive(json, "hidden_size", cJSON_CreateNumber(5120));
    cJSON_AddNumberToObject(json, "head_dim", 128);
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), 0, "%s", al_error_message());
    cr_assert_eq(c.head_dim, 128);
    cr_assert_eq(c.hidden_size, 5120);
    cJSON_Delete(json);
    /* head_dim null means "derive it". */
    struct al_model_config derived = parse_with(mistral_7b, "head_dim", "null");
    cr_assert_eq(derived.head_dim, 128);
}

Test(config_parse, transformers5_rope_parameters_dtype_and_model_type)
{
    struct al_model_config c = parse_ok(llama_transformers5);
    cr_assert_eq(c.arch, AL_ARCH_LLAMA);
    cr_assert_str_eq(c.architecture, "LlamaForCausalLM");
    cr_assert_float_eq(c.rope_theta, 20000.0, 0);
    cr_assert(c.rope_llama3);
    cr_assert_float_eq(c.rope_factor, 8.0f, 0);
    cr_assert_eq(c.rope_original_max_position, 64);
    cr_assert_eq(c.torch_dtype, AL_DTYPE_F32);
    cr_assert_eq(c.num_eos_token_ids, 2);
    cr_assert_eq(c.eos_token_ids[1], 7);

    struct al_model_config plain =
        parse_with(llama_transformers5, "rope_parameters", "{\"rope_theta\": 500.0, \"rope_type\": \"default\"}");
    cr_assert(!plain.rope_llama3);
    cr_assert_float_eq(plain.rope_theta, 500.0, 0);
}

Test(config_parse, defaults_for_optional_fields)
{
    const char *minimal = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,"
                          " \"intermediate_size\": 96, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                          " \"vocab_size\": 50}";
    struct al_model_config c = parse_ok(minimal);
    cr_assert_eq(c.num_key_value_heads, 4, "kv heads default to heads");
    cr_assert_eq(c.head_dim, 16);
    cr_assert_float_eq(c.rope_theta, 10000.0, 0);
    cr_assert(!c.rope_llama3);
    cr_assert(!c.tie_word_embeddings);
    cr_assert_eq(c.bos_token_id, -1);
    cr_assert_eq(c.num_eos_token_ids, 0);
    cr_assert_eq(c.torch_dtype, AL_DTYPE_F32);
    cr_assert_float_eq(c.rms_norm_eps, 1e-6f, 1e-13);
    cr_assert_gt(c.max_position_embeddings, 0);
    /* 50*64 embeddings (x2, untied) + 1 layer + final norm. */
    int64_t layer = 4 * 64 * 64 + 3 * 64 * 96 + 2 * 64;
    cr_assert_eq(al_model_config_parameter_count(&c), 2 * 50 * 64 + layer + 64);
    struct al_model_config float16 = parse_with(minimal, "torch_dtype", "\"float16\"");
    cr_assert_eq(float16.torch_dtype, AL_DTYPE_F16);
}

Test(config_errors, unsupported_architecture)
{
    expect_error(llama32_1b, "architectures", "[\"GPT2LMHeadModel\"]", "architectures", "\"GPT2LMHeadModel\"");
    expect_error(llama32_1b, "architectures", "\"LlamaForCausalLM\"", "architectures", NULL);
    expect_error(llama32_1b, "architectures", "[]", "architectures", NULL);
    /* Without architectures the model_type decides; an unknown one is named. */
    cJSON *json = parse_json(llama32_1b);
    cJSON_DeleteItemFromObject(json, "architectures");
    cJSON_ReplaceItemInObjectCaseSensitive(json, "model_type", cJSON_CreateString("gemma"));
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), -1);
    cr_assert(strstr(al_error_message(), "model_type") && strstr(al_error_message(), "gemma"), "%s",
              al_error_message());
    cJSON_Delete(json);
}

Test(config_errors, unsupported_rope_type)
{
    expect_error(llama32_1b, "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type",
                 "\"yarn\"");
    expect_error(llama32_1b, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling.rope_type",
                 "\"linear\"");
    expect_error(llama32_1b, "rope_scaling", "{\"factor\": 2.0}", "rope_scaling.rope_type", "missing");
    expect_error(llama32_1b, "rope_scaling", "\"llama3\"", "rope_scaling", "\"llama3\"");
    expect_error(llama32_1b, "rope_scaling",
                 "{\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0,"
                 " \"original_max_position_embeddings\": 8192}",
                 "rope_scaling.high_freq_factor", "missing");
    expect_error(llama32_1b, "rope_scaling",
                 "{\"rope_type\": \"llama3\", \"factor\": -1, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                 " \"original_max_position_embeddings\": 8192}",
                 "rope_scaling.factor", "-1");
    expect_error(llama_transformers5, "rope_parameters", "{\"rope_type\": \"dynamic\", \"rope_theta\": 1.0}",
                 "rope_parameters.rope_type", "\"dynamic\"");
    expect_error(llama32_1b, "rope_theta", "0", "rope_theta", "0");
}

Test(config_errors, missing_required_field)
{
    static const char *const required[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "vocab_size"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        expect_error(qwen25_05b, required[i], NULL, required[i], "missing");
    cJSON *json = parse_json(mistral_7b);
    cJSON_DeleteItemFromObject(json, "architectures");
    cJSON_DeleteItemFromObject(json, "model_type");
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), -1);
    cr_assert(strstr(al_error_message(), "architectures is missing"), "%s", al_error_message());
    cJSON_Delete(json);
}

Test(config_errors, bad_types_and_values)
{
    expect_error(llama32_1b, "hidden_size", "\"2048\"", "hidden_size", "\"2048\"");
    expect_error(llama32_1b, "hidden_size", "2048.5", "hidden_size", "2048.5");
    expect_error(llama32_1b, "num_hidden_layers", "0", "num_hidden_layers", "0");
    expect_error(llama32_1b, "vocab_size", "-5", "vocab_size", "-5");
    expect_error(llama32_1b, "num_key_value_heads", "[8]", "num_key_value_heads", "[8]");
    expect_error(llama32_1b, "tie_word_embeddings", "\"yes\"", "tie_word_embeddings", "\"yes\"");
    expect_error(llama32_1b, "rms_norm_eps", "\"1e-5\"", "rms_norm_eps", "\"1e-5\"");
    expect_error(llama32_1b, "eos_token_id", "\"</s>\"", "eos_token_id", "\"</s>\"");
    expect_error(llama32_1b, "eos_token_id", "[1, 2, 3, 4, 5, 6, 7, 8, 9]", "eos_token_id", NULL);
    expect_error(llama32_1b, "bos_token_id", "-3", "bos_token_id", "-3");
    expect_error(llama32_1b, "torch_dtype", "\"float8\"", "torch_dtype", "\"float8\"");
    expect_error(llama32_1b, "max_position_embeddings", "true", "max_position_embeddings", "true");
    expect_error(mistral_7b, "sliding_window", "\"4k\"", "sliding_window", "\"4k\"");
    expect_error(qwen25_05b, "use_sliding_window", "1", "use_sliding_window", "1");
    expect_error(llama32_1b, "hidden_size", "1e12", "hidden_size", NULL);
}

Test(config_errors, inconsistent_or_unsupported_models)
{
    expect_error(llama32_1b, "num_key_value_heads", "7", "num_key_value_heads", "7");
    expect_error(llama32_1b, "head_dim", "33", "head_dim", "33");
    expect_error(llama32_1b, "hidden_act", "\"gelu\"", "hidden_act", "\"gelu\"");
    expect_error(llama32_1b, "attention_bias", "true", "attention_bias", "true");
    expect_error(llama32_1b, "mlp_bias", "true", "mlp_bias", "true");
    /* Heads that do not divide hidden_size need an explicit head_dim. */
    cJSON *json = parse_json(llama32_1b);
    cJSON_DeleteItemFromObject(json, "head_dim");
    cJSON_ReplaceItemInObjectCaseSensitive(json, "num_attention_heads", cJSON_CreateNumber(24));
    cJSON_ReplaceItemInObjectCaseSensitive(json, "num_key_value_heads", cJSON_CreateNumber(8));
    struct al_model_config c;
    cr_assert_eq(al_model_config_parse(&c, json, SOURCE), -1);
    cr_assert(strstr(al_error_message(), "hidden_size") && strstr(al_error_message(), "24"), "%s",
              al_error_message());
    cJSON_Delete(json);
}

Test(config_load, reads_a_folder_and_names_the_file_on_error)
{
    char *dir = test_tmpdir();
    struct al_model_config c;
    cr_assert_eq(al_model_config_load(&c, dir), -1);
    cr_assert(strstr(al_error_message(), "config.json"), "%s", al_error_message());

    free(test_write_file(dir, "config.json", mistral_7b, strlen(mistral_7b)));
    cr_assert_eq(al_model_config_load(&c, dir), 0, "%s", al_error_message());
    cr_assert_eq(c.arch, AL_ARCH_MISTRAL);

    free(test_write_file(dir, "config.json", "{\"hidden_size\": ", 16));
    cr_assert_eq(al_model_config_load(&c, dir), -1);
    cr_assert(strstr(al_error_message(), "config.json") && strstr(al_error_message(), "invalid JSON"), "%s",
              al_error_message());

    const char *bad = "{\"architectures\": [\"BertModel\"]}";
    free(test_write_file(dir, "config.json", bad, strlen(bad)));
    char *path = al_path_join(dir, "config.json");
    cr_assert_eq(al_model_config_load(&c, dir), -1);
    cr_assert(strstr(al_error_message(), path) && strstr(al_error_message(), "BertModel"), "%s",
              al_error_message());
    free(path);
    free(dir);
}

Test(config_names, arch_names)
{
    cr_assert_str_eq(al_arch_name(AL_ARCH_LLAMA), "LlamaForCausalLM");
    cr_assert_str_eq(al_arch_name(AL_ARCH_QWEN2), "Qwen2ForCausalLM");
    cr_assert_str_eq(al_arch_name(AL_ARCH_MISTRAL), "MistralForCausalLM");
}
