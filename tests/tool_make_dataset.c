/* tool_make_dataset.c: writes a synthetic image folder for the shell suites:
 *   tool_make_dataset DIR [PER_CLASS [SIZE [SEED]]] */
#include <stdio.h>
#include <stdlib.h>

#include "synthetic.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: tool_make_dataset DIR [PER_CLASS [SIZE [SEED]]]\n");
        return 2;
    }
    const int per_class = argc > 2 ? atoi(argv[2]) : 30;
    const int size = argc > 3 ? atoi(argv[3]) : 12;
    const unsigned long long seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
    if (per_class < 1 || size < 4 || size > 64 || synth_write_folder(argv[1], per_class, size, seed)) {
        fprintf(stderr, "tool_make_dataset: cannot write %s\n", argv[1]);
        return 1;
    }
    return 0;
}
