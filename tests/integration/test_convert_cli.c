/* `agentlora convert --gguf`: the committed tiny GGUF becomes a model folder that
 * `agentlora inspect` accepts, whose logits equal those transformers computes from the
 * same GGUF, and whose tokenizer gives the ids transformers' GGUF tokenizer gives
 * (tests/golden/gguf/expected.json); and the command's errors. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/safetensors.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

#define GOLDEN_GGUF "tests/golden/gguf/tiny-llama.gguf"
#define GOLDEN_EXPECTED "tests/golden/gguf/expected.json"
/* Same weights, float32 both sides; only summation order differs. */
#define LOGITS_REL_TOLERANCE 1e-4

static char *convert_golden(const char *dtype)
{
    char *dir = test_tmpdir();
    char *out_dir = al_path_join(dir, "model");
    char *output = NULL;
    int status = test_run_cli(&output, "convert", "--gguf", GOLDEN_GGUF, "--out", out_dir, "--dtype", dtype, NULL);
    cr_assert_eq(status, 0, "convert failed: %s", output);
    free(output);
    free(dir);
    return out_dir;
}

Test(convert_cli, output_passes_inspect)
{
    char *model = convert_golden("f32");
    char *output = NULL;
    int status = test_run_cli(&output, "inspect", model, NULL);
    cr_assert_eq(status, 0, "inspect failed: %s", output);
    cr_assert(strstr(output, "LlamaForCausalLM"), "%s", output);
    free(output);
    free(model);
}

/* Runs `agentlora logits --out` and compares every position with transformers. */
static void check_logits(const char *model, const cJSON *entry, double tolerance)
{
    const cJSON *ids = cJSON_GetObjectItem(entry, "ids"), *id;
    char text[256] = "";
    size_t used = 0;
    cJSON_ArrayForEach(id, ids)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%d", used ? " " : "", id->valueint);
    char *dir = test_tmpdir();
    char *out = al_path_join(dir, "logits.safetensors");
    char *output = NULL;
    int status = test_run_cli(&output, "logits", "--model", model, "--ids", text, "--out", out, NULL);
    cr_assert_eq(status, 0, "logits failed: %s", output);
    struct al_safetensors *st = al_safetensors_open(out);
    cr_assert(st, "%s", al_error_message());
    const struct al_tensor_view *logits = al_safetensors_find(st, "logits");
    const float *x = logits->data;
    int64_t vocab = logits->shape[logits->ndim - 1];
    int positions = cJSON_GetArraySize(ids);
    const cJSON *last_row = cJSON_GetObjectItem(entry, "last_row");
    cr_assert_eq(cJSON_GetArraySize(last_row), vocab);
    float *want = malloc((size_t)vocab * sizeof *want);
    for (int64_t v = 0; v < vocab; v++)
        want[v] = (float)cJSON_GetArrayItem(last_row, (int)v)->valuedouble;
    double error = test_max_rel_error(x + (int64_t)(positions - 1) * vocab, want, vocab, 1.0);
    cr_assert_leq(error, tolerance, "ids %s: last row relative error %g", text, error);
    /* Sampled positions of the whole [tokens, vocab] block. */
    const cJSON *pair;
    double scale = 1.0;
    for (int64_t v = 0; v < vocab; v++)
        scale = fabs(want[v]) > scale ? fabs(want[v]) : scale;
    cJSON_ArrayForEach(pair, cJSON_GetObjectItem(cJSON_GetObjectItem(entry, "summary"), "samples")) {
        int64_t index = (int64_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
        double value = cJSON_GetArrayItem(pair, 1)->valuedouble;
        cr_assert_leq(fabs(x[index] - value), tolerance * scale, "ids %s: logits[%lld] %g vs %g", text,
                      (long long)index, x[index], value);
    }
    free(want);
    al_safetensors_close(st);
    free(output);
    free(out);
    free(dir);
}

Test(convert_cli, logits_equal_transformers, .timeout = 120)
{
    char *model = convert_golden("f32");
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    cr_assert(expected, "%s", al_error_message());
    const cJSON *entry;
    int checked = 0;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(expected, "logits")) {
        check_logits(model, entry, LOGITS_REL_TOLERANCE);
        checked++;
    }
    cr_assert_geq(checked, 2);
    cJSON_Delete(expected);
    free(model);
}

Test(convert_cli, tokenizer_ids_equal_transformers)
{
    char *model = convert_golden("bf16");
    struct al_tokenizer *tok = al_tokenizer_load(model);
    cr_assert(tok, "%s", al_error_message());
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    const cJSON *entry;
    int checked = 0;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(expected, "tokenize")) {
        const char *text = cJSON_GetObjectItem(entry, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(entry, "ids");
        struct al_tokens tokens = {0};
        cr_assert_eq(al_tokenizer_encode(tok, text, strlen(text), AL_TOKENIZE_PARSE_SPECIAL, &tokens), 0, "%s",
                     al_error_message());
        cr_assert_eq(tokens.count, (size_t)cJSON_GetArraySize(ids), "\"%s\": %zu ids, transformers %d", text,
                     tokens.count, cJSON_GetArraySize(ids));
        for (size_t k = 0; k < tokens.count; k++)
            cr_assert_eq(tokens.ids[k], cJSON_GetArrayItem(ids, (int)k)->valueint, "\"%s\" id %zu", text, k);
        al_tokens_free(&tokens);
        checked++;
    }
    cr_assert_geq(checked, 4);
    /* bos/eos come through tokenizer_config.json. */
    cr_assert_eq(al_tokenizer_piece_to_id(tok, "<|im_end|>"), 2043);
    cJSON_Delete(expected);
    al_tokenizer_free(tok);
    free(model);
}

Test(convert_cli, tokenizer_config_carries_special_tokens_and_chat_template)
{
    char *model = convert_golden("f32");
    char *path = al_path_join(model, "tokenizer_config.json");
    cJSON *config = al_json_load_file(path);
    cr_assert(config, "%s", al_error_message());
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    const char *template = cJSON_GetStringValue(cJSON_GetObjectItem(config, "chat_template"));
    cr_assert(template);
    cr_assert_str_eq(template, cJSON_GetStringValue(cJSON_GetObjectItem(expected, "chat_template")));
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(config, "bos_token")), "<|im_start|>");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(config, "eos_token")), "<|im_end|>");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(config, "pad_token")), "<|endoftext|>");
    const cJSON *added = cJSON_GetObjectItem(cJSON_GetObjectItem(config, "added_tokens_decoder"), "2043");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(added, "special")));
    cJSON_Delete(expected);
    cJSON_Delete(config);
    free(path);
    free(model);
}

/* --dtype bf16 stores the dequantised float32 values rounded to bfloat16. */
Test(convert_cli, bf16_weights_are_the_f32_weights_rounded)
{
    char *models[2] = {convert_golden("f32"), convert_golden("bf16")};
    struct al_safetensors *st[2];
    for (int k = 0; k < 2; k++) {
        char *path = al_path_join(models[k], "model.safetensors");
        st[k] = al_safetensors_open(path);
        cr_assert(st[k], "%s", al_error_message());
        free(path);
    }
    cr_assert_eq(al_safetensors_count(st[0]), al_safetensors_count(st[1]));
    for (int i = 0; i < al_safetensors_count(st[0]); i++) {
        const struct al_tensor_view *f = al_safetensors_tensor(st[0], i);
        const struct al_tensor_view *b = al_safetensors_find(st[1], f->name);
        cr_assert(b, "%s", f->name);
        cr_assert_eq(f->dtype, AL_DTYPE_F32);
        cr_assert_eq(b->dtype, AL_DTYPE_BF16);
        cr_assert_eq(b->count, f->count);
        for (int64_t j = 0; j < f->count; j++)
            cr_assert_eq(((const uint16_t *)b->data)[j], al_f32_to_bf16(((const float *)f->data)[j]), "%s[%lld]",
                         f->name, (long long)j);
    }
    for (int k = 0; k < 2; k++) {
        al_safetensors_close(st[k]);
        free(models[k]);
    }
}

Test(convert_cli, refuses_a_folder_holding_a_model)
{
    char *model = convert_golden("f32");
    char *output = NULL;
    int status = test_run_cli(&output, "convert", "--gguf", GOLDEN_GGUF, "--out", model, NULL);
    cr_assert_eq(status, 1);
    cr_assert(strstr(output, "already holds"), "%s", output);
    free(output);
    free(model);
}

Test(convert_cli, errors_name_the_problem)
{
    char *dir = test_tmpdir();
    char *not_gguf = test_write_file(dir, "model.gguf", "{\"json\": true}", 15);
    char *out = al_path_join(dir, "out");
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "convert", "--gguf", not_gguf, "--out", out, NULL), 1);
    cr_assert(strstr(output, "not a GGUF file") && strstr(output, "model.gguf"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "convert", "--out", out, NULL), 2);
    cr_assert(strstr(output, "--gguf FILE is required"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "convert", "--gguf", GOLDEN_GGUF, "--out", out, "--dtype", "q4", NULL), 2);
    cr_assert(strstr(output, "--dtype"), "%s", output);
    free(output);
    free(out);
    free(not_gguf);
    free(dir);
}

/* train, eval and generate take the GGUF file itself: it converts once into <file>.hf, the
 * same folder `convert` writes, and the run records that folder as its model. */
Test(convert_cli, train_eval_and_generate_accept_the_gguf_file)
{
    char *dir = test_tmpdir();
    char *gguf = al_path_join(dir, "tiny.gguf");
    cr_assert_eq(test_copy_file(GOLDEN_GGUF, gguf), 0);
    char *output = NULL;
    int status = test_run_cli(&output, "generate", "--model", gguf, "--prompt", "hello", "--template",
                              "chatml-qwen2.5", "--max-new-tokens", "2", NULL);
    cr_assert_eq(status, 0, "generate failed: %s", output);
    cr_assert(strstr(output, "is a GGUF file; using") && strstr(output, "tiny.gguf.hf"), "%s", output);
    free(output);

    char *folder = al_path_join(dir, "tiny.gguf.hf");
    char *converted = al_path_join(folder, "model.safetensors");
    cr_assert(al_file_exists(converted), "no %s", converted);

    char *runs = al_path_join(dir, "runs");
    status = test_run_cli(&output, "train", "--model", gguf, "--train_data", "data/agentalign_sample.json",
                          "--chat_format", "chatml-qwen2.5", "--max_len", "1024", "--max_steps", "1", "--lora_r", "2",
                          "--warmup_ratio", "0", "--device", "cpu", "--output_dir", runs, "--run_name", "g", NULL);
    cr_assert_eq(status, 0, "train failed: %s", output);
    free(output);
    char *run = al_path_join(runs, "g");
    char *adapter = al_path_join(run, "checkpoint-1");
    char *reports = al_path_join(dir, "eval");
    /* The tiny model's context (256) is shorter than the sample records with their tools. */
    static const char short_record[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, "
        "{\"role\": \"assistant\", \"content\": \"hi\"}]}\n";
    char *data = test_write_file(dir, "short.jsonl", short_record, sizeof short_record - 1);
    status = test_run_cli(&output, "eval", "--model", gguf, "--adapter", adapter, "--data", data, "--template",
                          "chatml-qwen2.5", "--max-new-tokens", "2", "--out", reports, NULL);
    cr_assert_eq(status, 0, "eval failed: %s", output);
    free(output);

    /* The adapter config names the converted folder as its base model. */
    char *adapter_config = al_path_join(adapter, "adapter_config.json");
    char *text = al_file_read_all(adapter_config, NULL);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "tiny.gguf.hf"), "%s", text);
    free(text);
    free(adapter_config);
    free(data);
    free(reports);
    free(adapter);
    free(run);
    free(runs);
    free(converted);
    free(folder);
    free(gguf);
    free(dir);
}
