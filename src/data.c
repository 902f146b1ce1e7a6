/* data.c: labelled image sets, from an image folder (ROOT/<class>/<file>) or from IDX files (the
 * MNIST format, plain or gzip), and back out to an image folder; a seeded split into training
 * and validation parts. A dataset holds its images as floats, as bytes (a quarter of the
 * memory, for 8-bit sources), or only as the list of where they are on disk (streamed: the
 * rows are read by prefetch.c when the trainer asks for them).
 *
 * Everything read from disk is treated as hostile: headers are checked before anything is
 * allocated from them, and every error names the file and the reason. Orders are bytewise
 * sorted so that a dataset is the same whatever order the filesystem lists entries in. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include "internal.h"

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_MAX_COUNT 10000000
#define IDX_MAX_SIDE 4096
#define DEFLATE_MAX_RATIO 1032u /* no deflate stream expands more than this */
#define FILE_NAME_DIGITS 5

void mv_load_options_defaults(mv_load_options *options)
{
    memset(options, 0, sizeof *options);
}

/* files belongs to a dataset of count images (its paths may be partly filled: NULLs). */
static void files_free(mv_dataset_files *files, int count)
{
    if (!files)
        return;
    for (int i = 0; files->paths && i < count; i++) free(files->paths[i]);
    free(files->paths);
    free(files->idx_path);
    free(files->items);
    free(files);
}

void mv_dataset_free(mv_dataset *data)
{
    if (!data)
        return;
    if (data->class_names)
        for (int c = 0; c < data->n_classes; c++) free(data->class_names[c]);
    free(data->class_names);
    free(data->pixels);
    free(data->bytes);
    files_free(data->files, data->count);
    free(data->labels);
    free(data);
}

int mv_dataset_has_images(const mv_dataset *data)
{
    switch (data->storage) {
    case MV_STORAGE_FLOAT: return data->pixels != NULL;
    case MV_STORAGE_BYTES: return data->bytes != NULL;
    case MV_STORAGE_STREAM:
        return data->files && (data->files->paths || (data->files->idx_path && data->files->items));
    }
    return 0;
}

/* ================================================================ image folders */

/* A growing array of malloc'd strings. */
typedef struct {
    char **items; /* [count] */
    int count, capacity;
} string_list;

static void string_list_free(string_list *list)
{
    for (int i = 0; i < list->count; i++) free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* Appends text, taking ownership of it (it is freed here if the list cannot grow). */
static mv_status string_list_take(string_list *list, char *text, const char *context)
{
    if (!text)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", context);
    if (list->count == list->capacity) {
        const int grows = list->capacity < INT_MAX / 2;
        const int capacity = !grows ? list->capacity : list->capacity ? list->capacity * 2 : 64;
        char **items = grows ? realloc(list->items, (size_t)capacity * sizeof *items) : NULL;
        if (!items) {
            free(text);
            return mv_fail(MV_ERR_NOMEM, "%s: out of memory (or too many entries)", context);
        }
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = text;
    return MV_OK;
}

/* strcmp on an array of char*: bytewise, locale-free, the same on every machine. */
static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "dir" + "name" -> "dir/name", malloc'd (NULL when out of memory). */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    int slash = n > 0 && dir[n - 1] != '/';
    size_t size = n + (size_t)slash + strlen(name) + 1;
    char *path = malloc(size);
    if (path)
        snprintf(path, size, "%s%s%s", dir, slash ? "/" : "", name);
    return path;
}

/* What an entry listing keeps. Class directories are directories; class files are regular
 * files, plus entries that cannot be stat'ed (a dangling symlink, a symlink loop): those stay
 * in the list so that opening them fails in dataset order, as the error or the skip that they
 * are. Other types (sub-directories of a class, FIFOs, devices) are never images: ignored. */
typedef enum { KEEP_DIRECTORIES, KEEP_FILES } entry_filter;

/* Lists the non-hidden entries of dir that pass the filter, sorted bytewise, as bare names.
 * When listing classes, an entry that cannot be stat'ed is an error (or, with skip_bad,
 * skipped and counted): it cannot be told to be a class or not. */
static mv_status list_directory(const char *dir, entry_filter filter, int skip_bad,
                                string_list *out, int *skipped)
{
    DIR *d = opendir(dir);
    if (!d)
        return mv_fail(MV_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    mv_status status = MV_OK;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(d);
        if (!entry) {
            if (errno)
                status = mv_fail(MV_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
            break;
        }
        if (entry->d_name[0] == '.')
            continue; /* hidden, and "." and ".." */
        char *path = join_path(dir, entry->d_name);
        if (!path) {
            status = mv_fail(MV_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        struct stat st;
        int stat_ok = stat(path, &st) == 0, stat_errno = errno;
        if (!stat_ok && filter == KEEP_DIRECTORIES) {
            if (!skip_bad)
                status = mv_fail(MV_ERR_IO, "%s: cannot stat: %s", path, strerror(stat_errno));
            else
                ++*skipped;
        }
        int keep = stat_ok ? (filter == KEEP_DIRECTORIES ? S_ISDIR(st.st_mode)
                                                         : S_ISREG(st.st_mode))
                           : filter == KEEP_FILES;
        free(path);
        if (!status && keep)
            status = string_list_take(out, strdup(entry->d_name), dir);
        if (status)
            break;
    }
    closedir(d);
    if (!status && out->count > 1)
        qsort(out->items, (size_t)out->count, sizeof *out->items, compare_strings);
    return status;
}

/* The files of an image folder in dataset order: classes in bytewise order, files in
 * bytewise order within each class. */
typedef struct {
    string_list classes; /* [n_classes] directory names */
    string_list paths;   /* [count] ROOT/class/file */
    int *labels;         /* [labels_capacity] class index of each path */
    int labels_capacity;
} file_table;

static void file_table_free(file_table *table)
{
    string_list_free(&table->classes);
    string_list_free(&table->paths);
    free(table->labels);
    table->labels = NULL;
}

/* Appends the files of one class directory; an empty one is an error naming it. */
static mv_status add_class_files(file_table *table, const char *root, int label, int skip_bad,
                                 int *skipped)
{
    char *class_dir = join_path(root, table->classes.items[label]);
    if (!class_dir)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", root);
    string_list names = {0};
    mv_status status = list_directory(class_dir, KEEP_FILES, skip_bad, &names, skipped);
    if (!status && names.count == 0)
        status = mv_fail(MV_ERR_FORMAT, "%s: empty class directory (no image files)", class_dir);
    for (int i = 0; !status && i < names.count; i++) {
        status = string_list_take(&table->paths, join_path(class_dir, names.items[i]), root);
        if (!status && table->labels_capacity < table->paths.capacity) {
            int *labels = realloc(table->labels,
                                  (size_t)table->paths.capacity * sizeof *table->labels);
            if (!labels)
                status = mv_fail(MV_ERR_NOMEM, "%s: out of memory", root);
            else {
                table->labels = labels;
                table->labels_capacity = table->paths.capacity;
            }
        }
        if (!status)
            table->labels[table->paths.count - 1] = label;
    }
    string_list_free(&names);
    free(class_dir);
    return status;
}

/* Pass 1a: the classes and files of ROOT, without opening any file. */
static mv_status list_folder(const char *root, int skip_bad, file_table *table, int *skipped)
{
    mv_status status = list_directory(root, KEEP_DIRECTORIES, skip_bad, &table->classes, skipped);
    if (status)
        return status;
    if (table->classes.count < 2)
        return mv_fail(MV_ERR_FORMAT, "%s: needs at least 2 class directories, found %d", root,
                       table->classes.count);
    for (int c = 0; c < table->classes.count && !status; c++)
        status = add_class_files(table, root, c, skip_bad, skipped);
    return status;
}

/* The failure with the lowest index among those seen by parallel workers, so that the error
 * reported does not depend on thread scheduling. */
typedef struct {
    int index; /* INT_MAX while nothing failed */
    mv_status status;
    char message[512];
} first_failure;

/* Called by the worker that failed on item index, right after the failing call, while its
 * thread's mv_last_error() still holds the message. */
static void record_failure(first_failure *failure, int index, mv_status status)
{
#pragma omp critical(mv_data_first_failure)
    {
        if (index < failure->index) {
            snprintf(failure->message, sizeof failure->message, "%s", mv_last_error());
            failure->status = status;
#pragma omp atomic write
            failure->index = index;
        }
    }
}

/* Non-zero when an earlier item has already failed, so item index need not be processed: its
 * outcome cannot change which failure is reported. */
static int earlier_failure(first_failure *failure, int index)
{
    int first;
#pragma omp atomic read
    first = failure->index;
    return first < index;
}

/* Header of one file as pass 1 saw it. */
typedef struct {
    int width, height, channels;
    int sixteen; /* 16 bits a sample */
    int ok;
} image_header;

/* Pass 1b: reads every header (stbi_info), refusing files that are not images or are larger
 * than max_pixels before anything is decoded. headers: [count]. */
static void probe_headers(const file_table *table, long long max_pixels, int skip_bad,
                          image_header *headers, first_failure *failure)
{
    const long long limit = max_pixels > 0 ? max_pixels : MV_DEFAULT_MAX_PIXELS;
    const int count = table->paths.count;
    /* Dynamic scheduling: the cost of a file (open, read, a cold cache) varies a lot. */
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < count; i++) {
        image_header *h = &headers[i];
        h->ok = 0;
        if (!skip_bad && earlier_failure(failure, i))
            continue;
        const char *path = table->paths.items[i];
        mv_status status = mv_image_probe(path, &h->width, &h->height, &h->channels,
                                          &h->sixteen);
        if (!status && (long long)h->width * h->height > limit)
            status = mv_fail(MV_ERR_FORMAT, "%s: image of %dx%d pixels is larger than the limit "
                             "of %lld pixels; not decoded", path, h->width, h->height, limit);
        h->ok = status == MV_OK;
        if (status && !skip_bad)
            record_failure(failure, i, status);
    }
}

/* Removes the entries whose ok flag is 0 from the table (and, when images is not NULL, their
 * images of `stride` bytes), keeping the order. Returns how many were removed. */
static int drop_failed(file_table *table, const unsigned char *ok, unsigned char *images,
                       size_t stride)
{
    int kept = 0;
    for (int i = 0; i < table->paths.count; i++) {
        if (!ok[i]) {
            free(table->paths.items[i]);
            continue;
        }
        table->paths.items[kept] = table->paths.items[i];
        table->labels[kept] = table->labels[i];
        if (images && kept != i)
            memmove(images + (size_t)kept * stride, images + (size_t)i * stride, stride);
        kept++;
    }
    int dropped = table->paths.count - kept;
    table->paths.count = kept;
    return dropped;
}

/* After files were skipped, every class must still have an image: a class without examples
 * cannot be learned, and its directory would not load again. labels: [count], sorted. */
static mv_status check_classes_populated(const file_table *table, const char *root)
{
    int c = 0;
    for (int i = 0; i < table->paths.count && c < table->classes.count; i++)
        if (table->labels[i] == c)
            c++;
    if (c < table->classes.count)
        return mv_fail(MV_ERR_FORMAT, "%s/%s: no readable image in this class directory", root,
                       table->classes.items[c]);
    return MV_OK;
}

/* The shape every image is loaded at. */
typedef struct {
    int width, height, channels;
} image_shape;

/* The options where set, else the first readable image's size, and 1 channel only when every
 * readable image is stored gray (with or without alpha). headers: [count]. */
static image_shape choose_shape(const image_header *headers, int count,
                                const mv_load_options *options)
{
    const image_header *first = NULL;
    int all_gray = 1;
    for (int i = 0; i < count; i++) {
        if (!headers[i].ok)
            continue;
        if (!first)
            first = &headers[i];
        all_gray = all_gray && headers[i].channels <= 2;
    }
    image_shape shape;
    shape.width = options->width ? options->width : first ? first->width : 1;
    shape.height = options->height ? options->height : first ? first->height : 1;
    shape.channels = options->channels ? options->channels : all_gray ? 1 : 3;
    return shape;
}

static size_t shape_floats(image_shape shape)
{
    return (size_t)shape.width * shape.height * shape.channels;
}

/* The storage a folder gets: bytes only when asked for and when every readable file is an
 * 8-bit image of the chosen size whose conversion mixes no values, so that byte / 255 is
 * exactly what the float loader gives. headers: [count]. */
static mv_storage choose_storage(const image_header *headers, int count, image_shape shape,
                                 mv_storage wanted)
{
    if (wanted != MV_STORAGE_BYTES)
        return wanted;
    for (int i = 0; i < count; i++) {
        const image_header *h = &headers[i];
        if (h->ok && (h->width != shape.width || h->height != shape.height || h->sixteen ||
                      (h->channels >= 3 && shape.channels != 3)))
            return MV_STORAGE_FLOAT;
    }
    return MV_STORAGE_BYTES;
}

/* Pass 2: decodes every file: into its slot of images [count][shape] (floats, or bytes for
 * MV_STORAGE_BYTES), or for MV_STORAGE_STREAM into one image per thread that is then
 * forgotten, which finds the files that would fail exactly as the in-memory load does.
 * ok: [count]. */
static void decode_all(const file_table *table, image_shape shape, long long max_pixels,
                       int skip_bad, mv_storage storage, void *images, unsigned char *ok,
                       first_failure *failure)
{
    const size_t stride = shape_floats(shape);
    const int count = table->paths.count;
#pragma omp parallel
    {
        float *scratch = storage == MV_STORAGE_STREAM ? malloc(stride * sizeof *scratch) : NULL;
        /* Dynamic scheduling: decoding time depends on each file's format, size and
         * compression, so fixed chunks would leave a thread idle behind a slow one. */
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < count; i++) {
            ok[i] = 0;
            if (!skip_bad && earlier_failure(failure, i))
                continue;
            const char *path = table->paths.items[i];
            mv_status status;
            if (storage == MV_STORAGE_BYTES)
                status = mv_image_load_bytes(path, shape.channels, shape.width, shape.height,
                                             max_pixels, (uint8_t *)images + i * stride);
            else if (storage == MV_STORAGE_STREAM && !scratch)
                status = mv_fail(MV_ERR_NOMEM, "%s: out of memory", path);
            else
                status = mv_image_load(path, shape.channels, shape.width, shape.height,
                                       max_pixels, scratch ? scratch : (float *)images + i * stride);
            ok[i] = status == MV_OK;
            if (status && !skip_bad)
                record_failure(failure, i, status);
        }
        free(scratch);
    }
}

/* Checks the options a caller may set; zero fields mean "automatic". */
static mv_status check_load_options(const mv_load_options *o, const char *root)
{
    if (o->width < 0 || o->height < 0 || o->max_pixels < 0 ||
        (o->channels != 0 && o->channels != 1 && o->channels != 3) ||
        (o->storage != MV_STORAGE_FLOAT && o->storage != MV_STORAGE_BYTES &&
         o->storage != MV_STORAGE_STREAM))
        return mv_fail(MV_ERR_ARG, "%s: bad load options (size %dx%d, channels %d, max pixels "
                       "%lld, storage %d)", root, o->width, o->height, o->channels,
                       o->max_pixels, (int)o->storage);
    return MV_OK;
}

/* images [count][per_image bytes] for the table's files, after an overflow check. */
static mv_status allocate_images(const file_table *table, image_shape shape, size_t per_image,
                                 const char *root, void **out)
{
    const size_t count = (size_t)table->paths.count;
    if (per_image > SIZE_MAX / (count ? count : 1) ||
        !(*out = malloc((count ? count : 1) * per_image)))
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory for %zu images of %dx%dx%d", root, count,
                       shape.width, shape.height, shape.channels);
    return MV_OK;
}

/* Hands the table's class names and labels, and the images (or for a streamed dataset the
 * table's paths), over to a new dataset. */
static mv_status assemble_dataset(file_table *table, image_shape shape, mv_storage storage,
                                  void *images, const mv_load_options *o, const char *root,
                                  mv_dataset **out)
{
    mv_dataset *data = calloc(1, sizeof *data);
    mv_dataset_files *files = storage == MV_STORAGE_STREAM ? calloc(1, sizeof *files) : NULL;
    if (!data || (storage == MV_STORAGE_STREAM && !files)) {
        free(data);
        free(files);
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", root);
    }
    *data = (mv_dataset){.count = table->paths.count, .channels = shape.channels,
                         .height = shape.height, .width = shape.width,
                         .n_classes = table->classes.count, .class_names = table->classes.items,
                         .labels = table->labels, .storage = storage, .files = files};
    if (storage == MV_STORAGE_FLOAT)
        data->pixels = images;
    else if (storage == MV_STORAGE_BYTES)
        data->bytes = images;
    else {
        files->paths = table->paths.items;
        files->max_pixels = o->max_pixels;
        memset(&table->paths, 0, sizeof table->paths);
    }
    memset(&table->classes, 0, sizeof table->classes);
    table->labels = NULL;
    *out = data;
    return MV_OK;
}

/* Pass 2 and, with skip_bad, the removal (counted in *skipped) of the files that failed it.
 * Without skip_bad the error is the first file in dataset order that fails to decode. A
 * streamed folder is decoded too, once, so that it keeps exactly the files, and gives
 * exactly the errors, of the same folder loaded into memory. *images: as decode_all fills
 * it, NULL when streamed. */
static mv_status decode_listed(file_table *table, const char *root, const mv_load_options *o,
                               image_shape shape, mv_storage storage, unsigned char *ok,
                               int *skipped, void **images)
{
    const size_t per_image = shape_floats(shape) * (storage == MV_STORAGE_BYTES ? 1 : sizeof(float));
    first_failure failure = {.index = INT_MAX};
    *images = NULL;
    mv_status status = storage == MV_STORAGE_STREAM
                           ? MV_OK
                           : allocate_images(table, shape, per_image, root, images);
    if (!status) {
        decode_all(table, shape, o->max_pixels, o->skip_bad, storage, *images, ok, &failure);
        if (failure.index != INT_MAX)
            status = mv_fail(failure.status, "%s", failure.message);
    }
    if (!status) {
        *skipped += drop_failed(table, ok, *images, per_image);
        status = check_classes_populated(table, root);
    }
    if (status) {
        free(*images);
        *images = NULL;
    }
    return status;
}

/* Passes 1b and 2 over a listed folder: headers, shape and storage, decoding, and with
 * skip_bad the removal (counted in *skipped) of files that failed either pass. Without
 * skip_bad the error is the first bad header in dataset order, or if every header is fine,
 * the first file in dataset order that fails to decode. */
static mv_status load_listed(file_table *table, const char *root, const mv_load_options *o,
                             int *skipped, mv_dataset **out)
{
    const int count = table->paths.count;
    image_header *headers = malloc((size_t)count * sizeof *headers); /* [count] */
    unsigned char *ok = malloc((size_t)count);                      /* [count] */
    void *images = NULL;
    first_failure failure = {.index = INT_MAX};
    image_shape shape = {0, 0, 0};
    mv_storage storage = o->storage;
    mv_status status = headers && ok ? MV_OK : mv_fail(MV_ERR_NOMEM, "%s: out of memory", root);
    if (!status) {
        probe_headers(table, o->max_pixels, o->skip_bad, headers, &failure);
        if (failure.index != INT_MAX)
            status = mv_fail(failure.status, "%s", failure.message);
    }
    if (!status) {
        shape = choose_shape(headers, count, o);
        storage = choose_storage(headers, count, shape, o->storage);
        for (int i = 0; i < count; i++) ok[i] = (unsigned char)headers[i].ok;
        *skipped += drop_failed(table, ok, NULL, 0);
        status = check_classes_populated(table, root);
    }
    if (!status)
        status = decode_listed(table, root, o, shape, storage, ok, skipped, &images);
    if (!status)
        status = assemble_dataset(table, shape, storage, images, o, root, out);
    if (status)
        free(images);
    free(headers);
    free(ok);
    return status;
}

mv_status mv_dataset_load_folder(mv_dataset **out, const char *root,
                                 const mv_load_options *options, int *skipped)
{
    if (!out || !root)
        return mv_fail(MV_ERR_ARG, "mv_dataset_load_folder: NULL argument");
    *out = NULL;
    mv_load_options defaults;
    mv_load_options_defaults(&defaults);
    const mv_load_options *o = options ? options : &defaults;
    mv_status status = check_load_options(o, root);
    if (status)
        return status;
    int skip_count = 0;
    file_table table = {0};
    status = list_folder(root, o->skip_bad, &table, &skip_count);
    if (!status && table.paths.count > INT_MAX / 2)
        status = mv_fail(MV_ERR_ARG, "%s: too many files", root);
    if (!status)
        status = load_listed(&table, root, o, &skip_count, out);
    file_table_free(&table);
    if (skipped)
        *skipped = status ? 0 : skip_count;
    return status;
}

/* ================================================================ IDX files */

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t read_le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Skips a zero-terminated gzip header field starting at *pos, which must end before `end`. */
static int skip_gzip_string(const unsigned char *gz, size_t end, size_t *pos)
{
    const unsigned char *nul = memchr(gz + *pos, 0, end - *pos);
    if (!nul)
        return 0;
    *pos = (size_t)(nul - gz) + 1;
    return 1;
}

/* Parses a gzip member header (RFC 1952: method, flags, FEXTRA, FNAME, FCOMMENT, FHCRC) and
 * returns in *start the offset of the raw deflate data, which ends 8 bytes (the trailer)
 * before the end of the file. */
static mv_status parse_gzip_header(const char *path, const unsigned char *gz, size_t size,
                                   size_t *start)
{
    enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16, RESERVED = 0xE0 };
    if (size < 18)
        return mv_fail(MV_ERR_FORMAT, "%s: truncated gzip file (%zu bytes)", path, size);
    if (gz[2] != 8)
        return mv_fail(MV_ERR_FORMAT, "%s: gzip compression method %d is not deflate", path, gz[2]);
    const unsigned flags = gz[3];
    if (flags & RESERVED)
        return mv_fail(MV_ERR_FORMAT, "%s: gzip header has reserved flags set (0x%02x)", path,
                       flags);
    const size_t end = size - 8; /* the header may not reach into the trailer */
    size_t pos = 10;
    if (flags & FEXTRA) {
        size_t extra = pos + 2 <= end ? (size_t)(gz[pos] | gz[pos + 1] << 8) : end;
        pos = pos + 2 + extra;
    }
    if (pos > end || ((flags & FNAME) && !skip_gzip_string(gz, end, &pos)) ||
        ((flags & FCOMMENT) && !skip_gzip_string(gz, end, &pos)) ||
        ((flags & FHCRC) && pos + 2 > end))
        return mv_fail(MV_ERR_FORMAT, "%s: truncated gzip header", path);
    if (flags & FHCRC) {
        unsigned stored = (unsigned)(gz[pos] | gz[pos + 1] << 8);
        if ((mv_crc32(0, gz, pos) & 0xFFFFu) != stored)
            return mv_fail(MV_ERR_FORMAT, "%s: gzip header CRC mismatch", path);
        pos += 2;
    }
    *start = pos;
    return MV_OK;
}

/* Inflates a gzip file held in memory and checks its trailer (CRC-32 and ISIZE). The output
 * buffer is sized from ISIZE, after checking that deflate could produce that much from the
 * input, and stb's inflater refuses to write past it: a hostile file cannot make this
 * allocate more than ~1000x its own size. *out is malloc'd, [*size] bytes. */
static mv_status gunzip(const char *path, const unsigned char *gz, size_t gz_size,
                        unsigned char **out, size_t *size)
{
    size_t start = 0;
    mv_status status = parse_gzip_header(path, gz, gz_size, &start);
    if (status)
        return status;
    const size_t deflate_size = gz_size - 8 - start;
    const uint32_t crc = read_le32(gz + gz_size - 8), isize = read_le32(gz + gz_size - 4);
    if ((uint64_t)isize > (uint64_t)deflate_size * DEFLATE_MAX_RATIO + 1024)
        return mv_fail(MV_ERR_FORMAT, "%s: gzip trailer declares %u bytes, more than %zu bytes of "
                       "deflate data can hold (corrupt or truncated)", path, isize, deflate_size);
    if (deflate_size > INT_MAX - 8 || isize > INT_MAX)
        return mv_fail(MV_ERR_FORMAT, "%s: gzip data too large for stb's inflater (over 2 GiB)",
                       path);
    unsigned char *data = malloc(isize ? isize : 1); /* [isize] */
    if (!data)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory for %u bytes", path, isize);
    /* The 8 trailer bytes are handed to the inflater too, as look-ahead padding: this stb
     * (2022-09) fails with "bad huffman code" when a raw deflate stream's last code lies in
     * its final 2 bytes (nothings/stb#1456; zlib streams always have their Adler-32 after).
     * Decoding stops at the final block, so the padding is never taken as data. */
    int got = stbi_zlib_decode_noheader_buffer((char *)data, (int)isize,
                                               (const char *)(gz + start),
                                               (int)deflate_size + 8);
    if (got < 0)
        status = mv_fail(MV_ERR_FORMAT, "%s: corrupt gzip data, or more of it than the trailer's "
                         "%u bytes (%s)", path, isize, stbi_failure_reason());
    else if ((uint32_t)got != isize)
        status = mv_fail(MV_ERR_FORMAT, "%s: inflates to %d bytes but the gzip trailer says %u "
                         "(truncated?)", path, got, isize);
    else if (mv_crc32(0, data, isize) != crc)
        status = mv_fail(MV_ERR_FORMAT, "%s: gzip CRC-32 mismatch (data %08x, trailer %08x)",
                         path, (unsigned)mv_crc32(0, data, isize), (unsigned)crc);
    if (status) {
        free(data);
        return status;
    }
    *out = data;
    *size = isize;
    return MV_OK;
}

/* The bytes of an IDX file, inflated when it starts with the gzip magic 1f 8b (whatever its
 * name). *out is malloc'd, [*size] bytes. */
static mv_status read_idx_bytes(const char *path, unsigned char **out, size_t *size)
{
    unsigned char *raw = NULL;
    size_t raw_size = 0;
    mv_status status = mv_read_file(path, UINT64_MAX, &raw, &raw_size);
    if (status)
        return status;
    if (raw_size < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *out = raw;
        *size = raw_size;
        return MV_OK;
    }
    status = gunzip(path, raw, raw_size, out, size);
    free(raw);
    return status;
}

/* Checks an IDX header: magic, item count, the per-item dimensions that follow, and that the
 * data after the header is exactly as long as they declare. dims: [n_dims] (rows, cols). */
static mv_status check_idx_header(const char *path, const unsigned char *bytes, size_t size,
                                  uint32_t magic, int n_dims, int *count, int *dims)
{
    const size_t header = 4 + 4 * (size_t)(1 + n_dims);
    if (size < 4 || (size < header && read_be32(bytes) == magic))
        return mv_fail(MV_ERR_FORMAT, "%s: truncated IDX header (%zu bytes)", path, size);
    if (read_be32(bytes) != magic)
        return mv_fail(MV_ERR_FORMAT, "%s: IDX magic 0x%08x, expected 0x%08x (%s)", path,
                       (unsigned)read_be32(bytes), (unsigned)magic,
                       n_dims ? "unsigned-byte images" : "unsigned-byte labels");
    uint32_t n = read_be32(bytes + 4);
    if (n < 1 || n > IDX_MAX_COUNT)
        return mv_fail(MV_ERR_FORMAT, "%s: IDX item count %u outside 1..%d", path, (unsigned)n,
                       IDX_MAX_COUNT);
    uint64_t item = 1;
    for (int d = 0; d < n_dims; d++) {
        uint32_t side = read_be32(bytes + 8 + 4 * (size_t)d);
        if (side < 1 || side > IDX_MAX_SIDE)
            return mv_fail(MV_ERR_FORMAT, "%s: IDX dimension %u outside 1..%d", path,
                           (unsigned)side, IDX_MAX_SIDE);
        dims[d] = (int)side;
        item *= side;
    }
    uint64_t want = (uint64_t)n * item;
    if (size - header != want)
        return mv_fail(MV_ERR_FORMAT, "%s: IDX data is %zu bytes but the header declares %llu "
                       "(%s)", path, size - header, (unsigned long long)want,
                       size - header < want ? "truncated" : "trailing bytes");
    *count = (int)n;
    return MV_OK;
}

/* Copies the class names, or makes "0", "1", ... when names is NULL. [n] malloc'd strings. */
static mv_status make_class_names(const char *const *names, int n, char ***out)
{
    char **copy = calloc((size_t)n, sizeof *copy);
    if (!copy)
        return mv_fail(MV_ERR_NOMEM, "out of memory for %d class names", n);
    for (int c = 0; c < n; c++) {
        char number[16];
        snprintf(number, sizeof number, "%d", c);
        copy[c] = strdup(names ? names[c] : number);
        if (!copy[c]) {
            for (int k = 0; k < c; k++) free(copy[k]);
            free(copy);
            return mv_fail(MV_ERR_NOMEM, "out of memory for class names");
        }
    }
    *out = copy;
    return MV_OK;
}

/* Builds the dataset from validated IDX labels and, unless streamed, image bytes (pixels
 * byte / 255, as floats or kept as bytes); a streamed one records where its items are:
 * item i at offset 16 + i * rows * cols of images_path. */
static mv_status fill_idx_dataset(const unsigned char *image_bytes, const unsigned char *label_bytes,
                                  int count, int rows, int cols, const char *const *names,
                                  int n_names, mv_storage storage, const char *images_path,
                                  mv_dataset **out)
{
    const size_t n_pixels = (size_t)count * rows * cols;
    mv_dataset *data = calloc(1, sizeof *data);
    void *images = storage == MV_STORAGE_STREAM ? calloc(1, sizeof(mv_dataset_files))
                   : malloc(n_pixels * (storage == MV_STORAGE_BYTES ? 1 : sizeof(float)));
    int *labels = malloc((size_t)count * sizeof *labels); /* [count] */
    char **class_names = NULL;
    mv_status status = data && images && labels
                           ? make_class_names(names, n_names, &class_names)
                           : mv_fail(MV_ERR_NOMEM, "out of memory for %d images of %dx%d", count,
                                     rows, cols);
    if (status) {
        free(data);
        free(images);
        free(labels);
        return status;
    }
    *data = (mv_dataset){.count = count, .channels = 1, .height = rows, .width = cols,
                         .n_classes = n_names, .class_names = class_names, .labels = labels,
                         .storage = storage};
    if (storage == MV_STORAGE_STREAM) {
        mv_dataset_files *files = data->files = images;
        files->idx_path = strdup(images_path);
        files->items = malloc((size_t)count * sizeof *files->items); /* [count] */
        files->idx_data = 16;
        if (!files->idx_path || !files->items) {
            mv_dataset_free(data);
            return mv_fail(MV_ERR_NOMEM, "%s: out of memory for %d items", images_path, count);
        }
        for (int i = 0; i < count; i++) files->items[i] = i;
    } else if (storage == MV_STORAGE_BYTES) {
        memcpy(data->bytes = images, image_bytes + 16, n_pixels);
    } else {
        float *pixels = data->pixels = images; /* [count][rows][cols][1] */
        for (size_t i = 0; i < n_pixels; i++) pixels[i] = image_bytes[16 + i] / 255.0f;
    }
    for (int i = 0; i < count; i++) labels[i] = label_bytes[8 + i];
    *out = data;
    return MV_OK;
}

/* Validates both IDX files against each other and the class names before the dataset is
 * allocated. */
static mv_status check_idx_pair(const char *images_path, const unsigned char *images,
                                size_t images_size, const char *labels_path,
                                const unsigned char *labels, size_t labels_size, int n_names,
                                int *count, int *dims)
{
    int n_images = 0, n_labels = 0;
    mv_status status = check_idx_header(images_path, images, images_size, IDX_IMAGES_MAGIC, 2,
                                        &n_images, dims);
    if (!status)
        status = check_idx_header(labels_path, labels, labels_size, IDX_LABELS_MAGIC, 0,
                                  &n_labels, NULL);
    if (status)
        return status;
    if (n_images != n_labels)
        return mv_fail(MV_ERR_FORMAT, "%s holds %d images but %s holds %d labels", images_path,
                       n_images, labels_path, n_labels);
    for (int i = 0; i < n_labels; i++)
        if (labels[8 + i] >= n_names)
            return mv_fail(MV_ERR_FORMAT, "%s: item %d has label %d, but only labels 0..%d "
                           "have class names", labels_path, i, labels[8 + i], n_names - 1);
    *count = n_images;
    return MV_OK;
}

/* The first bytes of an IDX image file that will be streamed (head [16], zero past the end
 * of a shorter file) and its size: the rest is read at offsets when rows are asked for,
 * which a gzip file cannot give. */
static mv_status read_idx_head(const char *path, unsigned char *head, size_t *size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block */
    if (fd < 0)
        return mv_fail(MV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    mv_status status = MV_OK;
    memset(head, 0, 16);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        status = mv_fail(MV_ERR_IO, "%s: not a regular file", path);
    const size_t want = !status && st.st_size < 16 ? (size_t)st.st_size : 16;
    if (!status && pread(fd, head, want, 0) != (ssize_t)want)
        status = mv_fail(MV_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (!status && want >= 2 && head[0] == 0x1f && head[1] == 0x8b)
        status = mv_fail(MV_ERR_FORMAT, "%s: a gzip-compressed IDX file cannot be streamed (its "
                         "images cannot be read at an offset); decompress it first, e.g. "
                         "gunzip -k %s", path, path);
    close(fd);
    *size = status ? 0 : (size_t)st.st_size;
    return status;
}

/* Checks the arguments every IDX load shares. */
static mv_status check_idx_args(mv_dataset **out, const char *images_path,
                                const char *labels_path, const char *const *class_names,
                                int n_names, mv_storage storage)
{
    if (!out || !images_path || !labels_path)
        return mv_fail(MV_ERR_ARG, "mv_dataset_load_idx: NULL argument");
    *out = NULL;
    if (storage != MV_STORAGE_FLOAT && storage != MV_STORAGE_BYTES &&
        storage != MV_STORAGE_STREAM)
        return mv_fail(MV_ERR_ARG, "%s: unknown storage %d", images_path, (int)storage);
    if (n_names < 1 && (class_names || n_names < 0))
        return mv_fail(MV_ERR_ARG, "%s: need at least one class name, got %d", labels_path,
                       n_names);
    for (int c = 0; class_names && c < n_names; c++)
        if (!class_names[c])
            return mv_fail(MV_ERR_ARG, "%s: class name %d is NULL", labels_path, c);
    return MV_OK;
}

mv_status mv_dataset_load_idx_as(mv_dataset **out, const char *images_path,
                                 const char *labels_path, const char *const *class_names,
                                 int n_names, mv_storage storage)
{
    mv_status status = check_idx_args(out, images_path, labels_path, class_names, n_names,
                                      storage);
    if (status)
        return status;
    unsigned char *images = NULL, *labels = NULL, head[16];
    size_t images_size = 0, labels_size = 0;
    status = storage == MV_STORAGE_STREAM ? read_idx_head(images_path, head, &images_size)
                                          : read_idx_bytes(images_path, &images, &images_size);
    if (!status)
        status = read_idx_bytes(labels_path, &labels, &labels_size);
    int count = 0, dims[2] = {0, 0};
    if (!status && n_names == 0) /* unnamed: classes "0" .. the largest label */
        for (size_t i = 8; i < labels_size; i++)
            n_names = labels[i] + 1 > n_names ? labels[i] + 1 : n_names;
    /* streamed: the header's checks see the file's true size, so a truncated file is
     * refused now, as it is when read whole */
    if (!status)
        status = check_idx_pair(images_path, images ? images : head, images_size, labels_path,
                                labels, labels_size, n_names, &count, dims);
    if (!status)
        status = fill_idx_dataset(images, labels, count, dims[0], dims[1], class_names, n_names,
                                  storage, images_path, out);
    free(images);
    free(labels);
    return status;
}

mv_status mv_dataset_load_idx(mv_dataset **out, const char *images_path,
                              const char *labels_path, const char *const *class_names,
                              int n_names)
{
    return mv_dataset_load_idx_as(out, images_path, labels_path, class_names, n_names,
                                  MV_STORAGE_FLOAT);
}

/* ================================================================ writing an image folder */

/* Each class name becomes a directory that the folder loader must find again, as the same
 * class: one path component, not hidden, not empty, and no two the same. */
static mv_status check_class_dir_names(const mv_dataset *data)
{
    for (int c = 0; c < data->n_classes; c++) {
        const char *name = data->class_names[c];
        if (!name || !name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) > NAME_MAX)
            return mv_fail(MV_ERR_ARG, "class name '%s' cannot be a directory name (empty, "
                           "hidden, contains '/' or too long)", name ? name : "(null)");
    }
    char **sorted = malloc((size_t)data->n_classes * sizeof *sorted);
    if (!sorted)
        return mv_fail(MV_ERR_NOMEM, "out of memory");
    memcpy(sorted, data->class_names, (size_t)data->n_classes * sizeof *sorted);
    qsort(sorted, (size_t)data->n_classes, sizeof *sorted, compare_strings);
    mv_status status = MV_OK;
    for (int c = 1; c < data->n_classes && !status; c++)
        if (!strcmp(sorted[c - 1], sorted[c]))
            status = mv_fail(MV_ERR_ARG, "class name '%s' appears twice", sorted[c]);
    free(sorted);
    return status;
}

/* The dataset must be what its fields say before anything touches the disk. */
static mv_status check_dataset(const mv_dataset *data)
{
    if (data->storage != MV_STORAGE_FLOAT)
        return mv_fail(MV_ERR_ARG, "only a dataset held as floats can be written out (this one "
                       "is held as %s)", data->storage == MV_STORAGE_BYTES ? "bytes" : "files");
    if (data->count < 0 || data->width < 1 || data->height < 1 || data->channels < 1 ||
        data->channels > 4 || data->n_classes < 1 || !data->class_names ||
        (data->count > 0 && (!data->pixels || !data->labels)))
        return mv_fail(MV_ERR_ARG, "dataset has an invalid shape (%d images of %dx%dx%d, %d "
                       "classes)", data->count, data->width, data->height, data->channels,
                       data->n_classes);
    for (int i = 0; i < data->count; i++)
        if (data->labels[i] < 0 || data->labels[i] >= data->n_classes)
            return mv_fail(MV_ERR_ARG, "image %d has label %d outside 0..%d", i, data->labels[i],
                           data->n_classes - 1);
    return check_class_dir_names(data);
}

/* Digits of the file names: at least 5, more when the indices need them, so that bytewise
 * order of the names is index order. */
static int file_name_digits(int count)
{
    int digits = 1;
    for (int n = count > 0 ? count - 1 : 0; n >= 10; n /= 10) digits++;
    return digits > FILE_NAME_DIGITS ? digits : FILE_NAME_DIGITS;
}

/* Writes every image as root/<class>/<index>.png, in parallel, each file atomically; the
 * first failure in index order is reported. */
static mv_status write_images(const mv_dataset *data, const char *root)
{
    size_t longest_name = 0;
    for (int c = 0; c < data->n_classes; c++) {
        size_t n = strlen(data->class_names[c]);
        longest_name = n > longest_name ? n : longest_name;
    }
    const int digits = file_name_digits(data->count);
    if (strlen(root) + longest_name + (size_t)digits + sizeof "//.png" > PATH_MAX)
        return mv_fail(MV_ERR_ARG, "%s: path too long", root);
    const size_t stride = (size_t)data->height * data->width * data->channels;
    const char *slash = root[0] && root[strlen(root) - 1] == '/' ? "" : "/";
    first_failure failure = {.index = INT_MAX};
    /* A write is mostly waiting for its fsync, not computing: more threads than cores keep
     * the disk busy (measured: 10000 small PNGs, 14 s with 2 threads, 6.6 s with 8). Dynamic
     * scheduling, because fsync times vary a lot. */
    const int threads = omp_get_max_threads() * 4 < 16 ? omp_get_max_threads() * 4 : 16;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int i = 0; i < data->count; i++) {
        if (earlier_failure(&failure, i))
            continue;
        char path[PATH_MAX]; /* on the stack: no allocation per image */
        snprintf(path, sizeof path, "%s%s%s/%0*d.png", root, slash,
                 data->class_names[data->labels[i]], digits, i);
        mv_status status = mv_png_write(path, data->pixels + i * stride, data->width,
                                        data->height, data->channels, NULL, NULL);
        if (status)
            record_failure(&failure, i, status);
    }
    if (failure.index != INT_MAX)
        return mv_fail(failure.status, "%s", failure.message);
    return MV_OK;
}

mv_status mv_dataset_write_folder(const mv_dataset *data, const char *root)
{
    if (!data || !root || !root[0])
        return mv_fail(MV_ERR_ARG, "mv_dataset_write_folder: NULL or empty argument");
    mv_status status = check_dataset(data);
    if (status) {
        char reason[400]; /* mv_fail may not read the buffer it writes */
        snprintf(reason, sizeof reason, "%s", mv_last_error());
        return mv_fail(status, "%s: %s", root, reason);
    }
    status = mv_make_directory(root);
    for (int c = 0; c < data->n_classes && !status; c++) {
        char *dir = join_path(root, data->class_names[c]);
        status = dir ? mv_make_directory(dir) : mv_fail(MV_ERR_NOMEM, "%s: out of memory", root);
        free(dir);
    }
    return status ? status : write_images(data, root);
}

/* ---------------------------------------------------------------- validation split */

/* The image store of a dataset of data's storage with room for count images: pixels,
 * bytes, or (streamed) a file list of data's kind. */
static int allocate_like(const mv_dataset *data, int count, mv_dataset *d)
{
    const size_t D = (size_t)data->channels * data->height * data->width;
    const size_t n = (size_t)(count ? count : 1);
    if (data->storage == MV_STORAGE_FLOAT)
        return (d->pixels = malloc(sizeof *d->pixels * D * n)) != NULL;
    if (data->storage == MV_STORAGE_BYTES)
        return (d->bytes = malloc(D * n)) != NULL;
    const mv_dataset_files *from = data->files;
    mv_dataset_files *files = d->files = calloc(1, sizeof *files);
    if (!files)
        return 0;
    files->max_pixels = from->max_pixels;
    files->idx_data = from->idx_data;
    if (from->paths)
        return (files->paths = calloc(n, sizeof *files->paths)) != NULL;
    files->items = malloc(sizeof *files->items * n);
    files->idx_path = strdup(from->idx_path);
    return files->items && files->idx_path;
}

/* An empty dataset of data's shape, classes and storage, room for `count` images. */
static mv_status dataset_like(const mv_dataset *data, int count, mv_dataset **out)
{
    mv_dataset *d = calloc(1, sizeof *d);
    int ok = d != NULL;
    if (d) {
        *d = (mv_dataset){.count = count, .channels = data->channels, .height = data->height,
                          .width = data->width, .n_classes = data->n_classes,
                          .storage = data->storage};
        d->class_names = calloc((size_t)data->n_classes, sizeof *d->class_names);
        d->labels = malloc(sizeof *d->labels * (size_t)(count ? count : 1));
        ok = allocate_like(data, count, d) && d->class_names && d->labels;
    }
    for (int k = 0; ok && k < data->n_classes; k++)
        ok = (d->class_names[k] = strdup(data->class_names[k])) != NULL;
    if (!ok) {
        mv_dataset_free(d);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a dataset of %d images", count);
    }
    *out = d;
    return MV_OK;
}

/* Image i of src becomes image k of dst (same shape and storage): its pixels, bytes, or
 * where it is on disk. 0 when out of memory. */
static int copy_image(const mv_dataset *src, int i, mv_dataset *dst, int k)
{
    const size_t D = (size_t)src->channels * src->height * src->width;
    dst->labels[k] = src->labels[i];
    switch (src->storage) {
    case MV_STORAGE_FLOAT:
        memcpy(dst->pixels + (size_t)k * D, src->pixels + (size_t)i * D, sizeof(float) * D);
        return 1;
    case MV_STORAGE_BYTES:
        memcpy(dst->bytes + (size_t)k * D, src->bytes + (size_t)i * D, D);
        return 1;
    case MV_STORAGE_STREAM:
        if (!src->files->paths) {
            dst->files->items[k] = src->files->items[i];
            return 1;
        }
        return (dst->files->paths[k] = strdup(src->files->paths[i])) != NULL;
    }
    return 0;
}

/* round(fraction * n) indices chosen by seed: is_val [n] gets 1 for those. */
static void pick_validation(int n, int n_val, uint64_t seed, int *order, unsigned char *is_val)
{
    /* A partial Fisher-Yates shuffle; the parts then keep dataset order. */
    mv_rng rng;
    mv_rng_seed(&rng, mv_seed_mix(seed, 0x5B117u));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 0; i < n_val; i++) {
        const int j = i + (int)mv_rng_below(&rng, (uint32_t)(n - i));
        const int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
        is_val[order[i]] = 1;
    }
}

mv_status mv_dataset_split(const mv_dataset *data, double fraction, uint64_t seed,
                           mv_dataset **train_out, mv_dataset **val_out)
{
    *train_out = *val_out = NULL;
    const int n = data->count, n_val = (int)lround(fraction * n);
    if (!(fraction > 0 && fraction < 1) || n_val < 1 || n_val >= n)
        return mv_fail(MV_ERR_ARG, "a validation fraction of %g leaves no image on one side of "
                                   "%d", fraction, n);
    if (!mv_dataset_has_images(data))
        return mv_fail(MV_ERR_ARG, "cannot split a dataset without images");
    int *order = malloc(sizeof *order * (size_t)n);
    unsigned char *is_val = calloc((size_t)n, 1);
    mv_dataset *train = NULL, *val = NULL;
    mv_status st = order && is_val ? MV_OK : mv_fail(MV_ERR_NOMEM, "cannot split the dataset");
    if (st == MV_OK)
        pick_validation(n, n_val, seed, order, is_val);
    if (st == MV_OK && !(st = dataset_like(data, n - n_val, &train)))
        st = dataset_like(data, n_val, &val);
    int at[2] = {0, 0};
    for (int i = 0; st == MV_OK && i < n; i++)
        if (!copy_image(data, i, is_val[i] ? val : train, at[is_val[i]]++))
            st = mv_fail(MV_ERR_NOMEM, "cannot split the dataset's file list");
    if (st == MV_OK) {
        *train_out = train;
        *val_out = val;
    } else {
        mv_dataset_free(train);
        mv_dataset_free(val);
    }
    free(order);
    free(is_val);
    return st;
}
