/* embed.c: a small program built on libphx. It serves Phoenix Channels on
 * 127.0.0.1 at an ephemeral port (printed on stdout), accepts every
 * connection, lets a client join any "echo:*" topic and replies to every
 * event with its own payload; SIGINT stops it cleanly. Build it against the
 * installed library with
 *   cc embed.c $(pkg-config --cflags --libs phx) -o embed */
#include <signal.h>
#include <stdio.h>
#include <uv.h>

#include "phx.h"

static uv_signal_t sigint;

static int on_connect(phx_connect_t *c, void *user)
{
    return PHX_CONNECT_OK; /* a real program checks a token here */
}

static phx_result_t on_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                            phx_reply_t *reply, void *user)
{
    return PHX_REPLY_OK;
}

static phx_result_t on_event(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                             phx_reply_t *reply, void *user)
{
    return phx_reply_set(reply, payload) == 0 ? PHX_REPLY_OK : PHX_CRASH;
}

static const phx_channel_handler_t echo = {.join = on_join, .handle_in = on_event};

static void stopped(phx_server_t *srv)
{
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    phx_server_stop(h->data, 1001, stopped);
}

int main(void)
{
    /* The header compiled against and the library run with must agree on
     * the ABI: the same major version (and minor, before 1.0), not older. */
    int lib = phx_version_num(), abi = PHX_VERSION_MAJOR == 0 ? 0xffff00 : 0xff0000;
    printf("libphx %s (header %s)\n", phx_version(), PHX_VERSION_STRING);
    if ((lib & abi) != (PHX_VERSION_NUM & abi) || lib < PHX_VERSION_NUM) {
        fprintf(stderr, "embed: libphx %s cannot run a program built for %s\n", phx_version(),
                PHX_VERSION_STRING);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0; /* any free port */
    phx_server_t *srv = NULL;
    char err[PHX_ERR_LEN] = "";
    int rv = phx_server_new(&srv, &loop, &cfg, err);
    if (rv == 0) {
        phx_server_on_connect(srv, on_connect, NULL);
        rv = phx_server_channel(srv, "echo:*", &echo, NULL);
    }
    if (rv == 0)
        rv = phx_server_start(srv, err);
    if (rv != 0) {
        fprintf(stderr, "embed: %s %s\n", phx_err_name(rv), err);
        return 1;
    }
    printf("port %d\n", phx_server_port(srv));
    fflush(stdout);
    uv_signal_init(&loop, &sigint);
    sigint.data = srv;
    uv_signal_start(&sigint, on_sigint, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    phx_server_free(srv);
    uv_loop_close(&loop);
    return 0;
}
