/* presence_cluster.h: Presence across the nodes of a cluster (issue 12).
 *
 * Each node owns the presences of its own channels and replicates them to
 * the other nodes through the PubSub backend's node messages (pubsub.h;
 * over Redis: <prefix>:p to every node, <prefix>:n:<node> to one), in the
 * format of presence_msg.h:
 * - a delta per loop turn with changes: this node's joins and leaves, with
 *   a sequence number that grows by one per delta (and also when a delta
 *   could not be sent: the link was down);
 * - a heartbeat every PHX_PCLUSTER_HEARTBEAT_MS: the last sequence number
 *   and the count of this node's presences;
 * - a state request, to every node when the link comes up (a node that
 *   starts late, or after a Redis reconnect) and to one node whose
 *   messages show a gap (an unknown node or incarnation, a sequence number
 *   that skipped, a count that differs): the node answers with its whole
 *   state, in parts, to the asker's node channel;
 * - a goodbye when this node closes its link cleanly (phx_server_stop, a
 *   drain's end): its presences leave every other node at once.
 * A node not heard from for PHX_PCLUSTER_DOWN_MS (three heartbeats) is down:
 * its presences leave with the normal diffs. Redis pub/sub is at most once:
 * whatever a lost message carried is repaired by the next heartbeat's
 * state request.
 *
 * Every node holds the merged view in presence.c (other nodes' metas under
 * one source each), so presence_state, presence_diff and GET /api/presence
 * answer for the cluster; each node makes the diffs for its own
 * subscribers, so no diff crosses nodes. Messages from other nodes are
 * bounded like client input: a message over the size bound or malformed is
 * dropped and counted, joins beyond the presence bounds are refused and
 * counted, and at most PHX_PCLUSTER_MAX_NODES nodes are tracked. */
#ifndef PHX_PRESENCE_CLUSTER_H
#define PHX_PRESENCE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"

struct phx_endpoint;

#define PHX_PCLUSTER_HEARTBEAT_MS 4000
/* Silence after which a node is down: three heartbeats missed, so a node
 * killed right after a heartbeat leaves the others within about 12 s. */
#define PHX_PCLUSTER_DOWN_MS 12000
/* A state request unanswered for this long is sent again. */
#define PHX_PCLUSTER_RETRY_MS 2000
/* One node is sent this node's whole state at most once per this. */
#define PHX_PCLUSTER_ANSWER_MS 1000
#define PHX_PCLUSTER_MAX_NODES 1024
/* Ops bytes of one delta or state part, about (a part holds at least one). */
#define PHX_PCLUSTER_CHUNK (256u * 1024)

typedef struct phx_pcluster_stats {
    uint64_t msgs_in;     /* node messages accepted from other nodes */
    uint64_t msgs_out;    /* sent (handed to the backend) */
    uint64_t dropped;     /* malformed, over the bounds, from a conflicting node or unsendable */
    uint64_t refused;     /* other nodes' joins refused by the presence bounds */
    uint64_t state_reqs;  /* state requests sent */
    uint64_t states_sent; /* whole states sent (answers) */
    uint64_t nodes_down;  /* nodes declared down after silence */
    uint64_t goodbyes;    /* nodes that said goodbye */
} phx_pcluster_stats_t;

/* Creates the replication of `p` (a handler of ep's PubSub's node
 * messages). Returns 0 or PHX_ERR_NOMEM. */
int phx_pcluster_new(phx_pcluster_t **out, phx_presence_t *p, struct phx_endpoint *ep);
/* Frees the node records (their metas are presence.c's) and unregisters.
 * NULL is a no-op. */
void phx_pcluster_free(phx_pcluster_t *c);

/* presence.c: a local meta joined or left (op borrowed). */
void phx_pcluster_note(phx_pcluster_t *c, const struct phx_pmsg_op *op);
/* presence.c's hooks: sends the pending delta (once per loop turn); on the
 * deadline timer, sends what is due (heartbeat, state requests again) and
 * declares silent nodes down. Returns when it needs the timer next (0:
 * never). */
void phx_pcluster_before_flush(phx_pcluster_t *c);
uint64_t phx_pcluster_tick(phx_pcluster_t *c, uint64_t now);

/* Counts for /metrics. */
const phx_pcluster_stats_t *phx_pcluster_stats(const phx_pcluster_t *c);
/* Other nodes known alive. */
size_t phx_pcluster_node_count(const phx_pcluster_t *c);
/* Calls `fn` with each live node's name and the presences held for it. */
void phx_pcluster_foreach_node(const phx_pcluster_t *c,
                               void (*fn)(void *arg, const char *node, size_t metas), void *arg);

#endif /* PHX_PRESENCE_CLUSTER_H */
