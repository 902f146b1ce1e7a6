/* cli_convert.c: `mlpviz convert`, IDX files (MNIST, Fashion-MNIST; plain or gzip) to an image
 * folder DIR/<class>/<index>.png that `mlpviz train` and mv_dataset_load_folder() read.
 *
 * DIR appears complete or not at all: the images are written into a hidden sibling directory
 * that is renamed to DIR at the end, and with --force an existing DIR is replaced only after
 * that. A run holds a lock on each hidden directory it owns, so that a later run can tell
 * what a killed one left (and remove it) from what a live one is still writing. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define MAX_IDX_LABELS 256 /* IDX labels are bytes */

static const char *const convert_help =
    "usage: mlpviz convert --images FILE --labels FILE --out DIR [OPTIONS]\n"
    "\n"
    "Turns an IDX image file (idx3, unsigned bytes) and its IDX label file (idx1), each plain\n"
    "or gzip-compressed, into an image folder: DIR/<class>/NNNNN.png, where NNNNN is the\n"
    "image's index in the file. Labels 0, 1, ... are named by --names, or by their numbers.\n"
    "\n"
    "  -i, --images FILE   IDX image file, e.g. train-images-idx3-ubyte.gz (required)\n"
    "  -l, --labels FILE   IDX label file, e.g. train-labels-idx1-ubyte.gz (required)\n"
    "  -o, --out DIR       folder to create (required); its parent must exist\n"
    "  -n, --names LIST    class names for labels 0, 1, ...: tshirt_top,trouser,...\n"
    "                      (default: the label numbers)\n"
    "  -f, --force         replace DIR if it exists (only an image folder: directories of\n"
    "                      files), once the new folder is complete\n"
    "  -h, --help          show this help\n"
    "\n"
    "The images are written into a hidden directory next to DIR (.DIR.tmp-XXXXXX) that is\n"
    "renamed to DIR at the end, so DIR is never half-written. An interrupted run leaves that\n"
    "hidden directory behind; the next convert to the same DIR removes it, and says so.\n"
    "\n"
    "Exit status: 0 on success, 1 when a file cannot be read or written, 2 on a bad command\n"
    "line.\n";

typedef struct {
    const char *images, *labels, *out;
    char **names; /* [n_names] or NULL */
    int n_names;
    int force;
} convert_options;

/* Splits "a,b,c" into class names. Each becomes a directory, so each must be a non-empty,
 * non-hidden single path component, and no two may be equal. Returns the exit status. */
static int parse_names(const char *cmd, const char *text, convert_options *o)
{
    int n = 1;
    for (const char *p = text; *p; p++) n += *p == ',';
    if (n > MAX_IDX_LABELS) {
        cli_error(cmd, "--names lists %d names; IDX labels go up to %d", n, MAX_IDX_LABELS);
        return MV_EXIT_USAGE;
    }
    const int rc = cli_parse_class_names(cmd, text, &o->names, &o->n_names);
    if (rc)
        return rc;
    for (int i = 0; i < o->n_names; i++) {
        const char *name = o->names[i];
        if (name[0] == '.' || strchr(name, '/')) {
            cli_error(cmd, "--names: class name %d '%s' must be non-empty, not start with '.' and "
                      "not contain '/'", i, name);
            return MV_EXIT_USAGE;
        }
        for (int k = 0; k < i; k++)
            if (!strcmp(o->names[k], name)) {
                cli_error(cmd, "--names: class name '%s' appears twice", name);
                return MV_EXIT_USAGE;
            }
    }
    return MV_EXIT_OK;
}

/* Fills o from the command line. Returns 0 to go on, CLI_HELP_SHOWN after --help, or an
 * exit status. */
static int parse_convert_args(int argc, char **argv, convert_options *o)
{
    static const struct option longopts[] = {
        {"images", required_argument, 0, 'i'}, {"labels", required_argument, 0, 'l'},
        {"out", required_argument, 0, 'o'},    {"names", required_argument, 0, 'n'},
        {"force", no_argument, 0, 'f'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "convert", *names = NULL;
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, "i:l:o:n:fh", longopts, NULL)) != -1;) {
        switch (opt) {
        case 'i': o->images = optarg; break;
        case 'l': o->labels = optarg; break;
        case 'o': o->out = optarg; break;
        case 'n': names = optarg; break;
        case 'f': o->force = 1; break;
        case 'h': fputs(convert_help, stdout); return CLI_HELP_SHOWN;
        default: return cli_bad_option(cmd, opt, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        cli_error(cmd, "unexpected argument '%s'", argv[optind]);
        return MV_EXIT_USAGE;
    }
    const char *missing = !o->images ? "--images" : !o->labels ? "--labels" : !o->out ? "--out"
                                                                                    : NULL;
    if (missing) {
        cli_error(cmd, "%s is required (see mlpviz convert --help)", missing);
        return MV_EXIT_USAGE;
    }
    return names ? parse_names(cmd, names, o) : MV_EXIT_OK;
}

/* ---------------------------------------------------------------- the output directory */

/* DIR as "parent" and "base", trailing slashes ignored: the temporary directories are made in
 * parent, so that renaming them to DIR stays within one filesystem. malloc'd. */
static int split_out_path(const char *cmd, const char *out, char **parent, char **base)
{
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--;
    size_t slash = n;
    while (slash > 0 && out[slash - 1] != '/') slash--;
    size_t base_len = n - slash;
    if (base_len == 0 || (base_len == 1 && out[slash] == '.') ||
        (base_len == 2 && !strncmp(out + slash, "..", 2))) {
        cli_error(cmd, "--out '%s' must name a directory to create", out);
        return MV_EXIT_USAGE;
    }
    *base = strndup(out + slash, base_len);
    *parent = slash == 0 ? strdup(".") : strndup(out, slash > 1 ? slash - 1 : 1);
    if (!*base || !*parent) {
        cli_error(cmd, "out of memory");
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* Walks an image folder at most two levels deep (ROOT/entry, ROOT/dir/file), without following
 * symbolic links. With remove = 0 it only checks that the tree has that shape, so that --force
 * can never delete anything but an image folder (never a home directory given by mistake);
 * with remove = 1 it deletes the tree. Returns 0 on success, else errno (ENOTDIR / EMLINK for
 * a tree of another shape). */
static int walk_image_folder(const char *root, int depth, int remove)
{
    DIR *d = opendir(root);
    if (!d)
        return errno;
    int err = 0;
    for (struct dirent *e; !err && (errno = 0, e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t size = strlen(root) + strlen(e->d_name) + 2;
        char *path = malloc(size);
        if (path)
            snprintf(path, size, "%s/%s", root, e->d_name);
        struct stat st;
        if (!path)
            err = ENOMEM;
        else if (lstat(path, &st) != 0)
            err = errno;
        else if (S_ISDIR(st.st_mode))
            err = depth == 0 ? walk_image_folder(path, 1, remove) : EMLINK;
        else if (!S_ISREG(st.st_mode))
            err = ENOTDIR;
        else if (remove && unlink(path) != 0)
            err = errno;
        free(path);
    }
    if (!err && errno)
        err = errno;
    closedir(d);
    if (!err && remove && rmdir(root) != 0)
        err = errno;
    return err;
}

/* Whether name is ".BASE" + kind + six mkdtemp characters: a hidden directory of a run that
 * wrote DIR (kind ".tmp-": the new folder being written; ".old-": the folder it replaced). */
static int is_run_directory_name(const char *name, const char *base, const char *kind)
{
    const size_t b = strlen(base), k = strlen(kind);
    if (name[0] != '.' || strncmp(name + 1, base, b) || strncmp(name + 1 + b, kind, k))
        return 0;
    const char *x = name + 1 + b + k;
    if (strlen(x) != 6)
        return 0;
    for (; *x; x++)
        if (!isalnum((unsigned char)*x))
            return 0;
    return 1;
}

/* Opens dir and takes its lock without waiting; -1 with errno set when that fails
 * (EWOULDBLOCK: another run holds it). The lock lasts until the descriptor is closed or the
 * process ends, however it ends, and moves with the directory when it is renamed. */
static int lock_directory(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        close(fd);
        errno = err;
        fd = -1;
    }
    return fd;
}

/* Whether a lock failed because this filesystem has no locks (then no run sweeps anything,
 * and a run goes on without them); any other failure is a real one. */
static int no_locks_here(int err) { return err == ENOLCK || err == EOPNOTSUPP || err == EBADF; }

/* Whether the directory open as fd is still the one at path (not swapped meanwhile). */
static int still_at(int fd, const char *path)
{
    struct stat held, now;
    return fstat(fd, &held) == 0 && lstat(path, &now) == 0 && held.st_ino == now.st_ino &&
           held.st_dev == now.st_dev;
}

/* Makes the hidden directory tmp from its mkdtemp template and takes its lock. Another run's
 * sweep may take the lock of a directory just made, before this run does, and delete it: a
 * directory whose lock this run did not get first, or that is no longer at its name, is left
 * to that sweep and another one made. Returns 0 (*lock -1 on a filesystem without locks,
 * where no run sweeps anything), or an errno. */
static int make_locked_directory(char *tmp, const char *template, int *lock)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        strcpy(tmp, template);
        if (!mkdtemp(tmp))
            return errno;
        if ((*lock = lock_directory(tmp)) < 0) {
            const int err = errno;
            if (no_locks_here(err))
                return 0;
            if (err != EWOULDBLOCK && err != ENOENT) /* (those two: another run's sweep) */
                return err;
            continue;
        }
        if (still_at(*lock, tmp))
            return 0;
        close(*lock);
        *lock = -1;
    }
    return EAGAIN;
}

/* Removes the hidden directories of `kind` that killed runs writing DIR left in parent: only
 * those nobody holds the lock of, and only image folders (directories of files), each named
 * on stderr unless empty. A half-written .DIR.tmp-XXXXXX is removed before a new one is
 * written; a .DIR.old-XXXXXX whose deletion was cut short, once a new DIR is in place. */
static void remove_abandoned(const char *cmd, const char *parent, const char *base,
                             const char *kind)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_run_directory_name(e->d_name, base, kind))
            continue;
        const size_t size = strlen(parent) + strlen(e->d_name) + 2;
        char *path = malloc(size);
        if (!path)
            continue;
        snprintf(path, size, "%s/%s", parent, e->d_name);
        const int fd = lock_directory(path);
        /* An empty one goes silently: it may be a live run's, just made and not yet locked
         * (that run sees it gone and makes another), and holds nothing to lose. The name is
         * checked again before a tree is deleted: a live run may have renamed its old DIR
         * onto an empty one just locked here. */
        if (fd >= 0 && still_at(fd, path) && rmdir(path) != 0 && still_at(fd, path) &&
            walk_image_folder(path, 0, 0) == 0) {
            const int err = walk_image_folder(path, 0, 1);
            if (err)
                fprintf(stderr, "mlpviz %s: warning: %s, left by an interrupted run: cannot "
                                "remove it: %s\n", cmd, path, strerror(err));
            else
                fprintf(stderr, "mlpviz %s: removed %s, left by an interrupted run\n", cmd,
                        path);
        }
        if (fd >= 0)
            close(fd);
        free(path);
    }
    closedir(d);
}

/* Whether DIR may be written: absent, or (with --force) an image folder to replace. Reports
 * and returns non-zero otherwise. *exists receives whether it is there. */
static int check_out_dir(const char *cmd, const convert_options *o, int *exists)
{
    struct stat st;
    *exists = lstat(o->out, &st) == 0;
    if (!*exists && errno == ENOENT)
        return 0;
    if (!*exists) {
        cli_error(cmd, "%s: %s", o->out, strerror(errno));
        return MV_EXIT_FAIL;
    }
    if (!o->force) {
        cli_error(cmd, "%s already exists (use --force to replace it)", o->out);
        return MV_EXIT_FAIL;
    }
    if (!S_ISDIR(st.st_mode)) {
        cli_error(cmd, "%s exists and is not a directory (a symbolic link or a file): not "
                  "replaced", o->out);
        return MV_EXIT_FAIL;
    }
    int err = walk_image_folder(o->out, 0, 0);
    if (err) {
        cli_error(cmd, "%s does not look like an image folder (only directories of files may be "
                  "replaced by --force): %s; not replaced",
                  o->out, err == EMLINK || err == ENOTDIR ? "it holds deeper directories, links "
                                                            "or special files"
                                                          : strerror(err));
        return MV_EXIT_FAIL;
    }
    return 0;
}

/* Puts the complete folder tmp in place as DIR. An existing DIR (allowed by --force) is moved
 * aside first, into a reserved empty directory it can be renamed onto, and deleted last. */
static int install_folder(const char *cmd, const char *tmp, const char *out, const char *parent,
                          const char *base, int replace)
{
    if (!replace) {
        if (rename(tmp, out) == 0)
            return 0;
        cli_error(cmd, "%s: cannot create: %s", out, strerror(errno));
        return MV_EXIT_FAIL;
    }
    size_t size = strlen(parent) + strlen(base) + sizeof "/..old-XXXXXX";
    char *old = malloc(size);
    if (!old) {
        cli_error(cmd, "out of memory");
        return MV_EXIT_FAIL;
    }
    snprintf(old, size, "%s/.%s.old-XXXXXX", parent, base);
    /* Locked before it is moved aside (the lock moves with it), so that no other run's sweep
     * deletes it while it is the only copy, or while this run deletes it. */
    const int lock = lock_directory(out);
    const int lock_err = lock < 0 ? errno : 0;
    int status = MV_EXIT_FAIL;
    if (lock < 0 && lock_err == EWOULDBLOCK) {
        cli_error(cmd, "%s is locked by another process (another convert replacing it?); not "
                  "replaced", out);
    } else if (lock < 0 && !no_locks_here(lock_err)) {
        cli_error(cmd, "%s: cannot lock it to replace it: %s", out, strerror(lock_err));
    } else if (!mkdtemp(old)) {
        cli_error(cmd, "%s: cannot create a directory next to it: %s", out, strerror(errno));
    } else if (rename(out, old) != 0) {
        cli_error(cmd, "%s: cannot move the old folder aside: %s", out, strerror(errno));
        rmdir(old);
    } else if (rename(tmp, out) != 0) {
        cli_error(cmd, "%s: cannot create: %s", out, strerror(errno));
        rename(old, out); /* put the old folder back */
    } else {
        status = 0;
        int err = walk_image_folder(old, 0, 1);
        if (err)
            fprintf(stderr, "mlpviz %s: warning: %s: cannot remove the old folder: %s\n", cmd,
                    old, strerror(err));
    }
    if (lock >= 0)
        close(lock);
    free(old);
    return status;
}

/* ---------------------------------------------------------------- conversion */

/* The classes the folder will have: the named ones, or 0 .. largest label. Every class needs
 * an image, or its directory would be empty and the folder would not load back. */
static int count_classes(const char *cmd, const mv_dataset *data, int named, int *n_classes)
{
    int n = data->n_classes;
    if (!named) {
        n = 0;
        for (int i = 0; i < data->count; i++) n = data->labels[i] >= n ? data->labels[i] + 1 : n;
    }
    int *seen = calloc((size_t)n + 1, sizeof *seen); /* [n] images per class */
    if (!seen) {
        cli_error(cmd, "out of memory");
        return MV_EXIT_FAIL;
    }
    for (int i = 0; i < data->count; i++) seen[data->labels[i]]++;
    int empty = -1;
    for (int c = 0; c < n && empty < 0; c++) empty = seen[c] ? -1 : c;
    free(seen);
    if (empty >= 0) {
        cli_error(cmd, "class '%s' (label %d) has no image: its directory would be empty",
                  data->class_names[empty], empty);
        return MV_EXIT_FAIL;
    }
    if (n < 2) {
        cli_error(cmd, "the labels name only %d class; an image folder needs at least 2", n);
        return MV_EXIT_FAIL;
    }
    *n_classes = n;
    return 0;
}

/* mkdtemp makes a directory only its owner may enter; DIR gets the permissions mkdir would
 * have given it. */
static mode_t directory_mode(void) { return 0777 & ~mv_process_umask(); }

/* Loads the IDX pair and writes the image folder into a fresh hidden directory next to DIR,
 * whose path is returned in tmp (malloc'd; removed again on failure) and whose lock is held
 * by *tmp_lock (to be closed once the directory is renamed or removed). */
static int write_temporary_folder(const char *cmd, const convert_options *o, const char *parent,
                                  const char *base, char **tmp, int *tmp_lock,
                                  mv_dataset *summary)
{
    mv_dataset *data = NULL;
    if (mv_dataset_load_idx(&data, o->images, o->labels, (const char *const *)o->names,
                            o->names ? o->n_names : MAX_IDX_LABELS)) {
        cli_error(cmd, "%s", mv_last_error());
        return MV_EXIT_FAIL;
    }
    mv_dataset view = *data; /* the same images, with only the classes that are used */
    int status = count_classes(cmd, data, o->names != NULL, &view.n_classes);
    size_t size = strlen(parent) + strlen(base) + sizeof "/..tmp-XXXXXX";
    char *template = NULL;
    if (!status && (!(*tmp = malloc(size)) || !(template = malloc(size)))) {
        cli_error(cmd, "out of memory");
        status = MV_EXIT_FAIL;
    }
    if (!status) {
        remove_abandoned(cmd, parent, base, ".tmp-"); /* their space, before ours is taken */
        snprintf(template, size, "%s/.%s.tmp-XXXXXX", parent, base);
        const int err = make_locked_directory(*tmp, template, tmp_lock);
        if (err) {
            cli_error(cmd, "%s: cannot create a directory next to it: %s", o->out,
                      strerror(err));
            status = MV_EXIT_FAIL;
        } else if (chmod(*tmp, directory_mode()) != 0) {
            cli_error(cmd, "%s: %s", *tmp, strerror(errno));
            rmdir(*tmp);
            status = MV_EXIT_FAIL;
        } else if (mv_dataset_write_folder(&view, *tmp)) {
            cli_error(cmd, "%s", mv_last_error());
            walk_image_folder(*tmp, 0, 1);
            status = MV_EXIT_FAIL;
        }
    }
    if (status) {
        free(*tmp);
        *tmp = NULL;
    }
    free(template);
    *summary = view;
    summary->pixels = NULL;
    summary->labels = NULL;
    summary->class_names = NULL;
    mv_dataset_free(data);
    return status;
}

int cmd_convert(int argc, char **argv)
{
    const char *cmd = "convert";
    convert_options o = {0};
    char *parent = NULL, *base = NULL, *tmp = NULL;
    int exists = 0, tmp_lock = -1, rc = parse_convert_args(argc, argv, &o);
    if (!rc)
        rc = split_out_path(cmd, o.out, &parent, &base);
    if (!rc)
        rc = check_out_dir(cmd, &o, &exists);
    mv_dataset summary = {0};
    if (!rc)
        rc = write_temporary_folder(cmd, &o, parent, base, &tmp, &tmp_lock, &summary);
    if (!rc) {
        rc = install_folder(cmd, tmp, o.out, parent, base, exists);
        if (rc)
            walk_image_folder(tmp, 0, 1);
        else /* DIR is complete: a replaced folder whose deletion was cut short can go */
            remove_abandoned(cmd, parent, base, ".old-");
    }
    if (tmp_lock >= 0)
        close(tmp_lock);
    if (!rc)
        printf("convert: %d images of %dx%d in %d classes written to %s\n", summary.count,
               summary.width, summary.height, summary.n_classes, o.out);
    free(tmp);
    free(parent);
    free(base);
    cli_free_class_names(o.names, o.n_names);
    return rc == CLI_HELP_SHOWN ? MV_EXIT_OK : rc;
}
