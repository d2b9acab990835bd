/* mem.c: the allocator hooks (the embedder's, phx_set_allocator in phx.h,
 * with a failure injector for tests), phx_buf_t and phx_rcbuf_t. Leaf
 * module: includes no stage. */
#include "mem.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"

/* The allocator hooks are process-wide, like the log level and sink
 * (log.c): the embedder's functions (phx_set_allocator) or the C library's,
 * and the failure injector's counters. */
static phx_malloc_fn hook_malloc = malloc;
static phx_realloc_fn hook_realloc = realloc;
static phx_free_fn hook_free = free;
static bool hook_is_libc = true; /* calloc can then be the C library's */
static unsigned long alloc_count;
static unsigned long fail_at;

int phx_set_allocator(phx_malloc_fn malloc_fn, phx_realloc_fn realloc_fn, phx_free_fn free_fn)
{
    if (malloc_fn == NULL && realloc_fn == NULL && free_fn == NULL) {
        hook_malloc = malloc;
        hook_realloc = realloc;
        hook_free = free;
        hook_is_libc = true;
        return 0;
    }
    if (malloc_fn == NULL || realloc_fn == NULL || free_fn == NULL)
        return PHX_ERR_INVALID;
    hook_malloc = malloc_fn;
    hook_realloc = realloc_fn;
    hook_free = free_fn;
    hook_is_libc = false;
    return 0;
}

static int should_fail(void)
{
    alloc_count++;
    return fail_at != 0 && alloc_count >= fail_at;
}

void phx_mem_fail_at(unsigned long n)
{
    fail_at = n == 0 ? 0 : alloc_count + n;
}

unsigned long phx_mem_count(void)
{
    return alloc_count;
}

void phx_mem_reset_count(void)
{
    alloc_count = 0;
    fail_at = 0;
}

void *phx_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return hook_malloc(size == 0 ? 1 : size);
}

void *phx_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    if (count == 0)
        count = 1;
    if (size == 0)
        size = 1;
    if (hook_is_libc)
        return calloc(count, size);
    if (count > SIZE_MAX / size)
        return NULL;
    void *p = hook_malloc(count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

void *phx_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return hook_realloc(ptr, size == 0 ? 1 : size);
}

void phx_free(void *ptr)
{
    if (ptr != NULL)
        hook_free(ptr);
}

char *phx_strndup(const char *s, size_t len)
{
    char *p = phx_malloc(len + 1);
    if (p == NULL)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *phx_strdup(const char *s)
{
    return phx_strndup(s, strlen(s));
}

/* ---- phx_buf_t ---- */

int phx_buf_reserve(phx_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return PHX_ERR_NOMEM;
    size_t need = b->len + extra + 1; /* keep room for a NUL terminator */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = phx_realloc(b->data, cap);
    if (p == NULL)
        return PHX_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int phx_buf_append(phx_buf_t *b, const void *data, size_t len)
{
    if (phx_buf_reserve(b, len) != 0)
        return PHX_ERR_NOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int phx_buf_append_str(phx_buf_t *b, const char *s)
{
    return phx_buf_append(b, s, strlen(s));
}

int phx_buf_append_byte(phx_buf_t *b, uint8_t c)
{
    return phx_buf_append(b, &c, 1);
}

int phx_buf_printf(phx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PHX_ERR_INVALID;
    if (phx_buf_reserve(b, (size_t)n) != 0)
        return PHX_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void phx_buf_consume(phx_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void phx_buf_dispose(phx_buf_t *b)
{
    phx_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *phx_buf_detach(phx_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- phx_rcbuf_t ---- */

phx_rcbuf_t *phx_rcbuf_new(size_t cap)
{
    if (cap > UINT32_MAX - sizeof(phx_rcbuf_t))
        return NULL;
    phx_rcbuf_t *b = phx_malloc(sizeof(*b) + cap);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->off = b->payload_off = b->len = 0;
    b->cap = (uint32_t)cap;
    b->is_binary = 0;
    b->alt = NULL;
    return b;
}

phx_rcbuf_t *phx_rcbuf_ref(phx_rcbuf_t *b)
{
    b->refs++;
    return b;
}

void phx_rcbuf_unref(phx_rcbuf_t *b)
{
    if (b != NULL && --b->refs == 0) {
        phx_rcbuf_unref(b->alt);
        phx_free(b);
    }
}
