/* Every GEMM of the CPU backend: C = alpha op(A) op(B) + beta C (row-major), cut into fixed
 * blocks of AL_CPU_GEMM_BLOCK rows of C (or columns, when C is wider than tall) that
 * OpenMP threads take in any order, each block one single-threaded cblas_sgemm call.
 *
 * Why not let OpenBLAS thread the call itself: how it splits a product depends on the
 * thread count, and so, for some shapes, do the bits of the result. Training must give
 * the same bits on any machine size (cpu_ops.h), so the split here depends on the shape
 * only, and OpenBLAS is kept to one thread (al_cpu_gemm_init). Each element's sum over k
 * is never split, so every element is computed by one call, in one order. */
#include <cblas.h>
#include <omp.h>

#include "backend/cpu/cpu_ops.h"

/* OpenBLAS built for OpenMP implements openblas_set_num_threads with omp_set_num_threads,
 * which would leave the engine's own loops one thread too; the OpenMP setting is put back,
 * and OpenBLAS, once told 1, stays at one thread. */
void al_cpu_gemm_init(void)
{
    int threads = omp_get_max_threads();
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
}

static int64_t blocks_of(int64_t count)
{
    return (count + AL_CPU_GEMM_BLOCK - 1) / AL_CPU_GEMM_BLOCK;
}

void al_cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m == 0 || n == 0)
        return;
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    bool by_rows = m >= n;
    int64_t blocks = blocks_of(by_rows ? m : n);
#pragma omp parallel for schedule(dynamic, 1) AL_CPU_PARALLEL_IF(m * n * k / 8)
    for (int64_t block = 0; block < blocks; block++) {
        int64_t first = block * AL_CPU_GEMM_BLOCK;
        int64_t count = (by_rows ? m : n) - first;
        if (count > AL_CPU_GEMM_BLOCK)
            count = AL_CPU_GEMM_BLOCK;
        if (by_rows) /* rows [first, first + count) of C and of op(A) */
            cblas_sgemm(CblasRowMajor, ta, tb, (int)count, (int)n, (int)k, alpha, trans_a ? a + first : a + first * lda,
                        (int)lda, b, (int)ldb, beta, c + first * ldc, (int)ldc);
        else /* columns [first, first + count) of C and of op(B) */
            cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)count, (int)k, alpha, a, (int)lda,
                        trans_b ? b + first * ldb : b + first, (int)ldb, beta, c + first, (int)ldc);
    }
}
