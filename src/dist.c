/* dist.c: the job of several processes (MPI), or of this process alone.
 *
 * Built with -DMV_MPI (make MPI=1) these calls are MPI's, on MPI_COMM_WORLD with errors
 * returned rather than fatal, so that a failed call becomes a message; otherwise the job is
 * one process and every collective is a copy. Only the thread that called mv_dist_init calls
 * MPI (MPI_THREAD_FUNNELED): the OpenMP threads of a rank compute, they never communicate.
 *
 * MPI counts are ints: a broadcast of 2^31 bytes or more goes as several pieces; a gather or
 * an exchange that large is refused with a message. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef MV_MPI
#include <mpi.h>

static int dist_rank, dist_size = 1, dist_joined, dist_local = 1;

static mv_status mpi_fail(int code, const char *call)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int length = 0;
    MPI_Error_string(code, text, &length);
    return mv_fail(MV_ERR_IO, "%s failed on rank %d: %s", call, dist_rank, text);
}

mv_status mv_dist_init(int *argc, char ***argv)
{
    int provided = 0, code = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS)
        return mpi_fail(code, "MPI_Init_thread");
    dist_joined = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
    MPI_Comm node; /* the processes that share this one's memory: its machine */
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &dist_local);
        MPI_Comm_free(&node);
    }
    if (provided < MPI_THREAD_FUNNELED)
        return mv_fail(MV_ERR_IO, "this MPI cannot run alongside threads (funneled)");
    return MV_OK;
}

void mv_dist_finish(void)
{
    if (dist_joined)
        MPI_Finalize();
    dist_joined = 0;
}

int mv_dist_rank(void) { return dist_rank; }
int mv_dist_size(void) { return dist_size; }
int mv_dist_local_size(void) { return dist_local; }
int mv_dist_mpi(void) { return 1; }

mv_status mv_dist_allgather(const void *mine, size_t bytes, void *all)
{
    size_t *counts = malloc(sizeof *counts * (size_t)dist_size);
    if (!counts)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the gather counts");
    for (int r = 0; r < dist_size; r++) counts[r] = bytes;
    const mv_status st = mv_dist_allgatherv(mine, counts, all);
    free(counts);
    return st;
}

/* MPI_Allgatherv of byte counts; mine NULL: this rank's part is already in place in all. */
static mv_status allgatherv_bytes(const void *mine, const size_t *counts, void *all)
{
    int *recv = malloc(sizeof *recv * (size_t)dist_size);
    int *displ = malloc(sizeof *displ * (size_t)dist_size);
    size_t total = 0;
    for (int r = 0; r < dist_size; r++) total += counts[r];
    mv_status st = recv && displ ? MV_OK : mv_fail(MV_ERR_NOMEM, "cannot allocate counts");
    if (st == MV_OK && total >= INT_MAX)
        st = mv_fail(MV_ERR_ARG, "a gather of %zu bytes: MPI takes at most %d", total, INT_MAX);
    if (st == MV_OK) {
        int offset = 0;
        for (int r = 0; r < dist_size; r++)
            recv[r] = (int)counts[r], displ[r] = offset, offset += recv[r];
        const int code = mine ? MPI_Allgatherv(mine, recv[dist_rank], MPI_BYTE, all, recv, displ,
                                               MPI_BYTE, MPI_COMM_WORLD)
                              : MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, recv,
                                               displ, MPI_BYTE, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS)
            st = mpi_fail(code, "MPI_Allgatherv");
    }
    free(recv);
    free(displ);
    return st;
}

mv_status mv_dist_allgatherv(const void *mine, const size_t *counts, void *all)
{
    return allgatherv_bytes(mine, counts, all);
}

mv_status mv_dist_allgatherv_in_place(void *all, const size_t *counts)
{
    return allgatherv_bytes(NULL, counts, all);
}

mv_status mv_dist_broadcast(void *data, size_t bytes, int root)
{
    for (size_t done = 0; done < bytes; done += INT_MAX / 2) {
        const size_t n = bytes - done < INT_MAX / 2 ? bytes - done : INT_MAX / 2;
        const int code = MPI_Bcast((char *)data + done, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "MPI_Bcast");
    }
    return MV_OK;
}

mv_status mv_dist_alltoallv_floats(const float *send, const size_t *send_counts,
                                   const size_t *send_offsets, float *recv,
                                   const size_t *recv_counts, const size_t *recv_offsets)
{
    const int n = dist_size;
    int *numbers = malloc(sizeof *numbers * 4 * (size_t)n);
    if (!numbers)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the exchange counts");
    int *sc = numbers, *sd = numbers + n, *rc = numbers + 2 * n, *rd = numbers + 3 * n;
    for (int r = 0; r < n; r++) {
        if (send_offsets[r] + send_counts[r] > INT_MAX || recv_offsets[r] + recv_counts[r] > INT_MAX) {
            free(numbers);
            return mv_fail(MV_ERR_ARG, "an exchange of more than %d floats", INT_MAX);
        }
        sc[r] = (int)send_counts[r], sd[r] = (int)send_offsets[r];
        rc[r] = (int)recv_counts[r], rd[r] = (int)recv_offsets[r];
    }
    const int code = MPI_Alltoallv(send, sc, sd, MPI_FLOAT, recv, rc, rd, MPI_FLOAT,
                                   MPI_COMM_WORLD);
    free(numbers);
    return code == MPI_SUCCESS ? MV_OK : mpi_fail(code, "MPI_Alltoallv");
}

#else /* one process */

mv_status mv_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return MV_OK;
}

void mv_dist_finish(void) {}
int mv_dist_rank(void) { return 0; }
int mv_dist_size(void) { return 1; }
int mv_dist_local_size(void) { return 1; }
int mv_dist_mpi(void) { return 0; }

mv_status mv_dist_allgather(const void *mine, size_t bytes, void *all)
{
    if (bytes)
        memmove(all, mine, bytes);
    return MV_OK;
}

mv_status mv_dist_allgatherv(const void *mine, const size_t *counts, void *all)
{
    return mv_dist_allgather(mine, counts[0], all);
}

mv_status mv_dist_allgatherv_in_place(void *all, const size_t *counts)
{
    (void)all;
    (void)counts;
    return MV_OK;
}

mv_status mv_dist_broadcast(void *data, size_t bytes, int root)
{
    (void)data;
    (void)bytes;
    return root == 0 ? MV_OK : mv_fail(MV_ERR_ARG, "broadcast from rank %d of 1", root);
}

mv_status mv_dist_alltoallv_floats(const float *send, const size_t *send_counts,
                                   const size_t *send_offsets, float *recv,
                                   const size_t *recv_counts, const size_t *recv_offsets)
{
    (void)recv_counts;
    memmove(recv + recv_offsets[0], send + send_offsets[0], sizeof *send * send_counts[0]);
    return MV_OK;
}

#endif

/* Each rank's status and message, gathered: a fixed record so that one allgather does. */
typedef struct {
    int status;
    char message[480];
} agreement;

int mv_dist_agree(mv_status mine) { return mv_dist_agree_reason(mine, NULL); }

int mv_dist_agree_reason(mv_status mine, const char *reason)
{
    const int n = mv_dist_size();
    agreement own = {.status = mine}, *all = calloc((size_t)n, sizeof *all);
    if (mine)
        snprintf(own.message, sizeof own.message, "%s", reason ? reason : mv_last_error());
    if (!all) {
        mv_fail(MV_ERR_NOMEM, "rank %d: cannot allocate the agreement", mv_dist_rank());
        return mv_dist_rank();
    }
    if (mv_dist_allgather(&own, sizeof own, all)) {
        free(all);
        return mv_dist_rank();
    }
    int failed = -1;
    for (int r = 0; r < n && failed < 0; r++)
        if (all[r].status != MV_OK)
            failed = r;
    if (failed >= 0)
        mv_fail((mv_status)all[failed].status, "rank %d: %s", failed, all[failed].message);
    free(all);
    return failed;
}
