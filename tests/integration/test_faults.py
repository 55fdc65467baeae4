"""Fault tests: what happens to the services we are loaded into, and to
what they recorded, when things go wrong around them.

usage: test_faults.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
Environment: DYNOBS_FAULT_DOWN_SECONDS (default 60), how long the OTLP
collector stays down in test_collector_down_for_a_minute.
"""

import os
import re
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

check, wait_for, attrs, one = tx.check, tx.wait_for, tx.attrs, tx.one
FAULTS = os.path.join(tx.BUILD, "tests", "dynobs-faults")
WRAPSEND = os.path.join(tx.BUILD, "tests", "libdynobs-wrapsend.so")
DUMP = os.path.join(tx.BUILD, "dynobs-dump")


def spans_by_segment(shm):
    """{segment file: [span names]} as dynobs-dump reads them."""
    out = {}
    for name in sorted(os.listdir(shm)):
        if not name.endswith(".seg"):
            continue
        text = subprocess.run([DUMP, os.path.join(shm, name)], capture_output=True,
                              text=True).stdout
        out[name] = re.findall(r"^span (\S+) ", text, re.M)
    return out


def run(env, args, extra=None, preload=None, timeout=60):
    e = env.app_env(extra)
    if preload is not None:
        e["LD_PRELOAD"] = preload
    return subprocess.run([FAULTS] + args, env=e, capture_output=True, text=True, timeout=timeout)


@tx.with_env
def test_fork_vfork_posix_spawn_and_exec_chains(env):
    r = run(env, ["procs"])
    check(r.returncode == 0, r.stderr)
    check(r.stdout.split("\n")[:6] == ["fork 0", "done 3", "vfork 0", "done 3", "spawn 0"] or
          ("fork 0" in r.stdout and "vfork 0" in r.stdout and "spawn 0" in r.stdout),
          "children: %r" % r.stdout)
    segs = spans_by_segment(env.shm)
    kinds = sorted(tuple(sorted(set(v))) for v in segs.values())
    # The parent (its threads' spans and one after the children), the
    # forked child, the vfork+exec child and the program at the end of the
    # sh -c 'exec env ...' chain: one segment each (sh and env record
    # nothing, so they have none).
    check(kinds == sorted([("parent-after", "spinner"), ("forked-child",), ("burst",),
                           ("burst",)]), "segments: %s" % segs)
    for name, spans in segs.items():
        if "burst" in spans:
            check(spans.count("burst") == 3, "%s: %s" % (name, spans))


@tx.with_env
def test_daemon_closing_every_fd_and_replacing_stdout(env):
    r = run(env, ["daemon"])
    check(r.returncode == 0 and r.stderr == "daemon ok\n" and r.stdout == "",
          "exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))
    segs = spans_by_segment(env.shm)
    check(len(segs) == 1, "one segment: %s" % segs)
    spans = list(segs.values())[0]
    check(spans.count("before") == 5 and spans.count("after") == 5, "spans: %s" % spans)


@tx.with_env
def test_signals_during_interposed_calls_and_eintr(env):
    r = run(env, ["signals-io"], {"DYNOBS_RING_BYTES": "8M"})
    check(r.returncode == 0, r.stderr)
    check(r.stdout.strip() == "requests 2000, handler ran yes, io errors 0, interrupted read -1 "
          "EINTR", "program: %r" % r.stdout)
    text = subprocess.run([DUMP, env.shm], capture_output=True, text=True).stdout
    # A server span is named with its route: "GET /x".
    kinds = re.findall(r"^span (\S+(?: /\S*)?)\s+kind=(\w+)", text, re.M)
    check(kinds.count(("GET", "CLIENT")) == 2000 and kinds.count(("GET /x", "SERVER")) == 2000,
          "one client and one server span per request")
    check(("in-handler", "INTERNAL") in kinds, "spans from the signal handler")


@tx.with_env
def test_two_preload_libraries_in_either_order(env):
    lib = os.environ.get("DYNOBS_TEST_PRELOAD_FIRST")
    base = (lib + ":") if lib else ""
    for order in ([WRAPSEND, tx.LIB], [tx.LIB, WRAPSEND]):
        out = os.path.join(env.dir, "wrap.txt")
        if os.path.exists(out):
            os.unlink(out)
        for f in os.listdir(env.shm) if os.path.isdir(env.shm) else []:
            os.unlink(os.path.join(env.shm, f))
        r = run(env, ["signals-io"], {"WRAPSEND_OUT": out, "DYNOBS_RING_BYTES": "8M"},
                preload=base + ":".join(order))
        check(r.returncode == 0 and "io errors 0" in r.stdout,
              "%s: %r %r" % (order, r.stdout, r.stderr))
        with open(out) as f:
            seen = f.read()
        m = re.search(r"sends (\d+) writes (\d+)", seen)
        # Behind dynobs it sees what dynobs passes on: the server's writes
        # (the client's requests, with their added line, go out through
        # sendmsg); in front, every write of the program.
        check(m and int(m[1]) > 0 and int(m[2]) >= (4000 if order[0] == WRAPSEND else 2000),
              "%s: the other library saw %r" % (order, seen))
        text = subprocess.run([DUMP, env.shm], capture_output=True, text=True).stdout
        check(len(re.findall(r"^span GET /x\s+kind=SERVER", text, re.M)) == 2000,
              "%s: server spans" % order)


@tx.with_env
def test_setuid_program_keeps_a_sound_segment(env):
    if os.geteuid() != 0:
        raise tx.Skipped("needs root")
    os.chmod(env.dir, 0o755)
    r = run(env, ["setuid"])
    check(r.returncode == 0 and r.stdout.strip() == "uid 65534", "%r %r" % (r.stdout, r.stderr))
    segs = spans_by_segment(env.shm)
    check(len(segs) == 1, "one segment: %s" % segs)
    name, spans = list(segs.items())[0]
    check(spans == ["as-root", "as-nobody", "as-nobody", "as-nobody"], "spans: %s" % spans)
    st = os.stat(os.path.join(env.shm, name))
    check(st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600,
          "owned by root, 0600: uid %d mode %o" % (st.st_uid, stat.S_IMODE(st.st_mode)))


def settle(rx, path="/v1/traces", quiet=1.0, limit=30.0):
    """Waits until the receiver has taken no new body for `quiet` seconds
    (decoding is then done once: protoc per body is slow)."""
    t0, last_n, last_t = time.time(), -1, time.time()
    while time.time() - t0 < limit:
        n = len(rx.accepted(path))
        if n != last_n:
            last_n, last_t = n, time.time()
        elif time.time() - last_t >= quiet:
            return n
        time.sleep(0.1)
    return last_n


@tx.with_env
def test_crash_dies_the_same_with_and_without_the_shim(env):
    """A SIGSEGV and an abort(): same signal and same core dump flag with
    the shim as without it (core size unlimited, in a scratch directory),
    and the shim's report is in the segment."""
    if os.environ.get("DYNOBS_TEST_PRELOAD_FIRST"):
        raise tx.Skipped("under AddressSanitizer its own handler reports instead")
    import resource

    def unlimited():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    scratch = os.path.join(env.dir, "cores")
    os.makedirs(scratch)
    for how in ("segv", "abort"):
        outcome = []
        for preload in (False, True):
            e = env.app_env() if preload else {k: v for k, v in os.environ.items()
                                               if k != "LD_PRELOAD"}
            p = subprocess.Popen([tx.SCENARIO, "crash", how], env=e, cwd=scratch,
                                 preexec_fn=unlimited, stdout=subprocess.DEVNULL)
            _, st = os.waitpid(p.pid, 0)
            p.returncode = 0
            outcome.append((os.WIFSIGNALED(st) and os.WTERMSIG(st), os.WCOREDUMP(st)))
        check(outcome[0] == outcome[1], "%s: without %s, with %s" % (how, outcome[0], outcome[1]))
        check(outcome[1][0] == (signal.SIGSEGV if how == "segv" else signal.SIGABRT), how)
    text = subprocess.run([DUMP, env.shm], capture_output=True, text=True).stdout
    check(text.count("process crashed: SIGSEGV") == 1 and text.count("process crashed: SIGABRT")
          == 1, "both reports in the segments")


def received_seq(rx):
    seqs = [attrs(s).get("i") for _, s in tx.spans_of(rx.accepted("/v1/traces"))]
    return [s for s in seqs if s is not None]


@tx.with_env
def test_exporter_killed_and_restarted_under_load(env):
    """The application never notices; the new exporter finds the segment
    and drains what the ring still held; nothing is delivered twice; the
    segment is reaped at the end."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none",
                                      "OTEL_BSP_MAX_QUEUE_SIZE": "2048"})
        app = env.start_app("loop", {"DYNOBS_RING_BYTES": "8M"})
        wait_for(lambda: app.stdout.readline().startswith("ended 2000"), 20, "2000 spans")
        first = env.exporter
        first.send_signal(signal.SIGKILL)
        first.wait()
        t_kill = time.time()
        time.sleep(1.0)  # the application goes on alone
        check(app.poll() is None, "the application is unaffected")
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none",
                                      "OTEL_BSP_MAX_QUEUE_SIZE": "2048"})
        last = 0
        while True:  # progress continued all along
            line = app.stdout.readline()
            m = re.match(r"ended (\d+)", line)
            if m:
                last = int(m[1])
            if last >= 6000 and time.time() - t_kill > 1.5:
                break
        app.send_signal(signal.SIGKILL)
        app.wait()
        wait_for(lambda: not env.segments(), 15, "the segment to be reaped")
        written = env.metric("dynobs_exporter_ring_records_written_total")
        dropped = env.metric("dynobs_exporter_ring_records_dropped_total")
        settle(rx)
        seq = received_seq(rx)
        check(seq and max(seq) >= last - 100, "the last spans arrived: %s of %d" %
              (max(seq) if seq else None, last))
        check(len(seq) == len(set(seq)), "no span delivered twice")
        missing = max(seq) - len(seq)
        # What the killed exporter had taken out of the ring but not yet
        # sent is gone with it: at most its queue and one batch.
        check(missing <= dropped + 2048 + 512,
              "%d missing of %d (%s written, %s dropped in the ring)" %
              (missing, max(seq), written, dropped))
    finally:
        rx.stop()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])


@tx.with_env
def test_collector_down_for_a_minute(env):
    """A collector that is down for a minute (DYNOBS_FAULT_DOWN_SECONDS):
    the exporter's memory stays bounded while applications keep
    producing; when it comes back, delivery resumes in full."""
    down = float(os.environ.get("DYNOBS_FAULT_DOWN_SECONDS", "60"))
    port = tx.free_port()
    env.start_exporter("http://127.0.0.1:%d" % port, {"OTEL_METRICS_EXPORTER": "none",
                                                      "DYNOBS_RETRY_MAX_MS": "500"})
    app = env.start_app("rate", {"SCENARIO_RATE": "5000", "SCENARIO_SECONDS": str(int(down) + 8),
                                 "DYNOBS_RING_BYTES": "1M"})
    time.sleep(2)
    samples = []
    t0 = time.time()
    while time.time() - t0 < down:
        samples.append(rss_kb(env.exporter.pid))
        time.sleep(1)
    check(app.poll() is None, "the application keeps running")
    growth = max(samples[len(samples) // 4:]) - samples[len(samples) // 4]
    check(growth < 8 * 1024, "exporter RSS grew %d KiB while the collector was down (%s)" %
          (growth, samples[::10]))
    rx = Receiver(port=port)
    try:
        def spans():
            return len(tx.spans_of(rx.accepted("/v1/traces")))
        wait_for(lambda: len(rx.accepted("/v1/traces")) > 2, 20, "delivery to resume")
        check(app.wait(60) == 0, "the application finished normally")
        wait_for(lambda: not env.segments(), 20, "the segment reaped")
        written = env.metric("dynobs_exporter_ring_records_written_total")
        exported = env.metric("dynobs_exporter_exported_total") if env.metric(
            "dynobs_exporter_exported_total") is not None else None
        total = (int(down) + 8) * 5000
        dropped = env.metric("dynobs_exporter_ring_records_dropped_total")
        check(written + dropped == total, "%s written + %s dropped == %d produced" %
              (written, dropped, total))
        settle(rx)
        got = spans()
        check(got >= written - 2048 - 512, "%d received of %s written" % (got, written))
        check(got <= written, "%d received, %s written" % (got, written))
        print("  (collector down %.0fs: RSS growth %d KiB, %s written, %s dropped in the ring, "
              "%d delivered; exported=%s)" % (down, growth, written, dropped, got, exported))
    finally:
        rx.stop()


if __name__ == "__main__":
    sys.exit(tx.run_tests(globals()))
