/* classmixture.c: per-class mixtures of k-means components, the diverse class-conditional
 * starts of class visualization. One Gaussian per class (classstats.c) puts every start near
 * the class mean, which for a class with several shapes (flat and high-heeled sandals, bags
 * with and without handles, short- and long-sleeved shirts: all separate components at
 * M = 8 on Fashion-MNIST) is a blur of all of them; a mixture starts each image near one of
 * the shapes.
 *
 * For each class: k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd iterations in
 * double until no assignment changes or MAX_LLOYD iterations; a component left empty takes
 * the point farthest from its centre, so that every component keeps a member and a mean.
 * Two things make it fast enough for a training run's tail (Fashion-MNIST: 6000 images of
 * 784 pixels a class, 20 to 50 iterations): Elkan's bounds skip nearly every distance, and
 * the components' pixel sums are carried from one iteration to the next by the members
 * that moved, then summed afresh at the end. Components are stored largest first. When the
 * model carries class statistics of rank R > 0, each component also gets the standard
 * deviation of its members along the class's R basis directions, so that sampling can
 * spread around the component mean the way the members do.
 *
 * Determinism: the parallel loops split outputs (one point's nearest centre, bounds and
 * projections, one block of pixels of every sum), never a sum; every sum runs in an order
 * fixed by the code (pixels in order through four partial sums, members and moves in
 * dataset order), so the thread count never changes a bit of the result. Every random
 * number comes from the seed, one stream per class drawn in class order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
    MAX_COMPONENTS = 64, /* the header's bound */
    MAX_LLOYD = 50,      /* Fashion-MNIST classes settle in 20-50 iterations at M = 8; later
                            ones move a handful of borderline images */
    PIXEL_BLOCK = 64,    /* pixels of every sum updated by one thread in update_sums */
};
/* Mixes the caller's seed so that the per-class streams differ from classstats.c's, which
 * draws its class seeds from the same seed ("mixture" in ASCII). */
static const uint64_t STREAM_TAG = 0x6d69787475726500ull;

static const char *const EXTRA_MEAN = "class.mixture.mean",
                         *const EXTRA_WEIGHT = "class.mixture.weight",
                         *const EXTRA_SD = "class.mixture.sd";

/* The k-means state of one class of n members. Distances to centres are kept as Elkan's
 * bounds (2003): upper[s] >= the distance of member s to its centre, lower[s][j] <= its
 * distance to centre j. A centre farther than the upper bound by either its lower bound or
 * the triangle inequality through the member's own centre cannot take the member, and
 * needs no distance computed; after the first iterations that is nearly every centre of
 * nearly every member. */
typedef struct {
    int D, n, M;
    const float *pixels;  /* the images, [..][D], indexed by members */
    const int *members;   /* [n] image indices of the class, in dataset order */
    double *centre, *old; /* [M][D] the centres, and before their last update */
    double *sum;          /* [M][D] the pixel sums of the members of each component */
    double *upper;        /* [n] bounds on distances (not squared) */
    double *lower;        /* [n][M] */
    double *gap;          /* [M][M] half the distances between centres */
    double *half;         /* [M] half the distance to the nearest other centre */
    double *move;         /* [M] how far each centre moved in its last update */
    double *dist;         /* [n] squared distances: to the nearest seed, or to the centre */
    int *assign, *prev;   /* [n] component of each member, this and the previous iteration */
    int *moved;           /* [n] the members whose component changed in this iteration */
    int *count;           /* [M] members per component */
    unsigned char *stale; /* [M] non-zero: the members changed since the centre was summed */
} kmeans;

static const float *member(const kmeans *km, int s)
{
    return km->pixels + (size_t)km->members[s] * km->D;
}

/* ---------------------------------------------------------------- small kernels */

/* |x - c|^2 with four partial sums combined in a fixed order: vectorisable without
 * -ffast-math, and the same bits on every run. */
static double dist2(const float *restrict x, const double *restrict c, int D)
{
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= D; i += 4)
        for (int j = 0; j < 4; j++) {
            const double t = x[i + j] - c[i + j];
            s[j] += t * t;
        }
    for (int j = 0; i < D; i++, j++) {
        const double t = x[i] - c[i];
        s[j] += t * t;
    }
    return (s[0] + s[2]) + (s[1] + s[3]);
}

/* |a - b|^2 between two centres, summed like dist2. */
static double dist2d(const double *restrict a, const double *restrict b, int D)
{
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= D; i += 4)
        for (int j = 0; j < 4; j++) s[j] += (a[i + j] - b[i + j]) * (a[i + j] - b[i + j]);
    for (int j = 0; i < D; i++, j++) s[j] += (a[i] - b[i]) * (a[i] - b[i]);
    return (s[0] + s[2]) + (s[1] + s[3]);
}

/* (x - c) . b, summed like dist2. */
static double project(const float *restrict x, const double *restrict c,
                      const float *restrict b, int D)
{
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= D; i += 4)
        for (int j = 0; j < 4; j++) s[j] += (x[i + j] - c[i + j]) * b[i + j];
    for (int j = 0; i < D; i++, j++) s[j] += (x[i] - c[i]) * b[i];
    return (s[0] + s[2]) + (s[1] + s[3]);
}

/* ---------------------------------------------------------------- k-means */

/* A member drawn with probability proportional to weight[s] (cumulated in member order);
 * uniformly when every weight is 0 (a class of identical images). */
static int pick_weighted(const double *weight, int n, mv_rng *rng)
{
    double total = 0;
    for (int s = 0; s < n; s++) total += weight[s];
    if (!(total > 0))
        return (int)mv_rng_below(rng, (uint32_t)n);
    const double u = mv_rng_uniform(rng) * total;
    double cum = 0;
    int last = 0;
    for (int s = 0; s < n; s++) {
        if (weight[s] <= 0)
            continue;
        cum += weight[s];
        last = s;
        if (u < cum)
            return s;
    }
    return last; /* u rounded up to the total */
}

/* k-means++: the first centre a uniform member, each next one a member drawn with
 * probability proportional to its squared distance to the nearest centre so far. */
static void seed_centres(kmeans *km, mv_rng *rng)
{
    const int D = km->D, n = km->n;
    const int parallel = (double)n * D > MV_PARALLEL_FIT_WORK;
    int s = (int)mv_rng_below(rng, (uint32_t)n);
    for (int j = 0; j < km->M; j++) {
        double *c = km->centre + (size_t)j * D;
        const float *x = member(km, s);
        for (int d = 0; d < D; d++) c[d] = x[d];
        if (j + 1 == km->M)
            break;
        /* Safe: each point updates only its own distance. */
        MV_FOR_EACH(int, t, n, parallel, {
            const double d2 = dist2(member(km, t), c, D);
            if (j == 0 || d2 < km->dist[t])
                km->dist[t] = d2;
        });
        s = pick_weighted(km->dist, n, rng);
    }
}

/* Non-zero when a member whose distance to its centre is at most upper cannot be nearer to
 * another centre, all of which are at least bound away. The slack keeps the test on the
 * safe side of the rounding in the bounds (relative 1e-15 per operation, distances below
 * sqrt(D)), so that pruning never changes an assignment: each member goes where computing
 * every distance would send it (measured: the same bytes as plain Lloyd iterations on
 * Fashion-MNIST, five times faster). */
static int stays(double upper, double bound)
{
    return upper * (1 + 1e-9) + 1e-9 < bound;
}

/* km->gap[i][j]: half the distance between centres i and j; km->half[j]: the least of
 * them over i != j (infinite for M = 1). A member within gap[a][j] of its centre a is
 * nearer to a than to j. */
static void centre_gaps(kmeans *km)
{
    const int D = km->D, M = km->M;
    for (int j = 0; j < M; j++) {
        km->half[j] = INFINITY;
        km->gap[(size_t)j * M + j] = 0;
    }
    for (int j = 0; j < M; j++)
        for (int i = j + 1; i < M; i++) {
            const double g = 0.5 * sqrt(dist2d(km->centre + (size_t)j * D,
                                               km->centre + (size_t)i * D, D));
            km->gap[(size_t)j * M + i] = km->gap[(size_t)i * M + j] = g;
            km->half[j] = g < km->half[j] ? g : km->half[j];
            km->half[i] = g < km->half[i] ? g : km->half[i];
        }
}

/* Member s to its nearest centre, the first of equals, as a plain search over every centre
 * would choose it, but computing only the distances its bounds cannot rule out. */
static void assign_point(kmeans *km, int s)
{
    const int D = km->D, M = km->M;
    const float *x = member(km, s);
    double *lower = km->lower + (size_t)s * M;
    int a = km->assign[s], exact = 0;
    if (stays(km->upper[s], km->half[a]))
        return;
    for (int j = 0; j < M; j++) {
        if (j == a)
            continue;
        const double *gap = km->gap + (size_t)a * M;
        if (stays(km->upper[s], lower[j] > gap[j] ? lower[j] : gap[j]))
            continue;
        if (!exact) { /* the bound may be loose: tighten it, and try again */
            km->upper[s] = lower[a] = sqrt(dist2(x, km->centre + (size_t)a * D, D));
            exact = 1;
            if (stays(km->upper[s], lower[j] > gap[j] ? lower[j] : gap[j]))
                continue;
        }
        const double d = lower[j] = sqrt(dist2(x, km->centre + (size_t)j * D, D));
        if (d < km->upper[s] || (d == km->upper[s] && j < a)) {
            a = j;
            km->upper[s] = d;
        }
    }
    km->assign[s] = a;
}

static void assign_points(kmeans *km)
{
    centre_gaps(km);
    /* Safe: each member writes only its own assignment and bounds. */
    MV_FOR_EACH(int, s, km->n, (double)km->n * km->D > MV_PARALLEL_FIT_WORK, {
        assign_point(km, s);
    });
}

/* Gives each empty component the member farthest from its centre (the first of equals)
 * among components that keep another member. With n >= M such a member always exists. */
static void fill_empty(kmeans *km)
{
    const int D = km->D;
    int empty = 0;
    memset(km->count, 0, sizeof *km->count * (size_t)km->M);
    for (int s = 0; s < km->n; s++) km->count[km->assign[s]]++;
    for (int j = 0; j < km->M; j++) empty += !km->count[j];
    if (!empty)
        return;
    /* Rare: exact distances, since the bounds only bound them. Safe: one entry per member. */
    MV_FOR_EACH(int, s, km->n, (double)km->n * D > MV_PARALLEL_FIT_WORK, {
        km->dist[s] = dist2(member(km, s), km->centre + (size_t)km->assign[s] * D, D);
    });
    for (int j = 0; j < km->M; j++) {
        if (km->count[j])
            continue;
        int far = -1;
        for (int s = 0; s < km->n; s++)
            if (km->count[km->assign[s]] > 1 && (far < 0 || km->dist[s] > km->dist[far]))
                far = s;
        km->count[km->assign[far]]--;
        km->assign[far] = j;
        km->count[j] = 1;
        km->dist[far] = 0;
        km->upper[far] = INFINITY; /* its lower bounds hold whatever its component */
    }
}

/* Adds (sign 1) or removes (-1) member s's pixels lo..hi to or from component j's sum. */
static void add_member(kmeans *km, int s, int j, double sign, int lo, int hi)
{
    const float *x = member(km, s);
    double *sum = km->sum + (size_t)j * km->D;
    for (int d = lo; d < hi; d++) sum[d] += sign * x[d];
}

/* The components' pixel sums: from zero over every member (n_moved < 0), or carried over
 * by moving each of km->moved[0 .. n_moved) from its previous component to its new one,
 * which costs only the moves: after the first iterations a few members a round. */
static void update_sums(kmeans *km, int n_moved)
{
    const int D = km->D, blocks = (D + PIXEL_BLOCK - 1) / PIXEL_BLOCK;
    const double work = (double)(n_moved < 0 ? km->n : n_moved) * D;
    /* Deterministic: a block of pixels of every sum belongs to one thread, which adds the
     * members in order. */
    MV_FOR_EACH(int, b, blocks, work > MV_PARALLEL_FIT_WORK, {
        const int lo = b * PIXEL_BLOCK, hi = lo + PIXEL_BLOCK < D ? lo + PIXEL_BLOCK : D;
        if (n_moved < 0) {
            for (int j = 0; j < km->M; j++)
                for (int d = lo; d < hi; d++) km->sum[(size_t)j * D + d] = 0;
            for (int s = 0; s < km->n; s++) add_member(km, s, km->assign[s], 1, lo, hi);
        }
        for (int t = 0; t < n_moved; t++) {
            const int s = km->moved[t];
            add_member(km, s, km->prev[s], -1, lo, hi);
            add_member(km, s, km->assign[s], 1, lo, hi);
        }
    });
}

/* Each stale centre the mean of its members; the others keep their bits. */
static void update_centres(kmeans *km)
{
    const size_t D = (size_t)km->D;
    memcpy(km->old, km->centre, sizeof *km->old * km->M * D);
    for (int j = 0; j < km->M; j++)
        for (size_t d = 0; d < D && km->stale[j]; d++)
            km->centre[j * D + d] = km->sum[j * D + d] / km->count[j];
}

/* After the centres moved: each upper bound grows by its centre's move, each lower bound
 * shrinks by its centre's (triangle inequality). */
static void move_bounds(kmeans *km)
{
    const int D = km->D, M = km->M;
    for (int j = 0; j < M; j++)
        km->move[j] = km->stale[j] ? sqrt(dist2d(km->old + (size_t)j * D,
                                                 km->centre + (size_t)j * D, D)) : 0;
    /* Safe: each member writes only its own bounds. */
    MV_FOR_EACH(int, s, km->n, (double)km->n * M > MV_PARALLEL_FIT_WORK, {
        double *lower = km->lower + (size_t)s * M;
        km->upper[s] += km->move[km->assign[s]];
        for (int j = 0; j < M; j++) lower[j] -= km->move[j];
    });
}

/* Seeding and Lloyd iterations. On return the centres are the means of their members,
 * each summed afresh in member order, and km->count the members of each, with no
 * component empty. */
static void run_kmeans(kmeans *km, mv_rng *rng)
{
    seed_centres(km, rng);
    for (int s = 0; s < km->n; s++) { /* bounds that prove nothing: a full search each */
        km->assign[s] = 0;
        km->upper[s] = INFINITY;
    }
    memset(km->lower, 0, sizeof *km->lower * (size_t)km->n * km->M);
    memset(km->stale, 1, (size_t)km->M);
    for (int iter = 0; iter < MAX_LLOYD; iter++) {
        memcpy(km->prev, km->assign, sizeof *km->prev * (size_t)km->n);
        assign_points(km);
        fill_empty(km);
        int n_moved = 0;
        for (int s = 0; s < km->n; s++)
            if (km->assign[s] != km->prev[s]) {
                km->stale[km->assign[s]] = km->stale[km->prev[s]] = 1;
                km->moved[n_moved++] = s;
            }
        if (iter > 0 && n_moved == 0)
            break; /* the centres already are these members' means */
        update_sums(km, iter == 0 ? -1 : n_moved);
        update_centres(km);
        move_bounds(km);
        memset(km->stale, 0, (size_t)km->M);
    }
    /* Sums carried over many moves hold their rounding errors: start afresh, so that the
     * stored means do not depend on the path the iterations took. */
    update_sums(km, -1);
    memset(km->stale, 1, (size_t)km->M);
    update_centres(km);
}

/* ---------------------------------------------------------------- one class */

/* Buffers of one fit, sized for the largest class. */
typedef struct {
    kmeans km;
    double *proj; /* [n][R] members' projections onto the class basis */
    double *sq;   /* [M][R] their sums of squares per component */
    int R;
} workspace;

/* The standard deviation of each component's members along the basis rows [R][D], into
 * sd [M][R], in the component order order[M]. */
static void component_sd(workspace *ws, const float *basis, const int *order, float *sd)
{
    kmeans *km = &ws->km;
    const int D = km->D, R = ws->R;
    /* Safe: each point writes only its own projections. */
    MV_FOR_EACH(int, s, km->n, (double)km->n * R * D > MV_PARALLEL_FIT_WORK, {
        const double *c = km->centre + (size_t)km->assign[s] * D;
        for (int i = 0; i < R; i++)
            ws->proj[(size_t)s * R + i] = project(member(km, s), c, basis + (size_t)i * D, D);
    });
    memset(ws->sq, 0, sizeof *ws->sq * (size_t)km->M * R);
    for (int s = 0; s < km->n; s++)
        for (int i = 0; i < R; i++) {
            const double p = ws->proj[(size_t)s * R + i];
            ws->sq[(size_t)km->assign[s] * R + i] += p * p;
        }
    for (int m = 0; m < km->M; m++)
        for (int i = 0; i < R; i++)
            sd[(size_t)m * R + i] =
                (float)sqrt(ws->sq[(size_t)order[m] * R + i] / km->count[order[m]]);
}

/* Class k's mixture into mean [M][D], weight [M] and (ws->R > 0) sd [M][R]: components by
 * decreasing weight, the earlier one first on ties. basis [R][D] is the class's. */
static mv_status fit_class(workspace *ws, const mv_dataset *data, int k, mv_rng *rng,
                           const float *basis, float *mean, float *weight, float *sd)
{
    kmeans *km = &ws->km;
    const int D = km->D, M = km->M;
    run_kmeans(km, rng);
    int order[MAX_COMPONENTS];
    for (int m = 0; m < M; m++) {
        int at = m; /* insertion sort: stable, so equal weights keep their order */
        while (at > 0 && km->count[order[at - 1]] < km->count[m]) {
            order[at] = order[at - 1];
            at--;
        }
        order[at] = m;
    }
    for (int m = 0; m < M; m++) {
        const double *c = km->centre + (size_t)order[m] * D;
        for (int d = 0; d < D; d++) {
            if (!isfinite(c[d]))
                return mv_fail(MV_ERR_NUMERIC, "class mixture: class %d ('%s') has a "
                               "non-finite pixel (a component mean at pixel %d is %g)", k,
                               mv_dataset_class_name(data, k), d, c[d]);
            mean[(size_t)m * D + d] = (float)c[d];
        }
        weight[m] = (float)((double)km->count[order[m]] / km->n);
    }
    if (ws->R > 0)
        component_sd(ws, basis, order, sd);
    return MV_OK;
}

/* ---------------------------------------------------------------- the fit */

static void workspace_free(workspace *ws)
{
    free(ws->km.centre);
    free(ws->km.old);
    free(ws->km.sum);
    free(ws->km.moved);
    free(ws->km.upper);
    free(ws->km.lower);
    free(ws->km.gap);
    free(ws->km.half);
    free(ws->km.move);
    free(ws->km.dist);
    free(ws->km.assign);
    free(ws->km.prev);
    free(ws->km.count);
    free(ws->km.stale);
    free(ws->proj);
    free(ws->sq);
}

static mv_status workspace_create(workspace *ws, int D, int M, int R, int largest)
{
    memset(ws, 0, sizeof *ws);
    const size_t n = (size_t)largest;
    ws->R = R;
    ws->km.D = D;
    ws->km.M = M;
    ws->km.centre = malloc(sizeof *ws->km.centre * (size_t)M * D);
    ws->km.old = malloc(sizeof *ws->km.old * (size_t)M * D);
    ws->km.sum = malloc(sizeof *ws->km.sum * (size_t)M * D);
    ws->km.moved = malloc(sizeof *ws->km.moved * n);
    ws->km.upper = malloc(sizeof *ws->km.upper * n);
    ws->km.lower = malloc(sizeof *ws->km.lower * n * (size_t)M);
    ws->km.gap = malloc(sizeof *ws->km.gap * (size_t)M * M);
    ws->km.half = malloc(sizeof *ws->km.half * (size_t)M);
    ws->km.move = malloc(sizeof *ws->km.move * (size_t)M);
    ws->km.dist = malloc(sizeof *ws->km.dist * n);
    ws->km.assign = malloc(sizeof *ws->km.assign * n);
    ws->km.prev = malloc(sizeof *ws->km.prev * n);
    ws->km.count = malloc(sizeof *ws->km.count * (size_t)M);
    ws->km.stale = malloc((size_t)M);
    ws->proj = malloc(sizeof *ws->proj * (n * R + 1));
    ws->sq = malloc(sizeof *ws->sq * ((size_t)M * R + 1));
    if (!ws->km.centre || !ws->km.old || !ws->km.sum || !ws->km.moved || !ws->km.upper ||
        !ws->km.lower || !ws->km.gap || !ws->km.half || !ws->km.move || !ws->km.dist ||
        !ws->km.assign || !ws->km.prev || !ws->km.count || !ws->km.stale || !ws->proj ||
        !ws->sq) {
        workspace_free(ws);
        return mv_fail(MV_ERR_NOMEM, "class mixture: cannot allocate %d components of %d "
                       "pixels and the work space of %d images", M, D, largest);
    }
    return MV_OK;
}

static mv_status check_fit_args(const mv_model *model, const mv_dataset *data, int M)
{
    if (!model || !data)
        return mv_fail(MV_ERR_ARG, "class mixture needs a model and a dataset");
    if (data->count < 1 || !mv_dataset_has_images(data) || !data->labels)
        return mv_fail(MV_ERR_ARG, "class mixture: the dataset is empty");
    if (data->channels != model->channels || data->height != model->height ||
        data->width != model->width || model->channels < 1 || model->height < 1 ||
        model->width < 1)
        return mv_fail(MV_ERR_ARG, "class mixture: the dataset's images are %d x %d x %d "
                       "(channels x height x width), the model's input %d x %d x %d",
                       data->channels, data->height, data->width, model->channels,
                       model->height, model->width);
    if ((long long)model->channels * model->height * model->width > (1 << 24))
        return mv_fail(MV_ERR_ARG, "class mixture: the input shape %d x %d x %d is absurd",
                       model->channels, model->height, model->width);
    if (data->n_classes != model->n_classes || data->n_classes < 1)
        return mv_fail(MV_ERR_ARG, "class mixture: the dataset has %d classes, the model %d",
                       data->n_classes, model->n_classes);
    if (M < 1 || M > MAX_COMPONENTS)
        return mv_fail(MV_ERR_ARG, "class mixture: %d components is out of range 1..%d", M,
                       MAX_COMPONENTS);
    for (int i = 0; i < data->count; i++)
        if (data->labels[i] < 0 || data->labels[i] >= data->n_classes)
            return mv_fail(MV_ERR_ARG, "class mixture: image %d has label %d, outside 0..%d",
                           i, data->labels[i], data->n_classes - 1);
    return MV_OK;
}

/* Every class needs M images, one per component at least. */
static mv_status check_class_sizes(const mv_dataset *data, int M, const int *start)
{
    for (int k = 0; k < data->n_classes; k++)
        if (start[k + 1] - start[k] < M)
            return mv_fail(MV_ERR_ARG, "class mixture: %d components need at least %d images "
                           "in every class; class %d ('%s') has %d", M, M, k,
                           mv_dataset_class_name(data, k), start[k + 1] - start[k]);
    return MV_OK;
}

/* Replaces the extras. An empty weight array goes first and the real one last: should a
 * copy in between fail (out of memory), the sizes disagree and mv_model_has_class_mixture
 * reports no mixture, rather than a mixture of an old fit and a new one. Without
 * deviations (R = 0), a deviation array of an earlier fit is emptied. */
static mv_status store_mixture(mv_model *model, const float *mean, const float *weight,
                               const float *sd, size_t K, size_t M, size_t D, size_t R)
{
    const int has_sd = mv_model_extra_get(model, EXTRA_SD, NULL) != NULL;
    const int missing = !mv_model_extra_get(model, EXTRA_MEAN, NULL) +
                        !mv_model_extra_get(model, EXTRA_WEIGHT, NULL) + (R > 0 && !has_sd);
    if (model->n_extras + missing > MV_MODEL_MAX_EXTRAS)
        return mv_fail(MV_ERR_ARG, "class mixture: the model holds %d extra arrays; %d more "
                       "would pass the limit of %d", model->n_extras, missing,
                       MV_MODEL_MAX_EXTRAS);
    mv_status st = mv_model_extra_set(model, EXTRA_WEIGHT, NULL, 0);
    if (!st)
        st = mv_model_extra_set(model, EXTRA_MEAN, mean, K * M * D);
    if (!st && (R > 0 || has_sd))
        st = mv_model_extra_set(model, EXTRA_SD, sd, K * M * R);
    if (!st)
        st = mv_model_extra_set(model, EXTRA_WEIGHT, weight, K * M);
    return st;
}


/* Every class's mixture into mean [K][M][D], weight [K][M] and sd [K][M][R], the
 * deviations along the class statistics' basis [K][R][D] (R = 0: none). */
static mv_status fit_all(const mv_dataset *data, const int *start, const int *members, int D,
                         int M, int R, const float *basis, uint64_t seed, float *mean,
                         float *weight, float *sd)
{
    const int K = data->n_classes;
    int largest = 0;
    for (int k = 0; k < K; k++)
        largest = start[k + 1] - start[k] > largest ? start[k + 1] - start[k] : largest;
    workspace ws;
    mv_status st = workspace_create(&ws, D, M, R, largest);
    if (st)
        return st;
    /* one seed per class, drawn in class order: a class's result does not depend on how
     * many random numbers another class needed */
    mv_rng seeds;
    mv_rng_seed(&seeds, seed ^ STREAM_TAG);
    for (int k = 0; !st && k < K; k++) {
        mv_rng rng;
        mv_rng_seed(&rng, mv_rng_next(&seeds));
        /* a dataset not held as floats has only this class's images as floats */
        mv_rows_view view;
        st = mv_rows_view_open(&view, data, members + start[k], start[k + 1] - start[k]);
        ws.km.pixels = view.pixels;
        ws.km.members = view.members;
        ws.km.n = start[k + 1] - start[k];
        if (!st)
            st = fit_class(&ws, data, k, &rng, R ? basis + (size_t)k * R * D : NULL,
                           mean + (size_t)k * M * D, weight + (size_t)k * M,
                           sd + (size_t)k * M * R);
        mv_rows_view_close(&view);
    }
    workspace_free(&ws);
    return st;
}

int mv_class_mixture_components(const mv_dataset *data, int wanted)
{
    const int smallest = data->n_classes > 0 ? mv_smallest_class_size(data) : 0;
    const int components = wanted < smallest ? wanted : smallest;
    return components > 0 ? components : 0;
}

mv_status mv_model_fit_class_mixture(mv_model *model, const mv_dataset *data, int components,
                                     uint64_t seed)
{
    mv_status st = check_fit_args(model, data, components);
    if (st)
        return st;
    const int K = data->n_classes, M = components;
    const int D = model->channels * model->height * model->width;
    int R = 0;
    if (!mv_model_has_class_stats(model, &R))
        R = 0; /* no basis: means and weights only */
    const float *basis = R ? mv_model_extra_get(model, "class.basis", NULL) : NULL;
    int *start = malloc(sizeof *start * (size_t)(K + 1));           /* [K + 1] */
    int *members = malloc(sizeof *members * (size_t)data->count);   /* [count] */
    float *mean = malloc(sizeof *mean * (size_t)K * M * D);         /* [K][M][D] */
    float *weight = malloc(sizeof *weight * (size_t)K * M);         /* [K][M] */
    float *sd = malloc(sizeof *sd * ((size_t)K * M * R + 1));       /* [K][M][R] */
    if (!start || !members || !mean || !weight || !sd)
        st = mv_fail(MV_ERR_NOMEM, "class mixture: cannot allocate %d components of %d "
                     "classes of %d pixels", M, K, D);
    if (!st) {
        mv_group_by_class(data, start, members);
        st = check_class_sizes(data, M, start);
    }
    if (!st)
        st = fit_all(data, start, members, D, M, R, basis, seed, mean, weight, sd);
    if (!st)
        st = store_mixture(model, mean, weight, sd, (size_t)K, (size_t)M, (size_t)D,
                           (size_t)R);
    free(start);
    free(members);
    free(mean);
    free(weight);
    free(sd);
    return st;
}

/* ---------------------------------------------------------------- using it */

/* Non-zero when the mixture extras agree with each other, with the model's classes and
 * input, and (deviations present) with its class statistics: *M its components, *R the
 * rank of its deviations (0: none). Every class's weights must be >= 0 with a positive sum,
 * so that a component can be drawn. */
static int mixture_shape(const mv_model *model, int *M, int *R)
{
    *M = *R = 0;
    if (!model || model->n_classes < 1 || model->channels < 1 || model->height < 1 ||
        model->width < 1)
        return 0;
    const size_t K = (size_t)model->n_classes;
    const size_t D = (size_t)model->channels * model->height * model->width;
    size_t n_mean, n_weight, n_sd;
    const float *mean = mv_model_extra_get(model, EXTRA_MEAN, &n_mean);
    const float *weight = mv_model_extra_get(model, EXTRA_WEIGHT, &n_weight);
    const float *sd = mv_model_extra_get(model, EXTRA_SD, &n_sd);
    if (!mean || !weight || n_weight % K || n_weight / K < 1 || n_weight / K > MAX_COMPONENTS)
        return 0;
    const size_t m = n_weight / K;
    if (n_mean != K * m * D)
        return 0;
    int rank = 0;
    if (sd && n_sd > 0 && (!mv_model_has_class_stats(model, &rank) || rank < 1 ||
                           n_sd != K * m * (size_t)rank))
        return 0; /* deviations along a basis the model no longer has */
    for (size_t k = 0; k < K; k++) {
        double total = 0;
        for (size_t j = 0; j < m; j++) {
            if (!(weight[k * m + j] >= 0))
                return 0;
            total += weight[k * m + j];
        }
        if (!(total > 0))
            return 0;
    }
    *M = (int)m;
    *R = sd && n_sd > 0 ? rank : 0;
    return 1;
}

int mv_model_has_class_mixture(const mv_model *model, int *components)
{
    int M, R;
    const int ok = mixture_shape(model, &M, &R);
    if (components)
        *components = M;
    return ok;
}

/* A component of class k drawn with probability its weight (weights [M], sum > 0): the
 * members' pick on the weights in double, which sums them as it did in float. */
static int pick_component(const float *weight, int M, mv_rng *rng)
{
    double w[MAX_COMPONENTS];
    for (int j = 0; j < M; j++) w[j] = weight[j];
    return pick_weighted(w, M, rng);
}

mv_status mv_class_mixture_sample(const mv_model *model, int k, double temperature,
                                  mv_rng *rng, float *out)
{
    if (!model || !rng || !out)
        return mv_fail(MV_ERR_ARG, "class mixture sample: model, generator and output are "
                       "required");
    int M, R;
    if (!mixture_shape(model, &M, &R))
        return mv_fail(MV_ERR_ARG, "class mixture sample: the model carries no consistent "
                       "class mixture (%s, %s, %s)", EXTRA_MEAN, EXTRA_WEIGHT, EXTRA_SD);
    if (k < 0 || k >= model->n_classes)
        return mv_fail(MV_ERR_ARG, "class mixture sample: class %d is out of range 0..%d", k,
                       model->n_classes - 1);
    if (!isfinite(temperature) || temperature < 0)
        return mv_fail(MV_ERR_ARG, "class mixture sample: temperature must be finite and "
                       ">= 0, got %g", temperature);
    if (temperature > 0 && R == 0)
        return mv_fail(MV_ERR_ARG, "class mixture sample: temperature %g needs the "
                       "components' deviations (%s), which are fitted only when the model "
                       "has class statistics of rank > 0 before the mixture", temperature,
                       EXTRA_SD);
    const size_t D = (size_t)model->channels * model->height * model->width;
    const int m = pick_component(mv_model_extra_get(model, EXTRA_WEIGHT, NULL) + (size_t)k * M,
                                 M, rng);
    const float *mean = mv_model_extra_get(model, EXTRA_MEAN, NULL) + ((size_t)k * M + m) * D;
    const float *sd = R ? mv_model_extra_get(model, EXTRA_SD, NULL) + ((size_t)k * M + m) * R
                        : NULL;
    const float *basis = R ? mv_model_extra_get(model, "class.basis", NULL) + (size_t)k * R * D
                           : NULL;
    /* one uniform above and R normals here, whatever the temperature */
    mv_low_rank_draw(mean, basis, sd, R, D, temperature, rng, out);
    return MV_OK;
}
