/* fuzz_png_info.c: libFuzzer harness for the metadata reading alone (mv_image_info), the
 * step every image of a folder goes through before any decode. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_file.h"
#include "mlpviz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file f;
    fuzz_file_open(&f, data, size);
    int w = -1, h = -1, c = -1;
    if (mv_image_info(f.path, &w, &h, &c) == MV_OK && (w < 1 || h < 1 || c < 1 || c > 4))
        abort();
    fuzz_file_close(&f);
    return 0;
}
