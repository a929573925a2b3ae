/* Device memory for the CUDA backend: a few large cudaMalloc'd chunks (the first reserved
 * when the backend is created), carved into blocks by first fit, with neighbouring free
 * blocks merged on free. Tensors are allocated once per run and activations once per
 * step, so a list walk is cheap next to the cudaMalloc/cudaFree (and their device-wide
 * synchronisation) it replaces. No managed memory. */
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

/* Every block starts on this boundary: enough for 16-byte vector loads and for cuBLASLt's
 * preferred alignment. */
#define ARENA_ALIGNMENT 256

struct arena_block {
    char *base;
    size_t size;
    int free;
    int chunk; /* blocks merge only within their chunk */
    struct arena_block *prev, *next;
};

struct al_cuda_arena {
    struct arena_block *head, *tail; /* all blocks, chunk by chunk, in address order */
    void **chunks;
    int chunk_count;
    size_t grow_bytes;
    size_t in_use;      /* bytes of live blocks (rounded sizes), for memory_stats */
    size_t peak_in_use; /* the most in_use has been since creation or the last reset */
};

static size_t round_up(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    return (bytes + ARENA_ALIGNMENT - 1) / ARENA_ALIGNMENT * ARENA_ALIGNMENT;
}

static struct arena_block *new_block(char *base, size_t size, int chunk)
{
    struct arena_block *block = (struct arena_block *)calloc(1, sizeof *block);
    if (!block)
        return NULL;
    block->base = base;
    block->size = size;
    block->free = 1;
    block->chunk = chunk;
    return block;
}

static void insert_after(struct al_cuda_arena *arena, struct arena_block *at, struct arena_block *block)
{
    block->prev = at;
    block->next = at ? at->next : arena->head;
    if (block->next)
        block->next->prev = block;
    else
        arena->tail = block;
    if (at)
        at->next = block;
    else
        arena->head = block;
}

static void unlink_block(struct al_cuda_arena *arena, struct arena_block *block)
{
    if (block->prev)
        block->prev->next = block->next;
    else
        arena->head = block->next;
    if (block->next)
        block->next->prev = block->prev;
    else
        arena->tail = block->prev;
    free(block);
}

/* Reserves a new chunk of at least `bytes` (the growth size when that is larger; exactly
 * `bytes` when the larger request does not fit) as one free block at the end. */
static struct arena_block *add_chunk(struct al_cuda_arena *arena, size_t bytes)
{
    size_t size = bytes > arena->grow_bytes ? bytes : arena->grow_bytes;
    void *base = NULL;
    cudaError_t status = cudaMalloc(&base, size);
    if (status != cudaSuccess && size > bytes) {
        (void)cudaGetLastError(); /* an allocation failure is not sticky; clear it */
        size = bytes;
        status = cudaMalloc(&base, size);
    }
    if (al_cuda_check(status, "cudaMalloc(chunk)", __FILE__, __LINE__) != 0) {
        al_error_context("device arena: reserving %zu MiB", size >> 20);
        return NULL;
    }
    void **chunks = (void **)realloc(arena->chunks, (size_t)(arena->chunk_count + 1) * sizeof *chunks);
    struct arena_block *block = new_block((char *)base, size, arena->chunk_count);
    if (!chunks || !block) {
        if (chunks)
            arena->chunks = chunks;
        free(block);
        cudaFree(base);
        return (struct arena_block *)al_fail_null("device arena: out of host memory for its bookkeeping");
    }
    arena->chunks = chunks;
    arena->chunks[arena->chunk_count++] = base;
    insert_after(arena, arena->tail, block);
    return block;
}

struct al_cuda_arena *al_cuda_arena_create(size_t initial_bytes, size_t grow_bytes)
{
    struct al_cuda_arena *arena = (struct al_cuda_arena *)calloc(1, sizeof *arena);
    if (!arena)
        return (struct al_cuda_arena *)al_fail_null("device arena: out of host memory");
    arena->grow_bytes = round_up(grow_bytes);
    if (initial_bytes > 0 && !add_chunk(arena, round_up(initial_bytes))) {
        al_cuda_arena_destroy(arena);
        return NULL;
    }
    return arena;
}

void al_cuda_arena_destroy(struct al_cuda_arena *arena)
{
    if (!arena)
        return;
    while (arena->head)
        unlink_block(arena, arena->head);
    for (int c = 0; c < arena->chunk_count; c++)
        cudaFree(arena->chunks[c]);
    free(arena->chunks);
    free(arena);
}

void *al_cuda_arena_alloc(struct al_cuda_arena *arena, size_t bytes)
{
    size_t size = round_up(bytes);
    struct arena_block *block = arena->head;
    while (block && !(block->free && block->size >= size))
        block = block->next;
    if (!block && !(block = add_chunk(arena, size)))
        return NULL;
    if (block->size - size >= ARENA_ALIGNMENT) {
        struct arena_block *rest = new_block(block->base + size, block->size - size, block->chunk);
        if (!rest)
            return al_fail_null("device arena: out of host memory for its bookkeeping");
        insert_after(arena, block, rest);
        block->size = size;
    }
    block->free = 0;
    arena->in_use += block->size;
    if (arena->in_use > arena->peak_in_use)
        arena->peak_in_use = arena->in_use;
    return block->base;
}

static int mergeable(const struct arena_block *a, const struct arena_block *b)
{
    return a && b && a->free && b->free && a->chunk == b->chunk;
}

int al_cuda_arena_free(struct al_cuda_arena *arena, void *ptr)
{
    struct arena_block *block = arena->head;
    while (block && block->base != (char *)ptr)
        block = block->next;
    if (!block || block->free)
        return -1;
    block->free = 1;
    arena->in_use -= block->size;
    if (mergeable(block, block->next)) {
        block->size += block->next->size;
        unlink_block(arena, block->next);
    }
    if (mergeable(block->prev, block)) {
        block->prev->size += block->size;
        unlink_block(arena, block);
    }
    return 0;
}

void al_cuda_arena_usage(struct al_cuda_arena *arena, size_t *in_use, size_t *peak_in_use, int reset_peak)
{
    *in_use = arena->in_use;
    *peak_in_use = arena->peak_in_use;
    if (reset_peak)
        arena->peak_in_use = arena->in_use;
}
