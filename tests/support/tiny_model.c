/* Tiny random model folders for tests (see tiny_model.h). */
#include "tiny_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/rng.h"

#define DEFAULT_MAX_POSITIONS 256
#define DEFAULT_ROPE_THETA 10000.0
#define DEFAULT_RMS_NORM_EPS 1e-5
/* Norm weights near 1 and small biases keep activations in a range where forward and
 * backward comparisons are well conditioned; linears use PyTorch's default bound. */
#define NORM_JITTER 0.1f
#define BIAS_SCALE 0.1f
#define EMBEDDING_SCALE 1.0f
#define NAME_CAPACITY 128

enum role { ROLE_EMBEDDING, ROLE_LINEAR, ROLE_NORM, ROLE_BIAS };

struct tiny_tensor {
    char name[NAME_CAPACITY];
    int ndim;
    int64_t shape[AL_MAX_DIMS];
    enum role role;
    int stream; /* its own random stream, so edits elsewhere leave it unchanged */
};

struct tiny_model_spec tiny_model_default_spec(void)
{
    struct tiny_model_spec spec = {
        .arch = AL_ARCH_LLAMA,
        .hidden_size = 64,
        .intermediate_size = 128,
        .num_layers = 2,
        .num_heads = 4,
        .num_kv_heads = 2,
        .vocab_size = 128,
        .dtype = AL_DTYPE_F32,
        .seed = 1,
    };
    return spec;
}

static int head_dim_of(const struct tiny_model_spec *spec)
{
    return spec->head_dim ? spec->head_dim : spec->hidden_size / spec->num_heads;
}

/* ---- the tensor list ---- */

static void add(struct tiny_tensor *list, int *n, enum role role, int64_t rows, int64_t cols, const char *fmt,
                int layer)
{
    struct tiny_tensor *t = &list[*n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->role = role;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->stream = *n + 1;
    (*n)++;
}

/* The tensors of the spec's model in Hugging Face naming; list holds 4 + 12 per layer. */
static int list_tensors(const struct tiny_model_spec *spec, struct tiny_tensor *list)
{
    int n = 0;
    int64_t hidden = spec->hidden_size, inter = spec->intermediate_size;
    int64_t q = (int64_t)spec->num_heads * head_dim_of(spec), kv = (int64_t)spec->num_kv_heads * head_dim_of(spec);
    add(list, &n, ROLE_EMBEDDING, spec->vocab_size, hidden, "model.embed_tokens.weight", 0);
    for (int i = 0; i < spec->num_layers; i++) {
        add(list, &n, ROLE_NORM, hidden, 0, "model.layers.%d.input_layernorm.weight", i);
        add(list, &n, ROLE_LINEAR, q, hidden, "model.layers.%d.self_attn.q_proj.weight", i);
        add(list, &n, ROLE_LINEAR, kv, hidden, "model.layers.%d.self_attn.k_proj.weight", i);
        add(list, &n, ROLE_LINEAR, kv, hidden, "model.layers.%d.self_attn.v_proj.weight", i);
        if (spec->arch == AL_ARCH_QWEN2) {
            add(list, &n, ROLE_BIAS, q, 0, "model.layers.%d.self_attn.q_proj.bias", i);
            add(list, &n, ROLE_BIAS, kv, 0, "model.layers.%d.self_attn.k_proj.bias", i);
            add(list, &n, ROLE_BIAS, kv, 0, "model.layers.%d.self_attn.v_proj.bias", i);
        }
        add(list, &n, ROLE_LINEAR, hidden, q, "model.layers.%d.self_attn.o_proj.weight", i);
        add(list, &n, ROLE_NORM, hidden, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        add(list, &n, ROLE_LINEAR, inter, hidden, "model.layers.%d.mlp.gate_proj.weight", i);
        add(list, &n, ROLE_LINEAR, inter, hidden, "model.layers.%d.mlp.up_proj.weight", i);
        add(list, &n, ROLE_LINEAR, hidden, inter, "model.layers.%d.mlp.down_proj.weight", i);
    }
    add(list, &n, ROLE_NORM, hidden, 0, "model.norm.weight", 0);
    if (!spec->tied)
        add(list, &n, ROLE_LINEAR, spec->vocab_size, hidden, "lm_head.weight", 0);
    return n;
}

static struct tiny_tensor *alloc_list(const struct tiny_model_spec *spec)
{
    return calloc((size_t)(4 + 12 * spec->num_layers), sizeof(struct tiny_tensor));
}

int tiny_model_tensor_count(const struct tiny_model_spec *spec)
{
    struct tiny_tensor *list = alloc_list(spec);
    int n = list ? list_tensors(spec, list) : -1;
    free(list);
    return n;
}

static int64_t element_count(int ndim, const int64_t *shape)
{
    int64_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    return count;
}

/* count values for tensor t (count may differ from t's shape when a test reshapes it). */
static void draw_values(const struct tiny_model_spec *spec, const struct tiny_tensor *t, float *out, int64_t count)
{
    struct al_rng rng;
    al_rng_seed(&rng, spec->seed, (uint64_t)t->stream);
    float bound = EMBEDDING_SCALE;
    if (t->role == ROLE_LINEAR)
        bound = 1.0f / sqrtf((float)t->shape[1]);
    for (int64_t i = 0; i < count; i++) {
        switch (t->role) {
        case ROLE_NORM:
            out[i] = 1.0f + al_rng_uniform_range(&rng, -NORM_JITTER, NORM_JITTER);
            break;
        case ROLE_BIAS:
            out[i] = al_rng_uniform_range(&rng, -BIAS_SCALE, BIAS_SCALE);
            break;
        default:
            out[i] = al_rng_uniform_range(&rng, -bound, bound);
            break;
        }
    }
}

float *tiny_model_tensor_values(const struct tiny_model_spec *spec, const char *name, int64_t *count)
{
    struct tiny_tensor *list = alloc_list(spec);
    if (!list)
        return NULL;
    int n = list_tensors(spec, list);
    float *values = NULL;
    for (int i = 0; i < n && !values; i++) {
        if (strcmp(list[i].name, name) != 0)
            continue;
        *count = element_count(list[i].ndim, list[i].shape);
        values = malloc(sizeof *values * (size_t)*count);
        if (values)
            draw_values(spec, &list[i], values, *count);
    }
    free(list);
    return values;
}

/* ---- config.json ---- */

char *tiny_model_config_json(const struct tiny_model_spec *spec)
{
    static const char *const model_types[] = {[AL_ARCH_LLAMA] = "llama", [AL_ARCH_QWEN2] = "qwen2",
                                              [AL_ARCH_MISTRAL] = "mistral"};
    static const char *const torch_dtypes[] = {[AL_DTYPE_F32] = "float32", [AL_DTYPE_F16] = "float16",
                                               [AL_DTYPE_BF16] = "bfloat16"};
    cJSON *c = cJSON_CreateObject();
    cJSON *architectures = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(architectures, cJSON_CreateString(al_arch_name(spec->arch)));
    cJSON_AddStringToObject(c, "model_type", model_types[spec->arch]);
    cJSON_AddNumberToObject(c, "hidden_size", spec->hidden_size);
    cJSON_AddNumberToObject(c, "intermediate_size", spec->intermediate_size);
    cJSON_AddNumberToObject(c, "num_hidden_layers", spec->num_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", spec->num_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", spec->num_kv_heads);
    if (spec->head_dim)
        cJSON_AddNumberToObject(c, "head_dim", spec->head_dim);
    cJSON_AddNumberToObject(c, "vocab_size", spec->vocab_size);
    cJSON_AddNumberToObject(c, "max_position_embeddings",
                            spec->max_position_embeddings ? spec->max_position_embeddings : DEFAULT_MAX_POSITIONS);
    cJSON_AddNumberToObject(c, "rms_norm_eps", spec->rms_norm_eps > 0 ? spec->rms_norm_eps : DEFAULT_RMS_NORM_EPS);
    cJSON_AddNumberToObject(c, "rope_theta", spec->rope_theta > 0 ? spec->rope_theta : DEFAULT_ROPE_THETA);
    if (spec->rope_llama3) {
        cJSON *scaling = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(scaling, "rope_type", "llama3");
        cJSON_AddNumberToObject(scaling, "factor", 8.0);
        cJSON_AddNumberToObject(scaling, "low_freq_factor", 1.0);
        cJSON_AddNumberToObject(scaling, "high_freq_factor", 4.0);
        cJSON_AddNumberToObject(scaling, "original_max_position_embeddings", 64);
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    cJSON_AddBoolToObject(c, "tie_word_embeddings", spec->tied);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddStringToObject(c, "torch_dtype", al_dtype_is_float(spec->dtype) ? torch_dtypes[spec->dtype] : "float32");
    cJSON_AddNumberToObject(c, "bos_token_id", 1);
    cJSON_AddNumberToObject(c, "eos_token_id", 2);
    if (spec->arch == AL_ARCH_LLAMA) {
        cJSON_AddBoolToObject(c, "attention_bias", 0);
        cJSON_AddBoolToObject(c, "mlp_bias", 0);
    } else if (spec->arch == AL_ARCH_QWEN2) {
        cJSON_AddBoolToObject(c, "use_sliding_window", 0);
    } else {
        cJSON_AddNullToObject(c, "sliding_window");
    }
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char *path = al_path_join(dir, name);
    int rc = path && text ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(path);
    return rc;
}

/* ---- weights ---- */

static int is(const char *edit_name, const char *name)
{
    return edit_name && strcmp(edit_name, name) == 0;
}

/* Adds one tensor to a writer, with any edit that targets it applied. */
static int add_tensor(struct al_safetensors_writer *writer, const struct tiny_model_spec *spec,
                      const struct tiny_tensor *t, const struct tiny_model_edits *edits, size_t *nbytes)
{
    int ndim = t->ndim;
    const int64_t *shape = t->shape;
    if (edits && is(edits->reshape, t->name)) {
        ndim = edits->reshape_ndim;
        shape = edits->reshape_to;
    }
    enum al_dtype dtype = edits && is(edits->retype, t->name) ? edits->retype_to : spec->dtype;
    int64_t count = element_count(ndim, shape);
    float *values = calloc((size_t)(count ? count : 1), sizeof *values);
    void *stored = calloc((size_t)(count ? count : 1), al_dtype_size(dtype));
    int rc;
    if (!values || !stored) {
        rc = al_fail("out of memory");
    } else {
        if (al_dtype_is_float(dtype)) {
            draw_values(spec, t, values, count);
            al_convert(stored, dtype, values, AL_DTYPE_F32, count);
        }
        rc = al_safetensors_writer_add(writer, t->name, dtype, ndim, shape, stored);
        *nbytes = (size_t)count * al_dtype_size(dtype);
    }
    free(values);
    free(stored);
    return rc;
}

static char *shard_name(int shard, int shards)
{
    return shards > 1 ? al_strdup_printf("model-%05d-of-%05d.safetensors", shard + 1, shards)
                      : strdup("model.safetensors");
}

static int write_index(const char *dir, const char *const *shard_of, const struct tiny_tensor *list, int n,
                       size_t total_size)
{
    cJSON *index = cJSON_CreateObject();
    cJSON *metadata = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(metadata, "total_size", (double)total_size);
    cJSON *weight_map = cJSON_AddObjectToObject(index, "weight_map");
    for (int i = 0; i < n; i++)
        cJSON_AddStringToObject(weight_map, list[i].name, shard_of[i]);
    char *text = cJSON_Print(index);
    cJSON_Delete(index);
    int rc = write_text(dir, "model.safetensors.index.json", text);
    free(text);
    return rc;
}

/* Writes the (possibly edited) tensor list, split into contiguous runs, one per shard. */
static int write_weights(const struct tiny_model_spec *spec, const struct tiny_model_edits *edits, const char *dir,
                         struct tiny_tensor *list, int n)
{
    int shards = spec->shards > 1 ? spec->shards : 1;
    char **names = calloc((size_t)shards, sizeof *names);
    const char **shard_of = calloc((size_t)(n ? n : 1), sizeof *shard_of);
    size_t total_size = 0;
    int rc = names && shard_of ? 0 : al_fail("out of memory");
    for (int s = 0; s < shards && rc == 0; s++) {
        names[s] = shard_name(s, shards);
        struct al_safetensors_writer *writer = al_safetensors_writer_create();
        if (!names[s] || !writer) {
            al_safetensors_writer_free(writer);
            rc = al_fail("out of memory");
            break;
        }
        for (int i = s * n / shards; i < (s + 1) * n / shards && rc == 0; i++) {
            size_t nbytes = 0;
            shard_of[i] = names[s];
            if (!(edits && is(edits->omit, list[i].name)))
                rc = add_tensor(writer, spec, &list[i], edits, &nbytes);
            total_size += nbytes;
        }
        char *path = al_path_join(dir, names[s]);
        if (rc == 0)
            rc = path ? al_safetensors_writer_write(writer, path) : al_fail("out of memory");
        free(path);
        al_safetensors_writer_free(writer);
    }
    if (rc == 0 && shards > 1) {
        /* An omitted tensor must vanish from the index too, as if it had never been saved. */
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (!(edits && is(edits->omit, list[i].name))) {
                shard_of[kept] = shard_of[i];
                list[kept++] = list[i];
            }
        rc = write_index(dir, shard_of, list, kept, total_size);
    }
    for (int s = 0; names && s < shards; s++)
        free(names[s]);
    free(names);
    free(shard_of);
    return rc;
}

int tiny_model_write_edited(const struct tiny_model_spec *spec, const struct tiny_model_edits *edits,
                            const char *dir)
{
    char *config = tiny_model_config_json(spec);
    int rc = write_text(dir, "config.json", config);
    free(config);
    if (rc != 0)
        return -1;
    struct tiny_tensor *list = calloc((size_t)(5 + 12 * spec->num_layers), sizeof *list);
    if (!list)
        return al_fail("out of memory");
    int n = list_tensors(spec, list);
    if (edits && edits->extra) {
        /* An extra tensor is shaped and filled like a norm weight. */
        add(list, &n, ROLE_NORM, spec->hidden_size, 0, "extra", 0);
        snprintf(list[n - 1].name, sizeof list[n - 1].name, "%s", edits->extra);
    }
    rc = write_weights(spec, edits, dir, list, n);
    free(list);
    return rc;
}

int tiny_model_write(const struct tiny_model_spec *spec, const char *dir)
{
    return tiny_model_write_edited(spec, NULL, dir);
}
