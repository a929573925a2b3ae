// cuBLASLt stand-in for the emulation: a naive column-major GEMM with cuBLAS semantics
// (op(A) is m x k, op(B) is k x n, C is read only when beta != 0), so the row-major to
// column-major mapping of the glue (cuda_linear.cu, cuda_cross_entropy.cu) is checked.
#include "backend/cuda/cuda_internal.h"
static float load_bf16(const al_bf16 *p, int64_t i) { return __bfloat162float(p[i]); }

int al_cuda_gemm(struct al_cuda *, const struct al_gemm *g)
{
    for (int64_t j = 0; j < g->n; j++)
        for (int64_t i = 0; i < g->m; i++) {
            float acc = 0.0f;
            for (int64_t l = 0; l < g->k; l++) {
                float a = load_bf16(g->a, g->trans_a ? l + i * g->lda : i + l * g->lda);
                float b = load_bf16(g->b, g->trans_b ? j + l * g->ldb : l + j * g->ldb);
                acc += a * b;
            }
            int64_t o = i + j * g->ldc;
            if (g->c_type == CUDA_R_32F) {
                float *c = (float *)g->c;
                c[o] = g->alpha * acc + (g->beta != 0.0f ? g->beta * c[o] : 0.0f);
            } else {
                al_bf16 *c = (al_bf16 *)g->c;
                float old = g->beta != 0.0f ? g->beta * __bfloat162float(c[o]) : 0.0f;
                c[o] = __float2bfloat16_rn(g->alpha * acc + old);
            }
        }
    return 0;
}

