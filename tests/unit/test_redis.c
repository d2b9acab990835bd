/* Unit tests for redis.c's pure parts: the cluster message format (encode,
 * decode, every truncation and hostile field) and the --redis URL. */
#include "redis.h"

#include <string.h>

#include "mem.h"
#include "phx.h"
#include "runner.h"

static phx_bcast_t bc(const char *event, const phx_payload_t *p, uint64_t sender, uint32_t flags)
{
    return (phx_bcast_t){.topic = "room:1",
                         .topic_len = 6,
                         .event = event,
                         .event_len = strlen(event),
                         .payload = p,
                         .origin = {.sender = sender, .flags = flags}};
}

static void roundtrip_every_payload_kind(void)
{
    phx_payload_t json = {(const uint8_t *)"{\"a\":[1,2]}", 11, false};
    phx_payload_t bin = {(const uint8_t *)"\x00\xff\x01", 3, true};
    const phx_payload_t *ps[] = {&json, &bin, NULL};
    for (int i = 0; i < 3; i++) {
        phx_buf_t out = {0};
        phx_bcast_t b =
            bc("new_msg", ps[i], 0x0102030405060708ULL, PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY);
        ASSERT_EQ(phx_redis_msg_encode(&out, "node-a", 6, &b), 0);
        ASSERT_EQ(out.data[0], PHX_REDIS_MSG_VERSION);
        phx_redis_msg_t m;
        ASSERT_EQ(phx_redis_msg_decode(out.data, out.len, NULL, &m), 0);
        ASSERT_MEM_EQ(m.node, m.node_len, "node-a", 6);
        ASSERT_EQ(m.sender, 0x0102030405060708ULL);
        ASSERT_EQ(m.flags, (uint32_t)(PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY));
        ASSERT_MEM_EQ(m.event, m.event_len, "new_msg", 7);
        ASSERT_EQ(m.has_payload, ps[i] != NULL);
        if (ps[i]) {
            ASSERT_MEM_EQ(m.payload.data, m.payload.len, ps[i]->data, ps[i]->len);
            ASSERT_EQ(m.payload.is_binary, ps[i]->is_binary);
        }
        /* Every truncation is malformed, never read past the end. */
        for (size_t n = 0; n < out.len; n++) {
            uint8_t *copy = phx_malloc(n ? n : 1);
            memcpy(copy, out.data, n);
            int rv = phx_redis_msg_decode(copy, n, NULL, &m);
            /* A binary payload may be cut and stay well-formed. */
            if (!(ps[i] == &bin && n >= out.len - bin.len))
                ASSERT_EQ(rv, PHX_ERR_PROTO);
            phx_free(copy);
        }
        phx_buf_dispose(&out);
    }
}

static void encode_refuses_what_does_not_fit(void)
{
    phx_buf_t out = {0};
    phx_bcast_t b = bc("e", NULL, 0, 0);
    char node[300];
    memset(node, 'n', sizeof(node));
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 256, &b), PHX_ERR_INVALID);
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 0, &b), PHX_ERR_INVALID);
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 255, &b), 0);
    phx_buf_dispose(&out);
}

/* A message built by hand: version, node, sender, flags, event, kind, payload. */
static size_t build(uint8_t *buf, uint8_t version, const char *node, uint8_t flags,
                    const char *event, size_t elen, uint8_t kind, const char *payload, size_t plen)
{
    size_t n = 0, nl = strlen(node);
    buf[n++] = version;
    buf[n++] = (uint8_t)nl;
    memcpy(buf + n, node, nl);
    n += nl;
    memset(buf + n, 0, 8);
    n += 8;
    buf[n++] = flags;
    buf[n++] = (uint8_t)(elen >> 8);
    buf[n++] = (uint8_t)elen;
    memcpy(buf + n, event, elen);
    n += elen;
    buf[n++] = kind;
    memcpy(buf + n, payload, plen);
    return n + plen;
}

static void hostile_messages_are_malformed(void)
{
    uint8_t buf[512];
    phx_redis_msg_t m;
    size_t n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    n = build(buf, 2, "a", 0, "ev", 2, 1, "{}", 2); /* unknown version */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "", 0, "ev", 2, 1, "{}", 2); /* empty node */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 4, "ev", 2, 1, "{}", 2); /* unknown flag */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "", 0, 1, "{}", 2); /* empty event */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "\xff\xfe", 2, 1, "{}", 2); /* event not UTF-8 */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "e\0v", 3, 1, "{}", 2); /* NUL in the event */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 3, "{}", 2); /* unknown kind */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 0, "{}", 2); /* kind none with bytes */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{\"a\":", 5); /* not JSON */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "", 0); /* empty JSON */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "[[[1]]]", 7); /* too deep */
    phx_json_limits_t lim = {.max_depth = 2};
    ASSERT_EQ(phx_redis_msg_decode(buf, n, &lim, &m), PHX_ERR_PROTO);
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    /* A node length or an event length that points past the end. */
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    buf[1] = 200;
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    buf[12] = 0xff; /* event length high byte */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 2, "", 0); /* empty binary is fine */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    ASSERT_EQ(m.payload.len, 0u);
    ASSERT(m.payload.is_binary);
}

static void urls(void)
{
    char err[PHX_ERR_LEN];
    phx_redis_url_t u;
    ASSERT_EQ(phx_redis_url_parse("redis://127.0.0.1:6380/3", &u, err), 0);
    ASSERT_STR_EQ(u.host, "127.0.0.1");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(u.db, 3);
    ASSERT(u.password == NULL && u.user == NULL && u.path == NULL);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("redis://us%40er:p%3Ass@localhost", &u, err), 0);
    ASSERT_STR_EQ(u.user, "us@er");
    ASSERT_STR_EQ(u.password, "p:ss");
    ASSERT_STR_EQ(u.host, "localhost");
    ASSERT_EQ(u.port, 6379);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("redis://:secret@[::1]:7000", &u, err), 0);
    ASSERT(u.user == NULL);
    ASSERT_STR_EQ(u.password, "secret");
    ASSERT_STR_EQ(u.host, "::1");
    ASSERT_EQ(u.port, 7000);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("unix:///run/redis.sock", &u, err), 0);
    ASSERT_STR_EQ(u.path, "/run/redis.sock");
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("/tmp/r.sock", &u, err), 0);
    ASSERT_STR_EQ(u.path, "/tmp/r.sock");
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("rediss://h:6380", &u, err), PHX_ERR_INVALID);
    ASSERT(strstr(err, "TLS") != NULL);
    const char *bad[] = {"",
                         "http://h",
                         "redis://",
                         "redis://h:",
                         "redis://h:0",
                         "redis://h:65536",
                         "redis://h:12x",
                         "redis://h/x",
                         "redis://[::1",
                         "unix://",
                         "unix://relative",
                         "redis://u:%zz@h",
                         "redis://h?x",
                         "redis://u:%00@h",
                         "redis://[::1]x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(phx_redis_url_parse(bad[i], &u, err), PHX_ERR_INVALID);
        ASSERT(u.host == NULL && u.path == NULL && u.password == NULL);
    }
}

const phx_test_t phx_tests_redis[] = {
    {"roundtrip_every_payload_kind", roundtrip_every_payload_kind},
    {"encode_refuses_what_does_not_fit", encode_refuses_what_does_not_fit},
    {"hostile_messages_are_malformed", hostile_messages_are_malformed},
    {"urls", urls},
    {NULL, NULL},
};
