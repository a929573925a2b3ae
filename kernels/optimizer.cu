/* Optimizer kernels over F32 LoRA parameters: the sum of squares (gradient clipping) and a
 * fused AdamW step. CPU reference: src/backend/cpu/cpu_optimizer.c (PyTorch's AdamW).
 * The sum is deterministic: a fixed grid writes one partial per block, and one block adds
 * the partials in order. */
#include "common.cuh"

#define REDUCE_THREADS 256

/* Sums a double across the block; the result is valid in thread 0. */
__device__ double block_sum_double(double v)
{
    __shared__ double shared[REDUCE_THREADS / AL_WARP_SIZE];
    for (int offset = AL_WARP_SIZE / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(AL_FULL_MASK, v, offset);
    int warp = threadIdx.x / AL_WARP_SIZE;
    if (threadIdx.x % AL_WARP_SIZE == 0)
        shared[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < REDUCE_THREADS / AL_WARP_SIZE; w++)
            total += shared[w];
    return total;
}

__global__ void sum_squares_partial_kernel(float *partials, const float *x, int64_t n)
{
    double sum = 0.0;
    AL_GRID_STRIDE_LOOP(i, n)
    {
        double v = x[i];
        sum += v * v;
    }
    double total = block_sum_double(sum);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = (float)total;
}

__global__ void sum_into_kernel(float *out, const float *values, int64_t count)
{
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += REDUCE_THREADS)
        sum += values[i];
    double total = block_sum_double(sum);
    if (threadIdx.x == 0)
        *out += (float)total;
}

cudaError_t al_launch_sum_into(float *out, const float *values, int64_t count, cudaStream_t stream)
{
    if (count <= 0)
        return cudaSuccess;
    sum_into_kernel<<<1, REDUCE_THREADS, 0, stream>>>(out, values, count);
    return cudaGetLastError();
}

cudaError_t al_launch_sum_squares(float *out, const float *x, int64_t n, float *partials, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    int64_t wanted = (n + REDUCE_THREADS - 1) / REDUCE_THREADS;
    unsigned blocks = (unsigned)(wanted < AL_SUM_SQUARES_BLOCKS ? wanted : AL_SUM_SQUARES_BLOCKS);
    sum_squares_partial_kernel<<<blocks, REDUCE_THREADS, 0, stream>>>(partials, x, n);
    cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess)
        return status;
    return al_launch_sum_into(out, partials, blocks, stream);
}

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, int64_t n, struct al_adamw_step s)
{
    AL_GRID_STRIDE_LOOP(i, n)
    {
        float g = grad[i] * s.grad_scale;
        float p = param[i] * s.decay;
        float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
        float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
        float denom = sqrtf(vi) / s.bias_correction2_sqrt + s.eps;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - s.step_size * (mi / denom);
    }
}

cudaError_t al_launch_adamw(float *param, const float *grad, float *m, float *v, int64_t n,
                            const struct al_adamw_step *step, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    adamw_kernel<<<al_elementwise_blocks(n), AL_ELEMENTWISE_THREADS, 0, stream>>>(param, grad, m, v, n, *step);
    return cudaGetLastError();
}
