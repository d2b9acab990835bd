/* fuzz_phoenix_pubsub: phoenix_pubsub.c's decoder of Phoenix.PubSub's Redis
 * adapter messages (plain and compressed), as they arrive from Redis.
 * Invariants: errors are only INVALID, LIMIT or NOMEM; "not for us" and
 * "skip" carry a reason and no broadcast; a delivered broadcast has UTF-8
 * topic and event, a JSON object payload that phx_json_to_term reads (or a
 * binary one), and phxd's encoding of it decodes again as a delivery on
 * another node and as not-for-us on this one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phoenix_pubsub.h"
#include "phx.h"
#include "utf8.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_pps_limits_t lim = {.max_inflated = 1u << 16};
    phx_pps_msg_t m = {0};
    int rv = phx_pps_decode(data, size, "phxd@host", &lim, &m);
    if (rv < 0) {
        CHECK(rv == PHX_ERR_INVALID || rv == PHX_ERR_LIMIT || rv == PHX_ERR_NOMEM);
        phx_pps_msg_dispose(&m);
        return 0;
    }
    CHECK(rv == PHX_PPS_DELIVER || rv == PHX_PPS_NOT_FOR_US || rv == PHX_PPS_SKIP);
    if (rv != PHX_PPS_DELIVER) {
        CHECK(m.reason != NULL && m.topic == NULL && m.payload.data == NULL);
        phx_pps_msg_dispose(&m);
        return 0;
    }
    CHECK(m.reason == NULL && m.topic != NULL && m.event != NULL);
    CHECK(phx_utf8_valid((const uint8_t *)m.topic, m.topic_len));
    CHECK(phx_utf8_valid((const uint8_t *)m.event, m.event_len));
    if (!m.payload.is_binary) {
        CHECK(m.payload.len >= 2 && m.payload.data[0] == '{');
        phx_etf_limits_t wide = {.max_nodes = 1u << 24, .max_bignum_bytes = 1u << 16};
        phx_term_t *t = NULL;
        CHECK(phx_json_to_term((const char *)m.payload.data, m.payload.len, &wide, &t) == 0);
        CHECK(t->type == PHX_TERM_MAP);
        phx_term_free(t);
    } else {
        CHECK(m.topic_len <= 255 && m.event_len <= 255);
    }
    phx_bcast_t b;
    phx_pps_msg_bcast(&m, &b);
    CHECK(b.origin.node != NULL);
    phx_etf_limits_t wide = {
        .max_depth = 1000, .max_nodes = 1u << 24, .max_bignum_bytes = 1u << 16};
    phx_buf_t out = {0};
    rv = phx_pps_encode(&b, "phxd@host", 0, &wide, &out);
    CHECK(rv == 0 || rv == PHX_ERR_NOMEM);
    if (rv == 0) {
        phx_pps_msg_t back = {0};
        phx_pps_limits_t wl = {.etf = wide, .max_inflated = 1u << 16};
        CHECK(phx_pps_decode(out.data, out.len, "phxd@host", &wl, &back) == PHX_PPS_NOT_FOR_US);
        rv = phx_pps_decode(out.data, out.len, "elixir@a", &wl, &back);
        CHECK(rv == PHX_PPS_DELIVER || rv == PHX_ERR_NOMEM);
        if (rv == PHX_PPS_DELIVER) {
            CHECK(back.topic_len == m.topic_len && memcmp(back.topic, m.topic, m.topic_len) == 0);
            CHECK(back.payload.is_binary == m.payload.is_binary);
            if (m.payload.is_binary)
                CHECK(back.payload.len == m.payload.len &&
                      memcmp(back.payload.data, m.payload.data, m.payload.len) == 0);
        }
        phx_pps_msg_dispose(&back);
    }
    phx_buf_dispose(&out);
    phx_pps_msg_dispose(&m);
    return 0;
}
