/* bench.c: `make bench`, timed workloads of the library on this machine (medians of several
 * runs, wall clock). Targets live here, never in the unit tests:
 *   visualize: 10 classes x 500 steps of 28x28 on the committed model, with gradient blur
 *   every step, normalized steps, decay, image blur every 4 steps and clamping (issue 4:
 *   under 0.5 s on 2 cores).
 * usage: bench [MODEL] [RUNS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#include "mlpviz.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median wall seconds of `runs` visualizations of every class, `seeds` images each. */
static double time_visualize(const mv_model *m, int seeds, int steps, int runs)
{
    const int n = m->n_classes * seeds;
    const size_t D = (size_t)m->width * m->height * m->channels;
    int *targets = malloc(sizeof *targets * (size_t)n);
    float *images = malloc(sizeof *images * D * (size_t)n);
    mv_viz_result *results = malloc(sizeof *results * (size_t)n);
    double *t = malloc(sizeof *t * (size_t)runs);
    if (!targets || !images || !results || !t) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (int r = 0; r < n; r++) targets[r] = r % m->n_classes;
    mv_viz_config c;
    mv_viz_defaults(&c); /* gradient blur 1 every step, normalized, decay, blur every 4, clamp */
    c.steps = steps;
    c.jitter = 0;
    for (int i = 0; i < runs; i++) {
        const double t0 = now();
        if (mv_visualize(m, &c, targets, n, NULL, images, results)) {
            fprintf(stderr, "bench: %s\n", mv_last_error());
            exit(1);
        }
        t[i] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, compare_doubles);
    const double median = t[runs / 2];
    free(targets);
    free(images);
    free(results);
    free(t);
    return median;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/fashion-mnist.mlp";
    const int runs = argc > 2 ? atoi(argv[2]) : 7;
    mv_model *m;
    if (runs < 1 || mv_model_load(&m, path)) {
        fprintf(stderr, "bench: %s\n", runs < 1 ? "RUNS must be positive" : mv_last_error());
        return 1;
    }
    printf("model %s (%d threads), median of %d runs\n", path, omp_get_max_threads(), runs);
    const double s1 = time_visualize(m, 1, 500, runs);
    printf("visualize  10 classes x 1 seed   x 500 steps: %8.3f s  (%6.0f steps/s; target < 0.5 s)\n",
           s1, 500 / s1);
    const double s64 = time_visualize(m, 64, 500, runs > 3 ? 3 : runs);
    printf("visualize  10 classes x 64 seeds x 500 steps: %8.3f s  (%6.0f image-steps/s)\n", s64,
           640 * 500 / s64);
    mv_model_free(m);
    return 0;
}
