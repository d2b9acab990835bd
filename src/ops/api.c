/* api.c: server-side publishing over HTTP (see api.h). Request bodies are
 * checked with phxd's own JSON scanner and payloads are forwarded as the
 * bytes the backend sent (minified), so big integers survive. */
#include "api.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "pubsub.h"
#include "socket.h"

static bool path_eq(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

static void reply(phx_conn_t *c, int status, const char *json)
{
    phx_http_write(c, status, status == 401 ? "www-authenticate: Bearer\r\n" : NULL,
                   json ? "application/json" : NULL, json, json ? strlen(json) : 0,
                   PHX_HTTP_NO_CACHE);
}

static void reply_close(phx_conn_t *c, int status, const char *json)
{
    phx_http_write(c, status, status == 401 ? "www-authenticate: Bearer\r\n" : NULL,
                   "application/json", json, strlen(json), PHX_HTTP_NO_CACHE | PHX_HTTP_CLOSE);
}

static void bad_request(phx_conn_t *c, const char *why)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why);
    reply(c, 400, body);
}

/* The key under which both the given and the configured API key are
 * hashed before comparing: digests have one length whatever the keys'
 * lengths, so the comparison's time tells nothing about the configured
 * key, not even its length. Random, made once per process. */
static CRYPTO_ONCE mac_key_once = CRYPTO_ONCE_STATIC_INIT;
static uint8_t mac_key[32];
static bool is_mac_key_set;

static void mac_key_init(void)
{
    is_mac_key_set = RAND_bytes(mac_key, sizeof(mac_key)) == 1;
}

static bool key_digest(const char *key, uint8_t out[SHA256_DIGEST_LENGTH])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), mac_key, sizeof(mac_key), (const uint8_t *)key, strlen(key), out,
                &n) != NULL &&
           n == SHA256_DIGEST_LENGTH;
}

bool phx_api_key_ok(const phx_config_t *cfg, const char *authorization)
{
    const char *want = cfg->api_key;
    if (want == NULL || want[0] == '\0' || authorization == NULL ||
        strncmp(authorization, "Bearer ", 7) != 0)
        return false;
    /* Without a MAC key nothing can be compared safely: refuse. */
    if (!CRYPTO_THREAD_run_once(&mac_key_once, mac_key_init) || !is_mac_key_set)
        return false;
    uint8_t given_md[SHA256_DIGEST_LENGTH], want_md[SHA256_DIGEST_LENGTH];
    bool ok = key_digest(authorization + 7, given_md) && key_digest(want, want_md) &&
              CRYPTO_memcmp(given_md, want_md, sizeof(want_md)) == 0;
    OPENSSL_cleanse(want_md, sizeof(want_md));
    return ok;
}

static void broadcast(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_buf_t topic = {0}, event = {0}, bin = {0};
    phx_json_span_t raw;
    phx_payload_t payload = {(const uint8_t *)"{}", 2, false};
    const char *why = NULL;
    if (!phx_json_member(body, len, "topic", &topic, &raw) || topic.len == 0)
        why = "topic must be a non-empty string";
    else if (!phx_json_member(body, len, "event", &event, &raw) || event.len == 0)
        why = "event must be a non-empty string";
    else if (phx_json_member(body, len, "payload_base64", NULL, &raw) &&
             raw.type != PHX_JSON_STRING)
        why = "payload_base64 must be a string of standard base64";
    else if (phx_json_member(body, len, "payload_base64", &bin, &raw)) {
        phx_buf_t decoded = {0};
        if (phx_base64_decode(&decoded, (const char *)bin.data, bin.len) != 0) {
            phx_buf_dispose(&decoded);
            why = "payload_base64 must be standard base64";
        } else {
            phx_buf_dispose(&bin);
            bin = decoded;
            payload.data = bin.data ? bin.data : (const uint8_t *)"";
            payload.len = bin.len;
            payload.is_binary = true;
        }
    } else if (phx_json_member(body, len, "payload", NULL, &raw)) {
        if (raw.type != PHX_JSON_OBJECT)
            why = "payload must be an object";
        payload.data = raw.p;
        payload.len = raw.len;
    }
    if (why == NULL) {
        int n = phx_endpoint_broadcast(ep, (const char *)topic.data, topic.len,
                                       (const char *)event.data, &payload, 0, 0);
        if (n < 0) {
            why = "payload cannot be encoded";
        } else {
            char resp[48];
            snprintf(resp, sizeof(resp), "{\"recipients\":%d}", n);
            PHX_LOG_DEBUG("event=api_broadcast recipients=%d", n);
            reply(c, 202, resp);
        }
    }
    if (why)
        bad_request(c, why);
    phx_buf_dispose(&topic);
    phx_buf_dispose(&event);
    phx_buf_dispose(&bin);
}

static void disconnect(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_buf_t id = {0};
    phx_json_span_t raw;
    if (!phx_json_member(body, len, "id", &id, &raw) || id.len == 0) {
        bad_request(c, "id must be a non-empty string");
    } else if (!phx_socket_id_topic(ep, (const char *)id.data, id.len)) {
        /* A room is not an id: saying so beats telling its members
         * "disconnect", which is what a broadcast would have done. */
        bad_request(c, "id is not a socket id (users_socket:..., or the id of a connected socket)");
    } else {
        /* Only the sockets are told; nothing goes to the id's topic. */
        int n = phx_endpoint_broadcast(ep, (const char *)id.data, id.len, "disconnect", NULL, 0,
                                       PHX_ORIGIN_IDS_ONLY);
        char resp[48];
        snprintf(resp, sizeof(resp), "{\"sockets\":%d}", n);
        PHX_LOG_DEBUG("event=api_disconnect sockets=%d", n);
        reply(c, 202, resp);
    }
    phx_buf_dispose(&id);
}

void phx_api_request(phx_endpoint_t *ep, phx_conn_t *c, const char *path, size_t len)
{
    const phx_config_t *cfg = ep->cfg;
    phx_http_t *h = c->http;
    if (cfg->api_key == NULL || cfg->api_key[0] == '\0') {
        phx_http_write(c, 404, NULL, NULL, NULL, 0, 0);
        return;
    }
    bool is_broadcast = path_eq(path, len, "/api/broadcast");
    if (!is_broadcast && !path_eq(path, len, "/api/disconnect")) {
        reply(c, 404, NULL);
        return;
    }
    if (!phx_api_key_ok(cfg, phx_http_header(h, "authorization"))) {
        PHX_LOG_INFO("peer=%s event=api_refused reason=bad_key", c->peer);
        reply(c, 401, "{\"error\":\"a valid bearer key is required\"}");
        return;
    }
    if (phx_http_method(h) != HTTP_POST) {
        phx_http_write(c, 405, "allow: POST\r\n", NULL, NULL, 0, 0);
        return;
    }
    phx_json_limits_t lim = {.max_depth = (uint32_t)cfg->max_json_depth};
    size_t n = 0;
    uint8_t *body = h->body.data;
    if (body == NULL || phx_json_minify(body, h->body.len, &lim, &n) != 0) {
        bad_request(c, "the body must be a JSON object");
        return;
    }
    if (phx_json_type(body, n) != PHX_JSON_OBJECT) {
        bad_request(c, "the body must be a JSON object");
        return;
    }
    if (is_broadcast)
        broadcast(ep, c, body, n);
    else
        disconnect(ep, c, body, n);
}

/* The head of an API call: the key first (401 before any of the body is
 * read), then a POST's body is taken. */
static int route_head(phx_conn_t *c, void *user)
{
    phx_endpoint_t *ep = user;
    if (!phx_api_key_ok(ep->cfg, phx_http_header(c->http, "authorization"))) {
        PHX_LOG_INFO("peer=%s event=api_refused reason=bad_key", c->peer);
        reply_close(c, 401, "{\"error\":\"a valid bearer key is required\"}");
        return PHX_HEAD_ANSWERED;
    }
    return phx_http_method(c->http) == HTTP_POST ? PHX_HEAD_BODY : PHX_HEAD_NO_BODY;
}

static void route_handle(phx_conn_t *c, void *user)
{
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    phx_api_request(user, c, path, path_len);
}

int phx_api_add_routes(phx_router_t *r, phx_endpoint_t *ep)
{
    const phx_config_t *cfg = ep->cfg;
    if (cfg->api_key == NULL || cfg->api_key[0] == '\0')
        return 0; /* off: every /api/ path is 404 */
    phx_http_route_t rt = {
        .path = "/api/",
        .match = PHX_MATCH_PREFIX,
        .head = route_head,
        .handle = route_handle,
        .user = ep,
    };
    return phx_router_add(r, &rt);
}
