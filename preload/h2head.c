/*
 * The fields of an HTTP/2 header block that spans and context need
 * (h2.h), kept as the decoder hands them over. Names arrive in lower case
 * (RFC 9113 section 8.2.1), so they are compared as they are.
 */
#include <string.h>

#include "h2.h"

void dynobs__h2_head_begin(struct dynobs_h2_head *h, uint32_t stream)
{
    /* The scalars only; the buffers are read up to their lengths. */
    memset(h, 0, offsetof(struct dynobs_h2_head, method));
    h->stream = stream;
    h->grpc_status = -1;
}

static int named(const struct dynobs_hpack_field *f, const char *name, size_t n)
{
    return f->name_len == n && !memcmp(f->name, name, n);
}

/* A value kept whole, or cut to the buffer (the caller decides whether a
 * cut value is usable). Returns the bytes kept. */
static uint16_t keep(char *dst, size_t cap, const struct dynobs_hpack_field *f)
{
    size_t n = f->value_len < cap ? f->value_len : cap;
    memcpy(dst, f->value, n);
    return (uint16_t)n;
}

static int number(const char *s, uint32_t n)
{
    int v = 0;
    if (!n || n > 9)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

void dynobs__h2_head_field(struct dynobs_h2_head *h, const struct dynobs_hpack_field *f)
{
    if (!f->name_len)
        return;
    if (f->name[0] == ':') {
        if (named(f, ":method", 7))
            h->method_len = (uint8_t)keep(h->method, sizeof h->method - 1, f);
        else if (named(f, ":path", 5))
            h->path_len = keep(h->path, sizeof h->path, f);
        else if (named(f, ":scheme", 7))
            h->scheme_len = (uint8_t)keep(h->scheme, sizeof h->scheme, f);
        else if (named(f, ":authority", 10))
            h->authority_len = keep(h->authority, sizeof h->authority, f);
        else if (named(f, ":status", 7))
            h->status = number(f->value, f->value_len);
        return;
    }
    switch (f->name_len) {
    case 10:
        if (named(f, "user-agent", 10)) {
            h->ua_len = keep(h->user_agent, sizeof h->user_agent, f);
        } else if (named(f, "tracestate", 10)) {
            /* Several tracestate fields make one list (W3C Trace Context
             * 3.3.1.1); one that does not fit whole drops them all. */
            size_t at = h->ts_count++ && h->ts_len ? h->ts_len + 1u : 0;
            if (f->truncated || at + f->value_len >= sizeof h->tracestate ||
                (h->ts_count > 1 && !h->ts_len)) {
                h->ts_len = 0;
                break;
            }
            if (at)
                h->tracestate[h->ts_len] = ',';
            memcpy(h->tracestate + at, f->value, f->value_len);
            h->ts_len = (uint16_t)(at + f->value_len);
        }
        break;
    case 11:
        if (named(f, "traceparent", 11)) {
            h->tp_count++;
            h->tp_len = f->truncated || f->value_len > sizeof h->traceparent
                            ? 0
                            : keep(h->traceparent, sizeof h->traceparent, f);
        } else if (named(f, "grpc-status", 11)) {
            h->grpc_status = number(f->value, f->value_len);
        }
        break;
    case 12:
        if (named(f, "content-type", 12))
            h->grpc = f->value_len >= 16 && !memcmp(f->value, "application/grpc", 16) &&
                      (f->value_len == 16 || f->value[16] == '+' || f->value[16] == ';');
        break;
    default:
        break;
    }
}

/* ---- the frame readers' callbacks that keep a block's fields ---- */

static void begin(struct dynobs_h2_head *h, uint32_t stream, int end_stream, int promised)
{
    /* A pushed stream's block (promised) names no stream of ours. */
    dynobs__h2_head_begin(h, promised ? 0 : stream);
    h->end_stream = (uint8_t)end_stream;
}

void dynobs__h2_in_begin(void *arg, uint32_t stream, int end_stream, int promised)
{
    begin(&((struct dynobs_h2_state *)arg)->in_head, stream, end_stream, promised);
}

void dynobs__h2_in_field(void *arg, const struct dynobs_hpack_field *f)
{
    dynobs__h2_head_field(&((struct dynobs_h2_state *)arg)->in_head, f);
}

void dynobs__h2_out_begin(void *arg, uint32_t stream, int end_stream, int promised)
{
    begin(&((struct dynobs_h2_state *)arg)->out_head, stream, end_stream, promised);
}

void dynobs__h2_out_field(void *arg, const struct dynobs_hpack_field *f)
{
    dynobs__h2_head_field(&((struct dynobs_h2_state *)arg)->out_head, f);
}

struct dynobs_h2_stream *dynobs__h2_response(struct dynobs_h2_state *st,
                                             const struct dynobs_h2_head *h, uint32_t stream)
{
    struct dynobs_h2_stream *x = h->stream ? dynobs__h2_find(st, stream) : NULL;
    if (!x)
        return NULL;
    /* The final status, not a 1xx's; grpc-status in a trailers-only
     * response or in the trailers. */
    if (h->status >= 200)
        x->status = h->status;
    if (h->grpc_status >= 0)
        x->grpc_status = h->grpc_status;
    return x;
}
