/* Token embedding: a row gather forward, a row scatter-add backward. */
#include <string.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* The table's row count is not an argument of the op, so only negative ids can be
 * caught here; the model checks ids against its vocabulary when it reads the data. */
static int check_ids(const char *op, const int32_t *ids, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return al_fail("%s: token %lld has negative id %d", op, (long long)i, ids[i]);
    return 0;
}

int al_cpu_embedding_forward(struct al_backend *backend, void *out, const int32_t *ids, const void *table,
                             int64_t n, int dim)
{
    (void)backend;
    if (al_cpu_check_shape("cpu embedding_forward", n, dim) != 0 || check_ids("cpu embedding_forward", ids, n) != 0)
        return -1;
    float *rows = out;
    const float *embeddings = table;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * dim)
    for (int64_t i = 0; i < n; i++)
        memcpy(rows + i * dim, embeddings + (int64_t)ids[i] * dim, (size_t)dim * sizeof(float));
    return 0;
}

/* Several tokens may share an id, so threads split the columns, never the tokens: each
 * element of dtable receives its contributions in token order. */
int al_cpu_embedding_backward(struct al_backend *backend, float *dtable, const int32_t *ids, const void *dout,
                              int64_t n, int dim)
{
    (void)backend;
    if (al_cpu_check_shape("cpu embedding_backward", n, dim) != 0 ||
        check_ids("cpu embedding_backward", ids, n) != 0)
        return -1;
    const float *grad = dout;
    int blocks = (dim + AL_CPU_COLUMN_BLOCK - 1) / AL_CPU_COLUMN_BLOCK;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * dim)
    for (int block = 0; block < blocks; block++) {
        int first = block * AL_CPU_COLUMN_BLOCK;
        int last = first + AL_CPU_COLUMN_BLOCK < dim ? first + AL_CPU_COLUMN_BLOCK : dim;
        for (int64_t i = 0; i < n; i++) {
            float *row = dtable + (int64_t)ids[i] * dim;
            const float *g = grad + i * dim;
            for (int j = first; j < last; j++)
                row[j] += g[j];
        }
    }
    return 0;
}
