/* test_classmixture.c: per-class k-means mixtures (classmixture.c) through the public API:
 * separated clusters recovered with their fractions and spreads, the result a fixed point of
 * Lloyd's iteration checked against a direct computation, the same bits on 1 and 2 threads,
 * degenerate classes, sampling (component frequencies and spread along the class basis),
 * consistency checks of the stored arrays, refusals with a message, and a save/load round
 * trip. Every dataset is made here, from a seed. */
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
#include <unistd.h>

#include "class_fixtures.h"
#include "mlpviz.h"

/* ---------------------------------------------------------------- helpers */

/* Gaussian blobs: image i belongs to class i % K and, within it, to blob b with
 * probability share[b] (n_blobs of them); pixels are centre[k][b] + sigma N(0, 1), not
 * clamped. centre [K][n_blobs][D] is filled here, uniform in [lo, hi]; blob [n] receives
 * each image's blob. */
static mv_dataset *blob_dataset(int n, int C, int H, int W, int K, int n_blobs,
                                const double *share, double lo, double hi, double sigma,
                                uint64_t seed, double *centre, int *blob)
{
    mv_dataset *d = fixture_dataset(n, C, H, W, K);
    const int D = C * H * W;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int i = 0; i < K * n_blobs * D; i++) centre[i] = lo + (hi - lo) * mv_rng_uniform(&rng);
    for (int i = 0; i < n; i++) {
        const int k = i % K;
        double u = mv_rng_uniform(&rng), cum = 0;
        int b = 0;
        while (b < n_blobs - 1 && u >= (cum += share[b])) b++;
        blob[i] = b;
        d->labels[i] = k;
        for (int t = 0; t < D; t++)
            d->pixels[(size_t)i * D + t] =
                (float)(centre[((size_t)k * n_blobs + b) * D + t] + sigma * mv_rng_normal(&rng));
    }
    return d;
}

static double sq_dist(const float *x, const float *c, int D)
{
    double s = 0;
    for (int t = 0; t < D; t++) s += ((double)x[t] - c[t]) * ((double)x[t] - c[t]);
    return s;
}

/* ---------------------------------------------------------------- tests */

/* Three well separated blobs per class with uneven shares: each component is one blob, its
 * mean the blob's average, its weight the blob's exact fraction of the class (largest
 * first), and its deviation along each class direction the blobs' own sigma. */
static void test_separated_clusters_recovered(void **state)
{
    (void)state;
    enum { C = 1, H = 4, W = 5, D = C * H * W, K = 2, N = 3000, M = 3, R = 2 };
    const double share[M] = {0.2, 0.5, 0.3}, sigma = 0.02;
    static double centre[K * M * D];
    static int blob[N];
    mv_dataset *d = blob_dataset(N, C, H, W, K, M, share, 0.1, 0.9, sigma, 5, centre, blob);
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, R, 1), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(m, d, M, 1), MV_OK);
    int got = 0;
    assert_true(mv_model_has_class_mixture(m, &got));
    assert_int_equal(got, M);
    const float *mean = fixture_extra(m, "class.mixture.mean", K * M * D);
    const float *weight = fixture_extra(m, "class.mixture.weight", K * M);
    const float *sd = fixture_extra(m, "class.mixture.sd", K * M * R);
    for (int k = 0; k < K; k++) {
        int size[M] = {0}, used[M] = {0}, n_class = 0;
        for (int i = 0; i < N; i++)
            if (d->labels[i] == k)
                size[blob[i]]++, n_class++;
        double total = 0;
        for (int j = 0; j < M; j++) {
            int b = 0; /* the blob whose centre is nearest to component j */
            double best = INFINITY;
            for (int c = 0; c < M; c++) {
                double s = 0;
                for (int t = 0; t < D; t++) {
                    const double e = mean[(k * M + j) * D + t] - centre[(k * M + c) * D + t];
                    s += e * e;
                }
                if (s < best)
                    best = s, b = c;
            }
            assert_false(used[b]++);
            if (sqrt(best / D) > 4 * sigma / sqrt(size[b]))
                fail_msg("class %d component %d: rms error %g", k, j, sqrt(best / D));
            assert_true(weight[k * M + j] == (float)((double)size[b] / n_class));
            if (j > 0)
                assert_true(weight[k * M + j] <= weight[k * M + j - 1]);
            for (int i = 0; i < R; i++)
                if (fabs(sd[(k * M + j) * R + i] / sigma - 1) > 0.2)
                    fail_msg("class %d component %d sd %d: %g, expected %g", k, j, i,
                             sd[(k * M + j) * R + i], sigma);
            total += weight[k * M + j];
        }
        assert_true(fabs(total - 1) < 1e-6);
    }
    mv_model_free(m);
    mv_dataset_free(d);
}

/* Overlapping blobs, fewer components than blobs, so that the iterations move many images
 * for a long while (35 and 20 rounds): the stored mixture is a fixed point of Lloyd's
 * iteration, computed here directly from the definition. Every image's nearest
 * component mean is the component whose members average to that mean; the weights are the
 * exact member fractions; the deviations are the members' root mean square projections on
 * the class basis. */
static void test_lloyd_fixed_point(void **state)
{
    (void)state;
    enum { C = 1, H = 3, W = 5, D = C * H * W, K = 2, N = 1200, M = 5, R = 3, B = 7 };
    const double share[B] = {0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.1};
    static double centre[K * B * D];
    static int blob[N];
    mv_dataset *d = blob_dataset(N, C, H, W, K, B, share, 0.3, 0.7, 0.25, 9, centre, blob);
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, R, 2), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(m, d, M, 3), MV_OK);
    const float *mean = fixture_extra(m, "class.mixture.mean", K * M * D);
    const float *weight = fixture_extra(m, "class.mixture.weight", K * M);
    const float *sd = fixture_extra(m, "class.mixture.sd", K * M * R);
    const float *basis = fixture_extra(m, "class.basis", K * R * D);
    for (int k = 0; k < K; k++) {
        double sum[M][D] = {{0}}, sq[M][R] = {{0}};
        int count[M] = {0}, n_class = 0;
        for (int i = 0; i < N; i++) {
            if (d->labels[i] != k)
                continue;
            const float *x = d->pixels + i * D;
            int a = 0;
            for (int j = 1; j < M; j++)
                if (sq_dist(x, mean + (k * M + j) * D, D) < sq_dist(x, mean + (k * M + a) * D, D))
                    a = j;
            count[a]++, n_class++;
            for (int t = 0; t < D; t++) sum[a][t] += x[t];
            for (int r = 0; r < R; r++) {
                double p = 0;
                for (int t = 0; t < D; t++)
                    p += ((double)x[t] - mean[(k * M + a) * D + t]) * basis[(k * R + r) * D + t];
                sq[a][r] += p * p;
            }
        }
        for (int j = 0; j < M; j++) {
            assert_true(count[j] > 0);
            assert_true(weight[k * M + j] == (float)((double)count[j] / n_class));
            for (int t = 0; t < D; t++)
                if (fabs(sum[j][t] / count[j] - mean[(k * M + j) * D + t]) > 1e-5)
                    fail_msg("class %d component %d pixel %d: members' mean %g, stored %g", k,
                             j, t, sum[j][t] / count[j], mean[(k * M + j) * D + t]);
            for (int r = 0; r < R; r++) {
                const double expect = sqrt(sq[j][r] / count[j]);
                if (fabs(sd[(k * M + j) * R + r] - expect) > 1e-4 * expect + 1e-7)
                    fail_msg("class %d component %d sd %d: %g, direct %g", k, j, r,
                             sd[(k * M + j) * R + r], expect);
            }
        }
    }
    mv_model_free(m);
    mv_dataset_free(d);
}

/* Large enough that the assignments, the sums and the projections run in parallel: 1 and 2
 * threads must give the same bytes, and so must a second fit with the same seed. */
static void test_same_bits_any_thread_count(void **state)
{
    (void)state;
    enum { C = 1, H = 24, W = 24, D = C * H * W, K = 2, N = 4400, M = 6, R = 4, B = 9 };
    const double share[B] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.15};
    static double centre[K * B * D];
    static int blob[N];
    mv_dataset *d = blob_dataset(N, C, H, W, K, B, share, 0.2, 0.8, 0.2, 13, centre, blob);
    mv_model *one = fixture_model(C, H, W, K), *two = fixture_model(C, H, W, K);
    omp_set_num_threads(1);
    assert_int_equal(mv_model_fit_class_stats(one, d, R, 4), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(one, d, M, 4), MV_OK);
    omp_set_num_threads(2);
    assert_int_equal(mv_model_fit_class_stats(two, d, R, 4), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(two, d, M, 4), MV_OK);
    const char *names[3] = {"class.mixture.mean", "class.mixture.weight", "class.mixture.sd"};
    const size_t sizes[3] = {K * M * D, K * M, K * M * R};
    for (int e = 0; e < 3; e++)
        assert_memory_equal(fixture_extra(one, names[e], sizes[e]), fixture_extra(two, names[e], sizes[e]),
                            sizes[e] * sizeof(float));
    assert_int_equal(mv_model_fit_class_mixture(two, d, M, 4), MV_OK);
    for (int e = 0; e < 3; e++)
        assert_memory_equal(fixture_extra(one, names[e], sizes[e]), fixture_extra(two, names[e], sizes[e]),
                            sizes[e] * sizeof(float));
    omp_set_num_threads(omp_get_num_procs());
    mv_model_free(one);
    mv_model_free(two);
    mv_dataset_free(d);
}

/* A class of identical images and a class with exactly M images: no component is left
 * empty (each holds at least one image), identical images give equal means and zero
 * deviations, and M images give one component each. */
static void test_degenerate_classes(void **state)
{
    (void)state;
    enum { C = 1, H = 2, W = 3, D = C * H * W, K = 2, M = 4, N = 20 + M, R = 2 };
    mv_dataset *d = fixture_dataset(N, C, H, W, K);
    mv_rng rng;
    mv_rng_seed(&rng, 17);
    for (int i = 0; i < N; i++) {
        d->labels[i] = i < 20 ? 0 : 1;
        for (int t = 0; t < D; t++)
            d->pixels[i * D + t] = i < 20 ? 0.1f * (t + 1) : (float)mv_rng_uniform(&rng);
    }
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, R, 1), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(m, d, M, 1), MV_OK);
    const float *mean = fixture_extra(m, "class.mixture.mean", K * M * D);
    const float *weight = fixture_extra(m, "class.mixture.weight", K * M);
    const float *sd = fixture_extra(m, "class.mixture.sd", K * M * R);
    for (int j = 0; j < M; j++) {
        assert_memory_equal(mean + j * D, d->pixels, D * sizeof(float));
        assert_true(weight[j] >= 1.0f / 20);
        for (int r = 0; r < R; r++) assert_true(sd[j * R + r] == 0);
        assert_true(weight[M + j] == 1.0f / M);
        int found = 0; /* component j of class 1 is one of its images */
        for (int i = 20; i < N; i++)
            found += !memcmp(mean + (M + j) * D, d->pixels + i * D, D * sizeof(float));
        assert_int_equal(found, 1);
        for (int r = 0; r < R; r++) assert_true(sd[(M + j) * R + r] == 0);
    }
    for (int j = 0; j < M; j++)
        for (int i = 0; i < j; i++)
            assert_memory_not_equal(mean + (M + i) * D, mean + (M + j) * D, D * sizeof(float));
    mv_model_free(m);
    mv_dataset_free(d);
}

/* Hand-set class statistics and mixture for class 1 (components at 0.25, unused, 0.7):
 * temperature 0 gives exactly a component mean, each drawn as often as its weight says and
 * the zero-weight one never; at temperatures 1 and 2 the samples spread along each basis
 * direction with the component's deviation times the temperature, and not at all outside
 * the basis. Far out, samples are clamped to the pixel range. */
static void test_sample_frequencies_and_spread(void **state)
{
    (void)state;
    enum { C = 1, H = 2, W = 4, D = C * H * W, K = 2, R = 2, M = 3, SAMPLES = 20000 };
    mv_model *m = fixture_model(C, H, W, K);
    float smean[K * D], basis[K * R * D], ssd[K * R] = {0.1f, 0.05f, 0.1f, 0.05f};
    float mean[K * M * D], weight[K * M] = {0.5f, 0.3f, 0.2f, 0.25f, 0, 0.75f};
    float sd[K * M * R] = {0.01f, 0.01f, 0.01f, 0.01f, 0.01f, 0.01f,
                           0.02f, 0.04f, 0.5f,  0.5f,  0.03f, 0.01f};
    const double level[M] = {0.25, 0.5, 0.7};
    for (int t = 0; t < D; t++) {
        smean[t] = smean[D + t] = 0.5f;
        for (int k = 0; k < K; k++) {
            basis[(k * R) * D + t] = (float)(1 / sqrt(D));
            basis[(k * R + 1) * D + t] = (float)((t % 2 ? 1 : -1) / sqrt(D));
            for (int j = 0; j < M; j++) mean[(k * M + j) * D + t] = (float)(level[j] + 0.01 * t);
        }
    }
    assert_int_equal(mv_model_extra_set(m, "class.mean", smean, K * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.basis", basis, K * R * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.sd", ssd, K * R), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.mean", mean, K * M * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.sd", sd, K * M * R), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M), MV_OK);
    assert_true(mv_model_has_class_mixture(m, NULL));
    mv_rng rng;
    mv_rng_seed(&rng, 23);
    float out[D];
    int low = 0, high = 0; /* class 0, far out: clamped to [0, 1], both ends reached */
    for (int s = 0; s < 100; s++) {
        assert_int_equal(mv_class_mixture_sample(m, 0, 100, &rng, out), MV_OK);
        for (int t = 0; t < D; t++) {
            assert_true(out[t] >= 0 && out[t] <= 1);
            low += out[t] == 0, high += out[t] == 1;
        }
    }
    assert_true(low > 0 && high > 0);
    for (double temperature = 0; temperature <= 2; temperature++) {
        int drawn[M] = {0};
        double sum[M][R] = {{0}}, sq[M][R] = {{0}}, outside = 0;
        for (int s = 0; s < SAMPLES; s++) {
            assert_int_equal(mv_class_mixture_sample(m, 1, temperature, &rng, out), MV_OK);
            int j = 0; /* the nearest component: 0.2 apart, spreads below 0.1 */
            for (int c = 1; c < M; c++)
                if (sq_dist(out, mean + (M + c) * D, D) < sq_dist(out, mean + (M + j) * D, D))
                    j = c;
            drawn[j]++;
            if (temperature == 0)
                assert_memory_equal(out, mean + (M + j) * D, sizeof out);
            double rest[D];
            for (int t = 0; t < D; t++) rest[t] = out[t] - mean[(M + j) * D + t];
            for (int i = 0; i < R; i++) {
                double p = 0;
                for (int t = 0; t < D; t++)
                    p += (out[t] - mean[(M + j) * D + t]) * basis[(R + i) * D + t];
                sum[j][i] += p, sq[j][i] += p * p;
                for (int t = 0; t < D; t++) rest[t] -= p * basis[(R + i) * D + t];
            }
            for (int t = 0; t < D; t++) outside = fmax(outside, fabs(rest[t]));
        }
        assert_int_equal(drawn[1], 0);
        if (fabs(drawn[0] / (double)SAMPLES - 0.25) > 0.015)
            fail_msg("t %g: component 0 drawn %d times of %d", temperature, drawn[0], SAMPLES);
        assert_true(outside < 1e-6);
        for (int j = 0; j < M; j += 2)
            for (int i = 0; i < R; i++) {
                const double mu = sum[j][i] / drawn[j], var = sq[j][i] / drawn[j] - mu * mu;
                const double expect = pow(temperature * sd[(M + j) * R + i], 2);
                if (fabs(var - expect) > 0.06 * expect + 1e-12 ||
                    fabs(mu) > 4 * sqrt(expect / drawn[j]) + 1e-7)
                    fail_msg("t %g component %d direction %d: mean %g, variance %g, expected "
                             "%g", temperature, j, i, mu, var, expect);
            }
    }
    mv_model_free(m);
}

/* Inconsistent arrays are not a mixture: wrong sizes, deviations along a basis the model
 * does not have (or of another rank), negative weights, or a class without weight. */
static void test_consistency_checks(void **state)
{
    (void)state;
    enum { C = 1, H = 2, W = 2, D = C * H * W, K = 2, M = 2, R = 1 };
    mv_model *m = fixture_model(C, H, W, K);
    float mean[K * M * D + 1], weight[K * M + 1], sd[K * M * 2], basis[K * 2 * D], ssd[K * 2];
    for (int i = 0; i < K * M * D + 1; i++) mean[i] = 0.5f;
    for (int i = 0; i < K * M + 1; i++) weight[i] = 0.5f;
    for (int i = 0; i < K * M * 2; i++) sd[i] = 0.1f;
    for (int i = 0; i < K * 2 * D; i++) basis[i] = 0.5f;
    for (int i = 0; i < K * 2; i++) ssd[i] = 0.1f;
    int got = -1;
    assert_false(mv_model_has_class_mixture(m, &got));
    assert_int_equal(got, 0);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.mean", mean, K * M * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M + 1), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL)); /* not a multiple of K */
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M), MV_OK);
    assert_true(mv_model_has_class_mixture(m, &got)); /* no deviations: means only */
    assert_int_equal(got, M);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.mean", mean, K * M * D + 1), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL));
    assert_int_equal(mv_model_extra_set(m, "class.mixture.mean", mean, K * M * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.mixture.sd", sd, K * M * R), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL)); /* no class statistics */
    assert_int_equal(mv_model_extra_set(m, "class.mean", mean, K * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.basis", basis, K * R * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.sd", ssd, K * R), MV_OK);
    assert_true(mv_model_has_class_mixture(m, NULL));
    assert_int_equal(mv_model_extra_set(m, "class.basis", basis, K * 2 * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.sd", ssd, K * 2), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL)); /* stats of rank 2, deviations rank 1 */
    assert_int_equal(mv_model_extra_set(m, "class.mixture.sd", sd, K * M * 2), MV_OK);
    assert_true(mv_model_has_class_mixture(m, NULL));
    weight[1] = -0.5f;
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL));
    weight[1] = weight[2] = weight[3] = 0;
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL)); /* class 1 has no weight */
    weight[2] = 1;
    assert_int_equal(mv_model_extra_set(m, "class.mixture.weight", weight, K * M), MV_OK);
    assert_true(mv_model_has_class_mixture(m, NULL));
    float out[D];
    mv_rng rng;
    mv_rng_seed(&rng, 1);
    assert_int_equal(mv_class_mixture_sample(m, 1, 1, &rng, out), MV_OK);
    mv_model_free(m);
}

/* Refusals of the fit, each with a message that says what is wrong, and the model left
 * untouched; then refusals of the sampler. */
static void test_bad_arguments(void **state)
{
    (void)state;
    enum { C = 1, H = 3, W = 4, D = C * H * W, K = 2, N = 8 };
    mv_dataset *d = fixture_dataset(N, C, H, W, K);
    for (int i = 0; i < N; i++) {
        d->labels[i] = i < 5 ? 0 : 1; /* class 1 has 3 images */
        for (int t = 0; t < D; t++) d->pixels[i * D + t] = (float)((i * 7 + t * 3) % 11) / 10;
    }
    mv_model *m = fixture_model(C, H, W, K);
    const struct {
        int components;
        const char *says;
    } cases[] = {{0, "0 components"}, {-1, "-1 components"}, {65, "65 components"},
                 {4, "class 1 ('c1') has 3"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(mv_model_fit_class_mixture(m, d, cases[i].components, 1), MV_ERR_ARG);
        if (!strstr(mv_last_error(), cases[i].says))
            fail_msg("%d components: '%s'", cases[i].components, mv_last_error());
    }
    mv_model *wrong_shape = fixture_model(C, W, H, K), *wrong_classes = fixture_model(C, H, W, 3);
    assert_int_equal(mv_model_fit_class_mixture(wrong_shape, d, 2, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "1 x 3 x 4"));
    assert_int_equal(mv_model_fit_class_mixture(wrong_classes, d, 2, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "classes"));
    assert_int_equal(mv_model_fit_class_mixture(m, NULL, 2, 1), MV_ERR_ARG);
    d->labels[6] = 2;
    assert_int_equal(mv_model_fit_class_mixture(m, d, 2, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "image 6"));
    d->labels[6] = 1;
    d->pixels[5 * D + 2] = NAN;
    assert_int_equal(mv_model_fit_class_mixture(m, d, 2, 1), MV_ERR_NUMERIC);
    assert_non_null(strstr(mv_last_error(), "('c1')"));
    assert_int_equal(m->n_extras, 0);
    assert_false(mv_model_has_class_mixture(m, NULL));
    float out[D];
    mv_rng rng;
    mv_rng_seed(&rng, 1);
    assert_int_equal(mv_class_mixture_sample(m, 0, 0, &rng, out), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "no consistent class mixture"));
    /* without class statistics: means and weights only, so only temperature 0 samples */
    d->pixels[5 * D + 2] = 0.5f;
    assert_int_equal(mv_model_fit_class_mixture(m, d, 3, 1), MV_OK);
    assert_null(mv_model_extra_get(m, "class.mixture.sd", NULL));
    assert_int_equal(mv_class_mixture_sample(m, 1, 0, &rng, out), MV_OK);
    assert_int_equal(mv_class_mixture_sample(m, 1, 0.5, &rng, out), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "class.mixture.sd"));
    assert_int_equal(mv_class_mixture_sample(m, -1, 0, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_mixture_sample(m, K, 0, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_mixture_sample(m, 0, -0.5, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_mixture_sample(m, 0, NAN, &rng, out), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "temperature"));
    assert_int_equal(mv_class_mixture_sample(m, 0, 0, NULL, out), MV_ERR_ARG);
    assert_int_equal(mv_class_mixture_sample(NULL, 0, 0, &rng, out), MV_ERR_ARG);
    mv_model_free(wrong_shape);
    mv_model_free(wrong_classes);
    mv_model_free(m);
    mv_dataset_free(d);
}

/* Refits replace the arrays: a new number of components, and deviations emptied when the
 * class statistics are gone; a refit of the statistics to another rank makes the mixture
 * inconsistent until it is refitted too. */
static void test_refits(void **state)
{
    (void)state;
    enum { C = 1, H = 3, W = 3, D = C * H * W, K = 2, N = 400, B = 3 };
    const double share[B] = {0.3, 0.3, 0.4};
    static double centre[K * B * D];
    static int blob[N];
    mv_dataset *d = blob_dataset(N, C, H, W, K, B, share, 0.2, 0.8, 0.05, 29, centre, blob);
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, 2, 1), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(m, d, 3, 1), MV_OK);
    fixture_extra(m, "class.mixture.sd", K * 3 * 2);
    assert_int_equal(mv_model_fit_class_stats(m, d, 4, 1), MV_OK);
    assert_false(mv_model_has_class_mixture(m, NULL));
    assert_int_equal(mv_model_fit_class_mixture(m, d, 5, 1), MV_OK);
    int got = 0;
    assert_true(mv_model_has_class_mixture(m, &got));
    assert_int_equal(got, 5);
    fixture_extra(m, "class.mixture.mean", K * 5 * D);
    fixture_extra(m, "class.mixture.sd", K * 5 * 4);
    float sd[K * 4] = {0};
    assert_int_equal(mv_model_extra_set(m, "class.sd", sd, 3), MV_OK); /* stats now broken */
    assert_false(mv_model_has_class_stats(m, NULL));
    assert_int_equal(mv_model_fit_class_mixture(m, d, 2, 1), MV_OK);
    fixture_extra(m, "class.mixture.sd", 0);
    assert_true(mv_model_has_class_mixture(m, &got));
    assert_int_equal(got, 2);
    assert_int_equal(m->n_extras, 6);
    mv_model_free(m);
    mv_dataset_free(d);
}

/* The mixture is ordinary extras: it survives the model file bit for bit, and the loaded
 * model samples the same images. */
static void test_save_load_round_trip(void **state)
{
    (void)state;
    enum { C = 1, H = 5, W = 4, D = C * H * W, K = 3, N = 600, M = 4, R = 3, B = 4 };
    const double share[B] = {0.25, 0.25, 0.25, 0.25};
    static double centre[K * B * D];
    static int blob[N];
    mv_dataset *d = blob_dataset(N, C, H, W, K, B, share, 0.2, 0.8, 0.1, 31, centre, blob);
    mv_model *m = fixture_model(C, H, W, K), *back = NULL;
    assert_int_equal(mv_model_fit_class_stats(m, d, R, 7), MV_OK);
    assert_int_equal(mv_model_fit_class_mixture(m, d, M, 7), MV_OK);
    char dir[] = "/tmp/mlpviz-test-classmixture-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.mlp", dir);
    assert_int_equal(mv_model_save(m, path), MV_OK);
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    unlink(path);
    rmdir(dir);
    int got = -1;
    assert_true(mv_model_has_class_mixture(back, &got));
    assert_int_equal(got, M);
    const char *names[3] = {"class.mixture.mean", "class.mixture.weight", "class.mixture.sd"};
    const size_t sizes[3] = {K * M * D, K * M, K * M * R};
    for (int e = 0; e < 3; e++)
        assert_memory_equal(fixture_extra(m, names[e], sizes[e]), fixture_extra(back, names[e], sizes[e]),
                            sizes[e] * sizeof(float));
    mv_rng a, b;
    mv_rng_seed(&a, 3);
    mv_rng_seed(&b, 3);
    float x[D], y[D];
    for (int k = 0; k < K; k++) {
        assert_int_equal(mv_class_mixture_sample(m, k, 1, &a, x), MV_OK);
        assert_int_equal(mv_class_mixture_sample(back, k, 1, &b, y), MV_OK);
        assert_memory_equal(x, y, sizeof x);
    }
    mv_model_free(back);
    mv_model_free(m);
    mv_dataset_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_separated_clusters_recovered),
        cmocka_unit_test(test_lloyd_fixed_point),
        cmocka_unit_test(test_same_bits_any_thread_count),
        cmocka_unit_test(test_degenerate_classes),
        cmocka_unit_test(test_sample_frequencies_and_spread),
        cmocka_unit_test(test_consistency_checks),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_refits),
        cmocka_unit_test(test_save_load_round_trip),
    };
    return cmocka_run_group_tests_name("class mixture", tests, NULL, NULL);
}
