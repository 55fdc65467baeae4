"""Server throughput and tail latency with and without the shim, in one
run: wrk against (a) bench/sample_server.c (thread per connection) and (b) nginx
(one worker), each started plain and under LD_PRELOAD at 100% sampling,
with dynobs-exporter draining the segments. Rounds interleave the four
configurations; the medians and the ratios are printed.

usage: python3 bench/http_server_bench.py BUILD_DIR [--quick]
"""

import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.argv = [sys.argv[0], sys.argv[1], os.path.dirname(HERE)] + sys.argv[2:]
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402

NGINX_CONF = hs.hc.nginx_conf(1024, "  access_log off;\n", """  server {{
    listen 127.0.0.1:{port};
    root {d}/html;
  }}
""")


def start_nginx(env, name, preload):
    d = os.path.join(env.dir, name)
    os.makedirs(os.path.join(d, "html"))
    for p in (env.dir, d, os.path.join(d, "html")):
        os.chmod(p, 0o755)
    with open(os.path.join(d, "html", "index.html"), "w") as f:
        f.write("hello from nginx\n" * 40)
    port = tx.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    e = env.app_env({"OTEL_SERVICE_NAME": name}) if preload else \
        {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d], env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    p.stop_signal = 15
    env.procs.append(p)
    hs.wait_listening(port, p, name)
    return "http://127.0.0.1:%d/index.html" % port


def start_sample_server(env, name, preload):
    port = tx.free_port()
    e = env.app_env({"OTEL_SERVICE_NAME": name}) if preload else \
        {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    p = subprocess.Popen([hs.SAMPLE_SERVER, str(port), "thread"], env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    env.procs.append(p)
    hs.wait_listening(port, p, name)
    return "http://127.0.0.1:%d/bench" % port


def seconds(text):
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * scale
    raise ValueError(text)


def wrk(url, duration):
    r = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % duration, "--latency", url],
                       capture_output=True, text=True, timeout=120, check=True)
    rps = p99 = None
    for line in r.stdout.splitlines():
        f = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(f[1])
        elif len(f) == 2 and f[0] == "99%":
            p99 = seconds(f[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            raise RuntimeError("wrk: %s" % line)
    return rps, p99


def main():
    quick = "--quick" in sys.argv
    rounds, duration = (2, 1) if quick else (5, 3)
    env = tx.Env()
    try:
        env.start_exporter(None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                  "OTEL_LOG_LEVEL": "warn"}, prometheus=False)
        urls = {("sample", False): start_sample_server(env, "sample-plain", False),
                ("sample", True): start_sample_server(env, "sample-shim", True),
                ("nginx", False): start_nginx(env, "nginx-plain", False),
                ("nginx", True): start_nginx(env, "nginx-shim", True)}
        for url in urls.values():
            wrk(url, 1)  # warm up
        got = {k: [] for k in urls}
        for _ in range(rounds):
            for k, url in urls.items():
                got[k].append(wrk(url, duration))
        print("%-8s %12s %12s %10s %12s %12s %10s" % ("server", "req/s plain", "req/s shim",
                                                     "ratio", "p99 plain", "p99 shim", "ratio"))
        for server in ("sample", "nginx"):
            rp = statistics.median(r for r, _ in got[(server, False)])
            rs = statistics.median(r for r, _ in got[(server, True)])
            pp = statistics.median(p for _, p in got[(server, False)])
            ps = statistics.median(p for _, p in got[(server, True)])
            print("%-8s %12.0f %12.0f %10.3f %10.3fms %10.3fms %10.3f" % (
                server, rp, rs, rs / rp, pp * 1e3, ps * 1e3, ps / pp))
        with open("/proc/%d/stat" % env.exporter.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        print("(%d rounds of %d s, wrk -t1 -c16; the exporter used %.1f s of CPU draining %d "
              "segments)" % (rounds, duration, cpu, len(env.segments())))
    finally:
        env.close()


if __name__ == "__main__":
    main()
