/* shapes.c: see shapes.h.
 *
 * Why these ten classes: each is a shape a person names at a glance, and together they pair
 * up so that a class visualization must show the right detail to be legible:
 * - filled against outlined: circle / ring, square / frame (interior against edge);
 * - orientation: hbar / vbar (90 degrees apart), plus / x and square / diamond (45 degrees
 *   apart, far more than the +-12 degree rotation jitter, +-8 for the diamond, so no
 *   rotation turns one into the other);
 * - corners against curves: circle / square / diamond, ring / frame;
 * - triangle, the one class that is not symmetric top to bottom (it points up).
 * The filled shapes are sized to cover about the same area (square half-side 0.9 r, circle
 * radius r), so that brightness alone does not separate them.
 *
 * Drawing: every pixel is the coverage of its 4 x 4 sub-samples by the shape (so edges are
 * anti-aliased), times a random intensity, plus a little Gaussian noise, clipped to [0, 1]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shapes.h"
#include "synthetic.h"

const char *const shapes_class_names[SHAPES_CLASSES] = {
    "circle", "diamond", "frame", "hbar", "plus", "ring", "square", "triangle", "vbar", "x"};

enum { CIRCLE, DIAMOND, FRAME, HBAR, PLUS, RING, SQUARE, TRIANGLE, VBAR, X };

#define NOMINAL 20.0      /* the nominal shape spans 20 px, like an MNIST digit's box */
#define MAX_OFFSET 3.0    /* centre offset, px, each axis */
#define MAX_ROTATION 12.0 /* degrees, either way */
#define MAX_ROTATION_DIAMOND 8.0 /* a diamond turned by 12 degrees already reads as a square
                                    tilted by 33: keep its corners pointing up and sideways */
#define SUPER 4           /* sub-samples per pixel along each axis */
#define NOISE_SD 0.03

/* Whether the point (u, v), in the shape's own frame (centre at 0, y down, unrotated), lies
 * inside shape `label` of size r (radius of the circle) and stroke width w. */
static int inside(int label, double u, double v, double r, double w)
{
    const double au = fabs(u), av = fabs(v), half = w / 2;
    switch (label) {
    case CIRCLE: return u * u + v * v <= r * r;
    case DIAMOND: return au + av <= 1.15 * r;
    case FRAME: {
        const double m = fmax(au, av);
        return m <= 0.9 * r && m >= 0.9 * r - w;
    }
    case HBAR: return au <= r && av <= half;
    case PLUS: return (au <= r && av <= half) || (av <= r && au <= half);
    case RING: {
        const double d2 = u * u + v * v;
        return d2 <= r * r && d2 >= (r - w) * (r - w);
    }
    case SQUARE: return au <= 0.9 * r && av <= 0.9 * r;
    case TRIANGLE: {
        /* Equilateral, pointing up, circumradius R, its bounding box centred. */
        const double R = 1.15 * r;
        return v >= -0.75 * R && v <= 0.75 * R && au <= (v + 0.75 * R) / sqrt(3.0);
    }
    case VBAR: return av <= r && au <= half;
    default: { /* X: the plus turned by 45 degrees, with arms long enough to reach the corners
                  of the box the other shapes fill */
        const double a = fabs(u + v) / sqrt(2.0), b = fabs(u - v) / sqrt(2.0);
        return (a <= 1.25 * r && b <= half) || (b <= 1.25 * r && a <= half);
    }
    }
}

void shapes_image(int label, mv_rng *rng, float *out)
{
    /* The same draws in the same order for every class. */
    const double cx = SHAPES_SIZE / 2.0 + MAX_OFFSET * (2 * mv_rng_uniform(rng) - 1);
    const double cy = SHAPES_SIZE / 2.0 + MAX_OFFSET * (2 * mv_rng_uniform(rng) - 1);
    const double r = NOMINAL / 2 * (0.6 + 0.35 * mv_rng_uniform(rng));
    double w = 2 + 2 * mv_rng_uniform(rng);
    const double angle = (label == DIAMOND ? MAX_ROTATION_DIAMOND : MAX_ROTATION) *
                         (2 * mv_rng_uniform(rng) - 1) * 3.14159265358979323846 / 180;
    const double intensity = 0.8 + 0.2 * mv_rng_uniform(rng);
    if (w > 0.4 * r) /* keeps the hole of a small ring or frame open */
        w = 0.4 * r;
    const double c = cos(angle), s = sin(angle);
    for (int py = 0; py < SHAPES_SIZE; py++)
        for (int px = 0; px < SHAPES_SIZE; px++) {
            int hits = 0;
            for (int sy = 0; sy < SUPER; sy++)
                for (int sx = 0; sx < SUPER; sx++) {
                    const double dx = px + (sx + 0.5) / SUPER - cx;
                    const double dy = py + (sy + 0.5) / SUPER - cy;
                    /* into the shape's frame: rotate by -angle */
                    hits += inside(label, c * dx + s * dy, -s * dx + c * dy, r, w);
                }
            double value = intensity * hits / (SUPER * SUPER) + NOISE_SD * mv_rng_normal(rng);
            out[py * SHAPES_SIZE + px] = (float)(value < 0 ? 0 : value > 1 ? 1 : value);
        }
}

mv_status shapes_dataset(int per_class, uint64_t seed, mv_dataset **out)
{
    const size_t pixels = SHAPES_SIZE * SHAPES_SIZE;
    if (!out || per_class < 1 || per_class > INT32_MAX / SHAPES_CLASSES)
        return MV_ERR_ARG;
    mv_dataset *d;
    mv_status st = synth_alloc(per_class * SHAPES_CLASSES, SHAPES_SIZE, SHAPES_CLASSES,
                               shapes_class_names, &d);
    if (st)
        return st;
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int i = 0; i < d->count; i++)
        shapes_image(d->labels[i], &rng, d->pixels + (size_t)i * pixels);
    *out = d;
    return MV_OK;
}

int shapes_write_folder(const char *root, int per_class, uint64_t seed)
{
    mv_dataset *data = NULL;
    if (shapes_dataset(per_class, seed, &data))
        return 1;
    const mv_status status = mv_dataset_write_folder(data, root);
    mv_dataset_free(data);
    return status == MV_OK ? 0 : 2;
}
