/*
 * Streamed responses (Server-Sent Events): a response of unknown length
 * whose producer, on another thread, hands the server bytes as it has
 * them. The connection sleeps (libmicrohttpd's suspend) while the
 * producer has nothing, so an idle stream costs no polling, and a slow
 * client only ever holds up its own connection.
 *
 * A stream is shared by its producer and the server, each holding a
 * reference: the server lets go when the client is gone or the server
 * stops (dx_http_stream_closed() turns true and read is not called
 * again), the producer with dx_http_stream_release().
 */
#ifndef DYNOBS_EXPORTER_HTTP_STREAM_H
#define DYNOBS_EXPORTER_HTTP_STREAM_H

#include <stddef.h>

struct dx_http_stream;

/* Copies up to max bytes of what the producer has into buf: returns the
 * count, 0 when nothing is ready (the connection then sleeps until
 * dx_http_stream_wake), or -1 to end the response. On the server's
 * thread; the producer's own lock, if it takes one, must not be held
 * while it calls dx_http_stream_wake. */
typedef long (*dx_http_stream_read)(void *arg, char *buf, size_t max);

/* A new stream with the producer's reference; NULL when out of memory. */
struct dx_http_stream *dx_http_stream_new(dx_http_stream_read read, void *arg);
/* The producer has bytes: the connection wakes up and calls read. */
void dx_http_stream_wake(struct dx_http_stream *s);
/* 1 once the server has let go (read is never called again). */
int dx_http_stream_closed(struct dx_http_stream *s);
/* The producer lets go; the stream is freed with the last reference. */
void dx_http_stream_release(struct dx_http_stream *s);

/* For http_server.c: the libmicrohttpd response of a stream, which takes
 * a reference for the server (NULL when it cannot be made: the stream is
 * then closed at once), and the end of every stream when
 * the server stops (suspended connections must be resumed first). */
struct MHD_Connection;
struct MHD_Response;
struct MHD_Response *dx_http_stream_response(struct dx_http_stream *s, struct MHD_Connection *c);
void dx_http_stream_stop_all(void);

#endif
