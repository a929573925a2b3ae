/* config.json: a Hugging Face model's hyper-parameters, checked field by field.
 *
 * Two generations of the format exist: transformers 4.x writes rope_theta and
 * rope_scaling at the top level; transformers 5 folds both into rope_parameters.
 * Both are read. Absent optional fields take the defaults transformers itself uses. */
#include "agentlora/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"

#define CONFIG_FILE "config.json"

/* transformers' defaults for fields a config.json may leave out. */
#define DEFAULT_RMS_NORM_EPS 1e-6
#define DEFAULT_ROPE_THETA 10000.0
#define DEFAULT_HIDDEN_ACT "silu"
#define QWEN3_DEFAULT_HEAD_DIM 128
/* MistralConfig, Qwen2Config and Qwen3Config all default sliding_window to 4096 (used
 * only where a window is in force), and Qwen2/Qwen3 max_window_layers to 28. */
#define DEFAULT_SLIDING_WINDOW 4096
#define DEFAULT_MAX_WINDOW_LAYERS 28

/* No real model comes near these; a larger value is a corrupt file, and the limit keeps
 * every product of two sizes far from overflowing int64. */
#define MAX_MODEL_DIMENSION (1 << 24)
#define MAX_LAYERS AL_MAX_LAYERS
/* How much of an offending value an error message quotes. */
#define QUOTED_VALUE_CHARS 60

static const struct {
    const char *architecture;
    const char *model_type; /* used when "architectures" is absent */
    enum al_arch arch;
} known_architectures[] = {
    {"LlamaForCausalLM", "llama", AL_ARCH_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", AL_ARCH_QWEN2},
    {"MistralForCausalLM", "mistral", AL_ARCH_MISTRAL},
    {"Qwen3ForCausalLM", "qwen3", AL_ARCH_QWEN3},
};
#define N_KNOWN_ARCHITECTURES (int)(sizeof known_architectures / sizeof known_architectures[0])

const char *al_arch_name(enum al_arch arch)
{
    for (int i = 0; i < N_KNOWN_ARCHITECTURES; i++)
        if (known_architectures[i].arch == arch)
            return known_architectures[i].architecture;
    return "unknown";
}

/* ---- reading fields, with errors that quote the value ---- */

struct config_reader {
    const cJSON *json;
    const char *source;
};

/* The value as JSON text, shortened for messages. */
static void quote_value(const cJSON *item, char *out, size_t size)
{
    char *text = cJSON_PrintUnformatted(item);
    if (!text) {
        snprintf(out, size, "?");
        return;
    }
    if (strlen(text) > QUOTED_VALUE_CHARS)
        snprintf(out, size, "%.*s...", QUOTED_VALUE_CHARS, text);
    else
        snprintf(out, size, "%s", text);
    free(text);
}

static int fail_value(const struct config_reader *r, const char *field, const cJSON *item, const char *expected)
{
    char value[QUOTED_VALUE_CHARS + 8];
    quote_value(item, value, sizeof value);
    return al_fail("%s: field %s must be %s, got %s", r->source, field, expected, value);
}

static const cJSON *field(const cJSON *object, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(object, name);
}

static int is_absent(const cJSON *item)
{
    return !item || cJSON_IsNull(item);
}

static int item_as_int(const cJSON *item, long long min, long long max, int *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)min || v > (double)max)
        return -1;
    *out = (int)v;
    return 0;
}

/* An integer in [min, max]; a missing field is an error when required, else default_value. */
static int read_int(const struct config_reader *r, const cJSON *object, const char *name, const char *label,
                    int required, int default_value, long long min, long long max, int *out)
{
    const cJSON *item = field(object, name);
    if (is_absent(item)) {
        if (required)
            return al_fail("%s: field %s is missing", r->source, label);
        *out = default_value;
        return 0;
    }
    if (item_as_int(item, min, max, out) == 0)
        return 0;
    char expected[96];
    snprintf(expected, sizeof expected, "an integer from %lld to %lld", min, max);
    return fail_value(r, label, item, expected);
}

static int read_size(const struct config_reader *r, const char *name, int max, int *out)
{
    return read_int(r, r->json, name, name, 1, 0, 1, max, out);
}

/* A positive number; a missing field is an error when required, else default_value. */
static int read_positive(const struct config_reader *r, const cJSON *object, const char *name, const char *label,
                         int required, double default_value, double *out)
{
    const cJSON *item = field(object, name);
    if (is_absent(item)) {
        if (required)
            return al_fail("%s: field %s is missing", r->source, label);
        *out = default_value;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble <= 0)
        return fail_value(r, label, item, "a positive number");
    *out = item->valuedouble;
    return 0;
}

static int read_bool(const struct config_reader *r, const char *name, int default_value, bool *out)
{
    const cJSON *item = field(r->json, name);
    if (is_absent(item)) {
        *out = default_value;
        return 0;
    }
    if (!cJSON_IsBool(item))
        return fail_value(r, name, item, "true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

/* ---- the fields ---- */

/* Index into known_architectures of a name, matched as an architecture or a model_type. */
static int find_architecture(const char *name, int by_model_type)
{
    for (int i = 0; i < N_KNOWN_ARCHITECTURES; i++) {
        const char *known = by_model_type ? known_architectures[i].model_type : known_architectures[i].architecture;
        if (strcmp(name, known) == 0)
            return i;
    }
    return -1;
}

static int read_architecture(struct al_model_config *c, const struct config_reader *r)
{
    const cJSON *list = field(r->json, "architectures");
    const cJSON *model_type = field(r->json, "model_type");
    const char *label, *name;
    int found;
    if (!is_absent(list)) {
        const cJSON *first = cJSON_GetArrayItem(list, 0);
        if (!cJSON_IsArray(list) || !cJSON_IsString(first))
            return fail_value(r, "architectures", list, "a list of architecture names");
        label = "architectures";
        name = first->valuestring;
        found = find_architecture(name, 0);
    } else if (cJSON_IsString(model_type)) {
        label = "model_type";
        name = model_type->valuestring;
        found = find_architecture(name, 1);
    } else {
        return al_fail("%s: field architectures is missing (and no model_type names one)", r->source);
    }
    if (found < 0)
        return al_fail("%s: field %s has unsupported value \"%s\" (supported: LlamaForCausalLM, "
                       "Qwen2ForCausalLM, MistralForCausalLM, Qwen3ForCausalLM)",
                       r->source, label, name);
    c->arch = known_architectures[found].arch;
    snprintf(c->architecture, sizeof c->architecture, "%s", known_architectures[found].architecture);
    return 0;
}

static int read_sizes(struct al_model_config *c, const struct config_reader *r)
{
    if (read_size(r, "hidden_size", MAX_MODEL_DIMENSION, &c->hidden_size) != 0 ||
        read_size(r, "intermediate_size", MAX_MODEL_DIMENSION, &c->intermediate_size) != 0 ||
        read_size(r, "num_hidden_layers", MAX_LAYERS, &c->num_hidden_layers) != 0 ||
        read_size(r, "num_attention_heads", MAX_MODEL_DIMENSION, &c->num_attention_heads) != 0 ||
        read_size(r, "vocab_size", MAX_MODEL_DIMENSION, &c->vocab_size) != 0)
        return -1;
    if (read_int(r, r->json, "num_key_value_heads", "num_key_value_heads", 0, c->num_attention_heads, 1,
                 MAX_MODEL_DIMENSION, &c->num_key_value_heads) != 0)
        return -1;
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return al_fail("%s: field num_key_value_heads is %d, which does not divide num_attention_heads (%d)",
                       r->source, c->num_key_value_heads, c->num_attention_heads);
    /* Qwen2 and Mistral Nemo set head_dim independently of hidden_size / heads; Qwen3's
     * default (transformers' Qwen3Config) is 128 whatever the other sizes. */
    bool qwen3 = c->arch == AL_ARCH_QWEN3;
    if (!qwen3 && is_absent(field(r->json, "head_dim")) && c->hidden_size % c->num_attention_heads != 0)
        return al_fail("%s: field hidden_size is %d, which num_attention_heads (%d) does not divide, and no "
                       "head_dim is given",
                       r->source, c->hidden_size, c->num_attention_heads);
    if (read_int(r, r->json, "head_dim", "head_dim", 0, qwen3 ? QWEN3_DEFAULT_HEAD_DIM : c->hidden_size / c->num_attention_heads,
                 1, MAX_MODEL_DIMENSION, &c->head_dim) != 0)
        return -1;
    /* Rotary embeddings rotate pairs of channels. */
    if (c->head_dim % 2 != 0)
        return al_fail("%s: field head_dim is %d; rotary embeddings need an even head_dim", r->source,
                       c->head_dim);
    /* transformers' defaults differ by architecture; a real config always states it. */
    int default_positions = c->arch == AL_ARCH_QWEN2 || qwen3 ? 32768 : c->arch == AL_ARCH_MISTRAL ? 131072 : 2048;
    return read_int(r, r->json, "max_position_embeddings", "max_position_embeddings", 0, default_positions, 1,
                    INT32_MAX, &c->max_position_embeddings);
}

static int read_llama3_scaling(struct al_model_config *c, const struct config_reader *r, const cJSON *scaling,
                               const char *prefix)
{
    char label[96];
    double factor, low, high;
    snprintf(label, sizeof label, "%s.factor", prefix);
    if (read_positive(r, scaling, "factor", label, 1, 0, &factor) != 0)
        return -1;
    snprintf(label, sizeof label, "%s.low_freq_factor", prefix);
    if (read_positive(r, scaling, "low_freq_factor", label, 1, 0, &low) != 0)
        return -1;
    snprintf(label, sizeof label, "%s.high_freq_factor", prefix);
    if (read_positive(r, scaling, "high_freq_factor", label, 1, 0, &high) != 0)
        return -1;
    /* The llama3 rule interpolates between the two wavelength bounds; they must differ. */
    if (high <= low)
        return al_fail("%s: field %s.high_freq_factor (%g) must exceed low_freq_factor (%g)", r->source, prefix,
                       high, low);
    snprintf(label, sizeof label, "%s.original_max_position_embeddings", prefix);
    if (read_int(r, scaling, "original_max_position_embeddings", label, 1, 0, 1, INT32_MAX,
                 &c->rope_original_max_position) != 0)
        return -1;
    c->rope_llama3 = true;
    c->rope_factor = (float)factor;
    c->rope_low_freq_factor = (float)low;
    c->rope_high_freq_factor = (float)high;
    return 0;
}

/* rope_scaling (4.x) or rope_parameters (5.x): "default" or absent means plain RoPE. */
static int read_rope_scaling(struct al_model_config *c, const struct config_reader *r, const cJSON *scaling,
                             const char *prefix)
{
    if (is_absent(scaling))
        return 0;
    char label[96];
    if (!cJSON_IsObject(scaling))
        return fail_value(r, prefix, scaling, "null or an object");
    const cJSON *type = field(scaling, "rope_type");
    if (is_absent(type))
        type = field(scaling, "type");
    snprintf(label, sizeof label, "%s.rope_type", prefix);
    if (is_absent(type))
        return al_fail("%s: field %s is missing", r->source, label);
    if (!cJSON_IsString(type))
        return fail_value(r, label, type, "a string");
    if (strcmp(type->valuestring, "default") == 0)
        return 0;
    if (strcmp(type->valuestring, "llama3") == 0)
        return read_llama3_scaling(c, r, scaling, prefix);
    return al_fail("%s: field %s has unsupported value \"%s\" (supported: llama3, or none)", r->source, label,
                   type->valuestring);
}

static int read_rope(struct al_model_config *c, const struct config_reader *r)
{
    double theta;
    if (read_positive(r, r->json, "rope_theta", "rope_theta", 0, DEFAULT_ROPE_THETA, &theta) != 0)
        return -1;
    const cJSON *parameters = field(r->json, "rope_parameters");
    if (!is_absent(parameters)) {
        if (!cJSON_IsObject(parameters))
            return fail_value(r, "rope_parameters", parameters, "an object");
        if (read_positive(r, parameters, "rope_theta", "rope_parameters.rope_theta", 0, theta, &theta) != 0 ||
            read_rope_scaling(c, r, parameters, "rope_parameters") != 0)
            return -1;
    } else if (read_rope_scaling(c, r, field(r->json, "rope_scaling"), "rope_scaling") != 0) {
        return -1;
    }
    c->rope_theta = theta;
    double eps;
    if (read_positive(r, r->json, "rms_norm_eps", "rms_norm_eps", 0, DEFAULT_RMS_NORM_EPS, &eps) != 0)
        return -1;
    c->rms_norm_eps = (float)eps;
    return 0;
}

static int read_token_ids(struct al_model_config *c, const struct config_reader *r)
{
    if (read_int(r, r->json, "bos_token_id", "bos_token_id", 0, -1, 0, INT32_MAX, &c->bos_token_id) != 0)
        return -1;
    const cJSON *eos = field(r->json, "eos_token_id");
    c->num_eos_token_ids = 0;
    if (is_absent(eos))
        return 0;
    if (cJSON_IsNumber(eos)) {
        if (item_as_int(eos, 0, INT32_MAX, &c->eos_token_ids[0]) != 0)
            return fail_value(r, "eos_token_id", eos, "a token id or a list of token ids");
        c->num_eos_token_ids = 1;
        return 0;
    }
    if (!cJSON_IsArray(eos))
        return fail_value(r, "eos_token_id", eos, "a token id or a list of token ids");
    if (cJSON_GetArraySize(eos) > AL_MAX_EOS_IDS)
        return fail_value(r, "eos_token_id", eos, "a list of at most 8 token ids");
    const cJSON *id;
    cJSON_ArrayForEach(id, eos) {
        if (item_as_int(id, 0, INT32_MAX, &c->eos_token_ids[c->num_eos_token_ids]) != 0)
            return fail_value(r, "eos_token_id", eos, "a token id or a list of token ids");
        c->num_eos_token_ids++;
    }
    return 0;
}

static int read_dtype(struct al_model_config *c, const struct config_reader *r)
{
    static const struct {
        const char *name;
        enum al_dtype dtype;
    } torch_dtypes[] = {{"float32", AL_DTYPE_F32}, {"float16", AL_DTYPE_F16}, {"bfloat16", AL_DTYPE_BF16}};
    /* transformers 4.x writes torch_dtype, 5.x writes dtype. */
    const char *name = "torch_dtype";
    const cJSON *item = field(r->json, name);
    if (is_absent(item)) {
        name = "dtype";
        item = field(r->json, name);
    }
    c->torch_dtype = AL_DTYPE_F32;
    if (is_absent(item))
        return 0;
    for (size_t i = 0; cJSON_IsString(item) && i < sizeof torch_dtypes / sizeof torch_dtypes[0]; i++) {
        if (strcmp(item->valuestring, torch_dtypes[i].name) == 0) {
            c->torch_dtype = torch_dtypes[i].dtype;
            return 0;
        }
    }
    return fail_value(r, name, item, "\"float32\", \"float16\" or \"bfloat16\"");
}

/* The window size, when the architecture puts one in force: Mistral whenever
 * sliding_window is not null, Qwen2/Qwen3 only with use_sliding_window (transformers sets
 * their sliding_window to None otherwise). Llama has no window (transformers ignores the
 * fields). An absent sliding_window takes transformers' default. */
static int read_window_size(struct al_model_config *c, const struct config_reader *r)
{
    bool in_force = c->arch == AL_ARCH_MISTRAL;
    if ((c->arch == AL_ARCH_QWEN2 || c->arch == AL_ARCH_QWEN3) &&
        read_bool(r, "use_sliding_window", 0, &in_force) != 0)
        return -1;
    if (!in_force)
        return 0;
    const cJSON *item = field(r->json, "sliding_window");
    if (item && cJSON_IsNull(item))
        return 0;
    return read_int(r, r->json, "sliding_window", "sliding_window", 0, DEFAULT_SLIDING_WINDOW, 1, INT32_MAX,
                    &c->sliding_window);
}

/* layer_types (transformers 5): one "full_attention" or "sliding_attention" per layer. A
 * sliding layer needs a window in force, or transformers itself fails to build its mask. */
static int read_layer_types(struct al_model_config *c, const struct config_reader *r, const cJSON *types)
{
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->num_hidden_layers) {
        char expected[96];
        snprintf(expected, sizeof expected, "a list of %d layer types (one per layer)", c->num_hidden_layers);
        return fail_value(r, "layer_types", types, expected);
    }
    for (int layer = 0; layer < c->num_hidden_layers; layer++) {
        const cJSON *type = cJSON_GetArrayItem(types, layer);
        bool full = cJSON_IsString(type) && strcmp(type->valuestring, "full_attention") == 0;
        bool sliding = cJSON_IsString(type) && strcmp(type->valuestring, "sliding_attention") == 0;
        if (!full && !sliding) {
            char label[48];
            snprintf(label, sizeof label, "layer_types[%d]", layer);
            return fail_value(r, label, type, "\"full_attention\" or \"sliding_attention\" (other attention kinds "
                                              "are not supported)");
        }
        if (sliding && c->sliding_window == 0)
            return al_fail("%s: field layer_types[%d] is \"sliding_attention\" but no sliding window is in force "
                           "(use_sliding_window is false or sliding_window is null)",
                           r->source, layer);
        c->layer_sliding[layer] = sliding;
    }
    return 0;
}

/* Which layers attend within the window, as transformers decides it: every layer for
 * Mistral (MistralModel builds one sliding mask for all layers and ignores layer_types);
 * for Qwen2/Qwen3 layer_types when given, else layers from max_window_layers on. */
static int read_sliding_window(struct al_model_config *c, const struct config_reader *r)
{
    c->sliding_window = 0;
    memset(c->layer_sliding, 0, sizeof c->layer_sliding);
    if (read_window_size(c, r) != 0)
        return -1;
    if (c->arch == AL_ARCH_LLAMA)
        return 0;
    if (c->arch == AL_ARCH_MISTRAL) {
        if (!is_absent(field(r->json, "layer_types")))
            al_log_warn("%s: MistralForCausalLM ignores layer_types (as transformers does): %s", r->source,
                        c->sliding_window ? "every layer attends within sliding_window" : "no layer is windowed");
        for (int layer = 0; layer < c->num_hidden_layers; layer++)
            c->layer_sliding[layer] = c->sliding_window > 0;
        return 0;
    }
    const cJSON *types = field(r->json, "layer_types");
    if (!is_absent(types))
        return read_layer_types(c, r, types);
    int max_window_layers;
    if (read_int(r, r->json, "max_window_layers", "max_window_layers", 0, DEFAULT_MAX_WINDOW_LAYERS, 0, INT32_MAX,
                 &max_window_layers) != 0)
        return -1;
    for (int layer = 0; layer < c->num_hidden_layers; layer++)
        c->layer_sliding[layer] = c->sliding_window > 0 && layer >= max_window_layers;
    return 0;
}

int al_model_config_layer_window(const struct al_model_config *config, int layer)
{
    if (layer < 0 || layer >= config->num_hidden_layers || layer >= AL_MAX_LAYERS)
        return 0;
    return config->layer_sliding[layer] ? config->sliding_window : 0;
}

/* The engine implements SiLU-gated MLPs, and biases only where Qwen2 has them. */
static int check_supported_features(struct al_model_config *c, const struct config_reader *r)
{
    const cJSON *act = field(r->json, "hidden_act");
    if (!is_absent(act) && !(cJSON_IsString(act) && strcmp(act->valuestring, DEFAULT_HIDDEN_ACT) == 0)) {
        char value[QUOTED_VALUE_CHARS + 8];
        quote_value(act, value, sizeof value);
        return al_fail("%s: field hidden_act has unsupported value %s (only \"silu\" is supported)", r->source,
                       value);
    }
    c->attention_qkv_bias = c->arch == AL_ARCH_QWEN2;
    c->qk_norm = c->arch == AL_ARCH_QWEN3;
    if (c->arch != AL_ARCH_LLAMA && c->arch != AL_ARCH_QWEN3)
        return 0;
    /* Qwen3's attention_bias would put biases on q, k, v and o; only Llama has mlp_bias. */
    static const char *const bias_fields[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < (c->arch == AL_ARCH_LLAMA ? 2 : 1); i++) {
        bool has_bias;
        if (read_bool(r, bias_fields[i], 0, &has_bias) != 0)
            return -1;
        if (has_bias)
            return al_fail("%s: field %s is true: biases are not supported for %s", r->source, bias_fields[i],
                           c->architecture);
    }
    return 0;
}

int al_model_config_parse(struct al_model_config *config, const struct cJSON *json, const char *source)
{
    memset(config, 0, sizeof *config);
    struct config_reader r = {json, source};
    if (!cJSON_IsObject(json))
        return al_fail("%s: must hold a JSON object", source);
    if (read_architecture(config, &r) != 0 || read_sizes(config, &r) != 0 || read_rope(config, &r) != 0 ||
        read_bool(&r, "tie_word_embeddings", 0, &config->tie_word_embeddings) != 0 ||
        read_token_ids(config, &r) != 0 || read_dtype(config, &r) != 0 || read_sliding_window(config, &r) != 0 ||
        check_supported_features(config, &r) != 0)
        return -1;
    return 0;
}

int al_model_config_load(struct al_model_config *config, const char *model_dir)
{
    char *path = al_path_join(model_dir, CONFIG_FILE);
    if (!path)
        return al_fail("out of memory");
    int rc = -1;
    if (!al_file_exists(path)) {
        al_fail("%s: missing (a model folder needs config.json)", path);
    } else {
        cJSON *json = al_json_load_file(path);
        if (json)
            rc = al_model_config_parse(config, json, path);
        cJSON_Delete(json);
    }
    free(path);
    return rc;
}

int64_t al_model_config_parameter_count(const struct al_model_config *c)
{
    int64_t hidden = c->hidden_size;
    int64_t q_width = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kv_width = (int64_t)c->num_key_value_heads * c->head_dim;
    int64_t attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden;
    if (c->attention_qkv_bias)
        attention += q_width + 2 * kv_width;
    int64_t mlp = 3 * hidden * c->intermediate_size;
    int64_t norms = 2 * hidden + (c->qk_norm ? 2 * (int64_t)c->head_dim : 0);
    int64_t embeddings = (int64_t)c->vocab_size * hidden;
    int64_t total = embeddings + c->num_hidden_layers * (attention + mlp + norms) + hidden;
    if (!c->tie_word_embeddings)
        total += embeddings;
    return total;
}
