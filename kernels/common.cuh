/* Device helpers shared by the kernels: element loads and stores for the float types the
 * backend uses, warp reductions, and the counter-based dropout hash.
 * CPU reference for the hash: src/core/rng.c (al_hash64, al_hash_uniform). */
#ifndef AGENTLORA_KERNELS_COMMON_CUH
#define AGENTLORA_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels.h"

#define AL_WARP_SIZE 32
#define AL_FULL_MASK 0xffffffffu

/* Blocks for a one-thread-per-element launch, capped so the grid stays within limits; the
 * kernels stride over the rest. */
#define AL_ELEMENTWISE_THREADS 256
#define AL_ELEMENTWISE_MAX_BLOCKS 65535

static inline unsigned al_elementwise_blocks(int64_t n)
{
    int64_t blocks = (n + AL_ELEMENTWISE_THREADS - 1) / AL_ELEMENTWISE_THREADS;
    if (blocks < 1)
        blocks = 1;
    return (unsigned)(blocks < AL_ELEMENTWISE_MAX_BLOCKS ? blocks : AL_ELEMENTWISE_MAX_BLOCKS);
}

#define AL_GRID_STRIDE_LOOP(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                    \
         i += (int64_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float al_load(const __nv_bfloat16 *p, int64_t i)
{
    return __bfloat162float(p[i]);
}

__device__ __forceinline__ float al_load(const float *p, int64_t i)
{
    return p[i];
}

__device__ __forceinline__ void al_store(__nv_bfloat16 *p, int64_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ void al_store(float *p, int64_t i, float v)
{
    p[i] = v;
}

/* Rounds through bf16, as the activation type does on the GPU. */
__device__ __forceinline__ float al_round_bf16(float v)
{
    return __bfloat162float(__float2bfloat16_rn(v));
}

__device__ __forceinline__ float al_warp_sum(float v)
{
    for (int offset = AL_WARP_SIZE / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(AL_FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float al_warp_max(float v)
{
    for (int offset = AL_WARP_SIZE / 2; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(AL_FULL_MASK, v, offset));
    return v;
}

/* Bit-identical to al_hash64 / al_hash_uniform in src/core/rng.c: plain 64-bit integer
 * arithmetic, so the GPU draws exactly the CPU's dropout mask. */
__device__ __forceinline__ uint64_t al_hash64_device(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

__device__ __forceinline__ float al_hash_uniform_device(uint64_t seed, uint64_t index)
{
    uint64_t h = al_hash64_device(seed ^ al_hash64_device(index));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* The factor LoRA dropout applies to flat element `index`: 0 when dropped, keep_scale
 * (1 / (1 - p)) when kept; exactly 1 when dropout is off. */
__device__ __forceinline__ float al_dropout_factor(const struct al_dropout *d, uint64_t index)
{
    if (d->probability == 0.0f)
        return 1.0f;
    return al_hash_uniform_device(d->seed, index) < d->probability ? 0.0f : d->keep_scale;
}

#endif
