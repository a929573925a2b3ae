// The launch side of the emulation (see emu.h): one OS thread per CUDA thread, blocks one
// at a time, dynamic shared memory poisoned before each block.
#include <stdio.h>
#include <stdlib.h>

#include "emu.h"

thread_local uint3 emu_thread_idx;
thread_local uint3 emu_block_idx;
dim3 emu_block_dim, emu_grid_dim;
emu_block *emu_current;
std::mutex emu_atomic_mutex;
float shared[1 << 17]; /* dynamic shared memory, 512 KiB */

void emu_run(dim3 grid, dim3 block, void (*body)(void *), void *context)
{
    emu_grid_dim = grid;
    emu_block_dim = block;
    unsigned threads = block.x * block.y * block.z;
    if (threads % 32 != 0 || threads > 1024) {
        fprintf(stderr, "emu: block of %u threads\n", threads);
        abort();
    }
    emu_block state;
    pthread_barrier_init(&state.block_barrier, NULL, threads);
    for (unsigned w = 0; w < threads / 32; w++)
        pthread_barrier_init(&state.warp_barrier[w], NULL, 32);
    state.or_flag = 0;
    emu_current = &state;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                memset(shared, 0xff, sizeof shared); /* uninitialised, as on a GPU */
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; t++)
                    pool.emplace_back([=]() {
                        emu_block_idx = make_uint3(bx, by, bz);
                        emu_thread_idx = make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                        body(context);
                    });
                for (auto &th : pool)
                    th.join();
            }
    pthread_barrier_destroy(&state.block_barrier);
    for (unsigned w = 0; w < threads / 32; w++)
        pthread_barrier_destroy(&state.warp_barrier[w]);
}
