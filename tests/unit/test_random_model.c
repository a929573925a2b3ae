/* Random model folders: presets with the published shapes, config.json that reads back
 * to the same config, weights initialised as transformers does, deterministic bytes,
 * sharding with a valid index, and folders that load and run like real checkpoints. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/model.h"
#include "agentlora/model_files.h"
#include "agentlora/random_model.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"

/* Small enough to write in milliseconds, large enough for meaningful statistics. */
#define TEST_VOCAB 512
/* Sample statistics of ~32k N(0, 0.02^2) draws: the mean's standard error is ~1e-4 and
 * the std's ~8e-5, so these bounds are more than 5 standard errors wide. */
#define MEAN_TOLERANCE 6e-4
#define STD_TOLERANCE 6e-4

static struct al_model_config tiny_config(void)
{
    struct al_model_config config;
    cr_assert_eq(al_model_preset("tiny", &config), 0, "%s", al_error_message());
    config.vocab_size = TEST_VOCAB;
    return config;
}

static char *write_model(const struct al_model_config *config, enum al_dtype dtype, uint64_t seed,
                         uint64_t shard_bytes)
{
    char *parent = test_tmpdir();
    char *dir = al_path_join(parent, "model");
    free(parent);
    cr_assert_eq(al_random_model_write(config, dtype, seed, dir, shard_bytes), 0, "%s", al_error_message());
    return dir;
}

static char *read_file(const char *dir, const char *name, size_t *length)
{
    char *path = al_path_join(dir, name);
    char *data = al_file_read_all(path, length);
    cr_assert(data, "%s", al_error_message());
    free(path);
    return data;
}

/* ---- presets ---- */

Test(random_model, presets_have_the_published_parameter_counts)
{
    static const struct {
        const char *preset;
        int64_t parameters; /* as the model cards and num_parameters() report */
    } published[] = {
        {"smollm2-135m", 134515008LL},  {"llama-3.2-1b", 1235814400LL}, {"llama-3.1-8b", 8030261248LL},
        {"qwen2.5-7b", 7615616512LL},   {"mistral-7b", 7248023552LL},
    };
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        struct al_model_config config;
        cr_assert_eq(al_model_preset(published[i].preset, &config), 0, "%s", al_error_message());
        cr_expect_eq(al_model_config_parameter_count(&config), published[i].parameters, "%s: %lld, expected %lld",
                     published[i].preset, (long long)al_model_config_parameter_count(&config),
                     (long long)published[i].parameters);
    }
}

Test(random_model, presets_carry_the_published_features)
{
    struct al_model_config c;
    cr_assert_eq(al_model_preset("llama-3.2-1b", &c), 0);
    cr_expect(c.rope_llama3 && c.rope_factor == 32.0f && c.rope_original_max_position == 8192);
    cr_expect(c.tie_word_embeddings && c.rope_theta == 500000.0 && c.head_dim == 64);
    cr_expect(c.num_eos_token_ids == 3 && c.eos_token_ids[2] == 128009 && c.bos_token_id == 128000);
    cr_assert_eq(al_model_preset("llama-3.1-8b", &c), 0);
    cr_expect(c.rope_llama3 && c.rope_factor == 8.0f && !c.tie_word_embeddings);
    cr_assert_eq(al_model_preset("qwen2.5-7b", &c), 0);
    cr_expect(c.arch == AL_ARCH_QWEN2 && c.attention_qkv_bias && c.rms_norm_eps == 1e-6f);
    cr_expect(c.rope_theta == 1e6 && !c.rope_llama3 && c.num_key_value_heads == 4 && c.head_dim == 128);
    cr_assert_eq(al_model_preset("mistral-7b", &c), 0);
    cr_expect(c.arch == AL_ARCH_MISTRAL && c.vocab_size == 32768 && c.sliding_window == 0);
    cr_assert_eq(al_model_preset("smollm2-135m", &c), 0);
    cr_expect(c.num_attention_heads == 9 && c.num_key_value_heads == 3 && c.tie_word_embeddings);
    cr_assert_eq(al_model_preset("tiny", &c), 0);
    cr_expect(c.hidden_size == 64 && c.intermediate_size == 192 && c.num_hidden_layers == 2);
    cr_expect(c.num_attention_heads == 4 && c.num_key_value_heads == 2 && c.max_position_embeddings == 2048);
}

Test(random_model, unknown_preset_fails_and_lists_the_known_ones)
{
    struct al_model_config c;
    cr_assert_eq(al_model_preset("llama-9", &c), -1);
    cr_assert(strstr(al_error_message(), "llama-9") && strstr(al_error_message(), "qwen2.5-7b"), "%s",
              al_error_message());
    int n = 0;
    while (al_model_preset_name(n))
        n++;
    cr_assert_eq(n, 6);
}

/* Every preset's config.json reads back (through config.c) to the preset itself. */
Test(random_model, config_json_reads_back_to_the_preset)
{
    for (int i = 0; al_model_preset_name(i); i++) {
        struct al_model_config c, back;
        cr_assert_eq(al_model_preset(al_model_preset_name(i), &c), 0);
        char *text = al_random_model_config_json(&c, AL_DTYPE_BF16);
        cJSON *json = cJSON_Parse(text);
        cr_assert(json, "%s", text);
        cr_assert_eq(al_model_config_parse(&back, json, "test"), 0, "%s", al_error_message());
        const char *name = al_model_preset_name(i);
        cr_expect_str_eq(back.architecture, c.architecture, "%s", name);
        cr_expect(back.arch == c.arch && back.hidden_size == c.hidden_size &&
                      back.intermediate_size == c.intermediate_size && back.num_hidden_layers == c.num_hidden_layers,
                  "%s", name);
        cr_expect(back.num_attention_heads == c.num_attention_heads &&
                      back.num_key_value_heads == c.num_key_value_heads && back.head_dim == c.head_dim &&
                      back.vocab_size == c.vocab_size && back.max_position_embeddings == c.max_position_embeddings,
                  "%s", name);
        cr_expect(back.rms_norm_eps == c.rms_norm_eps && back.rope_theta == c.rope_theta &&
                      back.rope_llama3 == c.rope_llama3 && back.rope_factor == c.rope_factor &&
                      back.rope_low_freq_factor == c.rope_low_freq_factor &&
                      back.rope_high_freq_factor == c.rope_high_freq_factor &&
                      back.rope_original_max_position == c.rope_original_max_position,
                  "%s", name);
        cr_expect(back.tie_word_embeddings == c.tie_word_embeddings &&
                      back.attention_qkv_bias == c.attention_qkv_bias && back.sliding_window == 0 &&
                      back.bos_token_id == c.bos_token_id && back.num_eos_token_ids == c.num_eos_token_ids &&
                      back.torch_dtype == AL_DTYPE_BF16,
                  "%s", name);
        for (int e = 0; e < c.num_eos_token_ids; e++)
            cr_expect_eq(back.eos_token_ids[e], c.eos_token_ids[e], "%s", name);
        /* transformers needs these to build the model; config.c does not read them. */
        cr_expect_str_eq(cJSON_GetObjectItem(json, "hidden_act")->valuestring, "silu");
        cr_expect(cJSON_IsString(cJSON_GetObjectItem(json, "model_type")));
        cJSON_Delete(json);
        free(text);
    }
}

/* ---- written folders ---- */

Test(random_model, tiny_model_validates_loads_and_gives_finite_logits)
{
    struct al_model_config config = tiny_config();
    char *dir = write_model(&config, AL_DTYPE_F32, 3, 0);
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, dir), 0, "%s", al_error_message());
    cr_expect_eq(files.config.vocab_size, TEST_VOCAB);
    cr_expect_eq(files.dtype, AL_DTYPE_F32);
    cr_expect_not_null(files.lm_head, "the tiny preset is untied");
    al_model_files_close(&files);

    struct al_backend *backend = al_backend_create("cpu");
    cr_assert(backend, "%s", al_error_message());
    struct al_model *model = al_model_load(dir, backend);
    cr_assert(model, "%s", al_error_message());
    int lengths[] = {7, 5};
    struct test_batch tb;
    test_batch_make(&tb, lengths, 2, TEST_VOCAB, 11, 0);
    struct al_workspace *ws = al_workspace_create(model, NULL, tb.batch.num_tokens, false);
    cr_assert(ws, "%s", al_error_message());
    float *logits = malloc(sizeof *logits * (size_t)tb.batch.num_tokens * TEST_VOCAB);
    cr_assert_eq(al_model_logits(model, NULL, ws, &tb.batch, logits), 0, "%s", al_error_message());
    double sum_abs = 0;
    for (int64_t i = 0; i < tb.batch.num_tokens * TEST_VOCAB; i++) {
        cr_assert(isfinite(logits[i]), "logit %lld is %f", (long long)i, logits[i]);
        sum_abs += fabs(logits[i]);
    }
    cr_expect_gt(sum_abs, 0.0, "random weights give non-zero logits");
    /* A fresh model predicts nearly uniformly: the loss is close to log(vocab). */
    double loss = 0;
    cr_assert_eq(al_model_loss(model, NULL, ws, &tb.batch, &loss), 0, "%s", al_error_message());
    double per_token = loss / (double)al_batch_count_targets(&tb.batch);
    cr_expect(fabs(per_token - log(TEST_VOCAB)) < 0.1, "loss per token %f, log(vocab) %f", per_token,
              log(TEST_VOCAB));
    free(logits);
    al_workspace_free(ws);
    test_batch_free(&tb);
    al_model_free(model);
    al_backend_destroy(backend);
    free(dir);
}

static void tensor_stats(const struct al_tensor_view *t, double *mean, double *std, float *min, float *max)
{
    float *values = malloc(sizeof *values * (size_t)t->count);
    al_convert(values, AL_DTYPE_F32, t->data, t->dtype, t->count);
    double sum = 0, sum_sq = 0;
    *min = INFINITY;
    *max = -INFINITY;
    for (int64_t i = 0; i < t->count; i++) {
        sum += values[i];
        sum_sq += (double)values[i] * values[i];
        *min = fminf(*min, values[i]);
        *max = fmaxf(*max, values[i]);
    }
    *mean = sum / (double)t->count;
    *std = sqrt(sum_sq / (double)t->count - *mean * *mean);
    free(values);
}

static void check_initialisation(enum al_dtype dtype)
{
    struct al_model_config config;
    cr_assert_eq(al_model_preset("tiny", &config), 0);
    config.arch = AL_ARCH_QWEN2; /* to have biases */
    config.attention_qkv_bias = true;
    config.vocab_size = TEST_VOCAB;
    char *dir = write_model(&config, dtype, 5, 0);
    struct al_tensor_store *store = al_tensor_store_open(dir);
    cr_assert(store, "%s", al_error_message());
    int normals = 0, ones = 0, zeros = 0;
    for (int i = 0; i < al_tensor_store_count(store); i++) {
        const struct al_tensor_view *t = al_tensor_store_tensor(store, i);
        cr_assert_eq(t->dtype, dtype, "%s", t->name);
        double mean, std;
        float min, max;
        tensor_stats(t, &mean, &std, &min, &max);
        if (strstr(t->name, "norm.weight")) {
            cr_expect(min == 1.0f && max == 1.0f, "%s: RMSNorm weights must be ones", t->name);
            ones++;
        } else if (strstr(t->name, ".bias")) {
            cr_expect(min == 0.0f && max == 0.0f, "%s: biases must be zeros", t->name);
            zeros++;
        } else {
            /* Box-Muller never goes past ~5.6 sigma with 24-bit uniforms; >7 would be a bug. */
            cr_expect(fabs(min) < 7 * 0.02 && fabs(max) < 7 * 0.02, "%s: range [%g, %g]", t->name, min, max);
            if (t->count >= 32768) {
                cr_expect(fabs(mean) < MEAN_TOLERANCE, "%s: mean %g", t->name, mean);
                cr_expect(fabs(std - AL_RANDOM_MODEL_INIT_STD) < STD_TOLERANCE, "%s: std %g", t->name, std);
            }
            normals++;
        }
    }
    /* 2 layers x (q, k, v, o, gate, up, down) + embeddings + lm_head; 2 x 2 + 1 norms; 2 x 3 biases. */
    cr_expect_eq(normals, 16);
    cr_expect_eq(ones, 5);
    cr_expect_eq(zeros, 6);
    al_tensor_store_close(store);
    free(dir);
}

Test(random_model, weights_are_initialised_as_transformers_does_in_f32)
{
    check_initialisation(AL_DTYPE_F32);
}

Test(random_model, weights_are_initialised_as_transformers_does_in_bf16)
{
    check_initialisation(AL_DTYPE_BF16);
}

Test(random_model, weights_are_initialised_as_transformers_does_in_f16)
{
    check_initialisation(AL_DTYPE_F16);
}

/* Distinct tensors draw distinct values (no stream reused between tensors or blocks). */
Test(random_model, tensors_and_blocks_draw_independent_values)
{
    struct al_model_config config = tiny_config();
    config.vocab_size = 2048; /* embeddings of 131072 elements: two blocks */
    char *dir = write_model(&config, AL_DTYPE_F32, 9, 0);
    struct al_tensor_store *store = al_tensor_store_open(dir);
    cr_assert(store, "%s", al_error_message());
    const struct al_tensor_view *gate = al_tensor_store_find(store, "model.layers.0.mlp.gate_proj.weight");
    const struct al_tensor_view *up = al_tensor_store_find(store, "model.layers.0.mlp.up_proj.weight");
    const struct al_tensor_view *embed = al_tensor_store_find(store, "model.embed_tokens.weight");
    cr_assert(gate && up && embed);
    cr_expect_neq(memcmp(gate->data, up->data, gate->nbytes), 0, "same-shaped tensors must differ");
    const float *e = embed->data;
    cr_expect_neq(memcmp(e, e + 65536, 1024 * sizeof *e), 0, "two blocks of one tensor must differ");
    al_tensor_store_close(store);
    free(dir);
}

static void expect_same_file(const char *dir_a, const char *dir_b, const char *name, bool same)
{
    size_t len_a, len_b;
    char *a = read_file(dir_a, name, &len_a);
    char *b = read_file(dir_b, name, &len_b);
    bool equal = len_a == len_b && memcmp(a, b, len_a) == 0;
    cr_expect_eq(equal, same, "%s: files %s", name, same ? "differ" : "are identical");
    free(a);
    free(b);
}

Test(random_model, same_seed_gives_identical_bytes_whatever_the_thread_count)
{
    struct al_model_config config = tiny_config();
    config.vocab_size = 2048;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    char *one_thread = write_model(&config, AL_DTYPE_BF16, 42, 0);
    omp_set_num_threads(3);
    char *three_threads = write_model(&config, AL_DTYPE_BF16, 42, 0);
    omp_set_num_threads(threads);
    char *other_seed = write_model(&config, AL_DTYPE_BF16, 43, 0);
    expect_same_file(one_thread, three_threads, "model.safetensors", true);
    expect_same_file(one_thread, three_threads, "config.json", true);
    expect_same_file(one_thread, other_seed, "model.safetensors", false);
    free(one_thread);
    free(three_threads);
    free(other_seed);
}

Test(random_model, large_weights_are_sharded_with_a_valid_index)
{
    struct al_model_config config = tiny_config();
    /* F32 tiny: embeddings and lm_head are 131072 bytes each, a layer about 197 KB. */
    const uint64_t shard_bytes = 150000;
    char *sharded = write_model(&config, AL_DTYPE_F32, 8, shard_bytes);
    char *single = write_model(&config, AL_DTYPE_F32, 8, 0);

    char *index_path = al_path_join(sharded, "model.safetensors.index.json");
    cJSON *index = al_json_load_file(index_path);
    cr_assert(index, "%s", al_error_message());
    const cJSON *map = cJSON_GetObjectItem(index, "weight_map");
    cr_assert_eq(cJSON_GetArraySize(map), 21, "every tensor is in the weight map");

    struct al_tensor_store *sharded_store = al_tensor_store_open(sharded);
    struct al_tensor_store *single_store = al_tensor_store_open(single);
    cr_assert(sharded_store && single_store, "%s", al_error_message());
    enum { MAX_TEST_SHARDS = 16 };
    uint64_t shard_sum[MAX_TEST_SHARDS + 1] = {0};
    int n_shards = 0;
    double total = 0;
    for (int i = 0; i < al_tensor_store_count(single_store); i++) {
        const struct al_tensor_view *a = al_tensor_store_tensor(single_store, i);
        const struct al_tensor_view *b = al_tensor_store_find(sharded_store, a->name);
        cr_assert(b, "%s missing from the shards", a->name);
        cr_expect(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                  "%s: sharding must not change the values", a->name);
        const cJSON *entry = cJSON_GetObjectItem(map, a->name);
        int shard, of;
        cr_assert(cJSON_IsString(entry) &&
                      sscanf(entry->valuestring, "model-%05d-of-%05d.safetensors", &shard, &of) == 2,
                  "%s: bad shard name", a->name);
        cr_assert(shard >= 1 && shard <= of && of <= MAX_TEST_SHARDS);
        cr_expect(strstr(b->file, entry->valuestring), "%s is in %s, the index says %s", a->name, b->file,
                  entry->valuestring);
        n_shards = of;
        shard_sum[shard] += b->nbytes;
        total += (double)a->nbytes;
    }
    /* Greedy in order: embeddings | layer 0 to up | down, layer 1 to gate | up, down, norm | lm_head. */
    cr_expect_eq(n_shards, 5, "657 KB of weights in 150 KB shards");
    for (int shard = 1; shard <= n_shards; shard++)
        cr_expect(shard_sum[shard] > 0 && shard_sum[shard] <= shard_bytes, "shard %d holds %llu bytes", shard,
                  (unsigned long long)shard_sum[shard]);
    const cJSON *total_size = cJSON_GetObjectItem(cJSON_GetObjectItem(index, "metadata"), "total_size");
    cr_expect(cJSON_IsNumber(total_size) && total_size->valuedouble == total, "total_size must be the bytes");
    struct al_model_files files;
    cr_assert_eq(al_model_files_open(&files, sharded), 0, "%s", al_error_message());
    al_model_files_close(&files);
    al_tensor_store_close(sharded_store);
    al_tensor_store_close(single_store);
    cJSON_Delete(index);
    free(index_path);
    free(sharded);
    free(single);
}

Test(random_model, tied_qwen2_and_mistral_folders_validate)
{
    static const char *const presets[] = {"smollm2-135m", "qwen2.5-7b", "mistral-7b"};
    for (size_t i = 0; i < 3; i++) {
        /* The preset's features (tying, biases, architecture) at the tiny model's size. */
        struct al_model_config config, small = tiny_config();
        cr_assert_eq(al_model_preset(presets[i], &config), 0);
        config.hidden_size = small.hidden_size;
        config.intermediate_size = small.intermediate_size;
        config.num_hidden_layers = 1;
        config.num_attention_heads = 4;
        config.num_key_value_heads = 2;
        config.head_dim = 16;
        config.vocab_size = 300;
        config.bos_token_id = -1; /* the real ids lie past 300 */
        config.num_eos_token_ids = 0;
        char *dir = write_model(&config, AL_DTYPE_BF16, 1, 0);
        struct al_model_files files;
        cr_assert_eq(al_model_files_open(&files, dir), 0, "%s: %s", presets[i], al_error_message());
        cr_expect_eq(files.lm_head == NULL, config.tie_word_embeddings, "%s", presets[i]);
        cr_expect_eq(files.layers[0].q_bias != NULL, config.attention_qkv_bias, "%s", presets[i]);
        cr_expect_eq(files.config.arch, config.arch, "%s", presets[i]);
        al_model_files_close(&files);
        free(dir);
    }
}

Test(random_model, refuses_to_overwrite_a_model)
{
    struct al_model_config config = tiny_config();
    char *dir = write_model(&config, AL_DTYPE_F32, 1, 0);
    size_t before_length;
    char *before = read_file(dir, "model.safetensors", &before_length);
    cr_assert_eq(al_random_model_write(&config, AL_DTYPE_F32, 2, dir, 0), -1);
    cr_expect(strstr(al_error_message(), "already holds config.json"), "%s", al_error_message());
    size_t after_length;
    char *after = read_file(dir, "model.safetensors", &after_length);
    cr_expect(before_length == after_length && memcmp(before, after, before_length) == 0);
    free(before);
    free(after);
    free(dir);
}

Test(random_model, rejects_an_impossible_config_and_writes_nothing)
{
    struct al_model_config config = tiny_config();
    config.num_key_value_heads = 3; /* does not divide 4 heads */
    char *parent = test_tmpdir();
    char *dir = al_path_join(parent, "model");
    free(parent);
    cr_assert_eq(al_random_model_write(&config, AL_DTYPE_F32, 1, dir, 0), -1);
    cr_expect(strstr(al_error_message(), "num_key_value_heads"), "%s", al_error_message());
    cr_expect(!al_dir_exists(dir), "nothing is created for a bad config");
    config = tiny_config();
    cr_assert_eq(al_random_model_write(&config, AL_DTYPE_I32, 1, dir, 0), -1);
    cr_expect(strstr(al_error_message(), "F32, F16 or BF16"), "%s", al_error_message());
    cr_assert_eq(al_model_preset("qwen2.5-7b", &config), 0);
    config.vocab_size = 1000; /* the preset's eos 151645 is now past the embeddings */
    cr_assert_eq(al_random_model_write(&config, AL_DTYPE_F32, 1, dir, 0), -1);
    cr_expect(strstr(al_error_message(), "outside the vocabulary"), "%s", al_error_message());
    cr_expect(!al_dir_exists(dir), "nothing is created for a bad config");
    free(dir);
}

Test(random_model, init_std_sets_the_spread_of_the_normal_weights)
{
    struct al_model_config config;
    cr_assert_eq(al_model_preset("tiny", &config), 0);
    config.vocab_size = TEST_VOCAB;
    char *dir = test_tmpdir();
    cr_assert_eq(al_random_model_write_std(&config, AL_DTYPE_F32, 3, 0.1f, dir, 0), 0, "%s", al_error_message());
    struct al_tensor_store *store = al_tensor_store_open(dir);
    cr_assert(store, "%s", al_error_message());
    const struct al_tensor_view *gate = al_tensor_store_find(store, "model.layers.0.mlp.gate_proj.weight");
    double mean, std;
    float min, max;
    tensor_stats(gate, &mean, &std, &min, &max);
    cr_assert_lt(fabs(std - 0.1), 5 * STD_TOLERANCE, "std %g for init_std 0.1", std);
    const struct al_tensor_view *norm = al_tensor_store_find(store, "model.norm.weight");
    tensor_stats(norm, &mean, &std, &min, &max);
    cr_assert(min == 1.0f && max == 1.0f, "RMSNorm weights stay ones");
    al_tensor_store_close(store);
    char *other = test_tmpdir();
    cr_assert_eq(al_random_model_write_std(&config, AL_DTYPE_F32, 3, -1.0f, other, 0), -1);
    cr_assert(strstr(al_error_message(), "std"), "%s", al_error_message());
    free(other);
    free(dir);
}
