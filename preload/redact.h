/*
 * Redaction by rules (rules/README.md, `dynobs.redaction`), applied in the
 * shim before anything reaches shared memory. Never weaker than the
 * defaults by accident: authorization, cookie and set-cookie are never
 * recorded whatever a rule says, and without a rule no query string is.
 */
#ifndef DYNOBS_PRELOAD_REDACT_H
#define DYNOBS_PRELOAD_REDACT_H

#include <stddef.h>

#include "../common/rules.h"
#include "../common/util.h"

/* The longest query string recorded (url.query), cut at a pair. */
#define DYNOBS_QUERY_MAX 1024u

struct dynobs_span;

/* The query as it may be recorded: every value replaced by REDACTED but
 * those of the keys the rule allows. Returns the length written to out
 * (cap bytes), or 0 when no query is to be recorded (no rule, or the
 * rule's query mode is omit). */
size_t dynobs__redact_query(const struct dynobs_rules *r, const struct dynobs_rule_redact *rd,
                            const char *q, size_t n, char *out, size_t cap) DYNOBS_INTERNAL;

/* May a header of this name (lower case, nlen bytes) be recorded? With a
 * rule that lists headers, only those; without one, the default (every
 * header the configuration names). Never the three above. */
/* Appends a request target's path and query to out (o bytes used, cap
 * at most, leaving room for a NUL) with every query value replaced by
 * REDACTED, as url.full is recorded; stops at a fragment. Returns the
 * new length. */
size_t dynobs__redact_url_values(const char *t, size_t n, char *out, size_t o,
                                 size_t cap) DYNOBS_INTERNAL;

int dynobs__redact_header_ok(const struct dynobs_rules *r, const struct dynobs_rule_redact *rd,
                             const char *name, size_t nlen) DYNOBS_INTERNAL;

/* The rule's attribute replacements, on a span about to be written. */
void dynobs__redact_span(struct dynobs_span *s, const struct dynobs_rules *r,
                         const struct dynobs_rule_redact *rd) DYNOBS_INTERNAL;

#endif
