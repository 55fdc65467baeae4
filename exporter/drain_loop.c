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
    while (!*stop) {
        /* Under load, come back at once: a busy application fills its
         * ring shard in a few milliseconds, and waiting the full interval
         * would make it drop. Idle, sleep the configured interval. */
        int wait_ms = moved >= 256 ? 1 : (int)cfg->drain_ms;
        poll(&pfd, pfd.fd >= 0 ? 1 : 0, wait_ms);
        dx_segments_inotify_drain();
        uint64_t now = dynobs__mono_ns();
        if (now - last_scan >= cfg->rescan_ms * 1000000ull) {
            dx_segments_scan();
            last_scan = now;
        }
        dx_rules_poll();
        moved = dx_segments_drain();
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
