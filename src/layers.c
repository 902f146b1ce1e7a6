/* layers.c: the dense layer, forward and backward side by side.
 *
 * Shapes (row-major, one row per sample):
 *   in    [B][n_in]      W  [n_out][n_in]     b [n_out]
 *   z     [B][n_out]     delta = dC/dz [B][n_out]
 *   dW    [n_out][n_in]  db [n_out]           din = dC/din [B][n_in]
 *
 * Determinism: every output element is reduced by a single thread in a fixed order, so the
 * thread count never changes a bit of the result. Parallel loops therefore split outputs,
 * never a reduction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Dot product with eight independent partial sums: the compiler keeps them in one vector
 * register, and the summation order is fixed by the code, not by the thread count. */
static inline mv_real dot(const mv_real *restrict a, const mv_real *restrict b, int n)
{
    mv_real acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* y += alpha * x */
static inline void axpy(mv_real alpha, const mv_real *restrict x, mv_real *restrict y, int n)
{
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* The float build hands the three products to the AVX2 kernels of gemm.c when it may; the
 * loops below are the portable path and the double copy used by the gradient checks. */
#if MV_SIMD_KERNELS && !defined(MV_F64)
#define USE_SIMD() mv_simd_enabled()
#else
#define USE_SIMD() 0
#define mv_simd_dense_forward(...) ((void)0)
#define mv_simd_dense_weight_grad(...) ((void)0)
#define mv_simd_dense_input_grad(...) ((void)0)
#define mv_simd_dense_param_grad_chunks(...) ((void)0)
#endif

void mv_dense_forward(const mv_real *in, const mv_real *W, const mv_real *b, mv_real *out_z,
                      int batch, int n_in, int n_out)
{
    if (USE_SIMD()) {
        mv_simd_dense_forward(in, W, b, out_z, batch, n_in, n_out);
        return;
    }
    const long work = (long)batch * n_in * n_out;
    /* Split over outputs: each thread reads its own rows of W once per batch row. */
    MV_FOR_EACH(int, o, n_out, work > MV_PARALLEL_DENSE_WORK, {
        const mv_real *w = W + (size_t)o * n_in;
        for (int r = 0; r < batch; r++)
            out_z[(size_t)r * n_out + o] = b[o] + dot(in + (size_t)r * n_in, w, n_in);
    });
}

/* db[o] = sum over rows of delta[r][o], in row order. */
static void bias_grad(const mv_real *delta, mv_real *db, int batch, int n_out)
{
    for (int o = 0; o < n_out; o++) db[o] = 0;
    for (int r = 0; r < batch; r++)
        for (int o = 0; o < n_out; o++) db[o] += delta[(size_t)r * n_out + o];
}

void mv_dense_backward(const mv_real *in, const mv_real *W, const mv_real *delta, mv_real *dW,
                       mv_real *db, mv_real *din, int batch, int n_in, int n_out,
                       mv_real *scratch)
{
    (void)scratch; /* only the float kernels use it */
    const long work = (long)batch * n_in * n_out;
    if (USE_SIMD()) {
        if (dW)
            mv_simd_dense_weight_grad(in, delta, dW, batch, n_in, n_out, scratch);
        if (db)
            bias_grad(delta, db, batch, n_out);
        if (din)
            mv_simd_dense_input_grad(delta, W, din, batch, n_in, n_out);
        return;
    }
    if (dW || db) {
        /* One thread per output row of dW: the sum over the batch stays in row order. */
        MV_FOR_EACH(int, o, n_out, work > MV_PARALLEL_DENSE_WORK, {
            mv_real bias_sum = 0;
            mv_real *dw = dW ? dW + (size_t)o * n_in : NULL;
            if (dw)
                memset(dw, 0, sizeof *dw * (size_t)n_in);
            for (int r = 0; r < batch; r++) {
                mv_real d = delta[(size_t)r * n_out + o];
                bias_sum += d;
                if (dw)
                    axpy(d, in + (size_t)r * n_in, dw, n_in);
            }
            if (db)
                db[o] = bias_sum;
        });
    }
    if (din) {
        /* din = delta . W, split over (group of ROWS rows, column block) pairs so that a
         * small batch still uses every thread; a block of W is read once per group, not once
         * per row. Each element sums over outputs in index order, whatever the split. */
        enum { COLS = 256, ROWS = 4 };
        const int blocks = (n_in + COLS - 1) / COLS, groups = (batch + ROWS - 1) / ROWS;
        MV_FOR_EACH(int, t, groups * blocks, work > MV_PARALLEL_DENSE_WORK, {
            const int r0 = t / blocks * ROWS, c0 = (t % blocks) * COLS;
            const int rows = batch - r0 < ROWS ? batch - r0 : ROWS;
            const int width = n_in - c0 < COLS ? n_in - c0 : COLS;
            for (int r = r0; r < r0 + rows; r++)
                memset(din + (size_t)r * n_in + c0, 0, sizeof *din * (size_t)width);
            for (int o = 0; o < n_out; o++) {
                const mv_real *w = W + (size_t)o * n_in + c0;
                for (int r = r0; r < r0 + rows; r++)
                    axpy(delta[(size_t)r * n_out + o], w, din + (size_t)r * n_in + c0, width);
            }
        });
    }
}

/* ------------------------------------------------------------------ chunked gradients */

/* Folds the chunk sum in cur[n] (chunk number c) into the binary counter slot[]: the levels
 * of c's trailing one bits hold the left siblings of the subtrees cur completes. Returns the
 * buffer to reuse for the next chunk. */
static mv_real *tree_push(mv_real **slot, mv_real *cur, int c, int n)
{
    int level = 0;
    for (int k = c; k & 1; k >>= 1, level++)
        for (int i = 0; i < n; i++) cur[i] = slot[level][i] + cur[i];
    mv_real *spare = slot[level];
    slot[level] = cur;
    return spare;
}

/* Output unit o's row of dW and its db, in buf [(levels + 2)][n_in + 1] (the last value of
 * each row is the bias). */
static void chunked_unit(const mv_real *in, const mv_real *delta, mv_real *dW, mv_real *db,
                         int o, int n_in, int n_out, const int *bounds, int n_chunks,
                         mv_real *buf)
{
    const int n = n_in + 1, levels = __builtin_ctz((unsigned)n_chunks);
    mv_real *slot[MV_MAX_GRAD_LEVELS + 1], *cur = buf;
    for (int l = 0; l <= levels; l++) slot[l] = buf + (size_t)(l + 1) * n;
    for (int c = 0; c < n_chunks; c++) {
        memset(cur, 0, sizeof *cur * (size_t)n);
        for (int r = bounds[c]; r < bounds[c + 1]; r++) {
            const mv_real d = delta[(size_t)r * n_out + o];
            cur[n_in] += d;
            if (dW)
                axpy(d, in + (size_t)r * n_in, cur, n_in);
        }
        cur = tree_push(slot, cur, c, n);
    }
    const mv_real *root = slot[__builtin_ctz((unsigned)n_chunks)];
    if (dW)
        memcpy(dW + (size_t)o * n_in, root, sizeof *dW * (size_t)n_in);
    if (db)
        db[o] = root[n_in];
}

void mv_dense_param_grad_chunks(const mv_real *in, const mv_real *delta, mv_real *dW,
                                mv_real *db, int n_in, int n_out, mv_real *scratch,
                                const int *bounds, int n_chunks)
{
    (void)scratch; /* only the float kernels use it */
    const int batch = bounds[n_chunks], levels = __builtin_ctz((unsigned)n_chunks);
    const long work = (long)batch * n_in * n_out;
    if (USE_SIMD()) {
        mv_simd_dense_param_grad_chunks(in, delta, dW, db, batch, n_in, n_out, scratch, bounds,
                                        n_chunks);
        return;
    }
    /* One unit per iteration; its buffers are its own, so the threads share nothing. */
    MV_FOR_EACH(int, o, n_out, dW && work > MV_PARALLEL_DENSE_WORK, {
        mv_real bias[(MV_MAX_GRAD_LEVELS + 2) * 2];
        mv_real *buf = !dW ? bias : malloc(sizeof *buf * (size_t)(levels + 2) * (n_in + 1));
        if (buf)
            chunked_unit(in, delta, dW, db, o, dW ? n_in : 1, n_out, bounds, n_chunks, buf);
        else /* no memory for 100 KB: NaN, which the trainer reports as a failure */
            for (int k = 0; k < n_in; k++) dW[(size_t)o * n_in + k] = (mv_real)NAN;
        if (buf != bias)
            free(buf);
    });
}
