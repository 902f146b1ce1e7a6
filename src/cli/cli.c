/* cli.c: the mlpviz binary: git-style dispatch to the subcommands (cli_*.c), whose shared
 * helpers are in cli_common.c. Only the CLI prints to the terminal and chooses exit
 * statuses. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a classifier on an image folder or IDX files"},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix of a model"},
    {"predict", cmd_predict, "top classes of images"},
    {"visualize", cmd_visualize, "draw what each class looks like to a model (gradient ascent)"},
    {"saliency", cmd_saliency, "heat map of where an image's class score is sensitive"},
    {"grad", cmd_grad, "input gradient of a class score for an image, as .npy"},
    {"info", cmd_info, "summary of a model file"},
    {"export", cmd_export, "write a model's weights as NumPy .npy files"},
    {"convert", cmd_convert, "turn IDX files (e.g. Fashion-MNIST) into an image folder"},
    {"gradcheck", cmd_gradcheck, "check every backward formula against finite differences"},
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

int main(int argc, char **argv)
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
                    return commands[i].run(2, help_argv);
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
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mlpviz: unknown command '%s' (run 'mlpviz --help' for the list)\n", name);
    return MV_EXIT_USAGE;
}
