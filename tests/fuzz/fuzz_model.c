/* fuzz_model.c: libFuzzer harness for the model loader (mv_model_load). A file that loads
 * must also be usable: its network runs on one image and its class names are non-empty.
 * Every input is tried twice: as it is (the CRC almost always rejects a mutated file), and
 * with its last four bytes replaced by the right CRC-32, so that the fuzzer reaches the
 * section parser behind the checksum. */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>

#include "fuzz_file.h"
#include "mlpviz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads data[0..size) and, when it loads, uses it. */
static void try_model(const uint8_t *data, size_t size)
{
    fuzz_file f;
    fuzz_file_open(&f, data, size);
    mv_model *m = NULL;
    if (mv_model_load(&m, f.path) == MV_OK) {
        const int D = m->net->arch.widths[0], K = m->n_classes;
        float *pixels = calloc((size_t)D, sizeof *pixels), *probs = malloc(sizeof *probs * K);
        if (pixels && probs && mv_model_predict(m, pixels, 1, probs) == MV_OK &&
            m->net->arch.head != MV_HEAD_IDENTITY_MSE)
            for (int k = 0; k < K; k++)
                if (!(probs[k] >= 0 && probs[k] <= 1))
                    abort(); /* a validated model must give probabilities */
        for (int k = 0; k < K; k++)
            if (strlen(m->class_names[k]) == 0)
                abort(); /* names are validated non-empty */
        free(pixels);
        free(probs);
        mv_model_free(m);
    }
    fuzz_file_close(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_model(data, size);
    if (size >= 16) {
        uint8_t *fixed = malloc(size);
        if (!fixed)
            return 0;
        memcpy(fixed, data, size);
        const uint32_t crc = mv_crc32(0, fixed, size - 4);
        for (int i = 0; i < 4; i++) fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        try_model(fixed, size);
        free(fixed);
    }
    return 0;
}
