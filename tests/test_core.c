/* test_core.c: the backprop core against finite differences, hand-derived formulas, golden
 * files and itself across thread counts. Compiled twice: with -DMV_F64 the finite-difference
 * checks are sharp (relative error <= 1e-6); in float32 the same tests run with tolerances
 * that float rounding allows, and the golden files (written in double) bound float32 against
 * double. */
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

#include "golden_cases.h"
#include "internal.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

#ifdef MV_F64
#define FD_STEP 1e-3
#define FD_TOL 1e-6     /* finite differences in double */
#define FD_FLOOR 1e-4
#define HAND_TOL 1e-12  /* hand-derived formulas evaluated in double */
#define GOLDEN_TOL 1e-6
#else
#define FD_STEP 1e-2
#define FD_TOL 5e-2     /* float32 finite differences are only this sharp: the sharp
                           check is the double build, and float32 is tied to double by
                           the golden files */
#define FD_FLOOR 1e-3   /* their absolute error is ~1e-5: judge it against 1e-3 */
#define HAND_TOL 1e-5
#define GOLDEN_TOL 1e-4 /* float32 against the double golden values */
#endif

#define POISON ((mv_real)NAN)

static mv_real *alloc_poisoned(size_t n)
{
    mv_real *p = malloc(sizeof *p * (n ? n : 1));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = POISON;
    return p;
}

static void assert_all_finite(const mv_real *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite((double)v[i]))
            fail_msg("value %zu of %zu is not finite (%g)", i, n, (double)v[i]);
}

static void assert_close(double got, double want, double tol, const char *what)
{
    if (!(mv_rel_error(got, want, 1e-12) <= tol))
        fail_msg("%s: got %.17g, want %.17g (rel err %.3g > %.3g)", what, got, want,
                 mv_rel_error(got, want, 1e-12), tol);
}

/* Coordinates compared and skipped (kinks) by assert_gradcheck since the last reset. */
static long fd_checked, fd_skipped;

static void reset_fd_counts(void) { fd_checked = fd_skipped = 0; }

/* Fails when kinks made the finite-difference tests skip more than 10% of coordinates. */
static void assert_few_skipped(void)
{
    assert_true(fd_checked > 0);
    if (fd_skipped * 10 > fd_checked + fd_skipped)
        fail_msg("%ld of %ld coordinates skipped at kinks", fd_skipped, fd_checked + fd_skipped);
}

/* Runs this precision's gradient check and asserts that every tensor was compared, none is
 * all zero, and every error is within tolerance. */
static void assert_gradcheck(mv_gradcheck_config cfg, const char *label)
{
    cfg.step = FD_STEP;
    cfg.floor = FD_FLOOR;
    mv_gradcheck_report r;
    mv_status st = MV_VARIANT(mv_gradcheck_run)(&cfg, &r);
    if (st)
        fail_msg("%s: %s", label, mv_last_error());
    assert_int_equal(r.n_tensors, 2 * cfg.arch.n_layers + 2);
    for (int t = 0; t < r.n_tensors; t++) {
        const mv_gradcheck_tensor *x = &r.tensor[t];
        /* float32 needs a step so wide that a whole small tensor can straddle relu kinks;
         * there only the share of skipped coordinates is bounded (see skip_share). */
        if (x->checked == 0 && (FD_STEP < 1e-2 || !mv_act_has_kink(cfg.arch.act[0])))
            fail_msg("%s: tensor %s: nothing compared", label, x->name);
        fd_checked += x->checked;
        fd_skipped += x->skipped;
        if (!(x->max_abs_grad > 0))
            fail_msg("%s: tensor %s: gradient is all zero", label, x->name);
        if (!(x->max_rel_error <= FD_TOL))
            fail_msg("%s: tensor %s: max rel error %.3e > %.1e", label, x->name,
                     x->max_rel_error, FD_TOL);
    }
}

static mv_arch make_arch(const char *widths, mv_activation act, mv_head head)
{
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, widths), MV_OK);
    for (int l = 0; l < arch.n_layers - 1; l++) arch.act[l] = act;
    arch.head = head;
    assert_int_equal(mv_arch_validate(&arch), MV_OK);
    return arch;
}

static const mv_activation all_acts[] = {
    {MV_ACT_IDENTITY, 0}, {MV_ACT_SIGMOID, 0},    {MV_ACT_TANH, 0},
    {MV_ACT_RELU, 0},     {MV_ACT_LEAKY_RELU, 0.1f}, {MV_ACT_SCALED_RELU, 5},
    {MV_ACT_SOFTPLUS, 0}, {MV_ACT_GELU, 0},
};
#define N_ACTS (int)(sizeof all_acts / sizeof *all_acts)

/* ------------------------------------------------------------------ activations */

static void test_activation_slopes_match_differences(void **state)
{
    (void)state;
    static const double points[] = {-3.1, -1.3, -0.2, 0.37, 1.1, 2.7};
    int compared = 0;
    for (int a = 0; a < N_ACTS; a++)
        for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
            const double z = points[i], h = FD_STEP;
            double numeric = (mv_act_value(all_acts[a], z + h) -
                              mv_act_value(all_acts[a], z - h)) / (2 * h);
            double analytic = mv_act_slope(all_acts[a], z);
            /* central differences err by h^2/6 f''' ~ 1e-7 here; float by far more */
            if (!(fabs(numeric - analytic) <= (FD_STEP < 1e-2 ? 1e-6 : 2e-3)))
                fail_msg("%s'(%g): analytic %.10g, numeric %.10g",
                         mv_act_name(all_acts[a].kind), z, analytic, numeric);
            compared++;
        }
    assert_int_equal(compared, N_ACTS * 6);
}

static void test_activation_values(void **state)
{
    (void)state;
    const mv_activation sig = {MV_ACT_SIGMOID, 0}, gelu = {MV_ACT_GELU, 0},
                        sp = {MV_ACT_SOFTPLUS, 0}, lrelu = {MV_ACT_LEAKY_RELU, 0.1f},
                        krelu = {MV_ACT_SCALED_RELU, 5}, relu = {MV_ACT_RELU, 0};
    assert_close(mv_act_value(sig, 0), 0.5, HAND_TOL, "sigmoid(0)");
    assert_close(mv_act_slope(sig, 0), 0.25, HAND_TOL, "sigmoid'(0)");
    assert_close(mv_act_value(gelu, 1), 0.8413447460685429, HAND_TOL, "gelu(1)");
    assert_close(mv_act_slope(gelu, 1), 0.8413447460685429 + 0.24197072451914337, HAND_TOL,
                 "gelu'(1)");
    assert_close(mv_act_value(sp, 0), log(2.0), HAND_TOL, "softplus(0)");
    assert_close(mv_act_value(lrelu, -2), -2 * (double)0.1f, HAND_TOL, "leaky(-2)");
    assert_close(mv_act_slope(lrelu, -2), (double)0.1f, HAND_TOL, "leaky'(-2)");
    assert_close(mv_act_value(krelu, 1.5), 7.5, HAND_TOL, "5relu(1.5)");
    assert_close(mv_act_slope(krelu, 1.5), 5, HAND_TOL, "5relu'(1.5)");
    assert_true(mv_act_slope(krelu, -1.5) == 0);
    assert_true(mv_act_slope(relu, 0) == 0);
    assert_true(mv_act_has_kink(relu) && !mv_act_has_kink(gelu));
}

static void test_activations_stay_finite_at_extremes(void **state)
{
    (void)state;
    static const double big[] = {-1e4, -90, 90, 1e4};
    for (int a = 0; a < N_ACTS; a++)
        for (int i = 0; i < 4; i++) {
            double v = mv_act_value(all_acts[a], big[i]), s = mv_act_slope(all_acts[a], big[i]);
            if (!isfinite(v) || !isfinite(s))
                fail_msg("%s(%g) = %g, slope %g", mv_act_name(all_acts[a].kind), big[i], v, s);
        }
    assert_close(mv_act_value((mv_activation){MV_ACT_SOFTPLUS, 0}, 1e4), 1e4, HAND_TOL,
                 "softplus(1e4)");
    assert_true(mv_act_value((mv_activation){MV_ACT_SIGMOID, 0}, -1e4) == 0);
}

/* ------------------------------------------------------------------ heads */

/* One forward pass of a 1-layer identity network, so that z equals the input: gives direct
 * control of the logits that reach the head. */
static double head_loss_at(mv_head head, const mv_real *logits, const mv_real *y, int n,
                           mv_real *delta)
{
    mv_real z[8], a[8];
    memcpy(z, logits, sizeof *z * (size_t)n);
    mv_head_forward(head, z, a, 1, n);
    return mv_head_loss(head, z, a, y, delta, 1, n);
}

static void test_head_losses_by_hand(void **state)
{
    (void)state;
    const mv_real z[3] = {1, 2, 3}, onehot[3] = {0, 0, 1}, bits[3] = {1, 0, 1};
    mv_real delta[3];
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    assert_close(head_loss_at(MV_HEAD_SOFTMAX_CE, z, onehot, 3, delta), lse - 3, HAND_TOL,
                 "CE loss");
    for (int j = 0; j < 3; j++)
        assert_close(delta[j], exp(z[j] - lse) - onehot[j], 1e-5, "CE delta = p - y");
    double bce = 0;
    for (int j = 0; j < 3; j++) {
        double p = 1 / (1 + exp(-(double)z[j]));
        bce -= bits[j] * log(p) + (1 - bits[j]) * log(1 - p);
    }
    assert_close(head_loss_at(MV_HEAD_SIGMOID_BCE, z, bits, 3, delta), bce, 1e-6, "BCE loss");
    for (int j = 0; j < 3; j++)
        assert_close(delta[j], 1 / (1 + exp(-(double)z[j])) - bits[j], 1e-6, "BCE delta");
    assert_close(head_loss_at(MV_HEAD_IDENTITY_MSE, z, bits, 3, delta), 0 + 4 + 4, HAND_TOL,
                 "MSE loss");
    assert_close(delta[1], 2 * (2 - 0), HAND_TOL, "MSE delta = 2 (z - y)");
}

static void test_heads_never_nan_for_large_logits(void **state)
{
    (void)state;
    const mv_real z[3] = {(mv_real)1e4, (mv_real)-1e4, 0}, y[3] = {0, 1, 0};
    for (int h = 0; h < MV_HEAD_COUNT; h++) {
        mv_real delta[3] = {POISON, POISON, POISON};
        double loss = head_loss_at((mv_head)h, z, y, 3, delta);
        if (!isfinite(loss))
            fail_msg("head %s: loss %g for logits +-1e4", mv_head_name((mv_head)h), loss);
        assert_all_finite(delta, 3);
    }
    mv_real delta[3];
    /* CE with the true class at -1e4 below the top: loss is the gap, gradient p - y. */
    assert_close(head_loss_at(MV_HEAD_SOFTMAX_CE, z, y, 3, delta), 2e4, 1e-6, "CE gap");
    assert_close(delta[0], 1, 1e-6, "CE delta top");
    assert_close(delta[1], -1, 1e-6, "CE delta true");
}

static void test_soft_labels_ce_gradient(void **state)
{
    (void)state;
    /* d/dz of -sum y log p = p * sum(y) - y: checked by differences for labels that do not
     * sum to one, where "p - y" alone would be wrong. */
    const mv_real y[4] = {0.2f, 0.5f, 0.0f, 0.7f};
    mv_real z[4] = {0.3f, -1.2f, 0.8f, 0.1f}, delta[4], scratch[4];
    head_loss_at(MV_HEAD_SOFTMAX_CE, z, y, 4, delta);
    for (int j = 0; j < 4; j++) {
        const mv_real saved = z[j];
        const double h = FD_STEP;
        z[j] = (mv_real)(saved + h);
        double up = head_loss_at(MV_HEAD_SOFTMAX_CE, z, y, 4, scratch);
        z[j] = (mv_real)(saved - h);
        double down = head_loss_at(MV_HEAD_SOFTMAX_CE, z, y, 4, scratch);
        z[j] = saved;
        double step = (double)(mv_real)(saved + h) - saved;
        assert_true(fabs((up - down) / (2 * step) - delta[j]) < 10 * FD_TOL);
    }
}

/* ------------------------------------------------------------------ finite differences */

static void test_every_activation_and_head(void **state)
{
    (void)state;
    int runs = 0;
    reset_fd_counts();
    for (int a = 0; a < N_ACTS; a++)
        for (int h = 0; h < MV_HEAD_COUNT; h++) {
            mv_gradcheck_config cfg;
            mv_gradcheck_defaults(&cfg, &(mv_arch){0});
            cfg.arch = make_arch("7,6,5,4", all_acts[a], (mv_head)h);
            cfg.batch = 3;
            cfg.samples = 0; /* every coordinate */
            cfg.seed = 11 + (uint64_t)(a * 3 + h);
            char label[64];
            snprintf(label, sizeof label, "%s x %s", mv_act_name(all_acts[a].kind),
                     mv_head_name((mv_head)h));
            assert_gradcheck(cfg, label);
            runs++;
        }
    assert_int_equal(runs, N_ACTS * MV_HEAD_COUNT);
    assert_few_skipped();
}

static void test_input_gradient_objectives(void **state)
{
    (void)state;
    enum { HIDDEN_PLUS_ONE = MV_OBJ_HIDDEN + 2 }; /* logit .. hidden, then hidden layer 1 */
    static const mv_activation acts[] = {{MV_ACT_TANH, 0}, {MV_ACT_GELU, 0},
                                         {MV_ACT_LEAKY_RELU, 0.1f}};
    int runs = 0;
    reset_fd_counts();
    for (int a = 0; a < 3; a++)
        for (int h = 0; h < MV_HEAD_COUNT; h++)
            for (int obj = 0; obj < HIDDEN_PLUS_ONE; obj++) {
                mv_gradcheck_config cfg;
                mv_gradcheck_defaults(&cfg, &(mv_arch){0});
                cfg.arch = make_arch("9,8,7,5", acts[a], (mv_head)h);
                cfg.samples = 0;
                cfg.seed = 77 + (uint64_t)runs;
                /* obj == MV_OBJ_HIDDEN + 1 stands for the second hidden layer */
                cfg.target.kind = obj <= MV_OBJ_HIDDEN ? (mv_objective)obj : MV_OBJ_HIDDEN;
                cfg.target.layer = obj == HIDDEN_PLUS_ONE - 1 ? 1 : 0;
                if (cfg.target.kind == MV_OBJ_LOGPROB && h == MV_HEAD_IDENTITY_MSE)
                    continue;
                char label[80];
                snprintf(label, sizeof label, "%s %s objective %d layer %d",
                         mv_act_name(acts[a].kind), mv_head_name((mv_head)h), cfg.target.kind,
                         cfg.target.layer);
                assert_gradcheck(cfg, label);
                runs++;
            }
    assert_int_equal(runs, 3 * (3 * 5 - 1));
    /* the objectives visualization climbs besides those: the margin and a pre-activation */
    for (int h = 0; h < MV_HEAD_COUNT; h++)
        for (int layer = 0; layer < 3; layer++) {
            mv_gradcheck_config cfg;
            mv_gradcheck_defaults(&cfg, &(mv_arch){0});
            cfg.arch = make_arch("9,8,7,5", acts[0], (mv_head)h);
            cfg.samples = 0;
            cfg.seed = 500 + (uint64_t)(3 * h + layer);
            cfg.target = layer < 2 ? (mv_target){MV_OBJ_HIDDEN_PRE, layer}
                                   : (mv_target){MV_OBJ_MARGIN, 0};
            assert_gradcheck(cfg, layer < 2 ? "pre-activation objective" : "margin objective");
        }
    assert_few_skipped();
}

static void test_shallow_and_deep_networks(void **state)
{
    (void)state;
    mv_gradcheck_config cfg;
    mv_gradcheck_defaults(&cfg, &(mv_arch){0});
    /* one layer: logistic/softmax regression, no hidden activation at all */
    cfg.arch = make_arch("6,3", (mv_activation){0}, MV_HEAD_SOFTMAX_CE);
    cfg.samples = 0;
    assert_gradcheck(cfg, "single layer");
    /* six layers of mixed activations */
    cfg.arch = make_arch("8,7,6,6,5,4,3", (mv_activation){MV_ACT_TANH, 0}, MV_HEAD_SIGMOID_BCE);
    cfg.arch.act[1] = (mv_activation){MV_ACT_GELU, 0};
    cfg.arch.act[2] = (mv_activation){MV_ACT_SOFTPLUS, 0};
    cfg.arch.act[3] = (mv_activation){MV_ACT_SIGMOID, 0};
    cfg.target = (mv_target){MV_OBJ_HIDDEN, 3};
    assert_gradcheck(cfg, "six layers");
}

static void test_gradients_through_dropout(void **state)
{
    (void)state;
    for (int a = 0; a < N_ACTS; a++) {
        mv_gradcheck_config cfg;
        mv_gradcheck_defaults(&cfg, &(mv_arch){0});
        cfg.arch = make_arch("9,8,7,4", all_acts[a], MV_HEAD_SOFTMAX_CE);
        cfg.samples = 0;
        cfg.dropout = 0.4f;
        cfg.seed = 300 + (uint64_t)a;
        assert_gradcheck(cfg, mv_act_name(all_acts[a].kind));
    }
}

/* Dropout zeroes about p of the hidden units, scales the rest by 1/(1-p), depends only on
 * the seed, and leaves plain forward passes alone. */
static void test_dropout_masks(void **state)
{
    (void)state;
    mv_arch arch = make_arch("50,400,300,5", (mv_activation){MV_ACT_RELU, 0},
                             MV_HEAD_SOFTMAX_CE);
    mv_net *net;
    mv_workspace *ws;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&ws, &arch, 8), MV_OK);
    mv_net_init(net, 2);
    mv_real x[8 * 50];
    for (int i = 0; i < 8 * 50; i++) x[i] = (mv_real)((i % 13) / 13.0);
    mv_forward_train(net, ws, x, 8, 0.25f, 99);
    size_t zeros = 0, n = 8 * 400;
    for (size_t i = 0; i < n; i++) {
        assert_true(ws->mask[0][i] == 0 || fabs(ws->mask[0][i] - 1 / 0.75) < 1e-6);
        zeros += ws->mask[0][i] == 0;
    }
    assert_true(fabs((double)zeros / n - 0.25) < 0.03);
    mv_real *first = malloc(sizeof *first * n);
    assert_non_null(first);
    memcpy(first, ws->mask[0], sizeof *first * n);
    mv_forward_train(net, ws, x, 8, 0.25f, 99);
    assert_memory_equal(first, ws->mask[0], sizeof *first * n);
    mv_real out_plain[8 * 5];
    mv_forward(net, ws, x, 8);
    memcpy(out_plain, ws->a[2], sizeof out_plain);
    mv_forward_train(net, ws, x, 8, 0, 99); /* p = 0 is the plain pass */
    assert_memory_equal(out_plain, ws->a[2], sizeof out_plain);
    free(first);
    mv_net_free(net);
    mv_workspace_free(ws);
}

/* ------------------------------------------------------------------ hand-derived cases */

typedef struct {
    mv_net *net;
    mv_workspace *ws;
    mv_params *grads;
} fixture;

static fixture fixture_make(mv_arch arch, const double *weights)
{
    fixture f;
    assert_int_equal(mv_net_create(&f.net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&f.ws, &arch, 4), MV_OK);
    assert_int_equal(mv_params_create(&f.grads, &arch), MV_OK);
    for (size_t i = 0; i < f.net->p.count; i++) f.net->p.data[i] = (mv_real)weights[i];
    for (size_t i = 0; i < f.grads->count; i++) f.grads->data[i] = POISON;
    return f;
}

static void fixture_free(fixture *f)
{
    mv_net_free(f->net);
    mv_workspace_free(f->ws);
    mv_params_free(f->grads);
}

static double sigmoid_d(double z) { return 1 / (1 + exp(-z)); }

/* Loss gradients and dC/dx of one sample, with poisoned outputs. */
static void run_backward(fixture *f, const mv_real *x, const mv_real *y, mv_real *gx)
{
    mv_forward(f->net, f->ws, x, 1);
    mv_loss(f->net, f->ws, y, 1, 1);
    mv_backward(f->net, f->ws, x, 1, f->grads, gx);
    assert_all_finite(f->grads->data, f->grads->count);
}

/* (a) 3 inputs, 2 sigmoid hidden units z1, one sigmoid output, binary cross-entropy. */
static void test_textbook_sigmoid_bce(void **state)
{
    (void)state;
    mv_arch arch = {.n_layers = 2, .widths = {3, 2, 1}, .head = MV_HEAD_SIGMOID_BCE};
    arch.act[0] = (mv_activation){MV_ACT_SIGMOID, 0};
    /* W1 (2x3), b1, W2 (1x2), b2 */
    const double w[] = {0.5, -0.25, 0.75, -0.5, 0.125, 0.25, 0.1, -0.2, 0.9, -1.1, 0.3};
    fixture f = fixture_make(arch, w);
    const mv_real x[3] = {1.0f, 0.5f, -1.5f}, y[1] = {1};
    mv_real gx[3] = {POISON, POISON, POISON};
    run_backward(&f, x, y, gx);

    double z1[2];
    for (int h = 0; h < 2; h++)
        z1[h] = sigmoid_d(w[h * 3] * x[0] + w[h * 3 + 1] * x[1] + w[h * 3 + 2] * x[2] + w[6 + h]);
    const double yhat = sigmoid_d(w[8] * z1[0] + w[9] * z1[1] + w[10]), err = yhat - y[0];
    assert_close(f.grads->b[1][0], err, HAND_TOL, "dL/db2 = yhat - y");
    for (int h = 0; h < 2; h++) {
        assert_close(f.grads->W[1][h], z1[h] * err, HAND_TOL, "dL/dW2_h = z1_h (yhat - y)");
        const double back = w[8 + h] * z1[h] * (1 - z1[h]) * err;
        assert_close(f.grads->b[0][h], back, HAND_TOL, "dL/db1_h");
        for (int m = 0; m < 3; m++)
            assert_close(f.grads->W[0][h * 3 + m], back * x[m], HAND_TOL, "dL/dW1_hm");
    }
    for (int m = 0; m < 3; m++) {
        double want = 0;
        for (int h = 0; h < 2; h++) want += w[h * 3 + m] * w[8 + h] * z1[h] * (1 - z1[h]) * err;
        assert_close(gx[m], want, HAND_TOL, "dL/dx_m");
    }
    fixture_free(&f);
}

/* (b) the same network with identity activations everywhere and squared error:
 * delta[l] = W[l+1]^T delta[l+1]. */
static void test_textbook_identity(void **state)
{
    (void)state;
    mv_arch arch = {.n_layers = 2, .widths = {3, 2, 1}, .head = MV_HEAD_IDENTITY_MSE};
    arch.act[0] = (mv_activation){MV_ACT_IDENTITY, 0};
    const double w[] = {0.5, -0.25, 0.75, -0.5, 0.125, 0.25, 0.1, -0.2, 0.9, -1.1, 0.3};
    fixture f = fixture_make(arch, w);
    const mv_real x[3] = {1.0f, 0.5f, -1.5f}, y[1] = {0.25f};
    mv_real gx[3];
    run_backward(&f, x, y, gx);
    double hid[2];
    for (int h = 0; h < 2; h++)
        hid[h] = w[h * 3] * x[0] + w[h * 3 + 1] * x[1] + w[h * 3 + 2] * x[2] + w[6 + h];
    const double d2 = 2 * (w[8] * hid[0] + w[9] * hid[1] + w[10] - y[0]);
    assert_close(f.grads->b[1][0], d2, HAND_TOL, "delta2");
    for (int h = 0; h < 2; h++) {
        const double d1 = w[8 + h] * d2; /* W2^T delta2 */
        assert_close(f.grads->W[1][h], hid[h] * d2, HAND_TOL, "dW2");
        assert_close(f.grads->b[0][h], d1, HAND_TOL, "delta1 = W2^T delta2");
        for (int m = 0; m < 3; m++)
            assert_close(f.grads->W[0][h * 3 + m], d1 * x[m], HAND_TOL, "dW1");
    }
    for (int m = 0; m < 3; m++)
        assert_close(gx[m], (w[m] * w[8] + w[3 + m] * w[9]) * d2, HAND_TOL, "W1^T W2^T delta2");
    fixture_free(&f);
}

/* (c) Linear -> 5 relu -> Linear -> identity, squared error: dl/dyhat = 2 (yhat - y); one
 * hidden unit is inactive and must pass no gradient, the other has slope 5. */
static void test_textbook_scaled_relu(void **state)
{
    (void)state;
    mv_arch arch = {.n_layers = 2, .widths = {2, 2, 1}, .head = MV_HEAD_IDENTITY_MSE};
    arch.act[0] = (mv_activation){MV_ACT_SCALED_RELU, 5};
    const double w[] = {0.5, 0.25, -0.75, 0.5, 0.1, -0.2, 0.8, -0.6, 0.05};
    fixture f = fixture_make(arch, w);
    const mv_real x[2] = {1.0f, 2.0f}, y[1] = {1.5f};
    mv_real gx[2];
    run_backward(&f, x, y, gx);
    const double pre0 = 0.5 * 1 + 0.25 * 2 + 0.1, pre1 = -0.75 * 1 + 0.5 * 2 - 0.2;
    assert_true(pre0 > 0 && pre1 > 0);
    const double h0 = 5 * pre0, h1 = 5 * pre1, yhat = 0.8 * h0 - 0.6 * h1 + 0.05;
    const double d = 2 * (yhat - y[0]);
    assert_close(f.grads->b[1][0], d, HAND_TOL, "2 (yhat - y)");
    assert_close(f.grads->W[1][0], h0 * d, HAND_TOL, "dW2_0");
    assert_close(f.grads->b[0][0], 5 * 0.8 * d, HAND_TOL, "slope 5 through unit 0");
    assert_close(f.grads->b[0][1], 5 * -0.6 * d, HAND_TOL, "slope 5 through unit 1");
    fixture_free(&f);

    /* Move unit 1 below its kink: its bias, weights and share of dx vanish. */
    double w2[9];
    memcpy(w2, w, sizeof w2);
    w2[5] = -1.0;
    f = fixture_make(arch, w2);
    run_backward(&f, x, y, gx);
    assert_true(f.grads->b[0][1] == 0 && f.grads->W[0][2] == 0 && f.grads->W[0][3] == 0);
    assert_true(f.grads->W[1][1] == 0);
    const double yhat2 = 0.8 * h0 + 0.05, d2 = 2 * (yhat2 - y[0]);
    assert_close(gx[0], 0.5 * 5 * 0.8 * d2, HAND_TOL, "dx_0 through the live unit only");
    assert_close(gx[1], 0.25 * 5 * 0.8 * d2, HAND_TOL, "dx_1 through the live unit only");
    fixture_free(&f);
}

/* (d) Linear -> tanh -> Linear -> sigmoid with BCE: delta2 = yhat - y,
 * delta1 = (1 - h^2) o W2^T delta2. */
static void test_textbook_tanh_bce(void **state)
{
    (void)state;
    mv_arch arch = {.n_layers = 2, .widths = {2, 3, 1}, .head = MV_HEAD_SIGMOID_BCE};
    arch.act[0] = (mv_activation){MV_ACT_TANH, 0};
    const double w[] = {0.3, -0.4, 0.8, 0.1, -0.6, 0.9, 0.05, -0.1, 0.2, 0.7, -0.5, 0.4, -0.3};
    fixture f = fixture_make(arch, w);
    const mv_real x[2] = {0.5f, -1.0f}, y[1] = {0};
    mv_real gx[2];
    run_backward(&f, x, y, gx);
    double hid[3], out = w[12];
    for (int j = 0; j < 3; j++) {
        hid[j] = tanh(w[2 * j] * x[0] + w[2 * j + 1] * x[1] + w[6 + j]);
        out += w[9 + j] * hid[j];
    }
    const double d2 = sigmoid_d(out) - y[0];
    assert_close(f.grads->b[1][0], d2, HAND_TOL, "yhat - y");
    for (int j = 0; j < 3; j++) {
        const double d1 = (1 - hid[j] * hid[j]) * w[9 + j] * d2;
        assert_close(f.grads->b[0][j], d1, HAND_TOL, "(1 - h^2) W2^T delta2");
        assert_close(f.grads->W[0][2 * j + 1], d1 * x[1], HAND_TOL, "dW1");
        assert_close(f.grads->W[1][j], hid[j] * d2, HAND_TOL, "dW2");
    }
    fixture_free(&f);
}

/* (e) an L-layer sigmoid network with one sigmoid output: grad_x a[L] by the textbook
 * recursion delta[L] = s'(z[L]), delta[l] = s'(z[l]) o W[l+1]^T delta[l+1],
 * grad_x = W[first]^T delta[first], written out with plain arrays. */
static void test_textbook_input_gradient(void **state)
{
    (void)state;
    enum { L = 4 };
    const int widths[L + 1] = {5, 4, 4, 3, 1};
    mv_arch arch = {.n_layers = L, .head = MV_HEAD_SIGMOID_BCE};
    memcpy(arch.widths, widths, sizeof widths);
    for (int l = 0; l < L - 1; l++) arch.act[l] = (mv_activation){MV_ACT_SIGMOID, 0};
    mv_net *net;
    mv_workspace *ws;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&ws, &arch, 1), MV_OK);
    mv_net_init(net, 5);
    for (int l = 0; l < L; l++)
        for (int j = 0; j < widths[l + 1]; j++) net->p.b[l][j] = (mv_real)(0.1 * (j - l));
    const mv_real x[5] = {0.2f, -0.4f, 0.9f, 0.0f, -1.0f};

    double act[L + 1][5], delta[L][5];
    for (int m = 0; m < 5; m++) act[0][m] = x[m];
    for (int l = 0; l < L; l++)
        for (int j = 0; j < widths[l + 1]; j++) {
            double z = net->p.b[l][j];
            for (int m = 0; m < widths[l]; m++) z += net->p.W[l][j * widths[l] + m] * act[l][m];
            act[l + 1][j] = sigmoid_d(z);
        }
    delta[L - 1][0] = act[L][0] * (1 - act[L][0]); /* s'(z[L]) */
    for (int l = L - 2; l >= 0; l--)
        for (int j = 0; j < widths[l + 1]; j++) {
            double back = 0;
            for (int k = 0; k < widths[l + 2]; k++)
                back += net->p.W[l + 1][k * widths[l + 1] + j] * delta[l + 1][k];
            delta[l][j] = act[l + 1][j] * (1 - act[l + 1][j]) * back;
        }
    mv_real gx[5] = {POISON, POISON, POISON, POISON, POISON}, value = POISON;
    const int k = 0;
    assert_int_equal(mv_input_grad(net, ws, x, 1, (mv_target){MV_OBJ_OUTPUT, 0}, &k, gx, &value),
                     MV_OK);
    assert_close(value, act[L][0], HAND_TOL, "a[L]");
    for (int m = 0; m < 5; m++) {
        double want = 0;
        for (int j = 0; j < widths[1]; j++) want += net->p.W[0][j * 5 + m] * delta[0][j];
        assert_close(gx[m], want, 10 * HAND_TOL, "grad_x a[L] = W^T delta");
    }
    mv_net_free(net);
    mv_workspace_free(ws);
}

/* ------------------------------------------------------------------ batching, purity */

/* The batch gradient is the mean of the per-sample gradients: catches averaging twice, or
 * forgetting to average. */
static void test_batch_gradient_is_mean_of_samples(void **state)
{
    (void)state;
    mv_arch arch = make_arch("6,5,3", (mv_activation){MV_ACT_TANH, 0}, MV_HEAD_SOFTMAX_CE);
    mv_net *net;
    mv_workspace *ws;
    mv_params *g_batch, *g_one;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&ws, &arch, 2), MV_OK);
    assert_int_equal(mv_params_create(&g_batch, &arch), MV_OK);
    assert_int_equal(mv_params_create(&g_one, &arch), MV_OK);
    mv_net_init(net, 3);
    const mv_real x[12] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f, 1, 0.5f, -0.5f, 0, 0.25f, -1};
    const mv_real y[6] = {0, 1, 0, 1, 0, 0};
    mv_forward(net, ws, x, 2);
    mv_loss(net, ws, y, 2, 1);
    mv_backward(net, ws, x, 2, g_batch, NULL);
    double *sum = calloc(g_batch->count, sizeof *sum);
    assert_non_null(sum);
    for (int r = 0; r < 2; r++) {
        mv_forward(net, ws, x + 6 * r, 1);
        mv_loss(net, ws, y + 3 * r, 1, 1);
        mv_backward(net, ws, x + 6 * r, 1, g_one, NULL);
        for (size_t i = 0; i < g_one->count; i++) sum[i] += g_one->data[i];
    }
    double biggest = 0;
    for (size_t i = 0; i < g_batch->count; i++) {
        assert_close(g_batch->data[i], sum[i] / 2, 100 * HAND_TOL + 1e-12, "mean of samples");
        biggest = fmax(biggest, fabs(sum[i]));
    }
    assert_true(biggest > 1e-3);
    free(sum);
    mv_net_free(net);
    mv_workspace_free(ws);
    mv_params_free(g_batch);
    mv_params_free(g_one);
}

static void test_input_grad_is_pure_and_checked(void **state)
{
    (void)state;
    mv_arch arch = make_arch("4,3,2", (mv_activation){MV_ACT_RELU, 0}, MV_HEAD_IDENTITY_MSE);
    mv_net *net;
    mv_workspace *ws;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&ws, &arch, 2), MV_OK);
    mv_net_init(net, 9);
    mv_real *before = malloc(sizeof *before * net->p.count);
    assert_non_null(before);
    memcpy(before, net->p.data, sizeof *before * net->p.count);
    const mv_real x[8] = {1, 2, 3, 4, -1, -2, -3, -4};
    mv_real gx[8];
    int index[2] = {1, 0};
    assert_int_equal(mv_input_grad(net, ws, x, 2, (mv_target){MV_OBJ_LOGIT, 0}, index, gx, NULL),
                     MV_OK);
    assert_memory_equal(before, net->p.data, sizeof *before * net->p.count);
    /* bad requests are refused with a message, before any work */
    index[1] = 2;
    assert_int_equal(mv_input_grad(net, ws, x, 2, (mv_target){MV_OBJ_LOGIT, 0}, index, gx, NULL),
                     MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "unit 2"));
    index[1] = 0;
    assert_int_equal(mv_input_grad(net, ws, x, 3, (mv_target){MV_OBJ_LOGIT, 0}, index, gx, NULL),
                     MV_ERR_ARG);
    assert_int_equal(mv_input_grad(net, ws, x, 2, (mv_target){MV_OBJ_LOGPROB, 0}, index, gx, NULL),
                     MV_ERR_ARG);
    assert_int_equal(mv_input_grad(net, ws, x, 2, (mv_target){MV_OBJ_HIDDEN, 1}, index, gx, NULL),
                     MV_ERR_ARG);
    free(before);
    mv_net_free(net);
    mv_workspace_free(ws);
}

/* ------------------------------------------------------------------ golden files */

static double *read_golden(const char *name, size_t *count)
{
    char path[512], line[128];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open golden file %s", path);
    if (!fgets(line, sizeof line, f) || !fgets(line, sizeof line, f) ||
        sscanf(line, "%zu", count) != 1 || *count == 0 || *count > 100000)
        fail_msg("%s: bad header", path);
    double *v = malloc(sizeof *v * *count);
    assert_non_null(v);
    for (size_t i = 0; i < *count; i++)
        if (!fgets(line, sizeof line, f) || sscanf(line, "%lf", &v[i]) != 1)
            fail_msg("%s: value %zu missing", path, i);
    fclose(f);
    return v;
}

static void test_golden_gradients(void **state)
{
    (void)state;
    size_t compared = 0;
    for (int i = 0; i < GOLDEN_CASES; i++) {
        mv_gradcheck_config cfg;
        char name[64];
        golden_case(i, &cfg, name, sizeof name);
        size_t n_golden, n;
        double *golden = read_golden(name, &n_golden), *got;
        assert_int_equal(golden_compute(&cfg, &got, &n), MV_OK);
        assert_int_equal(n, n_golden);
        double scale = 0;
        for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(golden[k]));
        assert_true(scale > 0);
        /* In float32 an entry that cancels to ~0 carries rounding of the tensor's scale. */
        const double floor = GOLDEN_TOL < 1e-5 ? 1e-9 : 1e-3 * scale;
        for (size_t k = 0; k < n; k++)
            if (!(mv_rel_error(got[k], golden[k], floor) <= GOLDEN_TOL))
                fail_msg("%s value %zu: got %.17g, golden %.17g", name, k, got[k], golden[k]);
        compared += n;
        free(golden);
        free(got);
    }
    assert_true(compared > 1000);
}

/* ------------------------------------------------------------------ threads */

/* Everything a training step and an input gradient produce, with 1 and with 2 threads, on
 * shapes large enough for the parallel paths to run. */
static void run_all_passes(int threads, mv_real *out, size_t *count)
{
    omp_set_num_threads(threads);
    mv_arch arch = make_arch("784,256,128,10", (mv_activation){MV_ACT_GELU, 0},
                             MV_HEAD_SOFTMAX_CE);
    enum { B = 64 };
    mv_net *net;
    mv_workspace *ws;
    mv_params *g;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    assert_int_equal(mv_workspace_create(&ws, &arch, B), MV_OK);
    assert_int_equal(mv_params_create(&g, &arch), MV_OK);
    mv_net_init(net, 21);
    mv_real *x = malloc(sizeof *x * B * 784), *y = calloc(B * 10, sizeof *y);
    assert_true(x && y);
    mv_rng rng;
    mv_rng_seed(&rng, 4);
    for (int i = 0; i < B * 784; i++) x[i] = (mv_real)mv_rng_uniform(&rng);
    int index[B];
    for (int r = 0; r < B; r++) {
        y[r * 10 + r % 10] = 1;
        index[r] = (r * 7) % 10;
    }
    size_t k = 0;
    mv_forward(net, ws, x, B);
    mv_loss(net, ws, y, B, 1);
    mv_backward(net, ws, x, B, g, out);
    k += (size_t)B * 784;
    memcpy(out + k, g->data, sizeof *out * g->count);
    k += g->count;
    assert_int_equal(mv_input_grad(net, ws, x, B, (mv_target){MV_OBJ_LOGIT, 0}, index, out + k,
                                   NULL), MV_OK);
    k += (size_t)B * 784;
    assert_int_equal(mv_input_grad(net, ws, x, 1, (mv_target){MV_OBJ_LOGPROB, 0}, index, out + k,
                                   NULL), MV_OK);
    k += 784;
    *count = k;
    free(x);
    free(y);
    mv_net_free(net);
    mv_workspace_free(ws);
    mv_params_free(g);
}

static void test_bitwise_identical_across_threads(void **state)
{
    (void)state;
    const size_t cap = 64 * 784 * 2 + 784 + 784 * 256 + 256 + 256 * 128 + 128 + 1290;
    mv_real *one = alloc_poisoned(cap), *two = alloc_poisoned(cap);
    size_t n1, n2;
    run_all_passes(1, one, &n1);
    run_all_passes(2, two, &n2);
    omp_set_num_threads(omp_get_num_procs());
    assert_int_equal(n1, n2);
    assert_all_finite(one, n1);
    assert_memory_equal(one, two, sizeof *one * n1);
    free(one);
    free(two);
}

/* ------------------------------------------------------------------ plumbing */

/* mv_arch_set_widths(inputs, hidden, outputs) does what mv_arch_parse_widths does on the
 * text "inputs,hidden,outputs" (or "inputs,outputs" for no hidden list): the same status,
 * widths and message, whatever is wrong with the list. */
static void test_arch_set_widths_is_the_parse_of_the_whole_list(void **state)
{
    (void)state;
    static const char *const hidden[] = {
        "", "128,64", "7", "4,,4", "4,", ",4", ",", "0", "-3", "4 ", " 4", "+4", "12x",
        "99999999999", "1048577", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,x",
        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,",
    };
    static const int ends[][2] = {{784, 10}, {3, 1}, {1048577, 2}};
    for (size_t e = 0; e < sizeof ends / sizeof *ends; e++)
        for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++) {
            char text[256], message[512];
            if (*hidden[i])
                snprintf(text, sizeof text, "%d,%s,%d", ends[e][0], hidden[i], ends[e][1]);
            else
                snprintf(text, sizeof text, "%d,%d", ends[e][0], ends[e][1]);
            mv_arch parsed = {0}, set = {0};
            const mv_status want = mv_arch_parse_widths(&parsed, text);
            snprintf(message, sizeof message, "%s", mv_last_error());
            const mv_status got = mv_arch_set_widths(&set, ends[e][0], hidden[i], ends[e][1]);
            if (got != want)
                fail_msg("'%s': status %d, the parse gives %d", text, got, want);
            if (got != MV_OK)
                assert_string_equal(mv_last_error(), message);
            else
                assert_memory_equal(&set, &parsed, sizeof set);
        }
}

static void test_arch_parsing_and_validation(void **state)
{
    (void)state;
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, "784,128,64,10"), MV_OK);
    assert_int_equal(arch.n_layers, 3);
    assert_int_equal(arch.widths[3], 10);
    static const char *const bad[] = {"", "784", "784,,10", "784,0,10", "784,-3", "784,10,",
                                      "12x,3", "784,99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mv_arch scratch = {0};
        if (mv_arch_parse_widths(&scratch, bad[i]) != MV_ERR_ARG)
            fail_msg("layer list '%s' was accepted", bad[i]);
    }
    mv_activation act;
    assert_int_equal(mv_activation_parse(&act, "5relu"), MV_OK);
    assert_true(act.kind == MV_ACT_SCALED_RELU && act.param == 5);
    assert_int_equal(mv_activation_parse(&act, "leaky_relu:0.2"), MV_OK);
    assert_true(act.kind == MV_ACT_LEAKY_RELU && act.param == 0.2f);
    assert_int_equal(mv_activation_parse(&act, "leaky_relu"), MV_OK);
    assert_true(act.param == 0.01f);
    assert_int_equal(mv_activation_parse(&act, "swish"), MV_ERR_ARG);
    assert_int_equal(mv_activation_parse(&act, "tanh:3"), MV_ERR_ARG);
    assert_int_equal(mv_activation_parse(&act, "scaled_relu:-1"), MV_ERR_ARG);
    assert_int_equal(mv_activation_parse(&act, "0relu"), MV_ERR_ARG);
    for (int k = 0; k < MV_ACT_COUNT; k++) {
        assert_int_equal(mv_activation_parse(&act, mv_act_name((mv_act_kind)k)), MV_OK);
        assert_int_equal(act.kind, k);
    }
    mv_head head;
    assert_int_equal(mv_head_parse(&head, "bce"), MV_OK);
    assert_int_equal(head, MV_HEAD_SIGMOID_BCE);
    assert_int_equal(mv_head_parse(&head, "nll"), MV_ERR_ARG);
    arch = make_arch("4,1", (mv_activation){0}, MV_HEAD_SIGMOID_BCE);
    arch.head = MV_HEAD_SOFTMAX_CE;
    assert_int_equal(mv_arch_validate(&arch), MV_ERR_ARG); /* softmax over one output */
    assert_int_equal(mv_arch_param_count(&(mv_arch){.n_layers = 2, .widths = {3, 2, 1}}), 11);
    mv_net placeholder, *net = &placeholder;
    arch.n_layers = 0;
    assert_int_equal(mv_net_create(&net, &arch), MV_ERR_ARG);
    assert_null(net);
}

static void test_rng_is_reproducible_and_sane(void **state)
{
    (void)state;
    mv_rng a, b;
    mv_rng_seed(&a, 42);
    mv_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(mv_rng_next(&a) == mv_rng_next(&b));
    mv_rng_seed(&b, 43);
    assert_true(mv_rng_next(&a) != mv_rng_next(&b));
    double sum = 0, sq = 0;
    const int n = 200000;
    int counts[7] = {0};
    for (int i = 0; i < n; i++) {
        double u = mv_rng_uniform(&a), g = mv_rng_normal(&a);
        assert_true(u >= 0 && u < 1 && isfinite(g));
        sum += g;
        sq += g * g;
        counts[mv_rng_below(&a, 7)]++;
    }
    assert_true(fabs(sum / n) < 0.01 && fabs(sq / n - 1) < 0.02);
    for (int k = 0; k < 7; k++) assert_true(abs(counts[k] - n / 7) < n / 70);
}

static void test_init_scales(void **state)
{
    (void)state;
    mv_arch arch = make_arch("784,400,300,10", (mv_activation){MV_ACT_RELU, 0},
                             MV_HEAD_SOFTMAX_CE);
    arch.act[1] = (mv_activation){MV_ACT_TANH, 0};
    mv_net *net;
    assert_int_equal(mv_net_create(&net, &arch), MV_OK);
    mv_net_init(net, 1);
    const double want[3] = {sqrt(2.0 / 784), sqrt(2.0 / (400 + 300)), sqrt(2.0 / (300 + 10))};
    for (int l = 0; l < 3; l++) {
        const size_t n = (size_t)arch.widths[l] * arch.widths[l + 1];
        double sq = 0;
        for (size_t i = 0; i < n; i++) sq += (double)net->p.W[l][i] * net->p.W[l][i];
        if (fabs(sqrt(sq / n) / want[l] - 1) > 0.05)
            fail_msg("layer %d: std %g, want %g", l, sqrt(sq / n), want[l]);
        for (int j = 0; j < arch.widths[l + 1]; j++) assert_true(net->p.b[l][j] == 0);
    }
    mv_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activation_slopes_match_differences),
        cmocka_unit_test(test_activation_values),
        cmocka_unit_test(test_activations_stay_finite_at_extremes),
        cmocka_unit_test(test_head_losses_by_hand),
        cmocka_unit_test(test_heads_never_nan_for_large_logits),
        cmocka_unit_test(test_soft_labels_ce_gradient),
        cmocka_unit_test(test_every_activation_and_head),
        cmocka_unit_test(test_input_gradient_objectives),
        cmocka_unit_test(test_shallow_and_deep_networks),
        cmocka_unit_test(test_gradients_through_dropout),
        cmocka_unit_test(test_dropout_masks),
        cmocka_unit_test(test_textbook_sigmoid_bce),
        cmocka_unit_test(test_textbook_identity),
        cmocka_unit_test(test_textbook_scaled_relu),
        cmocka_unit_test(test_textbook_tanh_bce),
        cmocka_unit_test(test_textbook_input_gradient),
        cmocka_unit_test(test_batch_gradient_is_mean_of_samples),
        cmocka_unit_test(test_input_grad_is_pure_and_checked),
        cmocka_unit_test(test_golden_gradients),
        cmocka_unit_test(test_bitwise_identical_across_threads),
        cmocka_unit_test(test_arch_parsing_and_validation),
        cmocka_unit_test(test_arch_set_widths_is_the_parse_of_the_whole_list),
        cmocka_unit_test(test_rng_is_reproducible_and_sane),
        cmocka_unit_test(test_init_scales),
    };
#ifdef MV_F64
    return cmocka_run_group_tests_name("core (float64)", tests, NULL, NULL);
#else
    return cmocka_run_group_tests_name("core (float32)", tests, NULL, NULL);
#endif
}
