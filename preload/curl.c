/*
 * libcurl: a CLIENT span per transfer and a traceparent header added to
 * it, through libcurl's own API, so HTTP/2 and HTTPS transfers are
 * covered as well as HTTP/1.1.
 *
 * The application's header list (CURLOPT_HTTPHEADER) is remembered when it
 * sets it; for the transfer, libcurl gets a copy with our line added, and
 * the application's list is put back when the transfer ends, so the
 * application neither loses nor sees a change to its list. A list that
 * already carries traceparent is left alone (its context is the parent).
 * While libcurl does its I/O (curl_easy_perform, curl_multi_perform,
 * curl_multi_socket_action), the socket and TLS layers stand aside, so a
 * request is traced once.
 *
 * libcurl is never linked nor its headers needed: the few ABI constants
 * below are libcurl's stable public values, and its functions are found
 * at run time in processes that use it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client_memo.h"
#include "httpmetrics.h"
#include "lazymap.h"
#include "policy.h"
#include "ptrtab.h"
#include "redact.h"
#include "state.h"

#include "../common/baggage.h"

typedef void CURL;
typedef void CURLM;
typedef int CURLcode;
typedef int CURLMcode;
typedef long long curl_off_t;

struct curl_slist {
    char *data;
    struct curl_slist *next;
};

typedef struct {
    int msg; /* CURLMSG_DONE = 1 */
    CURL *easy_handle;
    union {
        void *whatever;
        CURLcode result;
    } data;
} CURLMsg;

#define CURLOPTTYPE_OBJECTPOINT 10000
#define CURLOPTTYPE_FUNCTIONPOINT 20000
#define CURLOPTTYPE_OFF_T 30000
#define CURLOPTTYPE_BLOB 40000
#define CURLOPT_HTTPHEADER 10023
#define CURLOPT_URL 10002
#define CURLINFO_STRING 0x100000
#define CURLINFO_LONG 0x200000
#define CURLINFO_EFFECTIVE_URL (CURLINFO_STRING + 1)
#define CURLINFO_RESPONSE_CODE (CURLINFO_LONG + 2)
#define CURLINFO_HTTP_VERSION (CURLINFO_LONG + 46)
#define CURLINFO_EFFECTIVE_METHOD (CURLINFO_STRING + 58)
#define CURLMSG_DONE 1

static struct {
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_setopt)(CURL *, int, ...);
    CURLcode (*easy_getinfo)(CURL *, int, ...);
    void (*easy_cleanup)(CURL *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_socket_action)(CURLM *, int, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} cu;

#define CU(field, name) ((__typeof__(cu.field))dynobs__lookup((void **)&cu.field, name, dynobs__libcurl))

static inline int active(void)
{
    return dynobs__layer_on(DYNOBS_LAYER_LIBCURL);
}

/* Per easy handle: the application's header list, and the transfer in
 * flight. The slot's value is the transfer state, kept for reuse. */
struct transfer {
    struct curl_slist *app_headers; /* as the application set them */
    struct curl_slist *ours;        /* the copy with our line, during a transfer */
    int active;
    uint64_t start_ns;
    /* The URL's host and path as CURLOPT_URL set them, for the rules
     * (policy.h), and what they decided for the transfer in flight. */
    char host[128];
    char path[256];
    /* What the handle's last transfers gave (client_memo.h): the rules'
     * decision for the host and path in decided_host and decided_path,
     * and the metric's labels (with their series) for a transfer that
     * succeeded with method, host, port and status labels_*. */
    struct dynobs_client_decision decision;
    char decided_host[128];
    char decided_path[256];
    /* The attributes http.request.method .. network.protocol.version of
     * the last transfer whose method, effective URL and HTTP version were
     * attrs_key's (method NUL URL), and the host and port they named. */
    uint16_t attrs_key_len; /* 0: nothing kept */
    long attrs_version, attrs_port;
    char attrs_host[256];
    char attrs_key[24 + 1024];
    struct dynobs_attr_block attrs;
    uint8_t labels_ok;
    long labels_port, labels_code;
    char labels_method[24];
    char labels_host[256];
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_series_memo series;
    int uncounted;
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_span span;
};

/* Handles: CURL pointer -> transfer. Mapped when the first handle is
 * (lazymap.h): a process that never uses libcurl has none. */
static void *handles;
#define TABLE_BYTES (DYNOBS_PTRTAB_SIZE * sizeof(struct dynobs_ptrslot))

static struct transfer *transfer_of(const CURL *h, int create)
{
    struct dynobs_ptrslot *tab = dynobs__lazymap_peek(&handles);
    /* Only a new handle maps the table; a lookup in none finds nothing. */
    if (DYNOBS_UNLIKELY(!tab) && (!create || !(tab = dynobs__lazymap_map(&handles, TABLE_BYTES))))
        return NULL;
    int fresh;
    struct transfer *t = dynobs__ptrtab_state(tab, h, sizeof *t, create, &fresh);
    if (t && fresh) {
        t->app_headers = NULL;
        t->ours = NULL;
        t->active = 0;
        t->host[0] = t->path[0] = '\0';
        t->decided_host[0] = t->decided_path[0] = '\0';
        dynobs__client_decision_clear(&t->decision);
        t->labels_ok = 0;
        t->series.slot = NULL;
        t->attrs_key_len = 0;
    }
    return t;
}

/* scheme://[user@]host[:port]/path?query: the host and the path, cut to
 * fit (a path cut short may match fewer rules, never more). */
static void url_parts(const char *url, struct transfer *t)
{
    t->host[0] = t->path[0] = '\0';
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p)
        return;
    const char *auth = p + 3, *path = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(path - auth));
    if (at)
        auth = at + 1;
    size_t hl = strcspn(auth, ":/?#");
    if (auth[0] == '[') {
        const char *close_ = memchr(auth, ']', (size_t)(path - auth));
        auth++;
        hl = close_ ? (size_t)(close_ - auth) : 0;
    }
    if (hl < sizeof t->host) {
        memcpy(t->host, auth, hl);
        t->host[hl] = '\0';
    }
    size_t pl = *path == '/' ? strcspn(path, "?#") : 0;
    if (pl >= sizeof t->path)
        pl = sizeof t->path - 1;
    memcpy(t->path, path, pl);
    t->path[pl] = '\0';
}

/* curl_easy_setopt is variadic: its one argument is forwarded by the type
 * the option number encodes. */
DYNOBS_API CURLcode curl_easy_setopt(CURL *h, int opt, ...)
{
    CURLcode (*fn)(CURL *, int, ...) = CU(easy_setopt, "curl_easy_setopt");
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (!fn) {
        va_end(ap);
        return 2; /* CURLE_FAILED_INIT */
    }
    if (opt < CURLOPTTYPE_OBJECTPOINT) {
        long v = va_arg(ap, long);
        rc = fn(h, opt, v);
    } else if (opt < CURLOPTTYPE_FUNCTIONPOINT || (opt >= CURLOPTTYPE_BLOB)) {
        void *v = va_arg(ap, void *);
        rc = fn(h, opt, v);
        if (rc == 0 && (opt == CURLOPT_HTTPHEADER || opt == CURLOPT_URL) && active()) {
            int saved = errno;
            struct transfer *t = transfer_of(h, 1);
            if (t && opt == CURLOPT_HTTPHEADER)
                t->app_headers = v;
            else if (t)
                url_parts(v, t);
            errno = saved;
        }
    } else if (opt < CURLOPTTYPE_OFF_T) {
        void (*v)(void) = va_arg(ap, void (*)(void));
        rc = fn(h, opt, v);
    } else {
        curl_off_t v = va_arg(ap, curl_off_t);
        rc = fn(h, opt, v);
    }
    va_end(ap);
    return rc;
}

static int has_traceparent(const struct curl_slist *l, struct dynobs_traceparent *tp)
{
    for (; l; l = l->next) {
        const char *d = l->data;
        if (d && !strncasecmp(d, "traceparent:", 12)) {
            const char *v = d + 12;
            while (*v == ' ' || *v == '\t')
                v++;
            if (dynobs__traceparent_parse(v, strlen(v), tp) < 0)
                memset(tp, 0, sizeof *tp);
            return 1;
        }
    }
    return 0;
}

/* 1 when the list has a header of this name (case-insensitive). */
static int has_header(const struct curl_slist *l, const char *name, size_t n)
{
    for (; l; l = l->next)
        if (l->data && !strncasecmp(l->data, name, n) && l->data[n] == ':')
            return 1;
    return 0;
}

/* The parent context's correlation headers (context.h), each unless the
 * application's list has it. */
static struct curl_slist *correlation(struct curl_slist *l, const struct curl_slist *app,
                                      const struct dynobs_ctx *parent,
                                      struct curl_slist *(*append)(struct curl_slist *,
                                                                   const char *))
{
    const char *p = parent->corr, *end = parent->corr + parent->corr_len;
    while (p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *crlf = colon ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
        if (!crlf || crlf + 2 > end)
            break;
        char line[DYNOBS_CORR_LINES_MAX];
        size_t len = (size_t)(crlf - p);
        if (!has_header(app, p, (size_t)(colon - p)) && len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            l = append(l, line);
        }
        p = crlf + 2;
    }
    return l;
}

/* A transfer starts: its span, and our header line in a copy of the list. */
static void begin(CURL *h)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return;
    struct transfer *x = transfer_of(h, 1);
    if (!x || x->active)
        return;
    struct dynobs_traceparent tp;
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent;
    int app_tp = has_traceparent(x->app_headers, &tp);
    if (app_tp && !dynobs__id_is_zero(tp.trace_id, 16)) {
        dynobs__ctx_remote(&remote, &tp);
        parent = &remote;
    } else {
        parent = app_tp ? NULL : dynobs__ctx_outbound(t);
    }
    x->start_ns = dynobs__thread_now();
    /* The method is not known before the transfer: rules naming one do
     * not match a libcurl transfer. */
    struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_CLIENT,
                                  .server_address = {x->host[0] ? x->host : NULL,
                                                     strlen(x->host)},
                                  .url_path = {x->path[0] ? x->path : NULL, strlen(x->path)},
                                  .span_name = {"HTTP", 4}};
    struct dynobs_decision d;
    const struct dynobs_span_policy *pol;
    /* Those are the facts: the handle's last decision holds while they
     * repeat. */
    if (strcmp(x->decided_host, x->host) || strcmp(x->decided_path, x->path) ||
        !dynobs__client_decision_recall(&x->decision, &d, &pol)) {
        pol = dynobs__decide(&d, &f, 0);
        dynobs__client_decision_keep(&x->decision, &d, pol);
        memcpy(x->decided_host, x->host, sizeof x->host);
        memcpy(x->decided_path, x->path, sizeof x->path);
    }
    x->uncounted = (d.drop & DYNOBS_DROP_METRICS) != 0;
    x->rules = d.r;
    x->redact = d.redact;
    if (dynobs__span_begin_ex(&x->span, "HTTP", DYNOBS_SPAN_KIND_CLIENT, parent, x->start_ns,
                              pol) < 0)
        return;
    x->active = 1;
    x->ours = NULL;
    if (app_tp)
        return;
    struct curl_slist *(*append)(struct curl_slist *, const char *) =
        CU(slist_append, "curl_slist_append");
    CURLcode (*setopt)(CURL *, int, ...) = CU(easy_setopt, "curl_easy_setopt");
    if (!append || !setopt)
        return;
    struct curl_slist *l = NULL;
    for (const struct curl_slist *a = x->app_headers; a; a = a->next)
        if (a->data)
            l = append(l, a->data);
    char line[13 + DYNOBS_TRACEPARENT_LEN + 1];
    memcpy(line, "traceparent: ", 13);
    dynobs__traceparent_format(x->span.rec.trace_id, x->span.rec.span_id,
                               x->span.rec.trace_flags, line + 13, sizeof line - 13);
    l = append(l, line);
    char ts[12 + DYNOBS_TRACESTATE_MAX + 1]; /* (curl_slist_append copies it) */
    if (x->span.rec.tracestate_len) {
        memcpy(ts, "tracestate: ", 12);
        memcpy(ts + 12, (const char *)x->span.body + x->span.rec.name_len,
               x->span.rec.tracestate_len);
        ts[12 + x->span.rec.tracestate_len] = '\0';
        l = append(l, ts);
    }
    if (parent && parent->corr_len)
        l = correlation(l, x->app_headers, parent, append);
    size_t bl;
    const char *bag = parent && !has_header(x->app_headers, "baggage", 7)
                          ? dynobs__ctx_baggage(parent, &bl)
                          : NULL;
    char bagline[9 + DYNOBS_BAGGAGE_MAX + 1];
    if (bag && bl <= DYNOBS_BAGGAGE_MAX) {
        memcpy(bagline, "baggage: ", 9);
        memcpy(bagline + 9, bag, bl);
        bagline[9 + bl] = '\0';
        l = append(l, bagline);
    }
    if (l && setopt(h, CURLOPT_HTTPHEADER, l) == 0)
        x->ours = l;
}

/* libcurl's error names for the codes a transfer ends with most. */
static const char *curlcode_name(CURLcode c)
{
    switch (c) {
    case 1: return "CURLE_UNSUPPORTED_PROTOCOL";
    case 3: return "CURLE_URL_MALFORMAT";
    case 5: return "CURLE_COULDNT_RESOLVE_PROXY";
    case 6: return "CURLE_COULDNT_RESOLVE_HOST";
    case 7: return "CURLE_COULDNT_CONNECT";
    case 8: return "CURLE_WEIRD_SERVER_REPLY";
    case 16: return "CURLE_HTTP2";
    case 18: return "CURLE_PARTIAL_FILE";
    case 22: return "CURLE_HTTP_RETURNED_ERROR";
    case 23: return "CURLE_WRITE_ERROR";
    case 26: return "CURLE_READ_ERROR";
    case 27: return "CURLE_OUT_OF_MEMORY";
    case 28: return "CURLE_OPERATION_TIMEDOUT";
    case 35: return "CURLE_SSL_CONNECT_ERROR";
    case 42: return "CURLE_ABORTED_BY_CALLBACK";
    case 47: return "CURLE_TOO_MANY_REDIRECTS";
    case 52: return "CURLE_GOT_NOTHING";
    case 55: return "CURLE_SEND_ERROR";
    case 56: return "CURLE_RECV_ERROR";
    case 60: return "CURLE_PEER_FAILED_VERIFICATION";
    case 92: return "CURLE_HTTP2_STREAM";
    default: return "_OTHER";
    }
}

/* Each attribute of a transfer's span is set once, at its end: no
 * replacement scan. */
static void put_str(struct dynobs_span *s, const char *k, size_t kl, const char *v)
{
    if (v)
        dynobs__span_add(s, k, kl, DYNOBS_ATTR_STRING, v, strlen(v));
}

static void put_int(struct dynobs_span *s, const char *k, size_t kl, int64_t v)
{
    dynobs__span_add(s, k, kl, DYNOBS_ATTR_INT, &v, 8);
}

#define set_str(s, k, v) put_str(s, k, sizeof k - 1, v)
#define set_int(s, k, v) put_int(s, k, sizeof k - 1, v)

/* url.full: user info dropped, query values replaced by REDACTED. */
static void set_url(struct dynobs_span *s, const char *url, char *host, size_t hcap, long *port)
{
    char out[1024];
    size_t o = 0;
    const char *p = strstr(url, "://");
    if (!p)
        return;
    size_t scheme = (size_t)(p - url) + 3;
    if (scheme >= sizeof out)
        return;
    memcpy(out, url, scheme);
    o = scheme;
    const char *auth = p + 3, *path = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(path - auth));
    if (at)
        auth = at + 1;
    size_t al = (size_t)(path - auth);
    if (o + al < sizeof out) {
        memcpy(out + o, auth, al);
        o += al;
    }
    /* host and port for server.address / server.port */
    const char *colon = NULL;
    if (auth[0] == '[') {
        const char *close_ = memchr(auth, ']', al);
        if (close_ && close_ + 1 < path && close_[1] == ':')
            colon = close_ + 1;
        size_t hl = close_ ? (size_t)(close_ - auth - 1) : 0;
        if (hl < hcap) {
            memcpy(host, auth + 1, hl);
            host[hl] = '\0';
        }
    } else {
        colon = memchr(auth, ':', al);
        size_t hl = colon ? (size_t)(colon - auth) : al;
        if (hl < hcap) {
            memcpy(host, auth, hl);
            host[hl] = '\0';
        }
    }
    *port = colon ? strtol(colon + 1, NULL, 10) : (!strncmp(url, "https", 5) ? 443 : 80);
    int in_query = 0, in_value = 0;
    for (const char *c = path; *c && *c != '#' && o + 10 < sizeof out; c++) {
        if (*c == '?' && !in_query)
            in_query = 1;
        else if (in_query && *c == '=' && !in_value) {
            memcpy(out + o, "=REDACTED", 9);
            o += 9;
            in_value = 1;
            continue;
        } else if (in_query && *c == '&')
            in_value = 0;
        if (!in_value)
            out[o++] = *c;
    }
    dynobs__span_add(s, "url.full", 8, DYNOBS_ATTR_STRING, out, o);
}

/* http.client.request.duration: under the handle's last labels while
 * method, host, port and status repeat and the transfer did not fail
 * (failed: its error type), else by name. */
static void metric(struct transfer *x, const char *method, const char *host, long port,
                   long code, const char *failed, double secs)
{
    char codestr[16];
    const char *err = NULL;
    if (code >= 400) {
        dynobs__status_text((int)code, codestr);
        err = codestr;
    }
    struct dynobs_segment *seg;
    if (failed || strlen(method) >= sizeof x->labels_method ||
        strlen(host) >= sizeof x->labels_host || !(seg = dynobs__segment())) {
        dynobs__http_client_metric(method, *host ? host : NULL, port, code, failed ? failed : err,
                                   secs);
        return;
    }
    if (!x->labels_ok || x->labels_port != port || x->labels_code != code ||
        strcmp(x->labels_method, method) || strcmp(x->labels_host, host)) {
        dynobs__client_http_labels(x->labels, sizeof x->labels, method, host, port, code, err);
        strcpy(x->labels_method, method);
        strcpy(x->labels_host, host);
        x->labels_port = port;
        x->labels_code = code;
        x->labels_ok = 1;
        x->series.slot = NULL;
    }
    dynobs__duration_memo(seg, "http.client.request.duration", dynobs__http_duration_bounds,
                          DYNOBS_HTTP_DURATION_NBOUNDS, secs, x->labels, &x->series);
}

/* A transfer ended with rc: attributes, metric, span; the application's
 * header list goes back. */
static void end(CURL *h, CURLcode rc)
{
    struct transfer *x = transfer_of(h, 0);
    if (!x || !x->active)
        return;
    x->active = 0;
    CURLcode (*setopt)(CURL *, int, ...) = CU(easy_setopt, "curl_easy_setopt");
    CURLcode (*getinfo)(CURL *, int, ...) = CU(easy_getinfo, "curl_easy_getinfo");
    void (*free_all)(struct curl_slist *) = CU(slist_free_all, "curl_slist_free_all");
    if (x->ours && setopt) {
        setopt(h, CURLOPT_HTTPHEADER, x->app_headers);
        if (free_all)
            free_all(x->ours);
        x->ours = NULL;
    }
    struct dynobs_span *s = &x->span;
    long code = 0, version = 0, port = 0;
    char *url = NULL, *method = NULL, host[256] = "";
    if (getinfo) {
        getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        getinfo(h, CURLINFO_HTTP_VERSION, &version);
        getinfo(h, CURLINFO_EFFECTIVE_URL, &url);
        getinfo(h, CURLINFO_EFFECTIVE_METHOD, &method);
    }
    if (method && *method) {
        /* The span name is the method, as for every HTTP client span. */
        size_t ml = strlen(method);
        if (ml <= DYNOBS_NAME_MAX && x->span.rec.name_len == 4) {
            memmove(s->body + ml, s->body + 4, s->used - 4);
            memcpy(s->body, method, ml);
            s->used = (uint32_t)(s->used - 4 + ml);
            s->items_off = (uint32_t)(s->items_off - 4 + ml);
            s->rec.name_len = (uint16_t)ml;
        }
    }
    /* The same method, URL and version as the handle's last transfer
     * give the same attributes: copied whole. */
    size_t ml = method ? strlen(method) : 0, ul = url ? strlen(url) : 0, kl = ml + 1 + ul;
    int same = x->attrs_key_len && kl == x->attrs_key_len && version == x->attrs_version &&
               !memcmp(x->attrs_key, method ? method : "", ml) && !x->attrs_key[ml] &&
               !memcmp(x->attrs_key + ml + 1, url ? url : "", ul);
    if (same && !(s->recording && dynobs__attr_block_put(&x->attrs, s))) {
        memcpy(host, x->attrs_host, sizeof host);
        port = x->attrs_port;
    } else {
        struct dynobs_attr_mark k = dynobs__attr_mark(s);
        if (method && *method)
            set_str(s, "http.request.method", method);
        if (url)
            set_url(s, url, host, sizeof host, &port);
        if (*host)
            set_str(s, "server.address", host);
        if (port)
            set_int(s, "server.port", port);
        const char *ver = version == 1 ? "1.0" : version == 2 ? "1.1" : version == 3 ? "2"
                          : version == 30 ? "3" : NULL;
        set_str(s, "network.protocol.version", ver);
        x->attrs_key_len = 0;
        if (kl <= sizeof x->attrs_key) {
            dynobs__attr_block_keep(&x->attrs, s, k);
            if (ml)
                memcpy(x->attrs_key, method, ml);
            x->attrs_key[ml] = '\0';
            if (ul)
                memcpy(x->attrs_key + ml + 1, url, ul);
            memcpy(x->attrs_host, host, sizeof host);
            x->attrs_port = port;
            x->attrs_version = version;
            x->attrs_key_len = (uint16_t)kl;
        }
    }
    const char *err = NULL;
    char codestr[16];
    if (rc != 0) {
        err = curlcode_name(rc);
    } else if (code >= 400) {
        dynobs__status_text((int)code, codestr);
        err = codestr;
    }
    if (code > 0)
        set_int(s, "http.response.status_code", code);
    if (err) {
        set_str(s, "error.type", err);
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, rc ? err : NULL);
    }
    struct dynobs_thread *t = dynobs__thread();
    if (t && !x->uncounted) {
        uint64_t now = dynobs__thread_now();
        double secs = now > x->start_ns ? (double)(now - x->start_ns) / 1e9 : 0;
        metric(x, method && *method ? method : "_OTHER", host, port, code, rc != 0 ? err : NULL,
               secs);
    }
    dynobs__redact_span(s, x->rules, x->redact);
    dynobs__span_finish(s);
}

DYNOBS_API CURLcode curl_easy_perform(CURL *h)
{
    CURLcode (*fn)(CURL *) = CU(easy_perform, "curl_easy_perform");
    if (!fn)
        return 2;
    if (!active() || !h)
        return fn(h);
    int saved = errno;
    begin(h);
    errno = saved;
    dynobs__enter(DYNOBS_INSIDE_LIBCURL);
    CURLcode rc = fn(h);
    dynobs__leave(DYNOBS_INSIDE_LIBCURL);
    saved = errno;
    end(h, rc);
    errno = saved;
    return rc;
}

DYNOBS_API void curl_easy_cleanup(CURL *h)
{
    void (*fn)(CURL *) = CU(easy_cleanup, "curl_easy_cleanup");
    struct dynobs_ptrslot *tab = h && active() ? dynobs__lazymap_peek(&handles) : NULL;
    struct dynobs_ptrslot *e = tab ? dynobs__ptrtab_find(tab, h) : NULL;
    if (e) {
        end(h, 42); /* a transfer still open: aborted */
        dynobs__ptrtab_release(e);
    }
    if (fn)
        fn(h);
}

DYNOBS_API CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    CURLMcode (*fn)(CURLM *, CURL *) = CU(multi_add_handle, "curl_multi_add_handle");
    if (!fn)
        return 1;
    if (active() && h) {
        int saved = errno;
        begin(h);
        errno = saved;
    }
    CURLMcode rc = fn(m, h);
    if (rc != 0 && active() && h) {
        struct transfer *x = transfer_of(h, 0);
        if (x && x->active) { /* not added after all: no transfer */
            x->active = 0;
            CURLcode (*setopt)(CURL *, int, ...) = CU(easy_setopt, "curl_easy_setopt");
            void (*free_all)(struct curl_slist *) = CU(slist_free_all, "curl_slist_free_all");
            if (x->ours && setopt && free_all) {
                setopt(h, CURLOPT_HTTPHEADER, x->app_headers);
                free_all(x->ours);
                x->ours = NULL;
            }
        }
    }
    return rc;
}

DYNOBS_API CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    CURLMcode (*fn)(CURLM *, CURL *) = CU(multi_remove_handle, "curl_multi_remove_handle");
    if (active() && h) {
        int saved = errno;
        end(h, 42); /* removed before its DONE message: aborted */
        errno = saved;
    }
    return fn ? fn(m, h) : 1;
}

DYNOBS_API CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    CURLMcode (*fn)(CURLM *, int *) = CU(multi_perform, "curl_multi_perform");
    dynobs__enter(DYNOBS_INSIDE_LIBCURL);
    CURLMcode rc = fn ? fn(m, running) : 1;
    dynobs__leave(DYNOBS_INSIDE_LIBCURL);
    return rc;
}

DYNOBS_API CURLMcode curl_multi_socket_action(CURLM *m, int s, int ev, int *running)
{
    CURLMcode (*fn)(CURLM *, int, int, int *) =
        CU(multi_socket_action, "curl_multi_socket_action");
    dynobs__enter(DYNOBS_INSIDE_LIBCURL);
    CURLMcode rc = fn ? fn(m, s, ev, running) : 1;
    dynobs__leave(DYNOBS_INSIDE_LIBCURL);
    return rc;
}

DYNOBS_API CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    CURLMsg *(*fn)(CURLM *, int *) = CU(multi_info_read, "curl_multi_info_read");
    CURLMsg *msg = fn ? fn(m, left) : NULL;
    if (msg && msg->msg == CURLMSG_DONE && active()) {
        int saved = errno;
        end(msg->easy_handle, msg->data.result);
        errno = saved;
    }
    return msg;
}
