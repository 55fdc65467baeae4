/*
 * Declared metrics: what a component says about a metric once (kind,
 * unit, description, histogram bounds), kept in the segment's metadata
 * region (layout.h, struct dynobs_metric_meta) so that the exporter can
 * print the description in # HELP and OTLP. One entry per name, written
 * by the first declaration and never changed: a later declaration that
 * says something else is refused and counted.
 */
#ifndef DYNOBS_COMMON_METRIC_META_H
#define DYNOBS_COMMON_METRIC_META_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "metrics.h"

struct dynobs_reader;

struct dynobs_metric_meta_view {
    int kind; /* DYNOBS_METRIC_* */
    const char *name;
    size_t name_len;
    const char *unit; /* NUL-terminated, may be "" */
    const char *description;
    size_t description_len;
};

/* Entry i (0 <= i < hdr.meta_slots): 0, -ENOENT (empty), -EBADMSG
 * (corrupt). The view points into a copy private to the calling thread,
 * valid until its next call. */
int dynobs__reader_meta(const struct dynobs_reader *r, uint32_t i,
                        struct dynobs_metric_meta_view *v);

/* Declares d (bounds: NULL for the defaults) with a description (NULL or
 * "" for none) in t's metadata region. 0 when declared now or declared
 * before alike; -EEXIST when declared before with another kind, unit,
 * description or bounds (counted in the header's declare_conflicts);
 * -EINVAL for a bad name (or longer than 127 bytes), kind, unit (longer
 * than 15 bytes), description (longer than 255 bytes or with control
 * characters) or bounds; -ENOSPC when no entry is free (counted in
 * declare_refused). */
int dynobs__meta_declare(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                         const char *description);

/* The READY entry of a name in t, or NULL: how an update that registers
 * a new series by name takes the declared unit and bounds. */
const struct dynobs_metric_meta *dynobs__meta_find(const struct dynobs_metric_table *t,
                                                   const char *name, size_t name_len);

/* Checks an entry (a private copy) against the layout's rules: 0,
 * -ENOENT when not READY, -EBADMSG. */
int dynobs__meta_check(const struct dynobs_metric_meta *m);

#endif
