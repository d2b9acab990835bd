/* loopfx.h: the fixture of the module tests that run a layer without a
 * server: a libuv loop with a phx_loop_t on it, a loopback listener whose
 * connections are adopted with phx_conn_accept into a given init callback,
 * helpers that run the loop (some turns, for a while, until a condition),
 * and the set-up and teardown in the order the layers need. */
#ifndef PHX_TEST_LOOPFX_H
#define PHX_TEST_LOOPFX_H

#include <stdbool.h>

#include <uv.h>

#include "http.h"
#include "loop.h"
#include "phx.h"
#include "rawclient.h"
#include "tcp.h"

typedef struct loopfx {
    uv_loop_t uv;
    phx_config_t cfg;
    phx_loop_t loop;
    uv_tcp_t listener;
    int port;
    bool loop_closed;
    /* what accepted connections are given to */
    int (*init)(phx_conn_t *c, void *arg);
    void *init_arg;
} loopfx_t;

/* Zeroes `lf`, initializes the libuv loop and a default configuration (the
 * caller may change lf->cfg before loopfx_loop_init). */
void loopfx_begin(loopfx_t *lf);
/* phx_loop_init on lf->uv with lf->cfg. */
void loopfx_loop_init(loopfx_t *lf);
/* Starts the phx_loop_t and listens on 127.0.0.1 (lf->port, any free port);
 * every connection is accepted into `init(c, arg)`. */
void loopfx_listen(loopfx_t *lf, int (*init)(phx_conn_t *c, void *arg), void *arg);

/* loopfx_listen into phx_http_conn_init with `router`, as server.c's
 * conn_init does. */
void loopfx_listen_http(loopfx_t *lf, phx_router_t *router);

/* Runs `n` non-blocking turns. */
void loopfx_run_turns(loopfx_t *lf, int n);
/* Runs the loop for about `ms` (loop time), then one more turn. */
void loopfx_run_for(loopfx_t *lf, int ms);
/* Runs the loop one turn at a time until `cond(arg)` holds. */
void loopfx_run_until(loopfx_t *lf, bool (*cond)(void *arg), void *arg);
/* Runs the loop until no connection is left. */
void loopfx_wait_conns(loopfx_t *lf);
/* Closes every connection on the loop's lists and waits for them to go. */
void loopfx_close_conns(loopfx_t *lf);
/* Closes the listener and the phx_loop_t, runs the loop until it has
 * nothing left and checks that the loop reported itself closed. */
void loopfx_close(loopfx_t *lf);
/* Disposes the phx_loop_t and closes the libuv loop (which must be empty). */
void loopfx_dispose(loopfx_t *lf);

/* Connects a raw client to the listener (running the loop until connected). */
void loopfx_client(loopfx_t *lf, rawclient_t *c);

#endif
