/* cli_viz.h: what the parts of `mlpviz visualize` share (options, outputs, search). */
#ifndef MV_CLI_VIZ_H
#define MV_CLI_VIZ_H

#include "cli.h"

typedef struct {
    const char *model_path, *classes, *units, *init, *out, *judge_path;
    int seeds, scale, frames, search, quiet;
    int threads;              /* --threads, 0 = OpenMP's default */
    int gif;        /* --gif: DIR/<target>.gif per row and DIR/grid.gif */
    int gif_scale;  /* their pixels' size (--gif-scale; smaller than --scale: the encoding
                       costs per pixel) */
    int no_html;    /* --no-html: no DIR/index.html */
    mv_viz_config viz;
} viz_options;

/* One run's results, as the writers see them. */
typedef struct {
    const mv_model *m;
    const mv_model *judge;    /* may be NULL */
    const viz_options *o;
    const int *targets;       /* [rows]: classes, or units of unit_layer */
    int rows, n_targets;      /* rows = n_targets * seeds, target-major within a seed */
    int unit_layer;           /* -1 for class targets */
    const float *images;      /* [rows][D] */
    const mv_viz_result *results;
    const float *judge_probs; /* [rows][judge classes] or NULL */
    const float *frames;      /* [n_frames][rows][D] or NULL */
    const int *frame_steps;   /* [n_frames] */
    int n_frames;
    const double *trace;      /* [n_trace][rows] the objective during the ascent, or NULL */
    const int *trace_steps;   /* [n_trace] the step of each */
    int n_trace;
    const char *flags;        /* the settings as command-line flags */
    int argc;                 /* the command line, for the page */
    char **argv;
    char text[2048];          /* the PNG tEXt provenance */
} viz_output;

/* Row r's image file in DIR: "<target>.png", or "<target>-<seed>.png" with several seeds
 * (ext "gif" for its animation). */
void viz_image_name(const viz_output *v, int r, const char *ext, char *buf, size_t size);

/* Row r's frame file at a step, relative to DIR: "frames/<target>-<seed>-<step>.png". */
void viz_frame_name(const viz_output *v, int r, int step, char *buf, size_t size);

/* DIR/index.html: grid, a card per image, the ascent, the objective's curve, the run
 * (cli_viz_html.c). Returns the exit status. */
int viz_write_page(const viz_output *v);

/* DIR/<target>.gif per row and DIR/grid.gif from the frames. Returns the exit status. */
int viz_write_gifs(const viz_output *v);

/* What visualize watches during the ascent (cli_viz_watch.c): the saved frames, the
 * objective per step for the page, and on a terminal the progress line with a preview of the
 * first image. */
typedef struct {
    float *frames;       /* [capacity][rows][D] every o->frames steps */
    int *steps;          /* [capacity] */
    int count, capacity, rows, save_every;
    size_t D;
    double *trace;       /* [trace_capacity][rows] the objective every trace_every steps */
    int *trace_steps;
    int n_trace, trace_capacity, trace_every;
    int bar;             /* draw the progress line on stderr (a terminal, not --quiet) */
    float *preview;      /* [D] the first image at the last frame the preview saw, or NULL */
    int width, height, channels, preview_lines;
} viz_watch;

/* Prepares w for o's run of rows images of m and hooks it into o->viz (--gif without
 * --frames sets frames every steps/40). Returns the exit status (the error printed). */
int viz_watch_start(viz_watch *w, viz_options *o, const mv_model *m, int rows);
void viz_watch_free(viz_watch *w);

/* "coat", or "unit-1-17" for a unit target: the name of row r's target. */
const char *viz_target_name(const viz_output *v, int r, char *buf, size_t size);

/* The probability the judge gives row r's target class (-1 without a judge). */
double viz_judge_prob(const viz_output *v, int r);

/* Writes DIR/<target>.png per row, DIR/grid.png, DIR/report.csv and report.json, and with
 * frames DIR/frames/<target>-<seed>-<step>.png and DIR/filmstrip.png. Returns the exit status. */
int viz_write_outputs(const viz_output *v);

/* A labelled sheet, composed in memory: `rows` rows of `cols` images [rows*cols][D]
 * (row-major), with a label under each column and one left of each row (either list may be
 * NULL). Returns the RGB pixels [*H][*W][3] (malloc'd), or NULL when out of memory. */
float *viz_compose_sheet(const mv_model *m, int scale, const float *images, int rows, int cols,
                         const char *const *col_labels, const char *const *row_labels, int *W,
                         int *H);

/* The same sheet written as a PNG with the tEXt provenance. Returns the exit status. */
int viz_write_sheet(const char *path, const mv_model *m, int scale, const float *images,
                    int rows, int cols, const char *const *col_labels,
                    const char *const *row_labels, const char *text);

/* The settings as flags that `--preset FILE` reads back. */
void viz_config_flags(const mv_viz_config *c, char *buf, size_t size);

/* Parses one settings option (the ones a preset file may hold): MV_EXIT_OK, MV_EXIT_USAGE
 * on a bad value (the message printed), CLI_NOT_IN_TABLE when opt is not a setting. */
int viz_parse_setting(int opt, const char *arg, mv_viz_config *v);

/* `--search N`: tries N settings, writes DIR/search.csv, DIR/search.png and DIR/preset.txt,
 * and leaves the winner in o->viz. Returns the exit status. */
int viz_search(viz_options *o, const mv_model *m, const mv_model *judge, const int *targets,
               int rows, int n_targets);

/* How the items of a run (rows of the batch, trials of a search) are shared among the
 * processes of the job (cli_viz_ranks.c): rank r computes items order[first[r] ..
 * first[r] + count[r]), ascending; alone, every item. */
typedef struct {
    int n;
    int *order;        /* [n] the items, rank after rank */
    int *first, *count;/* [job size] */
} viz_share;

/* Shares n items in contiguous blocks. Returns 0, or -1 out of memory. */
int viz_share_items(viz_share *s, int n);
/* Shares the rows of a batch of these targets in blocks, or in blocks of targets when
 * by_target (the diversity term couples the rows of one target). Returns 0, or -1. */
int viz_share_rows(viz_share *s, const int *targets, int rows, int by_target);
void viz_share_free(viz_share *s);
/* Collective: mine holds this process's items as [slices][count[rank]][item bytes]; out
 * receives everyone's as [slices][n][item], in item order. Returns the exit status, agreed
 * by every process (cli_job_agree). */
int viz_share_gather(const viz_share *s, const void *mine, size_t item, int slices, void *out);

/* Option codes of the settings (long options only). */
enum {
    VIZ_OPT_LR = 256, VIZ_OPT_NO_NORMALIZE, VIZ_OPT_OBJECTIVE, VIZ_OPT_L2, VIZ_OPT_DECAY,
    VIZ_OPT_DECAY_TO, VIZ_OPT_BLUR_EVERY, VIZ_OPT_BLUR_SIGMA, VIZ_OPT_GRAD_BLUR, VIZ_OPT_JITTER,
    VIZ_OPT_NO_CLAMP, VIZ_OPT_STEP, VIZ_OPT_PROGRESS, VIZ_OPT_OPTIMIZER, VIZ_OPT_MOMENTUM,
    VIZ_OPT_NORM_PCT, VIZ_OPT_CONTRIB_PCT, VIZ_OPT_OCTAVES, VIZ_OPT_OCTAVE_SCALE,
    VIZ_OPT_TEMPERATURE, VIZ_OPT_STEPS, VIZ_OPT_SEED, VIZ_OPT_CLAMP, VIZ_OPT_TV,
    VIZ_OPT_INIT_NOISE, VIZ_OPT_SMOOTH_SAMPLES, VIZ_OPT_SMOOTH_SIGMA, VIZ_OPT_STEP_NOISE, VIZ_OPT_DIVERSITY, VIZ_OPT_STOP_PROB,
    /* not settings */
    VIZ_OPT_INIT, VIZ_OPT_SCALE, VIZ_OPT_PRESET, VIZ_OPT_UNIT, VIZ_OPT_FRAMES, VIZ_OPT_JUDGE,
    VIZ_OPT_SEARCH, VIZ_OPT_GIF, VIZ_OPT_GIF_SCALE, VIZ_OPT_NO_HTML
};

#endif
