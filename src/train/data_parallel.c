/* The data-parallel step's gradient sum: see data_parallel.h for the order and its cost. */
#include "train/data_parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "backend/backend.h"

static size_t gradient_bytes(const struct al_data_parallel *dp)
{
    return (size_t)dp->lora->num_params * sizeof(float);
}

/* Rank 0 folds its micro-batches into the sum as it goes, so it needs one buffer (none
 * for a single micro-batch); the others keep all G until the running sum reaches them. */
static int buffers_needed(const struct al_data_parallel *dp)
{
    if (!dp->in_order || dp->micro_count == 1)
        return 0;
    return dp->ranks->rank == 0 ? 1 : (int)dp->per_rank;
}

int al_data_parallel_init(struct al_data_parallel *dp, const struct al_ranks *ranks, struct al_lora *lora,
                          int64_t per_rank, bool in_order)
{
    memset(dp, 0, sizeof *dp);
    dp->ranks = ranks;
    dp->lora = lora;
    dp->per_rank = per_rank;
    dp->micro_count = per_rank * ranks->size;
    dp->in_order = in_order;
    dp->gradient = lora->grads;
    struct al_backend *backend = lora->backend;
    if (!in_order && al_ranks_many(ranks) && !backend->ops->group_sum_f32)
        return al_fail("data parallelism on the %s backend needs its collectives, which it does not have",
                       backend->name);
    int needed = buffers_needed(dp);
    if (needed > 0 && !(dp->buffers = calloc((size_t)needed, sizeof *dp->buffers)))
        return al_fail("out of memory");
    for (; dp->buffer_count < needed; dp->buffer_count++) {
        dp->buffers[dp->buffer_count] = backend->ops->alloc(backend, gradient_bytes(dp));
        if (!dp->buffers[dp->buffer_count])
            return al_fail("data parallel: no memory for micro-batch gradient %d of %d (%zu bytes each): %s",
                           dp->buffer_count + 1, needed, gradient_bytes(dp), al_error_message());
    }
    if (in_order && al_ranks_many(ranks) && !(dp->host = malloc(gradient_bytes(dp))))
        return al_fail("data parallel: out of memory for a %zu-byte gradient message", gradient_bytes(dp));
    return 0;
}

void al_data_parallel_free(struct al_data_parallel *dp)
{
    struct al_backend *backend = dp->lora ? dp->lora->backend : NULL;
    for (int i = 0; i < dp->buffer_count; i++)
        backend->ops->free(backend, dp->buffers[i]);
    free(dp->buffers);
    free(dp->host);
    if (dp->lora)
        dp->lora->grads = dp->gradient;
    memset(dp, 0, sizeof *dp);
}

int al_data_parallel_owner(const struct al_data_parallel *dp, int64_t k)
{
    return (int)(k / dp->per_rank);
}

/* The buffer micro-batch k's gradient goes to: the sum itself for k = 0 (there is nothing
 * to add it to), else the rank's own buffer for it. */
static float *target_of(const struct al_data_parallel *dp, int64_t k)
{
    if (!dp->in_order || k == 0)
        return dp->gradient;
    int64_t local = k - (int64_t)dp->ranks->rank * dp->per_rank;
    return dp->ranks->rank == 0 ? dp->buffers[0] : dp->buffers[local];
}

int al_data_parallel_begin(struct al_data_parallel *dp, int64_t k)
{
    struct al_backend *backend = dp->lora->backend;
    bool first_of_rank = k == (int64_t)dp->ranks->rank * dp->per_rank;
    float *target = target_of(dp, k);
    dp->lora->grads = target;
    /* In place, only the step's first micro-batch starts from zero. */
    if (dp->in_order || first_of_rank)
        return backend->ops->zero(backend, target, gradient_bytes(dp));
    return 0;
}

static int add_into_sum(struct al_data_parallel *dp, const float *buffer)
{
    struct al_backend *backend = dp->lora->backend;
    return backend->ops->add(backend, dp->gradient, dp->gradient, buffer, dp->lora->num_params);
}

int al_data_parallel_end(struct al_data_parallel *dp, int64_t k)
{
    dp->lora->grads = dp->gradient;
    if (dp->in_order && dp->ranks->rank == 0 && k > 0)
        return add_into_sum(dp, dp->buffers[0]);
    return 0;
}

static int send_sum(struct al_data_parallel *dp, int to, const char *what)
{
    struct al_backend *backend = dp->lora->backend;
    if (backend->ops->copy_to_host(backend, dp->host, dp->gradient, gradient_bytes(dp)) != 0)
        return -1;
    return al_ranks_send(dp->ranks, to, dp->host, gradient_bytes(dp), what);
}

static int receive_sum(struct al_data_parallel *dp, int from, const char *what)
{
    struct al_backend *backend = dp->lora->backend;
    if (al_ranks_receive(dp->ranks, from, dp->host, gradient_bytes(dp), what) != 0)
        return -1;
    return backend->ops->copy_to_backend(backend, dp->gradient, dp->host, gradient_bytes(dp));
}

/* The running sum from the rank before, this rank's buffers added in order, on to the
 * next; then the last rank's total to every rank. */
static int finish_in_order(struct al_data_parallel *dp, int64_t step)
{
    const struct al_ranks *ranks = dp->ranks;
    int rank = ranks->rank, last = ranks->size - 1;
    char what[96];
    snprintf(what, sizeof what, "the running gradient sum of step %lld", (long long)step);
    if (rank > 0) {
        if (receive_sum(dp, rank - 1, what) != 0)
            return -1;
        for (int i = 0; i < dp->buffer_count; i++)
            if (add_into_sum(dp, dp->buffers[i]) != 0)
                return -1;
    }
    if (rank < last && send_sum(dp, rank + 1, what) != 0)
        return -1;
    snprintf(what, sizeof what, "the gradient of step %lld", (long long)step);
    if (rank == last) {
        for (int peer = 0; peer < last; peer++)
            if (send_sum(dp, peer, what) != 0)
                return -1;
        return 0;
    }
    return receive_sum(dp, last, what);
}

int al_data_parallel_finish(struct al_data_parallel *dp, int64_t step)
{
    if (!al_ranks_many(dp->ranks))
        return 0;
    if (dp->in_order)
        return finish_in_order(dp, step);
    struct al_backend *backend = dp->lora->backend;
    return backend->ops->group_sum_f32(backend, dp->gradient, dp->lora->num_params);
}

int al_data_parallel_share(const struct al_data_parallel *dp, double *values, int64_t step)
{
    const struct al_ranks *ranks = dp->ranks;
    if (!al_ranks_many(ranks))
        return 0;
    size_t bytes = (size_t)dp->per_rank * sizeof(double);
    double *mine = values + (int64_t)ranks->rank * dp->per_rank;
    char what[96];
    snprintf(what, sizeof what, "the micro-batch losses of step %lld", (long long)step);
    /* Rank 0's gather writes each rank's part in place; its own part is already there. */
    if (al_ranks_gather(ranks, 0, mine, values, bytes, what) != 0)
        return -1;
    return al_ranks_broadcast(ranks, 0, values, (size_t)dp->micro_count * sizeof(double), what);
}
