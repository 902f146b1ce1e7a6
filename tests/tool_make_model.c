/* tool_make_model.c: writes a valid model file with random weights for the shell suites,
 * which cannot train one in a second. It goes through the public API only (mv_net_init,
 * mv_model_save), so every file it writes is one the library itself would write.
 *
 *   tool_make_model OUT.mlp [--layers 784,32,10] [--act relu[,...]] [--loss ce] [--seed N]
 *                   [--channels C] [--extra NAME=COUNT]... [--meta KEY=VALUE]...
 *                   [--class-prefix TEXT] [--print-outputs]
 *
 * --act takes one activation for every hidden layer, or a comma list of one per hidden
 * layer ("relu,leaky_relu:0.2,gelu").
 * Input shape: C x s x s when widths[0] / C is a square s*s, else 1 x widths[0] x 1.
 * Mean 0.5 - c/8 and std 0.25 + c/16 per channel c. Classes "class0".."classN-1" (or
 * PREFIX0..); meta keys "tool", "seed" and any --meta. Biases are set to small non-zero
 * values so that exported b arrays are worth checking. --print-outputs prints, on one line,
 * the network's outputs for the fixed image pixel[k] = ((7k) mod 13) / 12 (HWC order), so a
 * test can recompute them from exported weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlpviz.h"

typedef struct {
    const char *out, *layers, *act, *loss, *class_prefix;
    unsigned long long seed;
    int channels, print_outputs, n_extras, n_meta;
    const char *extras[MV_MODEL_MAX_EXTRAS]; /* "NAME=COUNT" */
    const char *meta[8];                     /* "KEY=VALUE" */
} tool_options;

/* Bad command line: prints the synopsis, exit status 2. */
static int usage(void)
{
    fprintf(stderr, "usage: tool_make_model OUT.mlp [--layers 784,32,10] [--act relu[,...]] "
                    "[--loss ce] [--seed N] [--channels C] [--extra NAME=COUNT]... "
                    "[--meta KEY=VALUE]... [--class-prefix TEXT] [--print-outputs]\n");
    return 2;
}

/* Fills o from argv; non-zero on a bad command line. */
static int parse_options(int argc, char **argv, tool_options *o)
{
    *o = (tool_options){.layers = "784,32,10", .act = "relu", .loss = "ce", .seed = 1,
                        .class_prefix = "class",
                        .channels = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--print-outputs")) {
            o->print_outputs = 1;
            continue;
        }
        if (a[0] != '-') {
            if (o->out)
                return 1;
            o->out = a;
            continue;
        }
        if (!value)
            return 1;
        i++;
        if (!strcmp(a, "--layers")) o->layers = value;
        else if (!strcmp(a, "--act")) o->act = value;
        else if (!strcmp(a, "--loss")) o->loss = value;
        else if (!strcmp(a, "--seed")) o->seed = strtoull(value, NULL, 10);
        else if (!strcmp(a, "--class-prefix")) o->class_prefix = value;
        else if (!strcmp(a, "--channels")) o->channels = atoi(value);
        else if (!strcmp(a, "--extra") && o->n_extras < MV_MODEL_MAX_EXTRAS)
            o->extras[o->n_extras++] = value;
        else if (!strcmp(a, "--meta") && o->n_meta < 8 && strchr(value, '='))
            o->meta[o->n_meta++] = value;
        else
            return 1;
    }
    return !o->out || o->channels < 1 || o->channels > 4;
}

/* --act: one activation for every hidden layer, or one per hidden layer separated by
 * commas. Non-zero on a bad list (mv_last_error() then says why, except for a wrong count,
 * reported here). */
static int parse_acts(const char *text, mv_arch *arch)
{
    const int hidden = arch->n_layers - 1;
    int count = 1;
    for (const char *s = text; *s; s++) count += *s == ',';
    if (count != 1 && count != hidden) {
        fprintf(stderr, "tool_make_model: --act lists %d activations for %d hidden layers\n",
                count, hidden);
        return 1;
    }
    const char *s = text;
    for (int l = 0; l < (count == 1 ? 1 : hidden); l++) {
        char name[64];
        const size_t len = strcspn(s, ",");
        snprintf(name, sizeof name, "%.*s", (int)len, s);
        if (mv_activation_parse(&arch->act[l], name))
            return 1;
        s += len + (s[len] == ',');
    }
    for (int l = 1; count == 1 && l < hidden; l++) arch->act[l] = arch->act[0];
    return 0;
}

/* Largest s with s*s <= n. */
static int isqrt(int n)
{
    int s = (int)sqrt((double)n);
    while (s * s > n) s--;
    while ((s + 1) * (s + 1) <= n) s++;
    return s;
}

/* Shape, normalisation, names, metadata, non-zero biases and the requested extras. */
static mv_status decorate(mv_model *m, const tool_options *o)
{
    const mv_arch *arch = &m->net->arch;
    const int inputs = arch->widths[0], C = o->channels;
    const int side = inputs % C == 0 ? isqrt(inputs / C) : 0;
    if (side > 0 && side * side * C == inputs) {
        m->channels = C;
        m->height = m->width = side;
    }
    for (int c = 0; c < m->channels; c++) {
        m->mean[c] = 0.5f - 0.125f * (float)c;
        m->std[c] = 0.25f + 0.0625f * (float)c;
    }
    for (int l = 0; l < arch->n_layers; l++) /* mv_net_init zeroes biases: make them show */
        for (int j = 0; j < arch->widths[l + 1]; j++)
            m->net->p.b[l][j] = 0.03125f * (float)(j % 5) - 0.0625f;
    char **names = malloc(sizeof *names * (size_t)m->n_classes);
    if (!names)
        return MV_ERR_NOMEM;
    for (int i = 0; i < m->n_classes; i++) {
        names[i] = malloc(strlen(o->class_prefix) + 16);
        if (names[i]) sprintf(names[i], "%s%d", o->class_prefix, i);
    }
    mv_status st = mv_model_set_class_names(m, (const char *const *)names, m->n_classes);
    for (int i = 0; i < m->n_classes; i++) free(names[i]);
    free(names);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", o->seed);
    if (!st) st = mv_model_meta_set(m, "tool", "tool_make_model");
    if (!st) st = mv_model_meta_set(m, "seed", seed);
    for (int i = 0; !st && i < o->n_meta; i++) {
        const char *eq = strchr(o->meta[i], '=');
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->meta[i]), o->meta[i]);
        st = mv_model_meta_set(m, key, eq + 1);
    }
    for (int e = 0; !st && e < o->n_extras; e++) {
        char name[64];
        const char *eq = strchr(o->extras[e], '=');
        size_t count = eq ? strtoull(eq + 1, NULL, 10) : 0;
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - o->extras[e]) : 0, o->extras[e]);
        float *data = malloc(sizeof *data * (count ? count : 1));
        for (size_t i = 0; data && i < count; i++) data[i] = 0.5f * (float)i;
        st = data ? mv_model_extra_set(m, name, data, count) : MV_ERR_NOMEM;
        free(data);
    }
    return st;
}

/* Prints the outputs of the network for the documented fixed image. */
static mv_status print_outputs(const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    const int D = arch->widths[0], L = arch->n_layers;
    mv_workspace *ws;
    mv_status st = mv_workspace_create(&ws, arch, 1);
    if (st)
        return st;
    float *pixels = malloc(sizeof *pixels * (size_t)D);
    mv_real *x = malloc(sizeof *x * (size_t)D);
    if (pixels && x) {
        for (int k = 0; k < D; k++) pixels[k] = (float)((7 * k) % 13) / 12.0f;
        mv_model_prepare_input(m, pixels, x, 1);
        mv_forward(m->net, ws, x, 1);
        for (int j = 0; j < arch->widths[L]; j++)
            printf("%s%.9g", j ? " " : "", (double)ws->a[L - 1][j]);
        printf("\n");
    } else {
        st = MV_ERR_NOMEM;
    }
    free(pixels);
    free(x);
    mv_workspace_free(ws);
    return st;
}

/* Builds, initialises, decorates and saves one model; exit 0 ok, 1 failure, 2 usage. */
int main(int argc, char **argv)
{
    tool_options o;
    if (parse_options(argc, argv, &o))
        return usage();
    mv_arch arch = {0};
    if (mv_arch_parse_widths(&arch, o.layers) || parse_acts(o.act, &arch) ||
        mv_head_parse(&arch.head, o.loss)) {
        fprintf(stderr, "tool_make_model: %s\n", mv_last_error());
        return 2;
    }
    mv_model *m = NULL;
    mv_status st = mv_model_create(&m, &arch);
    if (!st) {
        mv_net_init(m->net, o.seed);
        st = decorate(m, &o);
    }
    if (!st) st = mv_model_save(m, o.out);
    if (!st && o.print_outputs) st = print_outputs(m);
    if (st)
        fprintf(stderr, "tool_make_model: %s (%s)\n", mv_last_error(), mv_status_string(st));
    mv_model_free(m);
    return st ? 1 : 0;
}
