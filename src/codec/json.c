/* json.c: strict RFC 8259 validation and in-place minification of JSON from
 * peers, iteration over validated text, and string (un)escaping. Used by the
 * serializer (client frames) and query.c (connect params). Leaf module: it
 * owns no memory beyond what phx_json_append_string grows in its caller's
 * buffer. */
#include "json.h"

#include <string.h>

#include "phx.h"
#include "utf8.h"

/* ---- scanner ---- */

typedef enum {
    ST_VALUE, /* a value must start here */
    ST_KEY,   /* an object key must start here */
    ST_AFTER, /* a value just ended */
} scan_state_t;

typedef struct scanner {
    const uint8_t *in;
    size_t len;
    size_t i;     /* read position */
    uint8_t *out; /* NULL: validate only */
    size_t w;     /* write position (<= i) */
} scanner_t;

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(scanner_t *s)
{
    while (s->i < s->len && is_ws(s->in[s->i]))
        s->i++;
}

/* Copies in[start, i) to the output. The regions may overlap (in place). */
static void emit_from(scanner_t *s, size_t start)
{
    size_t n = s->i - start;
    if (s->out != NULL && s->w != start)
        memmove(s->out + s->w, s->in + start, n);
    s->w += n;
}

static int hex4(const uint8_t *p, uint32_t *v)
{
    uint32_t r = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return -1;
        r = (r << 4) | d;
    }
    *v = r;
    return 0;
}

/* Reads a \uXXXX escape (possibly a surrogate pair) at p[0..avail). Returns
 * the bytes consumed (6 or 12) with the scalar in *cp, or 0 if malformed. */
static size_t read_u_escape(const uint8_t *p, size_t avail, uint32_t *cp)
{
    uint32_t hi, lo;
    if (avail < 6 || hex4(p + 2, &hi) != 0)
        return 0;
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return 0; /* a low surrogate cannot come first */
    if (hi < 0xd800 || hi > 0xdbff) {
        *cp = hi;
        return 6;
    }
    if (avail < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0)
        return 0;
    if (lo < 0xdc00 || lo > 0xdfff)
        return 0;
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return 12;
}

/* s->i is at the opening quote. Consumes the string and copies it verbatim. */
static int scan_string(scanner_t *s)
{
    const uint8_t *in = s->in;
    size_t start = s->i++;
    for (;;) {
        /* Fast path: plain printable ASCII. */
        while (s->i < s->len) {
            uint8_t c = in[s->i];
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
                break;
            s->i++;
        }
        if (s->i >= s->len)
            return PHX_ERR_PROTO;
        uint8_t c = in[s->i];
        if (c == '"') {
            s->i++;
            emit_from(s, start);
            return 0;
        }
        if (c < 0x20)
            return PHX_ERR_PROTO; /* raw control characters must be escaped */
        if (c == '\\') {
            if (s->len - s->i < 2)
                return PHX_ERR_PROTO;
            switch (in[s->i + 1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                s->i += 2;
                break;
            case 'u': {
                uint32_t cp;
                size_t n = read_u_escape(in + s->i, s->len - s->i, &cp);
                if (n == 0)
                    return PHX_ERR_PROTO;
                s->i += n;
                break;
            }
            default:
                return PHX_ERR_PROTO;
            }
            continue;
        }
        uint32_t cp;
        size_t n = phx_utf8_decode(in + s->i, s->len - s->i, &cp);
        if (n == 0)
            return PHX_ERR_PROTO;
        s->i += n;
    }
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int scan_digits(scanner_t *s)
{
    if (s->i >= s->len || !is_digit(s->in[s->i]))
        return PHX_ERR_PROTO;
    while (s->i < s->len && is_digit(s->in[s->i]))
        s->i++;
    return 0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? copied verbatim. */
static int scan_number(scanner_t *s)
{
    size_t start = s->i;
    if (s->in[s->i] == '-')
        s->i++;
    if (s->i >= s->len)
        return PHX_ERR_PROTO;
    if (s->in[s->i] == '0')
        s->i++;
    else if (scan_digits(s) != 0)
        return PHX_ERR_PROTO;
    if (s->i < s->len && s->in[s->i] == '.') {
        s->i++;
        if (scan_digits(s) != 0)
            return PHX_ERR_PROTO;
    }
    if (s->i < s->len && (s->in[s->i] == 'e' || s->in[s->i] == 'E')) {
        s->i++;
        if (s->i < s->len && (s->in[s->i] == '+' || s->in[s->i] == '-'))
            s->i++;
        if (scan_digits(s) != 0)
            return PHX_ERR_PROTO;
    }
    emit_from(s, start);
    return 0;
}

static int scan_literal(scanner_t *s, const char *word, size_t n)
{
    if (s->len - s->i < n || memcmp(s->in + s->i, word, n) != 0)
        return PHX_ERR_PROTO;
    size_t start = s->i;
    s->i += n;
    emit_from(s, start);
    return 0;
}

static void emit_byte(scanner_t *s)
{
    if (s->out != NULL)
        s->out[s->w] = s->in[s->i];
    s->w++;
    s->i++;
}

static int scan(scanner_t *s, const phx_json_limits_t *lim)
{
    uint32_t max_depth = lim != NULL ? lim->max_depth : PHX_JSON_DEFAULT_MAX_DEPTH;
    if (max_depth > PHX_JSON_DEPTH_CAP)
        max_depth = PHX_JSON_DEPTH_CAP;
    /* One bit per open container: 1 for an object, 0 for an array. */
    uint64_t kinds[PHX_JSON_DEPTH_CAP / 64] = {0};
    uint32_t depth = 0;
    scan_state_t st = ST_VALUE;
    int rv;

    for (;;) {
        skip_ws(s);
        if (s->i >= s->len) {
            if (st == ST_AFTER && depth == 0)
                return 0;
            return PHX_ERR_PROTO;
        }
        uint8_t c = s->in[s->i];
        switch (st) {
        case ST_VALUE:
            switch (c) {
            case '{':
            case '[': {
                if (depth >= max_depth)
                    return PHX_ERR_LIMIT;
                uint64_t bit = UINT64_C(1) << (depth % 64);
                if (c == '{')
                    kinds[depth / 64] |= bit;
                else
                    kinds[depth / 64] &= ~bit;
                depth++;
                emit_byte(s);
                skip_ws(s);
                if (s->i >= s->len)
                    return PHX_ERR_PROTO;
                if (s->in[s->i] == (c == '{' ? '}' : ']')) {
                    emit_byte(s);
                    depth--;
                    st = ST_AFTER;
                } else {
                    st = c == '{' ? ST_KEY : ST_VALUE;
                }
                continue;
            }
            case '"':
                rv = scan_string(s);
                break;
            case 't':
                rv = scan_literal(s, "true", 4);
                break;
            case 'f':
                rv = scan_literal(s, "false", 5);
                break;
            case 'n':
                rv = scan_literal(s, "null", 4);
                break;
            default:
                if (c != '-' && !is_digit(c))
                    return PHX_ERR_PROTO;
                rv = scan_number(s);
                break;
            }
            if (rv != 0)
                return rv;
            st = ST_AFTER;
            continue;
        case ST_KEY:
            if (c != '"')
                return PHX_ERR_PROTO;
            if ((rv = scan_string(s)) != 0)
                return rv;
            skip_ws(s);
            if (s->i >= s->len || s->in[s->i] != ':')
                return PHX_ERR_PROTO;
            emit_byte(s);
            st = ST_VALUE;
            continue;
        case ST_AFTER: {
            if (depth == 0)
                return PHX_ERR_PROTO; /* trailing garbage */
            uint32_t top = depth - 1;
            bool in_object = (kinds[top / 64] >> (top % 64)) & 1;
            if (c == ',') {
                emit_byte(s);
                st = in_object ? ST_KEY : ST_VALUE;
                continue;
            }
            if (c != (in_object ? '}' : ']'))
                return PHX_ERR_PROTO;
            emit_byte(s);
            depth--;
            continue;
        }
        }
    }
}

int phx_json_validate(const uint8_t *json, size_t len, const phx_json_limits_t *lim)
{
    scanner_t s = {.in = json, .len = len};
    return scan(&s, lim);
}

int phx_json_minify(uint8_t *json, size_t len, const phx_json_limits_t *lim, size_t *out_len)
{
    scanner_t s = {.in = json, .len = len, .out = json};
    int rv = scan(&s, lim);
    *out_len = s.w;
    return rv;
}

bool phx_json_is_object(const uint8_t *json, size_t len, const phx_json_limits_t *lim)
{
    return phx_json_type(json, len) == PHX_JSON_OBJECT && phx_json_validate(json, len, lim) == 0;
}

/* ---- iteration over validated text ---- */

static size_t skip_ws_at(const uint8_t *p, size_t len, size_t i)
{
    while (i < len && is_ws(p[i]))
        i++;
    return i;
}

static phx_json_type_t type_of(uint8_t c)
{
    switch (c) {
    case '{':
        return PHX_JSON_OBJECT;
    case '[':
        return PHX_JSON_ARRAY;
    case '"':
        return PHX_JSON_STRING;
    case 't':
        return PHX_JSON_TRUE;
    case 'f':
        return PHX_JSON_FALSE;
    case 'n':
        return PHX_JSON_NULL;
    default:
        return c == '-' || is_digit(c) ? PHX_JSON_NUMBER : PHX_JSON_INVALID;
    }
}

phx_json_type_t phx_json_type(const uint8_t *json, size_t len)
{
    size_t i = skip_ws_at(json, len, 0);
    return i < len ? type_of(json[i]) : PHX_JSON_INVALID;
}

/* p[i] is an opening quote; returns the index after the closing one. */
static size_t skip_string(const uint8_t *p, size_t len, size_t i)
{
    i++;
    while (i < len) {
        if (p[i] == '\\')
            i += 2;
        else if (p[i] == '"')
            return i + 1;
        else
            i++;
    }
    return len;
}

/* Returns the index just past the value starting at p[i]. Bounded by len
 * whatever the input. */
static size_t skip_value(const uint8_t *p, size_t len, size_t i)
{
    if (i >= len)
        return len;
    uint8_t c = p[i];
    if (c == '"')
        return skip_string(p, len, i);
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (i < len) {
            c = p[i];
            if (c == '"') {
                i = skip_string(p, len, i);
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return len;
    }
    while (i < len && p[i] != ',' && p[i] != ']' && p[i] != '}' && !is_ws(p[i]))
        i++;
    return i;
}

int phx_json_iter_init(phx_json_iter_t *it, const uint8_t *json, size_t len)
{
    size_t i = skip_ws_at(json, len, 0);
    if (i >= len || (json[i] != '[' && json[i] != '{'))
        return PHX_ERR_INVALID;
    it->_p = json;
    it->_len = len;
    it->_pos = i + 1;
    it->_is_object = json[i] == '{';
    it->_done = false;
    return 0;
}

bool phx_json_iter_is_object(const phx_json_iter_t *it)
{
    return it->_is_object;
}

bool phx_json_iter_next(phx_json_iter_t *it, phx_json_span_t *key, phx_json_span_t *val)
{
    const uint8_t *p = it->_p;
    size_t len = it->_len;
    if (it->_done)
        return false;
    size_t i = skip_ws_at(p, len, it->_pos);
    if (i >= len || p[i] == ']' || p[i] == '}') {
        it->_done = true;
        return false;
    }
    if (it->_is_object) {
        size_t end = skip_value(p, len, i);
        if (key != NULL) {
            key->p = p + i;
            key->len = end - i;
            key->type = PHX_JSON_STRING;
        }
        i = skip_ws_at(p, len, end);
        if (i < len && p[i] == ':')
            i++;
        i = skip_ws_at(p, len, i);
    }
    size_t end = skip_value(p, len, i);
    val->p = p + i;
    val->len = end - i;
    val->type = i < len ? type_of(p[i]) : PHX_JSON_INVALID;
    i = skip_ws_at(p, len, end);
    if (i < len && p[i] == ',')
        i++;
    else
        it->_done = true;
    it->_pos = i;
    return true;
}

/* ---- strings ---- */

int phx_json_string_decode(const uint8_t *span, size_t span_len, uint8_t *out, size_t *out_len,
                           bool *has_nul)
{
    *has_nul = false;
    *out_len = 0;
    if (span_len < 2 || span[0] != '"' || span[span_len - 1] != '"')
        return PHX_ERR_PROTO;
    size_t end = span_len - 1, i = 1, w = 0;
    while (i < end) {
        size_t run = i;
        while (run < end && span[run] != '\\')
            run++;
        if (run > i) {
            if (memchr(span + i, 0, run - i) != NULL)
                *has_nul = true;
            memmove(out + w, span + i, run - i);
            w += run - i;
            i = run;
            continue;
        }
        if (end - i < 2)
            return PHX_ERR_PROTO;
        uint8_t e = span[i + 1], b;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            b = e;
            break;
        case 'b':
            b = '\b';
            break;
        case 'f':
            b = '\f';
            break;
        case 'n':
            b = '\n';
            break;
        case 'r':
            b = '\r';
            break;
        case 't':
            b = '\t';
            break;
        case 'u': {
            uint32_t cp;
            size_t n = read_u_escape(span + i, end - i, &cp);
            if (n == 0)
                return PHX_ERR_PROTO;
            if (cp == 0)
                *has_nul = true;
            uint8_t enc[4];
            size_t k = phx_utf8_encode(cp, enc);
            memcpy(out + w, enc, k);
            w += k;
            i += n;
            continue;
        }
        default:
            return PHX_ERR_PROTO;
        }
        out[w++] = b;
        i += 2;
    }
    *out_len = w;
    return 0;
}

/* Escape of each byte below 0x20 and of '"' and '\\': 0 = copy raw,
 * otherwise the short escape letter, or 'u' for \u00XX. */
static uint8_t escape_kind(uint8_t c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\f':
        return 'f';
    case '\r':
        return 'r';
    default:
        return c < 0x20 ? 'u' : 0;
    }
}

size_t phx_json_escaped_len(const uint8_t *s, size_t len)
{
    size_t n = len + 2;
    for (size_t i = 0; i < len; i++) {
        uint8_t k = escape_kind(s[i]);
        if (k == 'u')
            n += 5;
        else if (k != 0)
            n += 1;
    }
    return n;
}

uint8_t *phx_json_escape(uint8_t *dst, const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    *dst++ = '"';
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && escape_kind(s[run]) == 0)
            run++;
        if (run > i) {
            memcpy(dst, s + i, run - i);
            dst += run - i;
            i = run;
            continue;
        }
        uint8_t k = escape_kind(s[i]);
        *dst++ = '\\';
        if (k == 'u') {
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = (uint8_t)hex[s[i] >> 4];
            *dst++ = (uint8_t)hex[s[i] & 0xf];
        } else {
            *dst++ = k;
        }
        i++;
    }
    *dst++ = '"';
    return dst;
}

int phx_json_append_string(phx_buf_t *b, const uint8_t *s, size_t len)
{
    size_t n = phx_json_escaped_len(s, len);
    if (phx_buf_reserve(b, n) != 0)
        return PHX_ERR_NOMEM;
    uint8_t *end = phx_json_escape(b->data + b->len, s, len);
    b->len = (size_t)(end - b->data);
    b->data[b->len] = '\0';
    return 0;
}

bool phx_json_member(const uint8_t *body, size_t len, const char *name, phx_buf_t *out,
                     phx_json_span_t *raw)
{
    phx_json_iter_t it;
    if (phx_json_iter_init(&it, body, len) != 0 || !phx_json_iter_is_object(&it))
        return false;
    phx_json_span_t key, val;
    bool found = false;
    /* The last occurrence wins, as with JSON.parse and Jason. */
    while (phx_json_iter_next(&it, &key, &val)) {
        size_t nlen = strlen(name);
        if (key.len == nlen + 2 && memcmp(key.p + 1, name, nlen) == 0) {
            *raw = val;
            found = true;
        }
    }
    if (!found || out == NULL)
        return found;
    if (raw->type != PHX_JSON_STRING)
        return false;
    out->len = 0;
    if (phx_buf_reserve(out, raw->len) != 0)
        return false;
    size_t n;
    bool has_nul;
    if (phx_json_string_decode(raw->p, raw->len, out->data, &n, &has_nul) != 0 || has_nul)
        return false;
    out->len = n;
    out->data[n] = '\0';
    return true;
}
