"""Notification latency of dynobs-exporter's /api/v1/watch (issue 18):
prints a table.

usage: python3 bench/sse_latency_bench.py BUILD_DIR [--crossings=N] [--quick]
               [--exporter=PATH[,PATH]]
       python3 bench/sse_latency_bench.py BUILD_DIR --callgrind [--exporter=PATH[,PATH]]

A Python program under the shim (/usr/bin/python3 with the dynobs
package) sets a gauge above a threshold and back below it, N times, at a
random phase of the exporter's 10 ms watch tick; a client in this
process reads the event stream. The latency of one crossing is the time
from just before the set (taken by the setting process) to the arrival
of the whole event at the client, both on CLOCK_MONOTONIC. Measured:

1. one client, nothing else in the store;
2. eight clients watching the same series (the latency of each);
3. one client with 5 000 other gauge series in the store (each 10 ms
   tick takes a snapshot of every series);
4. the exporter's CPU (its threads' schedstat) over 5 s with no
   client and with one client, with the 5 000 series: what watching
   costs while nothing crosses.

--callgrind runs the exporter under valgrind's callgrind, collecting
inside the watch thread only (its ticks, between two sleeps), with the 5 000 series and one
client for 10 s, and prints the instructions of one tick (the timings
above move with the machine's load; the count does not).

With two exporters (--exporter=A,B, e.g. one built from an older
commit), the table is printed for each, A then B then A then B.

The machine is shared: timings move with other load; run it twice.
"""

import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1])
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(BUILD, "libdynobs.so")
PY = "/usr/bin/python3"
QUICK = "--quick" in sys.argv


def option(name, default):
    for a in sys.argv:
        if a.startswith("--" + name + "="):
            return a.split("=", 1)[1]
    return default


CROSSINGS = int(option("crossings", 50 if QUICK else 200))
EXPORTERS = option("exporter", os.path.join(BUILD, "exporter", "dynobs-exporter")).split(",")

# set NAME VALUE: prints CLOCK_MONOTONIC just before the set;
# many NAME N: N series NAME{i=..} set once.
APP = r'''
import sys, time
import dynobs
g = {}
for line in sys.stdin:
    w = line.split()
    inst = g.setdefault(w[1], dynobs.gauge(w[1]))
    if w[0] == "set":
        t = time.monotonic()
        inst.set(float(w[2]))
        print(repr(t), flush=True)
    else:
        for i in range(int(w[2])):
            inst.set(i, {"i": str(i)})
        print("ok", flush=True)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, exporter, wrap=()):
        self.dir = tempfile.mkdtemp(prefix="dynobs-sse-")
        self.shm = os.path.join(self.dir, "shm")
        self.port = free_port()
        env = dict(os.environ, DYNOBS_SHM_DIR=self.shm,
                   OTEL_EXPORTER_PROMETHEUS_PORT=str(self.port),
                   OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_METRICS_EXPORTER="none",
                   OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
        env.pop("LD_PRELOAD", None)
        self.exporter = subprocess.Popen(list(wrap) + [exporter], env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        self.apps = []
        for _ in range(600):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=1)
                break
            except OSError:
                time.sleep(0.05)

    def app(self, service):
        script = os.path.join(self.dir, "app.py")
        with open(script, "w") as f:
            f.write(APP)
        env = dict(os.environ, LD_PRELOAD=LIB, DYNOBS_SHM_DIR=self.shm, DYNOBS_LIBRARY=LIB,
                   OTEL_SERVICE_NAME=service, DYNOBS_METRIC_SLOTS="16384",
                   PYTHONPATH=os.path.join(SOURCE, "python"))
        p = subprocess.Popen([PY, script], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.apps.append(p)
        return p

    def cpu(self):
        """CPU seconds of the exporter's threads (nanoseconds in schedstat,
        where /proc/PID/stat counts 10 ms ticks)."""
        total = 0
        task = "/proc/%d/task" % self.exporter.pid
        for t in os.listdir(task):
            try:
                with open(os.path.join(task, t, "schedstat")) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass  # a thread that ended meanwhile
        return total / 1e9

    def close(self):
        for p in self.apps:
            p.kill()
            p.wait()
        self.exporter.send_signal(signal.SIGTERM)
        self.exporter.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def do(app, line):
    app.stdin.write(line + "\n")
    app.stdin.flush()
    return app.stdout.readline().strip()


class Client:
    """Reads an event stream; keeps (arrival, kind, data)."""

    def __init__(self, port, query):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/api/v1/watch?" + query)
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.events = []
        self.cond = threading.Condition()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        kind = None
        try:
            for raw in iter(self.resp.readline, b""):
                line = raw.decode()
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: "):
                    with self.cond:
                        self.events.append((time.monotonic(), kind, json.loads(line[6:])))
                        self.cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait(self, n, timeout=2.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no event within %.1f s" % timeout)
                self.cond.wait(left)
            return self.events[n - 1]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def crossings(b, app, clients, n):
    """Latencies (ms) of n crossings, one per client per crossing."""
    do(app, "set level 0")
    for c in clients:
        c.wait(1, 5)  # its "series" event: the baseline
    lat = []
    for i in range(n):
        t_set = float(do(app, "set level 10"))
        for c in clients:
            t, kind, data = c.wait(2 + i)
            assert kind == "crossing" and data["value"] == 10, (kind, data)
            lat.append((t - t_set) * 1000)
        do(app, "set level 0")
        time.sleep(0.02 + random.random() * 0.01)
    return lat


def row(what, lat):
    lat = sorted(lat)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print("| %-52s | %5d | %6.1f | %6.1f | %6.1f | %6.1f |" %
          (what, len(lat), statistics.median(lat), pct(0.9), pct(0.99), lat[-1]))


def run(exporter):
    print("%s: SSE notification latency, set -> event at the client (ms); %d crossings" %
          (exporter, CROSSINGS))
    print("| %-52s | %5s | %6s | %6s | %6s | %6s |" % ("case", "n", "median", "p90", "p99", "max"))
    print("|%s|-------|--------|--------|--------|--------|" % ("-" * 54))
    b = Bench(exporter)
    try:
        app = b.app("bench")
        one = Client(b.port, "name=level&above=5")
        row("1 client, 1 series in the store", crossings(b, app, [one], CROSSINGS))
        one.close()
        eight = [Client(b.port, "name=level&above=5") for _ in range(8)]
        row("8 clients on the same series (each)",
            crossings(b, app, eight, max(10, CROSSINGS // 4)))
        for c in eight:
            c.close()
        time.sleep(2.5)  # the closed clients are found and dropped
        crowd = b.app("crowd")
        do(crowd, "many filler 5000")
        one = Client(b.port, "name=level&above=5")
        row("1 client, 5 000 other series in the store", crossings(b, app, [one], CROSSINGS))
        one.close()
        time.sleep(2.5)
        c0 = b.cpu()
        time.sleep(5)
        idle = (b.cpu() - c0) / 5
        one = Client(b.port, "name=level&above=5")
        time.sleep(0.5)
        c0 = b.cpu()
        time.sleep(5)
        watching = (b.cpu() - c0) / 5
        one.close()
        print()
        print("exporter CPU with 5 000 series in the store, nothing crossing: "
              "%.2f %% of a core with no client, %.2f %% with one client watching "
              "(%.0f us per 10 ms tick)" % (idle * 100, watching * 100,
                                            (watching - idle) * 1e6 / 100))
        print()
    finally:
        b.close()


def callgrind(exporter):
    """Instructions per tick of the watch thread, by callgrind."""
    out = tempfile.mktemp(prefix="sse-cg-")
    b = Bench(exporter, ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                         "--toggle-collect=watch_thread"])
    try:
        app = b.app("bench")
        do(app, "set level 0")
        crowd = b.app("crowd")
        do(crowd, "many filler 5000")
        one = Client(b.port, "name=level&above=5")
        one.wait(1, 60)
        time.sleep(10)
        one.close()
        time.sleep(3)  # the client is found gone; the thread ends
    finally:
        b.close()
    # Names are compressed: "(id) name" the first time, "(id)" after.
    names, total, calls = {}, 0, 0
    with open(out) as f:
        lines = f.read().splitlines()
    if not os.environ.get('KEEP'): os.unlink(out)
    for i, line in enumerate(lines):
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
        if line.startswith(("fn=", "cfn=")):
            ref = line.split("=", 1)[1]
            fid, _, name = ref.partition(" ")
            if name:
                names[fid] = name
            if line.startswith("cfn=") and names.get(fid, "").startswith("clock_nanosleep") and \
                    i + 1 < len(lines) and lines[i + 1].startswith("calls="):
                calls += int(lines[i + 1].split("=")[1].split()[0])
    print("%s: %d ticks, %.0f instructions per tick (callgrind, the watch thread)" %
          (exporter, calls, total / calls if calls else float("nan")))


def main():
    if "--callgrind" in sys.argv:
        for exporter in EXPORTERS:
            callgrind(exporter)
        return 0
    if not os.path.exists(PY):
        print("needs /usr/bin/python3")
        return 1
    for _ in range(2 if len(EXPORTERS) > 1 else 1):
        for exporter in EXPORTERS:
            run(exporter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
