/* fuzz_json.c: libFuzzer harness for the JSON reader (src/json.c, internal to the library;
 * the fuzz build links the whole static library). A text that parses must give a tree that
 * is well-formed: kinds in range, strings NUL-terminated without an embedded "\u0000",
 * objects with a name per member and mv_json_member finding each first member. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const mv_json *j, int depth)
{
    if (depth > 10000 || (int)j->kind < MV_JSON_NULL || j->kind > MV_JSON_OBJECT)
        abort();
    if (j->kind == MV_JSON_STRING && (!j->string || strlen(j->string) > (1u << 26)))
        abort();
    if (j->kind == MV_JSON_ARRAY || j->kind == MV_JSON_OBJECT) {
        if (j->n_items < 0 || (j->n_items > 0 && !j->items))
            abort();
        for (int i = 0; i < j->n_items; i++) {
            check(&j->items[i], depth + 1);
            if (j->kind == MV_JSON_OBJECT &&
                (!j->keys[i] || mv_json_member(j, j->keys[i]) != &j->items[i]))
                abort(); /* names are unique, so each member is found as itself */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mv_json *j = NULL;
    if (mv_json_parse((const char *)data, size, &j) == MV_OK) {
        if (!j)
            abort();
        check(j, 0);
    }
    mv_json_free(j);
    return 0;
}
