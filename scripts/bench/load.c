/* load.c: how long mv_model_load takes on each file given, the median of --runs loads (after
 * one untimed load that brings the file into the page cache). For the ONNX target of issue
 * 13: an ONNX file loads in no more than twice the time of the same weights in mlpviz's own
 * format (scripts/bench/onnx_load.sh makes the pair). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlpviz.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = 9, first = 1;
    if (argc > 2 && !strcmp(argv[1], "--runs")) {
        runs = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: load [--runs N] MODEL...\n");
        return 2;
    }
    for (int f = first; f < argc; f++) {
        double t[1000];
        for (int r = -1; r < runs; r++) {
            mv_model *m;
            const double start = now();
            if (mv_model_load(&m, argv[f])) {
                fprintf(stderr, "load: %s\n", mv_last_error());
                return 1;
            }
            if (r >= 0)
                t[r] = now() - start;
            mv_model_free(m);
        }
        qsort(t, (size_t)runs, sizeof *t, by_value);
        printf("%-40s median %.4f s (min %.4f, max %.4f, %d runs)\n", argv[f], t[runs / 2],
               t[0], t[runs - 1], runs);
    }
    return 0;
}
