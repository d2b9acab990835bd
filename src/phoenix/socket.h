/* socket.h: the Phoenix socket, independent of the transport: the connect
 * step (params, vsn, the connect callback, assigns and id), heartbeats and
 * replies at the socket level, and the list of joined channels. Transports
 * (ws.c, later longpoll.c) implement phx_transport_ops_t. */
#ifndef PHX_SOCKET_H
#define PHX_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "endpoint.h"
#include "phx.h"
#include "pubsub.h"
#include "serializer.h"

/* What a transport offers the socket layer. */
typedef struct phx_transport_ops {
    const char *name; /* "websocket", "longpoll" */
    /* Queues one encoded message (takes the reference). */
    int (*send)(void *transport, phx_rcbuf_t *msg);
    /* Closes the transport with a WebSocket close code. */
    void (*close)(void *transport, int code);
    bool supports_binary;
} phx_transport_ops_t;

typedef struct phx_connect_str phx_connect_str_t;

/* The connect step of one new connection (stack object of the transport). */
struct phx_connect {
    phx_endpoint_t *ep;
    const phx_transport_ops_t *ops;
    const char *peer;
    int peer_port;
    const char *uri;
    size_t uri_len;
    const char *query;
    size_t query_len;
    const char *(*header)(void *ctx, const char *name);
    void *header_ctx;
    const struct phx_http *http; /* the request, when the transport has one (x-headers) */
    phx_fmt_t fmt;
    struct phx_query *params;
    phx_buf_t assigns; /* packed "key\0value\0" */
    char *id;
    char *auth_token;           /* owned, or NULL */
    int64_t expires_ms;         /* the credentials' expiry (unix ms), 0: none */
    int refused;                /* phx_refuse_t of a refusal */
    phx_connect_str_t *strings; /* strings returned to the callback */
    /* A deferred answer (phx_connect_defer): on the transport's object, the
     * heap copy the callback answers through; on that copy, how the
     * transport goes on (resume_arg NULL: the connection is gone). */
    phx_connect_t *deferred;
    void (*resume)(phx_connect_t *d, int result);
    void *resume_arg;
    void *resume_ctx;
    /* phx_endpoint_connect_wait's: the transport's step after the answer,
     * and the headers of its 503 when none comes */
    void (*admit)(struct phx_conn *c, phx_connect_t *d, int status, uint8_t *rest, size_t rest_len,
                  void *ctx);
    const char *busy_headers;
    bool is_upgrade;  /* the bytes after the request are the next protocol's (not requests) */
    int early_result; /* resumed before the transport parked: the result */
    bool is_parked;
    bool has_early;
    uint8_t tflags; /* the transport's own (WebSocket: the phoenix subprotocol) */
};

/* Prepares a connect step; every argument is borrowed until dispose. */
void phx_connect_init(phx_connect_t *c, phx_endpoint_t *ep, const phx_transport_ops_t *ops,
                      const char *peer, int peer_port, const char *uri, size_t uri_len,
                      const char *query, size_t query_len,
                      const char *(*header)(void *ctx, const char *name), void *header_ctx);
/* Runs vsn negotiation and the connect callback. Returns 0 (accepted),
 * PHX_ERR_INVALID (undecodable query: HTTP 400) or PHX_ERR_AUTH (refused:
 * HTTP 403). */
int phx_connect_run(phx_connect_t *c);
void phx_connect_dispose(phx_connect_t *c);
/* A connect step that ended in PHX_ERR_AGAIN (the callback deferred): the
 * transport keeps the request on hold and calls phx_connect_park with the
 * step's deferred copy (c->deferred, taken from the stack object before
 * disposing it) and its continuation, which runs with the result once
 * the callback's owner calls phx_connect_resume (at once, from inside
 * park, when it already has). The continuation must dispose `d`; the
 * library frees it afterwards. */
void phx_connect_park(phx_connect_t *d, void (*resume)(phx_connect_t *d, int result), void *arg,
                      void *ctx);
/* The connection of a parked step is gone: the answer, when it comes, is
 * dropped. */
void phx_connect_orphan(phx_connect_t *d);

struct phx_socket {
    phx_endpoint_t *ep;
    const phx_transport_ops_t *ops;
    void *transport;
    phx_channel_t *channels;
    uint16_t nchannels;
    uint8_t fmt;
    bool is_closing;
    uint32_t expiry_slot; /* 1 + its index in the endpoint's expiry heap; 0: none */
    char *id;
    phx_sub_t id_sub; /* subscribed to the topic of its id (disconnect by id) */
    char *assigns;    /* packed "key\0value\0...", or NULL */
    uint32_t assigns_len;
    uint8_t holds;       /* phx_socket_hold depth: the free waits for the last release */
    bool is_gone : 1;    /* the transport is gone while held: freed at the last release */
    bool is_open : 1;    /* phx_socket_opened ran: its close is logged */
    bool is_kicked : 1;  /* closed by a disconnect of its id */
    uint16_t close_code; /* the first close code set (0: none yet; logged as 1006) */
};

/* Creates the socket of an accepted connect step (takes its assigns and
 * id). Returns owned (*out; phx_socket_closed frees it) and 0, or
 * PHX_ERR_NOMEM. */
int phx_socket_new(phx_socket_t **out, phx_connect_t *c, void *transport);
/* The transport has admitted the socket for good: logs the connect line
 * (socket id, user id, transport, peer) at info. From then on its close is
 * logged too (phx_socket_closed). */
void phx_socket_opened(phx_socket_t *s, const char *peer);
/* Records the code the socket closes with, unless one is already set: the
 * first wins (a server's Close before the peer's answer to it). */
void phx_socket_set_close_code(phx_socket_t *s, int code);
/* One complete client message (a WebSocket text or binary message). The
 * frame buffer is borrowed and may be modified in place. May close the
 * transport (undecodable input: close 1011). */
void phx_socket_handle(phx_socket_t *s, bool is_binary, uint8_t *frame, size_t len);
/* The transport is gone: terminate every channel and free the socket (at
 * the last phx_socket_release when it is held). */
void phx_socket_closed(phx_socket_t *s);
/* Keeps `s` allocated across calls that may close its transport (a push
 * to a full queue): phx_socket_closed then only marks it, and the last
 * release frees it. Check s->is_closing after each such call. */
void phx_socket_hold(phx_socket_t *s);
void phx_socket_release(phx_socket_t *s);
/* The value of `key` in packed "key\0value\0..." assigns (`len` bytes;
 * `packed` may be NULL), or NULL. */
const char *phx_assigns_get(const char *packed, size_t len, const char *key);
/* Sets assign `key` of a live socket to `value` (both copied), replacing
 * an earlier value. Returns 0 or PHX_ERR_NOMEM. */
int phx_socket_put_assign(phx_socket_t *s, const char *key, const char *value);
/* Encodes `m` in the socket's format and sends it. */
int phx_socket_send(phx_socket_t *s, const phx_out_t *m);
/* Closes the socket's transport with `code`. */
void phx_socket_close(phx_socket_t *s, int code);
/* The message limits derived from the server configuration. */
phx_msg_limits_t phx_socket_limits(const phx_config_t *cfg);

/* The socket ids of phxd's default connect callback: users_socket:<user_id>. */
#define PHX_SOCKET_ID_PREFIX "users_socket:"
/* Whether `topic` is a socket-id topic: it has the default callback's form
 * (even with nobody of that id connected), or it is the id of a connected
 * socket (an embedder's callback may choose any id). No client may join
 * one, so disconnect by id stays in the server's hands. */
bool phx_socket_id_topic(const phx_endpoint_t *ep, const char *topic, size_t len);

#endif /* PHX_SOCKET_H */
