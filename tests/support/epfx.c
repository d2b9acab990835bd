#include "epfx.h"

#include <stdio.h>

#include "runner.h"

void epfx_start(loopfx_t *lf, phx_endpoint_t *ep, void (*tweak)(phx_config_t *),
                phx_connect_cb connect, void *user, const phx_channel_handler_t *room)
{
    loopfx_begin(lf);
    if (tweak)
        tweak(&lf->cfg);
    loopfx_loop_init(lf);
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_endpoint_init(ep, &lf->loop, &lf->cfg, err), 0);
    phx_endpoint_on_connect(ep, connect, user);
    ASSERT_EQ(phx_endpoint_add_route(ep, "room:*", room, NULL), 0);
}

bool epfx_note_connect(phx_connect_t *c, int *connects, char *transport, size_t cap)
{
    (*connects)++;
    snprintf(transport, cap, "%s", phx_connect_transport(c));
    return phx_connect_param(c, "deny") != NULL;
}
