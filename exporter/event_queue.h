/*
 * The bounded queue of one event-stream client (watch_sse.h): whole
 * events go in on the watch thread, bytes come out on the server's
 * thread as the client's socket takes them. Full means dropped: an event
 * that does not fit is counted and forgotten, so a client that does not
 * read never makes the writer wait, and only that client loses events.
 */
#ifndef DYNOBS_EXPORTER_EVENT_QUEUE_H
#define DYNOBS_EXPORTER_EVENT_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define DX_EVENT_QUEUE_BYTES 16384

struct dx_event_queue {
    pthread_mutex_t lock;
    size_t off, len; /* bytes [off, off + len) of buf */
    uint64_t dropped; /* events that did not fit */
    int filled;       /* bytes went in since dx_event_queue_filled last said so */
    char buf[DX_EVENT_QUEUE_BYTES];
};

void dx_event_queue_init(struct dx_event_queue *q);
void dx_event_queue_destroy(struct dx_event_queue *q);
/* Queues n bytes whole: 0, or -ENOBUFS when they do not fit (then, for
 * an event, counted in dropped; a comment such as a keep-alive is not
 * an event and is not counted). */
int dx_event_queue_put(struct dx_event_queue *q, const char *text, size_t n, int event);
/* Moves up to max queued bytes to out; returns how many (0: empty). */
size_t dx_event_queue_take(struct dx_event_queue *q, char *out, size_t max);
uint64_t dx_event_queue_dropped(struct dx_event_queue *q);
/* 1 when bytes went in since the last call (the reader should be woken). */
int dx_event_queue_filled(struct dx_event_queue *q);

#endif
