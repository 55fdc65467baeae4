/*
 * The OpenTelemetry probability threshold in a tracestate: the `th`
 * sub-key of the `ot` list member (`ot=th:8;rv:ab`, the specification's
 * "TraceState: Probability Sampling"). A span that tail sampling kept
 * was not chosen at random, so it must not carry one: a backend would
 * count it as standing for 1/p spans. Pure function, caller's memory.
 */
#ifndef DYNOBS_EXPORTER_TRACESTATE_TH_H
#define DYNOBS_EXPORTER_TRACESTATE_TH_H

#include <stddef.h>

/* Writes into out (room for n bytes, no NUL added) the tracestate s of n
 * bytes without the `th` sub-keys of its first `ot` member, and without
 * that member when nothing else is left in it (with one comma next to
 * it). Everything else is kept byte for byte. A tracestate without an
 * `ot` member, or whose `ot` value is not a list of key:value sub-keys,
 * is copied unchanged. Returns the length written. */
size_t dx_tracestate_drop_th(const char *s, size_t n, char *out);

#endif
