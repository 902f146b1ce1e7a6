/* test_visualize.c: the blur's invariants, and gradient ascent on the pixels: the objective
 * rises, clamping holds, and the same seed gives the same bytes on 1 and 2 threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mlpviz.h"

static void test_blur_keeps_constants_and_mean(void **state)
{
    (void)state;
    enum { W = 13, H = 9, C = 3 };
    float img[W * H * C], scratch[W * H * C];
    for (int i = 0; i < W * H * C; i++) img[i] = 0.37f;
    mv_gaussian_blur(img, scratch, W, H, C, 1.5);
    for (int i = 0; i < W * H * C; i++) assert_true(fabsf(img[i] - 0.37f) < 1e-6f);
    mv_rng rng;
    mv_rng_seed(&rng, 3);
    double before[C] = {0}, after[C] = {0};
    for (int i = 0; i < W * H * C; i++) {
        img[i] = (float)mv_rng_uniform(&rng);
        before[i % C] += img[i];
    }
    float original[W * H * C];
    memcpy(original, img, sizeof img);
    mv_gaussian_blur(img, scratch, W, H, C, 2.0);
    double change = 0;
    for (int i = 0; i < W * H * C; i++) {
        after[i % C] += img[i];
        change += fabs(img[i] - original[i]);
    }
    for (int c = 0; c < C; c++) assert_true(fabs(before[c] - after[c]) < 1e-4 * before[c]);
    assert_true(change > 1); /* it did blur */
    /* a single bright pixel spreads symmetrically */
    memset(img, 0, sizeof img);
    img[(4 * W + 6) * C] = 1;
    mv_gaussian_blur(img, scratch, W, H, C, 1.0);
    assert_true(img[(4 * W + 5) * C] > 0.01f);
    assert_true(fabsf(img[(4 * W + 5) * C] - img[(4 * W + 7) * C]) < 1e-7f);
    assert_true(fabsf(img[(3 * W + 6) * C] - img[(5 * W + 6) * C]) < 1e-7f);
}

/* Half-sample symmetric reflection of i into 0..n-1 (the blur's border rule). */
static int reflect_index(int i, int n)
{
    const int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

/* The separable Gaussian blur of [H][W][C] written out in double, straight from its
 * definition: taps exp(-k^2 / 2 sigma^2) normalised, radius ceil(3 sigma) below the image. */
static void reference_blur(const float *in, double *out, int W, int H, int C, double sigma)
{
    int radius = (int)ceil(3 * sigma);
    if (radius > (W < H ? W : H) - 1)
        radius = (W < H ? W : H) - 1;
    double taps[65], sum = 0;
    for (int k = -radius; k <= radius; k++) sum += taps[k + radius] = exp(-0.5 * k * k / (sigma * sigma));
    for (int k = 0; k <= 2 * radius; k++) taps[k] /= sum;
    double *rows = malloc(sizeof *rows * (size_t)W * H * C);
    assert_non_null(rows);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                double v = 0;
                for (int k = -radius; k <= radius; k++)
                    v += taps[k + radius] * in[((size_t)y * W + reflect_index(x + k, W)) * C + c];
                rows[((size_t)y * W + x) * C + c] = v;
            }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                double v = 0;
                for (int k = -radius; k <= radius; k++)
                    v += taps[k + radius] * rows[((size_t)reflect_index(y + k, H) * W + x) * C + c];
                out[((size_t)y * W + x) * C + c] = v;
            }
    free(rows);
}

/* Small images (blurred through a padded copy on the stack) and large ones (tap by tap) both
 * match the definition, and a single bright pixel comes out where it should. */
static void test_blur_matches_its_definition(void **state)
{
    (void)state;
    static const int shapes[][4] = {/* W, H, C, sigma x 10 */
                                    {28, 28, 1, 10}, {28, 28, 1, 5}, {9, 7, 3, 15}, {3, 2, 1, 10},
                                    {120, 90, 1, 10}, {70, 64, 3, 20}, {5, 200, 1, 30}};
    mv_rng rng;
    mv_rng_seed(&rng, 11);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int W = shapes[s][0], H = shapes[s][1], C = shapes[s][2];
        const double sigma = shapes[s][3] / 10.0;
        const size_t n = (size_t)W * H * C;
        float *img = malloc(sizeof *img * n), *scratch = malloc(sizeof *scratch * n);
        double *want = malloc(sizeof *want * n);
        assert_true(img && scratch && want);
        for (size_t i = 0; i < n; i++) img[i] = (float)mv_rng_uniform(&rng);
        reference_blur(img, want, W, H, C, sigma);
        mv_gaussian_blur(img, scratch, W, H, C, sigma);
        for (size_t i = 0; i < n; i++)
            if (!(fabs(img[i] - want[i]) < 1e-5))
                fail_msg("%dx%dx%d sigma %.1f: value %zu is %.7f, the definition gives %.7f", W,
                         H, C, sigma, i, img[i], want[i]);
        free(img), free(scratch), free(want);
    }
}

/* A random 1-channel side x side model with 4 classes. */
static mv_model *random_model_of(int side)
{
    mv_arch arch = {0};
    char widths[32];
    snprintf(widths, sizeof widths, "%d,32,4", side * side);
    assert_int_equal(mv_arch_parse_widths(&arch, widths), MV_OK);
    arch.act[0] = (mv_activation){MV_ACT_TANH, 0};
    mv_model *m;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    m->channels = 1, m->height = side, m->width = side;
    m->mean[0] = 0.3f, m->std[0] = 0.4f;
    mv_net_init(m->net, 7);
    return m;
}

static mv_model *random_model(void) { return random_model_of(10); }

static void run(const mv_model *m, const mv_viz_config *c, float *images, mv_viz_result *res)
{
    const int targets[4] = {0, 1, 2, 3};
    assert_int_equal(mv_visualize(m, c, targets, 4, NULL, images, res), MV_OK);
}

static void test_ascent_raises_the_objective(void **state)
{
    (void)state;
    mv_model *m = random_model();
    mv_viz_config c;
    mv_viz_defaults(&c);
    float images[4 * 100];
    mv_viz_result start[4], end[4];
    c.steps = 0; /* the scores of the starting gray image */
    run(m, &c, images, start);
    c.steps = 60;
    run(m, &c, images, end);
    for (int k = 0; k < 4; k++) {
        if (!(end[k].logit > start[k].logit + 0.5))
            fail_msg("class %d: logit %g -> %g", k, start[k].logit, end[k].logit);
        assert_true(end[k].first_top_step >= 0);
        assert_true(end[k].margin > 0);
    }
    for (int i = 0; i < 4 * 100; i++) assert_true(images[i] >= 0 && images[i] <= 1);
    mv_model_free(m);
}

/* 8 images of 28x28: large enough for the per-image parallel loop to run. */
static void test_same_seed_same_bytes_any_threads(void **state)
{
    (void)state;
    mv_model *m = random_model_of(28);
    mv_viz_config c;
    mv_viz_defaults(&c);
    c.steps = 30;
    c.init = MV_INIT_NOISE;
    enum { N = 8, D = 784 };
    const int targets[N] = {0, 1, 2, 3, 0, 1, 2, 3};
    float *a = malloc(sizeof *a * N * D), *b = malloc(sizeof *b * N * D), *d = malloc(sizeof *d * N * D);
    mv_viz_result ra[N], rb[N], rd[N];
    assert_true(a && b && d);
    omp_set_num_threads(1);
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, ra), MV_OK);
    omp_set_num_threads(2);
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, b, rb), MV_OK);
    assert_memory_equal(a, b, sizeof *a * N * D);
    c.seed = 2;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, d, rd), MV_OK);
    assert_memory_not_equal(a, d, sizeof *a * N * D);
    omp_set_num_threads(omp_get_num_procs());
    free(a);
    free(b);
    free(d);
    mv_model_free(m);
}

static void test_rejects_bad_settings(void **state)
{
    (void)state;
    mv_model *m = random_model();
    mv_viz_config c;
    mv_viz_defaults(&c);
    float images[4 * 100];
    mv_viz_result res[4];
    const int targets[4] = {0, 1, 2, 3};
    c.decay = 1.5;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    mv_viz_defaults(&c);
    c.init = MV_INIT_IMAGE;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    mv_viz_defaults(&c);
    const int bad[1] = {9};
    assert_int_equal(mv_visualize(m, &c, bad, 1, NULL, images, res), MV_ERR_ARG);
    mv_model_free(m);
}

/* Every objective rises under the default regularizers. */
static void test_every_objective_rises(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float images[4 * 100];
    mv_viz_result start[4], end[4];
    static const mv_objective objectives[] = {MV_OBJ_LOGIT, MV_OBJ_OUTPUT, MV_OBJ_LOGPROB,
                                              MV_OBJ_MARGIN, MV_OBJ_HIDDEN_PRE};
    for (int o = 0; o < (int)(sizeof objectives / sizeof *objectives); o++) {
        mv_viz_config c;
        mv_viz_defaults(&c);
        c.objective = objectives[o];
        c.unit_layer = 0; /* units 0..3 of the hidden layer */
        c.steps = 0;
        run(m, &c, images, start);
        c.steps = 60;
        run(m, &c, images, end);
        for (int k = 0; k < 4; k++)
            if (!(end[k].score > start[k].score + 1e-3))
                fail_msg("objective %d, target %d: %g -> %g", o, k, start[k].score, end[k].score);
    }
    mv_model_free(m);
}

/* Every step rule and pixel optimizer climbs. */
static void test_every_step_rule_and_optimizer_climbs(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float images[4 * 100];
    mv_viz_result start[4], end[4];
    for (int s = 0; s < MV_STEP_COUNT; s++)
        for (int o = 0; o < MV_PIXOPT_COUNT; o++) {
            mv_viz_config c;
            mv_viz_preset(&c, "plain");
            c.step = (mv_viz_step)s;
            c.optimizer = (mv_viz_optimizer)o;
            c.lr = s == MV_STEP_FIXED ? 0.002 : s == MV_STEP_PROGRESS ? 1.0 : s == MV_STEP_L2 ? 0.2 : 0.01;
            c.progress = 0.05;
            c.steps = 0;
            run(m, &c, images, start);
            c.steps = 40;
            run(m, &c, images, end);
            for (int k = 0; k < 4; k++)
                if (!(end[k].logit > start[k].logit + 0.1))
                    fail_msg("step %d optimizer %d class %d: %g -> %g", s, o, k, start[k].logit,
                             end[k].logit);
        }
    mv_model_free(m);
}

typedef struct {
    int count, steps[64];
    float first[100], at[64][100]; /* image 0 at each frame */
} frames;

static void keep_frame(int step, const float *images, int n, void *user)
{
    frames *f = user;
    (void)n;
    if (f->count < 64) {
        f->steps[f->count] = step;
        memcpy(f->at[f->count++], images, sizeof f->first);
    }
}

static void test_frames_come_every_n_steps(void **state)
{
    (void)state;
    mv_model *m = random_model();
    mv_viz_config c;
    mv_viz_defaults(&c);
    frames f = {0};
    c.steps = 25;
    c.frame_every = 10;
    c.on_frame = keep_frame;
    c.user = &f;
    float images[4 * 100];
    mv_viz_result res[4];
    run(m, &c, images, res);
    assert_int_equal(f.count, 3); /* 0, 10, 20 */
    assert_int_equal(f.steps[0], 0);
    assert_int_equal(f.steps[2], 20);
    for (int i = 0; i < 100; i++) assert_true(f.at[0][i] == 0.5f); /* the gray start */
    assert_memory_not_equal(f.at[1], f.at[2], sizeof f.at[1]);
    mv_model_free(m);
}

/* Sum of |differences| between neighbours: how much fine detail an image holds. */
/* The objective of 4 rows at every step, as on_scores reports it. */
typedef struct {
    double at[8][4];
    int steps[8], count;
} score_trace;

static void keep_scores(int step, const double *scores, int n, void *user)
{
    score_trace *t = user;
    assert_int_equal(n, 4);
    if (t->count < 8) {
        memcpy(t->at[t->count], scores, sizeof t->at[0]);
        t->steps[t->count++] = step;
    }
}

/* on_scores reports steps 1..N, each the objective at the image the step started from: with
 * no jitter, smoothing or noise, step k's score is the final score of a run of k - 1 steps.
 * With smoothing it is the mean over the noisy copies: at the common gray start, with tiny
 * noise, the plain score; with more noise, another one. */
static void test_scores_follow_the_ascent(void **state)
{
    (void)state;
    mv_model *m = random_model();
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.objective = MV_OBJ_LOGPROB;
    score_trace t = {0};
    c.steps = 5;
    c.on_scores = keep_scores;
    c.user = &t;
    float images[4 * 100];
    mv_viz_result res[4];
    run(m, &c, images, res);
    assert_int_equal(t.count, 5);
    assert_int_equal(t.steps[0], 1);
    assert_int_equal(t.steps[4], 5);
    for (int steps = 1; steps <= 5; steps++) {
        mv_viz_config shorter = c;
        shorter.steps = steps - 1;
        shorter.on_scores = NULL;
        run(m, &shorter, images, res);
        for (int r = 0; r < 4; r++) assert_float_equal(t.at[steps - 1][r], res[r].score, 1e-5);
    }
    score_trace faint = {0}, smoothed = {0};
    c.smooth_samples = 4;
    c.smooth_sigma = 1e-5;
    c.user = &faint;
    run(m, &c, images, res);
    assert_int_equal(faint.count, 5);
    for (int r = 0; r < 4; r++) assert_float_equal(faint.at[0][r], t.at[0][r], 1e-3);
    c.smooth_sigma = 0.3;
    c.user = &smoothed;
    run(m, &c, images, res);
    assert_true(fabs(smoothed.at[0][0] - t.at[0][0]) > 1e-6);
    assert_true(isfinite(smoothed.at[4][0]));
    mv_model_free(m);
}

static double total_variation(const float *p, int side)
{
    double tv = 0;
    for (int y = 0; y < side; y++)
        for (int x = 0; x + 1 < side; x++)
            tv += fabs(p[y * side + x + 1] - p[y * side + x]) + fabs(p[x * side + y] - p[(x + 1) * side + y]);
    return tv;
}

/* The first octave works at a coarse resolution, so its image holds less fine detail than
 * the same number of full-resolution steps. */
static void test_octaves_start_coarse(void **state)
{
    (void)state;
    mv_model *m = random_model_of(28);
    float *images = malloc(sizeof *images * 4 * 784);
    mv_viz_result res[4];
    frames *coarse = calloc(1, sizeof *coarse), *fine = calloc(1, sizeof *fine);
    assert_true(images && coarse && fine);
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.steps = 60;
    c.frame_every = 20;
    c.on_frame = keep_frame;
    c.user = fine;
    run(m, &c, images, res);
    c.octaves = 3;
    c.octave_scale = 2;
    c.user = coarse;
    run(m, &c, images, res);
    assert_int_equal(coarse->count, 4);
    const double tv_coarse = total_variation(coarse->at[1], 28);
    const double tv_fine = total_variation(fine->at[1], 28);
    if (!(tv_coarse < 0.6 * tv_fine))
        fail_msg("after the first octave: variation %g, full resolution %g", tv_coarse, tv_fine);
    free(images);
    free(coarse);
    free(fine);
    mv_model_free(m);
}

/* Yosinski's clipping leaves at least the given share of pixels at the mean pixel. */
static void test_percentile_clipping(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float images[4 * 100];
    mv_viz_result res[4];
    for (int which = 0; which < 2; which++) {
        mv_viz_config c;
        mv_viz_defaults(&c);
        c.init = MV_INIT_NOISE;
        c.steps = 20;
        const double pct = which ? 90 : 50;
        if (which)
            c.contrib_pct = pct;
        else
            c.norm_pct = pct;
        run(m, &c, images, res);
        for (int r = 0; r < 4; r++) {
            int at_mean = 0;
            for (int i = 0; i < 100; i++) at_mean += images[r * 100 + i] == m->mean[0];
            if (at_mean < pct - 2)
                fail_msg("%s clipping at %g%%: %d of 100 pixels at the mean", which ? "contribution" : "norm", pct, at_mean);
        }
    }
    mv_model_free(m);
}

static void test_presets(void **state)
{
    (void)state;
    mv_viz_config c;
    for (int k = 0; mv_viz_preset_names[k]; k++)
        assert_int_equal(mv_viz_preset(&c, mv_viz_preset_names[k]), MV_OK);
    assert_int_equal(mv_viz_preset(&c, "yosinski3"), MV_OK);
    assert_int_equal(c.steps, 1000);
    assert_true(c.decay == 0.0001 && c.blur_every == 4 && c.blur_sigma == 1.0);
    assert_true(fabs(c.lr - 100.0 / (255.0 * 255.0)) < 1e-12 && c.step == MV_STEP_FIXED);
    assert_true(c.decay_to == MV_DECAY_TO_MEAN && c.init == MV_INIT_MEAN && c.jitter == 0 && c.grad_blur == 0);
    assert_int_equal(mv_viz_preset(&c, "yosinski4"), MV_OK);
    assert_true(c.contrib_pct == 90 && c.norm_pct == 0 && c.step == MV_STEP_PROGRESS);
    assert_int_equal(mv_viz_preset(&c, "yosinski1"), MV_OK);
    assert_true(c.norm_pct == 50 && c.steps == 500);
    assert_int_equal(mv_viz_preset(&c, "default"), MV_OK); /* docs/QUALITY.md's settings */
    assert_true(c.init == MV_INIT_GRAY && c.init_noise == 0.2 && c.step == MV_STEP_L2 &&
                c.lr == 0.1 && c.steps == 400 && c.smooth_samples == 8 && c.smooth_sigma == 1 &&
                c.decay == 0.005 && c.decay_to == MV_DECAY_TO_PRIOR && c.grad_blur == 0 &&
                c.blur_every == 0 && c.objective == MV_OBJ_LOGPROB && c.diversity == 0 &&
                c.stop_prob == 0);
    assert_int_equal(mv_viz_preset(&c, "diverse"), MV_OK);
    assert_true(c.init == MV_INIT_GRAY && c.steps == 400 && c.diversity == 1.25 &&
                c.smooth_samples == 8);
    assert_int_equal(mv_viz_preset(&c, "prior"), MV_OK);
    assert_true(c.init == MV_INIT_CLASS_MIXTURE && c.lr == 0.05 && c.steps == 100 &&
                c.decay == 0 && c.jitter == 0 && c.smooth_samples == 8 && c.stop_prob == 0.99 &&
                c.diversity == 0);
    assert_int_equal(mv_viz_preset(&c, "yosinski5"), MV_ERR_ARG);
}

/* Decay alone (no steps) pulls a noisy start to the mean pixel. */
static void test_decay_pulls_to_the_reference(void **state)
{
    (void)state;
    mv_model *m = random_model();
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.step = MV_STEP_FIXED;
    c.lr = 0;
    c.init = MV_INIT_NOISE;
    c.decay = 0.5;
    c.decay_to = MV_DECAY_TO_MEAN;
    c.steps = 40;
    float images[4 * 100];
    mv_viz_result res[4];
    run(m, &c, images, res);
    for (int i = 0; i < 400; i++) assert_true(fabsf(images[i] - m->mean[0]) < 1e-5f);
    /* the prior of a data-free start is the mean pixel; of a given image, that image */
    c.decay_to = MV_DECAY_TO_PRIOR;
    run(m, &c, images, res);
    for (int i = 0; i < 400; i++) assert_true(fabsf(images[i] - m->mean[0]) < 1e-5f);
    float given[100];
    for (int i = 0; i < 100; i++) given[i] = (float)(i % 7) / 7;
    c.init = MV_INIT_IMAGE;
    const int targets[4] = {0, 1, 2, 3};
    assert_int_equal(mv_visualize(m, &c, targets, 4, given, images, res), MV_OK);
    for (int i = 0; i < 400; i++) assert_true(fabsf(images[i] - given[i % 100]) < 1e-6f);
    c.decay_to = (mv_viz_decay_to)9;
    assert_int_equal(mv_visualize(m, &c, targets, 4, given, images, res), MV_ERR_ARG);
    mv_model_free(m);
}

/* Class starts: the mean image exactly; refused without statistics or for units. */
static void test_class_starts(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float images[4 * 100];
    mv_viz_result res[4];
    const int targets[4] = {0, 1, 2, 3};
    mv_viz_config c;
    mv_viz_defaults(&c);
    c.init = MV_INIT_CLASS_MEAN;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    mv_dataset d = {.count = 40, .channels = 1, .height = 10, .width = 10, .n_classes = 4};
    float pixels[40 * 100];
    int labels[40];
    mv_rng rng;
    mv_rng_seed(&rng, 5);
    for (int i = 0; i < 40; i++) {
        labels[i] = i % 4;
        for (int j = 0; j < 100; j++)
            pixels[i * 100 + j] = (float)(0.2 * labels[i] * (j % 10 < 5) + 0.1 * mv_rng_uniform(&rng));
    }
    d.pixels = pixels;
    d.labels = labels;
    assert_int_equal(mv_model_fit_class_stats(m, &d, 3, 1), MV_OK);
    c.steps = 0;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_OK);
    const float *means = mv_model_extra_get(m, "class.mean", NULL);
    assert_non_null(means);
    assert_memory_equal(images, means, sizeof images);
    c.init = MV_INIT_CLASS_SAMPLE;
    c.steps = 30;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_OK);
    /* mixture starts: refused before a mixture is fitted; at temperature 0 and 0 steps
     * each image is one of its class's component means */
    c.init = MV_INIT_CLASS_MIXTURE;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    assert_int_equal(mv_model_fit_class_mixture(m, &d, 2, 1), MV_OK);
    c.steps = 0;
    c.temperature = 0;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_OK);
    const float *centres = mv_model_extra_get(m, "class.mixture.mean", NULL);
    assert_non_null(centres);
    for (int r = 0; r < 4; r++) {
        const float *own = centres + (size_t)r * 2 * 100;
        assert_true(!memcmp(images + r * 100, own, sizeof(float) * 100) ||
                    !memcmp(images + r * 100, own + 100, sizeof(float) * 100));
    }
    c.objective = MV_OBJ_HIDDEN_PRE;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    mv_model_free(m);
}

/* The total variation's gradient against central differences of its value, in gray and in
 * colour; an all-zero gradient would pass nothing. */
static void test_tv_gradient_matches_finite_differences(void **state)
{
    (void)state;
    mv_rng rng;
    mv_rng_seed(&rng, 21);
    for (int C = 1; C <= 3; C += 2) {
        enum { W = 7, H = 5 };
        const int n = W * H * C;
        float p[W * H * 3], g[W * H * 3] = {0};
        for (int i = 0; i < n; i++) p[i] = (float)(0.2 + 0.6 * mv_rng_uniform(&rng));
        p[3] = p[3 + C]; /* a flat pair: the smoothing keeps the gradient defined there */
        mv_tv_add_gradient(p, g, W, H, C, 2.0); /* g = -2 dTV/dp */
        double largest = 0;
        for (int i = 0; i < n; i++) {
            const float keep = p[i], h = 1e-3f;
            p[i] = keep + h;
            const double up = mv_tv_value(p, W, H, C);
            p[i] = keep - h;
            const double down = mv_tv_value(p, W, H, C);
            p[i] = keep;
            const double numeric = -2 * (up - down) / ((double)(keep + h) - (double)(keep - h));
            largest = fmax(largest, fabs(g[i]));
            if (fabs(g[i] - numeric) > 2e-3 * fmax(1, fabs(numeric)))
                fail_msg("C=%d value %d: analytic %.6f, numeric %.6f", C, i, g[i], numeric);
        }
        assert_true(largest > 0.1);
        float flat[W * H * 3];
        for (int i = 0; i < n; i++) flat[i] = 0.4f;
        assert_true(fabs(mv_tv_value(flat, W, H, C) - W * H * 0.01) < 1e-9); /* eps per pixel */
    }
}

/* A total-variation penalty leaves a flatter image than the same ascent without it. */
static void test_tv_flattens_the_image(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float images[2][4 * 100];
    mv_viz_result res[4];
    for (int k = 0; k < 2; k++) {
        mv_viz_config c;
        mv_viz_preset(&c, "plain");
        c.init = MV_INIT_NOISE;
        c.step = MV_STEP_L2;
        c.lr = 0.2;
        c.steps = 60;
        c.tv = k ? 0.05 : 0;
        run(m, &c, images[k], res);
    }
    for (int r = 0; r < 4; r++) {
        const double plain = mv_tv_value(images[0] + r * 100, 10, 10, 1);
        const double flat = mv_tv_value(images[1] + r * 100, 10, 10, 1);
        if (!(flat < 0.8 * plain))
            fail_msg("row %d: total variation %.3f with the penalty, %.3f without", r, flat, plain);
    }
    mv_model_free(m);
}

/* An L2 step moves the image by exactly lr; start noise makes seeds of one target differ,
 * centred on the start, with the asked spread; without it they are the same. */
static void test_l2_step_and_start_noise(void **state)
{
    (void)state;
    mv_model *m = random_model();
    const int targets[4] = {1, 1, 1, 1};
    float images[4 * 100];
    mv_viz_result res[4];
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.step = MV_STEP_L2;
    c.lr = 0.1;
    c.steps = 1;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_OK);
    for (int r = 0; r < 4; r++) {
        double d2 = 0;
        for (int i = 0; i < 100; i++) d2 += (images[r * 100 + i] - 0.5) * (images[r * 100 + i] - 0.5);
        if (fabs(sqrt(d2) - 0.1) > 1e-5)
            fail_msg("row %d moved %.6f in L2, not 0.1", r, sqrt(d2));
    }
    assert_memory_equal(images, images + 100, sizeof(float) * 100);
    c.steps = 0;
    c.init_noise = 0.05;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_OK);
    double sum = 0, sq = 0;
    for (int i = 0; i < 400; i++) sum += images[i] - 0.5, sq += (images[i] - 0.5) * (images[i] - 0.5);
    const double mean = sum / 400, sd = sqrt(sq / 400 - mean * mean);
    if (!(fabs(mean) < 0.01 && fabs(sd - 0.05) < 0.01))
        fail_msg("start noise: mean offset %.4f, sd %.4f (want 0, 0.05)", mean, sd);
    for (int r = 1; r < 4; r++) assert_memory_not_equal(images, images + r * 100, sizeof(float) * 100);
    c.init_noise = 1.5;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    c.init_noise = 0, c.tv = -1;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, res), MV_ERR_ARG);
    mv_model_free(m);
}

/* Gradient smoothing: with no noise it is the plain gradient (the mean of identical copies);
 * with noise it is another direction, and still climbs. Step noise: annealed exploration
 * that makes the seeds of one target differ, the same on 1 and 2 threads. */
static void test_smoothing_and_step_noise(void **state)
{
    (void)state;
    mv_model *m = random_model_of(28); /* 8 x 784 values: the parallel paths run */
    enum { N = 8, D = 784 };
    const int targets[N] = {1, 1, 1, 1, 2, 2, 2, 2};
    float *a = malloc(sizeof *a * N * D), *b = malloc(sizeof *b * N * D);
    mv_viz_result ra[N], rb[N], start[N];
    assert_true(a && b);
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.step = MV_STEP_L2;
    c.lr = 0.2;
    c.steps = 20;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, ra), MV_OK);
    c.smooth_samples = 4;
    c.smooth_sigma = 0;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, b, rb), MV_OK);
    for (int i = 0; i < N * D; i++)
        if (!(fabsf(a[i] - b[i]) < 1e-4f))
            fail_msg("value %d: %.6f plain, %.6f smoothed without noise", i, a[i], b[i]);
    c.smooth_sigma = 0.5;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, b, rb), MV_OK);
    assert_memory_not_equal(a, b, sizeof *a * N * D);
    c.steps = 0;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, start), MV_OK);
    for (int r = 0; r < N; r++) assert_true(rb[r].logit > start[r].logit + 0.1);
    mv_viz_preset(&c, "plain");
    c.lr = 0;
    c.steps = 10;
    c.step_noise = 0.1;
    omp_set_num_threads(1);
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, ra), MV_OK);
    omp_set_num_threads(2);
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, b, rb), MV_OK);
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(a, b, sizeof *a * N * D);
    assert_memory_not_equal(a, a + D, sizeof *a * D); /* two seeds of class 1 */
    double sq = 0; /* sum of 10 steps of sd 0.1 (1 - t/10): variance 0.01 * 3.85 */
    for (int i = 0; i < D; i++) sq += (a[i] - 0.5) * (a[i] - 0.5);
    if (!(fabs(sqrt(sq / D) - 0.1 * sqrt(3.85)) < 0.02))
        fail_msg("step noise spread %.4f, want %.4f", sqrt(sq / D), 0.1 * sqrt(3.85));
    c.step_noise = 2;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, ra), MV_ERR_ARG);
    c.step_noise = 0, c.smooth_samples = 300;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, a, ra), MV_ERR_ARG);
    free(a);
    free(b);
    mv_model_free(m);
}

/* -mean over the other rows j with row r's target of cos(h_r, h_j), h the last hidden layer
 * at the pixels images [n][100] (the diversity term per unit of its weight), in double. */
static double diversity_value(const mv_model *m, const float *images, const int *targets, int n,
                              int r)
{
    mv_workspace *ws;
    mv_real x[4 * 100];
    assert_int_equal(mv_workspace_create(&ws, &m->net->arch, n), MV_OK);
    mv_model_prepare_input(m, images, x, n);
    mv_forward(m->net, ws, x, n);
    const int w = m->net->arch.widths[1];
    const mv_real *h = ws->a[0];
    double sum = 0;
    int mates = 0;
    for (int j = 0; j < n; j++) {
        if (j == r || targets[j] != targets[r])
            continue;
        double dot = 0, nr = 0, nj = 0;
        for (int i = 0; i < w; i++) {
            dot += (double)h[r * w + i] * h[j * w + i];
            nr += (double)h[r * w + i] * h[r * w + i];
            nj += (double)h[j * w + i] * h[j * w + i];
        }
        sum += dot / sqrt(nr * nj);
        mates++;
    }
    mv_workspace_free(ws);
    return mates ? -sum / mates : 0;
}

/* The diversity term's pixel gradient, read off one plain step of length 1 (the step with the
 * term minus the step without it), against central differences of the term itself; a row
 * with no class-mate gets no push. */
static void test_diversity_gradient_matches_finite_differences(void **state)
{
    (void)state;
    mv_model *m = random_model();
    const int targets[4] = {1, 1, 1, 2};
    float start[4 * 100], plain[4 * 100], pushed[4 * 100];
    mv_viz_result res[4];
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.init = MV_INIT_NOISE;
    c.clamp = 0;
    c.steps = 0;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, start, res), MV_OK);
    c.step = MV_STEP_FIXED;
    c.lr = 1;
    c.steps = 1;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, plain, res), MV_OK);
    c.diversity = 0.7;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, pushed, res), MV_OK);
    double largest = 0;
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 100; i += 7) {
            float probe[4 * 100];
            memcpy(probe, start, sizeof probe);
            const float h = 1e-2f;
            probe[r * 100 + i] = start[r * 100 + i] + h;
            const double up = diversity_value(m, probe, targets, 4, r);
            probe[r * 100 + i] = start[r * 100 + i] - h;
            const double down = diversity_value(m, probe, targets, 4, r);
            const double numeric = 0.7 * (up - down) / (2.0 * h);
            const double analytic = (double)pushed[r * 100 + i] - plain[r * 100 + i];
            if (mv_rel_error(analytic, numeric, 1e-3) > 2e-2)
                fail_msg("row %d pixel %d: analytic %.6g, numeric %.6g", r, i, analytic, numeric);
            if (r == 3)
                assert_true(analytic == 0);
            largest = fmax(largest, fabs(analytic));
        }
    assert_true(largest > 1e-3); /* the term did push */
    mv_model_free(m);
}

/* The seeds of a class spread further apart in the features with the diversity term than
 * without it, the same on 1 and 2 threads; bad uses are refused. */
static void test_diversity_spreads_the_seeds(void **state)
{
    (void)state;
    mv_model *m = random_model();
    const int targets[4] = {1, 1, 1, 1};
    float a[4 * 100], b[4 * 100];
    mv_viz_result res[4];
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.step = MV_STEP_L2;
    c.lr = 0.1;
    c.steps = 40;
    c.init_noise = 0.02;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, a, res), MV_OK);
    c.diversity = 3;
    omp_set_num_threads(1);
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, b, res), MV_OK);
    double similar_without = 0, similar_with = 0;
    for (int r = 0; r < 4; r++) {
        similar_without += -diversity_value(m, a, targets, 4, r) / 4;
        similar_with += -diversity_value(m, b, targets, 4, r) / 4;
    }
    if (!(similar_with < similar_without - 0.01))
        fail_msg("mean feature cosine %.4f with diversity, %.4f without", similar_with,
                 similar_without);
    omp_set_num_threads(2);
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, a, res), MV_OK);
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(a, b, sizeof a);
    c.diversity = -1;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, a, res), MV_ERR_ARG);
    c.diversity = 1;
    c.objective = MV_OBJ_HIDDEN_PRE;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, a, res), MV_ERR_ARG);
    mv_model_free(m);
    mv_arch arch = {0}; /* no hidden layer: no features to spread */
    assert_int_equal(mv_arch_parse_widths(&arch, "100,4"), MV_OK);
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    m->channels = 1, m->height = 10, m->width = 10;
    c.objective = MV_OBJ_LOGIT;
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, a, res), MV_ERR_ARG);
    mv_model_free(m);
}

/* on_scores of a run of some rows: the objective of each row at the last step. */
static void keep_last_scores(int step, const double *scores, int n, void *user)
{
    if (step == 10)
        memcpy(user, scores, sizeof *scores * (size_t)n);
}

/* Rows of a batch computed apart (as processes share it) get the bytes the whole batch gives
 * them, with every random draw in play: noise starts, start noise, jitter, smoothing noise,
 * step noise; and their results and per-step scores. Diversity couples the rows of a target,
 * so they must come together; rows must ascend. */
static void test_rows_match_the_whole_batch(void **state)
{
    (void)state;
    mv_model *m = random_model();
    enum { N = 8, D = 100 };
    const int targets[N] = {0, 1, 2, 3, 0, 1, 2, 3};
    float whole[N * D], part[N * D];
    mv_viz_result rw[N], rp[N];
    double scores_whole[N], scores_part[N];
    mv_viz_config c;
    mv_viz_preset(&c, "default");
    c.init = MV_INIT_NOISE;
    c.steps = 10;
    c.smooth_samples = 2;
    c.step_noise = 0.05;
    c.jitter = 2;
    c.octaves = 2;
    c.on_scores = keep_last_scores;
    c.user = scores_whole;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, whole, rw), MV_OK);
    const int splits[3][N + 1] = {{3, 0, 2, 5}, {4, 1, 3, 4, 7}, {1, 6}}; /* count, rows */
    for (int s = 0; s < 3; s++) {
        const int n = splits[s][0], *rows = splits[s] + 1;
        c.user = scores_part;
        assert_int_equal(mv_visualize_rows(m, &c, targets, N, rows, n, NULL, part, rp), MV_OK);
        for (int j = 0; j < n; j++) {
            assert_memory_equal(part + j * D, whole + rows[j] * D, sizeof *part * D);
            assert_memory_equal(&rp[j], &rw[rows[j]], sizeof *rp);
            assert_memory_equal(&scores_part[j], &scores_whole[rows[j]], sizeof(double));
        }
    }
    c.on_scores = NULL;
    c.diversity = 1;
    assert_int_equal(mv_visualize(m, &c, targets, N, NULL, whole, rw), MV_OK);
    const int of_targets_1_and_3[4] = {1, 3, 5, 7}, half_of_target_1[3] = {1, 3, 7};
    assert_int_equal(mv_visualize_rows(m, &c, targets, N, of_targets_1_and_3, 4, NULL, part, rp),
                     MV_OK);
    for (int j = 0; j < 4; j++)
        assert_memory_equal(part + j * D, whole + of_targets_1_and_3[j] * D, sizeof *part * D);
    assert_int_equal(mv_visualize_rows(m, &c, targets, N, half_of_target_1, 3, NULL, part, rp),
                     MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "target 1"));
    c.diversity = 0;
    const int descending[2] = {3, 1}, outside[1] = {N};
    assert_int_equal(mv_visualize_rows(m, &c, targets, N, descending, 2, NULL, part, rp),
                     MV_ERR_ARG);
    assert_int_equal(mv_visualize_rows(m, &c, targets, N, outside, 1, NULL, part, rp),
                     MV_ERR_ARG);
    mv_model_free(m);
}

/* A row whose target already has stop_prob at its start is left as it started; the others
 * climb until they reach it. */
static void test_stop_prob_keeps_clear_starts(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float start[4 * 100], images[4 * 100];
    mv_viz_result before[4], after[4];
    mv_viz_config c;
    mv_viz_preset(&c, "plain");
    c.steps = 0;
    run(m, &c, start, before);
    int lowest = 0;
    for (int r = 1; r < 4; r++)
        if (before[r].prob < before[lowest].prob) lowest = r;
    double next = 2;
    for (int r = 0; r < 4; r++)
        if (r != lowest && before[r].prob < next) next = before[r].prob;
    c.stop_prob = (before[lowest].prob + next) / 2; /* every row but the lowest starts there */
    c.steps = 200;
    run(m, &c, images, after);
    for (int r = 0; r < 4; r++) {
        if (r == lowest) {
            assert_memory_not_equal(images + r * 100, start + r * 100, sizeof(float) * 100);
            if (!(after[r].prob >= c.stop_prob))
                fail_msg("row %d: probability %.4f, below the stop %.4f", r, after[r].prob,
                         c.stop_prob);
        } else {
            assert_memory_equal(images + r * 100, start + r * 100, sizeof(float) * 100);
        }
    }
    c.stop_prob = 1.5;
    const int targets[4] = {0, 1, 2, 3};
    assert_int_equal(mv_visualize(m, &c, targets, 4, NULL, images, after), MV_ERR_ARG);
    mv_model_free(m);
}

/* The judge's verdict is the model's softmax. */
static void test_predict_gives_probabilities(void **state)
{
    (void)state;
    mv_model *m = random_model();
    float pixels[3 * 100], probs[3 * 4];
    mv_rng rng;
    mv_rng_seed(&rng, 9);
    for (int i = 0; i < 300; i++) pixels[i] = (float)mv_rng_uniform(&rng);
    assert_int_equal(mv_model_predict(m, pixels, 3, probs), MV_OK);
    for (int r = 0; r < 3; r++) {
        double sum = 0;
        for (int k = 0; k < 4; k++) sum += probs[r * 4 + k];
        assert_true(fabs(sum - 1) < 1e-5);
    }
    /* the same as the visualizer's own measure of an image */
    mv_viz_config c;
    mv_viz_defaults(&c);
    c.steps = 0;
    c.init = MV_INIT_IMAGE;
    const int target[1] = {2};
    float out[100];
    mv_viz_result res;
    assert_int_equal(mv_visualize(m, &c, target, 1, pixels, out, &res), MV_OK);
    assert_true(fabs(res.prob - probs[2]) < 1e-6);
    /* Finite weights that overflow (found by fuzz_model): an error, never NaN probabilities. */
    for (int i = 0; i < 32 * 4; i++) m->net->p.W[1][i] = 1.9e38f;
    for (int i = 0; i < 12; i++) probs[i] = 0.5f;
    assert_int_equal(mv_model_predict(m, pixels, 3, probs), MV_ERR_NUMERIC);
    assert_non_null(strstr(mv_last_error(), "overflow"));
    mv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blur_keeps_constants_and_mean),
        cmocka_unit_test(test_blur_matches_its_definition),
        cmocka_unit_test(test_ascent_raises_the_objective),
        cmocka_unit_test(test_same_seed_same_bytes_any_threads),
        cmocka_unit_test(test_rejects_bad_settings),
        cmocka_unit_test(test_every_objective_rises),
        cmocka_unit_test(test_every_step_rule_and_optimizer_climbs),
        cmocka_unit_test(test_frames_come_every_n_steps),
        cmocka_unit_test(test_scores_follow_the_ascent),
        cmocka_unit_test(test_octaves_start_coarse),
        cmocka_unit_test(test_percentile_clipping),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_decay_pulls_to_the_reference),
        cmocka_unit_test(test_class_starts),
        cmocka_unit_test(test_predict_gives_probabilities),
        cmocka_unit_test(test_tv_gradient_matches_finite_differences),
        cmocka_unit_test(test_tv_flattens_the_image),
        cmocka_unit_test(test_l2_step_and_start_noise),
        cmocka_unit_test(test_smoothing_and_step_noise),
        cmocka_unit_test(test_diversity_gradient_matches_finite_differences),
        cmocka_unit_test(test_diversity_spreads_the_seeds),
        cmocka_unit_test(test_stop_prob_keeps_clear_starts),
        cmocka_unit_test(test_rows_match_the_whole_batch),
    };
    return cmocka_run_group_tests_name("visualization", tests, NULL, NULL);
}
