/*
 * W3C Baggage (the `baggage` header): the application-defined key=value
 * pairs that travel with a request. dynobs carries them from the request
 * a service serves to the calls it makes, never recording them.
 */
#ifndef DYNOBS_COMMON_BAGGAGE_H
#define DYNOBS_COMMON_BAGGAGE_H

#include <stddef.h>

/* What the specification obliges a platform to propagate (its "Limits"):
 * 64 members, and all of them when the list is at most 8192 bytes. */
#define DYNOBS_BAGGAGE_MAX 8192u
#define DYNOBS_BAGGAGE_MEMBERS_MAX 180u /* the grammar's bound */

/* Validates a baggage list (one or more header values joined by ',') and
 * writes its normal form to out (no optional white space, empty members
 * dropped, members and their properties kept as they are otherwise):
 * returns its length. A list longer than cap loses whole members from its
 * end. Returns -1 when the list is malformed (a key that is not a token,
 * a value with a character the grammar excludes, more than 180 members):
 * a list the peer cannot trust is dropped whole. */
int dynobs__baggage_normalize(const char *in, size_t n, char *out, size_t cap);

/* The value of key in a normalised list (its properties left out), of
 * *vl bytes; NULL when the list has no member of that key. */
const char *dynobs__baggage_find(const char *bag, size_t n, const char *key, size_t kl,
                                 size_t *vl);

#endif
