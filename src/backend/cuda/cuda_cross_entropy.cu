/* lm_head + cross-entropy, fused and chunked over tokens: per chunk, F32 logits from one
 * cuBLASLt GEMM, a row kernel for the losses and the bf16 logit gradient, a fixed-order
 * sum of the chunk's losses into *loss_sum, and dx = dlogits W. Only [chunk x vocab]
 * buffers exist, never [n x vocab]. CPU reference: src/backend/cpu/cpu_cross_entropy.c. */
#include "backend/cuda/cuda_internal.h"

/* Tokens per chunk: enough rows to keep the GEMM efficient, and the scratch (F32 logits
 * and bf16 gradient, 6 bytes per logit) within a budget that fits beside a model. */
#define CE_MAX_CHUNK_TOKENS 1024
#define CE_SCRATCH_BUDGET_BYTES ((size_t)256 << 20)
#define CE_BYTES_PER_LOGIT (sizeof(float) + sizeof(al_bf16))

static int64_t chunk_tokens(int64_t n, int vocab)
{
    int64_t by_budget = (int64_t)(CE_SCRATCH_BUDGET_BYTES / ((size_t)vocab * CE_BYTES_PER_LOGIT));
    int64_t chunk = by_budget < CE_MAX_CHUNK_TOKENS ? by_budget : CE_MAX_CHUNK_TOKENS;
    if (chunk < 1)
        chunk = 1;
    return chunk < n ? chunk : n;
}

static int run_chunk(struct al_cuda *cuda, float *loss_sum, al_bf16 *dx, const al_bf16 *x, const al_bf16 *weight,
                     const int32_t *targets, int64_t rows, int dim, int vocab, float grad_scale, float *logits,
                     al_bf16 *dlogits, float *row_loss)
{
    /* logits [rows, vocab] = x W^T: column-major logits^T = W x^T. */
    struct al_gemm forward = {1, 0, vocab, rows, dim, 1.0f, 0.0f, weight, dim, x, dim, logits, CUDA_R_32F, vocab};
    if (al_cuda_gemm(cuda, &forward) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_cross_entropy_rows(logits, dx ? dlogits : NULL, row_loss, targets, (int)rows, vocab,
                                             grad_scale, cuda->stream));
    AL_CUDA_TRY(al_launch_sum_into(loss_sum, row_loss, rows, cuda->stream));
    if (!dx)
        return 0;
    /* dx [rows, dim] = dlogits W: column-major dx^T = W^T dlogits^T. */
    struct al_gemm backward = {0, 0, dim, rows, vocab, 1.0f, 0.0f, weight, dim, dlogits, vocab, dx, CUDA_R_16BF, dim};
    return al_cuda_gemm(cuda, &backward);
}

int al_cuda_lm_head_cross_entropy(struct al_backend *backend, float *loss_sum, void *dx, const void *x,
                                  const void *weight, const int32_t *targets, int64_t n, int dim, int vocab,
                                  float grad_scale)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    const char *op = "cuda lm_head_cross_entropy";
    if (al_cuda_check_shape(op, n, dim) != 0 || al_cuda_check_shape(op, n, vocab) != 0)
        return -1;
    if (n == 0)
        return 0;
    int64_t chunk = chunk_tokens(n, vocab);
    float *logits = (float *)al_cuda_scratch(cuda, (size_t)chunk * vocab * sizeof(float), "lm_head logits");
    al_bf16 *dlogits =
        dx ? (al_bf16 *)al_cuda_scratch(cuda, (size_t)chunk * vocab * sizeof(al_bf16), "lm_head dlogits") : NULL;
    float *row_loss = (float *)al_cuda_scratch(cuda, (size_t)chunk * sizeof(float), "lm_head losses");
    int status = (logits && row_loss && (dlogits || !dx)) ? 0 : -1;

    const al_bf16 *input = (const al_bf16 *)x;
    al_bf16 *grad_input = (al_bf16 *)dx;
    for (int64_t first = 0; status == 0 && first < n; first += chunk) {
        int64_t rows = first + chunk <= n ? chunk : n - first;
        status = run_chunk(cuda, loss_sum, grad_input ? grad_input + first * dim : NULL, input + first * dim,
                           (const al_bf16 *)weight, targets + first, rows, dim, vocab, grad_scale, logits, dlogits,
                           row_loss);
    }
    al_cuda_scratch_free(cuda, row_loss);
    al_cuda_scratch_free(cuda, dlogits);
    al_cuda_scratch_free(cuda, logits);
    if (status != 0)
        al_error_context("%s (%lld tokens, vocabulary %d)", op, (long long)n, vocab);
    return status;
}
