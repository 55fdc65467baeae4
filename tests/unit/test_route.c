/* Routes: patterns, the id heuristic, the segment trie, and the shim's
 * entry point with and without a rules routes entry. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "route.h"
#include "../../preload/route.h"

/* Both matchers (the walk, and the split path the shim uses) agree. */
static int match(const char *pattern, const char *path)
{
    struct dynobs_route_split sp;
    dynobs__route_split(path, strlen(path), &sp);
    int a = dynobs__route_match(pattern, path, strlen(path));
    cr_assert_eq(a, dynobs__route_match_split(pattern, &sp), "%s on %s", pattern, path);
    return a;
}

Test(route, long_path_split_falls_back_to_the_walk)
{
    char path[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(path, "/a");
    cr_assert(match("/a/*", path));
    cr_assert(!match("/a/b/*", path));
    cr_assert(!match("/a/{x}", path));
}

Test(route, pattern_params_and_literals)
{
    cr_assert(match("/users/{id}", "/users/123"));
    cr_assert(match("/users/:id", "/users/abc"));
    cr_assert(match("/users/{id}/posts/{post}", "/users/1/posts/2"));
    cr_assert(!match("/users/{id}", "/users"));
    cr_assert(!match("/users/{id}", "/users/"));
    cr_assert(!match("/users/{id}", "/users/1/posts"));
    cr_assert(!match("/users/{id}", "/accounts/1"));
    cr_assert(!match("/users", "/user"));
    cr_assert(!match("/user", "/users"));
    cr_assert(match("/", "/"));
    cr_assert(!match("/", "/a"));
}

Test(route, trailing_and_repeated_slashes_are_one_path)
{
    cr_assert(match("/users/{id}", "/users/1/"));
    cr_assert(match("/users/{id}", "//users//1"));
    cr_assert(match("/users/{id}/", "/users/1"));
    cr_assert(match("/", ""));
}

Test(route, last_star_matches_any_rest_nothing_included)
{
    cr_assert(match("/static/*", "/static/a/b/c.css"));
    cr_assert(match("/static/*", "/static/a"));
    cr_assert(match("/static/*", "/static"));
    cr_assert(match("/*", "/"));
    cr_assert(match("/*", "/anything/at/all"));
    cr_assert(!match("/static/*", "/other/a"));
    /* Not last: one segment. */
    cr_assert(match("/a/*/c", "/a/b/c"));
    cr_assert(!match("/a/*/c", "/a/c"));
    /* Braces and stars that are no parameter are literal. */
    cr_assert(match("/a/*x", "/a/*x"));
    cr_assert(!match("/a/*x", "/a/yx"));
    cr_assert(match("/a/{b", "/a/{b"));
    cr_assert(!match("/a/{b", "/a/c"));
    cr_assert(!match("/a/:", "/a/c"));
    cr_assert(!match("/ab", "/a"));
    cr_assert(!match("/a", "/ab"));
}

Test(route, pattern_query_never_given)
{
    /* Callers give the path without its query; the length bounds it. */
    const char *t = "/users/7?x=1";
    cr_assert(dynobs__route_match("/users/{id}", t, 8));
}

Test(route, pattern_text_normalised)
{
    char out[DYNOBS_ROUTE_MAX];
    cr_assert_eq(dynobs__route_pattern("/users/:id", out, sizeof out), 11);
    cr_assert_str_eq(out, "/users/{id}");
    dynobs__route_pattern("/users/{user_id}/posts/:post/", out, sizeof out);
    cr_assert_str_eq(out, "/users/{user_id}/posts/{post}");
    dynobs__route_pattern("/", out, sizeof out);
    cr_assert_str_eq(out, "/");
    dynobs__route_pattern("/static/*", out, sizeof out);
    cr_assert_str_eq(out, "/static/*");
    /* Too long: cut at a segment boundary. */
    char small[16];
    dynobs__route_pattern("/abcdef/:ghijkl/mnop", small, sizeof small);
    cr_assert_str_eq(small, "/abcdef/*");
}

static int is_id(const char *s)
{
    return dynobs__route_is_id(s, strlen(s));
}

Test(route, heuristic_ids_fold)
{
    const char *ids[] = {"0", "123", "20241129", "550e8400-e29b-41d4-a716-446655440000",
                         "550E8400-E29B-41D4-A716-446655440000", "5f3a9c2e", "DEADBEEF01",
                         "0123456789abcdef0123456789abcdef", "dGhpcyBpcyBhIHRva2Vu1x",
                         "aB3_kd-93kdJ3kdl", "1234-5678-9012-3456", "a=b", "x,y", "a b",
                         "quote\"d", "tab\tx"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        cr_assert(is_id(ids[i]), "%s should be an id", ids[i]);
}

Test(route, heuristic_words_kept)
{
    const char *words[] = {"users", "v1", "v2", "api", "2fa", "deadbeef", "abc123", "ab12cd",
                           "index.html", "favicon.ico", "getting-started", "installation-guide",
                           "abcdefghijklmnopq", "v1.2.3", "2024-01-15", "{id}", "oauth2"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        cr_assert(!is_id(words[i]), "%s should be kept", words[i]);
}

Test(route, heuristic_path)
{
    char out[DYNOBS_ROUTE_MAX];
    const char *p = "/api/v1/users/123/orders/550e8400-e29b-41d4-a716-446655440000/";
    dynobs__route_heuristic(p, strlen(p), out, sizeof out);
    cr_assert_str_eq(out, "/api/v1/users/{id}/orders/{id}");
    dynobs__route_heuristic("", 0, out, sizeof out);
    cr_assert_str_eq(out, "/");
    /* Depth: 16 segments, then a last "*". */
    char deep[128] = "";
    for (int i = 0; i < 20; i++)
        strcat(deep, "/a");
    dynobs__route_heuristic(deep, strlen(deep), out, sizeof out);
    cr_assert_str_eq(out, "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/*");
}

Test(route, heuristic_cut_at_segment_boundary)
{
    char out[DYNOBS_ROUTE_MAX];
    char p[400] = "";
    for (int i = 0; i < 12; i++)
        strcat(p, "/segment-number-x"); /* 17 bytes each */
    size_t n = dynobs__route_heuristic(p, strlen(p), out, sizeof out);
    cr_assert_lt(n, DYNOBS_ROUTE_MAX);
    cr_assert_eq(n, strlen(out));
    cr_assert_eq(strcmp(out + n - 2, "/*"), 0, "%s", out);
    cr_assert_eq((n - 2) % 17, 0, "cut inside a segment: %s", out);
}

#define NODES 64
static struct dynobs_route_node pool[NODES];

static const char *fold(struct dynobs_route_trie *t, const char *path, unsigned flags,
                        unsigned max)
{
    static char out[DYNOBS_ROUTE_MAX];
    dynobs__route_fold(t, path, strlen(path), flags, max, out, sizeof out);
    return out;
}

Test(route, trie_folds_the_value_after_n)
{
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    char path[64];
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "/docs/page%c/edit", 'a' + i);
        cr_assert_str_eq(fold(&t, path, DYNOBS_ROUTE_F_HEURISTIC, 10), path);
    }
    cr_assert_eq(t.folded, 0);
    /* The 11th distinct value and every later one: {id}. */
    cr_assert_str_eq(fold(&t, "/docs/pagek/edit", DYNOBS_ROUTE_F_HEURISTIC, 10),
                     "/docs/{id}/edit");
    cr_assert_str_eq(fold(&t, "/docs/pagel/edit", DYNOBS_ROUTE_F_HEURISTIC, 10),
                     "/docs/{id}/edit");
    cr_assert_eq(t.folded, 2);
    /* Values already kept stay themselves. */
    cr_assert_str_eq(fold(&t, "/docs/pagea/edit", DYNOBS_ROUTE_F_HEURISTIC, 10),
                     "/docs/pagea/edit");
    /* The heuristic's {id} does not count as a value. */
    cr_assert_str_eq(fold(&t, "/docs/42/edit", DYNOBS_ROUTE_F_HEURISTIC, 10), "/docs/{id}/edit");
    /* Another node has its own count. */
    cr_assert_str_eq(fold(&t, "/blog/pagek", DYNOBS_ROUTE_F_HEURISTIC, 10), "/blog/pagek");
}

Test(route, trie_n_from_rules)
{
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    cr_assert_str_eq(fold(&t, "/a", 0, 2), "/a");
    cr_assert_str_eq(fold(&t, "/b", 0, 2), "/b");
    cr_assert_str_eq(fold(&t, "/c", 0, 2), "/{id}");
    /* Without the heuristic (unmatched: path), numbers are values too. */
    struct dynobs_route_trie u = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    memset(pool, 0, sizeof pool);
    cr_assert_str_eq(fold(&u, "/1", 0, 10), "/1");
    cr_assert_str_eq(fold(&u, "/1", DYNOBS_ROUTE_F_HEURISTIC, 10), "/{id}");
    /* ... but a segment a label cannot carry is not. */
    cr_assert_str_eq(fold(&u, "/a=b", 0, 10), "/{id}");
    /* A literal "{id}" takes no place among the values. */
    struct dynobs_route_trie w = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    memset(pool, 0, sizeof pool);
    cr_assert_str_eq(fold(&w, "/{id}", 0, 1), "/{id}");
    cr_assert_str_eq(fold(&w, "/a", 0, 1), "/a");
    cr_assert_str_eq(fold(&w, "/b", 0, 1), "/{id}");
}

Test(route, trie_long_segment_is_id)
{
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    char path[80] = "/";
    memset(path + 1, 'a', DYNOBS_ROUTE_SEG_MAX + 1);
    cr_assert_str_eq(fold(&t, path, 0, 10), "/{id}");
    path[DYNOBS_ROUTE_SEG_MAX + 1] = '\0';
    cr_assert_eq(strlen(fold(&t, path, 0, 10)), DYNOBS_ROUTE_SEG_MAX + 1);
}

Test(route, low_cardinality_keeps_the_first_segment)
{
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(pool, NODES);
    unsigned f = DYNOBS_ROUTE_F_HEURISTIC | DYNOBS_ROUTE_F_FIRST;
    cr_assert_str_eq(fold(&t, "/users/123/posts", f, 10), "/users/*");
    cr_assert_str_eq(fold(&t, "/users", f, 10), "/users");
    cr_assert_str_eq(fold(&t, "/123", f, 10), "/{id}");
    cr_assert_str_eq(fold(&t, "/", f, 10), "/");
}

Test(route, pool_exhaustion_folds_and_counts)
{
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(pool, 8);
    /* Root plus 7 nodes: "/a".."/g" fill the pool. */
    for (char c = 'a'; c <= 'g'; c++) {
        char p[3] = {'/', c, 0};
        cr_assert_str_eq(fold(&t, p, 0, 100), p);
    }
    cr_assert_eq(t.full, 0);
    cr_assert_str_eq(fold(&t, "/h/x/y", 0, 100), "/{id}/*");
    cr_assert_str_eq(fold(&t, "/h", 0, 100), "/{id}");
    cr_assert_eq(t.full, 2);
    /* What is in the trie is still found. */
    cr_assert_str_eq(fold(&t, "/c", 0, 100), "/c");
    cr_assert_eq(t.used, 8);
}

/* Threads adding the same and different values at once: every node keeps
 * at most N literal children, each value appears once, and no value is
 * lost or duplicated. ThreadSanitizer runs the same scenario in
 * tests/tsan/route_stress.c. */
#define THREADS 4
static struct dynobs_route_node big[DYNOBS_ROUTE_NODES];
static struct dynobs_route_trie shared = DYNOBS_ROUTE_TRIE_INIT(big, DYNOBS_ROUTE_NODES);

static void *inserter(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char path[64], out[DYNOBS_ROUTE_MAX];
    for (unsigned i = 0; i < 20000; i++) {
        unsigned v = (i * 7 + id) % 40;
        snprintf(path, sizeof path, "/s%u/t%u/u%u", v % 13, v, (i + id) % 17);
        dynobs__route_fold(&shared, path, strlen(path), 0, 10, out, sizeof out);
    }
    return NULL;
}

static void check_node(const struct dynobs_route_trie *t, uint32_t n, unsigned max)
{
    unsigned lits = 0;
    for (uint32_t i = t->nodes[n].head; i; i = t->nodes[i - 1].next) {
        const struct dynobs_route_node *c = &t->nodes[i - 1];
        lits += !(c->len == 4 && !memcmp(c->seg, "{id}", 4));
        for (uint32_t j = c->next; j; j = t->nodes[j - 1].next)
            cr_assert(!(t->nodes[j - 1].len == c->len && !memcmp(t->nodes[j - 1].seg, c->seg, c->len)),
                      "duplicate child %.*s", c->len, c->seg);
        check_node(t, i - 1, max);
    }
    cr_assert_leq(lits, max);
}

Test(route, concurrent_inserts_keep_the_bounds)
{
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, inserter, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    check_node(&shared, 0, 10);
    /* The first level has exactly 10 values and an {id}. */
    unsigned kids = 0;
    for (uint32_t i = shared.nodes[0].head; i; i = shared.nodes[i - 1].next)
        kids++;
    cr_assert_eq(kids, 11);
    cr_assert_gt(shared.folded, 0);
    cr_assert_eq(shared.full, 0);
}

/* The shim's entry point. */

static const char *route(const char *target, int *ignored)
{
    static struct dynobs_route r;
    dynobs__server_route(NULL, NULL, target, strlen(target), &r);
    if (ignored)
        *ignored = r.ignored;
    cr_assert_eq(r.len, strlen(r.text));
    return r.text;
}

Test(route, server_defaults)
{
    int ign = 1;
    cr_assert_str_eq(route("/users/123", &ign), "/users/{id}");
    cr_assert_eq(ign, 0);
    cr_assert_str_eq(route("/users/456?sort=name&id=7", NULL), "/users/{id}");
    cr_assert_str_eq(route("/users/456#frag", NULL), "/users/{id}");
    cr_assert_str_eq(route("/", NULL), "/");
    cr_assert_str_eq(route("/?x=1", NULL), "/");
    cr_assert_str_eq(route("http://example.com/users/9?x", NULL), "/users/{id}");
    cr_assert_str_eq(route("http://example.com", NULL), "/");
    cr_assert_str_eq(route("*", NULL), "");
    cr_assert_str_eq(route("example.com:443", NULL), "");
    cr_assert_eq(dynobs__route_nodes_used() >= 3, 1);
}

/* A hand-built table: the string pool and its lists, as rules_table.c
 * would present them. */
static const char strings[] = "\0/users/:id\0/static/*\0/healthz\0/orders/{order}/items\0";
static const uint32_t lists[] = {1, 12, 31, 22};

static struct dynobs_route with_rules(uint8_t unmatched, const char *target)
{
    struct dynobs_rules r = {0};
    r.strings = strings;
    r.strings_bytes = sizeof strings;
    r.lists = lists;
    r.nlists = 4;
    struct dynobs_rule_routes rr = {DYNOBS_RULES_NONE, 0, 3, 3, 1, unmatched, 0, 0};
    struct dynobs_route out;
    dynobs__server_route(&r, &rr, target, strlen(target), &out);
    return out;
}

Test(route, server_with_rules)
{
    struct dynobs_route o = with_rules(DYNOBS_ROUTE_HEURISTIC, "/users/abc?x=1");
    cr_assert_str_eq(o.text, "/users/{id}");
    cr_assert_eq(o.ignored, 0);
    cr_assert_str_eq(with_rules(0, "/orders/7/items").text, "/orders/{order}/items");
    cr_assert_str_eq(with_rules(0, "/static/css/a.css").text, "/static/*");
    o = with_rules(0, "/healthz");
    cr_assert_eq(o.ignored, 1);
    cr_assert_str_eq(o.text, "/healthz");
    cr_assert_str_eq(with_rules(DYNOBS_ROUTE_WILDCARD, "/other/1").text, "/*");
    cr_assert_str_eq(with_rules(DYNOBS_ROUTE_LOW_CARDINALITY, "/other/1/x").text, "/other/*");
    cr_assert_str_eq(with_rules(DYNOBS_ROUTE_PATH, "/pathmode/77").text, "/pathmode/77");
    cr_assert_str_eq(with_rules(DYNOBS_ROUTE_HEURISTIC, "/heur/77").text, "/heur/{id}");
}
