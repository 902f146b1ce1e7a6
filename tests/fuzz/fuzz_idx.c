/* fuzz_idx.c: libFuzzer harness for the IDX reader (mv_dataset_load_idx), plain or gzip.
 * The first two bytes say where the input splits into the image file and the label file. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_file.h"
#include "mlpviz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const size_t rest = size - 2, split = ((size_t)data[0] | (size_t)data[1] << 8) % (rest + 1);
    fuzz_file images, labels;
    fuzz_file_open(&images, data + 2, split);
    fuzz_file_open(&labels, data + 2 + split, rest - split);
    mv_dataset *d = NULL;
    if (mv_dataset_load_idx(&d, images.path, labels.path, NULL, 0) == MV_OK) {
        for (int i = 0; i < d->count; i++)
            if (d->labels[i] < 0 || d->labels[i] >= d->n_classes)
                abort(); /* every label must name a class */
        mv_dataset_free(d);
    }
    fuzz_file_close(&images);
    fuzz_file_close(&labels);
    return 0;
}
