/* share.c: a training batch shared among the processes of a job, with the bits of one process.
 *
 * Every batch is cut into G chunks (G a power of two, fixed by the run's settings, never by
 * the number of processes N): chunk c is rows [c rows / G, (c + 1) rows / G). The parameter
 * gradient is the sum of the chunk sums in one binary tree ((s0 + s1) + (s2 + s3)) + ...
 * (mv_dense_param_grad_chunks), whoever computes it. Rank r takes chunks [r G / N,
 * (r + 1) G / N) and computes the largest whole subtrees of the tree they cover (its
 * "nodes", at most 2 log2 G of them). The exchange is a reduce-scatter then an all-gather,
 * like a ring all-reduce, but with a fixed order: the parameters are cut into N slices; every
 * rank sends each node's slice r to rank r (MPI_Alltoallv), rank r completes the tree over
 * its slice from the nodes of all ranks, adds in the tree's own pairs, updates that slice of
 * the weights (the optimizer is elementwise), and an all-gather gives every rank all the
 * weights. Each rank sends and receives about 2 P (N - 1) / N values a step when N divides G,
 * as a ring all-reduce does; the cost model is in docs/BENCHMARKS.md. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mv_share {
    int G, size, rank;
    int *lo;                 /* [size + 1]: rank r has chunks [lo[r], lo[r + 1]) */
    int n_all, *first, *count, *owner; /* every rank's nodes, in chunk order */
    int mine, n_mine;        /* this rank's nodes: all[mine .. mine + n_mine) */
    int *cb;                 /* [G + 1] chunk bounds of the current batch, in its rows */
    int *bounds;             /* [n_mine][G + 1] the nodes' bounds, from their first row */
    mv_grad_node *nodes;     /* [n_mine] */
    mv_params *result;       /* the reduced gradient (size > 1: this rank's slice only) */
    size_t P, *slice;        /* [size + 1]: rank r updates parameters [slice[r], slice[r+1]) */
    float *send, *recv, *tmp;/* exchange buffers; tmp: one slice per tree level */
    size_t *counts;          /* [4][size] alltoallv counts and offsets */
};

/* Appends the largest aligned subtrees covering chunks [lo, hi) of a tree of G leaves. */
static void add_nodes(mv_share *s, int lo, int hi, int rank)
{
    for (int p = lo; p < hi;) {
        int k = p ? p & -p : s->G;
        while (p + k > hi) k /= 2;
        s->first[s->n_all] = p;
        s->count[s->n_all] = k;
        s->owner[s->n_all++] = rank;
        p += k;
    }
}

static mv_status share_alloc(mv_share *s, const mv_arch *arch)
{
    const int n = s->size, max_nodes = n * (2 * MV_MAX_GRAD_LEVELS + 2);
    s->lo = malloc(sizeof *s->lo * (size_t)(n + 1));
    s->first = malloc(sizeof(int) * (size_t)max_nodes);
    s->count = malloc(sizeof(int) * (size_t)max_nodes);
    s->owner = malloc(sizeof(int) * (size_t)max_nodes);
    s->cb = malloc(sizeof *s->cb * (size_t)(s->G + 1));
    s->slice = malloc(sizeof *s->slice * (size_t)(n + 1));
    s->counts = malloc(sizeof *s->counts * 4 * (size_t)n);
    if (!s->lo || !s->first || !s->count || !s->owner || !s->cb || !s->slice || !s->counts)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the batch's share");
    for (int r = 0; r <= n; r++) {
        s->lo[r] = (int)((long)r * s->G / n);
        s->slice[r] = (size_t)((unsigned long long)r * s->P / (unsigned long long)n);
    }
    for (int r = 0; r < n; r++) {
        if (r == s->rank)
            s->mine = s->n_all;
        add_nodes(s, s->lo[r], s->lo[r + 1], r);
        if (r == s->rank)
            s->n_mine = s->n_all - s->mine;
    }
    s->bounds = malloc(sizeof *s->bounds * (size_t)(s->n_mine ? s->n_mine : 1) * (s->G + 1));
    s->nodes = calloc((size_t)(s->n_mine ? s->n_mine : 1), sizeof *s->nodes);
    if (!s->bounds || !s->nodes)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the batch's share");
    for (int k = 0; k < s->n_mine; k++) {
        mv_status st = mv_params_create(&s->nodes[k].grads, arch);
        if (st)
            return st;
        s->nodes[k].bounds = s->bounds + (size_t)k * (s->G + 1);
        s->nodes[k].n_chunks = s->count[s->mine + k];
    }
    return MV_OK;
}

/* The exchange buffers, for several processes only. */
static mv_status exchange_alloc(mv_share *s, const mv_arch *arch)
{
    mv_status st = mv_params_create(&s->result, arch);
    if (st)
        return st;
    const size_t own = s->slice[s->rank + 1] - s->slice[s->rank];
    s->send = malloc(sizeof *s->send * (s->n_mine > 1 ? s->P * (size_t)s->n_mine : 1));
    s->recv = malloc(sizeof *s->recv * (own * (size_t)s->n_all + 1));
    s->tmp = malloc(sizeof *s->tmp * (own * (MV_MAX_GRAD_LEVELS + 1) + 1));
    if (!s->send || !s->recv || !s->tmp)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the gradient exchange (%zu values)",
                       s->P * (size_t)s->n_mine + own * (size_t)s->n_all);
    return MV_OK;
}

mv_status mv_share_create(mv_share **out, const mv_arch *arch, int chunks)
{
    *out = NULL;
    const int size = mv_dist_size();
    if (chunks < 1 || chunks > (1 << MV_MAX_GRAD_LEVELS) || (chunks & (chunks - 1)))
        return mv_fail(MV_ERR_ARG, "gradient chunks must be a power of two from 1 to %d, got %d",
                       1 << MV_MAX_GRAD_LEVELS, chunks);
    int enough = 1;
    while (enough < size) enough *= 2;
    if (size > chunks)
        return mv_fail(MV_ERR_ARG, "this job has %d processes but a batch is cut into %d "
                                   "chunks: give --grad-chunks %d or more (a power of two; "
                                   "it changes the bits of the result)", size, chunks, enough);
    mv_share *s = calloc(1, sizeof *s);
    if (!s)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the batch's share");
    *s = (mv_share){.G = chunks, .size = size, .rank = mv_dist_rank(),
                    .P = mv_arch_param_count(arch)};
    mv_status st = share_alloc(s, arch);
    if (st == MV_OK && size > 1)
        st = exchange_alloc(s, arch);
    if (st) {
        mv_share_free(s);
        return st;
    }
    *out = s;
    return MV_OK;
}

void mv_share_free(mv_share *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->n_mine && s->nodes; k++) mv_params_free(s->nodes[k].grads);
    mv_params_free(s->result);
    free(s->lo), free(s->first), free(s->count), free(s->owner), free(s->cb), free(s->bounds);
    free(s->nodes), free(s->slice), free(s->send), free(s->recv), free(s->tmp), free(s->counts);
    free(s);
}

void mv_share_rows(const mv_share *s, int rows, int *row0, int *count)
{
    const int lo = s->lo[s->rank], hi = s->lo[s->rank + 1];
    *row0 = (int)((long)lo * rows / s->G);
    *count = (int)((long)hi * rows / s->G) - *row0;
}

void mv_share_batch(mv_share *s, int rows, int *row0, int *count)
{
    for (int c = 0; c <= s->G; c++) s->cb[c] = (int)((long)c * rows / s->G);
    const int base = s->cb[s->lo[s->rank]];
    for (int k = 0; k < s->n_mine; k++) {
        const int first = s->first[s->mine + k];
        int *b = s->bounds + (size_t)k * (s->G + 1);
        for (int i = 0; i <= s->count[s->mine + k]; i++) b[i] = s->cb[first + i] - s->cb[first];
        s->nodes[k].row0 = s->cb[first] - base;
    }
    *row0 = base;
    *count = s->cb[s->lo[s->rank + 1]] - base;
}

const mv_grad_node *mv_share_nodes(const mv_share *s, int *n)
{
    *n = s->n_mine;
    return s->nodes;
}

void mv_share_slice(const mv_share *s, size_t *lo, size_t *hi)
{
    *lo = s->slice[s->rank];
    *hi = s->slice[s->rank + 1];
}

/* The received values of the node covering exactly chunks [a, b) (node g at recv + g len),
 * or NULL when the tree must be descended. */
static const float *node_values(const mv_share *s, int a, int b, size_t len)
{
    for (int g = 0; g < s->n_all; g++)
        if (s->first[g] == a && s->count[g] == b - a)
            return s->recv + (size_t)g * len;
    return NULL;
}

/* out [len] = the tree over chunks [a, b) from the received nodes. */
static void tree_eval(const mv_share *s, int a, int b, size_t len, int level, float *out)
{
    const float *whole = node_values(s, a, b, len);
    if (whole) {
        memcpy(out, whole, sizeof *out * len);
        return;
    }
    const int mid = (a + b) / 2;
    const float *left = node_values(s, a, mid, len), *right = node_values(s, mid, b, len);
    if (!left) { /* descend; the right half too when it was not received whole */
        tree_eval(s, a, mid, len, level + 1, out);
        left = out;
    }
    if (!right) {
        float *scratch = s->tmp + (size_t)level * len;
        tree_eval(s, mid, b, len, level + 1, scratch);
        right = scratch;
    }
    for (size_t i = 0; i < len; i++) out[i] = left[i] + right[i];
}

mv_status mv_share_reduce(mv_share *s, const mv_params **grads)
{
    if (s->size == 1) { /* one node, the whole tree */
        *grads = s->nodes[0].grads;
        return MV_OK;
    }
    const int n = s->size;
    size_t *sc = s->counts, *so = sc + n, *rc = so + n, *ro = rc + n, at = 0;
    const size_t own = s->slice[s->rank + 1] - s->slice[s->rank];
    const float *send = s->send;
    if (s->n_mine == 1) /* slice r of my one node is already in place */
        send = s->nodes[0].grads->data;
    for (int r = 0; r < n; r++) { /* to rank r: slice r of each of my nodes */
        const size_t len = s->slice[r + 1] - s->slice[r];
        so[r] = s->n_mine == 1 ? s->slice[r] : at;
        sc[r] = len * (size_t)s->n_mine;
        for (int k = 0; k < s->n_mine && s->n_mine > 1; k++, at += len)
            memcpy(s->send + at, s->nodes[k].grads->data + s->slice[r], sizeof(float) * len);
    }
    for (int g = 0, r = 0; r < n; r++) { /* from rank r: its nodes' values of my slice */
        ro[r] = (size_t)g * own;
        while (g < s->n_all && s->owner[g] == r) g++;
        rc[r] = (size_t)g * own - ro[r];
    }
    mv_status st = mv_dist_alltoallv_floats(send, sc, so, s->recv, rc, ro);
    if (st)
        return st;
    tree_eval(s, 0, s->G, own, 0, s->result->data + s->slice[s->rank]);
    *grads = s->result;
    return MV_OK;
}

mv_status mv_share_gather_slices(mv_share *s, float *data)
{
    if (s->size == 1)
        return MV_OK;
    size_t *bytes = s->counts;
    for (int r = 0; r < s->size; r++) bytes[r] = sizeof(float) * (s->slice[r + 1] - s->slice[r]);
    return mv_dist_allgatherv_in_place(data, bytes);
}

mv_status mv_share_gather_rows(mv_share *s, const void *mine, size_t row_bytes, void *all)
{
    size_t *bytes = s->counts;
    for (int r = 0; r < s->size; r++)
        bytes[r] = row_bytes * (size_t)(s->cb[s->lo[r + 1]] - s->cb[s->lo[r]]);
    return mv_dist_allgatherv(mine, bytes, all);
}
