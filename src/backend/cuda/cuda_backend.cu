/* The CUDA backend: device selection, the stream and library handles, memory and copies,
 * and the ops table. bf16 activations and frozen weights; F32 LoRA state (backend.h). */
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "agentlora/log.h"
}

#include "backend/cuda/cuda_internal.h"

/* bf16 tensor-core GEMMs and the kernels' bf16 arithmetic need compute capability 8.0. */
#define MIN_COMPUTE_MAJOR 8
/* cuBLASLt's recommended workspace on Hopper. */
#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)
/* The arena reserves this much when the backend is created (AL_CUDA_ARENA_MB overrides:
 * a trainer sets it to nearly the whole card) and grows by as much again when full. */
#define DEFAULT_ARENA_MB 512
#define MIB ((size_t)1 << 20)

static size_t arena_bytes_from_environment(void)
{
    const char *text = getenv("AL_CUDA_ARENA_MB");
    if (text && *text) {
        char *end = NULL;
        long long mb = strtoll(text, &end, 10);
        if (end && *end == '\0' && mb > 0)
            return (size_t)mb * MIB;
        al_log_warn("AL_CUDA_ARENA_MB='%s' is not a positive number of MiB; using %d", text, DEFAULT_ARENA_MB);
    }
    return (size_t)DEFAULT_ARENA_MB * MIB;
}

/* ---- memory ---- */

void *al_cuda_scratch(struct al_cuda *cuda, size_t bytes, const char *what)
{
    void *ptr = al_cuda_arena_alloc(cuda->arena, bytes);
    if (!ptr)
        al_error_context("scratch for %s (%zu bytes)", what, bytes);
    return ptr;
}

void al_cuda_scratch_free(struct al_cuda *cuda, void *ptr)
{
    if (ptr)
        al_cuda_arena_free(cuda->arena, ptr);
}

static void *cuda_alloc(struct al_backend *backend, size_t bytes)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    void *ptr = al_cuda_arena_alloc(cuda->arena, bytes);
    if (!ptr)
        return NULL;
    if (al_cuda_check(cudaMemsetAsync(ptr, 0, bytes, cuda->stream), "cudaMemsetAsync", __FILE__, __LINE__) != 0) {
        al_cuda_arena_free(cuda->arena, ptr);
        return NULL;
    }
    return ptr;
}

static void cuda_free(struct al_backend *backend, void *ptr)
{
    if (ptr && al_cuda_arena_free(al_cuda_of(backend)->arena, ptr) != 0)
        al_log_warn("cuda free: %p is not a live allocation of this backend", ptr);
}

static int cuda_zero(struct al_backend *backend, void *ptr, size_t bytes)
{
    AL_CUDA_TRY(cudaMemsetAsync(ptr, 0, bytes, al_cuda_of(backend)->stream));
    return 0;
}

/* Copies wait for the stream: the host buffer may be reused or read as soon as they return. */
static int cuda_copy_to_backend(struct al_backend *backend, void *dst, const void *host_src, size_t bytes)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    AL_CUDA_TRY(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, cuda->stream));
    AL_CUDA_TRY(cudaStreamSynchronize(cuda->stream));
    return 0;
}

static int cuda_copy_to_host(struct al_backend *backend, void *host_dst, const void *src, size_t bytes)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    AL_CUDA_TRY(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, cuda->stream));
    AL_CUDA_TRY(cudaStreamSynchronize(cuda->stream));
    return 0;
}

static int check_float_dtype(const char *op, enum al_dtype dtype)
{
    if (dtype != AL_DTYPE_F32 && dtype != AL_DTYPE_F16 && dtype != AL_DTYPE_BF16)
        return al_fail("%s: unsupported element type %s (expected F32, F16 or BF16)", op, al_dtype_name(dtype));
    return 0;
}

/* Conversions go through a device staging buffer of at most this many elements, so that
 * loading a multi-gigabyte F32 tensor does not reserve as much again in the arena. */
#define STAGING_ELEMENTS ((int64_t)16 << 20)

static int64_t staging_elements(int64_t n)
{
    return n < STAGING_ELEMENTS ? n : STAGING_ELEMENTS;
}

/* The raw host elements go to the staging buffer slice by slice, and a kernel converts
 * each slice into place. */
static int upload_slices(struct al_cuda *cuda, char *dst, enum al_dtype dst_dtype, const char *host_src,
                         enum al_dtype src_dtype, int64_t n, void *staging)
{
    size_t src_size = al_dtype_size(src_dtype), dst_size = al_dtype_size(dst_dtype);
    for (int64_t first = 0; first < n; first += STAGING_ELEMENTS) {
        int64_t count = staging_elements(n - first);
        AL_CUDA_TRY(cudaMemcpyAsync(staging, host_src + first * src_size, (size_t)count * src_size,
                                    cudaMemcpyHostToDevice, cuda->stream));
        AL_CUDA_TRY(al_launch_convert(dst + first * dst_size, dst_dtype, staging, src_dtype, count, cuda->stream));
    }
    AL_CUDA_TRY(cudaStreamSynchronize(cuda->stream)); /* the host buffer may go as soon as we return */
    return 0;
}

static int cuda_upload_convert(struct al_backend *backend, void *dst, enum al_dtype dst_dtype, const void *host_src,
                               enum al_dtype src_dtype, int64_t n)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (check_float_dtype("cuda upload_convert", dst_dtype) != 0 ||
        check_float_dtype("cuda upload_convert", src_dtype) != 0)
        return -1;
    if (n < 0)
        return al_fail("cuda upload_convert: negative element count %lld", (long long)n);
    if (n == 0)
        return 0;
    if (dst_dtype == src_dtype)
        return cuda_copy_to_backend(backend, dst, host_src, (size_t)n * al_dtype_size(src_dtype));
    void *staging = al_cuda_scratch(cuda, (size_t)staging_elements(n) * al_dtype_size(src_dtype), "upload_convert");
    if (!staging)
        return -1;
    int status = upload_slices(cuda, (char *)dst, dst_dtype, (const char *)host_src, src_dtype, n, staging);
    al_cuda_scratch_free(cuda, staging);
    return status;
}

static int download_slices(struct al_backend *backend, float *host_dst, const char *src, enum al_dtype src_dtype,
                           int64_t n, float *staging)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    size_t src_size = al_dtype_size(src_dtype);
    for (int64_t first = 0; first < n; first += STAGING_ELEMENTS) {
        int64_t count = staging_elements(n - first);
        AL_CUDA_TRY(al_launch_convert(staging, AL_DTYPE_F32, src + first * src_size, src_dtype, count, cuda->stream));
        if (cuda_copy_to_host(backend, host_dst + first, staging, (size_t)count * sizeof(float)) != 0)
            return -1;
    }
    return 0;
}

static int cuda_download_f32(struct al_backend *backend, float *host_dst, const void *src, enum al_dtype src_dtype,
                             int64_t n)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (check_float_dtype("cuda download_f32", src_dtype) != 0)
        return -1;
    if (n < 0)
        return al_fail("cuda download_f32: negative element count %lld", (long long)n);
    if (n == 0)
        return 0;
    if (src_dtype == AL_DTYPE_F32)
        return cuda_copy_to_host(backend, host_dst, src, (size_t)n * sizeof(float));
    float *staging = (float *)al_cuda_scratch(cuda, (size_t)staging_elements(n) * sizeof(float), "download_f32");
    if (!staging)
        return -1;
    int status = download_slices(backend, host_dst, (const char *)src, src_dtype, n, staging);
    al_cuda_scratch_free(cuda, staging);
    return status;
}

static int cuda_synchronize(struct al_backend *backend)
{
    AL_CUDA_TRY(cudaStreamSynchronize(al_cuda_of(backend)->stream));
    AL_CUDA_TRY(cudaGetLastError());
    return 0;
}

static int cuda_memory_stats(struct al_backend *backend, size_t *in_use, size_t *peak_in_use, int reset_peak)
{
    al_cuda_arena_usage(al_cuda_of(backend)->arena, in_use, peak_in_use, reset_peak);
    return 0;
}

/* ---- lifetime ---- */

static void destroy_context(struct al_cuda *cuda)
{
    if (!cuda)
        return;
    if (cuda->stream)
        cudaStreamSynchronize(cuda->stream);
    al_cuda_group_leave(cuda);
    if (cuda->blas_lt)
        cublasLtDestroy(cuda->blas_lt);
    if (cuda->blas)
        cublasDestroy(cuda->blas);
    al_cuda_arena_destroy(cuda->arena); /* also the workspace and partials, carved from it */
    if (cuda->stream)
        cudaStreamDestroy(cuda->stream);
    free(cuda);
}

static void cuda_destroy(struct al_backend *backend)
{
    destroy_context(al_cuda_of(backend));
    free(backend);
}

static int pick_device(int device_index)
{
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess)
        return al_cuda_check_runtime(status, "cudaGetDeviceCount", __FILE__, __LINE__);
    if (count == 0)
        return al_fail("no NVIDIA GPU found: no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver); "
                       "use --device cpu");
    if (device_index < 0 || device_index >= count)
        return al_fail("CUDA device %d requested, but %d device%s visible", device_index, count,
                       count == 1 ? " is" : "s are");
    cudaDeviceProp properties;
    AL_CUDA_TRY(cudaGetDeviceProperties(&properties, device_index));
    if (properties.major < MIN_COMPUTE_MAJOR)
        return al_fail("CUDA device %d (%s) has compute capability %d.%d; bf16 training needs %d.0 or newer",
                       device_index, properties.name, properties.major, properties.minor, MIN_COMPUTE_MAJOR);
    AL_CUDA_TRY(cudaSetDevice(device_index));
    al_log_info("CUDA device %d: %s, compute capability %d.%d, %zu MiB", device_index, properties.name,
                properties.major, properties.minor, properties.totalGlobalMem >> 20);
    return 0;
}

static int init_context(struct al_cuda *cuda)
{
    AL_CUDA_TRY(cudaStreamCreateWithFlags(&cuda->stream, cudaStreamNonBlocking));
    AL_CUDA_TRY(cublasCreate(&cuda->blas));
    AL_CUDA_TRY(cublasSetStream(cuda->blas, cuda->stream));
    AL_CUDA_TRY(cublasLtCreate(&cuda->blas_lt));
    size_t arena_bytes = arena_bytes_from_environment();
    cuda->arena = al_cuda_arena_create(arena_bytes, arena_bytes);
    if (!cuda->arena)
        return -1;
    cuda->gemm_workspace_bytes = GEMM_WORKSPACE_BYTES;
    cuda->gemm_workspace = al_cuda_arena_alloc(cuda->arena, GEMM_WORKSPACE_BYTES);
    cuda->reduce_partials = (float *)al_cuda_arena_alloc(cuda->arena, AL_SUM_SQUARES_BLOCKS * sizeof(float));
    if (!cuda->gemm_workspace || !cuda->reduce_partials)
        return -1;
    return 0;
}

static const struct al_backend_ops cuda_ops = {
    cuda_destroy,
    cuda_alloc,
    cuda_free,
    cuda_zero,
    cuda_copy_to_backend,
    cuda_copy_to_host,
    cuda_upload_convert,
    cuda_download_f32,
    cuda_synchronize,
    al_cuda_embedding_forward,
    al_cuda_embedding_backward,
    al_cuda_rmsnorm_forward,
    al_cuda_rmsnorm_backward,
    al_cuda_rope_forward,
    al_cuda_rope_backward,
    al_cuda_attention_forward,
    al_cuda_attention_backward,
    al_cuda_swiglu_forward,
    al_cuda_swiglu_backward,
    al_cuda_linear_forward,
    al_cuda_linear_backward,
    al_cuda_add,
    al_cuda_lm_head_cross_entropy,
    al_cuda_sum_squares,
    al_cuda_adamw,
    al_cuda_kv_cache_write,
    al_cuda_decode_attention,
    cuda_memory_stats,
    al_cuda_group_id,
    al_cuda_group_join,
    al_cuda_group_sum_f32,
};

extern "C" struct al_backend *al_backend_cuda_create(int device_index)
{
    if (pick_device(device_index) != 0)
        return NULL;
    struct al_cuda *cuda = (struct al_cuda *)calloc(1, sizeof *cuda);
    struct al_backend *backend = (struct al_backend *)calloc(1, sizeof *backend);
    if (!cuda || !backend) {
        free(cuda);
        free(backend);
        return (struct al_backend *)al_fail_null("cuda backend: out of host memory");
    }
    cuda->device = device_index;
    if (init_context(cuda) != 0) {
        al_error_context("creating the CUDA backend on device %d", device_index);
        destroy_context(cuda);
        free(backend);
        return NULL;
    }
    backend->name = "cuda";
    backend->act_dtype = AL_DTYPE_BF16;
    backend->weight_dtype = AL_DTYPE_BF16;
    backend->ops = &cuda_ops;
    backend->impl = cuda;
    return backend;
}
