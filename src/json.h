/* json.h: a small JSON reader for the few JSON files mlpviz reads (an ONNX model's sidecar,
 * docs/onnx.md). Internal to the library. It parses RFC 8259 text into a tree with a depth
 * limit, rejects what is not JSON (trailing commas, comments, bad escapes, invalid UTF-8),
 * and keeps object members in file order. */
#ifndef MV_JSON_H
#define MV_JSON_H

#include <stddef.h>

#include "mlpviz.h"

typedef enum { MV_JSON_NULL, MV_JSON_BOOL, MV_JSON_NUMBER, MV_JSON_STRING, MV_JSON_ARRAY,
               MV_JSON_OBJECT } mv_json_kind;

typedef struct mv_json mv_json;
struct mv_json {
    mv_json_kind kind;
    double number;     /* MV_JSON_NUMBER; MV_JSON_BOOL as 0 or 1 */
    char *string;      /* MV_JSON_STRING: UTF-8, NUL-terminated (a "\u0000" is refused) */
    int n_items;       /* MV_JSON_ARRAY and MV_JSON_OBJECT */
    mv_json *items;    /* [n_items] */
    char **keys;       /* MV_JSON_OBJECT: [n_items] member names, in file order */
};

/* Parses text[0..size). On failure returns MV_ERR_FORMAT with a message giving the line and
 * column ("line 3, column 7: expected ':'"). *out belongs to the caller (mv_json_free). */
mv_status mv_json_parse(const char *text, size_t size, mv_json **out);
/* Releases a tree; NULL is allowed. */
void mv_json_free(mv_json *json);
/* The member `key` of an object, or NULL (the parser refuses repeated names). Borrowed. */
const mv_json *mv_json_member(const mv_json *object, const char *key);

#endif
