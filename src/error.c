/* error.c: status codes and the thread-local last-error message (libfann-style: the library
 * reports, the caller decides). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[512] = "no error";

const char *mv_status_string(mv_status status)
{
    switch (status) {
    case MV_OK: return "ok";
    case MV_ERR_ARG: return "invalid argument";
    case MV_ERR_NOMEM: return "out of memory";
    case MV_ERR_IO: return "input/output error";
    case MV_ERR_FORMAT: return "bad format";
    case MV_ERR_NUMERIC: return "non-finite number";
    case MV_ERR_TOLERANCE: return "check failed";
    }
    return "unknown status";
}

const char *mv_last_error(void) { return last_error; }

/* Messages quote names from files (an ONNX node's name, a metadata value, a path): a control
 * character among them (a line break, a terminal escape) becomes '?', so that a message stays
 * one printable line. */
static void printable(char *text)
{
    for (unsigned char *c = (unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7F)
            *c = '?';
}

mv_status mv_fail(mv_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    printable(last_error);
    return status;
}

mv_status mv_fail_context(mv_status status, const char *context)
{
    char inner[sizeof last_error];
    memcpy(inner, last_error, sizeof inner);
    const int n = snprintf(last_error, sizeof last_error, "%s: ", context);
    if (n >= 0 && (size_t)n < sizeof last_error)
        memcpy(last_error + n, inner, sizeof last_error - (size_t)n - 1);
    last_error[sizeof last_error - 1] = '\0';
    printable(last_error);
    return status;
}
