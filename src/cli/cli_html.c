/* cli_html.c: what every HTML report shares: the page frame and style, escaping, the run
 * section, SVG charts and links between reports. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_html.h"

/* One style sheet for every page, inline: the page must open from a folder with no server.
 * Images keep their pixels crisp when shown larger than they are. */
static const char *const page_style =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\n"
    "img{image-rendering:pixelated;image-rendering:crisp-edges}\n"
    "img.filmstrip,img.grid,img.grid-gif{max-width:100%;height:auto}\n"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}\n"
    ".card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;margin:0}\n"
    ".card figcaption{font-size:12px;max-width:14em;overflow-wrap:anywhere}\n"
    "table{border-collapse:collapse;background:#fff}\n"
    "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}\n"
    "td:first-child,th:first-child{text-align:left}\n"
    "pre{background:#fff;border:1px solid #ddd;padding:6px;white-space:pre-wrap;"
    "overflow-wrap:anywhere}\n"
    "svg{background:#fff;border:1px solid #ddd}\n"
    ".player{margin:8px 0}\n";

int html_begin(html_page *page, const char *title)
{
    *page = (html_page){0};
    if (!(page->out = open_memstream(&page->buffer, &page->size)))
        return -1;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width\">\n<title>",
          page->out);
    html_text(page->out, title);
    fprintf(page->out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", page_style);
    html_text(page->out, title);
    fputs("</h1>\n", page->out);
    return 0;
}

int html_finish(html_page *page, const char *path, const char *cmd)
{
    fputs("</body>\n</html>\n", page->out);
    /* A stream that failed to grow leaves a truncated page: refuse it rather than write it. */
    const int failed = ferror(page->out);
    fclose(page->out);
    int rc = MV_EXIT_OK;
    if (failed) {
        cli_error(cmd, "%s: out of memory", path);
        rc = MV_EXIT_FAIL;
    } else if (mv_write_file_atomic(path, page->buffer, page->size)) {
        cli_error(cmd, "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    free(page->buffer);
    *page = (html_page){0};
    return rc;
}

void html_text(FILE *out, const char *text)
{
    for (const char *c = text; *c; c++) {
        switch (*c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*c, out);
        }
    }
}

void html_url(FILE *out, const char *path)
{
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("._~/-", *c))
            fputc(*c, out);
        else
            fprintf(out, "%%%02X", *c);
    }
}

void html_number(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.4f", x);
    else
        fputs(isnan(x) ? "n/a" : x > 0 ? "+inf" : "-inf", out);
}

/* Layer widths, activations and head, e.g. "784-256-128-10, relu, ce". */
static void architecture(FILE *out, const mv_arch *arch)
{
    for (int l = 0; l <= arch->n_layers; l++) fprintf(out, "%s%d", l ? "-" : "", arch->widths[l]);
    fputs("; activations", out);
    for (int l = 0; l + 1 < arch->n_layers; l++)
        fprintf(out, " %s", mv_act_name(arch->act[l].kind));
    fprintf(out, "; head %s; %zu parameters", mv_head_name(arch->head),
            mv_arch_param_count(arch));
}

void html_run_section(FILE *out, int argc, char **argv, const mv_model *m, const char *extra)
{
    fputs("<h2>Run</h2>\n<pre class=\"command\">mlpviz", out);
    for (int i = 0; i < argc; i++) {
        fputc(' ', out);
        html_text(out, argv[i]);
    }
    fputs("</pre>\n", out);
    if (extra) {
        fputs("<p>", out);
        html_text(out, extra);
        fputs("</p>\n", out);
    }
    if (m)
        html_model_table(out, m);
}

void html_model_table(FILE *out, const mv_model *m)
{
    fputs("<table class=\"model\">\n", out);
    if (m->file.format != MV_FORMAT_NONE) /* a model trained in this run has no file CRC yet */
        fprintf(out, "<tr><th>model CRC-32</th><td>%08x</td></tr>\n", (unsigned)m->file.crc);
    fprintf(out, "<tr><th>input</th><td>%dx%d, %d channel%s</td></tr>\n<tr><th>network</th><td>",
            m->width, m->height, m->channels, m->channels == 1 ? "" : "s");
    architecture(out, &m->net->arch);
    fprintf(out, "</td></tr>\n<tr><th>classes (%d)</th><td>", m->n_classes);
    for (int k = 0; k < m->n_classes; k++) {
        fputs(k ? ", <span class=\"class\">" : "<span class=\"class\">", out);
        html_text(out, m->class_names[k]);
        fputs("</span>", out);
    }
    fputs("</td></tr>\n", out);
    for (int i = 0; i < m->n_meta; i++) {
        fputs("<tr><th>", out);
        html_text(out, m->meta[i].key);
        fputs("</th><td>", out);
        html_text(out, m->meta[i].value);
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
}

/* The smallest and largest finite value of the chart, or [0, 1] when there is none. */
static void chart_range(const html_chart *c, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->n_points; i++)
            if (isfinite(c->ys[s][i])) {
                *lo = fmin(*lo, c->ys[s][i]);
                *hi = fmax(*hi, c->ys[s][i]);
            }
    if (!(*lo <= *hi)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi - *lo < 1e-12) /* a flat line still needs a scale */
        *hi = *lo + 1;
}

/* One series as polylines, split where a value is not finite. */
static void chart_line(FILE *out, const html_chart *c, int s, double lo, double hi, double x_lo,
                       double x_hi)
{
    const double left = 60, top = 10, width = 520, height = 200;
    const int hue = (int)(360.0 * s / (c->n_series > 0 ? c->n_series : 1));
    int open = 0;
    for (int i = 0; i < c->n_points; i++) {
        const double y = c->ys[s][i];
        if (!isfinite(y)) {
            if (open) fputs("\"/>\n", out);
            open = 0;
            continue;
        }
        if (!open)
            fprintf(out, "<polyline fill=\"none\" stroke=\"hsl(%d,70%%,42%%)\" points=\"", hue);
        const double px = left + width * (x_hi > x_lo ? (c->xs[i] - x_lo) / (x_hi - x_lo) : 0);
        const double py = top + height * (1 - (y - lo) / (hi - lo));
        fprintf(out, "%s%.1f,%.1f", open ? " " : "", px, py);
        open = 1;
    }
    if (open) fputs("\"/>\n", out);
}

void html_svg_chart(FILE *out, const html_chart *c)
{
    double lo, hi;
    chart_range(c, &lo, &hi);
    const double x_lo = c->n_points ? c->xs[0] : 0, x_hi = c->n_points ? c->xs[c->n_points - 1] : 1;
    fputs("<figure class=\"chart\">\n<svg viewBox=\"0 0 600 240\" width=\"600\" height=\"240\" "
          "role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>", out);
    html_text(out, c->title);
    fputs("</title>\n<path d=\"M60 10V210H580\" fill=\"none\" stroke=\"#888\"/>\n", out);
    fprintf(out, "<text x=\"55\" y=\"16\" text-anchor=\"end\" font-size=\"11\">%.4g</text>\n", hi);
    fprintf(out, "<text x=\"55\" y=\"210\" text-anchor=\"end\" font-size=\"11\">%.4g</text>\n", lo);
    fprintf(out, "<text x=\"60\" y=\"226\" font-size=\"11\">%.4g</text>\n", x_lo);
    fprintf(out, "<text x=\"580\" y=\"226\" text-anchor=\"end\" font-size=\"11\">%.4g</text>\n", x_hi);
    fputs("<text x=\"320\" y=\"236\" text-anchor=\"middle\" font-size=\"11\">", out);
    html_text(out, c->x_label);
    fputs("</text>\n", out);
    for (int s = 0; s < c->n_series; s++) chart_line(out, c, s, lo, hi, x_lo, x_hi);
    fputs("</svg>\n<figcaption>", out);
    html_text(out, c->title);
    for (int s = 0; c->n_series <= 24 && s < c->n_series; s++) {
        fprintf(out, "%s<span style=\"color:hsl(%d,70%%,42%%)\">", s ? ", " : ": ",
                (int)(360.0 * s / c->n_series));
        html_text(out, c->names[s]);
        fputs("</span>", out);
    }
    fputs("</figcaption>\n</figure>\n", out);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sorted names for a stable page. */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The report links of dir into links [max] (malloc'd "x.html" or "sub/index.html"). */
static int collect_links(const char *dir, const char *self, char **links, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && n < max && (e = readdir(d));) {
        char path[4096], link[1024];
        const size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue; /* hidden files, and the temporary names of atomic writes */
        if (len > 5 && !strcmp(e->d_name + len - 5, ".html"))
            snprintf(link, sizeof link, "%s", e->d_name);
        else
            snprintf(link, sizeof link, "%s/index.html", e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, link);
        if (strcmp(link, self) && is_file(path) && (links[n] = strdup(link)))
            n++;
    }
    if (d)
        closedir(d);
    qsort(links, (size_t)n, sizeof *links, compare_names);
    return n;
}

void html_sibling_links(FILE *out, const char *dir, const char *self)
{
    char *links[256];
    const int n = collect_links(dir, self, links, 256);
    if (n)
        fputs("<h2>Other reports here</h2>\n<ul class=\"links\">\n", out);
    for (int i = 0; i < n; i++) {
        fputs("<li><a href=\"", out);
        html_url(out, links[i]);
        fputs("\">", out);
        html_text(out, links[i]);
        fputs("</a></li>\n", out);
        free(links[i]);
    }
    if (n)
        fputs("</ul>\n", out);
}

const char *html_dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
    return buf;
}

const char *html_page_path(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    const int stem = dot && (!slash || dot > slash + 1) ? (int)(dot - path) : (int)strlen(path);
    snprintf(buf, size, "%.*s.html", stem, path);
    return buf;
}
