/* cli_viz_watch.c: what `mlpviz visualize` records while the ascent runs: the frames it
 * saves, the objective per step for the page's curve, and on a terminal the progress line
 * with the first image drawn above it in Unicode half-blocks, redrawn in place. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_viz.h"

enum {
    BAR_EVERY = 10,      /* steps between redraws of the progress line */
    TRACE_POINTS = 200,  /* points of the objective's curve, at most (a page stays small) */
    GIF_FRAMES = 40,     /* frames of --gif without --frames */
    PREVIEW_COLUMNS = 48 /* widest preview, in characters: a larger image is subsampled */
};

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

static void on_frame(int step, const float *images, int n, void *user)
{
    viz_watch *w = user;
    if (w->save_every && step % w->save_every == 0 && w->count < w->capacity) {
        memcpy(w->frames + (size_t)w->count * w->rows * w->D, images,
               sizeof(float) * w->D * (size_t)n);
        w->steps[w->count++] = step;
    }
    if (w->preview)
        memcpy(w->preview, images, sizeof(float) * w->D);
}

static void on_scores(int step, const double *scores, int n, void *user)
{
    viz_watch *w = user;
    if (step % w->trace_every == 0 && w->n_trace < w->trace_capacity) {
        memcpy(w->trace + (size_t)w->n_trace * w->rows, scores, sizeof *scores * (size_t)n);
        w->trace_steps[w->n_trace++] = step;
    }
}

/* 0..255 of channel c of pixel (x, y) of the preview (white below the image). */
static int preview_value(const viz_watch *w, int x, int y, int c)
{
    if (y >= w->height)
        return 255;
    const float v = w->preview[((size_t)y * w->width + x) * w->channels +
                               (w->channels == 3 ? c : 0)];
    return (int)(255 * (v < 0 ? 0 : v > 1 ? 1 : v) + 0.5f);
}

/* The preview above the progress line: each character is two pixels, the upper one its
 * foreground (U+2580, upper half block) and the lower one its background, in 24-bit colour.
 * Drawn over the previous preview: the cursor goes back up first. */
static void draw_preview(viz_watch *w)
{
    const int stride = (w->width + PREVIEW_COLUMNS - 1) / PREVIEW_COLUMNS;
    if (w->preview_lines)
        fprintf(stderr, "\033[%dA", w->preview_lines);
    int lines = 0;
    for (int y = 0; y < w->height; y += 2 * stride, lines++) {
        fputc('\r', stderr);
        for (int x = 0; x < w->width; x += stride)
            fprintf(stderr, "\033[38;2;%d;%d;%dm\033[48;2;%d;%d;%dm\xe2\x96\x80",
                    preview_value(w, x, y, 0), preview_value(w, x, y, 1),
                    preview_value(w, x, y, 2), preview_value(w, x, y + stride, 0),
                    preview_value(w, x, y + stride, 1), preview_value(w, x, y + stride, 2));
        fputs("\033[0m\033[K\n", stderr);
    }
    w->preview_lines = lines;
}

static void on_step(int step, int steps, void *user)
{
    viz_watch *w = user;
    if (!w->bar || (step % BAR_EVERY && step != steps))
        return;
    if (w->preview)
        draw_preview(w);
    const int width = 30, done = steps ? (int)((long)width * step / steps) : width;
    fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d steps", done, "==============================",
            width - done, "", step, steps);
    if (step == steps)
        fputc('\n', stderr);
}

/* Buffers for the frames, the trace and the preview; returns 0 or -1 (out of memory). */
static int allocate(viz_watch *w, const viz_options *o)
{
    const int steps = o->viz.steps;
    if (w->save_every) {
        w->capacity = steps / w->save_every + 1;
        w->frames = malloc(sizeof *w->frames * w->D * (size_t)w->rows * (size_t)w->capacity);
        w->steps = malloc(sizeof *w->steps * (size_t)w->capacity);
        if (!w->frames || !w->steps)
            return -1;
    }
    if (!o->no_html) {
        w->trace_every = steps > TRACE_POINTS ? (steps + TRACE_POINTS - 1) / TRACE_POINTS : 1;
        w->trace_capacity = steps / w->trace_every + 1;
        w->trace = malloc(sizeof *w->trace * (size_t)w->trace_capacity * w->rows);
        w->trace_steps = malloc(sizeof *w->trace_steps * (size_t)w->trace_capacity);
        if (!w->trace || !w->trace_steps)
            return -1;
    }
    if (w->bar && !(w->preview = calloc(w->D, sizeof *w->preview)))
        return -1;
    return 0;
}

int viz_watch_start(viz_watch *w, viz_options *o, const mv_model *m, int rows)
{
    if (o->gif && !o->frames)
        o->frames = o->viz.steps > GIF_FRAMES ? o->viz.steps / GIF_FRAMES : 1;
    *w = (viz_watch){.rows = rows, .D = (size_t)m->width * m->height * m->channels,
                     .save_every = o->frames,
                     /* in a job, one progress line: rank 0's, which has rows */
                     .bar = !o->quiet && isatty(STDERR_FILENO) && mv_dist_rank() == 0,
                     .width = m->width, .height = m->height, .channels = m->channels};
    if (allocate(w, o)) {
        cli_error("visualize", "out of memory for %d frames of %d images", w->capacity, rows);
        return MV_EXIT_FAIL;
    }
    /* The preview needs images more often than frames may be saved: the library calls
     * on_frame at a common divisor, and only the saved steps are kept. */
    const int every = w->preview ? (o->frames ? gcd(o->frames, BAR_EVERY) : BAR_EVERY) : o->frames;
    if (every) {
        o->viz.frame_every = every;
        o->viz.on_frame = on_frame;
    }
    o->viz.on_scores = w->trace ? on_scores : NULL;
    o->viz.on_step = on_step;
    o->viz.user = w;
    return MV_EXIT_OK;
}

void viz_watch_free(viz_watch *w)
{
    free(w->frames);
    free(w->steps);
    free(w->trace);
    free(w->trace_steps);
    free(w->preview);
}
