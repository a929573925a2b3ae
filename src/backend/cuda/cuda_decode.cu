/* Host glue of KV-cache decoding (kernels/decode.cu): argument checks, then one launcher
 * each. CPU reference: src/backend/cpu/cpu_decode.c.
 *
 * Unlike the CPU ops, these do not range-check each token's sequence and position: seq
 * and pos are device memory here (the decoder uploads them), and reading them back would
 * stall the stream at every layer of every step. The decoder checks them on the host
 * before the upload (src/model/decode.c), and the kernels never step outside the cache
 * when one is wrong (see kernels/decode.cu). */
#include "backend/cuda/cuda_internal.h"

/* Grid limits of the attention launch: tokens index blocks in x, kv heads in y. */
#define MAX_GRID_X 2147483647LL
#define MAX_GRID_Y 65535

static int check_cache(const char *op, const struct al_kv_cache_layer *cache, int64_t n, int kv_heads, int head_dim)
{
    if (al_cuda_check_shape(op, n, kv_heads) != 0)
        return -1;
    if (head_dim <= 0 || head_dim > AL_ATTENTION_MAX_HEAD_DIM)
        return al_fail("%s: head_dim %d is outside 1..%d", op, head_dim, AL_ATTENTION_MAX_HEAD_DIM);
    if (!cache || !cache->k || !cache->v || cache->sequences <= 0 || cache->capacity <= 0)
        return al_fail("%s: the key/value cache is missing or empty", op);
    return 0;
}

int al_cuda_kv_cache_write(struct al_backend *backend, const struct al_kv_cache_layer *cache, const void *k,
                           const void *v, const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                           int head_dim)
{
    if (check_cache("cuda kv_cache_write", cache, n, kv_heads, head_dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_kv_cache_write((al_bf16 *)cache->k, (al_bf16 *)cache->v, (const al_bf16 *)k,
                                         (const al_bf16 *)v, seq, pos, n, kv_heads, head_dim, cache->sequences,
                                         cache->capacity, al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_decode_attention(struct al_backend *backend, void *out, const void *q,
                             const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos, int window,
                             int64_t n, int q_heads, int kv_heads, int head_dim)
{
    const char *op = "cuda decode_attention";
    if (check_cache(op, cache, n, kv_heads, head_dim) != 0)
        return -1;
    if (q_heads <= 0 || q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    if (window < 0)
        return al_fail("%s: sliding window %d is negative (0 means none)", op, window);
    if (n > MAX_GRID_X || kv_heads > MAX_GRID_Y)
        return al_fail("%s: %lld tokens of %d kv heads exceed the launch grid", op, (long long)n, kv_heads);
    AL_CUDA_TRY(al_launch_decode_attention((al_bf16 *)out, (const al_bf16 *)q, (const al_bf16 *)cache->k,
                                           (const al_bf16 *)cache->v, seq, pos, window, n, q_heads, kv_heads, head_dim,
                                           cache->sequences, cache->capacity, al_cuda_of(backend)->stream));
    return 0;
}
