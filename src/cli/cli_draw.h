/* cli_draw.h: text, rectangles and heat colours on float images, for the labelled sheets of
 * the mlpviz binary (cli_draw.c; not part of the library). */
#ifndef MV_CLI_DRAW_H
#define MV_CLI_DRAW_H

/* Images here are [height][width][channels] floats in [0, 1]; color has `channels` values. */

/* Fills the rectangle [x0, x1) x [y0, y1), clipped to the image. */
void cli_fill_rect(float *image, int width, int height, int channels, int x0, int y0, int x1,
                   int y1, const float *color);
/* Draws ASCII text (stb_easy_font glyphs, 12 pixels high at scale 1) with its top-left corner
 * at (x, y), clipped to the image; at most 255 characters. */
void cli_draw_text(float *image, int width, int height, int channels, int x, int y,
                   const char *text, int scale, const float *color);
/* Width in pixels of text drawn at this scale. */
int cli_text_width(const char *text, int scale);
/* A colour for t in [0, 1] on a white-to-blue heat scale (rgb: 3 values). */
void cli_heat_color(float t, float *rgb);

#endif /* MV_CLI_DRAW_H */
