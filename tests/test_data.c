/* test_data.c: images, image folders and IDX files, through the public API only.
 *
 * Every fixture is made here, in a fresh mkdtemp directory removed at the end: images are
 * written with stb_image_write or byte by byte (hand-made PNG chunks, IDX headers, gzip
 * members), so expected values are known exactly and nothing binary is committed. */
#define _XOPEN_SOURCE 700 /* nftw, to remove the fixture tree */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "mlpviz.h"

/* Exported by libstb.so but declared by stb_image_write.h only in its implementation section:
 * a zlib stream (2-byte header, deflate data, Adler-32), malloc'd. */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

#define EXACT 0.0
#define LOOSE 1e-6 /* float rounding of a weighted mean */

/* ---------------------------------------------------------------- fixture helpers */

static char fixture_root[512]; /* the mkdtemp directory of this run */

/* fixture_root/rel in one of a few rotating buffers, so that a call can take several paths. */
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
    if (mkdir(at(rel), 0777) != 0)
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

/* The whole file, malloc'd; *n receives its size. */
static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return data;
}

/* An 8-bit PNG of [h][w][comp] bytes, written by stb. */
static void write_png(const char *rel, int w, int h, int comp, const unsigned char *px)
{
    if (!stbi_write_png(at(rel), w, h, comp, px, w * comp))
        fail_msg("stbi_write_png %s failed", rel);
}

/* A w x h gray PNG of one value. */
static void write_flat_gray(const char *rel, int w, int h, unsigned char value)
{
    unsigned char px[64 * 64];
    assert_true(w * h <= (int)sizeof px);
    memset(px, value, (size_t)(w * h));
    write_png(rel, w, h, 1, px);
}

/* The first half of a valid PNG of noise (incompressible, so half the file is half the
 * pixels): its header passes, its pixels are missing. */
static void write_truncated_png(const char *rel, uint64_t seed)
{
    unsigned char noise[24 * 24];
    mv_rng rng;
    mv_rng_seed(&rng, seed);
    for (int i = 0; i < 24 * 24; i++) noise[i] = (unsigned char)mv_rng_below(&rng, 256);
    write_png(rel, 24, 24, 1, noise);
    size_t n;
    unsigned char *whole = read_bytes(at(rel), &n);
    write_bytes(rel, whole, n / 2);
    free(whole);
}

static void expect_near(double got, double want, double tol, const char *what, int index)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s[%d] = %.9g, want %.9g (tolerance %g)", what, index, got, want, tol);
}

/* A failing call: the status is the expected one and mv_last_error() names the file. */
static void expect_error(mv_status got, mv_status want, const char *names)
{
    if (got != want)
        fail_msg("status '%s', want '%s' (message: %s)", mv_status_string(got),
                 mv_status_string(want), mv_last_error());
    if (!strstr(mv_last_error(), names))
        fail_msg("message '%s' does not name '%s'", mv_last_error(), names);
}

static void expect_message_has(const char *text)
{
    if (!strstr(mv_last_error(), text))
        fail_msg("message '%s' lacks '%s'", mv_last_error(), text);
}

/* Number of entries (hidden ones included, "." and ".." not) in a directory. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
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

/* A PNG made by hand: IHDR (w, h, bit depth, colour type), an optional PLTE, one IDAT holding
 * the zlib-compressed scanlines `raw` (each starting with its filter byte), IEND. Returns the
 * file size written. */
static size_t write_handmade_png(const char *rel, uint32_t w, uint32_t h, int depth, int type,
                                 const unsigned char *palette, size_t palette_n,
                                 unsigned char *raw, int raw_n)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth;
    ihdr[9] = (unsigned char)type;
    int zlen = 0;
    unsigned char *z = raw ? stbi_zlib_compress(raw, raw_n, &zlen, 8) : NULL;
    unsigned char *png = malloc(8 + 25 + 12 + palette_n + 12 + (size_t)zlen + 12);
    assert_non_null(png);
    size_t pos = 8;
    memcpy(png, signature, 8);
    put_chunk(png, &pos, "IHDR", ihdr, 13);
    if (palette)
        put_chunk(png, &pos, "PLTE", palette, palette_n);
    if (z)
        put_chunk(png, &pos, "IDAT", z, (size_t)zlen);
    put_chunk(png, &pos, "IEND", NULL, 0);
    write_bytes(rel, png, pos);
    free(z);
    free(png);
    return pos;
}

/* A gzip member around data (RFC 1952) with the optional header fields the flags ask for:
 * raw deflate is stb's zlib stream without its 2-byte header and 4-byte Adler-32. */
static unsigned char *gzip_wrap(unsigned char *data, size_t n, unsigned flags, size_t *out_n)
{
    enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16 };
    int zlen = 0;
    unsigned char *z = stbi_zlib_compress(data, (int)n, &zlen, 8);
    assert_non_null(z);
    assert_true(zlen > 6);
    unsigned char *gz = malloc(64 + (size_t)zlen);
    assert_non_null(gz);
    unsigned char header[10] = {0x1f, 0x8b, 8, (unsigned char)flags, 0, 0, 0, 0, 0, 3};
    size_t pos = sizeof header;
    memcpy(gz, header, pos);
    if (flags & FEXTRA) {
        static const unsigned char extra[] = {6, 0, 'A', 'B', 2, 0, 'x', 'y'};
        memcpy(gz + pos, extra, sizeof extra);
        pos += sizeof extra;
    }
    if (flags & FNAME) {
        memcpy(gz + pos, "data.idx", 9);
        pos += 9;
    }
    if (flags & FCOMMENT) {
        memcpy(gz + pos, "made by test_data", 18);
        pos += 18;
    }
    if (flags & FHCRC) {
        uint32_t crc = mv_crc32(0, gz, pos);
        gz[pos++] = (unsigned char)crc;
        gz[pos++] = (unsigned char)(crc >> 8);
    }
    memcpy(gz + pos, z + 2, (size_t)zlen - 6);
    pos += (size_t)zlen - 6;
    put_le32(gz + pos, mv_crc32(0, data, n));
    put_le32(gz + pos + 4, (uint32_t)n);
    *out_n = pos + 8;
    free(z);
    return gz;
}

/* Removes one entry of the fixture tree (nftw callback, depth first). */
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
    snprintf(fixture_root, sizeof fixture_root, "%s/mlpviz-test-data-XXXXXX",
             base && *base ? base : "/tmp");
    return mkdtemp(fixture_root) ? 0 : -1;
}

static int remove_fixture_root(void **state)
{
    (void)state;
    return nftw(fixture_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- single images */

/* A 3x2 RGB picture with distinct channel values: [2][3][3]. */
static const unsigned char rgb_3x2[18] = {255, 0,  0,  0,   255, 0,   0,  0,  255,
                                          10,  20, 30, 128, 64,  200, 17, 99, 250};

static void expect_rgb_3x2(const float *px, double tol, const char *what)
{
    for (int i = 0; i < 18; i++) expect_near(px[i], rgb_3x2[i] / 255.0f, tol, what, i);
}

static void test_lossless_formats_load_exactly(void **state)
{
    (void)state;
    make_dir("formats");
    assert_true(stbi_write_png(at("formats/a.png"), 3, 2, 3, rgb_3x2, 9));
    assert_true(stbi_write_bmp(at("formats/a.bmp"), 3, 2, 3, rgb_3x2));
    assert_true(stbi_write_tga(at("formats/a.tga"), 3, 2, 3, rgb_3x2));
    const char *files[] = {"formats/a.png", "formats/a.bmp", "formats/a.tga"};
    for (int f = 0; f < 3; f++) {
        float px[18];
        int w = 0, h = 0, c = 0;
        assert_int_equal(mv_image_info(at(files[f]), &w, &h, &c), MV_OK);
        assert_int_equal(w, 3);
        assert_int_equal(h, 2);
        assert_int_equal(c, 3);
        assert_int_equal(mv_image_load(at(files[f]), 3, 3, 2, 0, px), MV_OK);
        expect_rgb_3x2(px, EXACT, files[f]);
    }
}

/* The content decides the format, not the name: a JPEG called .png loads as a JPEG. */
static void test_jpeg_named_png_loads(void **state)
{
    (void)state;
    make_dir("jpeg");
    unsigned char flat[16 * 16 * 3]; /* [16][16][3] one colour: JPEG keeps it nearly exact */
    for (int i = 0; i < 16 * 16; i++) {
        flat[3 * i] = 200;
        flat[3 * i + 1] = 100;
        flat[3 * i + 2] = 50;
    }
    assert_true(stbi_write_jpg(at("jpeg/photo.png"), 16, 16, 3, flat, 100));
    size_t n;
    unsigned char *bytes = read_bytes(at("jpeg/photo.png"), &n);
    assert_true(bytes[0] == 0xFF && bytes[1] == 0xD8); /* it really is a JPEG */
    free(bytes);
    float px[16 * 16 * 3];
    assert_int_equal(mv_image_load(at("jpeg/photo.png"), 3, 16, 16, 0, px), MV_OK);
    for (int i = 0; i < 16 * 16; i++) {
        expect_near(px[3 * i], 200 / 255.0, 3 / 255.0, "jpeg R", i);
        expect_near(px[3 * i + 1], 100 / 255.0, 3 / 255.0, "jpeg G", i);
        expect_near(px[3 * i + 2], 50 / 255.0, 3 / 255.0, "jpeg B", i);
    }
}

/* gray = 0.299 R + 0.587 G + 0.114 B; gray to RGB replicates; alpha is dropped, not mixed. */
static void test_channel_conversions(void **state)
{
    (void)state;
    make_dir("channels");
    write_png("channels/rgb.png", 3, 2, 3, rgb_3x2);
    float gray[6];
    assert_int_equal(mv_image_load(at("channels/rgb.png"), 1, 3, 2, 0, gray), MV_OK);
    for (int i = 0; i < 6; i++) {
        const unsigned char *p = rgb_3x2 + 3 * i;
        expect_near(gray[i], (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0, LOOSE, "luma",
                    i);
    }
    expect_near(gray[0], 0.299, LOOSE, "pure red", 0);
    expect_near(gray[1], 0.587, LOOSE, "pure green", 1);
    expect_near(gray[2], 0.114, LOOSE, "pure blue", 2);

    const unsigned char ga[4] = {40, 0, 220, 255}; /* gray+alpha [1][2][2] */
    write_png("channels/ga.png", 2, 1, 2, ga);
    float rgb[6];
    assert_int_equal(mv_image_load(at("channels/ga.png"), 3, 2, 1, 0, rgb), MV_OK);
    for (int c = 0; c < 3; c++) {
        expect_near(rgb[c], 40 / 255.0f, EXACT, "gray replicated", c);
        expect_near(rgb[3 + c], 220 / 255.0f, EXACT, "gray replicated", 3 + c);
    }
    const unsigned char rgba[8] = {10, 20, 30, 0, 90, 80, 70, 128}; /* [1][2][4] */
    write_png("channels/rgba.png", 2, 1, 4, rgba);
    assert_int_equal(mv_image_load(at("channels/rgba.png"), 3, 2, 1, 0, rgb), MV_OK);
    const unsigned char want[6] = {10, 20, 30, 90, 80, 70};
    for (int i = 0; i < 6; i++) expect_near(rgb[i], want[i] / 255.0f, EXACT, "alpha dropped", i);
}

/* A palette PNG and a 16-bit PNG (stb reduces it to 8 bits) made chunk by chunk. */
static void test_palette_and_16_bit_png(void **state)
{
    (void)state;
    make_dir("handmade");
    const unsigned char palette[6] = {255, 0, 0, 0, 0, 255};
    unsigned char indexed[3] = {0, 1, 0}; /* filter byte, then indices 1, 0 */
    write_handmade_png("handmade/palette.png", 2, 1, 8, 3, palette, 6, indexed, 3);
    float rgb[6];
    assert_int_equal(mv_image_load(at("handmade/palette.png"), 3, 2, 1, 0, rgb), MV_OK);
    const float want_rgb[6] = {0, 0, 1, 1, 0, 0};
    for (int i = 0; i < 6; i++) expect_near(rgb[i], want_rgb[i], EXACT, "palette", i);

    unsigned char deep[7] = {0, 0x00, 0x00, 0xFF, 0xFF, 0x80, 0x80}; /* filter, 3 x 16 bits */
    write_handmade_png("handmade/deep.png", 3, 1, 16, 0, NULL, 0, deep, 7);
    float gray[3];
    assert_int_equal(mv_image_load(at("handmade/deep.png"), 1, 3, 1, 0, gray), MV_OK);
    expect_near(gray[0], 0, EXACT, "16-bit", 0);
    expect_near(gray[1], 1, EXACT, "16-bit", 1);
    expect_near(gray[2], 128 / 255.0, 1 / 255.0, "16-bit", 2);
}

/* Shrinking averages areas exactly: 4x4 -> 2x2 gives the means of the 2x2 blocks, and 3 -> 2
 * weighs the middle pixel half into each output. */
static void test_shrink_averages_areas(void **state)
{
    (void)state;
    make_dir("shrink");
    const unsigned char block[16] = {0,   40,  100, 104, /* [4][4] */
                                     80,  120, 96,  100, 255, 255, 0,  10,
                                     251, 250, 20,  30};
    write_png("shrink/4x4.png", 4, 4, 1, block);
    float out[4];
    assert_int_equal(mv_image_load(at("shrink/4x4.png"), 1, 2, 2, 0, out), MV_OK);
    const double means[4] = {(0 + 40 + 80 + 120) / 4.0, (100 + 104 + 96 + 100) / 4.0,
                             (255 + 255 + 251 + 250) / 4.0, (0 + 10 + 20 + 30) / 4.0};
    for (int i = 0; i < 4; i++) expect_near(out[i], means[i] / 255.0, LOOSE, "2x2 mean", i);

    const unsigned char row[3] = {30, 90, 240};
    write_png("shrink/3x1.png", 3, 1, 1, row);
    assert_int_equal(mv_image_load(at("shrink/3x1.png"), 1, 2, 1, 0, out), MV_OK);
    expect_near(out[0], (30 + 0.5 * 90) / 1.5 / 255.0, LOOSE, "3->2 area", 0);
    expect_near(out[1], (0.5 * 90 + 240) / 1.5 / 255.0, LOOSE, "3->2 area", 1);
}

/* Enlarging is bilinear between pixel centres with clamped edges: 2 -> 4 gives
 * a, (3a + b) / 4, (a + 3b) / 4, b; each axis on its own (shrink x, enlarge y). */
static void test_enlarge_is_bilinear(void **state)
{
    (void)state;
    make_dir("enlarge");
    const unsigned char row[2] = {40, 200};
    write_png("enlarge/2x1.png", 2, 1, 1, row);
    float out[16];
    assert_int_equal(mv_image_load(at("enlarge/2x1.png"), 1, 4, 1, 0, out), MV_OK);
    const double a = 40 / 255.0, b = 200 / 255.0;
    const double want[4] = {a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b};
    for (int i = 0; i < 4; i++) expect_near(out[i], want[i], LOOSE, "2->4 bilinear", i);

    const unsigned char square[4] = {0, 100, 200, 60}; /* [2][2] */
    write_png("enlarge/2x2.png", 2, 2, 1, square);
    assert_int_equal(mv_image_load(at("enlarge/2x2.png"), 1, 4, 4, 0, out), MV_OK);
    /* out[1][1] sits at input (0.25, 0.25): 9/16 p00 + 3/16 p01 + 3/16 p10 + 1/16 p11 */
    expect_near(out[5], (9 * 0 + 3 * 100 + 3 * 200 + 60) / 16.0 / 255.0, LOOSE, "2x2->4x4", 5);
    expect_near(out[0], 0, LOOSE, "corner clamped", 0);
    expect_near(out[15], 60 / 255.0, LOOSE, "corner clamped", 15);

    const unsigned char wide[4] = {0, 100, 200, 40}; /* [1][4] -> [2][2] */
    write_png("enlarge/4x1.png", 4, 1, 1, wide);
    assert_int_equal(mv_image_load(at("enlarge/4x1.png"), 1, 2, 2, 0, out), MV_OK);
    for (int y = 0; y < 2; y++) {
        expect_near(out[2 * y], 50 / 255.0, LOOSE, "mixed axes", 2 * y);
        expect_near(out[2 * y + 1], 120 / 255.0, LOOSE, "mixed axes", 2 * y + 1);
    }
}

/* Hostile or broken files fail with a status and a message naming the file. */
static void test_bad_image_files(void **state)
{
    (void)state;
    make_dir("bad");
    float px[64 * 64 * 3];
    int w, h, c;
    write_bytes("bad/empty.png", "", 0);
    expect_error(mv_image_load(at("bad/empty.png"), 1, 4, 4, 0, px), MV_ERR_FORMAT,
                 "bad/empty.png");
    expect_message_has("empty");
    write_bytes("bad/text.png", "hello, I am not an image\n", 25);
    expect_error(mv_image_load(at("bad/text.png"), 1, 4, 4, 0, px), MV_ERR_FORMAT,
                 "bad/text.png");

    write_truncated_png("bad/truncated.png", 7);
    assert_int_equal(mv_image_info(at("bad/truncated.png"), &w, &h, &c), MV_OK);
    expect_error(mv_image_load(at("bad/truncated.png"), 1, 24, 24, 0, px), MV_ERR_FORMAT,
                 "bad/truncated.png");

    write_handmade_png("bad/huge.png", 100000, 100000, 8, 0, NULL, 0, NULL, 0);
    expect_error(mv_image_load(at("bad/huge.png"), 1, 4, 4, 0, px), MV_ERR_FORMAT,
                 "bad/huge.png");
    /* the largest sides a PNG header can state: their product needs 64 unsigned bits (the
     * header probe's fuzzer found it overflowing a long long) */
    write_handmade_png("bad/widest.png", 0xFFFFFFFFu, 0xFFFFFFFFu, 8, 0, NULL, 0, NULL, 0);
    expect_error(mv_image_load(at("bad/widest.png"), 1, 4, 4, 0, px), MV_ERR_FORMAT,
                 "bad/widest.png");
    expect_message_has("4294967295x4294967295 pixels is larger than the limit");
    expect_error(mv_image_info(at("bad/widest.png"), &w, &h, &c), MV_ERR_FORMAT,
                 "bad/widest.png");
    /* 10000x10000 RGB passes stb's own checks: the refusal is ours, before decoding */
    write_handmade_png("bad/big.png", 10000, 10000, 8, 2, NULL, 0, NULL, 0);
    expect_error(mv_image_load(at("bad/big.png"), 1, 4, 4, 0, px), MV_ERR_FORMAT, "bad/big.png");
    expect_message_has("larger than the limit");
    /* the header alone is fine to read: the caller judges the size */
    assert_int_equal(mv_image_info(at("bad/big.png"), &w, &h, &c), MV_OK);
    assert_true(w == 10000 && h == 10000 && c == 3);

    write_flat_gray("bad/20x20.png", 20, 20, 9);
    expect_error(mv_image_load(at("bad/20x20.png"), 1, 20, 20, 399, px), MV_ERR_FORMAT,
                 "bad/20x20.png");
    assert_int_equal(mv_image_load(at("bad/20x20.png"), 1, 20, 20, 400, px), MV_OK);

    expect_error(mv_image_load(at("bad/missing.png"), 1, 4, 4, 0, px), MV_ERR_IO,
                 "bad/missing.png");
    expect_error(mv_image_load(at("bad"), 1, 4, 4, 0, px), MV_ERR_IO, "bad");
    expect_error(mv_image_load(at("bad/20x20.png"), 2, 4, 4, 0, px), MV_ERR_ARG, "20x20.png");
    expect_error(mv_image_info(at("bad/text.png"), &w, &h, &c), MV_ERR_FORMAT, "bad/text.png");

    /* Binary PNM whose samples stop short: stb fills the rest with whatever its buffer held
     * (fuzz_image found the bytes and floats of one file differing), so it is refused, by the
     * probe as by the loaders; whole ones load, comments, a 16-bit maxval and all. */
    static const char cut[] = "P6\n3 \n752\n2x3 2\n22\xb4\xf0\xff"; /* the fuzzer's */
    write_bytes("bad/cut.ppm", cut, sizeof cut - 1);
    expect_error(mv_image_info(at("bad/cut.ppm"), &w, &h, &c), MV_ERR_FORMAT, "bad/cut.ppm");
    expect_message_has("cut short (9 bytes of samples, 3 a pixel needed)");
    expect_error(mv_image_load(at("bad/cut.ppm"), 1, 3, 752, 0, px), MV_ERR_FORMAT, "cut.ppm");
    static const char whole[] = "P5 # a comment\n2 2\n255\n\x00\x40\x80\xff";
    write_bytes("bad/whole.pgm", whole, sizeof whole - 1);
    assert_int_equal(mv_image_load(at("bad/whole.pgm"), 1, 2, 2, 0, px), MV_OK);
    assert_true(px[0] == 0 && px[1] == 64 / 255.0f && px[3] == 1);
    write_bytes("bad/short.pgm", whole, sizeof whole - 2);
    expect_error(mv_image_load(at("bad/short.pgm"), 1, 2, 2, 0, px), MV_ERR_FORMAT, "short.pgm");
    static const char deep[] = "P5\n1 2\n65535\n\x12\x34\x56"; /* 2 samples of 2 bytes */
    write_bytes("bad/deep.pgm", deep, sizeof deep - 1);
    expect_error(mv_image_info(at("bad/deep.pgm"), &w, &h, &c), MV_ERR_FORMAT, "deep.pgm");
    write_bytes("bad/deep.pgm", "P5\n1 2\n65535\n\x12\x34\x56\x78", 17);
    assert_int_equal(mv_image_info(at("bad/deep.pgm"), &w, &h, &c), MV_OK);

    /* Uncompressed gray TGA (type 3) of 2x2: 18-byte header, 4 samples; cut in the samples
     * and cut in the header (the fuzzer's 17 bytes). */
    static const unsigned char tga[22] = {0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 8, 0,
                                          0, 64, 128, 255};
    write_bytes("bad/whole.tga", tga, sizeof tga);
    assert_int_equal(mv_image_load(at("bad/whole.tga"), 1, 2, 2, 0, px), MV_OK);
    write_bytes("bad/cut.tga", tga, sizeof tga - 1);
    expect_error(mv_image_load(at("bad/cut.tga"), 1, 2, 2, 0, px), MV_ERR_FORMAT, "cut.tga");
    expect_message_has("TGA image of 2x2 is cut short (3 bytes of samples, 1 a pixel needed)");
    static const unsigned char head[17] = {0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x3b, 2, 0, 8};
    write_bytes("bad/head.tga", head, sizeof head);
    expect_error(mv_image_info(at("bad/head.tga"), &w, &h, &c), MV_ERR_FORMAT, "head.tga");
    expect_message_has("TGA header cut short (17 bytes of 18)");
}

/* ---------------------------------------------------------------- writing PNGs */

/* The tEXt chunk follows IHDR, carries key NUL value, and has a valid CRC; the picture still
 * decodes to the same bytes, and the file gets ordinary permissions. */
static void test_png_write_text_chunk(void **state)
{
    (void)state;
    make_dir("write");
    float px[18];
    for (int i = 0; i < 18; i++) px[i] = rgb_3x2[i] / 255.0f;
    const char *path = at("write/text.png");
    assert_int_equal(mv_png_write(path, px, 3, 2, 3, "mlpviz", "class=dress"), MV_OK);
    size_t n;
    unsigned char *png = read_bytes(path, &n);
    const char chunk[] = "tEXtmlpviz\0class=dress";
    const size_t data_len = sizeof chunk - 1 - 4;
    assert_true(n > 33 + 12 + data_len);
    assert_memory_equal(png + 12, "IHDR", 4);
    assert_memory_equal(png + 33 + 4, chunk, sizeof chunk - 1);
    unsigned char len[4];
    put_be32(len, (uint32_t)data_len);
    assert_memory_equal(png + 33, len, 4);
    unsigned char crc[4];
    put_be32(crc, mv_crc32(0, png + 37, 4 + data_len));
    assert_memory_equal(png + 37 + 4 + data_len, crc, 4);
    int w, h, c;
    unsigned char *decoded = stbi_load_from_memory(png, (int)n, &w, &h, &c, 0);
    assert_non_null(decoded);
    assert_true(w == 3 && h == 2 && c == 3);
    assert_memory_equal(decoded, rgb_3x2, 18);
    stbi_image_free(decoded);
    free(png);

    mode_t mask = umask(022);
    umask(mask);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0666 & ~mask);
}

/* Floats are clamped to [0, 1] (NaN to 0) and rounded: k/255 comes back as k. */
static void test_png_write_clamps_and_rounds(void **state)
{
    (void)state;
    make_dir("round");
    const float px[6] = {-0.5f, 1.5f, NAN, 0.5f, 17 / 255.0f, 0.0021f};
    const unsigned char want[6] = {0, 255, 0, 128, 17, 1};
    assert_int_equal(mv_png_write(at("round/r.png"), px, 6, 1, 1, NULL, NULL), MV_OK);
    int w, h, c;
    unsigned char *got = stbi_load(at("round/r.png"), &w, &h, &c, 0);
    assert_non_null(got);
    assert_true(w == 6 && h == 1 && c == 1);
    assert_memory_equal(got, want, 6);
    stbi_image_free(got);
}

/* Failures leave nothing behind: not the file, not a temporary file. */
static void test_png_write_failures(void **state)
{
    (void)state;
    make_dir("wfail");
    const float px[4] = {0, 0.25f, 0.5f, 1};
    expect_error(mv_png_write(at("wfail/no/such/dir/x.png"), px, 2, 2, 1, NULL, NULL), MV_ERR_IO,
                 "wfail/no/such/dir/x.png");
    expect_message_has(strerror(ENOENT));
    assert_int_equal(count_entries(at("wfail")), 0);

    make_dir("wfail/taken.png"); /* a directory where the file should go: rename fails */
    expect_error(mv_png_write(at("wfail/taken.png"), px, 2, 2, 1, NULL, NULL), MV_ERR_IO,
                 "wfail/taken.png");
    assert_int_equal(count_entries(at("wfail")), 1);
    assert_int_equal(count_entries(at("wfail/taken.png")), 0);

    char long_key[81];
    memset(long_key, 'k', 80);
    long_key[80] = 0;
    const char *bad_keys[] = {"", long_key, " lead", "trail ", "two  spaces", "tab\tkey"};
    for (int k = 0; k < 6; k++)
        expect_error(mv_png_write(at("wfail/k.png"), px, 2, 2, 1, bad_keys[k], "v"), MV_ERR_ARG,
                     "wfail/k.png");
    long_key[79] = 0; /* 79 bytes is the longest keyword allowed */
    assert_int_equal(mv_png_write(at("wfail/k.png"), px, 2, 2, 1, long_key, "v"), MV_OK);
    assert_int_equal(count_entries(at("wfail")), 2);
    expect_error(mv_png_write(at("wfail/z.png"), px, 0, 2, 1, NULL, NULL), MV_ERR_ARG, "z.png");
}

/* ---------------------------------------------------------------- image folders */

/* Classes are directories sorted bytewise whatever their creation order (spaces, UTF-8 and
 * case included), files are sorted bytewise within a class, labels come from the directory,
 * and hidden entries, sub-directories and loose files at the root are ignored. */
static void test_folder_order_and_labels(void **state)
{
    (void)state;
    const char *created[4] = {"zeta", "alpha beta", "\xc3\xa9mile", "Beta"}; /* émile */
    const char *sorted[4] = {"Beta", "alpha beta", "zeta", "\xc3\xa9mile"};
    const int created_index[4] = {3, 1, 0, 2}; /* sorted[i] == created[created_index[i]] */
    const char *files[3] = {"c.png", "a b.png", "b.png"}; /* sorted: "a b", "b", "c" */
    const int file_index[3] = {1, 2, 0};
    make_dir("order");
    char rel[256];
    for (int c = 0; c < 4; c++) {
        snprintf(rel, sizeof rel, "order/%s", created[c]);
        make_dir(rel);
        for (int f = 0; f < 3; f++) {
            snprintf(rel, sizeof rel, "order/%s/%s", created[c], files[f]);
            write_flat_gray(rel, 2, 2, (unsigned char)(10 * c + f));
        }
        snprintf(rel, sizeof rel, "order/%s/.hidden.png", created[c]);
        write_flat_gray(rel, 2, 2, 250);
        snprintf(rel, sizeof rel, "order/%s/nested", created[c]);
        make_dir(rel);
        snprintf(rel, sizeof rel, "order/%s/nested/n.png", created[c]);
        write_flat_gray(rel, 2, 2, 251);
    }
    make_dir("order/.hidden_class");
    write_flat_gray("order/.hidden_class/x.png", 2, 2, 252);
    write_bytes("order/README.txt", "not a class\n", 12);

    mv_dataset *data = NULL;
    int skipped = -1;
    assert_int_equal(mv_dataset_load_folder(&data, at("order"), NULL, &skipped), MV_OK);
    assert_int_equal(skipped, 0);
    assert_int_equal(data->n_classes, 4);
    assert_int_equal(data->count, 12);
    assert_true(data->width == 2 && data->height == 2 && data->channels == 1);
    for (int c = 0; c < 4; c++) assert_string_equal(data->class_names[c], sorted[c]);
    for (int i = 0; i < 12; i++) {
        int c = i / 3, f = i % 3;
        assert_int_equal(data->labels[i], c);
        float want = (float)(10 * created_index[c] + file_index[f]) / 255.0f;
        for (int p = 0; p < 4; p++) expect_near(data->pixels[4 * i + p], want, EXACT, "order", i);
    }
    mv_dataset_free(data);
}

/* Channels: 1 when every image is gray (with or without alpha), 3 as soon as one is colour. */
static void test_folder_auto_channels(void **state)
{
    (void)state;
    make_dir("auto");
    make_dir("auto/a");
    make_dir("auto/b");
    write_flat_gray("auto/a/1.png", 2, 1, 60);
    const unsigned char ga[4] = {90, 255, 90, 0}; /* gray+alpha [1][2][2] */
    write_png("auto/b/1.png", 2, 1, 2, ga);
    mv_dataset *data = NULL;
    assert_int_equal(mv_dataset_load_folder(&data, at("auto"), NULL, NULL), MV_OK);
    assert_int_equal(data->channels, 1);
    mv_dataset_free(data);

    const unsigned char rgb[6] = {255, 0, 0, 0, 0, 255};
    write_png("auto/b/2.png", 2, 1, 3, rgb);
    assert_int_equal(mv_dataset_load_folder(&data, at("auto"), NULL, NULL), MV_OK);
    assert_int_equal(data->channels, 3);
    assert_int_equal(data->count, 3);
    for (int k = 0; k < 6; k++) expect_near(data->pixels[k], 60 / 255.0f, EXACT, "replicated", k);
    expect_near(data->pixels[12], 1, EXACT, "colour kept", 12);
    expect_near(data->pixels[17], 1, EXACT, "colour kept", 17);
    mv_dataset_free(data);

    mv_load_options options;
    mv_load_options_defaults(&options);
    options.channels = 1; /* the caller can still ask for gray */
    assert_int_equal(mv_dataset_load_folder(&data, at("auto"), &options, NULL), MV_OK);
    assert_int_equal(data->channels, 1);
    expect_near(data->pixels[4], 0.299, LOOSE, "luma of red", 4);
    mv_dataset_free(data);
}

/* The size is the first image's (in dataset order); the others are resized to it. */
static void test_folder_size_from_first_image(void **state)
{
    (void)state;
    make_dir("sizes");
    make_dir("sizes/a");
    make_dir("sizes/b");
    write_flat_gray("sizes/a/1.png", 4, 3, 100);
    write_flat_gray("sizes/a/2.png", 8, 8, 200);
    write_flat_gray("sizes/b/0.png", 2, 2, 50);
    mv_dataset *data = NULL;
    assert_int_equal(mv_dataset_load_folder(&data, at("sizes"), NULL, NULL), MV_OK);
    assert_true(data->width == 4 && data->height == 3 && data->count == 3);
    const unsigned char value[3] = {100, 200, 50};
    for (int i = 0; i < 3 * 12; i++)
        expect_near(data->pixels[i], value[i / 12] / 255.0, LOOSE, "resized flat", i);
    mv_dataset_free(data);

    mv_load_options options;
    mv_load_options_defaults(&options);
    options.width = 5;
    options.height = 7;
    assert_int_equal(mv_dataset_load_folder(&data, at("sizes"), &options, NULL), MV_OK);
    assert_true(data->width == 5 && data->height == 7 && data->channels == 1);
    expect_near(data->pixels[2 * 35 + 34], 50 / 255.0, LOOSE, "last pixel", 0);
    mv_dataset_free(data);
}

/* Each broken folder fails, names the offending path, and returns no dataset. */
static void test_folder_errors(void **state)
{
    (void)state;
    mv_dataset *data = NULL;
    make_dir("ferr");
    make_dir("ferr/one");
    write_flat_gray("ferr/one/x.png", 2, 2, 1);
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT, "ferr");
    expect_message_has("at least 2 class");
    assert_null(data);

    make_dir("ferr/two");
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT,
                 "ferr/two");
    expect_message_has("empty class directory");

    write_flat_gray("ferr/two/.only_hidden.png", 2, 2, 1); /* still empty */
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT,
                 "ferr/two");

    write_bytes("ferr/two/notes.txt", "just text\n", 10);
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT,
                 "ferr/two/notes.txt");
    unlink(at("ferr/two/notes.txt"));

    write_bytes("ferr/two/zero.png", "", 0);
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT,
                 "ferr/two/zero.png");
    unlink(at("ferr/two/zero.png"));

    write_handmade_png("ferr/two/huge.png", 10000, 10000, 8, 0, NULL, 0, NULL, 0);
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_FORMAT,
                 "ferr/two/huge.png");
    expect_message_has("limit");
    unlink(at("ferr/two/huge.png"));

    assert_int_equal(symlink("loop.png", at("ferr/two/loop.png")), 0); /* points at itself */
    expect_error(mv_dataset_load_folder(&data, at("ferr"), NULL, NULL), MV_ERR_IO,
                 "ferr/two/loop.png");
    assert_null(data);

    expect_error(mv_dataset_load_folder(&data, at("no-such-root"), NULL, NULL), MV_ERR_IO,
                 "no-such-root");
    expect_error(mv_dataset_load_folder(&data, at("ferr/one/x.png"), NULL, NULL), MV_ERR_IO,
                 "ferr/one/x.png");
    mv_load_options options;
    mv_load_options_defaults(&options);
    options.channels = 2;
    expect_error(mv_dataset_load_folder(&data, at("ferr"), &options, NULL), MV_ERR_ARG, "ferr");
}

/* Loads first/ with 1 to 4 threads: every time the error names the same file. */
static void expect_first_error(const char *names)
{
    for (int threads = 1; threads <= 4; threads++) {
        omp_set_num_threads(threads);
        mv_dataset *data = NULL;
        expect_error(mv_dataset_load_folder(&data, at("first"), NULL, NULL), MV_ERR_FORMAT,
                     names);
        assert_null(data);
    }
    omp_set_num_threads(omp_get_num_procs());
}

/* With several bad files, the error names the first in dataset order whatever the thread
 * count: among files whose header is bad (found by the first pass), else among files that
 * fail to decode. */
static void test_folder_first_error_is_deterministic(void **state)
{
    (void)state;
    make_dir("first");
    make_dir("first/a");
    make_dir("first/b");
    char rel[64];
    for (int i = 0; i < 40; i++) {
        snprintf(rel, sizeof rel, "first/%s/%02d.png", i < 20 ? "a" : "b", i);
        write_flat_gray(rel, 3, 3, (unsigned char)i);
    }
    write_truncated_png("first/a/15x.png", 1);
    write_truncated_png("first/b/30x.png", 2);
    write_bytes("first/b/25x.png", "text", 4);
    write_bytes("first/b/39x.png", "text", 4);
    expect_first_error("first/b/25x.png");
    unlink(at("first/b/25x.png"));
    unlink(at("first/b/39x.png"));
    expect_first_error("first/a/15x.png");
}

/* skip_bad drops bad files (those failing the header check and those failing the decode),
 * counts them, and keeps the others in order with the right pixels. */
static void test_folder_skip_bad(void **state)
{
    (void)state;
    make_dir("skip");
    make_dir("skip/a");
    make_dir("skip/b");
    write_flat_gray("skip/a/1.png", 3, 3, 11);
    write_flat_gray("skip/a/3.png", 3, 3, 33);
    write_flat_gray("skip/b/5.png", 3, 3, 55);
    write_bytes("skip/a/0.png", "not an image", 12);
    write_truncated_png("skip/a/2.png", 5); /* passes the header check, fails decoding */
    assert_int_equal(symlink("4.png", at("skip/b/4.png")), 0); /* a symlink loop */

    mv_load_options options;
    mv_load_options_defaults(&options);
    options.skip_bad = 1;
    mv_dataset *data = NULL;
    int skipped = -1;
    assert_int_equal(mv_dataset_load_folder(&data, at("skip"), &options, &skipped), MV_OK);
    assert_int_equal(skipped, 3);
    assert_int_equal(data->count, 3);
    assert_true(data->width == 3 && data->height == 3);
    const unsigned char value[3] = {11, 33, 55};
    const int label[3] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(data->labels[i], label[i]);
        for (int p = 0; p < 9; p++)
            expect_near(data->pixels[9 * i + p], value[i] / 255.0f, EXACT, "kept", i);
    }
    mv_dataset_free(data);

    unlink(at("skip/b/5.png")); /* class b now has nothing readable */
    expect_error(mv_dataset_load_folder(&data, at("skip"), &options, &skipped), MV_ERR_FORMAT,
                 "skip/b");
}

/* ---------------------------------------------------------------- IDX files */

/* 3 images of 2 rows x 3 columns (idx3) and their labels (idx1), as bytes. */
static unsigned char idx_images[16 + 18], idx_labels[8 + 3];

static void make_idx_bytes(void)
{
    put_be32(idx_images, 0x803);
    put_be32(idx_images + 4, 3);
    put_be32(idx_images + 8, 2);
    put_be32(idx_images + 12, 3);
    for (int i = 0; i < 18; i++) idx_images[16 + i] = (unsigned char)(i * 15);
    put_be32(idx_labels, 0x801);
    put_be32(idx_labels + 4, 3);
    idx_labels[8] = 2;
    idx_labels[9] = 0;
    idx_labels[10] = 1;
}

static void expect_idx_dataset(const mv_dataset *data, const char *const *names)
{
    assert_true(data->count == 3 && data->height == 2 && data->width == 3);
    assert_true(data->channels == 1 && data->n_classes == 3);
    for (int c = 0; c < 3; c++) assert_string_equal(data->class_names[c], names[c]);
    for (int i = 0; i < 3; i++) assert_int_equal(data->labels[i], idx_labels[8 + i]);
    for (int i = 0; i < 18; i++)
        expect_near(data->pixels[i], (i * 15) / 255.0f, EXACT, "idx pixel", i);
}

static void test_idx_plain_and_gzip(void **state)
{
    (void)state;
    make_idx_bytes();
    make_dir("idx");
    write_bytes("idx/images", idx_images, sizeof idx_images);
    write_bytes("idx/labels", idx_labels, sizeof idx_labels);
    const char *names[3] = {"cat", "dog", "eel"};
    mv_dataset *data = NULL;
    assert_int_equal(mv_dataset_load_idx(&data, at("idx/images"), at("idx/labels"), names, 3),
                     MV_OK);
    expect_idx_dataset(data, names);
    mv_dataset_free(data);

    const char *numbers[3] = {"0", "1", "2"};
    assert_int_equal(mv_dataset_load_idx(&data, at("idx/images"), at("idx/labels"), NULL, 3),
                     MV_OK);
    expect_idx_dataset(data, numbers);
    mv_dataset_free(data);

    const unsigned flag_sets[3] = {0, 8, 2 | 4 | 8 | 16}; /* none; FNAME; every field */
    for (int k = 0; k < 3; k++) {
        size_t ni, nl;
        unsigned char *gi = gzip_wrap(idx_images, sizeof idx_images, flag_sets[k], &ni);
        unsigned char *gl = gzip_wrap(idx_labels, sizeof idx_labels, flag_sets[k], &nl);
        write_bytes("idx/images.gz", gi, ni);
        write_bytes("idx/labels.gz", gl, nl);
        free(gi);
        free(gl);
        assert_int_equal(mv_dataset_load_idx(&data, at("idx/images.gz"), at("idx/labels.gz"),
                                             names, 3),
                         MV_OK);
        expect_idx_dataset(data, names);
        mv_dataset_free(data);
    }
}

/* Writes `bytes` (n) as idx/bad and checks that loading it in the given role fails naming
 * it, with the message containing `reason`. */
static void expect_bad_idx(const void *bytes, size_t n, int as_labels, const char *reason)
{
    write_bytes("idxbad/bad", bytes, n);
    const char *images = as_labels ? at("idx/images") : at("idxbad/bad");
    const char *labels = as_labels ? at("idxbad/bad") : at("idx/labels");
    mv_dataset *data = NULL;
    expect_error(mv_dataset_load_idx(&data, images, labels, NULL, 3), MV_ERR_FORMAT,
                 "idxbad/bad");
    expect_message_has(reason);
    assert_null(data);
}

static void test_idx_errors(void **state)
{
    (void)state;
    make_idx_bytes();
    make_dir("idxbad");
    unsigned char bytes[sizeof idx_images + 1];
    memcpy(bytes, idx_images, sizeof idx_images);
    put_be32(bytes, 0x801);
    expect_bad_idx(bytes, sizeof idx_images, 0, "magic");
    expect_bad_idx(idx_images, sizeof idx_images, 1, "magic"); /* images given as labels */
    expect_bad_idx(idx_images, sizeof idx_images - 1, 0, "truncated");
    memcpy(bytes, idx_images, sizeof idx_images);
    bytes[sizeof idx_images] = 0;
    expect_bad_idx(bytes, sizeof idx_images + 1, 0, "trailing");
    expect_bad_idx(idx_images, 10, 0, "truncated IDX header");
    put_be32(bytes + 8, 0); /* zero rows */
    expect_bad_idx(bytes, 16, 0, "dimension");
    memcpy(bytes, idx_images, sizeof idx_images);
    put_be32(bytes + 12, 5000); /* too wide */
    expect_bad_idx(bytes, sizeof idx_images, 0, "dimension");

    unsigned char labels[8 + 2];
    memcpy(labels, idx_labels, sizeof labels);
    put_be32(labels + 4, 2); /* 3 images, 2 labels */
    expect_bad_idx(labels, sizeof labels, 1, "2 labels");
    unsigned char three[8 + 3];
    memcpy(three, idx_labels, sizeof three);
    three[9] = 7; /* label 7 with 3 classes */
    expect_bad_idx(three, sizeof three, 1, "label 7");

    size_t n;
    unsigned char *gz = gzip_wrap(idx_images, sizeof idx_images, 8, &n);
    gz[n - 8] ^= 0x55; /* CRC-32 */
    expect_bad_idx(gz, n, 0, "CRC");
    gz[n - 8] ^= 0x55;
    gz[n - 4] ^= 1; /* ISIZE */
    expect_bad_idx(gz, n, 0, "gzip");
    gz[n - 4] ^= 1;
    expect_bad_idx(gz, n / 2, 0, "gzip"); /* cut in the middle */
    gz[3] = 0x80;                         /* a reserved flag */
    expect_bad_idx(gz, n, 0, "reserved");
    free(gz);
    gz = gzip_wrap(idx_images, sizeof idx_images, 2 | 8, &n); /* FNAME, FHCRC */
    gz[10] ^= 1; /* the name changes, the header CRC no longer matches */
    expect_bad_idx(gz, n, 0, "header CRC");
    free(gz);

    mv_dataset *data = NULL;
    expect_error(mv_dataset_load_idx(&data, at("idx/none"), at("idx/labels"), NULL, 3), MV_ERR_IO,
                 "idx/none");
    expect_error(mv_dataset_load_idx(&data, at("idx/images"), at("idx/labels"), NULL, -1),
                 MV_ERR_ARG, "idx/labels");
    /* no names at all: the classes are "0" .. the largest label */
    assert_int_equal(mv_dataset_load_idx(&data, at("idx/images"), at("idx/labels"), NULL, 0),
                     MV_OK);
    int largest = 0;
    for (int i = 0; i < data->count; i++)
        largest = data->labels[i] > largest ? data->labels[i] : largest;
    assert_int_equal(data->n_classes, largest + 1);
    assert_string_equal(data->class_names[0], "0");
    mv_dataset_free(data);
}

/* ---------------------------------------------------------------- folder round trip */

/* Values k/255 survive write_folder -> load_folder exactly, in both channel counts; classes
 * come back sorted, and images in class order then index order. */
static void test_write_folder_round_trip(void **state)
{
    (void)state;
    for (int channels = 1; channels <= 3; channels += 2) {
        enum { COUNT = 7, H = 2, W = 3 };
        char *names[3] = {"cat", "ant", "bee"}; /* sorted: ant (1), bee (2), cat (0) */
        const int sorted_label[3] = {2, 0, 1};  /* old label -> label after loading */
        int labels[COUNT] = {0, 1, 2, 0, 1, 2, 0};
        float pixels[COUNT * H * W * 3];
        const int stride = H * W * channels;
        for (int i = 0; i < COUNT * stride; i++) pixels[i] = (float)((i * 37) % 256) / 255.0f;
        mv_dataset data = {.count = COUNT, .channels = channels, .height = H, .width = W,
                           .n_classes = 3, .class_names = names, .pixels = pixels,
                           .labels = labels};
        const char *root = at(channels == 1 ? "trip1" : "trip3");
        assert_int_equal(mv_dataset_write_folder(&data, root), MV_OK);
        char path[1024];
        snprintf(path, sizeof path, "%s/cat/00006.png", root);
        assert_int_equal(access(path, F_OK), 0);

        mv_dataset *back = NULL;
        assert_int_equal(mv_dataset_load_folder(&back, root, NULL, NULL), MV_OK);
        assert_true(back->count == COUNT && back->channels == channels);
        assert_true(back->height == H && back->width == W && back->n_classes == 3);
        assert_string_equal(back->class_names[0], "ant");
        int k = 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < COUNT; i++) {
                if (sorted_label[labels[i]] != c)
                    continue;
                assert_int_equal(back->labels[k], c);
                for (int p = 0; p < stride; p++)
                    expect_near(back->pixels[k * stride + p], pixels[i * stride + p], EXACT,
                                "round trip", i);
                k++;
            }
        assert_int_equal(k, COUNT);
        mv_dataset_free(back);
    }
}

/* Class names that would not come back as the same class directory are refused before
 * anything is written. */
static void test_write_folder_rejects_bad_names(void **state)
{
    (void)state;
    float pixels[2] = {0, 1};
    int labels[2] = {0, 1};
    char *bad[][2] = {{"ok", "../up"}, {"ok", ".hidden"}, {"same", "same"}, {"ok", ""}};
    for (int k = 0; k < 4; k++) {
        mv_dataset data = {.count = 2, .channels = 1, .height = 1, .width = 1, .n_classes = 2,
                           .class_names = bad[k], .pixels = pixels, .labels = labels};
        expect_error(mv_dataset_write_folder(&data, at("badnames")), MV_ERR_ARG, "badnames");
        assert_int_equal(access(at("badnames"), F_OK), -1);
    }
    labels[1] = 2; /* a label without a class */
    char *names[2] = {"x", "y"};
    mv_dataset data = {.count = 2, .channels = 1, .height = 1, .width = 1, .n_classes = 2,
                       .class_names = names, .pixels = pixels, .labels = labels};
    expect_error(mv_dataset_write_folder(&data, at("badnames")), MV_ERR_ARG, "label 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_formats_load_exactly),
        cmocka_unit_test(test_jpeg_named_png_loads),
        cmocka_unit_test(test_channel_conversions),
        cmocka_unit_test(test_palette_and_16_bit_png),
        cmocka_unit_test(test_shrink_averages_areas),
        cmocka_unit_test(test_enlarge_is_bilinear),
        cmocka_unit_test(test_bad_image_files),
        cmocka_unit_test(test_png_write_text_chunk),
        cmocka_unit_test(test_png_write_clamps_and_rounds),
        cmocka_unit_test(test_png_write_failures),
        cmocka_unit_test(test_folder_order_and_labels),
        cmocka_unit_test(test_folder_auto_channels),
        cmocka_unit_test(test_folder_size_from_first_image),
        cmocka_unit_test(test_folder_errors),
        cmocka_unit_test(test_folder_first_error_is_deterministic),
        cmocka_unit_test(test_folder_skip_bad),
        cmocka_unit_test(test_idx_plain_and_gzip),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_write_folder_round_trip),
        cmocka_unit_test(test_write_folder_rejects_bad_names),
    };
    return cmocka_run_group_tests_name("data", tests, make_fixture_root, remove_fixture_root);
}
