/* fuzz_file.h: the mlpviz loaders take paths, so each fuzz input becomes a file: an
 * anonymous in-memory file (memfd) named through /proc/self/fd, never the disk. */
#ifndef MV_FUZZ_FILE_H
#define MV_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[64];
} fuzz_file;

/* Makes a file holding data[0..size); aborts (a harness failure, not a finding) when the
 * system cannot. */
static inline void fuzz_file_open(fuzz_file *f, const uint8_t *data, size_t size)
{
    f->fd = memfd_create("mlpviz-fuzz", 0);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    for (size_t done = 0; done < size;) {
        const ssize_t n = write(f->fd, data + done, size - done);
        if (n <= 0) {
            perror("write");
            abort();
        }
        done += (size_t)n;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_file_close(fuzz_file *f) { close(f->fd); }

#endif
