/* policy.h: phxd's channel policy, written against the public channel API
 * like any embedder's handlers. Each channel rule (rules.h) becomes one
 * route whose join and handle_in follow the rule. Without rules phxd uses
 * its built-in policy, phx_rules_default():
 *   user:<id>  joins only for the socket whose user_id assign is <id>;
 *   room:*     joins for any connected socket;
 *   on both, "ping" replies with its payload and any other event is
 *   broadcast to the topic (sender included) and answered ok {}.
 * Topics no rule matches have no route: "unmatched topic". */
#ifndef PHX_POLICY_H
#define PHX_POLICY_H

#include "phx.h"
#include "rules.h"

/* Registers one route per rule, in order (the first match wins). Borrows
 * `rules`: it must outlive the server. Returns 0, PHX_ERR_NOMEM or
 * PHX_ERR_INVALID (a pattern the server refuses). */
int phx_policy_install_rules(phx_server_t *srv, const phx_rules_t *rules);

/* Registers the built-in policy: phx_policy_install_rules with
 * phx_rules_default(). Returns 0 or PHX_ERR_NOMEM. */
int phx_policy_install(phx_server_t *srv);

#endif /* PHX_POLICY_H */
