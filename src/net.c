/* net.c: the network as a whole: parameters, workspace, and the passes that chain the
 * dense layers, activations and head.
 *
 *   z[l] = a[l-1] . W[l]^T + b[l]        (a[-1] = x)
 *   a[l] = act[l](z[l]),  a[L-1] = head(z[L-1])
 *   delta[l-1] = act'(z[l-1]) o (delta[l] . W[l])
 *   dC/dW[l] = delta[l]^T . a[l-1],  dC/db[l] = sum over rows of delta[l]
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Points W[l], b[l] into one block laid out W0 b0 W1 b1 ... */
static void params_bind(mv_params *p, const mv_arch *arch, mv_real *data)
{
    p->data = data;
    p->count = mv_arch_param_count(arch);
    for (int l = 0; l < arch->n_layers; l++) {
        p->W[l] = data;
        data += (size_t)arch->widths[l + 1] * arch->widths[l];
        p->b[l] = data;
        data += arch->widths[l + 1];
    }
}

mv_status mv_params_create(mv_params **out, const mv_arch *arch)
{
    *out = NULL;
    mv_status st = mv_arch_validate(arch);
    if (st)
        return st;
    mv_params *p = calloc(1, sizeof *p);
    mv_real *data = calloc(mv_arch_param_count(arch), sizeof *data);
    if (!p || !data) {
        free(p);
        free(data);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate %zu parameters",
                       mv_arch_param_count(arch));
    }
    params_bind(p, arch, data);
    *out = p;
    return MV_OK;
}

void mv_params_free(mv_params *params)
{
    if (!params)
        return;
    free(params->data);
    free(params);
}

mv_status mv_net_create(mv_net **out, const mv_arch *arch)
{
    *out = NULL;
    mv_status st = mv_arch_validate(arch);
    if (st)
        return st;
    mv_net *net = calloc(1, sizeof *net);
    mv_real *data = calloc(mv_arch_param_count(arch), sizeof *data);
    if (!net || !data) {
        free(net);
        free(data);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a network of %zu parameters",
                       mv_arch_param_count(arch));
    }
    net->arch = *arch;
    params_bind(&net->p, arch, data);
    *out = net;
    return MV_OK;
}

void mv_net_free(mv_net *net)
{
    if (!net)
        return;
    free(net->p.data);
    free(net);
}

/* Standard deviation of the initial weights of a layer whose outputs go through `act`:
 * He et al. 2015 for the relu family (corrected for the leak and the scale), Glorot and
 * Bengio 2010 otherwise. */
static double init_std(mv_activation act, int is_hidden, int fan_in, int fan_out)
{
    double he = sqrt(2.0 / fan_in), glorot = sqrt(2.0 / (fan_in + fan_out));
    if (!is_hidden)
        return glorot;
    switch (act.kind) {
    case MV_ACT_RELU:
    case MV_ACT_GELU:
        return he;
    case MV_ACT_LEAKY_RELU:
        return he / sqrt(1.0 + (double)act.param * act.param);
    case MV_ACT_SCALED_RELU:
        return he / act.param;
    default:
        return glorot;
    }
}

void mv_net_init(mv_net *net, uint64_t seed)
{
    const mv_arch *arch = &net->arch;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int l = 0; l < arch->n_layers; l++) {
        const int fan_in = arch->widths[l], fan_out = arch->widths[l + 1];
        const int hidden = l + 1 < arch->n_layers;
        const double std = init_std(hidden ? arch->act[l] : (mv_activation){0}, hidden,
                                    fan_in, fan_out);
        for (size_t i = 0; i < (size_t)fan_in * fan_out; i++)
            net->p.W[l][i] = (mv_real)(float)(std * mv_rng_normal(&rng));
        memset(net->p.b[l], 0, sizeof(mv_real) * (size_t)fan_out);
    }
}

mv_status mv_workspace_create(mv_workspace **out, const mv_arch *arch, int capacity)
{
    *out = NULL;
    mv_status st = mv_arch_validate(arch);
    if (st)
        return st;
    if (capacity < 1 || capacity > (1 << 24))
        return mv_fail(MV_ERR_ARG, "batch capacity must be 1..%d, got %d", 1 << 24, capacity);
    const int L = arch->n_layers;
    const size_t cap = (size_t)capacity, maxw = (size_t)mv_arch_max_width(arch);
    size_t total = 3 * cap * maxw + cap * arch->widths[L];
    for (int l = 0; l < L; l++)
        total += (l + 1 < L ? 4 : 2) * cap * arch->widths[l + 1]; /* z, a (+ mask, kept) */
    mv_workspace *ws = calloc(1, sizeof *ws);
    mv_real *block = calloc(total, sizeof *block);
    if (!ws || !block) {
        free(ws);
        free(block);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a workspace of %zu values", total);
    }
    ws->arch = *arch;
    ws->capacity = capacity;
    ws->block = block;
    mv_real *p = block;
    for (int l = 0; l < L; l++) {
        ws->z[l] = p;
        p += cap * arch->widths[l + 1];
        ws->a[l] = p;
        p += cap * arch->widths[l + 1];
    }
    ws->delta[0] = p;
    p += cap * maxw;
    ws->delta[1] = p;
    p += cap * maxw;
    ws->top_delta = p;
    p += cap * arch->widths[L];
    ws->scratch = p;
    p += cap * maxw;
    for (int l = 0; l + 1 < L; l++) {
        ws->mask[l] = p;
        p += cap * arch->widths[l + 1];
        ws->kept[l] = p;
        p += cap * arch->widths[l + 1];
    }
    *out = ws;
    return MV_OK;
}

void mv_workspace_free(mv_workspace *ws)
{
    if (!ws)
        return;
    free(ws->block);
    free(ws);
}

/* What layer l reads: the input, or the previous layer's output after dropout when a
 * training pass applied it. */
static const mv_real *layer_input(const mv_workspace *ws, const mv_real *x, int l)
{
    if (l == 0)
        return x;
    return ws->dropout_active ? ws->kept[l - 1] : ws->a[l - 1];
}

/* Draws the masks of every hidden layer, row by row: row r's from its own generator, seeded
 * by row_seeds[r] or else by (seed, r), layer after layer. The thread count never matters. */
static void draw_dropout_masks(const mv_arch *arch, mv_workspace *ws, int batch, float dropout,
                               uint64_t seed, const uint64_t *row_seeds)
{
    const mv_real scale = (mv_real)(1.0 / (1.0 - dropout));
    for (int r = 0; r < batch; r++) {
        mv_rng rng;
        mv_rng_seed(&rng, row_seeds ? row_seeds[r] : mv_seed_mix(seed, (uint64_t)r));
        for (int l = 0; l + 1 < arch->n_layers; l++) {
            const int w = arch->widths[l + 1];
            mv_real *mask = ws->mask[l] + (size_t)r * w;
            for (int i = 0; i < w; i++) mask[i] = mv_rng_uniform(&rng) < dropout ? 0 : scale;
        }
    }
}

static void forward_layers(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch)
{
    const mv_arch *arch = &net->arch;
    const int L = arch->n_layers;
    for (int l = 0; l < L; l++) {
        const int n_in = arch->widths[l], n_out = arch->widths[l + 1];
        const mv_real *in = layer_input(ws, x, l);
        mv_dense_forward(in, net->p.W[l], net->p.b[l], ws->z[l], batch, n_in, n_out);
        if (l + 1 == L) {
            mv_head_forward(arch->head, ws->z[l], ws->a[l], batch, n_out);
            break;
        }
        const size_t n = (size_t)batch * n_out;
        mv_act_forward(arch->act[l], ws->z[l], ws->a[l], n);
        if (ws->dropout_active)
            for (size_t i = 0; i < n; i++) ws->kept[l][i] = ws->a[l][i] * ws->mask[l][i];
    }
}

void mv_forward(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch)
{
    ws->dropout_active = 0;
    forward_layers(net, ws, x, batch);
}

void mv_forward_train(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                      float dropout, uint64_t seed)
{
    ws->dropout_active = dropout > 0 && net->arch.n_layers > 1;
    if (ws->dropout_active)
        draw_dropout_masks(&net->arch, ws, batch, dropout, seed, NULL);
    forward_layers(net, ws, x, batch);
}

void mv_forward_train_rows(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                           float dropout, const uint64_t *row_seeds)
{
    ws->dropout_active = dropout > 0 && net->arch.n_layers > 1;
    if (ws->dropout_active)
        draw_dropout_masks(&net->arch, ws, batch, dropout, 0, row_seeds);
    forward_layers(net, ws, x, batch);
}

double mv_loss(const mv_net *net, mv_workspace *ws, const mv_real *targets, int batch,
               int want_delta)
{
    const int L = net->arch.n_layers;
    return mv_head_loss(net->arch.head, ws->z[L - 1], ws->a[L - 1], targets,
                        want_delta ? ws->top_delta : NULL, batch, net->arch.widths[L]);
}

/* The backward recursion; parameter gradients go to `grads` over the whole batch, or to each
 * node's grads over its rows by chunks (nodes, when not NULL). */
static void backward_layers(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                            int top, const mv_real *top_delta, mv_params *grads,
                            const mv_grad_node *nodes, int n_nodes, mv_real *grad_x)
{
    const mv_arch *arch = &net->arch;
    const mv_real *delta = top_delta; /* dC/dz[l], [batch][widths[l+1]] */
    for (int l = top; l >= 0; l--) {
        const int n_in = arch->widths[l], n_out = arch->widths[l + 1];
        const mv_real *in = layer_input(ws, x, l);
        /* dC/da[l-1] goes to whichever ping-pong buffer does not hold delta. */
        mv_real *din = l == 0 ? grad_x : delta == ws->delta[0] ? ws->delta[1] : ws->delta[0];
        if (!grads && !nodes && !din)
            break;
        for (int k = 0; k < n_nodes; k++) {
            const mv_grad_node *g = &nodes[k];
            mv_dense_param_grad_chunks(in + (size_t)g->row0 * n_in,
                                       delta + (size_t)g->row0 * n_out, g->grads->W[l],
                                       g->grads->b[l], n_in, n_out, ws->scratch, g->bounds,
                                       g->n_chunks);
        }
        mv_dense_backward(in, net->p.W[l], delta, grads ? grads->W[l] : NULL,
                          grads ? grads->b[l] : NULL, din, batch, n_in, n_out, ws->scratch);
        if (l > 0) {
            const size_t n = (size_t)batch * n_in;
            if (ws->dropout_active) /* dropped units pass nothing back */
                for (size_t i = 0; i < n; i++) din[i] *= ws->mask[l - 1][i];
            mv_act_backward(arch->act[l - 1], ws->z[l - 1], ws->a[l - 1], din, n);
            delta = din;
        }
    }
}

void mv_backward_from(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                      int top, const mv_real *top_delta, mv_params *grads, mv_real *grad_x)
{
    backward_layers(net, ws, x, batch, top, top_delta, grads, NULL, 0, grad_x);
}

void mv_backward(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                 mv_params *grads, mv_real *grad_x)
{
    mv_backward_from(net, ws, x, batch, net->arch.n_layers - 1, ws->top_delta, grads, grad_x);
}

void mv_backward_nodes(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                       const mv_grad_node *nodes, int n_nodes, mv_real *grad_x)
{
    backward_layers(net, ws, x, batch, net->arch.n_layers - 1, ws->top_delta, NULL, nodes,
                    n_nodes, grad_x);
}

static int hidden_objective(mv_objective kind)
{
    return kind == MV_OBJ_HIDDEN || kind == MV_OBJ_HIDDEN_PRE;
}

/* Checks an input-gradient request before any work is done. */
static mv_status check_target(const mv_net *net, const mv_workspace *ws, int batch,
                              mv_target target, const int *index)
{
    const mv_arch *arch = &net->arch;
    if (batch < 1 || batch > ws->capacity)
        return mv_fail(MV_ERR_ARG, "batch of %d rows does not fit a workspace of %d", batch,
                       ws->capacity);
    if ((unsigned)target.kind >= MV_OBJ_COUNT)
        return mv_fail(MV_ERR_ARG, "unknown objective %d", target.kind);
    int units = arch->widths[arch->n_layers];
    if (hidden_objective(target.kind)) {
        if (target.layer < 0 || target.layer > arch->n_layers - 2)
            return mv_fail(MV_ERR_ARG, "hidden layer %d does not exist (0..%d)", target.layer,
                           arch->n_layers - 2);
        units = arch->widths[target.layer + 1];
    }
    if (target.kind == MV_OBJ_LOGPROB && arch->head == MV_HEAD_IDENTITY_MSE)
        return mv_fail(MV_ERR_ARG, "the logprob objective needs a ce or bce head, not mse");
    if (target.kind == MV_OBJ_MARGIN && units < 2)
        return mv_fail(MV_ERR_ARG, "the margin objective needs two outputs or more");
    for (int r = 0; r < batch; r++)
        if (index[r] < 0 || index[r] >= units)
            return mv_fail(MV_ERR_ARG, "row %d asks for unit %d of a layer of %d", r,
                           index[r], units);
    return MV_OK;
}

/* Seeds ws->delta[0] with dS/dz[h] of a hidden unit's objective, after a forward pass: zero
 * but at each row's unit, where it is act'(z[h]_k) for the activation and 1 for the
 * pre-activation. */
static void seed_hidden(const mv_arch *arch, mv_workspace *ws, int batch, mv_objective kind,
                        int h, const int *index, mv_real *values)
{
    const int n = arch->widths[h + 1];
    mv_real *seed = ws->delta[0];
    memset(seed, 0, sizeof *seed * (size_t)batch * n);
    for (int r = 0; r < batch; r++) {
        const size_t at = (size_t)r * n + index[r];
        seed[at] = 1;
        if (kind == MV_OBJ_HIDDEN)
            mv_act_backward(arch->act[h], ws->z[h] + at, ws->a[h] + at, seed + at, 1);
        if (values)
            values[r] = kind == MV_OBJ_HIDDEN ? ws->a[h][at] : ws->z[h][at];
    }
}

/* Seeds ws->top_delta with dS/dz[L-1] of an output objective, after a forward pass. */
static mv_status seed_output(const mv_arch *arch, mv_workspace *ws, int batch,
                             mv_objective kind, const int *index, mv_real *values)
{
    const int top = arch->n_layers - 1, n = arch->widths[arch->n_layers];
    for (int r = 0; r < batch; r++) {
        const size_t off = (size_t)r * n;
        mv_real value;
        mv_status st = mv_head_objective_seed(arch->head, kind, ws->z[top] + off,
                                              ws->a[top] + off, n, index[r],
                                              ws->top_delta + off, &value);
        if (st)
            return st;
        if (values)
            values[r] = value;
    }
    return MV_OK;
}

mv_status mv_input_grad(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                        mv_target target, const int *index, mv_real *grad_x, mv_real *values)
{
    mv_status st = check_target(net, ws, batch, target, index);
    if (st)
        return st;
    const mv_arch *arch = &net->arch;
    mv_forward(net, ws, x, batch);
    if (hidden_objective(target.kind)) {
        const int top = target.layer;
        seed_hidden(arch, ws, batch, target.kind, top, index, values);
        mv_backward_from(net, ws, x, batch, top, ws->delta[0], NULL, grad_x);
        return MV_OK;
    }
    if ((st = seed_output(arch, ws, batch, target.kind, index, values)))
        return st;
    mv_backward_from(net, ws, x, batch, arch->n_layers - 1, ws->top_delta, NULL, grad_x);
    return MV_OK;
}
