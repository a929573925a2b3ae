/* libagentlora_mpi.so: the MPI calls of src/train/mpi_shim.h, compiled with the machine's
 * mpicc (the Makefile builds it when mpicc exists; it is not part of the agentlora binary).
 * Errors come back as codes (MPI_ERRORS_RETURN) so agentlora can name the rank and the
 * step in its own message before it ends the run. */
#include <mpi.h>
#include <stdlib.h>

#include "train/mpi_shim.h"

static void shim_error_text(int code, char *message, int message_size)
{
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        length = 0;
    text[length] = '\0';
    if (message_size > 0) {
        int i = 0;
        for (; i < message_size - 1 && text[i]; i++)
            message[i] = text[i];
        message[i] = '\0';
    }
}

static int shim_init(int *rank, int *size, char *message, int message_size)
{
    int code = MPI_Init(NULL, NULL);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_size(MPI_COMM_WORLD, size);
    if (code != MPI_SUCCESS) {
        shim_error_text(code, message, message_size);
        return -1;
    }
    return 0;
}

static MPI_Request *new_request(void)
{
    MPI_Request *request = malloc(sizeof *request);
    if (request)
        *request = MPI_REQUEST_NULL;
    return request;
}

static int shim_isend(const void *data, int bytes, int to, int tag, void **handle)
{
    MPI_Request *request = new_request();
    if (!request)
        return MPI_ERR_NO_MEM;
    int code = MPI_Isend(data, bytes, MPI_BYTE, to, tag, MPI_COMM_WORLD, request);
    if (code != MPI_SUCCESS) {
        free(request);
        return code;
    }
    *handle = request;
    return MPI_SUCCESS;
}

static int shim_irecv(void *data, int bytes, int from, int tag, void **handle)
{
    MPI_Request *request = new_request();
    if (!request)
        return MPI_ERR_NO_MEM;
    int code = MPI_Irecv(data, bytes, MPI_BYTE, from, tag, MPI_COMM_WORLD, request);
    if (code != MPI_SUCCESS) {
        free(request);
        return code;
    }
    *handle = request;
    return MPI_SUCCESS;
}

static int shim_test(void **handle, int *done)
{
    MPI_Request *request = *handle;
    int code = MPI_Test(request, done, MPI_STATUS_IGNORE);
    if (code == MPI_SUCCESS && *done) {
        free(request);
        *handle = NULL;
    }
    return code;
}

static void shim_cancel(void **handle)
{
    MPI_Request *request = *handle;
    if (!request)
        return;
    MPI_Cancel(request);
    MPI_Request_free(request);
    free(request);
    *handle = NULL;
}

static void shim_abort(int exit_code)
{
    MPI_Abort(MPI_COMM_WORLD, exit_code);
}

static void shim_finalize(void)
{
    MPI_Finalize();
}

const struct al_mpi_shim al_mpi_shim_table = {
    .version = AL_MPI_SHIM_VERSION,
    .init = shim_init,
    .isend = shim_isend,
    .irecv = shim_irecv,
    .test = shim_test,
    .cancel = shim_cancel,
    .error_text = shim_error_text,
    .abort = shim_abort,
    .finalize = shim_finalize,
};
