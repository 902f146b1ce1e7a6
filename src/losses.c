/* losses.c: the output heads. Each fuses the last activation with its loss so that
 * dL/dz has the short, stable form (p - y), and never takes exp of a large positive number
 * or log of zero. */
#include <math.h>
#include <string.h>

#include "internal.h"

static inline mv_real sigmoid(mv_real z)
{
    if (z >= 0)
        return 1 / (1 + MV_EXP(-z));
    mv_real e = MV_EXP(z);
    return e / (1 + e);
}

/* log(sum_j exp(z_j)) of one row, shifted by the maximum. */
static double log_sum_exp(const mv_real *z, int n)
{
    mv_real m = z[0];
    for (int j = 1; j < n; j++)
        if (z[j] > m) m = z[j];
    double s = 0;
    for (int j = 0; j < n; j++) s += MV_EXP(z[j] - m);
    return (double)m + log(s);
}

/* log(sigmoid(z)) = -softplus(-z) */
static double log_sigmoid(double z) { return -(fmax(-z, 0) + log1p(exp(-fabs(z)))); }

void mv_head_forward(mv_head head, const mv_real *z, mv_real *a, int batch, int n)
{
    for (int r = 0; r < batch; r++) {
        const mv_real *zr = z + (size_t)r * n;
        mv_real *ar = a + (size_t)r * n;
        switch (head) {
        case MV_HEAD_SOFTMAX_CE: {
            mv_real m = zr[0];
            for (int j = 1; j < n; j++)
                if (zr[j] > m) m = zr[j];
            mv_real s = 0;
            for (int j = 0; j < n; j++) s += ar[j] = MV_EXP(zr[j] - m);
            for (int j = 0; j < n; j++) ar[j] /= s;
            break;
        }
        case MV_HEAD_SIGMOID_BCE:
            for (int j = 0; j < n; j++) ar[j] = sigmoid(zr[j]);
            break;
        case MV_HEAD_IDENTITY_MSE:
        case MV_HEAD_COUNT:
            memcpy(ar, zr, sizeof *ar * (size_t)n);
            break;
        }
    }
}

/* Loss of one row, summed in double. */
static double row_loss(mv_head head, const mv_real *z, const mv_real *y, int n)
{
    double loss = 0;
    switch (head) {
    case MV_HEAD_SOFTMAX_CE: {
        double lse = log_sum_exp(z, n);
        for (int j = 0; j < n; j++)
            if (y[j] != 0) loss -= (double)y[j] * ((double)z[j] - lse);
        break;
    }
    case MV_HEAD_SIGMOID_BCE: /* -(y log s + (1-y) log(1-s)) = max(z,0) - z y + log(1+e^-|z|) */
        for (int j = 0; j < n; j++) {
            double zj = z[j];
            loss += fmax(zj, 0) - zj * y[j] + log1p(exp(-fabs(zj)));
        }
        break;
    case MV_HEAD_IDENTITY_MSE:
    case MV_HEAD_COUNT:
        for (int j = 0; j < n; j++) {
            double d = (double)z[j] - y[j];
            loss += d * d;
        }
        break;
    }
    return loss;
}

/* dC/dz of one row, divided by the batch size. */
static void row_delta(mv_head head, const mv_real *z, const mv_real *a, const mv_real *y,
                      mv_real *delta, int n, mv_real inv_batch)
{
    switch (head) {
    case MV_HEAD_SOFTMAX_CE: {
        /* d/dz_j of -sum_i y_i log p_i is p_j * sum(y) - y_j, which is p - y for labels
         * that sum to one. */
        mv_real ysum = 0;
        for (int j = 0; j < n; j++) ysum += y[j];
        for (int j = 0; j < n; j++) delta[j] = (a[j] * ysum - y[j]) * inv_batch;
        break;
    }
    case MV_HEAD_SIGMOID_BCE:
        for (int j = 0; j < n; j++) delta[j] = (a[j] - y[j]) * inv_batch;
        break;
    case MV_HEAD_IDENTITY_MSE:
    case MV_HEAD_COUNT:
        for (int j = 0; j < n; j++) delta[j] = 2 * (z[j] - y[j]) * inv_batch;
        break;
    }
}

double mv_head_loss(mv_head head, const mv_real *z, const mv_real *a, const mv_real *y,
                    mv_real *delta, int batch, int n)
{
    double total = 0;
    const mv_real inv_batch = (mv_real)1 / (mv_real)batch;
    for (int r = 0; r < batch; r++) {
        size_t off = (size_t)r * n;
        total += row_loss(head, z + off, y + off, n);
        if (delta)
            row_delta(head, z + off, a + off, y + off, delta + off, n, inv_batch);
    }
    return total / batch;
}

void mv_head_loss_rows(mv_head head, const mv_real *z, const mv_real *a, const mv_real *y,
                       mv_real *delta, int rows, int n, int batch, double *losses)
{
    const mv_real inv_batch = (mv_real)1 / (mv_real)batch;
    for (int r = 0; r < rows; r++) {
        size_t off = (size_t)r * n;
        if (losses)
            losses[r] = row_loss(head, z + off, y + off, n);
        if (delta)
            row_delta(head, z + off, a + off, y + off, delta + off, n, inv_batch);
    }
}

mv_status mv_head_objective_seed(mv_head head, mv_objective kind, const mv_real *z,
                                 const mv_real *a, int n, int k, mv_real *delta,
                                 mv_real *value)
{
    memset(delta, 0, sizeof *delta * (size_t)n);
    switch (kind) {
    case MV_OBJ_LOGIT:
        delta[k] = 1;
        *value = z[k];
        return MV_OK;
    case MV_OBJ_OUTPUT:
        *value = a[k];
        if (head == MV_HEAD_SOFTMAX_CE) /* dp_k/dz_j = p_k (1[j=k] - p_j) */
            for (int j = 0; j < n; j++) delta[j] = a[k] * ((j == k) - a[j]);
        else if (head == MV_HEAD_SIGMOID_BCE)
            delta[k] = a[k] * (1 - a[k]);
        else
            delta[k] = 1;
        return MV_OK;
    case MV_OBJ_LOGPROB:
        if (head == MV_HEAD_SOFTMAX_CE) { /* d log p_k / dz_j = 1[j=k] - p_j */
            *value = (mv_real)((double)z[k] - log_sum_exp(z, n));
            for (int j = 0; j < n; j++) delta[j] = (j == k) - a[j];
            return MV_OK;
        }
        if (head == MV_HEAD_SIGMOID_BCE) { /* d log s(z) / dz = 1 - s(z) */
            *value = (mv_real)log_sigmoid(z[k]);
            delta[k] = 1 - a[k];
            return MV_OK;
        }
        return mv_fail(MV_ERR_ARG, "the log-probability objective needs a ce or bce head, "
                                   "not mse");
    case MV_OBJ_MARGIN: { /* d(z_k - z_j)/dz, j the strongest other class (the first on ties) */
        int j = k == 0 ? 1 : 0;
        for (int i = 0; i < n; i++)
            if (i != k && z[i] > z[j])
                j = i;
        delta[k] = 1;
        delta[j] = -1;
        *value = z[k] - z[j];
        return MV_OK;
    }
    case MV_OBJ_HIDDEN:
    case MV_OBJ_HIDDEN_PRE:
    case MV_OBJ_COUNT:
        break;
    }
    return mv_fail(MV_ERR_ARG, "objective %d is not an output objective", kind);
}
