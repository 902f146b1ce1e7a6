/* cli_pages.c: the HTML pages of eval (accuracy, per-class accuracy, the confusion matrix),
 * saliency (the sheet and the model's probabilities) and train (loss and accuracy per
 * epoch), beside their output file. */
#include <stdlib.h>
#include <string.h>

#include "cli_html.h"

/* The file name of path: pages sit beside their images and link them by name. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static long row_total(const long *confusion, int K, int t)
{
    long total = 0;
    for (int p = 0; p < K; p++) total += confusion[(size_t)t * K + p];
    return total;
}

static void per_class_table(FILE *out, const html_eval_report *r)
{
    const int K = r->m->n_classes;
    fputs("<h2>Per class</h2>\n<table class=\"per-class\">\n<thead><tr><th>class</th>"
          "<th>images</th><th>accuracy</th></tr></thead>\n<tbody>\n", out);
    for (int t = 0; t < K; t++) {
        const long total = row_total(r->confusion, K, t);
        fputs("<tr><td>", out);
        html_text(out, r->m->class_names[t]);
        fprintf(out, "</td><td>%ld</td><td>", total);
        if (total)
            html_number(out, (double)r->confusion[(size_t)t * K + t] / total);
        fputs("</td></tr>\n", out);
    }
    fputs("</tbody>\n</table>\n", out);
}

/* The matrix as a table, each cell shaded by its share of the true class's images. */
static void confusion_table(FILE *out, const html_eval_report *r)
{
    const int K = r->m->n_classes;
    fputs("<h2>Confusion matrix</h2>\n<p>Rows: the true class; columns: the predicted one.</p>\n"
          "<table class=\"confusion\">\n<thead><tr><th></th>", out);
    for (int p = 0; p < K; p++) {
        fputs("<th>", out);
        html_text(out, r->m->class_names[p]);
        fputs("</th>", out);
    }
    fputs("</tr></thead>\n<tbody>\n", out);
    for (int t = 0; t < K; t++) {
        const long total = row_total(r->confusion, K, t);
        fputs("<tr><th>", out);
        html_text(out, r->m->class_names[t]);
        fputs("</th>", out);
        for (int p = 0; p < K; p++) {
            const long n = r->confusion[(size_t)t * K + p];
            const int light = total ? 100 - (int)(60.0 * n / total) : 100;
            fprintf(out, "<td style=\"background:hsl(%d,60%%,%d%%)\">%ld</td>",
                    p == t ? 120 : 0, light, n);
        }
        fputs("</tr>\n", out);
    }
    fputs("</tbody>\n</table>\n", out);
}

int html_eval_page(const char *path, const html_eval_report *r)
{
    html_page page;
    if (html_begin(&page, "mlpviz eval")) {
        cli_error("eval", "out of memory");
        return MV_EXIT_FAIL;
    }
    FILE *out = page.out;
    fputs("<p>Data <code>", out);
    html_text(out, r->data_path);
    fprintf(out, "</code>: accuracy <b class=\"accuracy\">%.4f</b> on %d images, mean loss "
                 "%.4f.</p>\n", r->accuracy, r->images, r->loss);
    per_class_table(out, r);
    confusion_table(out, r);
    if (r->png_path) {
        fputs("<p><img class=\"confusion-png\" src=\"", out);
        html_url(out, base_name(r->png_path));
        fputs("\" alt=\"the confusion matrix as a heat map\"></p>\n", out);
    }
    html_run_section(out, r->argc, r->argv, r->m, NULL);
    return html_finish(&page, path, "eval");
}

/* The model's five most probable classes for the image. */
static void top_classes(FILE *out, const html_saliency_report *r)
{
    const int K = r->m->n_classes, shown = K < 5 ? K : 5;
    unsigned char *used = calloc((size_t)K, 1);
    fputs("<h2>The model's top classes</h2>\n<table class=\"top\">\n<thead><tr><th>class</th>"
          "<th>probability</th></tr></thead>\n<tbody>\n", out);
    for (int i = 0; used && i < shown; i++) {
        int best = -1;
        for (int k = 0; k < K; k++)
            if (!used[k] && (best < 0 || r->probs[k] > r->probs[best])) best = k;
        used[best] = 1;
        fputs("<tr><td>", out);
        html_text(out, r->m->class_names[best]);
        fputs("</td><td>", out);
        html_number(out, r->probs[best]);
        fputs("</td></tr>\n", out);
    }
    fputs("</tbody>\n</table>\n", out);
    free(used);
}

int html_saliency_page(const char *path, const html_saliency_report *r)
{
    html_page page;
    if (html_begin(&page, "mlpviz saliency")) {
        cli_error("saliency", "out of memory");
        return MV_EXIT_FAIL;
    }
    FILE *out = page.out;
    fputs("<p>Image <code>", out);
    html_text(out, r->image_path);
    fputs("</code>, class <b>", out);
    html_text(out, r->m->class_names[r->target]);
    fputs("</b>, logit ", out);
    html_number(out, r->logit);
    fputs(".</p>\n<p>Left to right: the image as the model sees it, |d logit / d pixel|, and "
          "the signed gradient.</p>\n<p><img class=\"saliency\" src=\"", out);
    html_url(out, base_name(r->png_path));
    fprintf(out, "\" data-w=\"%d\" data-h=\"%d\" width=\"%d\" height=\"%d\" alt=\"saliency\">"
                 "</p>\n", r->png_w, r->png_h, r->png_w, r->png_h);
    top_classes(out, r);
    html_run_section(out, r->argc, r->argv, r->m, NULL);
    return html_finish(&page, path, "saliency");
}

/* The metrics CSV's columns: epoch, lr, train loss, train accuracy, val loss, val accuracy
 * (-1 without validation), seconds. */
enum { METRIC_COLUMNS = 7, MAX_EPOCHS = 100000 };

/* Parses the metrics CSV into rows [*n][METRIC_COLUMNS] (malloc'd). Returns 0, or -1 with
 * the error printed (naming the file). */
static int read_metrics(const char *path, double **rows, int *n)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    *rows = NULL;
    *n = 0;
    if (mv_read_file(path, 64u << 20, &bytes, &size)) {
        cli_error("train", "%s", mv_last_error());
        return -1;
    }
    char *text = malloc(size + 1); /* the file's bytes are not a string */
    if (text) {
        memcpy(text, bytes, size);
        text[size] = 0;
    }
    free(bytes);
    char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; /* the header */
    double *out = malloc(sizeof *out * METRIC_COLUMNS * (size_t)(size / 14 + 1));
    int count = 0, bad = !out || !line || strncmp(line, "epoch,", 6);
    while (!bad && (line = strtok_r(NULL, "\n", &save)) && count < MAX_EPOCHS) {
        double *r = out + (size_t)count * METRIC_COLUMNS;
        bad = sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf", r, r + 1, r + 2, r + 3, r + 4, r + 5,
                     r + 6) != METRIC_COLUMNS;
        count += !bad;
    }
    free(text);
    if (bad) {
        cli_error("train", "%s: not the metrics CSV of a training run", path);
        free(out);
        return -1;
    }
    *rows = out;
    *n = count;
    return 0;
}

/* One chart of two columns of the metrics (train, and val when the run had validation). */
static void metrics_chart(FILE *out, const char *title, const double *rows, int n, int train,
                          int val)
{
    double *xs = malloc(sizeof *xs * (size_t)n), *ys = malloc(sizeof *ys * 2 * (size_t)n);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return;
    }
    int has_val = 0;
    for (int i = 0; i < n; i++) {
        xs[i] = rows[(size_t)i * METRIC_COLUMNS];
        ys[i] = rows[(size_t)i * METRIC_COLUMNS + train];
        ys[n + i] = rows[(size_t)i * METRIC_COLUMNS + val];
        has_val |= ys[n + i] >= 0;
    }
    const char *const names[2] = {"train", "validation"};
    const double *const series[2] = {ys, ys + n};
    const html_chart chart = {.title = title, .x_label = "epoch", .n_series = has_val ? 2 : 1,
                              .n_points = n, .names = names, .xs = xs, .ys = series};
    html_svg_chart(out, &chart);
    free(xs);
    free(ys);
}

/* Without the epochs' wall times (the CSV has them): the same command gives the same page. */
static void metrics_table(FILE *out, const double *rows, int n)
{
    fputs("<h2>Epochs</h2>\n<table class=\"epochs\">\n<thead><tr><th>epoch</th><th>lr</th>"
          "<th>train loss</th><th>train accuracy</th><th>val loss</th><th>val accuracy</th>"
          "</tr></thead>\n<tbody>\n", out);
    for (int i = 0; i < n; i++) {
        const double *r = rows + (size_t)i * METRIC_COLUMNS;
        fprintf(out, "<tr><td>%d</td><td>%.3g</td>", (int)r[0], r[1]);
        for (int c = 2; c < 6; c++) {
            fputs("<td>", out);
            if (r[c] >= 0 || c < 4)
                html_number(out, r[c]);
            fputs("</td>", out);
        }
        fputs("</tr>\n", out);
    }
    fputs("</tbody>\n</table>\n", out);
}

int html_train_page(const char *path, const html_train_report *r)
{
    double *rows;
    int n;
    if (read_metrics(r->csv_path, &rows, &n))
        return MV_EXIT_FAIL;
    html_page page;
    if (html_begin(&page, "mlpviz train")) {
        free(rows);
        cli_error("train", "out of memory");
        return MV_EXIT_FAIL;
    }
    FILE *out = page.out;
    fputs("<p>Model <code>", out);
    html_text(out, r->model_path);
    fprintf(out, "</code>, %d epoch%s (metrics in <a href=\"", n, n == 1 ? "" : "s");
    html_url(out, base_name(r->csv_path));
    fputs("\">", out);
    html_text(out, base_name(r->csv_path));
    fputs("</a>).</p>\n<h2>Loss and accuracy</h2>\n", out);
    metrics_chart(out, "loss per epoch", rows, n, 2, 4);
    metrics_chart(out, "accuracy per epoch", rows, n, 3, 5);
    metrics_table(out, rows, n);
    fputs("<h2>Run</h2>\n<pre class=\"command\">", out);
    html_text(out, r->command);
    fputs("</pre>\n", out);
    html_model_table(out, r->m);
    free(rows);
    return html_finish(&page, path, "train");
}
