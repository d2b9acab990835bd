/* counters.h: the counters one loop keeps (connections, messages, bytes,
 * refusals, joins, API calls, slow consumers, broadcasts and their fan-out
 * time), read by /metrics. Plain data: every layer adds to it, none owns it
 * but the loop. A refused connect is counted and logged (one info line) in
 * one place, phx_stats_refused. */
#ifndef PHX_COUNTERS_H
#define PHX_COUNTERS_H

#include <stdint.h>

#include "log.h"

/* Why a connection was refused (metrics label "reason"). */
#define PHX_REFUSE_MAP(X)                                                                          \
    X(ORIGIN, "origin")                                                                            \
    X(VSN, "vsn")                                                                                  \
    X(QUERY, "query")                                                                              \
    X(TOKEN_INVALID, "token_invalid")                                                              \
    X(TOKEN_EXPIRED, "token_expired")                                                              \
    X(TOKEN_MISSING, "token_missing")                                                              \
    X(TOKEN_DATA, "token_data")                                                                    \
    X(SUBPROTOCOL, "subprotocol")                                                                  \
    X(CALLBACK, "callback")                                                                        \
    X(BACKEND, "backend_unavailable")                                                              \
    X(CAPACITY, "capacity")                                                                        \
    X(DRAINING, "draining")

typedef enum {
#define PHX_REFUSE_ENUM(name, label) PHX_REFUSE_##name,
    PHX_REFUSE_MAP(PHX_REFUSE_ENUM)
#undef PHX_REFUSE_ENUM
        PHX_REFUSE_COUNT
} phx_refuse_t;

/* Why a channel join was refused (metrics label "reason"). */
#define PHX_JOIN_REFUSE_MAP(X)                                                                     \
    X(UNMATCHED, "unmatched_topic")  /* no channel route matches the topic */                      \
    X(SOCKET_ID, "socket_id_topic")  /* a socket id's topic: never joinable */                     \
    X(TOO_MANY, "too_many_channels") /* the socket has max_channels joined */                      \
    X(UNAUTHORIZED, "unauthorized")  /* the join handler refused: reason "unauthorized" */         \
    X(HANDLER, "handler_error")      /* the join handler refused with another reply */             \
    X(CRASHED, "join_crashed")       /* the join handler crashed, or out of memory */

typedef enum {
#define PHX_JOIN_REFUSE_ENUM(name, label) PHX_JOIN_REFUSE_##name,
    PHX_JOIN_REFUSE_MAP(PHX_JOIN_REFUSE_ENUM)
#undef PHX_JOIN_REFUSE_ENUM
        PHX_JOIN_REFUSE_COUNT
} phx_join_refuse_t;

/* The routes of the HTTP API (metrics label "route"). */
typedef enum {
    PHX_API_BROADCAST,
    PHX_API_DISCONNECT,
    PHX_API_PRESENCE,
    PHX_API_OTHER,
    PHX_API_ROUTES
} phx_api_route_t;

/* The statuses the API answers (metrics label "status"); any other is
 * counted in the last slot, labelled "other". */
#define PHX_API_STATUS_LIST 200, 202, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503
#define PHX_API_STATUSES 14
_Static_assert(PHX_API_STATUSES == sizeof((int[]){PHX_API_STATUS_LIST}) / sizeof(int) + 1,
               "PHX_API_STATUSES: one slot per listed status, and one for any other");

/* Backend calls (metrics labels "type" and "outcome"). */
#define PHX_BCALL_MAP(X) X(CONNECT, "connect") X(JOIN, "join") X(EVENT, "event") X(LEAVE, "leave")
#define PHX_BOUT_MAP(X)                                                                            \
    X(OK, "ok")                   /* a 2xx answer of the right shape */                            \
    X(REFUSED, "refused")         /* the application said error (connect, join) */                 \
    X(STATUS, "http_status")      /* a status other than 2xx */                                    \
    X(TIMEOUT, "timeout")         /* no whole answer within backend_timeout_ms */                  \
    X(TRANSPORT, "transport")     /* refused connection, reset, closed mid-answer, bad HTTP */     \
    X(INVALID, "invalid")         /* not JSON, the wrong shape, or too large */                    \
    X(UNAVAILABLE, "unavailable") /* failed at once: breaker open, queue full */                   \
    X(DROPPED, "dropped")         /* answered after its socket or channel was gone */

typedef enum {
#define PHX_BCALL_ENUM(name, label) PHX_BCALL_##name,
    PHX_BCALL_MAP(PHX_BCALL_ENUM)
#undef PHX_BCALL_ENUM
        PHX_BCALL_COUNT
} phx_bcall_t;

typedef enum {
#define PHX_BOUT_ENUM(name, label) PHX_BOUT_##name,
    PHX_BOUT_MAP(PHX_BOUT_ENUM)
#undef PHX_BOUT_ENUM
        PHX_BOUT_COUNT
} phx_bout_t;

/* Backend call latency histogram bounds, in microseconds. */
#define PHX_BACKEND_BUCKETS 12

/* Fan-out time histogram bounds, in microseconds. */
#define PHX_FANOUT_BUCKETS 12

typedef struct phx_stats {
    uint64_t accepted;
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    uint64_t refused_connects;
    uint64_t refused[PHX_REFUSE_COUNT];
    uint64_t joins; /* channel joins accepted */
    uint64_t refused_joins[PHX_JOIN_REFUSE_COUNT];
    uint64_t api_requests[PHX_API_ROUTES][PHX_API_STATUSES];
    uint64_t slow_closes;
    uint64_t expired_sockets;   /* closed 4001 at their token's expiry */
    uint64_t token_refreshes;   /* access_token pushes accepted */
    uint64_t token_refusals;    /* access_token pushes refused (the socket closed 4001) */
    uint64_t joined_channels;   /* gauge */
    uint64_t presences;         /* gauge: metas tracked */
    uint64_t presence_diffs;    /* presence_diff broadcasts */
    uint64_t presence_refusals; /* tracks refused (bounds, bad meta) */
    uint64_t broadcasts;
    uint64_t fanout_hist[PHX_FANOUT_BUCKETS + 1]; /* last: +Inf */
    double fanout_sum_s;
    uint64_t fanout_count;
    /* backend calls */
    uint64_t backend_calls[PHX_BCALL_COUNT][PHX_BOUT_COUNT];
    uint64_t backend_hist[PHX_BACKEND_BUCKETS + 1]; /* last: +Inf */
    double backend_sum_s;
    uint64_t backend_count;
    uint64_t backend_inflight;      /* gauge */
    uint64_t backend_queued;        /* gauge: calls waiting for a connection */
    uint64_t backend_breakers_open; /* gauge: URLs failing fast now */
    uint64_t backend_breaker_trips; /* times a breaker opened */
    uint64_t backend_leave_batches; /* batch calls carrying several leaves */
} phx_stats_t;

static inline const char *phx_bcall_name(phx_bcall_t t)
{
    static const char *const names[PHX_BCALL_COUNT] = {
#define PHX_BCALL_LABEL(name, label) label,
        PHX_BCALL_MAP(PHX_BCALL_LABEL)
#undef PHX_BCALL_LABEL
    };
    return (unsigned)t < PHX_BCALL_COUNT ? names[t] : "?";
}

static inline const char *phx_bout_name(phx_bout_t o)
{
    static const char *const names[PHX_BOUT_COUNT] = {
#define PHX_BOUT_LABEL(name, label) label,
        PHX_BOUT_MAP(PHX_BOUT_LABEL)
#undef PHX_BOUT_LABEL
    };
    return (unsigned)o < PHX_BOUT_COUNT ? names[o] : "?";
}

/* The bounds of the backend latency histogram, in microseconds. */
static inline const uint64_t *phx_backend_bounds_us(void)
{
    static const uint64_t bounds[PHX_BACKEND_BUCKETS] = {
        250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};
    return bounds;
}

/* Counts `us` in a histogram of `nb` bounds (hist has nb + 1 slots, the last
 * +Inf), with its sum (seconds) and count. */
static inline void phx_hist_add(uint64_t *hist, const uint64_t *bounds_us, int nb, double *sum_s,
                                uint64_t *count, uint64_t us)
{
    int i = 0;
    while (i < nb && us > bounds_us[i])
        i++;
    hist[i]++;
    *sum_s += (double)us / 1e6;
    (*count)++;
}

static inline const char *phx_refuse_name(phx_refuse_t why)
{
    static const char *const names[PHX_REFUSE_COUNT] = {
#define PHX_REFUSE_LABEL(name, label) label,
        PHX_REFUSE_MAP(PHX_REFUSE_LABEL)
#undef PHX_REFUSE_LABEL
    };
    return (unsigned)why < PHX_REFUSE_COUNT ? names[why] : "?";
}

static inline const char *phx_join_refuse_name(phx_join_refuse_t why)
{
    static const char *const names[PHX_JOIN_REFUSE_COUNT] = {
#define PHX_JOIN_REFUSE_LABEL(name, label) label,
        PHX_JOIN_REFUSE_MAP(PHX_JOIN_REFUSE_LABEL)
#undef PHX_JOIN_REFUSE_LABEL
    };
    return (unsigned)why < PHX_JOIN_REFUSE_COUNT ? names[why] : "?";
}

/* The slot of an API status in api_requests (the last: any other). */
static inline int phx_api_status_slot(int status)
{
    static const int known[] = {PHX_API_STATUS_LIST};
    for (int i = 0; i < (int)(sizeof(known) / sizeof(known[0])); i++)
        if (known[i] == status)
            return i;
    return PHX_API_STATUSES - 1;
}

/* The status of a slot of api_requests (0: "other"). */
static inline int phx_api_slot_status(int slot)
{
    static const int known[] = {PHX_API_STATUS_LIST};
    return slot < (int)(sizeof(known) / sizeof(known[0])) ? known[slot] : 0;
}

/* Counts a refused connection and logs it: one info line with its one
 * reason, the peer's address and the transport ("-" where not known yet). */
static inline void phx_stats_refused(phx_stats_t *st, phx_refuse_t why, const char *peer,
                                     const char *transport)
{
    st->refused_connects++;
    st->refused[why]++;
    PHX_LOG_INFO("event=connect_refused reason=%s transport=%s peer=%s", phx_refuse_name(why),
                 transport ? transport : "-", peer && peer[0] ? peer : "-");
}

#endif /* PHX_COUNTERS_H */
