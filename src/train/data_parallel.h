/* One optimizer step's micro-batches shared out among the ranks, and their gradients
 * summed into every rank's LoRA gradient.
 *
 * A step of N ranks with gradient accumulation G is one process's step with accumulation
 * N*G: the step's micro-batches are numbered 0 .. N*G-1 in data order, and rank r takes
 * r*G .. r*G+G-1.
 *
 * On the CPU, the bit-exact reference, the sum is ((g0 + g1) + g2) + ... in that order
 * whatever the rank count:
 * - each micro-batch's gradient is computed into a zeroed buffer of its own (g0 straight
 *   into the gradient);
 * - rank 0 adds its buffers as it goes, then the running sum passes from rank to rank,
 *   each adding its G buffers in order;
 * - the last rank sends the total to all.
 * One process with G > 1 sums the same way, so its result and N ranks' are the same bits.
 * The price: ranks other than rank 0 keep their G gradients until the running sum arrives
 * (G buffers the size of the adapter); one process keeps one.
 *
 * On a device with its own collectives (NCCL on CUDA), micro-batch gradients accumulate in
 * place, as in a single process, and the ranks all-reduce them; the order of that sum is
 * NCCL's, so results agree within the device's rounding, not bit for bit. */
#ifndef AGENTLORA_DATA_PARALLEL_H
#define AGENTLORA_DATA_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

#include "train/ranks.h"

struct al_lora;

struct al_data_parallel {
    const struct al_ranks *ranks;
    struct al_lora *lora;
    int64_t per_rank;    /* G: micro-batches of each rank per step */
    int64_t micro_count; /* N * G */
    bool in_order;       /* the CPU's fixed-order sum (else accumulate in place + device all-reduce) */
    float *gradient;     /* lora->grads, the running sum */
    float **buffers;     /* backend memory: rank 0 one, other ranks G; NULL when not needed */
    int buffer_count;
    float *host;         /* staging for messages between ranks (num_params floats), or NULL */
};

/* in_order: sum in fixed order (the CPU backend). For device all-reduce the backend must
 * have joined the ranks' group already (al_backend group ops). */
int al_data_parallel_init(struct al_data_parallel *dp, const struct al_ranks *ranks, struct al_lora *lora,
                          int64_t per_rank, bool in_order);
void al_data_parallel_free(struct al_data_parallel *dp);

/* The rank that computes micro-batch k of a step. */
int al_data_parallel_owner(const struct al_data_parallel *dp, int64_t k);

/* Before and after this rank's micro-batch k (in increasing k): begin points the LoRA
 * gradient at the zeroed buffer micro-batch k's backward writes; end puts it back (and, on
 * rank 0, adds the buffer to the running sum). */
int al_data_parallel_begin(struct al_data_parallel *dp, int64_t k);
int al_data_parallel_end(struct al_data_parallel *dp, int64_t k);
/* After this rank's micro-batches: every rank's LoRA gradient becomes the step's sum. */
int al_data_parallel_finish(struct al_data_parallel *dp, int64_t step);

/* values[micro_count]: each rank filled its own micro-batches' entries; afterwards every
 * rank has all of them. */
int al_data_parallel_share(const struct al_data_parallel *dp, double *values, int64_t step);

#endif
