/* The model's state, shared by the files of src/model/ that run it. */
#ifndef AGENTLORA_MODEL_INTERNAL_H
#define AGENTLORA_MODEL_INTERNAL_H

#include <stdbool.h>

#include "agentlora/model.h"
#include "backend/backend.h"

/* Frozen weights of one block, in backend memory and the backend's weight dtype. */
struct block_weights {
    void *input_norm, *post_norm;
    void *q, *k, *v, *o;
    void *q_bias, *k_bias, *v_bias; /* NULL unless the architecture has them */
    void *q_norm, *k_norm;          /* [head_dim], NULL unless the architecture has them (Qwen3) */
    void *gate, *up, *down;
};

struct al_model {
    struct al_model_config config;
    struct al_backend *backend;
    void *embed;      /* [vocab, hidden] */
    void *final_norm; /* [hidden] */
    void *lm_head;    /* [vocab, hidden]; the same pointer as embed when tied */
    struct block_weights *blocks;
    float *inv_freq;  /* [head_dim / 2], backend memory */
};

/* Activations of one block saved for its backward. */
struct block_acts {
    float *rstd_attn, *rstd_mlp; /* [n] */
    float *lse;                  /* [n, q_heads] */
    void *attn_in;               /* input_layernorm output [n, hidden] */
    void *q, *k, *v;             /* after RoPE for q and k */
    void *q_raw, *k_raw;         /* q and k projections before their RMSNorm (qk_norm only, else NULL) */
    float *rstd_q, *rstd_k;      /* [n, q_heads], [n, kv_heads]: their RMSNorm statistics (qk_norm only) */
    void *attn_out;              /* [n, q_heads * head_dim] */
    void *mid;                   /* residual after attention [n, hidden] */
    void *mlp_in;                /* post_attention_layernorm output */
    void *gate, *up, *hidden;    /* [n, intermediate] */
    float *xa[AL_LORA_TARGET_COUNT]; /* LoRA drop(x) A^T [n, rank], NULL when not adapted */
};

struct al_workspace {
    const struct al_model *model;
    int64_t max_tokens;
    bool checkpointing;
    int lora_rank;           /* 0 when created without LoRA */
    unsigned lora_mask;
    void **residual;         /* [layers + 1]: the input of each block, then the last output */
    struct block_acts *acts; /* one set per block, or a single shared set with checkpointing */
    int num_act_sets;
    void *final_out;         /* final norm output */
    float *final_rstd;
    /* gradient scratch */
    void *d_residual, *d_norm, *d_scratch;
    void *d_attn_out, *d_q, *d_k, *d_v;
    void *d_hidden, *d_gate, *d_up;
    /* the batch in backend memory */
    int32_t *ids, *targets, *positions, *doc_start;
    float *loss_sum;
};

/* One block's forward from residual[layer] into residual[layer + 1]. */
int al_block_forward(const struct al_model *model, const struct al_lora *lora, struct al_workspace *ws, int layer,
                     struct block_acts *acts, int64_t n, float dropout, uint64_t dropout_seed);
/* The same block for decoding (dropout off, nothing saved for backward): token i of
 * the step belongs to sequence seq[i] (backend memory) at position ws->positions[i];
 * its key and value are written into the layer's cache and its query attends to the
 * cache. */
int al_block_decode_forward(const struct al_model *model, const struct al_lora *lora, struct al_workspace *ws,
                            int layer, struct block_acts *acts, int64_t n, const struct al_kv_cache_layer *cache,
                            const int32_t *seq);
/* One block's backward: d_residual holds d(out) on entry and d(in) on return. */
int al_block_backward(const struct al_model *model, struct al_lora *lora, struct al_workspace *ws, int layer,
                      struct block_acts *acts, int64_t n, float dropout, uint64_t dropout_seed);

#endif
