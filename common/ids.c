#include "ids.h"
#include "sys.h"
#include "util.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void dynobs__rng_seed(struct dynobs_rng *r)
{
    uint64_t seed = 0;
    /* GRND_NONBLOCK: never wait for the entropy pool at early boot; the
     * fallback mixes values that differ between processes and threads. */
    if (dynobs__getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = dynobs__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                             ((uint64_t)syscall(SYS_gettid) << 17) ^ (uint64_t)(uintptr_t)r);
    }
    r->state = seed;
}

DYNOBS_PATH(12) void dynobs__rng_id(struct dynobs_rng *r, uint8_t *id, unsigned n)
{
    do {
        for (unsigned i = 0; i < n; i += 8) {
            uint64_t v = dynobs__rng_next(r);
            memcpy(id + i, &v, 8);
        }
    } while (DYNOBS_UNLIKELY(id[0] == 0 && memcmp(id, id + 1, n - 1) == 0));
}
