/* cli_draw.c: text and heat maps on float images, for labelled sheets. The glyphs come from
 * stb_easy_font (Debian's libstb-dev), which describes text as axis-aligned quads; filling
 * those quads is all the rasterising there is to do. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_draw.h"

/* The header defines its functions static and was not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

/* One quad of stb_easy_font's vertex buffer: 4 vertices of x, y, z and a colour. */
typedef struct {
    float x, y, z;
    unsigned char color[4];
} font_vertex;

int cli_text_width(const char *text, int scale)
{
    char buf[256];
    strncpy(buf, text, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    return stb_easy_font_width(buf) * scale;
}

void cli_fill_rect(float *image, int width, int height, int channels, int x0, int y0, int x1,
                   int y1, const float *color)
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > width ? width : x1;
    y1 = y1 > height ? height : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(image + ((size_t)y * width + x) * channels, color,
                   sizeof *color * (size_t)channels);
}

void cli_draw_text(float *image, int width, int height, int channels, int x, int y,
                   const char *text, int scale, const float *color)
{
    char buf[256];
    const size_t bytes = 4 * 2048 * sizeof(font_vertex); /* ~270 B a character: 255 fit */
    strncpy(buf, text, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    font_vertex *v = malloc(bytes);
    if (!v)
        return;
    const int n = stb_easy_font_print(0, 0, buf, NULL, v, (int)bytes);
    for (int q = 0; q < n; q++) {
        const font_vertex *c = v + 4 * q;
        cli_fill_rect(image, width, height, channels, x + (int)lrintf(c[0].x * scale),
                      y + (int)lrintf(c[0].y * scale), x + (int)lrintf(c[2].x * scale),
                      y + (int)lrintf(c[2].y * scale), color);
    }
    free(v);
}

void cli_heat_color(float t, float *rgb)
{
    /* white -> blue: readable in print and for the common colour blindnesses */
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    rgb[0] = 1 - 0.85f * t;
    rgb[1] = 1 - 0.65f * t;
    rgb[2] = 1 - 0.25f * t;
}
