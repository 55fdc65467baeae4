#include "stats.h"

#include <string.h>

static struct dx_stats stats;

void dx_stats_add(enum dx_counter c, uint64_t n)
{
    if ((unsigned)c < DX_COUNTERS)
        __atomic_fetch_add(&stats.counter[c], n, __ATOMIC_RELAXED);
}

void dx_stats_add_signal(enum dx_signal_counter c, enum dx_signal s, uint64_t n)
{
    if ((unsigned)c < DX_SIGNAL_COUNTERS && (unsigned)s < DX_SIGNALS)
        __atomic_fetch_add(&stats.per_signal[c][s], n, __ATOMIC_RELAXED);
}

void dx_stats_read(struct dx_stats *out)
{
    for (int c = 0; c < DX_COUNTERS; c++)
        out->counter[c] = __atomic_load_n(&stats.counter[c], __ATOMIC_RELAXED);
    for (int c = 0; c < DX_SIGNAL_COUNTERS; c++)
        for (int s = 0; s < DX_SIGNALS; s++)
            out->per_signal[c][s] = __atomic_load_n(&stats.per_signal[c][s], __ATOMIC_RELAXED);
}
