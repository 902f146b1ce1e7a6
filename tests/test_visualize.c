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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blur_keeps_constants_and_mean),
        cmocka_unit_test(test_ascent_raises_the_objective),
        cmocka_unit_test(test_same_seed_same_bytes_any_threads),
        cmocka_unit_test(test_rejects_bad_settings),
    };
    return cmocka_run_group_tests_name("visualization", tests, NULL, NULL);
}
