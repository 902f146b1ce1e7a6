/* onnx_read.c: the bytes of an ONNX file. protobuf-c unpacks it, but only after a walk of
 * the wire format has bounded its nesting (protobuf-c recurses once per level, so a file of
 * nested messages could exhaust the stack), and through an allocator with a budget (an empty
 * message is two bytes on disk but a hundred in memory). Tensors come out as float or int64
 * arrays with their sizes checked, from raw_data, the typed fields or an external file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "onnx.h"

#define MAX_NESTING 24                   /* ONNX's deepest MLP path is about 7 levels */
#define BUDGET_BASE ((size_t)64 << 20)   /* allocator budget: 64 MiB + 4 x file size */
#define MAX_ELEMENTS ((int64_t)1 << 30)  /* per tensor */
#define OPSET_MIN 9
#define OPSET_MAX 21

/* ---------------------------------------------------------------- wire-format walk */

typedef struct {
    const uint8_t *p, *end;
} wire;

static int read_varint(wire *w, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
        const uint8_t b = *w->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* Skips one field's value of wire type `type`; for length-delimited fields *sub receives
 * the bytes. 0 when the bytes end early or the type is a group or unknown. */
static int skip_value(wire *w, unsigned type, wire *sub)
{
    uint64_t v;
    switch (type) {
    case 0: return read_varint(w, &v);
    case 1: if (w->end - w->p < 8) return 0; w->p += 8; return 1;
    case 5: if (w->end - w->p < 4) return 0; w->p += 4; return 1;
    case 2:
        if (!read_varint(w, &v) || v > (uint64_t)(w->end - w->p))
            return 0;
        *sub = (wire){w->p, w->p + v};
        w->p += v;
        return 1;
    }
    return 0;
}

/* 1 when the message bytes are well-formed and no submessage (per the descriptor) nests
 * deeper than MAX_NESTING. Each byte is visited once. */
static int walk(wire w, const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > MAX_NESTING)
        return 0;
    while (w.p < w.end) {
        uint64_t key;
        wire sub = {0};
        if (!read_varint(&w, &key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF ||
            !skip_value(&w, (unsigned)(key & 7), &sub))
            return 0;
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
        if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE && (key & 7) == 2 &&
            !walk(sub, fd->descriptor, depth + 1))
            return 0;
    }
    return 1;
}

/* An ONNX model: its top-level fields are all ModelProto's and one is the graph. A file that
 * starts with ir_version (field 1, as every exporter writes it) is one as well when its
 * fields are ModelProto's up to where the bytes end early or go wrong, so that a truncated
 * or damaged model is refused as such (by mv_onnx_open) rather than as an unknown format. */
int mv_onnx_sniff(const uint8_t *data, size_t size)
{
    wire w = {data, data + size};
    int has_graph = 0;
    const int starts_ir_version = size > 0 && data[0] == 0x08;
    while (w.p < w.end) {
        uint64_t key;
        wire sub;
        if (!read_varint(&w, &key) || !skip_value(&w, (unsigned)(key & 7), &sub))
            return starts_ir_version;
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(
            &onnx__model_proto__descriptor, (unsigned)(key >> 3));
        if (!fd)
            return 0; /* a field ModelProto does not have: not an ONNX model */
        has_graph |= (key >> 3) == 7;
    }
    return has_graph || starts_ir_version;
}

/* ---------------------------------------------------------------- budgeted allocator */

typedef struct {
    size_t used, budget;
    int refused; /* an allocation was refused for the budget */
} budget;

static void *budget_alloc(void *data, size_t size)
{
    budget *b = data;
    if (size > b->budget - b->used || size > SIZE_MAX - 16) {
        b->refused = 1;
        return NULL;
    }
    size_t *block = malloc(size + 16); /* 16: keeps the user pointer max_align_t aligned */
    if (!block)
        return NULL;
    block[0] = size;
    b->used += size;
    return (char *)block + 16;
}

static void budget_free(void *data, void *pointer)
{
    if (!pointer)
        return;
    budget *b = data;
    size_t *block = (size_t *)(void *)((char *)pointer - 16);
    b->used -= block[0];
    free(block);
}

/* ---------------------------------------------------------------- open and close */

static int default_opset(const Onnx__ModelProto *m)
{
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (o && (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0))
            return o->has_version ? (int)(o->version > 1000 ? 1000 : o->version) : 0;
    }
    return 0;
}

mv_status mv_onnx_open(mv_onnx_file *f, const char *path, const uint8_t *data, size_t size)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->size = size;
    f->crc = mv_crc32(0, data, size);
    if (!walk((wire){data, data + size}, &onnx__model_proto__descriptor, 0))
        return mv_fail(MV_ERR_FORMAT, "%s: not a well-formed ONNX file (truncated or damaged "
                       "protobuf, or messages nested more than %d deep)", path, MAX_NESTING);
    budget *b = malloc(sizeof *b);
    if (!b)
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate", path);
    *b = (budget){0, BUDGET_BASE + (size < SIZE_MAX / 8 ? 4 * size : SIZE_MAX / 2), 0};
    f->allocator = (ProtobufCAllocator){budget_alloc, budget_free, b};
    f->model = onnx__model_proto__unpack(&f->allocator, size, data);
    if (!f->model) {
        const int over = b->refused; /* protobuf-c has freed what it had: used is 0 */
        mv_onnx_close(f);
        return mv_fail(over ? MV_ERR_NOMEM : MV_ERR_FORMAT,
                       over ? "%s: the ONNX file unpacks to more than %zu MiB" :
                              "%s: not a valid ONNX ModelProto (protobuf-c refused it)",
                       path, (BUDGET_BASE + 4 * size) >> 20);
    }
    if (!f->model->graph) {
        mv_onnx_close(f);
        return mv_fail(MV_ERR_FORMAT, "%s: the ONNX model has no graph", path);
    }
    f->opset = default_opset(f->model);
    if (f->opset < OPSET_MIN || f->opset > OPSET_MAX) {
        const int opset = f->opset;
        mv_onnx_close(f);
        return mv_fail(MV_ERR_FORMAT, "%s: ONNX opset %d of the default domain; supported: "
                       "%d to %d", path, opset, OPSET_MIN, OPSET_MAX);
    }
    return MV_OK;
}

void mv_onnx_close(mv_onnx_file *f)
{
    if (f->model)
        onnx__model_proto__free_unpacked(f->model, &f->allocator);
    free(f->allocator.allocator_data);
    f->model = NULL;
    f->allocator.allocator_data = NULL;
}

/* ---------------------------------------------------------------- tensors */

void mv_onnx_tensor_free(mv_onnx_tensor *t)
{
    free(t->values);
    free(t->ints);
    t->values = NULL;
    t->ints = NULL;
}

static const char *tensor_name(const Onnx__TensorProto *t)
{
    return t->name && *t->name ? t->name : "(unnamed)";
}

/* The external file's value of key, or NULL. */
static const char *external_entry(const Onnx__TensorProto *t, const char *key)
{
    for (size_t i = 0; i < t->n_external_data; i++)
        if (t->external_data[i]->key && strcmp(t->external_data[i]->key, key) == 0)
            return t->external_data[i]->value;
    return NULL;
}

/* A location may only name a file in the model's folder or below it: never an absolute
 * path or one that climbs out with "..". */
static int safe_location(const char *loc)
{
    if (!loc || !*loc || loc[0] == '/' || strchr(loc, '\\'))
        return 0;
    for (const char *s = loc; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
        if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || s[2] == '\0'))
            return 0;
    return 1;
}

static int parse_u64(const char *text, uint64_t *v)
{
    if (!text)
        return 1; /* absent: the default (0, or the whole rest of the file) */
    char *end;
    errno = 0;
    if (!*text || *text == '-' || *text == '+')
        return 0;
    *v = strtoull(text, &end, 10);
    return !errno && *end == '\0';
}

/* The path of an external data file: loc in the model's folder. 0 when too long. */
static int external_path(const mv_onnx_file *f, const char *loc, char full[4096])
{
    const char *slash = strrchr(f->path, '/');
    const int dir_len = slash ? (int)(slash - f->path + 1) : 0;
    return snprintf(full, 4096, "%.*s%s", dir_len, f->path, loc) < 4096;
}

/* Reads `bytes` bytes of an external data file into out; with out NULL only checks that
 * it could (the entries, and a regular file holding them). */
static mv_status read_external(const mv_onnx_file *f, const Onnx__TensorProto *t, void *out,
                               size_t bytes)
{
    const char *loc = external_entry(t, "location");
    uint64_t offset = 0, length = bytes;
    if (!safe_location(loc) || !parse_u64(external_entry(t, "offset"), &offset) ||
        !parse_u64(external_entry(t, "length"), &length))
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': bad external data entry (location "
                       "must be a relative path inside the model's folder)", f->path,
                       tensor_name(t));
    if (length != bytes)
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': external length %llu, its shape "
                       "needs %zu bytes", f->path, tensor_name(t),
                       (unsigned long long)length, bytes);
    char full[4096];
    if (!external_path(f, loc, full))
        return mv_fail(MV_ERR_ARG, "%s: external data path too long", f->path);
    /* O_NONBLOCK: a FIFO in the model's folder cannot hang the open (fstat refuses it) */
    const int fd = open(full, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *in = fd < 0 ? NULL : fdopen(fd, "rb");
    if (fd >= 0 && !in)
        close(fd);
    struct stat st;
    mv_status status = MV_OK;
    if (!in)
        return mv_fail(MV_ERR_IO, "%s: tensor '%s': cannot open its external data %s: %s",
                       f->path, tensor_name(t), full, strerror(errno));
    if (fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode) ||
        offset > (uint64_t)st.st_size || bytes > (uint64_t)st.st_size - offset)
        status = mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': %s is not a regular file holding "
                         "%zu bytes at offset %llu", f->path, tensor_name(t), full, bytes,
                         (unsigned long long)offset);
    else if (out && (fseeko(in, (off_t)offset, SEEK_SET) != 0 ||
                     fread(out, 1, bytes, in) != bytes))
        status = mv_fail(MV_ERR_IO, "%s: tensor '%s': cannot read %s", f->path,
                         tensor_name(t), full);
    fclose(in);
    return status;
}

/* dims and element count, checked: no negative dimension, no overflow, a sane total. */
static mv_status tensor_shape(const mv_onnx_file *f, const Onnx__TensorProto *t,
                              mv_onnx_tensor *out)
{
    if (t->n_dims > MV_ONNX_MAX_DIMS)
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s' has %zu dimensions (at most %d)",
                       f->path, tensor_name(t), t->n_dims, MV_ONNX_MAX_DIMS);
    out->ndim = (int)t->n_dims;
    int64_t count = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        out->dims[i] = t->dims[i];
        if (t->dims[i] < 0 || (t->dims[i] > 0 && count > MAX_ELEMENTS / t->dims[i]))
            return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': dimension %zu is %lld (must be "
                           "0 to %lld elements in all)", f->path, tensor_name(t), i,
                           (long long)t->dims[i], (long long)MAX_ELEMENTS);
        count *= t->dims[i];
    }
    out->count = (size_t)count;
    return MV_OK;
}

/* Little-endian bytes to values; the element size is 4 (float), 8 (double or int64). */
static void decode_le(const uint8_t *raw, int type, mv_onnx_tensor *out)
{
    for (size_t i = 0; i < out->count; i++) {
        const uint8_t *p = raw + i * (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4 : 8);
        uint64_t u = 0;
        for (int k = (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 3 : 7); k >= 0; k--)
            u = u << 8 | p[k];
        if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            uint32_t u32 = (uint32_t)u;
            memcpy(&out->values[i], &u32, 4);
        } else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
            double d;
            memcpy(&d, &u, 8);
            out->values[i] = (float)d;
        } else {
            memcpy(&out->ints[i], &u, 8);
        }
    }
}

/* Values from the typed repeated fields (float_data, double_data, int64_data). */
static int decode_typed(const Onnx__TensorProto *t, int type, mv_onnx_tensor *out)
{
    const size_t n = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data
                   : type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? t->n_double_data
                   : t->n_int64_data;
    if (n != out->count)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            out->values[i] = t->float_data[i];
        else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
            out->values[i] = (float)t->double_data[i];
        else
            out->ints[i] = t->int64_data[i];
    }
    return 1;
}

static mv_status tensor_data(const mv_onnx_file *f, const Onnx__TensorProto *t, int type,
                             mv_onnx_tensor *out)
{
    const size_t elem = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4 : 8;
    const size_t bytes = out->count * elem;
    const int external = t->has_data_location &&
                         t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external || t->has_raw_data) {
        if (!external && t->raw_data.len != bytes)
            return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': raw_data holds %zu bytes, its "
                           "shape needs %zu", f->path, tensor_name(t), t->raw_data.len, bytes);
        uint8_t *raw = external ? malloc(bytes ? bytes : 1) : t->raw_data.data;
        if (!raw)
            return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate %zu bytes", f->path, bytes);
        mv_status st = external ? read_external(f, t, raw, bytes) : MV_OK;
        if (!st)
            decode_le(raw, type, out);
        if (external)
            free(raw);
        return st;
    }
    if (!decode_typed(t, type, out))
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': its data field holds a different "
                       "number of values than its shape's %zu", f->path, tensor_name(t),
                       out->count);
    return MV_OK;
}

/* Fails when the tensor's data cannot hold its shape's values: checked before the values
 * are allocated, since a few bytes of shape may ask for up to 8 GiB (external data: its
 * entries, and a regular file large enough). */
static mv_status data_fits(const mv_onnx_file *f, const Onnx__TensorProto *t, int type,
                           const mv_onnx_tensor *out)
{
    const size_t n = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data
                   : type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? t->n_double_data
                   : t->n_int64_data;
    const size_t bytes = out->count * (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4 : 8);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return read_external(f, t, NULL, bytes);
    if (t->has_raw_data && t->raw_data.len != bytes)
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': raw_data holds %zu bytes, its "
                       "shape needs %zu", f->path, tensor_name(t), t->raw_data.len, bytes);
    if (!t->has_raw_data && n != out->count)
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s': its data field holds a different "
                       "number of values than its shape's %zu", f->path, tensor_name(t),
                       out->count);
    return MV_OK;
}

mv_status mv_onnx_tensor_values(const mv_onnx_file *f, const Onnx__TensorProto *t,
                                mv_onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    const int type = t->has_data_type ? t->data_type : 0;
    if (type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        type != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
        type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return mv_fail(MV_ERR_FORMAT, "%s: tensor '%s' has data type %d; supported: float "
                       "(1), double (11), int64 (7)", f->path, tensor_name(t), type);
    mv_status st = tensor_shape(f, t, out);
    if (st || (st = data_fits(f, t, type, out)))
        return st;
    const size_t n = out->count ? out->count : 1;
    if (type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        out->ints = malloc(n * sizeof *out->ints);
    else
        out->values = malloc(n * sizeof *out->values);
    if (!out->ints && !out->values)
        return mv_fail(MV_ERR_NOMEM, "%s: tensor '%s': cannot allocate %zu values", f->path,
                       tensor_name(t), out->count);
    if ((st = tensor_data(f, t, type, out)))
        mv_onnx_tensor_free(out);
    return st;
}
