/* utf8.c: strict UTF-8 (RFC 3629) validation for the codecs: JSON strings,
 * query parameters, LongPoll bodies and binary frame metadata. Leaf module;
 * it owns nothing and allocates nothing. */
#include "utf8.h"

#include <string.h>

/* Sequence length from the lead byte, with the second byte's allowed range
 * (RFC 3629 section 4): that range is what excludes overlongs (E0, F0),
 * surrogates (ED) and values above U+10FFFF (F4). 0 marks an invalid lead. */
static size_t lead_info(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (b < 0x80)
        return 1;
    if (b < 0xc2)
        return 0; /* continuation byte or overlong C0/C1 */
    if (b < 0xe0)
        return 2;
    if (b < 0xf0) {
        if (b == 0xe0)
            *lo = 0xa0;
        else if (b == 0xed)
            *hi = 0x9f;
        return 3;
    }
    if (b < 0xf5) {
        if (b == 0xf0)
            *lo = 0x90;
        else if (b == 0xf4)
            *hi = 0x8f;
        return 4;
    }
    return 0;
}

size_t phx_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    uint8_t lo, hi;
    size_t n = lead_info(s[0], &lo, &hi);
    if (n == 0 || n > len)
        return 0;
    if (n == 1) {
        *cp = s[0];
        return 1;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    uint32_t v = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return n;
}

size_t phx_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0;
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    if (cp > 0x10ffff)
        return 0;
    out[0] = (uint8_t)(0xf0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

size_t phx_utf8_valid_prefix(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* Fast path: eight ASCII bytes at a time. memcpy keeps the load
         * legal at any alignment. */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = phx_utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return i;
        i += n;
    }
    return i;
}

bool phx_utf8_valid(const uint8_t *s, size_t len)
{
    return phx_utf8_valid_prefix(s, len) == len;
}
