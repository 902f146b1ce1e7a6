/* json.c: a recursive-descent JSON reader (RFC 8259) with a depth limit, for sidecar files.
 * Strings are decoded (escapes, surrogate pairs) and checked as UTF-8; numbers go through
 * strtod after their grammar is checked, so "01", "1." and "NaN" are refused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json.h"

#define MAX_DEPTH 32 /* a sidecar is two levels deep; this only stops a stack overflow */
#define MAX_MEMBERS 4096 /* per object: the duplicate-name check is quadratic (a sidecar has 7) */

typedef struct {
    const char *text;
    size_t size, pos;
} reader;

static mv_status parse_value(reader *r, mv_json *out, int depth);

/* Line and column of the read position, for messages. */
static mv_status syntax_error(const reader *r, const char *what)
{
    int line = 1, column = 1;
    for (size_t i = 0; i < r->pos && i < r->size; i++) {
        if (r->text[i] == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    return mv_fail(MV_ERR_FORMAT, "line %d, column %d: %s", line, column, what);
}

static void skip_space(reader *r)
{
    while (r->pos < r->size && strchr(" \t\r\n", r->text[r->pos]) && r->text[r->pos])
        r->pos++;
}

static int peek(const reader *r) { return r->pos < r->size ? (unsigned char)r->text[r->pos] : -1; }

static int take(reader *r, char c)
{
    skip_space(r);
    if (peek(r) != (unsigned char)c)
        return 0;
    r->pos++;
    return 1;
}

static int take_word(reader *r, const char *word)
{
    const size_t n = strlen(word);
    if (r->size - r->pos < n || memcmp(r->text + r->pos, word, n) != 0)
        return 0;
    r->pos += n;
    return 1;
}

/* Appends code point cp as UTF-8 to out (which has room for 4 more bytes). */
static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int read_hex4(reader *r, unsigned long *cp)
{
    if (r->size - r->pos < 4)
        return 0;
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        const char c = r->text[r->pos++];
        const char *digits = "0123456789abcdef", *hit = strchr(digits, c | 0x20);
        if (!c || !hit)
            return 0;
        *cp = *cp * 16 + (unsigned long)(hit - digits);
    }
    return 1;
}

/* One escape after the backslash; writes its UTF-8 bytes. 0 when it is not a valid escape. */
static size_t read_escape(reader *r, char *out)
{
    const int c = peek(r);
    const char *plain = "\"\\/bfnrt", *meaning = "\"\\/\b\f\n\r\t", *hit;
    r->pos++;
    if (c > 0 && (hit = strchr(plain, c))) {
        out[0] = meaning[hit - plain];
        return 1;
    }
    unsigned long cp, low;
    if (c != 'u' || !read_hex4(r, &cp) || cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs its low half */
        if (!take_word(r, "\\u") || !read_hex4(r, &low) || low < 0xDC00 || low > 0xDFFF)
            return 0;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return put_utf8(out, cp);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_length(const unsigned char *s, size_t n)
{
    const size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                     : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return len;
}

/* A string, the opening quote already read. The decoded text is never longer than the
 * encoded one, so one allocation of the remaining size bounds it. */
static mv_status parse_string(reader *r, char **out)
{
    size_t end = r->pos;
    while (end < r->size && r->text[end] != '"')
        end += r->text[end] == '\\' ? 2 : 1;
    if (end >= r->size)
        return syntax_error(r, "unterminated string");
    char *s = malloc(end - r->pos + 4);
    if (!s)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a string of %zu bytes", end - r->pos);
    size_t n = 0;
    while (r->pos < end) {
        const unsigned char c = (unsigned char)r->text[r->pos];
        size_t len = 0;
        if (c == '\\') {
            r->pos++;
            len = read_escape(r, s + n);
        } else if (c >= 0x20 && (len = utf8_length((const unsigned char *)r->text + r->pos,
                                                   end - r->pos))) {
            memcpy(s + n, r->text + r->pos, len);
            r->pos += len;
        }
        if (!len) {
            free(s);
            return syntax_error(r, c < 0x20 ? "control character in a string"
                                 : c == '\\' ? "invalid escape" : "invalid UTF-8");
        }
        n += len;
    }
    r->pos = end + 1;
    s[n] = '\0';
    *out = s;
    return MV_OK;
}

/* A number, checked against the JSON grammar before strtod reads it. */
static mv_status parse_number(reader *r, double *out)
{
    const size_t start = r->pos;
    const char *t = r->text;
#define DIGITS() while (r->pos < r->size && t[r->pos] >= '0' && t[r->pos] <= '9') r->pos++
    if (peek(r) == '-')
        r->pos++;
    if (peek(r) == '0')
        r->pos++;
    else if (peek(r) >= '1' && peek(r) <= '9')
        DIGITS();
    else
        return syntax_error(r, "expected a value");
    if (peek(r) == '.') {
        r->pos++;
        if (!(peek(r) >= '0' && peek(r) <= '9'))
            return syntax_error(r, "expected a digit after '.'");
        DIGITS();
    }
    if (peek(r) == 'e' || peek(r) == 'E') {
        r->pos++;
        if (peek(r) == '+' || peek(r) == '-')
            r->pos++;
        if (!(peek(r) >= '0' && peek(r) <= '9'))
            return syntax_error(r, "expected a digit in the exponent");
        DIGITS();
    }
#undef DIGITS
    char buf[64];
    if (r->pos - start >= sizeof buf)
        return syntax_error(r, "number too long");
    memcpy(buf, t + start, r->pos - start);
    buf[r->pos - start] = '\0';
    errno = 0;
    *out = strtod(buf, NULL);
    if (errno == ERANGE && (*out > 1 || *out < -1))
        return syntax_error(r, "number out of range");
    return MV_OK;
}

/* Grows a container by one item (and key), doubling its capacity. */
static mv_status grow(mv_json *c, int *capacity)
{
    if (c->n_items < *capacity)
        return MV_OK;
    const int cap = *capacity ? 2 * *capacity : 4;
    mv_json *items = realloc(c->items, sizeof *items * (size_t)cap);
    if (items)
        c->items = items;
    char **keys = c->kind == MV_JSON_OBJECT ? realloc(c->keys, sizeof *keys * (size_t)cap) : NULL;
    if (keys)
        c->keys = keys;
    if (!items || (c->kind == MV_JSON_OBJECT && !keys))
        return mv_fail(MV_ERR_NOMEM, "cannot grow a JSON container to %d items", cap);
    *capacity = cap;
    return MV_OK;
}

/* The members or items of an object or array, its opening bracket already read. */
static mv_status parse_container(reader *r, mv_json *c, int depth)
{
    const int object = c->kind == MV_JSON_OBJECT;
    const char close = object ? '}' : ']';
    int capacity = 0;
    if (take(r, close))
        return MV_OK;
    do {
        mv_status st = grow(c, &capacity);
        if (st)
            return st;
        mv_json *item = &c->items[c->n_items];
        memset(item, 0, sizeof *item);
        if (object) {
            if (c->n_items == MAX_MEMBERS)
                return syntax_error(r, "more than 4096 members in an object");
            c->keys[c->n_items] = NULL;
            if (!take(r, '"'))
                return syntax_error(r, "expected a member name");
            if ((st = parse_string(r, &c->keys[c->n_items])))
                return st;
            c->n_items++; /* the key is owned from here, even if the value fails */
            if (mv_json_member(&(mv_json){.kind = MV_JSON_OBJECT, .n_items = c->n_items - 1,
                                          .keys = c->keys, .items = c->items},
                               c->keys[c->n_items - 1]))
                return syntax_error(r, "duplicate member name");
            if (!take(r, ':'))
                return syntax_error(r, "expected ':'");
        } else {
            c->n_items++;
        }
        if ((st = parse_value(r, item, depth + 1)))
            return st;
    } while (take(r, ','));
    return take(r, close) ? MV_OK : syntax_error(r, object ? "expected ',' or '}'"
                                                           : "expected ',' or ']'");
}

static mv_status parse_value(reader *r, mv_json *out, int depth)
{
    if (depth > MAX_DEPTH)
        return syntax_error(r, "nested too deeply");
    skip_space(r);
    const int c = peek(r);
    if (c == '{' || c == '[') {
        r->pos++;
        out->kind = c == '{' ? MV_JSON_OBJECT : MV_JSON_ARRAY;
        return parse_container(r, out, depth);
    }
    if (c == '"') {
        r->pos++;
        out->kind = MV_JSON_STRING;
        return parse_string(r, &out->string);
    }
    if (take_word(r, "true") || take_word(r, "false")) {
        out->kind = MV_JSON_BOOL;
        out->number = c == 't';
        return MV_OK;
    }
    if (take_word(r, "null")) {
        out->kind = MV_JSON_NULL;
        return MV_OK;
    }
    out->kind = MV_JSON_NUMBER;
    return parse_number(r, &out->number);
}

static void free_contents(mv_json *j)
{
    for (int i = 0; i < j->n_items; i++) {
        free_contents(&j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
}

void mv_json_free(mv_json *json)
{
    if (!json)
        return;
    free_contents(json);
    free(json);
}

mv_status mv_json_parse(const char *text, size_t size, mv_json **out)
{
    *out = NULL;
    mv_json *root = calloc(1, sizeof *root);
    if (!root)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate a JSON tree");
    reader r = {text, size, 0};
    mv_status st = parse_value(&r, root, 0);
    if (!st) {
        skip_space(&r);
        if (r.pos < r.size)
            st = syntax_error(&r, "text after the value");
    }
    if (st) {
        mv_json_free(root);
        return st;
    }
    *out = root;
    return MV_OK;
}

const mv_json *mv_json_member(const mv_json *object, const char *key)
{
    if (!object || object->kind != MV_JSON_OBJECT)
        return NULL;
    for (int i = 0; i < object->n_items; i++)
        if (object->keys[i] && strcmp(object->keys[i], key) == 0)
            return &object->items[i];
    return NULL;
}
