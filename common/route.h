/*
 * http.route for served requests: route patterns ("/users/{id}" or the
 * "/users/:id" form), the heuristic that turns ids in a path into {id},
 * and the per-process segment trie that folds a path segment with more
 * than N distinct values into {id}, so that a flood of random paths makes
 * a bounded number of routes. No allocation: the trie lives in storage
 * its owner gives, and is shared by threads without locks.
 *
 * Paths are split on '/', and empty segments are skipped: "/users/1/",
 * "/users//1" and "/users/1" are the same path. A route is at most
 * DYNOBS_ROUTE_MAX - 1 bytes and DYNOBS_ROUTE_DEPTH segments; what does
 * not fit is cut at a segment boundary and replaced by one last segment
 * "*" (the rest).
 */
#ifndef DYNOBS_COMMON_ROUTE_H
#define DYNOBS_COMMON_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a route, its NUL included. It is also a label of the duration
 * metric, whose key (layout.h, 288 bytes) must hold it beside the other
 * labels. */
#define DYNOBS_ROUTE_MAX 128u
/* Segments of a route made from a path (not a pattern's). */
#define DYNOBS_ROUTE_DEPTH 16u
/* Bytes of a segment the trie keeps; a longer one becomes {id}. */
#define DYNOBS_ROUTE_SEG_MAX 52u
/* Distinct values a trie node keeps by default (max_path_segment_cardinality). */
#define DYNOBS_ROUTE_VALUES 10u

/* 1 when the path (n bytes, no query) matches the pattern: same number of
 * segments, literal segments equal, "{name}" / ":name" segments any one
 * non-empty segment, and a last segment "*" any rest, nothing included
 * ("/static/" "*" matches "/static"). A "*" that is not last is one
 * segment. */
int dynobs__route_match(const char *pattern, const char *path, size_t n);

/* A path split into its segments once, so that many patterns are
 * matched without walking it again; a path of more than
 * DYNOBS_ROUTE_SPLIT segments is walked as dynobs__route_match does. */
#define DYNOBS_ROUTE_SPLIT 32u
struct dynobs_route_split {
    const char *path;
    size_t len;
    uint8_t n, more;
    uint16_t off[DYNOBS_ROUTE_SPLIT], seglen[DYNOBS_ROUTE_SPLIT];
};
void dynobs__route_split(const char *path, size_t n, struct dynobs_route_split *sp);
/* dynobs__route_match on a split path. */
int dynobs__route_match_split(const char *pattern, const struct dynobs_route_split *sp);

/* Writes a pattern as a route: its segments joined by '/', ":name" as
 * "{name}" ("/" for none). Returns the length written (out holds cap
 * bytes, at least 4, NUL-terminated; cut at a segment boundary). */
size_t dynobs__route_pattern(const char *pattern, char *out, size_t cap);

/* 1 when a segment looks like an id: all digits; a UUID (8-4-4-4-12 hex);
 * hex of 8 bytes or more with a digit; a base64-like token (16 bytes or
 * more of [A-Za-z0-9+_-], a digit among them); or a segment holding a
 * byte a metric label cannot carry (',', '=', '"', '\\', a space or a
 * control byte). Words are kept: "users", "v1", "2fa", "deadbeef". */
int dynobs__route_is_id(const char *seg, size_t n);

/* Writes the path with id-like segments (numbers, UUIDs, hex and
 * base64-like tokens) replaced by {id}; returns the length written
 * (out holds cap bytes, NUL-terminated; cut at a segment boundary). */
size_t dynobs__route_heuristic(const char *path, size_t n, char *out, size_t cap);

/* ---- the segment trie ---- */

/* A node: one segment's text, its children as a list that only grows
 * (pushed at its head with a compare-and-swap), and the count of literal
 * children ({id} excluded) from here down the list. One cache line. */
struct dynobs_route_node {
    uint32_t head; /* atomic: first child's index + 1; 0 none */
    uint32_t next; /* next sibling's index + 1; set before the node is published */
    uint16_t lits; /* literal nodes from this one down its sibling list */
    uint8_t len;
    uint8_t reserved;
    char seg[DYNOBS_ROUTE_SEG_MAX];
};

struct dynobs_route_trie {
    struct dynobs_route_node *nodes; /* nodes[0] is the root ("/") */
    uint32_t cap;                    /* nodes in the pool */
    uint32_t used;                   /* atomic: nodes handed out, the root included */
    uint64_t full;                   /* atomic: segments folded as the pool was full */
    uint64_t folded;                 /* atomic: segments folded past N values */
};

/* A trie over zeroed storage of cap nodes (static storage is). */
#define DYNOBS_ROUTE_TRIE_INIT(nodes_, cap_) {(nodes_), (cap_), 1u, 0u, 0u}

/* What dynobs__route_fold does with a path's segments before the trie. */
#define DYNOBS_ROUTE_F_HEURISTIC 0x1u /* id-like segments become {id} */
#define DYNOBS_ROUTE_F_FIRST 0x2u     /* only the first segment, then a "*" */

/* Writes the route of a path (n bytes, no query) through trie t: each
 * segment, after the heuristic when flags say so, is looked up among the
 * children of the node reached so far; a literal that would be child
 * number max_values + 1 of that node becomes {id}, as does a segment
 * longer than DYNOBS_ROUTE_SEG_MAX or one a label cannot carry. When the
 * pool is full, a segment not already in the trie becomes {id} (counted
 * in t->full) and the rest of the path one "*". Safe from any number of
 * threads at once; no allocation, lock or system call. Returns the
 * length written (out holds cap bytes, at least 4, NUL-terminated). */
size_t dynobs__route_fold(struct dynobs_route_trie *t, const char *path, size_t n,
                          unsigned flags, unsigned max_values, char *out, size_t cap);

#endif
