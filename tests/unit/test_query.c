/* Unit tests for query.c: Plug's query decoding (docs/protocol.md §1.2), the JSON
 * params object, top-level lookups for vsn and token, limits and allocation
 * failure. Inputs come from exact-size heap copies. */
#include "query.h"

#include <stdlib.h>

#include "phx.h"
#include "runner.h"
#include "serializer.h"

/* Parses an exact-size heap copy of `qs`. */
static int parse(phx_query_t **q, const char *qs, const phx_query_limits_t *lim)
{
    size_t len = strlen(qs);
    char *p = malloc(len ? len : 1);
    ASSERT(p != NULL);
    memcpy(p, qs, len);
    *q = NULL;
    int rv = phx_query_parse(q, p, len, lim);
    free(p); /* the result must not point into the input */
    return rv;
}

/* Parses `qs` and compares the params' JSON with `want`. */
static void expect_json(const char *qs, const char *want)
{
    phx_query_t *q;
    ASSERT_EQ(parse(&q, qs, NULL), 0);
    phx_buf_t b = {0};
    ASSERT_EQ(phx_query_to_json(q, &b), 0);
    if (strcmp((char *)b.data, want) != 0)
        phx_test_fail(__FILE__, __LINE__, "query \"%s\": got %s, want %s", qs, (char *)b.data,
                      want);
    phx_buf_dispose(&b);
    phx_query_free(q);
}

static void query_client_example_of_section_1_2(void)
{
    expect_json("token=abc&nested%5Ba%5D=1&list%5B0%5D=1&list%5B1%5D=2&vsn=2.0.0",
                "{\"token\":\"abc\",\"nested\":{\"a\":\"1\"},\"list\":{\"0\":\"1\",\"1\":\"2\"},"
                "\"vsn\":\"2.0.0\"}");
    expect_json("vsn=2.0.0", "{\"vsn\":\"2.0.0\"}");
    expect_json("", "{}");
}

static void query_form_decoding(void)
{
    expect_json("a=b+c%20d", "{\"a\":\"b c d\"}");
    expect_json("a%3Db=c%26d", "{\"a=b\":\"c&d\"}");
    expect_json("a=1=2", "{\"a\":\"1=2\"}");
    expect_json("e=%C3%A9%e2%82%ac", "{\"e\":\"\xc3\xa9\xe2\x82\xac\"}");
    /* Malformed escapes are kept literally. */
    expect_json("a=%ZZ&b=%&c=%4&d=%4g&e=100%", "{\"a\":\"%ZZ\",\"b\":\"%\",\"c\":\"%4\","
                                               "\"d\":\"%4g\",\"e\":\"100%\"}");
    /* Decoded control characters are escaped in the JSON. */
    expect_json("q=%22%5C%0A%00", "{\"q\":\"\\\"\\\\\\n\\u0000\"}");
    /* Raw non-ASCII UTF-8 passes through. */
    expect_json("k=\xc3\xa9", "{\"k\":\"\xc3\xa9\"}");
}

static void query_empty_parts_and_missing_values(void)
{
    expect_json("&&a=1&&b=2&", "{\"a\":\"1\",\"b\":\"2\"}");
    expect_json("&", "{}");
    expect_json("flag&x=", "{\"flag\":\"\",\"x\":\"\"}");
    expect_json("=v", "{\"\":\"v\"}");
    expect_json("=", "{\"\":\"\"}");
}

static void query_last_wins_and_nesting(void)
{
    expect_json("a=1&a=2", "{\"a\":\"2\"}");
    expect_json("a[]=1&a[]=2&a[]=3", "{\"a\":[\"1\",\"2\",\"3\"]}");
    expect_json("a%5B%5D=1&a%5B%5D=2", "{\"a\":[\"1\",\"2\"]}");
    expect_json("a[b][c]=1&a[b][d]=2&a[e]=3",
                "{\"a\":{\"b\":{\"c\":\"1\",\"d\":\"2\"},\"e\":\"3\"}}");
    expect_json("a[b]=1&a[b]=2", "{\"a\":{\"b\":\"2\"}}");
    expect_json("a[][x]=1&a[][y]=2", "{\"a\":[{\"x\":\"1\"},{\"y\":\"2\"}]}");
    expect_json("a[b][]=1&a[b][]=2", "{\"a\":{\"b\":[\"1\",\"2\"]}}");
    expect_json("a[][]=1", "{\"a\":[[\"1\"]]}");
    expect_json("a[]", "{\"a\":[\"\"]}");
    /* The later assignment wins when the kinds conflict. */
    expect_json("a=1&a[b]=2", "{\"a\":{\"b\":\"2\"}}");
    expect_json("a[b]=2&a=1", "{\"a\":\"1\"}");
    expect_json("a[]=1&a=2&a[]=3", "{\"a\":[\"3\"]}");
    expect_json("a[b]=1&a[]=2", "{\"a\":[\"2\"]}");
    /* Keys stay in order of first appearance. */
    expect_json("b=1&a=2&b=3", "{\"b\":\"3\",\"a\":\"2\"}");
}

static void query_odd_brackets_as_plug(void)
{
    /* No name before the brackets: the pair is dropped. */
    expect_json("[a]=1&[]=2&x=3", "{\"x\":\"3\"}");
    /* Only a key ending in ']' is split. */
    expect_json("a[b=1", "{\"a[b\":\"1\"}");
    expect_json("a[b][=1", "{\"a[b][\":\"1\"}");
    /* A trailing ']' without '[' is dropped from the name. */
    expect_json("a]=1", "{\"a\":\"1\"}");
    expect_json("a[b]c]=1", "{\"a\":{\"b]c\":\"1\"}}");
    expect_json("a][b]=1", "{\"a]\":{\"b\":\"1\"}}");
    expect_json("a[[b]]=1", "{\"a\":{\"[b]\":\"1\"}}");
    expect_json("]=1&x=2", "{\"x\":\"2\"}");
}

static void query_invalid_utf8_is_refused(void)
{
    phx_query_t *q;
    ASSERT_EQ(parse(&q, "a=%FF", NULL), PHX_ERR_INVALID);
    ASSERT(q == NULL);
    ASSERT_EQ(parse(&q, "%C3=1", NULL), PHX_ERR_INVALID);
    ASSERT_EQ(parse(&q, "a=%ED%A0%80", NULL), PHX_ERR_INVALID); /* surrogate */
    ASSERT_EQ(parse(&q, "a=%C0%80", NULL), PHX_ERR_INVALID);    /* overlong */
    ASSERT_EQ(parse(&q, "ok=1&a=\xff", NULL), PHX_ERR_INVALID);
    /* Split across an escape and a raw byte it is still checked whole. */
    ASSERT_EQ(parse(&q, "a=%C3\xa9", NULL), 0);
    phx_query_free(q);
}

static void query_get_vsn_and_token(void)
{
    phx_query_t *q;
    const uint8_t *v;
    size_t n;
    ASSERT_EQ(parse(&q, "token=SFMyNTY.g2gD&vsn=2.0.0%2Bbuild", NULL), 0);
    ASSERT_EQ(phx_query_count(q), 2);
    ASSERT_EQ(phx_query_get(q, "token", 5, &v, &n), PHX_QUERY_STRING);
    ASSERT_MEM_EQ(v, n, "SFMyNTY.g2gD", 12);
    ASSERT_EQ(phx_query_get(q, "vsn", 3, &v, &n), PHX_QUERY_STRING);
    ASSERT_MEM_EQ(v, n, "2.0.0+build", 11);
    phx_fmt_t f;
    ASSERT_EQ(phx_vsn_parse((const char *)v, n, true, &f), 0);
    ASSERT_EQ(f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_query_get(q, "nope", 4, &v, &n), PHX_QUERY_ABSENT);
    ASSERT(v == NULL);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(phx_query_get(q, "vs", 2, NULL, NULL), PHX_QUERY_ABSENT);
    phx_query_free(q);

    /* A literal '+' decodes to a space: invalid version. */
    ASSERT_EQ(parse(&q, "vsn=2.0.0+build", NULL), 0);
    ASSERT_EQ(phx_query_get(q, "vsn", 3, &v, &n), PHX_QUERY_STRING);
    ASSERT_EQ(phx_vsn_parse((const char *)v, n, true, &f), PHX_ERR_INVALID);
    phx_query_free(q);

    /* Present but empty is not absent. */
    ASSERT_EQ(parse(&q, "vsn=", NULL), 0);
    ASSERT_EQ(phx_query_get(q, "vsn", 3, &v, &n), PHX_QUERY_STRING);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(phx_vsn_parse((const char *)v, n, true, &f), PHX_ERR_INVALID);
    phx_query_free(q);

    /* A nested vsn is not a string. */
    ASSERT_EQ(parse(&q, "vsn[x]=1", NULL), 0);
    ASSERT_EQ(phx_query_get(q, "vsn", 3, &v, &n), PHX_QUERY_NESTED);
    ASSERT(v == NULL);
    phx_query_free(q);

    /* The last vsn wins. */
    ASSERT_EQ(parse(&q, "vsn=1.0.0&vsn=2.0.0", NULL), 0);
    ASSERT_EQ(phx_query_get(q, "vsn", 3, &v, &n), PHX_QUERY_STRING);
    ASSERT_MEM_EQ(v, n, "2.0.0", 5);
    phx_query_free(q);
    phx_query_free(NULL);
}

static void query_limits(void)
{
    phx_query_limits_t lim = {.max_len = 64, .max_params = 3, .max_depth = 2};
    phx_query_t *q;
    ASSERT_EQ(parse(&q, "a=1&b=2&c=3", &lim), 0);
    phx_query_free(q);
    ASSERT_EQ(parse(&q, "a=1&b=2&c=3&d=4", &lim), PHX_ERR_LIMIT);
    ASSERT(q == NULL);
    /* Empty parts do not count. */
    ASSERT_EQ(parse(&q, "&&a=1&&b=2&&c=3&&", &lim), 0);
    phx_query_free(q);
    /* Depth: `a[b][c]` has 2 levels. */
    ASSERT_EQ(parse(&q, "a[b][c]=1", &lim), 0);
    phx_query_free(q);
    ASSERT_EQ(parse(&q, "a[b][c][d]=1", &lim), PHX_ERR_LIMIT);
    ASSERT_EQ(parse(&q, "a[][][]=1", &lim), PHX_ERR_LIMIT);
    char big[80];
    memset(big, 'x', sizeof(big));
    big[0] = 'a';
    big[1] = '=';
    big[64] = '\0';
    ASSERT_EQ(parse(&q, big, &lim), 0);
    phx_query_free(q);
    big[65] = '\0';
    big[64] = 'x';
    ASSERT_EQ(parse(&q, big, &lim), PHX_ERR_LIMIT);

    /* Defaults: 128 params, depth 8. */
    phx_buf_t b = {0};
    for (int i = 0; i < 128; i++)
        ASSERT_EQ(phx_buf_printf(&b, "%sk%d=%d", i ? "&" : "", i, i), 0);
    ASSERT_EQ(parse(&q, (char *)b.data, NULL), 0);
    ASSERT_EQ(phx_query_count(q), 128);
    phx_query_free(q);
    ASSERT_EQ(phx_buf_append_str(&b, "&one=more"), 0);
    ASSERT_EQ(parse(&q, (char *)b.data, NULL), PHX_ERR_LIMIT);
    phx_buf_dispose(&b);
    ASSERT_EQ(parse(&q, "a[1][2][3][4][5][6][7][8]=x", NULL), 0);
    phx_query_free(q);
    ASSERT_EQ(parse(&q, "a[1][2][3][4][5][6][7][8][9]=x", NULL), PHX_ERR_LIMIT);
    /* Configured depths beyond the cap are clamped. */
    lim = (phx_query_limits_t){.max_len = 4096, .max_params = 10, .max_depth = 1000};
    b = (phx_buf_t){0};
    ASSERT_EQ(phx_buf_append_str(&b, "a"), 0);
    for (int i = 0; i < PHX_QUERY_DEPTH_CAP; i++)
        ASSERT_EQ(phx_buf_append_str(&b, "[k]"), 0);
    ASSERT_EQ(phx_buf_append_str(&b, "=1"), 0);
    ASSERT_EQ(parse(&q, (char *)b.data, &lim), 0);
    phx_query_free(q);
    b.len -= 2;
    ASSERT_EQ(phx_buf_append_str(&b, "[k]=1"), 0);
    ASSERT_EQ(parse(&q, (char *)b.data, &lim), PHX_ERR_LIMIT);
    phx_buf_dispose(&b);
}

static void query_fails_cleanly_without_memory(void)
{
    /* Enough keys to grow the node array several times. */
    phx_buf_t qs = {0};
    for (int i = 0; i < 40; i++)
        ASSERT_EQ(phx_buf_printf(&qs, "&m[k%d][]=%d", i, i), 0);
    phx_query_t *q;
    phx_mem_reset_count();
    ASSERT_EQ(phx_query_parse(&q, (char *)qs.data, qs.len, NULL), 0);
    unsigned long n = phx_mem_count();
    ASSERT(n >= 4);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_query_to_json(q, &out), 0);
    phx_buf_dispose(&out);
    phx_query_free(q);
    for (unsigned long i = 1; i <= n; i++) {
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        q = NULL;
        ASSERT_EQ(phx_query_parse(&q, (char *)qs.data, qs.len, NULL), PHX_ERR_NOMEM);
        ASSERT(q == NULL);
        phx_mem_fail_at(0);
    }
    /* to_json: fail each allocation of the output buffer. */
    ASSERT_EQ(phx_query_parse(&q, (char *)qs.data, qs.len, NULL), 0);
    for (unsigned long i = 1; i <= 8; i++) {
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        int rv = phx_query_to_json(q, &out);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        phx_buf_dispose(&out);
    }
    phx_query_free(q);
    phx_buf_dispose(&qs);
}

const phx_test_t phx_tests_query[] = {
    {"query_client_example_of_section_1_2", query_client_example_of_section_1_2},
    {"query_form_decoding", query_form_decoding},
    {"query_empty_parts_and_missing_values", query_empty_parts_and_missing_values},
    {"query_last_wins_and_nesting", query_last_wins_and_nesting},
    {"query_odd_brackets_as_plug", query_odd_brackets_as_plug},
    {"query_invalid_utf8_is_refused", query_invalid_utf8_is_refused},
    {"query_get_vsn_and_token", query_get_vsn_and_token},
    {"query_limits", query_limits},
    {"query_fails_cleanly_without_memory", query_fails_cleanly_without_memory},
    {NULL, NULL},
};
