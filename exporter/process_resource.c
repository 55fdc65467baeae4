/*
 * Resources: the OpenTelemetry resource of one process, built from its
 * segment header.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process_resource.h"
#include "dynobs/dynobs.h"

static void add(struct dx_resource *r, const char *k, size_t kl, const char *v, size_t vl)
{
    for (int i = 0; i < r->nattrs; i++)
        if (strlen(r->attrs[i].key) == kl && !memcmp(r->attrs[i].key, k, kl))
            return; /* first one wins */
    struct dx_kv *a = realloc(r->attrs, sizeof *a * (size_t)(r->nattrs + 1));
    if (!a)
        return;
    r->attrs = a;
    a[r->nattrs].key = strndup(k, kl);
    a[r->nattrs].val = strndup(v, vl);
    if (a[r->nattrs].key && a[r->nattrs].val)
        r->nattrs++;
}

struct dx_resource *dx_resource_new(const struct dynobs_reader *rd, const char *host)
{
    struct dx_resource *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->refs = 1;
    r->pid = rd->hdr.pid;
    snprintf(r->service, sizeof r->service, "%s", rd->service_name);
    add(r, "service.name", 12, r->service, strlen(r->service));
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__reader_resource_next(rd, &off, &it) == 1)
        if (it.type == DYNOBS_ATTR_STRING)
            add(r, it.key, it.key_len, it.str, it.str_len);
    add(r, "host.name", 9, host, strlen(host));
    add(r, "telemetry.sdk.name", 18, "dynobs", 6);
    add(r, "telemetry.sdk.language", 22, "c", 1);
    add(r, "telemetry.sdk.version", 21, DYNOBS_VERSION_STRING, strlen(DYNOBS_VERSION_STRING));
    return r;
}

void dx_resource_ref(struct dx_resource *r)
{
    __atomic_fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
}

void dx_resource_unref(struct dx_resource *r)
{
    if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (int i = 0; i < r->nattrs; i++) {
        free(r->attrs[i].key);
        free(r->attrs[i].val);
    }
    free(r->attrs);
    free(r);
}
