/* gradcheck_driver.c: mv_gradcheck(), the one public entry into the double-precision copy
 * of the core. Lives only in the library, which holds both copies. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* Normwise relative difference max|f - d| / max|d| of one tensor. Elementwise ratios would
 * measure float32 rounding on entries that cancel to almost nothing; the normwise form
 * measures it against the tensor's own scale. */
static double normwise_difference(const double *f, const double *d, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs(f[i] - d[i]));
        scale = fmax(scale, fabs(d[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

/* Largest normwise relative difference, over the tensors, between the float and the double
 * analytic gradients of the same network on the same batch. */
static mv_status float_vs_double(const mv_gradcheck_config *config, double *result)
{
    double *f = NULL, *d = NULL;
    size_t nf = 0, nd = 0;
    mv_status st = mv_gradcheck_analytic_f32(config, &f, &nf);
    if (st == MV_OK)
        st = mv_gradcheck_analytic_f64(config, &d, &nd);
    if (st == MV_OK && nf != nd)
        st = mv_fail(MV_ERR_ARG, "float and double gradient counts differ (%zu, %zu)", nf, nd);
    double worst = 0;
    if (st == MV_OK) {
        /* Tensors in the order mv_gradcheck_analytic lays them out. */
        const mv_arch *arch = &config->arch;
        const size_t nx = (size_t)config->batch * arch->widths[0];
        size_t at = 0;
        for (int l = 0; l < arch->n_layers; l++) {
            const size_t nw = (size_t)arch->widths[l + 1] * arch->widths[l];
            worst = fmax(worst, normwise_difference(f + at, d + at, nw));
            at += nw;
            worst = fmax(worst, normwise_difference(f + at, d + at, arch->widths[l + 1]));
            at += arch->widths[l + 1];
        }
        for (int k = 0; k < 2; k++, at += nx)
            worst = fmax(worst, normwise_difference(f + at, d + at, nx));
    }
    free(f);
    free(d);
    *result = worst;
    return st;
}

double mv_gradcheck_default_step(mv_precision precision)
{
    /* 4-point stencil: truncation O(h^4), rounding O(eps / h); these balance the two. */
    return precision == MV_PREC_DOUBLE ? 1e-3 : 1e-2;
}

mv_status mv_gradcheck(const mv_gradcheck_config *config, mv_precision precision,
                       mv_gradcheck_report *report)
{
    mv_gradcheck_config cfg = *config;
    if (cfg.step == 0)
        cfg.step = mv_gradcheck_default_step(precision);
    if (!(cfg.floor > 0 && isfinite(cfg.floor)))
        return mv_fail(MV_ERR_ARG, "the error floor must be > 0, got %g", cfg.floor);
    mv_status st = precision == MV_PREC_DOUBLE ? mv_gradcheck_run_f64(&cfg, report)
                                               : mv_gradcheck_run_f32(&cfg, report);
    if (st)
        return st;
    return float_vs_double(&cfg, &report->float_vs_double);
}
