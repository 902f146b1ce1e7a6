/* fileio.c: the one way mlpviz writes a file: to a hidden temporary file in the same
 * directory, flushed to disk, then renamed over the target, so that a reader (or a crash)
 * sees either the old file or the complete new one, never half of one. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static mode_t process_umask = 022;
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;

/* Reads the umask without changing it (umask() would, racing with other threads creating
 * files): Linux shows it in /proc/self/status. Falls back to 022. */
static void read_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    unsigned mask;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1) {
            process_umask = (mode_t)(mask & 0777);
            break;
        }
    fclose(f);
}

/* mkstemp creates files readable by the owner only; a written file gets the permissions an
 * ordinary fopen would have given it (0666 minus the umask). */
static mode_t new_file_mode(void)
{
    pthread_once(&umask_once, read_umask);
    return 0666 & ~process_umask;
}

/* "dir/name" -> "dir/.name.XXXXXX": a hidden sibling, so the folder loader never sees a file
 * left behind by a crash, and rename() stays within one filesystem. *out is malloc'd. */
static mv_status temp_path_for(const char *path, char **out)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dir_len;
    if (!*base)
        return mv_fail(MV_ERR_ARG, "%s: not a file name", path);
    size_t size = dir_len + 1 + strlen(base) + sizeof ".XXXXXX";
    char *tmp = malloc(size);
    if (!tmp)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, size, "%.*s.%s.XXXXXX", (int)dir_len, path, base);
    *out = tmp;
    return MV_OK;
}

/* Flushes the directory entry that rename() changed, so that after a power loss the path
 * holds the new file rather than the old one. Best effort: some filesystems refuse it. */
static void sync_directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096] = ".";
    if (slash && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, slash == path ? 1 : (size_t)(slash - path));
        dir[slash == path ? 1 : slash - path] = 0;
    }
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

mv_status mv_write_spans_atomic(const char *path, const mv_byte_span *spans, int n_spans)
{
    char *tmp = NULL;
    mv_status status = temp_path_for(path, &tmp);
    if (status)
        return status;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        status = mv_fail(MV_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                         strerror(errno));
        free(tmp);
        return status;
    }
    FILE *file = fdopen(fd, "wb");
    int ok = file != NULL && fchmod(fd, new_file_mode()) == 0;
    for (int i = 0; ok && i < n_spans; i++)
        ok = fwrite(spans[i].data, 1, spans[i].size, file) == spans[i].size;
    ok = ok && fflush(file) == 0 && fsync(fd) == 0;
    int err = errno;
    if (file ? fclose(file) != 0 : close(fd) != 0) {
        if (ok)
            err = errno;
        ok = 0;
    }
    if (ok && rename(tmp, path) != 0) {
        err = errno;
        ok = 0;
    }
    if (ok)
        sync_directory_of(path);
    if (!ok) {
        unlink(tmp);
        status = mv_fail(MV_ERR_IO, "%s: cannot write: %s", path, strerror(err ? err : EIO));
    }
    free(tmp);
    return status;
}

mv_status mv_write_file_atomic(const char *path, const void *data, size_t size)
{
    const mv_byte_span whole = {data, size};
    return mv_write_spans_atomic(path, &whole, 1);
}

mv_status mv_npy_write(const char *path, const float *values, int ndim, const int *shape)
{
    char dims[160] = "", dict[256];
    size_t count = 1;
    if (ndim < 1 || ndim > 8)
        return mv_fail(MV_ERR_ARG, "%s: an array needs 1 to 8 dimensions, not %d", path, ndim);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return mv_fail(MV_ERR_ARG, "%s: negative dimension", path);
        count *= (size_t)shape[d];
        snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%d,%s", shape[d],
                 ndim > 1 && d + 1 < ndim ? " " : "");
    }
    if (ndim > 1) /* "(3, 4)", but "(3,)" for one dimension */
        dims[strlen(dims) - 1] = 0;
    const int len = snprintf(dict, sizeof dict,
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    /* NumPy 1.0: magic, version, u16 header length, the dict padded with spaces and ended by
     * a newline so that the data starts at a multiple of 64 bytes. */
    const size_t header = ((10 + (size_t)len + 1 + 63) / 64) * 64;
    unsigned char *buf = malloc(header + 4 * count);
    if (!buf)
        return mv_fail(MV_ERR_NOMEM, "cannot write %s: out of memory", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((header - 10) & 0xFF);
    buf[9] = (unsigned char)((header - 10) >> 8);
    memset(buf + 10, ' ', header - 10);
    memcpy(buf + 10, dict, (size_t)len);
    buf[header - 1] = '\n';
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        for (int b = 0; b < 4; b++)
            buf[header + 4 * i + (size_t)b] = (unsigned char)(bits >> (8 * b));
    }
    const mv_status st = mv_write_file_atomic(path, buf, header + 4 * count);
    free(buf);
    return st;
}
