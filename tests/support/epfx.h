/* epfx.h: the endpoint half of the transport module tests (test_ws,
 * test_longpoll): a loopfx_t with a phx_endpoint_t on its loop, the test's
 * connect callback and one channel route "room:*", set up in the order the
 * layers need; and what the connect callbacks record. */
#ifndef PHX_TEST_EPFX_H
#define PHX_TEST_EPFX_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "loopfx.h"
#include "phx.h"

/* loopfx_begin, `tweak` on the configuration (may be NULL),
 * loopfx_loop_init, then the endpoint with `connect(c, user)` and `room`
 * on "room:*". The caller adds its transport's routes and listens. */
void epfx_start(loopfx_t *lf, phx_endpoint_t *ep, void (*tweak)(phx_config_t *),
                phx_connect_cb connect, void *user, const phx_channel_handler_t *room);

/* Counts one connect callback and records its transport name; true when
 * the client asks to be refused (?deny). */
bool epfx_note_connect(phx_connect_t *c, int *connects, char *transport, size_t cap);

#endif
