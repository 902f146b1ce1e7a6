/* cli_viz_ranks.c: how `mlpviz visualize` shares its work among the processes of an MPI job.
 * Each process takes a fixed block of the items (the rows of the batch, or the trials of a
 * search), a function of the item count and the job's size only, computes them alone, and
 * the results are put back in item order on every process, so that rank 0 writes what one
 * process writes. Alone, the process takes every item and the gathers are copies. */
#include <stdlib.h>
#include <string.h>

#include "cli_viz.h"

void viz_share_free(viz_share *s)
{
    free(s->order);
    free(s->first);
    free(s->count);
    *s = (viz_share){0};
}

/* group [n]: the block each item belongs to, 0 .. groups-1. Groups are dealt out in
 * contiguous blocks, rank r from ceil(r G / P): rank 0 always has one when there is one (its
 * progress line shows the run). */
static int share_groups(viz_share *s, const int *group, int n, int groups)
{
    const int size = mv_dist_size();
    *s = (viz_share){.n = n, .order = malloc(sizeof *s->order * (size_t)(n ? n : 1)),
                     .first = calloc((size_t)size, sizeof *s->first),
                     .count = calloc((size_t)size, sizeof *s->count)};
    if (!s->order || !s->first || !s->count) {
        viz_share_free(s);
        return -1;
    }
    int at = 0;
    for (int r = 0; r < size; r++) {
        const long from = ((long)r * groups + size - 1) / size;
        const long to = ((long)(r + 1) * groups + size - 1) / size;
        s->first[r] = at;
        for (int i = 0; i < n; i++) /* ascending within a rank, as mv_visualize_rows wants */
            if (group[i] >= from && group[i] < to)
                s->order[at++] = i;
        s->count[r] = at - s->first[r];
    }
    return 0;
}

int viz_share_items(viz_share *s, int n)
{
    int *group = malloc(sizeof *group * (size_t)(n ? n : 1));
    if (!group)
        return -1;
    for (int i = 0; i < n; i++) group[i] = i;
    const int rc = share_groups(s, group, n, n);
    free(group);
    return rc;
}

int viz_share_rows(viz_share *s, const int *targets, int rows, int by_target)
{
    if (!by_target)
        return viz_share_items(s, rows);
    /* a group per target value, numbered in order of first appearance */
    int *group = malloc(sizeof *group * (size_t)rows), groups = 0;
    if (!group)
        return -1;
    for (int i = 0; i < rows; i++) {
        group[i] = -1;
        for (int j = 0; j < i && group[i] < 0; j++)
            if (targets[j] == targets[i])
                group[i] = group[j];
        if (group[i] < 0)
            group[i] = groups++;
    }
    const int rc = share_groups(s, group, rows, groups);
    free(group);
    return rc;
}

int viz_share_gather(const viz_share *s, const void *mine, size_t item, int slices, void *out)
{
    const int size = mv_dist_size();
    const size_t slice_bytes = item * (size_t)s->n;
    size_t *counts = malloc(sizeof *counts * (size_t)size);
    char *all = malloc(slice_bytes * (size_t)slices + 1);
    if (!counts || !all)
        cli_error("visualize", "out of memory to gather the results of %d processes", size);
    /* every process must reach the gather, or none */
    int rc = cli_job_agree("visualize", counts && all ? MV_EXIT_OK : MV_EXIT_FAIL);
    for (int r = 0; !rc && r < size; r++)
        counts[r] = item * (size_t)s->count[r] * (size_t)slices;
    if (!rc && mv_dist_allgatherv(mine, counts, all)) {
        cli_error("visualize", "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    /* rank r's part is [slices][count[r]][item]: each item to its place in [slices][n] */
    const char *from = all;
    for (int r = 0; !rc && r < size; r++)
        for (int k = 0; k < slices; k++)
            for (int j = 0; j < s->count[r]; j++, from += item)
                memcpy((char *)out + (size_t)k * slice_bytes +
                           (size_t)s->order[s->first[r] + j] * item,
                       from, item);
    free(counts);
    free(all);
    return cli_job_agree("visualize", rc);
}
