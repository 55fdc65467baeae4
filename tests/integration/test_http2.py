#!/usr/bin/env python3
"""HTTP/2 under the shim, in clear text (prior knowledge) and inside TLS:
every stream a server answers becomes a SERVER span that continues the
caller's traceparent (preload/h2server.c), and every stream a client
opens a CLIENT span whose traceparent goes out in the HEADERS frame that
opens it (preload/h2client.c).

  - nghttpd (nghttp2-server) serving files to curl, over h2c and over TLS
    (ALPN h2): sequential requests, several streams at once on one
    connection (curl -Z), a 404, and a request whose header block is
    larger than a frame (CONTINUATION frames, the traceparent after the
    split): one span per stream with method, path, route, status,
    network.protocol.version 2 and the caller as parent; the HTTP server
    duration histogram counts them; the response bodies are byte-identical
    with and without the shim.
  - a Python grpcio server (python3-grpcio, which uses the system's
    OpenSSL): unary calls in clear text and over TLS, named
    "package.Service/Method" with rpc.system, rpc.service, rpc.method and
    rpc.grpc.status_code, an error status for a call that fails with
    INTERNAL, and the caller's trace continued (the client sends its own
    traceparent as metadata).
  - nghttp (nghttp2-client) under the shim against nghttpd under the shim:
    four streams at once on one connection (their HEADERS frames in one
    write), h2c and TLS: each server span is the child of its client
    span, one trace per stream, the bodies byte-identical with and
    without the shim; a client that sends its own traceparent is left
    alone (it becomes the parent of both spans, nothing is added).
  - a grpcio client under the shim calling a grpcio server under the
    shim: one trace per call, client span (rpc attributes, status 13 an
    error) parent of the server span.
  - a grpcio server started with dynobs-run (clear text and TLS), whose
    handler (on grpcio's thread pool) calls an HTTP backend: 3 calls one at a time and then 8
    at once, each with a trace of its own: every outbound call is in its
    call's trace, a child of a CLIENT span whose parent is the call's
    SERVER span (dynobs_served_traceparent through the grpc bridge), and
    none in another call's trace.
  - nginx with `http2` on TLS under the shim, called by nghttp under the
    shim (two streams at once) and by curl with a traceparent of its own:
    nginx's spans are the children of nghttp's, carry version 2, and its
    access log shows exactly one traceparent per request, the one that
    names the client span.
  - a bare C client (tests/progs/h2raw.c, the one that also runs under
    the sanitizers) and a Python h2 client under the shim on a non-blocking socket with a
    4 KiB send buffer, sending 20 requests with 12 KB header blocks to a
    server that reads slowly: its writes stop inside the rewritten frames
    again and again (EAGAIN, short writes), yet the server (python3-h2,
    outside the shim) gets every request once, every header intact and
    exactly one traceparent each, naming that request's client span; the
    same with 48 KB header blocks, which h2 sends as HEADERS and
    CONTINUATION frames (our fields go into the frame that ends each
    block).

Usage: test_http2.py BUILD_DIR SOURCE_DIR [test names]"""
import os
import re
import secrets
import shutil
import subprocess
import sys

DEBIAN_PY = "/usr/bin/python3"
try:
    import h2  # noqa: F401  (the slow server of test_h2_client_short_writes)
except ImportError:
    # Debian's interpreter has python3-h2; the test's own may not.
    if sys.executable != DEBIAN_PY and os.path.exists(DEBIAN_PY) and not os.environ.get(
            "TEST_HTTP2_REEXEC"):
        os.environ["TEST_HTTP2_REEXEC"] = "1"
        os.execv(DEBIAN_PY, [DEBIAN_PY] + sys.argv)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

check, one, attrs, hexid = tx.check, tx.one, tx.attrs, tx.hexid


def need(tool, package):
    if not shutil.which(tool):
        raise tx.Skipped("%s is missing (Debian: %s)" % (tool, package))


def certificate(env):
    key, crt = os.path.join(env.dir, "key.pem"), os.path.join(env.dir, "crt.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, crt


def start_nghttpd(env, tls, name):
    need("nghttpd", "nghttp2-server")
    need("curl", "curl")
    tx.require_third_party("nghttpd")
    docs = os.path.join(env.dir, "htdocs")
    os.makedirs(docs, exist_ok=True)
    with open(os.path.join(docs, "index.html"), "wb") as f:
        f.write(b"<p>hello over h2</p>\n" * 50)
    with open(os.path.join(docs, "data.bin"), "wb") as f:
        f.write(os.urandom(100000))
    port = tx.free_port()
    argv = ["nghttpd", "-d", docs, "--address=127.0.0.1"]
    if tls:
        key, crt = certificate(env)
        argv += [str(port), key, crt]
    else:
        argv += ["--no-tls", str(port)]
    p = subprocess.Popen(argv, env=env.app_env({"OTEL_SERVICE_NAME": name}),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env.procs.append(p)
    hs.wait_listening(port, p, "nghttpd")
    return port


def curl(port, tls, paths, headers=(), parallel=False):
    """The bodies of the paths, one after the other (-Z: all at once, as
    streams of one connection), from a curl that is not under the shim."""
    base = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
    argv = ["curl", "-sS"] + (["--http2", "-k"] if tls else ["--http2-prior-knowledge"])
    if parallel:
        argv += ["-Z", "--parallel-immediate"]
    for h in headers:
        argv += ["-H", h]
    argv += [base + path for path in paths]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run(argv, capture_output=True, timeout=60, env=env)
    check(r.returncode == 0, "curl %s: exit %d: %s" % (paths, r.returncode, r.stderr[-300:]))
    return r.stdout


def server_spans(rx, name, n):
    spans = hs.received(rx, name, n, "server spans")
    check(all(hs.kind(s) == "SPAN_KIND_SERVER" for s in spans), "%s: not all server spans" % name)
    return spans


def check_h2_spans(env, tls):
    name = "nghttpd-" + ("tls" if tls else "h2c")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = start_nghttpd(env, tls, name)
        trace, parent = secrets.token_hex(16), secrets.token_hex(8)
        tp = "traceparent: 00-%s-%s-01" % (trace, parent)
        plain = os.path.join(env.dir, "htdocs", "index.html")
        with open(plain, "rb") as f:
            want = f.read()
        # Three requests one after the other, each on its own connection.
        for _ in range(3):
            check(curl(port, tls, ["/index.html"], [tp]) == want,
                  "%s: the body changed under the shim" % name)
        # Four streams at once on one connection, one of them a 404.
        body = curl(port, tls, ["/index.html", "/data.bin", "/missing", "/index.html"], [tp],
                    parallel=True)
        check(want in body, "%s: parallel bodies" % name)
        # A header block larger than a frame: CONTINUATION frames, with the
        # traceparent after the split.
        curl(port, tls, ["/index.html"], ["x-big-%d: %s" % (i, "b" * 4000) for i in range(10)] + [tp])
        spans = server_spans(rx, name, 8)
        for s in spans:
            a = attrs(s)
            check(hexid(s, "trace_id") == trace and hexid(s, "parent_span_id") == parent,
                  "%s: a span does not continue its caller: %s" % (name, a))
            check(a.get("http.request.method") == "GET", "%s: method %r" % (name, a))
            check(a.get("network.protocol.version") == "2", "%s: version %r" % (name, a))
            check(a.get("url.scheme") == ("https" if tls else "http"), "%s: scheme %r" % (name, a))
            check(a.get("server.port") == port, "%s: port %r" % (name, a))
        paths = sorted((attrs(s)["url.path"], attrs(s).get("http.response.status_code"))
                       for s in spans)
        check(paths == [("/data.bin", 200)] + [("/index.html", 200)] * 6 + [("/missing", 404)],
              "%s: paths and statuses %r" % (name, paths))
        names = sorted(one(s, "name").decode() for s in spans)
        check(names[0] == "GET /data.bin" and "GET /missing" in names,
              "%s: span names %r" % (name, names))
        ids = {hexid(s, "span_id") for s in spans}
        check(len(ids) == 8, "%s: %d distinct span ids" % (name, len(ids)))
        series = ('http_server_request_duration_seconds_count{service_name="%s",'
                  'http_request_method="GET",http_response_status_code="%d",http_route="%s",'
                  'url_scheme="%s"}')
        scheme = "https" if tls else "http"
        tx.wait_for(lambda: env.metric(series % (name, 200, "/index.html", scheme)) == 6, 10,
                    "6 requests of /index.html in the duration histogram")
        check(env.metric(series % (name, 404, "/missing", scheme)) == 1,
              "%s: the 404 was not counted once" % name)
    finally:
        rx.stop()


@tx.with_env
def test_nghttpd_h2c(env):
    check_h2_spans(env, False)


@tx.with_env
def test_nghttpd_tls(env):
    check_h2_spans(env, True)


GRPC_SERVER = r'''
import sys, grpc
from concurrent import futures
port, key, crt = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def echo(request, context):
    return b"echo:" + request

def fail(request, context):
    context.abort(grpc.StatusCode.INTERNAL, "it broke")

handler = grpc.method_handlers_generic_handler("demo.v1.Echo", {
    "Say": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
if key == "-":
    server.add_insecure_port("127.0.0.1:%d" % port)
else:
    creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(crt, "rb").read())])
    server.add_secure_port("127.0.0.1:%d" % port, creds)
server.start()
print("ready", flush=True)
server.wait_for_termination()
'''

GRPC_CLIENT = r'''
import sys, grpc
port, crt, tp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
target = "localhost:%d" % port
if crt == "-":
    ch = grpc.insecure_channel(target)
else:
    ch = grpc.secure_channel(target, grpc.ssl_channel_credentials(open(crt, "rb").read()))
say = ch.unary_unary("/demo.v1.Echo/Say")
fail = ch.unary_unary("/demo.v1.Echo/Fail")
for i in range(3):
    assert say(b"hi %d" % i, metadata=(("traceparent", tp),), timeout=10) == b"echo:hi %d" % i
try:
    fail(b"x", metadata=(("traceparent", tp),), timeout=10)
    raise SystemExit("Fail did not fail")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INTERNAL, e.code()
print("ok")
'''


def check_rpc_metric(env, metric, service, want):
    """The RPC duration histogram counts each method's calls under its
    status code, in milliseconds."""
    series = ('%s_count{service_name="%s",rpc_grpc_status_code="%s",rpc_method="%s",'
              'rpc_service="demo.v1.Echo",rpc_system="grpc"}')
    for method, (code, n) in want.items():
        tx.wait_for(lambda: env.metric(series % (metric, service, code, method)) == n, 10,
                    "%s: %d %s calls with status %s in %s" % (service, n, method, code, metric))


def need_grpc():
    """Debian's interpreter with python3-grpcio, as a client or server
    under the shim (skipped under the sanitizers)."""
    tx.require_system_python3()
    if subprocess.run([DEBIAN_PY, "-c", "import grpc"], capture_output=True).returncode:
        raise tx.Skipped("python3-grpcio is not installed")
    return DEBIAN_PY


def start_grpc_server(env, name, tls):
    """GRPC_SERVER under the shim as service name, clear text or TLS;
    its port and the certificate a client trusts ("-" for none)."""
    key, crt = certificate(env) if tls else ("-", "-")
    port = tx.free_port()
    srv = os.path.join(env.dir, "server.py")
    with open(srv, "w") as f:
        f.write(GRPC_SERVER)
    p = subprocess.Popen([DEBIAN_PY, srv, str(port), key, crt],
                         env=env.app_env({"OTEL_SERVICE_NAME": name}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    env.procs.append(p)
    check(p.stdout.readline().strip() == "ready", "the grpc server did not start: %s" % (
        p.stderr.read()[-500:] if p.poll() is not None else ""))
    return port, crt


def check_grpc(env, tls):
    py = need_grpc()
    name = "grpc-" + ("tls" if tls else "h2c")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port, crt = start_grpc_server(env, name, tls)
        cli = os.path.join(env.dir, "client.py")
        with open(cli, "w") as f:
            f.write(GRPC_CLIENT)
        trace, parent = secrets.token_hex(16), secrets.token_hex(8)
        env_c = dict(os.environ)
        env_c.pop("LD_PRELOAD", None)
        r = subprocess.run([py, cli, str(port), crt, "00-%s-%s-01" % (trace, parent)],
                           capture_output=True, text=True, timeout=60, env=env_c)
        check(r.returncode == 0 and r.stdout.strip() == "ok",
              "the grpc client failed: %s %s" % (r.stdout, r.stderr[-800:]))
        spans = server_spans(rx, name, 4)
        by_method = {}
        for s in spans:
            a = attrs(s)
            check(hexid(s, "trace_id") == trace and hexid(s, "parent_span_id") == parent,
                  "%s: a span does not continue its caller: %s" % (name, a))
            check(a.get("rpc.system") == "grpc" and a.get("rpc.service") == "demo.v1.Echo",
                  "%s: rpc attributes %r" % (name, a))
            by_method.setdefault(a.get("rpc.method"), []).append(s)
        check(sorted((k, len(v)) for k, v in by_method.items()) == [("Fail", 1), ("Say", 3)],
              "%s: methods %r" % (name, {k: len(v) for k, v in by_method.items()}))
        for s in by_method["Say"]:
            check(one(s, "name") == b"demo.v1.Echo/Say", "%s: name %r" % (name, one(s, "name")))
            check(attrs(s).get("rpc.grpc.status_code") == 0, "%s: Say status %r" % (
                name, attrs(s)))
            check(not hs.is_error(s), "%s: Say is an error" % name)
        f = by_method["Fail"][0]
        check(attrs(f).get("rpc.grpc.status_code") == 13 and hs.is_error(f),
              "%s: Fail: %r" % (name, attrs(f)))
        check_rpc_metric(env, "rpc_server_duration_milliseconds", name, {"Say": ("0", 3),
                                                                          "Fail": ("13", 1)})
    finally:
        rx.stop()


@tx.with_env
def test_grpc_h2c(env):
    check_grpc(env, False)


@tx.with_env
def test_grpc_tls(env):
    check_grpc(env, True)


def dump_bodies(env, argv, preload):
    e = env.app_env({"OTEL_SERVICE_NAME": "nghttp"}) if preload else dict(os.environ)
    if not preload:
        e.pop("LD_PRELOAD", None)
    r = subprocess.run(argv, capture_output=True, timeout=60, env=e)
    check(r.returncode == 0, "%s: exit %d: %s" % (argv, r.returncode, r.stderr[-300:]))
    return r.stdout


def spans_by_service(rx, n_client, n_server, client, server):
    cs = hs.received(rx, client, n_client, "client spans")
    ss = hs.received(rx, server, n_server, "server spans")
    check(all(hs.kind(s) == "SPAN_KIND_CLIENT" for s in cs), "not all client spans: %r" % cs)
    return cs, ss


def check_pairs(what, cs, ss):
    """Each server span is the child of one client span, in its trace."""
    by_id = {hexid(c, "span_id"): c for c in cs}
    for s in ss:
        c = by_id.get(hexid(s, "parent_span_id"))
        check(c is not None, "%s: server span %s has no client span as parent: %r" % (
            what, one(s, "name"), attrs(s)))
        check(hexid(c, "trace_id") == hexid(s, "trace_id"), "%s: traces differ" % what)
    check(len({hexid(s, "parent_span_id") for s in ss}) == len(ss),
          "%s: two server spans share a parent" % what)


def check_nghttp(env, tls):
    need("nghttp", "nghttp2-client")
    name = "nghttpd-" + ("tls" if tls else "h2c")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = start_nghttpd(env, tls, name)
        base = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
        one_url = ["nghttp", base + "/data.bin"]
        plain = dump_bodies(env, one_url, False)
        check(len(plain) == 100000 and dump_bodies(env, one_url, True) == plain,
              "%s: the body differs under the shim" % name)
        dump_bodies(env, ["nghttp", "-n"] + [base + p for p in
                                             ("/index.html", "/missing", "/data.bin", "/index.html?again=1")],
                    True)
        cs, ss = spans_by_service(rx, 5, 6, "nghttp", name)
        # The first request went out without the shim: its server span
        # starts a trace of its own.
        linked = [s for s in ss if one(s, "parent_span_id") is not None]
        check(len(linked) == 5, "%s: %d server spans have a parent" % (name, len(linked)))
        check_pairs(name, cs, linked)
        for c in cs:
            a = attrs(c)
            check(a.get("network.protocol.version") == "2" and a.get("server.port") == port and
                  a.get("url.full", "").startswith(base), "%s: client attributes %r" % (name, a))
        check(sum(attrs(c).get("url.full") == base + "/index.html?again=REDACTED" for c in cs) == 1,
              "%s: url.full %r" % (name, [attrs(c).get("url.full") for c in cs]))
        missing = [c for c in cs if attrs(c).get("http.response.status_code") == 404]
        check(len(missing) == 1 and hs.is_error(missing[0]), "%s: the 404 client span" % name)
        # A traceparent the application sends itself is left alone.
        trace, parent = secrets.token_hex(16), secrets.token_hex(8)
        dump_bodies(env, ["nghttp", "-H", "traceparent: 00-%s-%s-01" % (trace, parent),
                          base + "/index.html"], True)
        cs, ss = spans_by_service(rx, 6, 7, "nghttp", name)
        own = [s for s in cs + ss if hexid(s, "trace_id") == trace]
        check(len(own) == 2 and all(hexid(s, "parent_span_id") == parent for s in own),
              "%s: the application's traceparent was not left alone: %r" % (
                  name, [(one(s, "name"), hexid(s, "parent_span_id")) for s in own]))
    finally:
        rx.stop()


@tx.with_env
def test_nghttp_client_h2c(env):
    check_nghttp(env, False)


@tx.with_env
def test_nghttp_client_tls(env):
    check_nghttp(env, True)


def check_grpc_pair(env, tls):
    py = need_grpc()
    name = "grpc-" + ("tls" if tls else "h2c")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port, crt = start_grpc_server(env, name, tls)
        cli = os.path.join(env.dir, "client.py")
        with open(cli, "w") as f:
            f.write(GRPC_CLIENT.replace('metadata=(("traceparent", tp),), ', ""))
        r = subprocess.run([py, cli, str(port), crt, "-"], capture_output=True, text=True,
                           timeout=60, env=env.app_env({"OTEL_SERVICE_NAME": name + "-client"}))
        check(r.returncode == 0 and r.stdout.strip() == "ok",
              "the grpc client failed: %s %s" % (r.stdout, r.stderr[-800:]))
        cs, ss = spans_by_service(rx, 4, 4, name + "-client", name)
        check_pairs(name, cs, ss)
        names = sorted(one(c, "name").decode() for c in cs)
        check(names == ["demo.v1.Echo/Fail"] + ["demo.v1.Echo/Say"] * 3, "%s: client names %r" % (
            name, names))
        for c in cs:
            a = attrs(c)
            failed = a.get("rpc.method") == "Fail"
            check(a.get("rpc.system") == "grpc" and a.get("rpc.service") == "demo.v1.Echo" and
                  a.get("rpc.grpc.status_code") == (13 if failed else 0) and
                  hs.is_error(c) == failed, "%s: client span %r" % (name, a))
        check_rpc_metric(env, "rpc_client_duration_milliseconds", name + "-client",
                         {"Say": ("0", 3), "Fail": ("13", 1)})
    finally:
        rx.stop()


@tx.with_env
def test_grpc_client_to_server_h2c(env):
    check_grpc_pair(env, False)


@tx.with_env
def test_grpc_client_to_server_tls(env):
    check_grpc_pair(env, True)


H2_CLIENT = r'''
import os, select, socket, sys
import h2.config, h2.connection, h2.events
port, fills = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
s.connect(("127.0.0.1", port))
s.setblocking(False)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                         header_encoding=None))
c.initiate_connection()
for i in range(20):
    sid = c.get_next_available_stream_id()
    hs = [(b":method", b"GET"), (b":path", b"/r/%d" % i), (b":scheme", b"http"),
          (b":authority", b"127.0.0.1:%d" % port)]
    hs += [(b"x-fill-%d" % j, (b"%d-%d-" % (i, j)) * 200) for j in range(fills)]
    c.send_headers(sid, hs, end_stream=True)
pending, done, eagain = c.data_to_send(), 0, 0
while done < 20:
    r, w, _ = select.select([s], [s] if pending else [], [], 10)
    if not r and not w:
        sys.exit("stuck")
    if w:
        try:
            n = s.send(pending)
            pending = pending[n:]
        except BlockingIOError:
            eagain += 1
    if r:
        data = s.recv(65536)
        if not data:
            sys.exit("closed")
        for e in c.receive_data(data):
            if isinstance(e, h2.events.StreamEnded):
                done += 1
        pending += c.data_to_send()
print("ok", eagain)
'''


class SlowH2Server:
    """An HTTP/2 server outside the shim (python3-h2) that reads 512 bytes
    every 2 ms and records the header fields of every request."""

    def __init__(self, close_after=None):
        self.close_after = close_after
        import h2.config
        import h2.connection
        import h2.events
        import socket
        import threading
        self.h2 = (h2.config, h2.connection, h2.events)
        self.sock = socket.socket()
        # A small receive window: the client's writes fill up at once.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import time
        cfg, conn, events = self.h2
        try:
            s, _ = self.sock.accept()
            c = conn.H2Connection(cfg.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection()
            s.sendall(c.data_to_send())
            while True:
                data = s.recv(512)
                if not data:
                    return
                for e in c.receive_data(data):
                    if isinstance(e, events.RequestReceived):
                        self.requests.append([(bytes(n), bytes(v)) for n, v in e.headers])
                        c.send_headers(e.stream_id, [(b":status", b"200")], end_stream=True)
                s.sendall(c.data_to_send())
                if self.close_after and len(self.requests) >= self.close_after:
                    s.close()
                    return
                time.sleep(0.002)
        except Exception as e:  # reported by the test
            self.error = e


def check_h2_client(env, fills):
    py = "/usr/bin/python3"
    tx.require_system_python3()
    if subprocess.run([py, "-c", "import h2"], capture_output=True).returncode:
        raise tx.Skipped("python3-h2 is not installed")
    try:
        import h2  # noqa: F401
    except ImportError:
        raise tx.Skipped("python3-h2 is not importable by the test's own interpreter")
    rx = Receiver()
    srv = SlowH2Server()
    try:
        env.start_exporter(rx.url())
        cli = os.path.join(env.dir, "h2client.py")
        with open(cli, "w") as f:
            f.write(H2_CLIENT)
        r = subprocess.run([py, cli, str(srv.port), str(fills)], capture_output=True, text=True,
                           timeout=120, env=env.app_env({"OTEL_SERVICE_NAME": "h2client"}))
        check(r.returncode == 0 and r.stdout.startswith("ok"),
              "the h2 client failed: %s %s" % (r.stdout, r.stderr[-800:]))
        eagain = int(r.stdout.split()[1])
        check(srv.error is None, "the server failed: %r" % srv.error)
        check(len(srv.requests) == 20, "the server got %d requests" % len(srv.requests))
        cs = hs.received(rx, "h2client", 20, "client spans")
        ids = {(hexid(c, "trace_id"), hexid(c, "span_id")) for c in cs}
        for i, req in enumerate(srv.requests):
            d = dict(req)
            tps = [v for n, v in req if n == b"traceparent"]
            check(len(tps) == 1, "request %d: %d traceparents (%s)" % (
                i, len(tps), [l for l in env.metrics().splitlines() if "http2" in l]))
            _, t, p, _ = tps[0].decode().split("-")
            check((t, p) in ids, "request %d: its traceparent names no client span" % i)
            n = int(d[b":path"].split(b"/")[-1])
            for j in range(fills):
                check(d.get(b"x-fill-%d" % j) == (b"%d-%d-" % (n, j)) * 200,
                      "request %d: x-fill-%d changed" % (n, j))
        print("20 requests with %d KB header blocks, %s, each with one traceparent, "
              "after %d EAGAINs" % (fills * 12 // 10, "over CONTINUATION frames" if fills > 12
                                    else "one frame each", eagain))
        check(eagain >= 5, "the client met a full send buffer %d times: too few to prove "
              "anything" % eagain)
        return srv
    finally:
        rx.stop()


@tx.with_env
def test_h2_bare_c_client_short_writes(env):
    """A C client (tests/progs/h2raw.c) under the shim: the one HTTP/2
    client that also runs in the sanitizer builds."""
    try:
        import h2  # noqa: F401
    except ImportError:
        raise tx.Skipped("python3-h2 is not importable by the test's interpreter")
    rx = Receiver()
    srv = SlowH2Server(close_after=24)
    try:
        env.start_exporter(rx.url())
        r = subprocess.run([os.path.join(tx.BUILD, "tests", "dynobs-h2raw"), str(srv.port), "24",
                            "4096"], capture_output=True, text=True, timeout=120,
                           env=env.app_env({"OTEL_SERVICE_NAME": "h2raw"}))
        check(r.returncode == 0 and r.stdout.startswith("ok"),
              "the C client failed: %s %s" % (r.stdout, r.stderr[-800:]))
        check(srv.error is None, "the server failed: %r" % srv.error)
        check(len(srv.requests) == 24, "the server got %d requests" % len(srv.requests))
        cs = hs.received(rx, "h2raw", 24, "client spans")
        ids = {(hexid(c, "trace_id"), hexid(c, "span_id")) for c in cs}
        for req in srv.requests:
            d = dict(req)
            n = int(d[b":path"].split(b"/")[-1])
            tps = [v for k, v in req if k == b"traceparent"]
            check(len(tps) == 1, "request %d: %d traceparents" % (n, len(tps)))
            _, t, p, _ = tps[0].decode().split("-")
            check((t, p) in ids, "request %d: its traceparent names no client span" % n)
            for j in range(30 if n % 3 == 0 else 3):
                check(d.get(b"x-fill-%d" % j) == (b"%d-%d-" % (n, j)) * 100,
                      "request %d: x-fill-%d changed" % (n, j))
        _, eagains, short = r.stdout.split()
        print("C client: 24 requests (8 over CONTINUATION frames), one traceparent each, "
              "%s EAGAINs, %s short writes" % (eagains, short))
        check(int(eagains) + int(short) >= 5, "the C client's writes were never cut")
    finally:
        rx.stop()


@tx.with_env
def test_h2_bare_c_client_and_server(env):
    """Both sides of one HTTP/2 connection under the shim with the bare C
    program: each server span is the child of its client span (the server
    side of the shim, under the sanitizers too)."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        prog = os.path.join(tx.BUILD, "tests", "dynobs-h2raw")
        port = tx.free_port()
        srv = subprocess.Popen([prog, "serve", str(port), "12"],
                               env=env.app_env({"OTEL_SERVICE_NAME": "h2raw-server"}),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        env.procs.append(srv)
        check(srv.stdout.readline().strip() == "ready", "the C server did not start: %s" % (
            srv.stderr.read()[-500:] if srv.poll() is not None else ""))
        r = subprocess.run([prog, str(port), "12", "4096"], capture_output=True, text=True,
                           timeout=120, env=env.app_env({"OTEL_SERVICE_NAME": "h2raw-client"}))
        check(r.returncode == 0 and r.stdout.startswith("ok"),
              "the C client failed: %s %s" % (r.stdout, r.stderr[-800:]))
        check(srv.wait(30) == 0, "the C server failed: %s" % srv.stderr.read()[-500:])
        cs, ss = spans_by_service(rx, 12, 12, "h2raw-client", "h2raw-server")
        check_pairs("h2raw", cs, ss)
        paths = sorted(attrs(s)["url.path"] for s in ss)
        check(paths == sorted("/r/%d" % i for i in range(1, 13)), "server paths %r" % paths)
        for s in ss:
            i = int(attrs(s)["url.path"].split("/")[-1])
            check(attrs(s).get("user_agent.original") == ("h2raw/odd" if i % 2 else "h2raw/even"),
                  "stream %d: user agent %r" % (i, attrs(s).get("user_agent.original")))
        check(all(attrs(s).get("http.response.status_code") == 200 for s in cs + ss),
              "statuses %r" % [attrs(s).get("http.response.status_code") for s in cs + ss])
    finally:
        rx.stop()


@tx.with_env
def test_h2_client_short_writes(env):
    check_h2_client(env, 12)


@tx.with_env
def test_h2_client_continuation_frames(env):
    check_h2_client(env, 40)


@tx.with_env
def test_nginx_http2_tls(env):
    import test_http_client as hc
    need("nghttp", "nghttp2-client")
    hc.require_third_party("nginx")
    if not hc.nginx_found():
        raise tx.Skipped("nginx is missing (Debian: nginx-light)")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        ng = hc.Nginx(env, preload=True)
        base = "https://127.0.0.1:%d" % ng.tls_port
        dump_bodies(env, ["nghttp", "-n", base + "/index.html", base + "/missing"], True)
        trace, parent = secrets.token_hex(16), secrets.token_hex(8)
        body = curl(ng.tls_port, True, ["/index.html"], ["traceparent: 00-%s-%s-01" % (trace,
                                                                                     parent)])
        check(body == b"hello from nginx\n" * 50, "curl's body %r" % body[:60])
        # nginx's first span is the plain-HTTP request its start-up check made.
        ss = [s for s in hs.received(rx, "nginx", 4, "nginx spans")
              if attrs(s).get("network.protocol.version") == "2"]
        cs = hs.received(rx, "nghttp", 2, "nghttp spans")
        check(len(ss) == 3, "nginx: %d HTTP/2 spans" % len(ss))
        from_nghttp = [s for s in ss if hexid(s, "trace_id") != trace]
        check_pairs("nginx", cs, from_nghttp)
        mine = [s for s in ss if hexid(s, "trace_id") == trace]
        check(len(mine) == 1 and hexid(mine[0], "parent_span_id") == parent,
              "nginx: curl's request did not continue its traceparent")
        log = [l for l in ng.log() if l[4] == "HTTP/2.0"]
        check(len(log) == 3, "nginx logged %d HTTP/2 requests: %r" % (len(log), ng.log()))
        sent = {(hexid(c, "trace_id"), hexid(c, "span_id")) for c in cs} | {(trace, parent)}
        got = [tuple(l[1].split("-")[1:3]) for l in log]
        # (each logged value one whole traceparent: a span id ending in "00"
        # holds "00-" a second time, so counting "00-" was not the test)
        one_tp = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
        check(set(got) == sent and all(one_tp.fullmatch(l[1]) for l in log),
              "nginx got traceparents %r, sent %r" % ([l[1] for l in log], sent))
    finally:
        rx.stop()


GRPC_HOP_SERVER = r'''
import os, sys, urllib.request, grpc
from concurrent import futures
port, back, key, crt = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def hop(request, context):
    with urllib.request.urlopen(back + "/back?id=" + request.decode(), timeout=10) as r:
        return r.read()

handler = grpc.method_handlers_generic_handler("demo.v1.Hop", {
    "Go": grpc.unary_unary_rpc_method_handler(hop)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
if key == "-":
    server.add_insecure_port("127.0.0.1:%d" % port)
else:
    creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(crt, "rb").read())])
    server.add_secure_port("127.0.0.1:%d" % port, creds)
server.start()
print("ready", flush=True)
server.wait_for_termination()
'''

GRPC_HOP_CLIENT = r'''
import sys, threading, grpc
port, crt, calls = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if crt == "-":
    ch = grpc.insecure_channel("localhost:%d" % port)
else:
    ch = grpc.secure_channel("localhost:%d" % port,
                             grpc.ssl_channel_credentials(open(crt, "rb").read()))
go = ch.unary_unary("/demo.v1.Hop/Go")
def one(arg):
    ident, tp = arg.split(",")
    assert go(ident.encode(), metadata=(("traceparent", tp),), timeout=20) == b"back " + ident.encode()
first, rest = calls[:3], calls[3:]
for a in first:
    one(a)
ts = [threading.Thread(target=one, args=(a,)) for a in rest]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("ok")
'''


def check_grpc_handler_calls(env, tls):
    import test_event_loops as ev
    py = need_grpc()
    rx = Receiver()
    backend = ev.Backend()
    try:
        env.start_exporter(rx.url())
        port = tx.free_port()
        srv = os.path.join(env.dir, "hop.py")
        with open(srv, "w") as f:
            f.write(GRPC_HOP_SERVER)
        key, crt = certificate(env) if tls else ("-", "-")
        p = subprocess.Popen([ev.RUN, "--no-exporter", "--", py, srv, str(port), backend.url(),
                              key, crt],
                             env=env.app_env({"OTEL_SERVICE_NAME": "grpc-hop"}),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        env.procs.append(p)
        check(p.stdout.readline().strip() == "ready", "the grpc server did not start")
        calls = {i: (secrets.token_hex(16), secrets.token_hex(8)) for i in range(1, 12)}
        cli = os.path.join(env.dir, "hopclient.py")
        with open(cli, "w") as f:
            f.write(GRPC_HOP_CLIENT)
        e = dict(os.environ)
        e.pop("LD_PRELOAD", None)
        r = subprocess.run([py, cli, str(port), crt] + ["%d,00-%s-%s-01" % (i, t, s)
                                                    for i, (t, s) in sorted(calls.items())],
                           capture_output=True, text=True, timeout=60, env=e)
        check(r.returncode == 0 and r.stdout.strip() == "ok", "the client failed: %s %s" % (
            r.stdout, r.stderr[-800:]))
        spans = hs.received(rx, "grpc-hop", 22, "server and client spans")
        servers = {hexid(s, "trace_id"): s for s in spans if hs.kind(s) == "SPAN_KIND_SERVER"}
        clients = {hexid(s, "span_id"): s for s in spans if hs.kind(s) == "SPAN_KIND_CLIENT"}
        check(len(servers) == 11 and len(clients) == 11, "%d server traces, %d client spans" % (
            len(servers), len(clients)))
        by_trace = {t: i for i, (t, _) in calls.items()}
        with backend.lock:
            seen = list(backend.seen)
        check(sorted(int(i) for i, _ in seen) == list(range(1, 12)), "backend got %r" % seen)
        linked = wrong = 0
        for ident, tps in seen:
            i = int(ident)
            trace, parent = calls[i]
            server = servers.get(trace)
            check(server is not None and hexid(server, "parent_span_id") == parent,
                  "call %d: no server span continuing its caller" % i)
            check(len(tps) == 1, "call %d: %d traceparents at the backend" % (i, len(tps)))
            _, t, p, _ = tps[0].split("-")
            if t == trace:
                c = clients.get(p)
                check(c is not None and hexid(c, "parent_span_id") == hexid(server, "span_id"),
                      "call %d: its outbound call is not a child of its server span" % i)
                linked += 1
            elif t in by_trace:
                wrong += 1
        print("grpc handler calls%s: %d of 11 in their call's trace, %d in another's" % (
            " (TLS)" if tls else "", linked, wrong))
        check(wrong == 0, "%d handler calls in another call's trace" % wrong)
        check(linked == 11, "only %d of 11 handler calls in their call's trace" % linked)
    finally:
        backend.stop()
        rx.stop()


@tx.with_env
def test_grpc_handler_calls_are_children_of_their_call(env):
    check_grpc_handler_calls(env, False)


@tx.with_env
def test_grpc_handler_calls_are_children_of_their_call_tls(env):
    check_grpc_handler_calls(env, True)


def main():
    if not shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
