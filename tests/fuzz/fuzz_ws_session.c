/* fuzz_ws_session: a whole WebSocket session against a real phx_server_t
 * on this process's loop, over loopback TCP, with production code and small
 * limits (4 KiB messages, 16 fragments). The input is either raw bytes sent
 * after the upgrade (first byte odd), or a list of frames that the harness
 * masks (first byte even: records of [fin|rsv|opcode] [length] [payload]),
 * so that the fuzzer reaches the Phoenix layer. Bytes go out in chunks of
 * 1-8 bytes chosen by the second byte. Invariants: no crash, no leak, and
 * the server frees the connection once the client has gone (nconns == 0). */
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
static phx_buf_t upgrade;

static void setup(void)
{
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = secret;
    cfg.max_message_bytes = 4096;
    cfg.max_fragments = 16;
    cfg.close_timeout_ms = 200;
    char err[PHX_ERR_LEN];
    CHECK(phx_server_new(&srv, &loop, &cfg, err) == 0);
    CHECK(phx_policy_install(srv) == 0);
    CHECK(phx_server_start(srv, err) == 0);
    phx_term_t *data;
    CHECK(phx_term_new_int(&data, 7) == 0);
    char tok[512];
    phx_max_age_t age = {PHX_MAX_AGE_INFINITY, 0, false};
    CHECK(test_token_sign(tok, sizeof(tok), secret, data, age) == 0);
    char query[600];
    snprintf(query, sizeof(query), "token=%s&vsn=2.0.0", tok);
    ws_upgrade_request(&upgrade, query);
}

static bool server_idle(rawclient_t *c, void *arg)
{
    return srv->loop.nconns == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv == NULL)
        setup();
    if (size < 2)
        return 0;
    bool raw = data[0] & 1;
    size_t chunk = (size_t)(data[1] % 8) + 1;
    data += 2;
    size -= 2;
    phx_buf_t out = {0};
    phx_buf_append(&out, upgrade.data, upgrade.len);
    if (raw) {
        phx_buf_append(&out, data, size);
    } else {
        size_t k = 0;
        while (k + 2 <= size) {
            uint8_t head = data[k];
            size_t len = data[k + 1];
            k += 2;
            if (len > size - k)
                len = size - k;
            uint8_t frame[300];
            size_t n = ws_client_frame(frame, head & 0x0f, (head & 0x80) != 0, data + k, len);
            frame[0] |= head & 0x70; /* reserved bits as the input says */
            phx_buf_append(&out, frame, n);
            k += len;
        }
    }
    rawclient_t c;
    CHECK(rawclient_connect(&c, &loop, phx_server_port(srv)) == 0);
    rawclient_write(&c, out.data, out.len, chunk);
    phx_buf_dispose(&out);
    for (int i = 0; i < 8; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    rawclient_close(&c);
    /* The server must let go of the connection soon after the client. */
    rawclient_t probe = {.loop = &loop};
    CHECK(rawclient_wait(&probe, server_idle, NULL, 5000));
    return 0;
}
