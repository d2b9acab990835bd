/* main.c: the only main(). Routes every allocator through phx_malloc,
 * ignores SIGPIPE, dispatches the `token` and `publish` subcommands, reads
 * the options (`check-config` prints them), runs the server with the
 * channel rules (or phxd's built-in policy), prints the banner and stops
 * cleanly on SIGTERM (a drain: sockets closed with 1012) or SIGINT (one step:
 * 1001), exit 0. SIGHUP reloads the TLS certificate and key. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "config.h"
#include "demo.h"
#include "etf.h"
#include "log.h"
#include "man.h"
#include "mem.h"
#include "phx.h"
#include "policy.h"
#include "publish_cli.h"
#include "token.h"
#include "token_cli.h"

/* The close code of a graceful drain: 1012 (service restart), Phoenix's
 * drainer's since 1.8.8. */
#define PHXD_DRAIN_CODE 1012

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm, sighup;
    phx_server_t *srv;
    phxd_options_t *opts;
    int signals;
} app_t;

static void *ossl_malloc(size_t n, const char *file, int line)
{
    return phx_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    return phx_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    phx_free(p);
}

static void install_allocators(void)
{
    /* Before any other libuv or OpenSSL call: every allocation they make goes
     * through phx_malloc from the first one on. */
    uv_replace_allocator(phx_malloc, phx_realloc, phx_calloc, phx_free);
    CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}

static void on_signal_closed(uv_handle_t *h)
{
}

static app_t the_app;

static void server_stopped(phx_server_t *srv)
{
    uv_close((uv_handle_t *)&the_app.sigint, on_signal_closed);
    uv_close((uv_handle_t *)&the_app.sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&the_app.sighup, on_signal_closed);
}

/* SIGHUP: reload the TLS certificate and key (new connections get them,
 * open ones keep theirs). Handled with or without TLS, since SIGHUP's
 * default action would end the process. */
static void on_sighup(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    char err[PHX_ERR_LEN] = "";
    int rv = phx_server_reload_tls(app->srv, err);
    if (rv == 0)
        PHX_LOG_INFO("event=tls_reloaded cert=%s key=%s", app->opts->cfg.tls_cert,
                     app->opts->cfg.tls_key);
    else if (rv == PHX_ERR_STATE)
        PHX_LOG_INFO("event=sighup msg=\"TLS is off: nothing to reload\"");
    else
        PHX_LOG_WARN("event=tls_reload_failed msg=\"%s; the previous certificate stays in use\"",
                     err);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (++app->signals > 1) {
        PHX_LOG_WARN("event=shutdown_forced signal=%d", signum);
        exit(1);
    }
    PHX_LOG_INFO("event=shutdown signal=%s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    /* SIGTERM drains in batches with 1012 (service restart), as Phoenix's
     * drainer does since 1.8.8; SIGINT closes everything in one step with
     * 1001 (going away), as Bandit does when it stops without a drainer.
     * phoenix.js reconnects on both (docs/protocol.md §6.2). */
    const phxd_options_t *o = app->opts;
    if (signum == SIGTERM)
        phx_server_drain(app->srv, PHXD_DRAIN_CODE, (size_t)o->drain_batch, o->drain_interval_ms,
                         o->drain_timeout_ms, server_stopped);
    else
        phx_server_drain(app->srv, 1001, 0, 0, o->drain_timeout_ms, server_stopped);
}

/* Every socket is a descriptor: use all the process may have, and keep a
 * reserve for logs, timers and the listener. */
static void raise_fd_limit(phxd_options_t *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o->cfg.max_connections == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
        o->cfg.max_connections = (int)(rl.rlim_cur - 64);
}

/* `phxd check-config [options]`: reads the options as a start would, then
 * builds (without starting) a server with the channel rules, so that
 * whatever phx_server_new refuses is refused here too, and prints the
 * effective configuration. Exit 0, or one line on stderr and exit 2. */
static int check_config(int argc, char **argv)
{
    phxd_options_t opts;
    phxd_options_init(&opts);
    char err[PHX_ERR_LEN] = "";
    bool help = false;
    int rv = phxd_options_parse(&opts, argc, argv, 2, NULL, &help, err);
    if (rv == 0 && help) {
        phxd_options_help(stdout);
        phxd_options_dispose(&opts);
        return 0;
    }
    if (rv == 0 && (rv = phxd_options_check_secret(&opts, err)) == 0) {
        phx_log_level = opts.log_level;
        raise_fd_limit(&opts);
        uv_loop_t loop;
        uv_loop_init(&loop);
        phx_server_t *srv = NULL;
        rv = phx_server_new(&srv, &loop, &opts.cfg, err);
        if (rv == 0 && (rv = phx_policy_install_rules(srv, phxd_options_rules(&opts))) != 0)
            snprintf(err, PHX_ERR_LEN, "cannot install the channel rules: %s", phx_strerror(rv));
        if (srv != NULL) {
            phx_server_stop(srv, 1001, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
            phx_server_free(srv);
        }
        uv_loop_close(&loop);
    }
    if (rv == 0)
        phxd_options_print(&opts, stdout);
    else
        fprintf(stderr, "phxd: %s\n", err);
    phxd_options_dispose(&opts);
    return rv == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    install_allocators();
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return phx_token_cli(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("phxd %s\n", PHX_VERSION);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "options-markdown") == 0) {
        phxd_options_markdown(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "options-man") == 0) {
        phxd_man_page(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "publish") == 0)
        return phx_publish_cli(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "presence") == 0)
        return phx_presence_cli(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "check-config") == 0)
        return check_config(argc, argv);
    /* The server's rules point into `opts`: it lives until main returns. */
    phxd_options_t opts;
    phxd_options_init(&opts);
    char err[PHX_ERR_LEN] = "";
    bool help = false;
    if (phxd_options_parse(&opts, argc, argv, 1, NULL, &help, err) != 0) {
        fprintf(stderr, "phxd: %s\n", err);
        phxd_options_dispose(&opts);
        return 2;
    }
    if (help) {
        phxd_options_help(stdout);
        phxd_options_dispose(&opts);
        return 0;
    }
    if (phxd_options_check_secret(&opts, err) != 0) {
        fprintf(stderr, "phxd: %s\n", err);
        phxd_options_dispose(&opts);
        return 2;
    }
    phx_log_level = opts.log_level;
    raise_fd_limit(&opts);
    /* A short secret and the demo secret off loopback were refused above. */
    if (opts.is_demo_secret)
        PHX_LOG_WARN("event=demo_secret msg=\"no --secret-key-base or SECRET_KEY_BASE given: "
                     "using the public demo secret (loopback only); never use it in production\"");

    app_t *app = &the_app;
    app->opts = &opts;
    uv_loop_init(&app->loop);
    int rv = phx_server_new(&app->srv, &app->loop, &opts.cfg, err);
    if (rv != 0) {
        fprintf(stderr, "phxd: %s\n", err);
        return 2;
    }
    if ((rv = phx_policy_install_rules(app->srv, phxd_options_rules(&opts))) != 0) {
        fprintf(stderr, "phxd: cannot install the channel rules: %s\n", phx_strerror(rv));
        return rv == PHX_ERR_NOMEM ? 1 : 2;
    }
    char *demo_token = opts.is_demo_secret ? phxd_demo_token(&opts) : NULL;
    if (opts.demo_page && phxd_demo_install(app->srv, &opts, demo_token, err) != 0) {
        fprintf(stderr, "phxd: %s\n", err);
        phx_free(demo_token);
        return 1;
    }
    if ((rv = phx_server_start(app->srv, err)) != 0) {
        fprintf(stderr, "phxd: %s\n", err);
        phx_free(demo_token);
        phx_server_stop(app->srv, 1001, NULL);
        uv_run(&app->loop, UV_RUN_DEFAULT);
        phx_server_free(app->srv);
        uv_loop_close(&app->loop);
        return 1;
    }
    uv_signal_init(&app->loop, &app->sigint);
    uv_signal_init(&app->loop, &app->sigterm);
    uv_signal_init(&app->loop, &app->sighup);
    app->sigint.data = app->sigterm.data = app->sighup.data = app;
    uv_signal_start(&app->sighup, on_sighup, SIGHUP);
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);

    const char *host = opts.cfg.host;
    bool v6 = strchr(host, ':') != NULL;
    int port = phx_server_port(app->srv);
    bool tls = opts.cfg.tls_cert != NULL;
    printf("phxd %s listening on %s://%s%s%s:%d\n", PHX_VERSION, tls ? "https" : "http",
           v6 ? "[" : "", host, v6 ? "]" : "", port);
    printf("socket: %s://%s%s%s:%d%s/websocket\n", tls ? "wss" : "ws", v6 ? "[" : "", host,
           v6 ? "]" : "", port, opts.cfg.socket_path);
    if (opts.cfg.api_listen) {
        const char *colon = strrchr(opts.cfg.api_listen, ':');
        printf("api: %s://%.*s:%d (/api/, /healthz, /metrics)\n", tls ? "https" : "http",
               (int)(colon - opts.cfg.api_listen), opts.cfg.api_listen,
               phx_server_api_port(app->srv));
    }
    phxd_demo_banner(stdout, &opts, port, demo_token);
    fflush(stdout);
    PHX_LOG_INFO("event=listening host=%s port=%d", host, port);

    uv_run(&app->loop, UV_RUN_DEFAULT);
    phx_free(demo_token);
    phx_server_free(app->srv);
    phxd_options_dispose(&opts);
    rv = uv_loop_close(&app->loop);
    if (rv != 0) {
        PHX_LOG_ERROR("event=loop_not_closed error=%s", uv_err_name(rv));
        return 1;
    }
    PHX_LOG_INFO("event=stopped");
    return 0;
}
