/* fileio.c: the one way mlpviz writes a file: to an unnamed temporary file in the same
 * directory (O_TMPFILE; a hidden named one where the filesystem has no such thing), flushed
 * to disk, then named and renamed over the target, so that a reader (or a crash) sees either
 * the old file or the complete new one, never half of one, and a killed writer leaves no
 * partial file behind. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* "dir/name" -> "dir/.name" + suffix: a hidden sibling, so the folder loader never sees a
 * file left behind by a crash, and rename() stays within one filesystem. *out is malloc'd. */
static mv_status sibling_path(const char *path, const char *suffix, char **out)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dir_len;
    if (!*base)
        return mv_fail(MV_ERR_ARG, "%s: not a file name", path);
    size_t size = dir_len + 1 + strlen(base) + strlen(suffix) + 1;
    char *tmp = malloc(size);
    if (!tmp)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, size, "%.*s.%s%s", (int)dir_len, path, base, suffix);
    *out = tmp;
    return MV_OK;
}

/* The directory part of path ("." when there is none) in dir[size]; 0 when too long. */
static int directory_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    const size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (len >= size)
        return 0;
    memcpy(dir, slash ? path : ".", len);
    dir[len] = 0;
    return 1;
}

/* Flushes the directory entry that rename() changed, so that after a power loss the path
 * holds the new file rather than the old one. Best effort: some filesystems refuse it. */
static void sync_directory_of(const char *path)
{
    char dir[4096];
    const int fd = directory_of(path, dir, sizeof dir) ? open(dir, O_RDONLY | O_DIRECTORY |
                                                              O_CLOEXEC)
                                                       : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A file being written: unnamed (O_TMPFILE) until it is complete, or, where the filesystem
 * cannot do that, a mkstemp file named from the start. */
typedef struct {
    int fd;
    char *name; /* its hidden sibling name once it has one, else NULL */
} temp_file;

/* The name an unnamed file takes, complete and synced, just before it is renamed over the
 * target. It exists only between link and rename; a writer killed there leaves it, and the
 * next writer of the same target removes it. */
static const char LINK_SUFFIX[] = ".mlpviz-tmp";

/* O_TMPFILE needs /proc to give the file a name (linkat by fd needs a capability). */
static int proc_fds_visible = 0;
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;
static void look_for_proc(void) { proc_fds_visible = access("/proc/self/fd", X_OK) == 0; }

/* Opens the file the data goes to. The unnamed file is locked before it ever has a name, so
 * that an unlocked file at the link name can only be a killed writer's. */
static mv_status open_temp(const char *path, temp_file *t)
{
    char dir[4096];
    t->fd = -1;
    t->name = NULL;
    pthread_once(&proc_once, look_for_proc);
    if (proc_fds_visible && directory_of(path, dir, sizeof dir)) {
        t->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (t->fd >= 0 && flock(t->fd, LOCK_EX) == 0)
            return MV_OK;
        const int err = errno;
        if (t->fd >= 0)
            close(t->fd);
        t->fd = -1;
        /* the filesystem (or kernel) has no O_TMPFILE: name the file from the start */
        if (err != EOPNOTSUPP && err != EISDIR && err != EINVAL && err != ENOLCK)
            return mv_fail(MV_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                           path, strerror(err));
    }
    mv_status status = sibling_path(path, ".XXXXXX", &t->name);
    if (status)
        return status;
    if ((t->fd = mkstemp(t->name)) < 0) {
        status = mv_fail(MV_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                         strerror(errno));
        free(t->name);
        t->name = NULL;
    }
    return status;
}

/* Removes the file at `name` if its writer is gone: it still sits there, and nobody holds
 * its lock. Waits for a live writer, which holds the lock until just after its rename. */
static void remove_if_abandoned(const char *name)
{
    /* O_NONBLOCK: a FIFO planted at the name must not hang the open */
    const int fd = open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat held, now;
    if (flock(fd, LOCK_EX) == 0 && fstat(fd, &held) == 0 && S_ISREG(held.st_mode) &&
        lstat(name, &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev)
        unlink(name);
    close(fd);
}

/* Gives the complete unnamed file its hidden sibling name, clearing away a killed writer's
 * leftover, so that rename() can put it over the target. */
static int link_temp(const char *path, temp_file *t)
{
    if (t->name) /* named from the start */
        return 1;
    if (sibling_path(path, LINK_SUFFIX, &t->name))
        return 0;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
    /* A few rounds: each failed one means another writer of this target came and went. */
    for (int round = 0; round < 16; round++) {
        if (linkat(AT_FDCWD, proc, AT_FDCWD, t->name, AT_SYMLINK_FOLLOW) == 0)
            return 1;
        if (errno != EEXIST)
            break;
        remove_if_abandoned(t->name);
    }
    const int err = errno;
    free(t->name);
    t->name = NULL;
    errno = err;
    return 0;
}

mv_status mv_write_spans_atomic(const char *path, const mv_byte_span *spans, int n_spans)
{
    temp_file t;
    mv_status status = open_temp(path, &t);
    if (status)
        return status;
    FILE *file = fdopen(t.fd, "wb");
    int ok = file != NULL && fchmod(t.fd, new_file_mode()) == 0;
    for (int i = 0; ok && i < n_spans; i++)
        ok = fwrite(spans[i].data, 1, spans[i].size, file) == spans[i].size;
    ok = ok && fflush(file) == 0 && fsync(t.fd) == 0;
    int err = ok ? 0 : errno;
    if (ok && (!link_temp(path, &t) || rename(t.name, path) != 0)) {
        err = errno;
        ok = 0;
    }
    if (!ok && t.name)
        unlink(t.name);
    /* closed after the rename: the lock tells others this name is still in use until then */
    if (file ? fclose(file) != 0 : close(t.fd) != 0) {
        if (ok) {
            err = errno; /* the data is in place (fsync'd); only the close failed */
            ok = 0;
        }
    }
    if (ok)
        sync_directory_of(path);
    else
        status = mv_fail(MV_ERR_IO, "%s: cannot write: %s", path, strerror(err ? err : EIO));
    free(t.name);
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
