/* phx.h: the public interface of libphx, a Phoenix Channels server in C.
 * An embedding program creates a server, registers a connect callback
 * (Phoenix's connect/3) and channel handlers by topic pattern, and runs the
 * libuv loop. Everything in src/ is internal. */
#ifndef PHX_H
#define PHX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHX_EXTERN __attribute__((visibility("default")))

#define PHX_VERSION "0.1.0"

/* ---- error codes ----
 * Functions return 0 on success or a negative code. libuv codes (negative
 * errno) pass through unchanged; phxd's own codes sit at -1000 and below. */
#define PHX_ERRNO_MAP(X)                                                       \
    X(AGAIN, -1000, "more input needed")                                       \
    X(PROTO, -1001, "peer violated the protocol")                              \
    X(LIMIT, -1002, "input exceeds a configured limit")                        \
    X(AUTH, -1003, "authentication failed")                                    \
    X(NOMEM, -1004, "out of memory")                                           \
    X(INVALID, -1005, "invalid argument or value")                             \
    X(EXPIRED, -1006, "token expired")                                         \
    X(MISSING, -1007, "token missing")                                         \
    X(STATE, -1008, "operation not allowed in the current state")             \
    X(NOTFOUND, -1009, "no such item")                                         \
    X(CLOSED, -1010, "connection is closed")

typedef enum {
#define PHX_ERRNO_GEN(name, code, text) PHX_ERR_##name = (code),
    PHX_ERRNO_MAP(PHX_ERRNO_GEN)
#undef PHX_ERRNO_GEN
} phx_errno_t;

/* Returns the symbolic name ("PHX_ERR_PROTO", "ECONNRESET") of an error code.
 * The string is static. */
PHX_EXTERN const char *phx_err_name(int err);
/* Returns a human-readable description of an error code. Static string. */
PHX_EXTERN const char *phx_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* PHX_H */
