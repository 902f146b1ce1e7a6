/* cli_html.h: the self-contained HTML reports (index.html of visualize, the pages of eval,
 * saliency and train). A page is built in memory and written atomically at the end, so a
 * failed run never leaves half a page. Every embedded string goes through html_text or
 * html_url: class names come from folder names and may hold markup. */
#ifndef MV_CLI_HTML_H
#define MV_CLI_HTML_H

#include <stdio.h>

#include "cli.h"

typedef struct {
    FILE *out;     /* write the body here (an in-memory stream) */
    char *buffer;  /* the stream's bytes, once closed */
    size_t size;
} html_page;

/* Starts a page titled title (escaped) with the shared style sheet. Returns 0, or -1 when out
 * of memory (nothing to free then). */
int html_begin(html_page *page, const char *title);

/* Ends the page and writes it to path atomically; frees the page either way. Returns the
 * exit status (the error printed as "mlpviz CMD: ..."). */
int html_finish(html_page *page, const char *path, const char *cmd);

/* Text with & < > " ' escaped: safe in element content and in quoted attributes. */
void html_text(FILE *out, const char *text);
/* A relative file path as a URL: every byte but [A-Za-z0-9._~/-] percent-encoded, so a
 * name holding '#', '?', '%', quotes or markup still names its file. */
void html_url(FILE *out, const char *path);
/* A number for a table cell: %.4f, or the text of a non-finite value. */
void html_number(FILE *out, double x);

/* "<h2>Run</h2>": the command line (argv as run), a line of extra text (may be NULL), and
 * html_model_table (m may be NULL). */
void html_run_section(FILE *out, int argc, char **argv, const mv_model *m, const char *extra);
/* The model's file CRC and its summary: input shape, layer widths, activations, head,
 * classes, stored metadata (the command that trained it among them). */
void html_model_table(FILE *out, const mv_model *m);

/* An SVG line chart (inline, no script): n_series lines of n_points values ys[s][i] at
 * xs[i], named names[s] in a legend. Non-finite values break a line. */
typedef struct {
    const char *title, *x_label;
    int n_series, n_points;
    const char *const *names;   /* [n_series] */
    const double *xs;           /* [n_points] */
    const double *const *ys;    /* [n_series][n_points] */
} html_chart;
void html_svg_chart(FILE *out, const html_chart *chart);

/* Links to the other reports of dir: DIR/<x>.html and DIR/<sub>/index.html (not self). */
void html_sibling_links(FILE *out, const char *dir, const char *self);

/* The folder part of path ("." when it has none), into buf. */
const char *html_dir_of(const char *path, char *buf, size_t size);

/* path with its extension (if any) replaced by ".html", into buf: the page of a command
 * whose output is one file, beside it. */
const char *html_page_path(const char *path, char *buf, size_t size);

/* ---- the pages of eval, saliency and train (cli_pages.c); each returns the exit status */

typedef struct {
    const mv_model *m;
    const long *confusion;   /* [K][K]: rows true class, columns predicted */
    double accuracy, loss;
    int images;
    const char *data_path;
    const char *png_path;    /* the heat map, beside the page */
    int argc;
    char **argv;
} html_eval_report;
int html_eval_page(const char *path, const html_eval_report *r);

typedef struct {
    const mv_model *m;
    const char *image_path, *png_path; /* the input image; the sheet beside the page */
    int target, png_w, png_h;
    double logit;
    const float *probs;                /* [n_classes] the model's probabilities */
    int argc;
    char **argv;
} html_saliency_report;
int html_saliency_page(const char *path, const html_saliency_report *r);

typedef struct {
    const mv_model *m;       /* as trained */
    const char *csv_path;    /* the per-epoch metrics the run wrote (resumed epochs included) */
    const char *model_path;
    const char *command;     /* the command line, as the model records it */
} html_train_report;
int html_train_page(const char *path, const html_train_report *r);

#endif
