/* Unit tests for base64.c: RFC 4648 vectors, both alphabets, the padding
 * and canonical-bits rules, caps, and input placed before a guard page. */
#include "base64.h"

#include "mem.h"
#include "phx.h"
#include "guard.h"
#include "runner.h"

/* ---- input right before an unreadable page ---- */

/* guard_text() returns bytes; the decoders here take characters. */
static char *guard_text(guard_t *g, const void *src, size_t len)
{
    return (char *)guard_copy(g, src, len);
}

/* Decodes `text` from a guarded copy and from an exact-size heap copy and
 * checks both agree; returns the result and the bytes in `out`. */
static ssize_t decode_checked(phx_base64_alphabet_t a, const char *text, uint8_t *out, size_t cap)
{
    size_t len = strlen(text);
    guard_t g;
    char *gp = guard_text(&g, text, len);
    ssize_t n1 = phx_base64_decode_to(a, gp, len, out, cap);
    guard_free(&g);
    char *hp = malloc(len ? len : 1);
    ASSERT(hp != NULL);
    memcpy(hp, text, len);
    uint8_t other[256];
    ssize_t n2 = phx_base64_decode_to(a, hp, len, other, cap < sizeof(other) ? cap : sizeof(other));
    free(hp);
    ASSERT_EQ(n1, n2);
    if (n1 > 0)
        ASSERT_MEM_EQ(out, (size_t)n1, other, (size_t)n2);
    return n1;
}

static void rfc4648_vectors(void)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const padded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                         "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const unpadded[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                           "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t len = strlen(plain[i]);
        phx_buf_t b = {0};
        ASSERT_EQ(phx_base64_encode(&b, plain[i], len), 0);
        ASSERT_STR_EQ(b.len ? (char *)b.data : "", padded[i]);
        phx_buf_dispose(&b);
        ASSERT_EQ(phx_base64url_encode(&b, plain[i], len), 0);
        ASSERT_STR_EQ(b.len ? (char *)b.data : "", unpadded[i]);
        phx_buf_dispose(&b);
        ASSERT_EQ(phx_base64_encoded_len(len, true), strlen(padded[i]));
        ASSERT_EQ(phx_base64_encoded_len(len, false), strlen(unpadded[i]));
        uint8_t out[16];
        for (int a = 0; a < 2; a++) {
            ASSERT_EQ(decode_checked(a, padded[i], out, sizeof(out)), len);
            ASSERT_MEM_EQ(out, len, plain[i], len);
            ASSERT_EQ(decode_checked(a, unpadded[i], out, sizeof(out)), len);
            ASSERT_MEM_EQ(out, len, plain[i], len);
        }
    }
}

static void alphabets_are_exclusive(void)
{
    static const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    phx_buf_t b = {0};
    ASSERT_EQ(phx_base64_encode(&b, bytes, 3), 0);
    ASSERT_STR_EQ((char *)b.data, "+/+/");
    phx_buf_dispose(&b);
    ASSERT_EQ(phx_base64url_encode(&b, bytes, 3), 0);
    ASSERT_STR_EQ((char *)b.data, "-_-_");
    phx_buf_dispose(&b);
    uint8_t out[8];
    ASSERT_EQ(decode_checked(PHX_BASE64_STD, "+/+/", out, sizeof(out)), 3);
    ASSERT_EQ(decode_checked(PHX_BASE64_URL, "-_-_", out, sizeof(out)), 3);
    ASSERT_MEM_EQ(out, 3, bytes, 3);
    ASSERT_EQ(decode_checked(PHX_BASE64_URL, "+/+/", out, sizeof(out)), PHX_ERR_INVALID);
    ASSERT_EQ(decode_checked(PHX_BASE64_STD, "-_-_", out, sizeof(out)), PHX_ERR_INVALID);
}

static void padding_rules(void)
{
    static const struct {
        const char *text;
        ssize_t want;
    } cases[] = {
        {"Zg", 1},
        {"Zg==", 1},
        {"Zg=", PHX_ERR_INVALID},
        {"Zg===", PHX_ERR_INVALID},
        {"Zm8", 2},
        {"Zm8=", 2},
        {"Zm8==", PHX_ERR_INVALID},
        {"Zm9v=", PHX_ERR_INVALID},
        {"Zm9v====", PHX_ERR_INVALID},
        {"=", PHX_ERR_INVALID},
        {"==", PHX_ERR_INVALID},
        {"Z", PHX_ERR_INVALID},
        {"Zm9vY", PHX_ERR_INVALID},
        {"Zg==Zg==", PHX_ERR_INVALID},
        {"Z=g=", PHX_ERR_INVALID},
        {"Zm=8", PHX_ERR_INVALID},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[8];
        for (int a = 0; a < 2; a++) {
            ssize_t n = decode_checked(a, cases[i].text, out, sizeof(out));
            if (n != cases[i].want)
                phx_test_fail(__FILE__, __LINE__, "'%s': got %zd want %zd", cases[i].text, n,
                              cases[i].want);
        }
    }
}

static void invalid_characters_rejected(void)
{
    static const char *const bad[] = {"Zm9v Zg", "Zm9v\nZg",   "Zm9v.Zg",   "Zm9v*Zg",
                                      "Zm9\x80", "Zm\xc3\xa9", "Zm9v\tYmFy"};
    uint8_t out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (int a = 0; a < 2; a++)
            ASSERT_EQ(decode_checked(a, bad[i], out, sizeof(out)), PHX_ERR_INVALID);
    /* An embedded NUL is just an invalid character (length-delimited). */
    static const char nul[4] = {'Z', 'm', '\0', 'v'};
    ASSERT_EQ(phx_base64_decode_to(PHX_BASE64_URL, nul, 4, out, sizeof(out)), PHX_ERR_INVALID);
}

/* Every 2- and 3-character string over the alphabet: accepted exactly when
 * the unused low bits are zero, and then re-encodes to itself. */
static void canonical_bits_exhaustive(void)
{
    static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t accepted = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++)
            for (int k = -1; k < 64; k++) {
                char text[3] = {url[i], url[j], k >= 0 ? url[k] : 0};
                size_t len = k >= 0 ? 3 : 2;
                uint8_t out[4];
                ssize_t n = phx_base64_decode_to(PHX_BASE64_URL, text, len, out, sizeof(out));
                bool canonical = k >= 0 ? (k & 3) == 0 : (j & 15) == 0;
                if (!canonical) {
                    ASSERT_EQ(n, PHX_ERR_INVALID);
                    continue;
                }
                ASSERT_EQ(n, (ssize_t)len - 1);
                phx_buf_t b = {0};
                ASSERT_EQ(phx_base64url_encode(&b, out, (size_t)n), 0);
                ASSERT_MEM_EQ(b.data, b.len, text, len);
                phx_buf_dispose(&b);
                accepted++;
            }
    ASSERT_EQ(accepted, 64 * 4 + 64 * 64 * 16);
}

static void roundtrip_all_lengths(void)
{
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof(data); len++) {
        phx_buf_t e = {0}, d = {0};
        ASSERT_EQ(phx_base64url_encode(&e, data, len), 0);
        ASSERT_EQ(phx_base64url_decode(&d, (char *)e.data, e.len), 0);
        ASSERT_MEM_EQ(d.data, d.len, data, len);
        phx_buf_dispose(&e);
        phx_buf_dispose(&d);
        ASSERT_EQ(phx_base64_encode(&e, data, len), 0);
        ASSERT_EQ(phx_base64_decode(&d, (char *)e.data, e.len), 0);
        ASSERT_MEM_EQ(d.data, d.len, data, len);
        phx_buf_dispose(&e);
        phx_buf_dispose(&d);
    }
}

static void decode_respects_cap(void)
{
    uint8_t out[8];
    memset(out, 0xAA, sizeof(out));
    /* "Zm9vYmFy" is 6 bytes: a 5-byte cap is refused before any write. */
    ASSERT_EQ(phx_base64_decode_to(PHX_BASE64_STD, "Zm9vYmFy", 8, out, 5), PHX_ERR_LIMIT);
    for (size_t i = 0; i < sizeof(out); i++)
        ASSERT_EQ(out[i], 0xAA);
    ASSERT_EQ(phx_base64_decode_to(PHX_BASE64_STD, "Zm9vYmFy", 8, out, 6), 6);
    ASSERT_EQ(out[6], 0xAA);
    ASSERT_EQ(phx_base64_decoded_max(8), 6);
    ASSERT_EQ(phx_base64_decoded_max(7), 5);
    ASSERT_EQ(phx_base64_decoded_max(6), 4);
    ASSERT_EQ(phx_base64_decoded_max(5), 3);
}

static void decode_appends_and_keeps_buffer_on_error(void)
{
    phx_buf_t b = {0};
    ASSERT_EQ(phx_buf_append_str(&b, "x:"), 0);
    ASSERT_EQ(phx_base64url_decode(&b, "Zm9v", 4), 0);
    ASSERT_STR_EQ((char *)b.data, "x:foo");
    ASSERT_EQ(phx_base64url_decode(&b, "Zm9v!", 5), PHX_ERR_INVALID);
    ASSERT_STR_EQ((char *)b.data, "x:foo");
    ASSERT_EQ(b.len, 5);
    phx_buf_dispose(&b);
}

/* The WebSocket auth-token subprotocol takes either alphabet: phoenix.js
 * writes btoa's standard one behind its "base64url." prefix. */
static void decode_any_takes_both_alphabets(void)
{
    static const struct {
        const char *text;
        const char *bytes;
        size_t len;
    } ok[] = {
        {"+/8", "\xfb\xff", 2},      {"+/8=", "\xfb\xff", 2},
        {"-_8", "\xfb\xff", 2},      {"-_8=", "\xfb\xff", 2},
        {"++//", "\xfb\xef\xff", 3}, {"--__", "\xfb\xef\xff", 3},
        {"Pj4+Pw", ">>>?", 4},       {"Pj4-Pw==", ">>>?", 4},
        {"c3ViPz54", "sub?>x", 6},   {"", "", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        phx_buf_t b = {0};
        ASSERT_EQ(phx_base64_decode_any(&b, ok[i].text, strlen(ok[i].text)), 0);
        ASSERT_MEM_EQ(b.data, b.len, ok[i].bytes, ok[i].len);
        phx_buf_dispose(&b);
    }
    /* A mix of the alphabets, bad padding, stray characters, non-canonical
     * bits: refused, and the buffer keeps what it had. */
    static const char *bad[] = {"+_8", "-/8", "++__", "Pj4+Pw=", "Pj4-P", "Pj4.Pw", "+/9", "-_9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        phx_buf_t b = {0};
        ASSERT_EQ(phx_buf_append_str(&b, "x"), 0);
        ASSERT_EQ(phx_base64_decode_any(&b, bad[i], strlen(bad[i])), PHX_ERR_INVALID);
        ASSERT_STR_EQ((char *)b.data, "x");
        ASSERT_EQ(b.len, 1);
        phx_buf_dispose(&b);
    }
    phx_buf_t b = {0};
    phx_mem_reset_count();
    phx_mem_fail_at(1);
    ASSERT_EQ(phx_base64_decode_any(&b, "-_8", 3), PHX_ERR_NOMEM);
    phx_mem_fail_at(0);
    ASSERT(b.data == NULL);
}

static void allocation_failure_is_clean(void)
{
    phx_buf_t b = {0};
    phx_mem_reset_count();
    phx_mem_fail_at(1);
    ASSERT_EQ(phx_base64url_decode(&b, "Zm9vYmFy", 8), PHX_ERR_NOMEM);
    ASSERT_EQ(phx_base64_decode(&b, "Zm9vYmFy", 8), PHX_ERR_NOMEM);
    ASSERT_EQ(phx_base64_encode(&b, "foobar", 6), PHX_ERR_NOMEM);
    ASSERT_EQ(phx_base64url_encode(&b, "foobar", 6), PHX_ERR_NOMEM);
    phx_mem_fail_at(0);
    ASSERT_EQ(b.len, 0);
    ASSERT(b.data == NULL);
    /* Growing an existing buffer fails the same way and keeps it. */
    ASSERT_EQ(phx_buf_append_str(&b, "x"), 0);
    phx_mem_fail_at(1);
    ASSERT_EQ(phx_base64url_encode(
                  &b, "0123456789012345678901234567890123456789012345678901234567890123456789", 70),
              PHX_ERR_NOMEM);
    phx_mem_fail_at(0);
    ASSERT_STR_EQ((char *)b.data, "x");
    phx_buf_dispose(&b);
}

const phx_test_t phx_tests_base64[] = {
    {"rfc4648_vectors", rfc4648_vectors},
    {"alphabets_are_exclusive", alphabets_are_exclusive},
    {"padding_rules", padding_rules},
    {"invalid_characters_rejected", invalid_characters_rejected},
    {"canonical_bits_exhaustive", canonical_bits_exhaustive},
    {"roundtrip_all_lengths", roundtrip_all_lengths},
    {"decode_respects_cap", decode_respects_cap},
    {"decode_appends_and_keeps_buffer_on_error", decode_appends_and_keeps_buffer_on_error},
    {"decode_any_takes_both_alphabets", decode_any_takes_both_alphabets},
    {"allocation_failure_is_clean", allocation_failure_is_clean},
    {NULL, NULL},
};
