/* The small products of LoRA in F32: xa = drop(x) A^T, y += scale * xa B^T, g = dy B,
 * dB += scale * dy^T xa, dA += scale * g^T drop(x), dx += scale * drop'(g A).
 * CPU reference: src/backend/cpu/cpu_linear.c (one cblas_sgemm each).
 *
 * One of the two sizes of every product is the LoRA rank (tens), so these are cheap next to
 * the frozen GEMMs; what matters is that dropout is applied while an operand tile is loaded
 * (or to the output) so that no [n, in] copy of drop(x) is ever made, and that the F32
 * LoRA matrices are multiplied without rounding them to bf16. A plain tiled SGEMM with
 * strided, typed operand loads does all six. */
#include "common.cuh"

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define TILE_THREADS 256
#define THREAD_ROWS 4 /* each thread owns a 4 x 4 block of outputs, 16 apart */
#define THREAD_COLS 4
#define THREAD_GRID 16
#define TILE_PAD 4

__device__ __forceinline__ float load_operand(const struct al_skinny_operand &op, int64_t row, int64_t col)
{
    int64_t offset = row * op.row_stride + col * op.col_stride;
    float v = op.is_bf16 ? __bfloat162float(((const al_bf16 *)op.data)[offset]) : ((const float *)op.data)[offset];
    return v * al_dropout_factor(&op.dropout, (uint64_t)offset);
}

/* Coalescing: threads next to each other read along whichever axis has unit stride. */
__device__ __forceinline__ void load_left_tile(float (*tile)[TILE_M + TILE_PAD], const struct al_skinny_operand &op,
                                               int64_t m, int64_t k, int64_t i0, int64_t k0)
{
    for (int t = threadIdx.x; t < TILE_M * TILE_K; t += TILE_THREADS) {
        int ii, kk;
        if (op.col_stride == 1) {
            ii = t / TILE_K;
            kk = t % TILE_K;
        } else {
            kk = t / TILE_M;
            ii = t % TILE_M;
        }
        int64_t gi = i0 + ii, gk = k0 + kk;
        tile[kk][ii] = (gi < m && gk < k) ? load_operand(op, gi, gk) : 0.0f;
    }
}

__device__ __forceinline__ void load_right_tile(float (*tile)[TILE_N + TILE_PAD],
                                                const struct al_skinny_operand &op, int64_t k, int64_t n,
                                                int64_t k0, int64_t j0)
{
    for (int t = threadIdx.x; t < TILE_N * TILE_K; t += TILE_THREADS) {
        int kk, jj;
        if (op.col_stride == 1) {
            kk = t / TILE_N;
            jj = t % TILE_N;
        } else {
            jj = t / TILE_K;
            kk = t % TILE_K;
        }
        int64_t gk = k0 + kk, gj = j0 + jj;
        tile[kk][jj] = (gk < k && gj < n) ? load_operand(op, gk, gj) : 0.0f;
    }
}

__global__ void __launch_bounds__(TILE_THREADS) skinny_gemm_kernel(int64_t m, int64_t n, int64_t k,
                                                                   struct al_skinny_operand left,
                                                                   struct al_skinny_operand right,
                                                                   struct al_skinny_output out)
{
    __shared__ float left_tile[TILE_K][TILE_M + TILE_PAD];
    __shared__ float right_tile[TILE_K][TILE_N + TILE_PAD];
    int64_t i0 = (int64_t)blockIdx.y * TILE_M;
    int64_t j0 = (int64_t)blockIdx.x * TILE_N;
    int tx = threadIdx.x % THREAD_GRID;
    int ty = threadIdx.x / THREAD_GRID;

    float acc[THREAD_ROWS][THREAD_COLS] = {};
    for (int64_t k0 = 0; k0 < k; k0 += TILE_K) {
        load_left_tile(left_tile, left, m, k, i0, k0);
        load_right_tile(right_tile, right, k, n, k0, j0);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk++) {
            float a[THREAD_ROWS], b[THREAD_COLS];
#pragma unroll
            for (int r = 0; r < THREAD_ROWS; r++)
                a[r] = left_tile[kk][ty + THREAD_GRID * r];
#pragma unroll
            for (int c = 0; c < THREAD_COLS; c++)
                b[c] = right_tile[kk][tx + THREAD_GRID * c];
#pragma unroll
            for (int r = 0; r < THREAD_ROWS; r++)
#pragma unroll
                for (int c = 0; c < THREAD_COLS; c++)
                    acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < THREAD_ROWS; r++) {
#pragma unroll
        for (int c = 0; c < THREAD_COLS; c++) {
            int64_t i = i0 + ty + THREAD_GRID * r;
            int64_t j = j0 + tx + THREAD_GRID * c;
            if (i >= m || j >= n)
                continue;
            int64_t o = i * out.ld + j;
            float v = out.alpha * (acc[r][c] * al_dropout_factor(&out.dropout, (uint64_t)o));
            if (out.is_bf16) {
                al_bf16 *C = (al_bf16 *)out.data;
                if (out.beta != 0.0f)
                    v += out.beta * __bfloat162float(C[o]);
                C[o] = __float2bfloat16_rn(v);
            } else {
                float *C = (float *)out.data;
                if (out.beta != 0.0f)
                    v += out.beta * C[o];
                C[o] = v;
            }
        }
    }
}

#define MAX_GRID_Y 65535

cudaError_t al_launch_skinny_gemm(int64_t m, int64_t n, int64_t k, const struct al_skinny_operand *left,
                                  const struct al_skinny_operand *right, const struct al_skinny_output *out,
                                  cudaStream_t stream)
{
    if (m <= 0 || n <= 0)
        return cudaSuccess;
    int64_t blocks_m = (m + TILE_M - 1) / TILE_M;
    int64_t blocks_n = (n + TILE_N - 1) / TILE_N;
    if (blocks_m > MAX_GRID_Y)
        return cudaErrorInvalidConfiguration; /* over 4 million rows: not a shape this engine makes */
    dim3 grid((unsigned)blocks_n, (unsigned)blocks_m);
    skinny_gemm_kernel<<<grid, TILE_THREADS, 0, stream>>>(m, n, k, *left, *right, *out);
    return cudaGetLastError();
}
