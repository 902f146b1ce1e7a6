/* cli_gradcheck.c: `mlpviz gradcheck`, finite-difference checks of every gradient the
 * library computes, for an architecture given on the command line or for a given model
 * (mlpviz or ONNX) on given or random images. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const gradcheck_help =
    "usage: mlpviz gradcheck --layers LIST [OPTIONS]\n"
    "       mlpviz gradcheck --model MODEL [--data PATH] [OPTIONS]\n"
    "\n"
    "Compares every analytic gradient (each weight and bias tensor, the input gradient of the\n"
    "loss, and the input gradient of a class score) with central finite differences on a\n"
    "random network and batch, or on a given model (mlpviz or ONNX, e.g. one trained by\n"
    "PyTorch) and images, then compares the float32 and float64 analytic gradients.\n"
    "\n"
    "  -l, --layers LIST      widths, input first: 784,64,32,10 (random network)\n"
    "  -m, --model MODEL      check this model's network instead (no --layers/--act/--loss)\n"
    "  -d, --data PATH        with --model: the first batch of images of an image folder or\n"
    "                         IDX file, spread over it (default: random pixels in [0, 1])\n"
    "  -a, --act NAME[,NAME]  hidden activation(s): identity sigmoid tanh relu leaky_relu[:a]\n"
    "                         scaled_relu[:k] (or 5relu) softplus gelu; one for all hidden\n"
    "                         layers or one per hidden layer (default relu)\n"
    "  -L, --loss HEAD        ce (softmax+cross-entropy), bce (sigmoid+BCE), mse (default ce)\n"
    "  -o, --objective OBJ    input-gradient objective: logit, output, logprob, hidden:LAYER\n"
    "                         (default logit)\n"
    "  -b, --batch N          rows of the random batch (default 4)\n"
    "  -n, --samples N        coordinates checked per tensor, 0 = all (default 64)\n"
    "  -s, --seed N           seed of weights, batch and sampled coordinates (default 1)\n"
    "  -p, --precision P      double (default) or float\n"
    "      --step H           finite-difference step (default 1e-3 double, 1e-2 float)\n"
    "      --floor F          floor on the relative-error denominator (default 1e-4)\n"
    "  -t, --tol T            largest relative error accepted (default 1e-6 double, 5e-2\n"
    "                         float)\n"
    "      --float-tol T      largest float32-vs-float64 difference accepted (default 1e-4)\n"
    "      --dropout P        check the loss through fixed dropout masks of rate P\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 when every tensor is within tolerance, 1 when one is not or a gradient\n"
    "is all zero, 2 on a bad command line (including objectives the network cannot have).\n";

static int parse_objective(const char *cmd, const char *text, mv_target *target)
{
    static const char *const names[] = {"logit", "output", "logprob"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, names[i])) {
            target->kind = (mv_objective)i;
            return 0;
        }
    long layer;
    if (!strncmp(text, "hidden:", 7) &&
        !cli_parse_int(cmd, "objective hidden:", text + 7, 0, MV_MAX_LAYERS, &layer)) {
        target->kind = MV_OBJ_HIDDEN;
        target->layer = (int)layer;
        return 0;
    }
    cli_error(cmd, "--objective must be logit, output, logprob or hidden:LAYER, got '%s'", text);
    return MV_EXIT_USAGE;
}

static void print_report(const mv_gradcheck_report *r, double tol)
{
    printf("%-11s %8s %8s %12s %12s  %s\n", "tensor", "checked", "skipped", "max|grad|",
           "max rel err", "");
    for (int t = 0; t < r->n_tensors; t++) {
        const mv_gradcheck_tensor *x = &r->tensor[t];
        printf("%-11s %8d %8d %12.4e %12.4e  %s\n", x->name, x->checked, x->skipped,
               x->max_abs_grad, x->max_rel_error,
               x->max_abs_grad == 0 ? "ALL ZERO" : x->max_rel_error <= tol ? "ok" : "FAIL");
    }
}

typedef struct {
    mv_gradcheck_config cfg;
    mv_precision precision;
    double tol, float_tol;
    const char *model_path, *data_path;
    int network_given; /* --layers, --act or --loss */
} gradcheck_options;

/* The numeric options: one row each (code, name, bounds, field of gradcheck_options). */
#define CHECK_NUMBER(code, name, lo, hi, field) \
    CLI_NUMBER(code, name, lo, hi, gradcheck_options, field)
static const cli_number_option gradcheck_numbers[] = {
    CHECK_NUMBER('b', "batch", 1, 4096, cfg.batch),
    CHECK_NUMBER('n', "samples", 0, 1L << 30, cfg.samples),
    CHECK_NUMBER('s', "seed", 0, 0, cfg.seed),
    CHECK_NUMBER('S', "step", 1e-12, 1, cfg.step),
    CHECK_NUMBER('F', "floor", 1e-30, 1e6, cfg.floor),
    CHECK_NUMBER('t', "tol", 0, 1e6, tol),
    CHECK_NUMBER('T', "float-tol", 0, 1e6, float_tol),
    CHECK_NUMBER('D', "dropout", 0, 0.95, cfg.dropout),
};

/* Combinations that cannot be checked are command-line errors too. */
static int check_combination(const mv_gradcheck_config *c)
{
    if (c->target.kind == MV_OBJ_LOGPROB && c->arch.head == MV_HEAD_IDENTITY_MSE) {
        cli_error("gradcheck", "--objective logprob needs --loss ce or bce, not mse");
        return MV_EXIT_USAGE;
    }
    if (c->target.kind == MV_OBJ_HIDDEN && c->target.layer > c->arch.n_layers - 2) {
        cli_error("gradcheck", "--objective hidden:%d: the network has %d hidden layer(s)",
                  c->target.layer, c->arch.n_layers - 1);
        return MV_EXIT_USAGE;
    }
    return 0;
}

static const struct option gradcheck_longopts[] = {
    {"layers", required_argument, 0, 'l'}, {"act", required_argument, 0, 'a'},
    {"loss", required_argument, 0, 'L'},   {"objective", required_argument, 0, 'o'},
    {"batch", required_argument, 0, 'b'},  {"samples", required_argument, 0, 'n'},
    {"seed", required_argument, 0, 's'},   {"precision", required_argument, 0, 'p'},
    {"step", required_argument, 0, 'S'},   {"floor", required_argument, 0, 'F'},
    {"tol", required_argument, 0, 't'},    {"float-tol", required_argument, 0, 'T'},
    {"dropout", required_argument, 0, 'D'}, {"model", required_argument, 0, 'm'},
    {"data", required_argument, 0, 'd'},   {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* --model brings its network: --layers, --act and --loss would contradict it. The objective
 * is parsed now, checked against the network once it is loaded. */
static int check_model_options(gradcheck_options *o, const char *objective)
{
    if (!o->model_path) {
        cli_error("gradcheck", "--data needs --model");
        return MV_EXIT_USAGE;
    }
    if (o->network_given) {
        cli_error("gradcheck", "--layers, --act and --loss describe a random network; --model "
                  "brings its own");
        return MV_EXIT_USAGE;
    }
    return parse_objective("gradcheck", objective, &o->cfg.target);
}

/* The random network of --layers, --act and --loss, and the objective it is checked on. */
static int random_network(mv_gradcheck_config *c, const char *layers, const char *acts,
                          const char *loss, const char *objective)
{
    const char *cmd = "gradcheck";
    if (!layers) {
        cli_error(cmd, "--layers (a random network) or --model is required, e.g. --layers "
                  "784,64,32,10");
        return MV_EXIT_USAGE;
    }
    if (mv_arch_parse_widths(&c->arch, layers) || mv_head_parse(&c->arch.head, loss)) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_USAGE;
    }
    if ((c->arch.n_layers > 1 && cli_parse_acts(cmd, acts, &c->arch)) ||
        parse_objective(cmd, objective, &c->target))
        return MV_EXIT_USAGE;
    if (mv_arch_validate(&c->arch)) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_USAGE;
    }
    return check_combination(c);
}

static int parse_gradcheck_args(int argc, char **argv, gradcheck_options *o)
{
    const char *cmd = "gradcheck", *layers = NULL, *acts = "relu", *loss = "ce";
    const char *objective = "logit";
    o->tol = -1;
    o->float_tol = 1e-4;
    o->precision = MV_PREC_DOUBLE;
    opterr = 0;
    optind = 1;
    const char *shortopts = "l:a:L:o:b:n:s:p:t:m:d:h";
    for (int opt; (opt = getopt_long(argc, argv, shortopts, gradcheck_longopts, NULL)) != -1;) {
        const int rc = cli_parse_number_option(cmd, CLI_TABLE(gradcheck_numbers), opt, optarg, o);
        if (rc != CLI_NOT_IN_TABLE) {
            if (rc)
                return rc;
            continue;
        }
        switch (opt) {
        case 'l': layers = optarg, o->network_given = 1; break;
        case 'a': acts = optarg, o->network_given = 1; break;
        case 'L': loss = optarg, o->network_given = 1; break;
        case 'm': o->model_path = optarg; break;
        case 'd': o->data_path = optarg; break;
        case 'o': objective = optarg; break;
        case 'p':
            if (strcmp(optarg, "double") && strcmp(optarg, "float")) {
                cli_error(cmd, "--precision must be double or float, got '%s'", optarg);
                return MV_EXIT_USAGE;
            }
            o->precision = optarg[0] == 'd' ? MV_PREC_DOUBLE : MV_PREC_FLOAT;
            break;
        case 'h': fputs(gradcheck_help, stdout); return CLI_HELP_SHOWN;
        default: return cli_bad_option(cmd, opt, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        cli_error(cmd, "unexpected argument '%s'", argv[optind]);
        return MV_EXIT_USAGE;
    }
    if (o->tol < 0)
        o->tol = o->precision == MV_PREC_DOUBLE ? 1e-6 : 5e-2;
    if (o->model_path || o->data_path)
        return check_model_options(o, objective);
    return random_network(&o->cfg, layers, acts, loss, objective);
}

/* The batch's pixels: images of --data spread evenly over the set, or seeded random
 * pixels; returns the exit status. */
static int batch_pixels(const gradcheck_options *o, const mv_model *m, float *pixels)
{
    const size_t D = (size_t)m->channels * m->height * m->width;
    const int B = o->cfg.batch;
    if (!o->data_path) {
        mv_rng rng;
        mv_rng_seed(&rng, o->cfg.seed ^ 0x9e3779b97f4a7c15ull);
        for (size_t i = 0; i < (size_t)B * D; i++) pixels[i] = (float)mv_rng_uniform(&rng);
        return MV_EXIT_OK;
    }
    mv_load_options load;
    mv_load_options_defaults(&load);
    load.width = m->width;
    load.height = m->height;
    load.channels = m->channels;
    mv_dataset *data;
    const int rc = cli_load_data("gradcheck", o->data_path, NULL, NULL, NULL, 0, &load, &data);
    if (rc)
        return rc;
    for (int r = 0; r < B; r++)
        memcpy(pixels + r * D, data->pixels + (size_t)r * data->count / B * D,
               sizeof *pixels * D);
    mv_dataset_free(data);
    return MV_EXIT_OK;
}

/* --model: the config checks that model's network on its normalised batch. *model and
 * *inputs (the config's) belong to the caller. */
static int use_model(gradcheck_options *o, mv_model **model, float **inputs)
{
    if (cli_load_model("gradcheck", o->model_path, model))
        return MV_EXIT_FAIL;
    const mv_model *m = *model;
    const size_t D = (size_t)m->net->arch.widths[0];
    float *pixels = malloc(sizeof *pixels * D * (size_t)o->cfg.batch);
    *inputs = malloc(sizeof **inputs * D * (size_t)o->cfg.batch);
    int rc = !pixels || !*inputs ? (cli_error("gradcheck", "out of memory"), MV_EXIT_FAIL)
                                 : batch_pixels(o, m, pixels);
    if (!rc) {
        mv_model_prepare_input(m, pixels, *inputs, o->cfg.batch);
        o->cfg.arch = m->net->arch;
        o->cfg.weights = m->net->p.data;
        o->cfg.inputs = *inputs;
        rc = check_combination(&o->cfg);
    }
    free(pixels);
    return rc;
}

/* Runs the check; the report decides the exit status. */
static int run_check(const gradcheck_options *o);

int cmd_gradcheck(int argc, char **argv)
{
    gradcheck_options o = {0};
    mv_arch empty = {0};
    mv_gradcheck_defaults(&o.cfg, &empty);
    int rc = parse_gradcheck_args(argc, argv, &o);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    mv_model *model = NULL;
    float *inputs = NULL;
    if (o.model_path && !(rc = use_model(&o, &model, &inputs)))
        printf("gradcheck: model %s (%s), images from %s\n", o.model_path,
               model->file.format == MV_FORMAT_ONNX ? "ONNX" : "mlpviz",
               o.data_path ? o.data_path : "random pixels");
    if (!rc)
        rc = run_check(&o);
    free(inputs);
    mv_model_free(model);
    return rc;
}

static int run_check(const gradcheck_options *o_in)
{
    const gradcheck_options o = *o_in;
    mv_gradcheck_report report;
    if (mv_gradcheck(&o.cfg, o.precision, &report)) {
        cli_error("gradcheck", "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    printf("gradcheck: %s, batch %d, %s, seed %llu, h = %g, floor = %g\n",
           o.precision == MV_PREC_DOUBLE ? "float64" : "float32", o.cfg.batch,
           mv_head_name(o.cfg.arch.head), (unsigned long long)o.cfg.seed,
           o.cfg.step ? o.cfg.step : mv_gradcheck_default_step(o.precision), o.cfg.floor);
    print_report(&report, o.tol);
    printf("max relative error %.3e (tolerance %.1e); float32 vs float64 %.3e (tolerance "
           "%.1e)\n",
           report.max_rel_error, o.tol, report.float_vs_double, o.float_tol);
    int zero = mv_gradcheck_zero_tensor(&report);
    if (zero >= 0) {
        cli_error("gradcheck", "gradient of %s is all zero: nothing was checked",
                  report.tensor[zero].name);
        return MV_EXIT_FAIL;
    }
    for (int t = 0; t < report.n_tensors; t++)
        if (report.tensor[t].checked == 0) {
            cli_error("gradcheck", "no coordinate of %s could be checked (all %d straddle a kink)",
                      report.tensor[t].name, report.tensor[t].skipped);
            return MV_EXIT_FAIL;
        }
    if (report.max_rel_error > o.tol || report.float_vs_double > o.float_tol) {
        cli_error("gradcheck", "FAILED: gradient error above tolerance");
        return MV_EXIT_FAIL;
    }
    printf("gradcheck: ok\n");
    return MV_EXIT_OK;
}
