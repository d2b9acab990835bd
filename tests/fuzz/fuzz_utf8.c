/* fuzz_utf8: utf8.c against a second, arithmetic decoder written here, plus
 * consistency between phx_utf8_valid, phx_utf8_valid_prefix, decode and
 * encode. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "fuzz.h"

/* Reference: take the length from the lead byte, gather the bits, then
 * reject overlongs, surrogates and values above U+10FFFF. Returns the
 * sequence length or 0. */
static size_t ref_decode(const uint8_t *s, size_t len, uint32_t *out)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint8_t b = s[0];
    size_t n;
    uint32_t cp;
    if (b < 0x80) {
        *out = b;
        return 1;
    }
    if ((b & 0xe0) == 0xc0) {
        n = 2;
        cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
        n = 3;
        cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
        n = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out = cp;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i = 0;
    bool ok = true;
    while (i < size) {
        uint32_t a = 0, b = 0;
        size_t n = ref_decode(data + i, size - i, &a);
        size_t m = phx_utf8_decode(data + i, size - i, &b);
        CHECK(n == m);
        if (n == 0) {
            ok = false;
            break;
        }
        CHECK(a == b);
        uint8_t enc[4];
        CHECK(phx_utf8_encode(a, enc) == n && memcmp(enc, data + i, n) == 0);
        i += n;
    }
    CHECK(phx_utf8_valid(data, size) == ok);
    size_t p = phx_utf8_valid_prefix(data, size);
    CHECK(p == i);
    CHECK(phx_utf8_valid(data, p));
    return 0;
}
