/* struct_sizes: what each per-socket structure costs, for BENCHMARKS.md.
 * Prints sizeof() and the heap chunk glibc hands out for it
 * (malloc_usable_size + 8 bytes of chunk header), and the heap that one
 * wslay event context takes (mallinfo2 before and after creating one). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "channel.h"
#include "http.h"
#include "server.h"
#include "socket.h"
#include "tcp.h"

static void row(const char *what, size_t size)
{
    void *p = malloc(size);
    printf("| %-34s | %6zu | %6zu |\n", what, size, malloc_usable_size(p) + 8);
    free(p);
}

static ssize_t no_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    return -1;
}

static ssize_t no_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    return -1;
}

int main(void)
{
    printf("| structure | sizeof | heap chunk |\n| --- | ---: | ---: |\n");
    row("phx_conn_t (uv_tcp_t embedded)", sizeof(phx_conn_t));
    row("uv_tcp_t (inside phx_conn_t)", sizeof(uv_tcp_t));
    row("phx_http_t (until the upgrade)", sizeof(phx_http_t));
    row("phx_socket_t", sizeof(phx_socket_t));
    row("phx_channel_t", sizeof(phx_channel_t));
    row("output queue ring (4 entries)", 4 * sizeof(void *));
    struct mallinfo2 a = mallinfo2();
    struct wslay_event_callbacks cb = {.recv_callback = no_recv, .send_callback = no_send};
    wslay_event_context_ptr ctx;
    wslay_event_context_server_init(&ctx, &cb, NULL);
    struct mallinfo2 b = mallinfo2();
    printf("| wslay event context (all its allocations) | - | %6zu |\n", b.uordblks - a.uordblks);
    wslay_event_context_free(ctx);
    return 0;
}
