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

#endif
