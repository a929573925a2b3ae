/* Helpers shared by the CPU op tests (test_cpu_ops_*.c): buffers in backend memory,
 * random data, comparison against double-precision references, and central finite
 * differences. Everything is static inline so each test file takes only what it uses. */
#ifndef AGENTLORA_CPU_OPS_TESTING_H
#define AGENTLORA_CPU_OPS_TESTING_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "backend/backend.h"
#include "../support/test_support.h"

/* Forward ops against double references: F32 rounding of sums over at most a few
 * hundred terms stays below ~2e-7 relative here, while any wrong index or formula is off
 * by O(1). */
#define FORWARD_TOLERANCE 2e-6

/* Finite differences perturb an input by +-FD_STEP and evaluate the F32 forward; the
 * objective is then summed in double. The truncation error is O(FD_STEP^2) ~ 1e-4 and
 * F32 rounding noise in the objective, divided by 2 * FD_STEP, is ~1e-4 relative at most
 * (the F32 loss of the cross-entropy check is the worst case, measured 2.4e-4); a wrong
 * gradient formula is off by O(1). */
#define FD_STEP 1e-2f
#define FD_TOLERANCE 2e-3

/* Relative errors are measured against max(max |reference|, COMPARE_FLOOR), so that a
 * reference that is tiny everywhere does not turn noise into a failure. */
#define COMPARE_FLOOR 1e-3

/* A CPU backend and every buffer a test allocated from it, freed together at the end. */
#define OP_TEST_MAX_BUFFERS 64
struct op_test {
    struct al_backend *backend;
    void *buffers[OP_TEST_MAX_BUFFERS];
    int count;
};

static inline void op_test_begin(struct op_test *t)
{
    memset(t, 0, sizeof(*t));
    t->backend = al_backend_cpu_create();
    cr_assert_not_null(t->backend, "cpu backend: %s", al_error_message());
    cr_assert_eq(t->backend->act_dtype, AL_DTYPE_F32);
    cr_assert_eq(t->backend->weight_dtype, AL_DTYPE_F32);
}

static inline void op_test_end(struct op_test *t)
{
    for (int i = 0; i < t->count; i++)
        t->backend->ops->free(t->backend, t->buffers[i]);
    al_backend_destroy(t->backend);
}

/* Zero-filled backend memory. */
static inline void *op_test_alloc(struct op_test *t, size_t bytes)
{
    cr_assert_lt(t->count, OP_TEST_MAX_BUFFERS);
    void *p = t->backend->ops->alloc(t->backend, bytes);
    cr_assert_not_null(p, "alloc: %s", al_error_message());
    t->buffers[t->count++] = p;
    return p;
}

static inline float *alloc_floats(struct op_test *t, int64_t n)
{
    return op_test_alloc(t, (size_t)n * sizeof(float));
}

/* Uniform values in [-scale, scale): random, never all zeros. */
static inline float *random_floats(struct op_test *t, int64_t n, uint64_t seed, float scale)
{
    float *p = alloc_floats(t, n);
    test_fill_random(p, n, seed, scale);
    return p;
}

static inline float *copy_floats(struct op_test *t, const float *src, int64_t n)
{
    float *p = alloc_floats(t, n);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static inline int32_t *alloc_ints(struct op_test *t, int64_t n, const int32_t *values)
{
    int32_t *p = op_test_alloc(t, (size_t)n * sizeof(int32_t));
    memcpy(p, values, (size_t)n * sizeof(int32_t));
    return p;
}

/* Packed-row bookkeeping for documents of the given lengths, back to back: the start of
 * each token's document and its position within it (restarting at 0 per document). */
static inline int64_t pack_documents(const int *lengths, int documents, int32_t *doc_start, int32_t *pos)
{
    int64_t n = 0;
    for (int d = 0; d < documents; d++)
        for (int p = 0; p < lengths[d]; p++, n++) {
            doc_start[n] = (int32_t)(n - p);
            pos[n] = p;
        }
    return n;
}

static inline double *alloc_doubles(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    cr_assert_not_null(p);
    return p;
}

/* max |got - ref| / max(max |ref|, COMPARE_FLOOR). */
static inline double relative_error(const float *got, const double *ref, int64_t n)
{
    double largest = COMPARE_FLOOR, worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > largest)
            largest = fabs(ref[i]);
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= worst)) /* NaN counts as the worst */
            worst = d;
    }
    return worst / largest;
}

static inline void assert_close(const float *got, const double *ref, int64_t n, double tolerance, const char *what)
{
    double error = relative_error(got, ref, n);
    cr_assert(error <= tolerance, "%s: relative error %.3g exceeds %.3g", what, error, tolerance);
}

/* sum_i out[i] * weights[i] in double: the scalar objective of the gradient checks. */
static inline double weighted_sum(const float *out, const float *weights, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)out[i] * (double)weights[i];
    return sum;
}

/* The scalar objective as a function of whatever the test perturbs. */
typedef double (*objective_fn)(void *context);

/* Central differences of the objective with respect to every element of param, divided
 * by the perturbation actually representable in F32. */
static inline double *numeric_gradient(objective_fn objective, void *context, float *param, int64_t count)
{
    double *grad = alloc_doubles(count);
    for (int64_t e = 0; e < count; e++) {
        float saved = param[e];
        float up = saved + FD_STEP, down = saved - FD_STEP;
        param[e] = up;
        double f_up = objective(context);
        param[e] = down;
        double f_down = objective(context);
        param[e] = saved;
        grad[e] = (f_up - f_down) / ((double)up - (double)down);
    }
    return grad;
}

/* Checks an analytic gradient against finite differences of the objective. */
static inline void check_gradient(objective_fn objective, void *context, float *param, const float *analytic,
                                  int64_t count, const char *what)
{
    double *numeric = numeric_gradient(objective, context, param, count);
    double largest = 0.0;
    for (int64_t e = 0; e < count; e++)
        if (fabs(numeric[e]) > largest)
            largest = fabs(numeric[e]);
    cr_assert(largest > 10 * COMPARE_FLOOR, "%s: the numeric gradient is ~0, the check would prove nothing", what);
    assert_close(analytic, numeric, count, FD_TOLERANCE, what);
    free(numeric);
}

#endif
