/* Random model folders: config.json as transformers writes it, and weights drawn as
 * transformers initialises a fresh model (_init_weights: normal(0, initializer_range) for
 * Linear and Embedding weights, zeros for biases, ones for RMSNorm weights).
 *
 * Large presets are billions of parameters, so the weights are planned first (names,
 * shapes, shard of each tensor) and then written one shard at a time, each through its
 * own safetensors writer: only one shard is ever in memory.
 *
 * Values are drawn in fixed blocks of elements, each block from its own random stream
 * derived from (seed, tensor, block). Blocks are filled in parallel, and the bytes do
 * not depend on how many threads there are. */
#include "agentlora/random_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"

#define CONFIG_FILE "config.json"
#define SINGLE_FILE "model.safetensors"
#define INDEX_FILE "model.safetensors.index.json"
#define TENSOR_NAME_CAPACITY 96
/* Elements drawn from one random stream: large enough to amortise seeding, small enough
 * that even the tiny model's tensors spread over several threads. */
#define BLOCK_ELEMENTS 65536

/* ---- config.json ---- */

static const char *model_type_of(enum al_arch arch)
{
    switch (arch) {
    case AL_ARCH_QWEN2:
        return "qwen2";
    case AL_ARCH_MISTRAL:
        return "mistral";
    case AL_ARCH_QWEN3:
        return "qwen3";
    case AL_ARCH_LLAMA:
        break;
    }
    return "llama";
}

static const char *torch_dtype_name(enum al_dtype dtype)
{
    return dtype == AL_DTYPE_BF16 ? "bfloat16" : dtype == AL_DTYPE_F16 ? "float16" : "float32";
}

/* Numbers go in as short decimal text: the config stores floats, and 1e-5f printed as a
 * double would read 9.9999997473787516e-06. */
static bool add_number(cJSON *object, const char *name, double value, int digits)
{
    char text[48];
    snprintf(text, sizeof text, "%.*g", digits, value);
    /* "%g" of an integral value has no point; transformers writes floats with one. */
    if (!strpbrk(text, ".en"))
        strncat(text, ".0", sizeof text - strlen(text) - 1);
    return cJSON_AddRawToObject(object, name, text) != NULL;
}

static bool add_int(cJSON *object, const char *name, long long value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    return cJSON_AddRawToObject(object, name, text) != NULL;
}

static bool add_int_or_null(cJSON *object, const char *name, long long value)
{
    return value >= 0 ? add_int(object, name, value) : cJSON_AddNullToObject(object, name) != NULL;
}

static bool add_rope(cJSON *json, const struct al_model_config *c)
{
    bool ok = add_number(json, "rope_theta", c->rope_theta, 9);
    if (!c->rope_llama3)
        return ok && cJSON_AddNullToObject(json, "rope_scaling");
    cJSON *scaling = cJSON_AddObjectToObject(json, "rope_scaling");
    return ok && scaling && add_number(scaling, "factor", c->rope_factor, 7) &&
           add_number(scaling, "high_freq_factor", c->rope_high_freq_factor, 7) &&
           add_number(scaling, "low_freq_factor", c->rope_low_freq_factor, 7) &&
           add_int(scaling, "original_max_position_embeddings", c->rope_original_max_position) &&
           cJSON_AddStringToObject(scaling, "rope_type", "llama3");
}

static bool add_token_ids(cJSON *json, const struct al_model_config *c)
{
    bool ok = add_int_or_null(json, "bos_token_id", c->bos_token_id);
    if (c->num_eos_token_ids == 0)
        return ok && cJSON_AddNullToObject(json, "eos_token_id");
    if (c->num_eos_token_ids == 1)
        return ok && add_int(json, "eos_token_id", c->eos_token_ids[0]);
    cJSON *list = cJSON_AddArrayToObject(json, "eos_token_id");
    for (int i = 0; ok && list && i < c->num_eos_token_ids; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", c->eos_token_ids[i]);
        cJSON *id = cJSON_CreateRaw(text);
        ok = id && cJSON_AddItemToArray(list, id);
    }
    return ok && list;
}

/* transformers 5's layer_types: which layers attend within the sliding window (it
 * overrides max_window_layers when both are read). */
static bool add_layer_types(cJSON *json, const struct al_model_config *c)
{
    cJSON *list = cJSON_AddArrayToObject(json, "layer_types");
    for (int layer = 0; list && layer < c->num_hidden_layers; layer++)
        if (!cJSON_AddItemToArray(list, cJSON_CreateString(al_model_config_layer_window(c, layer) > 0
                                                                ? "sliding_attention"
                                                                : "full_attention")))
            return false;
    return list != NULL;
}

/* Qwen2's and Qwen3's window fields. */
static bool add_qwen_window_fields(cJSON *json, const struct al_model_config *c)
{
    return add_int(json, "max_window_layers", c->num_hidden_layers) &&
           cJSON_AddBoolToObject(json, "use_sliding_window", c->sliding_window > 0) &&
           add_int_or_null(json, "sliding_window", c->sliding_window > 0 ? c->sliding_window : -1) &&
           add_layer_types(json, c);
}

/* Fields only some architectures have, spelled as their transformers config class. */
static bool add_architecture_fields(cJSON *json, const struct al_model_config *c)
{
    switch (c->arch) {
    case AL_ARCH_LLAMA:
        return cJSON_AddFalseToObject(json, "attention_bias") && cJSON_AddFalseToObject(json, "mlp_bias") &&
               add_int(json, "pretraining_tp", 1);
    case AL_ARCH_QWEN3:
        return cJSON_AddFalseToObject(json, "attention_bias") && add_qwen_window_fields(json, c);
    case AL_ARCH_QWEN2:
        return add_qwen_window_fields(json, c);
    case AL_ARCH_MISTRAL:
        return add_int_or_null(json, "sliding_window", c->sliding_window > 0 ? c->sliding_window : -1);
    }
    return true;
}

static cJSON *config_to_json(const struct al_model_config *c, enum al_dtype dtype)
{
    cJSON *json = cJSON_CreateObject();
    cJSON *architectures = json ? cJSON_AddArrayToObject(json, "architectures") : NULL;
    bool ok = architectures && cJSON_AddItemToArray(architectures, cJSON_CreateString(al_arch_name(c->arch))) &&
              add_number(json, "attention_dropout", 0.0, 3) && add_token_ids(json, c) &&
              add_int(json, "head_dim", c->head_dim) && cJSON_AddStringToObject(json, "hidden_act", "silu") &&
              add_int(json, "hidden_size", c->hidden_size) &&
              add_number(json, "initializer_range", AL_RANDOM_MODEL_INIT_STD, 7) &&
              add_int(json, "intermediate_size", c->intermediate_size) &&
              add_int(json, "max_position_embeddings", c->max_position_embeddings) &&
              cJSON_AddStringToObject(json, "model_type", model_type_of(c->arch)) &&
              add_int(json, "num_attention_heads", c->num_attention_heads) &&
              add_int(json, "num_hidden_layers", c->num_hidden_layers) &&
              add_int(json, "num_key_value_heads", c->num_key_value_heads) &&
              add_number(json, "rms_norm_eps", c->rms_norm_eps, 7) && add_rope(json, c) &&
              cJSON_AddBoolToObject(json, "tie_word_embeddings", c->tie_word_embeddings) &&
              cJSON_AddStringToObject(json, "torch_dtype", torch_dtype_name(dtype)) &&
              cJSON_AddTrueToObject(json, "use_cache") && add_int(json, "vocab_size", c->vocab_size) &&
              add_architecture_fields(json, c);
    if (!ok) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

char *al_random_model_config_json(const struct al_model_config *config, enum al_dtype dtype)
{
    cJSON *json = config_to_json(config, dtype);
    char *text = json ? cJSON_Print(json) : NULL;
    cJSON_Delete(json);
    if (!text)
        return al_fail_null("out of memory writing config.json");
    return text;
}

/* The config is checked by reading back the text that would be written: every rule
 * config.c enforces (heads dividing, even head_dim, supported features) then holds, and
 * the file is known to parse. */
static int check_config(const struct al_model_config *config, enum al_dtype dtype)
{
    if (dtype != AL_DTYPE_F32 && dtype != AL_DTYPE_F16 && dtype != AL_DTYPE_BF16)
        return al_fail("weights dtype must be F32, F16 or BF16, not %s", al_dtype_name(dtype));
    /* A special id past the embeddings would make generation index out of bounds. */
    if (config->bos_token_id >= config->vocab_size)
        return al_fail("bos_token_id %d is outside the vocabulary (vocab_size %d)", config->bos_token_id,
                       config->vocab_size);
    for (int i = 0; i < config->num_eos_token_ids; i++)
        if (config->eos_token_ids[i] >= config->vocab_size)
            return al_fail("eos_token_id %d is outside the vocabulary (vocab_size %d)", config->eos_token_ids[i],
                           config->vocab_size);
    char *text = al_random_model_config_json(config, dtype);
    if (!text)
        return -1;
    cJSON *json = cJSON_Parse(text);
    free(text);
    if (!json)
        return al_fail("the config.json written for this model does not parse");
    struct al_model_config reread;
    int rc = al_model_config_parse(&reread, json, "the model config");
    cJSON_Delete(json);
    return rc;
}

/* ---- the plan: every tensor, its shape, its initialiser and its shard ---- */

enum initialiser { INIT_NORMAL, INIT_ZEROS, INIT_ONES };

struct planned_tensor {
    char name[TENSOR_NAME_CAPACITY];
    int ndim;
    int64_t shape[2];
    enum initialiser init;
    uint64_t nbytes;
    int shard;
};

struct plan {
    struct planned_tensor *tensors;
    int count;
    int n_shards;
    uint64_t total_bytes;
};

struct planner {
    struct plan *plan;
    enum al_dtype dtype;
};

static void plan_tensor(struct planner *p, const char *name, int ndim, int64_t rows, int64_t cols,
                        enum initialiser init)
{
    struct planned_tensor *t = &p->plan->tensors[p->plan->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->init = init;
    t->nbytes = (uint64_t)rows * (uint64_t)(ndim == 2 ? cols : 1) * al_dtype_size(p->dtype);
}

static void plan_layer_tensor(struct planner *p, int layer, const char *suffix, int ndim, int64_t rows,
                              int64_t cols, enum initialiser init)
{
    char name[TENSOR_NAME_CAPACITY];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
    plan_tensor(p, name, ndim, rows, cols, init);
}

/* The order transformers' modules list them: norms around attention, then the MLP. */
static void plan_layer(struct planner *p, const struct al_model_config *c, int layer)
{
    int64_t hidden = c->hidden_size, inter = c->intermediate_size;
    int64_t q = (int64_t)c->num_attention_heads * c->head_dim, kv = (int64_t)c->num_key_value_heads * c->head_dim;
    static const char *const projections[] = {"q_proj", "k_proj", "v_proj"};
    plan_layer_tensor(p, layer, "input_layernorm.weight", 1, hidden, 0, INIT_ONES);
    for (int i = 0; i < 3; i++) {
        char suffix[48];
        snprintf(suffix, sizeof suffix, "self_attn.%s.weight", projections[i]);
        plan_layer_tensor(p, layer, suffix, 2, i == 0 ? q : kv, hidden, INIT_NORMAL);
        if (c->attention_qkv_bias) {
            snprintf(suffix, sizeof suffix, "self_attn.%s.bias", projections[i]);
            plan_layer_tensor(p, layer, suffix, 1, i == 0 ? q : kv, 0, INIT_ZEROS);
        }
    }
    if (c->qk_norm) {
        plan_layer_tensor(p, layer, "self_attn.q_norm.weight", 1, c->head_dim, 0, INIT_ONES);
        plan_layer_tensor(p, layer, "self_attn.k_norm.weight", 1, c->head_dim, 0, INIT_ONES);
    }
    plan_layer_tensor(p, layer, "self_attn.o_proj.weight", 2, hidden, q, INIT_NORMAL);
    plan_layer_tensor(p, layer, "post_attention_layernorm.weight", 1, hidden, 0, INIT_ONES);
    plan_layer_tensor(p, layer, "mlp.gate_proj.weight", 2, inter, hidden, INIT_NORMAL);
    plan_layer_tensor(p, layer, "mlp.up_proj.weight", 2, inter, hidden, INIT_NORMAL);
    plan_layer_tensor(p, layer, "mlp.down_proj.weight", 2, hidden, inter, INIT_NORMAL);
}

/* Tensors go into shards in order; a shard is closed when the next tensor would push it
 * past the limit (the rule transformers' save_pretrained follows). */
static void assign_shards(struct plan *plan, uint64_t max_shard_bytes)
{
    uint64_t in_shard = 0;
    int shard = 0;
    for (int i = 0; i < plan->count; i++) {
        struct planned_tensor *t = &plan->tensors[i];
        if (in_shard > 0 && in_shard + t->nbytes > max_shard_bytes) {
            shard++;
            in_shard = 0;
        }
        t->shard = shard;
        in_shard += t->nbytes;
        plan->total_bytes += t->nbytes;
    }
    plan->n_shards = shard + 1;
}

static int make_plan(struct plan *plan, const struct al_model_config *c, enum al_dtype dtype,
                     uint64_t max_shard_bytes)
{
    /* Per layer: two norms, q/k/v (+ biases), o, gate, up, down. Then embeddings, norm, lm_head. */
    int per_layer = 9 + (c->attention_qkv_bias ? 3 : 0) + (c->qk_norm ? 2 : 0);
    memset(plan, 0, sizeof *plan);
    plan->tensors = calloc((size_t)c->num_hidden_layers * (size_t)per_layer + 3, sizeof *plan->tensors);
    if (!plan->tensors)
        return al_fail("out of memory planning %d layers", c->num_hidden_layers);
    struct planner p = {plan, dtype};
    plan_tensor(&p, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, INIT_NORMAL);
    for (int layer = 0; layer < c->num_hidden_layers; layer++)
        plan_layer(&p, c, layer);
    plan_tensor(&p, "model.norm.weight", 1, c->hidden_size, 0, INIT_ONES);
    if (!c->tie_word_embeddings)
        plan_tensor(&p, "lm_head.weight", 2, c->vocab_size, c->hidden_size, INIT_NORMAL);
    assign_shards(plan, max_shard_bytes);
    return 0;
}

/* ---- drawing values ---- */

static void store_value(void *data, enum al_dtype dtype, int64_t i, float value)
{
    if (dtype == AL_DTYPE_F32)
        ((float *)data)[i] = value;
    else if (dtype == AL_DTYPE_BF16)
        ((uint16_t *)data)[i] = al_f32_to_bf16(value);
    else
        ((uint16_t *)data)[i] = al_f32_to_f16(value);
}

/* Two independent N(0, 1) values from two uniforms (Box-Muller, both outputs): the
 * transcendental functions dominate drawing billions of weights, and al_rng_normal
 * spends them on one value. 1 - u keeps the logarithm's argument in (0, 1]. */
static void normal_pair(struct al_rng *rng, float *z0, float *z1)
{
    float radius = sqrtf(-2.0f * logf(1.0f - al_rng_uniform(rng)));
    float angle = 6.28318530717958647692f * al_rng_uniform(rng);
    *z0 = radius * cosf(angle);
    *z1 = radius * sinf(angle);
}

static void fill_block(void *data, enum al_dtype dtype, int64_t begin, int64_t end, enum initialiser init,
                       uint64_t seed, float std, int tensor_index, int64_t block)
{
    if (init != INIT_NORMAL) {
        for (int64_t i = begin; i < end; i++)
            store_value(data, dtype, i, init == INIT_ONES ? 1.0f : 0.0f);
        return;
    }
    struct al_rng rng;
    al_rng_seed(&rng, seed, al_hash64(((uint64_t)tensor_index << 40) ^ (uint64_t)block));
    for (int64_t i = begin; i < end; i += 2) {
        float z0, z1;
        normal_pair(&rng, &z0, &z1);
        store_value(data, dtype, i, std * z0);
        if (i + 1 < end)
            store_value(data, dtype, i + 1, std * z1);
    }
}

/* A new buffer holding tensor `index`'s values in dtype. */
static void *draw_tensor(const struct planned_tensor *t, int index, enum al_dtype dtype, uint64_t seed, float std)
{
    int64_t count = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
    void *data = malloc(t->nbytes ? t->nbytes : 1);
    if (!data)
        return al_fail_null("out of memory for tensor %s (%llu bytes)", t->name, (unsigned long long)t->nbytes);
    int64_t n_blocks = (count + BLOCK_ELEMENTS - 1) / BLOCK_ELEMENTS;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < n_blocks; block++) {
        int64_t begin = block * BLOCK_ELEMENTS;
        int64_t end = begin + BLOCK_ELEMENTS < count ? begin + BLOCK_ELEMENTS : count;
        fill_block(data, dtype, begin, end, t->init, seed, std, index, block);
    }
    return data;
}

/* ---- writing ---- */

static char *shard_file_name(const struct plan *plan, int shard)
{
    if (plan->n_shards == 1)
        return al_strdup_printf("%s", SINGLE_FILE);
    return al_strdup_printf("model-%05d-of-%05d.safetensors", shard + 1, plan->n_shards);
}

static int write_shard(const struct plan *plan, int shard, enum al_dtype dtype, uint64_t seed, float std,
                       const char *out_dir)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    if (!writer)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < plan->count; i++) {
        const struct planned_tensor *t = &plan->tensors[i];
        if (t->shard != shard)
            continue;
        void *data = draw_tensor(t, i, dtype, seed, std);
        rc = data ? al_safetensors_writer_add(writer, t->name, dtype, t->ndim, t->shape, data) : -1;
        free(data);
    }
    char *name = shard_file_name(plan, shard);
    char *path = name ? al_path_join(out_dir, name) : NULL;
    if (rc == 0 && !path)
        rc = al_fail("out of memory");
    if (rc == 0)
        rc = al_safetensors_writer_write(writer, path);
    al_safetensors_writer_free(writer);
    free(path);
    free(name);
    return rc;
}

/* model.safetensors.index.json as transformers writes it: total_size in bytes and the
 * shard of every tensor. */
static int write_index(const struct plan *plan, const char *out_dir)
{
    cJSON *index = cJSON_CreateObject();
    cJSON *metadata = index ? cJSON_AddObjectToObject(index, "metadata") : NULL;
    cJSON *map = metadata && add_int(metadata, "total_size", (long long)plan->total_bytes)
                     ? cJSON_AddObjectToObject(index, "weight_map")
                     : NULL;
    bool ok = map != NULL;
    for (int i = 0; ok && i < plan->count; i++) {
        char *shard = shard_file_name(plan, plan->tensors[i].shard);
        ok = shard && cJSON_AddStringToObject(map, plan->tensors[i].name, shard);
        free(shard);
    }
    char *text = ok ? cJSON_Print(index) : NULL;
    char *path = al_path_join(out_dir, INDEX_FILE);
    cJSON_Delete(index);
    int rc = text && path ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(text);
    free(path);
    return rc;
}

static int write_config(const struct al_model_config *config, enum al_dtype dtype, const char *out_dir)
{
    char *text = al_random_model_config_json(config, dtype);
    char *path = al_path_join(out_dir, CONFIG_FILE);
    int rc = text && path ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(text);
    free(path);
    return rc;
}

/* Writing into a folder that already holds a model would mix two models' files. */
static int check_no_model_in(const char *out_dir)
{
    static const char *const model_files[] = {CONFIG_FILE, SINGLE_FILE, INDEX_FILE};
    for (size_t i = 0; i < sizeof model_files / sizeof model_files[0]; i++) {
        char *path = al_path_join(out_dir, model_files[i]);
        if (!path)
            return al_fail("out of memory");
        bool exists = al_file_exists(path);
        free(path);
        if (exists)
            return al_fail("%s already holds %s; choose an empty or new folder", out_dir, model_files[i]);
    }
    return 0;
}

int al_random_model_write(const struct al_model_config *config, enum al_dtype dtype, uint64_t seed,
                          const char *out_dir, uint64_t max_shard_bytes)
{
    return al_random_model_write_std(config, dtype, seed, AL_RANDOM_MODEL_INIT_STD, out_dir, max_shard_bytes);
}

int al_random_model_write_std(const struct al_model_config *config, enum al_dtype dtype, uint64_t seed,
                              float init_std, const char *out_dir, uint64_t max_shard_bytes)
{
    if (!(init_std > 0 && init_std < 100))
        return al_fail("the initialisation std must be positive (and sane), got %g", (double)init_std);
    if (check_config(config, dtype) != 0 || check_no_model_in(out_dir) != 0 || al_mkdirs(out_dir) != 0) {
        al_error_context("writing a random model to %s", out_dir);
        return -1;
    }
    struct plan plan;
    if (make_plan(&plan, config, dtype, max_shard_bytes ? max_shard_bytes : AL_RANDOM_MODEL_DEFAULT_SHARD_BYTES))
        return -1;
    int rc = 0;
    for (int shard = 0; rc == 0 && shard < plan.n_shards; shard++)
        rc = write_shard(&plan, shard, dtype, seed, init_std, out_dir);
    if (rc == 0 && plan.n_shards > 1)
        rc = write_index(&plan, out_dir);
    /* config.json last: a folder that has one is complete. */
    if (rc == 0)
        rc = write_config(config, dtype, out_dir);
    if (rc != 0)
        al_error_context("writing a random model to %s", out_dir);
    free(plan.tensors);
    return rc;
}
