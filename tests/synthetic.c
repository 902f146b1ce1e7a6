/* synthetic.c: see synthetic.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "synthetic.h"

const char *const synth_class_names[SYNTH_CLASSES] = {"diagonal", "horizontal", "rings",
                                                      "vertical"};

void synth_image(int label, int size, mv_rng *rng, float *out)
{
    const double phase = 6.283185307179586 * mv_rng_uniform(rng);
    const double contrast = 0.3 + 0.2 * mv_rng_uniform(rng);
    const double period = 3.0 + 2.0 * mv_rng_uniform(rng);
    const double c = (size - 1) / 2.0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double t;
            switch (label) {
            case 0: t = (x + y) / 1.414; break;
            case 1: t = y; break;
            case 2: t = sqrt((x - c) * (x - c) + (y - c) * (y - c)); break;
            default: t = x; break;
            }
            double v = 0.5 + contrast * sin(6.283185307179586 * t / period + phase);
            v += 0.08 * (mv_rng_uniform(rng) - 0.5);
            out[y * size + x] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
        }
}

mv_status synth_alloc(int count, int size, int n_classes, const char *const *names,
                      mv_dataset **out)
{
    mv_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return MV_ERR_NOMEM;
    *d = (mv_dataset){.count = count, .channels = 1, .height = size, .width = size,
                      .n_classes = n_classes};
    d->class_names = calloc((size_t)n_classes, sizeof *d->class_names);
    d->pixels = malloc(sizeof *d->pixels * (size_t)count * size * size);
    d->labels = malloc(sizeof *d->labels * (size_t)count);
    int ok = d->class_names && d->pixels && d->labels;
    for (int k = 0; ok && k < n_classes; k++)
        ok = (d->class_names[k] = strdup(names[k])) != NULL;
    if (!ok) {
        mv_dataset_free(d);
        return MV_ERR_NOMEM;
    }
    for (int i = 0; i < count; i++) d->labels[i] = i % n_classes;
    *out = d;
    return MV_OK;
}

mv_status synth_dataset(int per_class, int size, uint64_t seed, mv_dataset **out)
{
    mv_dataset *d;
    mv_status st = synth_alloc(per_class * SYNTH_CLASSES, size, SYNTH_CLASSES,
                               synth_class_names, &d);
    if (st)
        return st;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int i = 0; i < d->count; i++)
        synth_image(d->labels[i], size, &rng, d->pixels + (size_t)i * size * size);
    *out = d;
    return MV_OK;
}

/* Writes one image in the format chosen by `i`; RGB copies for the first of each class. */
static int write_one(const char *dir, int i, int size, const float *gray)
{
    unsigned char bytes[3 * 64 * 64];
    const int rgb = i == 0, channels = rgb ? 3 : 1;
    for (int p = 0; p < size * size; p++)
        for (int c = 0; c < channels; c++)
            bytes[p * channels + c] = (unsigned char)lrintf(gray[p] * 255);
    char path[1100];
    static const char *const ext[4] = {"png", "bmp", "tga", "jpg"};
    if (snprintf(path, sizeof path, "%.1024s/img %03d.%s", dir, i % 1000, ext[i % 4]) < 0)
        return 1;
    switch (i % 4) {
    case 0: return !stbi_write_png(path, size, size, channels, bytes, size * channels);
    case 1: return !stbi_write_bmp(path, size, size, channels, bytes);
    case 2: return !stbi_write_tga(path, size, size, channels, bytes);
    default: return !stbi_write_jpg(path, size, size, channels, bytes, 95);
    }
}

int synth_write_folder(const char *root, int per_class, int size, uint64_t seed)
{
    if (size > 64 || (mkdir(root, 0755) && access(root, F_OK)))
        return 1;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    float gray[64 * 64];
    for (int k = 0; k < SYNTH_CLASSES; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, synth_class_names[k]);
        if (mkdir(dir, 0755) && access(dir, F_OK))
            return 1;
        for (int i = 0; i < per_class; i++) {
            synth_image(k, size, &rng, gray);
            if (write_one(dir, i, size, gray))
                return 1;
        }
    }
    return 0;
}
