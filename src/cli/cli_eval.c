/* cli_eval.c: `mlpviz eval` (accuracy, per-class accuracy, confusion matrix as text and PNG)
 * and `mlpviz predict` (top classes of images). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_draw.h"
#include "cli_html.h"

static const char *const eval_help =
    "usage: mlpviz eval MODEL --data DATA [OPTIONS]\n"
    "\n"
    "Accuracy, per-class accuracy and the confusion matrix of MODEL on DATA (an image folder\n"
    "whose class folders are matched to the model's classes by name, or IDX files).\n"
    "\n"
    "  -d, --data PATH       image folder or IDX image file\n"
    "      --labels FILE     IDX label file (default: derived from the images path)\n"
    "      --names A,B,...   class names of IDX labels (default: the model's)\n"
    "  -c, --confusion PNG   heat map of the confusion matrix (default out/confusion.png;\n"
    "                        'none' to skip), with a page that shows the whole report\n"
    "                        beside it (PNG with .html: out/confusion.html)\n"
    "      --skip-bad        skip unreadable images\n"
    "  -h, --help\n";

static const char *const predict_help =
    "usage: mlpviz predict MODEL IMAGE... [--top K]\n"
    "\n"
    "Prints the K most probable classes of each image (default 3).\n";

/* Rewrites the dataset's labels and class list into the model's class order, matching by
 * name; a class the model does not know is an error. */
static int match_classes(const mv_model *model, mv_dataset *data, const char *path)
{
    int *to_model = malloc(sizeof *to_model * (size_t)data->n_classes);
    if (!to_model) {
        cli_error("eval", "out of memory");
        return MV_EXIT_FAIL;
    }
    for (int k = 0; k < data->n_classes; k++) {
        to_model[k] = -1;
        for (int j = 0; j < model->n_classes; j++)
            if (!strcmp(data->class_names[k], model->class_names[j]))
                to_model[k] = j;
        if (to_model[k] < 0) {
            cli_error("eval", "%s: class '%s' is not one of the model's classes", path,
                      data->class_names[k]);
            free(to_model);
            return MV_EXIT_FAIL;
        }
    }
    for (int i = 0; i < data->count; i++) data->labels[i] = to_model[data->labels[i]];
    free(to_model);
    char **names = calloc((size_t)model->n_classes, sizeof *names);
    for (int j = 0; names && j < model->n_classes; j++)
        if (!(names[j] = strdup(model->class_names[j]))) {
            while (j--) free(names[j]);
            free(names);
            names = NULL;
        }
    if (!names) {
        cli_error("eval", "out of memory");
        return MV_EXIT_FAIL;
    }
    for (int k = 0; k < data->n_classes; k++) free(data->class_names[k]);
    free(data->class_names);
    data->class_names = names;
    data->n_classes = model->n_classes;
    return 0;
}

static void print_confusion(const mv_model *m, const long *confusion)
{
    const int K = m->n_classes;
    printf("\n%-14s %9s %9s\n", "class", "images", "accuracy");
    for (int t = 0; t < K; t++) {
        long total = 0;
        for (int p = 0; p < K; p++) total += confusion[t * K + p];
        if (total)
            printf("%-14s %9ld %9.4f\n", m->class_names[t], total,
                   (double)confusion[t * K + t] / total);
        else
            printf("%-14s %9ld %9s\n", m->class_names[t], total, "-");
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int p = 0; p < K; p++) printf(" %6d", p);
    printf("\n");
    for (int t = 0; t < K; t++) {
        printf("%2d %-11.11s", t, m->class_names[t]);
        for (int p = 0; p < K; p++) printf(" %6ld", confusion[t * K + p]);
        printf("\n");
    }
}

/* The confusion matrix as a heat map, each row scaled by its class's count, with the
 * class names along the left and the indices along the top. */
static int write_confusion_png(const mv_model *m, const long *confusion, const char *path)
{
    const int K = m->n_classes, cell = 28, scale = 1;
    int label_w = 0;
    for (int k = 0; k < K; k++) {
        const int w = cli_text_width(m->class_names[k], scale) + 24;
        label_w = w > label_w ? w : label_w;
    }
    const int W = label_w + K * cell + 8, H = 24 + K * cell + 8;
    float *img = malloc(sizeof *img * 3 * (size_t)W * H); /* [H][W][3] */
    if (!img) {
        cli_error("eval", "%s: out of memory", path);
        return MV_EXIT_FAIL;
    }
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, light[3] = {1, 1, 1};
    cli_fill_rect(img, W, H, 3, 0, 0, W, H, white);
    for (int t = 0; t < K; t++) {
        long total = 0;
        for (int p = 0; p < K; p++) total += confusion[t * K + p];
        char text[16];
        snprintf(text, sizeof text, "%d", t);
        cli_draw_text(img, W, H, 3, label_w + t * cell + 8, 8, text, scale, black);
        snprintf(text, sizeof text, "%d ", t);
        cli_draw_text(img, W, H, 3, 4, 24 + t * cell + 9, text, scale, black);
        cli_draw_text(img, W, H, 3, 20, 24 + t * cell + 9, m->class_names[t], scale, black);
        for (int p = 0; p < K; p++) {
            const float share = total ? (float)confusion[t * K + p] / total : 0;
            float rgb[3];
            cli_heat_color(share, rgb);
            const int x = label_w + p * cell, y = 24 + t * cell;
            cli_fill_rect(img, W, H, 3, x, y, x + cell - 1, y + cell - 1, rgb);
            if (share >= 0.005f) { /* percentage, white on dark cells */
                snprintf(text, sizeof text, "%.0f", 100 * share);
                cli_draw_text(img, W, H, 3, x + 4, y + 9, text, scale, share > 0.5f ? light : black);
            }
        }
    }
    const mv_status st = mv_png_write(path, img, W, H, 3, NULL, NULL);
    free(img);
    if (st) {
        cli_error("eval", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* The heat map and its page (PNG.html, beside it). */
static int write_confusion_outputs(const html_eval_report *r)
{
    cli_ensure_parent(r->png_path);
    int rc = write_confusion_png(r->m, r->confusion, r->png_path);
    char page[4096];
    html_page_path(r->png_path, page, sizeof page);
    if (!rc)
        rc = html_eval_page(page, r);
    if (!rc)
        printf("\nconfusion matrix written to %s, the page to %s\n", r->png_path, page);
    return rc;
}

static int evaluate_and_report(const mv_model *model, const mv_dataset *data,
                               const char *png_path, const char *data_path, int argc, char **argv)
{
    const int K = model->n_classes;
    long *confusion = calloc((size_t)K * K, sizeof *confusion);
    double accuracy, loss;
    if (!confusion || mv_evaluate(model, data, &accuracy, &loss, confusion)) {
        cli_error("eval", "%s", confusion ? mv_last_error() : "out of memory");
        free(confusion);
        return MV_EXIT_FAIL;
    }
    printf("accuracy %.4f (%d images), mean loss %.4f\n", accuracy, data->count, loss);
    print_confusion(model, confusion);
    const html_eval_report report = {.m = model, .confusion = confusion, .accuracy = accuracy,
                                     .loss = loss, .images = data->count,
                                     .data_path = data_path, .png_path = png_path,
                                     .argc = argc, .argv = argv};
    const int rc = strcmp(png_path, "none") ? write_confusion_outputs(&report) : MV_EXIT_OK;
    free(confusion);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, 0, 'd'},  {"labels", required_argument, 0, 'L'},
        {"names", required_argument, 0, 'N'}, {"confusion", required_argument, 0, 'c'},
        {"skip-bad", no_argument, 0, 'S'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *data_path = NULL, *labels = NULL, *names = NULL, *png = "out/confusion.png";
    mv_load_options load;
    mv_load_options_defaults(&load);
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "d:c:h", longopts, NULL)) != -1;) {
        switch (opt) {
        case 'd': data_path = optarg; break;
        case 'L': labels = optarg; break;
        case 'N': names = optarg; break;
        case 'c': png = optarg; break;
        case 'S': load.skip_bad = 1; break;
        case 'h': fputs(eval_help, stdout); return MV_EXIT_OK;
        default: return cli_bad_option("eval", opt, argv[optind - 1]);
        }
    }
    if (optind != argc - 1 || !data_path) {
        cli_error("eval", "give one MODEL and --data (see mlpviz eval --help)");
        return MV_EXIT_USAGE;
    }
    mv_model *model = NULL;
    mv_dataset *data = NULL;
    if (cli_load_model("eval", argv[optind], &model))
        return MV_EXIT_FAIL;
    load.width = model->width;
    load.height = model->height;
    load.channels = model->channels;
    /* IDX labels are the model's class indices unless --names says otherwise. */
    int rc = cli_load_data("eval", data_path, labels, names,
                           (const char *const *)model->class_names, model->n_classes, &load,
                           &data);
    if (!rc)
        rc = match_classes(model, data, data_path);
    if (!rc)
        rc = evaluate_and_report(model, data, png, data_path, argc, argv);
    mv_dataset_free(data);
    mv_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------ predict */

static int predict_one(const mv_model *model, mv_workspace *ws, const char *path, int top,
                       float *pixels, mv_real *x)
{
    if (mv_image_load(path, model->channels, model->width, model->height, 0, pixels)) {
        cli_error("predict", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    mv_model_prepare_input(model, pixels, x, 1);
    mv_forward(model->net, ws, x, 1);
    const int K = model->n_classes;
    const mv_real *p = ws->a[model->net->arch.n_layers - 1];
    printf("%s\n", path);
    /* Selection of the top entries: K is small, and no sort needs a copy of p. */
    double floor_value = INFINITY;
    int floor_index = -1;
    for (int rank = 0; rank < top && rank < K; rank++) {
        int best = -1;
        for (int k = 0; k < K; k++) {
            const int below = p[k] < floor_value || (p[k] == floor_value && k > floor_index);
            if (below && (best < 0 || p[k] > p[best]))
                best = k;
        }
        floor_value = p[best];
        floor_index = best;
        printf("  %d. %-20s %.4f\n", rank + 1, model->class_names[best], (double)p[best]);
    }
    return 0;
}

typedef struct {
    int top;
} predict_options;

static const cli_number_option predict_numbers[] = {
    CLI_NUMBER('k', "top", 1, 1024, predict_options, top),
};

int cmd_predict(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"top", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    predict_options o = {.top = 3};
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "k:h", longopts, NULL)) != -1;) {
        if (opt == 'h') {
            fputs(predict_help, stdout);
            return MV_EXIT_OK;
        }
        const int rc = cli_parse_number_option("predict", CLI_TABLE(predict_numbers), opt,
                                               optarg, &o);
        if (rc)
            return rc == CLI_NOT_IN_TABLE ? cli_bad_option("predict", opt, argv[optind - 1]) : rc;
    }
    if (argc - optind < 2) {
        cli_error("predict", "give a MODEL and at least one IMAGE (see mlpviz predict --help)");
        return MV_EXIT_USAGE;
    }
    mv_model *model;
    if (cli_load_model("predict", argv[optind], &model))
        return MV_EXIT_FAIL;
    mv_workspace *ws = NULL;
    const size_t D = (size_t)model->net->arch.widths[0];
    float *pixels = malloc(sizeof *pixels * D);
    mv_real *x = malloc(sizeof *x * D);
    int rc = 0;
    if (!pixels || !x || mv_workspace_create(&ws, &model->net->arch, 1)) {
        cli_error("predict", "out of memory");
        rc = MV_EXIT_FAIL;
    }
    for (int i = optind + 1; !rc && i < argc; i++)
        rc = predict_one(model, ws, argv[i], o.top, pixels, x);
    free(pixels);
    free(x);
    mv_workspace_free(ws);
    mv_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------ grad */

static const char *const grad_help =
    "usage: mlpviz grad MODEL IMAGE [--class K|NAME|all] [--objective OBJ] [--out FILE.npy]\n"
    "\n"
    "Writes the gradient of a class score with respect to the image's pixels (values in\n"
    "[0, 1]) as a float32 NumPy array of shape (height, width, channels), or\n"
    "(classes, height, width, channels) for --class all, computed in one batched pass.\n"
    "\n"
    "  -c, --class K      class index or name, or all (default: the predicted class)\n"
    "      --objective O  logit (default), logprob, or prob (also called output)\n"
    "  -o, --out FILE     (default out/grad.npy)\n"
    "  -h, --help\n";

enum { ALL_CLASSES = -1 }; /* the target of --class all */

/* *target = the class index of a number or a name, or ALL_CLASSES for "all". Returns the
 * exit status: MV_EXIT_USAGE (after printing) when text names no class. */
static int parse_class(const char *cmd, const mv_model *model, const char *text, int *target)
{
    *target = ALL_CLASSES;
    if (!strcmp(text, "all"))
        return MV_EXIT_OK;
    for (int k = 0; k < model->n_classes; k++)
        if (!strcmp(text, model->class_names[k])) {
            *target = k;
            return MV_EXIT_OK;
        }
    char *end;
    const long k = strtol(text, &end, 10);
    if (end != text && !*end && k >= 0 && k < model->n_classes) {
        *target = (int)k;
        return MV_EXIT_OK;
    }
    cli_error(cmd, "--class: '%s' is neither a class name nor an index 0..%d", text,
              model->n_classes - 1);
    return MV_EXIT_USAGE;
}

/* Pixel gradients of rows targets[0..rows) of the same image. */
static int image_gradients(const mv_model *model, const float *pixels, const int *targets,
                           int rows, mv_objective objective, float *out, mv_real *values)
{
    const size_t D = (size_t)model->net->arch.widths[0];
    float *copies = malloc(sizeof *copies * D * (size_t)rows); /* one per row */
    if (!copies) {
        cli_error("grad", "out of memory");
        return MV_EXIT_FAIL;
    }
    for (int r = 0; r < rows; r++) memcpy(copies + r * D, pixels, sizeof *copies * D);
    const mv_status st = mv_model_pixel_grad(model, copies, rows, (mv_target){objective, 0},
                                             targets, out, values);
    free(copies);
    if (st)
        cli_error("grad", "%s", mv_last_error());
    return st != MV_OK;
}

static int parse_objective_name(const char *text, mv_objective *objective)
{
    static const char *const names[] = {"logit", "prob", "output", "logprob"};
    static const mv_objective kinds[] = {MV_OBJ_LOGIT, MV_OBJ_OUTPUT, MV_OBJ_OUTPUT,
                                         MV_OBJ_LOGPROB};
    for (int i = 0; i < 4; i++)
        if (!strcmp(text, names[i])) {
            *objective = kinds[i];
            return 0;
        }
    cli_error("grad", "--objective must be logit, prob (or output) or logprob, got '%s'", text);
    return MV_EXIT_USAGE;
}

/* The predicted class of an image: its largest output (0 when the buffers cannot be
 * allocated; the printed class name then tells which one was used). */
static int predicted_class(const mv_model *model, const float *pixels)
{
    float *probs = malloc(sizeof *probs * (size_t)model->n_classes);
    const int top = probs && mv_model_predict(model, pixels, 1, probs) == MV_OK
                        ? mv_index_of_max(probs, model->n_classes) : 0;
    free(probs);
    return top;
}

/* Loads the image at path into pixels, then *target = the class of --class (ALL_CLASSES for
 * "all"), else the image's predicted class. Returns the exit status. */
static int load_image_and_target(const char *cmd, const mv_model *model, const char *path,
                                 const char *class_text, float *pixels, int *target)
{
    if (mv_image_load(path, model->channels, model->width, model->height, 0, pixels)) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    if (class_text)
        return parse_class(cmd, model, class_text, target);
    *target = predicted_class(model, pixels);
    return MV_EXIT_OK;
}

static const struct option grad_longopts[] = {
    {"class", required_argument, 0, 'c'}, {"objective", required_argument, 0, 'O'},
    {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

int cmd_grad(int argc, char **argv)
{
    const char *class_text = NULL, *out_path = "out/grad.npy";
    mv_objective objective = MV_OBJ_LOGIT;
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "c:o:h", grad_longopts, NULL)) != -1;) {
        switch (opt) {
        case 'c': class_text = optarg; break;
        case 'O': if (parse_objective_name(optarg, &objective)) return MV_EXIT_USAGE; break;
        case 'o': out_path = optarg; break;
        case 'h': fputs(grad_help, stdout); return MV_EXIT_OK;
        default: return cli_bad_option("grad", opt, argv[optind - 1]);
        }
    }
    if (argc - optind != 2) {
        cli_error("grad", "give one MODEL and one IMAGE (see mlpviz grad --help)");
        return MV_EXIT_USAGE;
    }
    mv_model *model;
    if (cli_load_model("grad", argv[optind], &model))
        return MV_EXIT_FAIL;
    const int K = model->n_classes, D = model->net->arch.widths[0];
    float *pixels = malloc(sizeof *pixels * (size_t)D);
    float *grads = malloc(sizeof *grads * (size_t)D * K);
    mv_real *values = malloc(sizeof *values * (size_t)K);
    int *targets = malloc(sizeof *targets * (size_t)K);
    int rc = !pixels || !grads || !values || !targets ? MV_EXIT_FAIL : MV_EXIT_OK;
    if (rc)
        cli_error("grad", "out of memory");
    int target = 0;
    if (!rc)
        rc = load_image_and_target("grad", model, argv[optind + 1], class_text, pixels, &target);
    const int rows = target == ALL_CLASSES ? K : 1;
    for (int r = 0; r < rows; r++) targets[r] = target == ALL_CLASSES ? r : target;
    if (!rc)
        rc = image_gradients(model, pixels, targets, rows, objective, grads, values);
    if (!rc) {
        const int shape[4] = {rows, model->height, model->width, model->channels};
        cli_ensure_parent(out_path);
        if (mv_npy_write(out_path, grads, rows == 1 ? 3 : 4, rows == 1 ? shape + 1 : shape)) {
            cli_error("grad", "%s", mv_last_error());
            rc = MV_EXIT_FAIL;
        }
    }
    for (int r = 0; !rc && r < rows; r++)
        printf("%s: %s = %.6g\n", model->class_names[targets[r]],
               objective == MV_OBJ_LOGIT ? "logit" : objective == MV_OBJ_OUTPUT ? "prob" : "logprob",
               (double)values[r]);
    if (!rc)
        printf("gradient written to %s\n", out_path);
    free(pixels);
    free(grads);
    free(values);
    free(targets);
    mv_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------ saliency */

static const char *const saliency_help =
    "usage: mlpviz saliency MODEL IMAGE [--class K|NAME] [--out FILE.png] [--scale S]\n"
    "\n"
    "Writes, side by side: the image as the model sees it, the saliency |d logit / d pixel|\n"
    "(largest over channels, white to blue), and the signed gradient (red raises the class\n"
    "score, blue lowers it), each scaled to its largest value.\n"
    "\n"
    "  -c, --class K    class index or name (default: the predicted class)\n"
    "  -o, --out FILE   (default out/saliency.png); a page beside it shows the sheet and the\n"
    "                   model's top classes (FILE with .html: out/saliency.html)\n"
    "      --scale S    upscale S times (default 8)\n"
    "  -h, --help\n";

/* The three panels of a saliency sheet into sheet [H][3W + 2 gaps][3]. */
static void draw_saliency(const mv_model *m, const float *pixels, const float *grad, int s,
                          float *sheet, int sheet_w)
{
    const int w = m->width, h = m->height, C = m->channels, gap = 4;
    const size_t D = (size_t)w * h * C;
    double peak = 0;
    for (size_t i = 0; i < D; i++) peak = fmax(peak, fabs(grad[i]));
    const double inv = peak > 0 ? 1 / peak : 0;
    for (int y = 0; y < h * s; y++)
        for (int x = 0; x < w * s; x++) {
            const size_t at = ((size_t)(y / s) * w + x / s) * C;
            double strongest = 0, signed_sum = 0;
            for (int c = 0; c < C; c++) {
                strongest = fmax(strongest, fabs(grad[at + c]));
                signed_sum += grad[at + c];
            }
            float *p0 = sheet + ((size_t)y * sheet_w + x) * 3;
            float *p1 = p0 + (size_t)(w * s + gap) * 3, *p2 = p1 + (size_t)(w * s + gap) * 3;
            for (int c = 0; c < 3; c++) p0[c] = pixels[at + (C == 3 ? c : 0)];
            cli_heat_color((float)(strongest * inv), p1);
            const float t = (float)fmax(-1, fmin(1, signed_sum * inv));
            p2[0] = t < 0 ? 1 + t : 1; /* white at 0, red for +, blue for - */
            p2[1] = 1 - fabsf(t);
            p2[2] = t > 0 ? 1 - t : 1;
        }
}

static const struct option saliency_longopts[] = {
    {"class", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'},
    {"scale", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

/* What a saliency sheet is made of. */
typedef struct {
    const mv_model *m;
    const float *pixels, *grad;
    int scale;
    const char *image_path, *out_path;
    int target;
    double logit;
    int argc;
    char **argv;
} saliency_run;

/* OUT.html beside the sheet: the sheet and the model's top classes. */
static int write_saliency_page(const saliency_run *s, const char *page, int W, int H)
{
    float *probs = malloc(sizeof *probs * (size_t)s->m->n_classes);
    if (!probs || mv_model_predict(s->m, s->pixels, 1, probs)) {
        cli_error("saliency", "%s", probs ? mv_last_error() : "out of memory");
        free(probs);
        return MV_EXIT_FAIL;
    }
    const html_saliency_report r = {.m = s->m, .image_path = s->image_path,
                                    .png_path = s->out_path, .target = s->target, .png_w = W,
                                    .png_h = H, .logit = s->logit, .probs = probs,
                                    .argc = s->argc, .argv = s->argv};
    const int rc = html_saliency_page(page, &r);
    free(probs);
    return rc;
}

/* The sheet OUT and its page. */
static int write_saliency_outputs(const saliency_run *s)
{
    const mv_model *m = s->m;
    const int gap = 4, W = 3 * m->width * s->scale + 2 * gap, H = m->height * s->scale;
    float *sheet = malloc(sizeof *sheet * (size_t)W * H * 3); /* [H][W][3] */
    if (!sheet) {
        cli_error("saliency", "out of memory");
        return MV_EXIT_FAIL;
    }
    const float white[3] = {1, 1, 1};
    cli_fill_rect(sheet, W, H, 3, 0, 0, W, H, white);
    draw_saliency(m, s->pixels, s->grad, s->scale, sheet, W);
    cli_ensure_parent(s->out_path);
    int rc = MV_EXIT_OK;
    if (mv_png_write(s->out_path, sheet, W, H, 3, NULL, NULL)) {
        cli_error("saliency", "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    free(sheet);
    char page[4096];
    html_page_path(s->out_path, page, sizeof page);
    if (!rc && !(rc = write_saliency_page(s, page, W, H)))
        printf("%s: logit %.4f; saliency written to %s, the page to %s\n",
               m->class_names[s->target], s->logit, s->out_path, page);
    return rc;
}

typedef struct {
    const char *class_text, *out_path;
    int scale;
} saliency_options;

static const cli_number_option saliency_numbers[] = {
    CLI_NUMBER('S', "scale", 1, 64, saliency_options, scale),
};

/* Fills o from the command line. Returns 0 to go on, CLI_HELP_SHOWN after --help, or an
 * exit status. */
static int parse_saliency_args(int argc, char **argv, saliency_options *o)
{
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "c:o:h", saliency_longopts, NULL)) != -1;) {
        int rc = MV_EXIT_OK;
        switch (opt) {
        case 'c': o->class_text = optarg; break;
        case 'o': o->out_path = optarg; break;
        case 'h': fputs(saliency_help, stdout); return CLI_HELP_SHOWN;
        default:
            rc = cli_parse_number_option("saliency", CLI_TABLE(saliency_numbers), opt, optarg, o);
        }
        if (rc)
            return rc == CLI_NOT_IN_TABLE ? cli_bad_option("saliency", opt, argv[optind - 1]) : rc;
    }
    if (argc - optind != 2) {
        cli_error("saliency", "give one MODEL and one IMAGE (see mlpviz saliency --help)");
        return MV_EXIT_USAGE;
    }
    return 0;
}

int cmd_saliency(int argc, char **argv)
{
    saliency_options o = {.out_path = "out/saliency.png", .scale = 8};
    int rc = parse_saliency_args(argc, argv, &o);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    mv_model *m;
    if (cli_load_model("saliency", argv[optind], &m))
        return MV_EXIT_FAIL;
    const size_t D = (size_t)m->net->arch.widths[0];
    float *pixels = malloc(sizeof *pixels * D), *grad = malloc(sizeof *grad * D);
    rc = !pixels || !grad ? MV_EXIT_FAIL : MV_EXIT_OK;
    if (rc)
        cli_error("saliency", "out of memory");
    int target = 0;
    if (!rc)
        rc = load_image_and_target("saliency", m, argv[optind + 1], o.class_text, pixels,
                                   &target);
    if (!rc && target == ALL_CLASSES) {
        cli_error("saliency", "--class all: give one class");
        rc = MV_EXIT_USAGE;
    }
    mv_real value;
    if (!rc)
        rc = image_gradients(m, pixels, &target, 1, MV_OBJ_LOGIT, grad, &value);
    const saliency_run run = {.m = m, .pixels = pixels, .grad = grad, .scale = o.scale,
                              .image_path = argv[optind + 1], .out_path = o.out_path,
                              .target = target, .logit = value, .argc = argc, .argv = argv};
    if (!rc)
        rc = write_saliency_outputs(&run);
    free(pixels);
    free(grad);
    mv_model_free(m);
    return rc;
}
