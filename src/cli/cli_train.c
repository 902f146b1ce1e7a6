/* cli_train.c: `mlpviz train`. */
#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_html.h"

static const char *const train_help =
    "usage: mlpviz train --data DATA --out MODEL [OPTIONS]\n"
    "\n"
    "Trains a classifier on an image folder (DATA/<class>/<image>) or on IDX files, and\n"
    "writes MODEL atomically, with MODEL's name ending .csv for the per-epoch metrics,\n"
    ".ckpt for the checkpoint (written every epoch and on Ctrl-C) and .html for a page of\n"
    "the loss and accuracy per epoch (written at the end).\n"
    "\n"
    "data\n"
    "  -d, --data PATH        image folder, or IDX image file (optionally .gz)\n"
    "      --labels FILE      IDX label file (default: DATA with images-idx3 -> labels-idx1)\n"
    "      --names A,B,...    class names for IDX data (default 0,1,...)\n"
    "      --val DIR          validation data (default: --val-split of the training data)\n"
    "      --val-split F      fraction held out for validation (default 0.1; 0 = none)\n"
    "      --test DIR         evaluate on this data at the end (recorded in the model)\n"
    "      --size WxH         input size (default: the first image's)\n"
    "      --channels 1|3     (default 1 when every image is gray)\n"
    "      --skip-bad         skip unreadable images instead of stopping\n"
    "      --stream           read the images from disk batch by batch, a thread reading\n"
    "                         the next batch while one trains, instead of holding them in\n"
    "                         memory: for data larger than memory; the same model, bit for\n"
    "                         bit (IDX files must be uncompressed)\n"
    "network\n"
    "  -l, --layers LIST      hidden widths, e.g. 512,256 (default 256,128)\n"
    "  -a, --act NAME[,...]   hidden activation(s) (default relu; see gradcheck --help)\n"
    "optimisation\n"
    "  -e, --epochs N         (default 10)\n"
    "  -b, --batch N          (default 128)\n"
    "      --opt NAME         sgd, momentum, nesterov, adam, adamw (default adam)\n"
    "      --lr X             peak learning rate (default 1e-3)\n"
    "      --momentum X       for momentum and nesterov (default 0.9)\n"
    "      --lr-schedule S    const, step, cosine (default const)\n"
    "      --warmup E         linear warm-up over E epochs (default 0)\n"
    "      --lr-step N        step schedule: every N epochs (default 10)\n"
    "      --lr-gamma X       step schedule: multiply by X (default 0.1)\n"
    "      --min-lr X         cosine schedule: final rate (default 0)\n"
    "      --weight-decay X   (default 0; decoupled for adamw, L2 otherwise)\n"
    "      --dropout P        on hidden layers (default 0)\n"
    "      --label-smoothing E  train on targets (1-E) one-hot + E/classes (default 0)\n"
    "      --shift N          augmentation: random shifts up to N pixels (default 0)\n"
    "      --flip             augmentation: random horizontal flips\n"
    "      --keep-best        end with the weights of the best validation epoch\n"
    "      --adversarial A    none (default), fgsm, or pgd: train on worst-case inputs\n"
    "                         within an L-inf ball (robust models draw legible classes)\n"
    "      --norm N           linf (default) or l2: the ball's norm; an L2 ball of radius 1-2\n"
    "                         gives gradients that draw the classes from a gray start\n"
    "      --eps E            the ball's radius in pixel units (default 0.1 for linf, at\n"
    "                         most 1; 1.0 for l2)\n"
    "      --adv-steps K      pgd steps per batch (default 7; 1 is fgsm)\n"
    "      --adv-step-size A  per pgd step (default 2.5 eps / K)\n"
    "      --noise-aug S      add Gaussian noise of sd S (pixel units) to every training\n"
    "                         input (default 0: off)\n"
    "      --class-stats R    store each class's mean and a rank-R Gaussian, the starts of\n"
    "                         visualize --init class-mean|class-sample (default 16)\n"
    "      --class-mixture M  store M k-means components of each class (means, shares and\n"
    "                         spreads), the starts of visualize --init class-mixture\n"
    "                         (default 8; 0 = none)\n";

/* The help's second part (one string literal may hold at most 4095 characters). */
static const char *const train_help_jobs =
    "run\n"
    "  -o, --out MODEL        model file to write (required)\n"
    "  -s, --seed N           (default 1)\n"
    "  -t, --threads N        OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
    "      --grad-chunks G    sum each batch's gradient over G chunks of rows in a fixed\n"
    "                         tree (a power of two, 1..256, default 8): mpirun jobs of up\n"
    "                         to G processes give the bits of one process\n"
    "      --resume CKPT      continue an interrupted run (same command otherwise)\n"
    "      --init MODEL       fine-tune MODEL (mlpviz or ONNX): its network, input shape and\n"
    "                         normalisation; its classes must be the data's, in any order\n"
    "                         (no --layers or --act)\n"
    "  -q, --quiet            no progress output\n"
    "  -h, --help\n"
    "\n"
    "The same command gives the same model, bit for bit, whatever the thread count.\n"
    "Under mpirun (an MPI build: make MPI=1, then mpirun -np N build/mpi/bin/mlpviz train\n"
    "...) each process computes its share of every batch, rank 0 alone writes the files, and\n"
    "the model has the same bits as one process's; a checkpoint resumes on any number.\n";

/* ------------------------------------------------------------------ progress */

typedef struct {
    int quiet, tty;
    double last_print;
} progress_state;

static void format_eta(double seconds, char *out, size_t size)
{
    const long s = seconds > 0 && seconds < 1e7 ? (long)seconds : 0;
    snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* A bar redrawn in place on a terminal (at most 10 times a second); one line per epoch
 * otherwise, so that logs stay readable. */
static void on_progress(const mv_train_progress *p, void *user)
{
    progress_state *ps = user;
    if (ps->quiet)
        return;
    if (p->metrics) {
        const mv_epoch_metrics *m = p->metrics;
        fprintf(stderr, "%sepoch %d/%d  loss %.4f  acc %.4f", ps->tty ? "\r\033[K" : "",
                m->epoch, p->epochs, m->train_loss, m->train_accuracy);
        if (m->val_accuracy >= 0)
            fprintf(stderr, "  val loss %.4f  val acc %.4f", m->val_loss, m->val_accuracy);
        fprintf(stderr, "  lr %.3g  %.1fs\n", m->lr, m->seconds);
        return;
    }
    const double now = omp_get_wtime();
    if (!ps->tty || (now - ps->last_print < 0.1 && p->batch != p->batches))
        return;
    ps->last_print = now;
    char eta[32], bar[31];
    const int filled = (int)(30.0 * p->batch / p->batches);
    for (int i = 0; i < 30; i++) bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[30] = 0;
    format_eta(p->eta_seconds, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %ld/%ld  loss %.4f  acc %.4f  %.0f samples/s  "
                    "ETA %s",
            p->epoch, p->epochs, bar, p->batch, p->batches, p->loss, p->accuracy,
            p->samples_per_second, eta);
}

/* ------------------------------------------------------------------ options */

typedef struct {
    const char *data, *labels, *names, *val_dir, *test_dir, *out, *resume;
    const char *layers, *acts;
    const char *init;        /* --init MODEL: start from its network */
    int arch_given;          /* --layers or --act was given */
    double val_split;
    int threads, quiet;
    const char *adversarial; /* none, fgsm, pgd */
    int adv_settings;        /* --eps or --adv-step-size was given */
    int adv_steps;           /* --adv-steps, for pgd */
    int eps_given;           /* --eps was given (its default depends on the norm) */
    const char *adv_norm;    /* linf, l2 */
    int class_stats;         /* rank of the per-class Gaussians stored for visualization */
    int class_mixture;       /* k-means components per class stored for visualization */
    mv_load_options load;
    mv_train_config train;
} train_options;

enum {
    OPT_LABELS = 256, OPT_NAMES, OPT_VAL, OPT_VAL_SPLIT, OPT_TEST, OPT_SIZE, OPT_CHANNELS,
    OPT_SKIP_BAD, OPT_OPT, OPT_LR, OPT_MOMENTUM, OPT_SCHEDULE, OPT_WARMUP, OPT_LR_STEP,
    OPT_LR_GAMMA, OPT_MIN_LR, OPT_WD, OPT_DROPOUT, OPT_SMOOTH, OPT_SHIFT, OPT_FLIP, OPT_KEEP_BEST,
    OPT_RESUME, OPT_INIT, OPT_GRAD_CHUNKS, OPT_ADVERSARIAL, OPT_EPS, OPT_ADV_STEPS, OPT_ADV_STEP_SIZE, OPT_CLASS_STATS,
    OPT_CLASS_MIXTURE,
    OPT_NORM, OPT_NOISE_AUG, OPT_STREAM
};

static const struct option train_longopts[] = {
    {"data", required_argument, 0, 'd'},        {"labels", required_argument, 0, OPT_LABELS},
    {"names", required_argument, 0, OPT_NAMES}, {"val", required_argument, 0, OPT_VAL},
    {"val-split", required_argument, 0, OPT_VAL_SPLIT},
    {"test", required_argument, 0, OPT_TEST},   {"size", required_argument, 0, OPT_SIZE},
    {"channels", required_argument, 0, OPT_CHANNELS},
    {"skip-bad", no_argument, 0, OPT_SKIP_BAD}, {"stream", no_argument, 0, OPT_STREAM},
    {"layers", required_argument, 0, 'l'},
    {"act", required_argument, 0, 'a'},         {"epochs", required_argument, 0, 'e'},
    {"batch", required_argument, 0, 'b'},       {"opt", required_argument, 0, OPT_OPT},
    {"lr", required_argument, 0, OPT_LR},       {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"lr-schedule", required_argument, 0, OPT_SCHEDULE},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"lr-step", required_argument, 0, OPT_LR_STEP},
    {"lr-gamma", required_argument, 0, OPT_LR_GAMMA},
    {"min-lr", required_argument, 0, OPT_MIN_LR},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"dropout", required_argument, 0, OPT_DROPOUT},
    {"label-smoothing", required_argument, 0, OPT_SMOOTH},
    {"shift", required_argument, 0, OPT_SHIFT}, {"flip", no_argument, 0, OPT_FLIP},
    {"keep-best", no_argument, 0, OPT_KEEP_BEST}, {"out", required_argument, 0, 'o'},
    {"adversarial", required_argument, 0, OPT_ADVERSARIAL},
    {"eps", required_argument, 0, OPT_EPS},     {"adv-steps", required_argument, 0, OPT_ADV_STEPS},
    {"adv-step-size", required_argument, 0, OPT_ADV_STEP_SIZE},
    {"norm", required_argument, 0, OPT_NORM},   {"noise-aug", required_argument, 0, OPT_NOISE_AUG},
    {"class-stats", required_argument, 0, OPT_CLASS_STATS},
    {"class-mixture", required_argument, 0, OPT_CLASS_MIXTURE},
    {"seed", required_argument, 0, 's'},        {"threads", required_argument, 0, 't'},
    {"resume", required_argument, 0, OPT_RESUME}, {"init", required_argument, 0, OPT_INIT},
    {"grad-chunks", required_argument, 0, OPT_GRAD_CHUNKS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};

static int parse_size(const char *text, mv_load_options *o)
{
    int w, h;
    char extra;
    if (sscanf(text, "%dx%d%c", &w, &h, &extra) != 2 || w < 1 || h < 1 || w > 4096 || h > 4096) {
        cli_error("train", "--size expects WxH with 1..4096 each, got '%s'", text);
        return MV_EXIT_USAGE;
    }
    o->width = w;
    o->height = h;
    return 0;
}

/* The numeric options: one row each (code, name, bounds, field of train_options). */
#define TRAIN_NUMBER(code, name, lo, hi, field) \
    CLI_NUMBER(code, name, lo, hi, train_options, field)
static const cli_number_option train_numbers[] = {
    TRAIN_NUMBER('e', "epochs", 1, 100000, train.epochs),
    TRAIN_NUMBER('b', "batch", 1, 1 << 20, train.batch),
    TRAIN_NUMBER(OPT_LR, "lr", 1e-12, 100, train.lr.lr),
    TRAIN_NUMBER(OPT_MOMENTUM, "momentum", 0, 0.999999, train.opt.momentum),
    TRAIN_NUMBER(OPT_WARMUP, "warmup", 0, 1e5, train.lr.warmup_epochs),
    TRAIN_NUMBER(OPT_LR_STEP, "lr-step", 1, 100000, train.lr.step_every),
    TRAIN_NUMBER(OPT_LR_GAMMA, "lr-gamma", 1e-9, 1, train.lr.gamma),
    TRAIN_NUMBER(OPT_MIN_LR, "min-lr", 0, 100, train.lr.min_lr),
    TRAIN_NUMBER(OPT_WD, "weight-decay", 0, 10, train.opt.weight_decay),
    TRAIN_NUMBER(OPT_DROPOUT, "dropout", 0, 0.95, train.dropout),
    TRAIN_NUMBER(OPT_SMOOTH, "label-smoothing", 0, 0.5, train.label_smoothing),
    TRAIN_NUMBER(OPT_SHIFT, "shift", 0, 64, train.shift),
    TRAIN_NUMBER(OPT_EPS, "eps", 1e-6, 1e4, train.adv_eps),
    TRAIN_NUMBER(OPT_ADV_STEP_SIZE, "adv-step-size", 0, 1e4, train.adv_step_size),
    TRAIN_NUMBER(OPT_NOISE_AUG, "noise-aug", 0, 10, train.noise_aug),
    TRAIN_NUMBER(OPT_VAL_SPLIT, "val-split", 0, 0.9, val_split),
    TRAIN_NUMBER('s', "seed", 0, 0, train.seed),
    TRAIN_NUMBER('t', "threads", 1, 1024, threads),
    TRAIN_NUMBER(OPT_GRAD_CHUNKS, "grad-chunks", 1, 256, train.grad_chunks),
    TRAIN_NUMBER(OPT_ADV_STEPS, "adv-steps", 1, 1000, adv_steps),
    TRAIN_NUMBER(OPT_CLASS_STATS, "class-stats", 0, 64, class_stats),
    TRAIN_NUMBER(OPT_CLASS_MIXTURE, "class-mixture", 0, 64, class_mixture),
};

/* One option that is not a number: MV_EXIT_OK, MV_EXIT_USAGE on a bad value (the message
 * printed), or CLI_NOT_IN_TABLE when opt is no option of train. */
static int parse_train_option(int opt, const char *arg, train_options *o)
{
    const char *cmd = "train";
    switch (opt) {
    case 'd': o->data = arg; break;
    case OPT_LABELS: o->labels = arg; break;
    case OPT_NAMES: o->names = arg; break;
    case OPT_VAL: o->val_dir = arg; break;
    case OPT_TEST: o->test_dir = arg; break;
    case OPT_SIZE: return parse_size(arg, &o->load) ? MV_EXIT_USAGE : MV_EXIT_OK;
    case OPT_CHANNELS:
        if (strcmp(arg, "1") && strcmp(arg, "3")) {
            cli_error(cmd, "--channels must be 1 or 3, got '%s'", arg);
            return MV_EXIT_USAGE;
        }
        o->load.channels = arg[0] - '0';
        break;
    case OPT_SKIP_BAD: o->load.skip_bad = 1; break;
    case OPT_STREAM: o->load.storage = MV_STORAGE_STREAM; break;
    case 'l': o->layers = arg, o->arch_given = 1; break;
    case 'a': o->acts = arg, o->arch_given = 1; break;
    case OPT_INIT: o->init = arg; break;
    case 'o': o->out = arg; break;
    case OPT_RESUME: o->resume = arg; break;
    case OPT_OPT: return cli_check_value(cmd, NULL, mv_opt_parse(&o->train.opt.kind, arg));
    case OPT_SCHEDULE: return cli_check_value(cmd, NULL, mv_lr_parse(&o->train.lr.kind, arg));
    case OPT_FLIP: o->train.flip = 1; break;
    case OPT_KEEP_BEST: o->train.keep_best = 1; break;
    case OPT_ADVERSARIAL:
        if (strcmp(arg, "none") && strcmp(arg, "fgsm") && strcmp(arg, "pgd")) {
            cli_error(cmd, "--adversarial must be none, fgsm or pgd, got '%s'", arg);
            return MV_EXIT_USAGE;
        }
        o->adversarial = arg;
        break;
    case OPT_NORM:
        if (strcmp(arg, "linf") && strcmp(arg, "l2")) {
            cli_error(cmd, "--norm must be linf or l2, got '%s'", arg);
            return MV_EXIT_USAGE;
        }
        o->adv_norm = arg;
        o->adv_settings = 1;
        break;
    case 'q': o->quiet = 1; break;
    default: return CLI_NOT_IN_TABLE;
    }
    return MV_EXIT_OK;
}

/* The adversarial options agree with each other; sets the attack of o->train from them.
 * Returns the exit status. */
static int check_adversarial(train_options *o)
{
    const char *cmd = "train";
    if ((o->adv_steps || o->adv_settings) && !strcmp(o->adversarial, "none")) {
        cli_error(cmd, "--norm, --eps, --adv-steps and --adv-step-size need --adversarial "
                       "pgd|fgsm");
        return MV_EXIT_USAGE;
    }
    const int l2 = !strcmp(o->adv_norm, "l2");
    o->train.adv_norm = l2 ? MV_ADV_L2 : MV_ADV_LINF;
    if (!o->eps_given && l2)
        o->train.adv_eps = 1.0;
    if (!l2 && (o->train.adv_eps > 1 || o->train.adv_step_size > 1)) {
        cli_error(cmd, "--eps and --adv-step-size of an L-inf ball are at most 1 (the pixel "
                       "range), got %g and %g", o->train.adv_eps, o->train.adv_step_size);
        return MV_EXIT_USAGE;
    }
    if (o->adv_steps && strcmp(o->adversarial, "pgd")) {
        cli_error(cmd, "--adv-steps is for --adversarial pgd (fgsm takes one step)");
        return MV_EXIT_USAGE;
    }
    o->train.adv_steps = !strcmp(o->adversarial, "pgd")    ? (o->adv_steps ? o->adv_steps : 7)
                         : !strcmp(o->adversarial, "fgsm") ? 1 : 0;
    return MV_EXIT_OK;
}

/* Fills o from the command line. Returns 0 to go on, CLI_HELP_SHOWN after --help, or an
 * exit status. */
static int parse_train_args(int argc, char **argv, train_options *o)
{
    const char *cmd = "train";
    opterr = 0;
    optind = 1;
    const char *shortopts = "d:l:a:e:b:o:s:t:qh";
    for (int opt; (opt = getopt_long(argc, argv, shortopts, train_longopts, NULL)) != -1;) {
        if (opt == 'h') {
            fputs(train_help, stdout), fputs(train_help_jobs, stdout);
            return CLI_HELP_SHOWN;
        }
        int rc = cli_parse_number_option(cmd, CLI_TABLE(train_numbers), opt, optarg, o);
        if (rc == CLI_NOT_IN_TABLE)
            rc = parse_train_option(opt, optarg, o);
        if (rc == CLI_NOT_IN_TABLE)
            return cli_bad_option(cmd, opt, argv[optind - 1]);
        if (rc)
            return rc;
        o->adv_settings |= opt == OPT_EPS || opt == OPT_ADV_STEP_SIZE;
        o->eps_given |= opt == OPT_EPS;
    }
    if (optind < argc) {
        cli_error(cmd, "unexpected argument '%s'", argv[optind]);
        return MV_EXIT_USAGE;
    }
    if (!o->data || !o->out) {
        cli_error(cmd, "--data and --out are required (see mlpviz train --help)");
        return MV_EXIT_USAGE;
    }
    return check_adversarial(o);
}

/* ------------------------------------------------------------------ the command */

/* Loads --init's model; the data is then read at its input shape unless --size or
 * --channels say otherwise (and build_from_init then explains the mismatch). */
static int init_model(train_options *o, mv_model **init)
{
    if (cli_load_model("train", o->init, init))
        return MV_EXIT_FAIL;
    if (!o->load.width && !o->load.height) {
        o->load.width = (*init)->width;
        o->load.height = (*init)->height;
    }
    if (!o->load.channels && ((*init)->channels == 1 || (*init)->channels == 3))
        o->load.channels = (*init)->channels;
    return 0;
}

/* The network: input from the data, the hidden widths asked for, one output per class. */
static int build_model(const train_options *o, const mv_dataset *data, mv_model **out)
{
    const int input = data->channels * data->height * data->width;
    mv_arch arch = {.head = MV_HEAD_SOFTMAX_CE};
    /* --layers "" leaves no hidden layer: softmax regression */
    if (mv_arch_set_widths(&arch, input, o->layers, data->n_classes)) {
        cli_error("train", "--layers: %s", mv_last_error());
        return MV_EXIT_USAGE;
    }
    if (arch.n_layers > 1 && cli_parse_acts("train", o->acts, &arch))
        return MV_EXIT_USAGE;
    if (mv_model_create(out, &arch) ||
        mv_model_set_class_names(*out, (const char *const *)data->class_names, data->n_classes)) {
        cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    (*out)->channels = data->channels;
    (*out)->height = data->height;
    (*out)->width = data->width;
    mv_net_init((*out)->net, o->train.seed);
    if (mv_model_fit_normalisation(*out, data)) { /* a streamed file may be gone */
        cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* --init: the network of a given model, its outputs reordered to the data's classes (by
 * name), its input shape and normalisation kept (its weights were trained for them). */
static int build_from_init(const train_options *o, const mv_dataset *data, const mv_model *init,
                           mv_model **out)
{
    if (o->arch_given) {
        cli_error("train", "--init %s brings its network; --layers and --act are for a new "
                  "one", o->init);
        return MV_EXIT_USAGE;
    }
    if (data->channels != init->channels || data->height != init->height ||
        data->width != init->width) {
        cli_error("train", "--init %s takes %d x %d x %d images; the data is %d x %d x %d "
                  "(channels x height x width)", o->init, init->channels, init->height,
                  init->width, data->channels, data->height, data->width);
        return MV_EXIT_FAIL;
    }
    if (mv_model_create(out, &init->net->arch)) {
        cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    memcpy((*out)->net->p.data, init->net->p.data, sizeof(mv_real) * init->net->p.count);
    if (mv_model_set_class_names(*out, (const char *const *)init->class_names,
                                 init->n_classes) ||
        mv_model_reorder_classes(*out, (const char *const *)data->class_names,
                                 data->n_classes)) {
        cli_error("train", "--init %s: %s", o->init, mv_last_error());
        return MV_EXIT_FAIL;
    }
    (*out)->channels = init->channels;
    (*out)->height = init->height;
    (*out)->width = init->width;
    memcpy((*out)->mean, init->mean, sizeof init->mean);
    memcpy((*out)->std, init->std, sizeof init->std);
    return 0;
}

/* MODEL.mlp -> MODEL.csv / MODEL.ckpt (the suffix appended when there is no .mlp). */
static char *sibling_path(const char *model, const char *suffix)
{
    size_t n = strlen(model);
    if (n > 4 && !strcmp(model + n - 4, ".mlp"))
        n -= 4;
    char *path = malloc(n + strlen(suffix) + 1);
    if (path) {
        memcpy(path, model, n);
        strcpy(path + n, suffix);
    }
    return path;
}

/* The long option that text ("--thr", "--threads=2") names, as getopt_long resolves
 * abbreviations: an exact name, or the only one it is a prefix of. NULL otherwise. */
static const struct option *long_option_named(const char *text)
{
    const size_t n = strcspn(text, "=");
    const struct option *found = NULL;
    for (const struct option *o = train_longopts; o->name; o++) {
        if (strncmp(o->name, text, n) != 0)
            continue;
        if (strlen(o->name) == n)
            return o;
        if (found)
            return NULL; /* ambiguous: getopt_long refuses it too */
        found = o;
    }
    return found;
}

/* Options that cannot change the trained weights; left out of the recorded command so that
 * a resumed run, one with other threads, one that streams its data, or one written elsewhere
 * gives the very same model file. *skip_next is set when the option's value is the next
 * argument. */
static int changes_nothing(char **argv, int i, int *skip_next)
{
    static const char no_effect[] = "totq"; /* --threads --out (and --resume) --quiet */
    const char *arg = argv[i];
    int code = 0, has_inline_value = 0;
    *skip_next = 0;
    if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
        const struct option *o = long_option_named(arg + 2);
        if (!o)
            return 0;
        code = o->val;
        has_inline_value = strchr(arg, '=') != NULL;
        if (code == OPT_RESUME)
            code = 'o';
        if (code == OPT_STREAM) /* a flag, like --quiet */
            code = 'q';
    } else if (arg[0] == '-' && arg[1] && strchr(no_effect, arg[1])) {
        code = arg[1];
        has_inline_value = arg[2] != 0;
    }
    if (!code || !strchr(no_effect, code))
        return 0;
    *skip_next = code != 'q' && !has_inline_value;
    return 1;
}

static char *join_command_line(int argc, char **argv, const char *hints)
{
    size_t n = strlen("mlpviz") + strlen(hints) + 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    strcpy(s, "mlpviz");
    for (int i = 0; i < argc; i++) {
        int skip_next;
        if (changes_nothing(argv, i, &skip_next)) {
            i += skip_next;
            continue;
        }
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    strcat(s, hints); /* the ONNX options, taken out of argv before parsing */
    return s;
}

/* The signal that asked training to stop (SIGINT or SIGTERM), 0 while none did. */
static volatile sig_atomic_t interrupt_requested;

static void on_stop_signal(int sig) { interrupt_requested = sig; }

static int stop_requested(void *user)
{
    (void)user;
    return interrupt_requested != 0;
}

typedef struct {
    mv_dataset *train, *val, *test;
    mv_model *model, *checkpoint;
    char *csv, *ckpt, *command;
} train_resources;

static void release(train_resources *r)
{
    mv_dataset_free(r->train);
    mv_dataset_free(r->val);
    mv_dataset_free(r->test);
    mv_model_free(r->model);
    mv_model_free(r->checkpoint);
    free(r->csv);
    free(r->ckpt);
    free(r->command);
}

static int load_all_data(train_options *o, train_resources *r)
{
    int rc = cli_load_data("train", o->data, o->labels, o->names, NULL, 0, &o->load, &r->train);
    if (rc)
        return rc;
    /* Validation and test data take the training data's shape. */
    mv_load_options same = o->load;
    same.width = r->train->width;
    same.height = r->train->height;
    same.channels = r->train->channels;
    if (o->val_dir) {
        if ((rc = cli_load_data("train", o->val_dir, NULL, o->names, NULL, 0, &same, &r->val)))
            return rc;
    } else if (o->val_split > 0) {
        mv_dataset *whole = r->train;
        if (mv_dataset_split(whole, o->val_split, o->train.seed, &r->train, &r->val)) {
            r->train = whole;
            cli_error("train", "%s", mv_last_error());
            return MV_EXIT_FAIL;
        }
        mv_dataset_free(whole);
    }
    if (o->test_dir)
        rc = cli_load_data("train", o->test_dir, NULL, o->names, NULL, 0, &same, &r->test);
    return rc;
}

/* MODEL.html beside the metrics CSV: loss and accuracy per epoch, the command, the model. */
static int write_train_page(const train_options *o, const train_resources *r)
{
    char *page = sibling_path(o->out, ".html");
    if (!page) {
        cli_error("train", "out of memory");
        return MV_EXIT_FAIL;
    }
    const html_train_report report = {.m = r->model, .csv_path = r->csv,
                                      .model_path = o->out, .command = r->command};
    const int rc = html_train_page(page, &report);
    if (!rc && !o->quiet)
        fprintf(stderr, "the page: %s\n", page);
    free(page);
    return rc;
}

static int finish_model(const train_options *o, train_resources *r)
{
    /* Class-conditional starts for `visualize`, at the rank the library allows (a note when it
     * stores the means alone). They are a bonus: when they cannot be fitted, the trained model
     * is still written. */
    int rank;
    if (mv_class_stats_rank(r->train, o->class_stats, &rank) && (rank < 0 || !o->quiet))
        fprintf(stderr, "mlpviz train: %s\n", mv_last_error());
    if (rank >= 0 && mv_model_fit_class_stats(r->model, r->train, rank, o->train.seed))
        fprintf(stderr, "mlpviz train: class statistics not stored: %s\n", mv_last_error());
    /* After the statistics, whose directions give the components their spreads. */
    const int components = mv_class_mixture_components(r->train, o->class_mixture);
    if (components > 0 &&
        mv_model_fit_class_mixture(r->model, r->train, components, o->train.seed))
        fprintf(stderr, "mlpviz train: class mixture not stored: %s\n", mv_last_error());
    if (r->test) {
        double accuracy;
        if (mv_evaluate(r->model, r->test, &accuracy, NULL, NULL)) {
            cli_error("train", "test data: %s", mv_last_error());
            return MV_EXIT_FAIL;
        }
        char value[32];
        snprintf(value, sizeof value, "%.6f", accuracy);
        if (mv_model_meta_set(r->model, "test.accuracy", value)) {
            cli_error("train", "%s", mv_last_error());
            return MV_EXIT_FAIL;
        }
        if (!o->quiet)
            fprintf(stderr, "test accuracy %.4f\n", accuracy);
    }
    if (mv_model_save(r->model, o->out)) {
        cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    if (!o->quiet)
        fprintf(stderr, "model written to %s\n", o->out);
    return write_train_page(o, r);
}

static int run_training(train_options *o, train_resources *r)
{
    int interrupted = 0;
    o->train.metrics_path = r->csv;
    o->train.checkpoint_path = r->ckpt;
    progress_state ps = {.quiet = o->quiet, .tty = isatty(STDERR_FILENO)};
    o->train.progress = on_progress;
    o->train.user = &ps;
    o->train.should_stop = stop_requested;
    struct sigaction sa = {.sa_handler = on_stop_signal}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    mv_status st = mv_train(r->model, r->train, r->val, &o->train, &interrupted);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st == MV_ERR_NUMERIC) {
        cli_error("train", "%s", mv_last_error());
        const char *epochs = mv_model_meta_get(r->model, "train.epochs");
        if (!epochs)
            cli_error("train", "no epoch completed: no model written");
        else if (mv_dist_rank() > 0)
            ; /* rank 0 writes */
        else if (mv_model_save(r->model, o->out) == MV_OK)
            cli_error("train", "kept the weights of epoch %s, the last good one, in %s", epochs,
                      o->out);
        else
            cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    if (st) {
        cli_error("train", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    if (interrupted) {
        cli_error("train", "%s: checkpoint in %s; continue with the same command and "
                           "--resume %s",
                  interrupt_requested == SIGTERM ? "terminated" : "interrupted", r->ckpt,
                  r->ckpt);
        return 128 + interrupt_requested; /* as the shell reports a death by that signal */
    }
    return mv_dist_rank() == 0 ? finish_model(o, r) : MV_EXIT_OK; /* rank 0 writes */
}

int cmd_train(int argc, char **argv)
{
    train_options o = {.layers = "256,128", .acts = "relu", .val_split = 0.1,
                       .adversarial = "none", .adv_norm = "linf", .class_stats = 16,
                       .class_mixture = 8};
    mv_load_options_defaults(&o.load);
    /* Training reads its data only through rows (mv_dataset_read_rows, mv_prefetch), so 8-bit
     * images can stay bytes: a quarter of the memory, the same bits. */
    o.load.storage = MV_STORAGE_BYTES;
    mv_train_defaults(&o.train);
    o.train.adv_eps = 0.1;
    int rc = parse_train_args(argc, argv, &o);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    if (o.threads > 0)
        omp_set_num_threads(o.threads);
    cli_job_start(); /* until the processes agree that every one has its data */
    train_resources r = {0};
    r.csv = sibling_path(o.out, ".csv");
    r.ckpt = sibling_path(o.out, ".ckpt");
    r.command = join_command_line(argc, argv, cli_hints_text());
    if (!r.csv || !r.ckpt || !r.command) {
        cli_error("train", "out of memory");
        rc = MV_EXIT_FAIL;
    }
    mv_model *init = NULL;
    if (!rc && o.init)
        rc = init_model(&o, &init);
    if (!rc)
        rc = load_all_data(&o, &r);
    if (!rc)
        rc = init ? build_from_init(&o, r.train, init, &r.model)
                  : build_model(&o, r.train, &r.model);
    mv_model_free(init);
    if (!rc && o.resume) {
        rc = cli_load_other_model("train", o.resume, &r.checkpoint);
        o.train.resume = r.checkpoint;
    }
    if (!rc && mv_model_meta_set(r.model, "command", r.command)) {
        cli_error("train", "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    rc = cli_job_agree("train", rc); /* each process reads the data and models itself */
    cli_job_end();
    if (!rc)
        rc = run_training(&o, &r);
    release(&r);
    return rc;
}
