/* bf16 GEMMs with F32 accumulation through cuBLASLt (column-major, as cuBLAS sees memory).
 * Row-major callers use the identity (X Y)^T = Y^T X^T: see cuda_linear.cu.
 *
 * The descriptors and the heuristic query are rebuilt per call; caching them per shape is
 * a later optimisation. Pointer alignments are passed to the heuristic, so a chunk that
 * starts mid-tensor (lm_head) never gets an algorithm that assumes 256-byte alignment. */
#include <limits.h>

#include "backend/cuda/cuda_internal.h"

#define MAX_ALIGNMENT 256u

static uint32_t alignment_of(const void *ptr)
{
    uintptr_t address = (uintptr_t)ptr;
    uint32_t alignment = MAX_ALIGNMENT;
    while (alignment > 1 && address % alignment != 0)
        alignment /= 2;
    return alignment;
}

/* Like AL_CUDA_TRY, but releases the descriptors first. */
#define LT_TRY(call)                                                                               \
    do {                                                                                           \
        if (al_cuda_check((call), #call, __FILE__, __LINE__) != 0)                                 \
            goto done;                                                                             \
    } while (0)

/* Returns 0 when the product ran, 1 when cuBLASLt has no algorithm for it, -1 on error. */
static int lt_matmul(struct al_cuda *cuda, const struct al_gemm *g)
{
    cublasLtMatmulDesc_t operation = NULL;
    cublasLtMatrixLayout_t a_layout = NULL, b_layout = NULL, c_layout = NULL;
    cublasLtMatmulPreference_t preference = NULL;
    cublasLtMatmulHeuristicResult_t heuristic;
    int returned = 0;
    int result = -1;
    cublasOperation_t trans_a = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t trans_b = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint64_t workspace_bytes = cuda->gemm_workspace_bytes;
    uint32_t align_a = alignment_of(g->a), align_b = alignment_of(g->b), align_c = alignment_of(g->c);
    cublasStatus_t heuristic_status, matmul_status;

    LT_TRY(cublasLtMatmulDescCreate(&operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
    LT_TRY(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
    LT_TRY(cublasLtMatrixLayoutCreate(&a_layout, CUDA_R_16BF, g->trans_a ? g->k : g->m, g->trans_a ? g->m : g->k,
                                      g->lda));
    LT_TRY(cublasLtMatrixLayoutCreate(&b_layout, CUDA_R_16BF, g->trans_b ? g->n : g->k, g->trans_b ? g->k : g->n,
                                      g->ldb));
    LT_TRY(cublasLtMatrixLayoutCreate(&c_layout, g->c_type, g->m, g->n, g->ldc));
    LT_TRY(cublasLtMatmulPreferenceCreate(&preference));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &workspace_bytes, sizeof workspace_bytes));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                sizeof align_a));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                sizeof align_b));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                sizeof align_c));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                sizeof align_c));

    heuristic_status = cublasLtMatmulAlgoGetHeuristic(cuda->blas_lt, operation, a_layout, b_layout, c_layout,
                                                      c_layout, preference, 1, &heuristic, &returned);
    if (heuristic_status == CUBLAS_STATUS_NOT_SUPPORTED || (heuristic_status == CUBLAS_STATUS_SUCCESS && returned == 0)) {
        result = 1;
        goto done;
    }
    LT_TRY(heuristic_status);
    matmul_status = cublasLtMatmul(cuda->blas_lt, operation, &g->alpha, g->a, a_layout, g->b, b_layout, &g->beta,
                                   g->c, c_layout, g->c, c_layout, &heuristic.algo, cuda->gemm_workspace,
                                   workspace_bytes, cuda->stream);
    if (matmul_status == CUBLAS_STATUS_NOT_SUPPORTED) { /* nothing ran: cuBLAS can still do it */
        result = 1;
        goto done;
    }
    LT_TRY(matmul_status);
    result = 0;
done:
    if (preference)
        cublasLtMatmulPreferenceDestroy(preference);
    if (c_layout)
        cublasLtMatrixLayoutDestroy(c_layout);
    if (b_layout)
        cublasLtMatrixLayoutDestroy(b_layout);
    if (a_layout)
        cublasLtMatrixLayoutDestroy(a_layout);
    if (operation)
        cublasLtMatmulDescDestroy(operation);
    return result;
}

static int fits_int(int64_t v)
{
    return v >= 0 && v <= INT_MAX;
}

static int blas_matmul(struct al_cuda *cuda, const struct al_gemm *g)
{
    if (!fits_int(g->m) || !fits_int(g->n) || !fits_int(g->k) || !fits_int(g->lda) || !fits_int(g->ldb) ||
        !fits_int(g->ldc))
        return al_fail("GEMM %lld x %lld x %lld is too large for the cuBLAS fallback", (long long)g->m,
                       (long long)g->n, (long long)g->k);
    AL_CUDA_TRY(cublasGemmEx(cuda->blas, g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                             g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g->m, (int)g->n, (int)g->k, &g->alpha,
                             g->a, CUDA_R_16BF, (int)g->lda, g->b, CUDA_R_16BF, (int)g->ldb, &g->beta, g->c,
                             g->c_type, (int)g->ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int al_cuda_gemm(struct al_cuda *cuda, const struct al_gemm *gemm)
{
    if (gemm->m == 0 || gemm->n == 0)
        return 0;
    int status = lt_matmul(cuda, gemm);
    if (status == 1)
        return blas_matmul(cuda, gemm);
    return status;
}
