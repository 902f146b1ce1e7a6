/* tool_model_outputs.c: a model's outputs on seeded images, as exact float32 files, for the
 * shell suites that compare mlpviz with another implementation of the same network:
 *
 *   tool_model_outputs MODEL N SEED PIXELS.npy OUTPUTS.npy
 *
 * Loads MODEL with mv_model_load (an mlpviz file or an ONNX file), draws N images of pixels
 * uniform in [0, 1) from SEED (the project's generator; image 0 is all zeros, image 1 all
 * ones when N > 2, so the ends of the pixel range are covered), writes them as PIXELS.npy of
 * shape (N, H, W, C) (mlpviz's HWC layout) and the model's outputs (mv_model_predict:
 * normalisation, network, head) as OUTPUTS.npy of shape (N, K). Both are float32, so two
 * runs agree byte for byte exactly when the outputs are bit-identical. Exit 0, 1 when the
 * model cannot be read or a file written (the message on stderr), 2 on a bad command line. */
#include <stdio.h>
#include <stdlib.h>

#include "mlpviz.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: tool_model_outputs MODEL N SEED PIXELS.npy OUTPUTS.npy\n");
        return 2;
    }
    const int n = atoi(argv[2]);
    if (n < 1 || n > 4096) {
        fprintf(stderr, "tool_model_outputs: N must be 1 to 4096\n");
        return 2;
    }
    mv_model *m = NULL;
    mv_status st = mv_model_load(&m, argv[1]);
    if (st) {
        fprintf(stderr, "tool_model_outputs: %s\n", mv_last_error());
        return 1;
    }
    const int H = m->height, W = m->width, C = m->channels, K = m->n_classes;
    const size_t D = (size_t)H * (size_t)W * (size_t)C;
    float *pixels = malloc(sizeof *pixels * D * (size_t)n);
    float *outputs = malloc(sizeof *outputs * (size_t)K * (size_t)n);
    if (!pixels || !outputs) {
        st = MV_ERR_NOMEM;
        fprintf(stderr, "tool_model_outputs: out of memory\n");
    } else {
        mv_rng rng;
        mv_rng_seed(&rng, strtoull(argv[3], NULL, 10));
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < D; k++)
                pixels[(size_t)i * D + k] = n > 2 && i < 2 ? (float)i
                                                           : (float)mv_rng_uniform(&rng);
        const int pshape[4] = {n, H, W, C}, oshape[2] = {n, K};
        if ((st = mv_model_predict(m, pixels, n, outputs)) ||
            (st = mv_npy_write(argv[4], pixels, 4, pshape)) ||
            (st = mv_npy_write(argv[5], outputs, 2, oshape)))
            fprintf(stderr, "tool_model_outputs: %s\n", mv_last_error());
    }
    free(pixels);
    free(outputs);
    mv_model_free(m);
    return st ? 1 : 0;
}
