#include "drain_loop.h"

#include <poll.h>

#include "diag.h"
#include "queue.h"
#include "rules_publish.h"
#include "segments.h"
#include "tail.h"
#include "util.h"

void dx_drain_loop_run(const struct dx_config *cfg, const volatile sig_atomic_t *stop)
{
    uint64_t last_scan = dynobs__mono_ns(), last_reap = 0, last_metrics = dynobs__mono_ns();
    uint64_t last_busy = dynobs__mono_ns();
    struct pollfd pfd = {.fd = dx_segments_inotify_fd(), .events = POLLIN};
    size_t moved = 0;
    /* The fastest rate at which a ring shard filled lately, in shards per
     * ms: the largest fill over wait seen, decaying by a tenth per pass. */
    double fill_rate = 0;
    uint64_t last_pass = dynobs__mono_ns();
    while (!*stop) {
        /* Under load, come back before a shard can fill: a busy
         * application fills its ring shard in a few milliseconds, and
         * waiting the full interval would make it drop. The wait is what
         * fills a quarter of a shard at the rate seen lately: a rate
         * that is remembered over a few passes, because applications
         * write in bursts and a pass between two of them finds nothing.
         * Idle, sleep the configured interval. */
        int wait_ms = (int)cfg->drain_ms;
        if (fill_rate > 0 && 0.25 / fill_rate < (double)wait_ms)
            wait_ms = 0.25 / fill_rate < 1 ? 1 : (int)(0.25 / fill_rate);
        if (moved >= 256)
            wait_ms = 1;
        poll(&pfd, pfd.fd >= 0 ? 1 : 0, wait_ms);
        dx_segments_inotify_drain();
        uint64_t now = dynobs__mono_ns();
        if (now - last_scan >= cfg->rescan_ms * 1000000ull) {
            dx_segments_scan();
            last_scan = now;
        }
        dx_rules_poll();
        moved = dx_segments_drain();
        double waited_ms = (double)(now - last_pass) / 1e6;
        last_pass = now;
        double rate = dx_segments_fullest() / (waited_ms > 0.1 ? waited_ms : 0.1);
        fill_rate = rate > fill_rate * 0.9 ? rate : fill_rate * 0.9;
        if (fill_rate < 1e-6)
            fill_rate = 0;
        dx_tail_tick(dynobs__mono_ns());
        if (now - last_reap >= 200 * 1000000ull || dx_segments_any_broken()) {
            dx_segments_reap();
            last_reap = now;
        }
        dx_queue_flush_due(0);
        if (dx_segments_count() > 0)
            last_busy = now;
        else if (cfg->idle_exit_s && now - last_busy >= cfg->idle_exit_s * 1000000000ull) {
            dx_log(DX_INFO, "no segment for %llu s: exiting",
                   (unsigned long long)cfg->idle_exit_s);
            break;
        }
        if (now - last_metrics >= cfg->metric_interval_ms * 1000000ull) {
            dx_queue_request_metrics();
            last_metrics = now;
        }
    }
}

void dx_drain_loop_finish(void)
{
    dx_segments_scan();
    dx_segments_drain();
    dx_segments_reap();
    dx_tail_finish();
    dx_queue_flush_due(1);
}
