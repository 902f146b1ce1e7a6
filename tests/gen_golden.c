/* gen_golden.c: writes the files of tests/golden/ from the double build. Run through `make golden`
 * only after a deliberate change of the numbers, and say why in the commit. */
#include <stdio.h>
#include <stdlib.h>

#include "golden_cases.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_golden DIR\n");
        return 2;
    }
    for (int i = 0; i < GOLDEN_CASES; i++) {
        mv_gradcheck_config cfg;
        char name[64], path[512];
        golden_case(i, &cfg, name, sizeof name);
        double *values;
        size_t count;
        if (golden_compute(&cfg, &values, &count)) {
            fprintf(stderr, "gen_golden: %s: %s\n", name, mv_last_error());
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s", argv[1], name);
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 1;
        }
        fprintf(f, "# mlpviz golden gradients (float64): parameters, x(loss), x(objective %d)\n",
                cfg.target.kind);
        fprintf(f, "%zu\n", count);
        for (size_t k = 0; k < count; k++) fprintf(f, "%.17g\n", values[k]);
        free(values);
        if (fclose(f)) {
            perror(path);
            return 1;
        }
    }
    printf("gen_golden: wrote %d files to %s\n", GOLDEN_CASES, argv[1]);
    return 0;
}
