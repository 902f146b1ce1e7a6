/* visualize.c: class visualization by gradient ascent on the pixels (Simonyan et al. 2013),
 * with the regularizers that make the result look like something: jitter, gradient
 * smoothing, Gaussian blur of the image, decay, clamping, Yosinski et al.'s (2015) clipping of
 * small pixels, multi-scale octaves, and class-conditional starts.
 *
 * Every target is one row of a single batch, so one batched forward/backward pass per step
 * serves all targets at once. The image lives in pixel space [0, 1]; the network sees
 * (pixel - mean) / std, so a gradient in network space is divided by std to become a pixel
 * gradient. All randomness comes from the seed, and nothing depends on the thread count. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_resize.h>

#include "internal.h"

/* ------------------------------------------------------------------ settings */

void mv_viz_defaults(mv_viz_config *c)
{
    *c = (mv_viz_config){.steps = 300, .objective = MV_OBJ_LOGIT, .step = MV_STEP_NORMALIZED,
                         .lr = 0.02, .progress = 2.0, .optimizer = MV_PIXOPT_PLAIN,
                         .momentum = 0.9, .decay = 0.002, .blur_every = 4, .blur_sigma = 0.5,
                         .grad_blur = 1.0, .jitter = 1, .clamp = 1, .octaves = 1,
                         .octave_scale = 1.5, .init = MV_INIT_GRAY, .temperature = 1,
                         .smooth_sigma = 0.5, .seed = 1};
}

const char *const mv_viz_preset_names[] = {"default", "diverse", "prior", "plain", "yosinski1",
                                           "yosinski2", "yosinski3", "yosinski4", NULL};

/* Yosinski et al. used 0..255 pixels: a gradient per unit of 0..255 is 255 times smaller and
 * a step in those units 255 times larger than in [0, 1], so learning rates scale by 1/255^2;
 * percentiles, decay factors, blur widths, step counts and objective rises carry over. */
#define YOSINSKI_LR(lr) ((lr) / (255.0 * 255.0))

/* default, diverse and prior, on top of the defaults. */
static void smoothed_preset(mv_viz_config *c, const char *name)
{
    const int diverse = !strcmp(name, "diverse");
    /* Tuned on the committed robust model with the independent judge of `make quality`
     * (docs/QUALITY.md). Steps of fixed L2 length along the gradient averaged over 8
     * noisy copies of the image (sd 1): the gradient of the noise-smoothed classifier,
     * which the noise-trained model makes follow the garments' shapes. A decay towards
     * the prior keeps the background dark and the image near what was known. */
    c->objective = MV_OBJ_LOGPROB;
    c->step = MV_STEP_L2;
    c->grad_blur = 0;
    c->blur_every = 0;
    c->smooth_samples = 8;
    c->smooth_sigma = 1.0;
    c->decay_to = MV_DECAY_TO_PRIOR;
    if (name[0] == 'd') { /* from nothing: a gray start with noise per seed, a long climb */
        c->init = MV_INIT_GRAY;
        c->init_noise = 0.2;
        c->lr = 0.1;
        c->steps = 400;
        c->decay = 0.005;
        /* diverse: the seeds of a class pushed apart in the model's features. Measured
         * from noise, 100 seeds: diversity 0.16 -> 0.54 for judge 99.6% -> 91% */
        c->diversity = diverse ? 1.25 : 0;
    } else { /* from a k-means component of the class: a short climb that keeps it */
        c->init = MV_INIT_CLASS_MIXTURE;
        c->lr = 0.05;
        c->steps = 100;
        c->decay = 0;
        c->jitter = 0; /* measured: jitter moved the samples away from the data */
        /* a sample the model already finds clear is kept as drawn: the climb adds where
         * the prior is unsure and does not wear away what it knew (measured: CAS 0.791
         * after the full climb, 0.805 with the stop, 0.804 before) */
        c->stop_prob = 0.99;
    }
}

mv_status mv_viz_preset(mv_viz_config *c, const char *name)
{
    mv_viz_defaults(c);
    if (!strcmp(name, "default") || !strcmp(name, "diverse") || !strcmp(name, "prior")) {
        smoothed_preset(c, name);
        return MV_OK;
    }
    /* The others start from nothing: no decay, blur, smoothing or jitter unless they say. */
    c->decay = 0;
    c->blur_every = 0;
    c->grad_blur = 0;
    c->jitter = 0;
    if (!strcmp(name, "plain"))
        return MV_OK;
    c->init = MV_INIT_MEAN;
    c->decay_to = MV_DECAY_TO_MEAN;
    if (!strcmp(name, "yosinski1") || !strcmp(name, "yosinski4")) {
        const int first = name[8] == '1';
        c->blur_every = 4;
        c->blur_sigma = 0.5;
        c->step = MV_STEP_PROGRESS;
        c->progress = 2.0;
        c->lr = YOSINSKI_LR(first ? 100.0 : 1e8);
        c->steps = first ? 500 : 1000;
        c->norm_pct = first ? 50 : 0;
        c->contrib_pct = first ? 0 : 90;
        return MV_OK;
    }
    c->step = MV_STEP_FIXED;
    c->lr = YOSINSKI_LR(100.0);
    if (!strcmp(name, "yosinski2")) {
        c->decay = 0.3;
        c->norm_pct = 20;
        c->steps = 750;
        return MV_OK;
    }
    if (!strcmp(name, "yosinski3")) {
        c->decay = 0.0001;
        c->blur_every = 4;
        c->blur_sigma = 1.0;
        c->steps = 1000;
        return MV_OK;
    }
    mv_viz_defaults(c);
    return mv_fail(MV_ERR_ARG, "unknown preset '%s' (default, diverse, prior, plain, "
                               "yosinski1..yosinski4)",
                   name);
}

/* Index of text in names[0..count), or -1. */
static int name_index(const char *const *names, int count, const char *text)
{
    for (int i = 0; i < count; i++)
        if (names[i] && !strcmp(names[i], text))
            return i;
    return -1;
}

/* Names by value (designated, so that no table depends on the order of its enum); NULL for
 * a value without a name here. */
static const char *const init_names[MV_INIT_COUNT] = {
    [MV_INIT_GRAY] = "gray", [MV_INIT_NOISE] = "noise", [MV_INIT_MEAN] = "mean",
    [MV_INIT_CLASS_MEAN] = "class-mean", [MV_INIT_CLASS_SAMPLE] = "class-sample",
    [MV_INIT_CLASS_MIXTURE] = "class-mixture"};
/* The objectives visualization climbs: a class's logit, probability, log-probability or
 * margin, or a hidden unit's pre-activation. */
static const char *const objective_names[MV_OBJ_COUNT] = {
    [MV_OBJ_LOGIT] = "logit", [MV_OBJ_OUTPUT] = "prob", [MV_OBJ_LOGPROB] = "logprob",
    [MV_OBJ_MARGIN] = "margin", [MV_OBJ_HIDDEN_PRE] = "unit"};
static const char *const step_names[MV_STEP_COUNT] = {
    [MV_STEP_FIXED] = "fixed", [MV_STEP_NORMALIZED] = "normalized",
    [MV_STEP_PROGRESS] = "progress", [MV_STEP_L2] = "l2"};
static const char *const optimizer_names[MV_PIXOPT_COUNT] = {
    [MV_PIXOPT_PLAIN] = "plain", [MV_PIXOPT_MOMENTUM] = "momentum", [MV_PIXOPT_ADAM] = "adam"};
static const char *const decay_to_names[MV_DECAY_TO_COUNT] = {
    [MV_DECAY_TO_START] = "start", [MV_DECAY_TO_MEAN] = "mean", [MV_DECAY_TO_PRIOR] = "prior"};

/* An enum's name from its table, or "?" out of range. */
static const char *name_of(const char *const *names, int count, int i)
{
    return i >= 0 && i < count && names[i] ? names[i] : "?";
}

const char *mv_viz_init_name(mv_viz_init init)
{
    return init == MV_INIT_IMAGE ? "image" : name_of(init_names, MV_INIT_COUNT, (int)init);
}

const char *mv_viz_objective_name(mv_objective objective)
{
    return name_of(objective_names, MV_OBJ_COUNT, (int)objective);
}

const char *mv_viz_step_name(mv_viz_step step)
{
    return name_of(step_names, MV_STEP_COUNT, (int)step);
}

const char *mv_viz_optimizer_name(mv_viz_optimizer optimizer)
{
    return name_of(optimizer_names, MV_PIXOPT_COUNT, (int)optimizer);
}

const char *mv_viz_decay_to_name(mv_viz_decay_to decay_to)
{
    return name_of(decay_to_names, MV_DECAY_TO_COUNT, (int)decay_to);
}

mv_status mv_viz_decay_to_parse(mv_viz_decay_to *decay_to, const char *text)
{
    const int i = name_index(decay_to_names, MV_DECAY_TO_COUNT, text);
    if (i < 0)
        return mv_fail(MV_ERR_ARG, "unknown decay reference '%s' (start, mean, prior)", text);
    *decay_to = (mv_viz_decay_to)i;
    return MV_OK;
}

mv_status mv_viz_init_parse(mv_viz_init *init, const char *text)
{
    const int i = name_index(init_names, MV_INIT_COUNT, text);
    if (i < 0)
        return mv_fail(MV_ERR_ARG, "unknown start '%s' (gray, noise, mean, class-mean, "
                                   "class-sample, class-mixture, or an image file)", text);
    *init = (mv_viz_init)i;
    return MV_OK;
}

mv_status mv_viz_objective_parse(mv_objective *objective, const char *text)
{
    const int i = name_index(objective_names, MV_OBJ_COUNT, text);
    if (i < 0)
        return mv_fail(MV_ERR_ARG, "unknown objective '%s' (logit, prob, logprob, margin, unit)",
                       text);
    *objective = (mv_objective)i;
    return MV_OK;
}

mv_status mv_viz_step_parse(mv_viz_step *step, const char *text)
{
    const int i = name_index(step_names, MV_STEP_COUNT, text);
    if (i < 0)
        return mv_fail(MV_ERR_ARG, "unknown step rule '%s' (fixed, normalized, progress, l2)",
                       text);
    *step = (mv_viz_step)i;
    return MV_OK;
}

mv_status mv_viz_optimizer_parse(mv_viz_optimizer *optimizer, const char *text)
{
    const int i = name_index(optimizer_names, MV_PIXOPT_COUNT, text);
    if (i < 0)
        return mv_fail(MV_ERR_ARG, "unknown pixel optimizer '%s' (plain, momentum, adam)", text);
    *optimizer = (mv_viz_optimizer)i;
    return MV_OK;
}

/* ------------------------------------------------------------------ octaves */

/* Separable resampling operators between the full size and one octave's size, built by
 * letting stb_image_resize resample each 1-D basis vector (so the filter is stb's, and the
 * steps only multiply small matrices: no allocation, no library call per step). */
typedef struct {
    int w, h;          /* this octave's size; w == W: no projection */
    float *down_x;     /* [w][W] */
    float *down_y;     /* [h][H] */
    float *up_x;       /* [W][w] */
    float *up_y;       /* [H][h] */
    float *basis;      /* [max(W, H)] one basis vector */
    float *column;     /* [max(W, H)] its image */
} octave_ops;

/* out[j][i] = resample(e_i)[j]: the matrix of resampling n_in points to n_out. */
static mv_status resample_matrix(octave_ops *o, int n_in, int n_out, float *out)
{
    for (int i = 0; i < n_in; i++) {
        memset(o->basis, 0, sizeof *o->basis * (size_t)n_in);
        o->basis[i] = 1;
        const stbir_filter filter = n_out < n_in ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE;
        if (!stbir_resize_float_generic(o->basis, n_in, 1, 0, o->column, n_out, 1, 0, 1,
                                        STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_REFLECT, filter,
                                        STBIR_COLORSPACE_LINEAR, NULL))
            return mv_fail(MV_ERR_NOMEM, "cannot build the octave resampling operator");
        for (int j = 0; j < n_out; j++) out[(size_t)j * n_in + i] = o->column[j];
    }
    return MV_OK;
}

static mv_status octave_build(octave_ops *o, int W, int H, double factor)
{
    o->w = (int)lround(W / factor);
    o->h = (int)lround(H / factor);
    o->w = o->w < 2 ? 2 : o->w;
    o->h = o->h < 2 ? 2 : o->h;
    if (o->w >= W || o->h >= H) { /* nothing coarser fits (a side of 1 or 2 pixels) */
        o->w = W;
        o->h = H;
    }
    if (o->w == W && o->h == H)
        return MV_OK;
    mv_status st;
    if ((st = resample_matrix(o, W, o->w, o->down_x)) || (st = resample_matrix(o, H, o->h, o->down_y)) ||
        (st = resample_matrix(o, o->w, W, o->up_x)) || (st = resample_matrix(o, o->h, H, o->up_y)))
        return st;
    return MV_OK;
}

/* g [H][W][C] <- up(down(g)): only what the octave's resolution can hold. tmp [H*W*C]. */
static void octave_project(const octave_ops *o, float *g, float *tmp, int W, int H, int C)
{
    if (o->w == W && o->h == H)
        return;
    const int w = o->w, h = o->h;
    /* tmp[y][x'][c] = sum_x down_x[x'][x] g[y][x][c]; then tmp2[y'][x'] over y; then back. */
    float *a = tmp, *b = tmp + (size_t)H * w * C;
    for (int y = 0; y < H; y++)
        for (int xs = 0; xs < w; xs++)
            for (int c = 0; c < C; c++) {
                float sum = 0;
                for (int x = 0; x < W; x++) sum += o->down_x[(size_t)xs * W + x] * g[((size_t)y * W + x) * C + c];
                a[((size_t)y * w + xs) * C + c] = sum;
            }
    for (int ys = 0; ys < h; ys++)
        for (int i = 0; i < w * C; i++) {
            float sum = 0;
            for (int y = 0; y < H; y++) sum += o->down_y[(size_t)ys * H + y] * a[(size_t)y * w * C + i];
            b[(size_t)ys * w * C + i] = sum;
        }
    for (int y = 0; y < H; y++)
        for (int i = 0; i < w * C; i++) {
            float sum = 0;
            for (int ys = 0; ys < h; ys++) sum += o->up_y[(size_t)y * h + ys] * b[(size_t)ys * w * C + i];
            a[(size_t)y * w * C + i] = sum;
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float sum = 0;
                for (int xs = 0; xs < w; xs++) sum += o->up_x[(size_t)x * w + xs] * a[((size_t)y * w + xs) * C + c];
                g[((size_t)y * W + x) * C + c] = sum;
            }
}

/* ------------------------------------------------------------------ ascent */

typedef struct {
    const mv_model *model;
    const mv_viz_config *cfg;
    const int *targets;  /* [n] the target of each row computed here */
    /* The batch these rows belong to: n_all rows, of which rows [n] (ascending) are computed
     * here. Every random draw is made, or skipped, for every row of that batch in its order,
     * so a row's bytes do not depend on which others are computed with it. */
    const int *all_targets;
    const int *rows;
    int n_all;
    int *own_targets; /* [n] targets and rows, owned (rows 0..n-1 for the whole batch) */
    int *own_rows;
    int n, W, H, C;
    size_t D, P;     /* values and pixels per image */
    mv_workspace *ws;
    float *images;   /* [n][D] the images being optimised (caller's buffer) */
    float *start;    /* [n][D] where they started */
    float *shifted;  /* [n][D] jittered copies fed to the network */
    float *grad;     /* [n][D] pixel gradients */
    float *scratch;  /* [n][3D] per row: blur scratch [D], projection scratch [2D] */
    float *m, *v;    /* [n][D] pixel-optimizer moments (momentum, adam) */
    float *measure;  /* [n][2P] per-pixel clipping measure and its sorted copy */
    mv_real *x;      /* [n][D] network inputs */
    mv_real *gx;     /* [n][D] network-input gradients */
    mv_real *noisy;  /* [n][D] a noisy copy of x, with gradient smoothing */
    mv_real *sample_grad; /* [n][D] its gradient */
    mv_real *unit_features; /* [n][w] with diversity: last hidden activations / their norm */
    mv_real *class_sums;    /* [K][w] their sum over the rows of each class */
    double *feature_norms;  /* [n] |h| of each row */
    int *class_rows;        /* [K] rows per class */
    mv_real *diversity_grad; /* [n][D] the diversity term's input gradient */
    unsigned char *stopped; /* [n] with stop_prob: the row has reached it and stays */
    double *scores;  /* [n] with on_scores: this step's objective per row */
    int *dx, *dy;    /* [n] this step's jitter */
    octave_ops oct;
    long t;          /* pixel-optimizer updates so far (adam's bias correction) */
    int decay_to_mean; /* the decay's reference is the mean pixel, not the start */
} ascent;

static void ascent_free(ascent *a)
{
    mv_workspace_free(a->ws);
    void *buffers[] = {a->own_targets, a->own_rows, a->start, a->shifted, a->grad, a->scratch, a->m, a->v, a->measure, a->x,
                       a->gx, a->noisy, a->sample_grad, a->unit_features,
                       a->class_sums, a->feature_norms, a->class_rows, a->diversity_grad, a->stopped, a->scores, a->dx, a->dy, a->oct.down_x, a->oct.down_y,
                       a->oct.up_x, a->oct.up_y, a->oct.basis, a->oct.column};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) free(buffers[i]);
}

/* Copies src into dst rolled by (dx, dy), wrapping around: jitter moves content, it does not
 * invent any. [H][W][C] each. */
static void roll(const float *src, float *dst, int W, int H, int C, int dx, int dy)
{
    const size_t WC = (size_t)W * C;
    const int shift = ((dx % W) + W) % W; /* dst x = src x + shift, modulo W */
    for (int y = 0; y < H; y++) {
        const int sy = ((y - dy) % H + H) % H;
        const float *s = src + (size_t)sy * WC;
        float *d = dst + (size_t)y * WC;
        memcpy(d + (size_t)shift * C, s, sizeof *d * (size_t)(W - shift) * C);
        memcpy(d, s + (size_t)(W - shift) * C, sizeof *d * (size_t)shift * C);
    }
}

static int class_objective(const mv_viz_config *c) { return c->objective != MV_OBJ_HIDDEN_PRE; }

/* Row r's start (r of the whole batch) into p [D]: its own draws from rng. */
static mv_status start_image(const ascent *a, int r, const float *init_image, mv_rng *rng,
                             float *p)
{
    const mv_viz_config *c = a->cfg;
    if (c->init == MV_INIT_CLASS_MEAN || c->init == MV_INIT_CLASS_SAMPLE) {
        const double temperature = c->init == MV_INIT_CLASS_MEAN ? 0 : c->temperature;
        return mv_class_sample(a->model, a->all_targets[r], temperature, rng, p);
    }
    if (c->init == MV_INIT_CLASS_MIXTURE)
        return mv_class_mixture_sample(a->model, a->all_targets[r], c->temperature, rng, p);
    for (size_t i = 0; i < a->D; i++) {
        double v = 0.5;
        if (c->init == MV_INIT_NOISE)
            v = 0.5 + 0.1 * mv_rng_normal(rng);
        else if (c->init == MV_INIT_MEAN)
            v = a->model->mean[i % (size_t)a->C] + mv_rng_normal(rng) / 255;
        else if (c->init == MV_INIT_IMAGE)
            v = init_image[i];
        p[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
    return MV_OK;
}

/* The starts of every row of the batch, in row order from one stream; a row not computed here
 * is drawn into scratch and dropped (its draws are what the next row's depend on). */
static mv_status init_images(ascent *a, const float *init_image)
{
    const mv_viz_config *c = a->cfg;
    mv_rng rng;
    mv_rng_seed(&rng, c->seed ^ 0x1417u);
    for (int r = 0, j = 0; r < a->n_all; r++) {
        const int own = j < a->n && a->rows[j] == r;
        mv_status st = start_image(a, r, init_image, &rng,
                                   own ? a->images + (size_t)j * a->D : a->shifted);
        if (st)
            return st;
        j += own;
    }
    for (int r = 0, j = 0; c->init_noise > 0 && r < a->n_all; r++) {
        if (!(j < a->n && a->rows[j] == r)) {
            mv_rng_skip_normals(&rng, a->D);
            continue;
        }
        float *p = a->images + (size_t)j++ * a->D;
        for (size_t i = 0; i < a->D; i++) {
            const double v = p[i] + c->init_noise * mv_rng_normal(&rng);
            p[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
        }
    }
    memcpy(a->start, a->images, sizeof *a->start * a->D * (size_t)a->n);
    return MV_OK;
}

/* Row r's objective in the workspace's last forward pass: the target's logit, probability,
 * log-probability or margin over the strongest other class, or a unit's activation. */
static double row_score(const ascent *a, int r)
{
    const mv_viz_config *c = a->cfg;
    const mv_arch *arch = &a->model->net->arch;
    if (!class_objective(c))
        return a->ws->a[c->unit_layer][(size_t)r * arch->widths[c->unit_layer + 1] + a->targets[r]];
    const int L = arch->n_layers, K = a->model->n_classes, t = a->targets[r];
    const mv_real *z = a->ws->z[L - 1] + (size_t)r * K, *p = a->ws->a[L - 1] + (size_t)r * K;
    double runner_up = -INFINITY;
    for (int k = 0; k < K; k++)
        if (k != t && z[k] > runner_up) runner_up = z[k];
    switch (c->objective) {
    case MV_OBJ_OUTPUT: return p[t];
    case MV_OBJ_LOGPROB: return log(p[t]);
    case MV_OBJ_MARGIN: return z[t] - runner_up;
    default: return z[t];
    }
}

/* With on_scores: adds weight times each row's objective in the last forward pass. */
static void add_scores(ascent *a, double weight)
{
    for (int r = 0; a->scores && r < a->n; r++) a->scores[r] += weight * row_score(a, r);
}

/* gx [n][D] <- the objective's gradient at the network inputs x [n][D]. */
static mv_status objective_gradient(ascent *a, const mv_real *x, mv_real *gx)
{
    const mv_target target = {a->cfg->objective, a->cfg->unit_layer};
    return mv_input_grad(a->model->net, a->ws, x, a->n, target, a->targets, gx, NULL);
}

/* a->gx <- the mean of the objective's gradient at smooth_samples noisy copies of a->x
 * (Gaussian, smooth_sigma pixels): the gradient of the objective smoothed by the noise, which
 * ignores the model's fine-grained, non-robust features (Smilkov et al. 2017; randomized
 * smoothing, Kaur et al. 2019). The noise is drawn in row order, whatever the threads. */
static mv_status smoothed_gradient(ascent *a, mv_rng *rng)
{
    const mv_viz_config *c = a->cfg;
    const size_t total = a->D * (size_t)a->n;
    memset(a->gx, 0, sizeof *a->gx * total);
    for (int k = 0; k < c->smooth_samples; k++) {
        for (int r = 0, j = 0; r < a->n_all; r++) {
            if (!(j < a->n && a->rows[j] == r)) { /* another process's row: its draws only */
                mv_rng_skip_normals(rng, a->D);
                continue;
            }
            const size_t at = (size_t)j++ * a->D;
            for (size_t i = at; i < at + a->D; i++)
                a->noisy[i] = a->x[i] + (mv_real)(c->smooth_sigma * mv_rng_normal(rng) /
                                                  a->model->std[i % (size_t)a->C]);
        }
        mv_status st = objective_gradient(a, a->noisy, a->sample_grad);
        if (st)
            return st;
        add_scores(a, 1.0 / c->smooth_samples);
        for (size_t i = 0; i < total; i++) a->gx[i] += a->sample_grad[i];
    }
    const mv_real share = (mv_real)1 / (mv_real)c->smooth_samples;
    for (size_t i = 0; i < total; i++) a->gx[i] *= share;
    return MV_OK;
}

/* Adds to a->gx the gradient of -diversity * mean_j cos(h_r, h_j) at the network inputs a->x,
 * j over the other rows with row r's target and h the last hidden layer's activations:
 * with u = h / |h| and s the sum of the class-mates' u, d cos-sum / dh_r = (s - (u.s) u) / |h|.
 * A row whose features are all zero has no direction and gets no push. */
static void add_diversity_gradient(ascent *a)
{
    const mv_net *net = a->model->net;
    const int top = net->arch.n_layers - 2, w = net->arch.widths[top + 1], K = a->model->n_classes;
    mv_forward(net, a->ws, a->x, a->n);
    const mv_real *h = a->ws->a[top];
    mv_real *u = a->unit_features, *seed = a->ws->delta[0];
    double *norm = a->feature_norms;
    int *count = a->class_rows;
    memset(a->class_sums, 0, sizeof *a->class_sums * (size_t)K * w);
    for (int k = 0; k < K; k++) count[k] = 0;
    for (int r = 0; r < a->n; r++) {
        const mv_real *hr = h + (size_t)r * w;
        double sq = 0;
        for (int i = 0; i < w; i++) sq += (double)hr[i] * hr[i];
        norm[r] = sqrt(sq);
        mv_real *ur = u + (size_t)r * w, *sum = a->class_sums + (size_t)a->targets[r] * w;
        for (int i = 0; i < w; i++) ur[i] = norm[r] > 0 ? (mv_real)(hr[i] / norm[r]) : 0;
        for (int i = 0; i < w; i++) sum[i] += ur[i];
        count[a->targets[r]]++;
    }
    for (int r = 0; r < a->n; r++) {
        const mv_real *ur = u + (size_t)r * w, *sum = a->class_sums + (size_t)a->targets[r] * w;
        mv_real *sr = seed + (size_t)r * w;
        const int mates = count[a->targets[r]] - 1;
        double dot = 0;
        for (int i = 0; i < w; i++) dot += (double)ur[i] * (sum[i] - ur[i]);
        const double scale = mates > 0 && norm[r] > 0 ? -a->cfg->diversity / (mates * norm[r]) : 0;
        for (int i = 0; i < w; i++) sr[i] = (mv_real)(scale * ((sum[i] - ur[i]) - dot * ur[i]));
    }
    mv_act_backward(net->arch.act[top], a->ws->z[top], a->ws->a[top], seed, (size_t)a->n * w);
    mv_backward_from(net, a->ws, a->x, a->n, top, seed, NULL, a->diversity_grad);
    for (size_t i = 0; i < a->D * (size_t)a->n; i++) a->gx[i] += a->diversity_grad[i];
}

/* Pixel gradients of every row's objective at the jittered images, with the L2 penalty. */
static mv_status gradients(ascent *a, mv_rng *rng)
{
    const mv_viz_config *c = a->cfg;
    const size_t D = a->D;
    /* drawn in row order for the whole batch, whatever the thread count */
    for (int r = 0, j = 0; r < a->n_all; r++) {
        const int dx = c->jitter ? (int)mv_rng_below(rng, 2 * (uint32_t)c->jitter + 1) - c->jitter : 0;
        const int dy = c->jitter ? (int)mv_rng_below(rng, 2 * (uint32_t)c->jitter + 1) - c->jitter : 0;
        if (j < a->n && a->rows[j] == r)
            a->dx[j] = dx, a->dy[j++] = dy;
    }
    /* Rows are independent here and below: with many images these copies are worth both
     * threads. An image that is not jittered goes to the network without a copy. */
    const int parallel = a->n > 1 && a->D * (size_t)a->n > MV_PARALLEL_ROW_VALUES;
    MV_FOR_EACH(int, r, a->n, parallel, {
        const float *image = a->images + r * D;
        if (a->dx[r] || a->dy[r]) {
            roll(image, a->shifted + r * D, a->W, a->H, a->C, a->dx[r], a->dy[r]);
            image = a->shifted + r * D;
        }
        mv_model_prepare_input(a->model, image, a->x + r * D, 1);
    });
    if (a->scores)
        memset(a->scores, 0, sizeof *a->scores * (size_t)a->n);
    mv_status st = c->smooth_samples > 0 ? smoothed_gradient(a, rng)
                                         : objective_gradient(a, a->x, a->gx);
    if (st)
        return st;
    if (c->smooth_samples <= 0)
        add_scores(a, 1.0);
    if (c->diversity > 0)
        add_diversity_gradient(a);
    /* -l2 |x|^2 in network space; then d/dpixel = d/dx / std; then undo the jitter. */
    MV_FOR_EACH(int, r, a->n, parallel, {
        const int jittered = a->dx[r] || a->dy[r];
        float *g = jittered ? a->scratch + 3 * r * D : a->grad + r * D;
        const mv_real *gx = a->gx + r * D, *x = a->x + r * D;
        mv_model_input_to_pixel_grad(a->model, gx, x, c->l2, g, D);
        if (jittered)
            roll(g, a->grad + r * D, a->W, a->H, a->C, -a->dx[r], -a->dy[r]);
    });
    return MV_OK;
}

static int compare_floats(const void *pa, const void *pb)
{
    const float x = *(const float *)pa, y = *(const float *)pb;
    return (x > y) - (x < y);
}

/* Yosinski's clipping: pixels whose measure [P] lies below the pct-th percentile become the
 * mean pixel (zero for the network). sorted [P] is scratch. */
static void clip_below_percentile(ascent *a, float *p, float *measure, float *sorted, double pct)
{
    const size_t P = a->P;
    memcpy(sorted, measure, sizeof *sorted * P);
    qsort(sorted, P, sizeof *sorted, compare_floats);
    const float threshold = sorted[(size_t)(pct / 100 * (double)(P - 1))];
    for (size_t q = 0; q < P; q++)
        if (measure[q] < threshold)
            for (int c = 0; c < a->C; c++) p[q * (size_t)a->C + c] = a->model->mean[c];
}

/* The per-pixel measures, from the image p and its (unsmoothed) gradient g: the norm over
 * channels of the network input, and |sum_c x_c g_c| in network units. */
static void pixel_measures(const ascent *a, const float *p, const float *g, float *norm,
                           float *contribution)
{
    const int C = a->C;
    for (size_t q = 0; q < a->P; q++) {
        double n2 = 0, dot = 0;
        for (int c = 0; c < C; c++) {
            const double centred = p[q * C + c] - a->model->mean[c];
            n2 += centred * centred / ((double)a->model->std[c] * a->model->std[c]);
            if (contribution) /* x_c g_c = (centred / std)(g_pixel std) */
                dot += centred * g[q * C + c];
        }
        if (norm)
            norm[q] = (float)sqrt(n2);
        if (contribution)
            contribution[q] = (float)fabs(dot);
    }
}

/* Turns row r's gradient g into the step direction (in place) through the pixel optimizer,
 * and returns the step's scale under the step rule. t counts updates from 1. */
static double direction(ascent *a, int r, float *g, long t)
{
    const mv_viz_config *c = a->cfg;
    const size_t D = a->D;
    float *m = a->m ? a->m + r * D : NULL, *v = a->v ? a->v + r * D : NULL;
    const double b1 = c->momentum, b2 = 0.999;
    const double fix1 = 1 - pow(b1, (double)t), fix2 = 1 - pow(b2, (double)t);
    double dot = 0, sum_abs = 0, sum_sq = 0;
    for (size_t i = 0; i < D; i++) {
        const double gi = g[i];
        double d = gi;
        if (c->optimizer == MV_PIXOPT_MOMENTUM) {
            m[i] = (float)(b1 * m[i] + gi);
            d = m[i];
        } else if (c->optimizer == MV_PIXOPT_ADAM) {
            m[i] = (float)(b1 * m[i] + (1 - b1) * gi);
            v[i] = (float)(b2 * v[i] + (1 - b2) * gi * gi);
            d = (m[i] / fix1) / (sqrt(v[i] / fix2) + 1e-8);
        }
        dot += gi * d;
        sum_abs += fabs(d);
        sum_sq += d * d;
        g[i] = (float)d;
    }
    switch (c->step) {
    case MV_STEP_NORMALIZED: return sum_abs > 0 ? c->lr * (double)D / sum_abs : 0;
    case MV_STEP_PROGRESS: return dot > 0 ? fmin(c->lr, c->progress / dot) : 0;
    case MV_STEP_L2: return sum_sq > 0 ? c->lr / sqrt(sum_sq) : 0;
    default: return c->lr;
    }
}

/* The smoothing of the total variation: differences well below it count quadratically,
 * so a flat region's noise is smoothed rather than driven to exact zeros. */
static const double TV_EPS = 0.01;

/* Pixel (x, y)'s TV term sqrt(sum_c dx_c^2 + dy_c^2 + eps^2), with forward differences
 * (zero past the last column and row), and its differences into dx, dy [C]. */
static double tv_term(const float *p, int W, int H, int C, int x, int y, double *dx, double *dy)
{
    const float *q = p + ((size_t)y * W + x) * C;
    double sum = TV_EPS * TV_EPS;
    for (int c = 0; c < C; c++) {
        dx[c] = x + 1 < W ? q[C + c] - q[c] : 0;
        dy[c] = y + 1 < H ? q[(size_t)W * C + c] - q[c] : 0;
        sum += dx[c] * dx[c] + dy[c] * dy[c];
    }
    return sqrt(sum);
}

double mv_tv_value(const float *p, int W, int H, int C)
{
    double dx[4], dy[4], sum = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) sum += tv_term(p, W, H, C, x, y, dx, dy);
    return sum;
}

/* Pixel (x, y) appears in its own term and in those of its left and upper neighbours. */
void mv_tv_add_gradient(const float *p, float *g, int W, int H, int C, double tv)
{
    double dx[4], dy[4], lx[4], ly[4], ux[4], uy[4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double own = tv_term(p, W, H, C, x, y, dx, dy);
            const double left = x > 0 ? tv_term(p, W, H, C, x - 1, y, lx, ly) : 0;
            const double up = y > 0 ? tv_term(p, W, H, C, x, y - 1, ux, uy) : 0;
            float *d = g + ((size_t)y * W + x) * C;
            for (int c = 0; c < C; c++) {
                double minus_grad = (dx[c] + dy[c]) / own;
                if (x > 0) minus_grad -= lx[c] / left;
                if (y > 0) minus_grad -= uy[c] / up;
                d[c] += (float)(tv * minus_grad);
            }
        }
}

/* Marks the rows whose target the model already gives stop_prob at the unjittered image.
 * A stopped image no longer changes, so it stays stopped. */
static void mark_stopped(ascent *a)
{
    const int L = a->model->net->arch.n_layers, K = a->model->n_classes;
    mv_model_prepare_input(a->model, a->images, a->x, a->n);
    mv_forward(a->model->net, a->ws, a->x, a->n);
    for (int r = 0; r < a->n; r++)
        if (a->ws->a[L - 1][(size_t)r * K + a->targets[r]] >= a->cfg->stop_prob)
            a->stopped[r] = 1;
}

/* One update of row r: smooth the gradient, step, decay, blur, clamp, clip. */
static void update_row(ascent *a, int r, int step)
{
    const mv_viz_config *c = a->cfg;
    const size_t D = a->D, P = a->P;
    if (a->stopped && a->stopped[r])
        return;
    float *p = a->images + r * D, *g = a->grad + r * D, *s = a->scratch + 3 * r * D;
    float *measure = a->measure + 2 * r * P;
    if (c->contrib_pct > 0) /* judged at the image the gradient was taken at */
        pixel_measures(a, p, g, NULL, measure);
    mv_gaussian_blur(g, s, a->W, a->H, a->C, c->grad_blur);
    if (c->tv > 0) /* after the blur, which would only soften the edges it keeps */
        mv_tv_add_gradient(p, g, a->W, a->H, a->C, c->tv);
    octave_project(&a->oct, g, s + D, a->W, a->H, a->C);
    const double scale = direction(a, r, g, step + 1);
    const float *start = a->start + r * D;
    for (size_t i = 0; i < D; i++) {
        const float reference = a->decay_to_mean ? a->model->mean[i % (size_t)a->C] : start[i];
        p[i] += (float)(scale * g[i] - c->decay * (p[i] - reference));
    }
    if (c->step_noise > 0) { /* Langevin-style exploration, annealed to nothing by the end;
                                the row's own stream, so threads cannot reorder draws */
        mv_rng rng;
        mv_rng_seed(&rng, c->seed ^ (0x5EEDull << 40) ^ ((uint64_t)step << 20) ^
                              (uint64_t)a->rows[r]);
        const double sd = c->step_noise * (1 - (double)step / c->steps);
        for (size_t i = 0; i < D; i++) p[i] += (float)(sd * mv_rng_normal(&rng));
    }
    if (c->blur_every > 0 && (step + 1) % c->blur_every == 0)
        mv_gaussian_blur(p, s, a->W, a->H, a->C, c->blur_sigma);
    if (c->clamp)
        for (size_t i = 0; i < D; i++) p[i] = p[i] < 0 ? 0 : p[i] > 1 ? 1 : p[i];
    if (c->contrib_pct > 0)
        clip_below_percentile(a, p, measure, measure + P, c->contrib_pct);
    if (c->norm_pct > 0) {
        pixel_measures(a, p, NULL, measure, NULL);
        clip_below_percentile(a, p, measure, measure + P, c->norm_pct);
    }
}

/* The scores the last forward pass left in the workspace, for row r: the layer that the
 * objective looks at, and its width. */
static const mv_real *scored_layer(const ascent *a, int r, int *width)
{
    const mv_arch *arch = &a->model->net->arch;
    const int layer = class_objective(a->cfg) ? arch->n_layers - 1 : a->cfg->unit_layer;
    *width = arch->widths[layer + 1];
    /* logits for classes; activations for units (what the unit objective climbs) */
    const mv_real *v = class_objective(a->cfg) ? a->ws->z[layer] : a->ws->a[layer];
    return v + (size_t)r * *width;
}

/* The step at which row r's target first became the top class (or the most active unit of
 * its layer), during the ascent. */
static void note_top(ascent *a, int step, mv_viz_result *results)
{
    for (int r = 0; r < a->n; r++) {
        int width;
        const mv_real *z = scored_layer(a, r, &width);
        if (mv_index_of_max(z, width) == a->targets[r] && results[r].first_top_step < 0)
            results[r].first_top_step = step;
    }
}

/* Scores of every row at the final, unjittered image. */
static void final_scores(ascent *a, mv_viz_result *results)
{
    const mv_viz_config *c = a->cfg;
    const int L = a->model->net->arch.n_layers, K = a->model->n_classes;
    mv_model_prepare_input(a->model, a->images, a->x, a->n);
    mv_forward(a->model->net, a->ws, a->x, a->n);
    for (int r = 0; r < a->n; r++) {
        const mv_real *z = a->ws->z[L - 1] + (size_t)r * K, *p = a->ws->a[L - 1] + (size_t)r * K;
        const int top = mv_index_of_max(z, K), t = class_objective(c) ? a->targets[r] : top;
        double runner_up = -INFINITY;
        for (int k = 0; k < K; k++)
            if (k != t && z[k] > runner_up) runner_up = z[k];
        mv_viz_result *x = &results[r];
        x->top_class = top;
        x->logit = z[t];
        x->prob = p[t];
        x->margin = z[t] - runner_up;
        x->score = row_score(a, r);
    }
}

static mv_status check_config(const mv_model *model, const mv_viz_config *c)
{
    if (c->steps < 0 || !(c->lr >= 0) || !isfinite(c->lr) || c->jitter < 0 || c->jitter > 64 ||
        !(c->decay >= 0 && c->decay < 1) || !(c->l2 >= 0) || !(c->blur_sigma >= 0) ||
        !(c->grad_blur >= 0) || c->blur_every < 0 || !(c->momentum >= 0 && c->momentum < 1) ||
        !(c->progress > 0) || !(c->norm_pct >= 0 && c->norm_pct < 100) ||
        !(c->contrib_pct >= 0 && c->contrib_pct < 100) || c->octaves < 1 || c->octaves > 8 ||
        !(c->octave_scale > 1 && c->octave_scale <= 8) || !(c->temperature >= 0) ||
        c->frame_every < 0 || !(c->tv >= 0) || !(c->init_noise >= 0 && c->init_noise <= 1) ||
        c->smooth_samples < 0 || c->smooth_samples > 256 || !(c->step_noise >= 0 && c->step_noise <= 1) ||
        !(c->smooth_sigma >= 0 && c->smooth_sigma <= 10) ||
        !(c->diversity >= 0 && c->diversity <= 1e6) || !(c->stop_prob >= 0 && c->stop_prob <= 1))
        return mv_fail(MV_ERR_ARG, "visualization settings out of range (steps, lr, jitter "
                                   "0..64, decay and momentum in [0, 1), percentiles in "
                                   "[0, 100), octaves 1..8 with a scale in (1, 8], sigmas, l2 "
                                   "and temperature >= 0, tv >= 0, start noise in [0, 1], "
                                   "0..256 smoothing samples of sigma in [0, 10], step noise "
                                   "in [0, 1], diversity >= 0, stop probability in [0, 1])");
    if ((unsigned)c->objective >= MV_OBJ_COUNT || !objective_names[c->objective] ||
        (unsigned)c->step >= MV_STEP_COUNT ||
        (unsigned)c->optimizer >= MV_PIXOPT_COUNT || (unsigned)c->init >= MV_INIT_COUNT ||
        (unsigned)c->decay_to >= MV_DECAY_TO_COUNT)
        return mv_fail(MV_ERR_ARG, "unknown objective, step rule, optimizer, start or decay "
                                   "reference");
    const int class_start = c->init == MV_INIT_CLASS_MEAN || c->init == MV_INIT_CLASS_SAMPLE ||
                            c->init == MV_INIT_CLASS_MIXTURE;
    if (class_start && !class_objective(c))
        return mv_fail(MV_ERR_ARG, "a class start needs a class objective, not a unit");
    if (class_start && !mv_model_has_class_stats(model, NULL))
        return mv_fail(MV_ERR_ARG, "the model has no class statistics for a class start "
                                   "(train it with --class-stats)");
    if (c->init == MV_INIT_CLASS_MIXTURE && !mv_model_has_class_mixture(model, NULL))
        return mv_fail(MV_ERR_ARG, "the model has no class mixture for a class-mixture start "
                                   "(train it with --class-mixture)");
    if (c->objective == MV_OBJ_HIDDEN_PRE &&
        (c->unit_layer < 0 || c->unit_layer > model->net->arch.n_layers - 2))
        return mv_fail(MV_ERR_ARG, "hidden layer %d does not exist (0..%d)", c->unit_layer,
                       model->net->arch.n_layers - 2);
    if ((c->diversity > 0 || c->stop_prob > 0) && !class_objective(c))
        return mv_fail(MV_ERR_ARG, "diversity and the stop probability need a class "
                                   "objective, not a unit");
    if (c->diversity > 0 && model->net->arch.n_layers < 2)
        return mv_fail(MV_ERR_ARG, "the diversity term needs a hidden layer; the model has "
                                   "none");
    if (c->objective == MV_OBJ_MARGIN && model->n_classes < 2)
        return mv_fail(MV_ERR_ARG, "the margin objective needs two classes or more");
    return MV_OK;
}

static mv_status check_targets(const mv_model *model, const mv_viz_config *c, const int *targets,
                               int n)
{
    const mv_arch *arch = &model->net->arch;
    const int units = c->objective == MV_OBJ_HIDDEN_PRE ? arch->widths[c->unit_layer + 1]
                                                  : arch->widths[arch->n_layers];
    for (int r = 0; r < n; r++)
        if (targets[r] < 0 || targets[r] >= units)
            return mv_fail(MV_ERR_ARG, "target %d of row %d is not one of the %d %s", targets[r],
                           r, units, c->objective == MV_OBJ_HIDDEN_PRE ? "units" : "classes");
    return MV_OK;
}

/* rows [n] of a batch of n_all with these targets: ascending, in range, and with the
 * diversity term every row of a target that one of them has (the term couples them). */
static mv_status check_rows(const mv_viz_config *c, const int *targets, int n_all,
                           const int *rows, int n)
{
    for (int j = 0; j < n; j++)
        if (rows[j] < 0 || rows[j] >= n_all || (j > 0 && rows[j] <= rows[j - 1]))
            return mv_fail(MV_ERR_ARG, "rows to compute must ascend within 0..%d (row %d is "
                                       "%d)", n_all - 1, j, rows[j]);
    if (c->diversity <= 0)
        return MV_OK;
    for (int r = 0, j = 0; r < n_all; r++) {
        const int own = j < n && rows[j] == r;
        j += own;
        for (int k = 0; !own && k < n; k++)
            if (targets[rows[k]] == targets[r])
                return mv_fail(MV_ERR_ARG, "with diversity, the rows of target %d are "
                                           "computed together (row %d is missing)",
                               targets[r], r);
    }
    return MV_OK;
}

/* The rows computed here and their targets: rows, or all when rows is NULL (then n is the
 * whole batch). */
static mv_status ascent_rows(ascent *a, const int *targets, const int *rows, int n)
{
    a->own_rows = malloc(sizeof *a->own_rows * (size_t)n);
    a->own_targets = malloc(sizeof *a->own_targets * (size_t)n);
    if (!a->own_rows || !a->own_targets)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate visualization buffers for %d images", n);
    for (int j = 0; j < n; j++) {
        a->own_rows[j] = rows ? rows[j] : j;
        a->own_targets[j] = targets[a->own_rows[j]];
    }
    a->rows = a->own_rows;
    a->targets = a->own_targets;
    return MV_OK;
}

/* The diversity term's buffers, for a->n rows. */
static mv_status diversity_buffers(ascent *a)
{
    const mv_arch *arch = &a->model->net->arch;
    const int w = arch->widths[arch->n_layers - 1];
    const size_t n = (size_t)a->n, K = (size_t)a->model->n_classes;
    a->unit_features = malloc(sizeof *a->unit_features * n * w);
    a->class_sums = malloc(sizeof *a->class_sums * K * w);
    a->feature_norms = malloc(sizeof *a->feature_norms * n);
    a->class_rows = malloc(sizeof *a->class_rows * K);
    a->diversity_grad = malloc(sizeof *a->diversity_grad * a->D * n);
    if (!a->unit_features || !a->class_sums || !a->feature_norms || !a->class_rows ||
        !a->diversity_grad)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the diversity term for %d images", a->n);
    return MV_OK;
}

static mv_status ascent_init(ascent *a, const mv_model *model, const mv_viz_config *cfg,
                             const int *targets, int n_all, const int *rows, int n,
                             float *images)
{
    *a = (ascent){.model = model, .cfg = cfg, .all_targets = targets, .n_all = n_all, .n = n,
                  .W = model->width, .H = model->height, .C = model->channels, .images = images};
    a->P = (size_t)a->W * a->H;
    a->D = a->P * (size_t)a->C;
    const int data_start = cfg->init == MV_INIT_CLASS_MEAN || cfg->init == MV_INIT_CLASS_SAMPLE ||
                           cfg->init == MV_INIT_CLASS_MIXTURE || cfg->init == MV_INIT_IMAGE;
    a->decay_to_mean = cfg->decay_to == MV_DECAY_TO_MEAN ||
                       (cfg->decay_to == MV_DECAY_TO_PRIOR && !data_start);
    mv_status st = check_config(model, cfg);
    if (st || (st = check_targets(model, cfg, targets, n_all)) ||
        (rows && (st = check_rows(cfg, targets, n_all, rows, n))) ||
        (st = ascent_rows(a, targets, rows, n)) ||
        (st = mv_workspace_create(&a->ws, &model->net->arch, n)))
        return st;
    const size_t total = a->D * (size_t)n, side = (size_t)(a->W > a->H ? a->W : a->H);
    const int moments = cfg->optimizer != MV_PIXOPT_PLAIN, second = cfg->optimizer == MV_PIXOPT_ADAM;
    a->start = malloc(sizeof *a->start * total);
    a->shifted = malloc(sizeof *a->shifted * total);
    a->grad = malloc(sizeof *a->grad * total);
    a->scratch = malloc(sizeof *a->scratch * 3 * total);
    a->m = moments ? calloc(total, sizeof *a->m) : NULL;
    a->v = second ? calloc(total, sizeof *a->v) : NULL;
    a->measure = malloc(sizeof *a->measure * 2 * a->P * (size_t)n);
    a->x = malloc(sizeof *a->x * total);
    const int smoothing = cfg->smooth_samples > 0;
    a->noisy = smoothing ? malloc(sizeof *a->noisy * total) : NULL;
    a->sample_grad = smoothing ? malloc(sizeof *a->sample_grad * total) : NULL;
    a->gx = malloc(sizeof *a->gx * total);
    a->dx = malloc(sizeof *a->dx * (size_t)n);
    if (cfg->diversity > 0 && (st = diversity_buffers(a)))
        return st;
    if ((cfg->on_scores && !(a->scores = calloc((size_t)n, sizeof *a->scores))) ||
        (cfg->stop_prob > 0 && !(a->stopped = calloc((size_t)n, 1))))
        return mv_fail(MV_ERR_NOMEM, "cannot allocate visualization buffers for %d images", n);
    a->dy = malloc(sizeof *a->dy * (size_t)n);
    a->oct = (octave_ops){.w = a->W, .h = a->H,
                          .down_x = malloc(sizeof(float) * (size_t)a->W * a->W),
                          .down_y = malloc(sizeof(float) * (size_t)a->H * a->H),
                          .up_x = malloc(sizeof(float) * (size_t)a->W * a->W),
                          .up_y = malloc(sizeof(float) * (size_t)a->H * a->H),
                          .basis = malloc(sizeof(float) * side),
                          .column = malloc(sizeof(float) * side)};
    if (!a->start || !a->shifted || !a->grad || !a->scratch || (moments && !a->m) ||
        (second && !a->v) || !a->measure || !a->x || !a->gx ||
        (smoothing && (!a->noisy || !a->sample_grad)) || !a->dx || !a->dy ||
        !a->oct.down_x || !a->oct.down_y || !a->oct.up_x || !a->oct.up_y || !a->oct.basis ||
        !a->oct.column)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate visualization buffers for %d images", n);
    return MV_OK;
}

/* The steps of one octave: [first, last). */
static mv_status climb(ascent *a, int first, int last, mv_rng *rng, mv_viz_result *results)
{
    const mv_viz_config *c = a->cfg;
    for (int step = first; step < last; step++) {
        if (a->stopped)
            mark_stopped(a);
        mv_status st = gradients(a, rng);
        if (st)
            return st;
        note_top(a, step, results);
        /* Rows are independent: one thread per image, each with its own scratch rows, so the
         * result does not depend on the thread count. */
        MV_FOR_EACH(int, r, a->n, a->n > 1 && a->D * (size_t)a->n > MV_PARALLEL_UPDATE_VALUES,
                    { update_row(a, r, step); });
        if (c->on_frame && c->frame_every > 0 && (step + 1) % c->frame_every == 0)
            c->on_frame(step + 1, a->images, a->n, c->user);
        if (c->on_scores)
            c->on_scores(step + 1, a->scores, a->n, c->user);
        if (c->on_step)
            c->on_step(step + 1, c->steps, c->user);
    }
    return MV_OK;
}

mv_status mv_visualize(const mv_model *model, const mv_viz_config *cfg, const int *targets,
                       int n, const float *init_image, float *images, mv_viz_result *results)
{
    return mv_visualize_rows(model, cfg, targets, n, NULL, n, init_image, images, results);
}

mv_status mv_visualize_rows(const mv_model *model, const mv_viz_config *cfg,
                            const int *targets, int n_all, const int *rows, int n,
                            const float *init_image, float *images, mv_viz_result *results)
{
    if (n_all < 1 || n < 1 || n > n_all)
        return mv_fail(MV_ERR_ARG, "nothing to visualize (%d rows of %d targets)", n, n_all);
    if (cfg->init == MV_INIT_IMAGE && !init_image)
        return mv_fail(MV_ERR_ARG, "an image start needs the image");
    ascent a;
    mv_status st = ascent_init(&a, model, cfg, targets, n_all, rows, n, images);
    if (st == MV_OK)
        st = init_images(&a, init_image);
    mv_rng rng;
    mv_rng_seed(&rng, cfg->seed);
    for (int r = 0; r < n; r++) results[r] = (mv_viz_result){.first_top_step = -1};
    if (st == MV_OK && cfg->on_frame && cfg->frame_every > 0)
        cfg->on_frame(0, images, n, cfg->user);
    /* Octave o of O runs steps [o S / O, (o + 1) S / O) at 1 / scale^(O - 1 - o) resolution. */
    for (int o = 0; st == MV_OK && o < cfg->octaves; o++) {
        const double factor = pow(cfg->octave_scale, cfg->octaves - 1 - o);
        st = octave_build(&a.oct, a.W, a.H, factor);
        if (st == MV_OK)
            st = climb(&a, (int)((long)cfg->steps * o / cfg->octaves),
                       (int)((long)cfg->steps * (o + 1) / cfg->octaves), &rng, results);
    }
    if (st == MV_OK)
        final_scores(&a, results);
    ascent_free(&a);
    return st;
}
