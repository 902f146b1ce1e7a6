/* onnx_write.c: an mlpviz model as an ONNX file (docs/onnx.md), the way PyTorch would have
 * exported the same network: opset 17, input "input" float [N, C, H, W] with a symbolic
 * batch N, Flatten, then per layer a Gemm (transB=1, W [out][in] and b [out] as float32
 * raw_data initializers) and the hidden activation as standard ops, and the head (Softmax,
 * Sigmoid or nothing) giving "output" [N, K]. mlpviz pixels are HWC, ONNX images CHW, so the
 * first layer's weight columns are permuted (exactly) to read the CHW flattening. The input
 * normalisation is not in the graph: the metadata_props say how to make the graph's input
 * from pixels (mlpviz.mean, mlpviz.std), with the class names, the head and the model's own
 * metadata (mlpviz.meta.KEY).
 *
 * Every message of the tree is allocated in one arena, packed by protobuf-c into a buffer,
 * and written with mv_write_file_atomic. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "onnx.h"

#define OPSET 17
#define IR_VERSION 8
#define MAX_PACKED ((size_t)INT32_MAX) /* protobuf's limit on one message */

/* GELU's constants as torch.onnx exports its exact form before opset 20 (float32). */
#define GELU_SQRT2 1.4142135381698608f
#define GELU_ONE 1.0f
#define GELU_HALF 0.5f

/* ---------------------------------------------------------------- arena and text */

/* Every block of the message tree; freed at once. `failed` records an allocation that did
 * not succeed (the builders go on with NULLs and the caller checks once). */
typedef struct {
    void **blocks;
    size_t n, cap;
    int failed;
} arena;

/* Takes ownership of p (may be NULL, which marks the arena failed). */
static void *arena_keep(arena *a, void *p)
{
    if (!p) {
        a->failed = 1;
        return NULL;
    }
    if (a->n == a->cap) {
        const size_t cap = a->cap ? 2 * a->cap : 64;
        void **blocks = realloc(a->blocks, cap * sizeof *blocks);
        if (!blocks) {
            free(p);
            a->failed = 1;
            return NULL;
        }
        a->blocks = blocks;
        a->cap = cap;
    }
    return a->blocks[a->n++] = p;
}

static void *arena_calloc(arena *a, size_t count, size_t size)
{
    return arena_keep(a, calloc(count ? count : 1, size));
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    *a = (arena){0};
}

/* A growing string; `failed` after an allocation failure. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *data, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->len, data, n);
    t->len += n;
    t->s[t->len] = 0;
}

static void text_printf(text *t, const char *fmt, ...) MV_PRINTF(2, 3);
static void text_printf(text *t, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        t->failed = 1; /* only short numbers are printed here */
    else
        text_add(t, buf, (size_t)n);
}

/* Bytes of the well-formed UTF-8 sequence at s (1 to 4), or 0 when it is not one (a stray
 * continuation byte, an overlong form, a surrogate, beyond U+10FFFF, cut short). */
static int utf8_length(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n;
    unsigned min, cp;
    if ((s[0] & 0xE0) == 0xC0) n = 2, min = 0x80, cp = s[0] & 0x1F;
    else if ((s[0] & 0xF0) == 0xE0) n = 3, min = 0x800, cp = s[0] & 0x0F;
    else if ((s[0] & 0xF8) == 0xF0) n = 4, min = 0x10000, cp = s[0] & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* ONNX strings are UTF-8 (protobuf's string type): an mlpviz name or metadata value may hold
 * any byte but a newline, so a byte that does not start valid UTF-8 becomes U+FFFD, as in
 * `mlpviz info --json`. With json set, the text is also escaped as the inside of a JSON
 * string (quote, backslash, control characters as \u00XX). */
static void text_utf8(text *t, const char *from, int json)
{
    for (const unsigned char *s = (const unsigned char *)from; *s;) {
        const int n = utf8_length(s);
        if (json && (*s == '"' || *s == '\\')) {
            const char esc[2] = {'\\', (char)*s};
            text_add(t, esc, 2);
        } else if (json && (*s < 0x20 || *s == 0x7F)) {
            text_printf(t, "\\u%04x", *s);
        } else if (n == 0) {
            text_add(t, "\xEF\xBF\xBD", 3);
        } else {
            text_add(t, (const char *)s, (size_t)n);
        }
        s += n > 0 ? n : 1;
    }
}

/* The text's string, now owned by the arena. */
static char *text_keep(arena *a, text *t)
{
    if (t->failed || !t->s) {
        free(t->s);
        *t = (text){0};
        a->failed = 1;
        return NULL;
    }
    char *s = t->s;
    *t = (text){0};
    return arena_keep(a, s);
}

static char *arena_printf(arena *a, const char *fmt, ...) MV_PRINTF(2, 3);
static char *arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? arena_calloc(a, (size_t)n + 1, 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* ---------------------------------------------------------------- the graph being built */

typedef struct {
    arena a;
    Onnx__GraphProto graph;
    size_t cap_nodes, cap_inits, cap_props;
    Onnx__StringStringEntryProto **props;
    size_t n_props;
} builder;

/* A float32 tensor of the given shape (ndim 0: a scalar) from values [count], stored as
 * little-endian raw_data whatever the host's byte order. */
static Onnx__TensorProto *tensor(builder *b, const char *name, int ndim, const int64_t *dims,
                                 const float *values, size_t count)
{
    Onnx__TensorProto *t = arena_calloc(&b->a, 1, sizeof *t);
    int64_t *d = arena_calloc(&b->a, (size_t)ndim, sizeof *d);
    uint8_t *raw = arena_calloc(&b->a, count, 4);
    if (!t || !d || !raw)
        return NULL;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    t->name = (char *)(uintptr_t)name; /* protobuf-c's char * is only read by pack */
    if (ndim)
        memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &values[i], 4);
        raw[4 * i] = (uint8_t)u;
        raw[4 * i + 1] = (uint8_t)(u >> 8);
        raw[4 * i + 2] = (uint8_t)(u >> 16);
        raw[4 * i + 3] = (uint8_t)(u >> 24);
    }
    t->has_raw_data = 1;
    t->raw_data = (ProtobufCBinaryData){count * 4, raw};
    return t;
}

static void add_initializer(builder *b, Onnx__TensorProto *t)
{
    if (t && b->graph.n_initializer < b->cap_inits)
        b->graph.initializer[b->graph.n_initializer++] = t;
    else
        b->a.failed = 1;
}

/* A scalar initializer named name holding v; returns the name. */
static const char *scalar(builder *b, const char *name, float v)
{
    add_initializer(b, tensor(b, name, 0, NULL, &v, 1));
    return name;
}

/* A node op(inputs) -> output, named after its output; attributes added by the callers. */
static Onnx__NodeProto *node(builder *b, const char *op, const char *output, int n_inputs,
                             const char *const *inputs)
{
    Onnx__NodeProto *n = arena_calloc(&b->a, 1, sizeof *n);
    char **in = arena_calloc(&b->a, (size_t)n_inputs, sizeof *in);
    char **out = arena_calloc(&b->a, 1, sizeof *out);
    if (!n || !in || !out || !output || b->graph.n_node >= b->cap_nodes) {
        b->a.failed = 1;
        return NULL;
    }
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i])
            b->a.failed = 1;
        in[i] = (char *)(uintptr_t)inputs[i];
    }
    out[0] = (char *)(uintptr_t)output;
    n->n_input = (size_t)n_inputs;
    n->input = in;
    n->n_output = 1;
    n->output = out;
    n->op_type = (char *)(uintptr_t)op;
    n->name = arena_printf(&b->a, "%s_%s", op, output);
    b->graph.node[b->graph.n_node++] = n;
    return n;
}

/* Adds an INT or FLOAT attribute to n (NULL after a failure: nothing). */
static void attribute(builder *b, Onnx__NodeProto *n, const char *name, int is_float,
                      int64_t i, float f)
{
    if (!n)
        return;
    Onnx__AttributeProto *a = arena_calloc(&b->a, 1, sizeof *a);
    Onnx__AttributeProto **list = arena_calloc(&b->a, n->n_attribute + 1, sizeof *list);
    if (!a || !list)
        return;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = (char *)(uintptr_t)name;
    a->has_type = 1;
    if (is_float) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        a->has_f = 1;
        a->f = f;
    } else {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        a->has_i = 1;
        a->i = i;
    }
    if (n->n_attribute)
        memcpy(list, n->attribute, n->n_attribute * sizeof *list);
    list[n->n_attribute++] = a;
    n->attribute = list;
}

/* A float tensor value [N, dims...] with N the symbolic batch dimension "N". */
static Onnx__ValueInfoProto *value_info(builder *b, const char *name, int ndim,
                                        const int64_t *dims)
{
    Onnx__ValueInfoProto *v = arena_calloc(&b->a, 1, sizeof *v);
    Onnx__TypeProto *type = arena_calloc(&b->a, 1, sizeof *type);
    Onnx__TypeProto__Tensor *tt = arena_calloc(&b->a, 1, sizeof *tt);
    Onnx__TensorShapeProto *shape = arena_calloc(&b->a, 1, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **dim = arena_calloc(&b->a, (size_t)ndim + 1,
                                                           sizeof *dim);
    if (!v || !type || !tt || !shape || !dim)
        return NULL;
    for (int i = 0; i <= ndim; i++) {
        if (!(dim[i] = arena_calloc(&b->a, 1, sizeof *dim[i])))
            return NULL;
        *dim[i] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (i == 0) {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[i]->dim_param = "N";
        } else {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[i]->dim_value = dims[i - 1];
        }
    }
    *shape = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape->n_dim = (size_t)ndim + 1;
    shape->dim = dim;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    *type = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = (char *)(uintptr_t)name;
    v->type = type;
    return v;
}

/* A metadata_props entry; a key already present is not repeated (ONNX wants them unique;
 * the first wins, as with mv_model_meta_get). */
static void property(builder *b, char *key, char *value)
{
    if (!key || !value) {
        b->a.failed = 1;
        return;
    }
    for (size_t i = 0; i < b->n_props; i++)
        if (strcmp(b->props[i]->key, key) == 0)
            return;
    Onnx__StringStringEntryProto *p = arena_calloc(&b->a, 1, sizeof *p);
    if (!p || b->n_props >= b->cap_props) {
        b->a.failed = 1;
        return;
    }
    *p = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    p->key = key;
    p->value = value;
    b->props[b->n_props++] = p;
}

/* ---------------------------------------------------------------- layers */

/* The hidden activation act on the value x of layer l; returns the name of its output
 * (x itself for identity). */
static const char *hidden_activation(builder *b, mv_activation act, int l, const char *x)
{
    arena *a = &b->a;
    const char *y = arena_printf(a, "a%d", l);
    switch (act.kind) {
    case MV_ACT_IDENTITY:
    case MV_ACT_COUNT:
        return x;
    case MV_ACT_SIGMOID: node(b, "Sigmoid", y, 1, &x); break;
    case MV_ACT_TANH: node(b, "Tanh", y, 1, &x); break;
    case MV_ACT_RELU: node(b, "Relu", y, 1, &x); break;
    case MV_ACT_SOFTPLUS: node(b, "Softplus", y, 1, &x); break;
    case MV_ACT_LEAKY_RELU:
        attribute(b, node(b, "LeakyRelu", y, 1, &x), "alpha", 1, 0, act.param);
        break;
    case MV_ACT_SCALED_RELU: {
        const char *r = arena_printf(a, "relu%d", l);
        node(b, "Relu", r, 1, &x);
        const char *in[2] = {r, scalar(b, arena_printf(a, "k%d", l), act.param)};
        node(b, "Mul", y, 2, in);
        break;
    }
    case MV_ACT_GELU: { /* x * (1 + erf(x / sqrt 2)) * 0.5, node for node as torch.onnx */
        const char *div = arena_printf(a, "gelu%d_div", l), *erf = arena_printf(a, "gelu%d_erf", l),
                   *add = arena_printf(a, "gelu%d_add", l), *mul = arena_printf(a, "gelu%d_mul", l);
        const char *d_in[2] = {x, scalar(b, arena_printf(a, "gelu%d_sqrt2", l), GELU_SQRT2)};
        node(b, "Div", div, 2, d_in);
        node(b, "Erf", erf, 1, &div);
        const char *a_in[2] = {erf, scalar(b, arena_printf(a, "gelu%d_one", l), GELU_ONE)};
        node(b, "Add", add, 2, a_in);
        const char *m_in[2] = {x, add};
        node(b, "Mul", mul, 2, m_in);
        const char *h_in[2] = {mul, scalar(b, arena_printf(a, "gelu%d_half", l), GELU_HALF)};
        node(b, "Mul", y, 2, h_in);
        break;
    }
    }
    return y;
}

/* W[0] with its columns in CHW order: column c*H*W + h*W + w of the result is column
 * (h*W + w)*C + c of W (mlpviz's HWC pixel order). A permutation: values are copied. */
static float *chw_columns(const mv_model *m, arena *a)
{
    const int D = m->net->arch.widths[0], M = m->net->arch.widths[1];
    const int C = m->channels, HW = m->height * m->width;
    float *out = arena_calloc(a, (size_t)M * (size_t)D, sizeof *out);
    if (!out)
        return NULL;
    for (int j = 0; j < M; j++) {
        const float *src = m->net->p.W[0] + (size_t)j * (size_t)D;
        float *dst = out + (size_t)j * (size_t)D;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++)
                dst[(size_t)c * (size_t)HW + (size_t)p] = src[(size_t)p * (size_t)C + (size_t)c];
    }
    return out;
}

/* Input, Flatten, the layers and the head. */
static void build_graph(builder *b, const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    const int L = arch->n_layers;
    const int64_t chw[3] = {m->channels, m->height, m->width};
    const int64_t k[1] = {arch->widths[L]};
    b->graph.input[b->graph.n_input++] = value_info(b, "input", 3, chw);
    b->graph.output[b->graph.n_output++] = value_info(b, "output", 1, k);
    if (!b->graph.input[0] || !b->graph.output[0])
        b->a.failed = 1;
    const char *x = "input";
    attribute(b, node(b, "Flatten", "flat", 1, &x), "axis", 0, 1, 0);
    x = "flat";
    const int has_head = arch->head != MV_HEAD_IDENTITY_MSE;
    for (int l = 0; l < L; l++) {
        const int64_t wd[2] = {arch->widths[l + 1], arch->widths[l]}, bd[1] = {wd[0]};
        const float *W = l == 0 ? chw_columns(m, &b->a) : m->net->p.W[l];
        const char *wn = arena_printf(&b->a, "W%d", l), *bn = arena_printf(&b->a, "b%d", l);
        if (!W) /* allocation failed */
            return;
        add_initializer(b, tensor(b, wn, 2, wd, W, (size_t)(wd[0] * wd[1])));
        add_initializer(b, tensor(b, bn, 1, bd, m->net->p.b[l], (size_t)bd[0]));
        const char *z = l + 1 == L && !has_head ? "output" : arena_printf(&b->a, "z%d", l);
        const char *in[3] = {x, wn, bn};
        attribute(b, node(b, "Gemm", z, 3, in), "transB", 0, 1, 0);
        x = l + 1 < L ? hidden_activation(b, arch->act[l], l, z) : z;
    }
    if (arch->head == MV_HEAD_SOFTMAX_CE)
        attribute(b, node(b, "Softmax", "output", 1, &x), "axis", 0, 1, 0);
    else if (arch->head == MV_HEAD_SIGMOID_BCE)
        node(b, "Sigmoid", "output", 1, &x);
}

/* ---------------------------------------------------------------- metadata */

/* Per-channel values as "%.9g,%.9g,...": each reads back as the same float. */
static char *float_list(arena *a, const float *v, int n)
{
    text t = {0};
    for (int c = 0; c < n; c++)
        text_printf(&t, "%s%.9g", c ? "," : "", (double)v[c]);
    return text_keep(a, &t);
}

static char *utf8_copy(arena *a, const char *prefix, const char *s)
{
    text t = {0};
    text_add(&t, prefix, strlen(prefix));
    text_utf8(&t, s, 0);
    return text_keep(a, &t);
}

static void metadata(builder *b, const mv_model *m)
{
    arena *a = &b->a;
    property(b, "mlpviz.input_shape",
             arena_printf(a, "%dx%dx%d", m->channels, m->height, m->width));
    property(b, "mlpviz.channel_order", "chw");
    property(b, "mlpviz.pixel_scale", "1");
    property(b, "mlpviz.mean", float_list(a, m->mean, m->channels));
    property(b, "mlpviz.std", float_list(a, m->std, m->channels));
    text t = {0};
    text_add(&t, "[", 1);
    for (int i = 0; i < m->n_classes; i++) {
        text_add(&t, i ? ", \"" : "\"", i ? 3 : 1);
        text_utf8(&t, m->class_names[i], 1);
        text_add(&t, "\"", 1);
    }
    text_add(&t, "]", 1);
    property(b, "mlpviz.classes", text_keep(a, &t));
    property(b, "mlpviz.head", (char *)(uintptr_t)mv_head_name(m->net->arch.head));
    for (int i = 0; i < m->n_meta; i++)
        property(b, utf8_copy(a, "mlpviz.meta.", m->meta[i].key),
                 utf8_copy(a, "", m->meta[i].value));
}

/* ---------------------------------------------------------------- the file */

/* The model's packed bytes in *out (malloc'd, [*size]). */
static mv_status pack_model(const mv_model *m, const char *path, uint8_t **out, size_t *size)
{
    const int L = m->net->arch.n_layers;
    builder b = {0};
    b.graph = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    b.cap_nodes = 2 + 6 * (size_t)L; /* Flatten, head; Gemm + at most 5 per GELU */
    b.cap_inits = 5 * (size_t)L;     /* W, b; at most 3 scalars per layer */
    b.cap_props = 7 + (size_t)m->n_meta;
    b.graph.node = arena_calloc(&b.a, b.cap_nodes, sizeof *b.graph.node);
    b.graph.initializer = arena_calloc(&b.a, b.cap_inits, sizeof *b.graph.initializer);
    b.graph.input = arena_calloc(&b.a, 1, sizeof *b.graph.input);
    b.graph.output = arena_calloc(&b.a, 1, sizeof *b.graph.output);
    b.props = arena_calloc(&b.a, b.cap_props, sizeof *b.props);
    if (!b.a.failed) {
        b.graph.name = "mlpviz";
        build_graph(&b, m);
        metadata(&b, m);
    }
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = OPSET;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1;
    model.ir_version = IR_VERSION;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "mlpviz";
    model.producer_version = MV_VERSION;
    model.doc_string = "An MLP image classifier exported by mlpviz. The input is "
                       "(pixel - mean[c]) / std[c] for pixels in [0, 1], shaped [N, C, H, W]; "
                       "metadata_props mlpviz.* give the shape, mean, std and class names.";
    model.graph = &b.graph;
    model.n_metadata_props = b.n_props;
    model.metadata_props = b.props;
    mv_status st = MV_OK;
    if (b.a.failed) {
        st = mv_fail(MV_ERR_NOMEM, "cannot save %s as ONNX: out of memory", path);
    } else if ((*size = onnx__model_proto__get_packed_size(&model)) > MAX_PACKED) {
        st = mv_fail(MV_ERR_ARG, "cannot save %s as ONNX: the model needs %zu bytes, above "
                     "protobuf's 2 GiB", path, *size);
    } else if (!(*out = malloc(*size))) {
        st = mv_fail(MV_ERR_NOMEM, "cannot save %s as ONNX: no memory for %zu bytes", path,
                     *size);
    } else {
        onnx__model_proto__pack(&model, *out);
    }
    arena_free(&b.a);
    return st;
}

mv_status mv_model_save_onnx(const mv_model *model, const char *path)
{
    mv_status st = mv_model_check_to_save(model, path, " as ONNX");
    if (st)
        return st;
    uint8_t *data = NULL;
    size_t size = 0;
    if ((st = pack_model(model, path, &data, &size)))
        return st;
    st = mv_write_file_atomic(path, data, size);
    free(data);
    return st;
}
