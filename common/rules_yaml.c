/*
 * Strict reading of a libyaml node tree for the rules compiler
 * (rules_compile.c): scalars of each type the rules file uses, mappings
 * whose keys are all known and none twice, bounded sequences, and errors
 * that name the offending node's line, column and key path.
 */
#include "rules_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors and key paths ---- */

int dynobs__ry_fail(struct dynobs_ry *y, const yaml_node_t *n, const char *fmt, ...)
{
    struct dynobs_rules_error *e = y->err;
    e->line = n ? (unsigned)n->start_mark.line + 1 : 0;
    e->column = n ? (unsigned)n->start_mark.column + 1 : 0;
    snprintf(e->path, sizeof e->path, "%s", y->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A path too long for its buffer is cut, never overrun. */
static size_t extend(struct dynobs_ry *y, size_t at, int w)
{
    if (w < 0)
        return at;
    return at + (size_t)w >= sizeof y->path ? sizeof y->path - 1 : at + (size_t)w;
}

size_t dynobs__ry_push_key(struct dynobs_ry *y, const char *key)
{
    size_t at = y->plen;
    int w = snprintf(y->path + at, sizeof y->path - at, "%s%s", at ? "." : "", key);
    y->plen = extend(y, at, w);
    return at;
}

size_t dynobs__ry_push_index(struct dynobs_ry *y, size_t i)
{
    size_t at = y->plen;
    int w = snprintf(y->path + at, sizeof y->path - at, "[%zu]", i);
    y->plen = extend(y, at, w);
    return at;
}

void dynobs__ry_pop(struct dynobs_ry *y, size_t at)
{
    y->plen = at;
    y->path[at] = '\0';
}

/* ---- scalars ---- */

yaml_node_t *dynobs__ry_node(struct dynobs_ry *y, yaml_node_item_t i)
{
    return yaml_document_get_node(&y->doc, i);
}

int dynobs__ry_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(v, "~") || !strcmp(v, "null") ||
           !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* A string: any non-null scalar without NUL bytes, at most
 * DYNOBS_RULES_MAX_STRING bytes. */
int dynobs__ry_get_str(struct dynobs_ry *y, yaml_node_t *n, const char **s, size_t *len)
{
    if (n->type != YAML_SCALAR_NODE || dynobs__ry_is_null(n))
        return dynobs__ry_fail(y, n, "expected a string");
    size_t l = n->data.scalar.length;
    if (l > DYNOBS_RULES_MAX_STRING)
        return dynobs__ry_fail(y, n, "string longer than %u bytes", DYNOBS_RULES_MAX_STRING);
    if (memchr(n->data.scalar.value, '\0', l))
        return dynobs__ry_fail(y, n, "string holds a NUL byte");
    *s = (const char *)n->data.scalar.value;
    *len = l;
    return 0;
}


/* Integers and numbers are plain scalars: "5" in quotes is a string. */
static int get_uint(struct dynobs_ry *y, yaml_node_t *n, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        dynobs__ry_is_null(n))
        return dynobs__ry_fail(y, n, "expected an integer");
    const char *s = (const char *)n->data.scalar.value;
    uint64_t v = 0;
    size_t l = n->data.scalar.length;
    if (l == 0)
        return dynobs__ry_fail(y, n, "expected an integer");
    if (l > 12)
        return dynobs__ry_fail(y, n, "integer out of range %llu..%llu", (unsigned long long)lo,
                    (unsigned long long)hi);
    for (size_t i = 0; i < l; i++) {
        if (s[i] < '0' || s[i] > '9')
            return dynobs__ry_fail(y, n, "expected an integer");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < lo || v > hi)
        return dynobs__ry_fail(y, n, "integer out of range %llu..%llu", (unsigned long long)lo,
                    (unsigned long long)hi);
    *out = v;
    return 0;
}

int dynobs__ry_get_u32(struct dynobs_ry *y, yaml_node_t *n, uint32_t lo, uint32_t hi,
                       uint32_t *out)
{
    uint64_t v = 0;
    TRY(get_uint(y, n, lo, hi, &v));
    *out = (uint32_t)v;
    return 0;
}

int dynobs__ry_get_bool(struct dynobs_ry *y, yaml_node_t *n, int *out)
{
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *s = (const char *)n->data.scalar.value;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
            *out = 1;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
            *out = 0;
            return 0;
        }
    }
    return dynobs__ry_fail(y, n, "expected true or false");
}

int dynobs__ry_get_ratio(struct dynobs_ry *y, yaml_node_t *n, double *out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        dynobs__ry_is_null(n))
        return dynobs__ry_fail(y, n, "expected a number from 0 to 1");
    const char *s = (const char *)n->data.scalar.value;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0.0 && v <= 1.0))
        return dynobs__ry_fail(y, n, "ratio must be a number from 0 to 1");
    *out = v;
    return 0;
}

/* "5s", "500ms", "2m", "1h", or an integer of milliseconds. */
int dynobs__ry_get_duration(struct dynobs_ry *y, yaml_node_t *n, uint32_t lo, uint32_t hi,
                            uint32_t *ms)
{
    const char what[] = "expected a duration (\"500ms\", \"5s\", \"2m\", \"1h\" or "
                               "an integer of milliseconds)";
    if (n->type != YAML_SCALAR_NODE || dynobs__ry_is_null(n))
        return dynobs__ry_fail(y, n, what);
    const char *s = (const char *)n->data.scalar.value;
    size_t i = 0;
    uint64_t v = 0;
    while (s[i] >= '0' && s[i] <= '9' && i < 12)
        v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == 0)
        return dynobs__ry_fail(y, n, what);
    const char *unit = s + i;
    uint64_t mul;
    if (!*unit && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        mul = 1;
    else if (!strcmp(unit, "ms"))
        mul = 1;
    else if (!strcmp(unit, "s"))
        mul = 1000;
    else if (!strcmp(unit, "m"))
        mul = 60000;
    else if (!strcmp(unit, "h"))
        mul = 3600000;
    else
        return dynobs__ry_fail(y, n, what);
    v *= mul;
    if (v < lo || v > hi)
        return dynobs__ry_fail(y, n, "duration out of range %ums..%ums", lo, hi);
    *ms = (uint32_t)v;
    return 0;
}

/* ---- mappings and sequences ---- */

int dynobs__ry_scalar_is(const yaml_node_t *n, const char *s)
{
    return n->type == YAML_SCALAR_NODE && !strcmp((const char *)n->data.scalar.value, s);
}

/* Checks that n is a mapping whose keys are all in `keys` (NULL-ended),
 * none twice. */
int dynobs__ry_check_map(struct dynobs_ry *y, yaml_node_t *n, const char *const *keys)
{
    if (n->type != YAML_MAPPING_NODE)
        return dynobs__ry_fail(y, n, "expected a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = dynobs__ry_node(y, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return dynobs__ry_fail(y, k, "expected a key");
        const char *name = (const char *)k->data.scalar.value;
        size_t at = dynobs__ry_push_key(y, name);
        size_t i;
        for (i = 0; keys[i]; i++)
            if (!strcmp(keys[i], name))
                break;
        if (!keys[i])
            return dynobs__ry_fail(y, k, "unknown key '%s'", name);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (dynobs__ry_scalar_is(dynobs__ry_node(y, q->key), name))
                return dynobs__ry_fail(y, k, "key '%s' given twice", name);
        dynobs__ry_pop(y, at);
    }
    return 0;
}

yaml_node_t *dynobs__ry_get(struct dynobs_ry *y, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++)
        if (dynobs__ry_scalar_is(dynobs__ry_node(y, p->key), key))
            return dynobs__ry_node(y, p->value);
    return NULL;
}

size_t dynobs__ry_seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

int dynobs__ry_check_seq(struct dynobs_ry *y, yaml_node_t *n, size_t max)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return dynobs__ry_fail(y, n, "expected a list");
    if (dynobs__ry_seq_len(n) > max)
        return dynobs__ry_fail(y, n, "more than %zu items", max);
    return 0;
}

yaml_node_t *dynobs__ry_item(struct dynobs_ry *y, yaml_node_t *seq, size_t i)
{
    return dynobs__ry_node(y, seq->data.sequence.items.start[i]);
}
