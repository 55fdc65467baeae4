/*
 * The route of a request this process serves (http.route): from the
 * patterns of a rules routes entry, else from the path through the
 * heuristic and the process's segment trie (common/route.h), so that the
 * routes a process reports stay few whatever paths it is sent.
 */
#ifndef DYNOBS_PRELOAD_ROUTE_H
#define DYNOBS_PRELOAD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/route.h"
#include "../common/rules.h"
#include "../common/util.h"

/* Nodes of the process's segment trie (64 bytes each, mapped at the first
 * route folded: pages are touched only as the trie grows). */
#define DYNOBS_ROUTE_NODES 4096u

struct dynobs_route {
    uint16_t len;    /* bytes of text; 0: the request has no route */
    uint8_t ignored; /* an ignored_pattern matched: no span, no metric */
    char text[DYNOBS_ROUTE_MAX];
};

/* The route of a request target (origin form "/a/b?q", or absolute form
 * "http://host/a/b"; n bytes; the query and fragment never enter the
 * route). r and rr: a validated rules table and the routes entry that
 * holds for the request (dynobs__rules_routes), or both NULL for the
 * built-in defaults (no patterns, unmatched: heuristic, 10 values per
 * segment). The first pattern that matches gives the route, written in
 * its "{name}" form; a path no pattern matches becomes what rr->unmatched
 * says. A target that is no path ("*", "host:443") has no route. No
 * allocation, lock or system call; any thread. */
void dynobs__server_route(const struct dynobs_rules *r, const struct dynobs_rule_routes *rr,
                          const char *target, size_t n, struct dynobs_route *out) DYNOBS_INTERNAL;

/* A server span's name: "METHOD ROUTE", or the method alone when the
 * request has no route. out holds ml + 1 + DYNOBS_ROUTE_MAX bytes. */
void dynobs__server_span_name(char *out, const char *method, size_t ml,
                              const struct dynobs_route *r) DYNOBS_INTERNAL;

/* The trie's counters, for /metrics: path segments folded into {id}
 * because the node pool was full, and because a node had its N values. */
uint64_t dynobs__route_pool_full(void) DYNOBS_INTERNAL;
uint64_t dynobs__route_folded(void) DYNOBS_INTERNAL;
/* Trie nodes in use (the root included). */
uint32_t dynobs__route_nodes_used(void) DYNOBS_INTERNAL;

#endif
