/* Flash-style causal grouped-query attention with document masks and an optional sliding
 * window, forward and backward. CPU reference: src/backend/cpu/cpu_attention.c.
 *
 * Token i attends to key j exactly when start(i) <= j <= i, where start(i) is doc_start[i],
 * raised to i - window + 1 when window > 0 (transformers' sliding window: i - window < j).
 * Key tiles wholly before every start of a query tile, or wholly after the last query that
 * can see a key tile, are never loaded, so a window bounds the work per query; query head h reads kv head
 * h / (q_heads / kv_heads); scores are scaled by 1 / sqrt(head_dim). bf16 in and out, F32
 * arithmetic. No [n x n] matrix exists: the forward keeps a running (max, sum, output) per
 * query (online softmax) and saves lse; the backward recomputes P = exp(s - lse) tile by
 * tile, with delta = rowsum(dout * out).
 *
 * Layout of the work: a key tile is 32 keys, one per lane of a warp, so a warp forms the
 * 32 scores of one query with plain per-lane dot products (keys in shared memory, rows
 * padded to an odd pitch so the 32 lanes hit 32 different banks); the output accumulator
 * of a query is spread over the lanes by dimension (head_dim / 32 <= 4 values per lane).
 * These are CUDA-core kernels written for correctness first; tensor-core (wgmma) tiles
 * are future work. */
#include <limits.h>
#include <math.h>

#include "common.cuh"
#include "key_tile.cuh"

#define ATTENTION_WARPS 4
#define ATTENTION_THREADS (ATTENTION_WARPS * AL_WARP_SIZE)
#define QUERIES_PER_WARP 4
#define QUERY_TILE (ATTENTION_WARPS * QUERIES_PER_WARP)
/* Above this, a kernel must opt in to more dynamic shared memory. */
#define DEFAULT_SHARED_LIMIT (48 * 1024)

/* Copies QUERY_TILE rows of one query head (zeros past the end), unpadded. */
__device__ static void load_query_tile(float *tile, const al_bf16 *src, int64_t first, int64_t n, int q_heads,
                                       int head, int head_dim)
{
    for (int t = threadIdx.x; t < QUERY_TILE * head_dim; t += blockDim.x) {
        int r = t / head_dim, d = t % head_dim;
        int64_t i = first + r;
        tile[t] = i < n ? __bfloat162float(src[(i * q_heads + head) * head_dim + d]) : 0.0f;
    }
}

/* The first key query i sees: its document's start, or the window's when that is later. */
__device__ static int64_t visible_start(const int32_t *doc_start, int64_t i, int window)
{
    int64_t start = doc_start[i];
    if (window > 0 && i - window + 1 > start)
        start = i - window + 1;
    return start;
}

/* The smallest visible start of the block's queries, rounded down to a key tile: where
 * the block's first unmasked key tile can begin. Needs no ordering of doc_start. */
__device__ static int64_t first_key_tile(const int32_t *doc_start, int window, int64_t q0, int64_t n)
{
    __shared__ int smallest;
    if (threadIdx.x == 0)
        smallest = INT_MAX;
    __syncthreads();
    if (threadIdx.x < QUERY_TILE && q0 + threadIdx.x < n)
        atomicMin(&smallest, (int)visible_start(doc_start, q0 + threadIdx.x, window));
    __syncthreads();
    int64_t first = smallest < 0 ? 0 : smallest;
    return first / AL_KEY_TILE * AL_KEY_TILE;
}

__global__ void __launch_bounds__(ATTENTION_THREADS)
    attention_forward_kernel(al_bf16 *out, float *lse, const al_bf16 *q, const al_bf16 *k, const al_bf16 *v,
                             const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                             int head_dim, float scale)
{
    extern __shared__ float shared[];
    int pitch = al_key_pitch(head_dim);
    float *keys = shared;
    float *values = keys + AL_KEY_TILE * pitch;
    float *queries = values + AL_KEY_TILE * pitch;
    int warp = threadIdx.x / AL_WARP_SIZE, lane = threadIdx.x % AL_WARP_SIZE;
    int64_t q0 = (int64_t)blockIdx.x * QUERY_TILE;
    int head = blockIdx.y;
    int kv_head = head / (q_heads / kv_heads);
    int64_t last_query = (q0 + QUERY_TILE < n ? q0 + QUERY_TILE : n) - 1;

    load_query_tile(queries, q, q0, n, q_heads, head, head_dim);
    int64_t start = first_key_tile(doc_start, window, q0, n);

    float running_max[QUERIES_PER_WARP], running_sum[QUERIES_PER_WARP];
    float acc[QUERIES_PER_WARP][AL_DIMS_PER_LANE];
    int64_t my_start[QUERIES_PER_WARP];
#pragma unroll
    for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
        int64_t i = q0 + warp * QUERIES_PER_WARP + qq;
        running_max[qq] = -INFINITY;
        running_sum[qq] = 0.0f;
        my_start[qq] = i < n ? visible_start(doc_start, i, window) : 0;
#pragma unroll
        for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++)
            acc[qq][dd] = 0.0f;
    }

    for (int64_t t0 = start; t0 <= last_query; t0 += AL_KEY_TILE) {
        __syncthreads(); /* the previous tile is no longer read */
        al_load_key_tile(keys, k, t0, n, kv_heads, kv_head, head_dim);
        al_load_key_tile(values, v, t0, n, kv_heads, kv_head, head_dim);
        __syncthreads();
        int64_t j = t0 + lane;
#pragma unroll
        for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
            int row = warp * QUERIES_PER_WARP + qq;
            int64_t i = q0 + row;
            if (i >= n || t0 > i || t0 + AL_KEY_TILE <= my_start[qq])
                continue; /* warp-uniform: this tile is fully masked for this query */
            bool valid = j >= my_start[qq] && j <= i;
            float s = -INFINITY;
            if (valid) {
                float dot = 0.0f;
                for (int d = 0; d < head_dim; d++)
                    dot += queries[row * head_dim + d] * keys[lane * pitch + d];
                s = dot * scale;
            }
            float tile_max = al_warp_max(s);
            if (tile_max == -INFINITY)
                continue;
            al_online_softmax_tile(s, valid, tile_max, &running_max[qq], &running_sum[qq], acc[qq], values, pitch,
                                   head_dim, lane);
        }
    }

#pragma unroll
    for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
        int64_t i = q0 + warp * QUERIES_PER_WARP + qq;
        if (i >= n)
            continue;
        float inv_sum = 1.0f / running_sum[qq];
        al_bf16 *o = out + (i * q_heads + head) * head_dim;
#pragma unroll
        for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++) {
            int d = lane + AL_WARP_SIZE * dd;
            if (d < head_dim)
                o[d] = __float2bfloat16_rn(acc[qq][dd] * inv_sum);
        }
        if (lane == 0)
            lse[i * q_heads + head] = running_max[qq] + logf(running_sum[qq]);
    }
}

/* delta[i, h] = sum_d dout[i, h, d] * out[i, h, d]: one warp per (token, head). */
__global__ void attention_delta_kernel(float *delta, const al_bf16 *dout, const al_bf16 *out, int64_t rows,
                                       int head_dim)
{
    int64_t row = (int64_t)blockIdx.x * ATTENTION_WARPS + threadIdx.x / AL_WARP_SIZE;
    int lane = threadIdx.x % AL_WARP_SIZE;
    if (row >= rows)
        return;
    float sum = 0.0f;
    for (int d = lane; d < head_dim; d += AL_WARP_SIZE)
        sum += __bfloat162float(dout[row * head_dim + d]) * __bfloat162float(out[row * head_dim + d]);
    sum = al_warp_sum(sum);
    if (lane == 0)
        delta[row] = sum;
}

/* dq_i = scale * sum_j ds_ij k_j, ds_ij = p_ij (dout_i . v_j - delta_i): the forward's
 * structure, one block per (query tile, query head). */
__global__ void __launch_bounds__(ATTENTION_THREADS)
    attention_backward_dq_kernel(al_bf16 *dq, const al_bf16 *dout, const al_bf16 *q, const al_bf16 *k,
                                 const al_bf16 *v, const float *lse, const float *delta, const int32_t *doc_start,
                                 int window, int64_t n, int q_heads, int kv_heads, int head_dim, float scale)
{
    extern __shared__ float shared[];
    int pitch = al_key_pitch(head_dim);
    float *keys = shared;
    float *values = keys + AL_KEY_TILE * pitch;
    float *queries = values + AL_KEY_TILE * pitch;
    float *grads = queries + QUERY_TILE * head_dim;
    int warp = threadIdx.x / AL_WARP_SIZE, lane = threadIdx.x % AL_WARP_SIZE;
    int64_t q0 = (int64_t)blockIdx.x * QUERY_TILE;
    int head = blockIdx.y;
    int kv_head = head / (q_heads / kv_heads);
    int64_t last_query = (q0 + QUERY_TILE < n ? q0 + QUERY_TILE : n) - 1;

    load_query_tile(queries, q, q0, n, q_heads, head, head_dim);
    load_query_tile(grads, dout, q0, n, q_heads, head, head_dim);
    int64_t start = first_key_tile(doc_start, window, q0, n);

    float acc[QUERIES_PER_WARP][AL_DIMS_PER_LANE];
    float my_lse[QUERIES_PER_WARP], my_delta[QUERIES_PER_WARP];
    int64_t my_start[QUERIES_PER_WARP];
#pragma unroll
    for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
        int64_t i = q0 + warp * QUERIES_PER_WARP + qq;
        bool real = i < n;
        my_start[qq] = real ? visible_start(doc_start, i, window) : 0;
        my_lse[qq] = real ? lse[i * q_heads + head] : 0.0f;
        my_delta[qq] = real ? delta[i * q_heads + head] : 0.0f;
#pragma unroll
        for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++)
            acc[qq][dd] = 0.0f;
    }

    for (int64_t t0 = start; t0 <= last_query; t0 += AL_KEY_TILE) {
        __syncthreads();
        al_load_key_tile(keys, k, t0, n, kv_heads, kv_head, head_dim);
        al_load_key_tile(values, v, t0, n, kv_heads, kv_head, head_dim);
        __syncthreads();
        int64_t j = t0 + lane;
#pragma unroll
        for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
            int row = warp * QUERIES_PER_WARP + qq;
            int64_t i = q0 + row;
            if (i >= n || t0 > i || t0 + AL_KEY_TILE <= my_start[qq])
                continue;
            bool valid = j >= my_start[qq] && j <= i;
            float ds = 0.0f;
            if (valid) {
                float score = 0.0f, dp = 0.0f;
                for (int d = 0; d < head_dim; d++) {
                    score += queries[row * head_dim + d] * keys[lane * pitch + d];
                    dp += grads[row * head_dim + d] * values[lane * pitch + d];
                }
                float p = expf(score * scale - my_lse[qq]);
                ds = p * (dp - my_delta[qq]);
            }
            al_accumulate_tile_rows(acc[qq], ds, keys, pitch, head_dim, lane);
        }
    }

#pragma unroll
    for (int qq = 0; qq < QUERIES_PER_WARP; qq++) {
        int64_t i = q0 + warp * QUERIES_PER_WARP + qq;
        if (i >= n)
            continue;
        al_bf16 *g = dq + (i * q_heads + head) * head_dim;
#pragma unroll
        for (int dd = 0; dd < AL_DIMS_PER_LANE; dd++) {
            int d = lane + AL_WARP_SIZE * dd;
            if (d < head_dim)
                g[d] = __float2bfloat16_rn(acc[qq][dd] * scale);
        }
    }
}

/* dk_j = scale * sum_i ds_ij q_i and dv_j = sum_i p_ij dout_i over every query i of every
 * query head in the kv head's group: one block per (key tile, kv head) owns its 32 keys'
 * gradients, so no two blocks write the same dk/dv row.
 *
 * The block walks the (query, head) items in rounds of one item per warp: each warp forms
 * p and ds of its item for the 32 keys (lane = key), then, after a barrier, each thread adds
 * the round's 4 contributions to the (key, dimension) accumulators it alone owns, always
 * in warp order. No atomics, so the sums (and training) are deterministic. */
__global__ void __launch_bounds__(ATTENTION_THREADS)
    attention_backward_dkdv_kernel(al_bf16 *dk, al_bf16 *dv, const al_bf16 *dout, const al_bf16 *q,
                                   const al_bf16 *k, const al_bf16 *v, const float *lse, const float *delta,
                                   const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                                   int head_dim, float scale)
{
    extern __shared__ float shared[];
    int pitch = al_key_pitch(head_dim);
    float *keys = shared;
    float *values = keys + AL_KEY_TILE * pitch;
    float *dkeys = values + AL_KEY_TILE * pitch;
    float *dvalues = dkeys + AL_KEY_TILE * pitch;
    float *queries = dvalues + AL_KEY_TILE * pitch;            /* [warp][head_dim]: each warp's q_i */
    float *grads = queries + ATTENTION_WARPS * head_dim;    /* [warp][head_dim]: and dout_i */
    float *probs = grads + ATTENTION_WARPS * head_dim;      /* [warp][AL_KEY_TILE]: p_ij */
    float *dscores = probs + ATTENTION_WARPS * AL_KEY_TILE;    /* [warp][AL_KEY_TILE]: ds_ij */
    int warp = threadIdx.x / AL_WARP_SIZE, lane = threadIdx.x % AL_WARP_SIZE;
    int64_t j0 = (int64_t)blockIdx.x * AL_KEY_TILE;
    int kv_head = blockIdx.y;
    int group = q_heads / kv_heads;
    int64_t last_key = (j0 + AL_KEY_TILE < n ? j0 + AL_KEY_TILE : n) - 1;

    al_load_key_tile(keys, k, j0, n, kv_heads, kv_head, head_dim);
    al_load_key_tile(values, v, j0, n, kv_heads, kv_head, head_dim);
    for (int t = threadIdx.x; t < AL_KEY_TILE * pitch; t += blockDim.x) {
        dkeys[t] = 0.0f;
        dvalues[t] = 0.0f;
    }
    __syncthreads();

    int64_t j = j0 + lane;
    float *query = queries + warp * head_dim;
    float *grad = grads + warp * head_dim;
    /* Queries before j0 never see these keys, nor (with a window) queries from
     * last_key + window on; the others are skipped by their visible start. */
    int64_t query_end = window > 0 && last_key + window < n ? last_key + window : n;
    int64_t items = (query_end - j0) * group;
    for (int64_t round = 0; round < items; round += ATTENTION_WARPS) {
        int64_t item = round + warp;
        float p = 0.0f, ds = 0.0f;
        if (item < items) {
            int64_t i = j0 + item / group;
            int head = kv_head * group + (int)(item % group);
            int64_t start = visible_start(doc_start, i, window);
            if (start <= last_key) { /* warp-uniform */
                const al_bf16 *qi = q + (i * q_heads + head) * head_dim;
                const al_bf16 *gi = dout + (i * q_heads + head) * head_dim;
                for (int d = lane; d < head_dim; d += AL_WARP_SIZE) {
                    query[d] = __bfloat162float(qi[d]);
                    grad[d] = __bfloat162float(gi[d]);
                }
                __syncwarp();
                if (j <= last_key && j >= start && j <= i) {
                    float score = 0.0f, dp = 0.0f;
                    for (int d = 0; d < head_dim; d++) {
                        score += query[d] * keys[lane * pitch + d];
                        dp += grad[d] * values[lane * pitch + d];
                    }
                    p = expf(score * scale - lse[i * q_heads + head]);
                    ds = p * (dp - delta[i * q_heads + head]);
                }
            }
        }
        probs[warp * AL_KEY_TILE + lane] = p;
        dscores[warp * AL_KEY_TILE + lane] = ds;
        /* A barrier that also tells whether any warp has work this round. */
        if (!__syncthreads_or(p != 0.0f))
            continue;
        for (int e = threadIdx.x; e < AL_KEY_TILE * head_dim; e += blockDim.x) {
            int jj = e / head_dim, d = e % head_dim;
            float dv_sum = 0.0f, dk_sum = 0.0f;
            for (int w = 0; w < ATTENTION_WARPS; w++) {
                float pw = probs[w * AL_KEY_TILE + jj];
                if (pw != 0.0f) { /* a warp without work left stale query and grad rows */
                    dv_sum += pw * grads[w * head_dim + d];
                    dk_sum += dscores[w * AL_KEY_TILE + jj] * queries[w * head_dim + d];
                }
            }
            dvalues[jj * pitch + d] += dv_sum;
            dkeys[jj * pitch + d] += dk_sum;
        }
        __syncthreads(); /* probs, queries and grads are rewritten next round */
    }
    __syncthreads(); /* cheap, and keeps the write-out independent of how the pairs were split */

    for (int t = threadIdx.x; t < AL_KEY_TILE * head_dim; t += blockDim.x) {
        int r = t / head_dim, d = t % head_dim;
        int64_t key = j0 + r;
        if (key >= n)
            continue;
        int64_t offset = (key * kv_heads + kv_head) * head_dim + d;
        dk[offset] = __float2bfloat16_rn(dkeys[r * pitch + d] * scale);
        dv[offset] = __float2bfloat16_rn(dvalues[r * pitch + d]);
    }
}

/* Raises a kernel's dynamic shared-memory limit when it needs more than the default. */
template <typename Kernel> static cudaError_t allow_shared(Kernel kernel, size_t bytes)
{
    if (bytes <= DEFAULT_SHARED_LIMIT)
        return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

static float score_scale(int head_dim)
{
    return 1.0f / sqrtf((float)head_dim);
}

static unsigned query_tiles(int64_t n)
{
    return (unsigned)((n + QUERY_TILE - 1) / QUERY_TILE);
}

cudaError_t al_launch_attention_forward(al_bf16 *out, float *lse, const al_bf16 *q, const al_bf16 *k,
                                        const al_bf16 *v, const int32_t *doc_start, int window, int64_t n,
                                        int q_heads, int kv_heads, int head_dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    size_t bytes = (size_t)(2 * AL_KEY_TILE * al_key_pitch(head_dim) + QUERY_TILE * head_dim) * sizeof(float);
    cudaError_t status = allow_shared(attention_forward_kernel, bytes);
    if (status != cudaSuccess)
        return status;
    dim3 grid(query_tiles(n), (unsigned)q_heads);
    attention_forward_kernel<<<grid, ATTENTION_THREADS, bytes, stream>>>(out, lse, q, k, v, doc_start, window, n,
                                                                         q_heads, kv_heads, head_dim,
                                                                         score_scale(head_dim));
    return cudaGetLastError();
}

cudaError_t al_launch_attention_delta(float *delta, const al_bf16 *dout, const al_bf16 *out, int64_t n,
                                      int q_heads, int head_dim, cudaStream_t stream)
{
    int64_t rows = n * q_heads;
    if (rows <= 0)
        return cudaSuccess;
    unsigned blocks = (unsigned)((rows + ATTENTION_WARPS - 1) / ATTENTION_WARPS);
    attention_delta_kernel<<<blocks, ATTENTION_THREADS, 0, stream>>>(delta, dout, out, rows, head_dim);
    return cudaGetLastError();
}

cudaError_t al_launch_attention_backward_dq(al_bf16 *dq, const al_bf16 *dout, const al_bf16 *q, const al_bf16 *k,
                                            const al_bf16 *v, const float *lse, const float *delta,
                                            const int32_t *doc_start, int window, int64_t n, int q_heads,
                                            int kv_heads, int head_dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    size_t bytes = (size_t)(2 * AL_KEY_TILE * al_key_pitch(head_dim) + 2 * QUERY_TILE * head_dim) * sizeof(float);
    cudaError_t status = allow_shared(attention_backward_dq_kernel, bytes);
    if (status != cudaSuccess)
        return status;
    dim3 grid(query_tiles(n), (unsigned)q_heads);
    attention_backward_dq_kernel<<<grid, ATTENTION_THREADS, bytes, stream>>>(
        dq, dout, q, k, v, lse, delta, doc_start, window, n, q_heads, kv_heads, head_dim, score_scale(head_dim));
    return cudaGetLastError();
}

cudaError_t al_launch_attention_backward_dkdv(al_bf16 *dk, al_bf16 *dv, const al_bf16 *dout, const al_bf16 *q,
                                              const al_bf16 *k, const al_bf16 *v, const float *lse,
                                              const float *delta, const int32_t *doc_start, int window, int64_t n,
                                              int q_heads, int kv_heads, int head_dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    size_t bytes = (size_t)(4 * AL_KEY_TILE * al_key_pitch(head_dim) + ATTENTION_WARPS * 2 * head_dim +
                            ATTENTION_WARPS * 2 * AL_KEY_TILE) *
                   sizeof(float);
    cudaError_t status = allow_shared(attention_backward_dkdv_kernel, bytes);
    if (status != cudaSuccess)
        return status;
    dim3 grid((unsigned)((n + AL_KEY_TILE - 1) / AL_KEY_TILE), (unsigned)kv_heads);
    attention_backward_dkdv_kernel<<<grid, ATTENTION_THREADS, bytes, stream>>>(
        dk, dv, dout, q, k, v, lse, delta, doc_start, window, n, q_heads, kv_heads, head_dim,
        score_scale(head_dim));
    return cudaGetLastError();
}
