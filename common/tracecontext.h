/*
 * W3C Trace Context Level 2: traceparent and tracestate values.
 * Pure functions on caller-owned memory: no allocation, no locks, safe in
 * signal handlers.
 */
#ifndef DYNOBS_COMMON_TRACECONTEXT_H
#define DYNOBS_COMMON_TRACECONTEXT_H

#include <stddef.h>
#include <stdint.h>

#define DYNOBS_FLAG_SAMPLED 0x01u
#define DYNOBS_FLAG_RANDOM 0x02u
/* Flags this implementation knows; others are not propagated (the spec
 * says unknown flags are ignored when parsing and zeroed when sending). */
#define DYNOBS_FLAGS_KNOWN (DYNOBS_FLAG_SAMPLED | DYNOBS_FLAG_RANDOM)

/* Bytes kept per context, with a NUL: the 512 characters the spec says
 * a vendor should propagate at least. */
#define DYNOBS_TRACESTATE_MAX 513u
#define DYNOBS_TRACESTATE_MEMBERS 32u /* list members allowed */

struct dynobs_traceparent {
    uint8_t trace_id[16];
    uint8_t parent_id[8];
    uint8_t flags; /* as received, unknown bits cleared */
};

/* Parses a traceparent value (leading and trailing spaces/tabs allowed, as
 * HTTP OWS). Version 00 must be exactly 55 characters; a higher version
 * (not ff) is parsed by its first four fields, and anything after them
 * must begin with '-'. Returns 0 or -EINVAL. */
int dynobs__traceparent_parse(const char *s, size_t n, struct dynobs_traceparent *out)
    __attribute__((warn_unused_result));

/* Writes "00-<trace>-<parent>-<flags>" plus NUL; buf needs 56 bytes.
 * Returns 55 or -ERANGE. */
int dynobs__traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8],
                               uint8_t flags, char *buf, size_t len);

/* Lowercase hex of n bytes into out (2n chars, no NUL). */
void dynobs__hex_encode(const uint8_t *in, size_t n, char *out);

int dynobs__id_is_zero(const uint8_t *id, size_t n);

/* Validates a tracestate value (W3C Level 2 grammar, see tracecontext.c)
 * and writes its normal form to out: members joined by ',' with optional
 * whitespace and empty members removed, and a key's later repeats
 * dropped (the first stays). The whole header is rejected (-EINVAL) when
 * any member is malformed or there are more than 32 members. When the
 * normal form is longer than outcap-1, whole members are dropped as the
 * spec asks (those longer than 128 characters first, longest first, then
 * from the end) and the result is still valid. Returns its length. */
int dynobs__tracestate_parse(const char *s, size_t n, char *out, size_t outcap)
    __attribute__((warn_unused_result));

#endif
