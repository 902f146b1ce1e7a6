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

/* Writes the animation to path atomically, looping forever, quantised to its fixed palette
 * without dithering (the same frames give the same bytes). Returns the exit status (the
 * error printed for cmd). */
int gif_write(const char *path, const gif_animation *anim, const char *cmd);

#endif
