#include "event_queue.h"

#include <errno.h>
#include <string.h>

void dx_event_queue_init(struct dx_event_queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->off = q->len = 0;
    q->dropped = 0;
    q->filled = 0;
}

void dx_event_queue_destroy(struct dx_event_queue *q)
{
    pthread_mutex_destroy(&q->lock);
}

int dx_event_queue_put(struct dx_event_queue *q, const char *text, size_t n, int event)
{
    pthread_mutex_lock(&q->lock);
    if (q->len + n > sizeof q->buf) {
        q->dropped += event != 0;
        pthread_mutex_unlock(&q->lock);
        return -ENOBUFS;
    }
    /* The bytes are kept contiguous, so that a take is one copy: what is
     * left moves to the front when the end is reached. */
    if (q->off + q->len + n > sizeof q->buf) {
        memmove(q->buf, q->buf + q->off, q->len);
        q->off = 0;
    }
    memcpy(q->buf + q->off + q->len, text, n);
    q->len += n;
    q->filled = 1;
    pthread_mutex_unlock(&q->lock);
    return 0;
}

size_t dx_event_queue_take(struct dx_event_queue *q, char *out, size_t max)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len < max ? q->len : max;
    memcpy(out, q->buf + q->off, n);
    q->off += n;
    q->len -= n;
    if (!q->len)
        q->off = 0;
    pthread_mutex_unlock(&q->lock);
    return n;
}

uint64_t dx_event_queue_dropped(struct dx_event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t d = q->dropped;
    pthread_mutex_unlock(&q->lock);
    return d;
}

int dx_event_queue_filled(struct dx_event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int f = q->filled;
    q->filled = 0;
    pthread_mutex_unlock(&q->lock);
    return f;
}
