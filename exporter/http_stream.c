/*
 * Suspend and resume around libmicrohttpd's content reader. The reader
 * runs on the server's thread under the stream's lock: it asks the
 * producer for bytes and, when there are none, suspends the connection
 * before letting go of the lock. A wake takes the same lock, so it comes
 * either before the producer is asked (and the bytes are read) or after
 * the suspension (and resumes it): a wake-up is never lost.
 */
#define _GNU_SOURCE
#include "http_stream.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct dx_http_stream {
    pthread_mutex_t lock;
    int refs;
    int closed;    /* the server let go */
    int suspended; /* the connection sleeps until a wake */
    int stopping;  /* the server stops: the next read ends the response */
    dx_http_stream_read read;
    void *arg;
    struct MHD_Connection *conn;
    struct dx_http_stream *next, *prev; /* the server's streams */
};

/* Streams the server holds, for dx_http_stream_stop_all. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dx_http_stream *all;

struct dx_http_stream *dx_http_stream_new(dx_http_stream_read read, void *arg)
{
    struct dx_http_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    s->read = read;
    s->arg = arg;
    return s;
}

static void unref(struct dx_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

void dx_http_stream_release(struct dx_http_stream *s)
{
    if (s)
        unref(s);
}

int dx_http_stream_closed(struct dx_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int closed = s->closed;
    pthread_mutex_unlock(&s->lock);
    return closed;
}

void dx_http_stream_wake(struct dx_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->suspended && !s->closed) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct dx_http_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    long n = s->stopping ? -1 : s->read(s->arg, buf, max);
    if (n == 0) {
        MHD_suspend_connection(s->conn);
        s->suspended = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

/* libmicrohttpd is done with the response: the client is gone or the
 * server stops. */
static void server_done(void *cls)
{
    struct dx_http_stream *s = cls;
    pthread_mutex_lock(&all_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&all_lock);
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    pthread_mutex_unlock(&s->lock);
    unref(s);
}

struct MHD_Response *dx_http_stream_response(struct dx_http_stream *s, struct MHD_Connection *c)
{
    pthread_mutex_lock(&s->lock);
    s->refs++;
    s->conn = c;
    pthread_mutex_unlock(&s->lock);
    /* Small blocks: an event is sent as soon as it is read, not once a
     * larger buffer fills. */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, server_done);
    if (!r) {
        pthread_mutex_lock(&s->lock);
        s->closed = 1;
        pthread_mutex_unlock(&s->lock);
        unref(s);
        return NULL;
    }
    pthread_mutex_lock(&all_lock);
    s->next = all;
    if (all)
        all->prev = s;
    all = s;
    pthread_mutex_unlock(&all_lock);
    /* A stream may stay quiet for long: the server's idle timeout would
     * cut it. Dead clients are found when a keep-alive fails instead. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    return r;
}

void dx_http_stream_stop_all(void)
{
    pthread_mutex_lock(&all_lock);
    for (struct dx_http_stream *s = all; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        if (s->suspended && !s->closed) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&all_lock);
    /* libmicrohttpd must not be stopped with a connection suspended: the
     * resumed ones end their responses on its thread, which this waits
     * for (a second at most; a client that never reads keeps its
     * connection, which the server's stop then closes). */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&all_lock);
        int left = all != NULL;
        pthread_mutex_unlock(&all_lock);
        if (!left)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
}
