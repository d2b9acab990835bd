/* presence_msg.h: the messages of Presence replication between the nodes
 * of a cluster (presence_cluster.h), encoded and decoded without any I/O.
 * Every peer byte is bounded: a decoded message has been checked whole
 * (lengths, UTF-8, the ref alphabet, each meta a JSON object within the
 * limits and without phx_ref), so applying it cannot fail on its shape.
 *
 * Format, version 1 (integers big-endian):
 *   u8  version = 1
 *   u8  type: 1 delta, 2 heartbeat, 3 state request, 4 state, 5 goodbye
 *   u8  N (1..255), then N bytes: the sending node's name (A-Z a-z 0-9 and
 *       . _ - @ : +, as --node-name)
 *   u64 incarnation: the sending process (not 0; a restart is a new one)
 *   u64 seq: a delta's own number (1, 2, ... per incarnation); in the other
 *       types the number of the sender's last delta
 *   then by type:
 *   delta      ops (at least one)
 *   heartbeat  u32 the sender's presence count (metas it tracks)
 *   state req  u8 T (0..255), then T bytes: the node asked (0: every node)
 *   state      u32 part (0, 1, ...), u8 flags (bit 0: the last part), then
 *              ops (joins only; none in an empty state)
 *   goodbye    nothing
 * An op:
 *   u8  kind: 1 join, 2 leave
 *   u16 topic length (1..), the topic (UTF-8, no NUL)
 *   u16 key length (1..), the key (UTF-8, no NUL)
 *   u8  ref length (1..PHX_PMSG_REF_MAX), the phx_ref (A-Z a-z 0-9 - _)
 *   a join also has:
 *   u8  prev ref length (0..PHX_PMSG_REF_MAX), the phx_ref_prev (an update)
 *   u32 meta length, the meta: a JSON object without phx_ref or
 *       phx_ref_prev (those are added from the fields above) */
#ifndef PHX_PRESENCE_MSG_H
#define PHX_PRESENCE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "mem.h"
#include "phx.h"

#define PHX_PMSG_VERSION 1
#define PHX_PMSG_NODE_MAX 255
#define PHX_PMSG_REF_MAX 32
/* Header bytes before the type-specific part, at most. */
#define PHX_PMSG_HEAD_MAX (3 + PHX_PMSG_NODE_MAX + 16)

typedef enum {
    PHX_PMSG_DELTA = 1,
    PHX_PMSG_HEARTBEAT = 2,
    PHX_PMSG_STATE_REQ = 3,
    PHX_PMSG_STATE = 4,
    PHX_PMSG_GOODBYE = 5,
} phx_pmsg_type_t;

enum { PHX_PMSG_JOIN = 1, PHX_PMSG_LEAVE = 2 };

/* Bounds a decoded message must keep (0 fields: no bound but the format's). */
typedef struct phx_pmsg_limits {
    size_t max_topic;       /* bytes of a topic and of a key */
    size_t max_meta;        /* bytes of a meta */
    uint32_t max_ops;       /* ops in one message */
    phx_json_limits_t json; /* a meta's JSON (max_depth 0: the defaults) */
} phx_pmsg_limits_t;

/* One op (pointers into the message). */
typedef struct phx_pmsg_op {
    int kind; /* PHX_PMSG_JOIN / _LEAVE */
    const char *topic;
    size_t topic_len;
    const char *key;
    size_t key_len;
    const char *ref;
    size_t ref_len;
    const char *prev_ref; /* joins; prev_ref_len 0: none */
    size_t prev_ref_len;
    const char *meta; /* joins */
    size_t meta_len;
} phx_pmsg_op_t;

/* A decoded message (pointers into its bytes). */
typedef struct phx_pmsg {
    phx_pmsg_type_t type;
    const char *node;
    size_t node_len;
    uint64_t incarnation;
    uint64_t seq;
    uint32_t count;     /* heartbeat: the sender's metas */
    const char *target; /* state request: the node asked, NULL: every node */
    size_t target_len;
    uint32_t part;      /* state */
    bool is_last;       /* state */
    const uint8_t *ops; /* delta, state: the ops' bytes */
    size_t ops_len;
    uint32_t nops;
} phx_pmsg_t;

/* Decodes and checks `len` bytes under `lim`. Returns 0, or PHX_ERR_PROTO
 * (malformed, an unknown version, type or kind, anything out of bounds;
 * `m` is then unspecified). */
int phx_pmsg_decode(const uint8_t *data, size_t len, const phx_pmsg_limits_t *lim, phx_pmsg_t *m);
/* The next op of a decoded message: `*at` starts at 0. Returns false after
 * the last. */
bool phx_pmsg_next_op(const phx_pmsg_t *m, size_t *at, phx_pmsg_op_t *op);

/* Whether a node name has the format's form (1..255 of the characters
 * above). */
bool phx_pmsg_node_ok(const char *name, size_t len);

/* Appends a message header (everything up to the type-specific part).
 * Returns 0, PHX_ERR_INVALID (a node name without the form) or
 * PHX_ERR_NOMEM. */
int phx_pmsg_put_head(phx_buf_t *out, phx_pmsg_type_t type, const char *node, size_t node_len,
                      uint64_t incarnation, uint64_t seq);
/* Appends a big-endian u32 / one byte (heartbeat count, state part). */
int phx_pmsg_put_u32(phx_buf_t *out, uint32_t v);
int phx_pmsg_put_u8(phx_buf_t *out, uint8_t v);
/* Appends a state request's target (NULL: every node). */
int phx_pmsg_put_target(phx_buf_t *out, const char *node, size_t len);
/* Appends one op (its fields borrowed). Returns 0, PHX_ERR_INVALID (a
 * field over the format's lengths) or PHX_ERR_NOMEM. */
int phx_pmsg_put_op(phx_buf_t *out, const phx_pmsg_op_t *op);
/* The bytes phx_pmsg_put_op appends for `op`. */
size_t phx_pmsg_op_size(const phx_pmsg_op_t *op);

#endif /* PHX_PRESENCE_MSG_H */
