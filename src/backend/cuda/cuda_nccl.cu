// Data parallelism on CUDA: the backend's group ops over NCCL, one process per GPU.
//
// libnccl.so.2 is loaded with dlopen when a run first joins a group, so a single-process
// run, and a build machine without NCCL, need no NCCL at all. The few ABI facts used
// (ncclUniqueId is 128 bytes, ncclFloat32 = 7, ncclSum = 0, a communicator is a pointer)
// are NCCL 2's, stable across its releases. The group id travels between ranks over MPI
// (the trainer broadcasts rank 0's), as NCCL intends.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

namespace {

typedef int nccl_result;
typedef void *nccl_comm;
struct nccl_unique_id {
    char internal[AL_BACKEND_GROUP_ID_BYTES];
};
const int NCCL_FLOAT32 = 7;
const int NCCL_SUM = 0;

struct nccl_library {
    void *handle;
    nccl_result (*get_unique_id)(nccl_unique_id *id);
    nccl_result (*comm_init_rank)(nccl_comm *comm, int nranks, nccl_unique_id id, int rank);
    nccl_result (*all_reduce)(const void *send, void *receive, size_t count, int type, int op, nccl_comm comm,
                              cudaStream_t stream);
    nccl_result (*comm_destroy)(nccl_comm comm);
    const char *(*error_string)(nccl_result result);
};

nccl_library nccl;

template <typename F> int find_symbol(F *out, const char *name)
{
    *out = (F)dlsym(nccl.handle, name);
    return *out ? 0 : al_fail("NCCL (libnccl.so.2) has no %s: not NCCL 2?", name);
}

int load_nccl()
{
    if (nccl.handle)
        return 0;
    nccl.handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!nccl.handle)
        return al_fail("data parallelism on CUDA uses NCCL, and libnccl.so.2 could not be loaded (%s); install "
                       "NCCL (the CUDA toolkit's, or the nvidia-nccl-cu* wheel's lib folder on LD_LIBRARY_PATH)",
                       dlerror());
    if (find_symbol(&nccl.get_unique_id, "ncclGetUniqueId") || find_symbol(&nccl.comm_init_rank, "ncclCommInitRank") ||
        find_symbol(&nccl.all_reduce, "ncclAllReduce") || find_symbol(&nccl.comm_destroy, "ncclCommDestroy") ||
        find_symbol(&nccl.error_string, "ncclGetErrorString")) {
        dlclose(nccl.handle);
        nccl.handle = NULL;
        return -1;
    }
    return 0;
}

int nccl_check(nccl_result result, const char *call)
{
    if (result == 0)
        return 0;
    return al_fail("%s failed: %s (NCCL error %d)", call, nccl.error_string(result), result);
}

} // namespace

int al_cuda_group_id(struct al_backend *backend, unsigned char *id)
{
    (void)backend;
    if (load_nccl() != 0)
        return -1;
    nccl_unique_id unique;
    if (nccl_check(nccl.get_unique_id(&unique), "ncclGetUniqueId") != 0)
        return -1;
    memcpy(id, unique.internal, sizeof unique.internal);
    return 0;
}

int al_cuda_group_join(struct al_backend *backend, const unsigned char *id, int rank, int size)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (load_nccl() != 0)
        return -1;
    if (cuda->group)
        return al_fail("cuda backend: already in a group of %d ranks", cuda->group_size);
    nccl_unique_id unique;
    memcpy(unique.internal, id, sizeof unique.internal);
    AL_CUDA_TRY(cudaSetDevice(cuda->device));
    nccl_comm comm = NULL;
    if (nccl_check(nccl.comm_init_rank(&comm, size, unique, rank), "ncclCommInitRank") != 0)
        return -1;
    cuda->group = comm;
    cuda->group_size = size;
    return 0;
}

int al_cuda_group_sum_f32(struct al_backend *backend, float *data, int64_t n)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (!cuda->group)
        return al_fail("cuda group_sum_f32: the backend has joined no group");
    if (n < 0)
        return al_fail("cuda group_sum_f32: negative element count %lld", (long long)n);
    if (nccl_check(nccl.all_reduce(data, data, (size_t)n, NCCL_FLOAT32, NCCL_SUM, (nccl_comm)cuda->group,
                                   cuda->stream),
                   "ncclAllReduce") != 0)
        return -1;
    AL_CUDA_TRY(cudaGetLastError());
    return 0;
}

void al_cuda_group_leave(struct al_cuda *cuda)
{
    if (cuda->group && nccl.handle)
        nccl.comm_destroy((nccl_comm)cuda->group);
    cuda->group = NULL;
    cuda->group_size = 0;
}
