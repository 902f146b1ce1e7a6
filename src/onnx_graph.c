/* onnx_graph.c: an ONNX graph to an MLP. The nodes are read in file order (ONNX requires a
 * topological order, so a node that reads a name not yet made is a cycle or a broken graph)
 * while one "stream" follows the image batch through the chain:
 *
 *   RAW     the input of the next layer (the image, or an activation's output)
 *   LINEAR  a dense layer's output z = W a + b, its activation not known yet
 *   ACTED   an activation applied to z; committed when the next op shows it was hidden,
 *           or, at the end, a Sigmoid becomes the sigmoid head
 *
 * Gemm and MatMul start a layer (folding alpha, beta, transB and a Transpose of an
 * initializer into W), Add supplies its bias, an elementwise op on RAW gets an identity
 * layer in front, Softmax/LogSoftmax end the chain as the softmax head. Constants flow
 * beside the stream: initializers, Constant nodes, Transpose of a constant, and the shape
 * arithmetic PyTorch emits for x.view(x.size(0), -1) (Shape, Gather, Unsqueeze, Concat) with
 * the batch size as a symbol. GELU's Erf decomposition is recognised term by term. Anything
 * else is refused with the node, its op type and what is supported. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "onnx.h"

#define MAX_NODES 4096
#define MAX_IDENTITY 4096 /* widest identity layer put before a lone elementwise op */
#define BATCH INT64_MIN /* the symbolic batch size inside shape arithmetic */

static const char supported_ops[] =
    "Gemm, MatMul, Add, Flatten, Reshape, Transpose (of a constant), Relu, LeakyRelu, Sigmoid, "
    "Tanh, Softplus, Gelu (and its Erf form), Identity, Dropout, Constant, Shape, Gather, "
    "Unsqueeze, Concat, Softmax, LogSoftmax";

typedef enum { V_TENSOR, V_STREAM, V_SCALED, V_ERF, V_GELU_TERM } value_kind;

/* A named value. Gelu parts: V_SCALED = k x, V_ERF = erf(k x),
 * V_GELU_TERM = coef * (x if has_x) * (1 + erf(k x)), x being stream version `version`. */
typedef struct {
    const char *name;
    value_kind kind;
    const Onnx__TensorProto *proto; /* an initializer, decoded on first use */
    int decoded;
    mv_onnx_tensor t;
    int version;
    double k, coef;
    int has_x;
} value;

typedef enum { S_RAW, S_LINEAR, S_ACTED, S_FINAL } stream_state;

typedef struct {
    const mv_onnx_file *f;
    const Onnx__NodeProto *node; /* the node being read, for messages */
    value *values;
    int n_values, cap_values;
    /* the layers so far: W[l] [widths[l+1]][widths[l]], b[l] [widths[l+1]], owned */
    int n_layers;
    int widths[MV_MAX_LAYERS + 1];
    mv_activation act[MV_MAX_LAYERS];
    float *W[MV_MAX_LAYERS], *b[MV_MAX_LAYERS];
    /* the stream */
    stream_state state;
    mv_activation pending;  /* S_ACTED */
    int version;
    int n_dims;             /* feature dimensions (batch excluded) */
    int64_t dims[MV_ONNX_MAX_DIMS];
    const char *final_op;   /* "Softmax", "LogSoftmax", or NULL */
} builder;

/* ---------------------------------------------------------------- messages and values */

static mv_status node_fail(const builder *g, const char *fmt, ...) MV_PRINTF(2, 3);
static mv_status node_fail(const builder *g, const char *fmt, ...)
{
    const Onnx__NodeProto *n = g->node;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mv_fail(MV_ERR_FORMAT, "%s: node '%s' (%s): %s", g->f->path,
                   n && n->name && *n->name ? n->name : "(unnamed)",
                   n && n->op_type ? n->op_type : "?", what);
}

static value *find(builder *g, const char *name)
{
    for (int i = g->n_values - 1; i >= 0; i--)
        if (strcmp(g->values[i].name, name) == 0)
            return &g->values[i];
    return NULL;
}

static mv_status define(builder *g, const char *name, value v)
{
    if (!name || !*name)
        return node_fail(g, "an output without a name");
    if (find(g, name))
        return node_fail(g, "output '%s' is defined twice", name);
    if (g->n_values == g->cap_values) {
        const int cap = g->cap_values ? 2 * g->cap_values : 64;
        value *grown = realloc(g->values, sizeof *grown * (size_t)cap);
        if (!grown)
            return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate the graph's values", g->f->path);
        g->values = grown;
        g->cap_values = cap;
    }
    v.name = name;
    g->values[g->n_values++] = v;
    return MV_OK;
}

/* Input i of the node, or NULL with a message (absent, or not made yet). */
static mv_status input(builder *g, size_t i, value **out)
{
    const Onnx__NodeProto *n = g->node;
    if (i >= n->n_input || !n->input[i] || !*n->input[i])
        return node_fail(g, "missing input %zu", i);
    if (!(*out = find(g, n->input[i])))
        return node_fail(g, "reads '%s' before any node makes it (a cycle, or a broken "
                         "graph)", n->input[i]);
    return MV_OK;
}

/* Input i as a constant tensor, decoded on first use. */
static mv_status constant(builder *g, size_t i, const mv_onnx_tensor **t)
{
    value *v;
    mv_status st = input(g, i, &v);
    if (st)
        return st;
    if (v->kind != V_TENSOR)
        return node_fail(g, "input '%s' must be a constant (an initializer or Constant) in an "
                         "MLP", v->name);
    if (!v->decoded) {
        if ((st = mv_onnx_tensor_values(g->f, v->proto, &v->t)))
            return st;
        v->decoded = 1;
    }
    *t = &v->t;
    return MV_OK;
}

/* A float constant holding one value (any shape of one element). */
static mv_status scalar(builder *g, size_t i, double *out)
{
    const mv_onnx_tensor *t = NULL;
    mv_status st = constant(g, i, &t);
    if (st)
        return st;
    if (t->count != 1 || !t->values)
        return node_fail(g, "expects a single float constant");
    *out = t->values[0];
    return MV_OK;
}

static int is_stream(const builder *g, const value *v)
{
    return v->kind == V_STREAM && v->version == g->version;
}

static mv_status stream_input(builder *g, size_t i)
{
    value *v;
    mv_status st = input(g, i, &v);
    if (st)
        return st;
    if (v->kind == V_STREAM && v->version != g->version)
        return node_fail(g, "reads '%s', an earlier value of the image batch: the graph is "
                         "not a chain (branches and skip connections are not an MLP)", v->name);
    if (v->kind != V_STREAM)
        return node_fail(g, "input '%s' must be the image batch here", v->name);
    if (g->state == S_FINAL)
        return node_fail(g, "comes after the final %s", g->final_op);
    return MV_OK;
}

/* The node's one output becomes the stream's next version. */
static mv_status advance(builder *g)
{
    g->version++;
    if (g->node->n_output < 1)
        return node_fail(g, "has no output");
    return define(g, g->node->output[0], (value){.kind = V_STREAM, .version = g->version});
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = attribute(n, name);
    return a && a->has_i ? a->i : fallback;
}

static double attr_float(const Onnx__NodeProto *n, const char *name, double fallback)
{
    const Onnx__AttributeProto *a = attribute(n, name);
    return a && a->has_f ? a->f : fallback;
}

static int64_t feature_count(const builder *g)
{
    int64_t d = 1;
    for (int i = 0; i < g->n_dims; i++) d *= g->dims[i];
    return d;
}

/* 1 when every feature dimension except `axis` (an index into dims) is 1. */
static int only_axis(const builder *g, int axis)
{
    for (int i = 0; i < g->n_dims; i++)
        if (i != axis && g->dims[i] != 1)
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- layers */

/* Starts layer n_layers with M outputs; W (owned) is [M][in], b (owned) [M]. */
static mv_status push_layer(builder *g, int M, float *W, float *b)
{
    if (g->n_layers == MV_MAX_LAYERS) {
        free(W);
        free(b);
        return node_fail(g, "more than %d weight layers", MV_MAX_LAYERS);
    }
    const int l = g->n_layers++;
    g->widths[l + 1] = M;
    g->W[l] = W;
    g->b[l] = b;
    g->act[l] = (mv_activation){MV_ACT_IDENTITY, 0};
    g->state = S_LINEAR;
    return MV_OK;
}

/* Makes the stream RAW: a pending activation becomes the last layer's hidden activation. */
static void commit(builder *g)
{
    if (g->state == S_ACTED)
        g->act[g->n_layers - 1] = g->pending;
    g->state = S_RAW;
}

/* Puts an identity layer (W = I, b = 0: exact in float) before an op that needs a layer. */
static mv_status identity_layer(builder *g)
{
    commit(g);
    const int64_t D = feature_count(g);
    if (D > MAX_IDENTITY) /* D x D floats: 4096 is 64 MiB, 65536 would be 16 GiB */
        return node_fail(g, "would need an identity layer of %lld features (allowed up to "
                         "%d)", (long long)D, MAX_IDENTITY);
    float *W = calloc((size_t)(D * D), sizeof *W), *b = calloc((size_t)D, sizeof *b);
    if (!W || !b) {
        free(W);
        free(b);
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate an identity layer", g->f->path);
    }
    for (int64_t i = 0; i < D; i++) W[i * D + i] = 1;
    g->widths[g->n_layers] = (int)D; /* the stream keeps its dimensions: W is a view */
    return push_layer(g, (int)D, W, b);
}

/* Adds a constant to a LINEAR stream, broadcast against the stream's feature dimensions as
 * NumPy does (aligned on the right; a leading batch dimension must be 1). */
static mv_status add_bias(builder *g, const mv_onnx_tensor *c, double beta)
{
    const int M = g->widths[g->n_layers], extra = c->ndim - g->n_dims;
    int ok = c->values && extra <= 1 && (extra < 1 || c->dims[0] == 1);
    for (int i = 0; ok && i < g->n_dims && i < c->ndim; i++) {
        const int64_t cd = c->dims[c->ndim - 1 - i], sd = g->dims[g->n_dims - 1 - i];
        ok = cd == 1 || cd == sd;
    }
    if (!ok)
        return node_fail(g, "the bias must be a float constant that broadcasts over the "
                         "features alone (a batch-dependent bias is not an MLP)");
    float *b = g->b[g->n_layers - 1];
    for (int m = 0; m < M; m++) {
        /* m's index along each stream dimension, mapped to the constant's (1 = broadcast) */
        int64_t rest = m, at = 0, stride = 1;
        for (int i = 0; i < g->n_dims; i++) {
            const int64_t sd = g->dims[g->n_dims - 1 - i], idx = rest % sd;
            rest /= sd;
            if (i < c->ndim) {
                const int64_t cd = c->dims[c->ndim - 1 - i];
                at += (cd == 1 ? 0 : idx) * stride;
                stride *= cd;
            }
        }
        const float v = c->values[at];
        b[m] += beta == 1 ? v : (float)(beta * v);
    }
    return MV_OK;
}

/* Starts a dense layer from the stream and the constant B: z = alpha * x B' where B' is B
 * or its transpose, then W = alpha * B'^T stored [M][D]. */
static mv_status dense(builder *g, const mv_onnx_tensor *B, int transB, double alpha)
{
    if (g->state == S_LINEAR)
        g->state = S_RAW; /* two linear maps in a row: the first keeps identity */
    commit(g);
    const int64_t D = feature_count(g);
    if (!B->values || B->ndim != 2 || B->dims[transB ? 1 : 0] != D)
        return node_fail(g, "the weight must be a 2-D float constant whose %s dimension "
                         "matches the input's features", transB ? "second" : "first");
    const int64_t M = B->dims[transB ? 0 : 1];
    if (M < 1 || M > (1 << 20))
        return node_fail(g, "a layer width of 0 or above 2^20");
    float *W = malloc(sizeof *W * (size_t)(M * D)), *b = calloc((size_t)M, sizeof *b);
    if (!W || !b) {
        free(W);
        free(b);
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate a %lld x %lld layer", g->f->path,
                       (long long)M, (long long)D);
    }
    for (int64_t m = 0; m < M; m++)
        for (int64_t d = 0; d < D; d++) {
            const float v = B->values[transB ? m * D + d : d * M + m];
            W[m * D + d] = alpha == 1 ? v : (float)(alpha * v);
        }
    g->widths[g->n_layers] = (int)D;
    g->dims[g->n_dims - 1] = M;
    return push_layer(g, (int)M, W, b);
}

/* ---------------------------------------------------------------- ops on the stream */

/* Input 0 the image batch, input 1 a constant: Gemm, MatMul and Reshape begin so. */
static mv_status stream_and_constant(builder *g, const mv_onnx_tensor **t)
{
    mv_status st = stream_input(g, 0);
    return st ? st : constant(g, 1, t);
}

static mv_status op_gemm(builder *g)
{
    const Onnx__NodeProto *n = g->node;
    const mv_onnx_tensor *B = NULL, *C = NULL;
    mv_status st = stream_and_constant(g, &B);
    if (st)
        return st;
    if (n->n_input > 2 && n->input[2] && *n->input[2] && (st = constant(g, 2, &C)))
        return st;
    if (attr_int(n, "transA", 0))
        return node_fail(g, "transA=1 on the image batch (the batch must be the rows)");
    if (!only_axis(g, g->n_dims - 1))
        return node_fail(g, "its input must be flat [N, features] (Flatten first)");
    const double alpha = attr_float(n, "alpha", 1), beta = attr_float(n, "beta", 1);
    if (!isfinite(alpha) || !isfinite(beta))
        return node_fail(g, "alpha or beta is not finite");
    g->n_dims = 1;
    g->dims[0] = feature_count(g);
    if ((st = dense(g, B, attr_int(n, "transB", 0) != 0, alpha)) || (C && beta != 0 &&
        (st = add_bias(g, C, beta))))
        return st;
    return advance(g);
}

static mv_status op_matmul(builder *g)
{
    const mv_onnx_tensor *B = NULL;
    mv_status st = stream_and_constant(g, &B);
    if (st)
        return st;
    if (!only_axis(g, g->n_dims - 1))
        return node_fail(g, "multiplies a non-flat input (only the last dimension may be "
                         "more than 1; Flatten first)");
    return (st = dense(g, B, 0, 1)) ? st : advance(g);
}

/* Add: a bias on a dense layer (or on an identity layer put in front), or GELU's "+ 1". */
static mv_status op_add(builder *g)
{
    value *a, *c;
    mv_status st = input(g, 0, &a);
    if (st || (st = input(g, 1, &c)))
        return st;
    const int swap = a->kind == V_TENSOR;
    value *other = swap ? a : c, *main_in = swap ? c : a;
    if (main_in->kind == V_ERF && other->kind == V_TENSOR) {
        double one = 0;
        if ((st = scalar(g, swap ? 0 : 1, &one)))
            return st;
        if (one != 1)
            return node_fail(g, "adds a constant other than 1 to an Erf (not GELU)");
        value v = *main_in;
        v.kind = V_GELU_TERM;
        v.coef = 1;
        v.has_x = 0;
        return define(g, g->node->output[0], v);
    }
    if (other->kind != V_TENSOR)
        return node_fail(g, "adds two computed values (a skip connection is not an MLP)");
    const mv_onnx_tensor *bias = NULL;
    if ((st = stream_input(g, swap ? 1 : 0)) || (st = constant(g, swap ? 0 : 1, &bias)))
        return st;
    if (g->state != S_LINEAR && (st = identity_layer(g)))
        return st;
    return (st = add_bias(g, bias, 1)) ? st : advance(g);
}

static mv_status activate(builder *g, mv_activation act)
{
    mv_status st;
    if (g->state != S_LINEAR && (st = identity_layer(g)))
        return st;
    g->pending = act;
    g->state = S_ACTED;
    return advance(g);
}

/* Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Gelu. */
static mv_status op_activation(builder *g, mv_act_kind kind)
{
    const Onnx__NodeProto *n = g->node;
    mv_status st = stream_input(g, 0);
    if (st)
        return st;
    float param = 0;
    if (kind == MV_ACT_LEAKY_RELU)
        param = (float)attr_float(n, "alpha", 0.01);
    if (kind == MV_ACT_GELU) {
        const Onnx__AttributeProto *a = attribute(n, "approximate");
        if (a && a->has_s && !(a->s.len == 4 && memcmp(a->s.data, "none", 4) == 0))
            return node_fail(g, "approximate GELU (tanh) is not supported, only the exact "
                             "form");
    }
    if (!isfinite(param))
        return node_fail(g, "alpha is not finite");
    return activate(g, (mv_activation){kind, param});
}

static mv_status op_softmax(builder *g, const char *which)
{
    const Onnx__NodeProto *n = g->node;
    mv_status st = stream_input(g, 0);
    if (st)
        return st;
    /* Before opset 13 Softmax flattens from `axis` (default 1): axis 1 is the whole row.
     * From 13 it runs along `axis` (default -1), so the other dimensions must be 1. */
    const int old = g->f->opset < 13;
    int64_t axis = attr_int(n, "axis", old ? 1 : -1);
    if (axis < 0)
        axis += g->n_dims + 1;
    if (!(old ? axis == 1 : axis >= 1 && axis <= g->n_dims && only_axis(g, (int)axis - 1)))
        return node_fail(g, "runs over part of the features, not the whole row");
    if (g->state != S_LINEAR && (st = identity_layer(g)))
        return st;
    g->state = S_FINAL;
    g->final_op = which;
    return advance(g);
}

/* Flatten (axis 1) and Reshape to [N, features]: the feature order is unchanged. */
static mv_status flatten_to_rows(builder *g)
{
    const int64_t D = feature_count(g);
    g->n_dims = 1;
    g->dims[0] = D;
    const stream_state s = g->state;
    g->state = s == S_FINAL ? S_RAW : s;
    return advance(g);
}

static mv_status op_flatten(builder *g)
{
    mv_status st = stream_input(g, 0);
    if (st)
        return st;
    int64_t axis = attr_int(g->node, "axis", 1);
    if (axis < 0)
        axis += g->n_dims + 1;
    if (axis != 1)
        return node_fail(g, "flattens at an axis other than 1 (the batch must stay the "
                         "rows)");
    return flatten_to_rows(g);
}

/* Reshape to [N, d1, ..., dk] with d1 * ... * dk the features: a view, the order kept. The
 * batch entry may be the batch symbol (PyTorch's x.size(0)), 0, -1 or a number; one feature
 * entry may be -1 (the rest) and 0 copies the input's dimension. */
static mv_status op_reshape(builder *g)
{
    const mv_onnx_tensor *shape = NULL;
    mv_status st = stream_and_constant(g, &shape);
    if (st)
        return st;
    const int64_t D = feature_count(g);
    const int k = (int)shape->count - 1;
    if (!shape->ints || shape->ndim != 1 || k < 1 || k > MV_ONNX_MAX_DIMS)
        return node_fail(g, "the shape must be a 1-D int64 constant of 2 to %d entries",
                         MV_ONNX_MAX_DIMS + 1);
    const int64_t rows = shape->ints[0];
    int64_t dims[MV_ONNX_MAX_DIMS], known = 1;
    int rest = -1;
    for (int i = 0; i < k; i++) {
        const int64_t v = shape->ints[i + 1];
        dims[i] = v == 0 && i < g->n_dims ? g->dims[i] : v;
        if (dims[i] == -1 && rest < 0 && rows != -1)
            rest = i;
        else if (dims[i] < 1)
            return node_fail(g, "reshapes to other than [N, features...]");
        else
            known *= dims[i];
        if (known > D)
            return node_fail(g, "reshapes %lld features into more", (long long)D);
    }
    if (rest >= 0)
        dims[rest] = D % known == 0 ? D / known : -1;
    if (!(rows == BATCH || rows >= -1) || (rest >= 0 && dims[rest] < 1) ||
        (rest < 0 && known != D))
        return node_fail(g, "reshapes to other than [N, features...] (%lld features)",
                         (long long)D);
    g->n_dims = k;
    memcpy(g->dims, dims, sizeof *dims * (size_t)k);
    const stream_state s = g->state;
    g->state = s == S_FINAL ? S_RAW : s;
    return advance(g);
}

/* A computed constant of the given shape; *out is zeroed first. */
static mv_status new_tensor(builder *g, int ints, int ndim, const int64_t *dims,
                            mv_onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->ndim = ndim;
    out->count = 1;
    for (int i = 0; i < ndim; i++) {
        out->dims[i] = dims[i];
        out->count *= (size_t)dims[i];
    }
    if (ints)
        out->ints = malloc(sizeof *out->ints * (out->count ? out->count : 1));
    else
        out->values = malloc(sizeof *out->values * (out->count ? out->count : 1));
    if (!out->ints && !out->values)
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate a constant", g->f->path);
    return MV_OK;
}

/* Defines output 0 as a computed constant (owned by the value table from here). */
static mv_status define_tensor(builder *g, mv_onnx_tensor *t)
{
    mv_status st = define(g, g->node->output[0], (value){.kind = V_TENSOR, .decoded = 1,
                                                         .t = *t});
    if (st)
        mv_onnx_tensor_free(t);
    return st;
}

static mv_status op_identity(builder *g)
{
    value *v;
    mv_status st = input(g, 0, &v);
    if (st)
        return st;
    if (v->kind == V_STREAM)
        return (st = stream_input(g, 0)) ? st : advance(g);
    if (v->kind != V_TENSOR) {
        value copy = *v;
        return define(g, g->node->output[0], copy);
    }
    const mv_onnx_tensor *t = NULL;
    mv_onnx_tensor out;
    if ((st = constant(g, 0, &t)) || (st = new_tensor(g, t->ints != NULL, t->ndim, t->dims,
                                                      &out)))
        return st;
    if (t->ints)
        memcpy(out.ints, t->ints, sizeof *t->ints * t->count);
    else
        memcpy(out.values, t->values, sizeof *t->values * t->count);
    return define_tensor(g, &out);
}

/* ---------------------------------------------------------------- constants */

static mv_status op_constant(builder *g)
{
    const Onnx__NodeProto *n = g->node;
    const Onnx__AttributeProto *a = attribute(n, "value");
    if (a && a->t)
        return define(g, n->output[0], (value){.kind = V_TENSOR, .proto = a->t});
    mv_onnx_tensor t;
    mv_status st;
    if ((a = attribute(n, "value_float")) && a->has_f) {
        if ((st = new_tensor(g, 0, 0, NULL, &t)))
            return st;
        t.values[0] = a->f;
        return define_tensor(g, &t);
    }
    if ((a = attribute(n, "value_int")) && a->has_i) {
        if ((st = new_tensor(g, 1, 0, NULL, &t)))
            return st;
        t.ints[0] = a->i;
        return define_tensor(g, &t);
    }
    if ((a = attribute(n, "value_ints")) && a->n_ints <= 64) {
        const int64_t dims[1] = {(int64_t)a->n_ints};
        if ((st = new_tensor(g, 1, 1, dims, &t)))
            return st;
        memcpy(t.ints, a->ints, sizeof *a->ints * a->n_ints);
        return define_tensor(g, &t);
    }
    return node_fail(g, "only tensor, float, int and ints values are supported");
}

/* Transpose of a 2-D constant (PyTorch without constant folding: Transpose(weight)). */
static mv_status op_transpose(builder *g)
{
    value *v;
    mv_status st = input(g, 0, &v);
    if (st)
        return st;
    if (v->kind == V_STREAM)
        return node_fail(g, "transposes the image batch (only constants may be "
                         "transposed)");
    const mv_onnx_tensor *t = NULL;
    if ((st = constant(g, 0, &t)))
        return st;
    const Onnx__AttributeProto *perm = attribute(g->node, "perm");
    if (!t->values || t->ndim != 2 ||
        (perm && !(perm->n_ints == 2 && perm->ints[0] == 1 && perm->ints[1] == 0)))
        return node_fail(g, "only the transpose of a 2-D float constant is supported");
    const int64_t R = t->dims[0], C = t->dims[1], dims[2] = {C, R};
    mv_onnx_tensor out;
    if ((st = new_tensor(g, 0, 2, dims, &out)))
        return st;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) out.values[c * R + r] = t->values[r * C + c];
    return define_tensor(g, &out);
}

/* Shape of the stream: [BATCH, feature dims...] as int64. */
static mv_status op_shape(builder *g)
{
    mv_status st = stream_input(g, 0);
    if (st)
        return st;
    if (attribute(g->node, "start") || attribute(g->node, "end"))
        return node_fail(g, "Shape with start or end is not supported");
    mv_onnx_tensor t;
    const int64_t dims[1] = {g->n_dims + 1};
    if ((st = new_tensor(g, 1, 1, dims, &t)))
        return st;
    t.ints[0] = BATCH;
    for (int i = 0; i < g->n_dims; i++) t.ints[i + 1] = g->dims[i];
    return define_tensor(g, &t);
}

/* Gather (axis 0) from a 1-D int64 constant with constant indices. */
static mv_status op_gather(builder *g)
{
    const mv_onnx_tensor *data = NULL, *idx = NULL;
    mv_status st = constant(g, 0, &data);
    if (st || (st = constant(g, 1, &idx)))
        return st;
    if (!data->ints || data->ndim != 1 || !idx->ints || idx->ndim > 1 ||
        attr_int(g->node, "axis", 0) != 0)
        return node_fail(g, "only gathers from a 1-D int64 constant (shape arithmetic)");
    mv_onnx_tensor out;
    if ((st = new_tensor(g, 1, idx->ndim, idx->dims, &out)))
        return st;
    for (size_t i = 0; i < idx->count; i++) {
        int64_t k = idx->ints[i];
        if (k < 0)
            k += (int64_t)data->count;
        if (k < 0 || k >= (int64_t)data->count) {
            mv_onnx_tensor_free(&out);
            return node_fail(g, "index out of range");
        }
        out.ints[i] = data->ints[k];
    }
    return define_tensor(g, &out);
}

/* Unsqueeze and Concat (axis 0) of int64 constants of at most one dimension. */
static mv_status op_unsqueeze(builder *g)
{
    const mv_onnx_tensor *t = NULL;
    mv_status st = constant(g, 0, &t);
    if (st)
        return st;
    if (!t->ints || t->ndim > 1)
        return node_fail(g, "only unsqueezes int64 scalars and vectors (shape "
                         "arithmetic)");
    const int64_t dims[1] = {(int64_t)t->count};
    mv_onnx_tensor out;
    if ((st = new_tensor(g, 1, 1, dims, &out)))
        return st;
    memcpy(out.ints, t->ints, sizeof *t->ints * t->count);
    return define_tensor(g, &out);
}

static mv_status op_concat(builder *g)
{
    const Onnx__NodeProto *n = g->node;
    size_t total = 0;
    mv_status st;
    for (size_t i = 0; i < n->n_input; i++) {
        const mv_onnx_tensor *t = NULL;
        if ((st = constant(g, i, &t)))
            return st;
        if (!t->ints || t->ndim != 1 || t->count > 64)
            return node_fail(g, "only concatenates short 1-D int64 constants (shape "
                             "arithmetic)");
        total += t->count;
    }
    const int64_t dims[1] = {(int64_t)total};
    mv_onnx_tensor out;
    if ((st = new_tensor(g, 1, 1, dims, &out)))
        return st;
    for (size_t i = 0, at = 0; i < n->n_input; i++) {
        const mv_onnx_tensor *t = NULL;
        constant(g, i, &t);
        memcpy(out.ints + at, t->ints, sizeof *t->ints * t->count);
        at += t->count;
    }
    return define_tensor(g, &out);
}

/* ---------------------------------------------------------------- GELU's Erf form */

/* The term 0.5 x (1 + erf(x / sqrt 2)) is GELU applied to the stream. */
static int is_gelu(const value *v)
{
    return v->kind == V_GELU_TERM && v->has_x && fabs(v->coef - 0.5) < 1e-6 &&
           fabs(v->k - M_SQRT1_2) < 1e-6;
}

static mv_status define_part(builder *g, value v)
{
    if (is_gelu(&v)) {
        if (v.version != g->version)
            return node_fail(g, "GELU of an earlier value of the image batch");
        return activate(g, (mv_activation){MV_ACT_GELU, 0});
    }
    return define(g, g->node->output[0], v);
}

/* Mul and Div by a constant scalar: k x (GELU's x / sqrt 2 and 0.5 x), coef * term, or
 * scaled_relu's k * relu(z). */
static mv_status scale(builder *g, value *v, double c, int divide)
{
    if (!isfinite(c) || c == 0)
        return node_fail(g, "scales by zero or a non-finite constant");
    const double factor = divide ? 1 / c : c;
    if (v->kind == V_STREAM && g->state == S_ACTED && g->pending.kind == MV_ACT_RELU &&
        !divide && c > 0) {
        g->pending = (mv_activation){MV_ACT_SCALED_RELU, (float)c};
        return advance(g);
    }
    value out = *v;
    if (v->kind == V_STREAM) {
        out.kind = V_SCALED;
        out.k = factor;
    } else if (v->kind == V_GELU_TERM) {
        out.coef *= factor;
    } else {
        return node_fail(g, "scales a value that is not part of a supported pattern");
    }
    return define_part(g, out);
}

static mv_status op_mul_div(builder *g, int divide)
{
    value *in[2];
    mv_status st = input(g, 0, &in[0]);
    if (st || (st = input(g, 1, &in[1])))
        return st;
    const int ci = in[1]->kind == V_TENSOR ? 1 : !divide && in[0]->kind == V_TENSOR ? 0 : -1;
    if (ci >= 0) {
        double k = 0;
        if ((st = scalar(g, (size_t)ci, &k)) ||
            (in[1 - ci]->kind == V_STREAM && (st = stream_input(g, (size_t)(1 - ci)))))
            return st;
        return scale(g, in[1 - ci], k, divide);
    }
    if (divide)
        return node_fail(g, "divides by a computed value");
    /* x * (1 + erf(k x)) or (k2 x) * (1 + erf(k x)) */
    value *term = in[0]->kind == V_GELU_TERM ? in[0] : in[1], *x = term == in[0] ? in[1] : in[0];
    if (term->kind != V_GELU_TERM || term->has_x || x->version != term->version ||
        !(x->kind == V_STREAM || x->kind == V_SCALED))
        return node_fail(g, "multiplies computed values outside the GELU pattern (not an "
                         "MLP)");
    value out = *term;
    out.has_x = 1;
    out.coef *= x->kind == V_SCALED ? x->k : 1;
    return define_part(g, out);
}

static mv_status op_erf(builder *g)
{
    value *v;
    mv_status st = input(g, 0, &v);
    if (st)
        return st;
    if (v->kind != V_SCALED && v->kind != V_STREAM)
        return node_fail(g, "Erf of a value that is not part of the GELU pattern");
    value out = *v;
    out.k = v->kind == V_STREAM ? 1 : v->k;
    out.kind = V_ERF;
    return define(g, g->node->output[0], out);
}

/* ---------------------------------------------------------------- the graph */

static mv_status op_dispatch(builder *g)
{
    static const struct {
        const char *op;
        mv_act_kind act;
    } acts[] = {{"Relu", MV_ACT_RELU},       {"LeakyRelu", MV_ACT_LEAKY_RELU},
                {"Sigmoid", MV_ACT_SIGMOID}, {"Tanh", MV_ACT_TANH},
                {"Softplus", MV_ACT_SOFTPLUS}, {"Gelu", MV_ACT_GELU}};
    const Onnx__NodeProto *n = g->node;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0)
        return node_fail(g, "is in domain '%s'; only the default ONNX domain is supported",
                         n->domain);
    if (n->n_output < 1 || !n->output[0] || !*n->output[0])
        return node_fail(g, "has no output");
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(op, acts[i].op) == 0)
            return op_activation(g, acts[i].act);
    if (!strcmp(op, "Gemm")) return op_gemm(g);
    if (!strcmp(op, "MatMul")) return op_matmul(g);
    if (!strcmp(op, "Add")) return op_add(g);
    if (!strcmp(op, "Mul")) return op_mul_div(g, 0);
    if (!strcmp(op, "Div")) return op_mul_div(g, 1);
    if (!strcmp(op, "Erf")) return op_erf(g);
    if (!strcmp(op, "Flatten")) return op_flatten(g);
    if (!strcmp(op, "Reshape")) return op_reshape(g);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) return op_identity(g);
    if (!strcmp(op, "Constant")) return op_constant(g);
    if (!strcmp(op, "Transpose")) return op_transpose(g);
    if (!strcmp(op, "Shape")) return op_shape(g);
    if (!strcmp(op, "Gather")) return op_gather(g);
    if (!strcmp(op, "Unsqueeze")) return op_unsqueeze(g);
    if (!strcmp(op, "Concat")) return op_concat(g);
    if (!strcmp(op, "Softmax")) return op_softmax(g, "Softmax");
    if (!strcmp(op, "LogSoftmax")) return op_softmax(g, "LogSoftmax");
    return node_fail(g, "is not supported in an MLP; supported: %s", supported_ops);
}

static int is_initializer(const Onnx__GraphProto *graph, const char *name)
{
    for (size_t i = 0; i < graph->n_initializer; i++)
        if (graph->initializer[i]->name && strcmp(graph->initializer[i]->name, name) == 0)
            return 1;
    return 0;
}

mv_status mv_onnx_graph_input(const mv_onnx_file *f, const char **name, int *ndim,
                              int64_t dims[MV_ONNX_MAX_DIMS])
{
    const Onnx__GraphProto *graph = f->model->graph;
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < graph->n_input; i++) {
        const Onnx__ValueInfoProto *v = graph->input[i];
        if (!v->name || !*v->name || is_initializer(graph, v->name))
            continue; /* older exporters list the weights as inputs too */
        if (in)
            return mv_fail(MV_ERR_FORMAT, "%s: the graph has more than one input ('%s', '%s');"
                           " an MLP classifier has one", f->path, in->name, v->name);
        in = v;
    }
    if (!in)
        return mv_fail(MV_ERR_FORMAT, "%s: the graph has no input", f->path);
    *name = in->name;
    *ndim = -1;
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return MV_OK;
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return mv_fail(MV_ERR_FORMAT, "%s: the graph input '%s' has element type %d; "
                       "supported: float (1)", f->path, in->name, tt->elem_type);
    if (!tt->shape || tt->shape->n_dim < 1 || tt->shape->n_dim > MV_ONNX_MAX_DIMS)
        return MV_OK;
    *ndim = (int)tt->shape->n_dim - 1;
    for (int i = 0; i < *ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i + 1];
        dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                  d->dim_value > 0 ? d->dim_value : 0;
    }
    return MV_OK;
}

/* Values for every initializer (decoded when used) and the stream for the input. */
static mv_status seed_values(builder *g, const int shape[3], int chw)
{
    const Onnx__GraphProto *graph = g->f->model->graph;
    if (graph->n_node > MAX_NODES || graph->n_initializer > MAX_NODES)
        return mv_fail(MV_ERR_FORMAT, "%s: %zu nodes and %zu initializers: more than an MLP's "
                       "%d", g->f->path, graph->n_node, graph->n_initializer, MAX_NODES);
    mv_status st;
    for (size_t i = 0; i < graph->n_initializer; i++)
        if ((st = define(g, graph->initializer[i]->name,
                         (value){.kind = V_TENSOR, .proto = graph->initializer[i]})))
            return st;
    const char *name;
    int ndim;
    int64_t dims[MV_ONNX_MAX_DIMS];
    if ((st = mv_onnx_graph_input(g->f, &name, &ndim, dims)))
        return st;
    const int64_t D = (int64_t)shape[0] * shape[1] * shape[2];
    int64_t declared = ndim > 0 ? 1 : 0;
    for (int i = 0; i < ndim; i++) /* dims[i] >= 0; saturates rather than overflow */
        declared = !dims[i] ? 0 : declared > INT64_MAX / dims[i] ? INT64_MAX
                 : declared * dims[i];
    if (declared > 0 && declared != D)
        return mv_fail(MV_ERR_FORMAT, "%s: the graph input '%s' has %lld features per image, "
                       "the input shape %dx%dx%d gives %lld", g->f->path, name,
                       (long long)declared, shape[0], shape[1], shape[2], (long long)D);
    g->n_dims = declared > 0 ? ndim : 3;
    for (int i = 0; i < g->n_dims; i++)
        g->dims[i] = declared > 0 ? dims[i] : chw ? shape[i] : shape[(i + 1) % 3];
    g->widths[0] = (int)D;
    return define(g, name, (value){.kind = V_STREAM, .version = 0});
}

/* The head that the end of the chain implies, unless head_name says. Output kinds are
 * recorded as metadata "onnx.output": what the graph's output is in mlpviz terms. */
static mv_status close_chain(builder *g, const char *head_name, mv_head *head,
                             const char **output)
{
    mv_status st;
    if (head_name && (st = mv_head_parse(head, head_name)))
        return mv_fail_context(MV_ERR_FORMAT, g->f->path);
    if (g->state == S_FINAL) {
        *output = strcmp(g->final_op, "Softmax") == 0 ? "softmax" : "logsoftmax";
        if (!head_name)
            *head = MV_HEAD_SOFTMAX_CE;
        return MV_OK;
    }
    if (g->state == S_ACTED && g->pending.kind == MV_ACT_SIGMOID &&
        (!head_name || *head == MV_HEAD_SIGMOID_BCE)) {
        *output = "sigmoid";
        *head = MV_HEAD_SIGMOID_BCE;
        g->state = S_LINEAR;
        return MV_OK;
    }
    if (g->state != S_LINEAR && (st = identity_layer(g)))
        return st;
    *output = "logits"; /* the last layer's z */
    if (!head_name)
        *head = MV_HEAD_SOFTMAX_CE;
    return MV_OK;
}

static mv_status read_nodes(builder *g)
{
    const Onnx__GraphProto *graph = g->f->model->graph;
    mv_status st;
    for (size_t i = 0; i < graph->n_node; i++) {
        g->node = graph->node[i];
        if ((st = op_dispatch(g)))
            return st;
    }
    g->node = NULL;
    if (graph->n_output != 1 || !graph->output[0]->name)
        return mv_fail(MV_ERR_FORMAT, "%s: the graph has %zu outputs; an MLP classifier has "
                       "one", g->f->path, graph->n_output);
    const value *out = find(g, graph->output[0]->name);
    if (!out || !is_stream(g, out))
        return mv_fail(MV_ERR_FORMAT, "%s: the graph output '%s' is not the end of the chain "
                       "from its input", g->f->path, graph->output[0]->name);
    if (g->n_layers == 0 && g->state == S_RAW && (st = identity_layer(g)))
        return st;
    return MV_OK;
}

/* Copies the layers into the model; the first layer's columns go from the graph's chw
 * feature order to mlpviz's hwc pixel order (a permutation: exact). */
static void copy_layers(const builder *g, const int shape[3], int chw, mv_model *m)
{
    const int C = shape[0], H = shape[1], Wd = shape[2];
    for (int l = 0; l < g->n_layers; l++) {
        const int in = g->widths[l], out = g->widths[l + 1];
        mv_real *W = m->net->p.W[l];
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                int src = i;
                if (l == 0 && chw && C > 1) { /* i = (h*W + w)*C + c */
                    const int c = i % C, hw = i / C;
                    src = c * H * Wd + hw;
                }
                W[(size_t)o * in + i] = g->W[l][(size_t)o * in + src];
            }
            m->net->p.b[l][o] = g->b[l][o];
        }
    }
}

static void free_builder(builder *g)
{
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].kind == V_TENSOR && g->values[i].decoded)
            mv_onnx_tensor_free(&g->values[i].t);
    free(g->values);
    for (int l = 0; l < g->n_layers; l++) {
        free(g->W[l]);
        free(g->b[l]);
    }
}

mv_status mv_onnx_build_network(const mv_onnx_file *f, const int shape[3], int chw,
                                const char *head_name, mv_model **out)
{
    *out = NULL;
    builder g = {.f = f, .state = S_RAW};
    mv_arch arch = {0};
    const char *output = NULL;
    mv_status st = seed_values(&g, shape, chw);
    if (!st && !(st = read_nodes(&g)) && !(st = close_chain(&g, head_name, &arch.head,
                                                            &output))) {
        if (g.state == S_ACTED) /* a hidden activation on the last layer: the head decides */
            st = mv_fail(MV_ERR_FORMAT, "%s: the graph ends with an activation that the head "
                         "%s cannot represent", f->path, head_name);
    }
    if (!st) {
        arch.n_layers = g.n_layers;
        memcpy(arch.widths, g.widths, sizeof arch.widths);
        memcpy(arch.act, g.act, sizeof arch.act);
        if (!(st = mv_arch_validate(&arch)) && !(st = mv_model_create(out, &arch))) {
            (*out)->channels = shape[0];
            (*out)->height = shape[1];
            (*out)->width = shape[2];
            copy_layers(&g, shape, chw, *out);
            st = mv_model_meta_set(*out, "onnx.output", output);
        }
    }
    free_builder(&g);
    if (st) {
        mv_model_free(*out);
        *out = NULL;
    }
    return st;
}
