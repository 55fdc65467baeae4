"""HTTP client tracing against a real nginx: clients run under LD_PRELOAD,
nginx logs the traceparent it received, the exporter ships the client
spans to a test OTLP receiver, and everything must agree.

usage: test_http_client.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402  (shared helpers; argv parsed there)
from otlp_receiver import Receiver  # noqa: E402

BUILD, SOURCE = tx.BUILD, tx.SOURCE
ONEBYTE = os.path.join(BUILD, "tests", "dynobs-onebyte")
CURLCLIENT = os.path.join(BUILD, "tests", "dynobs-curlclient")
check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                 tx.spans_of)

# The temporary directories nginx would otherwise create under its
# compiled-in prefix; {d} is the instance's directory (also used by
# bench/http_server_bench.py).
NGINX_TEMP_PATHS = """  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
"""


def nginx_conf(connections, logging, servers):
    """An nginx configuration of one worker in the foreground, its files in
    {d}; its http block holds logging, the temporary paths, then servers."""
    return ("daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
            "events {{ worker_connections %d; }}\nhttp {{\n" % connections
            + logging + NGINX_TEMP_PATHS + servers + "}}\n")


NGINX_CONF = nginx_conf(64, """  log_format tp '$request_uri|$http_traceparent|$http_tracestate|$status|$server_protocol|$http_x_app';
  access_log {d}/access.log tp;
""", """  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{tls_port} ssl http2;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    root {d}/html;
    location /missing {{ return 404; }}
  }}
""")


class Nginx:
    def __init__(self, env, preload=False, workers=1, locations="", name="nginx", extra=None):
        """preload: nginx itself runs under the shim (service name: name, in
        a directory of that name; extra: more of its environment)."""
        self.dir = os.path.join(env.dir, name)
        os.makedirs(os.path.join(self.dir, "html"))
        # nginx's workers drop root: they must be able to read the files.
        for d in (env.dir, self.dir, os.path.join(self.dir, "html")):
            os.chmod(d, 0o755)
        with open(os.path.join(self.dir, "html", "index.html"), "wb") as f:
            f.write(b"hello from nginx\n" * 50)
        with open(os.path.join(self.dir, "html", "big.bin"), "wb") as f:
            f.write(os.urandom(300000))
        self.port = tx.free_port()
        self.tls_port = tx.free_port()
        while self.tls_port == self.port:  # (a port just let go may come back at once)
            self.tls_port = tx.free_port()
        self.cert = os.path.join(self.dir, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1", "-keyout",
                            os.path.join(self.dir, "key.pem"), "-out", self.cert],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl req: %s" % r.stderr)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(d=self.dir, port=self.port, tls_port=self.tls_port)
                    .replace("worker_processes 1;", "worker_processes %d;" % workers)
                    .replace("    location /missing", locations + "    location /missing"))
        e = env.app_env(dict({"OTEL_SERVICE_NAME": name}, **(extra or {}))) if preload else None
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir], env=e,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.stop_signal = signal.SIGTERM  # the master stops its workers
        env.procs.append(self.proc)
        wait_for(self.up, 10, "nginx")
        wait_for(lambda: len(self.log()) == 1, 10, "nginx's log of the first request")

    def up(self):
        try:
            return tx.http_get("http://127.0.0.1:%d/index.html" % self.port, 1)
        except OSError:
            return None

    def log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return [l.rstrip("\n").split("|") for l in f if l.strip()]
        except OSError:
            return []


def third_party_skipped(what):
    """Under the sanitizer build the ASan runtime must be preloaded into
    every client, and uninstrumented curl, wget and python hang in
    setlocale with it (even without dynobs): those cases run only in the
    normal build."""
    if os.environ.get("DYNOBS_TEST_PRELOAD_FIRST"):
        tx.skip_part(what, "under AddressSanitizer its runtime cannot be preloaded into an "
                     "uninstrumented %s" % what)
        return True
    return False


# Shared with the other test files (test_exporter.py).
require_third_party = tx.require_third_party


def run(env, argv, preload, extra=None):
    e = env.app_env(extra) if preload else dict(os.environ)
    if not preload:
        e.pop("LD_PRELOAD", None)
    r = subprocess.run(argv, env=e, capture_output=True, timeout=60)
    check(r.returncode == 0, "%s exited %d: %s" % (argv[0], r.returncode, r.stderr[-500:]))
    return r.stdout


def client_case(env, name, argv_of, expect_requests, tls=False):
    """Runs a client without and with the shim; returns (spans, log lines)."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        ng = Nginx(env)
        argv = argv_of(ng)
        before = len(ng.log())
        plain = run(env, argv, False)
        # nginx writes its log line once the response is out: wait for it.
        wait_for(lambda: len(ng.log()) == before + expect_requests, 10,
                 "%s: the requests without the shim in nginx's log" % name)
        check(all(l[1] == "-" for l in ng.log()[before:]), "a traceparent without the shim")
        base = len(ng.log())
        traced = run(env, argv, True, {"OTEL_SERVICE_NAME": name})
        check(traced == plain, "%s: the response bodies differ with the shim" % name)
        lines = wait_for(lambda: len(ng.log()) == base + expect_requests and ng.log()[base:], 10,
                         "nginx's log")
        wait_for(lambda: len(spans_of(rx.accepted("/v1/traces"))) >= expect_requests, 10,
                 "%d client spans" % expect_requests)
        spans = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == name]
        check(len(spans) == expect_requests, "%s: %d spans" % (name, len(spans)))
        by_id = {hexid(s, "span_id"): s for s in spans}
        for uri, tp, ts, status, proto, xapp in lines:
            check(tp != "-" and "," not in tp, "%s: traceparent %r at nginx" % (name, tp))
            parts = tp.split("-")
            check(len(parts) == 4 and parts[0] == "00", "traceparent form %r" % tp)
            s = by_id.get(parts[2])
            check(s is not None, "%s: no client span with id %s" % (name, parts[2]))
            check(hexid(s, "trace_id") == parts[1], "trace ids differ")
            a = attrs(s)
            check(one(s, "kind") == "SPAN_KIND_CLIENT", "kind")
            check(a["http.response.status_code"] == int(status), "status %r" % a)
            is_tls = a["url.full"].startswith("https://") if tls is None else tls
            port = ng.tls_port if is_tls else ng.port
            check(a["http.request.method"] == "GET" and a["server.port"] == port, "attrs %r" % a)
            check(a["url.full"].startswith("%s://127.0.0.1:%d/" % ("https" if is_tls else "http",
                                                                   port)), "url %r" % a)
            want = {"HTTP/1.1": "1.1", "HTTP/2.0": "2"}[proto]
            check(a["network.protocol.version"] == want, "version %r for %s" % (a, proto))
            if int(status) >= 400:
                check(a["error.type"] == status and
                      one(one(s, "status"), "code") == "STATUS_CODE_ERROR", "error status")
        return spans, lines
    finally:
        rx.stop()


@tx.with_env
def test_curl_cli(env):
    require_third_party("curl")
    client_case(env, "curl", lambda n: ["curl", "-s", "http://127.0.0.1:%d/index.html" % n.port,
                                        "http://127.0.0.1:%d/missing?k=secret" % n.port,
                                        "http://127.0.0.1:%d/big.bin" % n.port], 3)


@tx.with_env
def test_curl_cli_https(env):
    require_third_party("curl")
    client_case(env, "curls", lambda n: [
        "curl", "-s", "--http1.1", "--cacert", n.cert,
        "https://127.0.0.1:%d/index.html" % n.tls_port,
        "https://127.0.0.1:%d/big.bin" % n.tls_port], 2, tls=True)


@tx.with_env
def test_python_urllib(env):
    tx.require_system_python3()
    code = ("import sys, urllib.request\n"
            "for u in sys.argv[1:]:\n"
            "    try:\n"
            "        sys.stdout.buffer.write(urllib.request.urlopen(u).read())\n"
            "    except urllib.error.HTTPError as e:\n"
            "        sys.stdout.buffer.write(b'%d' % e.code)\n")
    spans, _ = client_case(env, "pyclient", lambda n: [
        "/usr/bin/python3", "-c", code, "http://127.0.0.1:%d/index.html?a=1&b=2" % n.port,
        "http://127.0.0.1:%d/missing" % n.port], 2)
    urls = sorted(attrs(s)["url.full"] for s in spans)
    check(any(u.endswith("/index.html?a=REDACTED&b=REDACTED") for u in urls),
          "query redacted: %r" % urls)


@tx.with_env
def test_curl_cli_http2(env):
    require_third_party("curl")
    _, lines = client_case(env, "curl2", lambda n: [
        "curl", "-s", "--http2", "--cacert", n.cert,
        "https://127.0.0.1:%d/index.html" % n.tls_port,
        "https://127.0.0.1:%d/missing" % n.tls_port], 2, tls=True)
    check(all(l[4] == "HTTP/2.0" for l in lines), "HTTP/2 was used: %r" % lines)


@tx.with_env
def test_libcurl_easy_keeps_the_app_header_list(env):
    _, lines = client_case(env, "cureasy", lambda n: [
        CURLCLIENT, "easy", n.cert, "https://127.0.0.1:%d/index.html" % n.tls_port,
        "http://127.0.0.1:%d/big.bin" % n.port], 2, tls=None)
    check(all(l[5] == "yes" for l in lines), "the app's own header reached nginx: %r" % lines)


@tx.with_env
def test_libcurl_multi(env):
    _, lines = client_case(env, "curmulti", lambda n: [
        CURLCLIENT, "multi", n.cert] + ["https://127.0.0.1:%d/index.html?i=%d" % (n.tls_port, i)
                                        for i in range(4)], 4, tls=True)
    check(all(l[5] == "yes" for l in lines), "the app's own header reached nginx")


@tx.with_env
def test_libcurl_transport_error(env):
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        port = tx.free_port()
        e = env.app_env({"OTEL_SERVICE_NAME": "refused"})
        r = subprocess.run([CURLCLIENT, "easy", "/dev/null", "http://127.0.0.1:%d/" % port],
                           env=e, capture_output=True, timeout=60)
        check(r.returncode == 4, "the transfer should fail: %d" % r.returncode)
        wait_for(lambda: len(spans_of(rx.accepted("/v1/traces"))) == 1, 10, "the span")
        _, s = spans_of(rx.accepted("/v1/traces"))[0]
        a = attrs(s)
        check(a["error.type"] == "CURLE_COULDNT_CONNECT", "error.type %r" % a)
        check(one(one(s, "status"), "code") == "STATUS_CODE_ERROR", "error status")
    finally:
        rx.stop()


@tx.with_env
def test_python_https_through_openssl(env):
    tx.require_system_python3()
    code = ("import ssl, sys, urllib.request\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
            "for u in sys.argv[2:]:\n"
            "    sys.stdout.buffer.write(urllib.request.urlopen(u, context=ctx).read())\n")
    client_case(env, "pytls", lambda n: [
        "/usr/bin/python3", "-c", code, n.cert,
        "https://127.0.0.1:%d/index.html" % n.tls_port,
        "https://127.0.0.1:%d/big.bin" % n.tls_port], 2, tls=True)


@tx.with_env
def test_onebyte_nonblocking_keepalive(env):
    client_case(env, "onebyte", lambda n: [ONEBYTE, str(n.port), "/index.html", "4"], 4)


@tx.with_env
def test_wget(env):
    if not shutil.which("wget"):
        raise tx.Skipped("no wget (Debian: wget)")
    require_third_party("wget")
    client_case(env, "wget", lambda n: ["wget", "-q", "-O", "-",
                                        "http://127.0.0.1:%d/index.html" % n.port], 1)


@tx.with_env
def test_app_traceparent_is_left_alone(env):
    require_third_party("curl")
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        ng = Nginx(env)
        mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        run(env, ["curl", "-s", "-H", "traceparent: " + mine,
                  "http://127.0.0.1:%d/index.html" % ng.port], True)
        wait_for(lambda: len(spans_of(rx.accepted("/v1/traces"))) == 1, 10, "the span")
        check(ng.log()[-1][1] == mine, "nginx saw %r" % ng.log()[-1][1])
        _, s = spans_of(rx.accepted("/v1/traces"))[0]
        check(hexid(s, "trace_id") == "0af7651916cd43dd8448eb211c80319c" and
              hexid(s, "parent_span_id") == "b7ad6b7169203331", "the app's context is the parent")
    finally:
        rx.stop()


@tx.with_env
def test_client_metric_exact_when_unsampled(env):
    env.start_exporter(None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    ng = Nginx(env)
    run(env, [ONEBYTE, str(ng.port), "/index.html", "5"], True,
        {"OTEL_TRACES_SAMPLER": "always_off", "OTEL_SERVICE_NAME": "quiet"})
    series = ('http_client_request_duration_seconds_count{service_name="quiet",'
              'http_request_method="GET",http_response_status_code="200",'
              'server_address="127.0.0.1",server_port="%d"}' % ng.port)
    wait_for(lambda: env.metric(series) == 5, 10, "5 requests counted")
    # Unsampled: the context still propagates, with the sampled flag clear
    # (the random-trace-id flag stays set).
    wait_for(lambda: len(ng.log()) >= 6, 10, "nginx's log")
    flags = [int(l[1][-2:], 16) for l in ng.log()[-5:]]
    check(all(f & 1 == 0 and f & 2 for f in flags), "flags at nginx %r" % flags)


class RawServer:
    """Answers every HTTP/1.1 request with a small body and records how
    many traceparent lines each request head carried (nginx's log would
    show only the first of two)."""

    def __init__(self):
        import socket
        import threading
        self.counts = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")[1:]
                self.counts.append(sum(1 for l in lines if l.lower().startswith(b"traceparent:")))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")


@tx.with_env
def test_exactly_one_traceparent_per_request(env):
    srv = RawServer()
    url = "http://127.0.0.1:%d/x" % srv.port
    cases = [([ONEBYTE, str(srv.port), "/x", "3"], 3), ([CURLCLIENT, "easy", "/dev/null", url, url], 2)]
    if not third_party_skipped("curl/python"):
        cases += [(["curl", "-s", url, url], 2),
                  (["/usr/bin/python3", "-c", "import urllib.request as u, sys\n"
                    "for _ in range(2): u.urlopen(sys.argv[1]).read()", url], 2)]
    for argv, n in cases:
        before = len(srv.counts)
        run(env, argv, True)
        got = srv.counts[before:]
        check(got == [1] * n, "%s: traceparent lines per request %r" % (argv[0], got))
    srv.sock.close()


def nginx_found():
    """nginx is on PATH (with /usr/sbin added)."""
    os.environ["PATH"] += ":/usr/sbin"
    if shutil.which("nginx"):
        return True
    return False


def main():
    if not nginx_found():
        return tx.skip_file("nginx is missing (Debian: nginx-light)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
