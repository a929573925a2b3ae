/* The lm_head fused with cross-entropy. Logits are formed for a chunk of tokens at a
 * time, turned into losses and (in place) into logit gradients, and pushed back through
 * the lm_head weight, so the full [n x vocab] matrix never exists. */
#include <math.h>
#include <stdlib.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* Tokens per chunk: the logits buffer is CE_CHUNK_TOKENS x vocab floats (about 20 MB for
 * a 150k vocabulary), enough rows to keep the GEMM efficient. */
#define CE_CHUNK_TOKENS 32

static int check_targets(const int32_t *targets, int64_t n, int vocab)
{
    for (int64_t i = 0; i < n; i++)
        if (targets[i] >= vocab)
            return al_fail("cpu lm_head_cross_entropy: token %lld has target %d outside a vocabulary of %d",
                           (long long)i, targets[i], vocab);
    return 0;
}

/* One token's logits become its loss, -log softmax(logits)[target], computed stably as
 * logsumexp - logits[target] with the maximum subtracted. When the gradient is wanted,
 * the row is overwritten with grad_scale * (softmax - onehot(target)); a token without a
 * target contributes no loss and a zero gradient row. */
static double loss_and_logit_gradient(float *logits, int32_t target, int vocab, int want_gradient,
                                      float grad_scale)
{
    if (target < 0) {
        if (want_gradient)
            for (int c = 0; c < vocab; c++)
                logits[c] = 0.0f;
        return 0.0;
    }
    float target_logit = logits[target];
    float max_logit = logits[0];
    for (int c = 1; c < vocab; c++)
        if (logits[c] > max_logit)
            max_logit = logits[c];
    /* The row now holds exp(logit - max), each in (0, 1]; their sum is kept in double. */
    double total = 0.0;
    for (int c = 0; c < vocab; c++) {
        logits[c] = expf(logits[c] - max_logit);
        total += logits[c];
    }
    double loss = max_logit + log(total) - target_logit;
    if (want_gradient) {
        float scale_over_total = (float)(grad_scale / total);
        for (int c = 0; c < vocab; c++)
            logits[c] *= scale_over_total;
        logits[target] -= grad_scale;
    }
    return loss;
}

int al_cpu_lm_head_cross_entropy(struct al_backend *backend, float *loss_sum, void *dx, const void *x,
                                 const void *weight, const int32_t *targets, int64_t n, int dim, int vocab,
                                 float grad_scale)
{
    (void)backend;
    const char *op = "cpu lm_head_cross_entropy";
    if (al_cpu_check_shape(op, n, dim) != 0 || al_cpu_check_shape(op, n, vocab) != 0 ||
        check_targets(targets, n, vocab) != 0)
        return -1;
    if (n == 0)
        return 0;

    int64_t chunk = n < CE_CHUNK_TOKENS ? n : CE_CHUNK_TOKENS;
    float *logits = malloc((size_t)chunk * (size_t)vocab * sizeof(float));
    double *losses = malloc((size_t)n * sizeof(double));
    if (!logits || !losses) {
        free(logits);
        free(losses);
        return al_fail("%s: out of memory for %lld x %d logits", op, (long long)chunk, vocab);
    }
    const float *input = x;
    float *grad_input = dx;

    for (int64_t first = 0; first < n; first += chunk) {
        int rows = (int)(first + chunk <= n ? chunk : n - first);
        al_cpu_gemm(false, true, rows, vocab, dim, 1.0f, input + first * dim, dim, weight, dim, 0.0f, logits, vocab);
#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF((int64_t)rows * vocab)
        for (int r = 0; r < rows; r++)
            losses[first + r] = loss_and_logit_gradient(logits + (int64_t)r * vocab, targets[first + r], vocab,
                                                        grad_input != NULL, grad_scale);
        /* dx = dlogits W for the chunk; rows without a target come out zero. */
        if (grad_input)
            al_cpu_gemm(false, false, rows, dim, vocab, 1.0f, logits, vocab, weight, dim, 0.0f, grad_input + first * dim, dim);
    }

    /* Summed in token order, whatever the threads did. */
    double total = 0.0;
    for (int64_t i = 0; i < n; i++)
        total += losses[i];
    *loss_sum += (float)total;
    free(logits);
    free(losses);
    return 0;
}
