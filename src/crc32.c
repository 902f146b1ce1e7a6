/* crc32.c: CRC-32 as in zlib, gzip and PNG (reflected polynomial 0xEDB88320), so model files,
 * gzip trailers and PNG chunks are all checked by the same function. */
#include <pthread.h>

#include "mlpviz.h"

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

uint32_t mv_crc32(uint32_t crc, const void *data, size_t size)
{
    pthread_once(&crc_once, crc_init); /* images are written from several threads */
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
