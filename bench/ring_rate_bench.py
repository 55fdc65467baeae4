"""One application thread at a steady span rate, with default settings.

usage: python3 bench/ring_rate_bench.py BUILD_DIR [--rate N] [--seconds S]
                                        [--runs R] [--ring SIZE] [--drain MS]
                                        [--xenv NAME=VALUE ...]

Starts dynobs-exporter with its default settings (only the endpoint, a
loopback receiver that discards, and the Prometheus port it is read
through are set), then runs the test scenario program under LD_PRELOAD
producing --rate spans per second (default 200000, two attributes each)
from one thread for --seconds (default 5), --runs times (default 3), and
prints per run the spans exported and dropped in the application's ring,
the application's segment (file size, and the shared memory it holds:
the file's allocated blocks, and its pages resident in the application),
and the exporter's CPU. --ring sets DYNOBS_RING_BYTES for the
application, --drain DYNOBS_DRAIN_INTERVAL for the exporter (both unset by
default: the defaults are what is measured), --xenv any other setting of
the exporter.
"""

import argparse
import glob
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request


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


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def segment_rss_kib(pid):
    """Resident KiB of the application's mapping of its segment."""
    try:
        with open("/proc/%d/smaps" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    rss, inside = 0, False
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:
            inside = line.rstrip().endswith(".seg")
        elif inside and line.startswith("Rss:"):
            rss += int(head[1])
    return rss


def run_once(args, lib, exporter_bin, scenario, url):
    tmp = tempfile.mkdtemp(prefix="dynobs-ratebench-")
    try:
        port = free_port()
        env = dict(os.environ, DYNOBS_SHM_DIR=tmp, OTEL_EXPORTER_OTLP_ENDPOINT=url,
                   OTEL_EXPORTER_PROMETHEUS_PORT=str(port), OTEL_METRICS_EXPORTER="none",
                   OTEL_LOG_LEVEL="warn")
        for k in list(env):
            if k.startswith("DYNOBS_") and k != "DYNOBS_SHM_DIR" or k.startswith("OTEL_BSP"):
                env.pop(k)
        env.pop("LD_PRELOAD", None)
        if args.drain:
            env["DYNOBS_DRAIN_INTERVAL"] = str(args.drain)
        for kv in args.xenv:
            k, _, v = kv.partition("=")
            env[k] = v
        x = subprocess.Popen([exporter_bin], env=env)
        for _ in range(200):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        aenv = {k: v for k, v in os.environ.items()
                if not (k.startswith("DYNOBS_") or k.startswith("OTEL_"))}
        aenv.update(LD_PRELOAD=lib, DYNOBS_SHM_DIR=tmp, SCENARIO_RATE=str(args.rate),
                    SCENARIO_SECONDS=str(args.seconds))
        if args.ring:
            aenv["DYNOBS_RING_BYTES"] = args.ring
        c0 = cpu_seconds(x.pid)
        a = subprocess.Popen([scenario, "rate"], env=aenv, stdout=subprocess.DEVNULL)
        seg_rss = 0
        seg_size = seg_alloc = 0
        while a.poll() is None:
            seg_rss = max(seg_rss, segment_rss_kib(a.pid))
            for path in glob.glob(os.path.join(tmp, "*.seg")):
                st = os.stat(path)
                seg_size, seg_alloc = st.st_size, st.st_blocks * 512
            time.sleep(0.1)
        time.sleep(1.0)
        cpu = cpu_seconds(x.pid) - c0
        exported = metric(port, 'dynobs_exporter_exported_items_total{signal="traces"}')
        dropped = metric(port, "dynobs_exporter_ring_records_dropped_total")
        x.terminate()
        x.wait()
        return exported, dropped, seg_size, seg_alloc, seg_rss, cpu
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rate", type=int, default=200000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ring", default="")
    ap.add_argument("--drain", type=int, default=0)
    ap.add_argument("--xenv", action="append", default=[], metavar="NAME=VALUE",
                    help="another setting of the exporter (repeatable)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    lib = os.path.join(build, "libdynobs.so")
    exporter_bin = os.path.join(build, "exporter", "dynobs-exporter")
    scenario = os.path.join(build, "tests", "dynobs-scenario")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    print("%d spans/s for %d s, ring %s, drain interval %s" %
          (args.rate, args.seconds, args.ring or "default", args.drain or "default"))
    print("%4s %10s %10s %8s %11s %12s %12s %10s" %
          ("run", "exported", "dropped", "dropped%", "segment KiB", "shm held KiB",
           "resident KiB", "exp. CPU"))
    try:
        for i in range(args.runs):
            e, d, size, alloc, rss, cpu = run_once(args, lib, exporter_bin, scenario, url)
            total = e + d
            print("%4d %10d %10d %7.2f%% %11d %12d %12d %10.2f" %
                  (i + 1, e, d, 100.0 * d / total if total else 0.0, size // 1024,
                   alloc // 1024, rss, cpu / (args.seconds + 1)))
    finally:
        srv.shutdown()


if __name__ == "__main__":
    main()
