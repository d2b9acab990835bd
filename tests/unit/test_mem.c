/* Unit tests for mem.c: buffers, rcbufs and the failing allocator. */
#include "mem.h"

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

const phx_test_t phx_tests_mem[] = {
    {"buf_append_grows_and_terminates", buf_append_grows_and_terminates},
    {"fail_at_fails_nth_allocation", fail_at_fails_nth_allocation},
    {"rcbuf_refcounts", rcbuf_refcounts},
    {"err_names", err_names},
    {NULL, NULL},
};
