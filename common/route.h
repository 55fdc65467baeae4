/*
 * http.route for served requests: route patterns ("/users/{id}" or the
 * "/users/:id" form), the heuristic that turns ids in a path into {id},
 * and the per-process segment trie that folds a path segment with more
 * than N distinct values into {id}, so that a flood of random paths makes
 * a bounded number of routes. No allocation: the trie lives in storage
 * its owner gives, and is shared by threads without locks.
 */
#ifndef DYNOBS_COMMON_ROUTE_H
#define DYNOBS_COMMON_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the path (n bytes, no query) matches the pattern: same number of
 * segments, literal segments equal, "{name}" / ":name" segments any one
 * non-empty segment, and a last segment "*" any rest. */
int dynobs__route_match(const char *pattern, const char *path, size_t n);

/* Writes the path with id-like segments (numbers, UUIDs, hex and
 * base64-like tokens) replaced by {id}; returns the length written
 * (out holds cap bytes, NUL-terminated; cut at a segment boundary). */
size_t dynobs__route_heuristic(const char *path, size_t n, char *out, size_t cap);

#endif
