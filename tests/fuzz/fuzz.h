/* What the libFuzzer targets share. */
#ifndef DYNOBS_FUZZ_H
#define DYNOBS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* A property of the code under test; checked in every build type (NDEBUG
 * does not turn it off), and a violation aborts, which libFuzzer reports
 * with the input. */
#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#endif
