/* Unit tests for phoenix_pubsub.c: Phoenix.PubSub's Redis adapter messages.
 * The hex vectors are term_to_binary output of Erlang/OTP 25 (OTP 26's
 * minor_version 2 where named), built as phoenix_pubsub_redis 3.x and
 * Endpoint.broadcast build them; tests/erlang/oracle.escript checks many
 * more against a live Erlang. */
#include "phoenix_pubsub.h"

#include "mem.h"
#include "phx.h"
#include "runner.h"

/* {3, :except, "elixir@a", "room:1", %Broadcast{topic: "room:1", event:
 * "new", payload: %{"a" => 1, b: nil}}, Phoenix.Channel.Server} */
#define PLAIN25                                                                                    \
    "83680661036400066578636570746d00000008656c6978697240616d00000006726f6f6d3a3174000000046400"   \
    "0a5f5f7374727563745f5f64001f456c697869722e50686f656e69782e536f636b65742e42726f61646361737464" \
    "00056576656e746d000000036e65776400077061796c6f61647400000002640001626400036e696c6d0000000161" \
    "6101640005746f7069636d00000006726f6f6d3a3164001d456c697869722e50686f656e69782e4368616e6e656c" \
    "2e536572766572"
#define PLAIN26                                                                                    \
    "836806610377066578636570746d00000008656c6978697240616d00000006726f6f6d3a317400000004770a5f5f" \
    "7374727563745f5f771f456c697869722e50686f656e69782e536f636b65742e42726f6164636173747705657665" \
    "6e"                                                                                           \
    "746d000000036e657777077061796c6f6164740000000277016277036e696c6d000000016161017705746f706963" \
    "6d00000006726f6f6d3a31771d456c697869722e50686f656e69782e4368616e6e656c2e536572766572"
/* The same shape from "elixir@a" on topic "r", event "e", payload
 * %{"l" => List.duplicate("xxxx", 40)}, term_to_binary(_, [:compressed]). */
#define COMPRESSED                                                                                 \
    "835000000213789ced91310ec2300c451d510ae20e889529674054ec483d4014c5961a0849949a2adc9e246cec6c" \
    "78f87adfb6fef2a75eaf107aca86223f00604bce669b4eba1a91b86887b0536ae6f434ac14c2e1d25ee4750ae46d" \
    "9663307762794e41a3d13323ac6921dfe204216ca27eb972ab59a22d9d2b7aacd8e5327ff829dc4a211ca2359f4a" \
    "11f65f050e93f69e9c1c292d94de3e3f8e34"
/* {3, :only, :"phxd@host", "r", %Broadcast{topic: "r", event: "b",
 * payload: {:binary, <<1, 2, 3>>}}, Phoenix.Channel.Server} */
#define ONLY_ATOM_BINARY                                                                           \
    "83680661036400046f6e6c796400097068786440686f73746d0000000172740000000464000a5f5f737472756374" \
    "5f5f64001f456c697869722e50686f656e69782e536f636b65742e42726f6164636173746400056576656e746d00" \
    "000001626400077061796c6f6164680264000662696e6172796d00000003010203640005746f7069636d00000001" \
    "7264001d456c697869722e50686f656e69782e4368616e6e656c2e536572766572"
/* {3, :except, "elixir@a", "r", {:pub, pid, ref}, Phoenix.PubSub}. */
#define PRESENCE                                                                                   \
    "83680661036400066578636570746d00000008656c6978697240616d000000017268036400037075625864000d6e" \
    "6f6e6f6465406e6f686f73740000004d00000000000000005a000364000d6e6f6e6f6465406e6f686f7374000000" \
    "000002731686a800019c81d3fa640015456c697869722e50686f656e69782e507562537562"
/* What Endpoint.broadcast("room:1", "new", %{"a" => 1}) publishes from a
 * node named "phxd@host", OTP 25 and OTP 26. */
#define ENC25                                                                                      \
    "83680661036400066578636570746d000000097068786440686f73746d00000006726f6f6d3a3174000000046400" \
    "0a5f5f7374727563745f5f64001f456c697869722e50686f656e69782e536f636b65742e42726f61646361737464" \
    "00056576656e746d000000036e65776400077061796c6f616474000000016d00000001616101640005746f706963" \
    "6d00000006726f6f6d3a3164001d456c697869722e50686f656e69782e4368616e6e656c2e536572766572"
#define ENC26                                                                                      \
    "836806610377066578636570746d000000097068786440686f73746d00000006726f6f6d3a317400000004770a5f" \
    "5f7374727563745f5f771f456c697869722e50686f656e69782e536f636b65742e42726f61646361737477056576" \
    "656e746d000000036e657777077061796c6f616474000000016d000000016161017705746f7069636d0000000672" \
    "6f6f6d3a31771d456c697869722e50686f656e69782e4368616e6e656c2e536572766572"

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An exact-size malloc'd copy (ASan sees reads past the end). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = malloc(n ? n : 1);
    ASSERT(b != NULL);
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        ASSERT(hi >= 0 && lo >= 0);
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n;
    return b;
}

static int decode_hex(const char *hex, const phx_pps_limits_t *lim, phx_pps_msg_t *m)
{
    size_t len;
    uint8_t *b = unhex(hex, &len);
    int rv = phx_pps_decode(b, len, "phxd@host", lim, m);
    free(b);
    return rv;
}

static void decodes_a_plain_broadcast_otp25_and_otp26(void)
{
    const char *vectors[] = {PLAIN25, PLAIN26};
    for (int i = 0; i < 2; i++) {
        phx_pps_msg_t m = {0};
        ASSERT_EQ(decode_hex(vectors[i], NULL, &m), PHX_PPS_DELIVER);
        ASSERT_EQ(m.mode, PHX_PPS_EXCEPT);
        ASSERT_MEM_EQ(m.node, m.node_len, "elixir@a", 8);
        ASSERT_MEM_EQ(m.topic, m.topic_len, "room:1", 6);
        ASSERT_MEM_EQ(m.event, m.event_len, "new", 3);
        ASSERT(!m.payload.is_binary && !m.ids_only && m.reason == NULL);
        /* Atom keys sort before binary keys: Jason writes them first. */
        ASSERT_MEM_EQ(m.payload.data, m.payload.len, "{\"b\":null,\"a\":1}", 16);
        phx_bcast_t b;
        phx_pps_msg_bcast(&m, &b);
        ASSERT_STR_EQ(b.origin.node, "elixir@a");
        ASSERT_EQ(b.origin.flags, 0);
        ASSERT(b.payload == &m.payload);
        phx_pps_msg_dispose(&m);
    }
}

static void decodes_a_compressed_broadcast(void)
{
    phx_pps_msg_t m = {0};
    ASSERT_EQ(decode_hex(COMPRESSED, NULL, &m), PHX_PPS_DELIVER);
    phx_buf_t want = {0};
    phx_buf_append_str(&want, "{\"l\":[");
    for (int i = 0; i < 40; i++)
        phx_buf_append_str(&want, i ? ",\"xxxx\"" : "\"xxxx\"");
    phx_buf_append_str(&want, "]}");
    ASSERT_MEM_EQ(m.payload.data, m.payload.len, want.data, want.len);
    ASSERT_MEM_EQ(m.topic, m.topic_len, "r", 1);
    phx_buf_dispose(&want);
    /* The declared size (0x213 = 531 bytes) against the bound. */
    phx_pps_limits_t lim = {.max_inflated = 530};
    ASSERT_EQ(decode_hex(COMPRESSED, &lim, &m), PHX_ERR_LIMIT);
    lim.max_inflated = 531;
    ASSERT_EQ(decode_hex(COMPRESSED, &lim, &m), PHX_PPS_DELIVER);
    /* A wrong declared size, a truncated stream, trailing bytes. */
    size_t len;
    uint8_t *b = unhex(COMPRESSED, &len);
    b[5]--;
    ASSERT_EQ(phx_pps_decode(b, len, "phxd@host", NULL, &m), PHX_ERR_INVALID);
    b[5] += 2;
    ASSERT_EQ(phx_pps_decode(b, len, "phxd@host", NULL, &m), PHX_ERR_INVALID);
    b[5]--;
    ASSERT_EQ(phx_pps_decode(b, len - 1, "phxd@host", NULL, &m), PHX_ERR_INVALID);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    ASSERT_EQ(phx_pps_decode(longer, len + 1, "phxd@host", NULL, &m), PHX_ERR_INVALID);
    ASSERT_EQ(phx_pps_decode(b, len, "phxd@host", NULL, &m), PHX_PPS_DELIVER);
    free(longer);
    free(b);
    phx_pps_msg_dispose(&m);
}

static void only_to_self_as_an_atom_with_a_binary_payload(void)
{
    phx_pps_msg_t m = {0};
    ASSERT_EQ(decode_hex(ONLY_ATOM_BINARY, NULL, &m), PHX_PPS_DELIVER);
    ASSERT_EQ(m.mode, PHX_PPS_ONLY);
    ASSERT(m.payload.is_binary);
    ASSERT_MEM_EQ(m.payload.data, m.payload.len, "\x01\x02\x03", 3);
    ASSERT_MEM_EQ(m.event, m.event_len, "b", 1);
    phx_bcast_t b;
    phx_pps_msg_bcast(&m, &b);
    ASSERT_STR_EQ(b.origin.node, "phoenix");
    /* The same bytes to another node: not for us. */
    size_t len;
    uint8_t *bytes = unhex(ONLY_ATOM_BINARY, &len);
    ASSERT_EQ(phx_pps_decode(bytes, len, "phxd@other", NULL, &m), PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "only_other");
    ASSERT(m.topic == NULL && m.payload.data == NULL);
    free(bytes);
    phx_pps_msg_dispose(&m);
}

static void except_self_is_our_own_broadcast(void)
{
    phx_pps_msg_t m = {0};
    size_t len;
    uint8_t *b = unhex(PLAIN25, &len);
    ASSERT_EQ(phx_pps_decode(b, len, "elixir@a", NULL, &m), PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "except_self");
    free(b);
    /* phxd's own encoding comes back as not for us. */
    phx_payload_t pl = {.data = (const uint8_t *)"{\"a\":1}", .len = 7};
    phx_bcast_t bc = {
        .topic = "room:1", .topic_len = 6, .event = "new", .event_len = 3, .payload = &pl};
    phx_buf_t out = {0};
    ASSERT_EQ(phx_pps_encode(&bc, "phxd@host", 0, NULL, &out), 0);
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "phxd@host", NULL, &m), PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "except_self");
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "phxd@b", NULL, &m), PHX_PPS_DELIVER);
    ASSERT_MEM_EQ(m.payload.data, m.payload.len, "{\"a\":1}", 7);
    phx_buf_dispose(&out);
    phx_pps_msg_dispose(&m);
}

static void other_traffic_is_not_for_us(void)
{
    phx_pps_msg_t m = {0};
    ASSERT_EQ(decode_hex(PRESENCE, NULL, &m), PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "dispatcher");
    /* {1, 2, 3}; [] ; {2, ...} with the right shape. */
    ASSERT_EQ(decode_hex("8368036101610261"
                         "03",
                         NULL, &m),
              PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "shape");
    ASSERT_EQ(decode_hex("836a", NULL, &m), PHX_PPS_NOT_FOR_US);
    size_t len;
    uint8_t *b = unhex(PLAIN25, &len);
    b[4] = 2; /* vsn 2 */
    ASSERT_EQ(phx_pps_decode(b, len, "phxd@host", NULL, &m), PHX_PPS_NOT_FOR_US);
    ASSERT_STR_EQ(m.reason, "vsn");
    free(b);
    phx_pps_msg_dispose(&m);
}

static void malformed_input_is_an_error(void)
{
    phx_pps_msg_t m = {0};
    size_t len;
    uint8_t *b = unhex(PLAIN26, &len);
    for (size_t n = 0; n < len; n++) {
        int rv = phx_pps_decode(b, n, "phxd@host", NULL, &m);
        ASSERT(rv == PHX_ERR_INVALID);
    }
    free(b);
    ASSERT_EQ(decode_hex("", NULL, &m), PHX_ERR_INVALID);
    ASSERT_EQ(decode_hex("8450", NULL, &m), PHX_ERR_INVALID);
    /* A compressed term declaring 4 GiB: refused before any allocation. */
    phx_mem_reset_count();
    ASSERT_EQ(decode_hex("8350ffffffff789c", NULL, &m), PHX_ERR_LIMIT);
    phx_pps_msg_dispose(&m);
}

static void etf_limits_apply(void)
{
    /* Nested maps in the payload: depth limit (outer tuple 1, struct 2,
     * payload 3, ...). */
    phx_buf_t json = {0};
    for (int i = 0; i < 70; i++)
        phx_buf_append_str(&json, "{\"a\":");
    phx_buf_append_str(&json, "1");
    for (int i = 0; i < 70; i++)
        phx_buf_append_str(&json, "}");
    phx_payload_t pl = {.data = json.data, .len = json.len};
    phx_bcast_t bc = {.topic = "t", .topic_len = 1, .event = "e", .event_len = 1, .payload = &pl};
    phx_etf_limits_t wide = {.max_depth = 200};
    phx_buf_t out = {0};
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), PHX_ERR_LIMIT);
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, &wide, &out), 0);
    phx_pps_msg_t m = {0};
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", NULL, &m), PHX_ERR_LIMIT);
    phx_pps_limits_t lim = {.etf = {.max_depth = 200}};
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", &lim, &m), PHX_PPS_DELIVER);
    ASSERT_MEM_EQ(m.payload.data, m.payload.len, json.data, json.len);
    lim.etf.max_nodes = 50;
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", &lim, &m), PHX_ERR_LIMIT);
    phx_pps_msg_dispose(&m);
    phx_buf_dispose(&out);
    phx_buf_dispose(&json);
}

static void skips_what_jason_cannot_encode(void)
{
    /* Built by the encoder, then one byte changed: the payload's string
     * "Q" becomes the non-UTF-8 <<255>>. */
    phx_payload_t pl = {.data = (const uint8_t *)"{\"a\":\"Q\"}", .len = 9};
    phx_bcast_t bc = {.topic = "t", .topic_len = 1, .event = "e", .event_len = 1, .payload = &pl};
    phx_buf_t out = {0};
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), 0);
    uint8_t *x = memchr(out.data, 'Q', out.len);
    ASSERT(x != NULL);
    *x = 0xff;
    phx_pps_msg_t m = {0};
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", NULL, &m), PHX_PPS_SKIP);
    ASSERT_STR_EQ(m.reason, "json");
    ASSERT(m.topic == NULL);
    /* The same as a "disconnect": for the id subscriptions only. */
    phx_buf_dispose(&out);
    bc.event = "disconnect";
    bc.event_len = 10;
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), 0);
    x = memchr(out.data, 'Q', out.len);
    *x = 0xff;
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", NULL, &m), PHX_PPS_DELIVER);
    ASSERT(m.ids_only);
    ASSERT_MEM_EQ(m.payload.data, m.payload.len, "{}", 2);
    phx_bcast_t b;
    phx_pps_msg_bcast(&m, &b);
    ASSERT_EQ(b.origin.flags, PHX_ORIGIN_IDS_ONLY);
    ASSERT_STR_EQ(b.origin.node, "n");
    phx_pps_msg_dispose(&m);
    phx_buf_dispose(&out);
}

static void encode_is_term_to_binary(void)
{
    phx_payload_t pl = {.data = (const uint8_t *)"{\"a\":1}", .len = 7};
    phx_bcast_t bc = {
        .topic = "room:1", .topic_len = 6, .event = "new", .event_len = 3, .payload = &pl};
    const struct {
        unsigned flags;
        const char *hex;
    } cases[] = {{PHX_ETF_LATIN1_ATOMS, ENC25}, {0, ENC26}};
    for (int i = 0; i < 2; i++) {
        phx_buf_t out = {0};
        ASSERT_EQ(phx_pps_encode(&bc, "phxd@host", cases[i].flags, NULL, &out), 0);
        size_t len;
        uint8_t *want = unhex(cases[i].hex, &len);
        ASSERT_MEM_EQ(out.data, out.len, want, len);
        free(want);
        phx_buf_dispose(&out);
    }
}

static void encode_refuses_what_phoenix_cannot_take(void)
{
    phx_buf_t out = {0};
    phx_payload_t arr = {.data = (const uint8_t *)"[1]", .len = 3};
    phx_bcast_t bc = {.topic = "t", .topic_len = 1, .event = "e", .event_len = 1, .payload = &arr};
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), PHX_PPS_SKIP);
    phx_payload_t bad = {.data = (const uint8_t *)"{", .len = 1};
    bc.payload = &bad;
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), PHX_ERR_INVALID);
    bc.payload = NULL;
    bc.event = "disconnect";
    bc.event_len = 10;
    bc.origin.flags = PHX_ORIGIN_CLIENT;
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), PHX_PPS_SKIP);
    bc.origin.flags = PHX_ORIGIN_IDS_ONLY; /* disconnect by id: published */
    out.len = 0;
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), 0);
    char topic[256];
    memset(topic, 't', sizeof(topic));
    phx_payload_t bin = {.data = (const uint8_t *)"\x00", .len = 1, .is_binary = true};
    phx_bcast_t bb = {
        .topic = topic, .topic_len = 256, .event = "e", .event_len = 1, .payload = &bin};
    ASSERT_EQ(phx_pps_encode(&bb, "n", 0, NULL, &out), PHX_PPS_SKIP);
    bb.topic_len = 255;
    out.len = 0;
    ASSERT_EQ(phx_pps_encode(&bb, "n", 0, NULL, &out), 0);
    phx_pps_msg_t m = {0};
    ASSERT_EQ(phx_pps_decode(out.data, out.len, "me", NULL, &m), PHX_PPS_DELIVER);
    ASSERT(m.payload.is_binary && m.payload.len == 1 && m.topic_len == 255);
    phx_pps_msg_dispose(&m);
    bc.topic = "\xff";
    bc.origin.flags = 0;
    ASSERT_EQ(phx_pps_encode(&bc, "n", 0, NULL, &out), PHX_PPS_SKIP);
    phx_buf_dispose(&out);
}

static void channel_names(void)
{
    phx_buf_t out = {0};
    ASSERT_EQ(phx_pps_channel("MyApp.PubSub", 12, &out), 0);
    ASSERT_MEM_EQ(out.data, out.len, "phx:Elixir.MyApp.PubSub.Adapter", 31);
    out.len = 0;
    ASSERT_EQ(phx_pps_channel("Elixir.MyApp.PubSub", 19, &out), 0);
    ASSERT_MEM_EQ(out.data, out.len, "phx:Elixir.MyApp.PubSub.Adapter", 31);
    ASSERT_EQ(phx_pps_channel("Elixir.", 7, &out), PHX_ERR_INVALID);
    ASSERT_EQ(phx_pps_channel("", 0, &out), PHX_ERR_INVALID);
    phx_buf_dispose(&out);
}

static void allocation_failure_is_clean(void)
{
    const char *vectors[] = {PLAIN25, COMPRESSED, ONLY_ATOM_BINARY, PRESENCE};
    for (int v = 0; v < 4; v++) {
        int rv = PHX_ERR_NOMEM;
        unsigned long n;
        for (n = 1; n < 2000 && rv == PHX_ERR_NOMEM; n++) {
            phx_pps_msg_t m = {0};
            size_t len;
            uint8_t *b = unhex(vectors[v], &len);
            phx_mem_reset_count();
            phx_mem_fail_at(n);
            rv = phx_pps_decode(b, len, "phxd@host", NULL, &m);
            phx_mem_fail_at(0);
            phx_pps_msg_dispose(&m);
            free(b);
        }
        ASSERT(rv >= 0);
    }
    int rv = PHX_ERR_NOMEM;
    for (unsigned long n = 1; n < 2000 && rv == PHX_ERR_NOMEM; n++) {
        phx_payload_t pl = {.data = (const uint8_t *)"{\"a\":[1,{\"b\":null}]}", .len = 20};
        phx_bcast_t bc = {
            .topic = "t", .topic_len = 1, .event = "e", .event_len = 1, .payload = &pl};
        phx_buf_t out = {0};
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_pps_encode(&bc, "n", 0, NULL, &out);
        phx_mem_fail_at(0);
        phx_buf_dispose(&out);
    }
    ASSERT_EQ(rv, 0);
}

const phx_test_t phx_tests_phoenix_pubsub[] = {
    {"decodes_a_plain_broadcast_otp25_and_otp26", decodes_a_plain_broadcast_otp25_and_otp26},
    {"decodes_a_compressed_broadcast", decodes_a_compressed_broadcast},
    {"only_to_self_as_an_atom_with_a_binary_payload",
     only_to_self_as_an_atom_with_a_binary_payload},
    {"except_self_is_our_own_broadcast", except_self_is_our_own_broadcast},
    {"other_traffic_is_not_for_us", other_traffic_is_not_for_us},
    {"malformed_input_is_an_error", malformed_input_is_an_error},
    {"etf_limits_apply", etf_limits_apply},
    {"skips_what_jason_cannot_encode", skips_what_jason_cannot_encode},
    {"encode_is_term_to_binary", encode_is_term_to_binary},
    {"encode_refuses_what_phoenix_cannot_take", encode_refuses_what_phoenix_cannot_take},
    {"channel_names", channel_names},
    {"allocation_failure_is_clean", allocation_failure_is_clean},
    {NULL, NULL},
};
