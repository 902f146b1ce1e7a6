/* onnx_meta.c: an ONNX file becomes an mlpviz model. The graph gives the network
 * (onnx_graph.c); how to feed it and what its outputs mean come, setting by setting, from the
 * file's metadata_props ("mlpviz.*"), else from a sidecar JSON next to it (MODEL.onnx.json or
 * MODEL.json), else from the caller's hints (command-line options). A hint that disagrees
 * with the file is an error; a missing setting is an error that says how to give it.
 * docs/onnx.md lists the keys. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "json.h"
#include "onnx.h"

#define MAX_SIDECAR_BYTES ((uint64_t)1 << 24)

/* The settings that turn pixels into graph inputs and outputs into classes. */
typedef struct {
    int have_shape, shape[3];
    int have_order, chw;
    int have_scale;
    double scale;
    int n_mean, n_std;
    double mean[4], std[4];
    int n_classes;
    char **classes;        /* [n_classes], owned */
    char head[16];         /* "" when not given */
} settings;

/* Where a setting came from, for messages. */
typedef struct {
    const char *path;      /* the ONNX file */
    char sidecar[4096];    /* "" when none was found */
} sources;

static void free_classes(settings *s)
{
    for (int i = 0; i < s->n_classes; i++) free(s->classes[i]);
    free(s->classes);
    s->classes = NULL;
    s->n_classes = 0;
}

/* ---------------------------------------------------------------- parsing one setting */

static int parse_shape(const char *text, int shape[3])
{
    char tail;
    return sscanf(text, "%dx%dx%d%c", &shape[0], &shape[1], &shape[2], &tail) == 3 &&
           shape[0] >= 1 && shape[0] <= 4 && shape[1] >= 1 && shape[2] >= 1 &&
           shape[1] <= (1 << 15) && shape[2] <= (1 << 15);
}

/* "0.5" or "0.5,0.4,0.3": 1 to 4 finite numbers. Returns the count, 0 when bad. */
static int parse_numbers(const char *text, double out[4])
{
    int n = 0;
    for (const char *p = text;; p++) {
        char *end;
        errno = 0;
        if (n == 4 || *p == ' ' || *p == '\0')
            return 0;
        out[n++] = strtod(p, &end);
        if (end == p || errno || !isfinite(out[n - 1]))
            return 0;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return 0;
        p = end;
    }
}

/* A JSON array of non-empty strings into s->classes. */
static mv_status classes_from_json(const mv_json *a, settings *s, const char *where)
{
    if (!a || a->kind != MV_JSON_ARRAY || a->n_items < 1)
        return mv_fail(MV_ERR_FORMAT, "%s: classes must be a JSON array of names", where);
    free_classes(s); /* a repeated mlpviz.classes entry: the last one counts */
    char **names = calloc((size_t)a->n_items, sizeof *names);
    if (!names)
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate %d class names", where, a->n_items);
    s->classes = names;
    for (int i = 0; i < a->n_items; i++) {
        if (a->items[i].kind != MV_JSON_STRING || !*a->items[i].string)
            return mv_fail(MV_ERR_FORMAT, "%s: class %d is not a non-empty string", where, i);
        if (!(names[i] = strdup(a->items[i].string)))
            return mv_fail(MV_ERR_NOMEM, "%s: cannot copy class names", where);
        s->n_classes = i + 1;
    }
    return MV_OK;
}

/* One "mlpviz.<key>" metadata value (text) into s. */
static mv_status setting_from_text(settings *s, const char *key, const char *text,
                                   const char *where)
{
    if (!strcmp(key, "input_shape")) {
        if (!(s->have_shape = parse_shape(text, s->shape)))
            return mv_fail(MV_ERR_FORMAT, "%s: input_shape '%s' is not CxHxW (C 1 to 4)",
                           where, text);
    } else if (!strcmp(key, "channel_order")) {
        if (strcmp(text, "chw") && strcmp(text, "hwc"))
            return mv_fail(MV_ERR_FORMAT, "%s: channel_order '%s' is not chw or hwc", where,
                           text);
        s->have_order = 1;
        s->chw = !strcmp(text, "chw");
    } else if (!strcmp(key, "pixel_scale")) {
        double v[4];
        if (parse_numbers(text, v) != 1 || !(v[0] > 0))
            return mv_fail(MV_ERR_FORMAT, "%s: pixel_scale '%s' is not a positive number",
                           where, text);
        s->have_scale = 1;
        s->scale = v[0];
    } else if (!strcmp(key, "mean") || !strcmp(key, "std")) {
        const int is_mean = key[0] == 'm';
        int *n = is_mean ? &s->n_mean : &s->n_std;
        if (!(*n = parse_numbers(text, is_mean ? s->mean : s->std)))
            return mv_fail(MV_ERR_FORMAT, "%s: %s '%s' is not 1 to 4 comma-separated numbers",
                           where, key, text);
    } else if (!strcmp(key, "classes")) {
        mv_json *j;
        mv_status st = mv_json_parse(text, strlen(text), &j);
        if (st)
            {
            char context[4300];
            snprintf(context, sizeof context, "%s: classes", where);
            return mv_fail_context(MV_ERR_FORMAT, context);
        }
        st = classes_from_json(j, s, where);
        mv_json_free(j);
        return st;
    } else if (!strcmp(key, "head")) {
        if (strlen(text) >= sizeof s->head)
            return mv_fail(MV_ERR_FORMAT, "%s: head '%s' is not ce, bce or mse", where, text);
        strcpy(s->head, text);
    }
    return MV_OK; /* other keys (mlpviz.meta.*) are read by copy_meta */
}

/* ---------------------------------------------------------------- the three sources */

static mv_status from_props(const Onnx__ModelProto *m, settings *s, const char *path)
{
    char where[4200];
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = m->metadata_props[i];
        if (!e->key || strncmp(e->key, "mlpviz.", 7) != 0 || !e->value)
            continue;
        snprintf(where, sizeof where, "%s: metadata_props %s", path, e->key);
        mv_status st = setting_from_text(s, e->key + 7, e->value, where);
        if (st)
            return st;
    }
    return MV_OK;
}

/* A sidecar member as the text form setting_from_text reads. */
static mv_status sidecar_member(settings *s, const char *key, const mv_json *v,
                                const char *where)
{
    char text[256];
    if (!strcmp(key, "classes"))
        return classes_from_json(v, s, where);
    if (v->kind == MV_JSON_STRING)
        return setting_from_text(s, key, v->string, where);
    if (v->kind == MV_JSON_NUMBER) {
        snprintf(text, sizeof text, "%.17g", v->number);
        return setting_from_text(s, key, text, where);
    }
    if (v->kind == MV_JSON_ARRAY && v->n_items >= 1 && v->n_items <= 4) {
        const int shape = !strcmp(key, "input_shape");
        size_t at = 0;
        for (int i = 0; i < v->n_items; i++) {
            if (v->items[i].kind != MV_JSON_NUMBER)
                break;
            at += (size_t)snprintf(text + at, sizeof text - at, "%s%.17g",
                                   i ? (shape ? "x" : ",") : "", v->items[i].number);
            if (i == v->n_items - 1)
                return setting_from_text(s, key, text, where);
        }
    }
    return mv_fail(MV_ERR_FORMAT, "%s: \"%s\" has a value of the wrong kind (docs/onnx.md)",
                   where, key);
}

static mv_status from_sidecar(settings *s, sources *src)
{
    static const char *keys[] = {"input_shape", "channel_order", "pixel_scale", "mean", "std",
                                 "classes", "head"};
    char candidates[2][4096];
    snprintf(candidates[0], sizeof candidates[0], "%s.json", src->path);
    const size_t len = strlen(src->path);
    snprintf(candidates[1], sizeof candidates[1], "%.*s.json",
             (int)(len > 5 && !strcmp(src->path + len - 5, ".onnx") ? len - 5 : len), src->path);
    for (int c = 0; c < 2 && !src->sidecar[0]; c++)
        if (access(candidates[c], F_OK) == 0)
            strcpy(src->sidecar, candidates[c]);
    if (!src->sidecar[0])
        return MV_OK;
    uint8_t *data;
    size_t size;
    mv_json *j = NULL;
    mv_status st = mv_read_file(src->sidecar, MAX_SIDECAR_BYTES, &data, &size);
    if (st)
        return st;
    if ((st = mv_json_parse((const char *)data, size, &j)))
        st = mv_fail_context(MV_ERR_FORMAT, src->sidecar);
    else if (j->kind != MV_JSON_OBJECT)
        st = mv_fail(MV_ERR_FORMAT, "%s: not a JSON object", src->sidecar);
    for (size_t k = 0; !st && k < sizeof keys / sizeof keys[0]; k++) {
        const mv_json *v = mv_json_member(j, keys[k]);
        if (v)
            st = sidecar_member(s, keys[k], v, src->sidecar);
    }
    free(data);
    mv_json_free(j);
    return st;
}

/* Moves every setting that `into` lacks from `from`. */
static void take_missing(settings *into, settings *from)
{
    if (!into->have_shape && from->have_shape) {
        into->have_shape = 1;
        memcpy(into->shape, from->shape, sizeof into->shape);
    }
    if (!into->have_order && from->have_order) {
        into->have_order = 1;
        into->chw = from->chw;
    }
    if (!into->have_scale && from->have_scale) {
        into->have_scale = 1;
        into->scale = from->scale;
    }
    if (!into->n_mean && from->n_mean) {
        into->n_mean = from->n_mean;
        memcpy(into->mean, from->mean, sizeof into->mean);
    }
    if (!into->n_std && from->n_std) {
        into->n_std = from->n_std;
        memcpy(into->std, from->std, sizeof into->std);
    }
    if (!into->n_classes && from->n_classes) {
        into->classes = from->classes;
        into->n_classes = from->n_classes;
        from->classes = NULL;
        from->n_classes = 0;
    }
    if (!into->head[0])
        strcpy(into->head, from->head);
}

static int same_numbers(int n, const double *a, int m, const float *b)
{
    if (n != m)
        return 0;
    for (int i = 0; i < n; i++)
        if ((float)a[i] != b[i])
            return 0;
    return 1;
}

static int same_names(const settings *s, const mv_model_hints *h)
{
    if (s->n_classes != h->n_classes)
        return 0;
    for (int i = 0; i < h->n_classes; i++)
        if (!h->class_names[i] || strcmp(s->classes[i], h->class_names[i]))
            return 0;
    return 1;
}

/* The hints as settings; a hint that disagrees with what the file or sidecar says fails. */
static mv_status apply_hints(settings *s, const mv_model_hints *h, const char *path)
{
    settings given = {0};
    if (h && h->channels) {
        given.have_shape = 1;
        given.shape[0] = h->channels, given.shape[1] = h->height, given.shape[2] = h->width;
    }
    if (h && h->channel_order_hwc)
        given.have_order = 1, given.chw = 0;
    if (h && h->pixel_scale != 0)
        given.have_scale = 1, given.scale = h->pixel_scale;
    for (int c = 0; h && c < 4; c++) {
        given.mean[c] = h->mean[c];
        given.std[c] = h->std[c];
    }
    given.n_mean = h ? h->n_mean : 0;
    given.n_std = h ? h->n_std : 0;
    const char *clash = NULL;
    if (given.have_shape && s->have_shape && memcmp(given.shape, s->shape, sizeof s->shape))
        clash = "input shape";
    else if (given.have_order && s->have_order && given.chw != s->chw)
        clash = "channel order";
    else if (given.have_scale && s->have_scale && (float)given.scale != (float)s->scale)
        clash = "pixel scale";
    else if (given.n_mean && s->n_mean && !same_numbers(s->n_mean, s->mean, h->n_mean, h->mean))
        clash = "mean";
    else if (given.n_std && s->n_std && !same_numbers(s->n_std, s->std, h->n_std, h->std))
        clash = "std";
    else if (h && h->class_names && s->n_classes && !same_names(s, h))
        clash = "class names";
    if (clash)
        return mv_fail(MV_ERR_ARG, "%s: the given %s disagrees with the file's metadata or "
                       "sidecar; leave it out", path, clash);
    take_missing(s, &given);
    if (!h || !h->class_names || s->n_classes || h->n_classes < 1)
        return MV_OK;
    if (!(s->classes = calloc((size_t)h->n_classes, sizeof *s->classes)))
        return mv_fail(MV_ERR_NOMEM, "%s: cannot copy class names", path);
    for (int i = 0; i < h->n_classes; i++) {
        if (!(s->classes[i] = strdup(h->class_names[i] ? h->class_names[i] : "")))
            return mv_fail(MV_ERR_NOMEM, "%s: cannot copy class names", path);
        s->n_classes = i + 1;
    }
    return MV_OK;
}

/* Fills what may be defaulted (shape from the graph's declared input, chw, scale 1) and
 * says how to give what is still missing. */
static mv_status complete(settings *s, const mv_onnx_file *f)
{
    static const char how[] = "give it as metadata_props mlpviz.%s, as \"%s\" in a sidecar "
                              "%s.json, or with --%s";
    if (!s->have_order)
        s->have_order = 1, s->chw = 1;
    if (!s->have_scale)
        s->have_scale = 1, s->scale = 1;
    const char *name;
    int ndim;
    int64_t d[MV_ONNX_MAX_DIMS];
    mv_status st = mv_onnx_graph_input(f, &name, &ndim, d);
    if (st)
        return st;
    if (!s->have_shape && (ndim == 3 || ndim == 2) && d[0] && d[1] && (ndim == 2 || d[2])) {
        const int C = ndim == 2 ? 1 : (int)(s->chw ? d[0] : d[2]);
        const int H = (int)(ndim == 2 || s->chw ? d[ndim - 2] : d[0]);
        const int W = (int)(ndim == 2 ? d[1] : s->chw ? d[2] : d[1]);
        char text[64];
        snprintf(text, sizeof text, "%dx%dx%d", C, H, W);
        s->have_shape = parse_shape(text, s->shape);
    }
    char msg[600];
    const char *missing = !s->have_shape ? "input_shape" : !s->n_mean ? "mean"
                        : !s->n_std ? "std" : !s->n_classes ? "classes" : NULL;
    if (missing) {
        const char *option = !strcmp(missing, "input_shape") ? "input-shape CxHxW"
                           : !strcmp(missing, "classes") ? "classes FILE" : missing;
        snprintf(msg, sizeof msg, how, missing, missing, f->path, option);
        return mv_fail(MV_ERR_ARG, "%s: the ONNX model does not say its %s: %s", f->path,
                       missing, msg);
    }
    if ((s->n_mean != 1 && s->n_mean != s->shape[0]) || (s->n_std != 1 && s->n_std != s->shape[0]))
        return mv_fail(MV_ERR_ARG, "%s: %d mean and %d std values for %d channels (give 1 or "
                       "one per channel)", f->path, s->n_mean, s->n_std, s->shape[0]);
    return MV_OK;
}

/* Provenance as metadata entries; text from the file loses its line breaks and '='. */
static mv_status copy_meta(const mv_onnx_file *f, mv_model *m)
{
    const Onnx__ModelProto *p = f->model;
    char text[512];
    snprintf(text, sizeof text, "%s %s", p->producer_name ? p->producer_name : "?",
             p->producer_version ? p->producer_version : "");
    for (char *c = text; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    mv_status st = mv_model_meta_set(m, "onnx.producer", text);
    snprintf(text, sizeof text, "%d", f->opset);
    if (!st)
        st = mv_model_meta_set(m, "onnx.opset", text);
    for (size_t i = 0; !st && i < p->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = p->metadata_props[i];
        if (e->key && e->value && !strncmp(e->key, "mlpviz.meta.", 12) &&
            mv_model_meta_set(m, e->key + 12, e->value))
            st = mv_fail_context(MV_ERR_FORMAT, f->path);
    }
    return st;
}

/* The model the settings describe: network, normalisation, names, provenance. */
static mv_status build(const mv_onnx_file *f, const settings *s, mv_model **out)
{
    mv_status st = mv_onnx_build_network(f, s->shape, s->chw, s->head[0] ? s->head : NULL,
                                         out);
    if (st)
        return st;
    mv_model *m = *out;
    for (int c = 0; c < s->shape[0]; c++) {
        m->mean[c] = (float)(s->mean[s->n_mean == 1 ? 0 : c] / s->scale);
        m->std[c] = (float)(s->std[s->n_std == 1 ? 0 : c] / s->scale);
    }
    if ((st = mv_model_set_class_names(m, (const char *const *)s->classes, s->n_classes)))
        st = mv_fail_context(st, f->path);
    if (!st)
        st = copy_meta(f, m);
    if (!st && (st = mv_model_check(m)))
        st = mv_fail_context(st, f->path);
    m->file = (mv_model_file_info){MV_FORMAT_ONNX, f->size,
                                   (uint32_t)f->model->ir_version, f->crc};
    if (st) {
        mv_model_free(m);
        *out = NULL;
    }
    return st;
}

mv_status mv_onnx_load(mv_model **out, const char *path, const uint8_t *data, size_t size,
                       const mv_model_hints *hints)
{
    *out = NULL;
    mv_onnx_file f;
    mv_status st = mv_onnx_open(&f, path, data, size);
    if (st)
        return st;
    settings from_file = {0}, beside = {0};
    sources src = {.path = path};
    if (!(st = from_props(f.model, &from_file, path)) && !(st = from_sidecar(&beside, &src))) {
        take_missing(&from_file, &beside);
        if (!(st = apply_hints(&from_file, hints, path)) && !(st = complete(&from_file, &f)))
            st = build(&f, &from_file, out);
    }
    free_classes(&from_file);
    free_classes(&beside);
    mv_onnx_close(&f);
    return st;
}
