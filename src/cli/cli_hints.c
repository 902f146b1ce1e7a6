/* cli_hints.c: the options that tell mlpviz how to feed an ONNX model whose file does not say
 * (--input-shape, --mean, --std, --classes, --channel-order, --pixel-scale). Every command
 * that takes a MODEL accepts them, so the dispatcher takes them out of argv before the
 * command's own parser runs, and cli_load_model passes them to the library. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static mv_model_hints hints;
static char **class_names;
static int n_class_names;
static char taken_text[1024]; /* the options as given, for a record of the command */

static const char *const hint_options[] = {"input-shape", "mean", "std", "classes",
                                           "channel-order", "pixel-scale"};

void cli_hints_help(FILE *out)
{
    fputs("\nONNX models (docs/onnx.md) say how to feed them in their metadata_props or a\n"
          "sidecar MODEL.onnx.json; for one that does not (e.g. torch.onnx.export's defaults):\n"
          "  --input-shape CxHxW    image shape, e.g. 1x28x28 (else from the graph's input)\n"
          "  --mean M[,M,M]         per-channel mean of the graph's input (pixel x scale)\n"
          "  --std S[,S,S]          per-channel standard deviation, likewise\n"
          "  --classes FILE         class names, one per line, in output order\n"
          "  --channel-order ORDER  chw (default, PyTorch) or hwc\n"
          "  --pixel-scale S        graph-input value of a white pixel: 1 (default) or 255\n",
          out);
}

/* "a,b,c" numbers into values[0..n). */
static int parse_list(const char *cmd, const char *option, const char *text, float *values,
                      int *n)
{
    char buf[256];
    if (strlen(text) >= sizeof buf) {
        cli_error(cmd, "--%s: too long", option);
        return MV_EXIT_USAGE;
    }
    strcpy(buf, text);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (*n == 4) {
            cli_error(cmd, "--%s: at most 4 values (one per channel)", option);
            return MV_EXIT_USAGE;
        }
        if (cli_parse_double(cmd, option, tok, -1e30, 1e30, &v))
            return MV_EXIT_USAGE;
        values[(*n)++] = (float)v;
    }
    if (*n == 0 || text[strlen(text) - 1] == ',' || text[0] == ',' || strstr(text, ",,")) {
        cli_error(cmd, "--%s: '%s' is not a comma-separated list of numbers", option, text);
        return MV_EXIT_USAGE;
    }
    return MV_EXIT_OK;
}

/* Class names from a file, one per line; blank lines are refused (they would shift every
 * later class), a final newline and CR line ends are allowed. */
static int read_classes(const char *cmd, const char *path)
{
    unsigned char *data;
    size_t size;
    if (mv_read_file(path, 1 << 24, &data, &size)) {
        cli_error(cmd, "--classes: %s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    int rc = MV_EXIT_OK;
    char *text = (char *)data, *end = text + size;
    if (size && memchr(text, '\0', size))
        rc = MV_EXIT_FAIL, cli_error(cmd, "--classes: %s: not a text file", path);
    while (!rc && text < end) {
        char *nl = memchr(text, '\n', (size_t)(end - text)), *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - text);
        if (len && text[len - 1] == '\r')
            len--;
        char **grown = realloc(class_names, sizeof *grown * (size_t)(n_class_names + 1));
        if (!grown || !len || !(grown[n_class_names] = strndup(text, len))) {
            if (grown)
                class_names = grown;
            cli_error(cmd, "--classes: %s: line %d is %s", path, n_class_names + 1,
                      len ? "too much for memory" : "empty (one class name per line)");
            rc = MV_EXIT_FAIL;
            break;
        }
        class_names = grown;
        n_class_names++;
        text = line_end + 1;
    }
    free(data);
    if (!rc && !n_class_names)
        rc = MV_EXIT_FAIL, cli_error(cmd, "--classes: %s: no class names", path);
    hints.class_names = (const char *const *)class_names;
    hints.n_classes = n_class_names;
    return rc;
}

/* One option's value into the hints. */
static int take_one(const char *cmd, int which, const char *value)
{
    const char *option = hint_options[which];
    switch (which) {
    case 0: {
        char tail;
        if (sscanf(value, "%dx%dx%d%c", &hints.channels, &hints.height, &hints.width,
                   &tail) != 3 || hints.channels < 1 || hints.channels > 4 ||
            hints.height < 1 || hints.width < 1) {
            cli_error(cmd, "--input-shape: '%s' is not CxHxW with C 1 to 4 (e.g. 1x28x28)",
                      value);
            return MV_EXIT_USAGE;
        }
        return MV_EXIT_OK;
    }
    case 1: return parse_list(cmd, option, value, hints.mean, &hints.n_mean);
    case 2: return parse_list(cmd, option, value, hints.std, &hints.n_std);
    case 3: return read_classes(cmd, value);
    case 4:
        if (strcmp(value, "chw") && strcmp(value, "hwc")) {
            cli_error(cmd, "--channel-order: '%s' is not chw or hwc", value);
            return MV_EXIT_USAGE;
        }
        hints.channel_order_hwc = !strcmp(value, "hwc");
        return MV_EXIT_OK;
    default: {
        double v;
        if (cli_parse_double(cmd, option, value, 1e-6, 1e6, &v))
            return MV_EXIT_USAGE;
        hints.pixel_scale = (float)v;
        return MV_EXIT_OK;
    }
    }
}

/* Which hint option argv[i] is ("--mean", "--mean=..."), or -1; *value gets an inline value. */
static int match(const char *arg, const char **value)
{
    for (int k = 0; k < (int)(sizeof hint_options / sizeof *hint_options); k++) {
        const size_t n = strlen(hint_options[k]);
        if (strncmp(arg, "--", 2) || strncmp(arg + 2, hint_options[k], n))
            continue;
        if (arg[2 + n] == '\0' || arg[2 + n] == '=') {
            *value = arg[2 + n] == '=' ? arg + 3 + n : NULL;
            return k;
        }
    }
    return -1;
}

int cli_take_hints(const char *cmd, int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *value = NULL;
        const int which = strcmp(argv[i], "--") ? match(argv[i], &value) : -1;
        if (!strcmp(argv[i], "--")) { /* the rest are operands: keep them as they are */
            while (i < *argc) argv[out++] = argv[i++];
            break;
        }
        if (which < 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (!value && (value = i + 1 < *argc ? argv[++i] : NULL) == NULL) {
            cli_error(cmd, "--%s needs a value", hint_options[which]);
            return MV_EXIT_USAGE;
        }
        const int rc = take_one(cmd, which, value);
        if (rc)
            return rc;
        const size_t used = strlen(taken_text);
        snprintf(taken_text + used, sizeof taken_text - used, " --%s %s", hint_options[which],
                 value);
    }
    argv[out] = NULL;
    *argc = out;
    return MV_EXIT_OK;
}

const mv_model_hints *cli_hints(void) { return &hints; }

const char *cli_hints_text(void) { return taken_text; }

void cli_hints_free(void)
{
    for (int i = 0; i < n_class_names; i++) free(class_names[i]);
    free(class_names);
    class_names = NULL;
    n_class_names = 0;
    taken_text[0] = '\0';
}
