/* fuzz_onnx.c: libFuzzer harness for the ONNX reader (mv_model_load_with on an ONNX file).
 * A fuzzed file rarely carries mlpviz metadata, so each input is loaded up to three times:
 * as it is (no hints: the file's metadata_props must say everything), then with hints
 * mean 0, std 1 and one class name, and, when the loader's message says how many outputs
 * the network has ("N class names given for a network of K outputs", K <= 4096) or that the
 * input shape is unknown, once more with K class names and a 1x4x4 input shape. A model that
 * loads must be usable: its network runs on one image and gives probabilities in [0, 1].
 * The memfd path has no folder with a sidecar or external data next to it, so those paths
 * only meet missing files here (tests/cli_onnx_hostile.sh covers them with real files). */
#define _GNU_SOURCE /* memfd_create */
#include <stdio.h>
#include <string.h>

#include "fuzz_file.h"
#include "mlpviz.h"

#define MAX_NAMES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char name_text[MAX_NAMES][8];
static const char *names[MAX_NAMES];

/* Runs a loaded model on one blank image and checks what it gives. */
static void use(mv_model *m)
{
    const int D = m->net->arch.widths[0], K = m->n_classes;
    if (D != m->channels * m->height * m->width)
        abort(); /* the network must take the image */
    float *pixels = calloc((size_t)D, sizeof *pixels), *probs = malloc(sizeof *probs * K);
    if (pixels && probs && mv_model_predict(m, pixels, 1, probs) == MV_OK &&
        m->net->arch.head != MV_HEAD_IDENTITY_MSE)
        for (int k = 0; k < K; k++)
            if (!(probs[k] >= 0 && probs[k] <= 1))
                abort(); /* a loaded model must give probabilities */
    for (int k = 0; k < K; k++)
        if (strlen(m->class_names[k]) == 0)
            abort();
    free(pixels);
    free(probs);
    mv_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!names[0])
        for (int i = 0; i < MAX_NAMES; i++) {
            snprintf(name_text[i], sizeof name_text[i], "c%d", i);
            names[i] = name_text[i];
        }
    fuzz_file f;
    fuzz_file_open(&f, data, size);
    mv_model *m = NULL;
    if (mv_model_load_with(&m, f.path, NULL) == MV_OK) {
        use(m);
        fuzz_file_close(&f);
        return 0;
    }
    mv_model_hints h = {.n_mean = 1, .n_std = 1, .std = {1}, .class_names = names,
                        .n_classes = 1};
    mv_status st = mv_model_load_with(&m, f.path, &h);
    if (st == MV_OK) {
        use(m);
    } else {
        const char *msg = mv_last_error(), *at = strstr(msg, "class names given for a "
                                                         "network of ");
        int K = 0;
        if (at)
            sscanf(at + strlen("class names given for a network of "), "%d", &K);
        if (strstr(msg, "does not say its input_shape"))
            h.channels = 1, h.height = 4, h.width = 4;
        if ((K >= 1 && K <= MAX_NAMES) || h.channels) {
            h.n_classes = K >= 1 && K <= MAX_NAMES ? K : 1;
            if (mv_model_load_with(&m, f.path, &h) == MV_OK)
                use(m);
        }
    }
    fuzz_file_close(&f);
    return 0;
}
