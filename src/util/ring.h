/* ring.h: a growable ring of buffer references (phx_rcbuf_t), oldest
 * first. The ring holds one reference per buffer it contains: push takes
 * the caller's, pop hands it back, clear releases them all. Used for a
 * connection's output queue and a LongPoll session's messages. */
#ifndef PHX_RING_H
#define PHX_RING_H

#include <stdint.h>

#include "mem.h"

typedef struct phx_ring {
    phx_rcbuf_t **items;
    uint32_t head, len, cap;
    uint32_t head_off; /* bytes of the oldest buffer already consumed (the owner's count) */
} phx_ring_t;

/* Appends `b` (takes the reference), growing the ring from `first_cap`
 * slots. Returns 0 or PHX_ERR_NOMEM (the reference is still the caller's). */
int phx_ring_push(phx_ring_t *r, phx_rcbuf_t *b, uint32_t first_cap);
/* The i-th oldest buffer (borrowed), i < len. */
static inline phx_rcbuf_t *phx_ring_at(const phx_ring_t *r, uint32_t i)
{
    return r->items[(r->head + i) % r->cap];
}
/* Removes the oldest buffer and returns its reference (len > 0). */
static inline phx_rcbuf_t *phx_ring_pop(phx_ring_t *r)
{
    phx_rcbuf_t *b = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    r->head_off = 0;
    return b;
}
/* Forgets every buffer without releasing it: their references now belong
 * to whoever copied them out (phx_ring_at) first. */
static inline void phx_ring_forget(phx_ring_t *r)
{
    r->head = 0;
    r->len = 0;
    r->head_off = 0;
}
/* Releases every buffer and the storage. */
void phx_ring_clear(phx_ring_t *r);

#endif /* PHX_RING_H */
