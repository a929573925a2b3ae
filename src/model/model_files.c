/* A model folder, validated as a whole: every tensor config.json implies must be there
 * with the right shape and a float dtype, and nothing else may be. One table describes a
 * layer's tensors; both the "expected" and the "unexpected" checks read it, so they can
 * never disagree. */
#include "agentlora/model_files.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"

#define LAYER_PREFIX "model.layers."
/* A buffer older checkpoints saved with each layer; it is recomputed, never loaded. */
#define ROTARY_INV_FREQ_SUFFIX "self_attn.rotary_emb.inv_freq"
#define TENSOR_NAME_CAPACITY 160

/* The extents a config implies, by role. */
enum extent { EXTENT_HIDDEN, EXTENT_Q, EXTENT_KV, EXTENT_INTERMEDIATE, EXTENT_VOCAB, EXTENT_HEAD_DIM };

/* Which architectures have a tensor. */
enum presence { EVERY_ARCHITECTURE, WITH_QKV_BIAS, WITH_QK_NORM };

struct tensor_kind {
    const char *suffix;
    size_t slot;      /* offsetof the pointer in struct al_layer_tensors */
    int ndim;
    enum extent rows, cols;
    enum presence presence;
};

#define SLOT(member) offsetof(struct al_layer_tensors, member)

static const struct tensor_kind layer_kinds[] = {
    {"input_layernorm.weight", SLOT(input_layernorm), 1, EXTENT_HIDDEN, 0, EVERY_ARCHITECTURE},
    {"self_attn.q_proj.weight", SLOT(q_proj), 2, EXTENT_Q, EXTENT_HIDDEN, EVERY_ARCHITECTURE},
    {"self_attn.k_proj.weight", SLOT(k_proj), 2, EXTENT_KV, EXTENT_HIDDEN, EVERY_ARCHITECTURE},
    {"self_attn.v_proj.weight", SLOT(v_proj), 2, EXTENT_KV, EXTENT_HIDDEN, EVERY_ARCHITECTURE},
    {"self_attn.q_proj.bias", SLOT(q_bias), 1, EXTENT_Q, 0, WITH_QKV_BIAS},
    {"self_attn.k_proj.bias", SLOT(k_bias), 1, EXTENT_KV, 0, WITH_QKV_BIAS},
    {"self_attn.v_proj.bias", SLOT(v_bias), 1, EXTENT_KV, 0, WITH_QKV_BIAS},
    {"self_attn.q_norm.weight", SLOT(q_norm), 1, EXTENT_HEAD_DIM, 0, WITH_QK_NORM},
    {"self_attn.k_norm.weight", SLOT(k_norm), 1, EXTENT_HEAD_DIM, 0, WITH_QK_NORM},
    {"self_attn.o_proj.weight", SLOT(o_proj), 2, EXTENT_HIDDEN, EXTENT_Q, EVERY_ARCHITECTURE},
    {"post_attention_layernorm.weight", SLOT(post_attention_layernorm), 1, EXTENT_HIDDEN, 0, EVERY_ARCHITECTURE},
    {"mlp.gate_proj.weight", SLOT(gate_proj), 2, EXTENT_INTERMEDIATE, EXTENT_HIDDEN, EVERY_ARCHITECTURE},
    {"mlp.up_proj.weight", SLOT(up_proj), 2, EXTENT_INTERMEDIATE, EXTENT_HIDDEN, EVERY_ARCHITECTURE},
    {"mlp.down_proj.weight", SLOT(down_proj), 2, EXTENT_HIDDEN, EXTENT_INTERMEDIATE, EVERY_ARCHITECTURE},
};
#define N_LAYER_KINDS (int)(sizeof layer_kinds / sizeof layer_kinds[0])

#define EMBED_TOKENS "model.embed_tokens.weight"
#define FINAL_NORM "model.norm.weight"
#define LM_HEAD "lm_head.weight"

static int64_t extent_of(const struct al_model_config *c, enum extent e)
{
    switch (e) {
    case EXTENT_HIDDEN:
        return c->hidden_size;
    case EXTENT_Q:
        return (int64_t)c->num_attention_heads * c->head_dim;
    case EXTENT_KV:
        return (int64_t)c->num_key_value_heads * c->head_dim;
    case EXTENT_INTERMEDIATE:
        return c->intermediate_size;
    case EXTENT_VOCAB:
        return c->vocab_size;
    case EXTENT_HEAD_DIM:
        return c->head_dim;
    }
    return 0;
}

static bool kind_applies(const struct tensor_kind *kind, const struct al_model_config *c)
{
    switch (kind->presence) {
    case WITH_QKV_BIAS:
        return c->attention_qkv_bias;
    case WITH_QK_NORM:
        return c->qk_norm;
    case EVERY_ARCHITECTURE:
        break;
    }
    return true;
}

/* ---- expected tensors ---- */

struct checker {
    const struct al_model_config *config;
    const struct al_tensor_store *store;
    const char *store_source;                /* names the store when a tensor is missing */
    const struct al_tensor_view *first_seen; /* the tensor whose dtype the others must share */
};

static void format_shape(char *out, size_t size, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < size)
        snprintf(out + used, size - used, "]");
}

static int check_dtype(struct checker *ck, const struct al_tensor_view *t)
{
    if (!al_dtype_is_float(t->dtype))
        return al_fail("%s: tensor %s has dtype %s; model weights must be F32, F16 or BF16", t->file, t->name,
                       al_dtype_name(t->dtype));
    if (!ck->first_seen) {
        ck->first_seen = t;
        return 0;
    }
    if (t->dtype != ck->first_seen->dtype)
        return al_fail("%s: tensor %s has dtype %s, but %s has %s; all weights must share one dtype", t->file,
                       t->name, al_dtype_name(t->dtype), ck->first_seen->name,
                       al_dtype_name(ck->first_seen->dtype));
    return 0;
}

static int check_shape_implied_by(const struct al_tensor_view *t, int ndim, const int64_t *expected,
                                  const char *implied_by)
{
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == expected[d];
    if (same)
        return 0;
    char found_text[128], expected_text[128];
    format_shape(found_text, sizeof found_text, t->ndim, t->shape);
    format_shape(expected_text, sizeof expected_text, ndim, expected);
    return al_fail("%s: tensor %s has shape %s, %s implies %s", t->file, t->name, found_text, implied_by,
                   expected_text);
}

static int check_shape(const struct al_tensor_view *t, int ndim, const int64_t *expected)
{
    return check_shape_implied_by(t, ndim, expected, "config.json");
}

/* Finds a required tensor and checks its dtype and shape. */
static const struct al_tensor_view *expect(struct checker *ck, const char *name, int ndim, enum extent rows,
                                           enum extent cols)
{
    const struct al_tensor_view *t = al_tensor_store_find(ck->store, name);
    if (!t)
        return al_fail_null("%s: tensor %s is missing (config.json describes a %s with %d layers)",
                            ck->store_source, name, ck->config->architecture, ck->config->num_hidden_layers);
    int64_t shape[2] = {extent_of(ck->config, rows), extent_of(ck->config, cols)};
    if (check_dtype(ck, t) != 0 || check_shape(t, ndim, shape) != 0)
        return NULL;
    return t;
}

static int expect_layer(struct checker *ck, int layer, struct al_layer_tensors *out)
{
    for (int k = 0; k < N_LAYER_KINDS; k++) {
        const struct tensor_kind *kind = &layer_kinds[k];
        if (!kind_applies(kind, ck->config))
            continue;
        char name[TENSOR_NAME_CAPACITY];
        snprintf(name, sizeof name, LAYER_PREFIX "%d.%s", layer, kind->suffix);
        const struct al_tensor_view *t = expect(ck, name, kind->ndim, kind->rows, kind->cols);
        if (!t)
            return -1;
        *(const struct al_tensor_view **)((char *)out + kind->slot) = t;
    }
    return 0;
}

static int expect_all(struct checker *ck, struct al_model_files *files)
{
    const struct al_model_config *c = ck->config;
    files->embed_tokens = expect(ck, EMBED_TOKENS, 2, EXTENT_VOCAB, EXTENT_HIDDEN);
    if (!files->embed_tokens)
        return -1;
    for (int layer = 0; layer < c->num_hidden_layers; layer++)
        if (expect_layer(ck, layer, &files->layers[layer]) != 0)
            return -1;
    files->final_norm = expect(ck, FINAL_NORM, 1, EXTENT_HIDDEN, 0);
    if (!files->final_norm)
        return -1;
    /* With tied embeddings some exporters still save lm_head (a copy); it is ignored. */
    if (!c->tie_word_embeddings) {
        files->lm_head = expect(ck, LM_HEAD, 2, EXTENT_VOCAB, EXTENT_HIDDEN);
        if (!files->lm_head)
            return -1;
    }
    files->dtype = ck->first_seen->dtype;
    return 0;
}

/* ---- unexpected tensors ---- */

/* "model.layers.<i>.<suffix>" with i a layer the config has: returns the suffix. */
static const char *layer_suffix(const char *name, int num_layers)
{
    if (strncmp(name, LAYER_PREFIX, strlen(LAYER_PREFIX)) != 0)
        return NULL;
    const char *p = name + strlen(LAYER_PREFIX);
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.'))
        return NULL;
    long layer = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        layer = layer * 10 + (*p - '0');
        if (layer >= num_layers)
            return NULL;
    }
    return *p == '.' ? p + 1 : NULL;
}

static bool is_expected_name(const struct al_model_config *c, const char *name)
{
    if (strcmp(name, EMBED_TOKENS) == 0 || strcmp(name, FINAL_NORM) == 0 || strcmp(name, LM_HEAD) == 0)
        return true;
    const char *suffix = layer_suffix(name, c->num_hidden_layers);
    if (!suffix)
        return false;
    if (strcmp(suffix, ROTARY_INV_FREQ_SUFFIX) == 0)
        return true;
    for (int k = 0; k < N_LAYER_KINDS; k++)
        if (kind_applies(&layer_kinds[k], c) && strcmp(suffix, layer_kinds[k].suffix) == 0)
            return true;
    return false;
}

static int reject_unexpected(const struct al_model_config *c, const struct al_tensor_store *store)
{
    for (int i = 0; i < al_tensor_store_count(store); i++) {
        const struct al_tensor_view *t = al_tensor_store_tensor(store, i);
        if (!is_expected_name(c, t->name))
            return al_fail("%s: unexpected tensor %s (not part of a %s with %d layers)", t->file, t->name,
                           c->architecture, c->num_hidden_layers);
    }
    return 0;
}

/* ---- one tensor, before it is written ---- */

static const struct tensor_kind *kind_of_suffix(const struct al_model_config *c, const char *suffix)
{
    for (int k = 0; k < N_LAYER_KINDS; k++)
        if (kind_applies(&layer_kinds[k], c) && strcmp(suffix, layer_kinds[k].suffix) == 0)
            return &layer_kinds[k];
    return NULL;
}

int al_model_tensor_check(const struct al_model_config *c, const char *name, int ndim, const int64_t *shape,
                          const char *source)
{
    struct al_tensor_view view = {.name = name, .file = source, .ndim = ndim};
    for (int d = 0; d < ndim && d < AL_MAX_DIMS; d++)
        view.shape[d] = shape[d];
    int64_t expected[2] = {0, 0};
    int expected_ndim = 2;
    const char *suffix = layer_suffix(name, c->num_hidden_layers);
    const struct tensor_kind *kind = suffix ? kind_of_suffix(c, suffix) : NULL;
    if (kind) {
        expected_ndim = kind->ndim;
        expected[0] = extent_of(c, kind->rows);
        expected[1] = extent_of(c, kind->cols);
    } else if (strcmp(name, EMBED_TOKENS) == 0 || strcmp(name, LM_HEAD) == 0) {
        expected[0] = c->vocab_size;
        expected[1] = c->hidden_size;
    } else if (strcmp(name, FINAL_NORM) == 0) {
        expected_ndim = 1;
        expected[0] = c->hidden_size;
    } else {
        return al_fail("%s: unexpected tensor %s (not part of a %s with %d layers)", source, name, c->architecture,
                       c->num_hidden_layers);
    }
    return check_shape_implied_by(&view, expected_ndim, expected, "the model's configuration");
}

/* ---- opening ---- */

static char *describe_store(const char *model_dir)
{
    char *index = al_path_join(model_dir, "model.safetensors.index.json");
    if (index && al_file_exists(index))
        return index;
    free(index);
    return al_path_join(model_dir, "model.safetensors");
}

static int validate(struct al_model_files *files, const char *model_dir)
{
    const struct al_model_config *c = &files->config;
    files->layers = calloc((size_t)c->num_hidden_layers, sizeof *files->layers);
    char *source = describe_store(model_dir);
    int rc;
    if (!files->layers || !source) {
        rc = al_fail("%s: out of memory", model_dir);
    } else {
        struct checker ck = {c, files->store, source, NULL};
        rc = expect_all(&ck, files);
        if (rc == 0)
            rc = reject_unexpected(c, files->store);
    }
    free(source);
    return rc;
}

int al_model_files_open(struct al_model_files *files, const char *model_dir)
{
    memset(files, 0, sizeof *files);
    if (!al_dir_exists(model_dir))
        return al_fail("%s: not a directory", model_dir);
    if (al_model_config_load(&files->config, model_dir) != 0)
        return -1;
    files->store = al_tensor_store_open(model_dir);
    if (!files->store || validate(files, model_dir) != 0) {
        al_model_files_close(files);
        return -1;
    }
    return 0;
}

void al_model_files_close(struct al_model_files *files)
{
    al_tensor_store_close(files->store);
    free(files->layers);
    memset(files, 0, sizeof *files);
}
