/* mem.h: allocation hooks (the embedder may replace the allocator underneath
 * with phx_set_allocator, phx.h), growable byte buffers and reference-counted
 * byte buffers. Every allocation in phxd goes through phx_malloc and friends
 * so that tests can fail the nth allocation (phx_mem_fail_at). */
#ifndef PHX_MEM_H
#define PHX_MEM_H

#include <stddef.h>
#include <stdint.h>

/* ---- allocator ---- */
void *phx_malloc(size_t size);
void *phx_calloc(size_t count, size_t size);
void *phx_realloc(void *ptr, size_t size);
void phx_free(void *ptr);
/* Returns an owned copy of `len` bytes plus a NUL terminator (phx_free). */
char *phx_strndup(const char *s, size_t len);
char *phx_strdup(const char *s);

/* Test hooks: after phx_mem_fail_at(n), the nth allocation from now (1-based)
 * and every later one fail until phx_mem_fail_at(0). phx_mem_count() returns
 * the number of allocations made since the last phx_mem_reset_count(). */
void phx_mem_fail_at(unsigned long n);
unsigned long phx_mem_count(void);
void phx_mem_reset_count(void);

/* ---- phx_buf_t: growable bytes, embedded in its owner ---- */
typedef struct phx_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} phx_buf_t;

/* Ensures room for `extra` more bytes. Returns 0 or PHX_ERR_NOMEM. */
int phx_buf_reserve(phx_buf_t *b, size_t extra);
/* Appends a copy of `len` bytes. Returns 0 or PHX_ERR_NOMEM. */
int phx_buf_append(phx_buf_t *b, const void *data, size_t len);
int phx_buf_append_str(phx_buf_t *b, const char *s);
int phx_buf_append_byte(phx_buf_t *b, uint8_t c);
/* Appends printf-formatted text. Returns 0 or PHX_ERR_NOMEM. */
int phx_buf_printf(phx_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first `n` bytes. */
void phx_buf_consume(phx_buf_t *b, size_t n);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void phx_buf_dispose(phx_buf_t *b);
/* Hands the storage to the caller (returns owned, phx_free) and empties b.
 * The result is NUL-terminated when the buffer held any byte. */
uint8_t *phx_buf_detach(phx_buf_t *b, size_t *len);

/* ---- phx_rcbuf_t: reference-counted immutable bytes ----
 * One broadcast is encoded once into an rcbuf and every recipient's output
 * queue holds a reference. `head` bytes of room precede the payload so a
 * WebSocket frame header can be written in front of it without a copy. */
typedef struct phx_rcbuf {
    uint32_t refs;
    uint32_t off;         /* start of the bytes to send (frame header or payload) */
    uint32_t payload_off; /* start of the payload itself */
    uint32_t len;         /* end of the bytes (offset) */
    uint32_t cap;         /* size of data[] */
    uint8_t is_binary;    /* WebSocket: a binary (not text) message */
    /* Another form of the same message made once for all the recipients
     * that need it (LongPoll: the payload as a JSON string), owned by this
     * buffer (one reference, released with it), or NULL. */
    struct phx_rcbuf *alt;
    uint8_t data[];
} phx_rcbuf_t;

/* Returns an owned rcbuf (refs 1) with room for `cap` bytes; release it with
 * phx_rcbuf_unref. NULL when out of memory. */
phx_rcbuf_t *phx_rcbuf_new(size_t cap);
phx_rcbuf_t *phx_rcbuf_ref(phx_rcbuf_t *b);
void phx_rcbuf_unref(phx_rcbuf_t *b);

#endif /* PHX_MEM_H */
