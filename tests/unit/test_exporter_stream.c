/* Streamed responses (http_stream.h) over a real socket: bytes handed
 * over after the connection went to sleep reach the client, query
 * arguments reach the handler, a client that goes away closes its
 * stream, and the server stops with a stream asleep. Then the JSON
 * writer of the metrics API and the bounded queue of an event stream. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event_queue.h"
#include "http_server.h"
#include "http_stream.h"
#include "json_out.h"

/* The producer: bytes queued under a lock, taken by the server. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char queued[256];
static size_t nqueued;
static struct dx_http_stream *stream;
static char arg_seen[64];

static long take(void *arg, char *buf, size_t max)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    size_t n = nqueued < max ? nqueued : max;
    memcpy(buf, queued, n);
    memmove(queued, queued + n, nqueued - n);
    nqueued -= n;
    pthread_mutex_unlock(&lock);
    return (long)n;
}

static void push(const char *s)
{
    pthread_mutex_lock(&lock);
    memcpy(queued + nqueued, s, strlen(s));
    nqueued += strlen(s);
    struct dx_http_stream *st = __atomic_load_n(&stream, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&lock);
    if (st) /* before the request, bytes are only queued */
        dx_http_stream_wake(st); /* not under the producer's lock */
}

static void streaming(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    const char *v = dx_httpd_arg(r, "who");
    snprintf(arg_seen, sizeof arg_seen, "%s", v ? v : "(none)");
    static const char *const known[] = {"who", NULL};
    const char *unknown;
    dx_httpd_unknown_arg(r, known, &unknown);
    if (unknown) {
        r->status = 400;
        dx_buf_printf(&r->body, "unknown %s\n", unknown);
        return;
    }
    struct dx_http_stream *st = dx_http_stream_new(take, NULL);
    cr_assert(st);
    __atomic_store_n(&stream, st, __ATOMIC_RELEASE);
    r->content_type = "text/event-stream";
    r->stream = st;
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

static struct sockaddr_in serve(void)
{
    dx_httpd_reset();
    cr_assert_eq(dx_httpd_route("/stream", streaming, NULL, 4096), 0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    cr_assert_eq(dx_httpd_start("127.0.0.1", ntohs(sa.sin_port)), 0);
    return sa;
}

static int request(struct sockaddr_in *sa, const char *target)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)sa, sizeof *sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    cr_assert_eq(write(c, req, (size_t)n), n);
    return c;
}

/* Reads until `want` has arrived (or 2 s pass); the text read so far. */
static const char *read_until(int c, const char *want)
{
    static char got[8192];
    static size_t len;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!strstr(got, want) && len < sizeof got - 1) {
        ssize_t k = read(c, got + len, sizeof got - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        got[len] = '\0';
    }
    return got;
}

Test(exporter_stream, bytes_after_a_sleep_reach_the_client)
{
    struct sockaddr_in sa = serve();
    push("first\n"); /* no stream yet: only queued */
    int c = request(&sa, "/stream?who=a%20b");
    const char *got = read_until(c, "first\n");
    cr_assert(strstr(got, "HTTP/1.1 200"), "%s", got);
    cr_assert(strstr(got, "Content-Type: text/event-stream"), "%s", got);
    cr_assert(strstr(got, "first\n"), "%s", got);
    cr_assert_str_eq(arg_seen, "a b");
    /* The connection is asleep now; a wake brings the next bytes. */
    sleep_ms(100);
    push("second\n");
    got = read_until(c, "second\n");
    cr_assert(strstr(got, "second\n"), "%s", got);
    cr_assert_not(dx_http_stream_closed(stream));
    /* The client goes; the next bytes fail to go out and the server lets
     * go of the stream. */
    close(c);
    for (int i = 0; i < 200 && !dx_http_stream_closed(stream); i++) {
        push("ping\n");
        sleep_ms(10);
    }
    cr_assert(dx_http_stream_closed(stream), "the server let go of a closed client's stream");
    dx_http_stream_release(stream);
    dx_httpd_stop();
}

Test(exporter_stream, the_server_stops_with_a_stream_asleep)
{
    struct sockaddr_in sa = serve();
    int c = request(&sa, "/stream");
    push("x\n");
    read_until(c, "x\n");
    sleep_ms(50); /* asleep: nothing queued */
    dx_httpd_stop();
    cr_assert(dx_http_stream_closed(stream));
    cr_assert_str_eq(arg_seen, "(none)");
    dx_http_stream_release(stream);
    close(c);
}

Test(exporter_stream, unknown_arguments_are_named)
{
    struct sockaddr_in sa = serve();
    int c = request(&sa, "/stream?who=x&what=y");
    const char *got = read_until(c, "unknown what\n");
    cr_assert(strstr(got, "HTTP/1.1 400") && strstr(got, "unknown what\n"), "%s", got);
    close(c);
    dx_httpd_stop();
}

Test(exporter_stream, json_strings_and_numbers)
{
    struct dx_buf b;
    dx_buf_init(&b, 4096);
    dx_json_str(&b, "a\"b\\c\n\x01 é");
    dx_buf_str(&b, " ");
    dx_json_num(&b, 1.5);
    dx_buf_str(&b, " ");
    dx_json_num(&b, 1.0 / 0.0);
    dx_buf_str(&b, " ");
    dx_json_num(&b, 0.0 / 0.0);
    cr_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000a\\u0001 é\" 1.5 null null");
    dx_buf_free(&b);
}

Test(exporter_stream, a_full_event_queue_drops_whole_events_and_counts_them)
{
    static struct dx_event_queue q;
    dx_event_queue_init(&q);
    char event[1000], out[DX_EVENT_QUEUE_BYTES];
    memset(event, 'e', sizeof event);
    int put = 0;
    while (dx_event_queue_put(&q, event, sizeof event, 1) == 0)
        put++;
    cr_assert_eq(put, DX_EVENT_QUEUE_BYTES / (int)sizeof event);
    cr_assert_eq(dx_event_queue_dropped(&q), 1);
    cr_assert_eq(dx_event_queue_put(&q, "x", 1, 0), 0, "a comment still fits");
    cr_assert_eq(dx_event_queue_put(&q, event, 400, 0), -ENOBUFS);
    cr_assert_eq(dx_event_queue_dropped(&q), 1, "a comment is not an event");
    cr_assert(dx_event_queue_filled(&q));
    cr_assert_not(dx_event_queue_filled(&q), "said once");
    /* Taken in pieces, then room again at the end: bytes come out in order. */
    cr_assert_eq(dx_event_queue_take(&q, out, 1500), 1500);
    cr_assert_eq(dx_event_queue_put(&q, "tail", 4, 1), 0);
    size_t n = dx_event_queue_take(&q, out, sizeof out);
    cr_assert_eq(n, (size_t)put * sizeof event - 1500 + 1 + 4);
    cr_assert_eq(memcmp(out + n - 5, "xtail", 5), 0);
    cr_assert_eq(dx_event_queue_take(&q, out, sizeof out), 0);
    dx_event_queue_destroy(&q);
}
