/* cli_visualize.c: `mlpviz visualize`, one synthesized image per class (and seed), a labelled
 * grid, and a report of what each image achieved. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const visualize_help =
    "usage: mlpviz visualize MODEL [OPTIONS]\n"
    "\n"
    "Synthesizes, for each class, the image that maximizes the class score by gradient ascent\n"
    "on the pixels, all classes in one batch. Writes DIR/<class>.png (DIR/<class>-<seed>.png\n"
    "with --seeds), DIR/grid.png with the class names, and DIR/report.csv and report.json.\n"
    "\n"
    "  -c, --class LIST      all (default), or class indices/names separated by commas\n"
    "  -k, --seeds K         images per class, from different starts (default 1)\n"
    "  -n, --steps N         ascent steps (default 300)\n"
    "      --lr X            step size in pixel units (default 0.02)\n"
    "      --no-normalize    plain gradient steps instead of lr / mean|gradient|\n"
    "      --objective O     logit (default), prob or logprob\n"
    "      --l2 L            subtract L |x|^2 from the objective (default 0)\n"
    "      --decay D         pull towards the start by D per step (default 0.002)\n"
    "      --blur-every N    blur the image every N steps (default 4; 0 = never)\n"
    "      --blur-sigma S    (default 0.5 pixels)\n"
    "      --grad-blur S     blur the gradient before each step (default 1; 0 = off)\n"
    "      --jitter J        random shifts of up to J pixels (default 1)\n"
    "      --no-clamp        do not clamp pixels to [0, 1] after each step\n"
    "      --init I          gray (default), noise, or an image file\n"
    "  -s, --seed N          (default 1)\n"
    "  -o, --out DIR         (default out)\n"
    "      --scale S         upscale the written images S times (default 4)\n"
    "  -h, --help\n";

typedef struct {
    const char *model_path, *classes, *init, *out;
    int seeds, scale;
    mv_viz_config viz;
} viz_options;

enum {
    OPT_LR = 256, OPT_NO_NORMALIZE, OPT_OBJECTIVE, OPT_L2, OPT_DECAY, OPT_BLUR_EVERY,
    OPT_BLUR_SIGMA, OPT_GRAD_BLUR, OPT_JITTER, OPT_NO_CLAMP, OPT_INIT, OPT_SCALE
};

/* One numeric or switch option; 0 parsed, 2 bad value, -1 not one of them. */
static int parse_viz_number(int opt, const char *arg, viz_options *o)
{
    const char *cmd = "visualize";
    mv_viz_config *v = &o->viz;
    long n;
    switch (opt) {
    case 'k': if (cli_parse_int(cmd, "seeds", arg, 1, 1000, &n)) return 2; o->seeds = (int)n; return 0;
    case 'n': if (cli_parse_int(cmd, "steps", arg, 0, 1000000, &n)) return 2; v->steps = (int)n; return 0;
    case OPT_LR: return cli_parse_double(cmd, "lr", arg, 0, 1e6, &v->lr) ? 2 : 0;
    case OPT_NO_NORMALIZE: v->normalize = 0; return 0;
    case OPT_L2: return cli_parse_double(cmd, "l2", arg, 0, 1e6, &v->l2) ? 2 : 0;
    case OPT_DECAY: return cli_parse_double(cmd, "decay", arg, 0, 0.999, &v->decay) ? 2 : 0;
    case OPT_BLUR_EVERY:
        if (cli_parse_int(cmd, "blur-every", arg, 0, 1000000, &n)) return 2;
        v->blur_every = (int)n;
        return 0;
    case OPT_BLUR_SIGMA: return cli_parse_double(cmd, "blur-sigma", arg, 0, 32, &v->blur_sigma) ? 2 : 0;
    case OPT_GRAD_BLUR: return cli_parse_double(cmd, "grad-blur", arg, 0, 32, &v->grad_blur) ? 2 : 0;
    case OPT_JITTER: if (cli_parse_int(cmd, "jitter", arg, 0, 64, &n)) return 2; v->jitter = (int)n; return 0;
    case OPT_NO_CLAMP: v->clamp = 0; return 0;
    case OPT_SCALE: if (cli_parse_int(cmd, "scale", arg, 1, 64, &n)) return 2; o->scale = (int)n; return 0;
    case 's': return cli_parse_u64(cmd, "seed", arg, &v->seed) ? 2 : 0;
    default: return -1;
    }
}

static int parse_viz_args(int argc, char **argv, viz_options *o)
{
    static const struct option longopts[] = {
        {"class", required_argument, 0, 'c'},        {"seeds", required_argument, 0, 'k'},
        {"steps", required_argument, 0, 'n'},        {"lr", required_argument, 0, OPT_LR},
        {"no-normalize", no_argument, 0, OPT_NO_NORMALIZE},
        {"objective", required_argument, 0, OPT_OBJECTIVE},
        {"l2", required_argument, 0, OPT_L2},        {"decay", required_argument, 0, OPT_DECAY},
        {"blur-every", required_argument, 0, OPT_BLUR_EVERY},
        {"blur-sigma", required_argument, 0, OPT_BLUR_SIGMA},
        {"grad-blur", required_argument, 0, OPT_GRAD_BLUR},
        {"jitter", required_argument, 0, OPT_JITTER}, {"no-clamp", no_argument, 0, OPT_NO_CLAMP},
        {"init", required_argument, 0, OPT_INIT},    {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},          {"scale", required_argument, 0, OPT_SCALE},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "c:k:n:s:o:h", longopts, NULL)) != -1;) {
        const int rc = parse_viz_number(opt, optarg, o);
        if (rc >= 0) {
            if (rc)
                return rc;
            continue;
        }
        switch (opt) {
        case 'c': o->classes = optarg; break;
        case OPT_INIT: o->init = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_OBJECTIVE:
            if (!strcmp(optarg, "logit")) o->viz.objective = MV_OBJ_LOGIT;
            else if (!strcmp(optarg, "prob")) o->viz.objective = MV_OBJ_OUTPUT;
            else if (!strcmp(optarg, "logprob")) o->viz.objective = MV_OBJ_LOGPROB;
            else {
                cli_error("visualize", "--objective must be logit, prob or logprob, got '%s'", optarg);
                return 2;
            }
            break;
        case 'h': fputs(visualize_help, stdout); return -1;
        default: return cli_bad_option("visualize", opt, argv[optind - 1]);
        }
    }
    if (argc - optind != 1) {
        cli_error("visualize", "give one MODEL (see mlpviz visualize --help)");
        return 2;
    }
    o->model_path = argv[optind];
    return 0;
}

/* Class indices of "all" or "3,coat,..."; *count of them. */
static int parse_targets(const mv_model *m, const char *text, int *targets, int *count)
{
    *count = 0;
    if (!strcmp(text, "all")) {
        for (int k = 0; k < m->n_classes; k++) targets[(*count)++] = k;
        return 0;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int k = 0; k < m->n_classes && found < 0; k++)
            if (!strcmp(tok, m->class_names[k])) found = k;
        char *end;
        const long k = strtol(tok, &end, 10);
        if (found < 0 && end != tok && !*end && k >= 0 && k < m->n_classes)
            found = (int)k;
        if (found < 0 || *count >= m->n_classes) {
            cli_error("visualize", "--class: '%s' is not a class of the model (name or 0..%d)",
                      tok, m->n_classes - 1);
            return 2;
        }
        targets[(*count)++] = found;
    }
    return 0;
}

/* Nearest-neighbour upscale of src [h][w][c] into dst [h*s][w*s][c]: crisp pixels. */
static void upscale(const float *src, float *dst, int w, int h, int c, int s)
{
    for (int y = 0; y < h * s; y++)
        for (int x = 0; x < w * s; x++)
            memcpy(dst + ((size_t)y * w * s + x) * c, src + ((size_t)(y / s) * w + x / s) * c,
                   sizeof *dst * (size_t)c);
}

typedef struct {
    const mv_model *m;
    const viz_options *o;
    const int *targets;
    int rows, n_classes;
    const float *images;
    const mv_viz_result *results;
    char text[512]; /* the PNG tEXt provenance */
} viz_output;

static int write_images(const viz_output *v)
{
    const mv_model *m = v->m;
    const int s = v->o->scale, W = m->width * s, H = m->height * s, C = m->channels;
    const size_t D = (size_t)m->width * m->height * C;
    float *big = malloc(sizeof *big * (size_t)W * H * C); /* [H][W][C] */
    if (!big) {
        cli_error("visualize", "out of memory");
        return 1;
    }
    int rc = 0;
    for (int r = 0; !rc && r < v->rows; r++) {
        char path[4096];
        const char *name = m->class_names[v->targets[r % v->n_classes]];
        if (v->o->seeds > 1)
            snprintf(path, sizeof path, "%s/%s-%d.png", v->o->out, name, r / v->n_classes);
        else
            snprintf(path, sizeof path, "%s/%s.png", v->o->out, name);
        upscale(v->images + r * D, big, m->width, m->height, C, s);
        if (mv_png_write(path, big, W, H, C, "mlpviz", v->text)) {
            cli_error("visualize", "%s", mv_last_error());
            rc = 1;
        }
    }
    free(big);
    return rc;
}

/* All images on one sheet: a column per class, a row per seed, the class names below. */
static int write_grid(const viz_output *v)
{
    const mv_model *m = v->m;
    const int s = v->o->scale, w = m->width * s, h = m->height * s, C = 3, pad = 4, label = 16;
    const int cols = v->n_classes, seeds = v->o->seeds;
    int cell_w = w;
    for (int k = 0; k < cols; k++) {
        const int tw = mv_text_width(m->class_names[v->targets[k]], 1);
        cell_w = tw > cell_w ? tw : cell_w;
    }
    const int W = pad + cols * (cell_w + pad), H = pad + seeds * (h + pad) + label;
    float *sheet = malloc(sizeof *sheet * (size_t)W * H * C);
    float *big = malloc(sizeof *big * (size_t)w * h * m->channels);
    if (!sheet || !big) {
        free(sheet);
        free(big);
        cli_error("visualize", "out of memory");
        return 1;
    }
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0};
    mv_fill_rect(sheet, W, H, C, 0, 0, W, H, white);
    const size_t D = (size_t)m->width * m->height * m->channels;
    for (int r = 0; r < v->rows; r++) {
        const int col = r % cols, row = r / cols;
        const int x0 = pad + col * (cell_w + pad) + (cell_w - w) / 2, y0 = pad + row * (h + pad);
        upscale(v->images + r * D, big, m->width, m->height, m->channels, s);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < C; c++)
                    sheet[((size_t)(y0 + y) * W + x0 + x) * C + c] =
                        big[((size_t)y * w + x) * m->channels + (m->channels == 3 ? c : 0)];
    }
    for (int k = 0; k < cols; k++) {
        const char *name = m->class_names[v->targets[k]];
        const int x = pad + k * (cell_w + pad) + (cell_w - mv_text_width(name, 1)) / 2;
        mv_draw_text(sheet, W, H, C, x, H - label + 2, name, 1, black);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/grid.png", v->o->out);
    const mv_status st = mv_png_write(path, sheet, W, H, C, "mlpviz", v->text);
    free(sheet);
    free(big);
    if (st)
        cli_error("visualize", "%s", mv_last_error());
    return st != MV_OK;
}

static int write_report(const viz_output *v)
{
    char *csv = NULL, *json = NULL;
    size_t csv_size = 0, json_size = 0;
    FILE *c = open_memstream(&csv, &csv_size), *j = open_memstream(&json, &json_size);
    if (!c || !j) {
        if (c) fclose(c);
        if (j) fclose(j);
        free(csv);
        free(json);
        cli_error("visualize", "out of memory");
        return 1;
    }
    fprintf(c, "class,seed,score,logit,prob,margin,first_top_step\n");
    fprintf(j, "{\n  \"model\": ");
    cli_json_string(j, v->o->model_path);
    fprintf(j, ",\n  \"images\": [\n");
    for (int r = 0; r < v->rows; r++) {
        const mv_viz_result *x = &v->results[r];
        const char *name = v->m->class_names[v->targets[r % v->n_classes]];
        fprintf(c, "%s,%d,%.6g,%.6g,%.6g,%.6g,%d\n", name, r / v->n_classes, x->score, x->logit,
                x->prob, x->margin, x->first_top_step);
        fprintf(j, "    {\"class\": ");
        cli_json_string(j, name);
        fprintf(j, ", \"seed\": %d, \"score\": %.6g, \"logit\": %.6g, \"prob\": %.6g, "
                   "\"margin\": %.6g, \"first_top_step\": %d}%s\n",
                r / v->n_classes, x->score, x->logit, x->prob, x->margin, x->first_top_step,
                r + 1 < v->rows ? "," : "");
    }
    fprintf(j, "  ]\n}\n");
    fclose(c);
    fclose(j);
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s/report.csv", v->o->out);
    if (mv_write_file_atomic(path, csv, csv_size)) rc = 1;
    snprintf(path, sizeof path, "%s/report.json", v->o->out);
    if (!rc && mv_write_file_atomic(path, json, json_size)) rc = 1;
    if (rc)
        cli_error("visualize", "%s", mv_last_error());
    free(csv);
    free(json);
    return rc;
}

/* The CRC-32 stored at the end of the model file: which model made an image. */
static unsigned long model_crc(const char *path)
{
    unsigned char tail[4] = {0};
    FILE *f = fopen(path, "rb");
    if (f && fseek(f, -4, SEEK_END) == 0 && fread(tail, 1, 4, f) == 4) {
        fclose(f);
        return tail[0] | tail[1] << 8 | tail[2] << 16 | (unsigned long)tail[3] << 24;
    }
    if (f)
        fclose(f);
    return 0;
}

static int run_visualize(viz_options *o, const mv_model *m, int argc, char **argv)
{
    int targets_buf[4096], n_classes;
    if (m->n_classes > 4096) {
        cli_error("visualize", "%s: too many classes (%d)", o->model_path, m->n_classes);
        return 1;
    }
    int rc = parse_targets(m, o->classes, targets_buf, &n_classes);
    if (rc)
        return rc;
    const int rows = n_classes * o->seeds;
    const size_t D = (size_t)m->width * m->height * m->channels;
    int *targets = malloc(sizeof *targets * (size_t)rows);
    float *images = malloc(sizeof *images * D * (size_t)rows), *init = NULL;
    mv_viz_result *results = malloc(sizeof *results * (size_t)rows);
    if (!targets || !images || !results) {
        cli_error("visualize", "out of memory");
        rc = 1;
    }
    for (int r = 0; !rc && r < rows; r++) targets[r] = targets_buf[r % n_classes];
    if (!rc && strcmp(o->init, "gray") && strcmp(o->init, "noise")) {
        o->viz.init = MV_INIT_IMAGE;
        if (!(init = malloc(sizeof *init * D)) ||
            mv_image_load(o->init, m->channels, m->width, m->height, 0, init)) {
            cli_error("visualize", "--init: %s", init ? mv_last_error() : "out of memory");
            rc = 1;
        }
    } else if (!rc) {
        o->viz.init = strcmp(o->init, "noise") ? MV_INIT_GRAY : MV_INIT_NOISE;
    }
    if (!rc && mv_visualize(m, &o->viz, targets, rows, init, images, results)) {
        cli_error("visualize", "%s", mv_last_error());
        rc = 1;
    }
    viz_output v = {.m = m, .o = o, .targets = targets, .rows = rows, .n_classes = n_classes,
                    .images = images, .results = results};
    int at = snprintf(v.text, sizeof v.text, "seed=%llu model_crc=%08lx command=mlpviz",
                      (unsigned long long)o->viz.seed, model_crc(o->model_path));
    for (int i = 0; i < argc && at < (int)sizeof v.text; i++)
        at += snprintf(v.text + at, sizeof v.text - (size_t)at, " %s", argv[i]);
    if (!rc) {
        cli_ensure_dir(o->out);
        rc = write_images(&v) || write_grid(&v) || write_report(&v);
    }
    for (int r = 0; !rc && r < rows; r++)
        printf("%-14s seed %d  logit %8.3f  prob %.4f  margin %8.3f  top from step %d\n",
               m->class_names[targets[r]], r / n_classes, results[r].logit, results[r].prob,
               results[r].margin, results[r].first_top_step);
    if (!rc)
        printf("images, grid.png and report.csv/json written to %s/\n", o->out);
    free(targets);
    free(images);
    free(init);
    free(results);
    return rc;
}

int cmd_visualize(int argc, char **argv)
{
    viz_options o = {.classes = "all", .init = "gray", .out = "out", .seeds = 1, .scale = 4};
    mv_viz_defaults(&o.viz);
    int rc = parse_viz_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    mv_model *m;
    if (cli_load_model("visualize", o.model_path, &m))
        return 1;
    rc = run_visualize(&o, m, argc, argv);
    mv_model_free(m);
    return rc;
}
