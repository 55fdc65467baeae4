/*
 * Strict reading of a libyaml document for the rules compiler: every
 * function checks one node and, when it is not what the rules file
 * allows, fills the error with the node's line and column, the key path
 * being read and a message, and returns -EINVAL. Part of the compiler
 * (dynobs_rules_compile), never of the shim.
 */
#ifndef DYNOBS_COMMON_RULES_YAML_H
#define DYNOBS_COMMON_RULES_YAML_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "rules.h"

/* Returns from the calling function when x failed. */
#define TRY(x)          \
    do {                \
        int rc_ = (x);  \
        if (rc_ < 0)    \
            return rc_; \
    } while (0)

struct dynobs_ry {
    yaml_document_t doc;
    struct dynobs_rules_error *err;
    char path[256]; /* the key path being read, e.g. "dynobs.routes[1].patterns" */
    size_t plen;
};

/* Fills the error at node n (NULL: no place) and returns -EINVAL. */
int dynobs__ry_fail(struct dynobs_ry *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The key path: push a key or an index, pop back to what push returned. */
size_t dynobs__ry_push_key(struct dynobs_ry *y, const char *key);
size_t dynobs__ry_push_index(struct dynobs_ry *y, size_t i);
void dynobs__ry_pop(struct dynobs_ry *y, size_t at);

yaml_node_t *dynobs__ry_node(struct dynobs_ry *y, yaml_node_item_t i);
/* An empty plain scalar, "~" or "null". */
int dynobs__ry_is_null(const yaml_node_t *n);
int dynobs__ry_scalar_is(const yaml_node_t *n, const char *s);

/* Scalars. A string is any non-null scalar without NUL bytes, at most
 * DYNOBS_RULES_MAX_STRING bytes; integers, booleans and ratios are plain
 * (unquoted) scalars; a duration is "500ms", "5s", "2m", "1h" or an
 * integer of milliseconds. Ranges are inclusive. */
int dynobs__ry_get_str(struct dynobs_ry *y, yaml_node_t *n, const char **s, size_t *len);
int dynobs__ry_get_u32(struct dynobs_ry *y, yaml_node_t *n, uint32_t lo, uint32_t hi,
                       uint32_t *out);
int dynobs__ry_get_bool(struct dynobs_ry *y, yaml_node_t *n, int *out);
int dynobs__ry_get_ratio(struct dynobs_ry *y, yaml_node_t *n, double *out);
int dynobs__ry_get_duration(struct dynobs_ry *y, yaml_node_t *n, uint32_t lo, uint32_t hi,
                            uint32_t *ms);

/* A mapping whose keys are all in `keys` (NULL-ended), none twice. */
int dynobs__ry_check_map(struct dynobs_ry *y, yaml_node_t *n, const char *const *keys);
/* The value of a key of a checked mapping, or NULL. */
yaml_node_t *dynobs__ry_get(struct dynobs_ry *y, yaml_node_t *map, const char *key);

/* A sequence of at most max items. */
int dynobs__ry_check_seq(struct dynobs_ry *y, yaml_node_t *n, size_t max);
size_t dynobs__ry_seq_len(const yaml_node_t *n);
yaml_node_t *dynobs__ry_item(struct dynobs_ry *y, yaml_node_t *seq, size_t i);

#endif
