/* model.c: the model file: a network with its input shape, normalisation, class names,
 * metadata and named float arrays, saved atomically and loaded with every field checked
 * before it is trusted. docs/model-format.md describes the bytes; this file is the only
 * writer and reader of that format, and the two must change together. Also what a model
 * does with pixels: its input normalisation (fitted to a dataset), predictions, and pixel
 * gradients.
 *
 *   file    = magic[8] version:u32 section* crc:u32   (crc over every byte before it)
 *   section = tag[4] length:u64 payload[length]
 *
 * Every number is little-endian and written byte by byte, never as a struct. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Weights are stored as IEEE-754 binary32 and copied bit for bit into mv_real. */
_Static_assert(sizeof(float) == 4, "the model file stores IEEE-754 binary32 floats");
_Static_assert(sizeof(mv_real) == sizeof(float), "model.c is compiled in float only");

/* PNG-style: a high-bit byte catches 7-bit channels, CR LF catches line-ending conversion,
 * 0x1A stops a DOS `type`, the final LF catches LF -> CR LF. */
static const uint8_t model_magic[8] = {0x89, 'M', 'L', 'P', '\r', '\n', 0x1A, '\n'};

enum {
    MODEL_VERSION = 1,     /* the only version this build reads and writes */
    HEADER_BYTES = 12,     /* magic + version */
    TRAILER_BYTES = 4,     /* CRC-32 */
    SECTION_HEAD_BYTES = 12, /* tag + u64 length */
    MAX_CLASS_NAME = 255,  /* bytes in one class name (a file name's limit) */
    MAX_EXTRA_NAME = (int)sizeof(((mv_model_extra *)0)->name) - 1,
};
/* The whole file is read into memory: bound it, and keep every count far from overflow. */
#define MAX_FILE_BYTES ((uint64_t)1 << 31)

/* ---------------------------------------------------------------- small helpers */

/* Little-endian readers and writers: the file's byte order, whatever the machine's. */
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static float get_f32(const uint8_t *p)
{
    uint32_t bits = get_u32(p);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void put_u32_at(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A copy of n bytes of text as a C string; NULL when out of memory. */
static char *copy_text(const char *text, size_t n)
{
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, text, n);
        copy[n] = 0;
    }
    return copy;
}

/* Frees the first n names and the array; NULL is allowed. */
static void free_names(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Records "PATH: reason" so that every load failure names the file it is about. */
static mv_status file_fail(const char *path, mv_status status, const char *fmt, ...)
    MV_PRINTF(3, 4);
static mv_status file_fail(const char *path, mv_status status, const char *fmt, ...)
{
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return mv_fail(status, "%s: %s", path, reason);
}

/* ---------------------------------------------------------------- metadata text */

/* NULL when text[0..len) is well-formed metadata ("key=value\n" lines, non-empty keys, no
 * NUL byte), else why not. */
static const char *meta_text_problem(const char *text, size_t len)
{
    if (memchr(text, 0, len))
        return "contains a NUL byte";
    if (len > 0 && text[len - 1] != '\n')
        return "does not end with a newline";
    for (size_t at = 0; at < len;) {
        const char *line = text + at, *end = memchr(line, '\n', len - at);
        const char *eq = memchr(line, '=', (size_t)(end - line));
        if (!eq)
            return "has a line without '='";
        if (eq == line)
            return "has a line with an empty key";
        at = (size_t)(end - text) + 1;
    }
    return NULL;
}

/* Releases n metadata entries and their array. */
static void free_meta(mv_model_meta *meta, int n)
{
    for (int i = 0; meta && i < n; i++) {
        free(meta[i].key);
        free(meta[i].value);
    }
    free(meta);
}

/* Splits well-formed metadata text[0..len) (meta_text_problem said so) into entries, in the
 * file's order, duplicates kept so that a save writes the same bytes; the key ends at the
 * first '='. The model's old entries are released only on success. */
static mv_status meta_parse(mv_model *model, const char *text, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    mv_model_meta *meta = n ? calloc((size_t)n, sizeof *meta) : NULL;
    if (n && !meta)
        return MV_ERR_NOMEM;
    const char *line = text;
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(line, '='), *end = strchr(eq, '\n');
        meta[i].key = copy_text(line, (size_t)(eq - line));
        meta[i].value = copy_text(eq + 1, (size_t)(end - eq - 1));
        if (!meta[i].key || !meta[i].value) {
            free_meta(meta, n);
            return MV_ERR_NOMEM;
        }
        line = end + 1;
    }
    free_meta(model->meta, model->n_meta);
    model->meta = meta;
    model->n_meta = n;
    return MV_OK;
}

/* Bytes of the metadata as the file holds it: "key=value\n" per entry. */
static uint64_t meta_text_size(const mv_model *model)
{
    uint64_t size = 0;
    for (int i = 0; i < model->n_meta; i++)
        size += strlen(model->meta[i].key) + 1 + strlen(model->meta[i].value) + 1;
    return size;
}

/* ---------------------------------------------------------------- model in memory */

/* Entries the file can hold and give back unchanged: keys non-empty without '=' or newline,
 * values without newline (the caller may have filled model->meta directly). */
static mv_status check_meta(const mv_model *model)
{
    if (model->n_meta < 0 || (model->n_meta > 0 && !model->meta))
        return mv_fail(MV_ERR_ARG, "%d metadata entries without an array", model->n_meta);
    for (int i = 0; i < model->n_meta; i++) {
        const mv_model_meta *e = &model->meta[i];
        if (!e->key || !*e->key || strpbrk(e->key, "=\n") || !e->value || strchr(e->value, '\n'))
            return mv_fail(MV_ERR_ARG, "metadata entry %d has an empty key, a key with '=' or "
                           "a newline, or a value with a newline", i);
    }
    return MV_OK;
}

/* Name of parameter i of a network ("W1[3][5]", "b0[2]") for error messages. */
static void param_position(const mv_net *net, size_t i, char *out, size_t size)
{
    const mv_arch *arch = &net->arch;
    for (int l = 0; l < arch->n_layers; l++) {
        const size_t n_in = (size_t)arch->widths[l], n_out = (size_t)arch->widths[l + 1];
        if (i < n_in * n_out) {
            snprintf(out, size, "W%d[%zu][%zu]", l, i / n_in, i % n_in);
            return;
        }
        i -= n_in * n_out;
        if (i < n_out) {
            snprintf(out, size, "b%d[%zu]", l, i);
            return;
        }
        i -= n_out;
    }
    snprintf(out, size, "parameter %zu", i);
}

/* MV_OK when name is a usable class name: 1..MAX_CLASS_NAME bytes. */
static mv_status check_class_name(const char *name, int index)
{
    if (!name)
        return mv_fail(MV_ERR_ARG, "class name %d is missing", index);
    size_t len = strlen(name);
    if (len == 0 || len > MAX_CLASS_NAME)
        return mv_fail(MV_ERR_ARG, "class name %d is %zu bytes long; names are 1..%d bytes",
                       index, len, MAX_CLASS_NAME);
    return MV_OK;
}

/* MV_OK when every extra has a proper unique name and finite data. */
static mv_status check_extras(const mv_model *model)
{
    if (model->n_extras < 0 || model->n_extras > MV_MODEL_MAX_EXTRAS)
        return mv_fail(MV_ERR_ARG, "%d extras; a model holds 0..%d", model->n_extras,
                       MV_MODEL_MAX_EXTRAS);
    for (int e = 0; e < model->n_extras; e++) {
        const mv_model_extra *x = &model->extras[e];
        size_t len = strnlen(x->name, sizeof x->name);
        if (len == 0 || len > MAX_EXTRA_NAME)
            return mv_fail(MV_ERR_ARG, "extra %d has no name of 1..%d bytes", e, MAX_EXTRA_NAME);
        for (int other = 0; other < e; other++)
            if (!strcmp(model->extras[other].name, x->name))
                return mv_fail(MV_ERR_ARG, "two extras are named '%s'", x->name);
        if (x->count > MAX_FILE_BYTES / 4 || !x->data)
            return mv_fail(MV_ERR_ARG, "extra '%s' holds %zu values; 0..%llu are allowed",
                           x->name, x->count, (unsigned long long)(MAX_FILE_BYTES / 4));
        for (size_t i = 0; i < x->count; i++)
            if (!isfinite(x->data[i]))
                return mv_fail(MV_ERR_NUMERIC, "extra '%s'[%zu] is not finite (%g)", x->name,
                               i, (double)x->data[i]);
    }
    return MV_OK;
}

/* MV_OK when the input shape and normalisation are usable: 1..4 channels, a shape whose
 * size is the input width, finite means and positive finite deviations. */
static mv_status check_input(const mv_model *model)
{
    const int C = model->channels, H = model->height, W = model->width;
    if (C < 1 || C > 4 || H < 1 || W < 1 ||
        (long long)C * H * W != model->net->arch.widths[0])
        return mv_fail(MV_ERR_ARG,
                       "input shape %d x %d x %d (channels x height x width) does not give "
                       "the network's %d inputs",
                       C, H, W, model->net->arch.widths[0]);
    for (int c = 0; c < C; c++) {
        if (!isfinite(model->mean[c]) || !isfinite(model->std[c]))
            return mv_fail(MV_ERR_NUMERIC, "channel %d: mean %g / std %g is not finite", c,
                           (double)model->mean[c], (double)model->std[c]);
        if (!(model->std[c] > 0))
            return mv_fail(MV_ERR_ARG, "channel %d: std must be > 0, got %g", c,
                           (double)model->std[c]);
    }
    return MV_OK;
}

/* MV_OK when the model is complete and consistent: what mv_model_save writes is exactly
 * what mv_model_load accepts. MV_ERR_NUMERIC for a NaN or infinity, MV_ERR_ARG otherwise. */
mv_status mv_model_check(const mv_model *model)
{
    if (!model || !model->net)
        return mv_fail(MV_ERR_ARG, "the model has no network");
    const mv_net *net = model->net;
    mv_status st = mv_arch_validate(&net->arch);
    if (st || (st = check_input(model)))
        return st;
    const int n_out = net->arch.widths[net->arch.n_layers];
    if (model->n_classes != n_out || !model->class_names)
        return mv_fail(MV_ERR_ARG, "%d class names for %d outputs", model->n_classes, n_out);
    for (int i = 0; i < n_out; i++)
        if ((st = check_class_name(model->class_names[i], i)))
            return st;
    if ((st = check_meta(model)))
        return st;
    if (net->p.count != mv_arch_param_count(&net->arch))
        return mv_fail(MV_ERR_ARG, "the network holds %zu parameters, its shape needs %zu",
                       net->p.count, mv_arch_param_count(&net->arch));
    for (size_t i = 0; i < net->p.count; i++)
        if (!isfinite(net->p.data[i])) {
            char where[64];
            param_position(net, i, where, sizeof where);
            return mv_fail(MV_ERR_NUMERIC, "weight %s is not finite (%g)", where,
                           (double)net->p.data[i]);
        }
    return check_extras(model);
}

/* A consistent model from the start: everything mv_model_check demands already holds. */
mv_status mv_model_create(mv_model **out, const mv_arch *arch)
{
    *out = NULL;
    mv_model *model = calloc(1, sizeof *model);
    if (!model)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a model");
    mv_status st = mv_net_create(&model->net, arch);
    if (st) {
        free(model);
        return st;
    }
    const int n_out = arch->widths[arch->n_layers];
    model->channels = 1;
    model->height = arch->widths[0];
    model->width = 1;
    for (int c = 0; c < 4; c++) model->std[c] = 1;
    model->class_names = calloc((size_t)n_out, sizeof *model->class_names);
    model->n_classes = model->class_names ? n_out : 0;
    for (int i = 0; model->class_names && i < n_out; i++) {
        char digits[16];
        int len = snprintf(digits, sizeof digits, "%d", i);
        if (!(model->class_names[i] = copy_text(digits, (size_t)len))) {
            model->n_classes = i; /* mv_model_free releases the names made so far */
            break;
        }
    }
    if (model->n_classes != n_out) {
        mv_model_free(model);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate %d class names", n_out);
    }
    *out = model;
    return MV_OK;
}

/* Frees everything the model owns. */
void mv_model_free(mv_model *model)
{
    if (!model)
        return;
    mv_net_free(model->net);
    free_names(model->class_names, model->n_classes);
    free_meta(model->meta, model->n_meta);
    for (int e = 0; e < model->n_extras && e < MV_MODEL_MAX_EXTRAS; e++)
        free(model->extras[e].data);
    free(model);
}

/* A copy of src's n_meta entries into model, duplicates and order kept. */
static mv_status meta_copy(mv_model *model, const mv_model *src)
{
    if (src->n_meta <= 0)
        return MV_OK;
    model->meta = calloc((size_t)src->n_meta, sizeof *model->meta);
    model->n_meta = model->meta ? src->n_meta : 0; /* mv_model_free releases what is made */
    int copied = 0;
    while (model->meta && copied < src->n_meta) {
        const mv_model_meta *e = &src->meta[copied];
        mv_model_meta *c = &model->meta[copied];
        c->key = copy_text(e->key, strlen(e->key));
        c->value = copy_text(e->value, strlen(e->value));
        if (!c->key || !c->value)
            break;
        copied++;
    }
    if (copied < src->n_meta)
        return mv_fail(MV_ERR_NOMEM, "cannot copy %d metadata entries", src->n_meta);
    return MV_OK;
}

/* Built through mv_model_create and the setters, so the copy is as consistent as they make
 * any model; a failure frees the partial copy. */
mv_status mv_model_clone(mv_model **out, const mv_model *src)
{
    *out = NULL;
    if (!src || !src->net)
        return mv_fail(MV_ERR_ARG, "cannot copy a model without a network");
    mv_model *copy;
    mv_status st = mv_model_create(&copy, &src->net->arch);
    if (st)
        return st;
    memcpy(copy->net->p.data, src->net->p.data, sizeof *copy->net->p.data * copy->net->p.count);
    copy->channels = src->channels;
    copy->height = src->height;
    copy->width = src->width;
    memcpy(copy->mean, src->mean, sizeof copy->mean);
    memcpy(copy->std, src->std, sizeof copy->std);
    st = mv_model_set_class_names(copy, (const char *const *)src->class_names, src->n_classes);
    if (!st)
        st = meta_copy(copy, src);
    for (int e = 0; !st && e < src->n_extras; e++)
        st = mv_model_extra_set(copy, src->extras[e].name, src->extras[e].data,
                                src->extras[e].count);
    if (st) {
        mv_model_free(copy);
        return st;
    }
    *out = copy;
    return MV_OK;
}

/* All names are checked and copied before the old ones go: a failure changes nothing. */
mv_status mv_model_set_class_names(mv_model *model, const char *const *names, int n)
{
    const int n_out = model->net->arch.widths[model->net->arch.n_layers];
    if (n < 1 || n != n_out || !names)
        return mv_fail(MV_ERR_ARG, "%d class names given for a network of %d outputs", n,
                       n_out);
    mv_status st;
    for (int i = 0; i < n; i++)
        if ((st = check_class_name(names[i], i)))
            return st;
    char **copy = calloc((size_t)n, sizeof *copy);
    for (int i = 0; copy && i < n; i++)
        if (!(copy[i] = copy_text(names[i], strlen(names[i])))) {
            free_names(copy, i);
            copy = NULL;
        }
    if (!copy)
        return mv_fail(MV_ERR_NOMEM, "cannot copy %d class names", n);
    free_names(model->class_names, model->n_classes);
    model->class_names = copy;
    model->n_classes = n;
    return MV_OK;
}

/* The permutation from[k] = the model's index of names[k], or MV_ERR_ARG naming the first
 * name that is not the model's (a repeat is caught as a missing other name). */
static mv_status class_permutation(const mv_model *model, const char *const *names, int n,
                                   int *from)
{
    if (n != model->n_classes)
        return mv_fail(MV_ERR_ARG, "%d class names for a model of %d classes", n,
                       model->n_classes);
    for (int k = 0; k < n; k++) {
        from[k] = -1;
        for (int j = 0; j < n && from[k] < 0; j++)
            if (names[k] && !strcmp(names[k], model->class_names[j]))
                from[k] = j;
        for (int i = 0; i < k && from[k] >= 0; i++)
            if (from[i] == from[k])
                from[k] = -1;
        if (from[k] < 0)
            return mv_fail(MV_ERR_ARG, "class '%s' is not one of the model's classes (or is "
                           "repeated)", names[k] ? names[k] : "(null)");
    }
    return MV_OK;
}

mv_status mv_model_reorder_classes(mv_model *model, const char *const *names, int n)
{
    if (model->n_extras)
        return mv_fail(MV_ERR_ARG, "the model holds %d extras (per-class arrays) that would "
                       "keep the old class order", model->n_extras);
    const mv_arch *a = &model->net->arch;
    const int L = a->n_layers, in = a->widths[L - 1];
    int *from = malloc(sizeof *from * (size_t)(n > 0 ? n : 1));
    mv_real *W = malloc(sizeof *W * (size_t)n * (size_t)in), *b = malloc(sizeof *b * (size_t)n);
    char **old = malloc(sizeof *old * (size_t)(n > 0 ? n : 1));
    mv_status st = !from || !W || !b || !old
                       ? mv_fail(MV_ERR_NOMEM, "cannot reorder %d classes", n)
                       : class_permutation(model, names, n, from);
    if (!st) {
        memcpy(W, model->net->p.W[L - 1], sizeof *W * (size_t)n * (size_t)in);
        memcpy(b, model->net->p.b[L - 1], sizeof *b * (size_t)n);
        memcpy(old, model->class_names, sizeof *old * (size_t)n);
        for (int k = 0; k < n; k++) {
            memcpy(model->net->p.W[L - 1] + (size_t)k * in, W + (size_t)from[k] * in,
                   sizeof *W * (size_t)in);
            model->net->p.b[L - 1][k] = b[from[k]];
            model->class_names[k] = old[from[k]];
        }
    }
    free(from);
    free(W);
    free(b);
    free(old);
    return st;
}

/* The first entry whose key is key, or NULL. */
static mv_model_meta *meta_find(const mv_model *model, const char *key)
{
    for (int i = 0; i < model->n_meta; i++)
        if (!strcmp(model->meta[i].key, key))
            return &model->meta[i];
    return NULL;
}

/* Replaces the key's value in place (keeping the order of the others) or appends an entry;
 * everything is copied before anything changes, so a failure leaves the metadata as it was. */
mv_status mv_model_meta_set(mv_model *model, const char *key, const char *value)
{
    if (!key || !*key || strpbrk(key, "=\n") || !value || strchr(value, '\n'))
        return mv_fail(MV_ERR_ARG, "metadata key '%s' or its value is not usable: keys are "
                       "non-empty without '=' or newline, values have no newline",
                       key ? key : "(null)");
    mv_model_meta *found = meta_find(model, key);
    char *value_copy = copy_text(value, strlen(value));
    char *key_copy = found ? NULL : copy_text(key, strlen(key));
    mv_model_meta *grown = found || !value_copy || !key_copy ? NULL :
        realloc(model->meta, ((size_t)model->n_meta + 1) * sizeof *grown);
    if (!value_copy || (!found && !grown)) {
        free(value_copy);
        free(key_copy);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate metadata '%s'", key);
    }
    if (found) {
        free(found->value);
        found->value = value_copy;
        return MV_OK;
    }
    model->meta = grown;
    model->meta[model->n_meta++] = (mv_model_meta){key_copy, value_copy};
    return MV_OK;
}

const char *mv_model_meta_get(const mv_model *model, const char *key)
{
    const mv_model_meta *found = key ? meta_find(model, key) : NULL;
    return found ? found->value : NULL;
}

/* Checks and copies before replacing, so a failure leaves any array of that name intact. */
mv_status mv_model_extra_set(mv_model *model, const char *name, const float *data,
                             size_t count)
{
    if (!name || !*name || strlen(name) > MAX_EXTRA_NAME)
        return mv_fail(MV_ERR_ARG, "extra name '%s' must be 1..%d bytes", name ? name : "(null)",
                       MAX_EXTRA_NAME);
    if ((!data && count > 0) || count > MAX_FILE_BYTES / 4)
        return mv_fail(MV_ERR_ARG, "extra '%s' must hold 0..%llu values, got %zu", name,
                       (unsigned long long)(MAX_FILE_BYTES / 4), count);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(data[i]))
            return mv_fail(MV_ERR_NUMERIC, "extra '%s'[%zu] is not finite (%g)", name, i,
                           (double)data[i]);
    int slot = 0;
    while (slot < model->n_extras && strcmp(model->extras[slot].name, name)) slot++;
    if (slot == MV_MODEL_MAX_EXTRAS)
        return mv_fail(MV_ERR_ARG, "a model holds at most %d extras; cannot add '%s'",
                       MV_MODEL_MAX_EXTRAS, name);
    float *copy = malloc((count ? count : 1) * sizeof *copy); /* never NULL: NULL = missing */
    if (!copy)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate extra '%s' of %zu values", name, count);
    if (count)
        memcpy(copy, data, count * sizeof *copy);
    mv_model_extra *x = &model->extras[slot];
    if (slot == model->n_extras) {
        memset(x, 0, sizeof *x);
        strcpy(x->name, name);
        model->n_extras++;
    }
    free(x->data);
    x->data = copy;
    x->count = count;
    return MV_OK;
}

/* Exact name match; *count is 0 when there is no such array. */
const float *mv_model_extra_get(const mv_model *model, const char *name, size_t *count)
{
    for (int e = 0; name && e < model->n_extras; e++)
        if (!strcmp(model->extras[e].name, name)) {
            if (count)
                *count = model->extras[e].count;
            return model->extras[e].data;
        }
    if (count)
        *count = 0;
    return NULL;
}

/* The normalisation the model was trained with; also the one documented for exports. */
void mv_model_prepare_input(const mv_model *model, const float *pixels, mv_real *x, int n)
{
    const size_t D = (size_t)model->net->arch.widths[0];
    const size_t C = (size_t)(model->channels > 0 ? model->channels : 1);
    if (C == 1) { /* the same arithmetic without the channel index, so that it vectorizes */
        const float mean = model->mean[0], std = model->std[0];
        for (size_t i = 0; i < (size_t)(n > 0 ? n : 0) * D; i++)
            x[i] = (mv_real)((pixels[i] - mean) / std);
        return;
    }
    for (size_t i = 0; i < (size_t)(n > 0 ? n : 0); i++)
        for (size_t k = 0; k < D; k++) { /* HWC: the channel is the fastest index */
            const size_t c = k % C;
            x[i * D + k] = (mv_real)((pixels[i * D + k] - model->mean[c]) / model->std[c]);
        }
}

void mv_model_input_to_pixel_grad(const mv_model *model, const mv_real *gx, const mv_real *x,
                                  double l2, float *grad, size_t count)
{
    const size_t C = (size_t)(model->channels > 0 ? model->channels : 1);
    if (C == 1 && (!x || l2 == 0)) { /* the same quotient in float (a double quotient of two
                                        floats rounds to it), vectorized */
        const float std = model->std[0];
        for (size_t i = 0; i < count; i++) grad[i] = gx[i] / std;
    } else if (!x) {
        for (size_t i = 0; i < count; i++) grad[i] = gx[i] / model->std[i % C];
    } else { /* in double, as visualization has always computed it: even a zero l2 term can
                turn a -0 into +0 */
        for (size_t i = 0; i < count; i++)
            grad[i] = (float)((gx[i] - 2 * l2 * x[i]) / model->std[i % C]);
    }
}

mv_status mv_model_pixel_grad(const mv_model *model, const float *pixels, int n,
                              mv_target target, const int *index, float *grad, mv_real *values)
{
    const mv_arch *arch = &model->net->arch;
    const size_t count = (size_t)arch->widths[0] * (size_t)(n > 0 ? n : 0);
    mv_workspace *ws = NULL;
    mv_real *x = malloc(sizeof *x * (count ? count : 1));
    mv_status st = x ? mv_workspace_create(&ws, arch, n)
                     : mv_fail(MV_ERR_NOMEM, "cannot allocate a batch of %d images", n);
    if (st == MV_OK) {
        mv_model_prepare_input(model, pixels, x, n);
        st = mv_input_grad(model->net, ws, x, n, target, index, grad, values);
    }
    if (st == MV_OK)
        mv_model_input_to_pixel_grad(model, grad, NULL, 0, grad, count);
    mv_workspace_free(ws);
    free(x);
    return st;
}

mv_status mv_model_predict(const mv_model *model, const float *pixels, int n, float *probs)
{
    const mv_arch *arch = &model->net->arch;
    const int L = arch->n_layers, K = arch->widths[L], B = n < 256 ? (n > 0 ? n : 1) : 256;
    const size_t D = (size_t)arch->widths[0];
    mv_workspace *ws = NULL;
    mv_real *x = malloc(sizeof *x * D * (size_t)B);
    mv_status st = x ? mv_workspace_create(&ws, arch, B)
                     : mv_fail(MV_ERR_NOMEM, "cannot allocate a batch of %d images", B);
    for (int first = 0; st == MV_OK && first < n; first += B) {
        const int rows = n - first < B ? n - first : B;
        mv_model_prepare_input(model, pixels + (size_t)first * D, x, rows);
        mv_forward(model->net, ws, x, rows);
        for (size_t i = 0; i < (size_t)rows * K; i++) {
            const float p = (float)ws->a[L - 1][i];
            if (!isfinite(p)) { /* finite weights can still overflow: say so, not NaN */
                st = mv_fail(MV_ERR_NUMERIC, "the network's output for image %zu is %g: its "
                             "weights overflow float arithmetic", first + i / K, p);
                break;
            }
            probs[(size_t)first * K + i] = p;
        }
    }
    mv_workspace_free(ws);
    free(x);
    return st;
}

mv_status mv_model_fit_normalisation(mv_model *model, const mv_dataset *data)
{
    enum { BLOCK = 32 }; /* images read at a time: bounded memory whatever the storage */
    const int C = data->channels < 4 ? data->channels : 4;
    const size_t per_image = (size_t)data->height * data->width * data->channels;
    float *rows = malloc(sizeof *rows * per_image * BLOCK); /* [BLOCK][per_image] */
    int *indices = malloc(sizeof *indices * BLOCK);          /* [BLOCK] */
    mv_status st = rows && indices ? MV_OK
                                   : mv_fail(MV_ERR_NOMEM, "out of memory for the normalisation");
    /* Each channel sums in image order, then pixel order: the channels share one pass over
     * the images, and none changes another's order. */
    double sum[4] = {0, 0, 0, 0}, sq[4] = {0, 0, 0, 0};
    for (int first = 0; !st && first < data->count; first += BLOCK) {
        const int n = data->count - first < BLOCK ? data->count - first : BLOCK;
        for (int i = 0; i < n; i++) indices[i] = first + i;
        st = mv_dataset_read_rows(data, indices, n, rows);
        for (int i = 0; !st && i < n; i++)
            for (int c = 0; c < C; c++) {
                const float *p = rows + (size_t)i * per_image;
                for (size_t k = (size_t)c; k < per_image; k += (size_t)data->channels) {
                    sum[c] += p[k];
                    sq[c] += (double)p[k] * p[k];
                }
            }
    }
    const size_t n = (size_t)data->count * (per_image / (size_t)(data->channels ? data->channels : 1));
    for (int c = 0; !st && c < C; c++) {
        const double mean = n ? sum[c] / (double)n : 0;
        const double var = n ? sq[c] / (double)n - mean * mean : 0;
        model->mean[c] = (float)mean;
        /* a constant channel carries no information; 1 keeps it harmless */
        model->std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    free(rows);
    free(indices);
    return st;
}

/* ---------------------------------------------------------------- writing */

/* The file image being built; exactly sized up front, so appends never reallocate. */
typedef struct {
    uint8_t *data; /* [cap] */
    size_t len, cap;
} out_buffer;

/* Appenders: the buffer was sized by image_size, so they never check for room. */
static void put_bytes(out_buffer *b, const void *src, size_t n)
{
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void put_u32(out_buffer *b, uint32_t v)
{
    put_u32_at(b->data + b->len, v);
    b->len += 4;
}

static void put_u64(out_buffer *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f32(out_buffer *b, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_u32(b, bits);
}

static void put_section_head(out_buffer *b, const char tag[4], uint64_t payload)
{
    put_bytes(b, tag, 4);
    put_u64(b, payload);
}

/* Payload sizes of the sections, in file order; meta is omitted when empty. */
typedef struct {
    uint64_t arch, input, classes, meta, weights, extra[MV_MODEL_MAX_EXTRAS];
} section_sizes;

/* Exact size of the file that encodes model (already checked). */
static uint64_t image_size(const mv_model *model, section_sizes *s)
{
    const mv_arch *arch = &model->net->arch;
    const uint64_t L = (uint64_t)arch->n_layers;
    s->arch = 4 + 4 * (L + 1) + 8 * (L - 1) + 4;
    s->input = 12 + 8 * (uint64_t)model->channels;
    s->classes = 4;
    for (int i = 0; i < model->n_classes; i++) s->classes += 4 + strlen(model->class_names[i]);
    s->meta = meta_text_size(model);
    s->weights = 8 + 4 * (uint64_t)model->net->p.count;
    uint64_t total = HEADER_BYTES + TRAILER_BYTES + 4 * SECTION_HEAD_BYTES + s->arch +
                     s->input + s->classes + s->weights;
    if (s->meta)
        total += SECTION_HEAD_BYTES + s->meta;
    for (int e = 0; e < model->n_extras; e++) {
        s->extra[e] = 4 + strlen(model->extras[e].name) + 8 + 4 * (uint64_t)model->extras[e].count;
        total += SECTION_HEAD_BYTES + s->extra[e];
    }
    return total;
}

/* Sections ARCH and INPT: the network's shape, then how to feed it. */
static void put_shape_sections(out_buffer *b, const mv_model *model, const section_sizes *s)
{
    const mv_arch *arch = &model->net->arch;
    put_section_head(b, "ARCH", s->arch);
    put_u32(b, (uint32_t)arch->n_layers);
    for (int l = 0; l <= arch->n_layers; l++) put_u32(b, (uint32_t)arch->widths[l]);
    for (int l = 0; l + 1 < arch->n_layers; l++) {
        put_u32(b, (uint32_t)arch->act[l].kind);
        put_f32(b, arch->act[l].param);
    }
    put_u32(b, (uint32_t)arch->head);

    put_section_head(b, "INPT", s->input);
    put_u32(b, (uint32_t)model->channels);
    put_u32(b, (uint32_t)model->height);
    put_u32(b, (uint32_t)model->width);
    for (int c = 0; c < model->channels; c++) put_f32(b, model->mean[c]);
    for (int c = 0; c < model->channels; c++) put_f32(b, model->std[c]);
}

/* Every section in file order, then the CRC of everything before it. */
static void put_model(out_buffer *b, const mv_model *model, const section_sizes *s)
{
    put_bytes(b, model_magic, sizeof model_magic);
    put_u32(b, MODEL_VERSION);
    put_shape_sections(b, model, s);
    put_section_head(b, "CLAS", s->classes);
    put_u32(b, (uint32_t)model->n_classes);
    for (int i = 0; i < model->n_classes; i++) {
        const size_t len = strlen(model->class_names[i]);
        put_u32(b, (uint32_t)len);
        put_bytes(b, model->class_names[i], len);
    }
    if (s->meta) {
        put_section_head(b, "meta", s->meta);
        for (int i = 0; i < model->n_meta; i++) {
            put_bytes(b, model->meta[i].key, strlen(model->meta[i].key));
            put_bytes(b, "=", 1);
            put_bytes(b, model->meta[i].value, strlen(model->meta[i].value));
            put_bytes(b, "\n", 1);
        }
    }
    put_section_head(b, "WGHT", s->weights);
    put_u64(b, model->net->p.count);
    for (size_t i = 0; i < model->net->p.count; i++) put_f32(b, model->net->p.data[i]);
    for (int e = 0; e < model->n_extras; e++) {
        const mv_model_extra *x = &model->extras[e];
        put_section_head(b, "xtra", s->extra[e]);
        put_u32(b, (uint32_t)strlen(x->name));
        put_bytes(b, x->name, strlen(x->name));
        put_u64(b, x->count);
        for (size_t i = 0; i < x->count; i++) put_f32(b, x->data[i]);
    }
    put_u32(b, mv_crc32(0, b->data, b->len));
}

/* Checks, encodes in memory, then writes atomically: a model the loader would refuse is
 * never written, and a failed write never damages an earlier file. */
mv_status mv_model_check_to_save(const mv_model *model, const char *path, const char *as)
{
    mv_status st = mv_model_check(model);
    if (st) {
        char context[4200];
        snprintf(context, sizeof context, "cannot save %s%s", path, as);
        mv_fail_context(st, context);
    }
    return st;
}

mv_status mv_model_save(const mv_model *model, const char *path)
{
    mv_status st = mv_model_check_to_save(model, path, "");
    if (st)
        return st;
    section_sizes sizes;
    const uint64_t size = image_size(model, &sizes);
    if (size > MAX_FILE_BYTES)
        return mv_fail(MV_ERR_ARG, "cannot save %s: the model needs %llu bytes; model files "
                       "are limited to %llu", path, (unsigned long long)size,
                       (unsigned long long)MAX_FILE_BYTES);
    out_buffer b = {malloc((size_t)size), 0, (size_t)size};
    if (!b.data)
        return mv_fail(MV_ERR_NOMEM, "cannot save %s: no memory for %llu bytes", path,
                       (unsigned long long)size);
    put_model(&b, model, &sizes);
    st = mv_write_file_atomic(path, b.data, b.len); /* temporary file, fsync, rename */
    free(b.data);
    return st;
}

/* ---------------------------------------------------------------- reading */

/* The whole file in memory and the name it is reported under. */
typedef struct {
    const char *path;
    const uint8_t *data; /* [size] */
    size_t size;
} model_file;

/* Where a section's payload lies in the file. */
typedef struct {
    size_t at, len;
    int present;
} span;

enum { SEC_ARCH, SEC_INPT, SEC_CLAS, SEC_WGHT, SEC_META, SEC_SINGLE_COUNT };
static const char single_tags[SEC_SINGLE_COUNT][5] = {"ARCH", "INPT", "CLAS", "WGHT", "meta"};

/* The sections this version understands; unknown optional ones are skipped, not kept. */
typedef struct {
    span single[SEC_SINGLE_COUNT];
    span extra[MV_MODEL_MAX_EXTRAS];
    int n_extras;
} section_index;

/* Magic, version and CRC: what must hold before any byte inside is believed. The version is
 * judged before the CRC, since a later version may protect its bytes differently. */
static mv_status check_envelope(const model_file *f)
{
    const size_t magic_len = sizeof model_magic;
    const size_t shown = f->size < magic_len ? f->size : magic_len;
    if (memcmp(f->data, model_magic, shown)) {
        if (f->size >= 5 && !memcmp(f->data, model_magic, 4) && f->data[4] == '\n')
            return file_fail(f->path, MV_ERR_FORMAT, "not an mlpviz model: its line endings "
                             "were converted (copied in text mode?)");
        return file_fail(f->path, MV_ERR_FORMAT, "not an mlpviz model (wrong magic bytes), nor an "
                         "ONNX model");
    }
    if (f->size < HEADER_BYTES + TRAILER_BYTES)
        return file_fail(f->path, MV_ERR_FORMAT, "too short to be an mlpviz model (%zu bytes, "
                         "at least %d needed): truncated", f->size, HEADER_BYTES + TRAILER_BYTES);
    const uint32_t version = get_u32(f->data + magic_len);
    if (version > MODEL_VERSION)
        return file_fail(f->path, MV_ERR_FORMAT, "format version %u is newer than this build "
                         "of mlpviz reads (version %d): upgrade mlpviz", version, MODEL_VERSION);
    if (version < 1)
        return file_fail(f->path, MV_ERR_FORMAT, "unknown format version %u (this build reads "
                         "version %d)", version, MODEL_VERSION);
    const size_t body = f->size - TRAILER_BYTES;
    const uint32_t stored = get_u32(f->data + body), computed = mv_crc32(0, f->data, body);
    if (stored != computed)
        return file_fail(f->path, MV_ERR_FORMAT, "corrupted: CRC mismatch (stored 0x%08x, "
                         "computed 0x%08x)", stored, computed);
    return MV_OK;
}

/* Non-zero when the 4 tag bytes are letters, digits or spaces (so they can be printed). */
static int tag_is_printable(const uint8_t *tag)
{
    for (int i = 0; i < 4; i++)
        if (!((tag[i] >= 'A' && tag[i] <= 'Z') || (tag[i] >= 'a' && tag[i] <= 'z') ||
              (tag[i] >= '0' && tag[i] <= '9') || tag[i] == ' '))
            return 0;
    return 1;
}

/* Records one section found at payload offset `at`: each known one at most once, extras up
 * to MV_MODEL_MAX_EXTRAS, unknown required ones (upper-case first letter) refused. */
static mv_status index_one(const model_file *f, section_index *idx, const uint8_t *tag,
                           size_t at, size_t len)
{
    span found = {at, len, 1};
    if (!memcmp(tag, "xtra", 4)) {
        if (idx->n_extras == MV_MODEL_MAX_EXTRAS)
            return file_fail(f->path, MV_ERR_FORMAT, "more than %d extra arrays",
                             MV_MODEL_MAX_EXTRAS);
        idx->extra[idx->n_extras++] = found;
        return MV_OK;
    }
    for (int s = 0; s < SEC_SINGLE_COUNT; s++)
        if (!memcmp(tag, single_tags[s], 4)) {
            if (idx->single[s].present)
                return file_fail(f->path, MV_ERR_FORMAT, "duplicate section '%s' at offset %zu",
                                 single_tags[s], at - SECTION_HEAD_BYTES);
            idx->single[s] = found;
            return MV_OK;
        }
    if (tag[0] >= 'A' && tag[0] <= 'Z')
        return file_fail(f->path, MV_ERR_FORMAT, "unknown required section '%.4s' at offset "
                         "%zu (written by a newer mlpviz?)", (const char *)tag,
                         at - SECTION_HEAD_BYTES);
    return MV_OK; /* an optional section of a later version: skipped */
}

/* Walks the sections between the header and the CRC, checking every length against the
 * bytes that are really there. */
static mv_status index_sections(const model_file *f, section_index *idx)
{
    memset(idx, 0, sizeof *idx);
    const size_t end = f->size - TRAILER_BYTES;
    for (size_t pos = HEADER_BYTES; pos < end;) {
        if (end - pos < SECTION_HEAD_BYTES)
            return file_fail(f->path, MV_ERR_FORMAT, "truncated section header at offset %zu "
                             "(%zu bytes left)", pos, end - pos);
        const uint8_t *tag = f->data + pos;
        if (!tag_is_printable(tag))
            return file_fail(f->path, MV_ERR_FORMAT, "bad section tag at offset %zu", pos);
        const uint64_t len = get_u64(f->data + pos + 4);
        const size_t left = end - pos - SECTION_HEAD_BYTES;
        if (len > left)
            return file_fail(f->path, MV_ERR_FORMAT, "truncated section '%.4s' at offset %zu: "
                             "it claims %llu bytes, %zu are left", (const char *)tag, pos,
                             (unsigned long long)len, left);
        mv_status st = index_one(f, idx, tag, pos + SECTION_HEAD_BYTES, (size_t)len);
        if (st)
            return st;
        pos += SECTION_HEAD_BYTES + (size_t)len;
    }
    for (int s = 0; s < SEC_META; s++)
        if (!idx->single[s].present)
            return file_fail(f->path, MV_ERR_FORMAT, "missing required section '%s'",
                             single_tags[s]);
    return MV_OK;
}

/* ARCH: layer count, widths, hidden activations, head; validated with mv_arch_validate. */
static mv_status parse_arch(const model_file *f, span s, mv_arch *arch)
{
    const uint8_t *p = f->data + s.at;
    memset(arch, 0, sizeof *arch);
    const uint32_t L = s.len >= 4 ? get_u32(p) : 0;
    if (L < 1 || L > MV_MAX_LAYERS)
        return file_fail(f->path, MV_ERR_FORMAT, "ARCH section: %u weight layers (1..%d "
                         "allowed)", L, MV_MAX_LAYERS);
    const size_t want = 4 + 4 * ((size_t)L + 1) + 8 * ((size_t)L - 1) + 4;
    if (s.len != want)
        return file_fail(f->path, MV_ERR_FORMAT, "ARCH section is %zu bytes; %u layers need %zu",
                         s.len, L, want);
    arch->n_layers = (int)L;
    p += 4;
    for (uint32_t l = 0; l <= L; l++, p += 4) {
        const uint32_t w = get_u32(p);
        arch->widths[l] = w > (uint32_t)INT32_MAX ? -1 : (int)w; /* -1: refused below */
    }
    for (uint32_t l = 0; l + 1 < L; l++, p += 8) {
        const uint32_t kind = get_u32(p);
        arch->act[l].kind = kind < MV_ACT_COUNT ? (mv_act_kind)kind : MV_ACT_COUNT;
        arch->act[l].param = get_f32(p + 4);
    }
    const uint32_t head = get_u32(p);
    arch->head = head < MV_HEAD_COUNT ? (mv_head)head : MV_HEAD_COUNT;
    if (mv_arch_validate(arch)) {
        char why[256];
        snprintf(why, sizeof why, "%s", mv_last_error());
        return file_fail(f->path, MV_ERR_FORMAT, "bad architecture: %s", why);
    }
    return MV_OK;
}

/* INPT: channels, height, width, then channels means and channels deviations. The values
 * themselves are judged later by mv_model_check. */
static mv_status parse_input(const model_file *f, span s, mv_model *model)
{
    const uint8_t *p = f->data + s.at;
    const uint32_t C = s.len >= 4 ? get_u32(p) : 0;
    if (C < 1 || C > 4)
        return file_fail(f->path, MV_ERR_FORMAT, "INPT section: %u channels (1..4 allowed)", C);
    if (s.len != 12 + 8 * (size_t)C)
        return file_fail(f->path, MV_ERR_FORMAT, "INPT section is %zu bytes; %u channels need "
                         "%zu", s.len, C, 12 + 8 * (size_t)C);
    const uint32_t H = get_u32(p + 4), W = get_u32(p + 8);
    const int inputs = model->net->arch.widths[0];
    if (H < 1 || W < 1 || (uint64_t)C * H * W != (uint64_t)inputs)
        return file_fail(f->path, MV_ERR_FORMAT, "input shape %u x %u x %u (channels x "
                         "height x width) does not give the network's %d inputs", C, H, W,
                         inputs);
    model->channels = (int)C;
    model->height = (int)H;
    model->width = (int)W;
    for (uint32_t c = 0; c < C; c++) {
        model->mean[c] = get_f32(p + 12 + 4 * c);
        model->std[c] = get_f32(p + 12 + 4 * (C + c));
    }
    return MV_OK;
}

/* CLAS: one length-prefixed name per output, each within the section and 1..255 bytes
 * without NUL. Names are copied only once every one of them has been checked. */
static mv_status parse_classes(const model_file *f, span s, mv_model *model)
{
    const uint8_t *p = f->data + s.at, *end = p + s.len;
    const int n_out = model->net->arch.widths[model->net->arch.n_layers];
    const uint32_t count = s.len >= 4 ? get_u32(p) : 0;
    if (s.len < 4 || count != (uint32_t)n_out)
        return file_fail(f->path, MV_ERR_FORMAT, "%u class names for %d outputs", count, n_out);
    p += 4;
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 4)
            return file_fail(f->path, MV_ERR_FORMAT, "class name %u: runs past the end of its "
                             "section", i);
        const uint32_t len = get_u32(p);
        if (len < 1 || len > MAX_CLASS_NAME)
            return file_fail(f->path, MV_ERR_FORMAT, "class name %u has an absurd length of %u "
                             "bytes (names are 1..%d bytes)", i, len, MAX_CLASS_NAME);
        if ((size_t)(end - p - 4) < len)
            return file_fail(f->path, MV_ERR_FORMAT, "class name %u: its %u bytes run past the "
                             "end of its section", i, len);
        if (memchr(p + 4, 0, len))
            return file_fail(f->path, MV_ERR_FORMAT, "class name %u contains a NUL byte", i);
        p += 4 + len;
    }
    if (p != end)
        return file_fail(f->path, MV_ERR_FORMAT, "%zu stray bytes after the class names",
                         (size_t)(end - p));
    p = f->data + s.at + 4;
    for (int i = 0; i < n_out; i++) {
        const uint32_t len = get_u32(p);
        char *name = copy_text((const char *)p + 4, len);
        if (!name)
            return file_fail(f->path, MV_ERR_NOMEM, "cannot allocate class names");
        free(model->class_names[i]);
        model->class_names[i] = name;
        p += 4 + len;
    }
    return MV_OK;
}

/* Copies n float32 values from p to out. */
static void get_floats(const uint8_t *p, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = get_f32(p + 4 * i);
}

/* xtra: a named float array (possibly empty); the name is 1..31 bytes, the count matches
 * the length. */
static mv_status parse_extra(const model_file *f, span s, mv_model *model)
{
    const uint8_t *p = f->data + s.at;
    const uint32_t name_len = s.len >= 4 ? get_u32(p) : 0;
    if (name_len < 1 || name_len > MAX_EXTRA_NAME || s.len < 4 + (size_t)name_len + 8)
        return file_fail(f->path, MV_ERR_FORMAT, "extra array at offset %zu: name of absurd "
                         "length %u (1..%d bytes)", s.at, name_len, MAX_EXTRA_NAME);
    char name[MAX_EXTRA_NAME + 1];
    memcpy(name, p + 4, name_len);
    name[name_len] = 0;
    const uint64_t count = get_u64(p + 4 + name_len);
    if (strlen(name) != name_len || count != (s.len - 4 - name_len - 8) / 4 ||
        (s.len - 4 - name_len - 8) % 4)
        return file_fail(f->path, MV_ERR_FORMAT, "extra array '%s': a count of %llu does not "
                         "match its %zu bytes (or its name holds a NUL)", name,
                         (unsigned long long)count, s.len);
    if (mv_model_extra_get(model, name, NULL))
        return file_fail(f->path, MV_ERR_FORMAT, "two extra arrays are named '%s'", name);
    float *data = malloc((size_t)(count ? count : 1) * sizeof *data);
    if (!data)
        return file_fail(f->path, MV_ERR_NOMEM, "cannot allocate extra array '%s'", name);
    get_floats(p + 4 + name_len + 8, data, (size_t)count);
    mv_model_extra *x = &model->extras[model->n_extras++];
    memset(x, 0, sizeof *x);
    memcpy(x->name, name, name_len + 1);
    x->data = data;
    x->count = (size_t)count;
    return MV_OK;
}

/* WGHT, meta and xtra, into a model whose shape is known and whose weight section was
 * already found to be exactly the right size. */
static mv_status parse_contents(const model_file *f, const section_index *idx, mv_model *model)
{
    const span w = idx->single[SEC_WGHT];
    get_floats(f->data + w.at + 8, model->net->p.data, model->net->p.count);
    const span m = idx->single[SEC_META];
    if (m.present) {
        const char *text = (const char *)f->data + m.at, *problem = meta_text_problem(text, m.len);
        if (problem)
            return file_fail(f->path, MV_ERR_FORMAT, "metadata %s", problem);
        if (meta_parse(model, text, m.len))
            return file_fail(f->path, MV_ERR_NOMEM, "cannot allocate the metadata");
    }
    for (int e = 0; e < idx->n_extras; e++) {
        mv_status st = parse_extra(f, idx->extra[e], model);
        if (st)
            return st;
    }
    return MV_OK;
}

/* Builds the model from indexed sections: the shape first, then the weight section's size
 * against that shape, and only then any allocation that the shape decides. */
static mv_status build_model(const model_file *f, const section_index *idx, mv_model **out)
{
    mv_arch arch;
    mv_status st = parse_arch(f, idx->single[SEC_ARCH], &arch);
    if (st)
        return st;
    const uint64_t n_params = mv_arch_param_count(&arch);
    const span w = idx->single[SEC_WGHT];
    const uint64_t stored = w.len >= 8 ? get_u64(f->data + w.at) : 0;
    if (w.len < 8 || stored != n_params || w.len - 8 != 4 * n_params)
        return file_fail(f->path, MV_ERR_FORMAT, "the weight section holds %llu values in %zu "
                         "bytes, but the architecture needs %llu parameters (%llu bytes)",
                         (unsigned long long)stored, w.len, (unsigned long long)n_params,
                         (unsigned long long)(8 + 4 * n_params));
    mv_model *model;
    if ((st = mv_model_create(&model, &arch)))
        return file_fail(f->path, st, "%s", "cannot allocate the model");
    if (!(st = parse_input(f, idx->single[SEC_INPT], model)) &&
        !(st = parse_classes(f, idx->single[SEC_CLAS], model)) &&
        !(st = parse_contents(f, idx, model)) && (st = mv_model_check(model))) {
        char why[400];
        snprintf(why, sizeof why, "%s", mv_last_error());
        st = file_fail(f->path, st == MV_ERR_NUMERIC ? st : MV_ERR_FORMAT, "%s", why);
    }
    if (st) {
        mv_model_free(model);
        return st;
    }
    *out = model;
    return MV_OK;
}

/* Reads the whole file, trusts nothing before the envelope (magic, version, CRC) and the
 * section lengths have been checked, and returns a model only when every check passed. */
/* Any non-empty hint: an mlpviz model file must not be given one (it records all that). */
static int hints_given(const mv_model_hints *h)
{
    return h && (h->channels || h->height || h->width || h->channel_order_hwc ||
                 h->pixel_scale != 0 || h->n_mean || h->n_std || h->class_names);
}

mv_status mv_model_load_with(mv_model **out, const char *path, const mv_model_hints *hints)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t size = 0;
    mv_status st = mv_read_file(path, MAX_FILE_BYTES, &data, &size);
    if (st)
        return st;
    const int native = size >= 4 && !memcmp(data, model_magic, 4);
    if (!native && mv_onnx_sniff(data, size)) {
        st = mv_onnx_load(out, path, data, size, hints);
        free(data);
        return st;
    }
    const model_file f = {path, data, size};
    section_index idx;
    if (hints_given(hints))
        st = file_fail(path, MV_ERR_ARG, "an mlpviz model records its input shape, scaling "
                       "and classes; those settings are for ONNX files");
    else if (!(st = check_envelope(&f)) && !(st = index_sections(&f, &idx)) &&
             !(st = build_model(&f, &idx, out)))
        (*out)->file = (mv_model_file_info){
            .format = MV_FORMAT_MLPVIZ,
            .size = size,
            .version = get_u32(data + sizeof model_magic),
            .crc = get_u32(data + size - TRAILER_BYTES),
        };
    free(data);
    return st;
}

mv_status mv_model_load(mv_model **out, const char *path)
{
    return mv_model_load_with(out, path, NULL);
}
