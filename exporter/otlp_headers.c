#define _GNU_SOURCE
#include "otlp_headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Copies at most n bytes of s into out (cap bytes), NUL-terminated;
 * returns the bytes copied. */
static size_t copy_cut(char *out, size_t cap, const char *s, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

int dx_otlp_header_next(const char **cursor, char line[DX_HEADER_LINE_MAX])
{
    const char *p = *cursor;
    /* Entries are separated by commas; empty ones (",,") are no entry. */
    while (*p == ',')
        p++;
    if (!*p) {
        *cursor = p;
        return 0;
    }
    const char *end = strchr(p, ',');
    if (!end)
        end = p + strlen(p);
    *cursor = end;
    while (p < end && *p == ' ')
        p++;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    /* A line break in a key would split the header line: not an entry. */
    if (!eq || eq == p || memchr(p, '\r', (size_t)(eq - p)) || memchr(p, '\n', (size_t)(eq - p))) {
        copy_cut(line, DX_HEADER_LINE_MAX, p, (size_t)(end - p));
        return -1;
    }
    /* The key as given, then ": ", then the decoded value; a key too long
     * for the line leaves no room for the value, which is then cut. */
    size_t o = copy_cut(line, DX_HEADER_LINE_MAX - 2, p, (size_t)(eq - p));
    line[o++] = ':';
    line[o++] = ' ';
    for (const char *v = eq + 1; v < end && o + 1 < DX_HEADER_LINE_MAX; v++) {
        char c = *v;
        if (c == '%' && v + 2 < end && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
            c = (char)(hexval(v[1]) << 4 | hexval(v[2]));
            v += 2;
        }
        /* Decoded or not, a line break would end the header line. */
        if (c != '\r' && c != '\n')
            line[o++] = c;
    }
    line[o] = '\0';
    return 1;
}

long dx_retry_after_parse(const char *line, size_t len)
{
    static const char name[] = "Retry-After:";
    const size_t nl = sizeof name - 1;
    if (len <= nl || strncasecmp(line, name, nl))
        return -1;
    char tmp[64];
    copy_cut(tmp, sizeof tmp, line + nl, len - nl);
    char *end;
    long s = strtol(tmp, &end, 10);
    return end != tmp && s >= 0 ? s : -1;
}
