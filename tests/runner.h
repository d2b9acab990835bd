/* runner.h: phxd's tiny unit-test runner. Each tests/unit/test_<module>.c
 * ends with a table `const phx_test_t phx_tests_<module>[]` closed by
 * {NULL, NULL}, and names the module in tests/unit/modules.def. Every test
 * runs in a forked child with a timeout; output is TAP. */
#ifndef PHX_TEST_RUNNER_H
#define PHX_TEST_RUNNER_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct phx_test {
    const char *name;
    void (*fn)(void);
} phx_test_t;

void phx_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
void phx_test_hexdump(const char *label, const void *p, size_t len);

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            phx_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                      \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            phx_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);           \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            phx_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                          a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                 \
    } while (0)

#define ASSERT_MEM_EQ(a, alen, b, blen)                                                            \
    do {                                                                                           \
        const void *a_ = (a), *b_ = (b);                                                           \
        size_t al_ = (size_t)(alen), bl_ = (size_t)(blen);                                         \
        if (al_ != bl_ || (al_ && memcmp(a_, b_, al_) != 0)) {                                     \
            phx_test_hexdump(#a, a_, al_);                                                         \
            phx_test_hexdump(#b, b_, bl_);                                                         \
            phx_test_fail(__FILE__, __LINE__, "%s == %s (bytes differ)", #a, #b);                  \
        }                                                                                          \
    } while (0)

#endif
