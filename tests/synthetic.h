/* synthetic.h: small image classes that a test can make in a moment and a good MLP must
 * separate almost perfectly: stripes of four orientations, with random phase, contrast
 * and noise. */
#ifndef MV_SYNTHETIC_H
#define MV_SYNTHETIC_H

#include "mlpviz.h"

#define SYNTH_CLASSES 4

/* Class names in label order (already sorted bytewise, as a folder loader sorts them). */
extern const char *const synth_class_names[SYNTH_CLASSES];

/* One size x size gray image of class `label` into out [size*size], values in [0, 1]. */
void synth_image(int label, int size, mv_rng *rng, float *out);

/* An uninitialised gray dataset of count size x size images of n_classes classes named
 * names, labels interleaved (image i has label i % n_classes). *out belongs to the caller
 * (mv_dataset_free). */
mv_status synth_alloc(int count, int size, int n_classes, const char *const *names,
                      mv_dataset **out);

/* A dataset of per_class images of each class, gray, size x size, labels interleaved.
 * *out belongs to the caller (mv_dataset_free). */
mv_status synth_dataset(int per_class, int size, uint64_t seed, mv_dataset **out);

/* Writes per_class images of each class under root/<class>/, cycling through PNG, BMP, TGA
 * and JPEG files (and one RGB PNG per class), so that loaders meet mixed formats. Returns 0
 * on success. */
int synth_write_folder(const char *root, int per_class, int size, uint64_t seed);

#endif
