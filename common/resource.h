/*
 * The process's resource: service.name and OTEL_RESOURCE_ATTRIBUTES,
 * encoded once at segment creation as RESOURCE_ATTR items.
 */
#ifndef DYNOBS_COMMON_RESOURCE_H
#define DYNOBS_COMMON_RESOURCE_H

#include <stddef.h>
#include <stdint.h>

struct dynobs_resource {
    char service_name[256];
    uint8_t items[2048];
    size_t items_len;
    uint16_t count;
    int malformed; /* OTEL_RESOURCE_ATTRIBUTES had a bad member (skipped) */
    int truncated; /* attributes did not fit and were left out */
};

/* service_env: OTEL_SERVICE_NAME; attrs_env: OTEL_RESOURCE_ATTRIBUTES
 * ("k=v,k=v", values percent-encoded); exe: the executable's base name.
 * service.name comes from OTEL_SERVICE_NAME, else from the attributes,
 * else is the executable's name. */
void dynobs__resource_build(struct dynobs_resource *r, const char *service_env,
                            const char *attrs_env, const char *exe);

#endif
