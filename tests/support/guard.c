/* guard.c: see guard.h. */
#include "guard.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner.h"

uint8_t *guard_copy(guard_t *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page;
    g->map_len = (pages + 1) * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(g->map != MAP_FAILED);
    ASSERT(mprotect(g->map + pages * page, page, PROT_NONE) == 0);
    uint8_t *p = g->map + pages * page - len;
    if (len)
        memcpy(p, src, len);
    return p;
}

void guard_free(guard_t *g)
{
    munmap(g->map, g->map_len);
    g->map = NULL;
}
