/* fuzz_image.c: libFuzzer harness for the image-folder loader's per-file path: the header
 * probe (mv_image_info), then the decode at the image's own size and resized to 28 x 28, in
 * 1 or 3 channels, under a pixel limit as the loader applies it; and where the loader would
 * keep bytes (8-bit samples, no luminance mix), the bytes must be the floats * 255 exactly. */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>

#include "fuzz_file.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_PIXELS = 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file f;
    fuzz_file_open(&f, data, size);
    int w, h, c;
    if (mv_image_info(f.path, &w, &h, &c) == MV_OK) {
        if (w < 1 || h < 1 || c < 1 || c > 4)
            abort(); /* the probe promises a size and 1..4 channels */
        const int channels = size && (data[size - 1] & 1) ? 3 : 1;
        if ((long long)w * h <= MAX_PIXELS) {
            const size_t n = (size_t)w * h * channels;
            float *own = malloc(sizeof *own * n);
            uint8_t *bytes = malloc(n);
            const int loaded = own && mv_image_load(f.path, channels, w, h, MAX_PIXELS, own) == MV_OK;
            for (size_t i = 0; loaded && i < n; i++)
                if (!(own[i] >= 0 && own[i] <= 1))
                    abort(); /* pixels are in [0, 1] */
            /* Some damaged files decode to pixels stb never wrote, which differ from one
             * decode to the next: a paletted image (PNG, BMP of 8 bits or fewer, GIF, TGA with a
             * colour map) whose indices run past its palette takes uninitialised entries of a
             * palette on stb's stack (left out here: the two paths' stacks differ), and others
             * show by decoding twice. Only files whose pixels are
             * defined can hold bytes to floats (docs/RELIABILITY.md, "Not done yet"). */
            const int palette = (size > 25 && memcmp(data, "\x89PNG", 4) == 0 && data[25] == 3) ||
                                (size > 29 && memcmp(data, "BM", 2) == 0 && data[28] <= 8) ||
                                (size > 3 && memcmp(data, "GIF", 3) == 0) ||
                                (size > 2 && data[1] == 1 && (data[2] == 1 || data[2] == 9));
            float *again = loaded && !palette ? malloc(sizeof *again * n) : NULL;
            const int stable = again && mv_image_load(f.path, channels, w, h, MAX_PIXELS, again) ==
                                            MV_OK && memcmp(again, own, sizeof *own * n) == 0;
            free(again);
            int w2, h2, c2, sixteen;
            const int exact = stable && mv_image_probe(f.path, &w2, &h2, &c2, &sixteen) == MV_OK &&
                              !sixteen && (c2 <= 2 || channels == 3);
            if (exact && bytes &&
                mv_image_load_bytes(f.path, channels, w, h, MAX_PIXELS, bytes) == MV_OK)
                for (size_t i = 0; i < n; i++)
                    if (bytes[i] / 255.0f != own[i])
                        abort(); /* 8-bit storage gives the float loader's pixels */
            free(own);
            free(bytes);
        }
        float small[28 * 28 * 3];
        (void)mv_image_load(f.path, channels, 28, 28, MAX_PIXELS, small);
    }
    fuzz_file_close(&f);
    return 0;
}
