/* ctgrind_mac: proves under valgrind that the token MAC comparison does not
 * branch on the secret MAC's bytes (docs/protocol.md §7.7). The computed MAC
 * is marked undefined, compared, and only the boolean result is marked
 * defined: any branch inside the comparison on those bytes makes memcheck
 * report "Conditional jump or move depends on uninitialised value(s)".
 *   ctgrind_mac          phx_token_mac_equal: must run clean
 *   ctgrind_mac memcmp   the control, memcmp: must be reported
 * Run as: valgrind --error-exitcode=9 ctgrind_mac [memcmp] */
#include <stdio.h>
#include <string.h>

#include <valgrind/memcheck.h>

#include "token.h"

int main(int argc, char **argv)
{
    int use_memcmp = argc > 1 && strcmp(argv[1], "memcmp") == 0;
    int equal = 0;
    for (int round = 0; round < 3; round++) {
        unsigned char mac[64], sig[64];
        for (int i = 0; i < 64; i++) {
            mac[i] = (unsigned char)(i * 7 + round);
            sig[i] = (unsigned char)(i * 7 + (round == 1 ? 0 : round));
        }
        VALGRIND_MAKE_MEM_UNDEFINED(mac, sizeof(mac));
        int r = use_memcmp ? memcmp(mac, sig, sizeof(mac)) == 0
                           : phx_token_mac_equal(mac, sig, sizeof(mac));
        VALGRIND_MAKE_MEM_DEFINED(&r, sizeof(r));
        equal += r;
    }
    printf("%d of 3 equal\n", equal);
    return 0;
}
