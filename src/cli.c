/* cli.c: the mlpviz binary: git-style subcommand dispatch and option-parsing helpers.
 * Only this layer prints to the terminal and chooses exit statuses. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mlpviz %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_int(const char *cmd, const char *option, const char *text, long lo, long hi,
                  long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        cli_error(cmd, "--%s expects a whole number from %ld to %ld, got '%s'", option, lo, hi,
                  text);
        return 1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *option, const char *text, double lo,
                     double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < lo || v > hi) {
        cli_error(cmd, "--%s expects a number from %g to %g, got '%s'", option, lo, hi, text);
        return 1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *option, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-') {
        cli_error(cmd, "--%s expects a non-negative whole number, got '%s'", option, text);
        return 1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static int utf8_sequence_length(const unsigned char *s)
{
    const unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                  : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n <= 1)
        return n;
    unsigned code = c & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        code = code << 6 | (s[i] & 0x3F);
    }
    static const unsigned smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[n] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    return n;
}

/* Writes text as a JSON string: quotes, backslashes and control characters escaped, and
 * any byte that is not valid UTF-8 replaced by U+FFFD, so the output always parses. */
void cli_json_string(FILE *out, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    fputc('"', out);
    while (*s) {
        const int n = utf8_sequence_length(s);
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '\t')
            fputs("\\t", out);
        else if (*s < 0x20 || *s == 0x7F)
            fprintf(out, "\\u%04x", *s);
        else if (n == 0)
            fputs("\\ufffd", out);
        else
            fwrite(s, 1, (size_t)n, out);
        s += n > 0 ? n : 1;
    }
    fputc('"', out);
}

int cli_load_model(const char *cmd, const char *path, mv_model **model)
{
    if (mv_model_load(model, path)) {
        cli_error(cmd, "%s", mv_last_error());
        return 1;
    }
    return 0;
}

void cli_ensure_dir(const char *dir)
{
    /* failure shows up, with its reason, when a file is written there */
    (void)mv_make_directory(dir);
}

void cli_ensure_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return;
    char dir[4096];
    if ((size_t)(slash - path) >= sizeof dir)
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    cli_ensure_dir(dir);
}

int cli_bad_option(const char *cmd, int opt, const char *arg0)
{
    (void)opt;
    /* A long option is named as typed (up to any '='): getopt's optopt holds its internal
     * code then, not a letter. A short one by its letter. */
    if (arg0 && strncmp(arg0, "--", 2) == 0) {
        const size_t len = strcspn(arg0, "=");
        cli_error(cmd, "option '%.*s' is unknown or needs a value (see mlpviz %s --help)",
                  (int)len, arg0, cmd);
    } else if (optopt > ' ' && optopt < 127) {
        cli_error(cmd, "option -%c is unknown or needs a value (see mlpviz %s --help)", optopt,
                  cmd);
    } else {
        cli_error(cmd, "option '%s' is unknown or needs a value (see mlpviz %s --help)",
                  arg0 ? arg0 : "?", cmd);
    }
    return MV_EXIT_USAGE;
}

int cli_parse_acts(const char *cmd, const char *text, mv_arch *arch)
{
    const int hidden = arch->n_layers - 1;
    char buf[256];
    if (strlen(text) >= sizeof buf) {
        cli_error(cmd, "--act list is too long");
        return 1;
    }
    strcpy(buf, text);
    int count = 0;
    mv_activation acts[MV_MAX_LAYERS];
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (count == MV_MAX_LAYERS || mv_activation_parse(&acts[count], tok)) {
            cli_error(cmd, "--act: %s", count == MV_MAX_LAYERS ? "too many activations"
                                                                : mv_last_error());
            return 1;
        }
        count++;
    }
    if (count != 1 && count != hidden) {
        cli_error(cmd, "--act names %d activations but the network has %d hidden layers", count,
                  hidden);
        return 1;
    }
    for (int l = 0; l < hidden; l++)
        arch->act[l] = acts[count == 1 ? 0 : l];
    return 0;
}

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

int cli_model_file_facts(const char *cmd, const char *path, cli_file_facts *facts)
{
    unsigned char head[12], tail[4];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && !fstat(fd, &st) && st.st_size >= 16 &&
             pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
             pread(fd, tail, sizeof tail, st.st_size - 4) == (ssize_t)sizeof tail;
    const int err = errno;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        cli_error(cmd, "%s: cannot read: %s", path, strerror(err));
        return 1;
    }
    facts->size = (long long)st.st_size;
    facts->version = head[8] | head[9] << 8 | head[10] << 16 | (unsigned)head[11] << 24;
    facts->crc = tail[0] | tail[1] << 8 | tail[2] << 16 | (unsigned long)tail[3] << 24;
    return 0;
}

int cli_argmax(const float *v, int n)
{
    int best = 0;
    for (int k = 1; k < n; k++)
        if (v[k] > v[best])
            best = k;
    return best;
}
