/* cli_gif.h: animated GIFs of the ascent (Debian's giflib), for slides and issues. */
#ifndef MV_CLI_GIF_H
#define MV_CLI_GIF_H

/* An animation of n_frames frames [height][width][channels] with values in [0, 1], each
 * pixel shown as a scale x scale block, delay_cs hundredths of a second per frame and hold_cs
 * on the last one. The frames come one at a time from frame(user, f), valid until the next
 * call (NULL: out of memory), so a long animation is never held whole. */
typedef struct {
    int n_frames, width, height, channels, scale;
    int delay_cs, hold_cs;
    int gray; /* 256 grays from the first channel (a gray model), else a 6x7x6 colour cube */
    const float *(*frame)(void *user, int f);
    void *user;
} gif_animation;

/* An encoded GIF: its bytes (malloc'd), or giflib's error code, or GIF_OUT_OF_MEMORY. */
enum { GIF_OUT_OF_MEMORY = -1 };
typedef struct {
    unsigned char *data;
    size_t size;
    int error;
} gif_bytes;

/* Encodes the animation, looping forever, quantised to its fixed palette without dithering
 * (the same frames give the same bytes). Prints nothing, so that several can be encoded at
 * once. */
gif_bytes gif_encode(const gif_animation *anim);

/* Writes encoded bytes to path atomically, or prints encode's error; frees the bytes either
 * way. Returns the exit status (the error printed as "mlpviz CMD: PATH: ..."). */
int gif_save(const char *path, gif_bytes *gif, const char *cmd);

#endif
