/* Ranks over the MPI shim: launcher detection, loading the shim, and bounded waits. */
#include "train/ranks.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/error.h"
#include "agentlora/log.h"
#include "train/mpi_shim.h"

#define SHIM_NAME "libagentlora_mpi.so"
#define MESSAGE_TAG 4242
/* MPI counts are ints; larger buffers go as several messages. */
#define LARGEST_MESSAGE ((size_t)1 << 30)

/* The launcher's world size, or 1 when no launcher started this process. */
static int launched_size(const char **variable)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        if (value && *value) {
            *variable = names[i];
            return atoi(value);
        }
    }
    *variable = NULL;
    return 1;
}

static int launched_local_rank(int rank)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        if (value && *value)
            return atoi(value);
    }
    return rank;
}

/* The folder of the running executable, for the shim built beside it. */
static void executable_folder(char *out, size_t size)
{
    ssize_t length = readlink("/proc/self/exe", out, size - 1);
    if (length <= 0) {
        snprintf(out, size, ".");
        return;
    }
    out[length] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* $AGENTLORA_MPI_SHIM, else the shim beside the executable or in its build/ folder. */
static void *load_shim(char *tried, size_t tried_size)
{
    char folder[PATH_MAX], path[PATH_MAX + 32];
    const char *chosen = getenv("AGENTLORA_MPI_SHIM");
    if (chosen && *chosen) {
        snprintf(tried, tried_size, "%s (AGENTLORA_MPI_SHIM)", chosen);
        /* Global symbols: Open MPI's components, loaded later, resolve against libmpi. */
        return dlopen(chosen, RTLD_NOW | RTLD_GLOBAL);
    }
    executable_folder(folder, sizeof folder);
    const char *const places[] = {"%s/build/" SHIM_NAME, "%s/" SHIM_NAME};
    tried[0] = '\0';
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        snprintf(path, sizeof path, places[i], folder);
        size_t used = strlen(tried);
        snprintf(tried + used, tried_size - used, "%s%s", i ? ", " : "", path);
        void *library = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (library)
            return library;
    }
    return NULL;
}

static int open_mpi(struct al_ranks *ranks, int launched)
{
    char tried[2 * PATH_MAX + 128];
    ranks->library = load_shim(tried, sizeof tried);
    if (!ranks->library)
        return al_fail("this process is one of %d ranks (%s=%d), and ranks talk through MPI, but the MPI shim "
                       "could not be loaded (tried %s: %s). `make` builds it where mpicc exists (`make deps` "
                       "installs Open MPI); AGENTLORA_MPI_SHIM names another",
                       launched, ranks->launcher, launched, tried, dlerror());
    ranks->mpi = dlsym(ranks->library, AL_MPI_SHIM_SYMBOL);
    if (!ranks->mpi)
        return al_fail("the MPI shim (%s) has no %s: not agentlora's shim", tried, AL_MPI_SHIM_SYMBOL);
    if (ranks->mpi->version != AL_MPI_SHIM_VERSION)
        return al_fail("the MPI shim (%s) is version %d, this agentlora needs version %d: rebuild it with `make`",
                       tried, ranks->mpi->version, AL_MPI_SHIM_VERSION);
    char message[512];
    if (ranks->mpi->init(&ranks->rank, &ranks->size, message, sizeof message) != 0)
        return al_fail("MPI_Init failed: %s", message);
    if (ranks->size != launched)
        return al_fail("MPI says %d ranks, the launcher (%s) said %d", ranks->size, ranks->launcher, launched);
    return 0;
}

int al_ranks_open(struct al_ranks *ranks, double timeout_seconds)
{
    memset(ranks, 0, sizeof *ranks);
    ranks->size = 1;
    ranks->timeout_seconds = timeout_seconds;
    int launched = launched_size(&ranks->launcher);
    if (launched < 1)
        return al_fail("%s=%d: a launcher's world size must be at least 1", ranks->launcher, launched);
    if (launched > 1 && open_mpi(ranks, launched) != 0) {
        al_ranks_close(ranks);
        return -1;
    }
    ranks->local_rank = launched_local_rank(ranks->rank);
    return 0;
}

void al_ranks_close(struct al_ranks *ranks)
{
    if (ranks->mpi && ranks->size > 1)
        ranks->mpi->finalize();
    /* The shim stays loaded: Open MPI keeps handlers and threads that point into it. */
    ranks->mpi = NULL;
    ranks->library = NULL;
    ranks->size = 1;
}

void al_ranks_abort(const struct al_ranks *ranks, int exit_code)
{
    if (ranks->mpi && ranks->size > 1) {
        fflush(stdout);
        fflush(stderr);
        ranks->mpi->abort(exit_code);
    }
}

static double monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

static int mpi_failure(const struct al_ranks *ranks, int code, const char *action, int peer, const char *what)
{
    char text[512];
    ranks->mpi->error_text(code, text, sizeof text);
    return al_fail("rank %d: MPI failed to %s rank %d (%s): %s", ranks->rank, action, peer, what, text);
}

/* Waits for one request, sleeping between polls (a waiting rank must not take the core a
 * computing rank needs), at most timeout_seconds. */
static int wait_for(const struct al_ranks *ranks, void **request, const char *action, int peer, const char *what)
{
    double deadline = monotonic_seconds() + ranks->timeout_seconds;
    long pause_ns = 1000;
    for (;;) {
        int done = 0;
        int code = ranks->mpi->test(request, &done);
        if (code != 0)
            return mpi_failure(ranks, code, action, peer, what);
        if (done)
            return 0;
        if (monotonic_seconds() > deadline) {
            ranks->mpi->cancel(request);
            return al_fail("rank %d: rank %d did not answer for %g s (collective_timeout) while this rank waited to "
                           "%s it %s: rank %d has stopped, hung or died",
                           ranks->rank, peer, ranks->timeout_seconds, action, what, peer);
        }
        struct timespec pause = {0, pause_ns};
        nanosleep(&pause, NULL);
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
}

static int transfer(const struct al_ranks *ranks, bool sending, int peer, void *data, size_t bytes, const char *what)
{
    if (peer < 0 || peer >= ranks->size || peer == ranks->rank)
        return al_fail("rank %d: no rank %d to exchange %s with (%d ranks)", ranks->rank, peer, what, ranks->size);
    const char *action = sending ? "send" : "receive from";
    size_t done = 0;
    do { /* once for an empty message too: the peer waits for it */
        size_t left = bytes - done;
        int count = (int)(left < LARGEST_MESSAGE ? left : LARGEST_MESSAGE);
        void *request = NULL;
        int code = sending ? ranks->mpi->isend((char *)data + done, count, peer, MESSAGE_TAG, &request)
                           : ranks->mpi->irecv((char *)data + done, count, peer, MESSAGE_TAG, &request);
        if (code != 0)
            return mpi_failure(ranks, code, action, peer, what);
        if (wait_for(ranks, &request, action, peer, what) != 0)
            return -1;
        done += (size_t)count;
    } while (done < bytes);
    return 0;
}

int al_ranks_send(const struct al_ranks *ranks, int to, const void *data, size_t bytes, const char *what)
{
    return transfer(ranks, true, to, (void *)data, bytes, what);
}

int al_ranks_receive(const struct al_ranks *ranks, int from, void *data, size_t bytes, const char *what)
{
    return transfer(ranks, false, from, data, bytes, what);
}

/* Root sends to each rank in turn: a few ranks, small messages. */
int al_ranks_broadcast(const struct al_ranks *ranks, int root, void *data, size_t bytes, const char *what)
{
    if (!al_ranks_many(ranks))
        return 0;
    if (ranks->rank != root)
        return al_ranks_receive(ranks, root, data, bytes, what);
    for (int peer = 0; peer < ranks->size; peer++)
        if (peer != root && al_ranks_send(ranks, peer, data, bytes, what) != 0)
            return -1;
    return 0;
}

int al_ranks_gather(const struct al_ranks *ranks, int root, const void *mine, void *all, size_t bytes,
                    const char *what)
{
    if (ranks->rank != root)
        return al_ranks_send(ranks, root, mine, bytes, what);
    for (int peer = 0; peer < ranks->size; peer++) {
        char *slot = (char *)all + (size_t)peer * bytes;
        if (peer == root)
            memmove(slot, mine, bytes);
        else if (al_ranks_receive(ranks, peer, slot, bytes, what) != 0)
            return -1;
    }
    return 0;
}
