/* gradcheck.c: analytic gradients against central finite differences, in the precision this
 * file is compiled in. Compiled twice; the double copy is what makes the check sharp.
 *
 * The numeric derivative is the 4-point central stencil
 *   f'(t) ~ (8 (f(t+h) - f(t-h)) - (f(t+2h) - f(t-2h))) / (12 h),
 * whose truncation error is O(h^4), so h can stay large enough that rounding is negligible.
 * A coordinate whose stencil moves any relu-like unit across its kink is skipped and
 * counted: there the function is not differentiable and the comparison means nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
    mv_gradcheck_config cfg;
    mv_net *net;
    mv_workspace *ws;
    mv_params *grads;   /* analytic dC/dtheta */
    mv_real *x;         /* [batch][w0] */
    mv_real *targets;   /* [batch][wL] */
    int *index;         /* [batch] unit of the input-gradient objective */
    mv_real *gx_loss;   /* [batch][w0] analytic dC/dx */
    mv_real *gx_target; /* [batch][w0] analytic d(sum_r S_r)/dx */
    mv_real *z_base[2]; /* kinked layers' pre-activations at the unperturbed point, for the
                           loss's pass [0] and the objective's (no dropout) [1] */
    size_t z_count;
} setup;

static void setup_free(setup *s)
{
    mv_net_free(s->net);
    mv_workspace_free(s->ws);
    mv_params_free(s->grads);
    free(s->x);
    free(s->targets);
    free(s->index);
    free(s->gx_loss);
    free(s->gx_target);
    free(s->z_base[0]);
    free(s->z_base[1]);
}

static int hidden_target(mv_target t)
{
    return t.kind == MV_OBJ_HIDDEN || t.kind == MV_OBJ_HIDDEN_PRE;
}

static int objective_units(const mv_arch *arch, mv_target t)
{
    return hidden_target(t) ? arch->widths[t.layer + 1] : arch->widths[arch->n_layers];
}

/* Random weights and biases, inputs in [-1, 1], labels and objective units, all rounded to float so
 * that the float and double variants see the very same numbers. */
static void fill_random(setup *s)
{
    const mv_arch *arch = &s->cfg.arch;
    const int B = s->cfg.batch, w0 = arch->widths[0], wl = arch->widths[arch->n_layers];
    mv_rng rng;
    mv_net_init(s->net, s->cfg.seed);
    mv_rng_seed(&rng, s->cfg.seed ^ 0x5eed0f1a7a5eedull);
    /* Non-zero biases: a zero bias would hide a forward pass that ignores it, and would put
     * the units fed only by dead relus exactly on their kink. */
    for (int l = 0; l < arch->n_layers; l++)
        for (int j = 0; j < arch->widths[l + 1]; j++)
            s->net->p.b[l][j] = (mv_real)(float)(0.5 * mv_rng_uniform(&rng) - 0.25);
    for (size_t i = 0; i < (size_t)B * w0; i++)
        s->x[i] = (mv_real)(float)(2 * mv_rng_uniform(&rng) - 1);
    for (int r = 0; r < B; r++) {
        mv_real *y = s->targets + (size_t)r * wl;
        if (arch->head == MV_HEAD_SOFTMAX_CE) {
            memset(y, 0, sizeof *y * (size_t)wl);
            y[mv_rng_below(&rng, (uint32_t)wl)] = 1;
        } else {
            for (int j = 0; j < wl; j++)
                y[j] = arch->head == MV_HEAD_SIGMOID_BCE ? (mv_real)(mv_rng_next(&rng) >> 63)
                                                          : (mv_real)(float)mv_rng_normal(&rng);
        }
        s->index[r] = (int)mv_rng_below(&rng, (uint32_t)objective_units(arch, s->cfg.target));
    }
    /* A given model and inputs replace the random ones; labels and units stay random. */
    for (size_t i = 0; s->cfg.weights && i < s->net->p.count; i++)
        s->net->p.data[i] = (mv_real)s->cfg.weights[i];
    for (size_t i = 0; s->cfg.inputs && i < (size_t)B * w0; i++)
        s->x[i] = (mv_real)s->cfg.inputs[i];
}

static mv_status setup_create(setup *s, const mv_gradcheck_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    const mv_arch *arch = &cfg->arch;
    mv_status st = mv_arch_validate(arch);
    if (st)
        return st;
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return mv_fail(MV_ERR_ARG, "dropout must be in [0, 1), got %g", (double)cfg->dropout);
    if (cfg->batch < 1 || cfg->batch > 4096)
        return mv_fail(MV_ERR_ARG, "gradcheck batch must be 1..4096, got %d", cfg->batch);
    if (hidden_target(cfg->target) &&
        (cfg->target.layer < 0 || cfg->target.layer > arch->n_layers - 2))
        return mv_fail(MV_ERR_ARG, "hidden layer %d does not exist (0..%d)", cfg->target.layer,
                       arch->n_layers - 2);
    const size_t B = (size_t)cfg->batch, w0 = arch->widths[0];
    for (int l = 0; l + 1 < arch->n_layers; l++)
        s->z_count += B * arch->widths[l + 1];
    if ((st = mv_net_create(&s->net, arch)) || (st = mv_workspace_create(&s->ws, arch, cfg->batch)) ||
        (st = mv_params_create(&s->grads, arch)))
        return st;
    s->x = malloc(sizeof *s->x * B * w0);
    s->targets = malloc(sizeof *s->targets * B * arch->widths[arch->n_layers]);
    s->index = malloc(sizeof *s->index * B);
    s->gx_loss = malloc(sizeof *s->gx_loss * B * w0);
    s->gx_target = malloc(sizeof *s->gx_target * B * w0);
    for (int k = 0; k < 2; k++)
        s->z_base[k] = malloc(sizeof *s->z_base[k] * (s->z_count ? s->z_count : 1));
    if (!s->x || !s->targets || !s->index || !s->gx_loss || !s->gx_target || !s->z_base[0] ||
        !s->z_base[1])
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the gradient-check buffers");
    fill_random(s);
    return MV_OK;
}

/* The loss's forward pass: with dropout, always the same masks, so that the function the
 * differences probe is the one the backward pass differentiates. */
static void loss_forward(setup *s)
{
    mv_forward_train(s->net, s->ws, s->x, s->cfg.batch, s->cfg.dropout, s->cfg.seed + 2);
}

static mv_status analytic(setup *s)
{
    const int B = s->cfg.batch;
    loss_forward(s);
    mv_loss(s->net, s->ws, s->targets, B, 1);
    mv_backward(s->net, s->ws, s->x, B, s->grads, s->gx_loss);
    return mv_input_grad(s->net, s->ws, s->x, B, s->cfg.target, s->index, s->gx_target, NULL);
}

/* The scalar whose gradient x(target) is: the objective summed over rows (rows do not
 * interact, so its gradient in row r is that row's own objective gradient). */
static double objective_sum(setup *s)
{
    const mv_arch *arch = &s->cfg.arch;
    const int B = s->cfg.batch, L = arch->n_layers;
    double sum = 0;
    for (int r = 0; r < B; r++) {
        if (hidden_target(s->cfg.target)) {
            const int h = s->cfg.target.layer;
            const mv_real *v = s->cfg.target.kind == MV_OBJ_HIDDEN ? s->ws->a[h] : s->ws->z[h];
            sum += v[(size_t)r * arch->widths[h + 1] + s->index[r]];
        } else {
            const size_t off = (size_t)r * arch->widths[L];
            mv_real value;
            mv_head_objective_seed(arch->head, s->cfg.target.kind, s->ws->z[L - 1] + off,
                                   s->ws->a[L - 1] + off, arch->widths[L], s->index[r],
                                   s->ws->top_delta + off, &value);
            sum += value;
        }
    }
    return sum;
}

/* Copies (or compares with) the pre-activations of every kinked hidden layer, for the pass
 * of the loss (objective = 0) or of the objective. Returns non-zero when comparing and some
 * unit changed side of its kink. */
static int kink_state(setup *s, int objective, int compare)
{
    mv_real *base = s->z_base[objective];
    const mv_arch *arch = &s->cfg.arch;
    size_t at = 0;
    for (int l = 0; l + 1 < arch->n_layers; l++) {
        const size_t n = (size_t)s->cfg.batch * arch->widths[l + 1];
        if (mv_act_has_kink(arch->act[l])) {
            const mv_real *z = s->ws->z[l];
            for (size_t i = 0; i < n; i++) {
                if (!compare)
                    base[at + i] = z[i];
                else if ((z[i] > 0) != (base[at + i] > 0))
                    return 1;
            }
        }
        at += n;
    }
    return 0;
}

/* f at the current point: the loss, or the objective sum when `objective`. */
static double evaluate(setup *s, int objective)
{
    if (objective) {
        mv_forward(s->net, s->ws, s->x, s->cfg.batch);
        return objective_sum(s);
    }
    loss_forward(s);
    return mv_loss(s->net, s->ws, s->targets, s->cfg.batch, 0);
}

/* Finite-difference derivative along one coordinate; returns 0 (and sets *kinked) when the
 * stencil crosses a kink. */
static double numeric(setup *s, mv_real *coord, int objective, int *kinked)
{
    static const int offsets[4] = {1, -1, 2, -2};
    const mv_real saved = *coord;
    const double h = s->cfg.step;
    double f[4];
    *kinked = 0;
    for (int i = 0; i < 4; i++) {
        *coord = (mv_real)(saved + offsets[i] * h);
        f[i] = evaluate(s, objective);
        *kinked |= kink_state(s, objective, 1);
    }
    *coord = saved;
    /* The step actually taken is what the rounded coordinate moved, not h itself. */
    const double step = (double)(mv_real)(saved + h) - saved;
    return (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * step);
}

static void check_tensor(setup *s, mv_gradcheck_tensor *t, mv_real *values,
                         const mv_real *grad, size_t n, int objective, mv_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        t->max_abs_grad = fmax(t->max_abs_grad, fabs((double)grad[i]));
    const int all = s->cfg.samples <= 0 || (size_t)s->cfg.samples >= n;
    const size_t count = all ? n : (size_t)s->cfg.samples;
    for (size_t k = 0; k < count; k++) {
        const size_t i = all ? k : (size_t)mv_rng_below(rng, (uint32_t)n);
        int kinked;
        double num = numeric(s, values + i, objective, &kinked);
        if (kinked) {
            t->skipped++;
            continue;
        }
        t->checked++;
        t->max_rel_error = fmax(t->max_rel_error, mv_rel_error(grad[i], num, s->cfg.floor));
    }
}

/* Appends a tensor named `prefix` followed by the layer number when layer >= 0. */
static mv_gradcheck_tensor *add_tensor(mv_gradcheck_report *report, const char *prefix,
                                       int layer)
{
    mv_gradcheck_tensor *t = &report->tensor[report->n_tensors++];
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "%s%d", prefix, layer);
    else
        snprintf(t->name, sizeof t->name, "%s", prefix);
    return t;
}

static const char *objective_label(mv_objective kind)
{
    switch (kind) {
    case MV_OBJ_LOGIT: return "x(logit)";
    case MV_OBJ_OUTPUT: return "x(output)";
    case MV_OBJ_LOGPROB: return "x(logprob)";
    case MV_OBJ_MARGIN: return "x(margin)";
    case MV_OBJ_HIDDEN_PRE: return "x(hidden-z)";
    default: return "x(hidden)";
    }
}

MV_EXPORTED mv_status MV_VARIANT(mv_gradcheck_run)(const mv_gradcheck_config *config,
                                                   mv_gradcheck_report *report)
{
    memset(report, 0, sizeof *report);
    report->float_vs_double = -1;
    setup s;
    mv_status st = setup_create(&s, config);
    if (st == MV_OK && !(s.cfg.step > 0 && isfinite(s.cfg.step)))
        st = mv_fail(MV_ERR_ARG, "finite-difference step must be > 0, got %g", s.cfg.step);
    if (st == MV_OK)
        st = analytic(&s);
    if (st) {
        setup_free(&s);
        return st;
    }
    evaluate(&s, 0);
    kink_state(&s, 0, 0);
    evaluate(&s, 1);
    kink_state(&s, 1, 0);

    mv_rng rng;
    mv_rng_seed(&rng, s.cfg.seed + 1);
    const mv_arch *arch = &s.cfg.arch;
    const size_t nx = (size_t)s.cfg.batch * arch->widths[0];
    for (int l = 0; l < arch->n_layers; l++) {
        const size_t nw = (size_t)arch->widths[l + 1] * arch->widths[l];
        check_tensor(&s, add_tensor(report, "W", l), s.net->p.W[l], s.grads->W[l], nw, 0, &rng);
        check_tensor(&s, add_tensor(report, "b", l), s.net->p.b[l], s.grads->b[l],
                     (size_t)arch->widths[l + 1], 0, &rng);
    }
    check_tensor(&s, add_tensor(report, "x(loss)", -1), s.x, s.gx_loss, nx, 0, &rng);
    check_tensor(&s, add_tensor(report, objective_label(s.cfg.target.kind), -1), s.x,
                 s.gx_target, nx, 1, &rng);
    for (int t = 0; t < report->n_tensors; t++)
        report->max_rel_error = fmax(report->max_rel_error, report->tensor[t].max_rel_error);
    setup_free(&s);
    return MV_OK;
}

MV_EXPORTED mv_status MV_VARIANT(mv_gradcheck_analytic)(const mv_gradcheck_config *config,
                                                        double **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    setup s;
    mv_status st = setup_create(&s, config);
    if (st == MV_OK)
        st = analytic(&s);
    const size_t nx = (size_t)config->batch * config->arch.widths[0];
    double *values = st ? NULL : malloc(sizeof *values * (s.grads->count + 2 * nx));
    if (st == MV_OK && !values)
        st = mv_fail(MV_ERR_NOMEM, "cannot allocate the analytic gradients");
    if (st == MV_OK) {
        size_t k = 0;
        for (size_t i = 0; i < s.grads->count; i++) values[k++] = s.grads->data[i];
        for (size_t i = 0; i < nx; i++) values[k++] = s.gx_loss[i];
        for (size_t i = 0; i < nx; i++) values[k++] = s.gx_target[i];
        *out = values;
        *count = k;
    }
    setup_free(&s);
    return st;
}
