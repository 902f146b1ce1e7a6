/* class_fixtures.c: see class_fixtures.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "class_fixtures.h"

mv_dataset *fixture_dataset(int n, int C, int H, int W, int K)
{
    mv_dataset *d = calloc(1, sizeof *d);
    assert_non_null(d);
    *d = (mv_dataset){.count = n, .channels = C, .height = H, .width = W, .n_classes = K};
    d->class_names = calloc((size_t)K, sizeof *d->class_names);
    d->pixels = malloc(sizeof *d->pixels * (size_t)n * C * H * W);
    d->labels = malloc(sizeof *d->labels * (size_t)n);
    assert_true(d->class_names && d->pixels && d->labels);
    for (int k = 0; k < K; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", k);
        assert_non_null(d->class_names[k] = strdup(name));
    }
    return d;
}

mv_model *fixture_model(int C, int H, int W, int K)
{
    mv_arch arch = {.n_layers = 1, .widths = {C * H * W, K}, .head = MV_HEAD_SOFTMAX_CE};
    mv_model *m;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    m->channels = C, m->height = H, m->width = W;
    const char *names[8] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};
    assert_int_equal(mv_model_set_class_names(m, names, K), MV_OK);
    return m;
}

const float *fixture_extra(const mv_model *m, const char *name, size_t expect)
{
    size_t count;
    const float *x = mv_model_extra_get(m, name, &count);
    assert_non_null(x);
    assert_int_equal(count, expect);
    return x;
}
