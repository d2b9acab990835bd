/* fuzz.h: what every libFuzzer target here shares: the entry point's
 * prototype and CHECK, which aborts (a crash libFuzzer records) when a
 * property of the code under test does not hold. */
#ifndef PHX_FUZZ_H
#define PHX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* PHX_FUZZ_H */
