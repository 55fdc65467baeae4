/*
 * Fast writers for the Prometheus exposition: room reserved in an output
 * buffer once per series, then numbers and text written straight into
 * it. Every number comes out byte for byte as buf.h's dx_buf_num and
 * dx_fmt_double write it (the tests and promtool see the same page); only
 * the cost differs: integers two digits at a time, and non-integers by
 * exact integer arithmetic instead of printf and strtod.
 */
#ifndef DYNOBS_EXPORTER_PROM_TEXT_H
#define DYNOBS_EXPORTER_PROM_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The most a number takes as dx_prom_num writes it. */
#define DX_PROM_NUM_MAX 32

/* n free bytes at b->p + b->len (and one more for the NUL that dx_buf
 * keeps after the text), growing the buffer as dx_buf_put would; NULL,
 * with b unchanged, when that would pass b's cap or memory is short:
 * the caller then writes through dx_buf_put, which refuses and counts
 * the overflow exactly as before. After writing, the caller sets b->len
 * and the NUL (dx_prom_commit). */
char *dx_prom_room(struct dx_buf *b, size_t n);

static inline void dx_prom_commit(struct dx_buf *b, char *end)
{
    b->len = (size_t)(end - b->p);
    *end = '\0';
}

/* Writes v in decimal at p; returns the end. */
char *dx_prom_u64(char *p, uint64_t v);

/* Writes v as dx_buf_num does (integers without exponent, NaN, +Inf, the
 * shortest of %.15g, %.16g and %.17g that reads back as v); returns the
 * end. At most DX_PROM_NUM_MAX bytes. */
char *dx_prom_num(char *p, double v);

#endif
