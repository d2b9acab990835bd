/* bench.h: shared state of phxd-bench, the load generator. One libuv loop
 * drives every client socket; conn.c owns the sockets (TCP, HTTP upgrade,
 * wslay in client mode, writes), scenario.c owns what they say and when
 * (ramp, hold, fanout, echo, churn, heartbeats, timeouts), report.c prints
 * the figures, main.c parses options and mints tokens. Everything hangs off
 * one phx_bench_t; the loop is single-threaded. The one other thread is the
 * built-in backend's (minibackend.h, --backend-listen), which shares nothing
 * with the loop but a few atomic counters. */
#ifndef PHX_BENCH_H
#define PHX_BENCH_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "minibackend.h"
#include "mem.h"
#include "proto.h"
#include "stats.h"

typedef enum {
    PHX_BENCH_HOLD,
    PHX_BENCH_FANOUT,
    PHX_BENCH_ECHO,
    PHX_BENCH_CHURN,
    PHX_BENCH_PRESENCE,
    PHX_BENCH_BACKEND, /* echo's traffic on a channel whose events go to a backend */
} phx_bench_scenario_t;

/* Error kinds: every failure is counted under one, and `errors` is their
 * sum. */
#define PHX_BENCH_ERRORS(X)                                                                        \
    X(CONNECT, "connect")     /* TCP connect or bind failed */                                     \
    X(HANDSHAKE, "handshake") /* no 101, bad Sec-WebSocket-Accept, EOF during the upgrade */       \
    X(JOIN, "join")           /* a join answered with an error status */                           \
    X(REPLY, "reply")         /* another push answered with an error status */                     \
    X(CLOSED, "closed")       /* the server closed a socket the bench still used */                \
    X(PROTOCOL, "protocol")   /* undecodable frame, unexpected ref or sequence number */           \
    X(TIMEOUT, "timeout")     /* a step (upgrade, join, reply, close) took longer than allowed */  \
    X(MISSING, "missing")     /* a broadcast never reached a subscriber */                         \
    X(ORDER, "order")         /* a broadcast arrived twice or out of order */                      \
    X(HEARTBEAT, "heartbeat") /* a heartbeat got no reply within one interval */                   \
    X(RESOURCE, "resource")   /* out of memory or descriptors in the bench itself */

typedef enum {
#define PHX_BENCH_ERR_ENUM(name, text) PHX_BENCH_ERR_##name,
    PHX_BENCH_ERRORS(PHX_BENCH_ERR_ENUM)
#undef PHX_BENCH_ERR_ENUM
        PHX_BENCH_ERR_COUNT
} phx_bench_err_t;

/* Servers one run may spread its sockets over (--url repeated). */
#define PHX_BENCH_MAX_URLS 16

typedef struct phx_bench_opts {
    const char *url;                      /* ws://host:port/socket: the first --url */
    const char *urls[PHX_BENCH_MAX_URLS]; /* every --url; sockets round-robin over them */
    uint32_t n_urls;
    const char *publish_url;     /* fanout: the publisher's server (default: the first --url) */
    const char *secret_key_base; /* mints one token per socket */
    const char *salt;            /* default "user socket" */
    const char *token;           /* or one fixed token for every socket */
    const char *params;          /* extra query parameters, already encoded */
    const char *topic;           /* the shared room, default "room:bench" */
    const char *event;           /* fanout and backend event, default "bench" */
    const char *backend_listen;  /* backend: HOST:PORT of the built-in backend, or NULL */
    uint32_t backend_delay_us;   /* backend: the built-in backend's answer delay */
    const char *vsn;             /* "2.0.0" or "1.0.0" */
    const char *source_ips;      /* "127.0.0.2-127.0.0.9" or a comma list */
    phx_bench_scenario_t scenario;
    uint32_t sockets;
    double rate;            /* fanout broadcasts/s; echo pings/s overall; churn cycles/s */
    double duration_s;      /* the measured phase */
    int server_pid;         /* 0 = none */
    uint32_t concurrency;   /* handshakes in flight during the ramp */
    uint32_t window;        /* echo: pings outstanding per socket (backend: --inflight) */
    uint32_t payload_bytes; /* padding added to fanout and echo payloads */
    uint32_t timeout_ms;    /* per step: connect+upgrade+join, a reply, a close */
    uint32_t heartbeat_ms;  /* Phoenix heartbeat interval per socket */
    uint32_t drain_ms;      /* after the measured phase, wait this long for stragglers */
    uint32_t settle_ms;     /* pause before sampling the server's memory */
    uint64_t first_id;      /* user id of socket 0 */
    bool is_v1;
    bool is_quiet; /* no progress lines */
} phx_bench_opts_t;

typedef enum {
    PHX_CONN_IDLE = 0,   /* no handle */
    PHX_CONN_CONNECTING, /* TCP connect in progress */
    PHX_CONN_UPGRADING,  /* request sent, waiting for 101 */
    PHX_CONN_OPEN,       /* WebSocket established */
    PHX_CONN_CLOSING,    /* our Close frame sent, waiting for the server to end TCP */
} phx_conn_state_t;

typedef enum {
    PHX_ROLE_HOLD = 0,
    PHX_ROLE_SUBSCRIBER,
    PHX_ROLE_PUBLISHER,
    PHX_ROLE_ECHO,
    PHX_ROLE_CHURN,
    PHX_ROLE_PRESENCE,
} phx_conn_role_t;

/* Channel-level progress of a socket (scenario.c). */
typedef enum {
    PHX_STEP_NONE = 0,
    PHX_STEP_JOINING,
    PHX_STEP_JOINED,
    PHX_STEP_PINGING, /* churn: ping sent */
    PHX_STEP_LEAVING, /* churn: phx_leave sent */
    PHX_STEP_CLOSING, /* churn: WebSocket Close sent */
} phx_conn_step_t;

typedef struct phx_bench phx_bench_t;

typedef struct phx_bench_conn {
    uv_tcp_t tcp; /* tcp.data = this */
    uv_connect_t connect_req;
    uv_write_t write_req;
    phx_bench_t *b;
    wslay_event_context_ptr ws; /* exists only while open */
    phx_buf_t wbuf;             /* bytes of the uv_write in flight */
    phx_buf_t pending;          /* bytes queued while a write is in flight */
    phx_buf_t in;               /* HTTP head during the upgrade; a split message once open */
    uint64_t t_start_ns;        /* connect started (churn: cycle started) */
    uint64_t deadline_ms;       /* uv_now deadline of the current step; 0 = none */
    uint32_t index;             /* position in b->conns */
    uint32_t target;            /* index in b->targets: the server this socket talks to */
    uint32_t next_seq;          /* fanout: next broadcast sequence expected */
    uint64_t received;          /* fanout: broadcasts received */
    uint32_t echo_sent;         /* echo: pings sent; their refs are p<n> */
    uint32_t echo_acked;        /* echo: replies received */
    uint32_t hb_count;          /* heartbeats sent; refs are h<n> */
    uint32_t pres_keys;         /* presence: keys in this client's view */
    uint32_t pres_msgs;         /* presence: presence_state and presence_diff received */
    uint32_t pres_diffs;        /* presence: of them, presence_diff */
    uint64_t pres_bytes;        /* presence: their bytes (message text) */
    uint64_t pres_full_ns;      /* presence: when the view first held every user; 0 = not yet */
    uint64_t frame_len;         /* payload length of the data frame being received */
    uint64_t frame_off;         /* bytes of it received so far */
    char ws_key[25];            /* Sec-WebSocket-Key sent */
    uint8_t state;              /* phx_conn_state_t */
    uint8_t role;               /* phx_conn_role_t */
    uint8_t step;               /* phx_conn_step_t */
    uint8_t waiting;            /* bit mask of replies awaited (joins, leaves) */
    bool has_handle;            /* tcp initialised and not yet closed */
    bool is_closing;            /* uv_close called */
    bool is_writing;            /* a uv_write is in flight */
    bool is_ramping;            /* counted in the ramp's in-flight handshakes */
    bool is_joined;             /* counted as a joined socket */
    bool has_cycled;            /* churn: completed at least one cycle */
    bool is_hb_pending;         /* a heartbeat is unanswered */
    bool frame_is_ctrl;         /* the frame being received is a control frame */
    bool frame_is_fin;
    bool msg_is_text;
    bool msg_is_done;    /* delivered straight from the frame buffer */
    bool is_eof;         /* the server ended TCP */
    bool has_pres_state; /* presence: presence_state received */
} phx_bench_conn_t;

/* Figures of one fanout broadcast. */
typedef struct phx_bench_bcast {
    uint64_t sent_ns;
    uint64_t last_ns; /* latest delivery to a subscriber */
    uint32_t count;   /* subscribers that got it */
    uint32_t expected;
} phx_bench_bcast_t;

/* The same figures for the subscribers of one server (several targets
 * only): entry seq * n_targets + target of b->bnodes. */
typedef struct phx_bench_bnode {
    uint64_t last_ns;
    uint32_t count;
    uint32_t expected;
} phx_bench_bnode_t;

/* One server: where the sockets of one --url (or --publish-url) go. */
typedef struct phx_bench_target {
    const char *url;
    struct sockaddr_storage dst;
    char *request_head; /* "GET <path>?<params>" before the token */
    char *request_tail; /* "&vsn=... HTTP/1.1\r\nHost: ...\r\n" up to the key header */
    size_t request_head_len;
    size_t request_tail_len;
    uint32_t sockets;     /* scenario sockets (not the publisher) sent here */
    uint32_t subscribers; /* fanout: of them, joined when broadcasting started */
    uint64_t deliveries;
} phx_bench_target_t;

typedef enum {
    PHX_PHASE_RAMP = 0,
    PHX_PHASE_SETTLE, /* after the ramp, before measuring */
    PHX_PHASE_MEASURE,
    PHX_PHASE_DRAIN, /* waiting for in-flight work after the measured phase */
    PHX_PHASE_REST,  /* churn: everything closed, letting the server settle */
    PHX_PHASE_DONE,
} phx_bench_phase_t;

struct phx_bench {
    uv_loop_t *loop;
    phx_bench_opts_t opts;
    int exit_code;

    /* targets: the --url servers in order, then --publish-url when it is
     * none of them; socket i of the scenario talks to target i % n_urls */
    phx_bench_target_t targets[PHX_BENCH_MAX_URLS + 1];
    uint32_t n_targets;
    uint32_t publish_target;      /* fanout: the publisher's target */
    struct sockaddr_storage *src; /* --source-ips */
    size_t n_src;
    size_t next_src;
    EVP_MD *sha1;

    /* tokens: token i is tokens.data + token_off[i], NUL-terminated */
    phx_buf_t tokens;
    uint32_t *token_off;
    uint32_t n_tokens;
    bool has_user_topic; /* tokens were minted, so user:<id> can be joined */

    /* sockets: [0, sockets) do the scenario; the fanout publisher is last */
    phx_bench_conn_t *conns;
    uint32_t n_conns;
    phx_bench_conn_t *publisher;

    /* I/O scratch (the loop is single-threaded) */
    uint8_t *rbuf;
    size_t rbuf_cap;
    const uint8_t *rx; /* unread input handed to wslay's recv_callback */
    size_t rx_len;
    phx_buf_t wscratch; /* wslay output of the connection being flushed */
    char msg_buf[65536 + 512];
    char *payload_buf; /* payloads built here: room for --payload-bytes + 128 */
    size_t payload_cap;
    uint64_t rng; /* xorshift state for masks and keys */

    /* timers */
    uv_timer_t progress_timer;
    uv_timer_t sweep_timer;
    uv_timer_t hb_timer;
    uv_timer_t pace_timer;
    uv_timer_t phase_timer;
    uv_signal_t sigint;
    uint32_t hb_cursor;

    /* phases */
    phx_bench_phase_t phase;
    uint64_t t0_ns;
    uint64_t ramp_end_ns;
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
    uint64_t last_progress_ns;
    uint64_t last_progress_count;
    bool is_interrupted;

    /* ramp */
    uint32_t next_launch;
    uint32_t inflight;
    uint32_t joined;        /* sockets counted as joined (ever) */
    uint32_t alive;         /* joined and still open */
    uint32_t sockets_final; /* alive when the run finished (churn: workers that cycled) */
    uint64_t first_join_ns;
    uint64_t last_join_ns;
    phx_hist_t connect_hist;

    /* fanout */
    phx_bench_bcast_t *bcasts;
    phx_bench_bnode_t *bnodes; /* per target, when there are several targets */
    size_t n_bcasts;
    size_t cap_bcasts;
    size_t bcasts_complete;
    uint64_t deliveries;
    uint64_t deliveries_in_window; /* received before the measured phase ended */
    uint64_t publisher_copies;
    uint32_t subscribers; /* subscribers joined when broadcasting started */
    phx_hist_t delivery_hist;

    /* echo */
    uint64_t *echo_ts; /* window entries per socket */
    uint64_t echo_outstanding;
    uint64_t echo_replies;
    uint64_t echo_in_window;
    uint64_t echo_sent;
    uint64_t echo_skipped;
    uint32_t echo_cursor;
    phx_hist_t echo_hist;

    /* backend: the echo counters count the pushes and their replies */
    phx_bench_backend_t *backend; /* the built-in backend, or NULL */
    uint64_t backend_timed;       /* replies that carried the backend's own time */
    phx_hist_t added_hist;        /* per reply: round trip minus the backend's own time */
    uint64_t be_events_start;     /* the backend's event calls at the measured phase's start */
    uint64_t be_events_end;       /* ... and end */
    double be_cpu_start;          /* its thread's CPU at the phase's start */
    double be_cpu_end;

    /* churn */
    uint32_t *idle; /* ring of workers waiting for the rate limit */
    uint32_t idle_head;
    uint32_t n_idle;
    uint32_t active; /* workers with an open handle */
    uint64_t cycles;
    uint64_t cycles_in_window;
    uint64_t cycle_joins;
    uint64_t cycles_started;
    uint32_t workers_cycled; /* workers that completed at least one cycle */
    phx_hist_t cycle_hist;

    /* presence: one bit per (client, user) of every client's view; row i
     * is conns[i], bit k is user first_id + k */
    uint64_t *pres_bits;
    size_t pres_words;          /* words per row */
    uint32_t pres_converged;    /* clients whose view holds every user */
    uint64_t pres_all_ns;       /* when the last of them did; 0 = not yet */
    uint64_t pres_early;        /* diffs that arrived before their client's state */
    phx_proc_sample_t srv_conv; /* the server when every view was complete */

    /* messages */
    uint64_t heartbeats;
    uint64_t other_msgs;

    /* server and bench resources */
    phx_proc_sample_t srv_base;
    phx_proc_sample_t srv_ramp;    /* after the ramp settled */
    phx_proc_sample_t srv_measure; /* at the start of the measured phase */
    phx_proc_sample_t srv_mid;     /* halfway through the measured phase */
    uint64_t cycles_mid;           /* churn cycles at that moment */
    phx_proc_sample_t srv_measure_end;
    phx_proc_sample_t srv_end; /* after the measured phase (and churn's rest) */
    uint64_t srv_rss_peak;
    phx_host_sample_t host_measure_start;
    phx_host_sample_t host_measure_end;
    double cpu_base;
    double cpu_ramp_end;
    double cpu_measure_start;
    double cpu_measure_end;
    double cpu_end;
    uint64_t end_ns;

    /* errors */
    uint64_t errors[PHX_BENCH_ERR_COUNT];
    uint32_t errors_printed;
};

/* ---- conn.c ---- */

/* Starts socket `c` (state IDLE): creates the TCP handle, binds the next
 * --source-ips address, connects, then sends the upgrade request with the
 * token of its index. Returns 0, or a negative libuv code after counting
 * an error; then no close callback follows unless c->has_handle. */
int phx_bench_conn_start(phx_bench_conn_t *c);
/* Closes the socket at once (idempotent). phx_bench_on_closed follows from
 * the close callback, when the struct may be reused. */
void phx_bench_conn_close(phx_bench_conn_t *c);
/* Queues one Phoenix message (copied into wslay's queue). Sent by the next
 * phx_bench_conn_flush. Returns 0 or a PHX_ERR_* code (then the socket is
 * closed and an error counted). */
int phx_bench_conn_push(phx_bench_conn_t *c, const char *join_ref, const char *ref,
                        const char *topic, const char *event, const char *payload,
                        size_t payload_len);
/* Writes what wslay has queued: one write per call (uv_try_write, then
 * uv_write for any rest). May close the socket. */
void phx_bench_conn_flush(phx_bench_conn_t *c);
/* Starts the WebSocket closing handshake (code 1000). */
void phx_bench_conn_ws_close(phx_bench_conn_t *c);
/* Frees buffers kept across cycles. */
void phx_bench_conn_dispose(phx_bench_conn_t *c);
/* Sets up the targets from --url, --publish-url and --source-ips. Returns 0 or writes a
 * message into err and returns PHX_ERR_INVALID. */
int phx_bench_target_init(phx_bench_t *b, char *err, size_t err_len);
void phx_bench_target_dispose(phx_bench_t *b);

/* ---- scenario.c: callbacks from conn.c and the run ---- */

void phx_bench_on_open(phx_bench_conn_t *c);
void phx_bench_on_message(phx_bench_conn_t *c, const phx_bench_msg_t *m);
/* The server ended TCP or sent Close. */
void phx_bench_on_eof(phx_bench_conn_t *c);
void phx_bench_on_closed(phx_bench_conn_t *c);
/* Starts the scenario: timers, baseline samples, the ramp. Returns 0 or a
 * negative code. */
int phx_bench_run_start(phx_bench_t *b);

/* Counts an error of `kind`; the first few are described on stderr. `c`
 * may be NULL. */
void phx_bench_error(phx_bench_t *b, phx_bench_err_t kind, const phx_bench_conn_t *c,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
uint64_t phx_bench_error_total(const phx_bench_t *b);
const char *phx_bench_err_name(phx_bench_err_t kind);
uint64_t phx_bench_rand(phx_bench_t *b);

/* Helpers of scenario.c for traffic.c. Refs: joins use "1" (user:<id>)
 * and "2" (the room), also the join_refs of later pushes; other refs are a
 * letter and a counter: h<n> heartbeat, p<n> ping, b<n> broadcast push,
 * l1/l2 leaves. */
#define PHX_JR_USER "1"
#define PHX_JR_ROOM "2"
#define PHX_WAIT_USER 1u /* c->waiting: the user:<id> reply */
#define PHX_WAIT_ROOM 2u /* c->waiting: the room reply */
/* Builds `{"<key>":<v>,"t":<t>[,"pad":"x.."]}` in b->payload_buf and
 * returns its length (valid until the next call). */
size_t phx_bench_payload(phx_bench_t *b, const char *key, uint64_t v, uint64_t t);
/* Writes `letter` and decimal `n` into buf (room for 24 bytes). */
void phx_bench_ref(char *buf, char letter, uint64_t n);
uint64_t phx_bench_user_id(const phx_bench_conn_t *c);
/* Sets the socket's step deadline to now + --timeout-ms. */
void phx_bench_deadline(phx_bench_conn_t *c);
/* Ends the run: final samples, every handle closed; uv_run then returns. */
void phx_bench_finish(phx_bench_t *b);
/* Churn: waits --settle-ms, samples the server's memory, finishes. */
void phx_bench_rest(phx_bench_t *b);

/* ---- traffic.c: the measured phase of fanout, echo, churn ---- */

/* Starts broadcasting. Returns 0, or PHX_ERR_STATE (error counted) when
 * the publisher did not join. */
int phx_fanout_start(phx_bench_t *b);
void phx_fanout_on_broadcast(phx_bench_conn_t *c, const phx_bench_msg_t *m);
void phx_echo_start(phx_bench_t *b);
/* A reply to a ping (echo) or event push (backend); `resp` is its response
 * (the backend's time is read from its "backend_ns"). */
void phx_echo_on_reply(phx_bench_conn_t *c, const phx_bench_msg_t *m, bool is_ok,
                       const phx_bench_span_t *resp);
void phx_echo_on_closed(phx_bench_conn_t *c);
void phx_churn_start(phx_bench_t *b);
void phx_churn_on_ping_reply(phx_bench_conn_t *c, bool is_ok);
void phx_churn_on_leave_reply(phx_bench_conn_t *c, unsigned which, bool is_ok);
/* The server answered our Close: counts the cycle, closes the socket. */
void phx_churn_cycle_done(phx_bench_conn_t *c);
void phx_churn_on_closed(phx_bench_conn_t *c);
/* The drain ran out: closes the cycles still running (errors). */
void phx_churn_cut(phx_bench_t *b);
/* A presence_state (`is_state`) or presence_diff for the room: applied to
 * the client's view of the users present. */
void phx_presence_on_message(phx_bench_conn_t *c, const phx_bench_msg_t *m, bool is_state);
/* True once every client's view holds every user. */
bool phx_presence_is_done(const phx_bench_t *b);
/* Called by traffic.c when the last view completes (scenario.c). */
void phx_bench_on_presence_done(phx_bench_t *b);

/* ---- report.c ---- */

/* Prints the human summary on stderr and one JSON object on stdout. */
void phx_bench_report(phx_bench_t *b);

#endif /* PHX_BENCH_H */
