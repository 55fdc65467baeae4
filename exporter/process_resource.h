/*
 * The OpenTelemetry resource of one process, built from its segment
 * header. It is shared by the process's segment, by the metric series of
 * its service and by queued records that outlive the segment, hence the
 * reference count.
 */
#ifndef DYNOBS_EXPORTER_PROCESS_RESOURCE_H
#define DYNOBS_EXPORTER_PROCESS_RESOURCE_H

#include "layout.h"
#include "reader.h"

/* Attributes are string key/value pairs, except process.pid, which is
 * kept as a number and added by the encoders where it applies. */
struct dx_resource {
    int refs; /* atomic */
    int pid;
    char service[DYNOBS_SERVICE_NAME_MAX + 1];
    int nattrs;
    struct dx_kv {
        char *key, *val;
    } *attrs;
};

/* A new resource with one reference, or NULL when out of memory. */
struct dx_resource *dx_resource_new(const struct dynobs_reader *r, const char *host);
void dx_resource_ref(struct dx_resource *res);
void dx_resource_unref(struct dx_resource *res);

#endif
