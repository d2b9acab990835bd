/* Unit tests for etf.c and etf_json.c: every tag, term_to_binary bytes
 * reproduced (hex from Erlang/OTP 25), limits at N and N+1, hostile lengths,
 * refused tags, term order, JSON out and in, and allocation failure. Every
 * decode runs on an exact-size heap copy and on a copy placed right before
 * an unreadable page. */
#include "etf.h"

#include <math.h>

#include "mem.h"
#include "phx.h"
#include "guard.h"
#include "runner.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ---- helpers ---- */

static void assert_no_leaks(void)
{
#ifdef HAVE_LSAN
    ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Hex (spaces ignored) to an exact-size malloc'd copy, so ASan catches a
 * read past the end. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = 0;
    uint8_t *b = malloc(strlen(hex) / 2 + 1);
    ASSERT(b != NULL);
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        int hi = hexval(p[0]), lo = p[1] ? hexval(p[1]) : -1;
        if (hi < 0 || lo < 0)
            phx_test_fail(__FILE__, __LINE__, "bad hex at '%s'", p);
        b[n++] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    uint8_t *exact = malloc(n ? n : 1);
    ASSERT(exact != NULL);
    memcpy(exact, b, n);
    free(b);
    *len = n;
    return exact;
}

/* FLOAT_EXT of `text` (up to 31 bytes, NUL padded) as hex, with 83. */
static char *float_ext_hex(const char *text, size_t len)
{
    phx_buf_t b = {0};
    phx_buf_append_str(&b, "8363");
    for (size_t i = 0; i < 31; i++)
        phx_buf_printf(&b, "%02x", i < len ? (unsigned char)text[i] : 0);
    return (char *)b.data;
}

static int decode_guarded(const uint8_t *data, size_t len, const phx_etf_limits_t *lim,
                          phx_term_t **out)
{
    guard_t g;
    int rv = phx_etf_decode(guard_copy(&g, data, len), len, lim, out);
    guard_free(&g);
    return rv;
}

/* Decodes hex both ways; both must agree. */
static int decode_hex(const char *hex, const phx_etf_limits_t *lim, phx_term_t **out)
{
    size_t len;
    uint8_t *b = unhex(hex, &len);
    phx_term_t *t1 = NULL, *t2 = NULL;
    int rv1 = phx_etf_decode(b, len, lim, &t1);
    int rv2 = decode_guarded(b, len, lim, &t2);
    free(b);
    ASSERT_EQ(rv1, rv2);
    if (rv1 == 0) {
        ASSERT_EQ(phx_term_compare(t1, t2), 0);
        phx_term_free(t2);
        *out = t1;
    }
    return rv1;
}

static char *json_of(const phx_term_t *t)
{
    phx_buf_t b = {0};
    ASSERT_EQ(phx_term_to_json(t, &b), 0);
    ASSERT_EQ(phx_buf_append_byte(&b, 0), 0);
    return (char *)b.data;
}

static void expect_json_lim(const char *hex, const phx_etf_limits_t *lim, const char *json)
{
    phx_term_t *t = NULL;
    int rv = decode_hex(hex, lim, &t);
    if (rv != 0)
        phx_test_fail(__FILE__, __LINE__, "decode %s: %s", hex, phx_err_name(rv));
    char *j = json_of(t);
    if (strcmp(j, json) != 0)
        phx_test_fail(__FILE__, __LINE__, "%s: got %s want %s", hex, j, json);
    phx_free(j);
    phx_term_free(t);
}

static void expect_json(const char *hex, const char *json)
{
    expect_json_lim(hex, NULL, json);
}

static void expect_err_lim(const char *hex, const phx_etf_limits_t *lim, int err)
{
    phx_term_t *t = NULL;
    int rv = decode_hex(hex, lim, &t);
    if (rv == 0)
        phx_term_free(t);
    if (rv != err)
        phx_test_fail(__FILE__, __LINE__, "%s: got %s want %s", hex, phx_err_name(rv),
                      phx_err_name(err));
}

static void expect_err(const char *hex, int err)
{
    expect_err_lim(hex, NULL, err);
}

/* Decodes, re-encodes with `flags`: the bytes must be identical. */
static void expect_reencode(const char *hex, unsigned flags)
{
    size_t len;
    uint8_t *b = unhex(hex, &len);
    phx_term_t *t = NULL;
    phx_etf_limits_t lim = {.max_bignum_bytes = 4096};
    int rv = phx_etf_decode(b, len, &lim, &t);
    if (rv != 0)
        phx_test_fail(__FILE__, __LINE__, "decode %s: %s", hex, phx_err_name(rv));
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(t, flags, &out), 0);
    ASSERT_MEM_EQ(out.data, out.len, b, len);
    phx_buf_dispose(&out);
    phx_term_free(t);
    free(b);
}

static phx_term_t *from_json(const char *json)
{
    phx_term_t *t = NULL;
    int rv = phx_json_to_term(json, strlen(json), NULL, &t);
    if (rv != 0)
        phx_test_fail(__FILE__, __LINE__, "json_to_term %s: %s", json, phx_err_name(rv));
    return t;
}

/* JSON -> term -> ETF must give `hex` (after 83); term -> JSON gives `back`. */
static void expect_json_etf(const char *json, const char *hex, const char *back)
{
    phx_term_t *t = from_json(json);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(t, 0, &out), 0);
    size_t len;
    uint8_t *want = unhex(hex, &len);
    ASSERT_MEM_EQ(out.data, out.len, want, len);
    free(want);
    phx_buf_dispose(&out);
    char *j = json_of(t);
    if (strcmp(j, back) != 0)
        phx_test_fail(__FILE__, __LINE__, "%s: got %s want %s", json, j, back);
    phx_free(j);
    phx_term_free(t);
}

/* ---- decoding: every tag ---- */

static void integers_every_encoding(void)
{
    expect_json("836100", "0");
    expect_json("8361ff", "255");
    expect_json("8362ffffffff", "-1");
    expect_json("836200000100", "256");
    expect_json("836280000000", "-2147483648");
    expect_json("83627fffffff", "2147483647");
    expect_json("836e040000000080", "2147483648");
    expect_json("836e040101000080", "-2147483649");
    expect_json("836e05000000000001", "4294967296");
    expect_json("836e06000068e5cf8b01", "1700000000000");
    expect_json("836e08000000000000000080", "9223372036854775808");
    expect_json("836e08010000000000000080", "-9223372036854775808");
    expect_json("836e0900000000000000000001", "18446744073709551616");
    expect_json("836e0d00d20a3f4eeee073c3f60fe98e01", "123456789012345678901234567890");
    expect_json("836e1a000000000000000000000000000000000000000000000000000001",
                "1606938044258990275541962092341162602522202993782792835301376");
    expect_json("836e1a010000000000000000000000000000000000000000000000000001",
                "-1606938044258990275541962092341162602522202993782792835301376");
    /* Non-minimal forms Erlang also accepts: high zero bytes, n = 0,
     * negative zero, LARGE_BIG for a small value. */
    expect_json("836e040005000000", "5");
    expect_json("836e0000", "0");
    expect_json("836e0001", "0");
    expect_json("836e010000", "0");
    expect_json("836f000000010007", "7");
    expect_json("836f00000001ff07", "-7");
    expect_json("836f0000000000", "0");
}

static void floats_new_and_legacy(void)
{
    expect_json("83463ff8000000000000", "1.5");
    expect_json("8363312e3530303030303030303030303030303030303030652b30300000000000", "1.5");
    expect_json("834681a56e1fc2f8f359", "-1.0e-300");
    expect_json("83464045000000000000", "42.0");
    expect_json("83460000000000000000", "0.0");
    expect_json("83468000000000000000", "-0.0");
    /* Legacy text forms other writers could produce, and refused ones:
     * NaN and infinities, overflow, text after the NUL padding, hex, an
     * empty text, spaces. */
    static const struct {
        const char *text;
        size_t len;
        const char *json;
    } legacy[] = {
        {"-2.50000000000000000000e-01", 27, "-0.25"},
        {"1.5", 3, "1.5"},
        {"12", 2, "12.0"},
        {"1e2", 3, "100.0"},
        {"inf", 3, NULL},
        {"nan", 3, NULL},
        {"-inf", 4, NULL},
        {"1e999", 5, NULL},
        {"1.5\0\061", 5, NULL},
        {"0x1", 3, NULL},
        {"", 0, NULL},
        {" 1.5", 4, NULL},
        {"1.5 ", 4, NULL},
        {"1.", 2, "1.0"},
        {".", 1, NULL},
        {"1e", 2, NULL},
    };
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
        char *h = float_ext_hex(legacy[i].text, legacy[i].len);
        if (legacy[i].json)
            expect_json(h, legacy[i].json);
        else
            expect_err(h, PHX_ERR_INVALID);
        phx_free(h);
    }
    /* NaN and infinities in NEW_FLOAT_EXT. */
    expect_err("83467ff0000000000000", PHX_ERR_INVALID);
    expect_err("8346fff0000000000000", PHX_ERR_INVALID);
    expect_err("83467ff8000000000000", PHX_ERR_INVALID);
    /* FLOAT_EXT needs 31 bytes. */
    expect_err("8363312e35", PHX_ERR_INVALID);
}

static void atoms_every_encoding(void)
{
    expect_json("836400036e696c", "null");
    expect_json("83640003747275", "\"tru\"");
    expect_json("8364000474727565", "true");
    expect_json("8364000566616c7365", "false");
    expect_json("83640002 6f6b", "\"ok\"");
    expect_json("83640003e97465", "\"\xc3\xa9te\""); /* Latin-1 'é' becomes UTF-8 */
    expect_json("83 73 03 666f6f", "\"foo\"");
    expect_json("83 73 01 ff", "\"\xc3\xbf\"");
    expect_json("83 76 0003 666f6f", "\"foo\"");
    expect_json("83 77 04 f09f9880", "\"\xf0\x9f\x98\x80\"");
    expect_json("83 77 03 6e696c", "null");
    expect_json("83 77 04 74727565", "true");
    expect_json("83 77 00", "\"\"");
    /* Invalid UTF-8 in UTF-8 atoms; Latin-1 accepts any byte. */
    expect_err("83 77 01 ff", PHX_ERR_INVALID);
    expect_err("83 76 0002 c0af", PHX_ERR_INVALID);
    expect_err("83 77 03 eda080", PHX_ERR_INVALID); /* surrogate */
    /* Declared length beyond the input. */
    expect_err("83 64 0005 616263", PHX_ERR_INVALID);
    expect_err("83 77 05 616263", PHX_ERR_INVALID);
    expect_err("83 76 ffff 61", PHX_ERR_INVALID);
}

static void atom_length_limit(void)
{
    /* 255 characters accepted, 256 refused, for each encoding; a UTF-8
     * atom of 255 two-byte characters (510 bytes) is fine. */
    phx_buf_t hex = {0};
    for (int chars = 255; chars <= 256; chars++) {
        for (int form = 0; form < 3; form++) {
            hex.len = 0;
            if (form == 0)
                phx_buf_printf(&hex, "8364%04x", chars);
            else if (form == 1)
                phx_buf_printf(&hex, "8376%04x", chars * 2);
            else
                phx_buf_printf(&hex, "8376%04x", chars);
            for (int i = 0; i < chars; i++)
                phx_buf_append_str(&hex, form == 1 ? "c3a9" : "61");
            phx_term_t *t = NULL;
            int rv = decode_hex((char *)hex.data, NULL, &t);
            ASSERT_EQ(rv, chars == 255 ? 0 : PHX_ERR_INVALID);
            if (rv == 0) {
                ASSERT_EQ(t->type, PHX_TERM_ATOM);
                ASSERT_EQ(t->u.bytes.len, form == 1 ? 510 : 255);
                phx_term_free(t);
            }
        }
    }
    /* The small forms cannot exceed 255 bytes. */
    phx_buf_dispose(&hex);
}

static void containers_every_encoding(void)
{
    expect_json("83 68 02 6101 6102", "[1,2]");
    expect_json("83 68 00", "[]");
    expect_json("83 69 00000002 6101 6102", "[1,2]");
    expect_json("83 69 00000000", "[]");
    expect_json("83 6a", "[]");
    expect_json("83 6b 0003 010203", "[1,2,3]");
    expect_json("83 6b 0000", "[]");
    expect_json("83 6c 00000002 6101 6d0000000178 6a", "[1,\"x\"]");
    expect_json("83 6c 00000000 6a", "[]");
    expect_json("83 6c0000000361016102620000012c6a", "[1,2,300]");
    expect_json("83 6c000000016d00000001616a", "[\"a\"]");
    expect_json("83 6d 00000005 68656c6c6f", "\"hello\"");
    expect_json("83 6d 00000000", "\"\"");
    expect_json("83 6d000000054a6f73c3a9", "\"Jos\xc3\xa9\"");
    expect_json("83 74 00000000", "{}");
    expect_json("83 74 00000001 6d00000007757365725f6964 612a", "{\"user_id\":42}");
    expect_json("8368026400026f6b6d0000000178", "[\"ok\",\"x\"]");
    expect_json("837400000002640001627400000001640001636b000268696d00000001616c0000000561014640040"
                "000000000006400036e696c640004747275656802640001786d00000001796a",
                "{\"b\":{\"c\":[104,105]},\"a\":[1,2.5,null,true,[\"x\",\"y\"]]}");
    expect_json("837400000007610164000161463ff000000000000064000162640001786400016368016101640001"
                "647400000000640001676b000101640001656d000000016b64000166",
                "{\"1\":\"a\",\"1.0\":\"b\",\"x\":\"c\",\"[1]\":\"d\",\"{}\":\"g\",\"[1]\":\"e\","
                "\"k\":\"f\"}");
    /* LARGE_TUPLE of 256 small integers. */
    phx_buf_t hex = {0}, json = {0};
    phx_buf_append_str(&hex, "836900000100");
    phx_buf_append_byte(&json, '[');
    for (int i = 1; i <= 256; i++) {
        if (i < 256)
            phx_buf_printf(&hex, "61%02x", i);
        else
            phx_buf_append_str(&hex, "6200000100");
        phx_buf_printf(&json, i > 1 ? ",%d" : "%d", i);
    }
    phx_buf_append_byte(&json, ']');
    expect_json((char *)hex.data, (char *)json.data);
    phx_buf_dispose(&hex);
    phx_buf_dispose(&json);
}

static void charlist_is_not_binary(void)
{
    phx_term_t *k = NULL, *m = NULL, *l = NULL;
    ASSERT_EQ(decode_hex("83 6b 0002 6869", NULL, &k), 0);
    ASSERT_EQ(decode_hex("83 6d 00000002 6869", NULL, &m), 0);
    ASSERT_EQ(decode_hex("83 6c 00000002 6168 6169 6a", NULL, &l), 0);
    ASSERT_EQ(k->type, PHX_TERM_CHARLIST);
    ASSERT_EQ(m->type, PHX_TERM_BINARY);
    ASSERT(phx_term_compare(k, m) != 0);
    ASSERT(phx_term_compare(k, m) < 0);   /* lists sort before binaries */
    ASSERT_EQ(phx_term_compare(k, l), 0); /* 'k' and 'l' forms of [104,105] */
    char *jk = json_of(k), *jm = json_of(m);
    ASSERT_STR_EQ(jk, "[104,105]");
    ASSERT_STR_EQ(jm, "\"hi\"");
    phx_free(jk);
    phx_free(jm);
    /* Re-encoding the LIST_EXT form gives STRING_EXT, as term_to_binary does. */
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(l, 0, &out), 0);
    size_t len;
    uint8_t *want = unhex("83 6b 0002 6869", &len);
    ASSERT_MEM_EQ(out.data, out.len, want, len);
    free(want);
    phx_buf_dispose(&out);
    phx_term_free(k);
    phx_term_free(m);
    phx_term_free(l);
}

/* ---- refused input ---- */

static void refused_tags(void)
{
    static const char *const bad[] = {
        "",                                  /* empty */
        "84 6101",                           /* version byte */
        "6101",                              /* no version byte */
        "83",                                /* no term */
        "83 50 00000003 789c4b040000620062", /* compressed */
        "83 70 00000010 00",                 /* NEW_FUN, cut short */
        "83 75 00000000",                    /* FUN, cut short */
        "83 79 0000",                        /* LOCAL */
        "83 52 00",                          /* ATOM_CACHE_REF */
        "83 6101 00",                        /* trailing byte */
        "83 6a 6a",                          /* trailing term */
        "83 00",
        "83 ff",
        "83 41", /* unknown tags */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_err(bad[i], PHX_ERR_INVALID);
    /* Well-formed terms of kinds phxd does not hold: PHX_ERR_DATA, so that a
     * token carrying one is told apart from a malformed or forged one. */
    static const char *const unheld[] = {
        "83 4d 00000001 07 80",                        /* bit binary */
        "83 58 7703616263 00000001 00000000 00000000", /* NEW_PID */
        "83 67 7703616263 00000001 00000000 00",       /* PID */
        "83 5a 0001 7703616263 00000000 00000001",     /* NEWER_REFERENCE */
        "83 72 0001 7703616263 00 00000001",           /* NEW_REFERENCE */
        "83 59 7703616263 00000001 00000000",          /* NEW_PORT */
        "83 78 7703616263 0000000000000001 00000000",  /* V4_PORT */
        "83 71 7701 6d 7701 66 6101",                  /* EXPORT */
        "83 6c 00000001 6101 6102",                    /* improper list [1|2] */
        "83 6c 00000001 6101 6b000161",                /* tail that is not NIL_EXT */
    };
    for (size_t i = 0; i < sizeof(unheld) / sizeof(unheld[0]); i++)
        expect_err(unheld[i], PHX_ERR_DATA);
}

static void duplicate_map_keys_rejected(void)
{
    expect_err("83 74 00000002 6101 6102 6101 6103", PHX_ERR_INVALID);
    /* The same integer in two encodings, the same atom in two encodings. */
    expect_err("83 74 00000002 6101 6102 6200000001 6103", PHX_ERR_INVALID);
    expect_err("83 74 00000002 64000161 6101 770161 6102", PHX_ERR_INVALID);
    expect_err("83 74 00000002 6b00020102 6101 6c00000002610161026a 6102", PHX_ERR_INVALID);
    expect_err("83 74 00000002 6d0000000161 6101 6d0000000161 6102", PHX_ERR_INVALID);
    /* 1 and 1.0 are different keys; "a" (binary) and a (atom) too. */
    expect_json("83 74 00000002 6101 6101 463ff0000000000000 6102", "{\"1\":1,\"1.0\":2}");
    expect_json("83 74 00000002 6d0000000161 6101 770161 6102", "{\"a\":2,\"a\":1}");
    /* Nested duplicate is found as well. */
    expect_err("83 68 01 74 00000002 6101 6102 6101 6103", PHX_ERR_INVALID);
}

static void declared_lengths_beyond_input(void)
{
    static const char *const bad[] = {
        "83 6d 00000005 61626364",       /* binary one byte short */
        "83 6d ffffffff 61",             /* huge binary */
        "83 6b 0005 61626364",           /* charlist short */
        "83 6b ffff",                    /* huge charlist */
        "83 6c ffffffff 6a",             /* huge list */
        "83 6c 00000002 6101 6a",        /* list without room for its tail */
        "83 6c 00000001 6101",           /* missing tail */
        "83 69 ffffffff 6101",           /* huge tuple */
        "83 68 03 6101 6102",            /* tuple short */
        "83 74 ffffffff 6101",           /* huge map */
        "83 74 00000002 6101 6102 6103", /* map short */
        "83 6e 08 00 0102030405",        /* bignum short */
        "83 6e 04",                      /* bignum without sign */
        "83 6f 00000004 00 010203",      /* large bignum short */
        "83 62 000001",                  /* INTEGER_EXT short */
        "83 61",                         /* SMALL_INTEGER_EXT short */
        "83 46 3ff800",                  /* NEW_FLOAT short */
        "83 64 00",                      /* atom length short */
        "83 6d 000000",                  /* binary length short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        phx_mem_reset_count();
        expect_err(bad[i], PHX_ERR_INVALID);
        /* Nothing was allocated from the declared counts: at most the
         * partial elements themselves (twice, for the two copies). */
        ASSERT(phx_mem_count() <= 8);
    }
}

static void every_prefix_of_valid_input_is_invalid(void)
{
    static const char *const good[] = {
        "83680374000000016d00000007757365725f6964612a6e06000068e5cf8b016200015180",
        ("837400000002640001627400000001640001636b000268696d00000001616c0000000561014640040"
         "000000000006400036e696c640004747275656802640001786d00000001796a"),
        "8363312e3530303030303030303030303030303030303030652b30300000000000",
    };
    for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
        size_t len;
        uint8_t *b = unhex(good[g], &len);
        phx_term_t *t = NULL;
        int full = phx_etf_decode(b, len, NULL, &t);
        {
            ASSERT_EQ(full, 0);
            phx_term_free(t);
        }
        for (size_t n = 0; n < len; n++) {
            uint8_t *cut = malloc(n ? n : 1);
            memcpy(cut, b, n);
            phx_term_t *u = NULL;
            ASSERT_EQ(phx_etf_decode(cut, n, NULL, &u), PHX_ERR_INVALID);
            ASSERT_EQ(decode_guarded(b, n, NULL, &u), PHX_ERR_INVALID);
            free(cut);
        }
        free(b);
    }
}

/* ---- limits at N and N+1 ---- */

static char *nested_tuples(int depth, const char *leaf)
{
    phx_buf_t b = {0};
    phx_buf_append_str(&b, "83");
    for (int i = 0; i < depth; i++)
        phx_buf_append_str(&b, "6801");
    phx_buf_append_str(&b, leaf);
    return (char *)b.data;
}

static void depth_limit_exact(void)
{
    char *h = nested_tuples(64, "6101");
    phx_term_t *t = NULL;
    ASSERT_EQ(decode_hex(h, NULL, &t), 0);
    phx_term_free(t);
    phx_free(h);
    h = nested_tuples(65, "6101");
    expect_err(h, PHX_ERR_LIMIT);
    phx_free(h);
    /* The innermost container counts even when empty; [] and charlists
     * are not containers. */
    h = nested_tuples(63, "6800");
    ASSERT_EQ(decode_hex(h, NULL, &t), 0);
    phx_term_free(t);
    phx_free(h);
    h = nested_tuples(64, "6800");
    expect_err(h, PHX_ERR_LIMIT);
    phx_free(h);
    h = nested_tuples(64, "6a");
    ASSERT_EQ(decode_hex(h, NULL, &t), 0);
    phx_term_free(t);
    phx_free(h);
    /* Lists and maps count the same way; a configured limit applies. */
    phx_etf_limits_t lim = {.max_depth = 3};
    expect_json_lim("83 6c00000001 6c00000001 6c00000001 6101 6a 6a 6a", &lim, "[[[1]]]");
    expect_err_lim("83 6c00000001 6c00000001 6c00000001 6c00000001 6101 6a 6a 6a 6a", &lim,
                   PHX_ERR_LIMIT);
    expect_json_lim("83 7400000001 6101 7400000001 6101 7400000001 6101 6101", &lim,
                    "{\"1\":{\"1\":{\"1\":1}}}");
    expect_err_lim("83 7400000001 6101 7400000001 6101 7400000001 6101 7400000000", &lim,
                   PHX_ERR_LIMIT);
    /* A deep input far beyond the limit fails fast, without recursion. */
    h = nested_tuples(100000, "6101");
    expect_err(h, PHX_ERR_LIMIT);
    phx_free(h);
}

static void node_limit_exact(void)
{
    /* A list of k integers is k + 1 nodes. */
    phx_etf_limits_t lim = {.max_nodes = 10};
    expect_json_lim("83 6c00000009 610161026103610461056106610761086109 6a", &lim,
                    "[1,2,3,4,5,6,7,8,9]");
    expect_err_lim("83 6c0000000a 61016102610361046105610661076108610961 0a 6a", &lim,
                   PHX_ERR_LIMIT);
    /* A map of k pairs is 2k + 1 nodes. */
    lim.max_nodes = 5;
    expect_json_lim("83 74 00000002 6101 6102 6103 6104", &lim, "{\"1\":2,\"3\":4}");
    lim.max_nodes = 4;
    expect_err_lim("83 74 00000002 6101 6102 6103 6104", &lim, PHX_ERR_LIMIT);
    /* A charlist or binary is one node whatever its length. */
    lim.max_nodes = 1;
    expect_json_lim("83 6b 0003 010203", &lim, "[1,2,3]");
    /* The default limit: 10000 nodes. */
    phx_buf_t hex = {0};
    phx_buf_printf(&hex, "836c%08x", 9999);
    for (int i = 0; i < 9999; i++)
        phx_buf_append_str(&hex, "6a");
    phx_buf_append_str(&hex, "6a");
    phx_term_t *t = NULL;
    ASSERT_EQ(decode_hex((char *)hex.data, NULL, &t), 0);
    phx_term_free(t);
    hex.len = 0;
    phx_buf_printf(&hex, "836c%08x", 10000);
    for (int i = 0; i < 10001; i++)
        phx_buf_append_str(&hex, "6a");
    expect_err((char *)hex.data, PHX_ERR_LIMIT);
    phx_buf_dispose(&hex);
}

static void bignum_limit_exact(void)
{
    /* 2^511 needs 64 bytes (accepted), 2^512 needs 65 (refused), in both
     * tags; the limit is on the declared n. */
    phx_buf_t h64 = {0}, h65 = {0}, o64 = {0}, o65 = {0};
    phx_buf_append_str(&h64, "836e4000");
    phx_buf_append_str(&h65, "836e4100");
    phx_buf_append_str(&o64, "836f0000004000");
    phx_buf_append_str(&o65, "836f0000004100");
    for (int i = 0; i < 63; i++) {
        phx_buf_append_str(&h64, "00");
        phx_buf_append_str(&o64, "00");
    }
    for (int i = 0; i < 64; i++) {
        phx_buf_append_str(&h65, "00");
        phx_buf_append_str(&o65, "00");
    }
    phx_buf_append_str(&h64, "80");
    phx_buf_append_str(&o64, "80");
    phx_buf_append_str(&h65, "01");
    phx_buf_append_str(&o65, "01");
    const char *two_511 = "67039039649712985497870124991029230637396829102961966888617807218608820"
                          "15036773488400937149083451713845015929093243025426876941405973284973216"
                          "824503042048";
    expect_json((char *)h64.data, two_511);
    expect_json((char *)o64.data, two_511);
    expect_err((char *)h65.data, PHX_ERR_LIMIT);
    expect_err((char *)o65.data, PHX_ERR_LIMIT);
    /* Even high zero bytes count: the limit guards the bytes read. */
    phx_etf_limits_t lim = {.max_bignum_bytes = 65};
    expect_json_lim(
        (char *)h65.data, &lim,
        "13407807929942597099574024998205846127479365820592393377723561443721764030073"
        "546976801874298166903427690031858186486050853753882811946569946433649006084096");
    /* A LARGE_BIG declaring 2^32-1 bytes in a tiny input: LIMIT, no alloc. */
    phx_mem_reset_count();
    expect_err("836f ffffffff 00 01", PHX_ERR_LIMIT);
    lim.max_bignum_bytes = 0xffffffff;
    expect_err_lim("836f ffffffff 00 01", &lim, PHX_ERR_INVALID);
    ASSERT_EQ(phx_mem_count(), 0);
    phx_buf_dispose(&h64);
    phx_buf_dispose(&h65);
    phx_buf_dispose(&o64);
    phx_buf_dispose(&o65);
}

/* ---- encoding: term_to_binary byte for byte ---- */

static void encode_reproduces_erlang(void)
{
    /* Payloads of docs/protocol.md §9 (OTP 25, so 'd' atoms). */
    static const char *const latin1[] = {
        "83680361016e06000068e5cf8b016200015180",
        "83680361636e06000068e5cf8b016200015180",
        "836803612a6e06000068e5cf8b016200015180",
        "8368036d0000000568656c6c6f6e06000068e5cf8b016200015180",
        "83680374000000016d00000007757365725f6964612a6e06000068e5cf8b016200015180",
        "8368036400036e696c6e06000068e5cf8b016200015180",
        "8368036e0d00d20a3f4eeee073c3f60fe98e016e06000068e5cf8b016200015180",
        "83680362ffffffff6e06000068e5cf8b016200015180",
        "8368036b00030102036e06000068e5cf8b016200015180",
        "83680368026400026f6b6d00000001786e06000068e5cf8b016200015180",
        "836803463ff80000000000006e06000068e5cf8b016200015180",
        "836803740000000264000561646d696e64000474727565640002696461076e06000068e5cf8b016200015180",
        "836803612a6e06000068e5cf8b016200000e10",
        "836803612a6e06000068e5cf8b01640008696e66696e697479",
        "836802612a6e06000068e5cf8b01",
        "83740000000264000464617461612a6400067369676e65646e06000068e5cf8b01",
        /* Table 7.5 and other Erlang output. */
        "836200000100",
        "8362ffffffff",
        "836e040000000080",
        "836e040101000080",
        "836e05000000000001",
        "836e0900000000000000000001",
        "836d000000054a6f73c3a9",
        "83463ff8000000000000",
        "836a",
        "836b0003010203",
        "836c0000000361016102620000012c6a",
        "836c000000016d00000001616a",
        "8368026400026f6b6d0000000178",
        "83740000000164000269646107",
        "83640008696e66696e697479",
        "8374000000036d000000016161026d00000002616261036d00000001626101",
        "834681a56e1fc2f8f359",
        "836c0000000461016102610362ffffffff6a",
        "837400000002640001627400000001640001636b000268696d00000001616c0000000561014640040"
        "000000000006400036e696c640004747275656802640001786d00000001796a",
        "837400000007610164000161463ff000000000000064000162640001786400016368016101640001"
        "647400000000640001676b000101640001656d000000016b64000166",
        "83640003e97465",
    };
    for (size_t i = 0; i < sizeof(latin1) / sizeof(latin1[0]); i++)
        expect_reencode(latin1[i], PHX_ETF_LATIN1_ATOMS);
    /* OTP >= 26 forms (V7, V14, minor_version 2). */
    expect_reencode("83680377036e696c6e06000068e5cf8b016200015180", 0);
    expect_reencode("83680374000000017702696461076e06000068e5cf8b016200015180", 0);
    expect_reencode("837704f09f9880", 0);
    expect_reencode("837704f09f9880", PHX_ETF_LATIN1_ATOMS); /* not Latin-1: stays 'w' */
    expect_reencode("837704c3a97465", 0);
}

static void encode_integer_boundaries(void)
{
    static const struct {
        int64_t v;
        const char *hex;
    } cases[] = {
        {0, "6100"},
        {255, "61ff"},
        {256, "6200000100"},
        {-1, "62ffffffff"},
        {INT32_MAX, "627fffffff"},
        {INT32_MIN, "6280000000"},
        {(int64_t)INT32_MAX + 1, "6e040000000080"},
        {(int64_t)INT32_MIN - 1, "6e040101000080"},
        {1700000000000, "6e06000068e5cf8b01"},
        {INT64_MAX, "6e08 00 ffffffffffffff7f"},
        {INT64_MIN, "6e08 01 0000000000000080"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        phx_buf_t out = {0};
        ASSERT_EQ(phx_etf_encode_int64(&out, cases[i].v), 0);
        size_t len;
        uint8_t *want = unhex(cases[i].hex, &len);
        ASSERT_MEM_EQ(out.data, out.len, want, len);
        free(want);
        phx_term_t *t = NULL;
        ASSERT_EQ(phx_term_new_int(&t, cases[i].v), 0);
        int64_t back = 0;
        ASSERT(phx_term_get_int64(t, &back));
        ASSERT_EQ(back, cases[i].v);
        phx_term_free(t);
        phx_buf_dispose(&out);
    }
    /* A 300-byte magnitude needs LARGE_BIG_EXT. */
    uint8_t mag[300] = {0};
    mag[299] = 1;
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_term_new_bigint(&t, true, mag, sizeof(mag)), 0);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(t, 0, &out), 0);
    ASSERT_EQ(out.len, 1 + 1 + 4 + 1 + 300);
    ASSERT_EQ(out.data[1], 'o');
    ASSERT_EQ(out.data[5], 0x2c);
    ASSERT_EQ(out.data[6], 1);
    int64_t v;
    ASSERT(!phx_term_get_int64(t, &v));
    phx_term_free(t);
    phx_buf_dispose(&out);
}

static void encode_lists_and_maps_like_term_to_binary(void)
{
    /* Lists of 65535 bytes are STRING_EXT, 65536 are LIST_EXT. */
    for (size_t n = 65535; n <= 65536; n++) {
        uint8_t *bytes = malloc(n);
        memset(bytes, 7, n);
        phx_term_t *t = NULL;
        ASSERT_EQ(phx_term_new_charlist(&t, bytes, n), 0);
        phx_buf_t out = {0};
        ASSERT_EQ(phx_etf_encode(t, 0, &out), 0);
        if (n == 65535) {
            ASSERT_EQ(out.data[1], 'k');
            ASSERT_EQ(out.len, 4 + n);
        } else {
            ASSERT_EQ(out.data[1], 'l');
            ASSERT_EQ(out.len, 1 + 5 + 2 * n + 1);
        }
        phx_term_t *back = NULL;
        phx_etf_limits_t lim = {.max_nodes = 100000};
        ASSERT_EQ(phx_etf_decode(out.data, out.len, &lim, &back), 0);
        ASSERT_EQ(phx_term_compare(t, back), 0);
        phx_term_free(back);
        phx_term_free(t);
        phx_buf_dispose(&out);
        free(bytes);
    }
    /* A map built out of order is written in term order. */
    phx_term_pair_t pairs[3];
    ASSERT_EQ(phx_term_new_binary(&pairs[0].key, "b", 1), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[0].value, 1), 0);
    ASSERT_EQ(phx_term_new_binary(&pairs[1].key, "a", 1), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[1].value, 2), 0);
    ASSERT_EQ(phx_term_new_binary(&pairs[2].key, "ab", 2), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[2].value, 3), 0);
    phx_term_t *m = NULL;
    ASSERT_EQ(phx_term_new_map(&m, pairs, 3), 0);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(m, 0, &out), 0);
    size_t len;
    uint8_t *want = unhex("8374000000036d000000016161026d00000002616261036d00000001626101", &len);
    ASSERT_MEM_EQ(out.data, out.len, want, len);
    free(want);
    phx_buf_dispose(&out);
    phx_term_free(m);
    /* Duplicate keys are refused by the constructor, which frees them. */
    ASSERT_EQ(phx_term_new_atom(&pairs[0].key, "k", 1), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[0].value, 1), 0);
    ASSERT_EQ(phx_term_new_atom(&pairs[1].key, "k", 1), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[1].value, 2), 0);
    ASSERT_EQ(phx_term_new_map(&m, pairs, 2), PHX_ERR_INVALID);
}

static void constructors_validate(void)
{
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_term_new_float(&t, NAN), PHX_ERR_INVALID);
    ASSERT_EQ(phx_term_new_float(&t, INFINITY), PHX_ERR_INVALID);
    ASSERT_EQ(phx_term_new_atom(&t, "\xff", 1), PHX_ERR_INVALID);
    char long_atom[257];
    memset(long_atom, 'a', 256);
    ASSERT_EQ(phx_term_new_atom(&t, long_atom, 256), PHX_ERR_INVALID);
    ASSERT_EQ(phx_term_new_atom(&t, long_atom, 255), 0);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_etf_encode(t, 0, &out), 0);
    ASSERT_EQ(out.data[1], 'w');
    ASSERT_EQ(out.data[2], 255);
    phx_buf_dispose(&out);
    phx_term_free(t);
    /* 200 two-byte characters: 400 bytes, ATOM_UTF8_EXT 'v'. */
    char wide[400];
    for (int i = 0; i < 200; i++)
        wide[2 * i] = '\xc3', wide[2 * i + 1] = '\xa9';
    ASSERT_EQ(phx_term_new_atom(&t, wide, 400), 0);
    ASSERT_EQ(phx_etf_encode(t, 0, &out), 0);
    ASSERT_EQ(out.data[1], 'v');
    ASSERT_EQ(out.len, 4 + 400);
    phx_buf_dispose(&out);
    /* The OTP 25 form writes the 200 Latin-1 bytes. */
    ASSERT_EQ(phx_etf_encode(t, PHX_ETF_LATIN1_ATOMS, &out), 0);
    ASSERT_EQ(out.data[1], 'd');
    ASSERT_EQ(out.len, 4 + 200);
    ASSERT_EQ(out.data[4], 0xe9);
    phx_buf_dispose(&out);
    phx_term_free(t);
    phx_term_free(NULL);
}

/* ---- term order ---- */

static void term_order_matches_erlang(void)
{
    /* Ascending in map-key order: integers before all floats. */
    static const char *const json_sorted[] = {
        "-18446744073709551616",
        "-1",
        "0",
        "1",
        "2",
        "18446744073709551616",
        "-1.5",
        "1.0",
        "1.5",
        "18446744073709551616.0",
        "1.0e300",
        "[]",
        "[1]",
        "[1,2]",
        "[2]",
        "[1.5]",
        "[\"a\"]",
        "\"\"",
        "\"a\"",
        "\"ab\"",
        "\"b\"",
    };
    size_t n = sizeof(json_sorted) / sizeof(json_sorted[0]);
    phx_term_t *t[32];
    for (size_t i = 0; i < n; i++)
        t[i] = from_json(json_sorted[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = phx_term_compare(t[i], t[j]);
            int want = i < j ? -1 : i > j;
            if ((c > 0) - (c < 0) != want)
                phx_test_fail(__FILE__, __LINE__, "compare %s %s = %d", json_sorted[i],
                              json_sorted[j], c);
        }
    for (size_t i = 0; i < n; i++)
        phx_term_free(t[i]);
    /* numbers < atoms < tuples < maps < lists < binaries */
    phx_term_t *num = NULL, *atom = NULL, *tuple = NULL, *map = NULL, *list = NULL, *bin = NULL;
    ASSERT_EQ(decode_hex("83 6e08 00 ffffffffffffffff", NULL, &num), 0);
    ASSERT_EQ(decode_hex("83 7700", NULL, &atom), 0);
    ASSERT_EQ(decode_hex("83 6800", NULL, &tuple), 0);
    ASSERT_EQ(decode_hex("83 7400000000", NULL, &map), 0);
    ASSERT_EQ(decode_hex("83 6a", NULL, &list), 0);
    ASSERT_EQ(decode_hex("83 6d00000000", NULL, &bin), 0);
    phx_term_t *order[] = {num, atom, tuple, map, list, bin};
    for (int i = 0; i < 5; i++)
        ASSERT(phx_term_compare(order[i], order[i + 1]) < 0);
    for (int i = 0; i < 6; i++)
        phx_term_free(order[i]);
    /* Tuples by size first; maps by size, then keys, then values. */
    phx_term_t *a = from_json("{\"b\":1}"), *b = from_json("{\"a\":1,\"b\":1}"),
               *c = from_json("{\"a\":2,\"b\":0}");
    ASSERT(phx_term_compare(a, b) < 0);
    ASSERT(phx_term_compare(b, c) < 0);
    phx_term_free(a);
    phx_term_free(b);
    phx_term_free(c);
    /* The map of OTP's example keeps 2^70 before 2.5 (Erlang/OTP 25 output). */
    expect_json(
        "83740000000362ffffffff640001786e0900000000000000000040640001794640040000000000006400017a",
        "{\"-1\":\"x\",\"1180591620717411303424\":\"y\",\"2.5\":\"z\"}");
    expect_reencode(
        "83740000000362ffffffff640001786e0900000000000000000040640001794640040000000000006400017a",
        PHX_ETF_LATIN1_ATOMS);
}

/* ---- JSON out ---- */

static void json_strings_and_escapes(void)
{
    expect_json("83 6d00000006 22 5c 0a 09 01 7f", "\"\\\"\\\\\\n\\t\\u0001\x7f\"");
    expect_json("83 6d00000005 08 0c 0d 1f 2f", "\"\\b\\f\\r\\u001F/\"");
    /* Not UTF-8: every byte is a Latin-1 character, high ones escaped. */
    expect_json("83 6d00000004 61 ff c3 22", "\"a\\u00FF\\u00C3\\\"\"");
    expect_json("83 6d00000002 c0 af", "\"\\u00C0\\u00AF\"");
    /* Valid UTF-8 is written as it is. */
    expect_json("83 6d00000004 f09f9880", "\"\xf0\x9f\x98\x80\"");
    /* Map keys of every kind. */
    expect_json("83 74 00000004 6101 6101 770161 6102 6d00000002 c3a9 6103 6d00000001 ff 6104",
                "{\"1\":1,\"a\":2,\"\xc3\xa9\":3,\"\\u00FF\":4}");
    expect_json("83 74 00000002 6e0900000000000000000001 6101 6802 6101 6d000000012a 6102",
                "{\"18446744073709551616\":1,\"[1,\\\"*\\\"]\":2}");
    expect_json("83 74 00000001 7703 6e696c 7703 6e696c", "{\"nil\":null}");
}

static void json_floats_shortest(void)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {1.5, "1.5"},
        {42.0, "42.0"},
        {1.0e20, "1.0e20"},
        {1.0e21, "1.0e21"},
        {0.1, "0.1"},
        {0.0001, "0.0001"},
        {0.00001, "1.0e-5"},
        {1.0e-7, "1.0e-7"},
        {123456789.0, "123456789.0"},
        {1.2345678901234567e30, "1.2345678901234567e30"},
        {5.0e-324, "5.0e-324"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
        {100.0, "100.0"},
        {1.0e15, "1.0e15"},
        {2.5e-5, "2.5e-5"},
        {123.456, "123.456"},
        {-0.25, "-0.25"},
        {1234567.0, "1234567.0"},
        {12345678.0, "12345678.0"},
        {0.3, "0.3"},
        {2.0 / 3.0, "0.6666666666666666"},
        {1e23, "1.0e23"},
        /* From 2^53 up always scientific (Erlang/OTP 25 output). */
        {9007199254740991.0, "9007199254740991.0"},
        {9007199254740992.0, "9.007199254740992e15"},
        {8049386884219791.0, "8049386884219791.0"},
        {2887672609231096.5, "2887672609231096.5"},
        {39856585926678330.0, "3.985658592667833e16"},
        {-9107488893498878.0, "-9.107488893498878e15"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        phx_term_t *t = NULL;
        ASSERT_EQ(phx_term_new_float(&t, cases[i].v), 0);
        char *j = json_of(t);
        if (strcmp(j, cases[i].text) != 0)
            phx_test_fail(__FILE__, __LINE__, "%.17g: got %s want %s", cases[i].v, j,
                          cases[i].text);
        /* And it reads back as the same double. */
        ASSERT(strtod(j, NULL) == cases[i].v);
        phx_free(j);
        phx_term_free(t);
    }
}

static void id_string_forms(void)
{
    static const struct {
        const char *hex;
        const char *id;
    } cases[] = {
        {"83 612a", "42"},
        {"83 62ffffffff", "-1"},
        {"83 6e0900000000000000000001", "18446744073709551616"},
        {"83 6d00000003 616263", "abc"},
        {"83 6400036e696c", "nil"},
        {"83 77 03 666f6f", "foo"},
        {"83 46 3ff8000000000000", "1.5"},
        {"83 6802 6101 6d0000000178", "[1,\"x\"]"},
        {"83 6b 0002 6869", "[104,105]"},
        {"83 74 00000001 6d00000001 61 6101", "{\"a\":1}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        phx_term_t *t = NULL;
        ASSERT_EQ(decode_hex(cases[i].hex, NULL, &t), 0);
        phx_buf_t b = {0};
        ASSERT_EQ(phx_buf_append_str(&b, "user:"), 0);
        ASSERT_EQ(phx_term_id_string(t, &b), 0);
        ASSERT_EQ(b.len, 5 + strlen(cases[i].id));
        ASSERT_STR_EQ((char *)b.data + 5, cases[i].id);
        phx_buf_dispose(&b);
        phx_term_free(t);
    }
    /* A binary id is copied as bytes, even when not UTF-8. */
    phx_term_t *t = NULL;
    ASSERT_EQ(decode_hex("83 6d00000002 ff00", NULL, &t), 0);
    phx_buf_t b = {0};
    ASSERT_EQ(phx_term_id_string(t, &b), 0);
    ASSERT_MEM_EQ(b.data, b.len, "\xff\x00", 2);
    phx_buf_dispose(&b);
    phx_term_free(t);
}

static void map_get_binary_and_atom_keys(void)
{
    phx_term_t *t = NULL;
    /* %{"user_id" => 42} */
    ASSERT_EQ(decode_hex("83 74 00000001 6d00000007757365725f6964 612a", NULL, &t), 0);
    int64_t v = 0;
    ASSERT(phx_term_get_int64(phx_term_map_get(t, "user_id", 7), &v));
    ASSERT_EQ(v, 42);
    ASSERT(phx_term_map_get(t, "user", 4) == NULL);
    phx_term_free(t);
    /* %{user_id: 7} with OTP 25 and OTP 26 atoms */
    ASSERT_EQ(decode_hex("83 74 00000001 640007757365725f6964 6107", NULL, &t), 0);
    ASSERT(phx_term_get_int64(phx_term_map_get(t, "user_id", 7), &v));
    ASSERT_EQ(v, 7);
    phx_term_free(t);
    ASSERT_EQ(decode_hex("83 74 00000001 7707757365725f6964 6108", NULL, &t), 0);
    ASSERT(phx_term_get_int64(phx_term_map_get(t, "user_id", 7), &v));
    ASSERT_EQ(v, 8);
    ASSERT(phx_term_map_get(NULL, "user_id", 7) == NULL);
    phx_term_free(t);
    /* Both present: the binary key wins. */
    ASSERT_EQ(decode_hex("83 74 00000002 770161 6101 6d0000000161 6102", NULL, &t), 0);
    ASSERT(phx_term_get_int64(phx_term_map_get(t, "a", 1), &v));
    ASSERT_EQ(v, 2);
    phx_term_free(t);
    /* Not a map. */
    ASSERT_EQ(decode_hex("83 612a", NULL, &t), 0);
    ASSERT(phx_term_map_get(t, "a", 1) == NULL);
    ASSERT(phx_term_is_atom(t, "a") == false);
    phx_term_free(t);
}

/* ---- JSON in ---- */

static void json_to_term_like_jason(void)
{
    expect_json_etf("42", "83612a", "42");
    expect_json_etf("-1", "8362ffffffff", "-1");
    expect_json_etf("-0", "836100", "0");
    expect_json_etf("18446744073709551616", "836e0900000000000000000001", "18446744073709551616");
    expect_json_etf("-9223372036854775809", "836e08010100000000000080", "-9223372036854775809");
    expect_json_etf("123456789012345678901234567890", "836e0d00d20a3f4eeee073c3f60fe98e01",
                    "123456789012345678901234567890");
    expect_json_etf("1.5", "83463ff8000000000000", "1.5");
    expect_json_etf("1e2", "83464059000000000000", "100.0");
    expect_json_etf("1E-2", "83463f847ae147ae147b", "0.01");
    expect_json_etf("\"hello\"", "836d0000000568656c6c6f", "\"hello\"");
    expect_json_etf("\"Jos\\u00e9\"", "836d000000054a6f73c3a9", "\"Jos\xc3\xa9\"");
    expect_json_etf("\"\\ud83d\\ude00\"", "836d00000004f09f9880", "\"\xf0\x9f\x98\x80\"");
    expect_json_etf("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "836d00000008225c2f080c0a0d09",
                    "\"\\\"\\\\/\\b\\f\\n\\r\\t\"");
    expect_json_etf("null", "83 7703 6e696c", "null");
    expect_json_etf("true", "83 7704 74727565", "true");
    expect_json_etf("false", "83 7705 66616c7365", "false");
    expect_json_etf("[]", "836a", "[]");
    expect_json_etf("[1,2,3]", "836b0003010203", "[1,2,3]");
    expect_json_etf("[1,2,300]", "836c0000000361016102620000012c6a", "[1,2,300]");
    expect_json_etf("[\"a\"]", "836c000000016d00000001616a", "[\"a\"]");
    expect_json_etf("[0,255]", "836b000200ff", "[0,255]");
    expect_json_etf("[-1]", "836c0000000162ffffffff6a", "[-1]");
    expect_json_etf("{}", "837400000000", "{}");
    expect_json_etf(" {\"user_id\" : 42 } ", "8374000000016d00000007757365725f6964612a",
                    "{\"user_id\":42}");
    expect_json_etf("{\"b\":1,\"ab\":3,\"a\":2}",
                    "8374000000036d000000016161026d00000002616261036d00000001626101",
                    "{\"a\":2,\"ab\":3,\"b\":1}");
    /* A repeated name keeps the last value. */
    expect_json_etf("{\"a\":1,\"b\":2,\"a\":3}", "8374000000026d0000000161 6103 6d0000000162 6102",
                    "{\"a\":3,\"b\":2}");
    expect_json_etf("{\"a\":[{\"b\":null}]}",
                    "837400000001 6d0000000161 6c00000001 7400000001 6d0000000162 77036e696c 6a",
                    "{\"a\":[{\"b\":null}]}");
}

static void json_to_term_rejects(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "NaN",
        "Infinity",
        "1e400",
        "-1e400",
        "tru",
        "nul",
        "True",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"a\x01\"",
        "\"\xff\"",
        "\"\xc3\"",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "{\"a\":1,}",
        "{\"a\":1",
        "[",
        "]",
        "1 2",
        "\"a\"x",
        "{}{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        phx_term_t *t = NULL;
        int rv = phx_json_to_term(bad[i], strlen(bad[i]), NULL, &t);
        if (rv != PHX_ERR_INVALID)
            phx_test_fail(__FILE__, __LINE__, "'%s': %s", bad[i], phx_err_name(rv));
    }
    /* An embedded NUL is invalid, outside or inside strings. */
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_json_to_term("1\0", 2, NULL, &t), PHX_ERR_INVALID);
    ASSERT_EQ(phx_json_to_term("\"\0\"", 3, NULL, &t), PHX_ERR_INVALID);
    /* 1e-400 underflows to 0.0, as a float. */
    ASSERT_EQ(phx_json_to_term("1e-400", 6, NULL, &t), 0);
    ASSERT_EQ(t->type, PHX_TERM_FLOAT);
    phx_term_free(t);
}

static void json_to_term_limits(void)
{
    phx_etf_limits_t lim = {.max_depth = 3};
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_json_to_term("[[[1]]]", 7, &lim, &t), 0);
    phx_term_free(t);
    ASSERT_EQ(phx_json_to_term("[[[[1]]]]", 9, &lim, &t), PHX_ERR_LIMIT);
    ASSERT_EQ(phx_json_to_term("{\"a\":{\"a\":{\"a\":{}}}}", 20, &lim, &t), PHX_ERR_LIMIT);
    ASSERT_EQ(phx_json_to_term("{\"a\":{\"a\":{\"a\":1}}}", 19, &lim, &t), 0);
    phx_term_free(t);
    /* Nodes: [1,2] is 3. */
    lim = (phx_etf_limits_t){.max_nodes = 3};
    ASSERT_EQ(phx_json_to_term("[1,2]", 5, &lim, &t), 0);
    phx_term_free(t);
    ASSERT_EQ(phx_json_to_term("[1,2,3]", 7, &lim, &t), PHX_ERR_LIMIT);
    /* Integers up to max_bignum_bytes magnitude bytes: 2^64 - 1 fits in 8,
     * 2^64 needs 9. */
    lim = (phx_etf_limits_t){.max_bignum_bytes = 8};
    ASSERT_EQ(phx_json_to_term("18446744073709551615", 20, &lim, &t), 0);
    phx_term_free(t);
    ASSERT_EQ(phx_json_to_term("18446744073709551616", 20, &lim, &t), PHX_ERR_LIMIT);
    /* Default depth: 64 nested arrays parse, 65 do not. */
    char deep[200];
    for (int d = 64; d <= 65; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        int rv = phx_json_to_term(deep, 2 * (size_t)d, NULL, &t);
        ASSERT_EQ(rv, d == 64 ? 0 : PHX_ERR_LIMIT);
        if (rv == 0)
            phx_term_free(t);
    }
}

/* ---- round trips ---- */

static void decode_encode_roundtrip(void)
{
    static const char *const json[] = {
        "[1,[2,[3,[]]],{\"k\":[1.5,-2,\"s\"]}]",
        "{\"a\":{\"b\":{\"c\":[true,false,null]}}}",
        "[18446744073709551616,-18446744073709551616,0.1]",
        "\"\"",
        "[[],[[]],{}]",
    };
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        phx_term_t *t = from_json(json[i]);
        phx_buf_t a = {0}, b = {0};
        ASSERT_EQ(phx_etf_encode(t, 0, &a), 0);
        phx_term_t *u = NULL;
        ASSERT_EQ(phx_etf_decode(a.data, a.len, NULL, &u), 0);
        ASSERT_EQ(phx_term_compare(t, u), 0);
        ASSERT_EQ(phx_etf_encode(u, 0, &b), 0);
        ASSERT_MEM_EQ(a.data, a.len, b.data, b.len);
        char *j = json_of(u);
        ASSERT_STR_EQ(j, json[i]);
        phx_free(j);
        phx_buf_dispose(&a);
        phx_buf_dispose(&b);
        phx_term_free(t);
        phx_term_free(u);
    }
}

/* ---- allocation failure ---- */

static void allocation_failure_is_clean(void)
{
    const char *hex = "837400000002640001627400000001640001636b000268696d00000001616c000000056101"
                      "4640040000000000006400036e696c640004747275656802640001786d00000001796a";
    size_t len;
    uint8_t *b = unhex(hex, &len);
    const char *json = "{\"a\":[1,2.5,null,{\"x\":[1,2,300]},\"s\",18446744073709551616],"
                       "\"b\":[1,2,3],\"a\":0}";
    phx_term_t *t = NULL;
    unsigned long n;
    int rv = PHX_ERR_NOMEM;
    for (n = 1; n < 500 && rv != 0; n++) {
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_etf_decode(b, len, NULL, &t);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
    }
    ASSERT_EQ(rv, 0);
    ASSERT(n > 10); /* it did fail at every earlier allocation */
    rv = PHX_ERR_NOMEM;
    for (n = 1; n < 500 && rv != 0; n++) {
        phx_buf_t out = {0};
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_term_to_json(t, &out);
        if (rv == 0)
            rv = phx_etf_encode(t, 0, &out);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        phx_buf_dispose(&out);
    }
    ASSERT_EQ(rv, 0);
    phx_term_free(t);
    rv = PHX_ERR_NOMEM;
    for (n = 1; n < 500 && rv != 0; n++) {
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_json_to_term(json, strlen(json), NULL, &t);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
    }
    ASSERT_EQ(rv, 0);
    ASSERT(n > 10);
    phx_term_free(t);
    free(b);
    assert_no_leaks();
}

/* keep_other: what the server refuses is kept for display as
 * PHX_TERM_OTHER, printed by phx_term_to_text; malformed input stays
 * refused, and without the flag nothing changes. */
static void keep_other_for_display(void)
{
    static const struct {
        const char *name;
        uint8_t bytes[48];
        size_t len;
        const char *text;
    } cases[] = {
        {"improper list", {131, 'l', 0, 0, 0, 1, 'a', 1, 'a', 2}, 10, "[1 | 2]"},
        {"pid", {131, 'X', 'w', 1, 'n', 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0}, 17, "#PID<n.7.1>"},
        {"map of export",
         {131, 't', 0,   0,   0,   1,   'w', 1,   'f', 'q', 'w', 5,
          'l', 'i', 's', 't', 's', 'w', 3,   'm', 'a', 'p', 'a', 2},
         24,
         "%{:f => &:lists.map/2}"},
        {"bitstring", {131, 'M', 0, 0, 0, 2, 3, 1, 0xa0}, 9, "<<1, 5::size(3)>>"},
        {"reference",
         {131, 'Z', 0, 2, 'w', 1, 'n', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2},
         19,
         "#Reference<n.2.1>"},
        {"tuple with a port",
         {131, 'h', 2, 'w', 2, 'o', 'k', 'Y', 'w', 1, 'n', 0, 0, 0, 9, 0, 0, 0, 0},
         19,
         "{:ok, #Port<n.9>}"},
    };
    phx_etf_limits_t keep = {.keep_other = true};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        phx_term_t *t = NULL;
        ASSERT_EQ(phx_etf_decode(cases[i].bytes, cases[i].len, NULL, &t), PHX_ERR_DATA);
        ASSERT_EQ(phx_etf_decode(cases[i].bytes, cases[i].len, &keep, &t), 0);
        phx_buf_t text = {0}, json = {0};
        ASSERT_EQ(phx_term_to_json(t, &json), PHX_ERR_INVALID);
        ASSERT_EQ(phx_term_to_text(t, &text), 0);
        ASSERT_STR_EQ((const char *)text.data, cases[i].text);
        /* Re-encoding gives the same bytes back. */
        phx_buf_t enc = {0};
        ASSERT_EQ(phx_etf_encode(t, 0, &enc), 0);
        ASSERT_MEM_EQ(enc.data, enc.len, cases[i].bytes, cases[i].len);
        phx_buf_dispose(&enc);
        phx_buf_dispose(&text);
        phx_buf_dispose(&json);
        phx_term_free(t);
    }
    /* Still refused: truncations of the cases, compressed terms, old funs. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t n = 1; n < cases[i].len; n++) {
            phx_term_t *t = NULL;
            ASSERT(phx_etf_decode(cases[i].bytes, n, &keep, &t) < 0);
        }
    static const uint8_t compressed[] = {131, 'P', 0, 0, 0, 1, 0x78, 0x9c};
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_etf_decode(compressed, sizeof(compressed), &keep, &t), PHX_ERR_INVALID);
    /* Plain terms print too. */
    static const char json[] = "{\"a\":[1,2.5,null,\"x\"],\"b\":true}";
    ASSERT_EQ(phx_json_to_term(json, sizeof(json) - 1, NULL, &t), 0);
    phx_buf_t text = {0};
    ASSERT_EQ(phx_term_to_text(t, &text), 0);
    ASSERT_STR_EQ((const char *)text.data, "%{\"a\" => [1, 2.5, nil, \"x\"], \"b\" => true}");
    phx_buf_dispose(&text);
    phx_term_free(t);
}

const phx_test_t phx_tests_etf[] = {
    {"keep_other_for_display", keep_other_for_display},
    {"integers_every_encoding", integers_every_encoding},
    {"floats_new_and_legacy", floats_new_and_legacy},
    {"atoms_every_encoding", atoms_every_encoding},
    {"atom_length_limit", atom_length_limit},
    {"containers_every_encoding", containers_every_encoding},
    {"charlist_is_not_binary", charlist_is_not_binary},
    {"refused_tags", refused_tags},
    {"duplicate_map_keys_rejected", duplicate_map_keys_rejected},
    {"declared_lengths_beyond_input", declared_lengths_beyond_input},
    {"every_prefix_of_valid_input_is_invalid", every_prefix_of_valid_input_is_invalid},
    {"depth_limit_exact", depth_limit_exact},
    {"node_limit_exact", node_limit_exact},
    {"bignum_limit_exact", bignum_limit_exact},
    {"encode_reproduces_erlang", encode_reproduces_erlang},
    {"encode_integer_boundaries", encode_integer_boundaries},
    {"encode_lists_and_maps_like_term_to_binary", encode_lists_and_maps_like_term_to_binary},
    {"constructors_validate", constructors_validate},
    {"term_order_matches_erlang", term_order_matches_erlang},
    {"json_strings_and_escapes", json_strings_and_escapes},
    {"json_floats_shortest", json_floats_shortest},
    {"id_string_forms", id_string_forms},
    {"map_get_binary_and_atom_keys", map_get_binary_and_atom_keys},
    {"json_to_term_like_jason", json_to_term_like_jason},
    {"json_to_term_rejects", json_to_term_rejects},
    {"json_to_term_limits", json_to_term_limits},
    {"decode_encode_roundtrip", decode_encode_roundtrip},
    {"allocation_failure_is_clean", allocation_failure_is_clean},
    {NULL, NULL},
};
