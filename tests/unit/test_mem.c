/* Unit tests for mem.c: buffers, rcbufs, the failing allocator and the
 * embedder's allocator hooks (phx_set_allocator); error.c: error names and
 * the version. */
#include "mem.h"

#include <uv.h>

#include "phx.h"
#include "runner.h"

static void buf_append_grows_and_terminates(void)
{
    phx_buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(phx_buf_append(&b, "ab", 2), 0);
    ASSERT_EQ(b.len, 2000);
    ASSERT_EQ(b.data[b.len], 0);
    ASSERT_EQ(phx_buf_printf(&b, "%d-%s", 42, "x"), 0);
    ASSERT_STR_EQ((char *)b.data + 2000, "42-x");
    phx_buf_consume(&b, 1999);
    ASSERT_STR_EQ((char *)b.data, "b42-x");
    phx_buf_dispose(&b);
    ASSERT(b.data == NULL);
}

static void fail_at_fails_nth_allocation(void)
{
    phx_mem_reset_count();
    phx_mem_fail_at(2);
    void *a = phx_malloc(8);
    void *b = phx_malloc(8);
    ASSERT(a != NULL);
    ASSERT(b == NULL);
    phx_mem_fail_at(0);
    b = phx_malloc(8);
    ASSERT(b != NULL);
    phx_free(a);
    phx_free(b);
}

static void rcbuf_refcounts(void)
{
    phx_rcbuf_t *r = phx_rcbuf_new(16);
    ASSERT(r != NULL);
    ASSERT_EQ(r->cap, 16);
    phx_rcbuf_ref(r);
    ASSERT_EQ(r->refs, 2);
    phx_rcbuf_unref(r);
    ASSERT_EQ(r->refs, 1);
    phx_rcbuf_unref(r);
    phx_rcbuf_unref(NULL);
}

static void err_names(void)
{
    ASSERT_STR_EQ(phx_err_name(PHX_ERR_PROTO), "PHX_ERR_PROTO");
    ASSERT_STR_EQ(phx_strerror(PHX_ERR_NOMEM), "out of memory");
}

/* ---- phx_set_allocator: a counting allocator that tracks live blocks ---- */
static struct {
    unsigned long mallocs, reallocs, frees;
    long live;
} hooks;

static void *counting_malloc(size_t n)
{
    hooks.mallocs++;
    hooks.live++;
    return malloc(n);
}

static void *counting_realloc(void *p, size_t n)
{
    hooks.reallocs++;
    if (p == NULL)
        hooks.live++;
    return realloc(p, n);
}

static void counting_free(void *p)
{
    ASSERT(p != NULL);
    hooks.frees++;
    hooks.live--;
    free(p);
}

static void set_allocator_routes_every_allocation(void)
{
    ASSERT_EQ(phx_set_allocator(counting_malloc, counting_realloc, counting_free), 0);
    void *a = phx_malloc(10);
    ASSERT(a != NULL);
    ASSERT_EQ(hooks.mallocs, 1);
    unsigned char *z = phx_calloc(4, 8); /* malloc_fn plus memset */
    ASSERT(z != NULL);
    ASSERT_EQ(hooks.mallocs, 2);
    for (int i = 0; i < 32; i++)
        ASSERT_EQ(z[i], 0);
    ASSERT(phx_calloc(SIZE_MAX / 2, 4) == NULL); /* overflow: never reaches the hook */
    ASSERT_EQ(hooks.mallocs, 2);
    a = phx_realloc(a, 100);
    ASSERT(a != NULL);
    ASSERT_EQ(hooks.reallocs, 1);
    char *d = phx_strdup("abc");
    ASSERT_STR_EQ(d, "abc");
    ASSERT_EQ(hooks.mallocs, 3);
    phx_buf_t b = {0};
    ASSERT_EQ(phx_buf_append(&b, "xyz", 3), 0);
    ASSERT_EQ(hooks.reallocs, 2);
    phx_rcbuf_t *r = phx_rcbuf_new(8);
    ASSERT_EQ(hooks.mallocs, 4);
    phx_free(NULL); /* free_fn is never called with NULL */
    ASSERT_EQ(hooks.frees, 0);
    phx_rcbuf_unref(r);
    phx_buf_dispose(&b);
    phx_free(d);
    phx_free(z);
    phx_free(a);
    ASSERT_EQ(hooks.frees, 5);
    ASSERT_EQ(hooks.live, 0);
    /* the failure injector still fails first, without calling the hook */
    phx_mem_reset_count();
    phx_mem_fail_at(1);
    ASSERT(phx_malloc(8) == NULL);
    phx_mem_fail_at(0);
    ASSERT_EQ(hooks.mallocs, 4);
    /* three NULLs restore the C library's allocator */
    ASSERT_EQ(phx_set_allocator(NULL, NULL, NULL), 0);
    a = phx_malloc(16);
    phx_free(a);
    ASSERT_EQ(hooks.mallocs, 4);
    ASSERT_EQ(hooks.frees, 5);
}

static void set_allocator_refuses_some_null(void)
{
    ASSERT_EQ(phx_set_allocator(counting_malloc, NULL, counting_free), PHX_ERR_INVALID);
    ASSERT_EQ(phx_set_allocator(NULL, counting_realloc, NULL), PHX_ERR_INVALID);
    ASSERT_EQ(phx_set_allocator(counting_malloc, counting_realloc, NULL), PHX_ERR_INVALID);
    void *a = phx_malloc(8); /* unchanged: still the C library's */
    phx_free(a);
    ASSERT_EQ(hooks.mallocs + hooks.reallocs + hooks.frees, 0);
}

static void stopped(phx_server_t *srv)
{
}

static phx_result_t join_ok(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                            phx_reply_t *reply, void *user)
{
    return PHX_REPLY_OK;
}

/* A whole server lifetime (new, channel route, start, drain, free) takes
 * all its memory from the hooks and gives every block back through them. */
static void set_allocator_serves_a_server(void)
{
    ASSERT_EQ(phx_set_allocator(counting_malloc, counting_realloc, counting_free), 0);
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = "allocator-test-secret-key-base-0123456789abcdefghijklmnopqrstuv";
    phx_server_t *srv = NULL;
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(phx_server_new(&srv, &loop, &cfg, err), 0);
    static const phx_channel_handler_t h = {.join = join_ok};
    ASSERT_EQ(phx_server_channel(srv, "room:*", &h, NULL), 0);
    ASSERT_EQ(phx_server_start(srv, err), 0);
    ASSERT(phx_server_port(srv) > 0);
    ASSERT(hooks.mallocs + hooks.reallocs > 0);
    phx_server_drain(srv, 1001, 0, 0, 1000, stopped);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    phx_server_free(srv);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    ASSERT_EQ(hooks.live, 0);
    ASSERT(hooks.frees > 0);
}

/* ---- the version: the header's macros, the library's calls ---- */
static void version_matches_header(void)
{
    ASSERT_STR_EQ(phx_version(), PHX_VERSION_STRING);
    ASSERT_STR_EQ(PHX_VERSION, PHX_VERSION_STRING);
    ASSERT_EQ(phx_version_num(), PHX_VERSION_NUM);
    ASSERT_EQ(PHX_VERSION_NUM,
              (PHX_VERSION_MAJOR << 16) | (PHX_VERSION_MINOR << 8) | PHX_VERSION_PATCH);
    ASSERT_EQ(PHX_VERSION_ENCODE(0, 1, 0), 0x000100);
    ASSERT_EQ(PHX_VERSION_ENCODE(1, 2, 3), 0x010203);
    char s[32];
    snprintf(s, sizeof(s), "%d.%d.%d", PHX_VERSION_MAJOR, PHX_VERSION_MINOR, PHX_VERSION_PATCH);
    ASSERT_STR_EQ(s, PHX_VERSION_STRING);
}

const phx_test_t phx_tests_mem[] = {
    {"buf_append_grows_and_terminates", buf_append_grows_and_terminates},
    {"fail_at_fails_nth_allocation", fail_at_fails_nth_allocation},
    {"rcbuf_refcounts", rcbuf_refcounts},
    {"err_names", err_names},
    {"set_allocator_routes_every_allocation", set_allocator_routes_every_allocation},
    {"set_allocator_refuses_some_null", set_allocator_refuses_some_null},
    {"set_allocator_serves_a_server", set_allocator_serves_a_server},
    {"version_matches_header", version_matches_header},
    {NULL, NULL},
};
