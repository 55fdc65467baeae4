/*
 * A growable output buffer with a hard cap: past the cap, appends are
 * refused and `overflow` is set, so a huge exposition fails visibly
 * instead of exhausting memory.
 */
#ifndef DYNOBS_EXPORTER_BUF_H
#define DYNOBS_EXPORTER_BUF_H

#include <stddef.h>
#include <stdint.h>

struct dx_buf {
    char *p;
    size_t len, cap, max;
    int overflow;
};

void dx_buf_init(struct dx_buf *b, size_t max);
void dx_buf_free(struct dx_buf *b);
void dx_buf_put(struct dx_buf *b, const void *s, size_t n);
void dx_buf_str(struct dx_buf *b, const char *s);
void dx_buf_printf(struct dx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A number as Prometheus writes it: integers without exponent, NaN, +Inf. */
void dx_buf_num(struct dx_buf *b, double v);
void dx_buf_u64(struct dx_buf *b, uint64_t v);
/* The shortest decimal that reads back as v; returns its length. */
int dx_fmt_double(char *out, size_t cap, double v);

#endif
