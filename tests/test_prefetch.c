/* test_prefetch.c: a dataset's rows whatever its storage (floats, bytes, streamed from disk),
 * and the prefetching reader the trainer takes its batches from.
 *
 * The float load is the reference: every other storage of the same files must give its rows
 * bit for bit, through mv_dataset_read_rows, through a prefetch (on its reading thread for
 * streamed data), and through what training fits from the data (normalisation, class
 * statistics and mixtures, saved as a model file). Errors must name the file. Fixtures are
 * made here in a mkdtemp directory, removed at the end. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "internal.h"

/* Exported by libstb.so but declared by stb_image_write.h only in its implementation section:
 * a zlib stream, malloc'd. */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

static char fixture_root[512];

static const char *at(const char *rel)
{
    static char buffers[8][1024];
    static int next;
    char *b = buffers[next++ % 8];
    snprintf(b, sizeof buffers[0], "%s/%s", fixture_root, rel);
    return b;
}

static void make_dir(const char *rel)
{
    if (mkdir(at(rel), 0777) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", at(rel), strerror(errno));
}

static void write_bytes(const char *rel, const void *data, size_t n)
{
    FILE *f = fopen(at(rel), "wb");
    if (!f)
        fail_msg("cannot create %s: %s", at(rel), strerror(errno));
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends a PNG chunk (length, type, data, CRC-32 of type and data) at out + *pos. */
static void put_chunk(unsigned char *out, size_t *pos, const char *type, const void *data,
                      size_t n)
{
    put_be32(out + *pos, (uint32_t)n);
    memcpy(out + *pos + 4, type, 4);
    if (n)
        memcpy(out + *pos + 8, data, n);
    put_be32(out + *pos + 8 + n, mv_crc32(0, out + *pos + 4, 4 + n));
    *pos += 12 + n;
}

/* A 16-bit gray PNG made by hand (stb writes 8-bit ones only): IHDR, one IDAT of the
 * zlib-compressed scanlines raw (each with its filter byte), IEND. */
static void write_16bit_gray_png(const char *rel, uint32_t w, uint32_t h, unsigned char *raw,
                                 int raw_n)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 16; /* bit depth */
    int zlen = 0;
    unsigned char *z = stbi_zlib_compress(raw, raw_n, &zlen, 8);
    unsigned char *png = malloc(8 + 25 + (size_t)zlen + 12 + 12);
    assert_true(z && png);
    size_t pos = 8;
    memcpy(png, signature, 8);
    put_chunk(png, &pos, "IHDR", ihdr, 13);
    put_chunk(png, &pos, "IDAT", z, (size_t)zlen);
    put_chunk(png, &pos, "IEND", NULL, 0);
    write_bytes(rel, png, pos);
    free(z);
    free(png);
}

/* A w x h PNG of comp channels of seeded noise. */
static void write_noise_png(const char *rel, int w, int h, int comp, uint64_t seed)
{
    unsigned char px[16 * 16 * 4];
    assert_true(w * h * comp <= (int)sizeof px);
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int i = 0; i < w * h * comp; i++) px[i] = (unsigned char)mv_rng_below(&rng, 256);
    if (!stbi_write_png(at(rel), w, h, comp, px, w * comp))
        fail_msg("stbi_write_png %s failed", rel);
}

/* DIR/a (3 images) and DIR/b (4 images), gray noise of 5 x 4: what most cases load. */
static void make_gray_folder(const char *dir)
{
    char rel[256];
    make_dir(dir);
    for (int k = 0; k < 2; k++) {
        snprintf(rel, sizeof rel, "%s/%c", dir, 'a' + k);
        make_dir(rel);
        for (int i = 0; i < 3 + k; i++) {
            snprintf(rel, sizeof rel, "%s/%c/%d.png", dir, 'a' + k, i);
            write_noise_png(rel, 5, 4, 1, (uint64_t)(10 * k + i + 1));
        }
    }
}

static mv_dataset *load_folder(const char *dir, mv_storage storage, int skip_bad)
{
    mv_load_options o;
    mv_load_options_defaults(&o);
    o.storage = storage;
    o.skip_bad = skip_bad;
    mv_dataset *data = NULL;
    if (mv_dataset_load_folder(&data, at(dir), &o, NULL) != MV_OK)
        fail_msg("loading %s: %s", dir, mv_last_error());
    return data;
}

static size_t row_size(const mv_dataset *d)
{
    return (size_t)d->channels * d->height * d->width;
}

/* rows [n][D] of indices, read through mv_dataset_read_rows, malloc'd. */
static float *rows_of(const mv_dataset *d, const int *indices, int n)
{
    float *rows = malloc(sizeof *rows * row_size(d) * (size_t)(n ? n : 1));
    assert_non_null(rows);
    if (mv_dataset_read_rows(d, indices, n, rows) != MV_OK)
        fail_msg("read_rows: %s", mv_last_error());
    return rows;
}

/* Same shape, classes and labels, and the same bits in every row, in a scrambled order
 * that repeats images. */
static void expect_same_dataset(const mv_dataset *a, const mv_dataset *b)
{
    assert_int_equal(a->count, b->count);
    assert_true(a->channels == b->channels && a->height == b->height && a->width == b->width);
    assert_int_equal(a->n_classes, b->n_classes);
    for (int k = 0; k < a->n_classes; k++)
        assert_string_equal(a->class_names[k], b->class_names[k]);
    int order[64];
    const int n = 2 * a->count;
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) order[i] = (i * 5 + 3) % a->count;
    for (int i = 0; i < a->count; i++) assert_int_equal(a->labels[i], b->labels[i]);
    float *ra = rows_of(a, order, n), *rb = rows_of(b, order, n);
    assert_memory_equal(ra, rb, sizeof *ra * row_size(a) * (size_t)n);
    free(ra);
    free(rb);
}

static void expect_error(mv_status got, mv_status want, const char *names)
{
    if (got != want)
        fail_msg("status %d, want %d (%s)", got, want, mv_last_error());
    if (!strstr(mv_last_error(), names))
        fail_msg("error \"%s\" does not name \"%s\"", mv_last_error(), names);
}

/* ---------------------------------------------------------------- storages */

static void test_folder_storages_give_the_same_rows(void **state)
{
    (void)state;
    make_gray_folder("same");
    mv_dataset *f = load_folder("same", MV_STORAGE_FLOAT, 0);
    mv_dataset *b = load_folder("same", MV_STORAGE_BYTES, 0);
    mv_dataset *s = load_folder("same", MV_STORAGE_STREAM, 0);
    assert_true(f->storage == MV_STORAGE_FLOAT && f->pixels && !f->bytes && !f->files);
    assert_true(b->storage == MV_STORAGE_BYTES && !b->pixels && b->bytes && !b->files);
    assert_true(s->storage == MV_STORAGE_STREAM && !s->pixels && !s->bytes && s->files);
    /* the bytes are the pixels * 255, and the pixels exactly bytes / 255 */
    for (size_t i = 0; i < row_size(f) * (size_t)f->count; i++)
        assert_true(f->pixels[i] == b->bytes[i] / 255.0f);
    expect_same_dataset(f, b);
    expect_same_dataset(f, s);
    /* the rows of a float dataset are its pixels */
    int all[7];
    for (int i = 0; i < 7; i++) all[i] = i;
    float *rows = rows_of(f, all, 7);
    assert_memory_equal(rows, f->pixels, sizeof *rows * row_size(f) * 7);
    free(rows);
    mv_dataset_free(f);
    mv_dataset_free(b);
    mv_dataset_free(s);
}

/* Bytes are kept only where byte / 255 is what the float loader gives: never after a resize,
 * a luminance mix, or from 16-bit samples. Gray replicated to RGB is exact, so it stays
 * bytes. */
static void test_bytes_only_where_exact(void **state)
{
    (void)state;
    make_gray_folder("mixed");
    write_noise_png("mixed/a/9.png", 6, 4, 1, 99); /* another size: resized */
    mv_dataset *d = load_folder("mixed", MV_STORAGE_BYTES, 0);
    assert_int_equal(d->storage, MV_STORAGE_FLOAT);
    mv_dataset *f = load_folder("mixed", MV_STORAGE_FLOAT, 0);
    expect_same_dataset(f, d);
    mv_dataset_free(d);
    mv_dataset_free(f);
    unlink(at("mixed/a/9.png"));

    write_noise_png("mixed/a/9.png", 5, 4, 3, 98); /* colour: the data becomes RGB */
    d = load_folder("mixed", MV_STORAGE_BYTES, 0);
    assert_true(d->storage == MV_STORAGE_BYTES && d->channels == 3);
    f = load_folder("mixed", MV_STORAGE_FLOAT, 0);
    expect_same_dataset(f, d);
    mv_dataset_free(f);
    mv_dataset_free(d);

    mv_load_options o; /* the same colour image made gray: luminance mixes channels */
    mv_load_options_defaults(&o);
    o.storage = MV_STORAGE_BYTES;
    o.channels = 1;
    assert_int_equal(mv_dataset_load_folder(&d, at("mixed"), &o, NULL), MV_OK);
    assert_int_equal(d->storage, MV_STORAGE_FLOAT);
    mv_dataset_free(d);
    unlink(at("mixed/a/9.png"));

    /* a 16-bit gray PNG of the same size: today's decoder keeps 8 bits of it, but its
     * storage must not depend on that */
    unsigned char raw[4 * 11] = {0}; /* 4 rows: filter byte 0, 5 samples of 2 bytes */
    for (int i = 0; i < 4 * 11; i++) raw[i] = i % 11 ? (unsigned char)(37 * i) : 0;
    write_16bit_gray_png("mixed/a/9.png", 5, 4, raw, (int)sizeof raw);
    d = load_folder("mixed", MV_STORAGE_BYTES, 0);
    assert_int_equal(d->storage, MV_STORAGE_FLOAT);
    mv_dataset_free(d);
    unlink(at("mixed/a/9.png"));
}

/* 5 images of 3 x 2 bytes (idx3) and their labels (idx1), plain. */
static void write_idx(const char *images_rel, const char *labels_rel)
{
    unsigned char images[16 + 30], labels[8 + 5];
    put_be32(images, 0x803);
    put_be32(images + 4, 5);
    put_be32(images + 8, 3);
    put_be32(images + 12, 2);
    for (int i = 0; i < 30; i++) images[16 + i] = (unsigned char)(i * 37 + 11);
    put_be32(labels, 0x801);
    put_be32(labels + 4, 5);
    const unsigned char label[5] = {1, 0, 2, 1, 0};
    memcpy(labels + 8, label, 5);
    write_bytes(images_rel, images, sizeof images);
    write_bytes(labels_rel, labels, sizeof labels);
}

static mv_dataset *load_idx(const char *images_rel, mv_storage storage)
{
    mv_dataset *d = NULL;
    if (mv_dataset_load_idx_as(&d, at(images_rel), at("idx-labels"), NULL, 0, storage))
        fail_msg("loading %s: %s", images_rel, mv_last_error());
    assert_int_equal(d->storage, storage);
    return d;
}

static void test_idx_storages_give_the_same_rows(void **state)
{
    (void)state;
    write_idx("idx-images", "idx-labels");
    mv_dataset *f = load_idx("idx-images", MV_STORAGE_FLOAT);
    mv_dataset *b = load_idx("idx-images", MV_STORAGE_BYTES);
    mv_dataset *s = load_idx("idx-images", MV_STORAGE_STREAM);
    assert_true(b->bytes && !b->pixels && s->files && !s->pixels && !s->bytes);
    assert_int_equal(b->bytes[7], (7 * 37 + 11) & 255);
    expect_same_dataset(f, b);
    expect_same_dataset(f, s);
    mv_dataset_free(f);
    mv_dataset_free(b);
    mv_dataset_free(s);

    /* gzip: held in memory in any storage, refused for streaming with a reason */
    unsigned char magic[2] = {0x1f, 0x8b};
    write_bytes("idx-gz", magic, 2);
    mv_dataset *d = NULL;
    expect_error(mv_dataset_load_idx_as(&d, at("idx-gz"), at("idx-labels"), NULL, 0,
                                        MV_STORAGE_STREAM), MV_ERR_FORMAT, "idx-gz");
    assert_non_null(strstr(mv_last_error(), "gzip"));
    assert_null(d);
    /* a streamed file too short for its header is refused at load, as a whole one is */
    write_idx("idx-short", "idx-labels");
    assert_int_equal(truncate(at("idx-short"), 16 + 29), 0);
    expect_error(mv_dataset_load_idx_as(&d, at("idx-short"), at("idx-labels"), NULL, 0,
                                        MV_STORAGE_STREAM), MV_ERR_FORMAT, "idx-short");
    assert_int_equal(truncate(at("idx-short"), 10), 0);
    expect_error(mv_dataset_load_idx_as(&d, at("idx-short"), at("idx-labels"), NULL, 0,
                                        MV_STORAGE_STREAM), MV_ERR_FORMAT, "idx-short");
    expect_error(mv_dataset_load_idx_as(&d, at("idx-none"), at("idx-labels"), NULL, 0,
                                        MV_STORAGE_STREAM), MV_ERR_IO, "idx-none");
}

/* A streamed folder keeps exactly the files the in-memory load keeps (skip_bad drops files
 * that fail to decode, not only bad headers) and fails with the same error without it. */
static void test_stream_keeps_the_loaders_decisions(void **state)
{
    (void)state;
    make_gray_folder("skip");
    write_bytes("skip/a/0b.png", "not an image", 12);
    write_noise_png("skip/b/1b.png", 12, 12, 1, 77); /* header fine, pixels cut */
    assert_int_equal(truncate(at("skip/b/1b.png"), 60), 0);
    mv_dataset *f = load_folder("skip", MV_STORAGE_FLOAT, 1);
    mv_dataset *s = load_folder("skip", MV_STORAGE_STREAM, 1);
    assert_int_equal(f->count, 7);
    expect_same_dataset(f, s);
    mv_dataset_free(f);
    mv_dataset_free(s);

    mv_load_options o;
    mv_load_options_defaults(&o);
    unlink(at("skip/a/0b.png")); /* only the decoding failure is left */
    mv_dataset *d = NULL;
    expect_error(mv_dataset_load_folder(&d, at("skip"), &o, NULL), MV_ERR_FORMAT, "1b.png");
    char want[512];
    snprintf(want, sizeof want, "%s", mv_last_error());
    o.storage = MV_STORAGE_STREAM;
    expect_error(mv_dataset_load_folder(&d, at("skip"), &o, NULL), MV_ERR_FORMAT, "1b.png");
    assert_string_equal(mv_last_error(), want);
    assert_null(d);
}

/* Files that become unreadable after the load are errors naming them; out-of-range rows are
 * refused in every storage; with two bad rows the first in request order is named, whatever
 * the thread count. */
static void test_read_errors_name_the_file(void **state)
{
    (void)state;
    make_gray_folder("gone");
    mv_dataset *s = load_folder("gone", MV_STORAGE_STREAM, 0);
    float rows[4 * 20];
    const int first_b[2] = {3, 4}; /* gone/b/0.png, gone/b/1.png */
    assert_int_equal(mv_dataset_read_rows(s, first_b, 2, rows), MV_OK);
    unlink(at("gone/b/1.png"));
    assert_int_equal(truncate(at("gone/b/0.png"), 45), 0);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        const int one[2] = {4, 3}, other[2] = {3, 4};
        expect_error(mv_dataset_read_rows(s, one, 2, rows), MV_ERR_IO, "gone/b/1.png");
        expect_error(mv_dataset_read_rows(s, other, 2, rows), MV_ERR_FORMAT, "gone/b/0.png");
    }
    const int bad[2] = {0, 7};
    expect_error(mv_dataset_read_rows(s, bad, 2, rows), MV_ERR_ARG, "outside");
    mv_dataset *f = load_folder("same", MV_STORAGE_FLOAT, 0);
    mv_dataset *b = load_folder("same", MV_STORAGE_BYTES, 0);
    const int negative[1] = {-1};
    expect_error(mv_dataset_read_rows(f, bad, 2, rows), MV_ERR_ARG, "outside");
    expect_error(mv_dataset_read_rows(b, negative, 1, rows), MV_ERR_ARG, "outside");
    mv_dataset_free(s);
    mv_dataset_free(f);
    mv_dataset_free(b);

    write_idx("idx-cut", "idx-labels");
    s = load_idx("idx-cut", MV_STORAGE_STREAM);
    assert_int_equal(truncate(at("idx-cut"), 16 + 6 * 3), 0); /* items 3 and 4 cut */
    const int early[3] = {0, 1, 2}, late[2] = {1, 4};
    assert_int_equal(mv_dataset_read_rows(s, early, 3, rows), MV_OK);
    expect_error(mv_dataset_read_rows(s, late, 2, rows), MV_ERR_FORMAT, "idx-cut");
    unlink(at("idx-cut"));
    expect_error(mv_dataset_read_rows(s, early, 3, rows), MV_ERR_IO, "idx-cut");
    mv_dataset_free(s);
}

/* ---------------------------------------------------------------- prefetch */

/* An epoch as the trainer runs it: start the first batch, then each step start the next and
 * take the current. Every batch taken must be read_rows' rows, and a batch must stay intact
 * until the start after the next one (the step that trains on it). */
static void run_epoch(const mv_dataset *reference, const mv_dataset *d, int batch)
{
    const size_t D = row_size(d);
    mv_prefetch *p = NULL;
    assert_int_equal(mv_prefetch_create(&p, d, batch), MV_OK);
    int order[64];
    const int n = 3 * d->count; /* three passes, as three epochs in a row */
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) order[i] = (i * 3 + i / d->count) % d->count;
    float *want = rows_of(reference, order, n);
    float *previous_copy = malloc(sizeof *previous_copy * D * (size_t)batch);
    const float *previous = NULL;
    int previous_n = 0;
    assert_int_equal(mv_prefetch_start(p, order, batch < n ? batch : n), MV_OK);
    for (int first = 0; first < n; first += batch) {
        const int len = n - first < batch ? n - first : batch;
        const int next = first + batch, next_len = n - next < batch ? n - next : batch;
        const float *rows = NULL;
        assert_int_equal(mv_prefetch_take(p, &rows), MV_OK);
        if (previous) /* the batch before is still what it was */
            assert_memory_equal(previous, previous_copy, sizeof(float) * D * (size_t)previous_n);
        if (next < n)
            assert_int_equal(mv_prefetch_start(p, order + next, next_len), MV_OK);
        assert_memory_equal(rows, want + (size_t)first * D, sizeof(float) * D * (size_t)len);
        memcpy(previous_copy, rows, sizeof(float) * D * (size_t)len);
        previous = rows;
        previous_n = len;
    }
    free(want);
    free(previous_copy);
    mv_prefetch_free(p);
}

static void test_prefetch_gives_read_rows(void **state)
{
    (void)state;
    mv_dataset *f = load_folder("same", MV_STORAGE_FLOAT, 0);
    mv_dataset *b = load_folder("same", MV_STORAGE_BYTES, 0);
    mv_dataset *s = load_folder("same", MV_STORAGE_STREAM, 0);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (int batch = 1; batch <= 4; batch++) {
            run_epoch(f, f, batch);
            run_epoch(f, b, batch);
            run_epoch(f, s, batch);
        }
    }
    mv_dataset *fi = load_idx("idx-images", MV_STORAGE_FLOAT);
    mv_dataset *si = load_idx("idx-images", MV_STORAGE_STREAM);
    run_epoch(fi, si, 2);
    mv_dataset_free(f);
    mv_dataset_free(b);
    mv_dataset_free(s);
    mv_dataset_free(fi);
    mv_dataset_free(si);
}

/* A read that fails on the reading thread comes back from take() with its message, and the
 * prefetch goes on with the next request; misuse is refused; a prefetch freed with a read
 * under way or never taken leaves nothing behind (ASan, make SAN=1). */
static void test_prefetch_errors(void **state)
{
    (void)state;
    make_gray_folder("vanish");
    mv_dataset *s = load_folder("vanish", MV_STORAGE_STREAM, 0);
    mv_prefetch *p = NULL;
    const float *rows = NULL;
    assert_int_equal(mv_prefetch_create(&p, s, 2), MV_OK);
    expect_error(mv_prefetch_take(p, &rows), MV_ERR_ARG, "without start");
    const int three[3] = {0, 1, 2}, pair[2] = {5, 0}, fine[2] = {1, 2};
    expect_error(mv_prefetch_start(p, three, 3), MV_ERR_ARG, "3 rows");
    unlink(at("vanish/b/2.png")); /* image 5 */
    assert_int_equal(mv_prefetch_start(p, pair, 2), MV_OK);
    expect_error(mv_prefetch_take(p, &rows), MV_ERR_IO, "vanish/b/2.png");
    assert_int_equal(mv_prefetch_start(p, fine, 2), MV_OK);
    assert_int_equal(mv_prefetch_take(p, &rows), MV_OK);
    float *want = rows_of(s, fine, 2);
    assert_memory_equal(rows, want, sizeof *want * row_size(s) * 2);
    free(want);
    /* a request replaced before it was taken, then one left under way at the end */
    assert_int_equal(mv_prefetch_start(p, pair, 2), MV_OK);
    assert_int_equal(mv_prefetch_start(p, fine, 2), MV_OK);
    assert_int_equal(mv_prefetch_take(p, &rows), MV_OK);
    assert_int_equal(mv_prefetch_start(p, fine, 2), MV_OK);
    mv_prefetch_free(p);
    mv_prefetch_free(NULL);
    mv_dataset_free(s);
}

/* ---------------------------------------------------------------- what training fits */

static void test_split_keeps_the_storage(void **state)
{
    (void)state;
    const mv_storage storages[3] = {MV_STORAGE_FLOAT, MV_STORAGE_BYTES, MV_STORAGE_STREAM};
    mv_dataset *parts[3][2];
    for (int i = 0; i < 3; i++) {
        mv_dataset *whole = load_folder("same", storages[i], 0);
        assert_int_equal(mv_dataset_split(whole, 0.3, 42, &parts[i][0], &parts[i][1]), MV_OK);
        mv_dataset_free(whole); /* the parts own what they hold */
        assert_int_equal(parts[i][0]->storage, storages[i]);
        assert_int_equal(parts[i][1]->count, 2);
    }
    mv_dataset *idx = load_idx("idx-images", MV_STORAGE_STREAM), *it, *iv;
    mv_dataset *idx_f = load_idx("idx-images", MV_STORAGE_FLOAT), *ft, *fv;
    assert_int_equal(mv_dataset_split(idx, 0.4, 7, &it, &iv), MV_OK);
    assert_int_equal(mv_dataset_split(idx_f, 0.4, 7, &ft, &fv), MV_OK);
    expect_same_dataset(ft, it);
    expect_same_dataset(fv, iv);
    mv_dataset *it2, *iv2, *ft2, *fv2; /* a part split again: items no longer 0, 1, ... */
    assert_int_equal(mv_dataset_split(it, 0.34, 8, &it2, &iv2), MV_OK);
    assert_int_equal(mv_dataset_split(ft, 0.34, 8, &ft2, &fv2), MV_OK);
    expect_same_dataset(ft2, it2);
    expect_same_dataset(fv2, iv2);
    mv_dataset_free(it2);
    mv_dataset_free(iv2);
    mv_dataset_free(ft2);
    mv_dataset_free(fv2);
    for (int i = 1; i < 3; i++)
        for (int part = 0; part < 2; part++) expect_same_dataset(parts[0][part], parts[i][part]);
    for (int i = 0; i < 3; i++)
        for (int part = 0; part < 2; part++) mv_dataset_free(parts[i][part]);
    mv_dataset *to_free[6] = {idx, it, iv, idx_f, ft, fv};
    for (int i = 0; i < 6; i++) mv_dataset_free(to_free[i]);
}

/* The normalisation, class statistics and mixtures a model takes from its training data,
 * saved: the same file from every storage. A streamed file gone makes the fits fail with its
 * name instead. */
static void test_fits_are_the_same_file(void **state)
{
    (void)state;
    make_gray_folder("fit");
    const mv_storage storages[3] = {MV_STORAGE_FLOAT, MV_STORAGE_BYTES, MV_STORAGE_STREAM};
    unsigned char *files[3];
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        mv_dataset *d = load_folder("fit", storages[i], 0);
        mv_arch arch = {.n_layers = 1, .widths = {20, 2}, .head = MV_HEAD_SOFTMAX_CE};
        mv_model *m = NULL;
        assert_int_equal(mv_model_create(&m, &arch), MV_OK);
        m->channels = 1, m->height = 4, m->width = 5;
        assert_int_equal(mv_model_fit_normalisation(m, d), MV_OK);
        assert_int_equal(mv_model_fit_class_stats(m, d, 2, 9), MV_OK);
        assert_int_equal(mv_model_fit_class_mixture(m, d, 2, 9), MV_OK);
        char rel[64];
        snprintf(rel, sizeof rel, "fit-%d.mlp", i);
        assert_int_equal(mv_model_save(m, at(rel)), MV_OK);
        FILE *file = fopen(at(rel), "rb");
        assert_non_null(file);
        files[i] = malloc(1 << 16);
        sizes[i] = fread(files[i], 1, 1 << 16, file);
        fclose(file);
        if (storages[i] == MV_STORAGE_STREAM) {
            unlink(at("fit/a/1.png"));
            expect_error(mv_model_fit_normalisation(m, d), MV_ERR_IO, "fit/a/1.png");
            expect_error(mv_model_fit_class_stats(m, d, 2, 9), MV_ERR_IO, "fit/a/1.png");
            expect_error(mv_model_fit_class_mixture(m, d, 2, 9), MV_ERR_IO, "fit/a/1.png");
        }
        mv_model_free(m);
        mv_dataset_free(d);
    }
    for (int i = 1; i < 3; i++) {
        assert_int_equal(sizes[i], sizes[0]);
        assert_memory_equal(files[i], files[0], sizes[0]);
    }
    for (int i = 0; i < 3; i++) free(files[i]);
}

/* should_stop callback: after `after` batches, removes the file named by user's path (a
 * file vanishing mid-run); never stops the run itself. */
typedef struct {
    int batches, after;
    const char *path;
} vanish_plan;

static int remove_mid_run(void *user)
{
    vanish_plan *plan = user;
    if (++plan->batches == plan->after)
        unlink(plan->path);
    return 0;
}

/* Trains a 20-8-2 model for 3 epochs of batch 3 with flips and dropout on data (val: its
 * validation part) and saves it as rel; the status of mv_train. */
static mv_status train_and_save(const mv_dataset *train, const mv_dataset *val, const char *rel,
                                vanish_plan *plan)
{
    mv_arch arch = {.n_layers = 2, .widths = {20, 8, 2}, .act = {{MV_ACT_RELU, 0}},
                    .head = MV_HEAD_SOFTMAX_CE};
    mv_model *m = NULL;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    m->channels = 1, m->height = 4, m->width = 5;
    assert_int_equal(mv_model_set_class_names(m, (const char *const *)train->class_names, 2),
                     MV_OK);
    mv_net_init(m->net, 3);
    mv_status st = mv_model_fit_normalisation(m, train);
    mv_train_config c;
    mv_train_defaults(&c);
    c.epochs = 3, c.batch = 3, c.flip = 1, c.dropout = 0.25f, c.seed = 5;
    c.should_stop = plan ? remove_mid_run : NULL;
    c.user = plan;
    int interrupted = 0;
    if (!st)
        st = mv_train(m, train, val, &c, &interrupted);
    assert_int_equal(interrupted, 0);
    if (!st)
        assert_int_equal(mv_model_save(m, at(rel)), MV_OK);
    mv_model_free(m);
    return st;
}

static unsigned char *slurp(const char *rel, size_t *n)
{
    FILE *f = fopen(at(rel), "rb");
    assert_non_null(f);
    unsigned char *data = malloc(1 << 16);
    *n = fread(data, 1, 1 << 16, f);
    fclose(f);
    return data;
}

/* The trainer itself (mv_train: batches through a prefetch, validation and the run's
 * fingerprint through read_rows) writes the same model file from floats, bytes and a
 * streamed folder; a file removed during a streamed run fails it with the file's name. */
static void test_training_is_the_same_file(void **state)
{
    (void)state;
    const mv_storage storages[3] = {MV_STORAGE_FLOAT, MV_STORAGE_BYTES, MV_STORAGE_STREAM};
    unsigned char *files[3];
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        mv_dataset *whole = load_folder("same", storages[i], 0), *train, *val;
        assert_int_equal(mv_dataset_split(whole, 0.3, 4, &train, &val), MV_OK);
        char rel[64];
        snprintf(rel, sizeof rel, "trained-%d.mlp", i);
        assert_int_equal(train_and_save(train, val, rel, NULL), MV_OK);
        files[i] = slurp(rel, &sizes[i]);
        mv_dataset_free(whole);
        mv_dataset_free(train);
        mv_dataset_free(val);
    }
    for (int i = 1; i < 3; i++) {
        assert_int_equal(sizes[i], sizes[0]);
        assert_memory_equal(files[i], files[0], sizes[0]);
    }
    for (int i = 0; i < 3; i++) free(files[i]);

    make_gray_folder("midrun");
    mv_dataset *d = load_folder("midrun", MV_STORAGE_STREAM, 0);
    vanish_plan plan = {.after = 4, .path = at("midrun/b/3.png")};
    expect_error(train_and_save(d, NULL, "midrun.mlp", &plan), MV_ERR_IO, "midrun/b/3.png");
    assert_true(plan.batches >= 4);
    assert_int_equal(access(at("midrun.mlp"), F_OK), -1);
    mv_dataset_free(d);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int make_fixture_root(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(fixture_root, sizeof fixture_root, "%s/mlpviz-test-prefetch-XXXXXX",
             base && *base ? base : "/tmp");
    return mkdtemp(fixture_root) ? 0 : -1;
}

static int remove_fixture_root(void **state)
{
    (void)state;
    return nftw(fixture_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    /* in this order: later cases read the fixtures of earlier ones ("same", idx-images) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_storages_give_the_same_rows),
        cmocka_unit_test(test_bytes_only_where_exact),
        cmocka_unit_test(test_idx_storages_give_the_same_rows),
        cmocka_unit_test(test_stream_keeps_the_loaders_decisions),
        cmocka_unit_test(test_read_errors_name_the_file),
        cmocka_unit_test(test_prefetch_gives_read_rows),
        cmocka_unit_test(test_prefetch_errors),
        cmocka_unit_test(test_split_keeps_the_storage),
        cmocka_unit_test(test_fits_are_the_same_file),
        cmocka_unit_test(test_training_is_the_same_file),
    };
    return cmocka_run_group_tests_name("prefetch", tests, make_fixture_root,
                                       remove_fixture_root);
}
