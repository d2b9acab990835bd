/* origin.h: check_origin with Phoenix's semantics (docs/protocol.md §1.6). Pure:
 * parses the configured policy once, then decides for each request from
 * its Origin header and its own Host header. */
#ifndef PHX_ORIGIN_H
#define PHX_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct phx_origin_policy phx_origin_policy_t;

/* Parses a policy:
 *   "true"   the Origin's host must equal `url_host` when given, else the
 *            host the request was sent to (its Host header); scheme and
 *            port are not compared (Phoenix's check_origin: true);
 *   "false"  every origin is allowed;
 *   "conn"   scheme, host and port must equal the request's own;
 *   a comma-separated list of patterns such as "https://app.example.com",
 *   "//" "*.example.com" (a wildcard), "//localhost:4000": a missing scheme or port means
 *   any, a scheme without a port pins the scheme's default port, and
 *   "*.example.com" matches example.com and its subdomains.
 * Copies its arguments. Returns an owned policy (phx_origin_free) or NULL
 * with one line in `err` (PHX_ERR_LEN bytes). */
phx_origin_policy_t *phx_origin_parse(const char *spec, const char *url_host, char *err);
void phx_origin_free(phx_origin_policy_t *p);
/* True for "false": the Origin header is not looked at at all. */
bool phx_origin_is_off(const phx_origin_policy_t *p);

/* Whether a request may proceed. `origin` is the first Origin header or
 * NULL (allowed: not a browser); `host` is the request's Host header (may be
 * NULL); `is_tls` the request's scheme (https/wss). An Origin without a host
 * ("null") is refused by every policy but "false". */
bool phx_origin_allowed(const phx_origin_policy_t *p, const char *origin, const char *host,
                        bool is_tls);

/* The parts of an origin URI, for tests: scheme lower-cased, host without
 * IPv6 brackets, port defaulted from the scheme (0 when unknown). Returns
 * false when there is no host. Writes into the caller's buffers. */
bool phx_origin_split(const char *uri, char *scheme, size_t scheme_cap, char *host, size_t host_cap,
                      int *port);

#endif /* PHX_ORIGIN_H */
