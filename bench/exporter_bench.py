"""dynobs-exporter benchmarks: prints a table.

usage: python3 bench/exporter_bench.py BUILD_DIR [--quick]
       python3 bench/exporter_bench.py BUILD_DIR --throughput [--rounds=N]
               [--exporter=A[,B]] [--wrap="perf record -g -o FILE --"]

1. drain + encode + send: spans per CPU-second of the exporter (all its
   threads) and per wall-second, to a loopback receiver that discards;
2. /metrics render time for 10,000 series (median of 20 scrapes, HTTP
   round trip included);
3. the exporter's peak RSS while applications produce 200,000 spans/s.

--throughput runs the first measure only, --rounds times; with two
exporter binaries (--exporter=A,B, e.g. a copy of the old one) the rounds
alternate A and B (A first in odd rounds, B first in even ones) and the
medians and their ratio B/A are printed. --wrap prefixes the exporter's
command line, for profiling (the CPU figures are then the wrapper's).
"""

import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1])
QUICK = "--quick" in sys.argv
THROUGHPUT = "--throughput" in sys.argv


def option(name, default):
    for a in sys.argv:
        if a.startswith("--" + name + "="):
            return a.split("=", 1)[1]
    return default


ROUNDS = int(option("rounds", "1"))
WRAP = option("wrap", "").split()
EXPORTER = os.path.join(BUILD, "exporter", "dynobs-exporter")
EXPORTERS = [os.path.abspath(e) for e in option("exporter", EXPORTER).split(",")]
SCENARIO = os.path.join(BUILD, "tests", "dynobs-scenario")
LIB = os.path.join(BUILD, "libdynobs.so")
TICK = os.sysconf("SC_CLK_TCK")


class Discard(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        while n:
            n -= len(self.rfile.read(min(n, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def cpu_seconds(pid):
    """CPU time of all the process's threads: the nanosecond run times of
    /proc/PID/task/*/schedstat where the kernel has them (the 10 ms ticks
    of /proc/PID/stat are too coarse for a run of a tenth of a second),
    else the ticks. Both count the threads alive now: the exporter's
    threads live as long as it does."""
    try:
        total = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exporter(shm, endpoint, extra=None, binary=EXPORTER):
    port = free_port()
    env = dict(os.environ, DYNOBS_SHM_DIR=shm, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               OTEL_EXPORTER_PROMETHEUS_PORT=str(port), OTEL_METRICS_EXPORTER="none",
               OTEL_LOG_LEVEL="warn", DYNOBS_DRAIN_INTERVAL="10")
    env.pop("LD_PRELOAD", None)
    env.update(extra or {})
    p = subprocess.Popen(WRAP + [binary], env=env)
    for _ in range(200):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def app(shm, scenario, extra):
    env = dict(os.environ, LD_PRELOAD=LIB, DYNOBS_SHM_DIR=shm, **extra)
    return subprocess.run([SCENARIO, scenario], env=env, capture_output=True, text=True, check=True)


XPORT_ENV = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192", "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
             "OTEL_BSP_SCHEDULE_DELAY": "50"}


def throughput(tmp, url, n, binary, tag):
    """Spans already waiting in a ring, drained to the end: (cpu, wall) s.

    The exporter drains from its first moment, before it answers
    /healthz, so its CPU time is counted from its start; what an exporter
    with nothing to drain spends getting there (measured alongside, on an
    empty directory) is taken off."""
    empty = os.path.join(tmp, "e" + tag)
    os.makedirs(empty)
    p, _ = exporter(empty, url, XPORT_ENV, binary)
    startup = cpu_seconds(p.pid)
    p.terminate()
    p.wait()
    shm = os.path.join(tmp, "t" + tag)
    app(shm, "burst", {"SCENARIO_N": str(n), "DYNOBS_RING_BYTES": "256M"})
    t0 = time.time()
    p, port = exporter(shm, url, XPORT_ENV, binary)
    while metric(port, 'dynobs_exporter_exported_items_total{signal="traces"}') < n:
        if time.time() - t0 > 120:
            p.kill()
            raise SystemExit("%d spans not exported in 120 s (dropped by the application: %d)"
                             % (n, metric(port, "dynobs_exporter_ring_records_dropped_total")))
        time.sleep(0.02)
    wall, cpu = time.time() - t0, cpu_seconds(p.pid) - startup
    p.terminate()
    p.wait()
    shutil.rmtree(shm, ignore_errors=True)
    return cpu, wall


def compare(tmp, url, n):
    """Alternating rounds of each exporter binary: medians and ratio."""
    rates = {b: [] for b in EXPORTERS}
    for r in range(ROUNDS):
        order = EXPORTERS if r % 2 == 0 else EXPORTERS[::-1]
        for b in order:
            cpu, wall = throughput(tmp, url, n, b, "%d%d" % (r, EXPORTERS.index(b)))
            cpu = max(cpu, 1e-6)
            rates[b].append(n / cpu)
            print("round %d %s: %.0f spans per CPU-second (%.2f s CPU), %.0f per wall-second"
                  % (r + 1, b, n / cpu, cpu, n / wall), flush=True)
    for b in EXPORTERS:
        print("median %s: %.0f" % (b, statistics.median(rates[b])))
    if len(EXPORTERS) == 2:
        a, b = (statistics.median(rates[e]) for e in EXPORTERS)
        print("ratio second/first: %.2f" % (b / a))


def main():
    rows = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    tmp = tempfile.mkdtemp(prefix="dynobs-xbench-")
    try:
        # 1. Throughput: spans already waiting in a ring, drained to the end.
        # 800,000 spans of 144 bytes fit the 128 MiB ring shard the
        # scenario's one thread writes into (256M over two CPUs).
        n = 200000 if QUICK else 800000
        if THROUGHPUT:
            compare(tmp, url, n)
            return
        cpu, wall = throughput(tmp, url, n, EXPORTERS[0], "")
        rows.append(("drain+encode+send, spans per exporter CPU-second", "%.0f" % (n / cpu),
                     ">= 2,000,000"))
        rows.append(("drain+encode+send, spans per wall-second", "%.0f" % (n / wall), "-"))

        # 2. /metrics render for 10,000 series.
        shm = os.path.join(tmp, "m")
        os.makedirs(shm)
        p, port = exporter(shm, url, binary=EXPORTERS[0])
        env = dict(os.environ, LD_PRELOAD=LIB, DYNOBS_SHM_DIR=shm, SCENARIO_N="10000",
                   SCENARIO_SLEEP="60000", DYNOBS_METRIC_SLOTS="16384")
        a = subprocess.Popen([SCENARIO, "series"], env=env, stdout=subprocess.PIPE, text=True)
        line = a.stdout.readline()
        assert line.startswith("series 10000 refused 0"), line
        while metric(port, "dynobs_exporter_segments_attached") < 1:
            time.sleep(0.05)
        times, size = [], 0
        for _ in range(20):
            t = time.perf_counter()
            body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
            times.append(time.perf_counter() - t)
            size = len(body)
        a.kill()
        a.wait()
        p.terminate()
        p.wait()
        rows.append(("/metrics for 10,000 series (median of 20, ms)",
                     "%.2f" % (statistics.median(times) * 1000), "<= 2"))
        rows.append(("/metrics page size for 10,000 series (bytes)", str(size), "-"))

        # 3. RSS while draining 200k spans/s from one application thread,
        #    with the default ring and with a larger one.
        for ring in ("512K", "8M"):
            shm = os.path.join(tmp, "r" + ring)
            os.makedirs(shm)
            p, port = exporter(shm, url, {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
                                          "OTEL_BSP_MAX_QUEUE_SIZE": "16384",
                                          "OTEL_BSP_SCHEDULE_DELAY": "200"}, EXPORTERS[0])
            secs = 2 if QUICK else 5
            env = dict(os.environ, LD_PRELOAD=LIB, DYNOBS_SHM_DIR=shm, SCENARIO_RATE="200000",
                       SCENARIO_SECONDS=str(secs), DYNOBS_RING_BYTES=ring)
            a = subprocess.Popen([SCENARIO, "rate"], env=env, stdout=subprocess.DEVNULL)
            peak = 0
            c0 = cpu_seconds(p.pid)
            while a.poll() is None:
                peak = max(peak, rss_kib(p.pid))
                time.sleep(0.1)
            time.sleep(1.0)
            cpu = cpu_seconds(p.pid) - c0
            exported = metric(port, 'dynobs_exporter_exported_items_total{signal="traces"}')
            dropped = metric(port, "dynobs_exporter_ring_records_dropped_total")
            p.terminate()
            p.wait()
            rows.append(("200k spans/s, app ring %s: exporter peak RSS (MiB)" % ring,
                         "%.1f" % (peak / 1024), "state it"))
            rows.append(("  exporter CPU (cores)", "%.2f" % (cpu / (secs + 1)), "-"))
            rows.append(("  spans exported / dropped in the app's ring",
                         "%d / %d" % (exported, dropped), "-"))
    finally:
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%-52s %14s %14s" % ("measure", "value", "target"))
    for r in rows:
        print("%-52s %14s %14s" % r)


if __name__ == "__main__":
    main()
