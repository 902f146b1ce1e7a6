/* optim.c: parameter updates. Every update is elementwise over the parameter block, so it
 * parallelises without changing a bit of the result. Weight decay applies to weights only:
 * decaying biases only shifts units without regularising anything. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const opt_names[MV_OPT_COUNT] = {"sgd", "momentum", "nesterov", "adam",
                                                    "adamw"};

const char *mv_opt_name(mv_opt_kind kind)
{
    return (unsigned)kind < MV_OPT_COUNT ? opt_names[kind] : "unknown";
}

mv_status mv_opt_parse(mv_opt_kind *kind, const char *text)
{
    for (int i = 0; i < MV_OPT_COUNT; i++)
        if (strcmp(text, opt_names[i]) == 0) {
            *kind = (mv_opt_kind)i;
            return MV_OK;
        }
    return mv_fail(MV_ERR_ARG, "unknown optimizer '%s' (sgd, momentum, nesterov, adam, adamw)",
                   text);
}

void mv_opt_defaults(mv_opt_config *config, mv_opt_kind kind)
{
    *config = (mv_opt_config){.kind = kind, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999,
                              .eps = 1e-8, .weight_decay = 0};
}

mv_status mv_optimizer_create(mv_optimizer **out, const mv_opt_config *config,
                              const mv_arch *arch)
{
    *out = NULL;
    if ((unsigned)config->kind >= MV_OPT_COUNT)
        return mv_fail(MV_ERR_ARG, "unknown optimizer kind %d", config->kind);
    if (!(config->weight_decay >= 0) || !(config->momentum >= 0 && config->momentum < 1) ||
        !(config->beta1 >= 0 && config->beta1 < 1) || !(config->beta2 >= 0 && config->beta2 < 1) ||
        !(config->eps > 0))
        return mv_fail(MV_ERR_ARG, "optimizer settings out of range (momentum and betas in "
                                   "[0, 1), eps > 0, weight decay >= 0)");
    mv_status st = mv_arch_validate(arch);
    if (st)
        return st;
    const size_t count = mv_arch_param_count(arch);
    mv_optimizer *opt = calloc(1, sizeof *opt);
    float *m = calloc(count, sizeof *m), *v = calloc(count, sizeof *v);
    if (!opt || !m || !v) {
        free(opt);
        free(m);
        free(v);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate optimizer state for %zu parameters",
                       count);
    }
    *opt = (mv_optimizer){.config = *config, .count = count, .m = m, .v = v};
    *out = opt;
    return MV_OK;
}

void mv_optimizer_free(mv_optimizer *opt)
{
    if (!opt)
        return;
    free(opt->m);
    free(opt->v);
    free(opt);
}

/* The coefficients of one update, in float. */
typedef struct {
    mv_opt_kind kind;
    float mu, b1, b2, rate, wd, eps, step1, inv_sqrt_bias2;
} update_coefs;

/* Elements [0, n) of one tensor. One loop per kind, so that each vectorizes; restrict holds
 * here, where the compiler can see it (not through OpenMP's outlined copies). */
static void update_range(const update_coefs *k, float *restrict theta, const float *restrict g,
                         float *restrict m, float *restrict v, size_t n)
{
    const float mu = k->mu, b1 = k->b1, b2 = k->b2, rate = k->rate, wd = k->wd, eps = k->eps;
    switch (k->kind) {
    case MV_OPT_SGD: /* grad = g + wd theta: the L2 penalty (wd/2)|theta|^2 */
        for (size_t i = 0; i < n; i++) theta[i] -= rate * (g[i] + wd * theta[i]);
        break;
    case MV_OPT_MOMENTUM:
        for (size_t i = 0; i < n; i++) {
            m[i] = mu * m[i] + (g[i] + wd * theta[i]);
            theta[i] -= rate * m[i];
        }
        break;
    case MV_OPT_NESTEROV:
        for (size_t i = 0; i < n; i++) {
            const float grad = g[i] + wd * theta[i];
            m[i] = mu * m[i] + grad;
            theta[i] -= rate * (grad + mu * m[i]);
        }
        break;
    case MV_OPT_ADAM:
    case MV_OPT_ADAMW:
    case MV_OPT_COUNT: {
        const int decoupled = k->kind == MV_OPT_ADAMW;
        for (size_t i = 0; i < n; i++) {
            const float grad = decoupled ? g[i] : g[i] + wd * theta[i];
            m[i] = b1 * m[i] + (1 - b1) * grad;
            v[i] = b2 * v[i] + (1 - b2) * grad * grad;
            if (decoupled)
                theta[i] -= rate * wd * theta[i];
            theta[i] -= k->step1 * m[i] / (sqrtf(v[i]) * k->inv_sqrt_bias2 + eps);
        }
        break;
    }
    }
}

/* One tensor's update. theta, g, m, v: [n]; decay is 0 for biases. */
static void update(const mv_opt_config *c, float *theta, const float *g, float *m, float *v,
                   size_t n, double lr, double decay, double bias1, double bias2)
{
    const update_coefs k = {c->kind, (float)c->momentum, (float)c->beta1, (float)c->beta2,
                            (float)lr, (float)decay, (float)c->eps, (float)(lr / bias1),
                            (float)(1 / sqrt(bias2))};
    /* Large tensors only: a bias vector is not worth a region. */
    enum { CHUNK = MV_PARALLEL_CHUNK };
    const size_t chunks = (n + CHUNK - 1) / CHUNK;
    MV_FOR_EACH(size_t, at, chunks, chunks > MV_PARALLEL_MIN_CHUNKS, {
        const size_t first = at * CHUNK, count = n - first < CHUNK ? n - first : CHUNK;
        update_range(&k, theta + first, g + first, m ? m + first : NULL, v ? v + first : NULL,
                     count);
    });
}

/* Elements [lo, hi) of the tensor at [at, at + n), as an offset and a count (0: none). */
static size_t clip(size_t at, size_t n, size_t lo, size_t hi, size_t *first)
{
    const size_t from = at > lo ? at : lo, to = at + n < hi ? at + n : hi;
    *first = from - at;
    return to > from ? to - from : 0;
}

void mv_optimizer_step_range(mv_optimizer *opt, const mv_arch *arch, mv_params *params,
                             const mv_params *grads, double lr, size_t lo, size_t hi)
{
    opt->step++;
    const double bias1 = 1 - pow(opt->config.beta1, (double)opt->step);
    const double bias2 = 1 - pow(opt->config.beta2, (double)opt->step);
    for (int l = 0; l < arch->n_layers; l++) {
        const size_t nw = (size_t)arch->widths[l + 1] * arch->widths[l];
        const size_t w_at = (size_t)(params->W[l] - params->data);
        const size_t b_at = (size_t)(params->b[l] - params->data);
        size_t i, n = clip(w_at, nw, lo, hi, &i);
        if (n)
            update(&opt->config, params->W[l] + i, grads->W[l] + i, opt->m + w_at + i,
                   opt->v + w_at + i, n, lr, opt->config.weight_decay, bias1, bias2);
        n = clip(b_at, (size_t)arch->widths[l + 1], lo, hi, &i);
        if (n)
            update(&opt->config, params->b[l] + i, grads->b[l] + i, opt->m + b_at + i,
                   opt->v + b_at + i, n, lr, 0, bias1, bias2);
    }
}

void mv_optimizer_step(mv_optimizer *opt, const mv_arch *arch, mv_params *params,
                       const mv_params *grads, double lr)
{
    mv_optimizer_step_range(opt, arch, params, grads, lr, 0, opt->count);
}
