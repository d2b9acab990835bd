/* redis.h: the cluster backend over Redis (phx_pubsub_backend_t). Several
 * phxd processes on one Redis (and one prefix) behave as one endpoint:
 * a broadcast made on one node reaches the subscribers of every node, each
 * once, and a disconnect by socket id closes that id's sockets everywhere.
 *
 * Two hiredis async connections on the server's loop (the libuv adapter;
 * nothing ever blocks the loop but the resolution of a host name at
 * connect): one in subscriber mode, one for PUBLISH. Each topic with local
 * subscribers is one Redis channel, <prefix>:t:<topic>, subscribed while
 * this node has subscribers of it; ups and downs of one loop turn are sent
 * as one SUBSCRIBE and one UNSUBSCRIBE (an up and a down of the same topic
 * cancel). The subscriber connection also holds <prefix>:n:<node> for its
 * whole life, so its subscription count never drops to 0.
 *
 * rediss:// (hiredis 0.14 has no TLS): both connections go to the private
 * unix socket of the TLS bridge (redis_tls.h), which carries them to Redis
 * over TLS. hiredis's connect to it succeeds at once, so such a session is
 * up only once Redis has answered a PING on both connections.
 *
 * Node messages (pubsub.h: opaque bytes between the nodes' Phoenix layers,
 * the Presence replication of presence_cluster.h) go on <prefix>:p (to
 * every node, this one included) or on <prefix>:n:<node> (to one node).
 * The link is announced up once <prefix>:p is confirmed subscribed, down
 * when the session fails, and closing in phx_redis_close, before the
 * connections go: what the Phoenix layer publishes then (a goodbye) is
 * flushed, waiting at most PHX_REDIS_LINGER_MS for Redis to answer.
 *
 * A broadcast made locally is published once, in the message format below;
 * a message whose node is this node is skipped (local delivery already
 * happened), any other is checked with bounds and delivered with
 * phx_pubsub_deliver. Redis pub/sub is at-most-once: what is published
 * while Redis is unreachable is dropped and counted, and on reconnect
 * (capped exponential backoff with jitter) every topic with local
 * subscribers is subscribed again.
 *
 * Message format, version 1 (all integers big-endian):
 *   u8  version = 1
 *   u8  N, the node name's length (1..255), then N bytes: the node name
 *   u64 sender: phx_origin_t.sender on that node (0: none)
 *   u8  flags: bit 0 PHX_ORIGIN_CLIENT, bit 1 PHX_ORIGIN_IDS_ONLY (others 0)
 *   u16 E, the event's length, then E bytes of UTF-8: the event
 *   u8  payload kind: 0 none ({}), 1 JSON text, 2 binary
 *   the payload: every byte left (none for kind 0)
 * The topic is the channel name after "<prefix>:t:". */
#ifndef PHX_REDIS_H
#define PHX_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "loop.h"
#include "mem.h"
#include "phx.h"
#include "pubsub.h"

typedef struct phx_redis phx_redis_t;

#define PHX_REDIS_MSG_VERSION 1
#define PHX_REDIS_NODE_MAX 255
/* Output waiting on the publish connection; beyond, publishes are dropped. */
#define PHX_REDIS_MAX_PENDING_BYTES (32u * 1024 * 1024)
#define PHX_REDIS_MAX_PENDING_CMDS 65536u
/* (UN)SUBSCRIBE batches are at least this far apart (ms); the first after
 * a quiet period goes at once. */
#define PHX_REDIS_BATCH_MS 10
/* Reconnect backoff: from 100 ms, doubling, capped (with jitter). */
#define PHX_REDIS_BACKOFF_MIN_MS 100
#define PHX_REDIS_BACKOFF_MAX_MS 5000
/* A node message larger than this is dropped unread (the Phoenix layer
 * applies its own, smaller bounds). */
#define PHX_REDIS_NODE_MSG_MAX (64u * 1024 * 1024)
/* Closing: how long the goodbye may wait for Redis's answer (ms). */
#define PHX_REDIS_LINGER_MS 1000

enum {
    PHX_REDIS_PAYLOAD_NONE = 0,
    PHX_REDIS_PAYLOAD_JSON = 1,
    PHX_REDIS_PAYLOAD_BINARY = 2,
};

/* A decoded message (pointers into the message bytes). */
typedef struct phx_redis_msg {
    const char *node;
    size_t node_len;
    uint64_t sender;
    uint32_t flags;
    const char *event;
    size_t event_len;
    bool has_payload;
    phx_payload_t payload;
} phx_redis_msg_t;

/* Appends the message of `b` made on `node` to `out`. Returns 0,
 * PHX_ERR_INVALID (node or event too long) or PHX_ERR_NOMEM. */
int phx_redis_msg_encode(phx_buf_t *out, const char *node, size_t node_len, const phx_bcast_t *b);
/* Decodes `len` bytes; a JSON payload is validated under `lim` (NULL:
 * defaults). Returns 0 or PHX_ERR_PROTO (malformed: anything out of
 * bounds, an unknown version, flag or kind, invalid UTF-8 or JSON). */
int phx_redis_msg_decode(const uint8_t *data, size_t len, const phx_json_limits_t *lim,
                         phx_redis_msg_t *m);

/* Where Redis is. */
typedef struct phx_redis_url {
    char *host;     /* TCP host, or NULL for a unix socket */
    int port;       /* 6379 by default */
    char *path;     /* unix socket path, or NULL */
    char *user;     /* NULL: none */
    char *password; /* NULL: no AUTH */
    int db;         /* SELECT on the publish connection (pub/sub ignores it) */
    bool is_tls;    /* rediss://: through the TLS bridge (redis_tls.h) */
} phx_redis_url_t;

/* Parses `url` (redis[s]://[user:password@]host[:port][/db],
 * unix:///path, /path). Returns 0, or PHX_ERR_INVALID with one line in
 * `err` (PHX_ERR_LEN bytes), or PHX_ERR_NOMEM. */
int phx_redis_url_parse(const char *url, phx_redis_url_t *out, char *err);
void phx_redis_url_dispose(phx_redis_url_t *u);

/* Counts for /metrics. */
typedef struct phx_redis_stats {
    uint64_t published;       /* PUBLISH answered by Redis */
    uint64_t publish_dropped; /* not sent (down, over the cap) or lost in flight */
    uint64_t received;        /* messages from other nodes, delivered */
    uint64_t malformed;       /* messages dropped as malformed */
    uint64_t reconnects;      /* sessions established after the first */
    uint64_t subscribe_cmds;  /* SUBSCRIBE commands sent */
    uint64_t node_published;  /* node messages (Presence replication) answered by Redis */
    uint64_t node_dropped;    /* node messages not sent (down, over the cap) or lost */
    uint64_t node_received;   /* node messages received (this node's own included) */
    /* --phoenix-pubsub: Phoenix.PubSub's Redis adapter channel */
    uint64_t pps_delivered;  /* Elixir broadcasts delivered to phxd's subscribers */
    uint64_t pps_not_for_us; /* other dispatchers', Presence's, :except self, :only others */
    uint64_t pps_skipped;    /* broadcasts with no form phxd can send (counted, dropped) */
    uint64_t pps_malformed;  /* undecodable or over the limits */
    uint64_t pps_published;  /* phxd's broadcasts published in the adapter's format */
} phx_redis_stats_t;

/* Creates the backend for `ps` on `loop` under `cfg` (kept by pointer:
 * redis_url, node_name, redis_prefix, max_json_depth; for rediss://
 * redis_ca_file, read here, and redis_tls_insecure). Nothing connects
 * yet. Returns 0, or an error with one line in `err`. */
int phx_redis_new(phx_redis_t **out, phx_loop_t *loop, phx_pubsub_t *ps, const phx_config_t *cfg,
                  char *err);
/* Plugs the backend into its PubSub and its loop (hook) and connects; for
 * rediss:// it first opens the TLS bridge's socket. Returns 0, or an error
 * with one line in `err` (phx_redis_close must still be called). */
int phx_redis_start(phx_redis_t *r, char *err);
/* Closes the connections (no reconnect from now on) and the timer. Returns
 * true when `done(arg)` will be called once the timer is closed; false when
 * nothing was open (done is not called). */
bool phx_redis_close(phx_redis_t *r, void (*done)(void *arg), void *arg);
/* Frees a closed (or never started) backend. NULL is a no-op. */
void phx_redis_free(phx_redis_t *r);

bool phx_redis_is_connected(const phx_redis_t *r);
const char *phx_redis_node(const phx_redis_t *r);
const phx_redis_stats_t *phx_redis_stats(const phx_redis_t *r);

#endif /* PHX_REDIS_H */
