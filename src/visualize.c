/* visualize.c: class visualization by gradient ascent on the pixels (Simonyan et al. 2013),
 * with the regularizers that make the result look like something: jitter, gradient
 * smoothing, Gaussian blur of the image, decay towards the start, and clamping.
 *
 * Every target is one row of a single batch, so one batched forward/backward pass per step
 * serves all classes at once. The image lives in pixel space [0, 1]; the network sees
 * (pixel - mean) / std, so a gradient in network space is divided by std to become a pixel
 * gradient. All randomness comes from the seed, and nothing depends on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void mv_viz_defaults(mv_viz_config *c)
{
    *c = (mv_viz_config){.steps = 300, .lr = 0.02, .normalize = 1, .objective = MV_OBJ_LOGIT,
                         .l2 = 0, .decay = 0.002, .blur_every = 4, .blur_sigma = 0.5,
                         .grad_blur = 1.0, .jitter = 1, .clamp = 1, .init = MV_INIT_GRAY,
                         .seed = 1};
}

/* ------------------------------------------------------------------ blur */

/* Index of position i in 0..n-1 after half-sample symmetric reflection: the extension
 * ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..., which makes the blur a doubly stochastic operator,
 * so it preserves both constant images and the image's mean. */
static int reflect(int i, int n)
{
    const int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

/* One 1-D pass along rows (stride_x = C) or columns, from src to dst, [H][W][C] each. */
static void blur_pass(const float *src, float *dst, int W, int H, int C, const float *kernel,
                      int radius, int along_x)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float sum = 0;
                for (int k = -radius; k <= radius; k++) {
                    const int sx = along_x ? reflect(x + k, W) : x;
                    const int sy = along_x ? y : reflect(y + k, H);
                    sum += kernel[k + radius] * src[((size_t)sy * W + sx) * C + c];
                }
                dst[((size_t)y * W + x) * C + c] = sum;
            }
}

/* Normalised Gaussian taps; returns the radius (at most 3 sigma, and below the image). */
static int gaussian_kernel(double sigma, int W, int H, float *kernel, int max_radius)
{
    int radius = (int)ceil(3 * sigma);
    const int limit = (W < H ? W : H) - 1;
    radius = radius > limit ? limit : radius;
    radius = radius > max_radius ? max_radius : radius;
    double sum = 0;
    for (int k = -radius; k <= radius; k++) sum += exp(-0.5 * k * k / (sigma * sigma));
    for (int k = -radius; k <= radius; k++)
        kernel[k + radius] = (float)(exp(-0.5 * k * k / (sigma * sigma)) / sum);
    return radius;
}

void mv_gaussian_blur(float *image, float *scratch, int W, int H, int C, double sigma)
{
    if (!(sigma > 0) || W < 2 || H < 2)
        return;
    enum { MAX_RADIUS = 32 };
    float kernel[2 * MAX_RADIUS + 1];
    const int radius = gaussian_kernel(sigma, W, H, kernel, MAX_RADIUS);
    blur_pass(image, scratch, W, H, C, kernel, radius, 1);
    blur_pass(scratch, image, W, H, C, kernel, radius, 0);
}

/* ------------------------------------------------------------------ ascent */

typedef struct {
    const mv_model *model;
    const mv_viz_config *cfg;
    int n, W, H, C;
    size_t D;
    mv_workspace *ws;
    float *images;   /* [n][D] the images being optimised (caller's buffer) */
    float *start;    /* [n][D] where they started */
    float *shifted;  /* [n][D] jittered copies fed to the network */
    float *grad;     /* [n][D] pixel gradients */
    float *scratch;  /* [n][D] blur scratch, one image per row */
    mv_real *x;      /* [n][D] network inputs */
    mv_real *gx;     /* [n][D] network-input gradients */
    mv_real *values; /* [n] objective per row */
    int *dx, *dy;    /* [n] this step's jitter */
} ascent;

static void ascent_free(ascent *a)
{
    mv_workspace_free(a->ws);
    free(a->start);
    free(a->shifted);
    free(a->grad);
    free(a->scratch);
    free(a->x);
    free(a->gx);
    free(a->values);
    free(a->dx);
    free(a->dy);
}

/* Copies src into dst rolled by (dx, dy), wrapping around: jitter moves content, it does not
 * invent any. [H][W][C] each. */
static void roll(const float *src, float *dst, int W, int H, int C, int dx, int dy)
{
    for (int y = 0; y < H; y++) {
        const int sy = ((y - dy) % H + H) % H;
        for (int x = 0; x < W; x++) {
            const int sx = ((x - dx) % W + W) % W;
            memcpy(dst + ((size_t)y * W + x) * C, src + ((size_t)sy * W + sx) * C,
                   sizeof *dst * (size_t)C);
        }
    }
}

static void init_images(ascent *a, const float *init_image)
{
    mv_rng rng;
    mv_rng_seed(&rng, a->cfg->seed ^ 0x1417u);
    for (int r = 0; r < a->n; r++)
        for (size_t i = 0; i < a->D; i++) {
            float v = 0.5f;
            if (a->cfg->init == MV_INIT_NOISE)
                v = (float)(0.5 + 0.1 * mv_rng_normal(&rng));
            else if (a->cfg->init == MV_INIT_IMAGE)
                v = init_image[i];
            a->images[(size_t)r * a->D + i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    memcpy(a->start, a->images, sizeof *a->start * a->D * (size_t)a->n);
}

/* Pixel gradients of every row's objective at the jittered images, with the L2 penalty. */
static mv_status gradients(ascent *a, const int *targets, mv_rng *rng)
{
    const mv_viz_config *c = a->cfg;
    const size_t D = a->D;
    for (int r = 0; r < a->n; r++) {
        a->dx[r] = c->jitter ? (int)mv_rng_below(rng, 2 * (uint32_t)c->jitter + 1) - c->jitter : 0;
        a->dy[r] = c->jitter ? (int)mv_rng_below(rng, 2 * (uint32_t)c->jitter + 1) - c->jitter : 0;
        roll(a->images + r * D, a->shifted + r * D, a->W, a->H, a->C, a->dx[r], a->dy[r]);
    }
    mv_model_prepare_input(a->model, a->shifted, a->x, a->n);
    mv_status st = mv_input_grad(a->model->net, a->ws, a->x, a->n,
                                 (mv_target){c->objective, 0}, targets, a->gx, a->values);
    if (st)
        return st;
    /* -l2 |x|^2 in network space; then d/dpixel = d/dx / std; then undo the jitter. */
    for (int r = 0; r < a->n; r++) {
        float *g = a->scratch + r * D;
        for (size_t i = 0; i < D; i++) {
            const size_t k = r * D + i;
            g[i] = (float)((a->gx[k] - 2 * c->l2 * a->x[k]) / a->model->std[i % (size_t)a->C]);
        }
        roll(g, a->grad + r * D, a->W, a->H, a->C, -a->dx[r], -a->dy[r]);
    }
    return MV_OK;
}

/* One update of row r: smooth the gradient, step, decay, blur, clamp. */
static void update_row(ascent *a, int r, int step)
{
    const mv_viz_config *c = a->cfg;
    const size_t D = a->D;
    float *p = a->images + r * D, *g = a->grad + r * D, *s = a->scratch + r * D;
    const float *p0 = a->start + r * D;
    mv_gaussian_blur(g, s, a->W, a->H, a->C, c->grad_blur);
    double scale = c->lr;
    if (c->normalize) { /* DeepDream-style: a step of lr per mean absolute gradient */
        double mean = 0;
        for (size_t i = 0; i < D; i++) mean += fabs(g[i]);
        mean /= (double)D;
        scale = mean > 0 ? c->lr / mean : 0;
    }
    for (size_t i = 0; i < D; i++)
        p[i] += (float)(scale * g[i] - c->decay * (p[i] - p0[i]));
    if (c->blur_every > 0 && (step + 1) % c->blur_every == 0)
        mv_gaussian_blur(p, s, a->W, a->H, a->C, c->blur_sigma);
    if (c->clamp)
        for (size_t i = 0; i < D; i++) p[i] = p[i] < 0 ? 0 : p[i] > 1 ? 1 : p[i];
}

/* The step at which row r's target first became the top class (during the ascent). */
static void note_top(ascent *a, const int *targets, int step, mv_viz_result *results)
{
    const int L = a->model->net->arch.n_layers, K = a->model->n_classes;
    for (int r = 0; r < a->n; r++) {
        const mv_real *z = a->ws->z[L - 1] + (size_t)r * K;
        int top = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[top]) top = k;
        if (top == targets[r] && results[r].first_top_step < 0)
            results[r].first_top_step = step;
    }
}

/* Logit, probability and margin of every row's target at the final, unjittered image. */
static void final_scores(ascent *a, const int *targets, mv_viz_result *results)
{
    const int L = a->model->net->arch.n_layers, K = a->model->n_classes;
    mv_model_prepare_input(a->model, a->images, a->x, a->n);
    mv_forward(a->model->net, a->ws, a->x, a->n);
    for (int r = 0; r < a->n; r++) {
        const mv_real *z = a->ws->z[L - 1] + (size_t)r * K, *p = a->ws->a[L - 1] + (size_t)r * K;
        const int t = targets[r];
        double runner_up = -INFINITY;
        for (int k = 0; k < K; k++)
            if (k != t && z[k] > runner_up) runner_up = z[k];
        results[r].logit = z[t];
        results[r].prob = p[t];
        results[r].margin = z[t] - runner_up;
        results[r].score = a->cfg->objective == MV_OBJ_LOGIT ? z[t]
                           : a->cfg->objective == MV_OBJ_OUTPUT ? p[t] : log(p[t]);
    }
}

static mv_status ascent_init(ascent *a, const mv_model *model, const mv_viz_config *cfg, int n,
                             float *images)
{
    memset(a, 0, sizeof *a);
    *a = (ascent){.model = model, .cfg = cfg, .n = n, .W = model->width, .H = model->height,
                  .C = model->channels, .images = images};
    a->D = (size_t)a->W * a->H * a->C;
    if (cfg->steps < 0 || !(cfg->lr >= 0) || cfg->jitter < 0 || !(cfg->decay >= 0) ||
        !(cfg->decay < 1) || !(cfg->l2 >= 0) || !(cfg->blur_sigma >= 0) || !(cfg->grad_blur >= 0))
        return mv_fail(MV_ERR_ARG, "visualization settings out of range (steps, lr, jitter, "
                                   "decay in [0, 1), l2 and sigmas >= 0)");
    mv_status st = mv_workspace_create(&a->ws, &model->net->arch, n);
    if (st)
        return st;
    const size_t total = a->D * (size_t)n;
    a->start = malloc(sizeof *a->start * total);
    a->shifted = malloc(sizeof *a->shifted * total);
    a->grad = malloc(sizeof *a->grad * total);
    a->scratch = malloc(sizeof *a->scratch * total);
    a->x = malloc(sizeof *a->x * total);
    a->gx = malloc(sizeof *a->gx * total);
    a->values = malloc(sizeof *a->values * (size_t)n);
    a->dx = malloc(sizeof *a->dx * (size_t)n);
    a->dy = malloc(sizeof *a->dy * (size_t)n);
    if (!a->start || !a->shifted || !a->grad || !a->scratch || !a->x || !a->gx || !a->values ||
        !a->dx || !a->dy)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate visualization buffers for %d images", n);
    return MV_OK;
}

mv_status mv_visualize(const mv_model *model, const mv_viz_config *cfg, const int *targets,
                       int n, const float *init_image, float *images, mv_viz_result *results)
{
    if (n < 1)
        return mv_fail(MV_ERR_ARG, "nothing to visualize (%d targets)", n);
    if (cfg->init == MV_INIT_IMAGE && !init_image)
        return mv_fail(MV_ERR_ARG, "an image start needs the image");
    ascent a;
    mv_status st = ascent_init(&a, model, cfg, n, images);
    mv_rng rng;
    mv_rng_seed(&rng, cfg->seed);
    if (st == MV_OK) {
        init_images(&a, init_image);
        for (int r = 0; r < n; r++) results[r] = (mv_viz_result){.first_top_step = -1};
    }
    for (int step = 0; st == MV_OK && step < cfg->steps; step++) {
        st = gradients(&a, targets, &rng);
        if (st)
            break;
        note_top(&a, targets, step, results);
        /* Rows are independent: one thread per image, each with its own scratch row. */
#pragma omp parallel for schedule(static) if (n > 1 && a.D * (size_t)n > 4096)
        for (int r = 0; r < n; r++) update_row(&a, r, step);
    }
    if (st == MV_OK)
        final_scores(&a, targets, results);
    ascent_free(&a);
    return st;
}
