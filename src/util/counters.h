/* counters.h: the counters one loop keeps (connections, messages, bytes,
 * refusals, slow consumers, broadcasts and their fan-out time), read by
 * /metrics. Plain data: every layer adds to it, none owns it but the loop. */
#ifndef PHX_COUNTERS_H
#define PHX_COUNTERS_H

#include <stdint.h>

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
    X(CAPACITY, "capacity")                                                                        \
    X(DRAINING, "draining")

typedef enum {
#define PHX_REFUSE_ENUM(name, label) PHX_REFUSE_##name,
    PHX_REFUSE_MAP(PHX_REFUSE_ENUM)
#undef PHX_REFUSE_ENUM
        PHX_REFUSE_COUNT
} phx_refuse_t;

/* Fan-out time histogram bounds, in microseconds. */
#define PHX_FANOUT_BUCKETS 12

typedef struct phx_stats {
    uint64_t accepted;
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    uint64_t refused_connects;
    uint64_t refused[PHX_REFUSE_COUNT];
    uint64_t refused_joins;
    uint64_t slow_closes;
    uint64_t expired_sockets; /* closed 4001 at their token's expiry */
    uint64_t token_refreshes; /* access_token pushes accepted */
    uint64_t token_refusals;  /* access_token pushes refused (the socket closed 4001) */
    uint64_t joined_channels; /* gauge */
    uint64_t broadcasts;
    uint64_t fanout_hist[PHX_FANOUT_BUCKETS + 1]; /* last: +Inf */
    double fanout_sum_s;
    uint64_t fanout_count;
} phx_stats_t;

/* Counts a refused connection. */
static inline void phx_stats_refused(phx_stats_t *st, phx_refuse_t why)
{
    st->refused_connects++;
    st->refused[why]++;
}

#endif /* PHX_COUNTERS_H */
