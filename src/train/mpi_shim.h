/* The table of MPI calls agentlora makes, as the MPI shim library exports it.
 *
 * agentlora itself never links an MPI library: a single process needs none, and the
 * constants of the MPI ABI (MPI_COMM_WORLD, MPI_BYTE, the status layout) differ between
 * Open MPI and MPICH. So the few calls data parallelism needs are compiled once against
 * the machine's own MPI, with its own mpicc, into libagentlora_mpi.so (src/train/mpi_shim.c),
 * and loaded with dlopen only when a launcher started more than one rank. The table speaks
 * plain C: byte buffers, rank numbers, opaque requests. */
#ifndef AGENTLORA_MPI_SHIM_H
#define AGENTLORA_MPI_SHIM_H

/* Bumped when the table changes; a shim of another version is refused by name. */
#define AL_MPI_SHIM_VERSION 1
#define AL_MPI_SHIM_SYMBOL "al_mpi_shim_table"

struct al_mpi_shim {
    int version;
    /* MPI_Init; errors are returned, not fatal. 0, or -1 with message filled. */
    int (*init)(int *rank, int *size, char *message, int message_size);
    /* Non-blocking send / receive of `bytes` bytes (at most INT_MAX); *request is the
     * handle test() completes. 0, or an MPI error code. */
    int (*isend)(const void *data, int bytes, int to, int tag, void **request);
    int (*irecv)(void *data, int bytes, int from, int tag, void **request);
    /* *done = 1 once the request completed (the handle is then freed); 0, or an error code. */
    int (*test)(void **request, int *done);
    /* Gives up a request that will not complete (a peer that stopped answering). */
    void (*cancel)(void **request);
    /* The MPI library's text for an error code. */
    void (*error_text)(int code, char *message, int message_size);
    /* MPI_Abort on the world: every rank ends, the launcher reports it. */
    void (*abort)(int exit_code);
    void (*finalize)(void);
};

#endif
