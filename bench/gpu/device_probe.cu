// device_probe: the facts and peak rates of GPU 0 that the other measurements are read
// against, as one JSON object on stdout: name, compute capability, SM count, memory,
// clocks, driver and runtime versions; the bf16 GEMM rate cuBLAS reaches (fastest of
// the repeats, fp32 accumulation, as the engine's linear layers use) and device-to-device
// and host-to-device (pinned) copy bandwidth. Exit 1 when there is no usable GPU.
// Usage: device_probe [--gemm N] [--copy-mib M]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#define REPEATS 20

static bool ok(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return true;
    fprintf(stderr, "device_probe: %s: %s\n", what, cudaGetErrorString(e));
    return false;
}

static bool ok(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    fprintf(stderr, "device_probe: %s: cuBLAS status %d\n", what, (int)s);
    return false;
}

__global__ void fill_bf16(__nv_bfloat16 *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16((float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f);
}

// Milliseconds of the fastest of REPEATS runs of fn (after one warm-up run).
template <typename F> static float fastest_ms(F fn)
{
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    float best = 1e30f;
    fn();
    for (int r = 0; r < REPEATS; r++) {
        cudaEventRecord(a);
        fn();
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float ms;
        cudaEventElapsedTime(&ms, a, b);
        best = ms < best ? ms : best;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return best;
}

static double gemm_tflops(int n)
{
    size_t elems = (size_t)n * n;
    __nv_bfloat16 *a, *b, *c;
    cublasHandle_t h;
    if (!ok(cudaMalloc(&a, elems * 2), "cudaMalloc") || !ok(cudaMalloc(&b, elems * 2), "cudaMalloc") ||
        !ok(cudaMalloc(&c, elems * 2), "cudaMalloc") || !ok(cublasCreate(&h), "cublasCreate"))
        return -1;
    fill_bf16<<<1024, 256>>>(a, elems);
    fill_bf16<<<1024, 256>>>(b, elems);
    float alpha = 1, beta = 0;
    cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
    float ms = fastest_ms([&] {
        status = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n,
                              &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    bool good = ok(status, "cublasGemmEx") && ok(cudaDeviceSynchronize(), "GEMM");
    cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return good ? 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12 : -1;
}

// GB/s of copies of bytes: device to device counts the read and the write.
static bool copy_rates(size_t bytes, double *d2d, double *h2d, double *d2h)
{
    void *x, *y, *host;
    if (!ok(cudaMalloc(&x, bytes), "cudaMalloc") || !ok(cudaMalloc(&y, bytes), "cudaMalloc") ||
        !ok(cudaMallocHost(&host, bytes), "cudaMallocHost"))
        return false;
    memset(host, 1, bytes);
    cudaMemset(x, 0, bytes);
    float ms = fastest_ms([&] { cudaMemcpy(y, x, bytes, cudaMemcpyDeviceToDevice); });
    *d2d = 2.0 * bytes / (ms * 1e-3) / 1e9;
    ms = fastest_ms([&] { cudaMemcpy(x, host, bytes, cudaMemcpyHostToDevice); });
    *h2d = bytes / (ms * 1e-3) / 1e9;
    ms = fastest_ms([&] { cudaMemcpy(host, x, bytes, cudaMemcpyDeviceToHost); });
    *d2h = bytes / (ms * 1e-3) / 1e9;
    bool good = ok(cudaDeviceSynchronize(), "copies");
    cudaFree(x);
    cudaFree(y);
    cudaFreeHost(host);
    return good;
}

int main(int argc, char **argv)
{
    int gemm = 8192, copy_mib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--gemm"))
            gemm = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--copy-mib"))
            copy_mib = atoi(argv[i + 1]);
    }
    if (gemm < 64 || copy_mib < 1) {
        fprintf(stderr, "usage: device_probe [--gemm N >= 64] [--copy-mib M >= 1]\n");
        return 2;
    }
    int count = 0, driver = 0, runtime = 0;
    if (!ok(cudaGetDeviceCount(&count), "cudaGetDeviceCount") || count < 1) {
        fprintf(stderr, "device_probe: no CUDA device\n");
        return 1;
    }
    cudaDeviceProp p;
    if (!ok(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties"))
        return 1;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    int clock_khz = 0, mem_clock_khz = 0, bus_width = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, 0);
    cudaDeviceGetAttribute(&bus_width, cudaDevAttrGlobalMemoryBusWidth, 0);
    double tflops = gemm_tflops(gemm), d2d = -1, h2d = -1, d2h = -1;
    bool copies = copy_rates((size_t)copy_mib << 20, &d2d, &h2d, &d2h);
    printf("{\"name\": \"%s\", \"compute_capability\": \"%d.%d\", \"sm_count\": %d, \"memory_bytes\": %zu, "
           "\"sm_clock_mhz\": %d, \"memory_clock_mhz\": %d, \"memory_bus_bits\": %d, \"devices\": %d, "
           "\"cuda_driver_version\": %d, \"cuda_runtime_version\": %d, \"gemm_size\": %d, "
           "\"bf16_gemm_tflops\": %.1f, \"copy_mib\": %d, \"d2d_copy_gb_s\": %.1f, \"h2d_copy_gb_s\": %.1f, "
           "\"d2h_copy_gb_s\": %.1f}\n",
           p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem, clock_khz / 1000, mem_clock_khz / 1000,
           bus_width, count, driver, runtime, gemm, tflops, copy_mib, d2d, h2d, d2h);
    return tflops > 0 && copies ? 0 : 1;
}
