/* Unit tests for serializer.c: vsn negotiation (docs/protocol.md §1.3), decoding of
 * client frames in the three formats, and byte-for-byte encoding of every
 * example in docs/protocol.md §2.2-§2.4 and its Appendix B.1 transcript. Decoders read
 * exact-size heap copies and copies that end at an unreadable page. */
#include "serializer.h"

#include <stdlib.h>

#include "phx.h"
#include "guard.h"
#include "runner.h"

/* ---- helpers ---- */

/* Decodes a copy of `data` placed before a guard page (the result must match)
 * and then an exact-size heap copy, which *keep receives (free it after the
 * last use of *m: its spans point into it). */
static int decode_keep(phx_msg_t *m, phx_fmt_t fmt, bool bin, const void *data, size_t len,
                       const phx_msg_limits_t *lim, uint8_t **keep)
{
    guard_t guard;
    phx_msg_t gm;
    int grv = phx_msg_decode(&gm, fmt, bin, guard_copy(&guard, data, len), len, lim);
    guard_free(&guard);

    uint8_t *p = malloc(len ? len : 1);
    ASSERT(p != NULL);
    if (len)
        memcpy(p, data, len);
    int rv = phx_msg_decode(m, fmt, bin, p, len, lim);
    ASSERT_EQ(rv, grv);
    *keep = p;
    return rv;
}

static int decode_rv(phx_fmt_t fmt, bool bin, const void *data, size_t len,
                     const phx_msg_limits_t *lim)
{
    phx_msg_t m;
    uint8_t *keep;
    int rv = decode_keep(&m, fmt, bin, data, len, lim, &keep);
    free(keep);
    return rv;
}

#define V2_TEXT_RV(s) decode_rv(PHX_FMT_V2_JSON, false, s, strlen(s), NULL)
#define V1_TEXT_RV(s) decode_rv(PHX_FMT_V1_JSON, false, s, strlen(s), NULL)

#define ASSERT_FIELD_STR(f, s)                                                                     \
    do {                                                                                           \
        ASSERT_EQ((f).kind, PHX_FIELD_STRING);                                                     \
        ASSERT_MEM_EQ((f).p, (f).len, s, sizeof(s) - 1);                                           \
    } while (0)
#define ASSERT_FIELD_OTHER(f, s)                                                                   \
    do {                                                                                           \
        ASSERT_EQ((f).kind, PHX_FIELD_OTHER);                                                      \
        ASSERT_MEM_EQ((f).p, (f).len, s, sizeof(s) - 1);                                           \
    } while (0)
#define ASSERT_FIELD_NULL(f) ASSERT_EQ((f).kind, PHX_FIELD_NULL)
#define ASSERT_PAYLOAD(m, s) ASSERT_MEM_EQ((m).payload, (m).payload_len, s, sizeof(s) - 1)

/* Encodes `o`, checks the rcbuf layout and compares the bytes. */
static void expect_encode(phx_fmt_t fmt, const phx_out_t *o, const void *want, size_t want_len)
{
    size_t size = 0;
    ASSERT_EQ(phx_msg_encoded_size(fmt, o, &size), 0);
    ASSERT_EQ(size, want_len);
    phx_rcbuf_t *b = NULL;
    ASSERT_EQ(phx_msg_encode(&b, fmt, o), 0);
    ASSERT(b != NULL);
    ASSERT_EQ(b->refs, 1);
    ASSERT_EQ(b->off, PHX_MSG_HEADROOM);
    ASSERT_EQ(b->payload_off, PHX_MSG_HEADROOM);
    ASSERT_EQ(b->len, PHX_MSG_HEADROOM + want_len);
    ASSERT_EQ(b->cap, b->len); /* sized exactly, allocated once */
    ASSERT_EQ(b->is_binary, o->is_binary && fmt == PHX_FMT_V2_JSON);
    ASSERT_MEM_EQ(b->data + b->off, b->len - b->off, want, want_len);
    phx_rcbuf_unref(b);
}

#define EXPECT_TEXT(fmt, o, s) expect_encode(fmt, o, s, strlen(s))

static int encode_rv(phx_fmt_t fmt, const phx_out_t *o)
{
    phx_rcbuf_t *b = NULL;
    int rv = phx_msg_encode(&b, fmt, o);
    if (rv == 0)
        phx_rcbuf_unref(b);
    else
        ASSERT(b == NULL);
    return rv;
}

static phx_out_t out_msg(phx_out_kind_t kind, phx_field_t jr, phx_field_t ref, const char *topic,
                         const char *event_or_status, const char *payload)
{
    phx_out_t o = {.kind = kind, .join_ref = jr, .ref = ref, .topic = phx_field_str(topic)};
    if (kind == PHX_OUT_REPLY)
        o.status = phx_field_str(event_or_status);
    else
        o.event = phx_field_str(event_or_status);
    if (payload != NULL) {
        o.payload = (const uint8_t *)payload;
        o.payload_len = strlen(payload);
    }
    return o;
}

#define S(x) phx_field_str(x)
#define N phx_field_null()

/* ---- vsn ---- */

static void vsn_table_of_section_1_3(void)
{
    phx_fmt_t f = PHX_FMT_COUNT;
    ASSERT_EQ(phx_vsn_parse(NULL, 0, false, &f), 0);
    ASSERT_EQ(f, PHX_FMT_V1_JSON);

    static const struct {
        const char *vsn;
        int rv;
        phx_fmt_t fmt;
    } rows[] = {
        {"1.0.0", 0, PHX_FMT_V1_JSON},
        {"1.0.9", 0, PHX_FMT_V1_JSON},
        {"2.0.0", 0, PHX_FMT_V2_JSON},
        {"2.0.5", 0, PHX_FMT_V2_JSON},
        {"2.0.0+build", 0, PHX_FMT_V2_JSON},
        {"2.0.0+build.7.x-y", 0, PHX_FMT_V2_JSON},
        {"2.0.0+001", 0, PHX_FMT_V2_JSON}, /* build identifiers may have leading zeros */
        {"2.0.123456789012345678901234567890", 0, PHX_FMT_V2_JSON},
        {"2.1.0", PHX_ERR_NOTFOUND, 0},
        {"1.1.0", PHX_ERR_NOTFOUND, 0},
        {"3.0.0", PHX_ERR_NOTFOUND, 0},
        {"0.0.1", PHX_ERR_NOTFOUND, 0},
        {"20.0.0", PHX_ERR_NOTFOUND, 0},
        {"2.0.0-rc.1", PHX_ERR_NOTFOUND, 0}, /* below 2.0.0 */
        {"1.0.0-alpha", PHX_ERR_NOTFOUND, 0},
        {"2.1.0-rc.1", PHX_ERR_NOTFOUND, 0}, /* not below 2.1.0-0 */
        {"2.1.0-0", PHX_ERR_NOTFOUND, 0},
        /* Elixir's Version.match? allows pre-releases by default: above
         * 2.0.0 and below 2.1.0-0 matches ~> 2.0.0. */
        {"2.0.1-rc.1", 0, PHX_FMT_V2_JSON},
        {"1.0.2-0", 0, PHX_FMT_V1_JSON},
        {"2", PHX_ERR_INVALID, 0},
        {"2.0", PHX_ERR_INVALID, 0},
        {"2.0.0.0", PHX_ERR_INVALID, 0},
        {"02.0.0", PHX_ERR_INVALID, 0},
        {"2.00.0", PHX_ERR_INVALID, 0},
        {"2.0.00", PHX_ERR_INVALID, 0},
        {" 2.0.0", PHX_ERR_INVALID, 0},
        {"2.0.0 ", PHX_ERR_INVALID, 0},
        {"2.0.0 build", PHX_ERR_INVALID, 0}, /* a literal '+' decoded to a space */
        {"v2.0.0", PHX_ERR_INVALID, 0},
        {"", PHX_ERR_INVALID, 0},
        {"2.0.0-", PHX_ERR_INVALID, 0},
        {"2.0.0+", PHX_ERR_INVALID, 0},
        {"2.0.0-rc..1", PHX_ERR_INVALID, 0},
        {"2.0.0-01", PHX_ERR_INVALID, 0},
        {"2.0.0+a+b", PHX_ERR_INVALID, 0},
        {"2.0.0+a_b", PHX_ERR_INVALID, 0},
        {"2..0", PHX_ERR_INVALID, 0},
        {".2.0.0", PHX_ERR_INVALID, 0},
        {"2.0.-1", PHX_ERR_INVALID, 0},
        {"a.b.c", PHX_ERR_INVALID, 0},
        {"\xef\xbc\x92.0.0", PHX_ERR_INVALID, 0}, /* fullwidth digit */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        f = PHX_FMT_COUNT;
        int rv = phx_vsn_parse(rows[i].vsn, strlen(rows[i].vsn), true, &f);
        if (rv != rows[i].rv || (rv == 0 && f != rows[i].fmt))
            phx_test_fail(__FILE__, __LINE__, "vsn \"%s\": rv %d fmt %d", rows[i].vsn, rv, f);
    }
    /* Embedded NUL. */
    ASSERT_EQ(phx_vsn_parse("2.0.0\0", 6, true, &f), PHX_ERR_INVALID);
}

/* ---- decode: V2 text ---- */

static void v2_text_decodes_client_examples(void)
{
    phx_msg_t m;
    uint8_t *keep;
    const char *join = "[\"3\",\"3\",\"room:1\",\"phx_join\",{\"p\":1}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, join, strlen(join), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.join_ref, "3");
    ASSERT_FIELD_STR(m.ref, "3");
    ASSERT_FIELD_STR(m.topic, "room:1");
    ASSERT_FIELD_STR(m.event, "phx_join");
    ASSERT_PAYLOAD(m, "{\"p\":1}");
    ASSERT(!m.is_binary);
    free(keep);

    const char *push = "[\"3\",\"7\",\"room:1\",\"hello\",{\"a\":\"\xc3\xa9\"}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, push, strlen(push), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.ref, "7");
    ASSERT_FIELD_STR(m.event, "hello");
    ASSERT_PAYLOAD(m, "{\"a\":\"\xc3\xa9\"}");
    free(keep);

    const char *hb = "[null,\"10\",\"phoenix\",\"heartbeat\",{}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, hb, strlen(hb), NULL, &keep), 0);
    ASSERT_FIELD_NULL(m.join_ref);
    ASSERT_FIELD_STR(m.ref, "10");
    ASSERT_FIELD_STR(m.topic, "phoenix");
    ASSERT_FIELD_STR(m.event, "heartbeat");
    ASSERT_PAYLOAD(m, "{}");
    free(keep);

    const char *leave = "[\"3\",\"18\",\"room:1\",\"phx_leave\",{}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, leave, strlen(leave), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.event, "phx_leave");
    ASSERT(phx_field_eq(&m.event, "phx_leave"));
    ASSERT(!phx_field_eq(&m.event, "phx_leav"));
    free(keep);
}

static void v2_text_minifies_and_keeps_big_integers(void)
{
    phx_msg_t m;
    uint8_t *keep;
    const char *s = " [ \"1\" ,\n \"2\" , \"t\" , \"e\" , { \"n\" : 12345678901234567890 ,"
                    " \"f\" : 1.0E+400 , \"s\" : \"a  b\" } ] \n";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, s, strlen(s), NULL, &keep), 0);
    ASSERT_PAYLOAD(m, "{\"n\":12345678901234567890,\"f\":1.0E+400,\"s\":\"a  b\"}");
    /* Forwarded in a broadcast, the payload is byte-identical. */
    phx_out_t o = {.kind = PHX_OUT_BROADCAST,
                   .topic = m.topic,
                   .event = m.event,
                   .payload = m.payload,
                   .payload_len = m.payload_len};
    EXPECT_TEXT(
        PHX_FMT_V2_JSON, &o,
        "[null,null,\"t\",\"e\",{\"n\":12345678901234567890,\"f\":1.0E+400,\"s\":\"a  b\"}]");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"e\",\"payload\":{\"n\":12345678901234567890,\"f\":1.0E+400,"
                "\"s\":\"a  b\"},\"ref\":null,\"topic\":\"t\"}");
    free(keep);
}

static void v2_text_echoes_ref_types(void)
{
    phx_msg_t m;
    uint8_t *keep;
    const char *s = "[7,-1.5e3,42,true,[1,2]]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, s, strlen(s), NULL, &keep), 0);
    ASSERT_FIELD_OTHER(m.join_ref, "7");
    ASSERT_FIELD_OTHER(m.ref, "-1.5e3");
    ASSERT_FIELD_OTHER(m.topic, "42");
    ASSERT_FIELD_OTHER(m.event, "true");
    ASSERT_PAYLOAD(m, "[1,2]");
    phx_out_t o = {.kind = PHX_OUT_REPLY,
                   .join_ref = m.join_ref,
                   .ref = m.ref,
                   .topic = m.topic,
                   .status = S("ok")};
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[7,-1.5e3,42,\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},\"status\":\"ok\"},"
                "\"ref\":-1.5e3,\"topic\":42}");
    free(keep);

    /* A non-string topic is echoed in the "unmatched topic" reply. */
    const char *j = "[\"6\",\"6\",{\"a\": 1},\"phx_join\",{}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, j, strlen(j), NULL, &keep), 0);
    ASSERT_FIELD_OTHER(m.topic, "{\"a\":1}");
    phx_out_t r = {.kind = PHX_OUT_REPLY,
                   .join_ref = N,
                   .ref = m.ref,
                   .topic = m.topic,
                   .status = S("error"),
                   .payload = (const uint8_t *)"{\"reason\":\"unmatched topic\"}",
                   .payload_len = 28};
    EXPECT_TEXT(
        PHX_FMT_V2_JSON, &r,
        "[null,\"6\",{\"a\":1},\"phx_reply\",{\"response\":{\"reason\":\"unmatched topic\"},"
        "\"status\":\"error\"}]");
    free(keep);

    /* Strings with escapes are decoded, then escaped again on output. */
    const char *e = "[\"\\u0031\",\"a\\\"b\",\"r\\/\\u00e9\\n\",\"ev\",{}]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, e, strlen(e), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.join_ref, "1");
    ASSERT_FIELD_STR(m.ref, "a\"b");
    ASSERT_FIELD_STR(m.topic, "r/\xc3\xa9\n");
    phx_out_t r2 = {.kind = PHX_OUT_REPLY,
                    .join_ref = m.join_ref,
                    .ref = m.ref,
                    .topic = m.topic,
                    .status = S("ok")};
    EXPECT_TEXT(
        PHX_FMT_V2_JSON, &r2,
        "[\"1\",\"a\\\"b\",\"r/\xc3\xa9\\n\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    free(keep);
}

static void v2_text_extra_elements_ignored(void)
{
    phx_msg_t m;
    uint8_t *keep;
    const char *s = "[null,null,\"t\",\"e\",{\"a\":1},\"extra\",[1,{}],null]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, s, strlen(s), NULL, &keep), 0);
    ASSERT_PAYLOAD(m, "{\"a\":1}");
    free(keep);
    /* Any JSON value is a payload. */
    const char *t = "[null,null,\"t\",\"e\",\"text\"]";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, t, strlen(t), NULL, &keep), 0);
    ASSERT_PAYLOAD(m, "\"text\"");
    free(keep);
}

static void v2_text_refuses_malformed_shapes(void)
{
    static const char *bad[] = {
        "",
        "[]",
        "[null,null,\"t\",\"e\"]",
        "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":null}",
        "\"[null,null,\\\"t\\\",\\\"e\\\",{}]\"",
        "42",
        "null",
        "[null,null,\"t\",\"e\",{}",
        "[null,null,\"t\",\"e\",{}] x",
        "[null,null,\"t\",\"e\",{}][]",
        "[null,null,\"t\",\"e\",{},]",
        "[null null \"t\" \"e\" {}]",
        "[null,null,'t',\"e\",{}]",
        "[null,null,\"t\xff\",\"e\",{}]",
        "[null,null,\"t\",\"e\",{\"a\":\"\xed\xa0\x80\"}]",
        "[null,null,\"t\",\"e\",{\"a\":\"\\ud800\"}]",
        "[null,null,\"room:lobby\\u0000evil\",\"e\",{}]",
        "[null,null,\"t\",\"e\\u0000\",{}]",
        "[\"\\u0000\",null,\"t\",\"e\",{}]",
        "[null,\"1\\u0000\",\"t\",\"e\",{}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = V2_TEXT_RV(bad[i]);
        if (rv != PHX_ERR_PROTO)
            phx_test_fail(__FILE__, __LINE__, "rv %d for %s", rv, bad[i]);
    }
    /* A NUL inside a payload string is fine: only interpreted strings care. */
    ASSERT_EQ(V2_TEXT_RV("[null,null,\"t\",\"e\",{\"a\":\"\\u0000\"}]"), 0);
}

static void v2_text_depth_limit_at_n_and_n_plus_1(void)
{
    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    lim.max_depth = 4; /* the envelope array counts */
    const char *ok = "[null,null,\"t\",\"e\",{\"a\":{\"b\":[1]}}]";
    const char *deep = "[null,null,\"t\",\"e\",{\"a\":{\"b\":[[1]]}}]";
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, ok, strlen(ok), &lim), 0);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, deep, strlen(deep), &lim), PHX_ERR_LIMIT);
}

static void field_length_limits(void)
{
    phx_msg_limits_t lim = {
        .max_depth = 8, .max_topic_len = 4, .max_event_len = 3, .max_ref_len = 2};
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[\"12\",\"12\",\"abcd\",\"abc\",{}]",
                        strlen("[\"12\",\"12\",\"abcd\",\"abc\",{}]"), &lim),
              0);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[\"123\",\"1\",\"abcd\",\"abc\",{}]",
                        strlen("[\"123\",\"1\",\"abcd\",\"abc\",{}]"), &lim),
              PHX_ERR_LIMIT);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[\"1\",\"123\",\"abcd\",\"abc\",{}]",
                        strlen("[\"1\",\"123\",\"abcd\",\"abc\",{}]"), &lim),
              PHX_ERR_LIMIT);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[\"1\",\"1\",\"abcde\",\"abc\",{}]",
                        strlen("[\"1\",\"1\",\"abcde\",\"abc\",{}]"), &lim),
              PHX_ERR_LIMIT);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[\"1\",\"1\",\"abcd\",\"abcd\",{}]",
                        strlen("[\"1\",\"1\",\"abcd\",\"abcd\",{}]"), &lim),
              PHX_ERR_LIMIT);
    /* Limits apply to the decoded length... */
    const char *esc = "[\"\\u0031\\u0032\",null,\"t\",\"e\",{}]";
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, esc, strlen(esc), &lim), 0);
    /* ... and to the raw text of a non-string. */
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, "[123,null,\"t\",\"e\",{}]",
                        strlen("[123,null,\"t\",\"e\",{}]"), &lim),
              PHX_ERR_LIMIT);
    /* The default limit is 1024 bytes. */
    char big[1200];
    memcpy(big, "[null,null,\"", 12);
    memset(big + 12, 'x', 1025);
    memcpy(big + 12 + 1025, "\",\"e\",{}]", 9);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, big, 12 + 1025 + 9, NULL), PHX_ERR_LIMIT);
    memcpy(big + 12 + 1024, "\",\"e\",{}]", 9);
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, false, big, 12 + 1024 + 9, NULL), 0);
}

/* ---- decode: V1 ---- */

static void v1_decodes_objects(void)
{
    phx_msg_t m;
    uint8_t *keep;
    const char *s =
        "{\"topic\":\"room:lobby\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"1\"}";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V1_JSON, false, s, strlen(s), NULL, &keep), 0);
    ASSERT_FIELD_NULL(m.join_ref);
    ASSERT_FIELD_STR(m.ref, "1");
    ASSERT_FIELD_STR(m.topic, "room:lobby");
    ASSERT_FIELD_STR(m.event, "phx_join");
    ASSERT_PAYLOAD(m, "{}");
    free(keep);

    /* Any key order, whitespace, a join_ref, unknown keys, a null ref. */
    const char *t =
        " { \"x\" : [1] , \"ref\" : null , \"payload\" : { \"b\" : 12345678901234567890 } ,"
        " \"join_ref\" : 5 , \"event\" : \"e\" , \"topic\" : \"t\" , \"x\" : 2 } ";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V1_JSON, false, t, strlen(t), NULL, &keep), 0);
    ASSERT_FIELD_OTHER(m.join_ref, "5");
    ASSERT_FIELD_NULL(m.ref);
    ASSERT_FIELD_STR(m.topic, "t");
    ASSERT_PAYLOAD(m, "{\"b\":12345678901234567890}");
    free(keep);

    /* Escaped key names are the same keys. */
    const char *u = "{\"\\u0074opic\":\"t\",\"ev\\u0065nt\":\"e\",\"payload\":{},\"ref\":\"1\"}";
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V1_JSON, false, u, strlen(u), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.topic, "t");
    free(keep);
}

static void v1_refuses_duplicates_and_missing_keys(void)
{
    static const char *bad[] = {
        "{\"topic\":\"a\",\"topic\":\"b\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"\\u0074opic\":\"b\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"payload\":[],\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\",\"ref\":\"2\"}",
        ("{\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\",\"join_ref\":\"1\","
         "\"join_ref\":\"2\"}"),
        "{\"topic\":\"a\",\"event\":\"e\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"payload\":{},\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"event\":\"e\",\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"event\":\"e\",\"payload\":{}}",
        "{\"Topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{}",
        "[\"3\",\"3\",\"room:1\",\"phx_join\",{}]",
        "\"x\"",
        "{\"topic\":\"a\\u0000\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",
        "{\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"} {}",
        "{\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\",}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = V1_TEXT_RV(bad[i]);
        if (rv != PHX_ERR_PROTO)
            phx_test_fail(__FILE__, __LINE__, "rv %d for %s", rv, bad[i]);
    }
    /* Unknown keys may repeat: they are ignored, as Jason would keep one. */
    ASSERT_EQ(
        V1_TEXT_RV("{\"x\":1,\"x\":2,\"topic\":\"a\",\"event\":\"e\",\"payload\":{},\"ref\":1}"),
        0);
    /* V1 has no binary frames. */
    ASSERT_EQ(decode_rv(PHX_FMT_V1_JSON, true, "\x00\x00\x00\x01\x01te", 7, NULL), PHX_ERR_PROTO);
}

/* ---- decode: V2 binary ---- */

static void v2_binary_decodes_client_push(void)
{
    /* docs/protocol.md §2.4: push "binary" with payload 09 08 07. */
    static const uint8_t f[] = {0x00, 0x01, 0x01, 0x06, 0x06, 0x33, 0x38, 0x72, 0x6f, 0x6f, 0x6d,
                                0x3a, 0x31, 0x62, 0x69, 0x6e, 0x61, 0x72, 0x79, 0x09, 0x08, 0x07};
    phx_msg_t m;
    uint8_t *keep;
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, true, f, sizeof(f), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.join_ref, "3");
    ASSERT_FIELD_STR(m.ref, "8");
    ASSERT_FIELD_STR(m.topic, "room:1");
    ASSERT_FIELD_STR(m.event, "binary");
    ASSERT(m.is_binary);
    ASSERT_MEM_EQ(m.payload, m.payload_len, "\x09\x08\x07", 3);
    free(keep);

    /* Zero-length join_ref and ref stay "" (not null); empty payload. */
    static const uint8_t z[] = {0x00, 0x00, 0x00, 0x01, 0x01, 't', 'e'};
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, true, z, sizeof(z), NULL, &keep), 0);
    ASSERT_EQ(m.join_ref.kind, PHX_FIELD_STRING);
    ASSERT_EQ(m.join_ref.len, 0);
    ASSERT_EQ(m.ref.kind, PHX_FIELD_STRING);
    ASSERT_EQ(m.ref.len, 0);
    ASSERT_EQ(m.payload_len, 0);
    ASSERT(m.is_binary);
    /* ... and an empty ref is echoed as "" in a text reply. */
    phx_out_t o = {.kind = PHX_OUT_REPLY,
                   .join_ref = m.join_ref,
                   .ref = m.ref,
                   .topic = m.topic,
                   .status = S("ok")};
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[\"\",\"\",\"t\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    free(keep);
}

static void v2_binary_refuses_malformed(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        int rv;
    } rows[] = {
        {"", 0, PHX_ERR_PROTO},
        {"\x00", 1, PHX_ERR_PROTO},
        {"\x00\x00", 2, PHX_ERR_PROTO},
        {"\x00\x00\x00", 3, PHX_ERR_PROTO},
        {"\x00\x00\x00\x00", 4, PHX_ERR_PROTO},
        {"\x00\x00\x00\x00\x00", 5, 0}, /* everything empty is well-formed */
        {"\x01\x00\x00\x00\x00", 5, PHX_ERR_PROTO},
        {"\x02\x00\x00", 3, PHX_ERR_PROTO},
        {"\x02\x00\x00\x00\x00", 5, PHX_ERR_PROTO},
        {"\x03\x00\x00\x00\x00", 5, PHX_ERR_PROTO},
        {"\xff\x00\x00\x00\x00", 5, PHX_ERR_PROTO},
        {"\x00\x01\x00\x00\x00", 5, PHX_ERR_PROTO},       /* join_ref past the end */
        {"\x00\x00\x00\x02\x00t", 6, PHX_ERR_PROTO},      /* topic past the end */
        {"\x00\x00\x00\x01\x01t", 6, PHX_ERR_PROTO},      /* event past the end */
        {"\x00\xff\xff\xff\xff", 5, PHX_ERR_PROTO},       /* all lengths huge */
        {"\x00\x00\x00\x01\x01\x00e", 7, PHX_ERR_PROTO},  /* NUL in topic */
        {"\x00\x00\x00\x01\x01t\x00", 7, PHX_ERR_PROTO},  /* NUL in event */
        {"\x00\x01\x00\x01\x01\x00te", 8, PHX_ERR_PROTO}, /* NUL in join_ref */
        {"\x00\x00\x01\x01\x01\x00te", 8, PHX_ERR_PROTO}, /* NUL in ref */
        {"\x00\x00\x00\x01\x01\xfft", 7, PHX_ERR_PROTO},  /* invalid UTF-8 topic */
        {"\x00\x00\x00\x01\x01te\x00\xff", 9, 0},         /* payload bytes are free */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rv = decode_rv(PHX_FMT_V2_JSON, true, rows[i].bytes, rows[i].len, NULL);
        if (rv != rows[i].rv)
            phx_test_fail(__FILE__, __LINE__, "row %zu: rv %d", i, rv);
    }
    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    lim.max_topic_len = 1;
    ASSERT_EQ(decode_rv(PHX_FMT_V2_JSON, true, "\x00\x00\x00\x02\x01tte", 8, &lim), PHX_ERR_LIMIT);
}

/* ---- encode: docs/protocol.md §2.2 and §2.3 ---- */

static void v2_text_encodes_server_examples(void)
{
    phx_out_t o = out_msg(PHX_OUT_REPLY, S("3"), S("3"), "room:1", "ok", "{\"hello\":\"world\"}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[\"3\",\"3\",\"room:1\",\"phx_reply\",{\"response\":{\"hello\":\"world\"},"
                "\"status\":\"ok\"}]");
    o = out_msg(PHX_OUT_REPLY, N, S("10"), "phoenix", "ok", "{}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[null,\"10\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    /* A push carries the join_ref and a null ref, whatever ref is given. */
    o = out_msg(PHX_OUT_PUSH, S("3"), S("99"), "room:1", "presence_state", "{\"x\":1}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o, "[\"3\",null,\"room:1\",\"presence_state\",{\"x\":1}]");
    /* A broadcast has both refs null. */
    o = out_msg(PHX_OUT_BROADCAST, S("3"), S("99"), "room:1", "new_msg", "{\"body\":\"hi\"}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o, "[null,null,\"room:1\",\"new_msg\",{\"body\":\"hi\"}]");
    o = out_msg(PHX_OUT_MESSAGE, S("3"), S("3"), "room:1", "phx_error",
                "{\"reason\":\"channel_crash\"}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[\"3\",\"3\",\"room:1\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    o = out_msg(PHX_OUT_MESSAGE, S("3"), S("3"), "room:1", "phx_close", NULL);
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o, "[\"3\",\"3\",\"room:1\",\"phx_close\",{}]");
    /* A reply's response may be any JSON value. */
    o = out_msg(PHX_OUT_REPLY, S("1"), S("2"), "t", "ok", "[1,\"a\"]");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[\"1\",\"2\",\"t\",\"phx_reply\",{\"response\":[1,\"a\"],\"status\":\"ok\"}]");
}

static void v1_encodes_server_examples(void)
{
    phx_out_t o = out_msg(PHX_OUT_REPLY, S("1"), S("1"), "room:lobby", "ok", "{}");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},\"status\":\"ok\"},"
                "\"ref\":\"1\",\"topic\":\"room:lobby\"}");
    o = out_msg(PHX_OUT_PUSH, S("1"), S("5"), "room:lobby", "new_msg", "{\"body\":\"hi\"}");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"new_msg\",\"payload\":{\"body\":\"hi\"},\"ref\":null,"
                "\"topic\":\"room:lobby\"}");
    o = out_msg(PHX_OUT_BROADCAST, N, N, "room:lobby", "new_msg", "{\"body\":\"hi\"}");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"new_msg\",\"payload\":{\"body\":\"hi\"},\"ref\":null,"
                "\"topic\":\"room:lobby\"}");
    /* phx_close for a V1 client that joined without join_ref: ref null. */
    o = out_msg(PHX_OUT_MESSAGE, N, N, "room:lobby", "phx_close", "{}");
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"phx_close\",\"payload\":{},\"ref\":null,\"topic\":\"room:lobby\"}");
    o = out_msg(PHX_OUT_MESSAGE, S("4"), S("4"), "room:lobby", "phx_error", NULL);
    EXPECT_TEXT(PHX_FMT_V1_JSON, &o,
                "{\"event\":\"phx_error\",\"payload\":{},\"ref\":\"4\",\"topic\":\"room:lobby\"}");
}

/* ---- encode: docs/protocol.md §2.4 ---- */

static void v2_binary_encodes_server_layouts(void)
{
    /* Push: join_ref "3", topic "room:1", event "bin_push", payload ff 00. */
    static const uint8_t push[] = {0x00, 0x01, 0x06, 0x08, 0x33, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0x31,
                                   0x62, 0x69, 0x6e, 0x5f, 0x70, 0x75, 0x73, 0x68, 0xff, 0x00};
    phx_out_t o = {.kind = PHX_OUT_PUSH,
                   .join_ref = S("3"),
                   .ref = S("8"),
                   .topic = S("room:1"),
                   .event = S("bin_push"),
                   .payload = (const uint8_t *)"\xff\x00",
                   .payload_len = 2,
                   .is_binary = true};
    expect_encode(PHX_FMT_V2_JSON, &o, push, sizeof(push));

    /* Reply: join_ref "3", ref "8", topic "room:1", status "ok", 01 02 03. */
    static const uint8_t reply[] = {0x01, 0x01, 0x01, 0x06, 0x02, 0x33, 0x38, 0x72, 0x6f,
                                    0x6f, 0x6d, 0x3a, 0x31, 0x6f, 0x6b, 0x01, 0x02, 0x03};
    phx_out_t r = {.kind = PHX_OUT_REPLY,
                   .join_ref = S("3"),
                   .ref = S("8"),
                   .topic = S("room:1"),
                   .status = S("ok"),
                   .payload = (const uint8_t *)"\x01\x02\x03",
                   .payload_len = 3,
                   .is_binary = true};
    expect_encode(PHX_FMT_V2_JSON, &r, reply, sizeof(reply));

    /* Broadcast: topic "room:1", event "bin_bcast", payload ab. */
    static const uint8_t bcast[] = {0x02, 0x06, 0x09, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0x31, 0x62,
                                    0x69, 0x6e, 0x5f, 0x62, 0x63, 0x61, 0x73, 0x74, 0xab};
    phx_out_t b = {.kind = PHX_OUT_BROADCAST,
                   .join_ref = S("3"),
                   .topic = S("room:1"),
                   .event = S("bin_bcast"),
                   .payload = (const uint8_t *)"\xab",
                   .payload_len = 1,
                   .is_binary = true};
    expect_encode(PHX_FMT_V2_JSON, &b, bcast, sizeof(bcast));

    /* Null join_ref and ref are length 0. */
    phx_out_t n = {.kind = PHX_OUT_REPLY,
                   .join_ref = N,
                   .ref = N,
                   .topic = S("t"),
                   .status = S("ok"),
                   .is_binary = true};
    expect_encode(PHX_FMT_V2_JSON, &n, "\x01\x00\x00\x01\x02tok", 8);
}

static void v2_binary_metadata_limit_255(void)
{
    char t255[256], t256[257];
    memset(t255, 'a', 255);
    t255[255] = '\0';
    memset(t256, 'a', 256);
    t256[256] = '\0';
    phx_out_t o = {.kind = PHX_OUT_PUSH,
                   .join_ref = S("3"),
                   .topic = S(t255),
                   .event = S("e"),
                   .is_binary = true};
    size_t size;
    ASSERT_EQ(phx_msg_encoded_size(PHX_FMT_V2_JSON, &o, &size), 0);
    ASSERT_EQ(size, 4 + 1 + 255 + 1);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), 0);
    o.topic = S(t256);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), PHX_ERR_LIMIT);
    o.topic = S("t");
    o.join_ref = S(t256);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), PHX_ERR_LIMIT);
    o.join_ref = S("3");
    o.event = S(t256);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), PHX_ERR_LIMIT);
    /* A push ignores its ref, so a long one does not matter. */
    o.event = S("e");
    o.ref = S(t256);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), 0);
    phx_out_t r = {.kind = PHX_OUT_REPLY,
                   .join_ref = S("3"),
                   .ref = S(t256),
                   .topic = S("t"),
                   .status = S("ok"),
                   .is_binary = true};
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &r), PHX_ERR_LIMIT);
    r.ref = S("1");
    r.status = S(t256);
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &r), PHX_ERR_LIMIT);
    /* Text frames have no such limit. */
    phx_out_t t = {.kind = PHX_OUT_PUSH, .join_ref = S(t256), .topic = S(t256), .event = S(t256)};
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &t), 0);
}

static void encode_refuses_unencodable(void)
{
    /* V1 cannot carry binary. */
    phx_out_t o = {.kind = PHX_OUT_BROADCAST,
                   .topic = S("t"),
                   .event = S("e"),
                   .payload = (const uint8_t *)"\x01",
                   .payload_len = 1,
                   .is_binary = true};
    ASSERT_EQ(encode_rv(PHX_FMT_V1_JSON, &o), PHX_ERR_INVALID);
    size_t size;
    ASSERT_EQ(phx_msg_encoded_size(PHX_FMT_V1_JSON, &o, &size), PHX_ERR_INVALID);
    /* phx_close/phx_error have no binary layout. */
    o.kind = PHX_OUT_MESSAGE;
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &o), PHX_ERR_INVALID);
    /* Non-string refs cannot go into binary metadata. */
    phx_field_t seven = {PHX_FIELD_OTHER, (const uint8_t *)"7", 1};
    phx_out_t r = {.kind = PHX_OUT_REPLY,
                   .join_ref = S("1"),
                   .ref = seven,
                   .topic = S("t"),
                   .status = S("ok"),
                   .is_binary = true};
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &r), PHX_ERR_INVALID);
    /* Text pushes and broadcasts need an object payload. */
    phx_out_t p = out_msg(PHX_OUT_PUSH, S("1"), N, "t", "e", "[1]");
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), PHX_ERR_INVALID);
    p = out_msg(PHX_OUT_BROADCAST, N, N, "t", "e", "\"s\"");
    ASSERT_EQ(encode_rv(PHX_FMT_V1_JSON, &p), PHX_ERR_INVALID);
    /* Text frames must be valid UTF-8. */
    p = out_msg(PHX_OUT_PUSH, S("1"), N, "t\xff", "e", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), PHX_ERR_INVALID);
    p = out_msg(PHX_OUT_REPLY, S("1"), S("\xc3"), "t", "ok", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), PHX_ERR_INVALID);
    /* Fields a kind does not write are not checked. */
    p = out_msg(PHX_OUT_BROADCAST, S("\xff"), S("\xff"), "t", "e", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), 0);
    p = out_msg(PHX_OUT_PUSH, S("1"), S("\xff"), "t", "e", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_V1_JSON, &p), 0);
    p = out_msg(PHX_OUT_REPLY, S("1"), S("1"), "t", "\xff", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), PHX_ERR_INVALID);
    /* ... but binary metadata is bytes. */
    phx_out_t b = {
        .kind = PHX_OUT_BROADCAST, .topic = S("t\xff"), .event = S("e"), .is_binary = true};
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &b), 0);
    /* Unknown format or kind. */
    p = out_msg(PHX_OUT_PUSH, S("1"), N, "t", "e", "{}");
    ASSERT_EQ(encode_rv(PHX_FMT_COUNT, &p), PHX_ERR_INVALID);
    p.kind = (phx_out_kind_t)42;
    ASSERT_EQ(encode_rv(PHX_FMT_V2_JSON, &p), PHX_ERR_INVALID);
}

static void encode_escapes_strings(void)
{
    phx_out_t o = out_msg(PHX_OUT_PUSH, S("a\"b"), N, "room:\\\x01\xc3\xa9", "ev\ten", "{}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o,
                "[\"a\\\"b\",null,\"room:\\\\\\u0001\xc3\xa9\",\"ev\\ten\",{}]");
    /* A NUL byte a server string may hold is escaped. */
    o.topic = phx_field_bytes("a\0b", 3);
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o, "[\"a\\\"b\",null,\"a\\u0000b\",\"ev\\ten\",{}]");
}

static void encode_fails_cleanly_without_memory(void)
{
    phx_out_t o = out_msg(PHX_OUT_BROADCAST, N, N, "room:1", "new_msg", "{\"body\":\"hi\"}");
    phx_rcbuf_t *b = NULL;
    phx_mem_reset_count();
    ASSERT_EQ(phx_msg_encode(&b, PHX_FMT_V2_JSON, &o), 0);
    unsigned long n = phx_mem_count();
    ASSERT_EQ(n, 1); /* one allocation per message */
    phx_rcbuf_unref(b);
    for (unsigned long i = 1; i <= n; i++) {
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        b = NULL;
        ASSERT_EQ(phx_msg_encode(&b, PHX_FMT_V2_JSON, &o), PHX_ERR_NOMEM);
        ASSERT(b == NULL);
        o.is_binary = true;
        ASSERT_EQ(phx_msg_encode(&b, PHX_FMT_V2_JSON, &o), PHX_ERR_NOMEM);
        o.is_binary = false;
        ASSERT_EQ(phx_msg_encode(&b, PHX_FMT_V1_JSON, &o), PHX_ERR_NOMEM);
        phx_mem_fail_at(0);
    }
    /* Decoding allocates nothing. */
    phx_mem_reset_count();
    phx_mem_fail_at(1);
    char s[] = "[\"1\",\"2\",\"t\",\"e\",{\"a\":[1,2]}]";
    phx_msg_t m;
    ASSERT_EQ(phx_msg_decode(&m, PHX_FMT_V2_JSON, false, (uint8_t *)s, strlen(s), NULL), 0);
    phx_mem_fail_at(0);
}

/* ---- docs/protocol.md Appendix B.1 ---- */

/* Decodes the client frame `c`, and encodes the server frame through `o`
 * with fields taken from the decoded message where the transcript echoes
 * them. */
static void b1_text_round(const char *c, phx_out_kind_t kind, const char *jr_override,
                          const char *event_or_status, const char *payload, const char *want)
{
    phx_msg_t m;
    uint8_t *keep;
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, c, strlen(c), NULL, &keep), 0);
    phx_out_t o = {.kind = kind, .join_ref = m.join_ref, .ref = m.ref, .topic = m.topic};
    if (jr_override != NULL)
        o.join_ref = strcmp(jr_override, "null") == 0 ? N : S(jr_override);
    if (kind == PHX_OUT_REPLY)
        o.status = S(event_or_status);
    else
        o.event = S(event_or_status);
    o.payload = (const uint8_t *)payload;
    o.payload_len = payload ? strlen(payload) : 0;
    EXPECT_TEXT(PHX_FMT_V2_JSON, &o, want);
    free(keep);
}

static void appendix_b1_transcript(void)
{
    b1_text_round("[\"3\",\"3\",\"room:lobby\",\"phx_join\",{\"name\":\"ann\"}]", PHX_OUT_REPLY,
                  NULL, "ok", NULL,
                  "[\"3\",\"3\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");

    phx_out_t push = out_msg(PHX_OUT_PUSH, S("3"), N, "room:lobby", "presence_state",
                             "{\"42\":{\"metas\":[{\"phx_ref\":\"F5ec_j2FzRUSNABC\"}]}}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &push,
                "[\"3\",null,\"room:lobby\",\"presence_state\",{\"42\":{\"metas\":[{\"phx_ref\":"
                "\"F5ec_j2FzRUSNABC\"}]}}]");
    phx_out_t diff = out_msg(PHX_OUT_BROADCAST, N, N, "room:lobby", "presence_diff",
                             "{\"joins\":{\"42\":{\"metas\":[{\"phx_ref\":\"F5ec_j2FzRUSNABC\"}]}},"
                             "\"leaves\":{}}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &diff,
                "[null,null,\"room:lobby\",\"presence_diff\",{\"joins\":{\"42\":{\"metas\":[{"
                "\"phx_ref\":\"F5ec_j2FzRUSNABC\"}]}},\"leaves\":{}}]");

    /* new_msg: broadcast of the client's payload, then the reply. */
    const char *c = "[\"3\",\"4\",\"room:lobby\",\"new_msg\",{\"body\":\"hi\"}]";
    phx_msg_t m;
    uint8_t *keep;
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, false, c, strlen(c), NULL, &keep), 0);
    phx_out_t b = {.kind = PHX_OUT_BROADCAST,
                   .topic = m.topic,
                   .event = m.event,
                   .payload = m.payload,
                   .payload_len = m.payload_len};
    EXPECT_TEXT(PHX_FMT_V2_JSON, &b, "[null,null,\"room:lobby\",\"new_msg\",{\"body\":\"hi\"}]");
    phx_out_t r = {.kind = PHX_OUT_REPLY,
                   .join_ref = m.join_ref,
                   .ref = m.ref,
                   .topic = m.topic,
                   .status = S("ok")};
    EXPECT_TEXT(PHX_FMT_V2_JSON, &r,
                "[\"3\",\"4\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    free(keep);

    b1_text_round("[\"6\",\"6\",\"nope:1\",\"phx_join\",{}]", PHX_OUT_REPLY, "null", "error",
                  "{\"reason\":\"unmatched topic\"}",
                  "[null,\"6\",\"nope:1\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
                  "topic\"},\"status\":\"error\"}]");
    b1_text_round("[null,\"7\",\"phoenix\",\"heartbeat\",{}]", PHX_OUT_REPLY, NULL, "ok", NULL,
                  "[null,\"7\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");

    /* Binary push from the client, binary reply with an empty response. */
    static const uint8_t cbin[] = {0x00, 0x01, 0x01, 0x0a, 0x06, 0x33, 0x38, 0x72, 0x6f,
                                   0x6f, 0x6d, 0x3a, 0x6c, 0x6f, 0x62, 0x62, 0x79, 0x75,
                                   0x70, 0x6c, 0x6f, 0x61, 0x64, 0xde, 0xad};
    static const uint8_t sbin[] = {0x01, 0x01, 0x01, 0x0a, 0x02, 0x33, 0x38, 0x72, 0x6f, 0x6f,
                                   0x6d, 0x3a, 0x6c, 0x6f, 0x62, 0x62, 0x79, 0x6f, 0x6b};
    ASSERT_EQ(decode_keep(&m, PHX_FMT_V2_JSON, true, cbin, sizeof(cbin), NULL, &keep), 0);
    ASSERT_FIELD_STR(m.join_ref, "3");
    ASSERT_FIELD_STR(m.ref, "8");
    ASSERT_FIELD_STR(m.topic, "room:lobby");
    ASSERT_FIELD_STR(m.event, "upload");
    ASSERT_MEM_EQ(m.payload, m.payload_len, "\xde\xad", 2);
    phx_out_t br = {.kind = PHX_OUT_REPLY,
                    .join_ref = m.join_ref,
                    .ref = m.ref,
                    .topic = m.topic,
                    .status = S("ok"),
                    .is_binary = true};
    expect_encode(PHX_FMT_V2_JSON, &br, sbin, sizeof(sbin));
    free(keep);

    phx_out_t err = out_msg(PHX_OUT_MESSAGE, S("3"), S("3"), "room:lobby", "phx_error",
                            "{\"reason\":\"channel_crash\"}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &err,
                "[\"3\",\"3\",\"room:lobby\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    b1_text_round("[\"9\",\"9\",\"room:lobby\",\"phx_join\",{\"name\":\"ann\"}]", PHX_OUT_REPLY,
                  NULL, "ok", NULL,
                  "[\"9\",\"9\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    b1_text_round(
        "[\"9\",\"10\",\"room:lobby\",\"phx_leave\",{}]", PHX_OUT_REPLY, NULL, "ok", NULL,
        "[\"9\",\"10\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    phx_out_t close = out_msg(PHX_OUT_MESSAGE, S("9"), S("9"), "room:lobby", "phx_close", "{}");
    EXPECT_TEXT(PHX_FMT_V2_JSON, &close, "[\"9\",\"9\",\"room:lobby\",\"phx_close\",{}]");
}

/* Server V2 text output is itself a 5-element array, so it decodes back. */
static void v2_encode_decode_roundtrip(void)
{
    phx_field_t seven = {PHX_FIELD_OTHER, (const uint8_t *)"7", 1};
    phx_out_t o = {.kind = PHX_OUT_MESSAGE,
                   .join_ref = S("1\n\"x"),
                   .ref = seven,
                   .topic = S("room:\xc3\xa9"),
                   .event = S("e\\v"),
                   .payload = (const uint8_t *)"{\"n\":12345678901234567890}",
                   .payload_len = 26};
    phx_rcbuf_t *b;
    ASSERT_EQ(phx_msg_encode(&b, PHX_FMT_V2_JSON, &o), 0);
    phx_msg_t m;
    uint8_t *keep;
    ASSERT_EQ(
        decode_keep(&m, PHX_FMT_V2_JSON, false, b->data + b->off, b->len - b->off, NULL, &keep), 0);
    ASSERT_FIELD_STR(m.join_ref, "1\n\"x");
    ASSERT_FIELD_OTHER(m.ref, "7");
    ASSERT_FIELD_STR(m.topic, "room:\xc3\xa9");
    ASSERT_FIELD_STR(m.event, "e\\v");
    ASSERT_PAYLOAD(m, "{\"n\":12345678901234567890}");
    free(keep);
    phx_rcbuf_unref(b);
}

const phx_test_t phx_tests_serializer[] = {
    {"vsn_table_of_section_1_3", vsn_table_of_section_1_3},
    {"v2_text_decodes_client_examples", v2_text_decodes_client_examples},
    {"v2_text_minifies_and_keeps_big_integers", v2_text_minifies_and_keeps_big_integers},
    {"v2_text_echoes_ref_types", v2_text_echoes_ref_types},
    {"v2_text_extra_elements_ignored", v2_text_extra_elements_ignored},
    {"v2_text_refuses_malformed_shapes", v2_text_refuses_malformed_shapes},
    {"v2_text_depth_limit_at_n_and_n_plus_1", v2_text_depth_limit_at_n_and_n_plus_1},
    {"field_length_limits", field_length_limits},
    {"v1_decodes_objects", v1_decodes_objects},
    {"v1_refuses_duplicates_and_missing_keys", v1_refuses_duplicates_and_missing_keys},
    {"v2_binary_decodes_client_push", v2_binary_decodes_client_push},
    {"v2_binary_refuses_malformed", v2_binary_refuses_malformed},
    {"v2_text_encodes_server_examples", v2_text_encodes_server_examples},
    {"v1_encodes_server_examples", v1_encodes_server_examples},
    {"v2_binary_encodes_server_layouts", v2_binary_encodes_server_layouts},
    {"v2_binary_metadata_limit_255", v2_binary_metadata_limit_255},
    {"encode_refuses_unencodable", encode_refuses_unencodable},
    {"encode_escapes_strings", encode_escapes_strings},
    {"encode_fails_cleanly_without_memory", encode_fails_cleanly_without_memory},
    {"appendix_b1_transcript", appendix_b1_transcript},
    {"v2_encode_decode_roundtrip", v2_encode_decode_roundtrip},
    {NULL, NULL},
};
