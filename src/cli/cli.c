/* cli.c: the mlpviz binary: git-style dispatch to the subcommands (cli_*.c), whose shared
 * helpers are in cli_common.c. Only the CLI prints to the terminal and chooses exit
 * statuses. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    int takes_model; /* accepts the ONNX hint options (cli_hints.c) */
    int several;     /* runs as a job of several processes under mpirun (MPI builds) */
} command;

static const command commands[] = {
    {"train", cmd_train, "train a classifier on an image folder or IDX files", 1, 1},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix of a model", 1, 0},
    {"predict", cmd_predict, "top classes of images", 1, 0},
    {"visualize", cmd_visualize, "draw what each class looks like to a model (gradient ascent)", 1, 1},
    {"saliency", cmd_saliency, "heat map of where an image's class score is sensitive", 1, 0},
    {"grad", cmd_grad, "input gradient of a class score for an image, as .npy", 1, 0},
    {"info", cmd_info, "summary of a model file", 1, 0},
    {"export", cmd_export, "write a model's weights as NumPy .npy files", 1, 0},
    {"convert", cmd_convert, "turn IDX files (e.g. Fashion-MNIST) into an image folder", 0, 0},
    {"gradcheck", cmd_gradcheck, "check every backward formula against finite differences", 1, 0},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mlpviz COMMAND [OPTIONS]\n\n"
                 "Trains multilayer perceptrons with its own backpropagation and draws what they "
                 "learned.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "show this list, or a command's help (help COMMAND)");
    fprintf(out, "  %-10s %s\n", "version", "print the version");
    fprintf(out, "\nRun 'mlpviz COMMAND --help' for a command's options.\n");
}

/* Runs a command; one that takes a MODEL first takes the ONNX hint options out of argv, and
 * its --help ends with their description. */
static int run(const command *c, int argc, char **argv)
{
    if (!c->takes_model)
        return c->run(argc, argv);
    int help = 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    int rc = cli_take_hints(c->name, &argc, argv);
    if (!rc)
        rc = c->run(argc, argv);
    if (help && rc == MV_EXIT_OK && mv_dist_rank() == 0) /* under mpirun, once */
        cli_hints_help(stdout);
    cli_hints_free();
    return rc;
}

/* Under mpirun every rank runs the command: those that split their work across ranks go on;
 * the others would only do the same thing N times, and say so once. */
static int run_in_job(const command *c, int argc, char **argv)
{
    if (mv_dist_size() > 1 && !c->several) {
        if (mv_dist_rank() == 0)
            fprintf(stderr, "mlpviz %s: runs in one process; under mpirun only train and "
                            "visualize split their work (this job has %d)\n",
                    c->name, mv_dist_size());
        return MV_EXIT_USAGE;
    }
    return run(c, argc, argv);
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    if (mv_dist_init(&argc, &argv)) {
        fprintf(stderr, "mlpviz: %s\n", mv_last_error());
        return MV_EXIT_FAIL;
    }
    /* Under mpirun the ranks run the same command: rank 0 speaks for the job, and the others'
     * failures reach it through cli_job_agree / mv_dist_agree. */
    if (mv_dist_rank() > 0 && (!freopen("/dev/null", "w", stdout) ||
                               !freopen("/dev/null", "w", stderr)))
        return MV_EXIT_FAIL;
    /* Processes that share a machine share its cores: without OMP_NUM_THREADS (or a
     * command's --threads), each takes its part rather than all of them. */
    if (mv_dist_local_size() > 1 && !getenv("OMP_NUM_THREADS")) {
        const int part = omp_get_num_procs() / mv_dist_local_size();
        omp_set_num_threads(part > 1 ? part : 1);
    }
    const int status = dispatch(argc, argv);
    mv_dist_finish();
    return status;
}

static int dispatch(int argc, char **argv)
{
    /* A file-size limit (ulimit -f) must fail a write with EFBIG, which the atomic writers
     * report and clean up after, rather than kill the process with its temp file left. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return MV_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            char *help_argv[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
                if (!strcmp(argv[2], commands[i].name))
                    return run(&commands[i], 2, help_argv);
            fprintf(stderr, "mlpviz: unknown command '%s'\n", argv[2]);
            return MV_EXIT_USAGE;
        }
        usage(stdout);
        return MV_EXIT_OK;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("mlpviz %s\n", MV_VERSION);
        return MV_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(name, commands[i].name))
            return run_in_job(&commands[i], argc - 1, argv + 1);
    fprintf(stderr, "mlpviz: unknown command '%s' (run 'mlpviz --help' for the list)\n", name);
    return MV_EXIT_USAGE;
}
