/* Turns CUDA runtime and cuBLAS(Lt) status codes into al_fail messages that name the
 * failing call and where it was made. Library code never aborts on a device error. */
#include "backend/cuda/cuda_internal.h"

/* The statuses a machine without a (working) NVIDIA GPU gives, said in words first. */
static bool means_no_gpu(cudaError_t status)
{
    return status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver ||
           status == cudaErrorDevicesUnavailable || status == cudaErrorSystemDriverMismatch;
}

int al_cuda_check_runtime(cudaError_t status, const char *call, const char *file, int line)
{
    if (means_no_gpu(status))
        return al_fail("no NVIDIA GPU found (or no working driver for one): %s failed at %s:%d: %s (%s); use "
                       "--device cpu",
                       call, file, line, cudaGetErrorName(status), cudaGetErrorString(status));
    return al_fail("%s failed at %s:%d: %s (%s)", call, file, line, cudaGetErrorName(status),
                   cudaGetErrorString(status));
}

int al_cuda_check_blas(cublasStatus_t status, const char *call, const char *file, int line)
{
    return al_fail("%s failed at %s:%d: %s (%s)", call, file, line, cublasGetStatusName(status),
                   cublasGetStatusString(status));
}

int al_cuda_check_shape(const char *op, int64_t n, int dim)
{
    if (n < 0)
        return al_fail("%s: negative token count %lld", op, (long long)n);
    if (dim <= 0)
        return al_fail("%s: dimension must be positive, got %d", op, dim);
    return 0;
}
