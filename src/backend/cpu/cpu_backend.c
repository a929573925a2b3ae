/* The CPU reference backend: F32 everywhere, host memory, OpenBLAS GEMMs and OpenMP
 * loops. This file holds the backend object, the memory ops and the ops table; each op
 * family lives in its own cpu_*.c file. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* Cache-line alignment: vector loads never straddle lines, and BLAS gets aligned rows. */
#define CPU_ALLOC_ALIGNMENT 64

int al_cpu_check_shape(const char *op, int64_t n, int dim)
{
    if (n < 0)
        return al_fail("%s: negative token count %lld", op, (long long)n);
    if (dim <= 0)
        return al_fail("%s: dimension must be positive, got %d", op, dim);
    return 0;
}

static void cpu_destroy(struct al_backend *backend)
{
    free(backend);
}

/* ---- memory ---- */

static void *cpu_alloc(struct al_backend *backend, size_t bytes)
{
    (void)backend;
    /* aligned_alloc wants a multiple of the alignment; a zero-byte request still gets a
     * distinct pointer so that callers can treat NULL purely as failure. */
    size_t rounded = (bytes + CPU_ALLOC_ALIGNMENT - 1) / CPU_ALLOC_ALIGNMENT * CPU_ALLOC_ALIGNMENT;
    if (rounded == 0)
        rounded = CPU_ALLOC_ALIGNMENT;
    if (rounded < bytes)
        return al_fail_null("cpu alloc: %zu bytes is too large", bytes);
    void *ptr = aligned_alloc(CPU_ALLOC_ALIGNMENT, rounded);
    if (!ptr)
        return al_fail_null("cpu alloc: out of memory allocating %zu bytes", bytes);
    memset(ptr, 0, rounded);
    return ptr;
}

static void cpu_free(struct al_backend *backend, void *ptr)
{
    (void)backend;
    free(ptr);
}

static int cpu_zero(struct al_backend *backend, void *ptr, size_t bytes)
{
    (void)backend;
    if (bytes && !ptr)
        return al_fail("cpu zero: NULL pointer for %zu bytes", bytes);
    if (bytes)
        memset(ptr, 0, bytes);
    return 0;
}

static int cpu_copy(const char *op, void *dst, const void *src, size_t bytes)
{
    if (bytes && (!dst || !src))
        return al_fail("%s: NULL pointer for %zu bytes", op, bytes);
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_copy_to_backend(struct al_backend *backend, void *dst, const void *host_src, size_t bytes)
{
    (void)backend;
    return cpu_copy("cpu copy_to_backend", dst, host_src, bytes);
}

static int cpu_copy_to_host(struct al_backend *backend, void *host_dst, const void *src, size_t bytes)
{
    (void)backend;
    return cpu_copy("cpu copy_to_host", host_dst, src, bytes);
}

static int check_conversion(const char *op, enum al_dtype dst_dtype, enum al_dtype src_dtype, int64_t n)
{
    if (n < 0)
        return al_fail("%s: negative element count %lld", op, (long long)n);
    if (!al_dtype_is_float(dst_dtype) || !al_dtype_is_float(src_dtype))
        return al_fail("%s: cannot convert %s to %s (only F32, F16 and BF16)", op, al_dtype_name(src_dtype),
                       al_dtype_name(dst_dtype));
    return 0;
}

static int cpu_upload_convert(struct al_backend *backend, void *dst, enum al_dtype dst_dtype,
                              const void *host_src, enum al_dtype src_dtype, int64_t n)
{
    (void)backend;
    if (check_conversion("cpu upload_convert", dst_dtype, src_dtype, n) != 0)
        return -1;
    al_convert(dst, dst_dtype, host_src, src_dtype, n);
    return 0;
}

static int cpu_download_f32(struct al_backend *backend, float *host_dst, const void *src,
                            enum al_dtype src_dtype, int64_t n)
{
    (void)backend;
    if (check_conversion("cpu download_f32", AL_DTYPE_F32, src_dtype, n) != 0)
        return -1;
    al_convert(host_dst, AL_DTYPE_F32, src, src_dtype, n);
    return 0;
}

/* Every CPU op has finished when it returns. */
static int cpu_synchronize(struct al_backend *backend)
{
    (void)backend;
    return 0;
}

static const struct al_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy_to_backend = cpu_copy_to_backend,
    .copy_to_host = cpu_copy_to_host,
    .upload_convert = cpu_upload_convert,
    .download_f32 = cpu_download_f32,
    .synchronize = cpu_synchronize,
    .embedding_forward = al_cpu_embedding_forward,
    .embedding_backward = al_cpu_embedding_backward,
    .rmsnorm_forward = al_cpu_rmsnorm_forward,
    .rmsnorm_backward = al_cpu_rmsnorm_backward,
    .rope_forward = al_cpu_rope_forward,
    .rope_backward = al_cpu_rope_backward,
    .attention_forward = al_cpu_attention_forward,
    .attention_backward = al_cpu_attention_backward,
    .swiglu_forward = al_cpu_swiglu_forward,
    .swiglu_backward = al_cpu_swiglu_backward,
    .linear_forward = al_cpu_linear_forward,
    .linear_backward = al_cpu_linear_backward,
    .add = al_cpu_add,
    .lm_head_cross_entropy = al_cpu_lm_head_cross_entropy,
    .sum_squares = al_cpu_sum_squares,
    .adamw = al_cpu_adamw,
    .kv_cache_write = al_cpu_kv_cache_write,
    .decode_attention = al_cpu_decode_attention,
};

struct al_backend *al_backend_cpu_create(void)
{
    struct al_backend *backend = calloc(1, sizeof(*backend));
    if (!backend)
        return al_fail_null("cpu backend: out of memory");
    backend->name = "cpu";
    backend->act_dtype = AL_DTYPE_F32;
    backend->weight_dtype = AL_DTYPE_F32;
    backend->ops = &cpu_ops;
    backend->impl = NULL;
    al_cpu_gemm_init();
    return backend;
}
