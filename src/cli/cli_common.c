/* cli_common.c: what the subcommands share: messages, strict number parsing (one value, or
 * a table of numeric options), class names, data and model loading, output directories. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* The job's held error (cli_job_start): only one process may speak for the job, and it must
 * first learn which one failed and why. */
static struct {
    int hold;      /* several processes: errors are held */
    int reported;  /* a failure was agreed on and reported: the job is ending */
    char reason[480];
} job;

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (job.hold) {
        if (!job.reason[0])
            vsnprintf(job.reason, sizeof job.reason, fmt, ap);
        va_end(ap);
        return;
    }
    fprintf(stderr, "mlpviz %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_job_start(void)
{
    job.hold = mv_dist_size() > 1;
    job.reported = 0;
    job.reason[0] = 0;
}

void cli_job_end(void) { job.hold = 0; }

int cli_job_agree(const char *cmd, int rc)
{
    if (!job.hold || job.reported)
        return rc;
    const int failed = mv_dist_agree_reason(rc ? MV_ERR_IO : MV_OK, job.reason[0] ? job.reason
                                                                                : NULL);
    if (failed < 0)
        return MV_EXIT_OK;
    job.reported = 1;
    if (mv_dist_rank() == 0)
        fprintf(stderr, "mlpviz %s: %s\n", cmd, mv_last_error());
    return rc ? rc : MV_EXIT_FAIL;
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
        return MV_EXIT_USAGE;
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
        return MV_EXIT_USAGE;
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
        return MV_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

int cli_check_value(const char *cmd, const char *option, mv_status status)
{
    if (status == MV_OK)
        return MV_EXIT_OK;
    if (option)
        cli_error(cmd, "--%s: %s", option, mv_last_error());
    else
        cli_error(cmd, "%s", mv_last_error());
    return MV_EXIT_USAGE;
}

int cli_parse_number_option(const char *cmd, const cli_number_option *options, size_t count,
                            int code, const char *arg, void *target)
{
    const cli_number_option *o = options;
    while (o < options + count && o->code != code) o++;
    if (o == options + count)
        return CLI_NOT_IN_TABLE;
    char *field = (char *)target + o->offset;
    long whole;
    double real;
    switch (o->kind) {
    case CLI_INT:
        if (cli_parse_int(cmd, o->name, arg, (long)o->lo, (long)o->hi, &whole))
            return MV_EXIT_USAGE;
        *(int *)field = (int)whole;
        return MV_EXIT_OK;
    case CLI_U64: return cli_parse_u64(cmd, o->name, arg, (uint64_t *)field) ? MV_EXIT_USAGE : 0;
    case CLI_DOUBLE:
        return cli_parse_double(cmd, o->name, arg, o->lo, o->hi, (double *)field) ? MV_EXIT_USAGE
                                                                                   : 0;
    case CLI_FLOAT:
        if (cli_parse_double(cmd, o->name, arg, o->lo, o->hi, &real))
            return MV_EXIT_USAGE;
        *(float *)field = (float)real;
        return MV_EXIT_OK;
    }
    return CLI_NOT_IN_TABLE;
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
    if (mv_model_load_with(model, path, cli_hints())) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    return 0;
}

int cli_load_other_model(const char *cmd, const char *path, mv_model **model)
{
    if (mv_model_load(model, path)) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_FAIL;
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
        return MV_EXIT_USAGE;
    }
    strcpy(buf, text);
    int count = 0;
    mv_activation acts[MV_MAX_LAYERS];
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (count == MV_MAX_LAYERS || mv_activation_parse(&acts[count], tok)) {
            cli_error(cmd, "--act: %s", count == MV_MAX_LAYERS ? "too many activations"
                                                                : mv_last_error());
            return MV_EXIT_USAGE;
        }
        count++;
    }
    if (count != 1 && count != hidden) {
        cli_error(cmd, "--act names %d activations but the network has %d hidden layers", count,
                  hidden);
        return MV_EXIT_USAGE;
    }
    for (int l = 0; l < hidden; l++)
        arch->act[l] = acts[count == 1 ? 0 : l];
    return 0;
}

/* ------------------------------------------------------------------ data and model files */

void cli_free_class_names(char **names, int count)
{
    for (int i = 0; names && i < count; i++) free(names[i]);
    free(names);
}

int cli_parse_class_names(const char *cmd, const char *text, char ***names, int *count)
{
    int n = 1;
    for (const char *p = text; *p; p++) n += *p == ',';
    char **list = calloc((size_t)n, sizeof *list);
    const char *start = text;
    for (int i = 0; list && i < n; i++) {
        const size_t len = strcspn(start, ",");
        if (len == 0) { /* "a,,b" would silently shift every later label */
            cli_error(cmd, "--names '%s' has an empty class name", text);
            cli_free_class_names(list, i);
            return MV_EXIT_USAGE;
        }
        if (!(list[i] = strndup(start, len))) {
            cli_free_class_names(list, i);
            list = NULL;
        }
        start += len + 1;
    }
    if (!list) {
        cli_error(cmd, "out of memory for --names");
        return MV_EXIT_FAIL;
    }
    *names = list;
    *count = n;
    return MV_EXIT_OK;
}

int cli_load_data(const char *cmd, const char *path, const char *labels, const char *names,
                  const char *const *default_names, int n_default,
                  const mv_load_options *options, mv_dataset **out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_error(cmd, "%s: %s", path, strerror(errno));
        return MV_EXIT_FAIL;
    }
    mv_status status;
    if (S_ISDIR(st.st_mode)) {
        int skipped = 0;
        status = mv_dataset_load_folder(out, path, options, &skipped);
        if (status == MV_OK && skipped)
            fprintf(stderr, "mlpviz %s: skipped %d unreadable file(s) in %s\n", cmd, skipped,
                    path);
    } else {
        char derived[4096];
        if (!labels) {
            const char *at = strstr(path, "images-idx3");
            if (!at || strlen(path) >= sizeof derived) {
                cli_error(cmd, "%s: give the IDX label file with --labels", path);
                return MV_EXIT_FAIL;
            }
            snprintf(derived, sizeof derived, "%.*slabels-idx1%s", (int)(at - path), path,
                     at + strlen("images-idx3"));
            labels = derived;
        }
        char **list = NULL;
        int n = 0;
        const int rc = names ? cli_parse_class_names(cmd, names, &list, &n) : MV_EXIT_OK;
        if (rc)
            return rc;
        const mv_storage storage = options ? options->storage : MV_STORAGE_FLOAT;
        status = list ? mv_dataset_load_idx_as(out, path, labels, (const char *const *)list, n,
                                               storage)
                      : mv_dataset_load_idx_as(out, path, labels, default_names, n_default,
                                               storage);
        cli_free_class_names(list, n);
    }
    if (status) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    return 0;
}
