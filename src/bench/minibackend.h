/* minibackend.h: phxd-bench's built-in backend (--backend-listen), the minimal
 * application a server with backend callbacks (docs/backend.md) calls. A
 * tiny HTTP/1.1 keep-alive server on its own thread and its own libuv loop,
 * so the bench's client sockets and the backend do not wait on each other:
 * llhttp parses each request, and every call is answered 200 after
 * --backend-delay-us (a timerfd on the backend's loop: microsecond
 * precision, never a sleep). An `event` call is answered
 * `{"reply":{"status":"ok","response":{"n":<calls so far>,"backend_ns":<t>}}}`
 * where t is the backend's own time for the call: from the read that
 * brought the request's first byte to the moment its answer is handed to
 * the kernel (the delay included). A `join` is answered ok with an empty
 * response, a `connect` ok, anything else `{}`. The same t goes into the
 * backend's histogram of event calls. Counters are read from the bench's
 * thread while the backend runs; the histogram only after
 * phx_bench_backend_stop. */
#ifndef PHX_BENCH_MINIBACKEND_H
#define PHX_BENCH_MINIBACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

typedef struct phx_bench_backend phx_bench_backend_t;

/* Binds and listens on `listen` ("HOST:PORT", HOST an IPv4 address,
 * "[IPv6]" or "localhost"; PORT 0 picks a free one), then starts the
 * backend's thread. Returns 0 with the backend in *out (owned by the
 * caller, phx_bench_backend_free), or a negative code after writing a
 * message into err. */
int phx_bench_backend_start(phx_bench_backend_t **out, const char *listen, uint32_t delay_us,
                            char *err, size_t err_len);
/* The port listened on. */
int phx_bench_backend_port(const phx_bench_backend_t *be);
/* Event calls answered so far (any thread). */
uint64_t phx_bench_backend_events(const phx_bench_backend_t *be);
/* Calls of every type answered so far (any thread). */
uint64_t phx_bench_backend_calls(const phx_bench_backend_t *be);
/* Requests that were not a call (bad HTTP, not a POST): answered 400 or
 * closed (any thread). */
uint64_t phx_bench_backend_bad(const phx_bench_backend_t *be);
/* CPU seconds of the backend's thread so far (any thread); -1 when the
 * clock cannot be read. */
double phx_bench_backend_cpu_s(const phx_bench_backend_t *be);
/* Closes every connection, stops the thread and waits for it. Idempotent. */
void phx_bench_backend_stop(phx_bench_backend_t *be);
/* The backend's own time per event call (ns). Valid after
 * phx_bench_backend_stop. */
const phx_hist_t *phx_bench_backend_hist(const phx_bench_backend_t *be);
/* Stops the backend if needed and frees it; NULL is a no-op. */
void phx_bench_backend_free(phx_bench_backend_t *be);

#endif /* PHX_BENCH_MINIBACKEND_H */
