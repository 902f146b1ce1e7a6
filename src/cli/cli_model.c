/* cli_model.c: `mlpviz info` (a Keras-like summary of a model file, or JSON for machines)
 * and `mlpviz export` (the weights as NumPy .npy files plus a model.json that says how to
 * run them, or the model as one ONNX file). Both load the model through mv_model_load, so
 * a file is fully validated before anything about it is printed or written. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *const info_help =
    "usage: mlpviz info MODEL [--json]\n"
    "\n"
    "Validates a model file and prints a summary: one row per layer (output shape,\n"
    "activation, parameter count), the total, the input shape and its normalisation, the\n"
    "class names, the metadata, the named extra arrays with their sizes, and the file's size\n"
    "and CRC-32.\n"
    "\n"
    "  -j, --json   print the summary as one JSON object (strings escaped, UTF-8)\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the model cannot be read or is damaged, 2 on a bad\n"
    "command line.\n";

static const char *const export_help =
    "usage: mlpviz export MODEL --npy DIR\n"
    "       mlpviz export MODEL --onnx FILE\n"
    "\n"
    "--npy writes the weights of a model as NumPy files (format 1.0, little-endian float32):\n"
    "DIR/W0.npy, DIR/b0.npy, DIR/W1.npy, ... with W of shape (outputs, inputs) and b of shape\n"
    "(outputs,), and DIR/model.json with the widths, the activations, the head, the input\n"
    "shape [channels, height, width] in HWC layout, the normalisation, the class names, the\n"
    "metadata and how to run the network: z = x @ W.T + b. DIR is created when missing; each\n"
    "file is written atomically.\n"
    "\n"
    "--onnx writes the model as one ONNX file (IR version 8, opset 17) that ONNX runtimes run\n"
    "and mlpviz reads back: input \"input\" float [N, C, H, W] (N any batch size) holding\n"
    "the normalised image x = (pixel - mean[c]) / std[c] in CHW order, then\n"
    "Flatten, one Gemm per layer, the activations as standard operators and the head\n"
    "(Softmax, Sigmoid or none), output \"output\" [N, classes]. The normalisation is not in\n"
    "the graph: metadata_props hold it (mlpviz.mean, mlpviz.std, per channel), with\n"
    "mlpviz.input_shape, mlpviz.channel_order, mlpviz.pixel_scale, mlpviz.classes (a JSON\n"
    "array), mlpviz.head and the model's metadata as mlpviz.meta.KEY (docs/onnx.md). The\n"
    "file is written atomically; its directory must exist.\n"
    "\n"
    "  -n, --npy DIR     directory to write the .npy files and model.json into\n"
    "      --onnx FILE   ONNX file to write\n"
    "  -h, --help        show this help\n"
    "\n"
    "At least one of --npy and --onnx is required; both may be given.\n"
    "\n"
    "Exit status: 0 on success, 1 when the model cannot be read or a file cannot be\n"
    "written, 2 on a bad command line.\n";

/* ---------------------------------------------------------------- JSON and text output */

/* Writes text for a terminal: control characters become \xNN so a hostile class name or
 * metadata value cannot move the cursor or change colours. */
static void print_safe(FILE *out, const char *text)
{
    for (const unsigned char *s = (const unsigned char *)text; *s; s++)
        if (*s < 0x20 || *s == 0x7F)
            fprintf(out, "\\x%02x", *s);
        else
            fputc(*s, out);
}

/* A float as the shortest JSON number that reads back as the same float32 (0.2, not
 * 0.200000003). */
static void json_float(FILE *out, float value)
{
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)value);
        if ((float)strtod(text, NULL) == value)
            break;
    }
    fputs(text, out);
}

/* A JSON array of floats. */
static void json_float_list(FILE *out, const float *values, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", out);
        json_float(out, values[i]);
    }
    fputc(']', out);
}

/* The class names as a JSON array of strings. */
static void json_class_names(FILE *out, const mv_model *m)
{
    fputc('[', out);
    for (int i = 0; i < m->n_classes; i++) {
        if (i) fputs(", ", out);
        cli_json_string(out, m->class_names[i]);
    }
    fputc(']', out);
}

/* The metadata entries, in file order, as a JSON object of strings. */
static void json_meta(FILE *out, const mv_model *m)
{
    fputc('{', out);
    for (int i = 0; i < m->n_meta; i++) {
        if (i) fputs(", ", out);
        cli_json_string(out, m->meta[i].key);
        fputs(": ", out);
        cli_json_string(out, m->meta[i].value);
    }
    fputc('}', out);
}

/* The output activation that each head applies, as a user knows it. */
static const char *head_activation(mv_head head)
{
    return head == MV_HEAD_SOFTMAX_CE ? "softmax" : head == MV_HEAD_SIGMOID_BCE ? "sigmoid"
                                                                                : "identity";
}

/* Non-zero for the activations whose parameter changes what they compute. */
static int has_param(mv_act_kind kind)
{
    return kind == MV_ACT_LEAKY_RELU || kind == MV_ACT_SCALED_RELU;
}

/* ---------------------------------------------------------------- shared plumbing */

/* ---------------------------------------------------------------- info */

/* Layer table, Keras style: the input, then one dense layer per row. */
static void print_layers(const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    const char *rule = "====================================================================";
    printf("%-20s %-14s %-22s %10s\n%s\n", "Layer (type)", "Output shape", "Activation",
           "Param #", rule);
    char shape[32], act[64];
    snprintf(shape, sizeof shape, "(None, %d)", arch->widths[0]);
    printf("%-20s %-14s %-22s %10d\n", "input (Input)", shape, "-", 0);
    for (int l = 0; l < arch->n_layers; l++) {
        const int hidden = l + 1 < arch->n_layers;
        char name[32];
        snprintf(name, sizeof name, "dense_%d (Dense)", l);
        snprintf(shape, sizeof shape, "(None, %d)", arch->widths[l + 1]);
        if (!hidden)
            snprintf(act, sizeof act, "%s (head %s)", head_activation(arch->head),
                     mv_head_name(arch->head));
        else if (has_param(arch->act[l].kind))
            snprintf(act, sizeof act, "%s(%g)", mv_act_name(arch->act[l].kind),
                     (double)arch->act[l].param);
        else
            snprintf(act, sizeof act, "%s", mv_act_name(arch->act[l].kind));
        const size_t params = (size_t)arch->widths[l + 1] * ((size_t)arch->widths[l] + 1);
        printf("%-20s %-14s %-22s %10zu\n", name, shape, act, params);
    }
    const size_t total = mv_arch_param_count(arch);
    printf("%s\nTotal params: %zu (%.2f KiB as float32)\n", rule, total,
           (double)total * 4 / 1024);
}

/* Class names, comma-separated and wrapped. */
static void print_classes(const mv_model *m)
{
    printf("\nClasses (%d):", m->n_classes);
    size_t column = 80;
    for (int i = 0; i < m->n_classes; i++) {
        const size_t len = strlen(m->class_names[i]) + 2;
        if (column + len > 78) {
            printf("\n ");
            column = 1;
        }
        printf(" ");
        print_safe(stdout, m->class_names[i]);
        printf("%s", i + 1 < m->n_classes ? "," : "");
        column += len;
    }
    printf("\n");
}

/* The human summary: file, input and normalisation, layers, classes, metadata, extras. */
static void print_summary(const char *path, const mv_model *m)
{
    printf("Model: ");
    print_safe(stdout, path);
    if (m->file.format == MV_FORMAT_ONNX)
        printf("\nFile: %llu bytes, ONNX (IR version %u, opset %s), CRC-32 0x%08x of its "
               "bytes\n\n", (unsigned long long)m->file.size, (unsigned)m->file.version,
               mv_model_meta_get(m, "onnx.opset") ? mv_model_meta_get(m, "onnx.opset") : "?",
               (unsigned)m->file.crc);
    else
        printf("\nFile: %llu bytes, format version %u, CRC-32 0x%08x (verified)\n\n",
               (unsigned long long)m->file.size, (unsigned)m->file.version,
               (unsigned)m->file.crc);
    printf("Input: %d x %d x %d (channels x height x width, stored HWC) = %d values\n",
           m->channels, m->height, m->width, m->net->arch.widths[0]);
    printf("Normalisation: x = (pixel - mean[c]) / std[c]\n");
    for (int c = 0; c < m->channels; c++)
        printf("  channel %d: mean %g, std %g\n", c, (double)m->mean[c], (double)m->std[c]);
    printf("\n");
    print_layers(m);
    print_classes(m);
    printf("\nMetadata (%d):\n", m->n_meta);
    for (int i = 0; i < m->n_meta; i++) {
        printf("  ");
        print_safe(stdout, m->meta[i].key);
        printf(" = ");
        print_safe(stdout, m->meta[i].value);
        printf("\n");
    }
    printf("\nExtras (%d):\n", m->n_extras);
    for (int e = 0; e < m->n_extras; e++)
        printf("  %-31s %zu floats (%zu bytes)\n", m->extras[e].name, m->extras[e].count,
               m->extras[e].count * sizeof(float));
}

/* The layer list of `info --json`. */
static void json_layers(FILE *out, const mv_arch *arch)
{
    fputs("[", out);
    for (int l = 0; l < arch->n_layers; l++) {
        const int hidden = l + 1 < arch->n_layers;
        fprintf(out, "%s\n    {\"name\": \"dense_%d\", \"inputs\": %d, \"outputs\": %d, "
                     "\"activation\": \"%s\", ",
                l ? "," : "", l, arch->widths[l], arch->widths[l + 1],
                hidden ? mv_act_name(arch->act[l].kind) : head_activation(arch->head));
        if (hidden) {
            fputs("\"param\": ", out);
            json_float(out, has_param(arch->act[l].kind) ? arch->act[l].param : 0);
        } else {
            fprintf(out, "\"head\": \"%s\"", mv_head_name(arch->head));
        }
        fprintf(out, ", \"params\": %zu}",
                (size_t)arch->widths[l + 1] * ((size_t)arch->widths[l] + 1));
    }
    fputs("\n  ]", out);
}

/* The same facts as print_summary, as one JSON object for machines. */
static void print_json(const char *path, const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    printf("{\n  \"file\": ");
    cli_json_string(stdout, path);
    printf(",\n  \"format\": \"%s\",\n  \"file_size\": %llu,\n  \"format_version\": %u,\n"
           "  \"crc32\": \"0x%08x\",\n", m->file.format == MV_FORMAT_ONNX ? "onnx" : "mlpviz",
           (unsigned long long)m->file.size, (unsigned)m->file.version, (unsigned)m->file.crc);
    printf("  \"input\": {\"channels\": %d, \"height\": %d, \"width\": %d, \"layout\": \"HWC\", "
           "\"mean\": ", m->channels, m->height, m->width);
    json_float_list(stdout, m->mean, m->channels);
    printf(", \"std\": ");
    json_float_list(stdout, m->std, m->channels);
    printf("},\n  \"widths\": [");
    for (int l = 0; l <= arch->n_layers; l++) printf("%s%d", l ? ", " : "", arch->widths[l]);
    printf("],\n  \"head\": \"%s\",\n  \"layers\": ", mv_head_name(arch->head));
    json_layers(stdout, arch);
    printf(",\n  \"total_params\": %zu,\n  \"classes\": ", mv_arch_param_count(arch));
    json_class_names(stdout, m);
    printf(",\n  \"meta\": ");
    json_meta(stdout, m);
    printf(",\n  \"extras\": [");
    for (int e = 0; e < m->n_extras; e++) {
        printf("%s{\"name\": ", e ? ", " : "");
        cli_json_string(stdout, m->extras[e].name);
        printf(", \"count\": %zu, \"bytes\": %zu}", m->extras[e].count,
               m->extras[e].count * sizeof(float));
    }
    printf("]\n}\n");
}

/* After the options: exactly one MODEL argument, into *path. Returns 0, or MV_EXIT_USAGE with
 * the message printed. */
static int one_model_argument(const char *cmd, int argc, char **argv, const char **path)
{
    if (optind >= argc) {
        cli_error(cmd, "a model file is required (see mlpviz %s --help)", cmd);
        return MV_EXIT_USAGE;
    }
    if (optind + 1 < argc) {
        cli_error(cmd, "unexpected argument '%s' (one model at a time)", argv[optind + 1]);
        return MV_EXIT_USAGE;
    }
    *path = argv[optind];
    return 0;
}

/* Parses `info` arguments; CLI_HELP_SHOWN after --help, 0 to go on, or an exit status. */
static int parse_info_args(int argc, char **argv, const char **path, int *json)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "info";
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "jh", longopts, NULL)) != -1;) {
        switch (opt) {
        case 'j': *json = 1; break;
        case 'h': fputs(info_help, stdout); return CLI_HELP_SHOWN;
        default: return cli_bad_option(cmd, opt, argv[optind - 1]);
        }
    }
    return one_model_argument(cmd, argc, argv, path);
}

/* `mlpviz info`: prints nothing on stdout unless the whole file validated. */
int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    int rc = parse_info_args(argc, argv, &path, &json);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    mv_model *m;
    if (cli_load_model("info", path, &m))
        return MV_EXIT_FAIL;
    if (json)
        print_json(path, m);
    else
        print_summary(path, m);
    mv_model_free(m);
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("info", "cannot write the summary: %s", strerror(errno));
        return MV_EXIT_FAIL;
    }
    return MV_EXIT_OK;
}

/* ---------------------------------------------------------------- export */

/* The "how to run it" part of model.json: plain statements a reimplementation follows. */
static void json_recipe(FILE *out)
{
    fputs("  \"how_to_run\": [\n"
          "    \"pixels: the image as [height][width][channels] values in [0, 1], flattened in "
          "that order (HWC), giving x of length widths[0]\",\n"
          "    \"x[k] = (x[k] - mean[k % channels]) / std[k % channels]\",\n"
          "    \"for each layer l: z = x @ W{l}.T + b{l} (W{l}.npy has shape (outputs, "
          "inputs))\",\n"
          "    \"hidden layers: x = activation(z); the last layer: output = "
          "output_activation(z)\"\n"
          "  ],\n"
          "  \"activation_formulas\": {\"identity\": \"z\", \"sigmoid\": \"1 / (1 + exp(-z))\", "
          "\"tanh\": \"tanh(z)\", \"relu\": \"max(z, 0)\", \"leaky_relu\": \"z if z > 0 else "
          "param * z\", \"scaled_relu\": \"param * max(z, 0)\", \"softplus\": \"log(1 + "
          "exp(z))\", \"gelu\": \"z * 0.5 * (1 + erf(z / sqrt(2)))\", \"softmax\": \"exp(z) / "
          "sum(exp(z))\"},\n",
          out);
}

/* model.json: everything needed to run the exported weights without mlpviz. */
static void json_export(FILE *out, const char *source, const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    fputs("{\n  \"format\": \"mlpviz-npy-export\",\n  \"format_version\": 1,\n  \"source\": ",
          out);
    cli_json_string(out, source);
    fputs(",\n  \"widths\": [", out);
    for (int l = 0; l <= arch->n_layers; l++) fprintf(out, "%s%d", l ? ", " : "", arch->widths[l]);
    fputs("],\n  \"hidden_activations\": [", out);
    for (int l = 0; l + 1 < arch->n_layers; l++) {
        fprintf(out, "%s{\"name\": \"%s\", \"param\": ", l ? ", " : "",
                mv_act_name(arch->act[l].kind));
        json_float(out, has_param(arch->act[l].kind) ? arch->act[l].param : 0);
        fputs("}", out);
    }
    fprintf(out, "],\n  \"head\": \"%s\",\n  \"output_activation\": \"%s\",\n",
            mv_head_name(arch->head), head_activation(arch->head));
    fputs("  \"weights\": [", out);
    for (int l = 0; l < arch->n_layers; l++)
        fprintf(out, "%s{\"W\": \"W%d.npy\", \"W_shape\": [%d, %d], \"b\": \"b%d.npy\", "
                     "\"b_shape\": [%d]}", l ? ", " : "", l, arch->widths[l + 1], arch->widths[l],
                l, arch->widths[l + 1]);
    fprintf(out, "],\n  \"input\": {\"shape\": [%d, %d, %d], \"shape_order\": "
                 "\"channels, height, width\", \"layout\": \"HWC\", \"mean\": ",
            m->channels, m->height, m->width);
    json_float_list(out, m->mean, m->channels);
    fputs(", \"std\": ", out);
    json_float_list(out, m->std, m->channels);
    fputs("},\n  \"classes\": ", out);
    json_class_names(out, m);
    fputs(",\n  \"meta\": ", out);
    json_meta(out, m);
    fputs(",\n", out);
    json_recipe(out);
    fputs("  \"run\": \"z = x @ W.T + b\"\n}\n", out);
}

/* DIR, created when missing (its parent must exist); an existing non-directory is an error. */
static int ensure_directory(const char *cmd, const char *dir)
{
    if (mv_make_directory(dir)) {
        cli_error(cmd, "--npy %s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* Writes every W/b pair, then model.json (last, so its presence means a complete export). */
static int export_files(const char *cmd, const char *source, const char *dir, const mv_model *m)
{
    const mv_arch *arch = &m->net->arch;
    char path[4096];
    for (int l = 0; l < arch->n_layers; l++) {
        const int shape[2] = {arch->widths[l + 1], arch->widths[l]}; /* (out, in) */
        snprintf(path, sizeof path, "%s/W%d.npy", dir, l);
        if (mv_npy_write(path, m->net->p.W[l], 2, shape)) {
            cli_error(cmd, "%s", mv_last_error());
            return MV_EXIT_FAIL;
        }
        snprintf(path, sizeof path, "%s/b%d.npy", dir, l);
        if (mv_npy_write(path, m->net->p.b[l], 1, shape)) {
            cli_error(cmd, "%s", mv_last_error());
            return MV_EXIT_FAIL;
        }
    }
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem) {
        cli_error(cmd, "cannot build model.json: %s", strerror(errno));
        return MV_EXIT_FAIL;
    }
    json_export(mem, source, m);
    const int bad = fclose(mem);
    snprintf(path, sizeof path, "%s/model.json", dir);
    int rc = 0;
    if (bad) {
        cli_error(cmd, "cannot build %s: out of memory", path);
        rc = MV_EXIT_FAIL;
    } else if (mv_write_file_atomic(path, text, size)) {
        cli_error(cmd, "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    free(text);
    return rc;
}

/* Parses `export` arguments; CLI_HELP_SHOWN after --help, 0 to go on, or an exit status. */
static int parse_export_args(int argc, char **argv, const char **path, const char **dir,
                             const char **onnx)
{
    enum { OPT_ONNX = 256 };
    static const struct option longopts[] = {{"npy", required_argument, 0, 'n'},
                                             {"onnx", required_argument, 0, OPT_ONNX},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "export";
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1;) {
        switch (opt) {
        case 'n': *dir = optarg; break;
        case OPT_ONNX: *onnx = optarg; break;
        case 'h': fputs(export_help, stdout); return CLI_HELP_SHOWN;
        default: return cli_bad_option(cmd, opt, argv[optind - 1]);
        }
    }
    const int rc = one_model_argument(cmd, argc, argv, path);
    if (rc)
        return rc;
    if (*dir && !**dir) {
        cli_error(cmd, "--npy needs a directory name, not an empty one");
        return MV_EXIT_USAGE;
    }
    if (*onnx && !**onnx) {
        cli_error(cmd, "--onnx needs a file name, not an empty one");
        return MV_EXIT_USAGE;
    }
    if (!*dir && !*onnx) {
        cli_error(cmd, "--npy DIR or --onnx FILE is required: what to write the model as");
        return MV_EXIT_USAGE;
    }
    return 0;
}

/* `mlpviz export`: nothing is touched until the model has loaded. */
int cmd_export(int argc, char **argv)
{
    const char *cmd = "export", *path = NULL, *dir = NULL, *onnx = NULL;
    int rc = parse_export_args(argc, argv, &path, &dir, &onnx);
    if (rc)
        return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
    mv_model *m;
    if (cli_load_model(cmd, path, &m))
        return MV_EXIT_FAIL;
    if (dir) {
        rc = ensure_directory(cmd, dir) || export_files(cmd, path, dir, m) ? MV_EXIT_FAIL
                                                                           : MV_EXIT_OK;
        if (!rc)
            printf("export: wrote %d weight and %d bias arrays and model.json to %s\n",
                   m->net->arch.n_layers, m->net->arch.n_layers, dir);
    }
    if (onnx && !rc) {
        if (mv_model_save_onnx(m, onnx)) {
            cli_error(cmd, "%s", mv_last_error()); /* the message names the file */
            rc = MV_EXIT_FAIL;
        } else {
            printf("export: wrote %s (ONNX, opset 17, %d layers, input %d x %d x %d CHW)\n",
                   onnx, m->net->arch.n_layers, m->channels, m->height, m->width);
        }
    }
    mv_model_free(m);
    return rc;
}
