/* A tile of AL_KEY_TILE keys (or values) of one kv head, staged in shared memory as F32:
 * the unit of work of both attention kernels (attention.cu over a packed row, decode.cu
 * over a KV cache). */
#ifndef AGENTLORA_KEY_TILE_CUH
#define AGENTLORA_KEY_TILE_CUH

#include "common.cuh"

/* One key per lane of a warp. */
#define AL_KEY_TILE AL_WARP_SIZE

/* An odd row pitch: lane l reading word l * pitch + d lands in bank (l * pitch + d) % 32,
 * distinct for the 32 lanes. */
__host__ __device__ static inline int al_key_pitch(int head_dim)
{
    return head_dim | 1;
}

/* Copies keys [first, first + AL_KEY_TILE) of kv head `kv_head` (row j of src at
 * (j * kv_heads + kv_head) * head_dim) into tile, zeros from key n on. */
__device__ static inline void al_load_key_tile(float *tile, const al_bf16 *src, int64_t first, int64_t n,
                                               int kv_heads, int kv_head, int head_dim)
{
    int pitch = al_key_pitch(head_dim);
    for (int t = threadIdx.x; t < AL_KEY_TILE * head_dim; t += blockDim.x) {
        int r = t / head_dim, d = t % head_dim;
        int64_t j = first + r;
        tile[r * pitch + d] = j < n ? __bfloat162float(src[(j * kv_heads + kv_head) * head_dim + d]) : 0.0f;
    }
}

/* Dimensions of a head one lane holds: lane l holds d = l + AL_WARP_SIZE * dd. */
#define AL_DIMS_PER_LANE (AL_ATTENTION_MAX_HEAD_DIM / AL_WARP_SIZE)

/* acc (this lane's dimensions) += sum over the tile's rows j of w_j * tile[j], where lane j
 * holds w_j in `weight`: a warp-wide weighted sum of the tile's rows. */
__device__ static inline void al_accumulate_tile_rows(float *acc, float weight, const float *tile, int pitch,
                                                      int head_dim, int lane)
{
    for (int jj = 0; jj < AL_KEY_TILE; jj++) {
        float wj = __shfl_sync(AL_FULL_MASK, weight, jj);
#pragma unroll
        for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++) {
            int d = lane + AL_WARP_SIZE * dd;
            if (d < head_dim)
                acc[dd] += wj * tile[jj * pitch + d];
        }
    }
}

/* One tile of the online softmax of a query a warp holds: lane j scored key j as s (valid
 * or masked), tile_max is the tile's finite maximum. The running maximum and sum and the
 * output accumulator are rescaled to the new maximum, then the tile's probabilities and
 * their weighted values are added. */
__device__ static inline void al_online_softmax_tile(float s, bool valid, float tile_max, float *running_max,
                                                     float *running_sum, float *acc, const float *values, int pitch,
                                                     int head_dim, int lane)
{
    float new_max = fmaxf(*running_max, tile_max);
    float correction = expf(*running_max - new_max); /* 0 on the first tile */
    float p = valid ? expf(s - new_max) : 0.0f;
    *running_sum = *running_sum * correction + al_warp_sum(p);
    *running_max = new_max;
#pragma unroll
    for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++)
        acc[dd] *= correction;
    al_accumulate_tile_rows(acc, p, values, pitch, head_dim, lane);
}

#endif
