#define _GNU_SOURCE
#include "redact.h"

#include <string.h>

#include "span.h"

#include "../common/record.h"

#define REDACTED "REDACTED"

static int listed(const struct dynobs_rules *r, uint32_t first, uint32_t count, const char *s,
                  size_t n)
{
    for (uint32_t i = 0; i < count; i++) {
        const char *v = dynobs__rules_list(r, first, i);
        if (strlen(v) == n && memcmp(v, s, n) == 0)
            return 1;
    }
    return 0;
}

size_t dynobs__redact_query(const struct dynobs_rules *r, const struct dynobs_rule_redact *rd,
                            const char *q, size_t n, char *out, size_t cap)
{
    if (!r || !rd || rd->query != DYNOBS_QUERY_REDACT || !n || cap == 0)
        return 0;
    size_t o = 0, i = 0;
    while (i <= n) {
        /* One key=value pair, up to the next '&'. */
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t kl = eq ? (size_t)(eq - (q + i)) : end - i;
        int keep = !eq || listed(r, rd->query_first, rd->query_count, q + i, kl);
        const char *part = keep ? q + i : NULL;
        size_t pl = keep ? end - i : kl + 1 + sizeof REDACTED - 1;
        if (o + (o ? 1 : 0) + pl > cap)
            break; /* whole pairs only */
        if (o)
            out[o++] = '&';
        if (part) {
            memcpy(out + o, part, pl);
        } else {
            memcpy(out + o, q + i, kl + 1);
            memcpy(out + o + kl + 1, REDACTED, sizeof REDACTED - 1);
        }
        o += pl;
        i = end + 1;
    }
    return o;
}

int dynobs__redact_header_ok(const struct dynobs_rules *r, const struct dynobs_rule_redact *rd,
                             const char *name, size_t nlen)
{
    static const char never[][20] = {"authorization", "cookie", "set-cookie",
                                     "proxy-authorization"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strlen(never[i]) == nlen && strncasecmp(never[i], name, nlen) == 0)
            return 0;
    if (!r || !rd || !rd->headers_set)
        return 1;
    for (uint32_t i = 0; i < rd->headers_count; i++) {
        const char *v = dynobs__rules_list(r, rd->headers_first, i);
        if (strlen(v) == nlen && strncasecmp(v, name, nlen) == 0)
            return 1;
    }
    return 0;
}

/* The replacements of a rule that has some, on a recording span: out of
 * the line of the usual span, which has none. */
static DYNOBS_COLD void replace(struct dynobs_span *s, const struct dynobs_rules *r,
                                const struct dynobs_rule_redact *rd)
{
    /* Keys to replace are gathered first: replacing moves the items. */
    struct {
        char key[256];
        uint32_t with;
    } hits[16];
    size_t nhits = 0, off = s->items_off;
    struct dynobs_item it;
    while (nhits < sizeof hits / sizeof hits[0] &&
           dynobs__item_next(s->body, s->used, &off, &it) == 1) {
        if (it.tag != DYNOBS_ITEM_SPAN_ATTR || it.type != DYNOBS_ATTR_STRING)
            continue;
        for (uint32_t k = 0; k < rd->replace_count; k++) {
            const struct dynobs_rule_replace *x = &r->replaces[rd->replace_first + k];
            char key[256];
            memcpy(key, it.key, it.key_len);
            key[it.key_len] = '\0';
            if (!dynobs__glob(dynobs__rules_str(r, x->key), key, it.key_len) ||
                (x->value && !dynobs__glob(dynobs__rules_str(r, x->value), it.str, it.str_len)))
                continue;
            memcpy(hits[nhits].key, key, it.key_len + 1);
            hits[nhits++].with = x->with;
            break;
        }
    }
    for (size_t i = 0; i < nhits; i++) {
        const char *with = dynobs__rules_str(r, hits[i].with);
        if (!*with)
            with = REDACTED;
        (void)dynobs__span_set(s, hits[i].key, DYNOBS_ATTR_STRING, with, strlen(with));
    }
}

size_t dynobs__redact_url_values(const char *t, size_t n, char *out, size_t o, size_t cap)
{
    int in_query = 0, in_value = 0;
    for (size_t i = 0; i < n && o + 10 < cap; i++) {
        char ch = t[i];
        if (ch == '#')
            break;
        if (ch == '?' && !in_query) {
            in_query = 1;
        } else if (in_query && ch == '=' && !in_value) {
            memcpy(out + o, "=REDACTED", 9);
            o += 9;
            in_value = 1;
            continue;
        } else if (in_query && ch == '&') {
            in_value = 0;
        }
        if (!in_value)
            out[o++] = ch;
    }
    return o;
}

void dynobs__redact_span(struct dynobs_span *s, const struct dynobs_rules *r,
                         const struct dynobs_rule_redact *rd)
{
    if (r && rd && rd->replace_count && s->recording)
        replace(s, r, rd);
}
