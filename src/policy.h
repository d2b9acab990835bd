/* policy.h: phxd's default channel policy (DESIGN.md section 2), written
 * against the public channel API like any embedder's handlers:
 *   user:<id>  joins only for the socket whose user_id assign is <id>;
 *   room:*     joins for any connected socket; "ping" replies with its
 *              payload; any other event is broadcast to the topic (sender
 *              included) and answered ok {}.
 * Other topics have no route: "unmatched topic". */
#ifndef PHX_POLICY_H
#define PHX_POLICY_H

#include "phx.h"

/* Registers the default routes on `srv`. Returns 0 or PHX_ERR_NOMEM. */
int phx_policy_install(phx_server_t *srv);

#endif /* PHX_POLICY_H */
