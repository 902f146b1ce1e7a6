/* cli_visualize.c: `mlpviz visualize`, one synthesized image per class or unit (and seed),
 * from a preset or from settings given one by one, optionally judged by a second model. */
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "cli_viz.h"

static const char *const visualize_help =
    "usage: mlpviz visualize MODEL [OPTIONS]\n"
    "\n"
    "Synthesizes, for each class (or hidden unit), the image that maximizes its score by\n"
    "gradient ascent on the pixels, all targets in one batch. Writes DIR/<class>.png\n"
    "(DIR/<class>-<seed>.png with --seeds), DIR/grid.png with the names drawn on it,\n"
    "DIR/report.csv and report.json (score, probability, margin, judge's probability), and\n"
    "DIR/index.html, a page that shows them all (open it in a browser).\n"
    "\n"
    "targets\n"
    "  -c, --class LIST        all (default), or class indices/names separated by commas\n"
    "      --unit L:J[,J...]   hidden units J of hidden layer L (0 = the first) instead\n"
    "  -k, --seeds K           images per target, each with its own jitter and noise or\n"
    "                          class-sample start (default 1)\n"
    "settings (a preset first, then any of these on top; the defaults shown are those under\n"
    "no preset: report.json lists every setting a run used, and README each preset's)\n"
    "  -p, --preset P          default, diverse, prior, plain, yosinski1..4, or a file of flags\n"
    "                          such as the preset.txt that --search writes\n"
    "  -n, --steps N           ascent steps (default 300)\n"
    "      --objective O       logit (default), prob, logprob or margin\n"
    "      --l2 L              subtract L |x|^2 (network units) from the objective\n"
    "      --tv T              subtract T times the pixels' total variation (default 0)\n"
    "      --step R            normalized (default: lr / mean|d|), fixed, progress, or l2\n"
    "                          (every step moves the image by lr in L2)\n"
    "      --lr X              step size in pixel units (default 0.02; the cap for progress)\n"
    "      --progress X        progress rule: wanted rise of the objective per step (2)\n"
    "      --optimizer O       plain (default), momentum or adam, on the pixels\n"
    "      --momentum X        momentum, or adam's beta1 (default 0.9)\n"
    "      --decay D           pull towards the reference by D per step (default 0.002)\n"
    "      --decay-to R        start (default), mean (the mean pixel, as Yosinski's decay),\n"
    "                          or prior: the start if drawn from the data, else the mean\n"
    "      --blur-every N      blur the image every N steps (default 4; 0 = never)\n"
    "      --blur-sigma S      (default 0.5 pixels)\n"
    "      --grad-blur S       blur the gradient before each step (default 1; 0 = off)\n"
    "      --smooth-samples K  average the gradient over K noisy copies of the image\n"
    "      --smooth-sigma S    their noise, sd in pixel units (default 0.5)\n"
    "      --jitter J          random shifts of up to J pixels per step (default 1)\n"
    "      --clamp, --no-clamp keep pixels in [0, 1] after every step (default on)\n"
    "      --norm-pct P        set pixels of norm below the P-th percentile to the mean\n"
    "      --contrib-pct P     likewise for a small contribution |x . gradient|\n"
    "      --octaves N         start at 1/scale^(N-1) of the resolution (default 1)\n"
    "      --octave-scale S    (default 1.5)\n"
    "      --init I            gray (default), noise, mean, class-mean, class-sample,\n"
    "                          class-mixture, or an image file\n"
    "      --temperature T     spread of class-sample starts (default 1)\n"
    "      --init-noise S      add Gaussian noise of sd S to every start (default 0)\n"
    "      --step-noise S      add noise of sd S after every step, annealed to 0 (default 0)\n"
    "      --diversity D       push the seeds of a class apart: minus D times the mean cosine\n"
    "                          similarity of their last hidden features (default 0)\n"
    "      --stop-prob P       leave an image alone once the model gives its class P\n"
    "                          (default 0: never)\n"
    "  -s, --seed N            (default 1)\n";
/* Two strings: one would pass the 4095 characters C compilers must support. */
static const char *const visualize_help_rest =
    "search and judging\n"
    "  -j, --judge MODEL       a second model scores every image (judge_prob in the report)\n"
    "      --search N          try N settings (the given one first), keep the best: every\n"
    "                          image >= 0.99 for its model, then the judge's mean, then its\n"
    "                          own; writes search.csv, search.png, preset.txt\n"
    "output\n"
    "  -o, --out DIR           (default out)\n"
    "      --scale S           upscale the written images S times (default 4)\n"
    "      --frames N          also save every N-th step: DIR/frames/, DIR/filmstrip.png\n"
    "      --gif               also DIR/<target>.gif and DIR/grid.gif, the ascent looping\n"
    "                          (frames every steps/40 unless --frames says)\n"
    "      --gif-scale S       their pixels as S x S blocks (default 2)\n"
    "      --no-html           no DIR/index.html (the page that shows all of the above)\n"
    "  -t, --threads N         OpenMP threads (the images do not depend on it)\n"
    "  -q, --quiet             no progress bar\n"
    "  -h, --help\n";

static const struct option viz_longopts[] = {
    {"class", required_argument, 0, 'c'},        {"unit", required_argument, 0, VIZ_OPT_UNIT},
    {"seeds", required_argument, 0, 'k'},        {"preset", required_argument, 0, 'p'},
    {"steps", required_argument, 0, 'n'},        {"objective", required_argument, 0, VIZ_OPT_OBJECTIVE},
    {"l2", required_argument, 0, VIZ_OPT_L2},    {"step", required_argument, 0, VIZ_OPT_STEP},
    {"tv", required_argument, 0, VIZ_OPT_TV},
    {"smooth-samples", required_argument, 0, VIZ_OPT_SMOOTH_SAMPLES},
    {"smooth-sigma", required_argument, 0, VIZ_OPT_SMOOTH_SIGMA},
    {"step-noise", required_argument, 0, VIZ_OPT_STEP_NOISE},    {"init-noise", required_argument, 0, VIZ_OPT_INIT_NOISE},
    {"diversity", required_argument, 0, VIZ_OPT_DIVERSITY},      {"stop-prob", required_argument, 0, VIZ_OPT_STOP_PROB},
    {"lr", required_argument, 0, VIZ_OPT_LR},    {"progress", required_argument, 0, VIZ_OPT_PROGRESS},
    {"no-normalize", no_argument, 0, VIZ_OPT_NO_NORMALIZE},
    {"optimizer", required_argument, 0, VIZ_OPT_OPTIMIZER},
    {"momentum", required_argument, 0, VIZ_OPT_MOMENTUM},
    {"decay", required_argument, 0, VIZ_OPT_DECAY}, {"decay-to", required_argument, 0, VIZ_OPT_DECAY_TO},
    {"blur-every", required_argument, 0, VIZ_OPT_BLUR_EVERY},
    {"blur-sigma", required_argument, 0, VIZ_OPT_BLUR_SIGMA},
    {"grad-blur", required_argument, 0, VIZ_OPT_GRAD_BLUR},
    {"jitter", required_argument, 0, VIZ_OPT_JITTER}, {"clamp", no_argument, 0, VIZ_OPT_CLAMP},
    {"no-clamp", no_argument, 0, VIZ_OPT_NO_CLAMP},
    {"norm-pct", required_argument, 0, VIZ_OPT_NORM_PCT},
    {"contrib-pct", required_argument, 0, VIZ_OPT_CONTRIB_PCT},
    {"octaves", required_argument, 0, VIZ_OPT_OCTAVES},
    {"octave-scale", required_argument, 0, VIZ_OPT_OCTAVE_SCALE},
    {"init", required_argument, 0, VIZ_OPT_INIT},
    {"temperature", required_argument, 0, VIZ_OPT_TEMPERATURE},
    {"seed", required_argument, 0, 's'},         {"judge", required_argument, 0, 'j'},
    {"search", required_argument, 0, VIZ_OPT_SEARCH}, {"out", required_argument, 0, 'o'},
    {"scale", required_argument, 0, VIZ_OPT_SCALE}, {"frames", required_argument, 0, VIZ_OPT_FRAMES},
    {"gif", no_argument, 0, VIZ_OPT_GIF}, {"gif-scale", required_argument, 0, VIZ_OPT_GIF_SCALE},        {"no-html", no_argument, 0, VIZ_OPT_NO_HTML},
    {"threads", required_argument, 0, 't'},      {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
static const char viz_shortopts[] = "c:k:p:n:s:j:o:t:qh";

/* Same codes for the short forms of settings. */
static int setting_code(int opt) { return opt == 'n' ? VIZ_OPT_STEPS : opt == 's' ? VIZ_OPT_SEED : opt; }

/* The numeric settings: one row each (code, name, bounds, field of mv_viz_config). */
#define VIZ_NUMBER(code, name, lo, hi, field) \
    CLI_NUMBER(code, name, lo, hi, mv_viz_config, field)
static const cli_number_option viz_numbers[] = {
    VIZ_NUMBER(VIZ_OPT_STEPS, "steps", 0, 1000000, steps),
    VIZ_NUMBER(VIZ_OPT_SEED, "seed", 0, 0, seed),
    VIZ_NUMBER(VIZ_OPT_L2, "l2", 0, 1e6, l2),
    VIZ_NUMBER(VIZ_OPT_SMOOTH_SAMPLES, "smooth-samples", 0, 256, smooth_samples),
    VIZ_NUMBER(VIZ_OPT_SMOOTH_SIGMA, "smooth-sigma", 0, 10, smooth_sigma),
    VIZ_NUMBER(VIZ_OPT_STEP_NOISE, "step-noise", 0, 1, step_noise),
    VIZ_NUMBER(VIZ_OPT_TV, "tv", 0, 1e6, tv),
    VIZ_NUMBER(VIZ_OPT_DIVERSITY, "diversity", 0, 1e6, diversity),
    VIZ_NUMBER(VIZ_OPT_STOP_PROB, "stop-prob", 0, 1, stop_prob),
    VIZ_NUMBER(VIZ_OPT_INIT_NOISE, "init-noise", 0, 1, init_noise),
    VIZ_NUMBER(VIZ_OPT_LR, "lr", 0, 1e9, lr),
    VIZ_NUMBER(VIZ_OPT_PROGRESS, "progress", 1e-9, 1e9, progress),
    VIZ_NUMBER(VIZ_OPT_MOMENTUM, "momentum", 0, 0.9999, momentum),
    VIZ_NUMBER(VIZ_OPT_DECAY, "decay", 0, 0.999, decay),
    VIZ_NUMBER(VIZ_OPT_BLUR_EVERY, "blur-every", 0, 1000000, blur_every),
    VIZ_NUMBER(VIZ_OPT_BLUR_SIGMA, "blur-sigma", 0, 32, blur_sigma),
    VIZ_NUMBER(VIZ_OPT_GRAD_BLUR, "grad-blur", 0, 32, grad_blur),
    VIZ_NUMBER(VIZ_OPT_JITTER, "jitter", 0, 64, jitter),
    VIZ_NUMBER(VIZ_OPT_NORM_PCT, "norm-pct", 0, 99.9, norm_pct),
    VIZ_NUMBER(VIZ_OPT_CONTRIB_PCT, "contrib-pct", 0, 99.9, contrib_pct),
    VIZ_NUMBER(VIZ_OPT_OCTAVES, "octaves", 1, 8, octaves),
    VIZ_NUMBER(VIZ_OPT_OCTAVE_SCALE, "octave-scale", 1.01, 8, octave_scale),
    VIZ_NUMBER(VIZ_OPT_TEMPERATURE, "temperature", 0, 100, temperature),
};

int viz_parse_setting(int opt, const char *arg, mv_viz_config *v)
{
    const char *cmd = "visualize";
    const int code = setting_code(opt);
    const int rc = cli_parse_number_option(cmd, CLI_TABLE(viz_numbers), code, arg, v);
    if (rc != CLI_NOT_IN_TABLE)
        return rc;
    switch (code) {
    case VIZ_OPT_OBJECTIVE:
        if (!strcmp(arg, "unit")) {
            cli_error(cmd, "--objective unit: use --unit L:J");
            return MV_EXIT_USAGE;
        }
        return cli_check_value(cmd, "objective", mv_viz_objective_parse(&v->objective, arg));
    case VIZ_OPT_STEP: return cli_check_value(cmd, "step", mv_viz_step_parse(&v->step, arg));
    case VIZ_OPT_NO_NORMALIZE: v->step = MV_STEP_FIXED; return MV_EXIT_OK;
    case VIZ_OPT_OPTIMIZER:
        return cli_check_value(cmd, "optimizer", mv_viz_optimizer_parse(&v->optimizer, arg));
    case VIZ_OPT_DECAY_TO:
        return cli_check_value(cmd, "decay-to", mv_viz_decay_to_parse(&v->decay_to, arg));
    case VIZ_OPT_CLAMP: v->clamp = 1; return MV_EXIT_OK;
    case VIZ_OPT_NO_CLAMP: v->clamp = 0; return MV_EXIT_OK;
    case VIZ_OPT_INIT:
        if (!strcmp(arg, "image")) {
            cli_error(cmd, "--init: give the image file itself");
            return MV_EXIT_USAGE;
        }
        return cli_check_value(cmd, "init", mv_viz_init_parse(&v->init, arg));
    default: return CLI_NOT_IN_TABLE;
    }
}

void viz_config_flags(const mv_viz_config *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "--steps %d --objective %s --l2 %.17g --step %s --lr %.17g --progress %.17g "
             "--optimizer %s --momentum %.17g --decay %.17g --decay-to %s --blur-every %d "
             "--blur-sigma %.17g --grad-blur %.17g --jitter %d --%s --norm-pct %.17g "
             "--contrib-pct %.17g --octaves %d --octave-scale %.17g --init %s --temperature %.17g "
             "--seed %llu --tv %.17g --init-noise %.17g --smooth-samples %d --smooth-sigma %.17g --step-noise %.17g "
             "--diversity %.17g --stop-prob %.17g",
             c->steps, mv_viz_objective_name(c->objective == MV_OBJ_HIDDEN_PRE ? MV_OBJ_LOGIT : c->objective),
             c->l2, mv_viz_step_name(c->step), c->lr, c->progress,
             mv_viz_optimizer_name(c->optimizer), c->momentum, c->decay,
             mv_viz_decay_to_name(c->decay_to), c->blur_every, c->blur_sigma, c->grad_blur,
             c->jitter, c->clamp ? "clamp" : "no-clamp", c->norm_pct, c->contrib_pct, c->octaves,
             c->octave_scale, mv_viz_init_name(c->init == MV_INIT_IMAGE ? MV_INIT_GRAY : c->init),
             c->temperature, (unsigned long long)c->seed, c->tv, c->init_noise,
             c->smooth_samples, c->smooth_sigma, c->step_noise, c->diversity, c->stop_prob);
}

/* Reads a preset file of settings flags (whitespace-separated, '#' starts a comment). */
static int load_preset_file(const char *path, mv_viz_config *v)
{
    FILE *f = fopen(path, "r");
    char text[8192];
    size_t size = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (!f || ferror(f) || size == sizeof text - 1) {
        cli_error("visualize", "--preset %s: %s", path,
                  !f ? "neither a preset name (default, diverse, prior, plain, yosinski1..4) nor a readable "
                       "file" : "unreadable or longer than 8 KiB");
        if (f) fclose(f);
        return MV_EXIT_USAGE;
    }
    fclose(f);
    text[size] = 0;
    char *args[512];
    int argc = 0;
    args[argc++] = "preset";
    for (char *lines = NULL, *line = strtok_r(text, "\n", &lines); line;
         line = strtok_r(NULL, "\n", &lines)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok && argc < 511;
             tok = strtok_r(NULL, " \t\r", &save))
            args[argc++] = tok;
    }
    args[argc] = NULL;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, args, "n:s:", viz_longopts, NULL)) != -1;) {
        const int rc = viz_parse_setting(opt, optarg, v);
        if (rc == CLI_NOT_IN_TABLE) {
            cli_error("visualize", "--preset %s: '%s' is not a setting", path, args[optind - 1]);
            return MV_EXIT_USAGE;
        }
        if (rc)
            return rc;
    }
    if (optind < argc) {
        cli_error("visualize", "--preset %s: unexpected '%s'", path, args[optind]);
        return MV_EXIT_USAGE;
    }
    return 0;
}

/* The preset goes first whatever its place, so that other flags refine it. */
static int apply_preset(int argc, char **argv, mv_viz_config *v)
{
    /* A first getopt pass that looks only at -p, so that every spelling getopt accepts
     * (-qp X, --pre=X) counts; the second pass reads everything else. */
    /* It runs on a copy of argv: getopt_long moves the operands behind the options, and the
     * second pass must see the command line as typed (or a trailing "--out" would take the
     * model path, moved after it, as its value). */
    const char *preset = "default";
    char **copy = malloc(sizeof *copy * ((size_t)argc + 1));
    if (!copy) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    memcpy(copy, argv, sizeof *copy * ((size_t)argc + 1));
    opterr = 0;
    optind = 0;
    for (int opt; (opt = getopt_long(argc, copy, viz_shortopts, viz_longopts, NULL)) != -1;)
        if (opt == 'p')
            preset = optarg;
    free(copy);
    for (int k = 0; mv_viz_preset_names[k]; k++)
        if (!strcmp(preset, mv_viz_preset_names[k]))
            return mv_viz_preset(v, preset) ? MV_EXIT_USAGE : 0;
    mv_viz_defaults(v);
    return load_preset_file(preset, v);
}

/* The numeric options that are not settings (code, name, bounds, field of viz_options). */
#define VIZ_RUN_NUMBER(code, name, lo, hi, field) \
    CLI_NUMBER(code, name, lo, hi, viz_options, field)
static const cli_number_option viz_run_numbers[] = {
    VIZ_RUN_NUMBER('k', "seeds", 1, 1000, seeds),
    VIZ_RUN_NUMBER(VIZ_OPT_SEARCH, "search", 1, 10000, search),
    VIZ_RUN_NUMBER(VIZ_OPT_SCALE, "scale", 1, 64, scale),
    VIZ_RUN_NUMBER(VIZ_OPT_GIF_SCALE, "gif-scale", 1, 64, gif_scale),
    VIZ_RUN_NUMBER(VIZ_OPT_FRAMES, "frames", 1, 1000000, frames),
    VIZ_RUN_NUMBER('t', "threads", 1, 1024, threads),
};

static int parse_viz_args(int argc, char **argv, viz_options *o)
{
    const char *cmd = "visualize";
    int rc = apply_preset(argc, argv, &o->viz);
    if (rc)
        return rc;
    opterr = 0;
    optind = 0;
    for (int opt; (opt = getopt_long(argc, argv, viz_shortopts, viz_longopts, NULL)) != -1;) {
        if (opt == VIZ_OPT_INIT) {
            o->init = optarg; /* a name, or an image file */
            continue;
        }
        if ((rc = viz_parse_setting(opt, optarg, &o->viz)) == CLI_NOT_IN_TABLE)
            rc = cli_parse_number_option(cmd, CLI_TABLE(viz_run_numbers), opt, optarg, o);
        if (rc != CLI_NOT_IN_TABLE) {
            if (rc)
                return rc;
            continue;
        }
        switch (opt) {
        case 'c': o->classes = optarg; break;
        case VIZ_OPT_UNIT: o->units = optarg; break;
        case 'p': break; /* applied first */
        case 'j': o->judge_path = optarg; break;
        case 'o': o->out = optarg; break;
        case 'q': o->quiet = 1; break;
        case VIZ_OPT_GIF: o->gif = 1; break;
        case VIZ_OPT_NO_HTML: o->no_html = 1; break;
        case 'h':
            if (mv_dist_rank() == 0) { /* under mpirun, once */
                fputs(visualize_help, stdout);
                fputs(visualize_help_rest, stdout);
            }
            return CLI_HELP_SHOWN;
        default: return cli_bad_option(cmd, opt, argv[optind - 1]);
        }
    }
    if (o->threads)
        omp_set_num_threads(o->threads);
    if (argc - optind != 1) {
        cli_error(cmd, "give one MODEL (see mlpviz visualize --help)");
        return MV_EXIT_USAGE;
    }
    o->model_path = argv[optind];
    return 0;
}

enum { MAX_TARGETS = 4096 }; /* classes or units of one run */

/* Class indices of "all" or "3,coat,..."; *count of them (targets: [MAX_TARGETS]). */
static int parse_classes(const mv_model *m, const char *text, int *targets, int *count)
{
    *count = 0;
    if (m->n_classes > MAX_TARGETS) {
        cli_error("visualize", "too many classes");
        return MV_EXIT_FAIL;
    }
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
            return MV_EXIT_USAGE;
        }
        targets[(*count)++] = found;
    }
    return 0;
}

/* "L:J[,J...]": units of hidden layer L. */
static int parse_units(const mv_model *m, const char *text, int *layer, int *targets, int *count,
                       int max)
{
    const mv_arch *arch = &m->net->arch;
    char *end;
    const long l = strtol(text, &end, 10);
    if (end == text || *end != ':' || l < 0 || l > arch->n_layers - 2) {
        cli_error("visualize", "--unit '%s': expected L:J with L a hidden layer 0..%d", text,
                  arch->n_layers - 2);
        return MV_EXIT_USAGE;
    }
    *layer = (int)l;
    *count = 0;
    for (const char *p = end + 1;;) {
        const long j = strtol(p, &end, 10);
        if (end == p || j < 0 || j >= arch->widths[l + 1] || (*end && *end != ',') || *count >= max) {
            cli_error("visualize", "--unit '%s': units of layer %ld are 0..%d", text, l,
                      arch->widths[l + 1] - 1);
            return MV_EXIT_USAGE;
        }
        targets[(*count)++] = (int)j;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* A class start that a preset chose but cannot apply falls back to gray, with a note. */
static void resolve_class_start(viz_options *o, const mv_model *m, int unit_layer)
{
    const int class_start = o->viz.init == MV_INIT_CLASS_MEAN || o->viz.init == MV_INIT_CLASS_SAMPLE;
    if (class_start && !o->init && (!mv_model_has_class_stats(m, NULL) || unit_layer >= 0)) {
        if (mv_dist_rank() == 0) /* every process falls back; one says so */
            fprintf(stderr, "mlpviz visualize: %s: %s; starting from gray\n", o->model_path,
                    unit_layer >= 0 ? "units have no class start"
                                    : "no class statistics for a class start");
        o->viz.init = MV_INIT_GRAY;
    }
}

/* --init: a start's name, or an image file loaded into *image (owned by the caller). */
static int resolve_init(viz_options *o, const mv_model *m, float **image)
{
    *image = NULL;
    if (!o->init || mv_viz_init_parse(&o->viz.init, o->init) == MV_OK)
        return 0;
    const size_t D = (size_t)m->width * m->height * m->channels;
    o->viz.init = MV_INIT_IMAGE;
    if (!(*image = malloc(sizeof **image * D)) ||
        mv_image_load(o->init, m->channels, m->width, m->height, 0, *image)) {
        cli_error("visualize", "--init: %s", *image ? mv_last_error() : "out of memory");
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* Collective: *buffer [slices][this process's rows][item] becomes [slices][rows][item], every
 * process's rows in their places. */
static int gather_buffer(const viz_share *s, void **buffer, size_t item, int slices)
{
    void *all = malloc(item * (size_t)s->n * (size_t)slices + 1);
    if (!all)
        cli_error("visualize", "out of memory to gather %d frames of %d images", slices, s->n);
    int rc = cli_job_agree("visualize", all ? MV_EXIT_OK : MV_EXIT_FAIL);
    if (!rc)
        rc = viz_share_gather(s, *buffer, item, slices, all);
    free(rc ? all : *buffer);
    if (!rc)
        *buffer = all;
    return rc;
}

/* Collective: the frames and the objective per step that each process recorded for its rows,
 * put together as one process records them for all. Rank 0 always has rows: its counts are
 * the run's. */
static int gather_watch(const viz_share *s, viz_watch *w)
{
    int counts[2] = {w->count, w->n_trace};
    int rc = MV_EXIT_OK;
    if (mv_dist_broadcast(counts, sizeof counts, 0)) {
        cli_error("visualize", "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    rc = cli_job_agree("visualize", rc);
    if (!rc && w->frames)
        rc = gather_buffer(s, (void **)&w->frames, sizeof *w->frames * w->D, counts[0]);
    if (!rc && w->trace)
        rc = gather_buffer(s, (void **)&w->trace, sizeof *w->trace, counts[1]);
    w->count = counts[0];
    w->n_trace = counts[1];
    w->rows = s->n;
    return rc;
}

/* This process's share of the rows (all of them alone), computed as the whole batch computes
 * them; then every row's image, result, frames and trace, gathered on every process. */
static int run_ascent(viz_options *o, const mv_model *m, viz_output *v, float *images,
                      mv_viz_result *results, viz_watch *w, const float *init)
{
    const size_t D = (size_t)m->width * m->height * m->channels;
    viz_share s = {0};
    int rc = viz_share_rows(&s, v->targets, v->rows, o->viz.diversity > 0) ? MV_EXIT_FAIL : 0;
    const int n = rc ? 0 : s.count[mv_dist_rank()];
    /* a process without rows records nothing: buffers of one row keep the watch simple */
    float *mine = malloc(sizeof *mine * D * (size_t)(n ? n : 1));
    mv_viz_result *my_results = malloc(sizeof *my_results * (size_t)(n ? n : 1));
    if (rc || !mine || !my_results) {
        cli_error("visualize", "out of memory for %d images", v->rows);
        rc = MV_EXIT_FAIL;
    }
    if (!rc)
        rc = viz_watch_start(w, o, m, n ? n : 1);
    const int *my_rows = rc ? NULL : s.order + s.first[mv_dist_rank()];
    if (!rc && n && mv_visualize_rows(m, &o->viz, v->targets, v->rows, my_rows, n, init, mine,
                                      my_results)) {
        cli_error("visualize", "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    rc = cli_job_agree("visualize", rc);
    if (!rc)
        rc = viz_share_gather(&s, mine, sizeof *mine * D, 1, images);
    if (!rc)
        rc = viz_share_gather(&s, my_results, sizeof *my_results, 1, results);
    if (!rc)
        rc = gather_watch(&s, w);
    free(mine);
    free(my_results);
    viz_share_free(&s);
    return rc;
}

static void print_summary(const viz_output *v)
{
    for (int r = 0; r < v->rows; r++) {
        const mv_viz_result *x = &v->results[r];
        char name[64];
        printf("%-14s seed %d  score %9.4f  prob %.4f  top %-12s from step %4d",
               viz_target_name(v, r, name, sizeof name), r / v->n_targets, x->score, x->prob,
               v->m->class_names[x->top_class], x->first_top_step);
        if (v->judge)
            printf("  judge %.4f", viz_judge_prob(v, r));
        putchar('\n');
    }
    if (v->judge && v->unit_layer < 0) {
        double sum = 0;
        int recognized = 0;
        for (int r = 0; r < v->rows; r++) {
            const float *p = v->judge_probs + (size_t)r * v->judge->n_classes;
            recognized += mv_index_of_max(p, v->judge->n_classes) == v->targets[r % v->n_targets];
            sum += viz_judge_prob(v, r);
        }
        printf("judge %s: recognizes %d of %d, mean probability %.4f\n", v->o->judge_path,
               recognized, v->rows, sum / v->rows);
    }
    printf("images, grid.png and report.csv/json written to %s/\n", v->o->out);
    if (!v->o->no_html)
        printf("the page: %s/index.html\n", v->o->out);
}

/* The judge must see the same kind of image with the same class names. */
static int check_judge(const mv_model *m, const mv_model *judge, const char *path)
{
    if (judge->width != m->width || judge->height != m->height || judge->channels != m->channels) {
        cli_error("visualize", "--judge %s: takes %dx%dx%d images, the model %dx%dx%d", path,
                  judge->width, judge->height, judge->channels, m->width, m->height, m->channels);
        return MV_EXIT_FAIL;
    }
    for (int k = 0; k < m->n_classes; k++)
        if (judge->n_classes != m->n_classes || strcmp(judge->class_names[k], m->class_names[k])) {
            cli_error("visualize", "--judge %s: its classes differ from the model's", path);
            return MV_EXIT_FAIL;
        }
    return 0;
}

/* The PNG tEXt provenance in text[size]: the seed, the model file's stored CRC (which names
 * the model that made the images) and the command line. */
static void provenance_text(const viz_options *o, const mv_model *m, int argc, char **argv,
                            char *text, size_t size)
{
    int at = snprintf(text, size, "seed=%llu model_crc=%08x command=mlpviz",
                      (unsigned long long)o->viz.seed, (unsigned)m->file.crc);
    for (int i = 0; i < argc && at < (int)size; i++)
        at += snprintf(text + at, size - (size_t)at, " %s", argv[i]);
}

/* The run's targets: --class, or --unit (which also sets the objective to that layer's
 * units) into targets [MAX_TARGETS], *count of them; *unit_layer is -1 for classes.
 * Returns the exit status. */
static int resolve_targets(viz_options *o, const mv_model *m, int *targets, int *count,
                           int *unit_layer)
{
    *unit_layer = -1;
    const int rc = o->units ? parse_units(m, o->units, unit_layer, targets, count, MAX_TARGETS)
                            : parse_classes(m, o->classes, targets, count);
    if (!rc && o->units) {
        o->viz.objective = MV_OBJ_HIDDEN_PRE;
        o->viz.unit_layer = *unit_layer;
    }
    return rc;
}

static int visualize_with(viz_options *o, const mv_model *m, const mv_model *judge, int argc,
                          char **argv)
{
    int targets_buf[MAX_TARGETS], n_targets, unit_layer;
    int rc = resolve_targets(o, m, targets_buf, &n_targets, &unit_layer);
    if (rc)
        return rc;
    const int rows = n_targets * o->seeds;
    const size_t D = (size_t)m->width * m->height * m->channels;
    int *targets = malloc(sizeof *targets * (size_t)rows);
    float *images = malloc(sizeof *images * D * (size_t)rows);
    mv_viz_result *results = malloc(sizeof *results * (size_t)rows);
    float *judged = judge ? malloc(sizeof *judged * (size_t)rows * judge->n_classes) : NULL;
    if (!targets || !images || !results || (judge && !judged)) {
        cli_error("visualize", "out of memory");
        rc = MV_EXIT_FAIL;
    }
    for (int r = 0; !rc && r < rows; r++) targets[r] = targets_buf[r % n_targets];
    float *init = NULL;
    if (!rc)
        rc = resolve_init(o, m, &init);
    resolve_class_start(o, m, unit_layer);
    if (!rc && o->search && o->viz.init == MV_INIT_IMAGE) {
        cli_error("visualize", "--search tries its own starts: leave out --init %s", o->init);
        rc = MV_EXIT_USAGE;
    }
    rc = cli_job_agree("visualize", rc); /* the start image may be unreadable on one process */
    if (!rc && o->search)
        rc = viz_search(o, m, judge, targets, rows, n_targets);
    char flags[1024];
    viz_config_flags(&o->viz, flags, sizeof flags);
    viz_output v = {.m = m, .judge = judge, .o = o, .targets = targets, .rows = rows,
                    .n_targets = n_targets, .unit_layer = unit_layer, .images = images,
                    .results = results, .flags = flags};
    viz_watch w = {0};
    if (!rc)
        rc = run_ascent(o, m, &v, images, results, &w, init);
    const int writer = mv_dist_rank() == 0; /* in a job, rank 0 alone judges and writes */
    if (!rc && writer && judge && mv_model_predict(judge, images, rows, judged)) {
        cli_error("visualize", "--judge %s: %s", o->judge_path, mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    v.judge_probs = judged;
    v.frames = w.frames;
    v.frame_steps = w.steps;
    v.n_frames = w.count;
    v.trace = w.trace;
    v.trace_steps = w.trace_steps;
    v.n_trace = w.n_trace;
    v.argc = argc;
    v.argv = argv;
    provenance_text(o, m, argc, argv, v.text, sizeof v.text);
    if (!rc && writer && !(rc = viz_write_outputs(&v)))
        print_summary(&v);
    free(targets);
    free(images);
    free(results);
    free(judged);
    free(init);
    viz_watch_free(&w);
    return rc;
}

static int visualize_job(int argc, char **argv)
{
    viz_options o = {.classes = "all", .out = "out", .seeds = 1, .scale = 4, .gif_scale = 2};
    mv_viz_defaults(&o.viz);
    int rc = parse_viz_args(argc, argv, &o);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    if (o.units && strcmp(o.classes, "all")) {
        cli_error("visualize", "give --class or --unit, not both");
        return MV_EXIT_USAGE;
    }
    mv_model *m = NULL, *judge = NULL;
    if (cli_load_model("visualize", o.model_path, &m))
        rc = MV_EXIT_FAIL;
    if (!rc && o.judge_path && (cli_load_other_model("visualize", o.judge_path, &judge) ||
                         check_judge(m, judge, o.judge_path)))
        rc = MV_EXIT_FAIL;
    rc = cli_job_agree("visualize", rc); /* each process reads the models itself */
    if (!rc)
        rc = visualize_with(&o, m, judge, argc, argv);
    mv_model_free(m);
    mv_model_free(judge);
    return rc;
}

/* Under mpirun every process runs this: they share the ascent (and the search), and rank 0
 * writes every file; the processes agree on each step that one of them may fail, so that the
 * job ends as one, with one message. */
int cmd_visualize(int argc, char **argv)
{
    cli_job_start();
    return cli_job_agree("visualize", visualize_job(argc, argv));
}
