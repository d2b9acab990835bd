/* phoenix_pubsub.h: the messages of Phoenix.PubSub's Redis adapter
 * (phoenix_pubsub_redis 3.x, docs/protocol.md "Phoenix.PubSub's Redis
 * adapter messages"), decoded and encoded without any I/O, so that a phxd
 * cluster backend can share one Redis channel with Elixir nodes.
 *
 * On the wire, every node of a Phoenix.PubSub named MyApp.PubSub publishes
 * on the Redis channel "phx:Elixir.MyApp.PubSub.Adapter" the bytes of
 *   term_to_binary({3, mode, node_name, topic, message, dispatcher})
 * (compressed when the adapter's :compression_level is not 0), where mode
 * is :except (a broadcast: every node but node_name) or :only (a direct
 * broadcast: node_name only), and an Endpoint.broadcast is the message
 * %Phoenix.Socket.Broadcast{topic, event, payload} with the dispatcher
 * Phoenix.Channel.Server.
 *
 * phxd's own node name is a binary on the wire (as the adapter's
 * :node_name option taken from System.get_env/1 is); a message names phxd
 * when its node is that binary or an atom of the same text. */
#ifndef PHX_PHOENIX_PUBSUB_H
#define PHX_PHOENIX_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etf.h"
#include "mem.h"
#include "pubsub.h"

/* The adapter's message version (@redis_msg_vsn). */
#define PHX_PPS_VSN 3
/* Bytes a compressed message may inflate to when the limits say 0. */
#define PHX_PPS_DEFAULT_MAX_INFLATED (1u << 20)

/* What phx_pps_decode made of a message (non-negative results). */
enum {
    /* A broadcast for phxd's subscribers: out->topic, event and payload
     * are set (out->ids_only may be). */
    PHX_PPS_DELIVER = 0,
    /* A well-formed message phxd has nothing to do with: another
     * dispatcher's or another message's traffic (Presence, PubSub.broadcast
     * of any term), another version, :except naming phxd (phxd's own
     * broadcasts coming back) or :only naming another node. Count it. */
    PHX_PPS_NOT_FOR_US = 1,
    /* A %Phoenix.Socket.Broadcast{} for phxd that has no form phxd can
     * deliver: a topic or event that is not a UTF-8 binary, a struct topic
     * other than the message's, a payload that is neither a map nor
     * {:binary, data}, a payload Jason cannot encode (a tuple, a pid, a
     * struct, a binary that is not UTF-8), or a binary payload with a topic
     * or event over 255 bytes. Phoenix's own fastlane would raise on these.
     * Count it. */
    PHX_PPS_SKIP = 2,
};

typedef enum {
    PHX_PPS_EXCEPT = 0, /* a broadcast: every node but `node` */
    PHX_PPS_ONLY = 1,   /* a direct broadcast: to `node` only */
} phx_pps_mode_t;

typedef struct phx_pps_limits {
    /* Bounds of the term decoder (zero fields: etf.h's defaults). Its
     * keep_other is ignored: pids, references and the like are always
     * kept, since other dispatchers' messages carry them. */
    phx_etf_limits_t etf;
    /* Bytes a compressed message (tag 80) may declare and inflate to; 0
     * means PHX_PPS_DEFAULT_MAX_INFLATED. Beyond: PHX_ERR_LIMIT before any
     * allocation. Pass the largest message phxd accepts. */
    size_t max_inflated;
} phx_pps_limits_t;

/* A decoded message. Zero it before the first decode; dispose of it after
 * each (phx_pps_msg_dispose), whatever the result. Pointers stay valid
 * until then. */
typedef struct phx_pps_msg {
    phx_pps_mode_t mode;
    /* The message's node as text (binary or atom), "" when it is neither. */
    const char *node;
    size_t node_len;
    /* Why a message was not delivered (a static name for logs and
     * counters: "vsn", "shape", "mode", "except_self", "only_other",
     * "dispatcher", "message", "topic", "event", "topic_mismatch",
     * "payload", "json", "binary_header"); NULL after PHX_PPS_DELIVER. */
    const char *reason;
    /* PHX_PPS_DELIVER: the broadcast (NUL-terminated, UTF-8). */
    const char *topic;
    size_t topic_len;
    const char *event;
    size_t event_len;
    /* JSON text (an object, with Jason's mapping of terms) or, with
     * is_binary, the bytes of {:binary, data}. */
    phx_payload_t payload;
    /* A "disconnect" broadcast whose payload has no form: it still closes
     * the sockets whose id is the topic (Phoenix's socket process takes it
     * whole), and reaches no channel (payload is then "{}"). Give it
     * PHX_ORIGIN_IDS_ONLY. */
    bool ids_only;
    /* Private storage. */
    phx_term_t *node_term_;
    phx_term_t *msg_term_;
    phx_buf_t json_;
    uint8_t *inflated_;
} phx_pps_msg_t;

/* Decodes one message of the adapter's Redis channel (`len` bytes as
 * published, starting with 131). `self_node` is phxd's node name (NUL
 * terminated); `limits` may be NULL (defaults). Returns PHX_PPS_DELIVER,
 * PHX_PPS_NOT_FOR_US or PHX_PPS_SKIP (with out->reason), or a negative
 * code: PHX_ERR_INVALID for bytes that are not one well-formed term (or a
 * compressed term that does not inflate to its declared size),
 * PHX_ERR_LIMIT when a bound is exceeded, PHX_ERR_NOMEM. Never keeps
 * `data`. */
int phx_pps_decode(const uint8_t *data, size_t len, const char *self_node,
                   const phx_pps_limits_t *limits, phx_pps_msg_t *out);

/* Frees what a decode left in `m` and zeroes it. */
void phx_pps_msg_dispose(phx_pps_msg_t *m);

/* The broadcast of a delivered message as the PubSub takes it
 * (phx_pubsub_deliver): origin.node is the sending node's name for
 * :except ("phoenix" when it has no text) and "phoenix" for :only, and
 * origin.flags has PHX_ORIGIN_IDS_ONLY with m->ids_only. Borrows `m`. */
void phx_pps_msg_bcast(const phx_pps_msg_t *m, phx_bcast_t *b);

/* Appends to `out` exactly what the adapter publishes for
 * MyAppWeb.Endpoint.broadcast(topic, event, payload) made on a node whose
 * :node_name is the binary `self_node`:
 *   term_to_binary({3, :except, self_node, topic,
 *     %Phoenix.Socket.Broadcast{topic: topic, event: event, payload: P},
 *     Phoenix.Channel.Server})
 * where P is the JSON payload as Jason decodes it (objects to maps with
 * binary keys, arrays to lists, null/true/false to atoms, integers exact,
 * other numbers to floats; a NULL payload is %{}) or {:binary, data} for a
 * binary payload. Atoms are written as OTP 26+ does (SMALL_ATOM_UTF8), or
 * as OTP 25 does with PHX_ETF_LATIN1_ATOMS in `flags`; never compressed.
 * `limits` bounds the JSON (NULL: etf.h's defaults). Returns 0, or
 * PHX_PPS_SKIP for a broadcast that must not reach Elixir nodes (Phoenix's
 * fastlane raises on it, or phxd keeps it local): a JSON payload that is
 * not an object, a binary payload with a topic or event over 255 bytes, a
 * client's "disconnect" (PHX_ORIGIN_CLIENT), a topic or event that is not
 * UTF-8; or PHX_ERR_INVALID (malformed JSON), PHX_ERR_LIMIT, PHX_ERR_NOMEM
 * (out may then hold a partial encoding). Borrows everything. */
int phx_pps_encode(const phx_bcast_t *b, const char *self_node, unsigned flags,
                   const phx_etf_limits_t *limits, phx_buf_t *out);

/* Appends the Redis channel of the Phoenix.PubSub named `name` (len bytes,
 * an Elixir alias such as "MyApp.PubSub", with or without "Elixir."):
 * "phx:" followed by Module.concat(name, "Adapter") as text, e.g.
 * "phx:Elixir.MyApp.PubSub.Adapter". Returns 0, PHX_ERR_INVALID for an
 * empty name, or PHX_ERR_NOMEM. */
int phx_pps_channel(const char *name, size_t len, phx_buf_t *out);

#endif /* PHX_PHOENIX_PUBSUB_H */
