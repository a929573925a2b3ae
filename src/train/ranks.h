/* The processes that train one adapter together: one, or N ranks started by an MPI
 * launcher (`mpirun -np N agentlora train ...`).
 *
 * A single process needs no MPI library. Ranks talk through the MPI shim (mpi_shim.h),
 * loaded at run time, with point-to-point messages only: the data-parallel step needs a
 * fixed summation order (so N ranks give one process's bits), and waiting on one named
 * peer at a time lets a rank that stopped answering be named. Every wait is bounded by a
 * timeout; a rank that gives up ends the whole run (MPI_Abort), never a silent hang. */
#ifndef AGENTLORA_RANKS_H
#define AGENTLORA_RANKS_H

#include <stdbool.h>
#include <stddef.h>

struct al_mpi_shim;

struct al_ranks {
    int rank, size;
    int local_rank;         /* the rank's number on its own machine: its GPU */
    double timeout_seconds; /* longest wait for one peer */
    const char *launcher;   /* the environment variable that gave the size, or NULL */
    void *library;          /* the shim, dlopen'ed; NULL for one process */
    const struct al_mpi_shim *mpi;
};

/* One process, or the ranks a launcher started (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH's
 * PMI_SIZE); loads the shim and initialises MPI only for more than one. */
int al_ranks_open(struct al_ranks *ranks, double timeout_seconds);
void al_ranks_close(struct al_ranks *ranks);
/* Ends every rank of the run now (after this rank printed why). No-op for one process. */
void al_ranks_abort(const struct al_ranks *ranks, int exit_code);

static inline bool al_ranks_many(const struct al_ranks *ranks)
{
    return ranks->size > 1;
}

/* Messages between two ranks, in order. `what` says what is being waited for, for the
 * message naming the peer when the wait times out. */
int al_ranks_send(const struct al_ranks *ranks, int to, const void *data, size_t bytes, const char *what);
int al_ranks_receive(const struct al_ranks *ranks, int from, void *data, size_t bytes, const char *what);
/* root's bytes to every rank. */
int al_ranks_broadcast(const struct al_ranks *ranks, int root, void *data, size_t bytes, const char *what);
/* Every rank's `bytes` bytes to root, in rank order, into all (size * bytes; root only). */
int al_ranks_gather(const struct al_ranks *ranks, int root, const void *mine, void *all, size_t bytes,
                    const char *what);

#endif
