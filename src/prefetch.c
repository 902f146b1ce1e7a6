/* prefetch.c: rows of a dataset for the trainer, read ahead of the step that needs them.
 *
 * This first version reads synchronously from memory: start() only records the request and
 * take() copies the rows. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mv_prefetch {
    const mv_dataset *data;
    int max_rows, n, slot;
    int *indices;     /* [max_rows] the pending request */
    float *rows[2];   /* [max_rows][D] each: the one lent out and the one being filled */
};

mv_status mv_dataset_read_rows(const mv_dataset *data, const int *indices, int n, float *out)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    for (int i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= data->count)
            return mv_fail(MV_ERR_ARG, "image %d is outside the dataset of %d", indices[i],
                           data->count);
        memcpy(out + (size_t)i * D, data->pixels + (size_t)indices[i] * D, sizeof *out * D);
    }
    return MV_OK;
}

mv_status mv_prefetch_create(mv_prefetch **out, const mv_dataset *data, int max_rows)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    mv_prefetch *p = calloc(1, sizeof *p);
    *out = NULL;
    if (p) {
        p->indices = malloc(sizeof *p->indices * (size_t)max_rows);
        p->rows[0] = malloc(sizeof(float) * (size_t)max_rows * D);
        p->rows[1] = malloc(sizeof(float) * (size_t)max_rows * D);
    }
    if (!p || !p->indices || !p->rows[0] || !p->rows[1]) {
        mv_prefetch_free(p);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the prefetch buffers (2 x %d rows)",
                       max_rows);
    }
    p->data = data;
    p->max_rows = max_rows;
    p->n = -1;
    *out = p;
    return MV_OK;
}

mv_status mv_prefetch_start(mv_prefetch *p, const int *indices, int n)
{
    if (n < 0 || n > p->max_rows)
        return mv_fail(MV_ERR_ARG, "a prefetch of %d rows does not fit %d", n, p->max_rows);
    memcpy(p->indices, indices, sizeof *indices * (size_t)n);
    p->n = n;
    return MV_OK;
}

mv_status mv_prefetch_take(mv_prefetch *p, const float **rows)
{
    if (p->n < 0)
        return mv_fail(MV_ERR_ARG, "prefetch: take without start");
    p->slot ^= 1;
    mv_status st = mv_dataset_read_rows(p->data, p->indices, p->n, p->rows[p->slot]);
    p->n = -1;
    *rows = p->rows[p->slot];
    return st;
}

void mv_prefetch_free(mv_prefetch *p)
{
    if (!p)
        return;
    free(p->indices);
    free(p->rows[0]);
    free(p->rows[1]);
    free(p);
}
