/* LoRA configuration parsing and the PEFT adapter format, both ways. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"

static const char *const golden_model = "tests/golden/llama_tiny/model";
static const char *const golden_adapter = "tests/golden/llama_tiny/adapter";

Test(lora, targets_parse_lists_and_all)
{
    unsigned mask = 0;
    cr_assert_eq(al_lora_targets_parse("q_proj,v_proj", &mask), 0);
    cr_assert_eq(mask, (1u << AL_LORA_Q) | (1u << AL_LORA_V));
    cr_assert_eq(al_lora_targets_parse("all", &mask), 0);
    cr_assert_eq(mask, AL_LORA_ALL_TARGETS);
    cr_assert_eq(al_lora_targets_parse("q_proj,lm_head", &mask), -1);
    cr_assert(strstr(al_error_message(), "lm_head"), "%s", al_error_message());
}

Test(lora, scale_follows_peft_with_and_without_rslora)
{
    struct al_lora_config plain = {.rank = 16, .alpha = 32, .target_mask = 1};
    struct al_lora_config rs = plain;
    rs.use_rslora = true;
    cr_assert_float_eq(al_lora_scale(&plain), 2.0f, 1e-7);
    cr_assert_float_eq(al_lora_scale(&rs), 8.0f, 1e-6);
    struct al_lora_config bad = plain;
    bad.dropout = 1.0f;
    cr_assert_eq(al_lora_config_validate(&bad), -1);
}

struct loaded {
    struct al_backend *backend;
    struct al_model_config config;
};

static void load_config(struct loaded *l)
{
    l->backend = al_backend_cpu_create();
    cr_assert_eq(al_model_config_load(&l->config, golden_model), 0, "%s", al_error_message());
}

Test(lora, save_then_load_round_trips_exactly_in_peft_format)
{
    struct loaded l;
    load_config(&l);
    struct al_lora_config lc = {.rank = 4, .alpha = 16, .dropout = 0.05f, .use_rslora = true,
                                .target_mask = (1u << AL_LORA_Q) | (1u << AL_LORA_DOWN)};
    struct al_lora *lora = al_lora_create(&l.config, l.backend, &lc, 1);
    cr_assert_not_null(lora, "%s", al_error_message());
    cr_assert_eq(test_lora_randomize(lora, 3, 0.5f), 0);
    char *dir = test_tmpdir();
    char *adapter = al_path_join(dir, "adapter");
    cr_assert_eq(al_lora_save_peft(lora, adapter, "my/base"), 0, "%s", al_error_message());

    struct al_lora *again = al_lora_load_peft(&l.config, l.backend, adapter);
    cr_assert_not_null(again, "%s", al_error_message());
    cr_assert_eq(again->num_params, lora->num_params);
    cr_assert_eq(again->config.rank, 4);
    cr_assert(again->config.use_rslora);
    cr_assert_eq(again->config.target_mask, lc.target_mask);
    float *a = malloc((size_t)lora->num_params * sizeof(float));
    float *b = malloc((size_t)lora->num_params * sizeof(float));
    al_lora_download_params(lora, a);
    al_lora_download_params(again, b);
    cr_assert_eq(memcmp(a, b, (size_t)lora->num_params * sizeof(float)), 0);

    char *config_path = al_path_join(adapter, "adapter_config.json");
    cJSON *json = al_json_load_file(config_path);
    cr_assert_not_null(json);
    cr_assert_str_eq(cJSON_GetObjectItem(json, "peft_type")->valuestring, "LORA");
    cr_assert_str_eq(cJSON_GetObjectItem(json, "task_type")->valuestring, "CAUSAL_LM");
    cr_assert_str_eq(cJSON_GetObjectItem(json, "bias")->valuestring, "none");
    cr_assert_str_eq(cJSON_GetObjectItem(json, "base_model_name_or_path")->valuestring, "my/base");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(json, "fan_in_fan_out")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(json, "inference_mode")));
    cr_assert_eq(cJSON_GetObjectItem(json, "r")->valueint, 4);
    cJSON *targets = cJSON_GetObjectItem(json, "target_modules");
    cr_assert_eq(cJSON_GetArraySize(targets), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(targets, 0)->valuestring, "q_proj");
    cr_assert_str_eq(cJSON_GetArrayItem(targets, 1)->valuestring, "down_proj");

    char *weights = al_path_join(adapter, "adapter_model.safetensors");
    struct al_safetensors *st = al_safetensors_open(weights);
    cr_assert_not_null(st, "%s", al_error_message());
    cr_assert_str_eq(al_safetensors_metadata(st, "format"), "pt");
    const struct al_tensor_view *b_down =
        al_safetensors_find(st, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
    cr_assert_not_null(b_down);
    cr_assert_eq(b_down->shape[0], l.config.hidden_size);
    cr_assert_eq(b_down->shape[1], 4);
    cr_assert_eq(al_safetensors_count(st), 2 * 2 * l.config.num_hidden_layers);

    al_safetensors_close(st);
    cJSON_Delete(json);
    free(weights);
    free(config_path);
    free(a);
    free(b);
    al_lora_free(again);
    al_lora_free(lora);
    free(adapter);
    free(dir);
    al_backend_destroy(l.backend);
}

/* Copies the golden adapter into a temporary folder with its config text replaced. */
static char *adapter_with_config(const char *config_text)
{
    char *dir = test_tmpdir();
    char *from = al_path_join(golden_adapter, "adapter_model.safetensors");
    char *to = al_path_join(dir, "adapter_model.safetensors");
    cr_assert_eq(test_copy_file(from, to), 0);
    free(test_write_file(dir, "adapter_config.json", config_text, strlen(config_text)));
    free(from);
    free(to);
    return dir;
}

static void expect_load_error(const char *config_text, const char *needle)
{
    struct loaded l;
    load_config(&l);
    char *dir = adapter_with_config(config_text);
    struct al_lora *lora = al_lora_load_peft(&l.config, l.backend, dir);
    cr_assert_null(lora);
    cr_assert(strstr(al_error_message(), needle), "expected '%s' in: %s", needle, al_error_message());
    free(dir);
    al_backend_destroy(l.backend);
}

#define ALL_SEVEN "[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\",\"down_proj\"]"

Test(lora, unsupported_or_broken_adapters_are_named)
{
    expect_load_error("{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":" ALL_SEVEN
                      ",\"rank_pattern\":{\"q_proj\":8}}",
                      "rank_pattern");
    expect_load_error("{\"peft_type\":\"LORA\",\"lora_alpha\":8,\"target_modules\":" ALL_SEVEN "}", "'r'");
    expect_load_error("{\"peft_type\":\"IA3\",\"r\":4,\"lora_alpha\":8,\"target_modules\":" ALL_SEVEN "}",
                      "peft_type");
    /* rank 8 against tensors of rank 4: a shape error naming the tensor */
    expect_load_error("{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":8,\"target_modules\":" ALL_SEVEN "}",
                      "layers.0.self_attn.q_proj.lora_A.weight");
    /* fewer targets than the file holds: the extra tensors are unexpected */
    expect_load_error("{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"]}",
                      "unexpected tensor");
    expect_load_error("{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":\"^.*proj$\"}",
                      "pattern");
    expect_load_error("{not json", "invalid JSON");
}
