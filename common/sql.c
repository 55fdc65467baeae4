#include "sql.h"

#include <string.h>
#include <strings.h>

static int ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static int space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Length of a dollar-quote tag at q ("$$" or "$tag$"), 0 when none. */
static size_t dollar_tag(const char *q)
{
    if (q[0] != '$')
        return 0;
    size_t i = 1;
    while (q[i] && (ident_char(q[i]) && q[i] != '$'))
        i++;
    return q[i] == '$' && !(i > 1 && q[1] >= '0' && q[1] <= '9') ? i + 1 : 0;
}

size_t dynobs__sql_scrub(const char *q, char *out, size_t cap)
{
    size_t o = 0;
#define PUT(c)                                                                             \
    do {                                                                                   \
        char put_ = (c);                                                                   \
        if (o + 1 < cap)                                                                   \
            out[o++] = put_;                                                               \
    } while (0)
    for (size_t i = 0; q[i];) {
        char c = q[i];
        if (c == '\'' || ((c == 'E' || c == 'e') && q[i + 1] == '\'' &&
                          (i == 0 || !ident_char(q[i - 1])))) {
            i += c == '\'' ? 1 : 2;
            while (q[i]) {
                if (q[i] == '\\' && q[i + 1] && c != '\'') { /* E'' escapes */
                    i += 2;
                    continue;
                }
                if (q[i] == '\'') {
                    if (q[i + 1] == '\'') {
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                i++;
            }
            PUT('?');
        } else if (c == '$' && dollar_tag(q + i)) {
            size_t tl = dollar_tag(q + i);
            const char *close_ = NULL;
            for (const char *p = q + i + tl; *p && !close_; p++)
                if (!strncmp(p, q + i, tl))
                    close_ = p;
            i = close_ ? (size_t)(close_ - q) + tl : strlen(q);
            PUT('?');
        } else if (c == '-' && q[i + 1] == '-') {
            while (q[i] && q[i] != '\n')
                i++;
        } else if (c == '/' && q[i + 1] == '*') {
            const char *e = strstr(q + i + 2, "*/");
            i = e ? (size_t)(e - q) + 2 : strlen(q);
        } else if (c >= '0' && c <= '9' && (i == 0 || !ident_char(q[i - 1]))) {
            while ((q[i] >= '0' && q[i] <= '9') || q[i] == '.' || q[i] == 'e' || q[i] == 'E' ||
                   ((q[i] == '+' || q[i] == '-') && (q[i - 1] == 'e' || q[i - 1] == 'E')))
                i++;
            PUT('?');
        } else if (ident_char(c)) {
            for (; q[i] && ident_char(q[i]); i++)
                PUT(q[i]);
        } else {
            PUT(c);
            i++;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
#undef PUT
    return o;
}

static const char *skip_space_and_comments(const char *p)
{
    for (;;) {
        while (space(*p))
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else if (*p == '(') {
            p++; /* "(SELECT ...)" */
        } else {
            return p;
        }
    }
}

static size_t word(const char *p, char *out, size_t cap, int upper)
{
    size_t n = 0;
    while (ident_char(p[n]) || p[n] == '.' || p[n] == '"') {
        if (n + 1 < cap) {
            char c = p[n];
            out[n] = upper && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        }
        n++;
    }
    out[n < cap ? n : cap - 1] = '\0';
    return n;
}

void dynobs__sql_operation(const char *q, char *out, size_t cap)
{
    const char *p = skip_space_and_comments(q);
    size_t n = 0;
    while (p[n] && ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z')))
        n++;
    if (n == 0 || n >= cap) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = p[i] >= 'a' && p[i] <= 'z' ? (char)(p[i] - 32) : p[i];
    out[n] = '\0';
}

/* At a quote: the position of its closing quote ('' escapes it), or NULL
 * for an unterminated literal. */
static const char *skip_literal(const char *p)
{
    p++;
    while (*p && !(*p == '\'' && p[1] != '\''))
        p += *p == '\'' ? 2 : 1;
    return *p ? p : NULL;
}

/* Finds keyword kw (case-insensitive, whole word) outside literals. */
static const char *find_kw(const char *q, const char *kw)
{
    size_t kl = strlen(kw);
    for (const char *p = q; *p; p++) {
        if (*p == '\'') {
            if (!(p = skip_literal(p)))
                return NULL;
            continue;
        }
        if ((p == q || !ident_char(p[-1])) && !strncasecmp(p, kw, kl) && !ident_char(p[kl]))
            return p + kl;
    }
    return NULL;
}

void dynobs__sql_collection(const char *q, char *out, size_t cap)
{
    char op[16];
    out[0] = '\0';
    dynobs__sql_operation(q, op, sizeof op);
    const char *after = NULL;
    if (!strcmp(op, "SELECT") || !strcmp(op, "DELETE"))
        after = find_kw(q, "FROM");
    else if (!strcmp(op, "INSERT"))
        after = find_kw(q, "INTO");
    else if (!strcmp(op, "UPDATE"))
        after = skip_space_and_comments(q) + 6;
    if (!after)
        return;
    while (space(*after))
        after++;
    if (!strncasecmp(after, "ONLY", 4) && space(after[4]))
        after += 5;
    while (space(*after))
        after++;
    if (*after == '(')
        return; /* a subquery: no single table */
    word(after, out, cap, 0);
}

int dynobs__sql_has_comment(const char *q)
{
    for (const char *p = q; *p; p++) {
        if (*p == '\'') {
            if (!(p = skip_literal(p)))
                return 0;
            continue;
        }
        if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*'))
            return 1;
    }
    return 0;
}

size_t dynobs__sql_comment_at(const char *q, size_t len)
{
    size_t e = len;
    while (e && space(q[e - 1]))
        e--;
    if (e && q[e - 1] == ';') {
        e--;
        while (e && space(q[e - 1]))
            e--;
    }
    return e;
}
