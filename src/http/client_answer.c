/* client_answer.c: the HTTP client's answer parser (see client.h,
 * phx_httpc_parser_t): llhttp in response mode with bounds on the head and
 * the whole answer. Pure: the pool feeds it, and so does the fuzz target. */
#include "client.h"

#include <string.h>

#include "phx.h"

/* ---- the answer parser ---- */

static phx_httpc_parser_t *parser_of(llhttp_t *p)
{
    return p->data;
}

/* A data callback's failure: the cause is kept, llhttp stops. */
static int parser_fail(llhttp_t *p, int err, const char *reason)
{
    parser_of(p)->error = err;
    llhttp_set_error_reason(p, reason);
    return HPE_USER;
}

static int parser_count_head(llhttp_t *p, size_t len)
{
    phx_httpc_parser_t *ps = parser_of(p);
    ps->head_bytes += len;
    if (ps->head_bytes > ps->max_header_bytes)
        return parser_fail(p, PHX_ERR_LIMIT, "answer head too large");
    return 0;
}

static int parser_on_head_data(llhttp_t *p, const char *at, size_t len)
{
    return parser_count_head(p, len);
}

static int parser_on_headers_complete(llhttp_t *p)
{
    phx_httpc_parser_t *ps = parser_of(p);
    int status = llhttp_get_status_code(p);
    /* A notification callback cannot keep a reason: the cause is kept in
     * the parser and -1 stops llhttp. */
    if (status < 100 || status == 101) {
        ps->error = PHX_ERR_PROTO;
        return -1;
    }
    if (!(p->flags & F_CHUNKED) && (p->flags & F_CONTENT_LENGTH) &&
        p->content_length > ps->max_bytes) {
        ps->error = PHX_ERR_LIMIT;
        return -1;
    }
    /* A declared length within the bound: the body's room at once. */
    if (status >= 200 && !(p->flags & F_CHUNKED) && (p->flags & F_CONTENT_LENGTH) &&
        phx_buf_reserve(&ps->body, ps->body.len + (size_t)p->content_length) != 0) {
        ps->error = PHX_ERR_NOMEM;
        return -1;
    }
    return 0;
}

static int parser_on_body(llhttp_t *p, const char *at, size_t len)
{
    phx_httpc_parser_t *ps = parser_of(p);
    if (len > ps->max_bytes || ps->body.len > ps->max_bytes - len)
        return parser_fail(p, PHX_ERR_LIMIT, "answer body too large");
    if (phx_buf_append(&ps->body, at, len) != 0)
        return parser_fail(p, PHX_ERR_NOMEM, "out of memory");
    return 0;
}

static int parser_on_message_complete(llhttp_t *p)
{
    phx_httpc_parser_t *ps = parser_of(p);
    int status = llhttp_get_status_code(p);
    /* An interim answer (100 Continue, 103 Early Hints): the final one
     * follows on the same connection. */
    if (status / 100 == 1)
        return 0;
    ps->status = status;
    ps->is_complete = true;
    ps->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* One answer per request: stop right after it. */
    return HPE_PAUSED;
}

/* Read only, shared by every parser; unnamed fields are NULL. */
static const llhttp_settings_t parser_settings = {
    .on_status = parser_on_head_data,
    .on_header_field = parser_on_head_data,
    .on_header_value = parser_on_head_data,
    .on_headers_complete = parser_on_headers_complete,
    .on_body = parser_on_body,
    .on_message_complete = parser_on_message_complete,
};

void phx_httpc_parser_init(phx_httpc_parser_t *ps, size_t max_bytes, size_t max_header_bytes)
{
    memset(ps, 0, sizeof(*ps));
    ps->max_bytes = max_bytes;
    ps->max_header_bytes = max_header_bytes;
    llhttp_init(&ps->_p, HTTP_RESPONSE, &parser_settings);
    ps->_p.data = ps;
}

void phx_httpc_parser_reset(phx_httpc_parser_t *ps)
{
    phx_buf_t body = ps->body;
    body.len = 0;
    if (body.cap > 65536)
        phx_buf_dispose(&body);
    phx_httpc_parser_init(ps, ps->max_bytes, ps->max_header_bytes);
    ps->body = body;
}

void phx_httpc_parser_dispose(phx_httpc_parser_t *ps)
{
    phx_buf_dispose(&ps->body);
}

int phx_httpc_parser_feed(phx_httpc_parser_t *ps, const uint8_t *data, size_t len, size_t *used)
{
    *used = len;
    if (ps->error)
        return ps->error;
    if (ps->is_complete) {
        *used = 0;
        return 1;
    }
    if (len == 0)
        return 0;
    llhttp_errno_t e = llhttp_execute(&ps->_p, (const char *)data, len);
    if (e == HPE_PAUSED && ps->is_complete) {
        const char *pos = llhttp_get_error_pos(&ps->_p);
        if (pos >= (const char *)data && pos <= (const char *)data + len)
            *used = (size_t)((const uint8_t *)pos - data);
    } else if (e != HPE_OK) {
        if (ps->error == 0)
            ps->error = PHX_ERR_PROTO;
        return ps->error;
    }
    /* Every byte counts, chunk framing and interim answers too, so that no
     * answer keeps the connection busy beyond the bound. */
    ps->bytes += *used;
    if (ps->bytes > ps->max_bytes) {
        ps->is_complete = false;
        *used = len;
        return ps->error = PHX_ERR_LIMIT;
    }
    return ps->is_complete ? 1 : 0;
}

int phx_httpc_parser_finish(phx_httpc_parser_t *ps)
{
    if (ps->error)
        return ps->error;
    if (ps->is_complete)
        return 1;
    /* An answer read until close completes here (llhttp calls
     * on_message_complete); anything else was cut short. */
    llhttp_errno_t e = llhttp_finish(&ps->_p);
    if (ps->is_complete) {
        ps->keep_alive = false;
        return 1;
    }
    if (e != HPE_OK && ps->error)
        return ps->error;
    return ps->error = PHX_ERR_PROTO;
}

int phx_httpc_parse_response(const uint8_t *data, size_t len, size_t max, int *status,
                             phx_buf_t *body)
{
    phx_httpc_parser_t ps;
    phx_httpc_parser_init(&ps, max, max);
    size_t used;
    int rv = phx_httpc_parser_feed(&ps, data, len, &used);
    if (rv == 0)
        rv = phx_httpc_parser_finish(&ps);
    if (rv == 1) {
        *status = ps.status;
        rv = phx_buf_append(body, ps.body.data, ps.body.len);
    }
    phx_httpc_parser_dispose(&ps);
    return rv;
}
