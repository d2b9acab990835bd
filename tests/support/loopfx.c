#include "loopfx.h"

#include <string.h>

#include "runner.h"

void loopfx_begin(loopfx_t *lf)
{
    memset(lf, 0, sizeof(*lf));
    ASSERT_EQ(uv_loop_init(&lf->uv), 0);
    phx_config_init(&lf->cfg);
}

void loopfx_loop_init(loopfx_t *lf)
{
    ASSERT_EQ(phx_loop_init(&lf->loop, &lf->uv, &lf->cfg), 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    loopfx_t *lf = l->data;
    ASSERT_EQ(status, 0);
    ASSERT_EQ(phx_conn_accept(&lf->loop, l, lf->init, lf->init_arg), 0);
}

void loopfx_listen(loopfx_t *lf, int (*init)(phx_conn_t *c, void *arg), void *arg)
{
    lf->init = init;
    lf->init_arg = arg;
    phx_loop_start(&lf->loop);
    ASSERT_EQ(uv_tcp_init(&lf->uv, &lf->listener), 0);
    lf->listener.data = lf;
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&lf->listener, (struct sockaddr *)&addr, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)&lf->listener, 16, on_connection), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&lf->listener, (struct sockaddr *)&bound, &len), 0);
    lf->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static int http_conn_init(phx_conn_t *c, void *router)
{
    return phx_http_conn_init(c, router);
}

void loopfx_listen_http(loopfx_t *lf, phx_router_t *router)
{
    loopfx_listen(lf, http_conn_init, router);
}

void loopfx_run_turns(loopfx_t *lf, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&lf->uv, UV_RUN_NOWAIT);
}

static void on_sleep_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

void loopfx_run_for(loopfx_t *lf, int ms)
{
    bool done = false;
    uv_timer_t t;
    uv_timer_init(&lf->uv, &t);
    t.data = &done;
    uv_timer_start(&t, on_sleep_timer, (uint64_t)ms, 0);
    while (!done)
        uv_run(&lf->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    loopfx_run_turns(lf, 1);
}

void loopfx_run_until(loopfx_t *lf, bool (*cond)(void *arg), void *arg)
{
    while (!cond(arg))
        uv_run(&lf->uv, UV_RUN_ONCE);
}

void loopfx_wait_conns(loopfx_t *lf)
{
    while (lf->loop.nconns > 0)
        uv_run(&lf->uv, UV_RUN_ONCE);
}

void loopfx_close_conns(loopfx_t *lf)
{
    for (int id = PHX_LIST_HTTP; id < PHX_LIST_COUNT; id++) {
        phx_conn_t *c;
        while ((c = phx_loop_list_first(&lf->loop, id)) != NULL)
            phx_conn_close(c, false);
    }
    loopfx_wait_conns(lf);
}

static void on_loop_closed(void *owner)
{
    ((loopfx_t *)owner)->loop_closed = true;
}

void loopfx_close(loopfx_t *lf)
{
    uv_close((uv_handle_t *)&lf->listener, NULL);
    lf->loop.owner = lf;
    lf->loop.on_closed = on_loop_closed;
    phx_loop_close(&lf->loop);
    uv_run(&lf->uv, UV_RUN_DEFAULT);
    ASSERT(lf->loop_closed);
}

void loopfx_dispose(loopfx_t *lf)
{
    phx_loop_dispose(&lf->loop);
    ASSERT_EQ(uv_loop_close(&lf->uv), 0);
}

void loopfx_client(loopfx_t *lf, rawclient_t *c)
{
    ASSERT_EQ(rawclient_connect(c, &lf->uv, lf->port), 0);
}
