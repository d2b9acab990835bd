/* guard.h: copies of test input placed so that they end right before an
 * unreadable page, so a parser that reads one byte too far crashes. */
#ifndef PHX_TEST_GUARD_H
#define PHX_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct guard {
    uint8_t *map;
    size_t map_len;
} guard_t;

/* Returns a copy of `len` bytes of `src` that ends right before a
 * PROT_NONE page (valid until guard_free). Aborts the test on failure. */
uint8_t *guard_copy(guard_t *g, const void *src, size_t len);
void guard_free(guard_t *g);

#endif
