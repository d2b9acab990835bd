/* phx.h: the public interface of libphx, a Phoenix Channels server in C.
 * An embedding program creates a server, registers a connect callback
 * (Phoenix's connect/3) and channel handlers by topic pattern, and runs the
 * libuv loop. Everything in src/ is internal. */
#ifndef PHX_H
#define PHX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHX_EXTERN __attribute__((visibility("default")))

#define PHX_VERSION "0.1.0"

/* ---- error codes ----
 * Functions return 0 on success or a negative code. libuv codes (negative
 * errno) pass through unchanged; phxd's own codes sit at -1000 and below. */
#define PHX_ERRNO_MAP(X)                                                                           \
    X(AGAIN, -1000, "more input needed")                                                           \
    X(PROTO, -1001, "peer violated the protocol")                                                  \
    X(LIMIT, -1002, "input exceeds a configured limit")                                            \
    X(AUTH, -1003, "authentication failed")                                                        \
    X(NOMEM, -1004, "out of memory")                                                               \
    X(INVALID, -1005, "invalid argument or value")                                                 \
    X(EXPIRED, -1006, "token expired")                                                             \
    X(MISSING, -1007, "token missing")                                                             \
    X(STATE, -1008, "operation not allowed in the current state")                                  \
    X(NOTFOUND, -1009, "no such item")                                                             \
    X(CLOSED, -1010, "connection is closed")                                                       \
    X(DATA, -1011, "authentic token whose data cannot be used")

typedef enum {
#define PHX_ERRNO_GEN(name, code, text) PHX_ERR_##name = (code),
    PHX_ERRNO_MAP(PHX_ERRNO_GEN)
#undef PHX_ERRNO_GEN
} phx_errno_t;

/* Returns the symbolic name ("PHX_ERR_PROTO", "ECONNRESET") of an error code.
 * The string is static. */
PHX_EXTERN const char *phx_err_name(int err);
/* Returns a human-readable description of an error code. Static string. */
PHX_EXTERN const char *phx_strerror(int err);

/* ---- configuration ----
 * A plain struct: phx_config_init() fills the defaults, the embedder (or
 * phxd's option table) changes fields, phx_server_new() validates and copies
 * it. Strings are borrowed until phx_server_new() returns. */
typedef enum {
    PHX_MAX_AGE_TOKEN = 0, /* use the max age stored in the token */
    PHX_MAX_AGE_INFINITY,  /* never expires, no future check */
    PHX_MAX_AGE_SECONDS,   /* override with `seconds` */
} phx_max_age_kind_t;

typedef struct phx_max_age {
    phx_max_age_kind_t kind;
    double seconds;
    /* signing only: write `seconds` as a float even when it is integral
     * (3600.0 rather than 3600); non-integral values are always floats. */
    bool is_float;
} phx_max_age_t;

typedef struct phx_config {
    const char *host;        /* listen address, default "127.0.0.1" */
    int port;                /* default 4000; 0 binds an ephemeral port */
    const char *socket_path; /* mount prefix, default "/socket" */
    /* check_origin: "true" (default: the Origin's host must be url_host, or
     * the request's own Host when url_host is NULL), "false", "conn", or a
     * comma-separated list of "https://app.example.com",
     * "//host:port" or wildcard "//" "*.example.com" patterns. */
    const char *check_origin;
    const char *url_host;
    /* Phoenix.Token verification (phxd's default connect callback) */
    const char *secret_key_base; /* required by the default callback */
    const char *salt;            /* default "user socket" */
    phx_max_age_t max_age;       /* default: the token's own */
    int key_iterations;          /* 1000 */
    int key_length;              /* 32 */
    const char *key_digest;      /* "sha256" | "sha384" | "sha512" */
    /* When the token's data is a map, the user id is this field of it
     * (binary or atom key: %{"user_id" => 42} or %{user_id: 42}); a map
     * without it is refused. NULL or "": the data as a whole. */
    const char *user_id_field;
    /* limits */
    int idle_timeout_ms;      /* 60000: no frame received -> close */
    int handshake_timeout_ms; /* 10000: whole HTTP request head */
    int close_timeout_ms;     /* 5000: wait for the peer after our Close */
    size_t max_message_bytes; /* 1 MiB: WebSocket message (close 1009) */
    int max_fragments;        /* 1024 frames per message */
    size_t max_header_bytes;  /* 8192: URL + header names and values */
    int max_headers;          /* 100 */
    int max_channels;         /* 100 joined topics per socket */
    int max_json_depth;       /* 64 */
    size_t max_token_bytes;   /* 4096 */
    size_t max_topic_bytes;   /* 1024: topic, event and refs */
    size_t queue_high_bytes;  /* 1 MiB queued output: stop reading */
    size_t queue_limit_bytes; /* 8 MiB queued output: close 1008 */
    int max_queued_msgs;      /* 4096 queued messages: stop reading */
    int max_connections;      /* 0 = limited by file descriptors only */
    /* TLS: PEM files read at phx_server_new() and again by
     * phx_server_reload_tls(); both NULL = plain TCP */
    const char *tls_cert;
    const char *tls_key;
    /* a raw WebSocket echo route for conformance testing; NULL = none */
    const char *echo_path;
    /* the HTTP API (/api/...): NULL or "" turns it off (404) */
    const char *api_key;
    /* "HOST:PORT": serve the API, /healthz and /metrics there instead of
     * on the main listener; NULL = the main listener */
    const char *api_listen;
    /* LongPoll (<socket_path>/longpoll) */
    bool longpoll;             /* true: the transport is served */
    int longpoll_window_ms;    /* 10000: a parked poll answers 204 after this */
    int longpoll_max_messages; /* 1000 buffered per session; beyond, it ends */
    int longpoll_max_sessions; /* 10000 */
    size_t max_body_bytes;     /* 8000000: a request body (413 beyond) */
    /* 64 MiB: request body bytes held by all connections together; a body
     * that would pass it is answered 503 */
    size_t max_body_bytes_total;
    int longpoll_max_sessions_per_user; /* 32 LongPoll sessions of one user id */
    /* Token lifetime on live sockets (off by default, as in Phoenix): a
     * socket whose connect set an expiry (the default callback: the token's
     * signed_at + max_age) is pushed phx_token_expiring on every joined
     * channel expiry_warning_s before it, and closed with 4001 at it; the
     * client may push access_token {"access_token": T} to move it. */
    bool expire_sockets;
    int expiry_warning_s;   /* 30 */
    int refresh_interval_s; /* 5: access_token pushes of a socket at most once per this */
    /* A refused WebSocket connect: false answers 403 before the upgrade (as
     * Phoenix); true upgrades, then closes at once with 4003 and a short
     * reason ("invalid token", "expired token", "missing token",
     * "unauthorized"), which a page can read. LongPoll keeps its 403. */
    bool refuse_close;
    /* Cluster over Redis (NULL: a single node, no backend): a URL
     * redis://[user:password@]host:port[/db], rediss://... (TLS), unix:///path
     * or a socket path /path/to.sock. Broadcasts, disconnects by id and
     * per-topic subscriptions are shared with every phxd on the same Redis
     * and prefix (at-most-once). hiredis 0.14 has no TLS: for rediss://
     * phxd bridges its connections through a private unix socket and
     * speaks TLS to Redis itself. */
    const char *redis_url;
    const char *node_name;    /* NULL: host name + '-' + pid; unique per process */
    const char *redis_prefix; /* "phxd": the Redis channels' prefix */
    /* rediss://: the CA bundle (PEM) Redis's certificate must chain to,
     * read at startup (NULL: OpenSSL's default CA file). The certificate
     * must also name the URL's host (name or IP address). */
    const char *redis_ca_file;
    /* rediss://: accept any certificate (tests and development only: the
     * connection is encrypted but Redis is not authenticated). */
    bool redis_tls_insecure;
    /* With redis_url: the name of an Elixir app's Phoenix.PubSub on the same
     * Redis ("MyApp.PubSub", its Redis adapter): its Endpoint.broadcast
     * reaches phxd's sockets and phxd's broadcasts reach its sockets.
     * NULL: off. */
    const char *phoenix_pubsub;
    /* SO_REUSEPORT on the listeners: several processes share one port. */
    bool reuse_port;
    /* Presence (phx_presence_track): a topic's joins and leaves within this
     * many ms leave as one presence_diff (20; 0: one per loop turn). */
    int presence_diff_ms;
    int presence_max_keys;          /* 10000 keys (users) per topic; 0: no cap */
    int presence_max_metas;         /* 32 metas per key (one per tab); 0: no cap */
    size_t presence_max_meta_bytes; /* 1024: a meta's JSON */
    /* In a cluster: other nodes' presence metas held here, in all
     * (1000000; 0: no cap); beyond, their joins are dropped and counted. */
    int presence_max_remote;
    /* Deferred answers (phx_channel_defer): client messages that wait for a
     * channel's answer, per channel (1024) and on the whole server (16 MiB
     * of them); beyond, error {"reason":"unavailable"}. */
    int max_waiting_msgs;
    size_t max_waiting_bytes;
    /* Backend callbacks over HTTP (docs/backend.md): the application's
     * endpoint (http:// or https://) that phxd's channel rules with
     * join=backend / events=backend, and connect with backend_connect, POST
     * JSON calls to; NULL: only rules naming their own backend=URL. */
    const char *backend_url;
    const char *backend_secret;      /* signs every call (x-phxd-signature); NULL: unsigned */
    bool backend_connect;            /* the connect step is a backend call too */
    int backend_timeout_ms;          /* 5000: a call's answer, from the call on */
    int backend_max_inflight;        /* 256 calls in flight (keep-alive connections) per URL */
    int backend_max_queue;           /* 4096 calls waiting for one; beyond: "unavailable" at once */
    size_t backend_max_answer_bytes; /* 1 MiB: an answer (head and body) */
    /* The circuit breaker: when at least half (breaker_percent) of the
     * last breaker_calls calls to a URL failed, its calls fail at once for
     * breaker_open_ms, then one probe call decides (0 ms: no breaker). */
    int backend_breaker_calls;   /* 20 */
    int backend_breaker_percent; /* 50 */
    int backend_breaker_open_ms; /* 5000 */
    const char *backend_ca_file; /* https: CA bundle (NULL: the system's) */
} phx_config_t;

/* Fills `cfg` with the defaults listed above. */
PHX_EXTERN void phx_config_init(phx_config_t *cfg);

/* ---- server ---- */
typedef struct phx_server phx_server_t;
typedef struct phx_socket phx_socket_t;
typedef struct phx_channel phx_channel_t;
typedef struct phx_connect phx_connect_t;

/* Creates a server on `loop` (a uv_loop_t *, passed as void * so this header
 * does not need uv.h). Copies `cfg`. On error writes one line into `err`
 * (PHX_ERR_LEN bytes) and returns a negative code. */
#define PHX_ERR_LEN 256
PHX_EXTERN int phx_server_new(phx_server_t **out, void *loop, const phx_config_t *cfg, char *err);
/* Binds and starts accepting. Returns 0 or a negative code (with `err`). */
PHX_EXTERN int phx_server_start(phx_server_t *srv, char *err);
/* The port actually bound (useful with port 0). */
PHX_EXTERN int phx_server_port(const phx_server_t *srv);
/* The port of the separate API listener (api_listen), or 0. */
PHX_EXTERN int phx_server_api_port(const phx_server_t *srv);
/* Stops accepting, closes every socket with `code` (1001 on shutdown) and
 * every handle; the loop then ends once the last handle is closed. `done` is
 * called (may be NULL) when everything is closed; the server can then be
 * freed with phx_server_free(). */
PHX_EXTERN void phx_server_stop(phx_server_t *srv, int code, void (*done)(phx_server_t *));
/* Graceful drain: stops accepting (/healthz turns 503), closes sockets with
 * `code` in batches of `batch` (0 = all at once) every `interval_ms`, then
 * stops as phx_server_stop does; whatever is left at `timeout_ms` is closed
 * then. `done` as for phx_server_stop. */
PHX_EXTERN void phx_server_drain(phx_server_t *srv, int code, size_t batch, int interval_ms,
                                 int timeout_ms, void (*done)(phx_server_t *));
/* Frees a stopped server (or one never started). NULL is a no-op. */
PHX_EXTERN void phx_server_free(phx_server_t *srv);
/* Reloads the TLS certificate chain and key from the tls_cert and tls_key
 * files given at phx_server_new() (phxd does it on SIGHUP). Connections
 * accepted from now on use them; open ones keep the certificate they were
 * accepted with, and nothing is dropped. Reads the two files synchronously
 * on the calling thread. Returns 0; PHX_ERR_STATE when the server has no TLS
 * (nothing to reload); PHX_ERR_INVALID when the files cannot be loaded (the
 * old certificate stays in use), with one line in `err` (PHX_ERR_LEN
 * bytes). */
PHX_EXTERN int phx_server_reload_tls(phx_server_t *srv, char *err);

/* Serves `len` bytes (copied) at GET `path` ("/", "/phoenix.js") with
 * `content_type`. Meant for small assets loaded at startup (phxd's demo
 * page); nothing is read from disk while serving. Returns 0 or
 * PHX_ERR_NOMEM. */
PHX_EXTERN int phx_server_static(phx_server_t *srv, const char *path, const char *content_type,
                                 const void *bytes, size_t len);

/* ---- the connect callback (Phoenix's connect/3) ----
 * Called once per new connection with the decoded params and the connect
 * info. Return PHX_CONNECT_OK to accept (after optionally storing assigns and
 * a socket id) or PHX_CONNECT_REFUSE (WebSocket: HTTP 403, empty body). The
 * phx_connect_t and every string it returns are valid only during the call. */
enum { PHX_CONNECT_OK = 0, PHX_CONNECT_REFUSE = 1, PHX_CONNECT_DEFER = 2 };
typedef int (*phx_connect_cb)(phx_connect_t *c, void *user);
PHX_EXTERN void phx_server_on_connect(phx_server_t *srv, phx_connect_cb cb, void *user);
/* Answering later (a connect checked by another process): the callback
 * calls phx_connect_defer(c) and returns PHX_CONNECT_DEFER. The handle it
 * gets stays valid until it calls phx_connect_resume(handle,
 * PHX_CONNECT_OK or PHX_CONNECT_REFUSE), which it must do exactly once
 * (even when the client has gone meanwhile: the answer is then dropped).
 * Between the two, phx_connect_assign, phx_connect_set_id and
 * phx_connect_set_expires_at work on the handle, and the strings the
 * callback was given stay valid; the request's own accessors (params,
 * headers, peer) do not. The request waits on hold, at most the LongPoll
 * window (longpoll_window_ms), after which it is answered 503. Returns
 * NULL when out of memory or called twice (answer now instead). */
PHX_EXTERN phx_connect_t *phx_connect_defer(phx_connect_t *c);
PHX_EXTERN void phx_connect_resume(phx_connect_t *deferred, int result);

/* A top-level connect param as a string, or NULL when absent or not a
 * string (nested map). Includes "vsn" (and "token"). */
PHX_EXTERN const char *phx_connect_param(const phx_connect_t *c, const char *key);
/* Every param as one JSON object (nested maps for a[b]=v). */
PHX_EXTERN const char *phx_connect_params_json(const phx_connect_t *c);
/* Connect info: peer address ("127.0.0.1") and port, the request URI
 * (path and query), and request headers by lower-case name (NULL if absent). */
PHX_EXTERN const char *phx_connect_peer_address(const phx_connect_t *c);
PHX_EXTERN int phx_connect_peer_port(const phx_connect_t *c);
PHX_EXTERN const char *phx_connect_uri(const phx_connect_t *c);
PHX_EXTERN const char *phx_connect_header(const phx_connect_t *c, const char *name);
/* "websocket" or "longpoll". */
PHX_EXTERN const char *phx_connect_transport(const phx_connect_t *c);
/* The phoenix.js 1.8 `authToken` (WebSocket: decoded from the
 * Sec-WebSocket-Protocol bearer entry; LongPoll: X-Phoenix-AuthToken), or
 * NULL. */
PHX_EXTERN const char *phx_connect_auth_token(const phx_connect_t *c);
/* Stores `value` (copied) under `key` (copied) in the socket's assigns,
 * which live as long as the connection. Returns 0 or PHX_ERR_NOMEM. */
PHX_EXTERN int phx_connect_assign(phx_connect_t *c, const char *key, const char *value);
/* Sets the socket id (copied), e.g. "users_socket:42". phx_broadcast of the
 * event "disconnect" to that topic (or POST /api/disconnect) closes every
 * socket with that id. Socket ids are internal: no client can join a topic
 * that is a connected socket's id, nor any "users_socket:" topic, whatever
 * the channel routes say (the join gets "unmatched topic"), so choose ids
 * apart from your channel topics. */
PHX_EXTERN int phx_connect_set_id(phx_connect_t *c, const char *id);
/* The time the socket's credentials stop being valid (unix milliseconds).
 * With cfg.expire_sockets the socket is warned before it and closed with
 * 4001 at it. The default callback sets the token's expiry. */
PHX_EXTERN void phx_connect_set_expires_at(phx_connect_t *c, int64_t unix_ms);

/* An assign of a live socket, or NULL. Valid until the socket closes. */
PHX_EXTERN const char *phx_socket_assign(const phx_socket_t *s, const char *key);
/* The socket id, or NULL. */
PHX_EXTERN const char *phx_socket_id(const phx_socket_t *s);

/* ---- channels ---- */
typedef struct phx_payload {
    const uint8_t *data; /* JSON text, or raw bytes when is_binary */
    size_t len;
    bool is_binary;
} phx_payload_t;

/* What a join or handle_in callback answers. */
typedef enum {
    PHX_REPLY_OK = 0,    /* reply {"status":"ok","response":<reply or {}>} */
    PHX_REPLY_ERROR = 1, /* reply {"status":"error","response":<reply or {}>} */
    PHX_NOREPLY = 2,     /* handle_in only: no reply */
    PHX_STOP = 3,        /* handle_in only: reply (if set), then phx_close */
    PHX_CRASH = 4,       /* join: {"reason":"join crashed"}; else phx_error */
    PHX_DEFER = 5,       /* join and handle_in: answered later (phx_channel_defer) */
} phx_result_t;

/* The reply a callback may fill: a JSON object text or binary bytes (copied
 * by phx_reply_set). A status other than ok/error can be given as `status`. */
typedef struct phx_reply phx_reply_t;
PHX_EXTERN int phx_reply_set(phx_reply_t *r, const phx_payload_t *response);
PHX_EXTERN int phx_reply_set_status(phx_reply_t *r, const char *status);

typedef struct phx_channel_handler {
    /* Required. Accept with PHX_REPLY_OK, refuse with PHX_REPLY_ERROR (the
     * reply should then be a reason map, e.g. {"reason":"unauthorized"}). */
    phx_result_t (*join)(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                         phx_reply_t *reply, void *user);
    /* Optional: a client event on a joined channel. Without it every event
     * crashes the channel (phx_error {"reason":"channel_crash"}), as a
     * Phoenix channel without a matching handle_in/3 clause does. */
    phx_result_t (*handle_in)(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                              phx_reply_t *reply, void *user);
    /* Optional: the channel ends ("left", "closed", "duplicate_join", "stop",
     * "crash", "shutdown"). The channel must not push from here. */
    void (*terminate)(phx_channel_t *ch, const char *reason, void *user);
} phx_channel_handler_t;

/* Registers a handler for a topic pattern: an exact topic ("system") or a
 * prefix ending in '*' ("room:*"). The first matching registration wins.
 * Socket-id topics never reach a handler (see phx_connect_set_id).
 * `h` is borrowed for the life of the server. */
PHX_EXTERN int phx_server_channel(phx_server_t *srv, const char *pattern,
                                  const phx_channel_handler_t *h, void *user);

PHX_EXTERN phx_socket_t *phx_channel_socket(const phx_channel_t *ch);
PHX_EXTERN const char *phx_channel_topic(const phx_channel_t *ch);
PHX_EXTERN void *phx_channel_data(const phx_channel_t *ch);
PHX_EXTERN void phx_channel_set_data(phx_channel_t *ch, void *data);
/* The number of channels subscribed to this channel's topic. Inside the
 * join callback the joining channel is not counted yet. */
PHX_EXTERN size_t phx_channel_subscriber_count(const phx_channel_t *ch);
/* Sends `event` with `payload` to this channel's client only. */
PHX_EXTERN int phx_channel_push(phx_channel_t *ch, const char *event, const phx_payload_t *payload);
/* Sends to every subscriber of the channel's topic, including this one.
 * These two never disconnect, even with the event "disconnect": they are
 * how client events are broadcast. Events of the protocol and of phxd
 * itself (phx_*, presence_state, presence_diff) are never relayed through
 * them: PHX_ERR_PROTO, and nothing is sent (a forged phx_close or
 * presence_diff would be taken for the real one by every member). */
PHX_EXTERN int phx_channel_broadcast(phx_channel_t *ch, const char *event,
                                     const phx_payload_t *payload);
/* Sends to every subscriber of the channel's topic except this one. */
PHX_EXTERN int phx_channel_broadcast_from(phx_channel_t *ch, const char *event,
                                          const phx_payload_t *payload);
/* Answering later (a join or an event handled by another process): the
 * join or handle_in callback calls phx_channel_defer(ch) and, when it
 * returns 0, returns PHX_DEFER; the answer is given later with
 * phx_channel_resolve. Until then the channel's later client messages
 * (events, a leave, a rejoin) wait, in order, as a Phoenix channel's
 * mailbox does: at most cfg.max_waiting_msgs per channel and
 * cfg.max_waiting_bytes on the server, beyond which a message is answered
 * error {"reason":"unavailable"} at once. A deferred join holds the
 * channel in the socket's list (counted in max_channels) but subscribes
 * only when resolved ok. A channel that ends before it is resolved (the
 * socket closes) gets its terminate callback, even from a deferred join:
 * the handler must then forget `ch`. Returns 0, PHX_ERR_STATE (not inside
 * a join or handle_in callback of `ch`, or already deferred) or
 * PHX_ERR_NOMEM (answer now instead). */
PHX_EXTERN int phx_channel_defer(phx_channel_t *ch);
/* Gives a deferred answer: `result` as a join or handle_in callback
 * returns it (PHX_REPLY_OK, PHX_REPLY_ERROR, PHX_NOREPLY and PHX_STOP for
 * an event, PHX_CRASH), with `status` (NULL: "ok" / "error" by result) and
 * `response` (NULL: {}) as the reply, then handles the messages that
 * waited. A join resolved ok subscribes and replies; pushes may follow.
 * Returns 0, PHX_ERR_STATE (nothing deferred) or PHX_ERR_CLOSED (the
 * socket is closing: nothing is sent). */
PHX_EXTERN int phx_channel_resolve(phx_channel_t *ch, phx_result_t result, const char *status,
                                   const phx_payload_t *response);
/* Presence, as Phoenix.Presence (docs/protocol.md, "Presence").
 * phx_presence_track tracks the channel under `key` (a non-empty UTF-8
 * string) with `meta_json` (a JSON object without phx_ref; NULL: {}): in
 * the join callback it takes effect right after the join reply, else at
 * once (a second track of the same key is an update: new phx_ref, with
 * phx_ref_prev). The channel then gets presence_state after every join,
 * and the topic's subscribers a presence_diff. A channel holds one
 * presence; it leaves when the channel ends. Returns 0, PHX_ERR_LIMIT (a
 * bound: keys per topic, metas per key, meta bytes), PHX_ERR_INVALID (key
 * or meta), PHX_ERR_STATE (channel ended) or PHX_ERR_NOMEM. */
PHX_EXTERN int phx_presence_track(phx_channel_t *ch, const char *key, const char *meta_json);
/* Leaves the channel's presence (PHX_ERR_NOTFOUND when it has none). */
PHX_EXTERN int phx_presence_untrack(phx_channel_t *ch);
/* Asks for presence_state on this channel: after the join reply when
 * called from the join callback (and after every later join), else now.
 * Returns 0 or a negative code. */
PHX_EXTERN int phx_presence_sync(phx_channel_t *ch);
/* Broadcasts from anywhere (server-side publishing). The payload is encoded
 * once per wire format in use. Returns the number of recipients or a
 * negative code. The event "disconnect" on a socket id topic closes every
 * socket with that id (each counts as a recipient), as Phoenix's
 * Endpoint.broadcast does. */
PHX_EXTERN int phx_broadcast(phx_server_t *srv, const char *topic, const char *event,
                             const phx_payload_t *payload);

/* ---- version ----
 * phx_version.h (generated from the build's project version and installed
 * next to this header) defines PHX_VERSION_MAJOR, PHX_VERSION_MINOR,
 * PHX_VERSION_PATCH, PHX_VERSION_STRING ("0.1.0") and PHX_VERSION_NUM, the
 * three numbers as one integer 0xMMmmpp = (major << 16) | (minor << 8) |
 * patch (0.1.0 is 0x000100), so versions compare as integers. PHX_VERSION
 * above is the same string as PHX_VERSION_STRING. The macros tell the header
 * a program was compiled against; the two calls below tell the library it
 * runs with. While the major version is 0 every minor release may change the
 * ABI (the shared library's soname is libphx.so.0.MINOR); from 1.0 on only a
 * major release does (libphx.so.MAJOR). A program can refuse a library whose
 * soname part differs, or that is older than its header. */
#include "phx_version.h"

/* The library's version: "MAJOR.MINOR.PATCH" (static string), and the same
 * as PHX_VERSION_NUM encodes it. */
PHX_EXTERN const char *phx_version(void);
PHX_EXTERN int phx_version_num(void);

/* ---- allocator ----
 * Every allocation libphx makes goes through the three functions given here
 * (default: the C library's malloc, realloc and free). Call it once, before
 * any other phx_* call: memory allocated through one allocator is freed
 * through the same hooks, so switching while a server exists is undefined.
 * Sizes asked for are never 0; `realloc_fn(NULL, n)` must act as
 * `malloc_fn(n)`; `free_fn` is never called with NULL; the memory must be
 * aligned as malloc's is. Zeroed allocations are `malloc_fn` plus memset.
 * Passing three NULLs restores the defaults. Returns 0, or PHX_ERR_INVALID
 * (nothing changed) when only some are NULL.
 * libuv, OpenSSL and wslay keep their own allocators (libphx never frees
 * what they allocate, nor they what libphx allocates); to route the first
 * two as well, call uv_replace_allocator() and CRYPTO_set_mem_functions()
 * before creating the loop, as phxd does (wslay has no such hook). */
typedef void *(*phx_malloc_fn)(size_t size);
typedef void *(*phx_realloc_fn)(void *ptr, size_t size);
typedef void (*phx_free_fn)(void *ptr);
PHX_EXTERN int phx_set_allocator(phx_malloc_fn malloc_fn, phx_realloc_fn realloc_fn,
                                 phx_free_fn free_fn);

/* ---- logging ----
 * libphx logs one line per event as key=value pairs
 * ("event=ws_close conn=812 code=1009"). By default each line goes to stderr
 * in one write, after a UTC timestamp and the level name:
 *   2026-11-28T23:19:32.123Z warn event=ws_close conn=812 code=1009
 * phx_set_log() hands the lines to `cb` instead: `level` is one of the
 * phx_log_level_t values, `line` the formatted message alone (no timestamp,
 * no level name, no newline; at most 1 KiB, valid during the call only).
 * `cb` runs on the thread that runs the loop, from inside libphx: it must not
 * call back into libphx. cb NULL restores stderr. A failed internal
 * assertion is also reported to `cb` (level error) before the process aborts
 * (and always on stderr). */
typedef enum phx_log_level {
    PHX_LOG_LEVEL_ERROR = 0,
    PHX_LOG_LEVEL_WARN = 1,
    PHX_LOG_LEVEL_INFO = 2,
    PHX_LOG_LEVEL_DEBUG = 3,
} phx_log_level_t;
typedef void (*phx_log_cb)(int level, const char *line, void *user);
PHX_EXTERN void phx_set_log(phx_log_cb cb, void *user);
/* Lines above `level` (default PHX_LOG_LEVEL_INFO) are dropped before they
 * are formatted. Returns 0, or PHX_ERR_INVALID for a level out of range. */
PHX_EXTERN int phx_set_log_level(int level);

#ifdef __cplusplus
}
#endif
#endif /* PHX_H */
