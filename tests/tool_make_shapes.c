/* tool_make_shapes.c: writes the shapes dataset (shapes.h) as an image folder:
 *   tool_make_shapes DIR [PER_CLASS [SEED]]
 * DIR/<class>/<index>.png, 8-bit gray 28 x 28, PER_CLASS images of each of the ten classes
 * (default 500), from SEED (default 1). Exit status 0 on success, 1 when DIR could not be
 * written, 2 on bad arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "shapes.h"

#define MAX_PER_CLASS 10000 /* 100000 images, 314 MB of floats in memory */

static void usage(const char *problem)
{
    if (problem)
        fprintf(stderr, "tool_make_shapes: %s\n", problem);
    fprintf(stderr,
            "usage: tool_make_shapes DIR [PER_CLASS [SEED]]\n"
            "  writes DIR/<class>/<index>.png: PER_CLASS (1..%d, default 500) 28x28 gray\n"
            "  images of each of %d shape classes, made from SEED (an unsigned integer,\n"
            "  default 1)\n",
            MAX_PER_CLASS, SHAPES_CLASSES);
}

/* Parses a whole unsigned decimal number (digits only, no sign) into *value. */
static int parse_unsigned(const char *text, unsigned long long *value)
{
    if (text[0] < '0' || text[0] > '9')
        return 0;
    char *end;
    errno = 0;
    *value = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0';
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        usage(argc < 2 ? "missing DIR" : "too many arguments");
        return 2;
    }
    if (!argv[1][0]) {
        usage("DIR is empty");
        return 2;
    }
    unsigned long long per_class = 500, seed = 1;
    if (argc > 2 && (!parse_unsigned(argv[2], &per_class) || per_class < 1 ||
                     per_class > MAX_PER_CLASS)) {
        fprintf(stderr, "tool_make_shapes: PER_CLASS must be an integer from 1 to %d, not '%s'\n",
                MAX_PER_CLASS, argv[2]);
        usage(NULL);
        return 2;
    }
    if (argc > 3 && !parse_unsigned(argv[3], &seed)) {
        fprintf(stderr, "tool_make_shapes: SEED must be an unsigned integer, not '%s'\n",
                argv[3]);
        usage(NULL);
        return 2;
    }
    switch (shapes_write_folder(argv[1], (int)per_class, seed)) {
    case 0: return 0;
    case 1:
        fprintf(stderr, "tool_make_shapes: cannot write %s: out of memory\n", argv[1]);
        return 1;
    default:
        /* the library's message names the path (DIR or a file in it) and the reason */
        fprintf(stderr, "tool_make_shapes: %s\n", mv_last_error());
        return 1;
    }
}
