/* A Llama GGUF seen as a Hugging Face checkpoint: hyper-parameters from the llama.*
 * metadata, llama.cpp tensor names mapped to Hugging Face's, and the Q/K row permutation
 * of llama.cpp's converter undone. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentlora/error.h"
#include "agentlora/gguf.h"
#include "agentlora/random_model.h"

/* llama.cpp's defaults when a key is absent (llama-model.cpp / llama-hparams). */
#define GGUF_DEFAULT_ROPE_THETA 10000.0
#define GGUF_DEFAULT_RMS_EPS 1e-5

static int get_positive_int(const struct al_gguf *g, const char *key, int *out)
{
    int64_t v;
    if (al_gguf_get_int(g, key, &v) < 0)
        return -1;
    if (v <= 0 || v > INT32_MAX)
        return al_fail("%s: metadata key %s is %" PRId64 " (a positive 32-bit integer is needed)", al_gguf_path(g),
                       key, v);
    *out = (int)v;
    return 0;
}

static int check_architecture(const struct al_gguf *g)
{
    const char *arch;
    if (al_gguf_get_string(g, "general.architecture", &arch) < 0)
        return -1;
    if (strcmp(arch, "llama") != 0)
        return al_fail("%s: general.architecture is \"%s\"; only \"llama\" GGUF files can be read", al_gguf_path(g),
                       arch);
    return 0;
}

/* RoPE scaling: llama.cpp stores Llama 3's frequency scaling as a rope_freqs tensor
 * rather than as the four numbers Hugging Face's config holds, and linear/YaRN scaling
 * have no counterpart in this engine; refuse them rather than run a different model. */
static int check_rope_scaling(const struct al_gguf *g)
{
    const struct al_gguf_value *type = al_gguf_find(g, "llama.rope.scaling.type");
    if (type && (type->type != AL_GGUF_STRING || strcmp(type->str, "none") != 0))
        return al_fail("%s: llama.rope.scaling.type is \"%s\"; RoPE scaling in GGUF files is not supported",
                       al_gguf_path(g), type->type == AL_GGUF_STRING ? type->str : "(not a string)");
    if (al_gguf_find_tensor(g, "rope_freqs.weight"))
        return al_fail("%s: tensor rope_freqs.weight (Llama 3 RoPE frequency scaling) is not supported",
                       al_gguf_path(g));
    return 0;
}

static int read_token_ids(const struct al_gguf *g, struct al_model_config *c)
{
    int64_t bos, eos, eot;
    if (al_gguf_get_int_or(g, "tokenizer.ggml.bos_token_id", -1, &bos) < 0 ||
        al_gguf_get_int_or(g, "tokenizer.ggml.eos_token_id", -1, &eos) < 0 ||
        al_gguf_get_int_or(g, "tokenizer.ggml.eot_token_id", -1, &eot) < 0)
        return -1;
    int64_t ids[] = {bos, eos, eot};
    const char *keys[] = {"bos_token_id", "eos_token_id", "eot_token_id"};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= c->vocab_size)
            return al_fail("%s: tokenizer.ggml.%s %" PRId64 " is outside the vocabulary of %d", al_gguf_path(g),
                           keys[k], ids[k], c->vocab_size);
    c->bos_token_id = (int)bos;
    c->num_eos_token_ids = 0;
    if (eos >= 0)
        c->eos_token_ids[c->num_eos_token_ids++] = (int)eos;
    /* Chat models end a turn with end-of-turn; generation must stop there too. */
    if (eot >= 0 && eot != eos)
        c->eos_token_ids[c->num_eos_token_ids++] = (int)eot;
    return 0;
}

/* The vocabulary is the token list; the embedding must agree with it. */
static int read_vocab_size(const struct al_gguf *g, struct al_model_config *c)
{
    const struct al_gguf_value *tokens;
    if (al_gguf_get_array(g, "tokenizer.ggml.tokens", AL_GGUF_STRING, &tokens) < 0)
        return -1;
    if (tokens->count == 0 || tokens->count > INT32_MAX)
        return al_fail("%s: tokenizer.ggml.tokens holds %" PRIu64 " tokens", al_gguf_path(g), tokens->count);
    c->vocab_size = (int)tokens->count;
    const struct al_gguf_tensor *embed = al_gguf_find_tensor(g, "token_embd.weight");
    if (!embed)
        return al_fail("%s: tensor token_embd.weight is missing", al_gguf_path(g));
    if (embed->ndim != 2 || embed->shape[0] != c->vocab_size || embed->shape[1] != c->hidden_size)
        return al_fail("%s: tensor token_embd.weight has shape [%" PRId64 ", %" PRId64 "], expected [%d, %d] "
                       "(tokens x embedding_length)", al_gguf_path(g), embed->shape[0],
                       embed->ndim > 1 ? embed->shape[1] : 0, c->vocab_size, c->hidden_size);
    return 0;
}

/* Runs the config through the same checks a config.json gets, by writing and re-reading
 * it: one set of rules for both sources. */
static int validate(const struct al_gguf *g, const struct al_model_config *c)
{
    char *text = al_random_model_config_json(c, AL_DTYPE_F32);
    if (!text)
        return al_fail("%s: out of memory", al_gguf_path(g));
    cJSON *json = cJSON_Parse(text);
    free(text);
    if (!json)
        return al_fail("%s: out of memory", al_gguf_path(g));
    struct al_model_config check;
    int rc = al_model_config_parse(&check, json, al_gguf_path(g));
    cJSON_Delete(json);
    return rc;
}

int al_gguf_model_config(const struct al_gguf *g, struct al_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = AL_ARCH_LLAMA;
    snprintf(c->architecture, sizeof c->architecture, "%s", "LlamaForCausalLM");
    c->torch_dtype = AL_DTYPE_F32;
    if (check_architecture(g) < 0 || check_rope_scaling(g) < 0)
        return -1;
    int64_t kv_heads, head_dim;
    double eps, theta;
    if (get_positive_int(g, "llama.context_length", &c->max_position_embeddings) < 0 ||
        get_positive_int(g, "llama.embedding_length", &c->hidden_size) < 0 ||
        get_positive_int(g, "llama.block_count", &c->num_hidden_layers) < 0 ||
        get_positive_int(g, "llama.feed_forward_length", &c->intermediate_size) < 0 ||
        get_positive_int(g, "llama.attention.head_count", &c->num_attention_heads) < 0 ||
        al_gguf_get_int_or(g, "llama.attention.head_count_kv", c->num_attention_heads, &kv_heads) < 0 ||
        al_gguf_get_int_or(g, "llama.attention.key_length", c->hidden_size / c->num_attention_heads, &head_dim) < 0 ||
        al_gguf_get_float_or(g, "llama.attention.layer_norm_rms_epsilon", GGUF_DEFAULT_RMS_EPS, &eps) < 0 ||
        al_gguf_get_float_or(g, "llama.rope.freq_base", GGUF_DEFAULT_ROPE_THETA, &theta) < 0)
        return -1;
    if (kv_heads <= 0 || kv_heads > c->num_attention_heads || c->num_attention_heads % kv_heads != 0)
        return al_fail("%s: llama.attention.head_count_kv %" PRId64 " does not divide head_count %d", al_gguf_path(g),
                       kv_heads, c->num_attention_heads);
    if (head_dim <= 0 || head_dim > INT32_MAX)
        return al_fail("%s: llama.attention.key_length is %" PRId64, al_gguf_path(g), head_dim);
    int64_t rotary_dims;
    if (al_gguf_get_int_or(g, "llama.rope.dimension_count", head_dim, &rotary_dims) < 0)
        return -1;
    if (rotary_dims != head_dim)
        return al_fail("%s: llama.rope.dimension_count %" PRId64 " differs from the head size %" PRId64
                       " (partial rotary embeddings are not supported)", al_gguf_path(g), rotary_dims, head_dim);
    c->num_key_value_heads = (int)kv_heads;
    c->head_dim = (int)head_dim;
    c->rms_norm_eps = (float)eps;
    c->rope_theta = theta;
    c->tie_word_embeddings = al_gguf_find_tensor(g, "output.weight") == NULL;
    if (read_vocab_size(g, c) < 0 || read_token_ids(g, c) < 0)
        return -1;
    return validate(g, c);
}

/* ---- tensor names ---- */

struct name_pair {
    const char *gguf;
    const char *hf;
};

static const struct name_pair GLOBAL_NAMES[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

static const struct name_pair LAYER_NAMES[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

/* "blk.<n>.<suffix>": the layer and the suffix, or -1. */
static int split_layer_name(const char *name, const char **suffix)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end;
    long layer = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || layer < 0 || layer > INT32_MAX)
        return -1;
    *suffix = end + 1;
    return (int)layer;
}

static int name_written(int length, size_t size, const char *gguf_name)
{
    if (length < 0 || (size_t)length >= size)
        return al_fail("tensor %s: its Hugging Face name does not fit in %zu bytes", gguf_name, size);
    return 0;
}

int al_gguf_hf_tensor_name(const char *gguf_name, char *out, size_t size)
{
    for (size_t k = 0; k < sizeof GLOBAL_NAMES / sizeof GLOBAL_NAMES[0]; k++)
        if (strcmp(gguf_name, GLOBAL_NAMES[k].gguf) == 0)
            return name_written(snprintf(out, size, "%s", GLOBAL_NAMES[k].hf), size, gguf_name);
    const char *suffix;
    int layer = split_layer_name(gguf_name, &suffix);
    if (layer >= 0)
        for (size_t k = 0; k < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; k++)
            if (strcmp(suffix, LAYER_NAMES[k].gguf) == 0)
                return name_written(snprintf(out, size, "model.layers.%d.%s", layer, LAYER_NAMES[k].hf), size,
                                    gguf_name);
    return al_fail("tensor %s is not part of a Llama model this engine knows", gguf_name);
}

/* ---- the Q/K permutation ---- */

/* llama.cpp's converter reorders each head's rows so that the two halves Hugging Face's
 * rotate_half pairs (i and i + head_dim/2) sit next to each other: Hugging Face row
 * j * head_dim/2 + i of a head is stored as row 2i + j. This reads them back. */
static void unpermute_rows(const float *stored, float *out, int heads, int head_dim, int64_t cols)
{
    int half = head_dim / 2;
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                const float *from = stored + ((int64_t)h * head_dim + 2 * i + j) * cols;
                float *to = out + ((int64_t)h * head_dim + j * half + i) * cols;
                memcpy(to, from, (size_t)cols * sizeof *to);
            }
}

/* The head count a tensor's rows are permuted over, or 0 when they are not permuted. */
static int permuted_heads(const char *name, const struct al_model_config *c)
{
    const char *suffix;
    if (split_layer_name(name, &suffix) < 0)
        return 0;
    if (strcmp(suffix, "attn_q.weight") == 0)
        return c->num_attention_heads;
    if (strcmp(suffix, "attn_k.weight") == 0)
        return c->num_key_value_heads;
    return 0;
}

int al_gguf_load_hf_tensor(const struct al_gguf_tensor *t, const struct al_model_config *c, float *out)
{
    int heads = permuted_heads(t->name, c);
    if (heads == 0)
        return al_gguf_dequantize(t, out);
    if (t->ndim != 2 || t->shape[0] != (int64_t)heads * c->head_dim || c->head_dim % 2 != 0)
        return al_fail("%s: tensor %s has %" PRId64 " rows, expected %d heads x %d", t->file, t->name, t->shape[0],
                       heads, c->head_dim);
    float *stored = malloc((size_t)t->count * sizeof *stored);
    if (!stored)
        return al_fail("%s: tensor %s: out of memory", t->file, t->name);
    int rc = al_gguf_dequantize(t, stored);
    if (rc == 0)
        unpermute_rows(stored, out, heads, c->head_dim, t->shape[1]);
    free(stored);
    return rc;
}
