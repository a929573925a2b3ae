/* Merging: every adapted weight equals W + s * B A elementwise, everything else is
 * copied bit for bit, shards and the index are consistent, and the result is a valid
 * model folder. Uses the committed golden tiny Llama and Qwen3 and their PEFT adapters. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/merge.h"
#include "agentlora/model_files.h"
#include "agentlora/safetensors.h"
#include "test_support.h"

#define MODEL_DIR "tests/golden/llama_tiny/model"
#define ADAPTER_DIR "tests/golden/llama_tiny/adapter"
#define QWEN3_MODEL_DIR "tests/golden/qwen3_tiny/model"
#define QWEN3_ADAPTER_DIR "tests/golden/qwen3_tiny/adapter"
/* lora_alpha / r of both golden adapters (8 / 4, no rsLoRA). */
#define GOLDEN_LORA_SCALE 2.0
/* fp32 GEMM against a double reference over rank 4 or 8: a few ulps of the operands. */
#define MERGE_F32_TOLERANCE 1e-5

/* Which linear a tensor name belongs to: "model.layers.1.mlp.up_proj.weight". */
static bool parse_linear(const char *name, int *layer, enum al_lora_target *target)
{
    char module[32];
    if (sscanf(name, "model.layers.%d.%*[a-z_].%31[a-z_].weight", layer, module) != 2)
        return false;
    if (al_lora_target_parse(module, target) != 0) {
        al_error_clear();
        return false;
    }
    return true;
}

static const struct al_tensor_view *adapter_tensor(const struct al_safetensors *adapter, int layer,
                                                   enum al_lora_target target, bool is_b)
{
    char key[160];
    al_lora_key(key, sizeof key, layer, target, is_b);
    const struct al_tensor_view *view = al_safetensors_find(adapter, key);
    cr_assert_not_null(view, "%s", key);
    cr_assert_eq(view->dtype, AL_DTYPE_F32);
    return view;
}

/* What check_merged saw: how many weights were merged and how many copied. */
struct merge_counts {
    int adapted;
    int copied;
};

/* Every tensor of out_dir against model_dir: adapted linears equal W + scale * B A, all
 * others are byte-identical. */
static struct merge_counts check_merged_model(const char *model_dir, const char *adapter_dir, const char *out_dir)
{
    char adapter_file[256];
    snprintf(adapter_file, sizeof adapter_file, "%s/adapter_model.safetensors", adapter_dir);
    struct al_tensor_store *base = al_tensor_store_open(model_dir);
    struct al_tensor_store *merged = al_tensor_store_open(out_dir);
    struct al_safetensors *adapter = al_safetensors_open(adapter_file);
    cr_assert(base && merged && adapter, "%s", al_error_message());
    cr_assert_eq(al_tensor_store_count(merged), al_tensor_store_count(base));
    const double scale = GOLDEN_LORA_SCALE;
    struct merge_counts counts = {0, 0};
    for (int i = 0; i < al_tensor_store_count(base); i++) {
        const struct al_tensor_view *w = al_tensor_store_tensor(base, i);
        const struct al_tensor_view *m = al_tensor_store_find(merged, w->name);
        cr_assert_not_null(m, "%s missing from the merged model", w->name);
        cr_assert_eq(m->dtype, w->dtype);
        cr_assert_eq(m->nbytes, w->nbytes);
        int layer;
        enum al_lora_target target;
        if (!parse_linear(w->name, &layer, &target)) {
            cr_assert_eq(memcmp(m->data, w->data, w->nbytes), 0, "%s changed", w->name);
            counts.copied++;
            continue;
        }
        counts.adapted++;
        const float *A = adapter_tensor(adapter, layer, target, false)->data;
        const struct al_tensor_view *b_view = adapter_tensor(adapter, layer, target, true);
        const float *B = b_view->data;
        int rank = (int)b_view->shape[1];
        int64_t rows = w->shape[0], cols = w->shape[1];
        const float *W = w->data, *M = m->data;
        double worst = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < cols; c++) {
                double delta = 0.0;
                for (int k = 0; k < rank; k++)
                    delta += (double)B[r * rank + k] * (double)A[k * cols + c];
                double expected = W[r * cols + c] + scale * delta;
                /* Rounding scales with the operands, not with their sum: W and s * B A
                 * may nearly cancel. */
                double magnitude = fabs(W[r * cols + c]) + fabs(scale * delta);
                worst = fmax(worst, fabs(M[r * cols + c] - expected) / fmax(magnitude, 1e-3));
            }
        }
        cr_assert_lt(worst, MERGE_F32_TOLERANCE, "%s: relative error %g", w->name, worst);
        cr_assert_neq(memcmp(m->data, w->data, w->nbytes), 0, "%s was not merged", w->name);
    }
    al_safetensors_close(adapter);
    al_tensor_store_close(merged);
    al_tensor_store_close(base);
    return counts;
}

static void check_merged(const char *out_dir)
{
    struct merge_counts counts = check_merged_model(MODEL_DIR, ADAPTER_DIR, out_dir);
    cr_assert_eq(counts.adapted, 2 * 7, "two layers, seven targets");
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *da = al_file_read_all(a, &la), *db = al_file_read_all(b, &lb);
    cr_assert(da && db && la == lb && memcmp(da, db, la) == 0, "%s and %s differ", a, b);
    free(da);
    free(db);
}

Test(train_merge, merged_weights_equal_w_plus_scaled_ba_in_one_file)
{
    char *dir = test_tmpdir();
    char *out = al_path_join(dir, "merged");
    cr_assert_eq(al_merge_model(MODEL_DIR, ADAPTER_DIR, out, AL_MERGE_DEFAULT_SHARD_BYTES), 0, "%s",
                 al_error_message());
    char *single = al_path_join(out, "model.safetensors"), *index = al_path_join(out, "model.safetensors.index.json");
    cr_assert(al_file_exists(single));
    cr_assert(!al_file_exists(index), "one shard needs no index");
    check_merged(out);
    char *config = al_path_join(out, "config.json"), *generation = al_path_join(out, "generation_config.json");
    assert_same_file(config, MODEL_DIR "/config.json");
    assert_same_file(generation, MODEL_DIR "/generation_config.json");
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, out), 0, "the merged folder is a valid model: %s", al_error_message());
    al_model_files_close(&files);
    free(config), free(generation), free(single), free(index), free(out), free(dir);
}

Test(train_merge, sharded_output_has_a_consistent_index)
{
    char *dir = test_tmpdir();
    char *out = al_path_join(dir, "merged");
    const uint64_t limit = 64 * 1024; /* the tiny model is ~300 KB: several shards */
    cr_assert_eq(al_merge_model(MODEL_DIR, ADAPTER_DIR, out, limit), 0, "%s", al_error_message());
    char *index_path = al_path_join(out, "model.safetensors.index.json");
    cJSON *index = al_json_load_file(index_path);
    cr_assert_not_null(index, "%s", al_error_message());
    const cJSON *weight_map = cJSON_GetObjectItem(index, "weight_map");
    double total_size = cJSON_GetObjectItem(cJSON_GetObjectItem(index, "metadata"), "total_size")->valuedouble;
    char shards[16][64];
    int shard_count = 0;
    double listed_bytes = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, weight_map)
    {
        bool seen = false;
        for (int i = 0; i < shard_count; i++)
            seen |= strcmp(shards[i], entry->valuestring) == 0;
        if (!seen) {
            cr_assert_lt(shard_count, 16);
            snprintf(shards[shard_count++], 64, "%s", entry->valuestring);
        }
    }
    cr_assert_gt(shard_count, 1);
    for (int i = 0; i < shard_count; i++) {
        char expected_suffix[32];
        snprintf(expected_suffix, sizeof expected_suffix, "-of-%05d.safetensors", shard_count);
        cr_assert(strstr(shards[i], expected_suffix), "shard name %s", shards[i]);
        char *path = al_path_join(out, shards[i]);
        struct al_safetensors *shard = al_safetensors_open(path);
        cr_assert_not_null(shard, "%s", al_error_message());
        double bytes = 0;
        for (int t = 0; t < al_safetensors_count(shard); t++)
            bytes += (double)al_safetensors_tensor(shard, t)->nbytes;
        cr_assert(bytes <= (double)limit || al_safetensors_count(shard) == 1, "%s over the limit", shards[i]);
        listed_bytes += bytes;
        al_safetensors_close(shard);
        free(path);
    }
    cr_assert_eq(listed_bytes, total_size, "metadata.total_size is the sum of the tensors");
    check_merged(out); /* al_tensor_store_open checks every tensor lies where the index says */
    cJSON_Delete(index);
    free(index_path), free(out), free(dir);
}

Test(train_merge, half_precision_weights_round_once)
{
    enum { OUT = 3, IN = 5, RANK = 2 };
    float w32[OUT * IN], A[RANK * IN], B[OUT * RANK];
    test_fill_random(w32, OUT * IN, 1, 1.0f);
    test_fill_random(A, RANK * IN, 2, 0.5f);
    test_fill_random(B, OUT * RANK, 3, 0.5f);
    const float scale = 1.5f;
    enum al_dtype dtypes[] = {AL_DTYPE_BF16, AL_DTYPE_F16};
    for (int d = 0; d < 2; d++) {
        uint16_t weight[OUT * IN], expected[OUT * IN];
        al_convert(weight, dtypes[d], w32, AL_DTYPE_F32, OUT * IN);
        float base[OUT * IN], sum[OUT * IN];
        al_convert(base, AL_DTYPE_F32, weight, dtypes[d], OUT * IN);
        for (int r = 0; r < OUT; r++)
            for (int c = 0; c < IN; c++) {
                float delta = 0.0f;
                for (int k = 0; k < RANK; k++)
                    delta += B[r * RANK + k] * A[k * IN + c];
                sum[r * IN + c] = base[r * IN + c] + scale * delta;
            }
        al_convert(expected, dtypes[d], sum, AL_DTYPE_F32, OUT * IN);
        cr_assert_eq(al_merge_lora_weight(weight, dtypes[d], OUT, IN, A, B, RANK, scale), 0);
        int differing = 0;
        for (int i = 0; i < OUT * IN; i++)
            differing += weight[i] != expected[i];
        cr_assert_eq(differing, 0, "%s: merged weights differ from round(W + s*B*A)", al_dtype_name(dtypes[d]));
    }
}

Test(train_merge, refuses_bad_requests)
{
    char *dir = test_tmpdir();
    char *out = al_path_join(dir, "merged");
    cr_assert_eq(al_merge_model(MODEL_DIR, ADAPTER_DIR, MODEL_DIR, AL_MERGE_DEFAULT_SHARD_BYTES), -1);
    cr_assert(strstr(al_error_message(), "model folder"), "%s", al_error_message());
    cr_assert_eq(al_merge_model(MODEL_DIR, "tests/golden/no-such-adapter", out, AL_MERGE_DEFAULT_SHARD_BYTES), -1);
    cr_assert(strstr(al_error_message(), "no-such-adapter"), "%s", al_error_message());
    int32_t ints[4] = {0};
    float a[2] = {0}, b[2] = {0};
    cr_assert_eq(al_merge_lora_weight(ints, AL_DTYPE_I32, 2, 2, a, b, 1, 1.0f), -1);
    free(out), free(dir);
}

/* Qwen3: the same rule for its seven linears, while the per-head q_norm / k_norm weights
 * (which no LoRA target covers) come through untouched, with the config as it was. */
Test(train_merge, qwen3_merges_linears_and_copies_q_k_norms)
{
    char *dir = test_tmpdir();
    char *out = al_path_join(dir, "merged");
    cr_assert_eq(al_merge_model(QWEN3_MODEL_DIR, QWEN3_ADAPTER_DIR, out, AL_MERGE_DEFAULT_SHARD_BYTES), 0, "%s",
                 al_error_message());
    struct merge_counts counts = check_merged_model(QWEN3_MODEL_DIR, QWEN3_ADAPTER_DIR, out);
    cr_assert_eq(counts.adapted, 2 * 7, "two layers, seven targets");
    struct al_tensor_store *merged = al_tensor_store_open(out);
    cr_assert_not_null(merged, "%s", al_error_message());
    int norms = 0;
    for (int layer = 0; layer < 2; layer++)
        for (int k = 0; k < 2; k++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_norm.weight", layer, k ? "k" : "q");
            const struct al_tensor_view *norm = al_tensor_store_find(merged, name);
            cr_assert_not_null(norm, "%s missing from the merged model", name);
            cr_assert_eq(norm->shape[0], 24, "%s: one weight per head_dim channel", name);
            norms++;
        }
    cr_assert_eq(norms, 4);
    /* embed, lm_head, final norm, and per layer two RMSNorms plus q_norm and k_norm. */
    cr_assert_eq(counts.copied, 3 + 2 * 4);
    al_tensor_store_close(merged);
    char *config = al_path_join(out, "config.json");
    assert_same_file(config, QWEN3_MODEL_DIR "/config.json");
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, out), 0, "the merged folder is a valid model: %s", al_error_message());
    al_model_files_close(&files);
    free(config), free(out), free(dir);
}
