#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dx_buf_init(struct dx_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void dx_buf_free(struct dx_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int grow(struct dx_buf *b, size_t need)
{
    if (b->overflow)
        return -1;
    if (b->len + need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    if (b->len + need + 1 > cap) {
        b->overflow = 1;
        return -1;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->overflow = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void dx_buf_put(struct dx_buf *b, const void *s, size_t n)
{
    if (grow(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void dx_buf_str(struct dx_buf *b, const char *s)
{
    dx_buf_put(b, s, strlen(s));
}

void dx_buf_printf(struct dx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        dx_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (grow(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dx_buf_u64(struct dx_buf *b, uint64_t v)
{
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    dx_buf_put(b, tmp + i, (size_t)(24 - i));
}

void dx_buf_num(struct dx_buf *b, double v)
{
    if (isnan(v)) {
        dx_buf_put(b, "NaN", 3);
    } else if (isinf(v)) {
        dx_buf_str(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        if (v < 0) {
            dx_buf_put(b, "-", 1);
            v = -v;
        }
        dx_buf_u64(b, (uint64_t)v);
    } else {
        char tmp[40];
        int n = dx_fmt_double(tmp, sizeof tmp, v);
        dx_buf_put(b, tmp, (size_t)n);
    }
}

int dx_fmt_double(char *out, size_t cap, double v)
{
    /* The shortest form that reads back as the same double: 0.005, not
     * 0.0050000000000000001. */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}
