/* fuzz_registry: the topic/channel registry under random operation
 * sequences, through the real socket, channel and pubsub code with a fake
 * transport. Sockets join, leave, push and close; broadcasts go out from
 * the API and from channels; a socket may close itself from inside a
 * delivery (a slow consumer dropped mid-broadcast). Invariants, checked
 * against a naive model after every operation: the number of recipients of
 * a broadcast and the subscriber count of every topic; no use after free
 * (ASan) and nothing left allocated at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "phx.h"
#include "policy.h"
#include "pubsub.h"
#include "server.h"
#include "socket.h"
#include "fuzz.h"

#define NSOCK 8
#define NTOPIC 4

typedef struct fake {
    bool in_dispatch; /* a message of this socket is being handled */
    bool is_close_deferred;
    phx_socket_t *sock;
    bool is_open;
    bool close_on_send; /* closes itself inside its next delivery */
    bool joined[NTOPIC];
    unsigned received;
} fake_t;

static fake_t fakes[NSOCK];

/* Like the real transports, a socket closed while one of its own messages
 * is being handled is freed only when that handling returns. */
static void fake_closed(fake_t *f)
{
    if (!f->is_open)
        return;
    f->is_open = false;
    memset(f->joined, 0, sizeof(f->joined));
    if (f->in_dispatch) {
        f->is_close_deferred = true;
        return;
    }
    phx_socket_t *s = f->sock;
    f->sock = NULL;
    phx_socket_closed(s);
}

static int fake_send(void *t, phx_rcbuf_t *msg)
{
    fake_t *f = t;
    f->received++;
    phx_rcbuf_unref(msg);
    if (f->close_on_send)
        fake_closed(f);
    return 0;
}

static void fake_close(void *t, int code)
{
    fake_closed(t);
}

static const phx_transport_ops_t fake_ops = {
    .name = "fake",
    .send = fake_send,
    .close = fake_close,
    .supports_binary = true,
};

static void open_socket(phx_server_t *srv, int i)
{
    fake_t *f = &fakes[i];
    if (f->is_open || f->sock)
        return;
    phx_connect_t ci;
    phx_connect_init(&ci, &srv->ep, &fake_ops, "127.0.0.1", 1, "/", 1, "", 0, NULL, NULL);
    ci.fmt = PHX_FMT_V2_JSON;
    char uid[8];
    snprintf(uid, sizeof(uid), "%d", i);
    CHECK(phx_connect_assign(&ci, "user_id", uid) == 0);
    CHECK(phx_connect_set_id(&ci, "users_socket:shared") == 0);
    CHECK(phx_socket_new(&f->sock, &ci, f) == 0);
    phx_connect_dispose(&ci);
    phx_socket_t *s = f->sock;
    memset(f, 0, sizeof(*f));
    f->sock = s;
    f->is_open = true;
}

static void message(fake_t *f, const char *text)
{
    char buf[128];
    size_t n = strlen(text);
    memcpy(buf, text, n);
    f->in_dispatch = true;
    phx_socket_handle(f->sock, false, (uint8_t *)buf, n);
    f->in_dispatch = false;
    if (f->is_close_deferred) {
        f->is_close_deferred = false;
        phx_socket_t *s = f->sock;
        f->sock = NULL;
        phx_socket_closed(s);
    }
}

static size_t model_count(int t)
{
    size_t n = 0;
    for (int i = 0; i < NSOCK; i++)
        n += fakes[i].is_open && fakes[i].joined[t];
    return n;
}

static void check_counts(phx_server_t *srv)
{
    for (int t = 0; t < NTOPIC; t++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "room:%d", t);
        CHECK(phx_pubsub_subscriber_count(srv->ep.pubsub, topic, strlen(topic)) == model_count(t));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.max_channels = 3;
    phx_server_t *srv;
    char err[PHX_ERR_LEN];
    CHECK(phx_server_new(&srv, &loop, &cfg, err) == 0);
    CHECK(phx_policy_install(srv) == 0);
    memset(fakes, 0, sizeof(fakes));

    for (size_t k = 0; k + 1 < size && k < 512; k += 2) {
        int op = data[k] % 8, i = data[k + 1] % NSOCK, t = (data[k + 1] / NSOCK) % NTOPIC;
        fake_t *f = &fakes[i];
        char text[96];
        switch (op) {
        case 0:
            open_socket(srv, i);
            break;
        case 1: /* join (a duplicate join replaces the old instance) */
            if (!f->is_open)
                break;
            snprintf(text, sizeof(text), "[\"%zu\",\"%zu\",\"room:%d\",\"phx_join\",{}]", k, k, t);
            message(f, text);
            if (f->is_open) {
                int n = 0;
                for (int x = 0; x < NTOPIC; x++)
                    n += f->joined[x];
                if (f->joined[t] || n < 3)
                    f->joined[t] = true;
            }
            break;
        case 2: /* leave with a null join_ref */
            if (!f->is_open)
                break;
            snprintf(text, sizeof(text), "[null,\"%zu\",\"room:%d\",\"phx_leave\",{}]", k, t);
            message(f, text);
            f->joined[t] = false;
            break;
        case 3: { /* broadcast from the API */
            char topic[16];
            snprintf(topic, sizeof(topic), "room:%d", t);
            size_t want = model_count(t);
            phx_payload_t p = {(const uint8_t *)"{\"k\":1}", 7, false};
            int got = phx_endpoint_broadcast(&srv->ep, topic, strlen(topic), "ev", &p, 0, 0);
            CHECK(got >= 0 && (size_t)got == want);
            break;
        }
        case 4: /* a client event broadcast by the room policy */
            if (!f->is_open)
                break;
            snprintf(text, sizeof(text), "[null,\"%zu\",\"room:%d\",\"hi\",{\"a\":[1,2]}]", k, t);
            message(f, text);
            break;
        case 5:
            if (f->is_open)
                f->close_on_send = !f->close_on_send;
            break;
        case 6:
            if (f->is_open)
                fake_closed(f);
            break;
        case 7: { /* disconnect by socket id closes every socket at once */
            phx_payload_t p = {(const uint8_t *)"{}", 2, false};
            if (data[k + 1] % 16 == 0)
                phx_broadcast(srv, "users_socket:shared", "disconnect", &p);
            break;
        }
        }
        check_counts(srv);
    }
    for (int i = 0; i < NSOCK; i++)
        if (fakes[i].is_open)
            fake_closed(&fakes[i]);
    CHECK(phx_pubsub_topic_count(srv->ep.pubsub) == 0);
    phx_server_stop(srv, 1001, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    phx_server_free(srv);
    CHECK(uv_loop_close(&loop) == 0);
    return 0;
}
