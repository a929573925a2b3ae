/* Rotary position embedding (rotate-half), in place; backward turns by the opposite angle.
 * CPU reference: src/backend/cpu/cpu_rope.c. The angle is formed in F32 and cos/sin use the
 * accurate sincosf (not __sincosf): positions reach tens of thousands of radians. */
#include "common.cuh"

/* One thread per (token, head, pair j < head_dim / 2). */
__global__ void rope_kernel(al_bf16 *x, const int32_t *pos, const float *inv_freq, int64_t n, int heads,
                            int head_dim, float direction)
{
    int half = head_dim / 2;
    int64_t pairs = n * heads * half;
    AL_GRID_STRIDE_LOOP(e, pairs)
    {
        int j = (int)(e % half);
        int64_t head_row = e / half; /* token * heads + head */
        int64_t token = head_row / heads;
        float angle = (float)pos[token] * inv_freq[j];
        float s, c;
        sincosf(angle, &s, &c);
        s *= direction;
        al_bf16 *head = x + head_row * head_dim;
        float first = __bfloat162float(head[j]);
        float second = __bfloat162float(head[j + half]);
        head[j] = __float2bfloat16_rn(first * c - second * s);
        head[j + half] = __float2bfloat16_rn(second * c + first * s);
    }
}

cudaError_t al_launch_rope(al_bf16 *x, const int32_t *pos, const float *inv_freq, int64_t n, int heads,
                           int head_dim, float direction, cudaStream_t stream)
{
    int64_t pairs = n * heads * (head_dim / 2);
    if (pairs <= 0)
        return cudaSuccess;
    rope_kernel<<<al_elementwise_blocks(pairs), AL_ELEMENTWISE_THREADS, 0, stream>>>(x, pos, inv_freq, n, heads,
                                                                                     head_dim, direction);
    return cudaGetLastError();
}
