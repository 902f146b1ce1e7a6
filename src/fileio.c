/* fileio.c: files and directories, each done one way for the whole program.
 * Writing: to an unnamed temporary file in the same directory (O_TMPFILE; a hidden named one
 * where that is not possible), flushed to disk, then named and renamed over the target, so
 * that a reader (or a crash) sees either the old file or the complete new one, never half of
 * one, and a killed writer leaves no partial file behind. Reading: a whole regular file into
 * memory. Also the process umask and the creation of a directory. */
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

mode_t mv_process_umask(void)
{
    pthread_once(&umask_once, read_umask);
    return process_umask;
}

/* mkstemp creates files readable by the owner only; a written file gets the permissions an
 * ordinary fopen would have given it (0666 minus the umask). */
static mode_t new_file_mode(void) { return 0666 & ~mv_process_umask(); }

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

/* How a write ended: done; not possible the unnamed way here (the caller names the file from
 * the start instead); or failed creating, or after creating, the temporary file (errno in
 * *err). */
typedef enum { WRITTEN, NOT_HERE, CREATE_FAILED, WRITE_FAILED } write_outcome;

/* The name an unnamed file takes, complete and synced, just before it is renamed over the
 * target. It exists only between link and rename; a writer killed there leaves it, and the
 * next writer of the same target removes it. */
static const char LINK_SUFFIX[] = ".mlpviz-tmp";

/* O_TMPFILE needs /proc to give the file a name (linkat by fd needs a capability). */
static int proc_fds_visible = 0;
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;
static void look_for_proc(void) { proc_fds_visible = access("/proc/self/fd", X_OK) == 0; }

/* Writes every span to fd and flushes it to disk. Returns 0 or an errno. */
static int write_all(int fd, const mv_byte_span *spans, int n_spans)
{
    for (int i = 0; i < n_spans; i++) {
        const unsigned char *p = spans[i].data;
        for (size_t left = spans[i].size; left > 0;) {
            const ssize_t n = write(fd, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return n < 0 ? errno : EIO;
            p += n;
            left -= (size_t)n;
        }
    }
    return fsync(fd) == 0 ? 0 : errno;
}

/* Makes the link name free for this writer if the file there is a killed writer's: a regular
 * file still at that name whose lock nobody holds. A live writer holds its lock from before
 * the link until just after its rename (microseconds), so the lock is polled for half a
 * second, never waited on without limit (that writer may be stopped). Returns 1 when the
 * name is worth another try (removed, or gone or replaced meanwhile), 0 when it holds
 * something to leave alone: not a regular file, or a file whose lock stays held. */
static int clear_link_name(const char *name)
{
    /* O_NOFOLLOW: a symbolic link is left alone; O_NONBLOCK: a FIFO does not hang the open */
    const int fd = open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    int locked = 0;
    for (useconds_t pause = 1000;; pause *= 2) {
        if ((locked = flock(fd, LOCK_EX | LOCK_NB) == 0) || errno != EWOULDBLOCK ||
            pause > 256000)
            break;
        usleep(pause);
    }
    struct stat held, now;
    int retry = 0;
    if (fstat(fd, &held) == 0 && S_ISREG(held.st_mode)) {
        if (lstat(name, &now) != 0)
            retry = errno == ENOENT; /* renamed over its target by its live writer */
        else if (now.st_ino != held.st_ino || now.st_dev != held.st_dev)
            retry = 1;
        else if (locked)
            retry = unlink(name) == 0 || errno == ENOENT;
    }
    close(fd);
    return retry;
}

/* Gives the complete unnamed file fd the name link_name. Returns 0 or an errno. */
static int link_unnamed(int fd, const char *link_name)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    /* each round that fails means another writer's file came and went at that name */
    for (int round = 0; round < 1000; round++) {
        if (linkat(AT_FDCWD, proc, AT_FDCWD, link_name, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        const int err = errno;
        if (err != EEXIST || !clear_link_name(link_name))
            return err;
    }
    return EEXIST;
}

/* The unnamed way: the data goes to an O_TMPFILE file, locked before it ever has a name (so
 * that an unlocked file at the link name can only be a killed writer's), and gets a name only
 * when complete and synced, just before the rename. A writer killed before that leaves
 * nothing. NOT_HERE where the filesystem or /proc does not allow it, or where the link name
 * is held by something this writer must leave alone. */
static write_outcome write_unnamed(const char *path, const char *link_name,
                                   const mv_byte_span *spans, int n_spans, int *err)
{
    char dir[4096];
    pthread_once(&proc_once, look_for_proc);
    if (!proc_fds_visible || !directory_of(path, dir, sizeof dir))
        return NOT_HERE;
    /* mode 0666 less the umask, as fopen would give */
    const int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
        *err = errno;
        return *err == EOPNOTSUPP || *err == EISDIR || *err == EINVAL ? NOT_HERE
                                                                       : CREATE_FAILED;
    }
    write_outcome outcome = NOT_HERE; /* a filesystem without locks, or a link name in use */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if ((*err = write_all(fd, spans, n_spans)) != 0)
            outcome = WRITE_FAILED;
        else if (link_unnamed(fd, link_name) == 0) {
            outcome = WRITTEN;
            if (rename(link_name, path) != 0) {
                *err = errno;
                unlink(link_name);
                outcome = WRITE_FAILED;
            }
        }
    }
    /* Closed (and unlocked) only now: the lock tells other writers that the link name is in
     * use until the rename is done. The data was synced before, so the close cannot lose it. */
    close(fd);
    return outcome;
}

/* The named way, where the unnamed one is not possible: a mkstemp file .NAME.XXXXXX from the
 * start (a writer killed during the write leaves it), closed before the rename so that any
 * failure leaves the old file. */
static write_outcome write_named(const char *path, char *named, const mv_byte_span *spans,
                                 int n_spans, int *err)
{
    const int fd = mkstemp(named);
    if (fd < 0) {
        *err = errno;
        return CREATE_FAILED;
    }
    /* mkstemp makes the file 0600; fopen would have given 0666 less the umask */
    int e = fchmod(fd, new_file_mode()) == 0 ? write_all(fd, spans, n_spans) : errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(named, path) != 0)
        e = errno;
    if (e) {
        unlink(named);
        *err = e;
        return WRITE_FAILED;
    }
    return WRITTEN;
}

mv_status mv_write_spans_atomic(const char *path, const mv_byte_span *spans, int n_spans)
{
    char *link_name = NULL, *named = NULL;
    mv_status status = sibling_path(path, LINK_SUFFIX, &link_name);
    if (status == MV_OK)
        status = sibling_path(path, ".XXXXXX", &named);
    if (status == MV_OK) {
        int err = 0;
        write_outcome outcome = write_unnamed(path, link_name, spans, n_spans, &err);
        if (outcome == NOT_HERE)
            outcome = write_named(path, named, spans, n_spans, &err);
        if (outcome == WRITTEN)
            sync_directory_of(path);
        else if (outcome == CREATE_FAILED)
            status = mv_fail(MV_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                             path, strerror(err));
        else
            status = mv_fail(MV_ERR_IO, "%s: cannot write: %s", path, strerror(err ? err : EIO));
    }
    free(link_name);
    free(named);
    return status;
}

mv_status mv_write_file_atomic(const char *path, const void *data, size_t size)
{
    const mv_byte_span whole = {data, size};
    return mv_write_spans_atomic(path, &whole, 1);
}

/* ---------------------------------------------------------------- reading, directories */

/* Opens path for reading if it is a regular file of at most max_bytes, checked on the open
 * descriptor (O_NONBLOCK: a FIFO cannot hang the open). */
static mv_status open_regular_file(const char *path, uint64_t max_bytes, int *fd_out,
                                   size_t *size)
{
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(MV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    mv_status status = MV_OK;
    if (fstat(fd, &st))
        status = mv_fail(MV_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        status = mv_fail(MV_ERR_IO, "%s: cannot read: not a regular file", path);
    else if ((uint64_t)st.st_size > max_bytes)
        status = mv_fail(MV_ERR_FORMAT, "%s: %lld bytes is too large (at most %llu)", path,
                         (long long)st.st_size, (unsigned long long)max_bytes);
    if (status) {
        close(fd);
        return status;
    }
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return MV_OK;
}

mv_status mv_read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *size)
{
    *out = NULL;
    int fd = -1;
    size_t want = 0;
    mv_status status = open_regular_file(path, max_bytes, &fd, &want);
    if (status)
        return status;
    unsigned char *data = malloc(want ? want : 1);
    if (!data) {
        close(fd);
        return mv_fail(MV_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, want);
    }
    for (size_t got = 0; got < want;) {
        const ssize_t n = read(fd, data + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : 0;
            free(data);
            close(fd);
            return mv_fail(MV_ERR_IO, "%s: cannot read: %s", path,
                           err ? strerror(err) : "the file shrank while being read");
        }
        got += (size_t)n;
    }
    close(fd);
    *out = data;
    *size = want;
    return MV_OK;
}

mv_status mv_make_directory(const char *path)
{
    if (mkdir(path, 0777) == 0)
        return MV_OK;
    const int err = errno;
    struct stat st;
    if (err == EEXIST && stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? MV_OK : mv_fail(MV_ERR_IO, "%s: not a directory", path);
    return mv_fail(MV_ERR_IO, "%s: cannot create directory: %s", path, strerror(err));
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
