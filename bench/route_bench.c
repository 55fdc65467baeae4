/*
 * The cost of http.route per served request: dynobs__server_route as the
 * HTTP/1 and FastCGI servers call it, with the built-in defaults and with
 * a rules routes entry of 0 and of 20 patterns, and its parts alone (the
 * heuristic, the trie). Prints median and 90th percentile nanoseconds per
 * request over batches of 1000, on a mix of 64 request targets.
 *
 *   build/bench/dynobs-route-bench [--quick]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../preload/route.h"
#include "benchutil.h"

#define NPATHS 64

static char paths[NPATHS][160];
static size_t lens[NPATHS];

/* Targets as services see them: ids of each kind, words, query strings,
 * depths 1 to 6. */
static void make_paths(void)
{
    for (unsigned i = 0; i < NPATHS; i++) {
        char *p = paths[i];
        size_t cap = sizeof paths[i];
        unsigned a = 1000u + i * 7919u, b = 0xabc00000u + i;
        switch (i % 8) {
        case 0: snprintf(p, cap, "/api/v1/users/%u", a); break;
        case 1:
            snprintf(p, cap, "/api/v1/users/%u/orders/%08x-e29b-41d4-a716-446655440000?expand=items",
                     a, b);
            break;
        case 2: snprintf(p, cap, "/healthz"); break;
        case 3: snprintf(p, cap, "/static/css/site.%x.css", b); break;
        case 4: snprintf(p, cap, "/products/%u/reviews?page=2&sort=new", a); break;
        case 5: snprintf(p, cap, "/"); break;
        case 6: snprintf(p, cap, "/search?q=shoes&size=%u", a); break;
        default: snprintf(p, cap, "/accounts/%08x%08x/settings/notifications", a, b); break;
        }
        lens[i] = strlen(p);
    }
}

/* A rules table of npat patterns, none of which the targets above match
 * but the last ("/products/{id}/reviews"): the worst case of a first-match
 * scan before the heuristic. */
static char strings[4096];
static uint32_t lists[32];
static struct dynobs_rules rules;
static struct dynobs_rule_routes entry;

static void make_rules(unsigned npat)
{
    size_t o = 1;
    strings[0] = '\0';
    for (unsigned i = 0; i < npat; i++) {
        char pat[64];
        if (i + 1 == npat)
            snprintf(pat, sizeof pat, "/products/{id}/reviews");
        else
            snprintf(pat, sizeof pat, "/service%u/:tenant/items/{item}", i);
        lists[i] = (uint32_t)o;
        memcpy(strings + o, pat, strlen(pat) + 1);
        o += strlen(pat) + 1;
    }
    rules.strings = strings;
    rules.strings_bytes = (uint32_t)o;
    rules.lists = lists;
    rules.nlists = npat;
    entry = (struct dynobs_rule_routes){DYNOBS_RULES_NONE, 0, npat, 0, 0,
                                        DYNOBS_ROUTE_HEURISTIC, 0, 0};
}

static volatile size_t sink;
static const struct dynobs_rules *use_r;
static const struct dynobs_rule_routes *use_rr;

static void op_server_route(int n)
{
    struct dynobs_route r;
    for (int i = 0; i < n; i++) {
        unsigned k = (unsigned)i & (NPATHS - 1);
        dynobs__server_route(use_r, use_rr, paths[k], lens[k], &r);
        sink += r.len;
    }
}

static void op_heuristic(int n)
{
    char out[DYNOBS_ROUTE_MAX];
    for (int i = 0; i < n; i++) {
        unsigned k = (unsigned)i & (NPATHS - 1);
        size_t pl = strcspn(paths[k], "?");
        sink += dynobs__route_heuristic(paths[k], pl, out, sizeof out);
    }
}

static struct dynobs_route_node nodes[DYNOBS_ROUTE_NODES];
static struct dynobs_route_trie trie = DYNOBS_ROUTE_TRIE_INIT(nodes, DYNOBS_ROUTE_NODES);

static void op_trie(int n)
{
    char out[DYNOBS_ROUTE_MAX];
    for (int i = 0; i < n; i++) {
        unsigned k = (unsigned)i & (NPATHS - 1);
        size_t pl = strcspn(paths[k], "?");
        sink += dynobs__route_fold(&trie, paths[k], pl, 0, DYNOBS_ROUTE_VALUES, out, sizeof out);
    }
}

static void op_clock(int n)
{
    for (int i = 0; i < n; i++)
        sink += bench_now_ns() & 1;
}

static void row(const char *what, void (*fn)(int), int batches)
{
    enum { BATCH = 1000 };
    double *v = malloc(sizeof(double) * (size_t)batches);
    fn(BATCH); /* warm-up: the trie holds the targets' routes */
    for (int i = 0; i < batches; i++) {
        uint64_t t0 = bench_now_ns();
        fn(BATCH);
        v[i] = (double)(bench_now_ns() - t0) / BATCH;
    }
    double med = bench_median(v, batches);
    printf("| %s | %.1f | %.1f |\n", what, med, v[batches * 9 / 10]);
    free(v);
}

int main(int argc, char **argv)
{
    int batches = argc > 1 && !strcmp(argv[1], "--quick") ? 200 : 2000;
    make_paths();
    printf("| route per request (64 targets, %d batches of 1000) | median ns | p90 ns |\n",
           batches);
    printf("| --- | --- | --- |\n");
    row("(reference) clock_gettime(CLOCK_MONOTONIC)", op_clock, batches);
    use_r = NULL;
    use_rr = NULL;
    row("server route, built-in defaults (heuristic + trie)", op_server_route, batches);
    make_rules(0);
    use_r = &rules;
    use_rr = &entry;
    row("server route, rules entry with 0 patterns", op_server_route, batches);
    make_rules(20);
    row("server route, 20 patterns (1 in 8 targets matches the last)", op_server_route,
        batches);
    row("heuristic alone (path to {id} form)", op_heuristic, batches);
    row("trie alone (no heuristic, trie warm)", op_trie, batches);
    printf("trie: %u nodes used, %llu segments folded\n", dynobs__route_nodes_used(),
           (unsigned long long)dynobs__route_folded());
    return 0;
}
