/* activations.c: elementwise activations and their derivatives, side by side.
 * Each backward multiplies an upstream gradient by act'(z) in place. */
#include <math.h>

#include "internal.h"

/* Sigmoid without overflow: exp is only ever taken of a non-positive number. */
static inline mv_real sigmoid(mv_real z)
{
    if (z >= 0)
        return 1 / (1 + MV_EXP(-z));
    mv_real e = MV_EXP(z);
    return e / (1 + e);
}

static const mv_real inv_sqrt2 = (mv_real)0.70710678118654752440;
static const mv_real inv_sqrt2pi = (mv_real)0.39894228040143267794;

static void act_forward_range(mv_activation act, const mv_real *z, mv_real *a, size_t n)
{
    const mv_real p = (mv_real)act.param;
    switch (act.kind) {
    case MV_ACT_IDENTITY:
        for (size_t i = 0; i < n; i++) a[i] = z[i];
        break;
    case MV_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) a[i] = sigmoid(z[i]);
        break;
    case MV_ACT_TANH:
        for (size_t i = 0; i < n; i++) a[i] = MV_TANH(z[i]);
        break;
    case MV_ACT_RELU:
        for (size_t i = 0; i < n; i++) a[i] = z[i] > 0 ? z[i] : 0;
        break;
    case MV_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) a[i] = z[i] > 0 ? z[i] : p * z[i];
        break;
    case MV_ACT_SCALED_RELU:
        for (size_t i = 0; i < n; i++) a[i] = z[i] > 0 ? p * z[i] : 0;
        break;
    case MV_ACT_SOFTPLUS: /* max(z,0) + log(1 + e^-|z|): no overflow for large |z| */
        for (size_t i = 0; i < n; i++)
            a[i] = (z[i] > 0 ? z[i] : 0) + MV_LOG1P(MV_EXP(-MV_FABS(z[i])));
        break;
    case MV_ACT_GELU:
        for (size_t i = 0; i < n; i++) a[i] = z[i] * (mv_real)0.5 * (1 + MV_ERF(z[i] * inv_sqrt2));
        break;
    case MV_ACT_COUNT:
        break;
    }
}

static void act_backward_range(mv_activation act, const mv_real *z, const mv_real *a,
                               mv_real *g, size_t n)
{
    const mv_real p = (mv_real)act.param;
    switch (act.kind) {
    case MV_ACT_IDENTITY:
        break;
    case MV_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) g[i] *= a[i] * (1 - a[i]);
        break;
    case MV_ACT_TANH:
        for (size_t i = 0; i < n; i++) g[i] *= 1 - a[i] * a[i];
        break;
    case MV_ACT_RELU:
        for (size_t i = 0; i < n; i++) g[i] = z[i] > 0 ? g[i] : 0;
        break;
    case MV_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) g[i] *= z[i] > 0 ? 1 : p;
        break;
    case MV_ACT_SCALED_RELU:
        for (size_t i = 0; i < n; i++) g[i] = z[i] > 0 ? p * g[i] : 0;
        break;
    case MV_ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++) g[i] *= sigmoid(z[i]);
        break;
    case MV_ACT_GELU: /* d/dz z*Phi(z) = Phi(z) + z*phi(z) */
        for (size_t i = 0; i < n; i++) {
            mv_real cdf = (mv_real)0.5 * (1 + MV_ERF(z[i] * inv_sqrt2));
            mv_real pdf = inv_sqrt2pi * MV_EXP((mv_real)-0.5 * z[i] * z[i]);
            g[i] *= cdf + z[i] * pdf;
        }
        break;
    case MV_ACT_COUNT:
        break;
    }
}

double mv_act_value(mv_activation act, double z)
{
    mv_real in = (mv_real)z, out;
    mv_act_forward(act, &in, &out, 1);
    return out;
}

double mv_act_slope(mv_activation act, double z)
{
    mv_real in = (mv_real)z, out, g = 1;
    mv_act_forward(act, &in, &out, 1);
    mv_act_backward(act, &in, &out, &g, 1);
    return g;
}

int mv_act_has_kink(mv_activation act)
{
    return act.kind == MV_ACT_RELU || act.kind == MV_ACT_LEAKY_RELU ||
           act.kind == MV_ACT_SCALED_RELU;
}

/* Elementwise, so any split gives the same bits: large arrays (a big batch of a wide layer)
 * in chunks on every thread, small ones on this thread alone. */
enum { ACT_CHUNK = MV_PARALLEL_CHUNK };

void mv_act_forward(mv_activation act, const mv_real *z, mv_real *a, size_t n)
{
    const size_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    MV_FOR_EACH(size_t, c, chunks, chunks >= MV_PARALLEL_MIN_CHUNKS, {
        const size_t first = c * ACT_CHUNK;
        act_forward_range(act, z + first, a + first,
                          n - first < ACT_CHUNK ? n - first : ACT_CHUNK);
    });
}

void mv_act_backward(mv_activation act, const mv_real *z, const mv_real *a, mv_real *g, size_t n)
{
    const size_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    MV_FOR_EACH(size_t, c, chunks, chunks >= MV_PARALLEL_MIN_CHUNKS, {
        const size_t first = c * ACT_CHUNK;
        act_backward_range(act, z + first, a + first, g + first,
                           n - first < ACT_CHUNK ? n - first : ACT_CHUNK);
    });
}
