/* tool_gif_info: decodes a GIF with giflib (DGifSlurp) and prints what the tests check:
 * "frames N size WxH loop L colors C delay D" (L: the NETSCAPE2.0 loop count, -1 without
 * one; C: the global palette's size; D: the first frame's delay in 1/100 s). Exit 1 when the
 * file does not decode, or a frame is not the screen's size or lies outside it. */
#include <stdio.h>
#include <string.h>

#include <gif_lib.h>

/* The loop count of the NETSCAPE2.0 block among a frame's extensions, or -1. */
static int loop_count(const SavedImage *frame)
{
    for (int i = 0; i + 1 < frame->ExtensionBlockCount; i++) {
        const ExtensionBlock *e = &frame->ExtensionBlocks[i];
        if (e->Function == APPLICATION_EXT_FUNC_CODE && e->ByteCount == 11 &&
            !memcmp(e->Bytes, "NETSCAPE2.0", 11) && frame->ExtensionBlocks[i + 1].ByteCount >= 3)
            return frame->ExtensionBlocks[i + 1].Bytes[1] | frame->ExtensionBlocks[i + 1].Bytes[2] << 8;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tool_gif_info FILE.gif\n");
        return 2;
    }
    int error = 0;
    GifFileType *gif = DGifOpenFileName(argv[1], &error);
    if (!gif || DGifSlurp(gif) == GIF_ERROR) {
        fprintf(stderr, "%s: %s\n", argv[1], GifErrorString(gif ? gif->Error : error));
        if (gif)
            DGifCloseFile(gif, &error);
        return 1;
    }
    int bad = 0;
    for (int f = 0; f < gif->ImageCount; f++) {
        const GifImageDesc *d = &gif->SavedImages[f].ImageDesc;
        if (d->Left || d->Top || d->Width != gif->SWidth || d->Height != gif->SHeight)
            bad = 1;
    }
    GraphicsControlBlock gcb = {.DelayTime = -1};
    if (gif->ImageCount)
        DGifSavedExtensionToGCB(gif, 0, &gcb);
    printf("frames %d size %dx%d loop %d colors %d delay %d\n", gif->ImageCount, gif->SWidth,
           gif->SHeight, gif->ImageCount ? loop_count(&gif->SavedImages[0]) : -1,
           gif->SColorMap ? gif->SColorMap->ColorCount : 0, gcb.DelayTime);
    DGifCloseFile(gif, &error);
    if (bad)
        fprintf(stderr, "%s: a frame is not the screen's size\n", argv[1]);
    return bad;
}
