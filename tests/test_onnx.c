/* test_onnx.c: the ONNX reader against outside references.
 *  - PyTorch: the MLPs of tests/fixtures/onnx/MANIFEST (opsets 9, 13, 17; Gemm and MatMul
 *    forms; every supported activation and final op; external data, float_data, sidecars),
 *    exported by Debian's PyTorch with its float32 and float64 outputs and float64 autograd
 *    input gradients beside them (scripts/onnx/make_fixtures.py), and the 784-256-128-10
 *    Fashion-MNIST model of models/ (scripts/onnx/train_pytorch_mlp.py).
 *  - ONNX's own conformance cases (Debian's libonnx-testdata): single-node graphs whose extra
 *    inputs (B, C of a Gemm, ...) this test binds as initializers, then compares mlpviz's
 *    outputs with the expected ones; the cases that are not MLPs must be refused by name.
 * The network is run directly on the graph's inputs (already normalised), permuted from the
 * graph's chw order to mlpviz's hwc order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlpviz.h"
#include "onnx.pb-c.h"

#define FIXTURES "tests/fixtures/onnx/"
#define CONFORMANCE "/usr/share/libonnx-testdata/data/node/"

/* ---------------------------------------------------------------- helpers */

/* The whole of a file; *size receives its length. Fails the test when it cannot. */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* count doubles from a raw little-endian file of float32 (f32 = 1) or float64. */
static double *read_raw(const char *path, int f32, size_t count)
{
    size_t size;
    uint8_t *data = slurp(path, &size);
    assert_int_equal(size, count * (f32 ? 4 : 8));
    double *out = malloc(sizeof *out * count);
    assert_non_null(out);
    for (size_t i = 0; i < count; i++) {
        if (f32) {
            float v;
            memcpy(&v, data + 4 * i, 4);
            out[i] = v;
        } else {
            memcpy(&out[i], data + 8 * i, 8);
        }
    }
    free(data);
    return out;
}

/* chw -> hwc for n images of C x H x W. */
static mv_real *to_hwc(const double *chw, int n, int C, int H, int W)
{
    const int D = C * H * W;
    mv_real *x = malloc(sizeof *x * (size_t)(n * D));
    assert_non_null(x);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                x[(size_t)r * D + (size_t)p * C + c] = (mv_real)chw[(size_t)r * D + c * H * W + p];
    return x;
}

/* ||a - b|| / max(||b||, floor) over n values. */
static double normwise(const double *a, const double *b, size_t n, double floor)
{
    double d = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        nb += b[i] * b[i];
    }
    return sqrt(d) / fmax(sqrt(nb), floor);
}

/* Class names "0".."K-1" for hints. */
static const char *const *numbered(int K)
{
    static char storage[4096][12];
    static const char *names[4096];
    for (int k = 0; k < K && k < 4096; k++) {
        snprintf(storage[k], sizeof storage[k], "%d", k);
        names[k] = storage[k];
    }
    return names;
}

/* The graph's outputs for x [n][D] (hwc): the head's output, its log, or the last layer's
 * z, as the model's "onnx.output" says; out [n][K] as double. */
static double *graph_outputs(const mv_model *m, const mv_real *x, int n)
{
    const mv_arch *a = &m->net->arch;
    const int K = a->widths[a->n_layers], L = a->n_layers;
    mv_workspace *ws;
    assert_int_equal(mv_workspace_create(&ws, a, n), MV_OK);
    mv_forward(m->net, ws, x, n);
    const char *kind = mv_model_meta_get(m, "onnx.output");
    assert_non_null(kind);
    double *out = malloc(sizeof *out * (size_t)(n * K));
    for (int i = 0; i < n * K; i++) {
        const double z = ws->z[L - 1][i], p = ws->a[L - 1][i];
        out[i] = !strcmp(kind, "logits") ? z : !strcmp(kind, "logsoftmax") ? log(p) : p;
    }
    mv_workspace_free(ws);
    return out;
}

/* ---------------------------------------------------------------- PyTorch fixtures */

typedef struct {
    char name[96], form[16], act[16], final[16], metadata[16];
    int opset, C, H, W, K;
} fixture;

static int read_manifest(fixture *fx, int max)
{
    FILE *f = fopen(FIXTURES "MANIFEST", "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        fixture *x = &fx[n];
        assert_int_equal(sscanf(line, "%95s %d %15s %15s %15s %d %d %d %d %15s", x->name,
                                &x->opset, x->form, x->act, x->final, &x->C, &x->H, &x->W,
                                &x->K, x->metadata), 10);
        n++;
    }
    fclose(f);
    return n;
}

/* Loads a fixture; the ones without metadata get hints (their x files are the graph's
 * inputs, so any mean/std do: the test runs the network on x itself). */
static mv_model *load_fixture(const char *path, const fixture *x)
{
    mv_model_hints h = {.n_mean = 1, .n_std = 1, .std = {1}, .class_names = numbered(x->K),
                        .n_classes = x->K, .channels = x->C, .height = x->H, .width = x->W};
    mv_model *m = NULL;
    const mv_status st = mv_model_load_with(&m, path, strcmp(x->metadata, "none") ? NULL : &h);
    if (st)
        fail_msg("%s: %s", path, mv_last_error());
    return m;
}

/* Input gradients of the pre-softmax score z[r][r % K] against PyTorch's float64 autograd. */
static double gradient_error(const mv_model *m, const mv_real *x, const double *want, int n,
                             int C, int H, int W)
{
    const int D = C * H * W, K = m->n_classes;
    mv_workspace *ws;
    assert_int_equal(mv_workspace_create(&ws, &m->net->arch, n), MV_OK);
    int index[16];
    for (int r = 0; r < n; r++) index[r] = r % K;
    mv_real *g = malloc(sizeof *g * (size_t)(n * D));
    double *g_chw = malloc(sizeof *g_chw * (size_t)(n * D));
    assert_int_equal(mv_input_grad(m->net, ws, x, n, (mv_target){MV_OBJ_LOGIT, 0}, index, g,
                                   NULL), MV_OK);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                g_chw[(size_t)r * D + c * H * W + p] = g[(size_t)r * D + (size_t)p * C + c];
    const double err = normwise(g_chw, want, (size_t)(n * D), 1e-30);
    double nonzero = 0;
    for (int i = 0; i < n * D; i++) nonzero += fabs(g_chw[i]);
    assert_true(nonzero > 0); /* an all-zero gradient is a bug, whatever PyTorch says */
    free(g);
    free(g_chw);
    mv_workspace_free(ws);
    return err;
}

static void check_fixture(const fixture *x, const char *onnx, const char *prefix, int n)
{
    char path[512];
    const int D = x->C * x->H * x->W;
    mv_model *m = load_fixture(onnx, x);
    assert_int_equal(m->channels, x->C);
    assert_int_equal(m->height, x->H);
    assert_int_equal(m->width, x->W);
    assert_int_equal(m->n_classes, x->K);
    snprintf(path, sizeof path, "%s.x.f32", prefix);
    double *xs = read_raw(path, 1, (size_t)(n * D));
    mv_real *xh = to_hwc(xs, n, x->C, x->H, x->W);
    double *got = graph_outputs(m, xh, n);
    for (int f32 = 0; f32 <= 1; f32++) {
        snprintf(path, sizeof path, "%s.out.%s", prefix, f32 ? "f32" : "f64");
        double *want = read_raw(path, f32, (size_t)(n * x->K));
        const double err = normwise(got, want, (size_t)(n * x->K), 1e-6);
        if (!(err < 1e-5))
            fail_msg("%s: outputs differ from PyTorch's %s by %g (normwise)", onnx,
                     f32 ? "float32" : "float64", err);
        free(want);
    }
    snprintf(path, sizeof path, "%s.grad.f64", prefix);
    double *want = read_raw(path, 0, (size_t)(n * D));
    const double err = gradient_error(m, xh, want, n, x->C, x->H, x->W);
    if (!(err <= 1e-5))
        fail_msg("%s: input gradients differ from PyTorch's autograd by %g (normwise)", onnx,
                 err);
    free(want);
    free(got);
    free(xh);
    free(xs);
    mv_model_free(m);
}

static void test_pytorch_fixtures(void **state)
{
    (void)state;
    fixture fx[64];
    const int n = read_manifest(fx, 64);
    assert_true(n >= 10);
    for (int i = 0; i < n; i++) {
        char onnx[256], prefix[256];
        snprintf(onnx, sizeof onnx, FIXTURES "%.96s.onnx", fx[i].name);
        snprintf(prefix, sizeof prefix, FIXTURES "%.96s", fx[i].name);
        check_fixture(&fx[i], onnx, prefix, 4);
    }
}

/* The target of issue 13: a PyTorch-trained 784-256-128-10 MLP exported with the defaults,
 * input gradients within 1e-5 (normwise, float32) of PyTorch autograd. */
static void test_pytorch_fashion_model(void **state)
{
    (void)state;
    const fixture x = {.name = "pytorch-fashion", .metadata = "none", .C = 1, .H = 28,
                       .W = 28, .K = 10};
    check_fixture(&x, "models/pytorch-fashion-mlp.onnx", FIXTURES "pytorch-fashion", 8);
}

/* The fixtures' declared activation is what the reader recognised. */
static void test_fixture_activations(void **state)
{
    (void)state;
    fixture fx[64];
    const int n = read_manifest(fx, 64);
    for (int i = 0; i < n; i++) {
        char onnx[256];
        snprintf(onnx, sizeof onnx, FIXTURES "%.96s.onnx", fx[i].name);
        mv_model *m = load_fixture(onnx, &fx[i]);
        const char *want = !strcmp(fx[i].act, "leakyrelu") ? "leaky_relu" : fx[i].act;
        assert_string_equal(mv_act_name(m->net->arch.act[0].kind), want);
        assert_string_equal(mv_model_meta_get(m, "onnx.output"),
                            !strcmp(fx[i].final, "none") ? "logits" : fx[i].final);
        mv_model_free(m);
    }
}

/* ---------------------------------------------------------------- ONNX conformance cases */

/* A TensorProto file's float values and dims (raw_data or float_data; zeros for other
 * element types). */
static double *tensor_file(const char *path, int64_t dims[8], int *ndim, size_t *count)
{
    size_t size;
    uint8_t *data = slurp(path, &size);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, data);
    assert_non_null(t);
    *ndim = (int)t->n_dims;
    *count = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        dims[i] = t->dims[i];
        *count *= (size_t)t->dims[i];
    }
    double *v = calloc(*count, sizeof *v);
    const int is_float = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    for (size_t i = 0; is_float && i < *count; i++) { /* others: zeros (refused anyway) */
        float f = 0;
        if (t->has_raw_data)
            memcpy(&f, t->raw_data.data + 4 * i, 4);
        else
            f = t->float_data[i];
        v[i] = f;
    }
    onnx__tensor_proto__free_unpacked(t, NULL);
    free(data);
    return v;
}

/* Writes CASE/model.onnx with graph inputs 1.. turned into initializers holding the
 * values of test_data_set_0/input_k.pb, to out. */
static void bind_inputs(const char *dir, const char *out)
{
    char path[512];
    size_t size;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    uint8_t *data = slurp(path, &size);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    assert_non_null(m);
    Onnx__GraphProto *g = m->graph;
    Onnx__TensorProto **inits = calloc(g->n_input, sizeof *inits);
    uint8_t *blobs[8] = {0};
    char *own_names[8] = {0};
    for (size_t k = 1; k < g->n_input && k < 8; k++) {
        size_t n;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%zu.pb", dir, k);
        blobs[k] = slurp(path, &n);
        inits[k - 1] = onnx__tensor_proto__unpack(NULL, n, blobs[k]);
        assert_non_null(inits[k - 1]);
        own_names[k] = inits[k - 1]->name;
        inits[k - 1]->name = g->input[k]->name;
    }
    g->initializer = inits;
    g->n_initializer = g->n_input - 1;
    const size_t packed_size = onnx__model_proto__get_packed_size(m);
    uint8_t *packed = malloc(packed_size);
    onnx__model_proto__pack(m, packed);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(packed, 1, packed_size, f), packed_size);
    fclose(f);
    for (size_t k = 0; k + 1 < g->n_input && k < 7; k++) {
        inits[k]->name = own_names[k + 1]; /* the graph input's name was borrowed */
        onnx__tensor_proto__free_unpacked(inits[k], NULL);
        free(blobs[k + 1]);
    }
    g->initializer = NULL;
    g->n_initializer = 0;
    free(inits);
    free(packed);
    onnx__model_proto__free_unpacked(m, NULL);
    free(data);
}

/* Loads the bound case with hints from its input and output shapes. Returns the status;
 * on success *model, the input values in *x (hwc) and the expected outputs. */
static mv_status load_case(const char *name, mv_model **model, mv_real **x, double **want,
                           int *n, size_t *n_out)
{
    char dir[256], path[512], bound[64];
    snprintf(dir, sizeof dir, CONFORMANCE "%s", name);
    snprintf(bound, sizeof bound, "/tmp/mlpviz-conformance-%d.onnx", (int)getpid());
    bind_inputs(dir, bound);
    int64_t in_dims[8], out_dims[8];
    int in_nd, out_nd;
    size_t in_count;
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    double *in = tensor_file(path, in_dims, &in_nd, &in_count);
    snprintf(path, sizeof path, "%s/test_data_set_0/output_0.pb", dir);
    *want = tensor_file(path, out_dims, &out_nd, n_out);
    *n = (int)in_dims[0];
    const int C = in_nd == 4 ? (int)in_dims[1] : 1, H = in_nd >= 3 ? (int)in_dims[in_nd - 2] : 1,
              W = (int)in_dims[in_nd - 1];
    const int K = (int)(*n_out / (size_t)*n);
    mv_model_hints h = {.n_mean = 1, .n_std = 1, .std = {1}, .class_names = numbered(K),
                        .n_classes = K, .channels = C, .height = H, .width = W};
    const mv_status st = mv_model_load_with(model, bound, &h);
    unlink(bound);
    *x = st ? NULL : to_hwc(in, *n, C, H, W);
    free(in);
    return st;
}

/* The cases of the ops an MLP uses whose input is a batch (rank 2 or more; the *_example
 * cases of Sigmoid and Tanh feed one rank-1 vector, which has no batch dimension). */
static void test_conformance_cases(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "test_gemm_alpha", "test_gemm_beta",
        "test_gemm_default_no_bias",
        "test_gemm_default_scalar_bias", "test_gemm_default_single_elem_vector_bias",
        "test_gemm_default_vector_bias", "test_gemm_default_zero_bias", "test_gemm_transposeB",
        "test_matmul_2d", "test_add_bcast", "test_relu", "test_sigmoid", "test_tanh",
        "test_softmax_example", "test_softmax_large_number",
        "test_flatten_axis1", "test_flatten_default_axis", "test_flatten_negative_axis3"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mv_model *m = NULL;
        mv_real *x;
        double *want;
        int n;
        size_t n_out;
        if (load_case(cases[i], &m, &x, &want, &n, &n_out))
            fail_msg("%s: refused: %s", cases[i], mv_last_error());
        double *got = graph_outputs(m, x, n);
        const double err = normwise(got, want, n_out, 1e-6);
        if (!(err < 1e-6))
            fail_msg("%s: outputs differ from the expected ones by %g (normwise)", cases[i], err);
        free(got);
        free(want);
        free(x);
        mv_model_free(m);
    }
}

/* Conformance graphs that are not MLPs: refused, naming the node's op and the reason. */
static void test_conformance_refusals(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"test_gemm_transposeA", "transA=1"},
        {"test_gemm_all_attributes", "transA=1"},
        {"test_flatten_axis0", "axis other than 1"},
        {"test_flatten_axis2", "axis other than 1"},
        {"test_softmax_axis_0", "part of the features"},
        {"test_softmax_axis_1", "part of the features"},
        {"test_softmax_default_axis", "part of the features"},
        {"test_matmul_3d", "non-flat"},
        {"test_add", "batch-dependent bias"},
        {"test_add_uint8", "element type 2"},
        {"test_matmulinteger", "element type 2"},
        {"test_gemm_default_matrix_bias", "batch-dependent bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mv_model *m = NULL;
        mv_real *x = NULL;
        double *want = NULL;
        int n;
        size_t n_out;
        const mv_status st = load_case(cases[i][0], &m, &x, &want, &n, &n_out);
        if (st == MV_OK)
            fail_msg("%s: loaded, but it is not an MLP", cases[i][0]);
        if (!strstr(mv_last_error(), cases[i][1]) || !strstr(mv_last_error(), "mlpviz-conf"))
            fail_msg("%s: the message '%s' lacks '%s' or the file", cases[i][0],
                     mv_last_error(), cases[i][1]);
        assert_null(m);
        free(want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pytorch_fixtures),
        cmocka_unit_test(test_pytorch_fashion_model),
        cmocka_unit_test(test_fixture_activations),
        cmocka_unit_test(test_conformance_cases),
        cmocka_unit_test(test_conformance_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
