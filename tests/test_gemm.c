/* test_gemm.c: the float dense-layer products (AVX2 kernels and portable loops) against a
 * double reference, on shapes that exercise every tile edge; every output element written,
 * nothing past the end of an output touched, and the same bits on 1 and 2 threads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <omp.h>

#include "internal.h"

enum { GUARD = 40 }; /* sentinel values after every output */
static const float SENTINEL = 12345.0f;

/* An output buffer of n values, poisoned with NaN, followed by GUARD sentinels. */
static float *poisoned(size_t n)
{
    float *p = malloc(sizeof *p * (n + GUARD));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    for (size_t i = n; i < n + GUARD; i++) p[i] = SENTINEL;
    return p;
}

static void assert_guard_intact(const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != SENTINEL)
            fail_msg("value %zu past the end of an output of %zu was overwritten", i - n, n);
}

static float *random_values(mv_rng *rng, size_t n)
{
    float *p = malloc(sizeof *p * (n ? n : 1));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(2 * mv_rng_uniform(rng) - 1);
    return p;
}

/* |got - want| within a float tolerance scaled by the sum of |terms| (the bound on the
 * rounding error of a float dot product of length n, with room). */
static void assert_close(double got, double want, double magnitude, int n, const char *what,
                         int i, int j)
{
    const double tol = 4.0 * (n + 2) * 6e-8 * (magnitude + 1e-30) + 1e-30;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s[%d][%d] = %.9g, reference %.9g (tolerance %.3g)", what, i, j, got, want,
                 tol);
}

/* The reference for every product: sum over i < n of x[i * x_step] * y[i * y_step] in double,
 * with the sum of the terms' magnitudes (for the tolerance) in *magnitude. */
static double reference_dot(const float *x, int x_step, const float *y, int y_step, int n,
                            double *magnitude)
{
    double sum = 0, mag = 0;
    for (int i = 0; i < n; i++) {
        const double term = (double)x[(size_t)i * x_step] * y[(size_t)i * y_step];
        sum += term;
        mag += fabs(term);
    }
    *magnitude = mag;
    return sum;
}

/* Checks forward, weight gradient, bias gradient and input gradient of one shape. */
static void check_shape(int B, int K, int N, uint64_t seed)
{
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    float *in = random_values(&rng, (size_t)B * K), *W = random_values(&rng, (size_t)N * K);
    float *b = random_values(&rng, (size_t)N), *delta = random_values(&rng, (size_t)B * N);
    float *z = poisoned((size_t)B * N), *dW = poisoned((size_t)N * K);
    float *db = poisoned((size_t)N), *din = poisoned((size_t)B * K);

    mv_dense_forward(in, W, b, z, B, K, N);
    float *scratch = poisoned((size_t)B * N);
    mv_dense_backward(in, W, delta, dW, db, din, B, K, N, (seed & 1) ? scratch : NULL);
    assert_guard_intact(scratch, (size_t)B * N);
    free(scratch);
    assert_guard_intact(z, (size_t)B * N);
    assert_guard_intact(dW, (size_t)N * K);
    assert_guard_intact(db, (size_t)N);
    assert_guard_intact(din, (size_t)B * K);

    const float one = 1;
    double want, mag;
    for (int r = 0; r < B; r++) /* z = in W^T + b */
        for (int o = 0; o < N; o++) {
            want = b[o] + reference_dot(in + r * K, 1, W + o * K, 1, K, &mag);
            assert_close(z[r * N + o], want, mag + fabs(b[o]), K, "z", r, o);
        }
    for (int o = 0; o < N; o++) { /* db = column sums of delta, dW = delta^T in */
        want = reference_dot(delta + o, N, &one, 0, B, &mag);
        assert_close(db[o], want, mag, B, "db", o, 0);
        for (int k = 0; k < K; k++) {
            want = reference_dot(delta + o, N, in + k, K, B, &mag);
            assert_close(dW[o * K + k], want, mag, B, "dW", o, k);
        }
    }
    for (int r = 0; r < B; r++) /* din = delta W */
        for (int k = 0; k < K; k++) {
            want = reference_dot(delta + r * N, 1, W + k, K, N, &mag);
            assert_close(din[r * K + k], want, mag, N, "din", r, k);
        }
    free(in), free(W), free(b), free(delta), free(z), free(dW), free(db), free(din);
}

/* Every combination of edge sizes around the tiles (4 x 3 forward, 6 x 16 backward, 8 lanes). */
static void check_edge_shapes(void)
{
    static const int Bs[] = {1, 2, 3, 4, 5, 6, 7, 11, 13};
    static const int Ks[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33};
    static const int Ns[] = {1, 2, 3, 4, 5, 6, 7, 13};
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof Bs / sizeof *Bs; i++)
        for (size_t j = 0; j < sizeof Ks / sizeof *Ks; j++)
            for (size_t k = 0; k < sizeof Ns / sizeof *Ns; k++)
                check_shape(Bs[i], Ks[j], Ns[k], seed++);
    /* Large enough to run in parallel, with ragged edges everywhere. */
    check_shape(37, 203, 61, 99);
    check_shape(10, 784, 50, 100);
    /* Reductions longer than one packed panel (256): chains resumed through memory. */
    check_shape(13, 40, 300, 101);
    check_shape(300, 20, 7, 102);
    check_shape(1, 70, 600, 103);
}

static void test_simd_products(void **state)
{
    (void)state;
    mv_simd_force(1);
    check_edge_shapes();
}

static void test_portable_products(void **state)
{
    (void)state;
    mv_simd_force(0);
    assert_string_equal(mv_simd_name(), "portable");
    check_edge_shapes();
    mv_simd_force(1);
}

/* The products of one shape on `threads` threads, concatenated. */
static float *run_on_threads(int threads, int B, int K, int N)
{
    mv_rng rng;
    mv_rng_seed(&rng, 7);
    float *in = random_values(&rng, (size_t)B * K), *W = random_values(&rng, (size_t)N * K);
    float *b = random_values(&rng, (size_t)N), *delta = random_values(&rng, (size_t)B * N);
    const size_t nz = (size_t)B * N, ndw = (size_t)N * K, ndin = (size_t)B * K;
    float *out = malloc(sizeof *out * (nz + ndw + N + ndin));
    assert_non_null(out);
    omp_set_num_threads(threads);
    mv_dense_forward(in, W, b, out, B, K, N);
    float *scratch = malloc(sizeof *scratch * (size_t)B * N);
    assert_non_null(scratch);
    mv_dense_backward(in, W, delta, out + nz, out + nz + ndw, out + nz + ndw + N, B, K, N,
                      scratch);
    free(scratch);
    omp_set_num_threads(2);
    free(in), free(W), free(b), free(delta);
    return out;
}

static void test_threads_bitwise(void **state)
{
    (void)state;
    static const int shapes[][3] = {{10, 784, 512}, {128, 256, 128}, {61, 333, 97}};
    for (int enabled = 1; enabled >= 0; enabled--) {
        mv_simd_force(enabled);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            const int B = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            const size_t n = (size_t)B * N + (size_t)N * K + N + (size_t)B * K;
            float *one = run_on_threads(1, B, K, N), *two = run_on_threads(2, B, K, N);
            if (memcmp(one, two, sizeof *one * n) != 0)
                fail_msg("%s products of %dx%dx%d differ between 1 and 2 threads",
                         mv_simd_name(), B, K, N);
            free(one), free(two);
        }
    }
    mv_simd_force(1);
}

/* A row's z and din have the same bits computed alone as inside a batch (the single-row
 * kernels are other code: they must keep the batch kernels' order), with a delta that is
 * zero on about half of its units, as after a relu. */
static void test_one_row_same_bits_as_in_a_batch(void **state)
{
    (void)state;
    static const int shapes[][3] = {{7, 784, 512}, {5, 203, 61}, {9, 64, 10}, {3, 13, 5}};
    for (size_t s = 0; s < 2 * sizeof shapes / sizeof *shapes; s++) {
        mv_simd_force(s < sizeof shapes / sizeof *shapes); /* then the portable loops */
        const int *shape = shapes[s % (sizeof shapes / sizeof *shapes)];
        const int B = shape[0], K = shape[1], N = shape[2];
        mv_rng rng;
        mv_rng_seed(&rng, 40 + s);
        float *in = random_values(&rng, (size_t)B * K), *W = random_values(&rng, (size_t)N * K);
        float *b = random_values(&rng, (size_t)N), *delta = random_values(&rng, (size_t)B * N);
        for (size_t i = 0; i < (size_t)B * N; i++)
            if (delta[i] < 0)
                delta[i] = 0;
        float *z = poisoned((size_t)B * N), *din = poisoned((size_t)B * K);
        float *z1 = poisoned((size_t)N), *din1 = poisoned((size_t)K);
        mv_dense_forward(in, W, b, z, B, K, N);
        mv_dense_backward(in, W, delta, NULL, NULL, din, B, K, N, NULL);
        for (int r = 0; r < B; r++) {
            mv_dense_forward(in + (size_t)r * K, W, b, z1, 1, K, N);
            mv_dense_backward(in + (size_t)r * K, W, delta + (size_t)r * N, NULL, NULL, din1, 1,
                              K, N, NULL);
            assert_guard_intact(z1, (size_t)N);
            assert_guard_intact(din1, (size_t)K);
            if (memcmp(z1, z + (size_t)r * N, sizeof *z1 * N) != 0)
                fail_msg("%s: z of row %d of %dx%dx%d differs alone", mv_simd_name(), r, B, K, N);
            if (memcmp(din1, din + (size_t)r * K, sizeof *din1 * K) != 0)
                fail_msg("%s: din of row %d of %dx%dx%d differs alone", mv_simd_name(), r, B, K,
                         N);
        }
        free(in), free(W), free(b), free(delta), free(z), free(din), free(z1), free(din1);
    }
    mv_simd_force(1);
}

/* dst = the tree sum of the chunk sums part[lo .. hi) (each [n]), as the kernels pair them. */
static void tree_reference(float *const *part, int lo, int hi, size_t n, float *dst)
{
    if (hi - lo == 1) {
        memcpy(dst, part[lo], sizeof *dst * n);
        return;
    }
    float *right = malloc(sizeof *right * n);
    assert_non_null(right);
    tree_reference(part, lo, (lo + hi) / 2, n, dst);
    tree_reference(part, (lo + hi) / 2, hi, n, right);
    for (size_t i = 0; i < n; i++) dst[i] = dst[i] + right[i];
    free(right);
}

/* The chunked weight and bias gradients of one shape against their definition: every chunk's
 * sum by mv_dense_backward on that chunk's rows alone (an empty chunk: zeros), then the
 * tree. Bit for bit, on `threads` threads. */
static void check_chunks(int K, int N, const int *bounds, int G, int threads, uint64_t seed)
{
    const int B = bounds[G];
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    float *in = random_values(&rng, (size_t)B * K), *W = random_values(&rng, (size_t)N * K);
    float *delta = random_values(&rng, (size_t)B * N);
    const size_t n = (size_t)N * K + N; /* dW then db */
    float **part = malloc(sizeof *part * (size_t)G), *want = malloc(sizeof *want * n);
    assert_non_null(part);
    assert_non_null(want);
    for (int c = 0; c < G; c++) {
        part[c] = calloc(n, sizeof **part);
        assert_non_null(part[c]);
        const int rows = bounds[c + 1] - bounds[c];
        if (rows > 0)
            mv_dense_backward(in + (size_t)bounds[c] * K, W, delta + (size_t)bounds[c] * N,
                              part[c], part[c] + (size_t)N * K, NULL, rows, K, N, NULL);
    }
    tree_reference(part, 0, G, n, want);
    float *dW = poisoned((size_t)N * K), *db = poisoned((size_t)N);
    float *scratch = poisoned((size_t)B * N);
    omp_set_num_threads(threads);
    mv_dense_param_grad_chunks(in, delta, dW, db, K, N, (seed & 1) ? scratch : NULL, bounds, G);
    omp_set_num_threads(2);
    assert_guard_intact(dW, (size_t)N * K);
    assert_guard_intact(db, (size_t)N);
    assert_guard_intact(scratch, (size_t)B * N);
    if (memcmp(dW, want, sizeof *dW * (size_t)N * K) != 0 ||
        memcmp(db, want + (size_t)N * K, sizeof *db * (size_t)N) != 0)
        fail_msg("%s: chunked gradients of %dx%dx%d in %d chunks (%d threads) are not the tree "
                 "of the chunk sums", mv_simd_name(), B, K, N, G, threads);
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero |= want[i] != 0;
    assert_true(nonzero);
    for (int c = 0; c < G; c++) free(part[c]);
    free(part), free(want), free(dW), free(db), free(scratch), free(in), free(W), free(delta);
}

/* Even chunks of a training batch, uneven ones with empty chunks, more chunks than rows,
 * one chunk (mv_dense_backward's own bits), deep trees, tile and column edges; both kernels,
 * one and two threads. */
static void test_chunked_gradients_are_the_tree_of_chunk_sums(void **state)
{
    (void)state;
    static const int even8[] = {0, 16, 32, 48, 64, 80, 96, 112, 128};
    static const int uneven8[] = {0, 5, 5, 17, 18, 30, 30, 30, 37};
    static const int sparse16[] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5, 5, 5, 5};
    static const int one[] = {0, 300};
    static const int two[] = {0, 1, 300};
    for (int enabled = 1; enabled >= 0; enabled--) {
        mv_simd_force(enabled);
        for (int threads = 1; threads <= 2; threads++) {
            check_chunks(784, 200, even8, 8, threads, 1);
            check_chunks(70, 23, uneven8, 8, threads, 2);
            check_chunks(33, 17, sparse16, 16, threads, 3);
            check_chunks(20, 7, one, 1, threads, 4);
            check_chunks(20, 390, two, 2, threads, 5);
        }
    }
    int big[257];
    for (int c = 0; c <= 256; c++) big[c] = c * 3;
    check_chunks(40, 9, big, 256, 2, 6);
    mv_simd_force(1);
}

/* Two halves computed apart, each as its own tree of 4 chunks, added: the bits of all 8
 * chunks at once. This is what lets two processes share a batch (src/train.c). */
static void test_chunk_subtrees_add_up_to_the_whole(void **state)
{
    (void)state;
    static const int all[] = {0, 9, 18, 27, 36, 45, 54, 63, 72};
    static const int half[] = {0, 9, 18, 27, 36};
    const int K = 100, N = 50, B = 72;
    mv_rng rng;
    mv_rng_seed(&rng, 11);
    float *in = random_values(&rng, (size_t)B * K), *delta = random_values(&rng, (size_t)B * N);
    float *whole = malloc(sizeof *whole * (size_t)N * K), *left = malloc(sizeof *left * (size_t)N * K);
    float *right = malloc(sizeof *right * (size_t)N * K);
    assert_non_null(whole), assert_non_null(left), assert_non_null(right);
    for (int enabled = 1; enabled >= 0; enabled--) {
        mv_simd_force(enabled);
        mv_dense_param_grad_chunks(in, delta, whole, NULL, K, N, NULL, all, 8);
        mv_dense_param_grad_chunks(in, delta, left, NULL, K, N, NULL, half, 4);
        mv_dense_param_grad_chunks(in + 36 * K, delta + 36 * N, right, NULL, K, N, NULL, half, 4);
        for (int i = 0; i < N * K; i++) left[i] = left[i] + right[i];
        if (memcmp(left, whole, sizeof *left * (size_t)N * K) != 0)
            fail_msg("%s: two subtrees do not add up to the tree", mv_simd_name());
    }
    mv_simd_force(1);
    free(in), free(delta), free(whole), free(left), free(right);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_products),
        cmocka_unit_test(test_portable_products),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_one_row_same_bits_as_in_a_batch),
        cmocka_unit_test(test_chunked_gradients_are_the_tree_of_chunk_sums),
        cmocka_unit_test(test_chunk_subtrees_add_up_to_the_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
