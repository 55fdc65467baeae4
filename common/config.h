/*
 * Configuration from the environment, read once at start-up. Every value
 * has a default and a clamp; a malformed value falls back to the default
 * (and is reported once on stderr by the shim, never fatal).
 */
#ifndef DYNOBS_COMMON_CONFIG_H
#define DYNOBS_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"
#include "util.h"

#define DYNOBS_SHM_DIR_DEFAULT "/dev/shm/dynobs"
#define DYNOBS_PATH_MAX 512u
#define DYNOBS_ATTR_VALUE_MAX 4096u /* hard cap when no limit is configured */
#define DYNOBS_CORR_MAX 4u            /* correlation header names */
#define DYNOBS_CORR_NAME_MAX 64u      /* bytes of one, NUL included */
#define DYNOBS_BAGGAGE_KEYS_MAX 8u    /* baggage keys recorded */
#define DYNOBS_CORRELATION_DEFAULT "x-correlation-id,x-request-id"

/* The scalars first, the name arrays last: dynobs__config_load writes all
 * of the former, and of the arrays only the bytes of the names it stores
 * (their NULs included; the rest of an array is left as it was, and read
 * by nobody: every name is read up to its NUL or its length). The shim's
 * copy is in .bss, and the bytes written at start then lie on the page
 * that the loader writes anyway (the end of .data's), not also on the
 * next one, a page fault per process more (BENCHMARKS.md, process
 * start). */
struct dynobs_config {
    int disabled;                  /* OTEL_SDK_DISABLED=true */
    int capture_logs;              /* DYNOBS_CAPTURE_LOGS=1: stderr, syslog */
    uint64_t ring_bytes;           /* DYNOBS_RING_BYTES, rounded down to 2^k */
    uint64_t ring_start_bytes;     /* allocated at first: DYNOBS_RING_START_BYTES at most */
    uint32_t metric_slots;         /* DYNOBS_METRIC_SLOTS, rounded down to 2^k */
    uint32_t attr_count_limit;     /* OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT (128) */
    uint32_t attr_value_limit;     /* OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT */
    uint32_t event_count_limit;    /* OTEL_SPAN_EVENT_COUNT_LIMIT (128) */
    uint32_t event_attr_limit;     /* OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT (128) */
    uint32_t log_attr_limit;       /* OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT (128) */
    struct dynobs_sampler sampler; /* OTEL_TRACES_SAMPLER(_ARG) */
    int ncorr;                     /* correlation header names, below */
    int nbag_keys;                 /* baggage keys, below */
    int bad_setting;               /* a value was malformed; see bad_name */
    int short_path_off;            /* DYNOBS_SHORT_PATH=0: repeated requests the long way */
    const char *bad_name;
    uint8_t corr_lens[DYNOBS_CORR_MAX];
    uint8_t bag_key_lens[DYNOBS_BAGGAGE_KEYS_MAX];
    char shm_dir[DYNOBS_PATH_MAX]; /* DYNOBS_SHM_DIR */
    /* DYNOBS_CORRELATION_HEADERS: header names (lower case) whose inbound
     * values are recorded on server spans and sent on the outbound calls
     * made in their context, next to traceparent; "" for none. */
    char corr_names[DYNOBS_CORR_MAX][DYNOBS_CORR_NAME_MAX];
    /* DYNOBS_BAGGAGE_ATTRIBUTES: baggage keys (as sent: case counts)
     * whose values are recorded on server spans, as attributes of the
     * same name; none by default: baggage is the application's data. */
    char bag_keys[DYNOBS_BAGGAGE_KEYS_MAX][DYNOBS_CORR_NAME_MAX];
};

/* getenv-like lookup, so tests can feed an environment of their own. */
typedef const char *(*dynobs_getenv_fn)(const char *name);

void dynobs__config_load(struct dynobs_config *c, dynobs_getenv_fn get);

/* strnlen(v, cap), as a byte loop: code that runs at start calls no libc
 * string function, which the loader would bind lazily then (config.c). */
size_t dynobs__len_upto(const char *v, size_t cap);
/* The same for strlcpy: src into dst (cap bytes, cap >= 1), cut at cap - 1
 * bytes and NUL-terminated; returns src's length, or cap when it did not
 * fit whole. */
size_t dynobs__copy_upto(char *dst, const char *src, size_t cap);

/* Parses a non-negative decimal with an optional K/M/G suffix (powers of
 * 1024). Returns 0 or -EINVAL. */
int dynobs__parse_size(const char *s, uint64_t *out) __attribute__((warn_unused_result));

#endif
