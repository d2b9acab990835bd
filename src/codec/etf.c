/* etf.c: the term tree, Erlang term order, and the ETF decoder and encoder
 * (docs/protocol.md Appendix A). token.c decodes authenticated payloads with it
 * and encodes the signed tuple. Owns nothing beyond the trees it returns;
 * the JSON conversions live in etf_json.c. */
#include "etf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"
#include "utf8.h"

/* ---- nodes ---- */

/* Returns a node with `extra` bytes of inline storage plus a NUL after them
 * (pointed to by u.bytes.data / u.integer.mag), or NULL. */
static phx_term_t *node_new(phx_term_type_t type, size_t extra)
{
    if (extra > SIZE_MAX - sizeof(phx_term_t) - 1)
        return NULL;
    phx_term_t *t = phx_malloc(sizeof(*t) + extra + 1);
    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->type = type;
    uint8_t *bytes = (uint8_t *)(t + 1);
    bytes[extra] = '\0';
    /* Containers get their arrays from the caller; only these use the
     * inline storage (the union members overlap). */
    if (type == PHX_TERM_INTEGER)
        t->u.integer.mag = bytes;
    else if (type == PHX_TERM_ATOM || type == PHX_TERM_BINARY || type == PHX_TERM_CHARLIST ||
             type == PHX_TERM_OTHER)
        t->u.bytes.data = bytes;
    return t;
}

static uint8_t *inline_bytes(phx_term_t *t)
{
    return (uint8_t *)(t + 1);
}

void phx_term_free(phx_term_t *t)
{
    if (t == NULL)
        return;
    switch (t->type) {
    case PHX_TERM_LIST:
    case PHX_TERM_TUPLE:
        for (size_t i = 0; i < t->u.seq.count; i++)
            phx_term_free(t->u.seq.items[i]);
        phx_free(t->u.seq.items);
        break;
    case PHX_TERM_MAP:
        for (size_t i = 0; i < t->u.map.count; i++) {
            phx_term_free(t->u.map.pairs[i].key);
            phx_term_free(t->u.map.pairs[i].value);
        }
        phx_free(t->u.map.pairs);
        break;
    default:
        break;
    }
    phx_free(t);
}

/* ---- constructors ---- */

int phx_term_new_bigint(phx_term_t **out, bool is_negative, const uint8_t *mag, size_t len)
{
    while (len > 0 && mag[len - 1] == 0)
        len--;
    phx_term_t *t = node_new(PHX_TERM_INTEGER, len);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    if (len)
        memcpy(inline_bytes(t), mag, len);
    t->u.integer.len = len;
    t->u.integer.is_negative = is_negative && len > 0;
    *out = t;
    return 0;
}

int phx_term_new_int(phx_term_t **out, int64_t v)
{
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint8_t mag[8];
    for (int i = 0; i < 8; i++)
        mag[i] = (uint8_t)(m >> (8 * i));
    return phx_term_new_bigint(out, v < 0, mag, 8);
}

int phx_term_new_float(phx_term_t **out, double v)
{
    if (!isfinite(v))
        return PHX_ERR_INVALID;
    phx_term_t *t = node_new(PHX_TERM_FLOAT, 0);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    t->u.f = v;
    *out = t;
    return 0;
}

static int new_bytes(phx_term_t **out, phx_term_type_t type, const void *data, size_t len)
{
    phx_term_t *t = node_new(type, len);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    if (len)
        memcpy(inline_bytes(t), data, len);
    t->u.bytes.len = len;
    *out = t;
    return 0;
}

/* Counts the code points of valid UTF-8. */
static size_t utf8_count(const uint8_t *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += (s[i] & 0xC0) != 0x80;
    return n;
}

int phx_term_new_atom(phx_term_t **out, const char *text, size_t len)
{
    if (!phx_utf8_valid((const uint8_t *)text, len) || utf8_count((const uint8_t *)text, len) > 255)
        return PHX_ERR_INVALID;
    return new_bytes(out, PHX_TERM_ATOM, text, len);
}

int phx_term_new_binary(phx_term_t **out, const void *data, size_t len)
{
    return new_bytes(out, PHX_TERM_BINARY, data, len);
}

static int new_seq(phx_term_t **out, phx_term_type_t type, phx_term_t **items, size_t count)
{
    phx_term_t *t = node_new(type, 0);
    phx_term_t **copy = NULL;
    if (t == NULL)
        goto fail;
    if (count > 0) {
        if (count > SIZE_MAX / sizeof(*copy) || (copy = phx_malloc(count * sizeof(*copy))) == NULL)
            goto fail_node;
        memcpy(copy, items, count * sizeof(*copy));
    }
    t->u.seq.items = copy;
    t->u.seq.count = count;
    *out = t;
    return 0;
fail_node:
    phx_free(t);
fail:
    for (size_t i = 0; i < count; i++)
        phx_term_free(items[i]);
    return PHX_ERR_NOMEM;
}

int phx_term_new_charlist(phx_term_t **out, const uint8_t *bytes, size_t len)
{
    if (len == 0)
        return new_seq(out, PHX_TERM_LIST, NULL, 0);
    return new_bytes(out, PHX_TERM_CHARLIST, bytes, len);
}

int phx_term_new_tuple(phx_term_t **out, phx_term_t **items, size_t count)
{
    return new_seq(out, PHX_TERM_TUPLE, items, count);
}

int phx_term_new_list(phx_term_t **out, phx_term_t **items, size_t count)
{
    return new_seq(out, PHX_TERM_LIST, items, count);
}

static int pair_cmp(const void *a, const void *b)
{
    const phx_term_pair_t *pa = a, *pb = b;
    return phx_term_compare(pa->key, pb->key);
}

/* Sorts pairs by key and reports whether two keys are equal. */
static bool sort_pairs_unique(phx_term_pair_t *pairs, size_t count)
{
    if (count > 1)
        qsort(pairs, count, sizeof(*pairs), pair_cmp);
    for (size_t i = 1; i < count; i++)
        if (phx_term_compare(pairs[i - 1].key, pairs[i].key) == 0)
            return false;
    return true;
}

static void free_pairs(phx_term_pair_t *pairs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        phx_term_free(pairs[i].key);
        phx_term_free(pairs[i].value);
    }
}

/* Builds a map node owning `pairs` (a phx_malloc'd array, taken with its
 * contents in every case). */
static int map_adopt(phx_term_t **out, phx_term_pair_t *pairs, size_t count)
{
    if (!sort_pairs_unique(pairs, count)) {
        free_pairs(pairs, count);
        phx_free(pairs);
        return PHX_ERR_INVALID;
    }
    phx_term_t *t = node_new(PHX_TERM_MAP, 0);
    if (t == NULL) {
        free_pairs(pairs, count);
        phx_free(pairs);
        return PHX_ERR_NOMEM;
    }
    t->u.map.pairs = pairs;
    t->u.map.count = count;
    *out = t;
    return 0;
}

int phx_term_new_map(phx_term_t **out, phx_term_pair_t *pairs, size_t count)
{
    phx_term_pair_t *copy = NULL;
    if (count > 0) {
        if (count > SIZE_MAX / sizeof(*copy) ||
            (copy = phx_malloc(count * sizeof(*copy))) == NULL) {
            free_pairs(pairs, count);
            return PHX_ERR_NOMEM;
        }
        memcpy(copy, pairs, count * sizeof(*copy));
    }
    return map_adopt(out, copy, count);
}

/* ---- accessors ---- */

bool phx_term_get_int64(const phx_term_t *t, int64_t *out)
{
    if (t == NULL || t->type != PHX_TERM_INTEGER || t->u.integer.len > 8)
        return false;
    uint64_t m = 0;
    for (size_t i = 0; i < t->u.integer.len; i++)
        m |= (uint64_t)t->u.integer.mag[i] << (8 * i);
    if (!t->u.integer.is_negative) {
        if (m > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX + 1)
            return false;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    }
    return true;
}

bool phx_term_is_atom(const phx_term_t *t, const char *text)
{
    size_t len = strlen(text);
    return t != NULL && t->type == PHX_TERM_ATOM && t->u.bytes.len == len &&
           memcmp(t->u.bytes.data, text, len) == 0;
}

const phx_term_t *phx_term_map_get(const phx_term_t *map, const char *key, size_t len)
{
    if (map == NULL || map->type != PHX_TERM_MAP)
        return NULL;
    static const phx_term_type_t order[] = {PHX_TERM_BINARY, PHX_TERM_ATOM};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < map->u.map.count; i++) {
            const phx_term_t *kt = map->u.map.pairs[i].key;
            if (kt->type == order[k] && kt->u.bytes.len == len &&
                (len == 0 || memcmp(kt->u.bytes.data, key, len) == 0))
                return map->u.map.pairs[i].value;
        }
    }
    return NULL;
}

/* ---- term order ---- */

static int sign3(long long v)
{
    return (v > 0) - (v < 0);
}

/* Compares two little-endian magnitudes without high zero bytes. */
static int mag_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    for (size_t i = alen; i-- > 0;)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

static int int_sign(const phx_term_t *t)
{
    return t->u.integer.len == 0 ? 0 : t->u.integer.is_negative ? -1 : 1;
}

static int cmp_int_int(const phx_term_t *a, const phx_term_t *b)
{
    int sa = int_sign(a), sb = int_sign(b);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    int c = mag_cmp(a->u.integer.mag, a->u.integer.len, b->u.integer.mag, b->u.integer.len);
    return sa < 0 ? -c : c;
}

/* Map-key order (erts's exact comparison): every integer sorts before
 * every float, whatever their values; floats compare by value. */
static int cmp_numbers(const phx_term_t *a, const phx_term_t *b)
{
    if (a->type != b->type)
        return a->type == PHX_TERM_INTEGER ? -1 : 1;
    if (a->type == PHX_TERM_INTEGER)
        return cmp_int_int(a, b);
    return a->u.f < b->u.f ? -1 : a->u.f > b->u.f ? 1 : 0;
}

static int type_rank(const phx_term_t *t)
{
    switch (t->type) {
    case PHX_TERM_INTEGER:
    case PHX_TERM_FLOAT:
        return 0;
    case PHX_TERM_ATOM:
        return 1;
    case PHX_TERM_TUPLE:
        return 2;
    case PHX_TERM_MAP:
        return 3;
    case PHX_TERM_LIST:
    case PHX_TERM_CHARLIST:
        return 4;
    case PHX_TERM_BINARY:
        return 5;
    case PHX_TERM_OTHER:
        return 6; /* display only: ordered after everything, by its bytes */
    }
    return 7;
}

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return sign3(c);
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static size_t list_len(const phx_term_t *t)
{
    return t->type == PHX_TERM_CHARLIST ? t->u.bytes.len : t->u.seq.count;
}

/* Returns element i of a list; a charlist's element is built in `tmp`. */
static const phx_term_t *list_item(const phx_term_t *l, size_t i, phx_term_t *tmp)
{
    if (l->type != PHX_TERM_CHARLIST)
        return l->u.seq.items[i];
    tmp->type = PHX_TERM_INTEGER;
    tmp->u.integer.is_negative = false;
    tmp->u.integer.mag = &l->u.bytes.data[i];
    tmp->u.integer.len = l->u.bytes.data[i] != 0;
    return tmp;
}

static int cmp_lists(const phx_term_t *a, const phx_term_t *b)
{
    if (a->type == PHX_TERM_CHARLIST && b->type == PHX_TERM_CHARLIST)
        return cmp_bytes(a->u.bytes.data, a->u.bytes.len, b->u.bytes.data, b->u.bytes.len);
    size_t alen = list_len(a), blen = list_len(b);
    for (size_t i = 0; i < alen && i < blen; i++) {
        phx_term_t ta, tb;
        int c = phx_term_compare(list_item(a, i, &ta), list_item(b, i, &tb));
        if (c != 0)
            return c;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int phx_term_compare(const phx_term_t *a, const phx_term_t *b)
{
    int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (a->type) {
    case PHX_TERM_INTEGER:
    case PHX_TERM_FLOAT:
        return cmp_numbers(a, b);
    case PHX_TERM_ATOM:
    case PHX_TERM_BINARY:
    case PHX_TERM_OTHER:
        /* UTF-8 byte order is code point order, so atoms compare by text. */
        return cmp_bytes(a->u.bytes.data, a->u.bytes.len, b->u.bytes.data, b->u.bytes.len);
    case PHX_TERM_TUPLE:
        if (a->u.seq.count != b->u.seq.count)
            return a->u.seq.count < b->u.seq.count ? -1 : 1;
        for (size_t i = 0; i < a->u.seq.count; i++) {
            int c = phx_term_compare(a->u.seq.items[i], b->u.seq.items[i]);
            if (c != 0)
                return c;
        }
        return 0;
    case PHX_TERM_MAP:
        /* By size, then keys in order, then values in key order. */
        if (a->u.map.count != b->u.map.count)
            return a->u.map.count < b->u.map.count ? -1 : 1;
        for (size_t i = 0; i < a->u.map.count; i++) {
            int c = phx_term_compare(a->u.map.pairs[i].key, b->u.map.pairs[i].key);
            if (c != 0)
                return c;
        }
        for (size_t i = 0; i < a->u.map.count; i++) {
            int c = phx_term_compare(a->u.map.pairs[i].value, b->u.map.pairs[i].value);
            if (c != 0)
                return c;
        }
        return 0;
    case PHX_TERM_LIST:
    case PHX_TERM_CHARLIST:
        return cmp_lists(a, b);
    }
    return 0;
}

/* ---- decoder ---- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t max_depth;
    uint32_t max_nodes;
    uint32_t max_bignum_bytes;
    uint32_t nodes;
    bool keep_other;
} dec_t;

static size_t left(const dec_t *d)
{
    return (size_t)(d->end - d->p);
}

static uint32_t rd_u16(dec_t *d)
{
    uint32_t v = (uint32_t)d->p[0] << 8 | d->p[1];
    d->p += 2;
    return v;
}

static uint32_t rd_u32(dec_t *d)
{
    uint32_t v =
        (uint32_t)d->p[0] << 24 | (uint32_t)d->p[1] << 16 | (uint32_t)d->p[2] << 8 | d->p[3];
    d->p += 4;
    return v;
}

static int decode_term(dec_t *d, uint32_t depth, phx_term_t **out);

/* decode_seq's answer for an improper list under keep_other. */
#define IMPROPER 1

/* keep_other: the term at d->p, of a kind phxd does not model, as one
 * PHX_TERM_OTHER node holding its bytes (phx_etf_text validates them). */
static int decode_other(dec_t *d, uint32_t depth, phx_term_t **out)
{
    if (depth >= d->max_depth)
        return PHX_ERR_LIMIT;
    ssize_t n = phx_etf_text(d->p, left(d), d->max_depth - depth, NULL);
    if (n < 0)
        return (int)n;
    phx_term_t *t = node_new(PHX_TERM_OTHER, (size_t)n);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    memcpy(inline_bytes(t), d->p, (size_t)n);
    t->u.bytes.len = (size_t)n;
    d->p += n;
    *out = t;
    return 0;
}

static int decode_bignum(dec_t *d, size_t n, phx_term_t **out)
{
    if (n > d->max_bignum_bytes)
        return PHX_ERR_LIMIT;
    if (left(d) < 1 + n)
        return PHX_ERR_INVALID;
    bool is_negative = *d->p++ != 0;
    int rv = phx_term_new_bigint(out, is_negative, d->p, n);
    d->p += n;
    return rv;
}

/* FLOAT_EXT: 31 bytes of "%.20e" text padded with NULs. Only a plain
 * decimal number is accepted (no "inf", "nan", hex or spaces). */
static int decode_float_text(dec_t *d, phx_term_t **out)
{
    char text[32];
    memcpy(text, d->p, 31);
    text[31] = '\0';
    d->p += 31;
    size_t n = strlen(text);
    for (size_t i = n; i < 31; i++)
        if (text[i] != '\0')
            return PHX_ERR_INVALID;
    size_t i = 0;
    if (text[i] == '+' || text[i] == '-')
        i++;
    size_t digits = 0;
    while (text[i] >= '0' && text[i] <= '9')
        i++, digits++;
    if (text[i] == '.') {
        i++;
        while (text[i] >= '0' && text[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return PHX_ERR_INVALID;
    if (text[i] == 'e' || text[i] == 'E') {
        i++;
        if (text[i] == '+' || text[i] == '-')
            i++;
        size_t exp_digits = 0;
        while (text[i] >= '0' && text[i] <= '9')
            i++, exp_digits++;
        if (exp_digits == 0)
            return PHX_ERR_INVALID;
    }
    if (i != n)
        return PHX_ERR_INVALID;
    return phx_term_new_float(out, strtod(text, NULL));
}

static int decode_atom(dec_t *d, size_t len, bool is_utf8, phx_term_t **out)
{
    if (left(d) < len)
        return PHX_ERR_INVALID;
    const uint8_t *s = d->p;
    d->p += len;
    if (is_utf8)
        return phx_term_new_atom(out, (const char *)s, len);
    if (len > 255)
        return PHX_ERR_INVALID;
    /* Latin-1 to UTF-8: bytes >= 0x80 take two bytes. */
    uint8_t text[510];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x80) {
            text[n++] = s[i];
        } else {
            text[n++] = (uint8_t)(0xC0 | s[i] >> 6);
            text[n++] = (uint8_t)(0x80 | (s[i] & 0x3F));
        }
    }
    return new_bytes(out, PHX_TERM_ATOM, text, n);
}

/* Decodes `count` elements into a new array grown as elements arrive (the
 * count is untrusted; the caller has checked it against the input left). */
static int decode_items(dec_t *d, uint32_t depth, size_t count, phx_term_t ***items_out)
{
    phx_term_t **items = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    while (n < count) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            if (ncap > count)
                ncap = count;
            phx_term_t **p = phx_realloc(items, ncap * sizeof(*items));
            if (p == NULL) {
                rv = PHX_ERR_NOMEM;
                goto fail;
            }
            items = p;
            cap = ncap;
        }
        if ((rv = decode_term(d, depth, &items[n])) != 0)
            goto fail;
        n++;
    }
    *items_out = items;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        phx_term_free(items[i]);
    phx_free(items);
    return rv;
}

static int decode_seq(dec_t *d, uint32_t depth, phx_term_type_t type, size_t count,
                      phx_term_t **out)
{
    if (depth >= d->max_depth)
        return PHX_ERR_LIMIT;
    /* Every element takes at least one byte (a list also needs its tail). */
    if (count > left(d) || (type == PHX_TERM_LIST && count + 1 > left(d)))
        return PHX_ERR_INVALID;
    phx_term_t **items = NULL;
    int rv = decode_items(d, depth + 1, count, &items);
    if (rv != 0)
        return rv;
    if (type == PHX_TERM_LIST) {
        /* Only proper lists: the tail must be NIL_EXT (IMPROPER tells
         * decode_term, which may keep the list whole as PHX_TERM_OTHER). */
        if (left(d) < 1) {
            rv = PHX_ERR_INVALID;
            goto fail;
        }
        if (*d->p != 'j') {
            /* A well-formed tail that is not [] is a term phxd does not
             * hold (PHX_ERR_DATA); a malformed one is malformed. */
            ssize_t n = d->keep_other ? 0 : phx_etf_text(d->p, left(d), d->max_depth - depth, NULL);
            rv = d->keep_other ? IMPROPER : n < 0 ? (int)n : PHX_ERR_DATA;
            goto fail;
        }
        d->p++;
    }
    phx_term_t *t = node_new(type, 0);
    if (t == NULL) {
        rv = PHX_ERR_NOMEM;
        goto fail;
    }
    t->u.seq.items = items;
    t->u.seq.count = count;
    *out = t;
    return 0;
fail:
    for (size_t i = 0; i < count; i++)
        phx_term_free(items[i]);
    phx_free(items);
    return rv;
}

static int decode_map(dec_t *d, uint32_t depth, size_t count, phx_term_t **out)
{
    if (depth >= d->max_depth)
        return PHX_ERR_LIMIT;
    if (count > left(d) / 2)
        return PHX_ERR_INVALID;
    phx_term_pair_t *pairs = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    while (n < count) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            if (ncap > count)
                ncap = count;
            phx_term_pair_t *p = phx_realloc(pairs, ncap * sizeof(*pairs));
            if (p == NULL) {
                rv = PHX_ERR_NOMEM;
                goto fail;
            }
            pairs = p;
            cap = ncap;
        }
        pairs[n].value = NULL;
        if ((rv = decode_term(d, depth + 1, &pairs[n].key)) != 0)
            goto fail;
        if ((rv = decode_term(d, depth + 1, &pairs[n].value)) != 0) {
            phx_term_free(pairs[n].key);
            goto fail;
        }
        n++;
    }
    return map_adopt(out, pairs, n);
fail:
    free_pairs(pairs, n);
    phx_free(pairs);
    return rv;
}

static int decode_term(dec_t *d, uint32_t depth, phx_term_t **out)
{
    if (d->nodes >= d->max_nodes)
        return PHX_ERR_LIMIT;
    d->nodes++;
    if (left(d) < 1)
        return PHX_ERR_INVALID;
    const uint8_t *start = d->p;
    uint8_t tag = *d->p++;
    /* Bytes of fixed header after the tag, plus one; 0 marks a refused
     * tag: compressed, bitstrings, pids, ports, references, funs, exports,
     * LOCAL_EXT, atom cache refs and unknown tags. */
    static const uint8_t head_plus_one[256] = {
        ['a'] = 2, ['s'] = 2, ['w'] = 2, ['h'] = 2,  ['d'] = 3, ['v'] = 3,
        ['k'] = 3, ['n'] = 3, ['b'] = 5, ['i'] = 5,  ['l'] = 5, ['m'] = 5,
        ['t'] = 5, ['o'] = 6, ['F'] = 9, ['c'] = 32, ['j'] = 1,
    };
    if (head_plus_one[tag] == 0) {
        /* Pids, ports, references, funs, exports and bitstrings are terms
         * phxd does not hold (PHX_ERR_DATA); other tags are malformed. */
        static const char unmodeled[] = "XgYfxZrepqMu";
        d->p = start;
        if (!d->keep_other) {
            if (tag == 0 || memchr(unmodeled, tag, sizeof(unmodeled) - 1) == NULL)
                return PHX_ERR_INVALID;
            ssize_t n = phx_etf_text(d->p, left(d), d->max_depth - depth, NULL);
            return n < 0 ? (int)n : PHX_ERR_DATA;
        }
        return decode_other(d, depth, out);
    }
    size_t head = head_plus_one[tag] - 1u;
    if (left(d) < head)
        return PHX_ERR_INVALID;
    switch (tag) {
    case 'a':
        return phx_term_new_int(out, *d->p++);
    case 'b':
        return phx_term_new_int(out, (int32_t)rd_u32(d));
    case 'n': {
        size_t n = *d->p++;
        return decode_bignum(d, n, out);
    }
    case 'o': {
        size_t n = rd_u32(d);
        return decode_bignum(d, n, out);
    }
    case 'F': {
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | d->p[i];
        d->p += 8;
        double v;
        memcpy(&v, &bits, sizeof(v));
        return phx_term_new_float(out, v);
    }
    case 'c':
        return decode_float_text(d, out);
    case 'd':
        return decode_atom(d, rd_u16(d), false, out);
    case 's':
        return decode_atom(d, *d->p++, false, out);
    case 'v':
        return decode_atom(d, rd_u16(d), true, out);
    case 'w':
        return decode_atom(d, *d->p++, true, out);
    case 'h':
        return decode_seq(d, depth, PHX_TERM_TUPLE, *d->p++, out);
    case 'i':
        return decode_seq(d, depth, PHX_TERM_TUPLE, rd_u32(d), out);
    case 'l': {
        int rv = decode_seq(d, depth, PHX_TERM_LIST, rd_u32(d), out);
        if (rv != IMPROPER)
            return rv;
        d->p = start;
        return decode_other(d, depth, out);
    }
    case 'j':
        return new_seq(out, PHX_TERM_LIST, NULL, 0);
    case 'k': {
        size_t n = rd_u16(d);
        if (left(d) < n)
            return PHX_ERR_INVALID;
        d->p += n;
        return phx_term_new_charlist(out, d->p - n, n);
    }
    case 'm': {
        size_t n = rd_u32(d);
        if (left(d) < n)
            return PHX_ERR_INVALID;
        d->p += n;
        return phx_term_new_binary(out, d->p - n, n);
    }
    case 't':
        return decode_map(d, depth, rd_u32(d), out);
    }
    return PHX_ERR_INVALID;
}

int phx_etf_decode(const uint8_t *data, size_t len, const phx_etf_limits_t *limits,
                   phx_term_t **out)
{
    dec_t d = {
        .p = data,
        .end = data + len,
        .max_depth = PHX_ETF_DEFAULT_MAX_DEPTH,
        .max_nodes = PHX_ETF_DEFAULT_MAX_NODES,
        .max_bignum_bytes = PHX_ETF_DEFAULT_MAX_BIGNUM_BYTES,
    };
    if (limits != NULL) {
        if (limits->max_depth)
            d.max_depth = limits->max_depth;
        if (limits->max_nodes)
            d.max_nodes = limits->max_nodes;
        if (limits->max_bignum_bytes)
            d.max_bignum_bytes = limits->max_bignum_bytes;
        d.keep_other = limits->keep_other;
    }
    if (d.max_depth > PHX_ETF_HARD_MAX_DEPTH)
        d.max_depth = PHX_ETF_HARD_MAX_DEPTH;
    if (len < 1 || data[0] != 131)
        return PHX_ERR_INVALID;
    d.p++;
    phx_term_t *t = NULL;
    int rv = decode_term(&d, 0, &t);
    if (rv != 0)
        return rv;
    if (d.p != d.end) {
        phx_term_free(t);
        return PHX_ERR_INVALID;
    }
    *out = t;
    return 0;
}

/* ---- encoder ---- */

static int put_u8(phx_buf_t *out, uint8_t v)
{
    return phx_buf_append_byte(out, v);
}

static int put_u16(phx_buf_t *out, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return phx_buf_append(out, b, 2);
}

static int put_u32(phx_buf_t *out, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return phx_buf_append(out, b, 4);
}

static int put_tag_u32(phx_buf_t *out, uint8_t tag, size_t v)
{
    if (v > UINT32_MAX)
        return PHX_ERR_LIMIT;
    int rv = put_u8(out, tag);
    return rv ? rv : put_u32(out, (uint32_t)v);
}

static int enc_integer(phx_buf_t *out, const phx_term_t *t)
{
    int64_t v;
    if (phx_term_get_int64(t, &v) && v >= INT32_MIN && v <= INT32_MAX) {
        if (v >= 0 && v <= 255) {
            uint8_t b[2] = {'a', (uint8_t)v};
            return phx_buf_append(out, b, 2);
        }
        int rv = put_u8(out, 'b');
        return rv ? rv : put_u32(out, (uint32_t)(int32_t)v);
    }
    size_t n = t->u.integer.len;
    int rv;
    if (n <= 255) {
        uint8_t b[3] = {'n', (uint8_t)n, t->u.integer.is_negative};
        rv = phx_buf_append(out, b, 3);
    } else {
        rv = put_tag_u32(out, 'o', n);
        if (rv == 0)
            rv = put_u8(out, t->u.integer.is_negative);
    }
    return rv ? rv : phx_buf_append(out, t->u.integer.mag, n);
}

int phx_etf_encode_int64(phx_buf_t *out, int64_t v)
{
    /* Build the node on the stack: same rules as any integer term. */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint8_t mag[8];
    size_t len = 0;
    for (; m != 0; m >>= 8)
        mag[len++] = (uint8_t)m;
    phx_term_t t = {.type = PHX_TERM_INTEGER};
    t.u.integer.is_negative = v < 0;
    t.u.integer.len = len;
    t.u.integer.mag = mag;
    return enc_integer(out, &t);
}

int phx_etf_encode_float(phx_buf_t *out, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    uint8_t b[9] = {'F'};
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    return phx_buf_append(out, b, 9);
}

int phx_etf_encode_atom(phx_buf_t *out, const char *text, size_t len, unsigned flags)
{
    const uint8_t *s = (const uint8_t *)text;
    if (flags & PHX_ETF_LATIN1_ATOMS) {
        /* OTP <= 25: ATOM_EXT with Latin-1 bytes when every character is
         * at most U+00FF (one byte, or two with lead byte C2 or C3). */
        uint8_t latin1[255];
        size_t n = 0;
        bool ok = true;
        for (size_t i = 0; i < len && ok; i++) {
            if (n == sizeof(latin1)) {
                ok = false;
            } else if (s[i] < 0x80) {
                latin1[n++] = s[i];
            } else if ((s[i] == 0xC2 || s[i] == 0xC3) && i + 1 < len) {
                latin1[n++] = (uint8_t)((s[i] & 0x03) << 6 | (s[i + 1] & 0x3F));
                i++;
            } else {
                ok = false;
            }
        }
        if (ok) {
            int rv = put_u8(out, 'd');
            if (rv == 0)
                rv = put_u16(out, (uint32_t)n);
            return rv ? rv : phx_buf_append(out, latin1, n);
        }
    }
    int rv;
    if (len <= 255) {
        uint8_t b[2] = {'w', (uint8_t)len};
        rv = phx_buf_append(out, b, 2);
    } else if (len <= 65535) {
        rv = put_u8(out, 'v');
        if (rv == 0)
            rv = put_u16(out, (uint32_t)len);
    } else {
        return PHX_ERR_LIMIT;
    }
    return rv ? rv : phx_buf_append(out, s, len);
}

static bool is_byte_int(const phx_term_t *t)
{
    return t->type == PHX_TERM_INTEGER && !t->u.integer.is_negative && t->u.integer.len <= 1;
}

static int enc_list(phx_buf_t *out, const phx_term_t *t, unsigned flags)
{
    size_t n = list_len(t);
    if (n == 0)
        return put_u8(out, 'j');
    int rv;
    if (n <= 65535) {
        bool bytes = true;
        for (size_t i = 0; t->type == PHX_TERM_LIST && i < n; i++) {
            if (!is_byte_int(t->u.seq.items[i])) {
                bytes = false;
                break;
            }
        }
        if (bytes) {
            if ((rv = put_u8(out, 'k')) != 0 || (rv = put_u16(out, (uint32_t)n)) != 0)
                return rv;
            if (t->type == PHX_TERM_CHARLIST)
                return phx_buf_append(out, t->u.bytes.data, n);
            for (size_t i = 0; i < n; i++) {
                const phx_term_t *e = t->u.seq.items[i];
                if ((rv = put_u8(out, e->u.integer.len ? e->u.integer.mag[0] : 0)) != 0)
                    return rv;
            }
            return 0;
        }
    }
    if ((rv = put_tag_u32(out, 'l', n)) != 0)
        return rv;
    for (size_t i = 0; i < n; i++) {
        phx_term_t tmp;
        if ((rv = phx_etf_encode_term(list_item(t, i, &tmp), flags, out)) != 0)
            return rv;
    }
    return put_u8(out, 'j');
}

int phx_etf_encode_term(const phx_term_t *t, unsigned flags, phx_buf_t *out)
{
    int rv;
    switch (t->type) {
    case PHX_TERM_INTEGER:
        return enc_integer(out, t);
    case PHX_TERM_FLOAT:
        return phx_etf_encode_float(out, t->u.f);
    case PHX_TERM_ATOM:
        return phx_etf_encode_atom(out, (const char *)t->u.bytes.data, t->u.bytes.len, flags);
    case PHX_TERM_BINARY:
        if ((rv = put_tag_u32(out, 'm', t->u.bytes.len)) != 0)
            return rv;
        return phx_buf_append(out, t->u.bytes.data, t->u.bytes.len);
    case PHX_TERM_LIST:
    case PHX_TERM_CHARLIST:
        return enc_list(out, t, flags);
    case PHX_TERM_TUPLE:
        if (t->u.seq.count <= 255) {
            uint8_t b[2] = {'h', (uint8_t)t->u.seq.count};
            rv = phx_buf_append(out, b, 2);
        } else {
            rv = put_tag_u32(out, 'i', t->u.seq.count);
        }
        for (size_t i = 0; rv == 0 && i < t->u.seq.count; i++)
            rv = phx_etf_encode_term(t->u.seq.items[i], flags, out);
        return rv;
    case PHX_TERM_MAP:
        rv = put_tag_u32(out, 't', t->u.map.count);
        for (size_t i = 0; rv == 0 && i < t->u.map.count; i++) {
            rv = phx_etf_encode_term(t->u.map.pairs[i].key, flags, out);
            if (rv == 0)
                rv = phx_etf_encode_term(t->u.map.pairs[i].value, flags, out);
        }
        return rv;
    case PHX_TERM_OTHER:
        return phx_buf_append(out, t->u.bytes.data, t->u.bytes.len);
    }
    return PHX_ERR_INVALID;
}

int phx_etf_encode(const phx_term_t *t, unsigned flags, phx_buf_t *out)
{
    int rv = put_u8(out, 131);
    return rv ? rv : phx_etf_encode_term(t, flags, out);
}
