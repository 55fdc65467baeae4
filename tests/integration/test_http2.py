#!/usr/bin/env python3
"""HTTP/2 servers under the shim (preload/h2server.c): every stream a
server answers becomes a SERVER span that continues the caller's
traceparent, in clear text (prior knowledge) and inside TLS.

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

Usage: test_http2.py BUILD_DIR SOURCE_DIR [test names]"""
import os
import secrets
import shutil
import subprocess
import sys

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


def check_grpc(env, tls):
    py = "/usr/bin/python3"
    tx.require_system_python3()
    if subprocess.run([py, "-c", "import grpc"], capture_output=True).returncode:
        raise tx.Skipped("python3-grpcio is not installed")
    name = "grpc-" + ("tls" if tls else "h2c")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        key, crt = certificate(env) if tls else ("-", "-")
        port = tx.free_port()
        srv = os.path.join(env.dir, "server.py")
        with open(srv, "w") as f:
            f.write(GRPC_SERVER)
        p = subprocess.Popen([py, srv, str(port), key, crt],
                             env=env.app_env({"OTEL_SERVICE_NAME": name}),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        env.procs.append(p)
        check(p.stdout.readline().strip() == "ready", "the grpc server did not start: %s" % (
            p.stderr.read()[-500:] if p.poll() is not None else ""))
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
    finally:
        rx.stop()


@tx.with_env
def test_grpc_h2c(env):
    check_grpc(env, False)


@tx.with_env
def test_grpc_tls(env):
    check_grpc(env, True)


def main():
    if not shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
