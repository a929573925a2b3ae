/* Element type conversions between F32, F16 and BF16 on the device, used by
 * upload_convert and download_f32. CPU reference: al_convert in src/core/dtype.c (both round
 * to nearest even through F32). */
#include "common.cuh"

__device__ __forceinline__ float load_any(const void *p, enum al_dtype dtype, int64_t i)
{
    switch (dtype) {
    case AL_DTYPE_BF16:
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case AL_DTYPE_F16:
        return __half2float(((const __half *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

__device__ __forceinline__ void store_any(void *p, enum al_dtype dtype, int64_t i, float v)
{
    switch (dtype) {
    case AL_DTYPE_BF16:
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
        break;
    case AL_DTYPE_F16:
        ((__half *)p)[i] = __float2half_rn(v);
        break;
    default:
        ((float *)p)[i] = v;
        break;
    }
}

__global__ void convert_kernel(void *dst, enum al_dtype dst_dtype, const void *src, enum al_dtype src_dtype,
                               int64_t n)
{
    AL_GRID_STRIDE_LOOP(i, n)
    {
        store_any(dst, dst_dtype, i, load_any(src, src_dtype, i));
    }
}

cudaError_t al_launch_convert(void *dst, enum al_dtype dst_dtype, const void *src, enum al_dtype src_dtype,
                              int64_t n, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    convert_kernel<<<al_elementwise_blocks(n), AL_ELEMENTWISE_THREADS, 0, stream>>>(dst, dst_dtype, src, src_dtype,
                                                                                    n);
    return cudaGetLastError();
}
