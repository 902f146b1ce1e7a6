/* classstats.c: per-class mean images and low-rank Gaussians of the pixels, the
 * class-conditional starts of class visualization (Santurkar et al. 2019).
 *
 * For each class: the mean; the scatter matrix S = sum (x - mu)(x - mu)^T, formed once
 * (D x D) so that each iteration costs 2 D^2 b instead of the 4 n D b of two passes over
 * the centred data (n is thousands, D at most a few thousand, so forming S wins); then the
 * top eigenvectors of S by subspace iteration (Rutishauser) on a block of b = rank + 8
 * vectors, with a Rayleigh-Ritz step every iteration that both orders the directions and
 * tells when their eigenvalues have settled. The covariance is S / n.
 *
 * Determinism: the parallel loops split outputs (block rows of S, pixel blocks of S V),
 * never a sum, and every sum runs in an order fixed by the code, so the thread count never
 * changes a bit of the result. Every random number (the starting block, replacements for
 * directions the class does not span) comes from the seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
    MAX_RANK = 64,     /* the header's bound */
    OVERSAMPLE = 8,    /* extra block vectors: direction i converges as (l_{b+1} / l_i)^iter */
    MAX_BLOCK = MAX_RANK + OVERSAMPLE,
    MIN_ITERS = 3,     /* a first change below tolerance may be luck */
    MAX_ITERS = 60,    /* bounds the time on a spectrum too flat to settle (noise images);
                          real classes settle in 15-25 (Fashion-MNIST, rank 16) */
    TILE = 4,          /* 4 x 4 accumulators: half of SSE2's registers, the rest for operands */
    CHUNK = 256,       /* samples packed per pass over S: two panels (16 KiB) stay in L1 */
    MEAN_BLOCK = 32,   /* images read at a time for a mean: few, since D may be large when
                          no scatter is fitted (rank 0) */
    JACOBI_SWEEPS = 60,
    GS_ATTEMPTS = 32,  /* random replacements tried for one collapsed direction */
    MAX_GAUSSIAN_INPUTS = 4096, /* the scatter matrix is D x D doubles: at most 128 MB */
};
static const double RITZ_TOL = 1e-9;   /* relative change of the Ritz values that ends it */
static const double RITZ_FLOOR = 1e-13; /* of the largest: eigenvalues below are noise */
static const double COLLAPSE = 1e-10;  /* norm kept by Gram-Schmidt below which a direction
                                          was in the span of the earlier ones */

static const char *const EXTRA_MEAN = "class.mean", *const EXTRA_BASIS = "class.basis",
                         *const EXTRA_SD = "class.sd";

/* Buffers of one fit, sized for the largest class. */
typedef struct {
    int D, Dp;          /* pixels per image; D rounded up to TILE */
    int b, bp;          /* block vectors; b rounded up to TILE */
    double *scatter;    /* [Dp / TILE][Dp][TILE] S of the current class in column panels:
                           S[j][i] at [i / TILE][j][i % TILE], zero past D */
    double *pack;       /* [Dp / TILE][CHUNK][TILE] centred samples, panel p = pixels 4p..4p+3 */
    double *V;          /* [b][D] the block, orthonormal rows */
    double *W;          /* [b][D] S V, rows; also the rotation's scratch */
    double *Vp;         /* [bp / TILE][Dp][TILE] V transposed in panels, zero-padded */
    double *H, *Q;      /* [b][b] V S V^T and its eigenvectors (columns) */
    double *theta, *prev; /* [b] Ritz values, descending, this and the previous iteration */
} workspace;

const char *mv_dataset_class_name(const mv_dataset *data, int k)
{
    return data->class_names && data->class_names[k] ? data->class_names[k] : "?";
}

/* ---------------------------------------------------------------- small kernels */

/* Four partial sums, combined in a fixed order: vectorisable without -ffast-math, and the
 * same bits on every run. */
static double dot(const double *restrict a, const double *restrict b, int n)
{
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) s[j] += a[i] * b[i];
    return (s[0] + s[2]) + (s[1] + s[3]);
}

/* acc[a][c] = sum over t < n, in t order, of A[t sa + a] * B[t sb + c]: one TILE x TILE
 * tile of a matrix product. The 16 sums are spelled out as scalars so that GCC keeps them in
 * registers and pairs them into SSE2 vectors even at -O2 (a [4][4] array needed -O3 for
 * that, and ran twice as slow at -O2). Each sum is its own chain, so vectorising does not
 * change a bit. */
_Static_assert(TILE == 4, "tile_product is written out for 4 x 4 tiles");
static void tile_product(const double *restrict A, size_t sa, const double *restrict B,
                         size_t sb, int n, double acc[TILE][TILE])
{
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
    for (int t = 0; t < n; t++) {
        const double *a = A + (size_t)t * sa, *b = B + (size_t)t * sb;
        const double b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        s00 += a[0] * b0, s01 += a[0] * b1, s02 += a[0] * b2, s03 += a[0] * b3;
        s10 += a[1] * b0, s11 += a[1] * b1, s12 += a[1] * b2, s13 += a[1] * b3;
        s20 += a[2] * b0, s21 += a[2] * b1, s22 += a[2] * b2, s23 += a[2] * b3;
        s30 += a[3] * b0, s31 += a[3] * b1, s32 += a[3] * b2, s33 += a[3] * b3;
    }
    const double s[TILE][TILE] = {{s00, s01, s02, s03}, {s10, s11, s12, s13},
                                  {s20, s21, s22, s23}, {s30, s31, s32, s33}};
    memcpy(acc, s, sizeof s);
}

/* ---------------------------------------------------------------- grouping and means */

void mv_group_by_class(const mv_dataset *data, int *start, int *members)
{
    const int K = data->n_classes;
    memset(start, 0, sizeof *start * (size_t)(K + 1));
    for (int i = 0; i < data->count; i++) start[data->labels[i] + 1]++;
    for (int k = 0; k < K; k++) start[k + 1] += start[k];
    /* start[k] serves as class k's cursor, which leaves it at start[k + 1]; then shifted
     * back. Stable: each class keeps dataset order. */
    for (int i = 0; i < data->count; i++) members[start[data->labels[i]]++] = i;
    for (int k = K; k > 0; k--) start[k] = start[k - 1];
    start[0] = 0;
}

int mv_smallest_class_size(const mv_dataset *data)
{
    int *count = calloc((size_t)data->n_classes, sizeof *count);
    if (!count)
        return -1;
    for (int i = 0; i < data->count; i++)
        if (data->labels[i] >= 0 && data->labels[i] < data->n_classes)
            count[data->labels[i]]++;
    int smallest = count[0];
    for (int k = 1; k < data->n_classes; k++) smallest = count[k] < smallest ? count[k] : smallest;
    free(count);
    return smallest;
}

mv_status mv_class_stats_rank(const mv_dataset *data, int wanted, int *rank)
{
    *rank = -1;
    if (wanted < 0 || wanted > MAX_RANK)
        return mv_fail(MV_ERR_ARG, "class statistics: rank %d is out of range 0..%d", wanted,
                       MAX_RANK);
    const int smallest = data->n_classes > 0 ? mv_smallest_class_size(data) : 0;
    if (smallest < 0)
        return mv_fail(MV_ERR_NOMEM, "class statistics: cannot count the images of %d "
                       "classes", data->n_classes);
    if (smallest < 1)
        return mv_fail(MV_ERR_ARG, "a class has no training image: no class statistics "
                       "stored (visualize cannot start from the class mean)");
    *rank = wanted < smallest - 1 ? wanted : smallest - 1;
    const long D = (long)data->width * data->height * data->channels;
    if (D > MAX_GAUSSIAN_INPUTS && *rank > 0) {
        *rank = 0;
        return mv_fail(MV_ERR_ARG, "%ld inputs: storing class means only, no Gaussians", D);
    }
    return MV_OK;
}

/* Every class must hold more than rank images, so that its covariance can have rank
 * independent directions. */
static mv_status check_class_sizes(const mv_dataset *data, int rank, const int *start)
{
    for (int k = 0; k < data->n_classes; k++) {
        const int n = start[k + 1] - start[k];
        if (n == 0)
            return mv_fail(MV_ERR_ARG, "class statistics: class %d ('%s') has no images", k,
                           mv_dataset_class_name(data, k));
        if (n <= rank)
            return mv_fail(MV_ERR_ARG, "class statistics: rank %d needs more than %d images "
                           "in every class; class %d ('%s') has %d", rank, rank, k,
                           mv_dataset_class_name(data, k), n);
    }
    return MV_OK;
}

/* m [D]: the mean image of class k, whose n members are images members[..] of data, each
 * pixel summed in double in member order. The images are read MEAN_BLOCK at a time into
 * rows [MEAN_BLOCK][D], so that no storage needs more than that as floats. */
static mv_status class_mean(const mv_dataset *data, int k, const int *members, int n, int D,
                            float *rows, double *m)
{
    memset(m, 0, sizeof *m * (size_t)D);
    for (int s0 = 0; s0 < n; s0 += MEAN_BLOCK) {
        const int len = n - s0 < MEAN_BLOCK ? n - s0 : MEAN_BLOCK;
        const mv_status st = mv_dataset_read_rows(data, members + s0, len, rows);
        if (st)
            return st;
        for (int s = 0; s < len; s++) {
            const float *x = rows + (size_t)s * D;
            for (int d = 0; d < D; d++) m[d] += x[d];
        }
    }
    for (int d = 0; d < D; d++) {
        m[d] /= n;
        if (!isfinite(m[d]))
            return mv_fail(MV_ERR_NUMERIC, "class statistics: class %d ('%s') has a "
                           "non-finite pixel (its mean at pixel %d is %g)", k,
                           mv_dataset_class_name(data, k), d, m[d]);
    }
    return MV_OK;
}

/* ---------------------------------------------------------------- the scatter matrix */

/* Centres samples rows [len][D] into ws->pack. Called inside a parallel region. */
static void pack_chunk(workspace *ws, const float *rows, int len, const double *mean)
{
    const int D = ws->D, Dp = ws->Dp;
    /* Safe: each sample s writes only its own entries of the panels. */
#pragma omp for schedule(static)
    for (int s = 0; s < len; s++) {
        const float *x = rows + (size_t)s * D;
        for (int d = 0; d < Dp; d++)
            ws->pack[((size_t)(d / TILE) * CHUNK + s) * TILE + d % TILE] =
                d < D ? x[d] - mean[d] : 0;
    }
}

/* Adds the packed chunk's products to the upper block triangle of S. Called inside a
 * parallel region. */
static void accumulate_chunk(workspace *ws, int len)
{
    const int nb = ws->Dp / TILE;
    const size_t Dp = (size_t)ws->Dp, panel = (size_t)CHUNK * TILE;
    /* Deterministic: block row ib of S is written by one thread only, and each of its
     * entries sums the chunk in sample order, then adds to S in chunk order, whichever
     * thread runs it. Dynamic scheduling only balances the triangle's uneven rows. */
#pragma omp for schedule(dynamic, 1)
    for (int ib = 0; ib < nb; ib++)
        for (int jb = ib; jb < nb; jb++) {
            double acc[TILE][TILE];
            tile_product(ws->pack + ib * panel, TILE, ws->pack + jb * panel, TILE, len, acc);
            /* S[TILE ib + a][TILE jb + c]: 16 consecutive doubles of panel jb */
            double *tile = ws->scatter + ((size_t)jb * Dp + (size_t)ib * TILE) * TILE;
            for (int a = 0; a < TILE; a++)
                for (int c = 0; c < TILE; c++) tile[a * TILE + c] += acc[a][c];
        }
}

/* ws->scatter = sum over the class's samples of (x - mean)(x - mean)^T, full and
 * symmetric. Column panels let the block product stream S contiguously. The samples are
 * read CHUNK at a time into rows [CHUNK][D]; a failed read is returned. */
static mv_status scatter_matrix(workspace *ws, const mv_dataset *data, const int *members,
                                int n, const double *mean, float *rows)
{
    const size_t Dp = (size_t)ws->Dp, nb = Dp / TILE;
    mv_status status = MV_OK;
    char message[512] = ""; /* mv_last_error() is the reading thread's own */
    memset(ws->scatter, 0, sizeof *ws->scatter * Dp * Dp);
#pragma omp parallel if ((double)n * ws->D * ws->D > MV_PARALLEL_FIT_WORK)
    for (int s0 = 0; s0 < n; s0 += CHUNK) {
        const int len = n - s0 < CHUNK ? n - s0 : CHUNK;
#pragma omp single
        if (!status && (status = mv_dataset_read_rows(data, members + s0, len, rows)))
            snprintf(message, sizeof message, "%s", mv_last_error());
        /* after the single's barrier every thread sees the same status */
        if (status)
            continue;
        /* the implicit barriers after both loops keep a chunk's packing and use apart */
        pack_chunk(ws, rows, len, mean);
        accumulate_chunk(ws, len);
    }
    if (status)
        return mv_fail(status, "%s", message);
    /* Only the upper block triangle was summed: tile (jb, ib) below it is the transpose of
     * tile (ib, jb). Diagonal tiles were summed whole, and agree exactly (a b == b a). */
    for (size_t ib = 0; ib < nb; ib++)
        for (size_t jb = ib + 1; jb < nb; jb++) {
            const double *upper = ws->scatter + (jb * Dp + ib * TILE) * TILE;
            double *lower = ws->scatter + (ib * Dp + jb * TILE) * TILE;
            for (int a = 0; a < TILE; a++)
                for (int c = 0; c < TILE; c++) lower[c * TILE + a] = upper[a * TILE + c];
        }
    return MV_OK;
}

/* ---------------------------------------------------------------- subspace iteration */

/* ws->W = rows of S V. */
static void block_product(workspace *ws)
{
    const int D = ws->D, Dp = ws->Dp, b = ws->b, bp = ws->bp;
    for (int r = 0; r < b; r++)
        for (int d = 0; d < D; d++)
            ws->Vp[((size_t)(r / TILE) * Dp + d) * TILE + r % TILE] = ws->V[(size_t)r * D + d];
    /* Deterministic: the thread that takes block ib writes pixels TILE ib .. of every row
     * of W, each entry summed over pixels in order; dynamic scheduling only copes with a
     * core taken by other work. S is symmetric, so its panel ib, read row by row, holds
     * its columns TILE ib .. . */
#pragma omp parallel for schedule(dynamic, 4) if ((double)D * D * b > MV_PARALLEL_FIT_WORK)
    for (int ib = 0; ib < Dp / TILE; ib++)
        for (int rb = 0; rb < bp / TILE; rb++) {
            double acc[TILE][TILE]; /* acc[a][c] = (S V^T)[TILE ib + a][TILE rb + c] */
            tile_product(ws->scatter + (size_t)ib * Dp * TILE, TILE,
                         ws->Vp + (size_t)rb * Dp * TILE, TILE, D, acc);
            for (int a = 0; a < TILE && ib * TILE + a < D; a++)
                for (int c = 0; c < TILE && rb * TILE + c < b; c++)
                    ws->W[(size_t)(rb * TILE + c) * D + ib * TILE + a] = acc[a][c];
        }
}

/* Modified Gram-Schmidt over the rows of V [b][D], each row projected twice ("twice is
 * enough": one pass loses orthogonality when the block's norms span many decades, as
 * they do after a product with S). A row left with almost nothing lay in the span of the
 * earlier rows (the class spans fewer than b directions): a random row replaces it, so the
 * block keeps its full rank and the Ritz step stays well posed. */
static void orthonormalize(double *V, int b, int D, mv_rng *rng)
{
    for (int r = 0; r < b; r++) {
        double *v = V + (size_t)r * D;
        for (int attempt = 0; attempt < GS_ATTEMPTS; attempt++) {
            const double before = sqrt(dot(v, v, D));
            for (int pass = 0; pass < 2; pass++)
                for (int s = 0; s < r; s++) {
                    const double *u = V + (size_t)s * D;
                    const double p = dot(u, v, D);
                    for (int d = 0; d < D; d++) v[d] -= p * u[d];
                }
            const double after = sqrt(dot(v, v, D));
            if (after > COLLAPSE * before && isfinite(after)) {
                for (int d = 0; d < D; d++) v[d] /= after;
                break;
            }
            /* r < b <= D, so a Gaussian row escapes the span with probability 1 */
            for (int d = 0; d < D; d++) v[d] = mv_rng_normal(rng);
        }
    }
}

/* Applies the rotation J (c, s) in the (p, q) plane: A <- J^T A J on H [n][n], Q <- Q J. */
static void rotate(double *H, double *Q, int n, int p, int q, double c, double s)
{
    for (int k = 0; k < n; k++) {
        double *row = H + (size_t)k * n;
        const double kp = row[p], kq = row[q];
        row[p] = c * kp - s * kq;
        row[q] = s * kp + c * kq;
    }
    double *rp = H + (size_t)p * n, *rq = H + (size_t)q * n;
    for (int k = 0; k < n; k++) {
        const double pk = rp[k], qk = rq[k];
        rp[k] = c * pk - s * qk;
        rq[k] = s * pk + c * qk;
    }
    rp[q] = rq[p] = 0;
    for (int k = 0; k < n; k++) {
        double *row = Q + (size_t)k * n;
        const double kp = row[p], kq = row[q];
        row[p] = c * kp - s * kq;
        row[q] = s * kp + c * kq;
    }
}

/* Cyclic Jacobi (Golub & Van Loan 8.5) on the symmetric H [n][n] (destroyed): eigenvalues
 * into theta [n], descending, and the matching eigenvectors as the columns of Q [n][n].
 * n <= MAX_BLOCK, so its n^3 per sweep is nothing next to the products with S, and Jacobi
 * is accurate for the small eigenvalues too. */
static void jacobi_eigen(double *H, int n, double *theta, double *Q)
{
    for (int i = 0; i < n * n; i++) Q[i] = i % (n + 1) == 0;
    for (int sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
        double off = 0, all = 0;
        for (int i = 0; i < n * n; i++) {
            all += H[i] * H[i];
            if (i / n != i % n)
                off += H[i] * H[i];
        }
        if (off <= 1e-30 * all)
            break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                const double apq = H[(size_t)p * n + q];
                if (apq == 0)
                    continue;
                const double tau = (H[(size_t)q * n + q] - H[(size_t)p * n + p]) / (2 * apq);
                const double t = (tau >= 0 ? 1 : -1) / (fabs(tau) + sqrt(1 + tau * tau));
                const double c = 1 / sqrt(1 + t * t);
                rotate(H, Q, n, p, q, c, t * c);
            }
    }
    /* selection sort, descending, earlier index first on ties: a deterministic order */
    for (int i = 0; i < n; i++) theta[i] = H[(size_t)i * n + i];
    for (int i = 0; i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (theta[j] > theta[best])
                best = j;
        const double t = theta[i];
        theta[i] = theta[best];
        theta[best] = t;
        for (int k = 0; k < n; k++) {
            const double x = Q[(size_t)k * n + i];
            Q[(size_t)k * n + i] = Q[(size_t)k * n + best];
            Q[(size_t)k * n + best] = x;
        }
    }
}

/* The Rayleigh-Ritz step on the orthonormal block V with W = S V: ws->theta and ws->Q. */
static void ritz(workspace *ws)
{
    const int b = ws->b, D = ws->D;
    for (int r = 0; r < b; r++)
        for (int s = 0; s <= r; s++) {
            /* V S V^T is symmetric in exact arithmetic; average away the rounding */
            const double h = 0.5 * (dot(ws->V + (size_t)r * D, ws->W + (size_t)s * D, D) +
                                    dot(ws->V + (size_t)s * D, ws->W + (size_t)r * D, D));
            ws->H[(size_t)r * b + s] = ws->H[(size_t)s * b + r] = h;
        }
    jacobi_eigen(ws->H, b, ws->theta, ws->Q);
}

/* Non-zero when the top `rank` Ritz values moved less than the tolerance. */
static int settled(const workspace *ws, int rank)
{
    const double floor = RITZ_FLOOR * fabs(ws->theta[0]);
    for (int r = 0; r < rank; r++)
        if (fabs(ws->theta[r] - ws->prev[r]) > RITZ_TOL * fabs(ws->theta[r]) + floor)
            return 0;
    return 1;
}

/* The top eigenpairs of S: Ritz values into ws->theta (descending) and Ritz vectors into
 * the rows of ws->V, orthonormal, from a start drawn from rng. */
static void top_eigenvectors(workspace *ws, int rank, mv_rng *rng)
{
    const int b = ws->b, D = ws->D;
    for (size_t i = 0; i < (size_t)b * D; i++) ws->V[i] = mv_rng_normal(rng);
    orthonormalize(ws->V, b, D, rng);
    for (int iter = 0;; iter++) {
        block_product(ws);
        ritz(ws);
        if ((iter >= MIN_ITERS && settled(ws, rank)) || iter + 1 == MAX_ITERS)
            break;
        memcpy(ws->prev, ws->theta, sizeof *ws->prev * (size_t)b);
        double *t = ws->V; /* the next block spans S V */
        ws->V = ws->W;
        ws->W = t;
        orthonormalize(ws->V, b, D, rng);
    }
    /* Ritz vectors: row r = sum_s Q[s][r] V[s], built in W, then swapped into V */
    for (int r = 0; r < b; r++) {
        double *u = ws->W + (size_t)r * D;
        memset(u, 0, sizeof *u * (size_t)D);
        for (int s = 0; s < b; s++) {
            const double q = ws->Q[(size_t)s * b + r];
            const double *v = ws->V + (size_t)s * D;
            for (int d = 0; d < D; d++) u[d] += q * v[d];
        }
    }
    double *t = ws->V;
    ws->V = ws->W;
    ws->W = t;
}

/* ---------------------------------------------------------------- the fit */

static void workspace_free(workspace *ws)
{
    free(ws->scatter);
    free(ws->pack);
    free(ws->V);
    free(ws->W);
    free(ws->Vp);
    free(ws->H);
    free(ws->Q);
    free(ws->theta);
    free(ws->prev);
}

static mv_status workspace_create(workspace *ws, int D, int rank)
{
    memset(ws, 0, sizeof *ws);
    ws->D = D;
    ws->Dp = (D + TILE - 1) / TILE * TILE;
    ws->b = rank + OVERSAMPLE < D ? rank + OVERSAMPLE : D;
    ws->bp = (ws->b + TILE - 1) / TILE * TILE;
    const size_t Dp = (size_t)ws->Dp, b = (size_t)ws->b;
    ws->scatter = malloc(sizeof *ws->scatter * Dp * Dp);
    ws->pack = malloc(sizeof *ws->pack * Dp * CHUNK);
    ws->V = malloc(sizeof *ws->V * b * (size_t)D);
    ws->W = malloc(sizeof *ws->W * b * (size_t)D);
    /* zeroed: the padding must read as zeros */
    ws->Vp = calloc(Dp * (size_t)ws->bp, sizeof *ws->Vp);
    ws->H = malloc(sizeof *ws->H * b * b);
    ws->Q = malloc(sizeof *ws->Q * b * b);
    ws->theta = malloc(sizeof *ws->theta * b);
    ws->prev = malloc(sizeof *ws->prev * b);
    if (!ws->scatter || !ws->pack || !ws->V || !ws->W || !ws->Vp || !ws->H ||
        !ws->Q || !ws->theta || !ws->prev) {
        workspace_free(ws);
        return mv_fail(MV_ERR_NOMEM, "class statistics: cannot allocate the %d x %d "
                       "covariance and its work space", D, D);
    }
    return MV_OK;
}

/* The rank directions and deviations of class k into basis [rank][D] and sd [rank]; the
 * samples are read through rows [CHUNK][D]. */
static mv_status fit_class(workspace *ws, const mv_dataset *data, const int *members, int n,
                           const double *mean, int rank, uint64_t seed, float *rows,
                           float *basis, float *sd)
{
    const int D = ws->D;
    const mv_status st = scatter_matrix(ws, data, members, n, mean, rows);
    if (st)
        return st;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    top_eigenvectors(ws, rank, &rng);
    for (int r = 0; r < rank; r++) {
        double *v = ws->V + (size_t)r * D;
        /* an eigenvector's sign is arbitrary: fix it so that the largest-magnitude
         * component (the first of equals) is positive */
        int big = 0;
        for (int d = 1; d < D; d++)
            if (fabs(v[d]) > fabs(v[big]))
                big = d;
        const double sign = v[big] < 0 ? -1 : 1;
        for (int d = 0; d < D; d++) basis[(size_t)r * D + d] = (float)(sign * v[d]);
        const double variance = ws->theta[r] / n;
        sd[r] = (float)sqrt(variance > 0 ? variance : 0);
    }
    return MV_OK;
}

static mv_status check_fit_args(const mv_model *model, const mv_dataset *data, int rank)
{
    if (!model || !model->net || !data)
        return mv_fail(MV_ERR_ARG, "class statistics need a model and a dataset");
    if (data->count < 1 || !mv_dataset_has_images(data) || !data->labels)
        return mv_fail(MV_ERR_ARG, "class statistics: the dataset is empty");
    if (data->channels != model->channels || data->height != model->height ||
        data->width != model->width)
        return mv_fail(MV_ERR_ARG, "class statistics: the dataset's images are %d x %d x %d "
                       "(channels x height x width), the model's input %d x %d x %d",
                       data->channels, data->height, data->width, model->channels,
                       model->height, model->width);
    const long long D = (long long)model->channels * model->height * model->width;
    if (model->channels < 1 || model->height < 1 || model->width < 1 || D > (1 << 24))
        return mv_fail(MV_ERR_ARG, "class statistics: the input shape %d x %d x %d is empty "
                       "or absurd", model->channels, model->height, model->width);
    if (data->n_classes != model->n_classes)
        return mv_fail(MV_ERR_ARG, "class statistics: the dataset has %d classes, the model "
                       "%d", data->n_classes, model->n_classes);
    if (rank < 0 || rank > MAX_RANK || rank > D)
        return mv_fail(MV_ERR_ARG, "class statistics: rank %d is out of range 0..%lld", rank,
                       D < MAX_RANK ? D : MAX_RANK);
    for (int i = 0; i < data->count; i++)
        if (data->labels[i] < 0 || data->labels[i] >= data->n_classes)
            return mv_fail(MV_ERR_ARG, "class statistics: image %d has label %d, outside "
                           "0..%d", i, data->labels[i], data->n_classes - 1);
    return MV_OK;
}

/* Replaces the three extras. An empty "class.sd" goes first: should a later copy fail
 * (out of memory), the arrays disagree in size and mv_model_has_class_stats reports no
 * statistics, rather than a mixture of an old fit and a new one. */
static mv_status store_stats(mv_model *model, const float *mean, const float *basis,
                             const float *sd, size_t K, size_t D, size_t rank)
{
    const char *const names[3] = {EXTRA_MEAN, EXTRA_BASIS, EXTRA_SD};
    int missing = 0;
    for (int i = 0; i < 3; i++) missing += !mv_model_extra_get(model, names[i], NULL);
    if (model->n_extras + missing > MV_MODEL_MAX_EXTRAS)
        return mv_fail(MV_ERR_ARG, "class statistics: the model holds %d extra arrays; "
                       "%d more would pass the limit of %d", model->n_extras, missing,
                       MV_MODEL_MAX_EXTRAS);
    mv_status st = mv_model_extra_set(model, EXTRA_SD, NULL, 0);
    if (!st)
        st = mv_model_extra_set(model, EXTRA_BASIS, basis, K * rank * D);
    if (!st)
        st = mv_model_extra_set(model, EXTRA_MEAN, mean, K * D);
    if (!st)
        st = mv_model_extra_set(model, EXTRA_SD, sd, K * rank);
    return st;
}

/* Every class: its mean, then (rank > 0) its directions, into mean_out [K][D], basis
 * [K][rank][D], sd [K][rank]. The images are read a block at a time, whatever the storage:
 * a streamed dataset never has more of them in memory. */
static mv_status fit_all(const mv_dataset *data, const int *start, const int *members, int D,
                         int rank, uint64_t seed, float *mean_out, float *basis, float *sd)
{
    const int K = data->n_classes;
    double *mean = malloc(sizeof *mean * (size_t)D);           /* [D] */
    const int block = rank > 0 ? CHUNK : MEAN_BLOCK; /* CHUNK >= MEAN_BLOCK */
    float *rows = malloc(sizeof *rows * (size_t)D * (size_t)block); /* [block][D] */
    workspace ws;
    mv_status st = mean && rows ? MV_OK
                                : mv_fail(MV_ERR_NOMEM, "class statistics: out of memory");
    const int have_ws = !st && rank > 0 && !(st = workspace_create(&ws, D, rank));
    /* one seed per class, drawn in class order: a class's result does not depend on how
     * many random numbers another class needed */
    mv_rng seeds;
    mv_rng_seed(&seeds, seed);
    for (int k = 0; !st && k < K; k++) {
        const int n = start[k + 1] - start[k];
        st = class_mean(data, k, members + start[k], n, D, rows, mean);
        for (int d = 0; !st && d < D; d++) mean_out[(size_t)k * D + d] = (float)mean[d];
        if (!st && have_ws)
            st = fit_class(&ws, data, members + start[k], n, mean, rank, mv_rng_next(&seeds),
                           rows, basis + (size_t)k * rank * D, sd + (size_t)k * rank);
    }
    if (have_ws)
        workspace_free(&ws);
    free(mean);
    free(rows);
    return st;
}

mv_status mv_model_fit_class_stats(mv_model *model, const mv_dataset *data, int rank,
                                   uint64_t seed)
{
    mv_status st = check_fit_args(model, data, rank);
    if (st)
        return st;
    const int K = data->n_classes, D = model->channels * model->height * model->width;
    int *start = malloc(sizeof *start * (size_t)(K + 1));         /* [K + 1] */
    int *members = malloc(sizeof *members * (size_t)data->count); /* [count] */
    float *mean = malloc(sizeof *mean * (size_t)K * D);           /* [K][D] */
    float *basis = malloc(sizeof *basis * ((size_t)K * rank * D + 1)); /* [K][rank][D] */
    float *sd = malloc(sizeof *sd * ((size_t)K * rank + 1));      /* [K][rank] */
    if (!start || !members || !mean || !basis || !sd)
        st = mv_fail(MV_ERR_NOMEM, "class statistics: cannot allocate the statistics of %d "
                     "classes of %d pixels", K, D);
    if (!st) {
        mv_group_by_class(data, start, members);
        st = check_class_sizes(data, rank, start);
    }
    if (!st)
        st = fit_all(data, start, members, D, rank, seed, mean, basis, sd);
    if (!st)
        st = store_stats(model, mean, basis, sd, (size_t)K, (size_t)D, (size_t)rank);
    free(start);
    free(members);
    free(mean);
    free(basis);
    free(sd);
    return st;
}

/* ---------------------------------------------------------------- using them */

int mv_model_has_class_stats(const mv_model *model, int *rank)
{
    if (rank)
        *rank = 0;
    if (!model || model->n_classes < 1 || model->channels < 1 || model->height < 1 ||
        model->width < 1)
        return 0;
    const size_t K = (size_t)model->n_classes;
    const size_t D = (size_t)model->channels * model->height * model->width;
    size_t n_mean, n_basis, n_sd;
    const float *mean = mv_model_extra_get(model, EXTRA_MEAN, &n_mean);
    const float *basis = mv_model_extra_get(model, EXTRA_BASIS, &n_basis);
    const float *sd = mv_model_extra_get(model, EXTRA_SD, &n_sd);
    if (!mean || !basis || !sd || n_mean != K * D || n_sd % K)
        return 0;
    const size_t r = n_sd / K;
    if (r > MAX_RANK || n_basis != K * r * D)
        return 0;
    if (rank)
        *rank = (int)r;
    return 1;
}

/* Every z is drawn even at temperature 0, so the stream advances by rank normals whatever
 * the temperature. */
void mv_low_rank_draw(const float *mean, const float *basis, const float *sd, int rank,
                      size_t D, double temperature, mv_rng *rng, float *out)
{
    double coef[MAX_RANK];
    for (int i = 0; i < rank; i++) coef[i] = temperature * sd[i] * mv_rng_normal(rng);
    for (size_t d = 0; d < D; d++) {
        double v = 0;
        for (int i = 0; i < rank; i++) v += coef[i] * basis[(size_t)i * D + d];
        v += mean[d];
        out[d] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
}

mv_status mv_class_sample(const mv_model *model, int k, double temperature, mv_rng *rng,
                          float *out)
{
    if (!model || !rng || !out)
        return mv_fail(MV_ERR_ARG, "class sample: model, generator and output are required");
    int rank;
    if (!mv_model_has_class_stats(model, &rank))
        return mv_fail(MV_ERR_ARG, "class sample: the model carries no consistent class "
                       "statistics (%s, %s, %s)", EXTRA_MEAN, EXTRA_BASIS, EXTRA_SD);
    if (k < 0 || k >= model->n_classes)
        return mv_fail(MV_ERR_ARG, "class sample: class %d is out of range 0..%d", k,
                       model->n_classes - 1);
    if (!isfinite(temperature) || temperature < 0)
        return mv_fail(MV_ERR_ARG, "class sample: temperature must be finite and >= 0, got %g",
                       temperature);
    const size_t D = (size_t)model->channels * model->height * model->width;
    const float *mean = mv_model_extra_get(model, EXTRA_MEAN, NULL) + (size_t)k * D;
    const float *basis = mv_model_extra_get(model, EXTRA_BASIS, NULL) + (size_t)k * rank * D;
    const float *sd = mv_model_extra_get(model, EXTRA_SD, NULL) + (size_t)k * rank;
    mv_low_rank_draw(mean, basis, sd, rank, D, temperature, rng, out);
    return MV_OK;
}
