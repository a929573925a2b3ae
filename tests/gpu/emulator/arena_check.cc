// Randomised check of the device arena on faked cudaMalloc: live blocks never overlap,
// every block is 256-byte aligned, freed memory is reused, and after freeing everything
// one large allocation fits in the first chunk again (neighbours merged).
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#include <algorithm>
#include "backend/cuda/cuda_internal.h"

int main()
{
    const size_t chunk = 1 << 20;
    struct al_cuda_arena *arena = al_cuda_arena_create(chunk, chunk);
    if (!arena) { printf("create failed\n"); return 1; }
    struct live { char *p; size_t n; };
    std::vector<live> blocks;
    srand(7);
    char *first = (char *)al_cuda_arena_alloc(arena, 16);
    al_cuda_arena_free(arena, first);
    for (int step = 0; step < 20000; step++) {
        if (blocks.empty() || rand() % 3 != 0) {
            size_t n = (size_t)(rand() % 5000) + (rand() % 50 == 0 ? 3 * chunk / 2 : 0);
            char *p = (char *)al_cuda_arena_alloc(arena, n);
            if (!p) { printf("alloc failed: %s\n", al_error_message()); return 1; }
            if ((uintptr_t)p % 256) { printf("misaligned\n"); return 1; }
            for (auto &b : blocks)
                if (p < b.p + b.n && b.p < p + (n ? n : 1)) { printf("overlap at step %d\n", step); return 1; }
            blocks.push_back({p, n ? n : 1});
        } else {
            size_t i = (size_t)rand() % blocks.size();
            if (al_cuda_arena_free(arena, blocks[i].p) != 0) { printf("free failed\n"); return 1; }
            blocks.erase(blocks.begin() + (long)i);
        }
        if (blocks.size() > 300) {
            for (auto &b : blocks) al_cuda_arena_free(arena, b.p);
            blocks.clear();
        }
    }
    for (auto &b : blocks) al_cuda_arena_free(arena, b.p);
    if (al_cuda_arena_free(arena, first) == 0) { printf("double free accepted\n"); return 1; }
    char *whole = (char *)al_cuda_arena_alloc(arena, chunk);
    if (whole != first) { printf("first chunk not merged back: %p vs %p\n", (void *)whole, (void *)first); return 1; }
    al_cuda_arena_destroy(arena);
    printf("arena ok\n");
    return 0;
}
