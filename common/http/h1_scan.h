/*
 * Small scanning steps that the HTTP/1 request and response readers share
 * (private to common/http/).
 */
#ifndef DYNOBS_COMMON_HTTP_H1_SCAN_H
#define DYNOBS_COMMON_HTTP_H1_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The bytes from p[i] up to the next line feed, or to the end of the
 * buffer when there is none in it. */
static inline size_t dynobs__h1_line_run(const uint8_t *p, size_t n, size_t i)
{
    const uint8_t *nl = memchr(p + i, '\n', n - i);
    return nl ? (size_t)(nl - (p + i)) : n - i;
}

/* The code of a complete status line "HTTP/1.x NNN ...", or -1 when the
 * line is not one (a class outside 1xx-5xx included). */
static inline int dynobs__h1_status_code(const char *s, size_t len)
{
    if (len < 12 || memcmp(s, "HTTP/1.", 7) || s[8] != ' ' || s[9] < '1' || s[9] > '5' ||
        s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        return -1;
    return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}

/* One byte of a status line, kept while status (cap bytes, *len used)
 * has room: 0, or -1 when the line can no longer start "HTTP/1.". */
static inline int dynobs__h1_status_byte(char *status, size_t cap, uint8_t *len, uint8_t c)
{
    if (*len < cap)
        status[(*len)++] = (char)c;
    return *len <= 7 && c != (uint8_t) "HTTP/1."[*len - 1] ? -1 : 0;
}

/* One byte of a status line: 1 at its line feed, with *code set from the
 * whole line; 0 for more; -1 when it is not a status line. */
static inline int dynobs__h1_status_step(char *status, size_t cap, uint8_t *len, uint8_t c,
                                         int *code)
{
    if (c == '\n') {
        *code = dynobs__h1_status_code(status, *len); /* "HTTP/1.x NNN" */
        return *code < 0 ? -1 : 1;
    }
    return dynobs__h1_status_byte(status, cap, len, c);
}

/* Skips the rest of a header line nobody watches: i to the byte before
 * its line feed (or the buffer's last byte), *line_len grown by as much. */
static inline void dynobs__h1_skip_line(const uint8_t *p, size_t n, size_t *i, uint32_t *line_len)
{
    size_t run = dynobs__h1_line_run(p, n, *i);
    *line_len += (uint32_t)run;
    *i += run - 1;
}

#endif
