/* fuzz_longpoll: LongPoll POST bodies through a real phx_server_t over
 * loopback: a GET opens a session, the input is POSTed to it (as
 * application/x-ndjson when the first byte is even: JSON lines, base64
 * binary lines, up to 100; otherwise as one message), then a GET collects
 * what the session buffered. Invariants: every response is a complete HTTP
 * response with a JSON body (or an empty body for 4xx/5xx); no crash or
 * leak; connections are released once the client is gone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"
#include "policy.h"
#include "rawclient.h"
#include "testtoken.h"
#include "server.h"
#include "fuzz.h"

static const char secret[] = "fuzz-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF";
static uv_loop_t loop;
static phx_server_t *srv;
static char user_token[512];

static void setup(void)
{
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = secret;
    cfg.longpoll_window_ms = 20;
    cfg.max_body_bytes = 65536;
    char err[PHX_ERR_LEN];
    CHECK(phx_server_new(&srv, &loop, &cfg, err) == 0);
    CHECK(phx_policy_install(srv) == 0);
    CHECK(phx_server_start(srv, err) == 0);
    phx_term_t *data;
    CHECK(phx_term_new_int(&data, 7) == 0);
    phx_max_age_t age = {PHX_MAX_AGE_INFINITY, 0, false};
    CHECK(test_token_sign(user_token, sizeof(user_token), secret, data, age) == 0);
}

/* Sends one request on a fresh connection and returns the whole response
 * (owned, NUL-terminated) once the server has closed or answered. */
static char *request(const char *head, const uint8_t *body, size_t body_len)
{
    rawclient_t c;
    CHECK(rawclient_connect(&c, &loop, phx_server_port(srv)) == 0);
    phx_buf_t out = {0};
    phx_buf_append_str(&out, head);
    if (body_len)
        phx_buf_append(&out, body, body_len);
    rawclient_write(&c, out.data, out.len, 0);
    phx_buf_dispose(&out);
    int status = rawclient_http_status(&c, 3000);
    CHECK(status == 200 || status == 400 || status == 413 || status == 500 || status == 503);
    /* Wait for the body (content-length) to arrive. */
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    char *resp = phx_strndup((const char *)c.in.data, c.in.len);
    rawclient_close(&c);
    return resp;
}

static bool server_idle(rawclient_t *c, void *arg)
{
    return srv->loop.nconns == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv == NULL)
        setup();
    if (size < 1)
        return 0;
    bool ndjson = (data[0] & 1) == 0;
    data++;
    size--;
    char head[1024];
    snprintf(head, sizeof(head),
             "GET /socket/longpoll?token=%s&vsn=2.0.0& HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n",
             user_token);
    char *open = request(head, NULL, 0);
    char *t = strstr(open, "\"token\":\"");
    CHECK(t != NULL);
    t += 9;
    char *end = strchr(t, '"');
    CHECK(end != NULL);
    *end = '\0';
    char session[512];
    snprintf(session, sizeof(session), "%s", t);
    phx_free(open);
    snprintf(head, sizeof(head),
             "POST /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             session, ndjson ? "application/x-ndjson" : "application/json", size);
    char *post = request(head, data, size);
    phx_free(post);
    snprintf(head, sizeof(head),
             "GET /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n",
             session);
    char *poll = request(head, NULL, 0);
    CHECK(strstr(poll, "\"status\":") != NULL);
    phx_free(poll);
    rawclient_t probe = {.loop = &loop};
    CHECK(rawclient_wait(&probe, server_idle, NULL, 5000));
    return 0;
}
