/* Elementwise ops on bf16 activations, F32 arithmetic: SwiGLU and its gradient, the
 * residual add, and the bias of a linear layer.
 * CPU references: src/backend/cpu/cpu_swiglu.c, cpu_elementwise.c, cpu_linear.c (add_bias). */
#include "common.cuh"

__device__ __forceinline__ float sigmoid(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

__global__ void swiglu_forward_kernel(al_bf16 *out, const al_bf16 *gate, const al_bf16 *up, int64_t count)
{
    AL_GRID_STRIDE_LOOP(i, count)
    {
        float g = __bfloat162float(gate[i]);
        out[i] = __float2bfloat16_rn(g * sigmoid(g) * __bfloat162float(up[i]));
    }
}

/* d silu(g) / dg = sig(g) * (1 + g * (1 - sig(g))). */
__global__ void swiglu_backward_kernel(al_bf16 *dgate, al_bf16 *dup, const al_bf16 *dout, const al_bf16 *gate,
                                       const al_bf16 *up, int64_t count)
{
    AL_GRID_STRIDE_LOOP(i, count)
    {
        float g = __bfloat162float(gate[i]);
        float u = __bfloat162float(up[i]);
        float d = __bfloat162float(dout[i]);
        float sig = sigmoid(g);
        dgate[i] = __float2bfloat16_rn(d * u * sig * (1.0f + g * (1.0f - sig)));
        dup[i] = __float2bfloat16_rn(d * g * sig);
    }
}

/* y may alias a or b: each element is read before it is written, by the same thread. */
__global__ void add_kernel(al_bf16 *y, const al_bf16 *a, const al_bf16 *b, int64_t count)
{
    AL_GRID_STRIDE_LOOP(i, count)
    {
        y[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
    }
}

__global__ void add_bias_kernel(al_bf16 *y, const al_bf16 *bias, int64_t count, int out)
{
    AL_GRID_STRIDE_LOOP(i, count)
    {
        y[i] = __float2bfloat16_rn(__bfloat162float(y[i]) + __bfloat162float(bias[i % out]));
    }
}

cudaError_t al_launch_swiglu_forward(al_bf16 *out, const al_bf16 *gate, const al_bf16 *up, int64_t count,
                                     cudaStream_t stream)
{
    if (count <= 0)
        return cudaSuccess;
    swiglu_forward_kernel<<<al_elementwise_blocks(count), AL_ELEMENTWISE_THREADS, 0, stream>>>(out, gate, up,
                                                                                               count);
    return cudaGetLastError();
}

cudaError_t al_launch_swiglu_backward(al_bf16 *dgate, al_bf16 *dup, const al_bf16 *dout, const al_bf16 *gate,
                                      const al_bf16 *up, int64_t count, cudaStream_t stream)
{
    if (count <= 0)
        return cudaSuccess;
    swiglu_backward_kernel<<<al_elementwise_blocks(count), AL_ELEMENTWISE_THREADS, 0, stream>>>(dgate, dup, dout,
                                                                                                gate, up, count);
    return cudaGetLastError();
}

cudaError_t al_launch_add(al_bf16 *y, const al_bf16 *a, const al_bf16 *b, int64_t count, cudaStream_t stream)
{
    if (count <= 0)
        return cudaSuccess;
    add_kernel<<<al_elementwise_blocks(count), AL_ELEMENTWISE_THREADS, 0, stream>>>(y, a, b, count);
    return cudaGetLastError();
}

cudaError_t al_launch_add_bias(al_bf16 *y, const al_bf16 *bias, int64_t n, int out, cudaStream_t stream)
{
    int64_t count = n * out;
    if (count <= 0)
        return cudaSuccess;
    add_bias_kernel<<<al_elementwise_blocks(count), AL_ELEMENTWISE_THREADS, 0, stream>>>(y, bias, count, out);
    return cudaGetLastError();
}
