"""Soak test of dynobs-exporter's memory: an application under the shim
produces 50 000 spans/s for SECONDS (default 600) while the exporter
drains them to a local OTLP receiver that discards what it gets; the
exporter's RSS is sampled every 5 s. Passes when memory is flat: the
highest RSS of the second half is within 10% + 2 MiB of the highest of
the first half, and nearly everything produced was exported.

usage: python3 scripts/soak.py BUILD_DIR [SECONDS] [RATE]
(scripts/test.sh runs a shortened 60 s version)
"""

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


class Discard(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    build = os.path.abspath(sys.argv[1])
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    work = tempfile.mkdtemp(prefix="dynobs-soak-")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    prom = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(DYNOBS_SHM_DIR=os.path.join(work, "shm"),
               OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:%d" % srv.server_port,
               OTEL_EXPORTER_PROMETHEUS_PORT=str(prom), OTEL_BSP_SCHEDULE_DELAY="200",
               OTEL_METRIC_EXPORT_INTERVAL="5000")
    log = open(os.path.join(work, "exporter.log"), "w")
    exp = subprocess.Popen([os.path.join(build, "exporter", "dynobs-exporter")], env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    app = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % prom, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        app_env = dict(env, LD_PRELOAD=os.path.join(build, "libdynobs.so"),
                       DYNOBS_RING_BYTES="8M", SCENARIO_RATE=str(rate),
                       SCENARIO_SECONDS=str(seconds))
        app = subprocess.Popen([os.path.join(build, "tests", "dynobs-scenario"), "rate"],
                               env=app_env, stdout=subprocess.DEVNULL)
        samples = []
        t0 = time.time()
        while app.poll() is None:
            time.sleep(5)
            samples.append((time.time() - t0, rss_kb(exp.pid)))
            print("  %5.0fs  exporter RSS %6.1f MiB" % (samples[-1][0], samples[-1][1] / 1024.0))
            sys.stdout.flush()
        time.sleep(2)
        produced = rate * seconds
        exported = metric(prom, 'dynobs_exporter_exported_items_total{signal="traces"}')
        dropped = metric(prom, "dynobs_exporter_ring_records_dropped_total")
        half = len(samples) // 2
        first = max(r for _, r in samples[:half])
        second = max(r for _, r in samples[half:])
        print("produced %d spans in %d s; exported %d, dropped in the ring %d; RSS max %.1f MiB "
              "(first half) / %.1f MiB (second half)" % (produced, seconds, exported, dropped,
                                                        first / 1024.0, second / 1024.0))
        ok = second <= first * 1.10 + 2048 and exported + dropped >= produced * 0.99
        print("soak: %s" % ("flat" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if app and app.poll() is None:
            app.kill()
        exp.terminate()
        exp.wait(20)
        srv.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
