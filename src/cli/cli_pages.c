/* cli_pages.c: the HTML pages of eval (accuracy, per-class accuracy, the confusion matrix)
 * and saliency (the sheet and the model's probabilities), beside their output file. */
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
