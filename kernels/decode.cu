/* Decoding with a key/value cache: scattering a step's keys and values into their cache
 * slots, and causal grouped-query attention of the step's queries over their sequences'
 * caches. CPU reference: src/backend/cpu/cpu_decode.c.
 *
 * The cache of one layer is k, v [sequences, capacity, kv_heads, head_dim] in bf16; token
 * i of a step belongs to sequence seq[i] at position pos[i], and its query attends to
 * slots 0..pos[i] of that sequence (with a sliding window only pos[i] - window < slot:
 * tiles before the window are never loaded) through kv head h / (q_heads / kv_heads), with scores
 * scaled by 1 / sqrt(head_dim). bf16 in and out, F32 arithmetic, an online softmax (a
 * running max, sum and output per query), so no score row is ever stored.
 *
 * Layout of the work (attention_forward's, kernels/attention.cu, turned around): one
 * block per (token, kv head, chunk of DECODE_WARPS query heads of that kv head's group).
 * The block copies a tile of 32 cache slots of its kv head into shared memory once, and
 * each warp scores its own query head against it, one slot per lane; the output of a
 * query is spread over the lanes by dimension (head_dim / 32 <= 4 values per lane). So
 * the query heads of a group read each key and value from global memory once. There is
 * no split over the cache length: a long sequence is one block's loop. Written for
 * clarity and correctness first, like the training attention.
 *
 * seq and pos are device memory that the host glue cannot read without a synchronising
 * copy; the decoder checks them on the host before uploading them. The kernels still
 * never touch memory outside the cache: a token whose sequence or position is out of
 * range is skipped by the write and gets a NaN output row from the attention, so the
 * mistake shows instead of reading another sequence's slots. */
#include <math.h>

#include "common.cuh"
#include "key_tile.cuh"

#define DECODE_WARPS 4
#define DECODE_THREADS (DECODE_WARPS * AL_WARP_SIZE)

/* Where a token's keys and values live: its sequence's slot pos, or -1 when seq or pos
 * is outside the cache. */
__device__ static int64_t cache_token(const int32_t *seq, const int32_t *pos, int64_t i, int sequences,
                                      int capacity)
{
    int32_t s = seq[i], p = pos[i];
    if (s < 0 || s >= sequences || p < 0 || p >= capacity)
        return -1;
    return (int64_t)s * capacity + p;
}

/* One thread per element of the step's k and v rows [n, kv_heads * head_dim]. */
__global__ void kv_cache_write_kernel(al_bf16 *cache_k, al_bf16 *cache_v, const al_bf16 *k, const al_bf16 *v,
                                      const int32_t *seq, const int32_t *pos, int64_t n, int64_t width,
                                      int sequences, int capacity)
{
    AL_GRID_STRIDE_LOOP(e, n * width)
    {
        int64_t i = e / width, within = e % width;
        int64_t slot = cache_token(seq, pos, i, sequences, capacity);
        if (slot < 0)
            continue;
        cache_k[slot * width + within] = k[e];
        cache_v[slot * width + within] = v[e];
    }
}

__global__ void __launch_bounds__(DECODE_THREADS)
    decode_attention_kernel(al_bf16 *out, const al_bf16 *q, const al_bf16 *cache_k, const al_bf16 *cache_v,
                            const int32_t *seq, const int32_t *pos, int window, int sequences, int capacity,
                            int q_heads, int kv_heads, int head_dim, float scale)
{
    extern __shared__ float shared[];
    int pitch = al_key_pitch(head_dim);
    float *keys = shared;
    float *values = keys + AL_KEY_TILE * pitch;
    float *queries = values + AL_KEY_TILE * pitch; /* [DECODE_WARPS][head_dim] */
    int warp = threadIdx.x / AL_WARP_SIZE, lane = threadIdx.x % AL_WARP_SIZE;
    int64_t i = blockIdx.x;
    int kv_head = blockIdx.y;
    int group = q_heads / kv_heads;
    int in_group = blockIdx.z * DECODE_WARPS + warp;
    bool has_head = in_group < group; /* warp-uniform: the last chunk of a group may be short */
    int head = kv_head * group + in_group;
    al_bf16 *o = out + (i * q_heads + head) * head_dim;

    int64_t slot = cache_token(seq, pos, i, sequences, capacity); /* block-uniform */
    if (slot < 0) {
        for (int d = lane; has_head && d < head_dim; d += AL_WARP_SIZE)
            o[d] = __float2bfloat16_rn(NAN);
        return;
    }
    int64_t last = pos[i]; /* the query's own slot: it attends to slots first..last */
    int64_t first = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
    size_t sequence_elements = (size_t)capacity * kv_heads * head_dim;
    const al_bf16 *k_base = cache_k + (size_t)seq[i] * sequence_elements;
    const al_bf16 *v_base = cache_v + (size_t)seq[i] * sequence_elements;

    float *query = queries + warp * head_dim;
    if (has_head)
        for (int d = lane; d < head_dim; d += AL_WARP_SIZE)
            query[d] = __bfloat162float(q[(i * q_heads + head) * head_dim + d]);

    float running_max = -INFINITY, running_sum = 0.0f;
    float acc[AL_DIMS_PER_LANE];
#pragma unroll
    for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++)
        acc[dd] = 0.0f;

    for (int64_t t0 = first / AL_KEY_TILE * AL_KEY_TILE; t0 <= last; t0 += AL_KEY_TILE) {
        __syncthreads(); /* the previous tile is no longer read (and the query rows are stored) */
        al_load_key_tile(keys, k_base, t0, last + 1, kv_heads, kv_head, head_dim);
        al_load_key_tile(values, v_base, t0, last + 1, kv_heads, kv_head, head_dim);
        __syncthreads();
        if (!has_head)
            continue;
        int64_t j = t0 + lane;
        bool valid = j >= first && j <= last;
        float s = -INFINITY;
        if (valid) {
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++)
                dot += query[d] * keys[lane * pitch + d];
            s = dot * scale;
        }
        /* Every tile holds a slot in first..last, so tile_max is finite. */
        float tile_max = al_warp_max(s);
        al_online_softmax_tile(s, valid, tile_max, &running_max, &running_sum, acc, values, pitch, head_dim, lane);
    }

    if (!has_head)
        return;
    float inv_sum = 1.0f / running_sum;
#pragma unroll
    for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++) {
        int d = lane + AL_WARP_SIZE * dd;
        if (d < head_dim)
            o[d] = __float2bfloat16_rn(acc[dd] * inv_sum);
    }
}

cudaError_t al_launch_kv_cache_write(al_bf16 *cache_k, al_bf16 *cache_v, const al_bf16 *k, const al_bf16 *v,
                                     const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                                     int head_dim, int sequences, int capacity, cudaStream_t stream)
{
    int64_t width = (int64_t)kv_heads * head_dim;
    if (n * width <= 0)
        return cudaSuccess;
    kv_cache_write_kernel<<<al_elementwise_blocks(n * width), AL_ELEMENTWISE_THREADS, 0, stream>>>(
        cache_k, cache_v, k, v, seq, pos, n, width, sequences, capacity);
    return cudaGetLastError();
}

cudaError_t al_launch_decode_attention(al_bf16 *out, const al_bf16 *q, const al_bf16 *cache_k,
                                       const al_bf16 *cache_v, const int32_t *seq, const int32_t *pos, int window,
                                       int64_t n, int q_heads, int kv_heads, int head_dim, int sequences,
                                       int capacity, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    int group = q_heads / kv_heads;
    dim3 grid((unsigned)n, (unsigned)kv_heads, (unsigned)((group + DECODE_WARPS - 1) / DECODE_WARPS));
    size_t bytes = (size_t)(2 * AL_KEY_TILE * al_key_pitch(head_dim) + DECODE_WARPS * head_dim) * sizeof(float);
    decode_attention_kernel<<<grid, DECODE_THREADS, bytes, stream>>>(out, q, cache_k, cache_v, seq, pos, window,
                                                                     sequences, capacity, q_heads, kv_heads,
                                                                     head_dim, 1.0f / sqrtf((float)head_dim));
    return cudaGetLastError();
}
