/* etf_json.c: conversions between term trees (etf.h) and JSON text: the
 * JSON view of a token's data, the "user id" string of topics and socket
 * ids, and JSON input (phxd token sign) to terms with exact integers.
 * Split from etf.c to keep both files short; same module, same header. */
#include "etf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"
#include "utf8.h"

/* ---- integers ---- */

int phx_term_int_to_decimal(const phx_term_t *t, phx_buf_t *out)
{
    if (t->type != PHX_TERM_INTEGER)
        return PHX_ERR_INVALID;
    const char *sign = t->u.integer.is_negative ? "-" : "";
    size_t len = t->u.integer.len;
    if (len <= 8) {
        uint64_t m = 0;
        for (size_t i = 0; i < len; i++)
            m |= (uint64_t)t->u.integer.mag[i] << (8 * i);
        return phx_buf_printf(out, "%s%" PRIu64, sign, m);
    }
    /* Long division by 10^9 on 32-bit limbs; each round yields 9 digits,
     * written backwards. A byte holds under 2.41 decimal digits. */
    size_t nlimbs = (len + 3) / 4;
    uint32_t *limbs = phx_calloc(nlimbs, sizeof(*limbs));
    char *rev = phx_malloc(len * 3 + 9);
    int rv = PHX_ERR_NOMEM;
    if (limbs == NULL || rev == NULL)
        goto done;
    for (size_t i = 0; i < len; i++)
        limbs[i / 4] |= (uint32_t)t->u.integer.mag[i] << (8 * (i % 4));
    size_t nd = 0;
    while (nlimbs > 0) {
        uint64_t rem = 0;
        for (size_t i = nlimbs; i-- > 0;) {
            uint64_t cur = rem << 32 | limbs[i];
            limbs[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        while (nlimbs > 0 && limbs[nlimbs - 1] == 0)
            nlimbs--;
        for (int k = 0; k < 9; k++, rem /= 10)
            rev[nd++] = (char)('0' + rem % 10);
    }
    while (nd > 1 && rev[nd - 1] == '0')
        nd--;
    if ((rv = phx_buf_reserve(out, nd + 1)) != 0)
        goto done;
    if (t->u.integer.is_negative)
        out->data[out->len++] = '-';
    while (nd > 0)
        out->data[out->len++] = (uint8_t)rev[--nd];
    out->data[out->len] = '\0';
    rv = 0;
done:
    phx_free(limbs);
    phx_free(rev);
    return rv;
}

/* ---- floats ---- */

/* Writes the shortest decimal that reads back as `v`, laid out as Erlang's
 * float_to_binary(V, [short]) does (OTP documents the rule): plain
 * notation ("123.456", "100.0", "0.0001") unless scientific notation
 * ("1.0e20", "1.0e-5") is strictly shorter, and scientific notation for
 * every |v| >= 2^53, where plain digits would suggest an exact integer.
 * `buf` holds at least 32 bytes. Returns the length. */
static size_t format_float(double v, char *buf)
{
    if (v == 0)
        return (size_t)snprintf(buf, 32, "%s", signbit(v) ? "-0.0" : "0.0");
    char sci[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    /* sci is "[-]d[.ddd]e[+-]XX": collect the digits and the exponent. */
    char digits[24];
    size_t nd = 0;
    const char *p = sci;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    /* Scientific: d.ddd e X (".0" when there is one digit). */
    char s1[40];
    size_t n1 = (size_t)snprintf(s1, sizeof(s1), "%s%c.%.*se%d", neg ? "-" : "", digits[0],
                                 nd > 1 ? (int)(nd - 1) : 1, nd > 1 ? digits + 1 : "0", exp10);
    /* Plain notation is at most 17 digits plus 308 zeros; only build it
     * when it can be the shorter one. */
    size_t plain_len = exp10 >= 0 ? (nd <= (size_t)exp10 + 1 ? (size_t)exp10 + 3 : nd + 1)
                                  : (size_t)(-exp10) + 1 + nd;
    plain_len += neg;
    if (plain_len > n1 || fabs(v) >= 9007199254740992.0) {
        memcpy(buf, s1, n1 + 1);
        return n1;
    }
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (exp10 >= 0) {
        size_t int_digits = (size_t)exp10 + 1;
        for (size_t i = 0; i < int_digits; i++)
            buf[o++] = i < nd ? digits[i] : '0';
        buf[o++] = '.';
        if (nd > int_digits)
            for (size_t i = int_digits; i < nd; i++)
                buf[o++] = digits[i];
        else
            buf[o++] = '0';
    } else {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            buf[o++] = '0';
        for (size_t i = 0; i < nd; i++)
            buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return o;
}

/* ---- term to JSON ---- */

static int put_json_string(phx_buf_t *out, const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    bool is_utf8 = phx_utf8_valid(s, len);
    int rv = phx_buf_append_byte(out, '"');
    size_t run = 0; /* start of bytes copied as they are */
    for (size_t i = 0; rv == 0 && i < len; i++) {
        uint8_t c = s[i];
        char esc[7];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, n = 2;
        } else if (c < 0x20 || (c >= 0x80 && !is_utf8)) {
            char short_esc = c == '\b'   ? 'b'
                             : c == '\t' ? 't'
                             : c == '\n' ? 'n'
                             : c == '\f' ? 'f'
                             : c == '\r' ? 'r'
                                         : 0;
            if (short_esc) {
                esc[0] = '\\', esc[1] = short_esc, n = 2;
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4], esc[5] = hex[c & 15], n = 6;
            }
        } else {
            continue;
        }
        if ((rv = phx_buf_append(out, s + run, i - run)) == 0)
            rv = phx_buf_append(out, esc, n);
        run = i + 1;
    }
    if (rv == 0)
        rv = phx_buf_append(out, s + run, len - run);
    return rv ? rv : phx_buf_append_byte(out, '"');
}

static int to_json(const phx_term_t *t, phx_buf_t *out);

static int put_key(const phx_term_t *k, phx_buf_t *out)
{
    if (k->type == PHX_TERM_BINARY || k->type == PHX_TERM_ATOM)
        return put_json_string(out, k->u.bytes.data, k->u.bytes.len);
    phx_buf_t text = {0};
    int rv = k->type == PHX_TERM_INTEGER ? phx_term_int_to_decimal(k, &text) : to_json(k, &text);
    if (rv == 0)
        rv = put_json_string(out, text.data, text.len);
    phx_buf_dispose(&text);
    return rv;
}

static int to_json(const phx_term_t *t, phx_buf_t *out)
{
    int rv = 0;
    switch (t->type) {
    case PHX_TERM_INTEGER:
        return phx_term_int_to_decimal(t, out);
    case PHX_TERM_FLOAT: {
        char buf[40];
        size_t n = format_float(t->u.f, buf);
        return phx_buf_append(out, buf, n);
    }
    case PHX_TERM_ATOM:
        if (phx_term_is_atom(t, "nil"))
            return phx_buf_append_str(out, "null");
        if (phx_term_is_atom(t, "true") || phx_term_is_atom(t, "false"))
            return phx_buf_append(out, t->u.bytes.data, t->u.bytes.len);
        return put_json_string(out, t->u.bytes.data, t->u.bytes.len);
    case PHX_TERM_BINARY:
        return put_json_string(out, t->u.bytes.data, t->u.bytes.len);
    case PHX_TERM_CHARLIST:
        rv = phx_buf_append_byte(out, '[');
        for (size_t i = 0; rv == 0 && i < t->u.bytes.len; i++)
            rv = phx_buf_printf(out, i ? ",%u" : "%u", (unsigned)t->u.bytes.data[i]);
        return rv ? rv : phx_buf_append_byte(out, ']');
    case PHX_TERM_LIST:
    case PHX_TERM_TUPLE:
        rv = phx_buf_append_byte(out, '[');
        for (size_t i = 0; rv == 0 && i < t->u.seq.count; i++) {
            if (i > 0)
                rv = phx_buf_append_byte(out, ',');
            if (rv == 0)
                rv = to_json(t->u.seq.items[i], out);
        }
        return rv ? rv : phx_buf_append_byte(out, ']');
    case PHX_TERM_MAP:
        rv = phx_buf_append_byte(out, '{');
        for (size_t i = 0; rv == 0 && i < t->u.map.count; i++) {
            if (i > 0)
                rv = phx_buf_append_byte(out, ',');
            if (rv == 0)
                rv = put_key(t->u.map.pairs[i].key, out);
            if (rv == 0)
                rv = phx_buf_append_byte(out, ':');
            if (rv == 0)
                rv = to_json(t->u.map.pairs[i].value, out);
        }
        return rv ? rv : phx_buf_append_byte(out, '}');
    case PHX_TERM_OTHER:
        return PHX_ERR_INVALID; /* no JSON form */
    }
    return PHX_ERR_INVALID;
}

int phx_term_to_json(const phx_term_t *t, phx_buf_t *out)
{
    return to_json(t, out);
}

int phx_term_id_string(const phx_term_t *t, phx_buf_t *out)
{
    switch (t->type) {
    case PHX_TERM_INTEGER:
        return phx_term_int_to_decimal(t, out);
    case PHX_TERM_BINARY:
    case PHX_TERM_ATOM:
        return phx_buf_append(out, t->u.bytes.data, t->u.bytes.len);
    default:
        return to_json(t, out);
    }
}

/* ---- JSON to term ---- */

typedef struct {
    const char *p;
    const char *end;
    uint32_t max_depth;
    uint32_t max_nodes;
    uint32_t max_bignum_bytes;
    uint32_t nodes;
} jp_t;

static void skip_ws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int parse_value(jp_t *j, uint32_t depth, phx_term_t **out);

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return PHX_ERR_INVALID;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static int put_utf8(phx_buf_t *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F)), n = 4;
    }
    return phx_buf_append(b, u, n);
}

/* Parses a string after its opening quote into `b` (UTF-8, validated). */
static int parse_string_into(jp_t *j, phx_buf_t *b)
{
    int rv = 0;
    const char *run = j->p;
    for (;;) {
        if (j->p >= j->end)
            return PHX_ERR_INVALID;
        unsigned char c = (unsigned char)*j->p;
        if (c == '"' || c == '\\') {
            if ((rv = phx_buf_append(b, run, (size_t)(j->p - run))) != 0)
                return rv;
        }
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return PHX_ERR_INVALID;
        if (c != '\\') {
            j->p++;
            continue;
        }
        if (j->end - j->p < 2)
            return PHX_ERR_INVALID;
        char e = j->p[1];
        j->p += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e != '\0' ? strchr(from, e) : NULL;
        if (hit != NULL) {
            rv = phx_buf_append_byte(b, (uint8_t)to[hit - from]);
        } else if (e == 'u') {
            uint32_t cp;
            if (j->end - j->p < 4 || hex4(j->p, &cp) != 0)
                return PHX_ERR_INVALID;
            j->p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return PHX_ERR_INVALID; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                    hex4(j->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return PHX_ERR_INVALID;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            rv = put_utf8(b, cp);
        } else {
            return PHX_ERR_INVALID;
        }
        if (rv != 0)
            return rv;
        run = j->p;
    }
    /* Escapes produce whole sequences, so validating the result checks the
     * raw bytes as well. */
    return phx_utf8_valid(b->data, b->len) ? 0 : PHX_ERR_INVALID;
}

static int parse_string(jp_t *j, phx_term_t **out)
{
    phx_buf_t b = {0};
    int rv = parse_string_into(j, &b);
    if (rv == 0)
        rv = phx_term_new_binary(out, b.data, b.len);
    phx_buf_dispose(&b);
    return rv;
}

static int parse_integer_digits(jp_t *j, const char *s, size_t n, bool neg, phx_term_t **out)
{
    if (n <= 18) {
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (s[i] - '0');
        return phx_term_new_int(out, neg ? -v : v);
    }
    size_t cap = j->max_bignum_bytes;
    uint8_t *mag = phx_calloc(cap ? cap : 1, 1);
    if (mag == NULL)
        return PHX_ERR_NOMEM;
    size_t len = 0;
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        unsigned carry = (unsigned)(s[i] - '0');
        for (size_t k = 0; k < len; k++) {
            unsigned v = mag[k] * 10u + carry;
            mag[k] = (uint8_t)v;
            carry = v >> 8;
        }
        if (carry != 0) {
            if (len == cap)
                rv = PHX_ERR_LIMIT;
            else
                mag[len++] = (uint8_t)carry;
        }
    }
    if (rv == 0)
        rv = phx_term_new_bigint(out, neg, mag, len);
    phx_free(mag);
    return rv;
}

static int parse_number(jp_t *j, phx_term_t **out)
{
    const char *start = j->p;
    bool neg = false;
    if (j->p < j->end && *j->p == '-')
        neg = true, j->p++;
    const char *digits = j->p;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return PHX_ERR_INVALID;
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    size_t ndigits = (size_t)(j->p - digits);
    bool is_float = false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        const char *f = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
        if (j->p == f)
            return PHX_ERR_INVALID;
        is_float = true;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        const char *e = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
        if (j->p == e)
            return PHX_ERR_INVALID;
        is_float = true;
    }
    if (!is_float)
        return parse_integer_digits(j, digits, ndigits, neg, out);
    char *text = phx_strndup(start, (size_t)(j->p - start));
    if (text == NULL)
        return PHX_ERR_NOMEM;
    double v = strtod(text, NULL);
    phx_free(text);
    return phx_term_new_float(out, v); /* out of range (inf): invalid */
}

static bool byte_int(const phx_term_t *t)
{
    return t->type == PHX_TERM_INTEGER && !t->u.integer.is_negative && t->u.integer.len <= 1;
}

static void free_items(phx_term_t **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        phx_term_free(items[i]);
    phx_free(items);
}

static int parse_array(jp_t *j, uint32_t depth, phx_term_t **out)
{
    phx_term_t **items = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return phx_term_new_list(out, NULL, 0);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            phx_term_t **p = phx_realloc(items, ncap * sizeof(*items));
            if (p == NULL) {
                rv = PHX_ERR_NOMEM;
                goto fail;
            }
            items = p, cap = ncap;
        }
        if ((rv = parse_value(j, depth + 1, &items[n])) != 0)
            goto fail;
        n++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            break;
        }
        rv = PHX_ERR_INVALID;
        goto fail;
    }
    /* term_to_binary writes such a list as STRING_EXT: keep it a charlist. */
    bool bytes = n <= 65535;
    for (size_t i = 0; bytes && i < n; i++)
        bytes = byte_int(items[i]);
    if (bytes) {
        uint8_t *b = phx_malloc(n);
        if (b == NULL) {
            rv = PHX_ERR_NOMEM;
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            b[i] = items[i]->u.integer.len ? items[i]->u.integer.mag[0] : 0;
        rv = phx_term_new_charlist(out, b, n);
        phx_free(b);
        if (rv != 0)
            goto fail;
        free_items(items, n);
        return 0;
    }
    rv = phx_term_new_list(out, items, n); /* takes the items */
    phx_free(items);
    return rv;
fail:
    free_items(items, n);
    return rv;
}

typedef struct {
    phx_term_t *key;
    phx_term_t *value;
    size_t idx;
} jpair_t;

static int jpair_cmp(const void *a, const void *b)
{
    const jpair_t *pa = a, *pb = b;
    int c = phx_term_compare(pa->key, pb->key);
    if (c != 0)
        return c;
    return pa->idx < pb->idx ? -1 : pa->idx > pb->idx;
}

static int parse_object(jp_t *j, uint32_t depth, phx_term_t **out)
{
    jpair_t *pairs = NULL;
    phx_term_pair_t *kept = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return phx_term_new_map(out, NULL, 0);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            jpair_t *p = phx_realloc(pairs, ncap * sizeof(*pairs));
            if (p == NULL) {
                rv = PHX_ERR_NOMEM;
                goto fail;
            }
            pairs = p, cap = ncap;
        }
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            rv = PHX_ERR_INVALID;
            goto fail;
        }
        if (j->nodes >= j->max_nodes) {
            rv = PHX_ERR_LIMIT;
            goto fail;
        }
        j->nodes++;
        j->p++;
        if ((rv = parse_string(j, &pairs[n].key)) != 0)
            goto fail;
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') {
            phx_term_free(pairs[n].key);
            rv = PHX_ERR_INVALID;
            goto fail;
        }
        j->p++;
        if ((rv = parse_value(j, depth + 1, &pairs[n].value)) != 0) {
            phx_term_free(pairs[n].key);
            goto fail;
        }
        pairs[n].idx = n;
        n++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        rv = PHX_ERR_INVALID;
        goto fail;
    }
    /* A repeated name keeps its last value (Jason's behaviour). */
    qsort(pairs, n, sizeof(*pairs), jpair_cmp);
    if ((kept = phx_malloc(n * sizeof(*kept))) == NULL) {
        rv = PHX_ERR_NOMEM;
        goto fail;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && phx_term_compare(pairs[i].key, pairs[i + 1].key) == 0) {
            phx_term_free(pairs[i].key);
            phx_term_free(pairs[i].value);
            continue;
        }
        kept[m].key = pairs[i].key;
        kept[m].value = pairs[i].value;
        m++;
    }
    phx_free(pairs);
    rv = phx_term_new_map(out, kept, m); /* takes keys and values */
    phx_free(kept);
    return rv;
fail:
    for (size_t i = 0; i < n; i++) {
        phx_term_free(pairs[i].key);
        phx_term_free(pairs[i].value);
    }
    phx_free(pairs);
    return rv;
}

static int parse_literal(jp_t *j, const char *word, phx_term_t **out)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return PHX_ERR_INVALID;
    j->p += n;
    return phx_term_new_atom(out, strcmp(word, "null") == 0 ? "nil" : word,
                             strcmp(word, "null") == 0 ? 3 : n);
}

static int parse_value(jp_t *j, uint32_t depth, phx_term_t **out)
{
    if (j->nodes >= j->max_nodes)
        return PHX_ERR_LIMIT;
    j->nodes++;
    skip_ws(j);
    if (j->p >= j->end)
        return PHX_ERR_INVALID;
    char c = *j->p;
    if (c == '{' || c == '[') {
        if (depth >= j->max_depth)
            return PHX_ERR_LIMIT;
        j->p++;
        return c == '{' ? parse_object(j, depth, out) : parse_array(j, depth, out);
    }
    if (c == '"') {
        j->p++;
        return parse_string(j, out);
    }
    if (c == 't')
        return parse_literal(j, "true", out);
    if (c == 'f')
        return parse_literal(j, "false", out);
    if (c == 'n')
        return parse_literal(j, "null", out);
    return parse_number(j, out);
}

int phx_json_to_term(const char *json, size_t len, const phx_etf_limits_t *limits, phx_term_t **out)
{
    jp_t j = {
        .p = json,
        .end = json + len,
        .max_depth = PHX_ETF_DEFAULT_MAX_DEPTH,
        .max_nodes = PHX_ETF_DEFAULT_MAX_NODES,
        .max_bignum_bytes = PHX_ETF_DEFAULT_MAX_BIGNUM_BYTES,
    };
    if (limits != NULL) {
        if (limits->max_depth)
            j.max_depth = limits->max_depth;
        if (limits->max_nodes)
            j.max_nodes = limits->max_nodes;
        if (limits->max_bignum_bytes)
            j.max_bignum_bytes = limits->max_bignum_bytes;
    }
    if (j.max_depth > PHX_ETF_HARD_MAX_DEPTH)
        j.max_depth = PHX_ETF_HARD_MAX_DEPTH;
    phx_term_t *t = NULL;
    int rv = parse_value(&j, 0, &t);
    if (rv != 0)
        return rv;
    skip_ws(&j);
    if (j.p != j.end) {
        phx_term_free(t);
        return PHX_ERR_INVALID;
    }
    *out = t;
    return 0;
}

/* ---- text (phx_term_to_text, phx_etf_text) ---- */

typedef struct {
    const uint8_t *p, *end;
    phx_buf_t *out; /* NULL: measure only */
} txt_t;

static int tput(txt_t *x, const char *s)
{
    return x->out ? phx_buf_append_str(x->out, s) : 0;
}

__attribute__((format(printf, 2, 3))) static int tprintf(txt_t *x, const char *fmt, ...)
{
    if (x->out == NULL)
        return 0;
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(buf) ? PHX_ERR_INVALID
                                             : phx_buf_append(x->out, buf, (size_t)n);
}

static bool tneed(const txt_t *x, size_t n)
{
    return (size_t)(x->end - x->p) >= n;
}

static uint32_t tu16(txt_t *x)
{
    uint32_t v = (uint32_t)x->p[0] << 8 | x->p[1];
    x->p += 2;
    return v;
}

static uint32_t tu32(txt_t *x)
{
    uint32_t v =
        (uint32_t)x->p[0] << 24 | (uint32_t)x->p[1] << 16 | (uint32_t)x->p[2] << 8 | x->p[3];
    x->p += 4;
    return v;
}

static bool is_simple_atom(const uint8_t *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        uint8_t c = s[i];
        bool last = i + 1 == n && (c == '?' || c == '!');
        if (!last && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '@'))
            return false;
    }
    return true;
}

/* A quoted string (UTF-8 text): \" \\ \n \t \r escaped, other controls
 * as \x... */
static int put_quoted(txt_t *x, const uint8_t *s, size_t n)
{
    int rv = tput(x, "\"");
    for (size_t i = 0; rv == 0 && i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\')
            rv = tprintf(x, "\\%c", c);
        else if (c == '\n')
            rv = tput(x, "\\n");
        else if (c == '\t')
            rv = tput(x, "\\t");
        else if (c == '\r')
            rv = tput(x, "\\r");
        else if (c < 0x20 || c == 0x7f)
            rv = tprintf(x, "\\x%02X", c);
        else if (x->out)
            rv = phx_buf_append_byte(x->out, c);
    }
    return rv ? rv : tput(x, "\"");
}

/* An atom's text (tag already read): nil/true/false bare, :name, :"text". */
static int text_atom(txt_t *x, uint8_t tag, bool bare)
{
    size_t n;
    if (tag == 'd' || tag == 'v') {
        if (!tneed(x, 2))
            return PHX_ERR_INVALID;
        n = tu16(x);
    } else if (tag == 's' || tag == 'w') {
        if (!tneed(x, 1))
            return PHX_ERR_INVALID;
        n = *x->p++;
    } else {
        return PHX_ERR_INVALID;
    }
    if (!tneed(x, n))
        return PHX_ERR_INVALID;
    const uint8_t *s = x->p;
    x->p += n;
    /* Latin-1 atoms ('d', 's') with bytes >= 0x80 print as their bytes'
     * codes would be ambiguous; print them quoted with \x escapes. */
    bool utf8 = (tag == 'v' || tag == 'w') ? phx_utf8_valid(s, n) : true;
    for (size_t i = 0; utf8 && (tag == 'd' || tag == 's') && i < n; i++)
        utf8 = s[i] < 0x80;
    if (!utf8 && (tag == 'v' || tag == 'w'))
        return PHX_ERR_INVALID;
    if (bare || ((n == 3 && memcmp(s, "nil", 3) == 0) || (n == 4 && memcmp(s, "true", 4) == 0) ||
                 (n == 5 && memcmp(s, "false", 5) == 0)))
        return x->out ? phx_buf_append(x->out, s, n) : 0;
    if (is_simple_atom(s, n)) {
        int rv = tput(x, ":");
        return rv ? rv : (x->out ? phx_buf_append(x->out, s, n) : 0);
    }
    int rv = tput(x, ":");
    return rv ? rv : put_quoted(x, s, n);
}

/* The node atom of a pid, port or reference, bare. */
static int text_node(txt_t *x)
{
    if (!tneed(x, 1))
        return PHX_ERR_INVALID;
    uint8_t tag = *x->p++;
    return text_atom(x, tag, true);
}

static int text_term(txt_t *x, uint32_t depth);

static int text_items(txt_t *x, uint32_t depth, size_t count, const char *open, const char *close)
{
    int rv = tput(x, open);
    for (size_t i = 0; rv == 0 && i < count; i++) {
        if (i > 0)
            rv = tput(x, ", ");
        if (rv == 0)
            rv = text_term(x, depth);
    }
    return rv ? rv : tput(x, close);
}

static int text_bytes(txt_t *x, const uint8_t *s, size_t n, unsigned last_bits)
{
    bool printable = last_bits == 0 && phx_utf8_valid(s, n);
    if (printable)
        return put_quoted(x, s, n);
    int rv = tput(x, "<<");
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (i > 0)
            rv = tput(x, ", ");
        if (rv == 0 && i + 1 == n && last_bits != 0)
            rv = tprintf(x, "%u::size(%u)", (unsigned)(s[i] >> (8 - last_bits)), last_bits);
        else if (rv == 0)
            rv = tprintf(x, "%u", s[i]);
    }
    return rv ? rv : tput(x, ">>");
}

static int text_number(txt_t *x, phx_term_t *t, int rv)
{
    if (rv != 0)
        return rv;
    if (x->out)
        rv = t->type == PHX_TERM_INTEGER ? phx_term_int_to_decimal(t, x->out) : to_json(t, x->out);
    phx_term_free(t);
    return rv;
}

static int text_term(txt_t *x, uint32_t depth)
{
    if (!tneed(x, 1))
        return PHX_ERR_INVALID;
    uint8_t tag = *x->p++;
    phx_term_t *t = NULL;
    int rv;
    size_t n;
    switch (tag) {
    case 'a':
        if (!tneed(x, 1))
            return PHX_ERR_INVALID;
        return tprintf(x, "%u", *x->p++);
    case 'b':
        if (!tneed(x, 4))
            return PHX_ERR_INVALID;
        return tprintf(x, "%d", (int32_t)tu32(x));
    case 'n':
    case 'o': {
        if (!tneed(x, tag == 'n' ? 2 : 5))
            return PHX_ERR_INVALID;
        n = tag == 'n' ? *x->p++ : tu32(x);
        uint8_t sign = *x->p++;
        if (sign > 1 || n > 1024 || !tneed(x, n))
            return PHX_ERR_INVALID;
        x->p += n;
        rv = phx_term_new_bigint(&t, sign == 1, x->p - n, n);
        return text_number(x, t, rv);
    }
    case 'F': {
        if (!tneed(x, 8))
            return PHX_ERR_INVALID;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | x->p[i];
        x->p += 8;
        double v;
        memcpy(&v, &bits, sizeof(v));
        rv = phx_term_new_float(&t, v);
        return text_number(x, t, rv);
    }
    case 'c': {
        if (!tneed(x, 31))
            return PHX_ERR_INVALID;
        char buf[32];
        memcpy(buf, x->p, 31);
        buf[31] = '\0';
        x->p += 31;
        char *end;
        double v = strtod(buf, &end);
        if (end == buf)
            return PHX_ERR_INVALID;
        rv = phx_term_new_float(&t, v);
        return text_number(x, t, rv);
    }
    case 'd':
    case 's':
    case 'v':
    case 'w':
        return text_atom(x, tag, false);
    case 'h':
    case 'i':
        if (depth == 0)
            return PHX_ERR_LIMIT;
        if (!tneed(x, tag == 'h' ? 1 : 4))
            return PHX_ERR_INVALID;
        n = tag == 'h' ? *x->p++ : tu32(x);
        if (!tneed(x, n))
            return PHX_ERR_INVALID;
        return text_items(x, depth - 1, n, "{", "}");
    case 'j':
        return tput(x, "[]");
    case 'l': {
        if (depth == 0)
            return PHX_ERR_LIMIT;
        if (!tneed(x, 4))
            return PHX_ERR_INVALID;
        n = tu32(x);
        if (!tneed(x, n + 1))
            return PHX_ERR_INVALID;
        rv = text_items(x, depth - 1, n, "[", "");
        if (rv == 0 && tneed(x, 1) && *x->p == 'j')
            x->p++;
        else if (rv == 0 && (rv = tput(x, " | ")) == 0)
            rv = text_term(x, depth - 1);
        return rv ? rv : tput(x, "]");
    }
    case 'k':
        if (!tneed(x, 2))
            return PHX_ERR_INVALID;
        n = tu16(x);
        if (!tneed(x, n))
            return PHX_ERR_INVALID;
        rv = tput(x, "[");
        for (size_t i = 0; rv == 0 && i < n; i++)
            rv = tprintf(x, i ? ", %u" : "%u", x->p[i]);
        x->p += n;
        return rv ? rv : tput(x, "]");
    case 'm':
    case 'M': {
        if (!tneed(x, tag == 'm' ? 4 : 5))
            return PHX_ERR_INVALID;
        n = tu32(x);
        unsigned bits = 0;
        if (tag == 'M') {
            bits = *x->p++;
            if (bits < 1 || bits > 8 || n == 0)
                return PHX_ERR_INVALID;
            if (bits == 8)
                bits = 0;
        }
        if (!tneed(x, n))
            return PHX_ERR_INVALID;
        x->p += n;
        return text_bytes(x, x->p - n, n, bits);
    }
    case 't':
        if (depth == 0)
            return PHX_ERR_LIMIT;
        if (!tneed(x, 4))
            return PHX_ERR_INVALID;
        n = tu32(x);
        if (n > (size_t)(x->end - x->p) / 2)
            return PHX_ERR_INVALID;
        rv = tput(x, "%{");
        for (size_t i = 0; rv == 0 && i < n; i++) {
            if (i > 0)
                rv = tput(x, ", ");
            if (rv == 0)
                rv = text_term(x, depth - 1);
            if (rv == 0)
                rv = tput(x, " => ");
            if (rv == 0)
                rv = text_term(x, depth - 1);
        }
        return rv ? rv : tput(x, "}");
    case 'X': /* NEW_PID_EXT: node, id, serial, creation (4 bytes) */
    case 'g': /* PID_EXT: the same with a 1-byte creation */
        if ((rv = tput(x, "#PID<")) != 0 || (rv = text_node(x)) != 0)
            return rv;
        if (!tneed(x, tag == 'X' ? 12 : 9))
            return PHX_ERR_INVALID;
        {
            uint32_t id = tu32(x), serial = tu32(x);
            x->p += tag == 'X' ? 4 : 1;
            return tprintf(x, ".%" PRIu32 ".%" PRIu32 ">", id, serial);
        }
    case 'Y': /* NEW_PORT_EXT: node, id (4), creation (4) */
    case 'f': /* PORT_EXT: node, id (4), creation (1) */
    case 'x': /* V4_PORT_EXT: node, id (8), creation (4) */
        if ((rv = tput(x, "#Port<")) != 0 || (rv = text_node(x)) != 0)
            return rv;
        if (!tneed(x, tag == 'Y' ? 8 : tag == 'f' ? 5 : 12))
            return PHX_ERR_INVALID;
        {
            uint64_t id = tag == 'x' ? (uint64_t)tu32(x) << 32 : 0;
            id |= tu32(x);
            x->p += tag == 'f' ? 1 : 4;
            return tprintf(x, ".%" PRIu64 ">", id);
        }
    case 'Z': /* NEWER_REFERENCE_EXT: len (2), node, creation (4), len words */
    case 'r': /* NEW_REFERENCE_EXT: len (2), node, creation (1), len words */
    case 'e': /* REFERENCE_EXT: node, id (4), creation (1) */
    {
        size_t words = 1;
        if (tag != 'e') {
            if (!tneed(x, 2))
                return PHX_ERR_INVALID;
            words = tu16(x);
            if (words < 1 || words > 5)
                return PHX_ERR_INVALID;
        }
        if ((rv = tput(x, "#Reference<")) != 0 || (rv = text_node(x)) != 0)
            return rv;
        size_t creation = tag == 'Z' ? 4 : 1;
        if (!tneed(x, words * 4 + creation))
            return PHX_ERR_INVALID;
        if (tag != 'e')
            x->p += creation;
        const uint8_t *w = x->p;
        x->p += words * 4;
        if (tag == 'e')
            x->p += creation;
        /* Erlang prints the most significant word first. */
        for (size_t i = words; rv == 0 && i-- > 0;) {
            const uint8_t *q = w + i * 4;
            rv = tprintf(x, ".%" PRIu32,
                         (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]);
        }
        return rv ? rv : tput(x, ">");
    }
    case 'q': /* EXPORT_EXT: module, function, arity (SMALL_INTEGER_EXT) */
        if ((rv = tput(x, "&")) != 0 || !tneed(x, 1))
            return rv ? rv : PHX_ERR_INVALID;
        tag = *x->p++;
        if ((rv = text_atom(x, tag, false)) != 0 || (rv = tput(x, ".")) != 0 || !tneed(x, 1))
            return rv ? rv : PHX_ERR_INVALID;
        tag = *x->p++;
        if ((rv = text_atom(x, tag, true)) != 0 || !tneed(x, 2) || x->p[0] != 'a')
            return rv ? rv : PHX_ERR_INVALID;
        x->p += 2;
        return tprintf(x, "/%u", x->p[-1]);
    case 'p': { /* NEW_FUN_EXT: size (4, counting itself), arity, uniq (16),
                 * index (4), free count (4), module, old index, old uniq,
                 * pid, free variables */
        if (!tneed(x, 4))
            return PHX_ERR_INVALID;
        const uint8_t *s = x->p;
        size_t size = tu32(x);
        if (size < 4 + 1 + 16 + 4 + 4 + 2 || !tneed(x, size - 4))
            return PHX_ERR_INVALID;
        txt_t in = {.p = x->p, .end = s + size, .out = x->out};
        unsigned arity = *in.p++;
        in.p += 16;
        uint32_t index = tu32(&in);
        in.p += 4;
        rv = tprintf(x, "#Function<%" PRIu32 "/%u in ", index, arity);
        uint8_t mtag = *in.p++;
        if (rv == 0)
            rv = text_atom(&in, mtag, false);
        x->p = s + size;
        return rv ? rv : tput(x, ">");
    }
    }
    /* Compressed terms, old funs, LOCAL_EXT, atom cache refs, unknown. */
    return PHX_ERR_INVALID;
}

ssize_t phx_etf_text(const uint8_t *p, size_t len, uint32_t max_depth, phx_buf_t *out)
{
    txt_t x = {.p = p, .end = p + len, .out = out};
    size_t mark = out ? out->len : 0;
    int rv = text_term(&x, max_depth);
    if (rv != 0) {
        if (out && out->data) {
            out->len = mark;
            out->data[mark] = '\0';
        }
        return rv;
    }
    return (ssize_t)(x.p - p);
}

int phx_term_to_text(const phx_term_t *t, phx_buf_t *out)
{
    phx_buf_t etf = {0};
    int rv = phx_etf_encode_term(t, 0, &etf);
    if (rv == 0) {
        ssize_t n = phx_etf_text(etf.data, etf.len, PHX_ETF_HARD_MAX_DEPTH, out);
        rv = n < 0 ? (int)n : (size_t)n == etf.len ? 0 : PHX_ERR_INVALID;
    }
    phx_buf_dispose(&etf);
    return rv;
}
