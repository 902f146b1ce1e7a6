/* image.c: one image file in, one PNG out, and the Gaussian blur of an image in memory.
 *
 * Decoding, resizing and encoding come from stb (Debian's libstb, linked as -lstb); this file
 * adds what a training tool needs around them: the header is checked before any pixel is
 * decoded, conversions are exact (luminance weights, k/255), and PNGs are written atomically. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include "internal.h"

/* Exported by libstb.so but declared by stb_image_write.h only inside its implementation
 * section (STB_IMAGE_WRITE_IMPLEMENTATION), which must not be compiled here: the PNG is
 * returned in a malloc'd buffer (release with free) of *out_len bytes, or NULL. */
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y,
                                     int n, int *out_len);

#define PNG_SIGNATURE_SIZE 8
#define PNG_IHDR_CHUNK_SIZE 25 /* length 4 + type 4 + data 13 + CRC 4 */
#define PNG_TEXT_KEY_MAX 79

/* ---------------------------------------------------------------- reading */

/* Opens path for reading only if it is a non-empty regular file: O_NONBLOCK keeps a FIFO from
 * blocking the open, and the type is checked on the descriptor itself so that it cannot change
 * between the check and the read. */
static mv_status open_regular_file(const char *path, FILE **out)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(MV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    errno = 0; /* a non-regular file is not an error of fstat: no stale reason */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        close(fd);
        return mv_fail(MV_ERR_IO, "%s: not a regular file%s%s", path, err ? ": " : "",
                       err ? strerror(err) : "");
    }
    if (st.st_size == 0) { /* stb would say "unknown image type", hiding the real cause */
        close(fd);
        return mv_fail(MV_ERR_FORMAT, "%s: empty file (0 bytes), not an image", path);
    }
    FILE *file = fdopen(fd, "rb");
    if (!file) {
        int err = errno;
        close(fd);
        return mv_fail(MV_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    *out = file;
    return MV_OK;
}

/* The size a PNG's IHDR declares, when the file starts with one; the file position is left
 * where it was. stb refuses some headers (0 pixels, more than 2^30 bytes) before it reports
 * their size, and its later guesses at other formats replace the reason. */
static int png_header_size(FILE *file, uint32_t *width, uint32_t *height)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[24];
    const long at = ftell(file);
    const int ok = at >= 0 && fread(head, 1, sizeof head, file) == sizeof head &&
                   memcmp(head, signature, 8) == 0 && memcmp(head + 12, "IHDR", 4) == 0;
    if (at >= 0)
        fseek(file, at, SEEK_SET);
    if (!ok)
        return 0;
    *width = (uint32_t)head[16] << 24 | (uint32_t)head[17] << 16 | (uint32_t)head[18] << 8 |
             head[19];
    *height = (uint32_t)head[20] << 24 | (uint32_t)head[21] << 16 | (uint32_t)head[22] << 8 |
              head[23];
    return 1;
}

/* Reads the header of an open image and refuses sizes no decoder should attempt: zero-size
 * images and images of more than `limit` pixels. Leaves the file position unchanged
 * (stbi_info_from_file restores it), so the caller can decode next. */
/* MV_OK when `samples` bytes hold w x h pixels of `bytes` each. The sides come from a header
 * the caller has not bounded yet (the probe takes any size): w h bytes can pass 2^63, so the
 * test divides instead of multiplying (found by fuzz_png_info under UBSan). */
static mv_status samples_there(const char *path, const char *format, int w, int h, int bytes,
                               long long samples)
{
    const unsigned long long pixels = (unsigned long long)w * (unsigned long long)h;
    if (samples >= 0 && bytes > 0 && pixels <= (unsigned long long)samples / (unsigned)bytes)
        return MV_OK;
    return mv_fail(MV_ERR_FORMAT, "%s: %s image of %dx%d is cut short (%lld bytes of samples, "
                   "%d a pixel needed)", path, format, w, h, samples < 0 ? 0 : samples, bytes);
}

/* Binary PNM (P5, P6), which the decoder reads past the end of a short file without noticing
 * (the missing samples are whatever its buffer held: found by fuzz_image): the samples must
 * all be in the file. The header is read as stb reads it: "P5" or "P6", then width, height
 * and maxval, each after whitespace and '#' comments, then one byte; 2 bytes a sample above a
 * maxval of 255. Other formats pass. The file position is kept. */
static mv_status check_pnm_length(FILE *file, const char *path, int w, int h, int channels)
{
    unsigned char head[4096];
    const long at = ftell(file);
    const size_t n = fread(head, 1, sizeof head, file);
    fseek(file, at, SEEK_SET);
    if (at < 0 || n < 2 || head[0] != 'P' || (head[1] != '5' && head[1] != '6'))
        return MV_OK;
    size_t i = 2;
    long long value[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        while (i < n && (isspace(head[i]) || head[i] == '#'))
            if (head[i++] == '#')
                while (i < n && head[i] != '\n' && head[i] != '\r') i++;
        for (; i < n && isdigit(head[i]); i++)
            value[k] = value[k] < 100000000 ? value[k] * 10 + (head[i] - '0') : value[k];
    }
    struct stat st;
    if ((i >= n && n == sizeof head) || fstat(fileno(file), &st) != 0)
        return MV_OK; /* a header of comments longer than 4 KiB: left to the decoder */
    const long long samples = (long long)st.st_size - at - (long long)(i + 1);
    return samples_there(path, "PNM", w, h, channels * (value[2] > 255 ? 2 : 1), samples);
}

/* Uncompressed TGA (image types 1, 2, 3) has the same blind spot: the samples after its
 * 18-byte header, image id and colour map must all be there. A file is taken for TGA as stb
 * takes it, by a colour-map type of 0 or 1 and one of those image types: no other format the
 * decoder knows starts that way. */
static mv_status check_tga_length(FILE *file, const char *path, int w, int h)
{
    unsigned char b[18];
    const long at = ftell(file);
    const size_t n = fread(b, 1, sizeof b, file);
    fseek(file, at, SEEK_SET);
    if (at < 0 || n < 3 || b[1] > 1 || b[2] < 1 || b[2] > 3)
        return MV_OK;
    if (n < sizeof b) /* not even the header: stb reads zeros and garbage for the rest */
        return mv_fail(MV_ERR_FORMAT, "%s: TGA header cut short (%zu bytes of 18)", path, n);
    const long long map = b[1] ? (long long)(b[5] | b[6] << 8) * ((b[7] + 7) / 8) : 0;
    const long long start = 18 + (long long)b[0] + map;
    struct stat st;
    if (fstat(fileno(file), &st) != 0)
        return MV_OK;
    const long long samples = (long long)st.st_size - at - start;
    return samples_there(path, "TGA", w, h, (b[16] + 7) / 8, samples);
}

static mv_status check_header(FILE *file, const char *path, long long limit, int *width,
                              int *height, int *channels)
{
    errno = 0;
    if (!stbi_info_from_file(file, width, height, channels)) {
        if (ferror(file))
            return mv_fail(MV_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        const char *reason = stbi_failure_reason() ? stbi_failure_reason() : "unknown format";
        uint32_t w, h;
        if (png_header_size(file, &w, &h)) { /* stb refused it: say why in our own terms */
            if (w == 0 || h == 0)
                return mv_fail(MV_ERR_FORMAT, "%s: image has zero size (%ux%u)", path, w, h);
            /* two 32-bit sides: their product needs all 64 bits, unsigned */
            const unsigned long long pixels = (unsigned long long)w * h;
            if (pixels > (unsigned long long)limit)
                return mv_fail(MV_ERR_FORMAT, "%s: image of %ux%u pixels is larger than the "
                               "limit of %lld pixels; not decoded", path, w, h, limit);
            if (pixels > (unsigned long long)MV_DEFAULT_MAX_PIXELS)
                return mv_fail(MV_ERR_FORMAT, "%s: image of %ux%u pixels is larger than the "
                               "limit of the decoder (%s); not decoded", path, w, h, reason);
            return mv_fail(MV_ERR_FORMAT, "%s: PNG of %ux%u pixels is not readable (%s)", path,
                           w, h, reason);
        }
        return mv_fail(MV_ERR_FORMAT, "%s: not a readable image (%s)", path, reason);
    }
    if (*width <= 0 || *height <= 0)
        return mv_fail(MV_ERR_FORMAT, "%s: image has zero size (%dx%d)", path, *width, *height);
    if (*channels < 1 || *channels > 4)
        return mv_fail(MV_ERR_FORMAT, "%s: unsupported channel count %d", path, *channels);
    if ((long long)*width * *height > limit)
        return mv_fail(MV_ERR_FORMAT, "%s: image of %dx%d pixels is larger than the limit of %lld "
                       "pixels; not decoded", path, *width, *height, limit);
    mv_status st = check_pnm_length(file, path, *width, *height, *channels);
    return st ? st : check_tga_length(file, path, *width, *height);
}

mv_status mv_image_probe(const char *path, int *width, int *height, int *channels,
                         int *sixteen)
{
    FILE *file;
    mv_status status = open_regular_file(path, &file);
    if (status)
        return status;
    int w, h, c;
    status = check_header(file, path, LLONG_MAX, &w, &h, &c); /* the caller judges the size */
    const int deep = !status && stbi_is_16_bit_from_file(file);
    fclose(file);
    if (status)
        return status;
    *width = w;
    *height = h;
    *channels = c;
    *sixteen = deep;
    return MV_OK;
}

mv_status mv_image_info(const char *path, int *width, int *height, int *channels)
{
    if (!path || !width || !height || !channels)
        return mv_fail(MV_ERR_ARG, "mv_image_info: NULL argument");
    int sixteen;
    return mv_image_probe(path, width, height, channels, &sixteen);
}

/* Converts 8-bit pixels with `stored` channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to
 * floats with `wanted` channels (1 or 3): alpha is dropped, gray is replicated, and colour
 * becomes luminance 0.299 R + 0.587 G + 0.114 B. Values are k/255 exactly when no mixing
 * happens. src: [n][stored], dst: [n][wanted]. */
static void convert_pixels(const unsigned char *src, int stored, float *dst, int wanted,
                           size_t n)
{
    const int has_colour = stored >= 3;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * (size_t)stored;
        float *q = dst + i * (size_t)wanted;
        if (!has_colour) {
            float gray = p[0] / 255.0f;
            for (int c = 0; c < wanted; c++) q[c] = gray;
        } else if (wanted == 3) {
            for (int c = 0; c < 3; c++) q[c] = p[c] / 255.0f;
        } else {
            float luma = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.0f;
            q[0] = luma > 1.0f ? 1.0f : luma; /* the weights sum to 1 only up to rounding */
        }
    }
}

/* Resizes [in_h][in_w][channels] to [out_h][out_w][channels]: per axis a box filter when
 * shrinking (stb's trapezoid is exact area averaging) and a triangle filter when enlarging
 * (bilinear between pixel centres, edges clamped). Results are clamped to [0, 1]. */
static mv_status resize_pixels(const char *path, const float *in, int in_w, int in_h, float *out,
                               int out_w, int out_h, int channels)
{
    stbir_filter fx = out_w < in_w ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE;
    stbir_filter fy = out_h < in_h ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE;
    if (!stbir_resize(in, in_w, in_h, 0, out, out_w, out_h, 0, STBIR_TYPE_FLOAT, channels,
                      STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, fx, fy,
                      STBIR_COLORSPACE_LINEAR, NULL))
        return mv_fail(MV_ERR_NOMEM, "%s: cannot resize %dx%d to %dx%d (out of memory)", path,
                       in_w, in_h, out_w, out_h);
    size_t n = (size_t)out_w * out_h * channels;
    for (size_t i = 0; i < n; i++)
        out[i] = out[i] < 0.0f ? 0.0f : out[i] > 1.0f ? 1.0f : out[i];
    return MV_OK;
}

/* Decodes the whole image of an open file whose header check_header() accepted, and writes it
 * converted and resized into out [height][width][channels]. */
static mv_status decode_into(FILE *file, const char *path, int info_w, int info_h, int channels,
                             int width, int height, float *out)
{
    int w, h, stored;
    unsigned char *raw = stbi_load_from_file(file, &w, &h, &stored, 0); /* [h][w][stored] */
    if (!raw)
        return mv_fail(MV_ERR_FORMAT, "%s: cannot decode: %s", path,
                       stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    mv_status status = MV_OK;
    if (w != info_w || h != info_h || stored < 1 || stored > 4) {
        status = mv_fail(MV_ERR_FORMAT, "%s: decoded size %dx%d differs from the header's %dx%d",
                         path, w, h, info_w, info_h);
    } else if (w == width && h == height) {
        convert_pixels(raw, stored, out, channels, (size_t)w * h);
    } else {
        float *full = malloc((size_t)w * h * channels * sizeof *full); /* [h][w][channels] */
        if (!full) {
            status = mv_fail(MV_ERR_NOMEM, "%s: out of memory for %dx%d pixels", path, w, h);
        } else {
            convert_pixels(raw, stored, full, channels, (size_t)w * h);
            status = resize_pixels(path, full, w, h, out, width, height, channels);
            free(full);
        }
    }
    stbi_image_free(raw);
    return status;
}

/* Copies 8-bit pixels with `stored` channels to `wanted` channels where no value mixes:
 * alpha dropped, gray replicated; the bytes of what convert_pixels makes k / 255 of.
 * Colour to gray mixes, so the caller never asks for it. src: [n][stored], dst: [n][wanted]. */
static void copy_bytes(const unsigned char *src, int stored, uint8_t *dst, int wanted,
                       size_t n)
{
    const int has_colour = stored >= 3;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * (size_t)stored;
        for (int c = 0; c < wanted; c++) dst[i * (size_t)wanted + c] = p[has_colour ? c : 0];
    }
}

/* Opens an image file and reads its header against the pixel limit (0: the default). *file
 * is NULL when the file could not be opened; otherwise the caller closes it, whatever the
 * status of the header. */
static mv_status open_and_probe(const char *path, long long max_pixels, FILE **file, int *w,
                                int *h, int *stored)
{
    mv_status status = open_regular_file(path, file);
    if (status) {
        *file = NULL;
        return status;
    }
    return check_header(*file, path, max_pixels > 0 ? max_pixels : MV_DEFAULT_MAX_PIXELS, w,
                        h, stored);
}

mv_status mv_image_load_bytes(const char *path, int channels, int width, int height,
                              long long max_pixels, uint8_t *out)
{
    FILE *file;
    int w, h, stored;
    mv_status status = open_and_probe(path, max_pixels, &file, &w, &h, &stored);
    if (!file)
        return status;
    unsigned char *raw = NULL; /* [h][w][stored] */
    if (!status && (w != width || h != height || (stored >= 3 && channels != 3)))
        status = mv_fail(MV_ERR_FORMAT, "%s: a %dx%d image of %d channels cannot be kept as "
                         "bytes at %dx%d with %d channels (it changed since it was listed?)",
                         path, w, h, stored, width, height, channels);
    if (!status && !(raw = stbi_load_from_file(file, &w, &h, &stored, 0)))
        status = mv_fail(MV_ERR_FORMAT, "%s: cannot decode: %s", path,
                         stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    if (!status && (w != width || h != height || stored < 1 || stored > 4))
        status = mv_fail(MV_ERR_FORMAT, "%s: decoded size %dx%d differs from the header's %dx%d",
                         path, w, h, width, height);
    if (!status)
        copy_bytes(raw, stored, out, channels, (size_t)w * h);
    stbi_image_free(raw);
    fclose(file);
    return status;
}

mv_status mv_image_load(const char *path, int channels, int width, int height,
                        long long max_pixels, float *out)
{
    if (!path || !out)
        return mv_fail(MV_ERR_ARG, "mv_image_load: NULL argument");
    if (channels != 1 && channels != 3)
        return mv_fail(MV_ERR_ARG, "%s: channels must be 1 or 3, got %d", path, channels);
    if (width < 1 || height < 1 || max_pixels < 0)
        return mv_fail(MV_ERR_ARG, "%s: bad target size %dx%d or pixel limit %lld", path, width,
                       height, max_pixels);
    FILE *file;
    int w, h, stored;
    mv_status status = open_and_probe(path, max_pixels, &file, &w, &h, &stored);
    if (!file)
        return status;
    if (!status)
        status = decode_into(file, path, w, h, channels, width, height, out);
    fclose(file);
    return status;
}

/* ---------------------------------------------------------------- writing */

/* A tEXt keyword as the PNG specification allows it: 1..79 printable Latin-1 bytes, no leading,
 * trailing or doubled space. */
static int valid_text_key(const char *key)
{
    size_t n = strlen(key);
    if (n < 1 || n > PNG_TEXT_KEY_MAX || key[0] == ' ' || key[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (!((c >= 32 && c <= 126) || c >= 161) || (c == ' ' && key[i + 1] == ' '))
            return 0;
    }
    return 1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes png (as stb made it) with a tEXt chunk key = value spliced in right after IHDR,
 * where PNG readers expect ancillary text; the chunk's CRC covers its type and data. */
static mv_status write_png_with_text(const char *path, const unsigned char *png, size_t png_len,
                                     const char *key, const char *value)
{
    const size_t ihdr_end = PNG_SIGNATURE_SIZE + PNG_IHDR_CHUNK_SIZE;
    if (png_len < ihdr_end || memcmp(png + PNG_SIGNATURE_SIZE + 4, "IHDR", 4) != 0)
        return mv_fail(MV_ERR_FORMAT, "%s: the PNG encoder's output has no IHDR first", path);
    size_t key_len = strlen(key) + 1, value_len = strlen(value); /* key with its NUL separator */
    if (key_len + value_len > 0x7FFFFFFF)
        return mv_fail(MV_ERR_ARG, "%s: tEXt value too long", path);
    unsigned char head[8], tail[4]; /* chunk length and type; CRC */
    put_be32(head, (uint32_t)(key_len + value_len));
    memcpy(head + 4, "tEXt", 4);
    uint32_t crc = mv_crc32(0, head + 4, 4);
    crc = mv_crc32(crc, key, key_len);
    crc = mv_crc32(crc, value, value_len);
    put_be32(tail, crc);
    const mv_byte_span spans[] = {{png, ihdr_end}, {head, sizeof head}, {key, key_len},
                               {value, value_len}, {tail, sizeof tail},
                               {png + ihdr_end, png_len - ihdr_end}};
    return mv_write_spans_atomic(path, spans, (int)(sizeof spans / sizeof *spans));
}

/* Floats in [0, 1] to bytes: clamped (NaN becomes 0) and rounded to nearest, so k/255 comes
 * back as k. */
static void quantize(const float *pixels, unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = pixels[i];
        v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
        bytes[i] = (unsigned char)(v * 255.0f + 0.5f);
    }
}

mv_status mv_png_write(const char *path, const float *pixels, int width, int height,
                       int channels, const char *text_key, const char *text_value)
{
    if (!path || !pixels)
        return mv_fail(MV_ERR_ARG, "mv_png_write: NULL argument");
    if (width < 1 || height < 1 || channels < 1 || channels > 4 ||
        (long long)width * height * channels > 0x7FFFFFFF - height)
        return mv_fail(MV_ERR_ARG, "%s: cannot write a %dx%d PNG with %d channels", path, width,
                       height, channels);
    if (text_key && !valid_text_key(text_key))
        return mv_fail(MV_ERR_ARG, "%s: tEXt keyword '%s' is not 1-79 printable Latin-1 bytes "
                       "without leading, trailing or double spaces", path, text_key);
    size_t n = (size_t)width * height * channels;
    unsigned char *bytes = malloc(n); /* [height][width][channels] */
    if (!bytes)
        return mv_fail(MV_ERR_NOMEM, "%s: out of memory", path);
    quantize(pixels, bytes, n);
    int png_len = 0;
    unsigned char *png = stbi_write_png_to_mem(bytes, width * channels, width, height, channels,
                                               &png_len);
    free(bytes);
    if (!png)
        return mv_fail(MV_ERR_NOMEM, "%s: the PNG encoder ran out of memory", path);
    mv_status status;
    if (text_key) {
        status = write_png_with_text(path, png, (size_t)png_len, text_key,
                                     text_value ? text_value : "");
    } else {
        const mv_byte_span whole = {png, (size_t)png_len};
        status = mv_write_spans_atomic(path, &whole, 1);
    }
    free(png);
    return status;
}

/* ---------------------------------------------------------------- blur */

/* Index of position i in 0..n-1 after half-sample symmetric reflection: the extension
 * ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..., which makes the blur a doubly stochastic operator,
 * so it preserves both constant images and the image's mean. */
static int reflect(int i, int n)
{
    const int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

/* Along each row, from src to dst, [H][W][C] each, one pixel at a time, reflecting each
 * tap: the path for images too large for blur_small. Taps in ascending order. */
static void blur_rows(const float *src, float *dst, int W, int H, int C, const float *kernel,
                      int radius)
{
    for (int y = 0; y < H; y++) {
        const float *s = src + (size_t)y * W * C;
        float *d = dst + (size_t)y * W * C;
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float sum = 0;
                for (int k = -radius; k <= radius; k++)
                    sum += kernel[k + radius] * s[(size_t)reflect(x + k, W) * C + c];
                d[(size_t)x * C + c] = sum;
            }
    }
}

enum { BLUR_SMALL_MAX = 8192 }; /* floats per buffer of blur_small, on the stack */

/* Both passes for an image whose padded copy fits on the stack: the image is copied once
 * with `radius` reflected pixels on both sides of every row, so that the row pass is one
 * long loop over all rows (the tap loop outside: it vectorizes; the values that straddle
 * two rows land in the padding and are never read), and the column pass reads whole rows
 * of that result. Every value sums its taps in ascending order, as blur_rows and
 * blur_columns do, so the two paths give the same bits. */
static void blur_small(float *image, int W, int H, int C, const float *kernel, int radius)
{
    float padded[BLUR_SMALL_MAX], rows[BLUR_SMALL_MAX];
    const size_t WC = (size_t)W * C, PC = (size_t)(W + 2 * radius) * C, n = PC * H;
    for (int y = 0; y < H; y++) {
        const float *s = image + y * WC;
        float *p = padded + y * PC;
        for (int x = -radius; x < 0; x++)
            for (int c = 0; c < C; c++) p[(size_t)(x + radius) * C + c] = s[(size_t)reflect(x, W) * C + c];
        memcpy(p + (size_t)radius * C, s, sizeof *p * WC);
        for (int x = W; x < W + radius; x++)
            for (int c = 0; c < C; c++) p[(size_t)(x + radius) * C + c] = s[(size_t)reflect(x, W) * C + c];
    }
    /* rows[i] = sum over k of kernel[k] padded[i + k C]; valid where i is a pixel of a row */
    const size_t span = n - (size_t)2 * radius * C;
    for (size_t i = 0; i < span; i++) rows[i] = 0;
    for (int k = 0; k <= 2 * radius; k++) {
        const float w = kernel[k], *p = padded + (size_t)k * C;
        for (size_t i = 0; i < span; i++) rows[i] += w * p[i];
    }
    for (int y = 0; y < H; y++) {
        float *d = image + y * WC;
        for (size_t i = 0; i < WC; i++) d[i] = 0;
        for (int k = -radius; k <= radius; k++) {
            const float w = kernel[k + radius], *r = rows + (size_t)reflect(y + k, H) * PC;
            for (size_t i = 0; i < WC; i++) d[i] += w * r[i];
        }
    }
}

/* Down each column, from src to dst: output row y is a weighted sum of whole input rows
 * (reflected at the borders), taps in ascending order, vectorized along the row. */
static void blur_columns(const float *src, float *dst, int W, int H, int C,
                         const float *kernel, int radius)
{
    const size_t WC = (size_t)W * C;
    for (int y = 0; y < H; y++) {
        float *d = dst + y * WC;
        for (size_t i = 0; i < WC; i++) d[i] = 0;
        for (int k = -radius; k <= radius; k++) {
            const float w = kernel[k + radius];
            const float *s = src + (size_t)reflect(y + k, H) * WC;
            for (size_t i = 0; i < WC; i++) d[i] += w * s[i];
        }
    }
}

/* Normalised Gaussian taps; returns the radius (at most 3 sigma, and below the image). */
static int gaussian_kernel(double sigma, int W, int H, float *kernel, int max_radius)
{
    int radius = (int)ceil(3 * sigma);
    const int limit = (W < H ? W : H) - 1;
    radius = radius > limit ? limit : radius;
    radius = radius > max_radius ? max_radius : radius;
    double sum = 0;
    for (int k = -radius; k <= radius; k++) sum += exp(-0.5 * k * k / (sigma * sigma));
    for (int k = -radius; k <= radius; k++)
        kernel[k + radius] = (float)(exp(-0.5 * k * k / (sigma * sigma)) / sum);
    return radius;
}

void mv_gaussian_blur(float *image, float *scratch, int W, int H, int C, double sigma)
{
    if (!(sigma > 0) || W < 2 || H < 2)
        return;
    enum { MAX_RADIUS = 32 };
    float kernel[2 * MAX_RADIUS + 1];
    const int radius = gaussian_kernel(sigma, W, H, kernel, MAX_RADIUS);
    if ((size_t)(W + 2 * radius) * C * H <= BLUR_SMALL_MAX) {
        blur_small(image, W, H, C, kernel, radius);
        return;
    }
    blur_rows(image, scratch, W, H, C, kernel, radius);
    blur_columns(scratch, image, W, H, C, kernel, radius);
}
