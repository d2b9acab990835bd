/* Unit tests for utf8.c: RFC 3629 boundaries, exhaustive comparison with a
 * reference decoder over all 1-, 2- and 3-byte inputs, and encode/decode
 * round trips of every scalar value. */
#include "utf8.h"

#include <stdlib.h>

#include "mem.h"
#include "runner.h"

/* A second, arithmetic decoder: take the length from the lead byte's high
 * bits, collect continuation bits, then reject overlongs, surrogates and
 * values above U+10FFFF. */
static bool ref_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t n;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            n = 2;
            cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3;
            cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

/* Checks `s` from an exact-size heap copy, so ASan sees any overread. */
static bool valid_exact(const void *s, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    ASSERT(p != NULL);
    memcpy(p, s, len);
    bool ok = phx_utf8_valid(p, len);
    free(p);
    return ok;
}

#define VALID(lit) ASSERT(valid_exact(lit, sizeof(lit) - 1))
#define INVALID(lit) ASSERT(!valid_exact(lit, sizeof(lit) - 1))

static void utf8_accepts_boundaries(void)
{
    VALID("");
    VALID("plain ascii, long enough for the 8-byte path");
    VALID("\x7f");
    VALID("\xc2\x80");         /* U+0080 */
    VALID("\xc3\xa9");         /* é */
    VALID("\xdf\xbf");         /* U+07FF */
    VALID("\xe0\xa0\x80");     /* U+0800 */
    VALID("\xe2\x82\xac");     /* € */
    VALID("\xed\x9f\xbf");     /* U+D7FF */
    VALID("\xee\x80\x80");     /* U+E000 */
    VALID("\xef\xbf\xbf");     /* U+FFFF */
    VALID("\xf0\x90\x80\x80"); /* U+10000 */
    VALID("\xf0\x9d\x84\x9e"); /* 𝄞 */
    VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    VALID("a\xc3\xa9"
          "bcdefghij\xe2\x82\xac");
}

static void utf8_rejects_overlongs_surrogates_and_range(void)
{
    INVALID("\xc0\x80"); /* overlong NUL */
    INVALID("\xc1\xbf");
    INVALID("\xe0\x80\x80");
    INVALID("\xe0\x9f\xbf"); /* overlong U+07FF */
    INVALID("\xf0\x80\x80\x80");
    INVALID("\xf0\x8f\xbf\xbf");         /* overlong U+FFFF */
    INVALID("\xed\xa0\x80");             /* U+D800 */
    INVALID("\xed\xbf\xbf");             /* U+DFFF */
    INVALID("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 pair */
    INVALID("\xf4\x90\x80\x80");         /* U+110000 */
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xf8\x88\x80\x80\x80");
    INVALID("\xfe");
    INVALID("\xff");
    INVALID("\x80");
    INVALID("\xbf");
    INVALID("\xc3"); /* truncated */
    INVALID("\xe2\x82");
    INVALID("\xf0\x9d\x84");
    INVALID("\xc3\x28");
    INVALID("\xe2\x28\xa1");
    INVALID("abcdefgh\x80"); /* right after a fast-path block */
    INVALID("abcdefghijklmno\xff");
}

static void utf8_valid_prefix_stops_before_bad_sequence(void)
{
    ASSERT_EQ(phx_utf8_valid_prefix((const uint8_t *)"ab\xc3", 3), 2);
    ASSERT_EQ(phx_utf8_valid_prefix((const uint8_t *)"abcdefghij\xe2\x82", 12), 10);
    ASSERT_EQ(phx_utf8_valid_prefix((const uint8_t *)"\xc3\xa9\xff", 3), 2);
    ASSERT_EQ(phx_utf8_valid_prefix((const uint8_t *)"ok", 2), 2);
    ASSERT_EQ(phx_utf8_valid_prefix((const uint8_t *)"", 0), 0);
}

static void utf8_matches_reference_exhaustively(void)
{
    uint8_t b[3];
    for (unsigned i = 0; i < 256; i++) {
        b[0] = (uint8_t)i;
        ASSERT_EQ(phx_utf8_valid(b, 1), ref_valid(b, 1));
        for (unsigned j = 0; j < 256; j++) {
            b[1] = (uint8_t)j;
            ASSERT_EQ(phx_utf8_valid(b, 2), ref_valid(b, 2));
            for (unsigned k = 0; k < 256; k++) {
                b[2] = (uint8_t)k;
                if (phx_utf8_valid(b, 3) != ref_valid(b, 3))
                    phx_test_fail(__FILE__, __LINE__, "differs on %02x %02x %02x", i, j, k);
            }
        }
    }
    /* Four-byte sequences: every lead byte from F0 with all second bytes and
     * a spread of third and fourth bytes. */
    uint8_t q[4];
    for (unsigned i = 0xf0; i < 0x100; i++) {
        for (unsigned j = 0; j < 256; j++) {
            for (unsigned k = 0x70; k < 0xd0; k += 7) {
                q[0] = (uint8_t)i;
                q[1] = (uint8_t)j;
                q[2] = (uint8_t)k;
                q[3] = (uint8_t)(0x80 + (j % 0x50));
                ASSERT_EQ(phx_utf8_valid(q, 4), ref_valid(q, 4));
            }
        }
    }
}

static void utf8_encode_decode_roundtrip_all_scalars(void)
{
    uint8_t buf[4];
    uint32_t cp;
    for (uint32_t c = 0; c <= 0x10ffff; c++) {
        size_t n = phx_utf8_encode(c, buf);
        if (c >= 0xd800 && c <= 0xdfff) {
            ASSERT_EQ(n, 0);
            continue;
        }
        size_t want = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (n != want || phx_utf8_decode(buf, n, &cp) != n || cp != c || !phx_utf8_valid(buf, n))
            phx_test_fail(__FILE__, __LINE__, "round trip of U+%04X", (unsigned)c);
        /* One byte short must not decode. */
        if (n > 1)
            ASSERT_EQ(phx_utf8_decode(buf, n - 1, &cp), 0);
    }
    ASSERT_EQ(phx_utf8_encode(0x110000, buf), 0);
    ASSERT_EQ(phx_utf8_encode(UINT32_MAX, buf), 0);
    ASSERT_EQ(phx_utf8_decode(buf, 0, &cp), 0);
}

const phx_test_t phx_tests_utf8[] = {
    {"utf8_accepts_boundaries", utf8_accepts_boundaries},
    {"utf8_rejects_overlongs_surrogates_and_range", utf8_rejects_overlongs_surrogates_and_range},
    {"utf8_valid_prefix_stops_before_bad_sequence", utf8_valid_prefix_stops_before_bad_sequence},
    {"utf8_matches_reference_exhaustively", utf8_matches_reference_exhaustively},
    {"utf8_encode_decode_roundtrip_all_scalars", utf8_encode_decode_roundtrip_all_scalars},
    {NULL, NULL},
};
