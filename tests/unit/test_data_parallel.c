/* The data-parallel gradient sum in one process, and the ranks of a process no launcher
 * started. (Two ranks under mpirun: tests/mpi/run.sh.) */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "backend/backend.h"
#include "test_support.h"
#include "train/data_parallel.h"
#include "train/ranks.h"

#define PARAMS 1537
#define MICROS 3

struct fixture {
    struct al_backend *backend;
    struct al_lora lora;
    struct al_ranks ranks;
    float *gradient;
    float parts[MICROS][PARAMS];
};

static void fixture_open(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->backend = al_backend_cpu_create();
    cr_assert_not_null(f->backend);
    f->lora.backend = f->backend;
    f->lora.num_params = PARAMS;
    f->gradient = f->backend->ops->alloc(f->backend, PARAMS * sizeof(float));
    cr_assert_not_null(f->gradient);
    f->lora.grads = f->gradient;
    cr_assert_eq(al_ranks_open(&f->ranks, 10), 0, "%s", al_error_message());
    /* Values of very different sizes, so that the order of the additions shows in the bits. */
    for (int k = 0; k < MICROS; k++) {
        test_fill_random(f->parts[k], PARAMS, 100 + (uint64_t)k, 1.0f);
        for (int i = 0; i < PARAMS; i++)
            f->parts[k][i] *= (i % 3 == k) ? 1e6f : 1e-3f;
    }
}

static void fixture_close(struct fixture *f)
{
    al_ranks_close(&f->ranks);
    f->backend->ops->free(f->backend, f->gradient);
    al_backend_destroy(f->backend);
}

/* What a backward pass does to the LoRA gradient: adds its part to what is there. */
static void backward_adds(struct al_lora *lora, const float *part)
{
    for (int i = 0; i < PARAMS; i++)
        lora->grads[i] += part[i];
}

static void run_step(struct fixture *f, struct al_data_parallel *dp)
{
    for (int k = 0; k < MICROS; k++) {
        cr_assert_eq(al_data_parallel_begin(dp, k), 0, "%s", al_error_message());
        backward_adds(&f->lora, f->parts[k]);
        cr_assert_eq(al_data_parallel_end(dp, k), 0, "%s", al_error_message());
        cr_assert_eq(f->lora.grads, f->gradient, "the gradient points back at the sum after each micro-batch");
    }
    cr_assert_eq(al_data_parallel_finish(dp, 1), 0, "%s", al_error_message());
}

Test(data_parallel, sums_micro_batches_in_data_order_from_zero)
{
    struct fixture f;
    fixture_open(&f);
    for (int i = 0; i < PARAMS; i++)
        f.gradient[i] = 12345.0f; /* last step's gradient: must not leak into this one */
    struct al_data_parallel dp;
    cr_assert_eq(al_data_parallel_init(&dp, &f.ranks, &f.lora, MICROS, true), 0, "%s", al_error_message());
    cr_assert_eq(dp.buffer_count, 1, "one process folds as it goes: one buffer");
    run_step(&f, &dp);
    for (int i = 0; i < PARAMS; i++) {
        float expected = (f.parts[0][i] + f.parts[1][i]) + f.parts[2][i];
        cr_assert_eq(memcmp(&f.gradient[i], &expected, sizeof expected), 0, "element %d: %.9g, expected %.9g", i,
                     (double)f.gradient[i], (double)expected);
    }
    al_data_parallel_free(&dp);
    fixture_close(&f);
}

Test(data_parallel, in_place_accumulation_zeroes_only_at_the_first_micro_batch)
{
    struct fixture f;
    fixture_open(&f);
    for (int i = 0; i < PARAMS; i++)
        f.gradient[i] = -7.0f;
    struct al_data_parallel dp;
    cr_assert_eq(al_data_parallel_init(&dp, &f.ranks, &f.lora, MICROS, false), 0, "%s", al_error_message());
    cr_assert_eq(dp.buffer_count, 0, "in place needs no buffer");
    run_step(&f, &dp);
    for (int i = 0; i < PARAMS; i++) {
        float expected = 0.0f;
        for (int k = 0; k < MICROS; k++)
            expected += f.parts[k][i];
        cr_assert_eq(f.gradient[i], expected, "element %d", i);
    }
    al_data_parallel_free(&dp);
    fixture_close(&f);
}

Test(data_parallel, a_single_micro_batch_goes_straight_into_the_gradient)
{
    struct fixture f;
    fixture_open(&f);
    struct al_data_parallel dp;
    cr_assert_eq(al_data_parallel_init(&dp, &f.ranks, &f.lora, 1, true), 0, "%s", al_error_message());
    cr_assert_eq(dp.buffer_count, 0);
    cr_assert_eq(al_data_parallel_begin(&dp, 0), 0);
    cr_assert_eq(f.lora.grads, f.gradient);
    backward_adds(&f.lora, f.parts[0]);
    cr_assert_eq(al_data_parallel_end(&dp, 0), 0);
    cr_assert_eq(memcmp(f.gradient, f.parts[0], sizeof f.parts[0]), 0);
    double losses[1] = {2.5};
    cr_assert_eq(al_data_parallel_share(&dp, losses, 1), 0);
    cr_assert_eq(losses[0], 2.5);
    cr_assert_eq(al_data_parallel_owner(&dp, 0), 0);
    al_data_parallel_free(&dp);
    fixture_close(&f);
}

Test(ranks, a_process_no_launcher_started_is_one_rank_without_mpi)
{
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    struct al_ranks ranks;
    cr_assert_eq(al_ranks_open(&ranks, 1), 0, "%s", al_error_message());
    cr_assert_eq(ranks.size, 1);
    cr_assert_eq(ranks.rank, 0);
    cr_assert_null(ranks.library, "one process loads no MPI");
    cr_assert(!al_ranks_many(&ranks));
    char data[4] = "abc";
    cr_assert_eq(al_ranks_broadcast(&ranks, 0, data, sizeof data, "nothing"), 0);
    al_ranks_close(&ranks);
}

Test(ranks, a_launcher_of_one_rank_needs_no_mpi)
{
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    setenv("AGENTLORA_MPI_SHIM", "/nonexistent/libagentlora_mpi.so", 1);
    struct al_ranks ranks;
    cr_assert_eq(al_ranks_open(&ranks, 1), 0, "%s", al_error_message());
    cr_assert_eq(ranks.size, 1);
    al_ranks_close(&ranks);
}

Test(ranks, a_missing_shim_is_named_with_how_to_build_it)
{
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("AGENTLORA_MPI_SHIM", "/nonexistent/libagentlora_mpi.so", 1);
    struct al_ranks ranks;
    cr_assert_eq(al_ranks_open(&ranks, 1), -1);
    const char *message = al_error_message();
    cr_assert(strstr(message, "one of 2 ranks (OMPI_COMM_WORLD_SIZE=2)"), "%s", message);
    cr_assert(strstr(message, "/nonexistent/libagentlora_mpi.so"), "%s", message);
    cr_assert(strstr(message, "make deps"), "%s", message);
    cr_assert_eq(ranks.size, 1);
}

Test(ranks, a_library_that_is_not_the_shim_is_refused)
{
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("AGENTLORA_MPI_SHIM", "libm.so.6", 1);
    struct al_ranks ranks;
    cr_assert_eq(al_ranks_open(&ranks, 1), -1);
    cr_assert(strstr(al_error_message(), "not agentlora's shim"), "%s", al_error_message());
}
