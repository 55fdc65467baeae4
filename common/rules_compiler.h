/*
 * The rules compiler's state and what its files share: rules_compile.c
 * (the growable arrays, the string pool, MATCH, the layout and the entry
 * points of rules.h), rules_otel.c (OpenTelemetry's keys and SAMPLER) and
 * rules_dynobs.c (the dynobs block). Private to those three files; each
 * function is described where it is defined.
 */
#ifndef DYNOBS_COMMON_RULES_COMPILER_H
#define DYNOBS_COMMON_RULES_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"
#include "rules_yaml.h"

/* A growable array of fixed-size elements. */
struct vec {
    char *p;
    size_t n, cap, size;
};

struct cx {
    struct dynobs_ry y; /* the YAML tree, the key path, the error */
    struct vec strings, lists, matches, conds, routes, samplers, filters, redacts, replaces;
    struct dynobs_rules_hdr hdr;
    /* instrumentation/development.general.sanitization.url */
    yaml_node_t *sensitive;
};

/* The YAML reader's functions (rules_yaml.h) under short names, on this
 * compiler's state. */
#define fail(c, ...) dynobs__ry_fail(&(c)->y, __VA_ARGS__)
#define push_key(c, k) dynobs__ry_push_key(&(c)->y, (k))
#define push_index(c, i) dynobs__ry_push_index(&(c)->y, (i))
#define pop(c, at) dynobs__ry_pop(&(c)->y, (at))
#define node(c, i) dynobs__ry_node(&(c)->y, (i))
#define item(c, seq, i) dynobs__ry_item(&(c)->y, (seq), (i))
#define get(c, map, key) dynobs__ry_get(&(c)->y, (map), (key))
#define check_map(c, n, keys) dynobs__ry_check_map(&(c)->y, (n), (keys))
#define check_seq(c, n, max) dynobs__ry_check_seq(&(c)->y, (n), (max))
#define get_str(c, n, s, l) dynobs__ry_get_str(&(c)->y, (n), (s), (l))
#define get_u32(c, n, lo, hi, out) dynobs__ry_get_u32(&(c)->y, (n), (lo), (hi), (out))
#define get_bool(c, n, out) dynobs__ry_get_bool(&(c)->y, (n), (out))
#define get_ratio(c, n, out) dynobs__ry_get_ratio(&(c)->y, (n), (out))
#define get_duration(c, n, lo, hi, ms) dynobs__ry_get_duration(&(c)->y, (n), (lo), (hi), (ms))
#define is_null dynobs__ry_is_null
#define scalar_is dynobs__ry_scalar_is
#define seq_len dynobs__ry_seq_len

/* Runs a call on a child node, with its key on the path meanwhile. */
#define AT(c, key, call)                   \
    do {                                   \
        size_t at_ = push_key((c), (key)); \
        TRY(call);                         \
        pop((c), at_);                     \
    } while (0)

/* ---- rules_compile.c: growable arrays, the string pool, MATCH ---- */

int dynobs__rc_oom(struct cx *c);
void *dynobs__rc_vec_push(struct vec *v, uint32_t *index);
uint32_t dynobs__rc_intern(struct cx *c, const char *s, size_t n, int *rc);
int dynobs__rc_get_ref(struct cx *c, yaml_node_t *n, uint32_t *ref);

/* Checks an item of a string list (dynobs__rc_str_list). */
typedef int (*str_check_fn)(struct cx *c, yaml_node_t *n, const char *s, size_t l);
int dynobs__rc_str_list(struct cx *c, yaml_node_t *n, str_check_fn check, int lower,
                        uint32_t *first, uint32_t *count);

/* MATCH's fields, whose keys field_keys names. */
enum { F_SERVICE, F_EXE, F_METHOD, F_SERVER, F_URL, F_DB, F_SPAN, F_METRIC, F_COUNT };

struct pmatch {
    /* Each field's globs: one, or several meaning any of them. */
    uint32_t refs[F_COUNT][DYNOBS_RULES_MAX_LIST];
    size_t n[F_COUNT];
    uint8_t kinds;
    uint32_t cond_first, cond_count;
    int any; /* something is set */
};

int dynobs__rc_expand_match(struct cx *c, yaml_node_t *at, const struct pmatch *m, uint32_t *idx,
                            size_t *count);
int dynobs__rc_parse_opt_match(struct cx *c, yaml_node_t *rule, struct pmatch *m, int required,
                               int *have);
int dynobs__rc_section_room(struct cx *c, yaml_node_t *at, const struct vec *v, size_t n,
                            const char *what);
int dynobs__rc_add_entries(struct cx *c, yaml_node_t *at, const struct pmatch *m, struct vec *v,
                           const char *what, const void *entry);

/* ---- rules_otel.c: OpenTelemetry's keys and SAMPLER ---- */

struct psampler {
    uint8_t kind;
    double ratio;
};

int dynobs__rc_parse_sampler(struct cx *c, yaml_node_t *n, int allow_parent, struct psampler *s);
int dynobs__rc_add_sampler(struct cx *c, uint32_t match, const struct psampler *s, uint8_t keep,
                           uint32_t slower_ms);
int dynobs__rc_parse_root(struct cx *c, yaml_node_t *root);

/* ---- rules_dynobs.c: the dynobs block ---- */

int dynobs__rc_check_header(struct cx *c, yaml_node_t *n, const char *s, size_t l);
int dynobs__rc_parse_dynobs(struct cx *c, yaml_node_t *n);

/* The shared functions under short names, as the YAML reader's above. */
#define oom dynobs__rc_oom
#define vec_push dynobs__rc_vec_push
#define intern dynobs__rc_intern
#define get_ref dynobs__rc_get_ref
#define str_list dynobs__rc_str_list
#define expand_match dynobs__rc_expand_match
#define parse_opt_match dynobs__rc_parse_opt_match
#define section_room dynobs__rc_section_room
#define add_entries dynobs__rc_add_entries
#define parse_sampler dynobs__rc_parse_sampler
#define add_sampler dynobs__rc_add_sampler
#define check_header dynobs__rc_check_header

#endif
