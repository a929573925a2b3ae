/* Loading a model onto a backend. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/model_files.h"
#include "model/model_internal.h"

/* Copies one tensor from the mapped file to the backend, converting to its weight dtype. */
static void *upload_tensor(struct al_backend *backend, const struct al_tensor_view *view)
{
    if (!view)
        return NULL;
    void *dst = backend->ops->alloc(backend, (size_t)view->count * al_dtype_size(backend->weight_dtype));
    if (!dst)
        return NULL;
    if (backend->ops->upload_convert(backend, dst, backend->weight_dtype, view->data, view->dtype, view->count) != 0) {
        backend->ops->free(backend, dst);
        return NULL;
    }
    return dst;
}

/* Uploads an optional tensor: succeeds with NULL when the view is absent. */
static int upload_into(struct al_backend *backend, void **dst, const struct al_tensor_view *view)
{
    *dst = upload_tensor(backend, view);
    if (view && !*dst) {
        al_error_context("uploading %s", view->name);
        return -1;
    }
    return 0;
}

static int upload_block(struct al_backend *backend, struct block_weights *block, const struct al_layer_tensors *t)
{
    const struct al_tensor_view *views[] = {t->input_layernorm, t->post_attention_layernorm, t->q_proj, t->k_proj,
                                            t->v_proj, t->o_proj, t->q_bias, t->k_bias, t->v_bias,
                                            t->q_norm, t->k_norm, t->gate_proj, t->up_proj, t->down_proj};
    void **slots[] = {&block->input_norm, &block->post_norm, &block->q, &block->k, &block->v, &block->o,
                      &block->q_bias, &block->k_bias, &block->v_bias, &block->q_norm, &block->k_norm,
                      &block->gate, &block->up, &block->down};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        if (upload_into(backend, slots[i], views[i]) != 0)
            return -1;
    return 0;
}

static int upload_inverse_frequencies(struct al_model *model)
{
    int half = model->config.head_dim / 2;
    float *host = malloc((size_t)half * sizeof(float));
    if (!host)
        return al_fail("out of memory");
    al_rope_inverse_frequencies(&model->config, host);
    struct al_backend *backend = model->backend;
    model->inv_freq = backend->ops->alloc(backend, (size_t)half * sizeof(float));
    int rc = model->inv_freq ? backend->ops->copy_to_backend(backend, model->inv_freq, host, (size_t)half * sizeof(float))
                             : -1;
    free(host);
    return rc;
}

static int upload_weights(struct al_model *model, const struct al_model_files *files)
{
    struct al_backend *backend = model->backend;
    if (upload_into(backend, &model->embed, files->embed_tokens) != 0 ||
        upload_into(backend, &model->final_norm, files->final_norm) != 0)
        return -1;
    if (files->lm_head && !model->config.tie_word_embeddings) {
        if (upload_into(backend, &model->lm_head, files->lm_head) != 0)
            return -1;
    } else {
        model->lm_head = model->embed;
    }
    for (int layer = 0; layer < model->config.num_hidden_layers; layer++)
        if (upload_block(backend, &model->blocks[layer], &files->layers[layer]) != 0)
            return -1;
    return upload_inverse_frequencies(model);
}

struct al_model *al_model_load(const char *model_dir, struct al_backend *backend)
{
    struct al_model_files files;
    if (al_model_files_open(&files, model_dir) != 0)
        return NULL;
    struct al_model *model = calloc(1, sizeof *model);
    if (model)
        model->blocks = calloc((size_t)files.config.num_hidden_layers, sizeof *model->blocks);
    if (!model || !model->blocks) {
        free(model);
        al_model_files_close(&files);
        return al_fail_null("out of memory");
    }
    model->config = files.config;
    model->backend = backend;
    int rc = upload_weights(model, &files);
    al_model_files_close(&files);
    if (rc != 0) {
        al_error_context("%s", model_dir);
        al_model_free(model);
        return NULL;
    }
    return model;
}

static void release(struct al_backend *backend, void *ptr)
{
    if (ptr)
        backend->ops->free(backend, ptr);
}

void al_model_free(struct al_model *model)
{
    if (!model)
        return;
    struct al_backend *backend = model->backend;
    if (model->lm_head != model->embed)
        release(backend, model->lm_head);
    release(backend, model->embed);
    release(backend, model->final_norm);
    release(backend, model->inv_freq);
    for (int layer = 0; model->blocks && layer < model->config.num_hidden_layers; layer++) {
        struct block_weights *b = &model->blocks[layer];
        void *all[] = {b->input_norm, b->post_norm, b->q, b->k, b->v, b->o, b->q_bias, b->k_bias,
                       b->v_bias, b->q_norm, b->k_norm, b->gate, b->up, b->down};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            release(backend, all[i]);
    }
    free(model->blocks);
    free(model);
}

const struct al_model_config *al_model_get_config(const struct al_model *model)
{
    return &model->config;
}

struct al_backend *al_model_get_backend(const struct al_model *model)
{
    return model->backend;
}
