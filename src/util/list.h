/* list.h: an intrusive doubly linked list with a count. The link lives in
 * the element (phx_link_t), the list owns nothing: elements are appended
 * at the tail and unlinked from anywhere in O(1). PHX_CONTAINER_OF turns a
 * link (or any embedded member) back into its element. */
#ifndef PHX_LIST_H
#define PHX_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define PHX_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct phx_link {
    struct phx_link *prev, *next;
} phx_link_t;

typedef struct phx_list {
    phx_link_t *head, *tail;
    size_t count;
} phx_list_t;

/* Appends `n` (not in any list) at the tail. */
static inline void phx_list_append(phx_list_t *l, phx_link_t *n)
{
    n->prev = l->tail;
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    l->count++;
}

/* Puts `n` (not in any list) at the head. */
static inline void phx_list_prepend(phx_list_t *l, phx_link_t *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
    l->count++;
}

/* Whether `n` is in `l` (its only possible list). */
static inline bool phx_list_has(const phx_list_t *l, const phx_link_t *n)
{
    return n->prev != NULL || l->head == n;
}

/* Unlinks `n` from `l`; a no-op when it is not in it. */
static inline void phx_list_unlink(phx_list_t *l, phx_link_t *n)
{
    if (!phx_list_has(l, n))
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    l->count--;
}

#endif /* PHX_LIST_H */
