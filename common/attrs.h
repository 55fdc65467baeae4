/*
 * Attributes as the API hands them over (dynobs_attr lists) turned into
 * record items, with the OpenTelemetry limits applied: shared by the
 * shim's spans and logs and, later, by the eBPF loader, which builds the
 * same records from kernel events.
 */
#ifndef DYNOBS_COMMON_ATTRS_H
#define DYNOBS_COMMON_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#include "dynobs/dynobs.h"

/* Longest prefix of s[0..n) that is at most max bytes and does not end in
 * the middle of a UTF-8 sequence. */
size_t dynobs__utf8_cut(const char *s, size_t n, size_t max);

/* What dynobs__attrs_put did: bytes of buf in use (start with the offset
 * to append at), attributes kept and dropped, and whether anything was
 * cut or left out. */
struct dynobs_attrs_out {
    size_t used;
    uint16_t kept, dropped;
    int truncated;
};

/* Encodes a caller's attribute list as items of `tag` from buf + out->used
 * (cap bytes in all), keeping at most `limit` attributes (counted in
 * out->kept) and cutting string values to value_limit bytes on a UTF-8
 * boundary; the ones that are refused or do not fit are counted in
 * out->dropped. Returns 0, or DYNOBS_EINVAL when an attribute was
 * malformed (it is skipped; the others are kept). */
int dynobs__attrs_put(uint8_t *buf, size_t cap, uint8_t tag, const dynobs_attr *attrs,
                      size_t nattrs, uint32_t limit, uint32_t value_limit,
                      struct dynobs_attrs_out *out);

#endif
