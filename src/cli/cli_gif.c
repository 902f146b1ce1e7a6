/* cli_gif.c: animated GIFs by giflib's encoder, into memory and then written atomically (a
 * GIF written straight to its file would be half a file when the run fails). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>

#include "cli.h"
#include "cli_gif.h"

/* A growing byte buffer that giflib's output callback appends to. */
typedef struct {
    unsigned char *data;
    size_t size, capacity;
    int failed;
} gif_buffer;

static int append_bytes(GifFileType *gif, const GifByteType *bytes, int count)
{
    gif_buffer *b = gif->UserData;
    if (b->size + (size_t)count > b->capacity) {
        size_t capacity = b->capacity ? 2 * b->capacity : 65536;
        while (capacity < b->size + (size_t)count) capacity *= 2;
        unsigned char *grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = 1;
            return 0; /* giflib then reports a write error */
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, bytes, (size_t)count);
    b->size += (size_t)count;
    return count;
}

enum { CUBE_R = 6, CUBE_G = 7, CUBE_B = 6 }; /* 252 colours; green gets the most levels, as
                                                 the eye resolves it best */

static ColorMapObject *make_palette(int gray)
{
    ColorMapObject *map = GifMakeMapObject(256, NULL);
    for (int i = 0; map && i < 256; i++) {
        GifColorType *c = &map->Colors[i];
        if (gray) {
            c->Red = c->Green = c->Blue = (GifByteType)i;
        } else if (i < CUBE_R * CUBE_G * CUBE_B) {
            c->Red = (GifByteType)(255 * (i / (CUBE_G * CUBE_B)) / (CUBE_R - 1));
            c->Green = (GifByteType)(255 * (i / CUBE_B % CUBE_G) / (CUBE_G - 1));
            c->Blue = (GifByteType)(255 * (i % CUBE_B) / (CUBE_B - 1));
        } else {
            c->Red = c->Green = c->Blue = 0;
        }
    }
    return map;
}

static int level(float v, int levels)
{
    const float clamped = v < 0 ? 0 : v > 1 ? 1 : v;
    return (int)lrintf(clamped * (float)(levels - 1));
}

/* The palette index of pixel p (its first value alone when gray). */
static GifPixelType quantise(const float *p, int gray)
{
    if (gray)
        return (GifPixelType)level(p[0], 256);
    return (GifPixelType)((level(p[0], CUBE_R) * CUBE_G + level(p[1], CUBE_G)) * CUBE_B +
                          level(p[2], CUBE_B));
}

/* Loops forever: the NETSCAPE2.0 application extension, loop count 0. */
static int put_loop_extension(GifFileType *gif)
{
    static const GifByteType forever[3] = {1, 0, 0};
    return EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
           EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") == GIF_ERROR ||
           EGifPutExtensionBlock(gif, 3, forever) == GIF_ERROR ||
           EGifPutExtensionTrailer(gif) == GIF_ERROR;
}

static int put_frame(GifFileType *gif, const gif_animation *a, int f, GifPixelType *line)
{
    const int W = a->width * a->scale, H = a->height * a->scale, C = a->channels;
    GraphicsControlBlock gcb = {.DisposalMode = DISPOSE_DO_NOT,
                                .DelayTime = f + 1 == a->n_frames ? a->hold_cs : a->delay_cs,
                                .TransparentColor = NO_TRANSPARENT_COLOR};
    GifByteType ext[4];
    EGifGCBToExtension(&gcb, ext);
    if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, ext) == GIF_ERROR ||
        EGifPutImageDesc(gif, 0, 0, W, H, false, NULL) == GIF_ERROR)
        return 1;
    const float *frame = a->frame(a->user, f);
    if (!frame)
        return 1;
    /* Each stored pixel is quantised once, into the tail of line, then repeated scale times
     * across and down (giflib may mask the line it is given, so it is rebuilt every row). */
    GifPixelType *source = line + W;
    for (int y = 0; y < H; y++) {
        if (y % a->scale == 0) {
            const float *row = frame + (size_t)(y / a->scale) * a->width * C;
            for (int x = 0; x < a->width; x++) source[x] = quantise(row + (size_t)x * C, a->gray);
        }
        for (int x = 0, i = 0; x < a->width; x++)
            for (int k = 0; k < a->scale; k++) line[i++] = source[x];
        if (EGifPutLine(gif, line, W) == GIF_ERROR)
            return 1;
    }
    return 0;
}

gif_bytes gif_encode(const gif_animation *a)
{
    gif_buffer b = {0};
    int error = 0;
    GifFileType *gif = EGifOpen(&b, append_bytes, &error);
    if (!gif)
        return (gif_bytes){.error = error ? error : GIF_OUT_OF_MEMORY};
    const int W = a->width * a->scale;
    ColorMapObject *palette = make_palette(a->gray);
    GifPixelType *line = malloc((size_t)W + (size_t)a->width); /* [W] + put_frame's source row */
    EGifSetGifVersion(gif, true); /* delays and looping need GIF89a */
    int failed = !palette || !line ||
                 EGifPutScreenDesc(gif, W, a->height * a->scale, 8, 0, palette) == GIF_ERROR ||
                 put_loop_extension(gif);
    for (int f = 0; !failed && f < a->n_frames; f++) failed = put_frame(gif, a, f, line);
    if (failed)
        error = gif->Error && !b.failed ? gif->Error : GIF_OUT_OF_MEMORY;
    int close_error = 0;
    if (EGifCloseFile(gif, &close_error) == GIF_ERROR && !error)
        error = b.failed ? GIF_OUT_OF_MEMORY : close_error;
    GifFreeMapObject(palette);
    free(line);
    if (error) {
        free(b.data);
        return (gif_bytes){.error = error};
    }
    return (gif_bytes){.data = b.data, .size = b.size};
}

int gif_save(const char *path, gif_bytes *gif, const char *cmd)
{
    int rc = MV_EXIT_OK;
    if (gif->error) {
        const char *why = gif->error == GIF_OUT_OF_MEMORY ? "out of memory"
                                                          : GifErrorString(gif->error);
        cli_error(cmd, "%s: cannot encode the GIF: %s", path, why ? why : "unknown error");
        rc = MV_EXIT_FAIL;
    } else if (mv_write_file_atomic(path, gif->data, gif->size)) {
        cli_error(cmd, "%s", mv_last_error());
        rc = MV_EXIT_FAIL;
    }
    free(gif->data);
    *gif = (gif_bytes){0};
    return rc;
}
