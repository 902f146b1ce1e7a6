/* cli_viz_output.c: what `mlpviz visualize` writes: one PNG per target, the labelled grid,
 * frames and a filmstrip, and the report (CSV and JSON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_draw.h"
#include "cli_gif.h"
#include "cli_viz.h"

const char *viz_target_name(const viz_output *v, int r, char *buf, size_t size)
{
    const int t = v->targets[r % v->n_targets];
    if (v->unit_layer >= 0) {
        snprintf(buf, size, "unit-%d-%d", v->unit_layer, t);
        return buf;
    }
    return v->m->class_names[t];
}

void viz_image_name(const viz_output *v, int r, const char *ext, char *buf, size_t size)
{
    char buf_name[64];
    const char *name = viz_target_name(v, r, buf_name, sizeof buf_name);
    if (v->o->seeds > 1)
        snprintf(buf, size, "%s-%d.%s", name, r / v->n_targets, ext);
    else
        snprintf(buf, size, "%s.%s", name, ext);
}

void viz_frame_name(const viz_output *v, int r, int step, char *buf, size_t size)
{
    char name[64];
    snprintf(buf, size, "frames/%s-%d-%05d.png", viz_target_name(v, r, name, sizeof name),
             r / v->n_targets, step);
}

double viz_judge_prob(const viz_output *v, int r)
{
    if (!v->judge_probs || v->unit_layer >= 0)
        return -1;
    return v->judge_probs[(size_t)r * v->judge->n_classes + v->targets[r % v->n_targets]];
}

/* Nearest-neighbour upscale of src [h][w][c] into dst [h*s][w*s][c]: crisp pixels. */
static void upscale(const float *src, float *dst, int w, int h, int c, int s)
{
    for (int y = 0; y < h * s; y++)
        for (int x = 0; x < w * s; x++)
            memcpy(dst + ((size_t)y * w * s + x) * c, src + ((size_t)(y / s) * w + x / s) * c,
                   sizeof *dst * (size_t)c);
}

/* DIR/<name>.png (or <name>-<seed>.png) per row, upscaled. */
static int write_images(const viz_output *v)
{
    const mv_model *m = v->m;
    const int s = v->o->scale, W = m->width * s, H = m->height * s, C = m->channels;
    const size_t D = (size_t)m->width * m->height * C;
    float *big = malloc(sizeof *big * (size_t)W * H * C); /* [H][W][C] */
    if (!big) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    int rc = 0;
    for (int r = 0; !rc && r < v->rows; r++) {
        char path[4096], file[1024];
        viz_image_name(v, r, "png", file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", v->o->out, file);
        upscale(v->images + r * D, big, m->width, m->height, C, s);
        if (mv_png_write(path, big, W, H, C, "mlpviz", v->text)) {
            cli_error("visualize", "%s", mv_last_error());
            rc = MV_EXIT_FAIL;
        }
    }
    free(big);
    return rc;
}

/* Where a sheet's cells go: the widest label sets the cell, the row labels the margin. */
typedef struct {
    int w, h, cell_w, left, W, H;
} sheet_layout;

enum { SHEET_PAD = 4, SHEET_LABEL = 16 };

static sheet_layout layout_sheet(const mv_model *m, int scale, int rows, int cols,
                                 const char *const *col_labels, const char *const *row_labels)
{
    sheet_layout L = {.w = m->width * scale, .h = m->height * scale};
    L.cell_w = L.w;
    for (int k = 0; col_labels && k < cols; k++) {
        const int tw = cli_text_width(col_labels[k], 1);
        L.cell_w = tw > L.cell_w ? tw : L.cell_w;
    }
    for (int r = 0; row_labels && r < rows; r++) {
        const int tw = cli_text_width(row_labels[r], 1) + SHEET_PAD;
        L.left = tw > L.left ? tw : L.left;
    }
    L.W = L.left + SHEET_PAD + cols * (L.cell_w + SHEET_PAD);
    L.H = SHEET_PAD + rows * (L.h + SHEET_PAD) + SHEET_LABEL;
    return L;
}

float *viz_compose_sheet(const mv_model *m, int scale, const float *images, int rows, int cols,
                         const char *const *col_labels, const char *const *row_labels, int *W,
                         int *H)
{
    const sheet_layout L = layout_sheet(m, scale, rows, cols, col_labels, row_labels);
    const int C = 3, pad = SHEET_PAD;
    float *sheet = malloc(sizeof *sheet * (size_t)L.W * L.H * C);
    float *big = malloc(sizeof *big * (size_t)L.w * L.h * m->channels);
    if (!sheet || !big) {
        free(sheet);
        free(big);
        return NULL;
    }
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0};
    cli_fill_rect(sheet, L.W, L.H, C, 0, 0, L.W, L.H, white);
    const size_t D = (size_t)m->width * m->height * m->channels;
    for (int i = 0; i < rows * cols; i++) {
        const int col = i % cols, row = i / cols;
        const int x0 = L.left + pad + col * (L.cell_w + pad) + (L.cell_w - L.w) / 2;
        const int y0 = pad + row * (L.h + pad);
        upscale(images + i * D, big, m->width, m->height, m->channels, scale);
        for (int y = 0; y < L.h; y++)
            for (int x = 0; x < L.w; x++)
                for (int c = 0; c < C; c++)
                    sheet[((size_t)(y0 + y) * L.W + x0 + x) * C + c] =
                        big[((size_t)y * L.w + x) * m->channels + (m->channels == 3 ? c : 0)];
    }
    for (int k = 0; col_labels && k < cols; k++) {
        const int x = L.left + pad + k * (L.cell_w + pad) +
                      (L.cell_w - cli_text_width(col_labels[k], 1)) / 2;
        cli_draw_text(sheet, L.W, L.H, C, x, L.H - SHEET_LABEL + 2, col_labels[k], 1, black);
    }
    for (int r = 0; row_labels && r < rows; r++)
        cli_draw_text(sheet, L.W, L.H, C, pad, pad + r * (L.h + pad) + L.h / 2 - 6,
                      row_labels[r], 1, black);
    free(big);
    *W = L.W;
    *H = L.H;
    return sheet;
}

int viz_write_sheet(const char *path, const mv_model *m, int scale, const float *images,
                    int rows, int cols, const char *const *col_labels,
                    const char *const *row_labels, const char *text)
{
    int W, H;
    float *sheet = viz_compose_sheet(m, scale, images, rows, cols, col_labels, row_labels, &W, &H);
    if (!sheet) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    const mv_status st = mv_png_write(path, sheet, W, H, 3, "mlpviz", text);
    free(sheet);
    if (st)
        cli_error("visualize", "%s", mv_last_error());
    return st != MV_OK;
}

/* All images on one sheet: a column per target, a row per seed, the names below. */
static int write_grid(const viz_output *v)
{
    const char **names = calloc((size_t)v->n_targets, sizeof *names);
    char (*buf)[64] = calloc((size_t)v->n_targets, sizeof *buf);
    int rc = MV_EXIT_FAIL;
    if (names && buf) {
        for (int k = 0; k < v->n_targets; k++) names[k] = viz_target_name(v, k, buf[k], 64);
        char path[4096];
        snprintf(path, sizeof path, "%s/grid.png", v->o->out);
        rc = viz_write_sheet(path, v->m, v->o->scale, v->images, v->o->seeds, v->n_targets,
                             names, NULL, v->text);
    } else {
        cli_error("visualize", "out of memory");
    }
    free(names);
    free(buf);
    return rc;
}

/* DIR/frames/<target>-<step>.png, and DIR/filmstrip.png: a row per image, a column per
 * frame, the step numbers below. */
static int write_frames(const viz_output *v)
{
    const mv_model *m = v->m;
    const size_t D = (size_t)m->width * m->height * m->channels;
    const int F = v->n_frames, R = v->rows;
    char path[4096], file[1024];
    snprintf(path, sizeof path, "%s/frames", v->o->out);
    cli_ensure_dir(path);
    for (int f = 0; f < F; f++)
        for (int r = 0; r < R; r++) {
            viz_frame_name(v, r, v->frame_steps[f], file, sizeof file);
            snprintf(path, sizeof path, "%s/%s", v->o->out, file);
            if (mv_png_write(path, v->frames + ((size_t)f * R + r) * D, m->width, m->height,
                             m->channels, "mlpviz", v->text)) {
                cli_error("visualize", "%s", mv_last_error());
                return MV_EXIT_FAIL;
            }
        }
    float *strip = malloc(sizeof *strip * D * (size_t)F * R); /* [R][F][D] */
    char (*labels)[16] = calloc((size_t)F, sizeof *labels);
    const char **cols = calloc((size_t)F, sizeof *cols), **rows = calloc((size_t)R, sizeof *rows);
    char (*row_names)[64] = calloc((size_t)R, sizeof *row_names);
    int rc = MV_EXIT_FAIL;
    if (strip && labels && cols && rows && row_names) {
        for (int f = 0; f < F; f++) {
            snprintf(labels[f], sizeof labels[f], "%d", v->frame_steps[f]);
            cols[f] = labels[f];
            for (int r = 0; r < R; r++)
                memcpy(strip + ((size_t)r * F + f) * D, v->frames + ((size_t)f * R + r) * D,
                       sizeof *strip * D);
        }
        for (int r = 0; r < R; r++) rows[r] = viz_target_name(v, r, row_names[r], 64);
        snprintf(path, sizeof path, "%s/filmstrip.png", v->o->out);
        rc = viz_write_sheet(path, m, v->o->scale > 2 ? 2 : v->o->scale, strip, R, F, cols,
                             rows, v->text);
    } else {
        cli_error("visualize", "out of memory");
    }
    free(strip);
    free(labels);
    free(cols);
    free(rows);
    free(row_names);
    return rc;
}

/* The frames of one row, or labelled sheets of every row, one frame at a time for giflib. */
typedef struct {
    const viz_output *v;
    int row;              /* -1: the grid */
    const char **names;   /* [n_targets] the grid's column labels */
    float *sheet;         /* the grid's current frame */
    int W, H;
} gif_source;

static const float *row_frame(void *user, int f)
{
    const gif_source *g = user;
    const size_t D = (size_t)g->v->m->width * g->v->m->height * g->v->m->channels;
    return g->v->frames + ((size_t)f * g->v->rows + g->row) * D;
}

static const float *grid_frame(void *user, int f)
{
    gif_source *g = user;
    const viz_output *v = g->v;
    const size_t D = (size_t)v->m->width * v->m->height * v->m->channels;
    free(g->sheet);
    g->sheet = viz_compose_sheet(v->m, v->o->gif_scale, v->frames + (size_t)f * v->rows * D,
                                 v->o->seeds, v->n_targets, g->names, NULL, &g->W, &g->H);
    return g->sheet;
}

/* 12 frames a second, the final image held for 2 s before the loop starts again. */
enum { GIF_DELAY_CS = 8, GIF_HOLD_CS = 200 };

/* The grid's animation: a labelled sheet per frame, its size that of the first. */
static gif_bytes encode_grid_gif(const viz_output *v)
{
    const char **names = calloc((size_t)v->n_targets, sizeof *names);
    char (*buf)[64] = calloc((size_t)v->n_targets, sizeof *buf);
    gif_source g = {.v = v, .row = -1, .names = names};
    gif_bytes out = {.error = GIF_OUT_OF_MEMORY};
    for (int k = 0; names && buf && k < v->n_targets; k++)
        names[k] = viz_target_name(v, k, buf[k], 64);
    if (names && buf && grid_frame(&g, 0)) {
        const gif_animation a = {.n_frames = v->n_frames, .width = g.W, .height = g.H,
                                 .channels = 3, .scale = 1, .delay_cs = GIF_DELAY_CS,
                                 .hold_cs = GIF_HOLD_CS, .gray = v->m->channels == 1,
                                 .frame = grid_frame, .user = &g};
        out = gif_encode(&a);
    }
    free(g.sheet);
    free(names);
    free(buf);
    return out;
}

static gif_bytes encode_row_gif(const viz_output *v, int r)
{
    const mv_model *m = v->m;
    gif_source g = {.v = v, .row = r};
    const gif_animation a = {.n_frames = v->n_frames, .width = m->width, .height = m->height,
                             .channels = m->channels, .scale = v->o->gif_scale,
                             .delay_cs = GIF_DELAY_CS, .hold_cs = GIF_HOLD_CS,
                             .gray = m->channels == 1, .frame = row_frame, .user = &g};
    return gif_encode(&a);
}

/* Encoded in parallel (the encoding is what costs), written one by one in order: the first
 * failure is the one reported, and nothing after it is written. */
int viz_write_gifs(const viz_output *v)
{
    gif_bytes *gifs = calloc((size_t)v->rows + 1, sizeof *gifs);
    if (!gifs) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i <= v->rows; i++)
        gifs[i] = i == v->rows ? encode_grid_gif(v) : encode_row_gif(v, i);
    int rc = MV_EXIT_OK;
    for (int i = 0; i <= v->rows; i++) {
        char path[4096], file[1024];
        if (i < v->rows)
            viz_image_name(v, i, "gif", file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", v->o->out, i < v->rows ? file : "grid.gif");
        if (rc)
            free(gifs[i].data);
        else
            rc = gif_save(path, &gifs[i], "visualize");
    }
    free(gifs);
    return rc;
}

/* A JSON number, or null for what JSON cannot hold (log 0, an infinite margin). */
static void json_number(FILE *json, const char *key, double x)
{
    if (isfinite(x))
        fprintf(json, ", \"%s\": %.6g", key, x);
    else
        fprintf(json, ", \"%s\": null", key);
}

static void report_row(const viz_output *v, int r, FILE *csv, FILE *json)
{
    const mv_viz_result *x = &v->results[r];
    char buf[64];
    const char *name = viz_target_name(v, r, buf, sizeof buf);
    const char *top = v->m->class_names[x->top_class];
    const double judge = viz_judge_prob(v, r);
    fprintf(csv, "%s,%d,%.6g,%.6g,%.6g,%.6g,%s,%d,", name, r / v->n_targets, x->score,
            x->logit, x->prob, x->margin, top, x->first_top_step);
    if (judge >= 0)
        fprintf(csv, "%.6g", judge);
    fputc('\n', csv);
    fprintf(json, "    {\"target\": ");
    cli_json_string(json, name);
    fprintf(json, ", \"seed\": %d", r / v->n_targets);
    json_number(json, "score", x->score);
    json_number(json, "logit", x->logit);
    json_number(json, "prob", x->prob);
    json_number(json, "margin", x->margin);
    fprintf(json, ", \"top_class\": ");
    cli_json_string(json, top);
    fprintf(json, ", \"first_top_step\": %d", x->first_top_step);
    if (judge >= 0)
        fprintf(json, ", \"judge_prob\": %.6g", judge);
    fprintf(json, "}%s\n", r + 1 < v->rows ? "," : "");
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
        return MV_EXIT_FAIL;
    }
    fprintf(c, "target,seed,score,logit,prob,margin,top_class,first_top_step,judge_prob\n");
    fprintf(j, "{\n  \"model\": ");
    cli_json_string(j, v->o->model_path);
    if (v->judge) {
        fprintf(j, ",\n  \"judge\": ");
        cli_json_string(j, v->o->judge_path);
    }
    fprintf(j, ",\n  \"settings\": ");
    cli_json_string(j, v->flags);
    fprintf(j, ",\n  \"images\": [\n");
    for (int r = 0; r < v->rows; r++) report_row(v, r, c, j);
    fprintf(j, "  ]\n}\n");
    fclose(c);
    fclose(j);
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s/report.csv", v->o->out);
    if (mv_write_file_atomic(path, csv, csv_size)) rc = MV_EXIT_FAIL;
    snprintf(path, sizeof path, "%s/report.json", v->o->out);
    if (!rc && mv_write_file_atomic(path, json, json_size)) rc = MV_EXIT_FAIL;
    if (rc)
        cli_error("visualize", "%s", mv_last_error());
    free(csv);
    free(json);
    return rc;
}

int viz_write_outputs(const viz_output *v)
{
    cli_ensure_dir(v->o->out);
    /* The page last: it links every other file, and a run that failed before it has none. */
    const int failed = write_images(v) || write_grid(v) || (v->n_frames && write_frames(v)) ||
                       (v->n_frames && v->o->gif && viz_write_gifs(v)) || write_report(v) ||
                       (!v->o->no_html && viz_write_page(v));
    return failed ? MV_EXIT_FAIL : MV_EXIT_OK;
}
