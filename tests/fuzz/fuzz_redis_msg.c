/* fuzz_redis_msg: the decoder of the cluster's Redis messages (redis.c).
 * Invariants: an error is only PHX_ERR_PROTO; a decoded message lies
 * inside the input, its node and event are UTF-8 of the allowed lengths, a
 * JSON payload validates; encoding it again gives the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "phx.h"
#include "redis.h"
#include "utf8.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_redis_msg_t m;
    int rv = phx_redis_msg_decode(data, size, NULL, &m);
    if (rv != 0) {
        CHECK(rv == PHX_ERR_PROTO);
        return 0;
    }
    const char *lo = (const char *)data, *hi = (const char *)data + size;
    CHECK(m.node >= lo && m.node + m.node_len <= hi && m.node_len >= 1 && m.node_len <= 255);
    CHECK(m.event >= lo && m.event + m.event_len <= hi && m.event_len >= 1);
    CHECK(phx_utf8_valid((const uint8_t *)m.event, m.event_len));
    if (m.has_payload) {
        CHECK((const char *)m.payload.data >= lo &&
              (const char *)m.payload.data + m.payload.len <= hi);
        if (!m.payload.is_binary)
            CHECK(phx_json_validate(m.payload.data, m.payload.len, NULL) == 0);
    }
    phx_bcast_t b = {.topic = "t",
                     .topic_len = 1,
                     .event = m.event,
                     .event_len = m.event_len,
                     .payload = m.has_payload ? &m.payload : NULL,
                     .origin = {.sender = m.sender, .flags = m.flags}};
    phx_buf_t out = {0};
    rv = phx_redis_msg_encode(&out, m.node, m.node_len, &b);
    CHECK(rv == 0 || rv == PHX_ERR_NOMEM);
    if (rv == 0)
        CHECK(out.len == size && memcmp(out.data, data, size) == 0);
    phx_buf_dispose(&out);
    return 0;
}
