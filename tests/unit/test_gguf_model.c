/* A Llama GGUF as a Hugging Face model: the config and every tensor, in Hugging Face
 * names and layout, equal what transformers makes of the committed tiny GGUF
 * (tests/golden/gguf/expected.json, written by make_gguf_golden.py). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"
#include "test_support.h"

#define GOLDEN_GGUF "tests/golden/gguf/tiny-llama.gguf"
#define GOLDEN_EXPECTED "tests/golden/gguf/expected.json"

static int json_int(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(object, name);
    cr_assert(cJSON_IsNumber(item), "expected.json lacks %s", name);
    return (int)item->valuedouble;
}

Test(gguf_model, config_matches_transformers)
{
    struct al_gguf *g = al_gguf_open(GOLDEN_GGUF);
    cr_assert(g, "%s", al_error_message());
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    const cJSON *want = cJSON_GetObjectItem(expected, "config");
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), 0, "%s", al_error_message());
    cr_assert_eq(c.arch, AL_ARCH_LLAMA);
    cr_assert_eq(c.hidden_size, json_int(want, "hidden_size"));
    cr_assert_eq(c.intermediate_size, json_int(want, "intermediate_size"));
    cr_assert_eq(c.num_hidden_layers, json_int(want, "num_hidden_layers"));
    cr_assert_eq(c.num_attention_heads, json_int(want, "num_attention_heads"));
    cr_assert_eq(c.num_key_value_heads, json_int(want, "num_key_value_heads"));
    cr_assert_eq(c.vocab_size, json_int(want, "vocab_size"));
    cr_assert_eq(c.max_position_embeddings, json_int(want, "max_position_embeddings"));
    cr_assert_eq(c.bos_token_id, json_int(want, "bos_token_id"));
    cr_assert_eq(c.num_eos_token_ids, 1);
    cr_assert_eq(c.eos_token_ids[0], json_int(want, "eos_token_id"));
    cr_assert_eq(c.head_dim, 16);
    cr_assert_float_eq(c.rms_norm_eps, (float)cJSON_GetObjectItem(want, "rms_norm_eps")->valuedouble, 0);
    cr_assert_float_eq(c.rope_theta, 10000.0, 0);
    cr_assert_eq(c.tie_word_embeddings, cJSON_IsTrue(cJSON_GetObjectItem(want, "tie_word_embeddings")));
    cJSON_Delete(expected);
    al_gguf_close(g);
}

Test(gguf_model, names_map_to_hugging_face)
{
    char name[128];
    cr_assert_eq(al_gguf_hf_tensor_name("blk.11.attn_q.weight", name, sizeof name), 0);
    cr_assert_str_eq(name, "model.layers.11.self_attn.q_proj.weight");
    cr_assert_eq(al_gguf_hf_tensor_name("blk.0.ffn_norm.weight", name, sizeof name), 0);
    cr_assert_str_eq(name, "model.layers.0.post_attention_layernorm.weight");
    cr_assert_eq(al_gguf_hf_tensor_name("output.weight", name, sizeof name), 0);
    cr_assert_str_eq(name, "lm_head.weight");
    cr_assert_eq(al_gguf_hf_tensor_name("blk.x.attn_q.weight", name, sizeof name), -1);
    cr_assert_eq(al_gguf_hf_tensor_name("blk.0.ffn_gate_exps.weight", name, sizeof name), -1);
    cr_assert(strstr(al_error_message(), "blk.0.ffn_gate_exps.weight"), "%s", al_error_message());
}

/* Every tensor, un-permuted and renamed, equals transformers' state dict at the sampled
 * positions (which cover every head of q and k), with the same sum. */
Test(gguf_model, tensors_equal_transformers_state_dict)
{
    struct al_gguf *g = al_gguf_open(GOLDEN_GGUF);
    cr_assert(g, "%s", al_error_message());
    cJSON *expected = al_json_load_file(GOLDEN_EXPECTED);
    const cJSON *hf = cJSON_GetObjectItem(expected, "hf_tensors");
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), 0, "%s", al_error_message());
    cr_assert_eq(cJSON_GetArraySize(hf), al_gguf_tensor_count(g));
    for (int k = 0; k < al_gguf_tensor_count(g); k++) {
        const struct al_gguf_tensor *t = al_gguf_tensor(g, k);
        char name[128];
        cr_assert_eq(al_gguf_hf_tensor_name(t->name, name, sizeof name), 0, "%s", al_error_message());
        const cJSON *want = cJSON_GetObjectItem(hf, name);
        cr_assert(want, "transformers has no %s", name);
        float *x = malloc((size_t)t->count * sizeof *x);
        cr_assert_eq(al_gguf_load_hf_tensor(t, &c, x), 0, "%s", al_error_message());
        const cJSON *pair;
        int compared = 0;
        cJSON_ArrayForEach(pair, cJSON_GetObjectItem(want, "samples")) {
            int64_t index = (int64_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
            float value = (float)cJSON_GetArrayItem(pair, 1)->valuedouble;
            cr_assert_lt(index, t->count);
            cr_assert_eq(x[index], value, "%s[%lld] = %.9g, transformers %.9g", name, (long long)index, x[index],
                         value);
            compared++;
        }
        cr_assert_gt(compared, 8);
        free(x);
    }
    cJSON_Delete(expected);
    al_gguf_close(g);
}

/* Without the un-permutation q would differ from transformers': the test above would
 * catch a missing or wrong inverse. Checked here directly on one row. */
Test(gguf_model, q_rows_are_reordered)
{
    struct al_gguf *g = al_gguf_open(GOLDEN_GGUF);
    cr_assert(g, "%s", al_error_message());
    struct al_model_config c;
    cr_assert_eq(al_gguf_model_config(g, &c), 0, "%s", al_error_message());
    const struct al_gguf_tensor *t = al_gguf_find_tensor(g, "blk.0.attn_q.weight");
    int64_t cols = t->shape[1];
    float *stored = malloc((size_t)t->count * sizeof *stored), *hf = malloc((size_t)t->count * sizeof *hf);
    cr_assert_eq(al_gguf_dequantize(t, stored), 0);
    cr_assert_eq(al_gguf_load_hf_tensor(t, &c, hf), 0);
    /* Hugging Face row head_dim/2 of head 1 (j = 1, i = 0) is stored as row 1 of head 1. */
    int64_t hf_row = c.head_dim + c.head_dim / 2, stored_row = c.head_dim + 1;
    cr_assert_eq(memcmp(hf + hf_row * cols, stored + stored_row * cols, (size_t)cols * sizeof(float)), 0);
    cr_assert_neq(memcmp(hf + hf_row * cols, stored + hf_row * cols, (size_t)cols * sizeof(float)), 0);
    free(stored);
    free(hf);
    al_gguf_close(g);
}

/* ---- a GGUF where a model folder is expected ---- */

static char *copy_golden_to_tmp(void)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "tiny.gguf");
    cr_assert_eq(test_copy_file(GOLDEN_GGUF, path), 0);
    free(dir);
    return path;
}

Test(gguf_model, path_is_gguf_by_its_magic)
{
    cr_assert(al_path_is_gguf(GOLDEN_GGUF));
    cr_assert_not(al_path_is_gguf(GOLDEN_EXPECTED));
    cr_assert_not(al_path_is_gguf("tests/golden/gguf/no-such-file"));
}

Test(gguf_model, model_dir_converts_once_and_reuses)
{
    char *gguf = copy_golden_to_tmp();
    char *dir = al_gguf_model_dir(gguf, AL_DTYPE_F32);
    cr_assert(dir, "%s", al_error_message());
    char *expected_dir = al_strdup_printf("%s.hf", gguf);
    cr_assert_str_eq(dir, expected_dir);
    char *weights = al_path_join(dir, "model.safetensors");
    struct stat first, second;
    cr_assert_eq(stat(weights, &first), 0);
    char *again = al_gguf_model_dir(gguf, AL_DTYPE_F32);
    cr_assert(again, "%s", al_error_message());
    cr_assert_eq(stat(weights, &second), 0);
    cr_assert_eq(first.st_ino, second.st_ino, "the conversion was redone");
    cr_assert_eq(first.st_mtim.tv_nsec, second.st_mtim.tv_nsec);
    struct al_model_config c;
    cr_assert_eq(al_model_config_load(&c, dir), 0, "%s", al_error_message());
    cr_assert_eq(c.vocab_size, 2048);
    /* Another dtype (or a changed file) is not silently served from the old folder. */
    cr_assert_null(al_gguf_model_dir(gguf, AL_DTYPE_BF16));
    cr_assert(strstr(al_error_message(), "delete it"), "%s", al_error_message());
    free(again);
    free(weights);
    free(expected_dir);
    free(dir);
    free(gguf);
}
