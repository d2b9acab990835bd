/* ring.c: the growable ring of buffer references (ring.h). */
#include "ring.h"

#include "phx.h"

int phx_ring_push(phx_ring_t *r, phx_rcbuf_t *b, uint32_t first_cap)
{
    if (r->len == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : first_cap;
        phx_rcbuf_t **items = phx_malloc((size_t)cap * sizeof(*items));
        if (items == NULL)
            return PHX_ERR_NOMEM;
        for (uint32_t i = 0; i < r->len; i++)
            items[i] = phx_ring_at(r, i);
        phx_free(r->items);
        r->items = items;
        r->cap = cap;
        r->head = 0;
    }
    r->items[(r->head + r->len) % r->cap] = b;
    r->len++;
    return 0;
}

void phx_ring_clear(phx_ring_t *r)
{
    for (uint32_t i = 0; i < r->len; i++)
        phx_rcbuf_unref(phx_ring_at(r, i));
    phx_free(r->items);
    r->items = NULL;
    r->head = r->len = r->cap = r->head_off = 0;
}
