#include "sender.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "console.h"
#include "diag.h"
#include "otlp_encode.h"
#include "otlp_http.h"
#include "otlp_wire.h"
#include "queue.h"
#include "segments.h"
#include "stats.h"
#include "util.h"

/* The sinks, copied before the thread starts: the thread reads them only. */
static struct dx_signal_cfg sinks[DX_SIGNALS];
static pthread_t thread;
static int running;
/* Set by the main thread at shutdown, read atomically by the sender: it
 * then stops retrying. */
static int give_up;
/* The request body of a batch, kept from one batch to the next: writing
 * into memory already mapped spares every batch its page faults. */
static struct dx_wire request;
#define REQUEST_KEEP_BYTES ((size_t)4 << 20)

static void export_batch(struct dx_batch *b)
{
    enum dx_signal sig = b->kind;
    const struct dx_signal_cfg *sc = &sinks[sig];
    long items = 0;
    int ok = 1;
    if (sc->sink == DX_SINK_CONSOLE) {
        items = dx_console_batch(b);
    } else if (sc->sink == DX_SINK_OTLP) {
        items = dx_encode_batch_into(b, &request);
        if (items < 0) {
            dx_log(DX_ERROR, "cannot encode a batch of %u records (out of memory)", b->count);
            ok = 0;
            items = b->count;
        } else if (items > 0) {
            ok = dx_http_send(sig, sc->endpoint, request.p, request.len, &give_up) == DX_SENT;
        }
        dx_wire_reset(&request, REQUEST_KEEP_BYTES);
    }
    if (ok)
        dx_stats_add_signal(DX_EXPORTED, sig, (uint64_t)items);
    else
        dx_stats_add_signal(DX_EXPORT_DROPPED, sig, (uint64_t)(items > 0 ? items : b->count));
}

static void export_metrics(void)
{
    const struct dx_signal_cfg *sc = &sinks[DX_METRICS];
    if (sc->sink == DX_SINK_NONE)
        return;
    uint8_t *body = NULL;
    size_t len = 0;
    long points;
    /* The store is read under the segments' lock; the request is sent
     * after it is released, so that a slow receiver never holds up the
     * main thread or /metrics. */
    dx_segments_lock();
    dx_segments_snapshot();
    if (sc->sink == DX_SINK_CONSOLE)
        points = dx_console_metrics();
    else
        points = dx_encode_metrics(dynobs__now_ns(), &body, &len);
    dx_segments_unlock();
    if (sc->sink == DX_SINK_OTLP && points > 0) {
        int ok = dx_http_send(DX_METRICS, sc->endpoint, body, len, &give_up) == DX_SENT;
        dx_stats_add_signal(ok ? DX_EXPORTED : DX_EXPORT_DROPPED, DX_METRICS, (uint64_t)points);
    }
    free(body);
}

static void *sender(void *arg)
{
    (void)arg;
    for (;;) {
        int metrics, stopping;
        struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
        if (b) {
            export_batch(b);
            dx_batch_free(b);
        }
        if (metrics)
            export_metrics();
        if (!b && !metrics && stopping)
            break;
    }
    dx_wire_free(&request);
    return NULL;
}

int dx_sender_start(const struct dx_config *cfg)
{
    sinks[DX_TRACES] = cfg->traces;
    sinks[DX_LOGS] = cfg->logs;
    sinks[DX_METRICS] = cfg->metrics;
    if (pthread_create(&thread, NULL, sender, NULL) != 0)
        return -1;
    running = 1;
    return 0;
}

void dx_sender_finish(uint64_t timeout_ms)
{
    if (!running)
        return;
    dx_queue_stop();
    uint64_t deadline = dynobs__mono_ns() + timeout_ms * 1000000ull;
    while (!dx_queue_idle() && dynobs__mono_ns() <= deadline) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    __atomic_store_n(&give_up, 1, __ATOMIC_RELAXED);
    pthread_join(thread, NULL);
    running = 0;
}
