/* Linear layers with optional bias and LoRA on the GPU:
 *   y = x W^T + bias + scale * (drop(x) A^T) B^T
 * The frozen product runs on cuBLASLt in bf16 with F32 accumulation; the LoRA products,
 * whose inner or outer size is the rank, run in F32 through al_launch_skinny_gemm, with
 * dropout applied as operands are loaded so that no [n, in] buffer is ever made.
 * CPU reference: src/backend/cpu/cpu_linear.c.
 *
 * Row-major to cuBLAS: a row-major [r, c] matrix is a column-major [c, r] one, so
 *   y [n, out] = x W^T   is   y^T = W x^T:  m = out, n = n, k = in, op(A) = W^T stored as W,
 *   dx [n, in] = dy W    is  dx^T = W^T dy^T:  m = in, n = n, k = out. */
#include "backend/cuda/cuda_internal.h"

static int check_linear(const char *op, const struct al_lora_args *lora, int64_t n, int in, int out)
{
    if (al_cuda_check_shape(op, n, in) != 0 || al_cuda_check_shape(op, n, out) != 0)
        return -1;
    return al_backend_check_lora_args(op, lora);
}

static struct al_dropout no_dropout(void)
{
    struct al_dropout d = {0.0f, 1.0f, 0};
    return d;
}

static struct al_dropout lora_dropout(const struct al_lora_args *lora)
{
    struct al_dropout d = {lora->dropout, 1.0f / (1.0f - lora->dropout), lora->dropout_seed};
    if (lora->dropout == 0.0f)
        return no_dropout();
    return d;
}

/* An operand whose element (r, c) lives at data[r * row_stride + c * col_stride]. */
static struct al_skinny_operand operand(const void *data, int is_bf16, int64_t row_stride, int64_t col_stride,
                                        struct al_dropout dropout)
{
    struct al_skinny_operand o = {data, is_bf16, row_stride, col_stride, dropout};
    return o;
}

static struct al_skinny_output output(void *data, int is_bf16, int64_t ld, float alpha, float beta,
                                      struct al_dropout dropout)
{
    struct al_skinny_output o = {data, is_bf16, ld, alpha, beta, dropout};
    return o;
}

static int skinny(struct al_cuda *cuda, int64_t m, int64_t n, int64_t k, struct al_skinny_operand left,
                  struct al_skinny_operand right, struct al_skinny_output out)
{
    AL_CUDA_TRY(al_launch_skinny_gemm(m, n, k, &left, &right, &out, cuda->stream));
    return 0;
}

/* xa = drop(x) A^T [n, r];  y += scale * xa B^T. */
static int lora_forward(struct al_cuda *cuda, al_bf16 *y, const al_bf16 *x, const struct al_lora_args *lora,
                        int64_t n, int in, int out)
{
    int r = lora->rank;
    struct al_dropout none = no_dropout();
    /* A [r, in]: as the right operand R(k, j) = A[j, k]. */
    if (skinny(cuda, n, r, in, operand(x, 1, in, 1, lora_dropout(lora)), operand(lora->A, 0, 1, in, none),
               output(lora->xa, 0, r, 1.0f, 0.0f, none)) != 0)
        return -1;
    /* B [out, r]: R(k, j) = B[j, k]. */
    return skinny(cuda, n, out, r, operand(lora->xa, 0, r, 1, none), operand(lora->B, 0, 1, r, none),
                  output(y, 1, out, lora->scale, 1.0f, none));
}

int al_cuda_linear_forward(struct al_backend *backend, void *y, const void *x, const void *weight, const void *bias,
                           const struct al_lora_args *lora, int64_t n, int in, int out)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (check_linear("cuda linear_forward", lora, n, in, out) != 0)
        return -1;
    if (n == 0)
        return 0;
    struct al_gemm gemm = {1, 0, out, n, in, 1.0f, 0.0f, (const al_bf16 *)weight, in, (const al_bf16 *)x, in, y,
                           CUDA_R_16BF, out};
    if (al_cuda_gemm(cuda, &gemm) != 0)
        return -1;
    if (bias)
        AL_CUDA_TRY(al_launch_add_bias((al_bf16 *)y, (const al_bf16 *)bias, n, out, cuda->stream));
    if (lora)
        return lora_forward(cuda, (al_bf16 *)y, (const al_bf16 *)x, lora, n, in, out);
    return 0;
}

/* With g = dy B [n, r] (the one scratch, F32):
 *   dB += scale * dy^T xa,   dA += scale * g^T drop(x),   dx += scale * drop'(g A). */
static int lora_backward(struct al_cuda *cuda, al_bf16 *dx, const al_bf16 *dy, const al_bf16 *x,
                         const struct al_lora_args *lora, int64_t n, int in, int out)
{
    int r = lora->rank;
    struct al_dropout none = no_dropout();
    /* dy^T as the left operand: L(i, k) = dy[k, i]. */
    if (skinny(cuda, out, r, n, operand(dy, 1, 1, out, none), operand(lora->xa, 0, r, 1, none),
               output(lora->dB, 0, r, lora->scale, 1.0f, none)) != 0)
        return -1;

    float *g = (float *)al_cuda_scratch(cuda, (size_t)n * (size_t)r * sizeof(float), "LoRA backward dy B");
    if (!g)
        return -1;
    int status = -1;
    /* g = dy B: R(k, j) = B[k, j]. Then g^T as a left operand: L(i, k) = g[k, i]. */
    if (skinny(cuda, n, r, out, operand(dy, 1, out, 1, none), operand(lora->B, 0, r, 1, none),
               output(g, 0, r, 1.0f, 0.0f, none)) == 0 &&
        skinny(cuda, r, in, n, operand(g, 0, 1, r, none), operand(x, 1, in, 1, lora_dropout(lora)),
               output(lora->dA, 0, in, lora->scale, 1.0f, none)) == 0 &&
        (!dx || skinny(cuda, n, in, r, operand(g, 0, r, 1, none), operand(lora->A, 0, in, 1, none),
                       output(dx, 1, in, lora->scale, 1.0f, lora_dropout(lora))) == 0))
        status = 0;
    al_cuda_scratch_free(cuda, g);
    return status;
}

int al_cuda_linear_backward(struct al_backend *backend, void *dx, int accumulate_dx, const void *dy, const void *x,
                            const void *weight, const struct al_lora_args *lora, int64_t n, int in, int out)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (check_linear("cuda linear_backward", lora, n, in, out) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (dx) {
        struct al_gemm gemm = {0, 0, in, n, out, 1.0f, accumulate_dx ? 1.0f : 0.0f, (const al_bf16 *)weight, in,
                               (const al_bf16 *)dy, out, dx, CUDA_R_16BF, in};
        if (al_cuda_gemm(cuda, &gemm) != 0)
            return -1;
    }
    if (!lora)
        return 0;
    return lora_backward(cuda, (al_bf16 *)dx, (const al_bf16 *)dy, (const al_bf16 *)x, lora, n, in, out);
}
