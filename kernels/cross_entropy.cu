/* Cross-entropy over one chunk of F32 logits: the loss of each row and, for training, the
 * logit gradient in bf16 (the operand of the following dx = dlogits W GEMM).
 * CPU reference: src/backend/cpu/cpu_cross_entropy.c (stable log-sum-exp with the row
 * maximum subtracted; grad = grad_scale * (softmax - onehot(target))). */
#include <math.h>

#include "common.cuh"

#define CE_THREADS 512
#define CE_WARPS (CE_THREADS / AL_WARP_SIZE)

/* Combines one value per thread across the block; every thread gets the result. */
template <bool IS_MAX> __device__ float block_reduce(float v, float *shared)
{
    v = IS_MAX ? al_warp_max(v) : al_warp_sum(v);
    int warp = threadIdx.x / AL_WARP_SIZE;
    if (threadIdx.x % AL_WARP_SIZE == 0)
        shared[warp] = v;
    __syncthreads();
    float total = shared[0];
    for (int w = 1; w < CE_WARPS; w++)
        total = IS_MAX ? fmaxf(total, shared[w]) : total + shared[w];
    __syncthreads(); /* shared is reused by the next reduction */
    return total;
}

/* One block per row. */
__global__ void cross_entropy_rows_kernel(const float *logits, al_bf16 *dlogits, float *row_loss,
                                          const int32_t *targets, int vocab, float grad_scale)
{
    __shared__ float shared[CE_WARPS];
    int64_t row = blockIdx.x;
    const float *l = logits + row * vocab;
    int32_t target = targets[row];
    if (target >= vocab) {
        /* Unlike the CPU, the GPU cannot stop with a message here without a synchronising
         * copy of the targets: a NaN loss makes the bad target impossible to miss. */
        if (threadIdx.x == 0)
            row_loss[row] = NAN;
        target = -1;
    } else if (target < 0 && threadIdx.x == 0) {
        row_loss[row] = 0.0f;
    }
    if (target < 0) {
        if (dlogits)
            for (int c = threadIdx.x; c < vocab; c += CE_THREADS)
                dlogits[row * vocab + c] = __float2bfloat16_rn(0.0f);
        return;
    }
    float max_logit = -INFINITY;
    for (int c = threadIdx.x; c < vocab; c += CE_THREADS)
        max_logit = fmaxf(max_logit, l[c]);
    max_logit = block_reduce<true>(max_logit, shared);
    float total = 0.0f;
    for (int c = threadIdx.x; c < vocab; c += CE_THREADS)
        total += expf(l[c] - max_logit);
    total = block_reduce<false>(total, shared);
    float lse = max_logit + logf(total);
    if (threadIdx.x == 0)
        row_loss[row] = lse - l[target];
    if (!dlogits)
        return;
    for (int c = threadIdx.x; c < vocab; c += CE_THREADS) {
        float g = grad_scale * expf(l[c] - lse);
        if (c == target)
            g -= grad_scale;
        dlogits[row * vocab + c] = __float2bfloat16_rn(g);
    }
}

cudaError_t al_launch_cross_entropy_rows(const float *logits, al_bf16 *dlogits, float *row_loss,
                                         const int32_t *targets, int rows, int vocab, float grad_scale,
                                         cudaStream_t stream)
{
    if (rows <= 0)
        return cudaSuccess;
    cross_entropy_rows_kernel<<<(unsigned)rows, CE_THREADS, 0, stream>>>(logits, dlogits, row_loss, targets, vocab,
                                                                         grad_scale);
    return cudaGetLastError();
}
