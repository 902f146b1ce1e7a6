/* shapes.h: a small dataset of our own making on which class visualizations can be judged
 * for legibility: ten classes of 28 x 28 gray line-drawn and filled shapes, light on black
 * like MNIST, anti-aliased, with random position, size, stroke width, rotation, intensity
 * and noise. Every image comes from an mv_rng, so a seed gives the same data everywhere. */
#ifndef MV_SHAPES_H
#define MV_SHAPES_H

#include <stdint.h>

#include "mlpviz.h"

#define SHAPES_CLASSES 10
#define SHAPES_SIZE 28 /* images are SHAPES_SIZE x SHAPES_SIZE */

/* Class names in label order (already sorted bytewise, as a folder loader sorts them):
 * circle, diamond, frame, hbar, plus, ring, square, triangle, vbar, x. */
extern const char *const shapes_class_names[SHAPES_CLASSES];

/* One 28 x 28 gray image of class `label` (0 .. SHAPES_CLASSES-1) into out [28*28],
 * values in [0, 1]. Draws a fixed number of values from rng whatever the label. */
void shapes_image(int label, mv_rng *rng, float *out);

/* A dataset of per_class images of each class, gray, 28 x 28, labels interleaved
 * (0, 1, ..., 9, 0, 1, ...), made from one generator seeded with `seed`.
 * *out belongs to the caller (mv_dataset_free). */
mv_status shapes_dataset(int per_class, uint64_t seed, mv_dataset **out);

/* Writes the images of shapes_dataset(per_class, seed) as 8-bit gray PNGs
 * root/<class>/<5-digit index>.png (mv_dataset_write_folder; root is created, its parent
 * must exist). Returns 0 on success, 1 when the images could not be made (per_class out of
 * range or out of memory), 2 when writing failed (mv_last_error() then says why). */
int shapes_write_folder(const char *root, int per_class, uint64_t seed);

#endif
