/* arch.c: network shapes: validation, parsing of the command-line spellings, names. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const act_names[MV_ACT_COUNT] = {
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "scaled_relu", "softplus", "gelu",
};

static const char *const head_names[MV_HEAD_COUNT] = {"ce", "bce", "mse"};

const char *mv_act_name(mv_act_kind kind)
{
    return (unsigned)kind < MV_ACT_COUNT ? act_names[kind] : "unknown";
}

const char *mv_head_name(mv_head head)
{
    return (unsigned)head < MV_HEAD_COUNT ? head_names[head] : "unknown";
}

/* Largest width anyone will ask for: keeps width products far from size_t overflow and
 * stops a typo from allocating gigabytes. */
#define MV_MAX_WIDTH (1 << 20)

mv_status mv_arch_validate(const mv_arch *arch)
{
    if (arch->n_layers < 1 || arch->n_layers > MV_MAX_LAYERS)
        return mv_fail(MV_ERR_ARG, "a network needs 1 to %d weight layers, not %d",
                       MV_MAX_LAYERS, arch->n_layers);
    for (int l = 0; l <= arch->n_layers; l++)
        if (arch->widths[l] < 1 || arch->widths[l] > MV_MAX_WIDTH)
            return mv_fail(MV_ERR_ARG, "layer width %d is %d; widths must be 1..%d", l,
                           arch->widths[l], MV_MAX_WIDTH);
    for (int l = 0; l + 1 < arch->n_layers; l++) {
        mv_activation act = arch->act[l];
        if ((unsigned)act.kind >= MV_ACT_COUNT)
            return mv_fail(MV_ERR_ARG, "layer %d has an unknown activation (%d)", l, act.kind);
        if (!isfinite(act.param))
            return mv_fail(MV_ERR_ARG, "layer %d: activation parameter is not finite", l);
        if (act.kind == MV_ACT_SCALED_RELU && !(act.param > 0))
            return mv_fail(MV_ERR_ARG, "layer %d: scaled_relu needs k > 0, got %g", l,
                           (double)act.param);
    }
    if ((unsigned)arch->head >= MV_HEAD_COUNT)
        return mv_fail(MV_ERR_ARG, "unknown output head (%d)", arch->head);
    if (arch->head == MV_HEAD_SOFTMAX_CE && arch->widths[arch->n_layers] < 2)
        return mv_fail(MV_ERR_ARG, "a softmax head needs at least 2 outputs, got %d",
                       arch->widths[arch->n_layers]);
    return MV_OK;
}

/* What went wrong in a list of widths. */
typedef enum { LIST_OK, LIST_BAD_WIDTH, LIST_TOO_MANY, LIST_TRAILING_COMMA } list_problem;

/* Appends width w as arch->widths[*count]. */
static list_problem add_width(mv_arch *arch, int *count, long w)
{
    if (w < 1 || w > MV_MAX_WIDTH)
        return LIST_BAD_WIDTH;
    if (*count > MV_MAX_LAYERS)
        return LIST_TOO_MANY;
    arch->widths[(*count)++] = (int)w;
    return LIST_OK;
}

/* Appends the comma-separated widths of text, left to right until the first problem. */
static list_problem add_widths(mv_arch *arch, int *count, const char *text)
{
    for (const char *p = text; *p;) {
        char *end;
        errno = 0;
        long w = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ','))
            return LIST_BAD_WIDTH;
        const list_problem problem = add_width(arch, count, w);
        if (problem)
            return problem;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return LIST_TRAILING_COMMA;
    }
    return LIST_OK;
}

/* The message for a problem of the list shown as text. */
static mv_status list_fail(list_problem problem, const char *text)
{
    if (problem == LIST_TOO_MANY)
        return mv_fail(MV_ERR_ARG, "bad layer list '%s': at most %d weight layers", text,
                       MV_MAX_LAYERS);
    if (problem == LIST_TRAILING_COMMA)
        return mv_fail(MV_ERR_ARG, "bad layer list '%s': trailing comma", text);
    return mv_fail(MV_ERR_ARG,
                   "bad layer list '%s': expected positive widths separated by commas, e.g. "
                   "784,128,10",
                   text);
}

mv_status mv_arch_parse_widths(mv_arch *arch, const char *text)
{
    int count = 0;
    const list_problem problem = add_widths(arch, &count, text);
    if (problem)
        return list_fail(problem, text);
    if (count < 2)
        return mv_fail(MV_ERR_ARG,
                       "bad layer list '%s': need at least an input and an output width",
                       text);
    arch->n_layers = count - 1;
    return MV_OK;
}

/* The checks and messages of mv_arch_parse_widths on the whole list, in its order. */
mv_status mv_arch_set_widths(mv_arch *arch, int inputs, const char *hidden, int outputs)
{
    int count = 0;
    list_problem problem = add_width(arch, &count, inputs);
    if (!problem)
        problem = add_widths(arch, &count, hidden);
    if (problem == LIST_TRAILING_COMMA)
        problem = LIST_BAD_WIDTH; /* "4," before the outputs: an empty width */
    if (!problem)
        problem = add_width(arch, &count, outputs);
    if (problem) {
        char text[512];
        if (*hidden)
            snprintf(text, sizeof text, "%d,%s,%d", inputs, hidden, outputs);
        else
            snprintf(text, sizeof text, "%d,%d", inputs, outputs);
        return list_fail(problem, text);
    }
    arch->n_layers = count - 1;
    return MV_OK;
}

static mv_status parse_param(const char *text, const char *spec, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v))
        return mv_fail(MV_ERR_ARG, "bad activation parameter in '%s'", spec);
    *out = (float)v;
    return MV_OK;
}

mv_status mv_activation_parse(mv_activation *act, const char *text)
{
    char name[32];
    const char *colon = strchr(text, ':');
    size_t len = colon ? (size_t)(colon - text) : strlen(text);
    if (len == 0 || len >= sizeof name)
        return mv_fail(MV_ERR_ARG, "unknown activation '%s'", text);
    memcpy(name, text, len);
    name[len] = 0;

    /* "5relu" is the scaled relu 5*relu(z), as written in the literature. */
    char *end;
    double k = strtod(name, &end);
    if (end != name && strcmp(end, "relu") == 0 && !colon) {
        if (!isfinite(k) || k <= 0)
            return mv_fail(MV_ERR_ARG, "bad scale in activation '%s'", text);
        act->kind = MV_ACT_SCALED_RELU;
        act->param = (float)k;
        return MV_OK;
    }
    for (int i = 0; i < MV_ACT_COUNT; i++) {
        if (strcmp(name, act_names[i]) != 0)
            continue;
        act->kind = (mv_act_kind)i;
        act->param = i == MV_ACT_LEAKY_RELU ? 0.01f : i == MV_ACT_SCALED_RELU ? 1.0f : 0.0f;
        if (colon) {
            if (i != MV_ACT_LEAKY_RELU && i != MV_ACT_SCALED_RELU)
                return mv_fail(MV_ERR_ARG, "activation '%s' takes no parameter", name);
            mv_status st = parse_param(colon + 1, text, &act->param);
            if (st)
                return st;
            if (i == MV_ACT_SCALED_RELU && !(act->param > 0))
                return mv_fail(MV_ERR_ARG, "scaled_relu needs k > 0 in '%s'", text);
        }
        return MV_OK;
    }
    return mv_fail(MV_ERR_ARG,
                   "unknown activation '%s' (identity, sigmoid, tanh, relu, leaky_relu[:a], "
                   "scaled_relu[:k] or Krelu, softplus, gelu)",
                   text);
}

mv_status mv_head_parse(mv_head *head, const char *text)
{
    for (int i = 0; i < MV_HEAD_COUNT; i++)
        if (strcmp(text, head_names[i]) == 0) {
            *head = (mv_head)i;
            return MV_OK;
        }
    return mv_fail(MV_ERR_ARG, "unknown loss '%s' (ce, bce or mse)", text);
}

size_t mv_arch_param_count(const mv_arch *arch)
{
    size_t total = 0;
    for (int l = 0; l < arch->n_layers; l++)
        total += (size_t)arch->widths[l + 1] * ((size_t)arch->widths[l] + 1);
    return total;
}

int mv_arch_max_width(const mv_arch *arch)
{
    int m = 0;
    for (int l = 0; l <= arch->n_layers; l++)
        if (arch->widths[l] > m)
            m = arch->widths[l];
    return m;
}
