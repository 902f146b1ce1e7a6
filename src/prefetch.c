/* prefetch.c: rows of a dataset for the trainer, read ahead of the step that needs them.
 *
 * Every storage gives the same floats: floats are copied, a byte b becomes b / 255.0f (what
 * the loaders compute), and a streamed image is decoded by the very call the in-memory load
 * made. A prefetch over a streamed dataset reads on a thread of its own, so that batch b + 1
 * is read and decoded while batch b trains; over data in memory it reads in take(), which
 * costs a copy. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---------------------------------------------------------------- reading rows */

static void read_bytes(const mv_dataset *data, const int *indices, int n, size_t D, float *out)
{
    float value[256]; /* a table rather than a division per pixel */
    for (int b = 0; b < 256; b++) value[b] = b / 255.0f;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = data->bytes + (size_t)indices[i] * D;
        float *dst = out + (size_t)i * D;
        for (size_t k = 0; k < D; k++) dst[k] = value[src[k]];
    }
}

/* Streamed IDX: each image's bytes at their offset in the file, opened once per call so that
 * a file removed or replaced since the load is noticed. */
static mv_status read_idx_rows(const mv_dataset *data, const int *indices, int n, size_t D,
                               float *out)
{
    const mv_dataset_files *files = data->files;
    int fd = open(files->idx_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(MV_ERR_IO, "%s: cannot open: %s", files->idx_path, strerror(errno));
    float value[256];
    for (int b = 0; b < 256; b++) value[b] = b / 255.0f;
    uint8_t *row = malloc(D); /* [D] */
    mv_status st = row ? MV_OK : mv_fail(MV_ERR_NOMEM, "%s: out of memory", files->idx_path);
    for (int i = 0; !st && i < n; i++) {
        const int item = files->items[indices[i]];
        const off_t at = (off_t)files->idx_data + (off_t)item * (off_t)D;
        const ssize_t got = pread(fd, row, D, at);
        if (got != (ssize_t)D)
            st = got < 0 ? mv_fail(MV_ERR_IO, "%s: cannot read image %d: %s", files->idx_path,
                                   item, strerror(errno))
                         : mv_fail(MV_ERR_FORMAT, "%s: image %d is cut short (the file is shorter "
                                   "than when it was loaded)", files->idx_path, item);
        for (size_t k = 0; !st && k < D; k++) out[(size_t)i * D + k] = value[row[k]];
    }
    free(row);
    close(fd);
    return st;
}

/* Streamed folder: each file decoded as the loader decoded it, on `threads` threads. The
 * error reported is the first failing row in request order, whatever the scheduling. */
static mv_status read_folder_rows(const mv_dataset *data, const int *indices, int n, size_t D,
                                  int threads, float *out)
{
    const mv_dataset_files *files = data->files;
    int failed = INT_MAX;
    mv_status status = MV_OK;
    char message[512] = "";
    /* Dynamic scheduling: a file's cost (its size, a cold page cache) varies. */
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1 && n > 1)
    for (int i = 0; i < n; i++) {
        int first;
#pragma omp atomic read
        first = failed;
        if (first < i)
            continue;
        mv_status st = mv_image_load(files->paths[indices[i]], data->channels, data->width,
                                     data->height, files->max_pixels, out + (size_t)i * D);
        if (st) {
#pragma omp critical(mv_prefetch_failure)
            if (i < failed) {
                snprintf(message, sizeof message, "%s", mv_last_error());
                status = st;
#pragma omp atomic write
                failed = i;
            }
        }
    }
    return failed == INT_MAX ? MV_OK : mv_fail(status, "%s", message);
}

/* mv_dataset_read_rows with the thread count a streamed folder decodes on. */
static mv_status read_rows(const mv_dataset *data, const int *indices, int n, int threads,
                           float *out)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    if (n < 0 || !mv_dataset_has_images(data))
        return mv_fail(MV_ERR_ARG, "cannot read %d rows of a dataset without images", n);
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= data->count)
            return mv_fail(MV_ERR_ARG, "image %d is outside the dataset of %d", indices[i],
                           data->count);
    switch (data->storage) {
    case MV_STORAGE_FLOAT:
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * D, data->pixels + (size_t)indices[i] * D, sizeof *out * D);
        return MV_OK;
    case MV_STORAGE_BYTES:
        read_bytes(data, indices, n, D, out);
        return MV_OK;
    case MV_STORAGE_STREAM:
        return data->files->paths ? read_folder_rows(data, indices, n, D, threads, out)
                                  : read_idx_rows(data, indices, n, D, out);
    }
    return mv_fail(MV_ERR_ARG, "dataset of unknown storage %d", (int)data->storage);
}

mv_status mv_dataset_read_rows(const mv_dataset *data, const int *indices, int n, float *out)
{
    return read_rows(data, indices, n, omp_get_max_threads(), out);
}

mv_status mv_rows_view_open(mv_rows_view *view, const mv_dataset *data, const int *members,
                            int n)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    *view = (mv_rows_view){.pixels = data->pixels, .members = members};
    if (data->storage == MV_STORAGE_FLOAT)
        return MV_OK;
    const size_t room = (size_t)(n > 0 ? n : 1);
    view->rows = D <= SIZE_MAX / sizeof(float) / room ? malloc(sizeof(float) * D * room) : NULL;
    view->order = malloc(sizeof *view->order * room);
    if (!view->rows || !view->order)
        return mv_fail(MV_ERR_NOMEM, "out of memory for %d images of %zu pixels", n, D);
    for (int s = 0; s < n; s++) view->order[s] = s;
    view->pixels = view->rows;
    view->members = view->order;
    return mv_dataset_read_rows(data, members, n, view->rows);
}

void mv_rows_view_close(mv_rows_view *view)
{
    free(view->rows);
    free(view->order);
    *view = (mv_rows_view){0};
}

/* ---------------------------------------------------------------- prefetching */

/* What the reader thread is doing with the request. */
typedef enum { READ_NONE, READ_QUEUED, READ_DONE } read_state;

struct mv_prefetch {
    const mv_dataset *data;
    int max_rows, n, threads;
    int lent;         /* the buffer take() last lent out; the request fills the other */
    int *indices;     /* [max_rows] the pending request */
    float *rows[2];   /* [max_rows][D] each: the one lent out and the one being filled */
    /* streamed data: the reader thread, and what it shares with the caller under lock */
    int threaded, quit;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    read_state state;
    mv_status status; /* of the finished read, with its message (thread-local elsewhere) */
    char message[512];
};

/* The reader: waits for a queued request, reads it into the buffer not lent out, reports. */
static void *reader_main(void *arg)
{
    mv_prefetch *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->state != READ_QUEUED && !p->quit)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->quit)
            break;
        /* While the state is READ_QUEUED the caller touches neither the request nor the
         * buffer it fills. */
        pthread_mutex_unlock(&p->lock);
        const mv_status st = read_rows(p->data, p->indices, p->n, p->threads, p->rows[!p->lent]);
        pthread_mutex_lock(&p->lock);
        p->status = st;
        snprintf(p->message, sizeof p->message, "%s", st ? mv_last_error() : "");
        p->state = READ_DONE;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Waits until no read is under way. */
static void wait_idle(mv_prefetch *p)
{
    if (!p->threaded)
        return;
    pthread_mutex_lock(&p->lock);
    while (p->state == READ_QUEUED) pthread_cond_wait(&p->changed, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static mv_status start_reader(mv_prefetch *p)
{
    if (pthread_mutex_init(&p->lock, NULL))
        return mv_fail(MV_ERR_NOMEM, "prefetch: cannot create a lock");
    if (pthread_cond_init(&p->changed, NULL)) {
        pthread_mutex_destroy(&p->lock);
        return mv_fail(MV_ERR_NOMEM, "prefetch: cannot create a condition variable");
    }
    if (pthread_create(&p->thread, NULL, reader_main, p)) {
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
        return mv_fail(MV_ERR_NOMEM, "prefetch: cannot start the reading thread");
    }
    p->threaded = 1;
    return MV_OK;
}

mv_status mv_prefetch_create(mv_prefetch **out, const mv_dataset *data, int max_rows)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    *out = NULL;
    if (max_rows < 0)
        return mv_fail(MV_ERR_ARG, "prefetch: %d rows a batch", max_rows);
    const size_t room = (size_t)(max_rows ? max_rows : 1);
    mv_prefetch *p = calloc(1, sizeof *p);
    if (p) {
        p->indices = malloc(sizeof *p->indices * room);
        p->rows[0] = malloc(sizeof(float) * room * D);
        p->rows[1] = malloc(sizeof(float) * room * D);
    }
    if (!p || !p->indices || !p->rows[0] || !p->rows[1]) {
        mv_prefetch_free(p);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the prefetch buffers (2 x %d rows)",
                       max_rows);
    }
    p->data = data;
    p->max_rows = max_rows;
    p->n = -1;
    /* The caller's thread count (omp_set_num_threads is per thread): the reader's own
     * OpenMP team would otherwise take every core. */
    p->threads = omp_get_max_threads();
    mv_status st = data->storage == MV_STORAGE_STREAM ? start_reader(p) : MV_OK;
    if (st) {
        mv_prefetch_free(p);
        return st;
    }
    *out = p;
    return MV_OK;
}

mv_status mv_prefetch_start(mv_prefetch *p, const int *indices, int n)
{
    if (n < 0 || n > p->max_rows)
        return mv_fail(MV_ERR_ARG, "a prefetch of %d rows does not fit %d", n, p->max_rows);
    wait_idle(p); /* a request not taken is replaced, once its read has finished */
    memcpy(p->indices, indices, sizeof *indices * (size_t)n);
    p->n = n;
    if (p->threaded) {
        pthread_mutex_lock(&p->lock);
        p->state = READ_QUEUED;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    return MV_OK;
}

mv_status mv_prefetch_take(mv_prefetch *p, const float **rows)
{
    if (p->n < 0)
        return mv_fail(MV_ERR_ARG, "prefetch: take without start");
    mv_status st;
    if (p->threaded) {
        pthread_mutex_lock(&p->lock);
        while (p->state != READ_DONE) pthread_cond_wait(&p->changed, &p->lock);
        p->state = READ_NONE;
        st = p->status ? mv_fail(p->status, "%s", p->message) : MV_OK;
        pthread_mutex_unlock(&p->lock);
    } else {
        st = read_rows(p->data, p->indices, p->n, p->threads, p->rows[!p->lent]);
    }
    p->lent = !p->lent;
    p->n = -1;
    *rows = p->rows[p->lent];
    return st;
}

void mv_prefetch_free(mv_prefetch *p)
{
    if (!p)
        return;
    if (p->threaded) {
        pthread_mutex_lock(&p->lock);
        p->quit = 1; /* a read under way finishes first: the thread looks only between reads */
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
    }
    free(p->indices);
    free(p->rows[0]);
    free(p->rows[1]);
    free(p);
}
