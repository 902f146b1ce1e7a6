/* test_classstats.c: per-class means and low-rank Gaussians (classstats.c) through the public
 * API: means against a direct sum, known principal directions recovered from Gaussian data,
 * eigenvector residuals and orthonormality on structured data, the same bits on 1 and 2
 * threads, sampling with the right spread, refusals with a message, and a save/load round
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

/* Images with a few strong random directions per class over uniform noise: a spectrum with
 * clear top eigenvalues, as real images have. Labels cycle through the classes. */
static mv_dataset *structured_dataset(int n, int C, int H, int W, int K, int patterns,
                                      uint64_t seed)
{
    mv_dataset *d = fixture_dataset(n, C, H, W, K);
    const int D = C * H * W;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    float *p = malloc(sizeof *p * (size_t)K * patterns * D); /* [K][patterns][D], +-1 */
    assert_non_null(p);
    for (size_t i = 0; i < (size_t)K * patterns * D; i++)
        p[i] = mv_rng_uniform(&rng) < 0.5 ? -1.0f : 1.0f;
    for (int i = 0; i < n; i++) {
        const int k = i % K;
        float *x = d->pixels + (size_t)i * D;
        d->labels[i] = k;
        for (int j = 0; j < D; j++)
            x[j] = (float)(0.4 + 0.05 * k + 0.1 * (mv_rng_uniform(&rng) - 0.5));
        for (int j = 0; j < patterns; j++) {
            const double a = 0.1 / (j + 1) * mv_rng_normal(&rng);
            for (int t = 0; t < D; t++) x[t] += (float)(a * p[((size_t)k * patterns + j) * D + t]);
        }
        for (int t = 0; t < D; t++) x[t] = x[t] < 0 ? 0 : x[t] > 1 ? 1 : x[t];
    }
    free(p);
    return d;
}

/* Rows of basis [rank][D] are orthonormal to tol. */
static void assert_orthonormal(const float *basis, int rank, int D, double tol)
{
    for (int i = 0; i < rank; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)basis[i * D + d] * basis[j * D + d];
            if (fabs(s - (i == j)) > tol)
                fail_msg("rows %d and %d: dot %.9f", i, j, s);
        }
}

/* The class-k covariance (1/n) sum (x - mu)(x - mu)^T, straight from the definition:
 * cov [D][D], mean [D]. */
static void direct_covariance(const mv_dataset *d, int k, double *mean, double *cov)
{
    const int D = d->channels * d->height * d->width;
    int n = 0;
    memset(mean, 0, sizeof *mean * D);
    memset(cov, 0, sizeof *cov * D * D);
    for (int i = 0; i < d->count; i++)
        if (d->labels[i] == k) {
            n++;
            for (int t = 0; t < D; t++) mean[t] += d->pixels[(size_t)i * D + t];
        }
    for (int t = 0; t < D; t++) mean[t] /= n;
    for (int i = 0; i < d->count; i++)
        if (d->labels[i] == k) {
            const float *x = d->pixels + (size_t)i * D;
            for (int a = 0; a < D; a++)
                for (int b = 0; b < D; b++) cov[a * D + b] += (x[a] - mean[a]) * (x[b] - mean[b]);
        }
    for (int t = 0; t < D * D; t++) cov[t] /= n;
}

/* v^T cov u */
static double quad(const double *cov, const double *v, const double *u, int D)
{
    double s = 0;
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) s += v[a] * cov[a * D + b] * u[b];
    return s;
}

/* ---------------------------------------------------------------- tests */

/* The means are the classes' pixel averages, with uneven classes and 3 channels; rank 0
 * keeps only them, and leaves no stale directions from an earlier fit. */
static void test_means_match_direct_sums(void **state)
{
    (void)state;
    enum { N = 61, C = 3, H = 2, W = 3, K = 3, D = C * H * W };
    mv_dataset *d = fixture_dataset(N, C, H, W, K);
    mv_rng rng;
    mv_rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) {
        d->labels[i] = i < 9 ? i % K : (int)mv_rng_below(&rng, K);
        for (int t = 0; t < D; t++) d->pixels[i * D + t] = (float)mv_rng_uniform(&rng);
    }
    double direct[K][D] = {{0}};
    int count[K] = {0};
    for (int i = 0; i < N; i++) {
        count[d->labels[i]]++;
        for (int t = 0; t < D; t++) direct[d->labels[i]][t] += d->pixels[i * D + t];
    }
    mv_model *m = fixture_model(C, H, W, K);
    for (int rank = 2; rank >= 0; rank -= 2) {
        assert_int_equal(mv_model_fit_class_stats(m, d, rank, 5), MV_OK);
        const float *mean = fixture_extra(m, "class.mean", K * D);
        for (int k = 0; k < K; k++)
            for (int t = 0; t < D; t++)
                assert_true(fabs(mean[k * D + t] - direct[k][t] / count[k]) < 1e-6);
        fixture_extra(m, "class.basis", (size_t)K * rank * D);
        fixture_extra(m, "class.sd", (size_t)K * rank);
        int got = -1;
        assert_true(mv_model_has_class_stats(m, &got));
        assert_int_equal(got, rank);
    }
    assert_int_equal(m->n_extras, 3);
    mv_model_free(m);
    mv_dataset_free(d);
}

/* A random orthonormal basis Q [D][D] (rows), Gram-Schmidt on Gaussian rows. */
static void random_rotation(double *Q, int D, mv_rng *rng)
{
    for (int i = 0; i < D; i++) {
        double *q = Q + i * D;
        for (int t = 0; t < D; t++) q[t] = mv_rng_normal(rng);
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double p = 0;
                for (int t = 0; t < D; t++) p += q[t] * Q[j * D + t];
                for (int t = 0; t < D; t++) q[t] -= p * Q[j * D + t];
            }
        double norm = 0;
        for (int t = 0; t < D; t++) norm += q[t] * q[t];
        for (int t = 0; t < D; t++) q[t] /= sqrt(norm);
    }
}

/* Gaussian classes with known eigen-directions and deviations 0.06 * 0.8^i: the fit must
 * find the directions (the block, 13 vectors, is far smaller than D = 48, so the iteration
 * has to work) and the deviations, within sampling error. */
static void test_gaussian_directions_recovered(void **state)
{
    (void)state;
    enum { C = 3, H = 4, W = 4, D = C * H * W, K = 2, PER = 3000, N = K * PER, RANK = 5 };
    mv_dataset *d = fixture_dataset(N, C, H, W, K);
    mv_rng rng;
    mv_rng_seed(&rng, 21);
    static double Q[K][D * D], mu[K][D];
    double sd_true[D];
    for (int i = 0; i < D; i++) sd_true[i] = 0.06 * pow(0.8, i);
    for (int k = 0; k < K; k++) {
        random_rotation(Q[k], D, &rng);
        for (int t = 0; t < D; t++) mu[k][t] = 0.5 + 0.1 * (mv_rng_uniform(&rng) - 0.5);
    }
    for (int i = 0; i < N; i++) {
        const int k = i % K;
        double x[D];
        memcpy(x, mu[k], sizeof x);
        for (int j = 0; j < D; j++) {
            const double z = sd_true[j] * mv_rng_normal(&rng);
            for (int t = 0; t < D; t++) x[t] += z * Q[k][j * D + t];
        }
        d->labels[i] = k;
        for (int t = 0; t < D; t++) d->pixels[i * D + t] = (float)x[t];
    }
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, RANK, 3), MV_OK);
    const float *mean = fixture_extra(m, "class.mean", K * D);
    const float *basis = fixture_extra(m, "class.basis", K * RANK * D);
    const float *sd = fixture_extra(m, "class.sd", K * RANK);
    for (int k = 0; k < K; k++) {
        for (int t = 0; t < D; t++) assert_true(fabs(mean[k * D + t] - mu[k][t]) < 0.01);
        assert_orthonormal(basis + k * RANK * D, RANK, D, 1e-5);
        for (int i = 0; i < RANK; i++) {
            if (fabs(sd[k * RANK + i] / sd_true[i] - 1) > 0.05)
                fail_msg("class %d sd %d: %g, expected %g", k, i, sd[k * RANK + i], sd_true[i]);
            double cosine = 0;
            for (int t = 0; t < D; t++) cosine += basis[(k * RANK + i) * D + t] * Q[k][i * D + t];
            if (fabs(cosine) < 0.99)
                fail_msg("class %d direction %d: |cos| %g", k, i, fabs(cosine));
        }
    }
    mv_model_free(m);
    mv_dataset_free(d);
}

/* On structured data with D not a multiple of 4: deviations descend, directions are
 * orthonormal eigenvectors of the class covariance (1/n) with sd^2 their eigenvalues, no
 * direction outside them has more variance than the last, the largest component of each is
 * positive, and another seed converges to the same result. */
static void test_eigenvectors_of_the_covariance(void **state)
{
    (void)state;
    enum { C = 1, H = 9, W = 11, D = C * H * W, K = 2, N = 800, RANK = 6 };
    mv_dataset *d = structured_dataset(N, C, H, W, K, 7, 31);
    mv_model *m = fixture_model(C, H, W, K), *other = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, RANK, 1), MV_OK);
    assert_int_equal(mv_model_fit_class_stats(other, d, RANK, 2), MV_OK);
    const float *basis = fixture_extra(m, "class.basis", K * RANK * D);
    const float *sd = fixture_extra(m, "class.sd", K * RANK);
    const float *basis2 = fixture_extra(other, "class.basis", K * RANK * D);
    const float *sd2 = fixture_extra(other, "class.sd", K * RANK);
    double *cov = malloc(sizeof *cov * D * D), mean[D], v[D], cv[D];
    assert_non_null(cov);
    mv_rng rng;
    mv_rng_seed(&rng, 4);
    for (int k = 0; k < K; k++) {
        const float *B = basis + k * RANK * D, *S = sd + k * RANK;
        assert_orthonormal(B, RANK, D, 1e-5);
        direct_covariance(d, k, mean, cov);
        const double top = (double)S[0] * S[0];
        for (int i = 0; i < RANK; i++) {
            if (i > 0)
                assert_true(S[i] <= S[i - 1]);
            int big = 0;
            for (int t = 0; t < D; t++) {
                v[t] = B[i * D + t];
                big = fabs(v[t]) > fabs(v[big]) ? t : big;
            }
            assert_true(v[big] > 0);
            const double lambda = quad(cov, v, v, D);
            assert_true(fabs((double)S[i] * S[i] / lambda - 1) < 1e-4);
            double residual = 0;
            for (int a = 0; a < D; a++) {
                cv[a] = 0;
                for (int b = 0; b < D; b++) cv[a] += cov[a * D + b] * v[b];
                residual += (cv[a] - lambda * v[a]) * (cv[a] - lambda * v[a]);
            }
            if (sqrt(residual) > 1e-4 * top)
                fail_msg("class %d direction %d: residual %g of %g", k, i, sqrt(residual), top);
            for (int t = 0; t < D; t++)
                assert_true(fabs(B[i * D + t] - basis2[(k * RANK + i) * D + t]) < 1e-4);
            assert_true(fabs(S[i] / sd2[k * RANK + i] - 1) < 1e-6);
        }
        /* random directions orthogonal to the basis carry no more than the last variance */
        for (int probe = 0; probe < 20; probe++) {
            double norm = 0;
            for (int t = 0; t < D; t++) v[t] = mv_rng_normal(&rng);
            for (int i = 0; i < RANK; i++) {
                double p = 0;
                for (int t = 0; t < D; t++) p += v[t] * B[i * D + t];
                for (int t = 0; t < D; t++) v[t] -= p * B[i * D + t];
            }
            for (int t = 0; t < D; t++) norm += v[t] * v[t];
            for (int t = 0; t < D; t++) v[t] /= sqrt(norm);
            const double last = (double)S[RANK - 1] * S[RANK - 1];
            assert_true(quad(cov, v, v, D) <= last * (1 + 1e-4));
        }
    }
    free(cov);
    mv_model_free(m);
    mv_model_free(other);
    mv_dataset_free(d);
}

/* A class of identical images (no variance at all) and a class with just rank + 1 images:
 * deviations are 0 where there is nothing, the directions stay orthonormal, nothing is NaN. */
static void test_degenerate_classes(void **state)
{
    (void)state;
    enum { C = 1, H = 3, W = 5, D = C * H * W, K = 2, N = 10, RANK = 4 };
    mv_dataset *d = fixture_dataset(N, C, H, W, K);
    mv_rng rng;
    mv_rng_seed(&rng, 61);
    for (int i = 0; i < N; i++) {
        d->labels[i] = i < RANK + 1 ? 1 : 0;
        for (int t = 0; t < D; t++)
            d->pixels[i * D + t] = d->labels[i] ? (float)mv_rng_uniform(&rng) : 0.25f + 0.05f * t;
    }
    mv_model *m = fixture_model(C, H, W, K);
    assert_int_equal(mv_model_fit_class_stats(m, d, RANK, 1), MV_OK);
    const float *mean = fixture_extra(m, "class.mean", K * D);
    const float *basis = fixture_extra(m, "class.basis", K * RANK * D);
    const float *sd = fixture_extra(m, "class.sd", K * RANK);
    for (int k = 0; k < K; k++) {
        assert_orthonormal(basis + k * RANK * D, RANK, D, 1e-5);
        for (int i = 0; i < RANK; i++) assert_true(k ? sd[k * RANK + i] > 0.01f : sd[i] == 0);
    }
    float out[D];
    assert_int_equal(mv_class_sample(m, 0, 1, &rng, out), MV_OK);
    assert_memory_equal(out, mean, sizeof out);
    mv_model_free(m);
    mv_dataset_free(d);
}

/* Large enough that both the covariance and the block product run in parallel, with two
 * sample chunks per class: 1 and 2 threads must give the same bytes. */
static void test_same_bits_any_thread_count(void **state)
{
    (void)state;
    enum { C = 1, H = 19, W = 21, D = C * H * W, K = 2, N = 700, RANK = 4 };
    mv_dataset *d = structured_dataset(N, C, H, W, K, 6, 41);
    mv_model *one = fixture_model(C, H, W, K), *two = fixture_model(C, H, W, K);
    omp_set_num_threads(1);
    assert_int_equal(mv_model_fit_class_stats(one, d, RANK, 9), MV_OK);
    omp_set_num_threads(2);
    assert_int_equal(mv_model_fit_class_stats(two, d, RANK, 9), MV_OK);
    omp_set_num_threads(omp_get_num_procs());
    const char *names[3] = {"class.mean", "class.basis", "class.sd"};
    const size_t sizes[3] = {K * D, K * RANK * D, K * RANK};
    for (int e = 0; e < 3; e++)
        assert_memory_equal(fixture_extra(one, names[e], sizes[e]), fixture_extra(two, names[e], sizes[e]),
                            sizes[e] * sizeof(float));
    mv_model_free(one);
    mv_model_free(two);
    mv_dataset_free(d);
}

/* Hand-set statistics: temperature 0 gives the clamped mean, and samples spread along each
 * basis vector with variance (temperature sd)^2 and not at all outside the basis. */
static void test_sample_spread(void **state)
{
    (void)state;
    enum { C = 1, H = 3, W = 4, D = C * H * W, K = 2, RANK = 2, SAMPLES = 20000 };
    mv_model *m = fixture_model(C, H, W, K);
    float mean[K * D], basis[K * RANK * D], sd[K * RANK] = {0.1f, 0.03f, 0.05f, 0.02f};
    for (int t = 0; t < D; t++) {
        mean[t] = (float)(t % 3 == 0 ? -0.2 : t % 3 == 1 ? 1.3 : 0.37);
        mean[D + t] = 0.5f;
        basis[t] = basis[2 * D + t] = (float)(1 / sqrt(D));
        basis[D + t] = basis[3 * D + t] = (float)((t % 2 ? 1 : -1) / sqrt(D));
    }
    mv_rng rng;
    mv_rng_seed(&rng, 8);
    float out[D];
    assert_int_equal(mv_class_sample(m, 1, 0, &rng, out), MV_ERR_ARG); /* no statistics yet */
    assert_true(strlen(mv_last_error()) > 0);
    assert_int_equal(mv_model_extra_set(m, "class.mean", mean, K * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.basis", basis, K * RANK * D), MV_OK);
    assert_int_equal(mv_model_extra_set(m, "class.sd", sd, K * RANK - 1), MV_OK);
    assert_false(mv_model_has_class_stats(m, NULL)); /* sizes disagree */
    assert_int_equal(mv_class_sample(m, 1, 0, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_model_extra_set(m, "class.sd", sd, K * RANK), MV_OK);
    int rank = 0;
    assert_true(mv_model_has_class_stats(m, &rank));
    assert_int_equal(rank, RANK);
    assert_int_equal(mv_class_sample(m, 0, 0, &rng, out), MV_OK);
    for (int t = 0; t < D; t++)
        assert_true(out[t] == (mean[t] < 0 ? 0.0f : mean[t] > 1 ? 1.0f : mean[t]));
    for (double temperature = 1; temperature <= 2; temperature++) {
        double sum[RANK] = {0}, sq[RANK] = {0}, outside = 0;
        for (int s = 0; s < SAMPLES; s++) {
            assert_int_equal(mv_class_sample(m, 1, temperature, &rng, out), MV_OK);
            double rest[D];
            for (int t = 0; t < D; t++) rest[t] = out[t] - 0.5;
            for (int i = 0; i < RANK; i++) {
                double p = 0;
                for (int t = 0; t < D; t++) p += (out[t] - 0.5) * basis[(RANK + i) * D + t];
                sum[i] += p, sq[i] += p * p;
                for (int t = 0; t < D; t++) rest[t] -= p * basis[(RANK + i) * D + t];
            }
            for (int t = 0; t < D; t++) outside = fmax(outside, fabs(rest[t]));
        }
        for (int i = 0; i < RANK; i++) {
            const double mu = sum[i] / SAMPLES, var = sq[i] / SAMPLES - mu * mu;
            const double expect = pow(temperature * sd[RANK + i], 2);
            if (fabs(var / expect - 1) > 0.05 || fabs(mu) > 4 * sqrt(expect / SAMPLES))
                fail_msg("t %g direction %d: mean %g, variance %g, expected %g", temperature,
                         i, mu, var, expect);
        }
        assert_true(outside < 1e-6);
    }
    assert_int_equal(mv_class_sample(m, -1, 1, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_sample(m, K, 1, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_sample(m, 0, -0.5, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_sample(m, 0, NAN, &rng, out), MV_ERR_ARG);
    assert_int_equal(mv_class_sample(m, 0, INFINITY, &rng, out), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "temperature"));
    assert_int_equal(mv_class_sample(m, 0, 1, NULL, out), MV_ERR_ARG);
    mv_model_free(m);
}

/* Refusals, each with a message that says what is wrong, and the model left untouched. */
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
        int rank;
        const char *says;
    } ranks[] = {{65, "rank 65"}, {-1, "rank -1"}, {3, "('c1') has 3"}, {13, "rank 13"}};
    for (size_t i = 0; i < sizeof ranks / sizeof *ranks; i++) {
        assert_int_equal(mv_model_fit_class_stats(m, d, ranks[i].rank, 1), MV_ERR_ARG);
        if (!strstr(mv_last_error(), ranks[i].says))
            fail_msg("rank %d: '%s'", ranks[i].rank, mv_last_error());
    }
    mv_model *wrong_shape = fixture_model(C, W, H, K), *wrong_classes = fixture_model(C, H, W, 3);
    assert_int_equal(mv_model_fit_class_stats(wrong_shape, d, 1, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "1 x 3 x 4"));
    assert_int_equal(mv_model_fit_class_stats(wrong_classes, d, 1, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "classes"));
    assert_int_equal(mv_model_fit_class_stats(m, NULL, 1, 1), MV_ERR_ARG);
    d->labels[6] = 2;
    assert_int_equal(mv_model_fit_class_stats(m, d, 1, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "image 6"));
    for (int i = 0; i < N; i++) d->labels[i] = 0;
    assert_int_equal(mv_model_fit_class_stats(m, d, 0, 1), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "('c1') has no images"));
    assert_int_equal(m->n_extras, 0);
    assert_false(mv_model_has_class_stats(m, NULL));
    float out[D];
    mv_rng rng;
    mv_rng_seed(&rng, 1);
    assert_int_equal(mv_class_sample(m, 0, 1, &rng, out), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "class statistics"));
    mv_model_free(wrong_shape);
    mv_model_free(wrong_classes);
    mv_model_free(m);
    mv_dataset_free(d);
}

/* The rank policy: below the smallest class, the means alone past 4096 inputs (a note),
 * nothing when a class is empty; the mixture takes at most one component per image. */
static void test_rank_policy(void **state)
{
    (void)state;
    mv_dataset *d = fixture_dataset(9, 1, 4, 4, 3); /* classes of 2, 3 and 4 images */
    static const int labels[9] = {0, 0, 1, 1, 1, 2, 2, 2, 2};
    memcpy(d->labels, labels, sizeof labels);
    int rank = 99;
    assert_int_equal(mv_class_stats_rank(d, 16, &rank), MV_OK);
    assert_int_equal(rank, 1);
    assert_int_equal(mv_class_stats_rank(d, 0, &rank), MV_OK);
    assert_int_equal(rank, 0);
    assert_int_equal(mv_class_stats_rank(d, 65, &rank), MV_ERR_ARG);
    assert_int_equal(rank, -1);
    assert_int_equal(mv_class_mixture_components(d, 8), 2);
    assert_int_equal(mv_class_mixture_components(d, 1), 1);
    d->height = 64;
    d->width = 65; /* 4160 inputs; the pixels are not read */
    assert_int_equal(mv_class_stats_rank(d, 16, &rank), MV_ERR_ARG);
    assert_int_equal(rank, 0);
    assert_string_equal(mv_last_error(), "4160 inputs: storing class means only, no Gaussians");
    assert_int_equal(mv_class_stats_rank(d, 0, &rank), MV_OK);
    assert_int_equal(rank, 0);
    d->labels[0] = d->labels[1] = 1; /* class 0 empties */
    assert_int_equal(mv_class_stats_rank(d, 16, &rank), MV_ERR_ARG);
    assert_int_equal(rank, -1);
    assert_non_null(strstr(mv_last_error(), "a class has no training image"));
    assert_int_equal(mv_class_mixture_components(d, 8), 0);
    mv_dataset_free(d);
}

/* The statistics are ordinary extras: they survive the model file bit for bit, and the
 * loaded model samples the same images. */
static void test_save_load_round_trip(void **state)
{
    (void)state;
    enum { C = 1, H = 6, W = 5, D = C * H * W, K = 3, N = 300, RANK = 3 };
    mv_dataset *d = structured_dataset(N, C, H, W, K, 4, 51);
    mv_model *m = fixture_model(C, H, W, K), *back = NULL;
    assert_int_equal(mv_model_fit_class_stats(m, d, RANK, 7), MV_OK);
    char dir[] = "/tmp/mlpviz-test-classstats-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.mlp", dir);
    assert_int_equal(mv_model_save(m, path), MV_OK);
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    unlink(path);
    rmdir(dir);
    int rank = -1;
    assert_true(mv_model_has_class_stats(back, &rank));
    assert_int_equal(rank, RANK);
    const char *names[3] = {"class.mean", "class.basis", "class.sd"};
    const size_t sizes[3] = {K * D, K * RANK * D, K * RANK};
    for (int e = 0; e < 3; e++)
        assert_memory_equal(fixture_extra(m, names[e], sizes[e]), fixture_extra(back, names[e], sizes[e]),
                            sizes[e] * sizeof(float));
    mv_rng a, b;
    mv_rng_seed(&a, 3);
    mv_rng_seed(&b, 3);
    float x[D], y[D];
    for (int k = 0; k < K; k++) {
        assert_int_equal(mv_class_sample(m, k, 1, &a, x), MV_OK);
        assert_int_equal(mv_class_sample(back, k, 1, &b, y), MV_OK);
        assert_memory_equal(x, y, sizeof x);
    }
    mv_model_free(back);
    mv_model_free(m);
    mv_dataset_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_means_match_direct_sums),
        cmocka_unit_test(test_rank_policy),
        cmocka_unit_test(test_gaussian_directions_recovered),
        cmocka_unit_test(test_eigenvectors_of_the_covariance),
        cmocka_unit_test(test_degenerate_classes),
        cmocka_unit_test(test_same_bits_any_thread_count),
        cmocka_unit_test(test_sample_spread),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_save_load_round_trip),
    };
    return cmocka_run_group_tests_name("class statistics", tests, NULL, NULL);
}
