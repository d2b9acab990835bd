/* pubsub.h: the PubSub of one loop, and the seam where a cluster plugs in.
 *
 * Local delivery: a keyed hash map from topic to its subscribers. A
 * subscriber is a phx_sub_t embedded in its owner (a channel, a socket's
 * subscription to its own id) with a deliver callback; the PubSub knows
 * nothing else of its owner. A broadcast is walked once over the topic's
 * subscribers, and each encodes it through the walk's per-format cache
 * (phx_fanout_encoded), so every recipient with the same wire format gets
 * the same reference-counted buffer.
 *
 * Propagation: a backend (phx_pubsub_backend_t) is told of every broadcast
 * made on this node (after local delivery), of the first local subscriber
 * of a topic (topic_up) and of the last one gone (topic_down); what arrives
 * from elsewhere comes back through phx_pubsub_deliver, which delivers to
 * local subscribers only. Without a backend the PubSub is a single node.
 * The backend also carries node messages (opaque bytes between the nodes'
 * Phoenix layers: Presence replication) to a handler the Phoenix layer
 * registers.
 *
 * Socket ids: a socket with an id subscribes to the topic of its id (an
 * id subscription); a broadcast of "disconnect" on that topic closes it,
 * as Phoenix's Endpoint.broadcast(id, "disconnect", %{}) does, unless the
 * broadcast came from a client (PHX_ORIGIN_CLIENT), so client events named
 * "disconnect" close nobody. */
#ifndef PHX_PUBSUB_H
#define PHX_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "phx.h"
#include "serializer.h"

typedef struct phx_pubsub phx_pubsub_t;
typedef struct phx_topic phx_topic_t;
typedef struct phx_sub phx_sub_t;
typedef struct phx_fanout phx_fanout_t;

/* Where a broadcast came from. */
enum {
    PHX_ORIGIN_CLIENT = 1 << 0,   /* a client event (never disconnects) */
    PHX_ORIGIN_IDS_ONLY = 1 << 1, /* for id subscriptions only (disconnect by id) */
};

typedef struct phx_origin {
    /* The node that made the broadcast: NULL for this one. */
    const char *node;
    /* The subscriber that must not receive it (broadcast_from): a value
     * from phx_sub_origin_id, meaningful on `node` only; 0 = none. */
    uint64_t sender;
    uint32_t flags; /* PHX_ORIGIN_* */
} phx_origin_t;

/* One broadcast (every pointer borrowed for the call). */
typedef struct phx_bcast {
    const char *topic;
    size_t topic_len;
    const char *event;
    size_t event_len;
    const phx_payload_t *payload; /* may be NULL: {} */
    phx_origin_t origin;
} phx_bcast_t;

/* A subscriber's delivery: returns whether `f` was delivered to it (it
 * counts as a recipient). It may close its owner, and any subscription
 * may end during a walk. */
typedef bool (*phx_sub_deliver_fn)(phx_sub_t *sub, phx_fanout_t *f);

struct phx_sub {
    phx_sub_deliver_fn deliver;
    phx_topic_t *topic; /* set while subscribed */
    uint32_t index;     /* slot in the topic's subscriber array */
    bool is_id;         /* a socket's subscription to its own id */
};

/* One broadcast being delivered. */
struct phx_fanout {
    const phx_bcast_t *b;
    phx_out_t msg; /* the broadcast as an outgoing message */
    phx_rcbuf_t *enc[PHX_FMT_COUNT];
    int err; /* the first encoding failure */
};

/* The broadcast encoded in wire format `fmt` (encoded on first use; the
 * walk holds the reference: take your own with phx_rcbuf_ref). NULL when
 * it cannot be encoded (f->err is set). */
phx_rcbuf_t *phx_fanout_encoded(phx_fanout_t *f, int fmt);
/* Whether `f` is a disconnect meant for id subscriptions: the event
 * "disconnect" from a server-side source. */
bool phx_fanout_is_disconnect(const phx_fanout_t *f);
/* The origin id of a subscriber (phx_origin_t.sender). */
uint64_t phx_sub_origin_id(const phx_sub_t *sub);

/* What a cluster backend implements. Every callback may be NULL. */
typedef struct phx_pubsub_backend {
    /* A broadcast made on this node, already delivered locally. Returns 0
     * or a negative code (it is counted and logged, not retried). */
    int (*publish)(void *be, const phx_bcast_t *b);
    /* `topic` got its first local subscriber / lost its last one. */
    void (*topic_up)(void *be, const char *topic, size_t len);
    void (*topic_down)(void *be, const char *topic, size_t len);
    /* Node messages (see phx_pubsub_node_send): sends `len` bytes (copied)
     * to the node named `to` (to_len bytes), or to every node when `to` is
     * NULL. Returns 0 (queued; delivery is at most once) or a negative
     * code (PHX_ERR_STATE: the link is down; PHX_ERR_LIMIT: output over
     * the cap). */
    int (*node_send)(void *be, const char *to, size_t to_len, const void *data, size_t len);
    /* This node's name in the cluster (NUL-terminated, valid for the
     * backend's life). */
    const char *(*node_name)(void *be);
} phx_pubsub_backend_t;

/* ---- node messages: bytes between the nodes of a cluster ----
 * Besides broadcasts, a cluster carries messages from one node's Phoenix
 * layer to the others' (Presence replication, presence.h). The backend
 * carries them without looking inside; the Phoenix layer registers the
 * handler that receives them (the seam that keeps the layers one way). */
enum {
    PHX_NODE_LINK_DOWN = 0,    /* the link to the other nodes is lost */
    PHX_NODE_LINK_UP = 1,      /* the link is up (again): state may be stale */
    PHX_NODE_LINK_CLOSING = 2, /* the backend closes for good: say goodbye now */
};

typedef struct phx_node_handler {
    /* A node message from some node (this one's own come back too). Borrows
     * `data`. */
    void (*on_message)(void *arg, const uint8_t *data, size_t len);
    /* The link changed (PHX_NODE_LINK_*). During CLOSING phx_pubsub_node_send
     * still works, once per message, for the last time. */
    void (*on_link)(void *arg, int state);
} phx_node_handler_t;

/* Creates the PubSub of `loop` (kept for its fan-out statistics). Returns
 * 0 or PHX_ERR_NOMEM. */
int phx_pubsub_new(phx_pubsub_t **out, phx_loop_t *loop);
/* Frees it; every subscription must be gone. NULL is a no-op. */
void phx_pubsub_free(phx_pubsub_t *ps);
/* Plugs in a backend (`ops` and `be` borrowed for the PubSub's life);
 * topic_up is called at once for every topic that has subscribers. */
void phx_pubsub_set_backend(phx_pubsub_t *ps, const phx_pubsub_backend_t *ops, void *be);

/* Calls `fn` for every topic that has local subscribers (a backend that
 * reconnected subscribes to them again). `fn` must not subscribe or
 * unsubscribe. */
void phx_pubsub_foreach_topic(const phx_pubsub_t *ps,
                              void (*fn)(void *arg, const char *topic, size_t len), void *arg);

/* Subscribes `sub` (deliver and is_id set by the owner) to `topic`
 * (copied). Returns 0 or PHX_ERR_NOMEM. */
int phx_pubsub_subscribe(phx_pubsub_t *ps, phx_sub_t *sub, const char *topic, size_t len);
/* Ends the subscription of `sub` (no-op when it has none). Safe during a
 * walk over the same topic. */
void phx_pubsub_unsubscribe(phx_pubsub_t *ps, phx_sub_t *sub);
/* The topic name of a subscription (NUL-terminated). */
const char *phx_topic_name(const phx_topic_t *t, size_t *len);

/* A broadcast made on this node: delivered to the local subscribers, then
 * handed to the backend. Returns the number of local recipients or a
 * negative code (PHX_ERR_INVALID: a payload that cannot be encoded;
 * PHX_ERR_NOMEM); remote recipients are never counted. */
int phx_pubsub_publish(phx_pubsub_t *ps, const phx_bcast_t *b);
/* A broadcast that arrived from elsewhere (the backend): local
 * subscribers only. Returns as phx_pubsub_publish. */
int phx_pubsub_deliver(phx_pubsub_t *ps, const phx_bcast_t *b);

/* Registers the receiver of node messages (`h` and `arg` borrowed for the
 * PubSub's life; NULL: none). */
void phx_pubsub_set_node_handler(phx_pubsub_t *ps, const phx_node_handler_t *h, void *arg);
/* Sends a node message through the backend (see node_send). Returns 0, or
 * PHX_ERR_STATE when there is no backend (a single node) or it cannot
 * carry node messages, or the backend's code. */
int phx_pubsub_node_send(phx_pubsub_t *ps, const char *to, size_t to_len, const void *data,
                         size_t len);
/* This node's name in the cluster, or NULL on a single node. */
const char *phx_pubsub_node_name(const phx_pubsub_t *ps);
/* The backend: a node message arrived (borrows `data`). */
void phx_pubsub_node_message(phx_pubsub_t *ps, const uint8_t *data, size_t len);
/* The backend: the link changed (PHX_NODE_LINK_*). */
void phx_pubsub_node_link(phx_pubsub_t *ps, int state);

/* Whether some socket has subscribed to its id `id` here. */
bool phx_pubsub_has_id(const phx_pubsub_t *ps, const char *id, size_t len);

/* Counts for metrics and tests. */
size_t phx_pubsub_topic_count(const phx_pubsub_t *ps);
/* Channel subscribers of `topic` (id subscriptions are not counted). */
size_t phx_pubsub_subscriber_count(const phx_pubsub_t *ps, const char *topic, size_t len);

#endif /* PHX_PUBSUB_H */
