/* fuzz_presence_msg: the decoder of Presence replication messages
 * (presence_msg.c). Invariants: an error is only PHX_ERR_PROTO; a decoded
 * message lies inside the input, its node has the form of a node name, its
 * ops iterate to exactly nops, each within the input and the limits (a
 * join's meta a JSON object); encoding it again gives the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "phx.h"
#include "presence_msg.h"
#include "utf8.h"
#include "fuzz.h"

static bool inside(const char *p, size_t len, const uint8_t *data, size_t size)
{
    return len == 0 || ((const uint8_t *)p >= data && (const uint8_t *)p + len <= data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const phx_pmsg_limits_t lim = {.max_topic = 1024, .max_meta = 4096};
    phx_pmsg_t m;
    int rv = phx_pmsg_decode(data, size, &lim, &m);
    if (rv != 0) {
        CHECK(rv == PHX_ERR_PROTO);
        return 0;
    }
    CHECK(inside(m.node, m.node_len, data, size) && phx_pmsg_node_ok(m.node, m.node_len));
    CHECK(m.incarnation != 0);
    phx_buf_t out = {0};
    rv = phx_pmsg_put_head(&out, m.type, m.node, m.node_len, m.incarnation, m.seq);
    CHECK(rv == 0 || rv == PHX_ERR_NOMEM);
    switch (m.type) {
    case PHX_PMSG_HEARTBEAT:
        rv |= phx_pmsg_put_u32(&out, m.count);
        break;
    case PHX_PMSG_STATE_REQ:
        CHECK(m.target == NULL || (inside(m.target, m.target_len, data, size) &&
                                   phx_pmsg_node_ok(m.target, m.target_len)));
        rv |= phx_pmsg_put_target(&out, m.target, m.target_len);
        break;
    case PHX_PMSG_STATE:
        rv |= phx_pmsg_put_u32(&out, m.part);
        rv |= phx_pmsg_put_u8(&out, m.is_last ? 1 : 0);
        break;
    default:
        break;
    }
    size_t at = 0;
    uint32_t n = 0;
    phx_pmsg_op_t op;
    while (phx_pmsg_next_op(&m, &at, &op)) {
        n++;
        CHECK(op.kind == PHX_PMSG_JOIN || op.kind == PHX_PMSG_LEAVE);
        CHECK(m.type == PHX_PMSG_DELTA || op.kind == PHX_PMSG_JOIN);
        CHECK(inside(op.topic, op.topic_len, data, size) && op.topic_len >= 1 &&
              op.topic_len <= lim.max_topic);
        CHECK(inside(op.key, op.key_len, data, size) && op.key_len >= 1);
        CHECK(phx_utf8_valid((const uint8_t *)op.key, op.key_len));
        CHECK(inside(op.ref, op.ref_len, data, size) && op.ref_len >= 1 &&
              op.ref_len <= PHX_PMSG_REF_MAX);
        if (op.kind == PHX_PMSG_JOIN) {
            CHECK(inside(op.meta, op.meta_len, data, size) && op.meta_len <= lim.max_meta);
            CHECK(phx_json_is_object((const uint8_t *)op.meta, op.meta_len, NULL));
        }
        rv |= phx_pmsg_put_op(&out, &op);
    }
    CHECK(n == m.nops && at == m.ops_len);
    CHECK(rv == 0 || rv == PHX_ERR_NOMEM);
    if (rv == 0)
        CHECK(out.len == size && memcmp(out.data, data, size) == 0);
    phx_buf_dispose(&out);
    return 0;
}
