// A slow, faithful-enough CPU emulation of the CUDA execution model for checking kernel
// logic without a GPU: one OS thread per CUDA thread, real barriers for __syncthreads and
// __syncwarp, shuffles through a per-warp exchange buffer. Blocks run one at a time, so
// `static` locals stand in for __shared__ memory.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <pthread.h>
#include <string.h>
#include <math.h>
#include <limits.h>
#include <mutex>
#include <thread>
#include <vector>
#include <atomic>

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) cudaSuccess

#define threadIdx emu_thread_idx
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim
extern thread_local uint3 emu_thread_idx;
extern thread_local uint3 emu_block_idx;
extern dim3 emu_block_dim, emu_grid_dim;

struct emu_block {
    pthread_barrier_t block_barrier;
    pthread_barrier_t warp_barrier[32];
    unsigned char exchange[32][32][8];
    std::atomic<int> or_flag;
};
extern emu_block *emu_current;
extern std::mutex emu_atomic_mutex;

inline int emu_tid() { return (int)(threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y); }

inline void __syncthreads() { pthread_barrier_wait(&emu_current->block_barrier); }
inline void __syncwarp(unsigned = 0xffffffffu) { pthread_barrier_wait(&emu_current->warp_barrier[emu_tid() / 32]); }
inline int __syncthreads_or(int predicate)
{
    if (predicate)
        emu_current->or_flag = 1;
    __syncthreads();
    int result = emu_current->or_flag;
    __syncthreads();
    if (emu_tid() == 0)
        emu_current->or_flag = 0;
    __syncthreads();
    return result;
}

template <typename T> T emu_shuffle(T v, int source_lane)
{
    int t = emu_tid(), w = t / 32, l = t % 32;
    memcpy(emu_current->exchange[w][l], &v, sizeof(T));
    __syncwarp();
    T r;
    memcpy(&r, emu_current->exchange[w][source_lane & 31], sizeof(T));
    __syncwarp();
    return r;
}
template <typename T> T __shfl_sync(unsigned, T v, int src) { return emu_shuffle(v, src); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int mask) { return emu_shuffle(v, (emu_tid() % 32) ^ mask); }

inline int atomicMin(int *a, int v)
{
    std::lock_guard<std::mutex> g(emu_atomic_mutex);
    int old = *a;
    if (v < old)
        *a = v;
    return old;
}
inline float atomicAdd(float *a, float v)
{
    std::lock_guard<std::mutex> g(emu_atomic_mutex);
    float old = *a;
    *a = old + v;
    return old;
}

void emu_run(dim3 grid, dim3 block, void (*body)(void *), void *context);

template <typename K> struct emu_launcher {
    K kernel;
    dim3 grid, block;
    template <typename... A> void operator()(A... args)
    {
        auto call = [&]() { kernel(args...); };
        emu_run(grid, block, [](void *c) { (*(decltype(call) *)c)(); }, &call);
    }
};
template <typename K> emu_launcher<K> emu_launch(K kernel, dim3 grid, dim3 block, size_t = 0, cudaStream_t = 0)
{
    return emu_launcher<K>{kernel, grid, block};
}
