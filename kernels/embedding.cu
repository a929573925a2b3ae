/* Token embedding lookup and its gradient.
 * CPU reference: src/backend/cpu/cpu_embedding.c. Ids are not range-checked here either:
 * the model checks them against its vocabulary when it reads the data. */
#include "common.cuh"

/* One block per token; threads walk the row. */
__global__ void embedding_forward_kernel(al_bf16 *out, const int32_t *ids, const al_bf16 *table, int dim)
{
    int64_t token = blockIdx.x;
    const al_bf16 *row = table + (int64_t)ids[token] * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        out[token * dim + j] = row[j];
}

/* Tokens repeat, so rows are accumulated with F32 atomics (order-dependent rounding: the
 * one op on the GPU whose result may differ in the last bits between runs). */
__global__ void embedding_backward_kernel(float *dtable, const int32_t *ids, const al_bf16 *dout, int dim)
{
    int64_t token = blockIdx.x;
    float *row = dtable + (int64_t)ids[token] * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        atomicAdd(&row[j], __bfloat162float(dout[token * dim + j]));
}

#define EMBEDDING_THREADS 256

cudaError_t al_launch_embedding_forward(al_bf16 *out, const int32_t *ids, const al_bf16 *table, int64_t n,
                                        int dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    embedding_forward_kernel<<<(unsigned)n, EMBEDDING_THREADS, 0, stream>>>(out, ids, table, dim);
    return cudaGetLastError();
}

cudaError_t al_launch_embedding_backward(float *dtable, const int32_t *ids, const al_bf16 *dout, int64_t n,
                                         int dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    embedding_backward_kernel<<<(unsigned)n, EMBEDDING_THREADS, 0, stream>>>(dtable, ids, dout, dim);
    return cudaGetLastError();
}
