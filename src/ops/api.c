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
#include "presence.h"
#include "pubsub.h"
#include "query.h"
#include "serializer.h"
#include "utf8.h"
#include "socket.h"

static bool path_eq(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* Counts an answer in phxd_api_requests_total, by route and status. */
static void api_count(phx_conn_t *c, int status)
{
    const char *path, *query;
    size_t len, query_len;
    phx_http_target(c->http, &path, &len, &query, &query_len);
    phx_api_route_t route = path_eq(path, len, "/api/broadcast")    ? PHX_API_BROADCAST
                            : path_eq(path, len, "/api/disconnect") ? PHX_API_DISCONNECT
                            : path_eq(path, len, "/api/presence")   ? PHX_API_PRESENCE
                                                                    : PHX_API_OTHER;
    c->loop->stats.api_requests[route][phx_api_status_slot(status)]++;
}

/* An answer without a body (404, 405), counted. */
static void reply_empty(phx_conn_t *c, int status, const char *headers)
{
    api_count(c, status);
    phx_http_write(c, status, headers, NULL, NULL, 0, 0);
}

static void reply(phx_conn_t *c, int status, const char *json)
{
    api_count(c, status);
    phx_http_write(c, status, status == 401 ? "www-authenticate: Bearer\r\n" : NULL,
                   json ? "application/json" : NULL, json, json ? strlen(json) : 0,
                   PHX_HTTP_NO_CACHE);
}

static void reply_close(phx_conn_t *c, int status, const char *json)
{
    api_count(c, status);
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

void phx_api_msg_dispose(phx_api_msg_t *m)
{
    phx_buf_dispose(&m->topic);
    phx_buf_dispose(&m->event);
    phx_buf_dispose(&m->bin);
}

/* The fields a body (or one message of a batch) may have; anything else is
 * refused rather than ignored (a silently dropped "except" excluded no
 * one). NULL-terminated. */
static const char *const broadcast_fields[] = {"topic", "event", "payload", "payload_base64", NULL};
static const char *const batch_fields[] = {"messages", NULL};
static const char *const disconnect_fields[] = {"id", NULL};

/* The first member of the (validated) object `obj` whose key is not in
 * `allowed`, or false. *key is its key's span (with quotes). */
static bool unknown_field(const uint8_t *obj, size_t len, const char *const *allowed,
                          phx_json_span_t *key)
{
    phx_json_iter_t it;
    phx_json_span_t val;
    if (phx_json_iter_init(&it, obj, len) != 0)
        return false;
    while (phx_json_iter_next(&it, key, &val)) {
        bool known = false;
        for (const char *const *f = allowed; *f && !known; f++)
            known = key->len == strlen(*f) + 2 && memcmp(key->p + 1, *f, key->len - 2) == 0;
        if (!known)
            return true;
    }
    return false;
}

/* 400 {"error":"<where>unknown field \"<key>\""}: the key decoded and
 * escaped again (cut at 64 bytes, on a UTF-8 boundary), so that whatever
 * the client sent comes back as valid JSON. */
static void refuse_unknown(phx_conn_t *c, const char *where, const phx_json_span_t *key)
{
    uint8_t name[64 + 4];
    size_t n = 0;
    bool has_nul;
    uint8_t *dec = phx_malloc(key->len);
    if (dec != NULL && phx_json_string_decode(key->p, key->len, dec, &n, &has_nul) == 0) {
        if (n > 64) {
            n = 64;
            while (n > 0 && (dec[n] & 0xc0) == 0x80)
                n--;
        }
        memcpy(name, dec, n);
    } else {
        n = 0;
    }
    phx_free(dec);
    phx_buf_t msg = {0}, body = {0};
    if (phx_buf_printf(&msg, "%sunknown field \"", where) == 0 &&
        phx_buf_append(&msg, name, n) == 0 && phx_buf_append_str(&msg, "\"") == 0 &&
        phx_buf_append_str(&body, "{\"error\":") == 0 &&
        phx_json_append_string(&body, msg.data, msg.len) == 0 &&
        phx_buf_append_str(&body, "}") == 0 && phx_buf_append_byte(&body, '\0') == 0)
        reply(c, 400, (const char *)body.data);
    else
        reply(c, 503, NULL);
    phx_buf_dispose(&msg);
    phx_buf_dispose(&body);
}

/* Reads one message (the body of a single broadcast, or one element of a
 * batch's "messages") into `m`. Returns NULL, or why it is refused; an
 * unknown field is reported through *unknown (and "" is returned). */
const char *phx_api_payload_parse(const uint8_t *obj, size_t len, phx_buf_t *bin,
                                  phx_payload_t *payload)
{
    phx_json_span_t raw;
    *payload = (phx_payload_t){(const uint8_t *)"{}", 2, false};
    if (phx_json_member(obj, len, "payload_base64", NULL, &raw)) {
        phx_buf_t text = {0};
        if (raw.type != PHX_JSON_STRING ||
            !phx_json_member(obj, len, "payload_base64", &text, &raw)) {
            phx_buf_dispose(&text); /* a decoded NUL leaves it allocated */
            return "payload_base64 must be a string of standard base64";
        }
        int rv = phx_base64_decode(bin, (const char *)text.data, text.len);
        phx_buf_dispose(&text);
        if (rv != 0)
            return "payload_base64 must be standard base64";
        *payload = (phx_payload_t){bin->data ? bin->data : (const uint8_t *)"", bin->len, true};
    } else if (phx_json_member(obj, len, "payload", NULL, &raw)) {
        if (raw.type != PHX_JSON_OBJECT)
            return "payload must be an object";
        *payload = (phx_payload_t){raw.p, raw.len, false};
    }
    return NULL;
}

const char *phx_api_msg_parse(const uint8_t *obj, size_t len, phx_api_msg_t *m,
                              phx_json_span_t *unknown)
{
    phx_json_span_t raw;
    m->payload = (phx_payload_t){(const uint8_t *)"{}", 2, false};
    if (unknown_field(obj, len, broadcast_fields, unknown))
        return "";
    if (!phx_json_member(obj, len, "topic", &m->topic, &raw) || m->topic.len == 0)
        return "topic must be a non-empty string";
    if (!phx_json_member(obj, len, "event", &m->event, &raw) || m->event.len == 0)
        return "event must be a non-empty string";
    /* phx_* and presence_* are the protocol's and phxd's own: a forged
     * phx_close or presence_diff would fool every member's phoenix.js. */
    if (phx_event_is_reserved((const char *)m->event.data, m->event.len))
        return "reserved event";
    const char *why = phx_api_payload_parse(obj, len, &m->bin, &m->payload);
    if (why)
        return why;
    /* What the encoder would refuse (a binary message's topic or event over
     * 255 bytes, text that is not UTF-8) is refused here, before anything
     * of a batch is sent. */
    phx_out_t out = {
        .kind = PHX_OUT_BROADCAST,
        .join_ref = phx_field_null(),
        .ref = phx_field_null(),
        .topic = phx_field_bytes(m->topic.data, m->topic.len),
        .event = phx_field_bytes(m->event.data, m->event.len),
        .status = phx_field_null(),
        .payload = m->payload.data,
        .payload_len = m->payload.len,
        .is_binary = m->payload.is_binary,
    };
    size_t size;
    if (phx_msg_encoded_size(PHX_FMT_V2_JSON, &out, &size) != 0)
        return "payload cannot be encoded";
    return NULL;
}

int phx_api_msg_send(phx_endpoint_t *ep, const phx_api_msg_t *m)
{
    return phx_endpoint_broadcast(ep, (const char *)m->topic.data, m->topic.len,
                                  (const char *)m->event.data, &m->payload, 0, 0);
}

static void broadcast_one(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_api_msg_t m = {0};
    phx_json_span_t key;
    const char *why = phx_api_msg_parse(body, len, &m, &key);
    if (why && *why == '\0') {
        refuse_unknown(c, "", &key);
    } else if (why) {
        bad_request(c, why);
    } else {
        int n = phx_api_msg_send(ep, &m);
        if (n < 0) {
            bad_request(c, "payload cannot be encoded");
        } else {
            char resp[48];
            snprintf(resp, sizeof(resp), "{\"recipients\":%d}", n);
            PHX_LOG_DEBUG("event=api_broadcast recipients=%d", n);
            reply(c, 202, resp);
        }
    }
    phx_api_msg_dispose(&m);
}

/* {"messages":[...]}: every message is read and checked first; only a
 * batch without a fault is sent, in order. */
static void broadcast_batch(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_json_span_t key, raw, el;
    if (unknown_field(body, len, batch_fields, &key)) {
        refuse_unknown(c, "", &key);
        return;
    }
    phx_json_member(body, len, "messages", NULL, &raw);
    if (raw.type != PHX_JSON_ARRAY) {
        bad_request(c, "messages must be an array of message objects");
        return;
    }
    phx_json_iter_t it;
    size_t count = 0;
    phx_json_iter_init(&it, raw.p, raw.len);
    while (phx_json_iter_next(&it, NULL, &el))
        count++;
    if (count == 0 || count > PHX_API_MAX_BATCH) {
        char why[96];
        snprintf(why, sizeof(why), "messages must hold 1 to %d messages, got %zu",
                 PHX_API_MAX_BATCH, count);
        bad_request(c, why);
        return;
    }
    phx_api_msg_t *msgs = phx_calloc(count, sizeof(*msgs));
    if (msgs == NULL) {
        reply(c, 503, NULL);
        return;
    }
    size_t i = 0;
    const char *why = NULL;
    phx_json_iter_init(&it, raw.p, raw.len);
    while (why == NULL && phx_json_iter_next(&it, NULL, &el)) {
        if (el.type != PHX_JSON_OBJECT)
            why = "must be an object";
        else
            why = phx_api_msg_parse(el.p, el.len, &msgs[i], &key);
        if (why == NULL)
            i++;
    }
    char where[32];
    snprintf(where, sizeof(where), "messages[%zu]: ", i);
    if (why && *why == '\0') {
        refuse_unknown(c, where, &key);
    } else if (why) {
        char msg[192];
        snprintf(msg, sizeof(msg), "%s%s", where, why);
        bad_request(c, msg);
    } else {
        long long recipients = 0;
        size_t failed = 0;
        for (i = 0; i < count; i++) {
            int n = phx_api_msg_send(ep, &msgs[i]);
            if (n < 0)
                failed++;
            else
                recipients += n;
        }
        char resp[96];
        if (failed) {
            PHX_LOG_WARN("event=api_broadcast_batch messages=%zu failed=%zu", count, failed);
            snprintf(resp, sizeof(resp), "{\"error\":\"%zu of %zu messages could not be sent\"}",
                     failed, count);
            reply(c, 503, resp);
        } else {
            snprintf(resp, sizeof(resp), "{\"recipients\":%lld,\"messages\":%zu}", recipients,
                     count);
            PHX_LOG_DEBUG("event=api_broadcast_batch messages=%zu recipients=%lld", count,
                          recipients);
            reply(c, 202, resp);
        }
    }
    for (size_t k = 0; k < count; k++)
        phx_api_msg_dispose(&msgs[k]);
    phx_free(msgs);
}

static void broadcast(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_json_span_t raw;
    if (phx_json_member(body, len, "messages", NULL, &raw))
        broadcast_batch(ep, c, body, len);
    else
        broadcast_one(ep, c, body, len);
}

static void disconnect(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *body, size_t len)
{
    phx_buf_t id = {0};
    phx_json_span_t raw, key;
    if (unknown_field(body, len, disconnect_fields, &key)) {
        refuse_unknown(c, "", &key);
    } else if (!phx_json_member(body, len, "id", &id, &raw) || id.len == 0) {
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

/* GET /api/presence?topic=T: {"topic":T,"presences":{...}} in the
 * presence_state shape. */
static void presence(phx_endpoint_t *ep, phx_conn_t *c)
{
    const char *path, *query;
    size_t len, query_len;
    phx_http_target(c->http, &path, &len, &query, &query_len);
    phx_query_t *q = NULL;
    const uint8_t *topic = NULL;
    size_t topic_len = 0;
    if (phx_query_parse(&q, query ? query : "", query ? query_len : 0, NULL) != 0 ||
        phx_query_get(q, "topic", 5, &topic, &topic_len) != PHX_QUERY_STRING || topic_len == 0 ||
        !phx_utf8_valid(topic, topic_len)) {
        phx_query_free(q);
        bad_request(c, "topic must be given: /api/presence?topic=T");
        return;
    }
    phx_buf_t b = {0};
    int rv = phx_buf_append_str(&b, "{\"topic\":");
    rv |= phx_json_append_string(&b, topic, topic_len);
    rv |= phx_buf_append_str(&b, ",\"presences\":");
    rv |= phx_presence_list_json(ep->presence, (const char *)topic, topic_len, &b);
    rv |= phx_buf_append_str(&b, "}");
    rv |= phx_buf_append_byte(&b, '\0');
    phx_query_free(q);
    if (rv != 0)
        reply(c, 503, NULL);
    else
        reply(c, 200, (const char *)b.data);
    phx_buf_dispose(&b);
}

void phx_api_request(phx_endpoint_t *ep, phx_conn_t *c, const char *path, size_t len)
{
    const phx_config_t *cfg = ep->cfg;
    phx_http_t *h = c->http;
    if (cfg->api_key == NULL || cfg->api_key[0] == '\0') {
        reply_empty(c, 404, NULL);
        return;
    }
    bool is_broadcast = path_eq(path, len, "/api/broadcast");
    bool is_presence = path_eq(path, len, "/api/presence");
    if (!is_broadcast && !is_presence && !path_eq(path, len, "/api/disconnect")) {
        reply(c, 404, NULL);
        return;
    }
    if (!phx_api_key_ok(cfg, phx_http_header(h, "authorization"))) {
        PHX_LOG_INFO("peer=%s event=api_refused reason=bad_key", c->peer);
        reply(c, 401, "{\"error\":\"a valid bearer key is required\"}");
        return;
    }
    if (is_presence) {
        int m = phx_http_method(h);
        if (m != HTTP_GET && m != HTTP_HEAD)
            reply_empty(c, 405, "allow: GET, HEAD\r\n");
        else
            presence(ep, c);
        return;
    }
    if (phx_http_method(h) != HTTP_POST) {
        reply_empty(c, 405, "allow: POST\r\n");
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
