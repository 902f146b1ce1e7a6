/* test_api.c: the library as an embedder links it (lib/libmlpviz.a, float32 API) and the one
 * public door into its double-precision copy, mv_gradcheck(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "mlpviz.h"

static mv_gradcheck_config config_for(const char *widths, const char *act, const char *loss)
{
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, widths), MV_OK);
    mv_activation a;
    assert_int_equal(mv_activation_parse(&a, act), MV_OK);
    for (int l = 0; l < arch.n_layers - 1; l++) arch.act[l] = a;
    assert_int_equal(mv_head_parse(&arch.head, loss), MV_OK);
    mv_gradcheck_config cfg;
    mv_gradcheck_defaults(&cfg, &arch);
    return cfg;
}

static void test_gradcheck_double_is_sharp(void **state)
{
    (void)state;
    mv_gradcheck_config cfg = config_for("30,20,10", "tanh", "ce");
    mv_gradcheck_report r;
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_DOUBLE, &r), MV_OK);
    assert_int_equal(r.n_tensors, 6);
    assert_true(r.max_rel_error <= 1e-6);
    assert_true(r.float_vs_double >= 0 && r.float_vs_double <= 1e-4);
    /* the float and double copies really differ: float32 rounding is visible */
    assert_true(r.float_vs_double > 1e-9);
    assert_int_equal(mv_gradcheck_zero_tensor(&r), -1);
    for (int t = 0; t < r.n_tensors; t++) assert_true(r.tensor[t].checked > 0);
}

static void test_gradcheck_float_is_coarse_but_right(void **state)
{
    (void)state;
    mv_gradcheck_config cfg = config_for("30,20,10", "sigmoid", "bce");
    mv_gradcheck_report f, d;
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_FLOAT, &f), MV_OK);
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_DOUBLE, &d), MV_OK);
    assert_true(f.max_rel_error < 5e-2);
    /* double is the sharper check by orders of magnitude */
    assert_true(d.max_rel_error * 100 < f.max_rel_error);
}

static void test_gradcheck_rejects_bad_config(void **state)
{
    (void)state;
    mv_gradcheck_config cfg = config_for("5,3", "relu", "mse");
    mv_gradcheck_report r;
    cfg.batch = 0;
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_DOUBLE, &r), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "batch"));
    cfg.batch = 2;
    cfg.target = (mv_target){MV_OBJ_HIDDEN, 0}; /* a one-layer net has no hidden layer */
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_DOUBLE, &r), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "hidden layer"));
    cfg.target = (mv_target){MV_OBJ_LOGPROB, 0};
    assert_int_equal(mv_gradcheck(&cfg, MV_PREC_FLOAT, &r), MV_ERR_ARG);
    assert_string_equal(mv_status_string(MV_ERR_ARG), "invalid argument");
}

static void test_zero_gradient_is_reported(void **state)
{
    (void)state;
    mv_gradcheck_report r = {.n_tensors = 2};
    r.tensor[0].max_abs_grad = 1;
    r.tensor[1].max_abs_grad = 0;
    assert_int_equal(mv_gradcheck_zero_tensor(&r), 1);
}

/* A job of this process alone: agreeing finds no failure, or names rank 0 with the reason
 * given, as the CLI's processes report one. */
static void test_job_of_one_agrees(void **state)
{
    (void)state;
    assert_int_equal(mv_dist_size(), 1);
    assert_int_equal(mv_dist_rank(), 0);
    assert_int_equal(mv_dist_agree(MV_OK), -1);
    assert_int_equal(mv_dist_agree_reason(MV_ERR_IO, "judge.mlp: cannot open"), 0);
    assert_string_equal(mv_last_error(), "rank 0: judge.mlp: cannot open");
    assert_int_equal(mv_dist_agree_reason(MV_OK, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_double_is_sharp),
        cmocka_unit_test(test_gradcheck_float_is_coarse_but_right),
        cmocka_unit_test(test_gradcheck_rejects_bad_config),
        cmocka_unit_test(test_zero_gradient_is_reported),
        cmocka_unit_test(test_job_of_one_agrees),
    };
    return cmocka_run_group_tests_name("public API (libmlpviz.a)", tests, NULL, NULL);
}
