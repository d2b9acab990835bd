/* Unit tests for json.c: strict validation (RFC 8259 grammar, UTF-8, escapes,
 * depth, trailing bytes), in-place minification, iteration and string
 * (un)escaping. Inputs come from exact-size heap copies and from the end of
 * a page followed by an unreadable one, so overreads crash. */
#include "json.h"

#include <stdlib.h>

#include "phx.h"
#include "guard.h"
#include "runner.h"

/* ---- helpers ---- */

/* Validates `s` from a heap copy and from a guarded copy; both must agree. */
static int validate_n(const char *s, size_t len, const phx_json_limits_t *lim)
{
    uint8_t *p = malloc(len ? len : 1);
    ASSERT(p != NULL);
    memcpy(p, s, len);
    int rv = phx_json_validate(p, len, lim);
    free(p);
    guard_t g;
    uint8_t *q = guard_copy(&g, s, len);
    ASSERT_EQ(phx_json_validate(q, len, lim), rv);
    guard_free(&g);
    return rv;
}

static int validate(const char *s)
{
    return validate_n(s, strlen(s), NULL);
}

/* Minifies a heap copy; checks idempotence and that the result validates. */
static char *minify(const char *s, int *rv)
{
    size_t len = strlen(s), n;
    char *p = malloc(len + 1);
    ASSERT(p != NULL);
    memcpy(p, s, len);
    *rv = phx_json_minify((uint8_t *)p, len, NULL, &n);
    ASSERT(n <= len);
    p[n] = '\0';
    if (*rv == 0) {
        size_t n2;
        ASSERT_EQ(phx_json_validate((uint8_t *)p, n, NULL), 0);
        ASSERT_EQ(phx_json_minify((uint8_t *)p, n, NULL, &n2), 0);
        ASSERT_EQ(n2, n);
    }
    return p;
}

#define ASSERT_MINIFIES(in, out)                                                                   \
    do {                                                                                           \
        int rv_;                                                                                   \
        char *m_ = minify(in, &rv_);                                                               \
        ASSERT_EQ(rv_, 0);                                                                         \
        ASSERT_STR_EQ(m_, out);                                                                    \
        free(m_);                                                                                  \
    } while (0)

/* ---- validation ---- */

static void json_accepts_rfc8259_values(void)
{
    static const char *ok[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1",
        "-1",
        "12345678901234567890",
        "0.5",
        "-0.5e-3",
        "1E+2",
        "1e400",
        "2.5E10",
        "\"\"",
        "\"x\"",
        "true",
        "false",
        "null",
        " \t\r\n[ ] \n",
        "[1,\"a\",null,true,false,{},[],{\"k\":[{}]}]",
        "{\"a\":1,\"b\":{\"c\":[1,2,{\"d\":null}]}}",
        "{\"\":0}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0000\"",
        "\"\\u00e9\\u00E9\"",
        "\"\\ud83d\\ude00\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\"",
        "\"\x7f\"",
        "{\"a\" : 1 , \"b\" : [ 1 , 2 ] }",
        "[\"]\",\"[\",\"}\",\"{\",\"\\\"\"]",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (validate(ok[i]) != 0)
            phx_test_fail(__FILE__, __LINE__, "refused: %s", ok[i]);
    }
}

static void json_rejects_malformed(void)
{
    static const char *bad[] = {
        "",
        " ",
        "[",
        "]",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\"}",
        "{\"a\" 1}",
        "{1:2}",
        "{a:1}",
        "{'a':1}",
        "[1]]",
        "[[1]",
        "{\"a\":1]",
        "[1}",
        "01",
        "-",
        "--1",
        "+1",
        ".5",
        "1.",
        "1.e3",
        "1e",
        "1e+",
        "0x1",
        "-01",
        "1.5.3",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "True",
        "nulll",
        "\"abc",
        "\"\\\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\U0041\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\udc00\\ud800\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\ud800\\\"",
        "\"\x01\"",
        "\"a\nb\"",
        "\"\t\"",
        "\"\x80\"",
        "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xc3\"",
        "\xef\xbb\xbf{}",
        "\x01",
        "[1,2,3] trailing",
        "{} {}",
        "1 2",
        "\"a\" \"b\"",
        "null,",
        "[]x",
        "/*c*/[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (validate(bad[i]) != PHX_ERR_PROTO)
            phx_test_fail(__FILE__, __LINE__, "accepted or wrong code: %s", bad[i]);
    }
    /* A NUL byte is neither whitespace nor a value. */
    ASSERT_EQ(validate_n("[1]\0", 4, NULL), PHX_ERR_PROTO);
    ASSERT_EQ(validate_n("\"a\0b\"", 5, NULL), PHX_ERR_PROTO);
}

static void json_trailing_whitespace_only(void)
{
    ASSERT_EQ(validate("[1,2,3]  \r\n\t"), 0);
    ASSERT_EQ(validate("[1,2,3] ,"), PHX_ERR_PROTO);
    ASSERT_EQ(validate("[1,2,3]\n]"), PHX_ERR_PROTO);
}

static char *nested(const char *open, const char *close, size_t n)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc(n * (lo + lc) + 2);
    ASSERT(s != NULL);
    char *p = s;
    for (size_t i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    *p++ = '1';
    for (size_t i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void json_depth_limit_at_n_and_n_plus_1(void)
{
    phx_json_limits_t lim = {.max_depth = 3};
    ASSERT_EQ(validate_n("[[[1]]]", 7, &lim), 0);
    ASSERT_EQ(validate_n("[[[[1]]]]", 9, &lim), PHX_ERR_LIMIT);
    ASSERT_EQ(validate_n("{\"a\":{\"b\":[1]}}", 15, &lim), 0);
    ASSERT_EQ(validate_n("{\"a\":{\"b\":[{}]}}", 16, &lim), PHX_ERR_LIMIT);
    /* Depth returns to zero after closing: siblings do not add up. */
    ASSERT_EQ(validate_n("[[[1]],[[1]],[[2]]]", 19, &lim), 0);
    ASSERT_EQ(validate_n("[[[1]],[[1]],[[{}]]]", 20, &lim), PHX_ERR_LIMIT);
    lim.max_depth = 0;
    ASSERT_EQ(validate_n("1", 1, &lim), 0);
    ASSERT_EQ(validate_n("[]", 2, &lim), PHX_ERR_LIMIT);

    /* The default is 64. */
    char *s = nested("[", "]", 64);
    ASSERT_EQ(validate(s), 0);
    free(s);
    s = nested("[", "]", 65);
    ASSERT_EQ(validate(s), PHX_ERR_LIMIT);
    free(s);
    s = nested("{\"k\":", "}", 64);
    ASSERT_EQ(validate(s), 0);
    free(s);
    s = nested("{\"k\":", "}", 65);
    ASSERT_EQ(validate(s), PHX_ERR_LIMIT);
    free(s);

    /* Larger limits are clamped to PHX_JSON_DEPTH_CAP. */
    lim.max_depth = 5000;
    s = nested("[", "]", PHX_JSON_DEPTH_CAP);
    ASSERT_EQ(validate_n(s, strlen(s), &lim), 0);
    free(s);
    s = nested("[{\"a\":", "}]", PHX_JSON_DEPTH_CAP / 2 + 1);
    ASSERT_EQ(validate_n(s, strlen(s), &lim), PHX_ERR_LIMIT);
    free(s);
    /* A deep but malformed text reports the first problem found. */
    s = nested("[", "", 100);
    lim.max_depth = 200;
    ASSERT_EQ(validate_n(s, strlen(s), &lim), PHX_ERR_PROTO);
    free(s);
}

/* ---- minify ---- */

static void json_minify_removes_whitespace_outside_strings(void)
{
    ASSERT_MINIFIES(" { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : \"x  y\" } ",
                    "{\"a\":[1,2],\"b\":\"x  y\"}");
    ASSERT_MINIFIES("[ \"3\" , \"3\" , \"room:1\" , \"phx_join\" , { \"p\" : 1 } ]",
                    "[\"3\",\"3\",\"room:1\",\"phx_join\",{\"p\":1}]");
    ASSERT_MINIFIES("{\"n\": 12345678901234567890, \"f\": 1E+400, \"z\": -0.0e-0}",
                    "{\"n\":12345678901234567890,\"f\":1E+400,\"z\":-0.0e-0}");
    ASSERT_MINIFIES("[ \"\\u00e9 \\n\" , \"\xc3\xa9\" ]", "[\"\\u00e9 \\n\",\"\xc3\xa9\"]");
    ASSERT_MINIFIES("\n\"  \"\n", "\"  \"");
    ASSERT_MINIFIES("[]", "[]");
    ASSERT_MINIFIES("[ ]", "[]");
    ASSERT_MINIFIES("{ }", "{}");
    ASSERT_MINIFIES(" true ", "true");
}

static void json_minify_reports_errors(void)
{
    int rv;
    free(minify("[1, 2] x", &rv));
    ASSERT_EQ(rv, PHX_ERR_PROTO);
    char *s = nested("[ ", " ]", 65);
    free(minify(s, &rv));
    ASSERT_EQ(rv, PHX_ERR_LIMIT);
    free(s);
}

static void json_minify_in_guarded_buffer(void)
{
    const char *in = "[ 1 , { \"a\" : \"b\" } ]";
    guard_t g;
    uint8_t *p = guard_copy(&g, in, strlen(in));
    size_t n;
    ASSERT_EQ(phx_json_minify(p, strlen(in), NULL, &n), 0);
    ASSERT_MEM_EQ(p, n, "[1,{\"a\":\"b\"}]", 13);
    guard_free(&g);
}

/* ---- iteration ---- */

static void json_iter_array_spans(void)
{
    const char *s =
        " [ \"a\\\"]\" , 12.5e3 , null , true , false , { \"k\" : [ 1 , \"}\" ] } , [ ] ] ";
    size_t len = strlen(s);
    ASSERT_EQ(phx_json_validate((const uint8_t *)s, len, NULL), 0);
    phx_json_iter_t it;
    ASSERT_EQ(phx_json_iter_init(&it, (const uint8_t *)s, len), 0);
    ASSERT(!phx_json_iter_is_object(&it));
    static const struct {
        const char *text;
        phx_json_type_t type;
    } want[] = {
        {"\"a\\\"]\"", PHX_JSON_STRING}, {"12.5e3", PHX_JSON_NUMBER},
        {"null", PHX_JSON_NULL},         {"true", PHX_JSON_TRUE},
        {"false", PHX_JSON_FALSE},       {"{ \"k\" : [ 1 , \"}\" ] }", PHX_JSON_OBJECT},
        {"[ ]", PHX_JSON_ARRAY},
    };
    phx_json_span_t v;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ASSERT(phx_json_iter_next(&it, NULL, &v));
        ASSERT_MEM_EQ(v.p, v.len, want[i].text, strlen(want[i].text));
        ASSERT_EQ(v.type, want[i].type);
    }
    ASSERT(!phx_json_iter_next(&it, NULL, &v));
    ASSERT(!phx_json_iter_next(&it, NULL, &v));

    ASSERT_EQ(phx_json_iter_init(&it, (const uint8_t *)"[]", 2), 0);
    ASSERT(!phx_json_iter_next(&it, NULL, &v));
    ASSERT_EQ(phx_json_iter_init(&it, (const uint8_t *)"\"x\"", 3), PHX_ERR_INVALID);
    ASSERT_EQ(phx_json_iter_init(&it, (const uint8_t *)"  ", 2), PHX_ERR_INVALID);
}

static void json_iter_object_members(void)
{
    const char *s =
        "{\"topic\":\"room:1\",\"payload\":{\"a\":[1,{\"b\":\"}\"}]},\"ref\":null,\"n\":-1}";
    size_t len = strlen(s);
    ASSERT_EQ(phx_json_validate((const uint8_t *)s, len, NULL), 0);
    phx_json_iter_t it;
    ASSERT_EQ(phx_json_iter_init(&it, (const uint8_t *)s, len), 0);
    ASSERT(phx_json_iter_is_object(&it));
    phx_json_span_t k, v;
    ASSERT(phx_json_iter_next(&it, &k, &v));
    ASSERT_MEM_EQ(k.p, k.len, "\"topic\"", 7);
    ASSERT_MEM_EQ(v.p, v.len, "\"room:1\"", 8);
    ASSERT(phx_json_iter_next(&it, &k, &v));
    ASSERT_MEM_EQ(k.p, k.len, "\"payload\"", 9);
    ASSERT_MEM_EQ(v.p, v.len, "{\"a\":[1,{\"b\":\"}\"}]}", 19);
    ASSERT_EQ(v.type, PHX_JSON_OBJECT);
    ASSERT(phx_json_iter_next(&it, &k, &v));
    ASSERT_EQ(v.type, PHX_JSON_NULL);
    ASSERT(phx_json_iter_next(&it, &k, &v));
    ASSERT_MEM_EQ(v.p, v.len, "-1", 2);
    ASSERT(!phx_json_iter_next(&it, &k, &v));
}

static void json_type_and_is_object(void)
{
    ASSERT_EQ(phx_json_type((const uint8_t *)"  {}", 4), PHX_JSON_OBJECT);
    ASSERT_EQ(phx_json_type((const uint8_t *)"-1", 2), PHX_JSON_NUMBER);
    ASSERT_EQ(phx_json_type((const uint8_t *)"", 0), PHX_JSON_INVALID);
    ASSERT_EQ(phx_json_type((const uint8_t *)"x", 1), PHX_JSON_INVALID);
    ASSERT(phx_json_is_object((const uint8_t *)"{\"a\":1}", 7, NULL));
    ASSERT(phx_json_is_object((const uint8_t *)" { } ", 5, NULL));
    ASSERT(!phx_json_is_object((const uint8_t *)"[]", 2, NULL));
    ASSERT(!phx_json_is_object((const uint8_t *)"\"{}\"", 4, NULL));
    ASSERT(!phx_json_is_object((const uint8_t *)"{\"a\":}", 6, NULL));
    ASSERT(!phx_json_is_object((const uint8_t *)"{} x", 4, NULL));
}

/* ---- strings ---- */

static void decode_str(const char *span, const void *want, size_t want_len, bool want_nul)
{
    size_t len = strlen(span), n;
    bool nul;
    uint8_t *p = malloc(len);
    ASSERT(p != NULL);
    memcpy(p, span, len);
    /* In place: the output overwrites the span. */
    ASSERT_EQ(phx_json_string_decode(p, len, p, &n, &nul), 0);
    ASSERT_MEM_EQ(p, n, want, want_len);
    ASSERT_EQ(nul, want_nul);
    free(p);
}

static void json_string_decode_unescapes(void)
{
    decode_str("\"\"", "", 0, false);
    decode_str("\"room:lobby\"", "room:lobby", 10, false);
    decode_str("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8, false);
    decode_str("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6, false);
    decode_str("\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!", 5, false);
    decode_str("\"room:lobby\\u0000evil\"", "room:lobby\0evil", 15, true);
    decode_str("\"\xc3\xa9\\n\xe2\x82\xac\"", "\xc3\xa9\n\xe2\x82\xac", 6, false);

    static const char *bad[] = {
        "",        "\"",        "x\"",         "\"x",         "\"\\\"",
        "\"\\q\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[32];
        size_t n;
        bool nul;
        if (phx_json_string_decode((const uint8_t *)bad[i], strlen(bad[i]), out, &n, &nul) !=
            PHX_ERR_PROTO)
            phx_test_fail(__FILE__, __LINE__, "decoded: %s", bad[i]);
    }
}

static void json_escape_like_jason(void)
{
    const uint8_t in[] = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9";
    size_t len = sizeof(in) - 1;
    const char *want = "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001F\x7f\xc3\xa9\"";
    ASSERT_EQ(phx_json_escaped_len(in, len), strlen(want));
    uint8_t out[64];
    uint8_t *end = phx_json_escape(out, in, len);
    ASSERT_MEM_EQ(out, (size_t)(end - out), want, strlen(want));
    /* A NUL byte becomes \u0000. */
    end = phx_json_escape(out, (const uint8_t *)"a\0b", 3);
    ASSERT_MEM_EQ(out, (size_t)(end - out), "\"a\\u0000b\"", 10);
    ASSERT_EQ(phx_json_escaped_len((const uint8_t *)"", 0), 2);

    phx_buf_t b = {0};
    ASSERT_EQ(phx_json_append_string(&b, (const uint8_t *)"x\ny", 3), 0);
    ASSERT_EQ(phx_json_append_string(&b, (const uint8_t *)"", 0), 0);
    ASSERT_STR_EQ((char *)b.data, "\"x\\ny\"\"\"");
    phx_buf_dispose(&b);

    /* Escaping then decoding gives the bytes back, for every byte value. */
    uint8_t all[256], esc[256 * 6 + 2], back[256 * 6 + 2];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    end = phx_json_escape(esc, all, 128);
    size_t n;
    bool nul;
    ASSERT_EQ(phx_json_validate(esc, (size_t)(end - esc), NULL), 0);
    ASSERT_EQ(phx_json_string_decode(esc, (size_t)(end - esc), back, &n, &nul), 0);
    ASSERT_MEM_EQ(back, n, all, 128);
    ASSERT(nul);
}

static void json_append_string_fails_cleanly(void)
{
    phx_buf_t b = {0};
    phx_mem_reset_count();
    phx_mem_fail_at(1);
    ASSERT_EQ(phx_json_append_string(&b, (const uint8_t *)"abc", 3), PHX_ERR_NOMEM);
    phx_mem_fail_at(0);
    ASSERT(b.data == NULL);
    ASSERT_EQ(b.len, 0);
}

const phx_test_t phx_tests_json[] = {
    {"json_accepts_rfc8259_values", json_accepts_rfc8259_values},
    {"json_rejects_malformed", json_rejects_malformed},
    {"json_trailing_whitespace_only", json_trailing_whitespace_only},
    {"json_depth_limit_at_n_and_n_plus_1", json_depth_limit_at_n_and_n_plus_1},
    {"json_minify_removes_whitespace_outside_strings",
     json_minify_removes_whitespace_outside_strings},
    {"json_minify_reports_errors", json_minify_reports_errors},
    {"json_minify_in_guarded_buffer", json_minify_in_guarded_buffer},
    {"json_iter_array_spans", json_iter_array_spans},
    {"json_iter_object_members", json_iter_object_members},
    {"json_type_and_is_object", json_type_and_is_object},
    {"json_string_decode_unescapes", json_string_decode_unescapes},
    {"json_escape_like_jason", json_escape_like_jason},
    {"json_append_string_fails_cleanly", json_append_string_fails_cleanly},
    {NULL, NULL},
};
