/*
 * The bridge to runtimes that carry a request's context across their own
 * callbacks. On a thread that multiplexes requests (an event loop) the
 * shim cannot tell from below which request an outbound call belongs to
 * (context.h); the runtime can, and two calls let it say so:
 *   - the traceparent of the request being served on a socket, which the
 *     runtime keeps in its own context (AsyncLocalStorage, contextvars);
 *   - the parent of the next request written on a socket, announced by
 *     the runtime just before it writes that request.
 * C and Python use the public API. JavaScript, which cannot call C
 * without an addon, uses readlink() on paths under /dev/dynobs/, answered
 * here without a system call:
 *   /dev/dynobs/server/FD              -> the traceparent
 *   /dev/dynobs/client/FD/TRACEPARENT  -> "ok" once announced
 * Without the shim those paths do not exist (ENOENT), so a runtime's
 * bridge code costs nothing and changes nothing there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "conn.h"
#include "h2.h"
#include "state.h"

static int server_traceparent(int fd, char *buf, size_t len)
{
    if (len < DYNOBS_TRACEPARENT_LEN + 1)
        return DYNOBS_ERANGE;
    struct dynobs_conn *c = dynobs__fd_get(fd);
    const struct dynobs_span *s = c && !DYNOBS_CONN_IS_MARKER(c) ? dynobs__conn_serving(c) : NULL;
    if (!s)
        return DYNOBS_ENOENT;
    return dynobs__traceparent_format(s->rec.trace_id, s->rec.span_id, s->rec.trace_flags, buf,
                                      len);
}

static int client_parent(int fd, const char *tp, size_t n)
{
    struct dynobs_ctx parent;
    if (!dynobs__ctx_from_headers(&parent, tp, n, NULL, 0))
        return DYNOBS_EINVAL;
    /* The request named is served here: its tracestate, correlation ids
     * and baggage travel on too. */
    (void)dynobs__serving_carry(&parent);
    struct dynobs_conn *c = dynobs__fd_get(fd);
    if (!c) {
        /* Not written to yet (a socket being connected): a pending
         * connection keeps the parent until its first bytes. */
        c = dynobs__conn_pending(DYNOBS_TRANSPORT_SOCKET, fd, &parent);
        if (!c)
            return DYNOBS_ENOMEM;
        dynobs__fd_set(fd, c);
        return 0;
    }
    if (DYNOBS_CONN_IS_MARKER(c) ||
        (c->proto != DYNOBS_PROTO_PENDING && c->proto != DYNOBS_PROTO_H1_CLIENT))
        return DYNOBS_ENOENT;
    c->origin = parent;
    c->has_origin = 1;
    return 0;
}

DYNOBS_API int dynobs_server_traceparent(int fd, char *buf, size_t len)
{
    if (!buf)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    int saved = errno;
    int rc = server_traceparent(fd, buf, len);
    errno = saved;
    return rc;
}

DYNOBS_API int dynobs_client_parent(int fd, const char *traceparent)
{
    if (!traceparent)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    int saved = errno;
    int rc = client_parent(fd, traceparent, strlen(traceparent));
    errno = saved;
    return rc;
}

DYNOBS_API int dynobs_served_traceparent(const char *caller, char *buf, size_t len)
{
    if (!caller || !buf)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    if (len < DYNOBS_TRACEPARENT_LEN + 1)
        return DYNOBS_ERANGE;
    struct dynobs_traceparent tp;
    if (dynobs__traceparent_parse(caller, strlen(caller), &tp) < 0)
        return DYNOBS_EINVAL;
    int rc = dynobs__served_find(tp.trace_id, tp.parent_id, buf, len);
    return rc < 0 ? DYNOBS_ENOENT : rc;
}

/* ---- readlink() for JavaScript ---- */

#define PREFIX "/dev/dynobs/"

/* A path under PREFIX: its answer in buf (readlink's contract: no NUL,
 * cut to bufsiz), or -1 with errno ENOENT. */
static ssize_t answer(const char *path, char *buf, size_t bufsiz)
{
    const char *p = path + sizeof PREFIX - 1;
    char out[DYNOBS_TRACEPARENT_LEN + 1];
    int n = -1;
    char *end;
    if (!strncmp(p, "server/", 7)) {
        long fd = strtol(p + 7, &end, 10);
        if (end != p + 7 && !*end && fd >= 0 && fd < (1L << 30))
            n = server_traceparent((int)fd, out, sizeof out);
    } else if (!strncmp(p, "client/", 7)) {
        long fd = strtol(p + 7, &end, 10);
        if (end != p + 7 && *end == '/' && fd >= 0 && fd < (1L << 30) &&
            client_parent((int)fd, end + 1, strlen(end + 1)) == 0) {
            memcpy(out, "ok", 2);
            n = 2;
        }
    }
    if (n < 0) {
        errno = ENOENT;
        return -1;
    }
    size_t k = (size_t)n < bufsiz ? (size_t)n : bufsiz;
    memcpy(buf, out, k);
    return (ssize_t)k;
}

static int ours(const char *path)
{
    return path && !strncmp(path, PREFIX, sizeof PREFIX - 1) &&
           dynobs__layer_on(DYNOBS_LAYER_PROCESS);
}

DYNOBS_API ssize_t readlink(const char *path, char *buf, size_t bufsiz)
{
    static void *slot;
    if (DYNOBS_UNLIKELY(ours(path)))
        return answer(path, buf, bufsiz);
    ssize_t (*fn)(const char *, char *, size_t) =
        (ssize_t(*)(const char *, char *, size_t))dynobs__lookup(&slot, "readlink", NULL);
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    return fn(path, buf, bufsiz);
}

DYNOBS_API ssize_t __readlink_chk(const char *path, char *buf, size_t bufsiz, size_t buflen)
{
    static void *slot;
    if (DYNOBS_UNLIKELY(ours(path)))
        return answer(path, buf, bufsiz < buflen ? bufsiz : buflen);
    ssize_t (*fn)(const char *, char *, size_t, size_t) =
        (ssize_t(*)(const char *, char *, size_t, size_t))dynobs__lookup(&slot, "__readlink_chk",
                                                                         NULL);
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    return fn(path, buf, bufsiz, buflen);
}
