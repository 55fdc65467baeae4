"""HTTP server spans and end-to-end propagation. Servers run under
LD_PRELOAD: the small C server of bench/ (thread, fork and single-threaded
modes), Python's http.server, and nginx itself under wrk. Spans go through
the exporter to a test OTLP receiver, checked against the official schema.

usage: test_http_server.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_client as hc  # noqa: E402
import test_libpq as tp  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer, service  # noqa: E402

BUILD = tx.BUILD
SAMPLE_SERVER = os.path.join(BUILD, "tests", "dynobs-sample-server")
check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                 tx.spans_of)
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"

SERVICE_A = service(r'''
import http.server, sys, urllib.request

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with urllib.request.urlopen(sys.argv[2] + self.path) as r:
            body = b"A got: " + r.read()
        self.reply(body)

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


def start(env, argv, name, extra=None):
    e = env.app_env(dict({"OTEL_SERVICE_NAME": name}, **(extra or {})))
    p = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env.procs.append(p)
    return p


def wait_listening(port, proc, what):
    def up():
        if proc.poll() is not None:
            raise tx.Failure("%s exited: %s" % (what, proc.stderr.read()[-500:]))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False
    wait_for(up, 15, what + " listening")


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def received(rx, service, n, what):
    """The spans of one service once n of them have arrived."""
    def have():
        got = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == service]
        return got if len(got) >= n else None
    spans = wait_for(have, 15, "%d %s from %s" % (n, what, service))
    check(len(spans) == n, "%s: %d spans, expected %d" % (service, len(spans), n))
    return spans


def kind(s):
    return one(s, "kind")


def is_error(s):
    return one(one(s, "status", {}), "code") == "STATUS_CODE_ERROR"


def start_sample_server(env, mode, name, upstream=None, conninfo=None):
    port = tx.free_port()
    argv = [SAMPLE_SERVER, str(port), mode] + ([upstream] if upstream else []) + ([conninfo] if conninfo
                                                                          else [])
    p = start(env, argv, name)
    wait_listening(port, p, "dynobs-sample-server " + mode)
    return port


def sample_server_modes(env, rx, prefix):
    """The exporter to rx, nginx as the upstream, then the sample server in
    each mode, started as service prefix+mode: yields (mode, its service
    name, its port, nginx, the length of nginx's log before)."""
    env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
    ng = hc.Nginx(env)
    upstream = "http://127.0.0.1:%d/index.html" % ng.port
    for mode in ("thread", "fork", "single"):
        name = prefix + mode
        port = start_sample_server(env, mode, name, upstream)
        yield mode, name, port, ng, len(ng.log())


def check_server_span(s, method, path, port, status):
    """path has no id in it: it is its own route (http.route)."""
    a = attrs(s)
    check(kind(s) == "SPAN_KIND_SERVER", "kind %s" % kind(s))
    check(one(s, "name").decode() == method + " " + path, "name %r" % one(s, "name"))
    want = {"http.request.method": method, "url.path": path, "http.route": path, "url.scheme": "http",
            "server.address": "127.0.0.1", "server.port": port, "client.address": "127.0.0.1",
            "network.protocol.version": "1.1", "http.response.status_code": status}
    for k, v in want.items():
        check(a.get(k) == v, "%s = %r, expected %r (%r)" % (k, a.get(k), v, a))
    check("url.query" not in a and "?" not in a["url.path"], "the query string leaked: %r" % a)
    check(is_error(s) == (status >= 500), "error status for %d" % status)


# ---- the tests ----

@tx.with_env
def test_c_server_modes_make_outbound_calls_children(env):
    """Thread-per-connection, fork-per-connection and single-threaded: the
    SERVER span continues the caller's trace, the libcurl call and the API
    span made while serving are its children, and the next request on the
    same connection (no traceparent) starts its own trace."""
    rx = Receiver()
    try:
        for mode, name, port, ng, before in sample_server_modes(env, rx, "sample-server-"):
            # Two requests on one keep-alive connection.
            c = socket.create_connection(("127.0.0.1", port), 10)
            c.sendall(("GET /first?user=secret HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "traceparent: 00-%s-%s-01\r\ntracestate: vendor=1\r\n"
                       "User-Agent: tester/1\r\n\r\n" % (port, TRACE, PARENT)).encode())
            f = c.makefile("rb")
            for i in range(2):
                line = f.readline()
                check(line.startswith(b"HTTP/1.1 200"), "%s: response %r" % (mode, line))
                length = 0
                while True:
                    h = f.readline()
                    if h == b"\r\n":
                        break
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                f.read(length)
                if i == 0:
                    c.sendall(("GET /second HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                               % port).encode())
            c.close()
            spans = received(rx, name, 6, "spans")
            servers = [s for s in spans if kind(s) == "SPAN_KIND_SERVER"]
            check(len(servers) == 2, "%s: %d server spans" % (mode, len(servers)))
            first, second = sorted(servers, key=lambda s: int(one(s, "start_time_unix_nano")))
            check_server_span(first, "GET", "/first", port, 200)
            check_server_span(second, "GET", "/second", port, 200)
            check(attrs(first)["user_agent.original"] == "tester/1", "user agent")
            check(hexid(first, "trace_id") == TRACE and hexid(first, "parent_span_id") == PARENT,
                  "%s: the caller's trace is not continued" % mode)
            check(one(first, "trace_state", b"").decode() == "vendor=1", "tracestate carried on")
            check(hexid(second, "trace_id") != TRACE and not one(second, "parent_span_id"),
                  "%s: the second request inherits the first one's trace" % mode)
            lines = wait_for(lambda: len(ng.log()) == before + 2 and ng.log()[before:], 10,
                             "nginx's log")
            for srv, line in zip((first, second), lines):
                kids = [s for s in spans if hexid(s, "parent_span_id") == hexid(srv, "span_id")]
                names = sorted((kind(s), one(s, "name").decode()) for s in kids)
                check(names == [("SPAN_KIND_CLIENT", "GET"), ("SPAN_KIND_INTERNAL", "render")],
                      "%s: children %r" % (mode, names))
                check(all(hexid(k, "trace_id") == hexid(srv, "trace_id") for k in kids),
                      "children in another trace")
                client = [k for k in kids if kind(k) == "SPAN_KIND_CLIENT"][0]
                check(line[1].split("-")[1:3] == [hexid(srv, "trace_id"), hexid(client, "span_id")],
                      "%s: nginx got %r" % (mode, line[1]))
                check(int(one(srv, "start_time_unix_nano")) <= int(one(client, "start_time_unix_nano"))
                      and int(one(client, "end_time_unix_nano")) <= int(one(srv, "end_time_unix_nano")),
                      "the client call is not inside the server span")
    finally:
        rx.stop()


@tx.with_env
def test_w3c_extraction_and_status(env):
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = start_sample_server(env, "thread", "w3c")
        url = "http://127.0.0.1:%d" % port
        cases = [
            # (path, headers, continues?, tracestate kept)
            ("/valid", {"traceparent": "00-%s-%s-01" % (TRACE, PARENT), "tracestate": "a=1,b=2"},
             True, "a=1,b=2"),
            ("/future-version", {"traceparent": "cc-%s-%s-01-extra" % (TRACE, PARENT)}, True, ""),
            ("/zero-trace", {"traceparent": "00-%s-%s-01" % ("0" * 32, PARENT),
                             "tracestate": "a=1"}, False, ""),
            ("/bad-version", {"traceparent": "ff-%s-%s-01" % (TRACE, PARENT)}, False, ""),
            ("/upper-hex", {"traceparent": "00-%s-%s-01" % (TRACE.upper(), PARENT)}, False, ""),
            ("/bad-tracestate", {"traceparent": "00-%s-%s-01" % (TRACE, PARENT),
                                 "tracestate": "a=1,=broken"}, True, ""),
            ("/fail", {}, False, ""),
        ]
        for path, headers, _, _ in cases:
            status, body = get(url + path, headers)
            check(status == (500 if path == "/fail" else 200), "%s: status %d" % (path, status))
        # Two traceparent lines: the header is ambiguous, a new trace starts.
        c = socket.create_connection(("127.0.0.1", port), 10)
        c.sendall(("GET /two HTTP/1.1\r\nHost: x\r\ntraceparent: 00-%s-%s-01\r\n"
                   "traceparent: 00-%s-%s-01\r\nConnection: close\r\n\r\n"
                   % (TRACE, PARENT, "1" * 32, PARENT)).encode())
        check(c.makefile("rb").read().startswith(b"HTTP/1.1 200"), "two traceparents: answer")
        c.close()
        cases.append(("/two", {}, False, ""))
        spans = received(rx, "w3c", len(cases), "server spans")
        by_path = {attrs(s)["url.path"]: s for s in spans}
        for path, headers, continues, ts in cases:
            s = by_path[path]
            got = (hexid(s, "trace_id") == TRACE, hexid(s, "parent_span_id") == PARENT)
            check(got == (continues, continues), "%s: continued %r, expected %r" % (path, got,
                                                                                   continues))
            check(one(s, "trace_state", b"").decode() == ts, "%s: tracestate %r" % (
                path, one(s, "trace_state")))
        check_server_span(by_path["/fail"], "GET", "/fail", port, 500)
        check(attrs(by_path["/fail"]).get("error.type") == "500", "error.type for 500")
        # One series per route: each path here is its own.
        series = ('http_server_request_duration_seconds_count{service_name="w3c",%s'
                  'http_request_method="GET",http_response_status_code="%d",http_route="%s",'
                  'url_scheme="http"}')
        for path, _, _, _ in cases:
            if path != "/fail":
                wait_for(lambda: env.metric(series % ("", 200, path)) == 1, 10,
                         "%s counted under its route" % path)
        wait_for(lambda: env.metric(series % ('error_type="500",', 500, "/fail")) == 1, 10,
                 "the 500 counted")
        check(all("url_path" not in l for l in env.metrics().splitlines()
                  if l.startswith("http_server_request_duration")), "raw path as a metric label")
    finally:
        rx.stop()


KEEPALIVE_SERVICE = service(r'''
import http.server, sys

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.reply(b"ok", 404 if self.path.startswith("/missing") else 200)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(b"posted")

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


@tx.with_env
def test_keepalive_duration_series_follow_each_request(env):
    """One keep-alive connection whose method, route and status change
    between requests, and come back: the connection keeps the series it
    last recorded to, and every request must still land in its own."""
    env.start_exporter()
    port = tx.free_port()
    p = start(env, [sys.executable, "-c", KEEPALIVE_SERVICE, str(port)], "keepalive")
    wait_listening(port, p, "keep-alive service")
    plan = ["GET /a"] * 3 + ["POST /a", "GET /a", "GET /b", "GET /missing", "GET /missing",
                             "GET /a", "POST /a", "POST /a", "GET /b"]
    c = socket.create_connection(("127.0.0.1", port), 10)
    keepalive_requests(c, c.makefile("rb"), plan, host="x", length_header=True)
    c.close()
    series = ('http_server_request_duration_seconds_count{service_name="keepalive",'
              'http_request_method="%s",http_response_status_code="%d",http_route="%s",'
              'url_scheme="http"}')
    want = {}
    for req in plan:
        method, path = req.split()
        key = (method, 404 if path == "/missing" else 200, path)
        want[key] = want.get(key, 0) + 1
    for (method, status, path), n in want.items():
        wait_for(lambda: env.metric(series % (method, status, path)) == n, 10,
                 "%d x %s %s %d counted in its own series" % (n, method, path, status))
    prefix = 'http_server_request_duration_seconds_count{service_name="keepalive"'
    total = sum(float(l.rsplit(" ", 1)[1]) for l in env.metrics().splitlines()
                if l.startswith(prefix))
    check(total == len(plan), "%d requests counted in all, expected %d" % (total, len(plan)))


@tx.with_env
def test_keepalive_spans_follow_each_status(env):
    """One keep-alive connection whose status code changes between
    requests and comes back: a connection keeps its last status code's
    attribute as encoded, and every span must still carry its own code,
    once, after the request's other attributes."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        port = tx.free_port()
        p = start(env, [sys.executable, "-c", KEEPALIVE_SERVICE, str(port)], "statuses")
        wait_listening(port, p, "keep-alive service")
        plan = ["/a", "/a", "/missing", "/a", "/missing", "/missing", "/b", "/a"]
        c = socket.create_connection(("127.0.0.1", port), 10)
        keepalive_requests(c, c.makefile("rb"), plan, host="x")
        c.close()
        spans = received(rx, "statuses", len(plan), "server spans")
        spans.sort(key=lambda s: int(one(s, "start_time_unix_nano")))
        for path, s in zip(plan, spans):
            keys = [one(kv, "key").decode() for kv in s.get("attributes", [])]
            want = 404 if path == "/missing" else 200
            check(attrs(s).get("url.path") == path, "span order: %r, expected %s" % (attrs(s), path))
            check(attrs(s).get("http.response.status_code") == want,
                  "%s: status %r, expected %d" % (path, attrs(s).get("http.response.status_code"),
                                                  want))
            check(keys.count("http.response.status_code") == 1 and
                  keys[-1] == "http.response.status_code", "%s: attributes %r" % (path, keys))
    finally:
        rx.stop()


def keepalive_requests(c, f, plan, host="127.0.0.1", length_header=False):
    """Each request of plan ("/path", a GET, or "METHOD /path"; a POST
    sends x=1) on connection c (f: its reader), checking each answer (404
    for /missing, else 200). length_header: a Content-Length on every
    request, 0 included."""
    for req in plan:
        method, path = req.split() if " " in req else ("GET", req)
        body = b"x=1" if method == "POST" else b""
        length = "Content-Length: %d\r\n" % len(body) if length_header or body else ""
        c.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, path, host, length))
                  .encode() + body)
        status = read_answer(f)
        check(status.startswith(b"HTTP/1.1 %d" % (404 if path == "/missing" else 200)),
              "%s: %r" % (req, status))


def read_answer(f, head_request=False):
    """One response read whole from f (to a HEAD request: no body): its
    status line."""
    status = f.readline()
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if not head_request:
        f.read(length)
    return status


def ring_use(env, pid):
    """(bytes written to the rings of pid's segment so far, template ids
    given out) from its header (common/layout.h: the shards' heads at 3584,
    64 bytes apart; ring_shards at 112; tmpl_next at 2496)."""
    for name in env.segments():
        if name.startswith("%d-" % pid):
            with open(os.path.join(env.shm, name), "rb") as fh:
                hdr = fh.read(4096)
            shards = int.from_bytes(hdr[112:116], "little")
            heads = sum(int.from_bytes(hdr[3584 + 64 * i:3592 + 64 * i], "little")
                        for i in range(shards))
            return heads, int.from_bytes(hdr[2496:2504], "little")
    raise tx.Failure("no segment of pid %d in %r" % (pid, env.segments()))


@tx.with_env
def test_keepalive_repeats_are_written_as_template_references(env):
    """A keep-alive connection whose requests repeat: after its first
    request, each span goes into the ring as a 96-byte reference to the
    body a template slot holds (layout.h), and comes out of the exporter
    whole, its own ids and attributes on it; the references survive the
    exporter being killed and replaced, as the table is in the segment."""
    port = tx.free_port()
    p = start(env, [sys.executable, "-c", KEEPALIVE_SERVICE, str(port)], "templates")
    wait_listening(port, p, "keep-alive service")
    plan = ["/a"] * 30 + ["/missing"] + ["/a"] * 30
    c = socket.create_connection(("127.0.0.1", port), 10)
    f = c.makefile("rb")
    keepalive_requests(c, f, plan)
    used, ids = ring_use(env, p.pid)
    # Whole, these spans take about 330 bytes each: the first /a and the
    # /missing are whole, the other 59 references.
    check(used / len(plan) < 160, "%d ring bytes for %d spans (%d template ids)"
          % (used, len(plan), ids))
    check(ids == 1, "%d template ids given out, expected 1 (/a's)" % ids)
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        spans = received(rx, "templates", len(plan), "server spans")
        spans.sort(key=lambda s: int(one(s, "start_time_unix_nano")))
        for path, s in zip(plan, spans):
            check_server_span(s, "GET", path, port, 404 if path == "/missing" else 200)
        check(len({hexid(s, "span_id") for s in spans}) == len(plan) and
              len({hexid(s, "trace_id") for s in spans}) == len(plan), "ids repeat")
        # The exporter stopped, the same requests, the exporter killed and
        # another started: it finds their template in the segment.
        first = env.exporter
        first.send_signal(tx.signal.SIGSTOP)
        keepalive_requests(c, f, ["/a"] * 10)
        first.kill()
        first.wait(10)
        env.procs.remove(first)
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        spans = received(rx, "templates", len(plan) + 10, "server spans")
        spans.sort(key=lambda s: int(one(s, "start_time_unix_nano")))
        for s in spans[len(plan):]:
            check_server_span(s, "GET", "/a", port, 200)
        check(env.metric("dynobs_exporter_records_unresolved_total") == 0,
              "references left unresolved: %r"
              % env.metric("dynobs_exporter_records_unresolved_total"))
        check(ring_use(env, p.pid)[1] == 1, "a template given out again")
    finally:
        c.close()
        rx.stop()


KEPT_SERVICE = service(r'''
import http.server, sys

flips = [0]

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code = 200
        if self.path.startswith("/missing"):
            code = 404
        elif self.path.startswith("/error"):
            code = 500
        elif self.path.startswith("/flip"):
            flips[0] += 1
            code = 200 if flips[0] % 2 else 404
        self.reply(b"ok", code)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')

KEPT_HEADS = {
    "a": "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: one\r\nX-Request-ID: r1\r\n"
         "baggage: userId=alice\r\n\r\n",
    "b": "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: two\r\n\r\n",
    "q": "GET /a?k=v HTTP/1.1\r\nHost: x:81\r\nUser-Agent: one\r\n\r\n",
    "m": "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    "e": "GET /error HTTP/1.1\r\nHost: x\r\nX-Request-ID: r2\r\n\r\n",
    "f": "GET /flip HTTP/1.1\r\nHost: x\r\nbaggage: userId=bob\r\n\r\n",
}


def send_head(c, f, head):
    """One request of KEPT_HEADS on connection c (f: its reader): its
    status code, the answer read whole."""
    c.sendall(head.encode())
    return int(read_answer(f).split()[1])


def span_body(s, port):
    """What of a span its body holds: name, attributes in order (with
    their values' types; server.port, which must be port, as PORT),
    status."""
    check(attrs(s).get("server.port") == port, "server.port: %r" % attrs(s))
    return repr((one(s, "name"), [(one(kv, "key"), sorted(one(kv, "value", {}).items())
                                   if one(kv, "key") != b"server.port" else "PORT")
                                  for kv in s.get("attributes", [])],
                 is_error(s), int(one(s, "dropped_attributes_count") or 0)))


@tx.with_env
def test_repeated_requests_keep_the_body_a_new_connection_would_make(env):
    """A keep-alive connection whose request head repeats begins the next
    span with the last one's body as it is, and ends it with the status
    code's item still there when the code repeats (h1server.c, struct
    dynobs_h1s_kept). Each span must carry exactly what the same request
    makes on a connection of its own (name, attributes in order, status,
    counts), whatever came between: another head, another status for the
    same head, an error, a query string, correlation headers and a
    recorded baggage key, and a sampler that records about half of the
    traces (an unrecorded span must leave the kept body as it was)."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        extra = {"DYNOBS_BAGGAGE_ATTRIBUTES": "userId"}
        port = tx.free_port()
        p = start(env, [sys.executable, "-c", KEPT_SERVICE, str(port)], "kept",
                  dict(extra, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5"))
        wait_listening(port, p, "keep-alive service")
        port2 = tx.free_port()
        p2 = start(env, [sys.executable, "-c", KEPT_SERVICE, str(port2)], "fresh", extra)
        wait_listening(port2, p2, "service of fresh connections")
        # Each head on a connection of its own (flip twice: both codes).
        fresh = {}
        for k in sorted(KEPT_HEADS) + ["f"]:
            c = socket.create_connection(("127.0.0.1", port2), 10)
            fresh[k, send_head(c, c.makefile("rb"), KEPT_HEADS[k])] = None
            c.close()
        got = received(rx, "fresh", len(fresh), "spans of fresh connections")
        got.sort(key=lambda s: int(one(s, "start_time_unix_nano")))
        for key, s in zip(list(fresh), got):
            fresh[key] = span_body(s, port2)
        plan = "aaaabaaffffaammmaaeeaaqqaabbbfaaaa" * 4
        c = socket.create_connection(("127.0.0.1", port), 10)
        f = c.makefile("rb")
        sent = [(k, send_head(c, f, KEPT_HEADS[k])) for k in plan]
        c.close()
        check(set(sent) <= set(fresh), "a status of no fresh request: %r" % (set(sent) - set(fresh)))

        def recorded():
            spans = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == "kept"]
            return spans if len(spans) >= 30 else None
        wait_for(recorded, 15, "about half of %d spans" % len(plan))
        time.sleep(1)  # the rest of them
        spans = recorded()
        print("  %d of %d requests recorded" % (len(spans), len(plan)))
        check(30 <= len(spans) < len(plan), "%d of %d recorded: the sampler" % (len(spans), len(plan)))
        wanted = {b: k for k, b in fresh.items()}
        for s in spans:
            b = span_body(s, port)
            check(b in wanted, "a span no fresh connection makes: %r\nfresh ones: %r"
                  % (b, list(fresh.values())))
        # Each recorded span is its own request's: by its start, in order.
        spans.sort(key=lambda s: int(one(s, "start_time_unix_nano")))
        keys = [wanted[span_body(s, port)] for s in spans]
        it = iter(sent)
        check(all(k in it for k in keys), "spans out of their requests' order: %r" % keys)
    finally:
        rx.stop()


SHORT_HEADS = {
    "i": "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
    "h": "HEAD /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
    "m": "GET /missing HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
    "n": "GET /index.html HTTP/1.1\r\nHost: y\r\nUser-Agent: t\r\n\r\n",
    "q": "GET /index.html?k=v HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
    "t": "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\ntraceparent: 00-%s-%s-01\r\n\r\n"
         % (TRACE, PARENT),
    "r": "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nX-Request-ID: r1\r\n\r\n",
    "b": "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nbaggage: k=v\r\n\r\n",
}


def short_exchange(c, f, k):
    """One request of the plan of test_short_path_spans_match_the_long_way
    on connection c (f: its reader): s is i in two reads, p is i twice in
    one (its second request gets no span: pipelined), B is i with a body.
    Returns the statuses read."""
    head = SHORT_HEADS.get(k, SHORT_HEADS["i"]).encode()
    if k == "s":
        c.sendall(head[:9])
        time.sleep(0.05)
        c.sendall(head[9:])
    elif k == "p":
        c.sendall(head + head)
    elif k == "B":
        c.sendall(head.replace(b"GET", b"POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\nbody"))
    else:
        c.sendall(head)
    codes = []
    for _ in range(2 if k == "p" else 1):
        codes.append(int(read_answer(f, k == "h").split()[1]))
    return codes


FEEDS = ("dynobs__h1_req_feed_memo", "dynobs__h1_resp_feed_memo")


def calls_during(env, pid, funcs, action):
    """Runs action() with gdb attached to process pid, a breakpoint that
    never stops (ignore) on each of funcs: their calls in the meantime,
    {func: count}; None when gdb is missing."""
    gdb = shutil.which("gdb")
    if not gdb:
        return None
    script = os.path.join(env.dir, "calls-%d.gdb" % pid)
    with open(script, "w") as f:
        f.write("set pagination off\nset confirm off\n")
        for i, fn in enumerate(funcs, 1):
            f.write("break %s\nignore %d 100000000\n" % (fn, i))
        f.write("echo dynobs-breakpoints-set\\n\ncontinue\n")
    p = subprocess.Popen([gdb, "-q", "-nx", "-p", str(pid), "-x", script], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            # (what gdb wrote so far, in pieces: a prompt it stops at after
            # an error in the script ends no line, and readline would wait
            # for one forever)
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                seen.append(os.read(p.stdout.fileno(), 65536).decode(errors="replace"))
            # (the breakpoints set, gdb goes on to continue: requests sent
            # before it does wait for it)
            if "dynobs-breakpoints-set\n" in "".join(seen):
                break
            check(p.poll() is None, "gdb exited: %s" % "".join(seen)[-2000:])
        else:
            raise tx.Failure("gdb did not attach: %s" % "".join(seen)[-2000:])
        action()
    finally:
        p.send_signal(signal.SIGINT)
        out = p.communicate("info breakpoints\ndetach\nquit\n", timeout=60)[0]
    counts, num = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\d+)\s+breakpoint\s", line)
        if m:
            num = int(m.group(1))
            counts[funcs[num - 1]] = 0
        m = re.search(r"breakpoint already hit (\d+) time", line)
        if m and num:
            counts[funcs[num - 1]] = int(m.group(1))
    check(set(counts) == set(funcs), "gdb's breakpoints: %s" % out[-2000:])
    return counts


def nginx_worker(ng):
    """The pid of the one worker of nginx ng (its master's child)."""
    with open("/proc/%d/task/%d/children" % (ng.proc.pid, ng.proc.pid)) as f:
        kids = f.read().split()
    check(len(kids) == 1, "nginx's workers: %r" % kids)
    return int(kids[0])


def short_runs(plan):
    """The requests of plan that must take the short path: in a run of one
    head that repeats whole in one read and carries nothing of its own (i,
    h, m, n, q), all but the first three (the first is read; the second
    decided again, when the decision memo did not recall the first's; the
    third begun as a repeat, which opens the short path). (Where the
    decision memo recalls the first's, the third takes it already.)"""
    n, i = 0, 0
    while i < len(plan):
        j = i
        while j < len(plan) and plan[j] == plan[i]:
            j += 1
        if plan[i] in "ihmnq":
            n += max(0, j - i - 3)
        i = j
    return n


@tx.with_env
def test_short_path_spans_match_the_long_way(env):
    """nginx under the shim twice, with the short path of a repeated
    keep-alive request (h1server.c, dynobs__h1s_in_short and _out_short)
    and without it (DYNOBS_SHORT_PATH=0), the same requests on one
    keep-alive connection each: heads that repeat, HEAD, a 404, another
    Host, a query string, a traceparent, a correlation header, baggage, a
    head split over two reads, two pipelined in one read, a POST with a
    body in the same read. Span for span, in order, both must give the
    same name, kind, attributes in order, status and parent (the
    traceparent's), and the duration metric the same counts."""
    hc.require_third_party("nginx")
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        plan = "iiiiihhhiiimmmiiittiiirriiibbiiisiiipiiiqqiiinnniiiiBBiiii" * 2
        got, feeds = {}, {}
        for name, on in (("short", "1"), ("long", "0")):
            ng = hc.Nginx(env, preload=True, name=name, extra={"DYNOBS_SHORT_PATH": on})
            c = socket.create_connection(("127.0.0.1", ng.port), 10)
            f = c.makefile("rb")
            codes = []
            # The heads read and written the long way (the memos' feeds),
            # counted: the short path must have been taken where it can.
            feeds[name] = calls_during(env, nginx_worker(ng), FEEDS,
                                       lambda: codes.extend(short_exchange(c, f, k)
                                                            for k in plan))
            c.close()
            want = ["t" if k == "t" else "m" if k == "m" else "-" for k in plan]
            check([x[0] for x in codes] == [404 if k == "m" else 405 if k == "B" else 200
                                            for k in plan], "%s: statuses %r" % (name, codes))
            # The probe of hc.Nginx (a fresh connection) and one span per
            # request of the plan.
            spans = received(rx, name, len(plan) + 1, "nginx spans")
            spans = sorted((s for s in spans if attrs(s).get("user_agent.original") == "t"),
                           key=lambda s: int(one(s, "start_time_unix_nano")))
            check(len(spans) == len(plan), "%s: %d spans of the plan" % (name, len(spans)))
            bodies = []
            for k, w, s in zip(plan, want, spans):
                parent = hexid(s, "parent_span_id") or ""
                trace = hexid(s, "trace_id")
                check((parent == PARENT and trace == TRACE) == (w == "t"),
                      "%s: request %s has parent %r in trace %r" % (name, k, parent, trace))
                bodies.append((span_body(s, ng.port), kind(s), parent))
            got[name] = bodies
        for i, (a, b) in enumerate(zip(got["short"], got["long"])):
            check(a == b, "request %d (%s): short path %r\nlong way %r" % (i, plan[i], a, b))

        def counts(name):
            """The duration metric's counts by series, the service's name
            left out (the plan's requests and the probe)."""
            prefix = 'http_server_request_duration_seconds_count{service_name="%s",' % name
            out = {l[len(prefix):].rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1])
                   for l in env.metrics().splitlines() if l.startswith(prefix)}
            return out if sum(out.values()) == len(plan) + 1 else None
        short = wait_for(lambda: counts("short"), 10, "the short path's requests counted")
        long_ = wait_for(lambda: counts("long"), 10, "the long way's requests counted")
        check(short == long_, "duration series: short path %r\nlong way %r" % (short, long_))
        if feeds["short"] is None:
            print("SKIP: the short path's use counted (gdb is missing)")
            return
        runs = short_runs(plan)
        print("  heads read and written the long way: %r, %r; %d requests can take the short "
              "path" % (feeds["short"], feeds["long"], runs))
        read, written = FEEDS
        check(feeds["long"][read] - feeds["short"][read] >= runs,
              "the short path was taken for %d reads, expected %d at least"
              % (feeds["long"][read] - feeds["short"][read], runs))
        # (a response head repeats as long as nginx's Date header does)
        check(feeds["long"][written] - feeds["short"][written] >= runs // 2,
              "the short path was taken for %d writes, expected %d at least"
              % (feeds["long"][written] - feeds["short"][written], runs // 2))
    finally:
        rx.stop()


THREADED_SERVICE = service(r'''
import http.server, sys

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.reply(b"ok")

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


@tx.with_env
def test_template_references_under_concurrency_stay_exact(env):
    """Eight keep-alive connections served by threads at once, each asking
    for paths out of 300 (more than the template table's 128 slots), each
    path twice in a row: templates are defined in the table and shared
    while other threads refer to them, until it is full and the other
    bodies are written whole. Every span that comes out must carry the path
    of the request it belongs to (known by the parent id the request
    sent), and every request must be a span (or a drop the ring counted:
    never a reference the exporter could not resolve)."""
    import random
    import threading
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        port = tx.free_port()
        p = start(env, [sys.executable, "-c", THREADED_SERVICE, str(port)], "tmplrace")
        wait_listening(port, p, "threaded service")
        sent = {}
        errors = []

        def client(k):
            rnd = random.Random(k)
            try:
                c = socket.create_connection(("127.0.0.1", port), 10)
                f = c.makefile("rb")
                for i in range(40):
                    path = "/p%d" % rnd.randrange(300)
                    for j in range(2):
                        parent = "%08x%04x%04x" % (k + 1, i, j)
                        sent[parent] = path
                        c.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: 00-%s-%s-01"
                                   "\r\n\r\n" % (path, TRACE, parent)).encode())
                        check(f.readline().startswith(b"HTTP/1.1 200"), "an answer")
                        while f.readline() not in (b"\r\n", b""):
                            pass
                        f.read(2)
                c.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(not errors, "clients failed: %r" % errors)
        total = len(sent)
        check(total == 640, "%d requests" % total)

        def all_accounted():
            spans = [s for r, s in spans_of(rx.accepted("/v1/traces"))
                     if r["service.name"] == "tmplrace"]
            lost = ((env.metric("dynobs_exporter_records_unresolved_total") or 0) +
                    (env.metric("dynobs_exporter_ring_records_dropped_total") or 0))
            return (spans, lost) if len(spans) + lost == total else None
        spans, lost = wait_for(all_accounted, 30, "every request a span or a counted loss")
        print("  %d spans, %d counted losses, %d template ids"
              % (len(spans), lost, ring_use(env, p.pid)[1]))
        check(not env.metric("dynobs_exporter_records_unresolved_total"),
              "references left unresolved: %r"
              % env.metric("dynobs_exporter_records_unresolved_total"))
        check(lost <= total // 10, "%d of %d requests dropped" % (lost, total))
        seen = set()
        for s in spans:
            parent = hexid(s, "parent_span_id")
            check(parent in sent and parent not in seen, "a span of no request, or twice: %s"
                  % parent)
            seen.add(parent)
            a = attrs(s)
            check(a.get("url.path") == sent[parent] and
                  one(s, "name").decode() == "GET " + a.get("http.route", "?"),
                  "request %s asked for %s, its span says %r (%r)"
                  % (parent, sent[parent], one(s, "name"), a))
        ids = ring_use(env, p.pid)[1]
        check(0 < ids <= 128, "%d template ids given out (128 slots)" % ids)
    finally:
        rx.stop()


FORKING_SERVICE = r'''
import os, socket, sys

def serve(conn, n):
    buf = b""
    for _ in range(n):
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        buf = buf.split(b"\r\n\r\n", 1)[1]
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

ls = socket.socket()
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen()
conn, _ = ls.accept()
serve(conn, 3)
pid = os.fork()
if pid == 0:
    serve(conn, 2)
    os._exit(0)
os.waitpid(pid, 0)
print(pid, flush=True)
sys.stdin.read()
'''


def _connect(port):
    try:
        return socket.create_connection(("127.0.0.1", port), 10)
    except OSError:
        return None


@tx.with_env
def test_keepalive_series_after_fork_in_the_childs_segment(env):
    """A connection that recorded its duration series, then is served on by
    a forked child: the child's requests land in the child's own segment,
    not through the slot the parent kept (dynobs-dump reads both)."""
    port = tx.free_port()
    p = subprocess.Popen([sys.executable, "-c", FORKING_SERVICE, str(port)],
                         env=env.app_env({"OTEL_SERVICE_NAME": "forked"}),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    env.procs.append(p)
    c = wait_for(lambda: _connect(port), 15, "the forking service listening")
    f = c.makefile("rb")
    for _ in range(5):
        c.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        check(f.readline().startswith(b"HTTP/1.1 200"), "an answer")
        while f.readline() not in (b"\r\n", b""):
            pass
        f.read(2)
    c.close()
    child = int(p.stdout.readline())
    out = subprocess.run([os.path.join(BUILD, "dynobs-dump"), env.shm], capture_output=True,
                         text=True, timeout=30).stdout
    got, pid = {}, None
    for line in out.splitlines():
        if line.startswith("service.name=forked pid="):
            pid = int(line.split("pid=")[1].split()[0])
        elif line.startswith("metric http.server.request.duration{") and "route=/a}" in line:
            got[pid] = int(line.split(" count=")[1].split()[0])
    check(got == {p.pid: 3, child: 2},
          "3 requests in the parent's segment, 2 in the child's: %r (parent %d, child %d)"
          % (got, p.pid, child))


# Cases of the W3C conformance suite (w3c/trace-context test/test.py) that
# Level 1 rules failed: (path, tracestate header lines, the list propagated).
LEVEL2_TRACESTATE = [
    # test_tracestate_key_length_limit: a 256-character key on a second line.
    ("/key-256", ["foo=1", "z" * 256 + "=1"], "foo=1," + "z" * 256 + "=1"),
    # test_tracestate_duplicated_keys: the list stays, the first member too.
    ("/repeated-key", ["foo=1,foo=2"], "foo=1"),
    # test_tracestate_key_illegal_vendor_format: '@' is a key character.
    ("/at-in-key", ["foo@=1,bar=2"], "foo@=1,bar=2"),
    # The same test's other keys, on lines of their own with an empty one.
    ("/at-keys", ["foo@@bar=1", "", " , foo@bar@baz=1 ", "t" * 242 + "@v=1"],
     "foo@@bar=1,foo@bar@baz=1," + "t" * 242 + "@v=1"),
]


@tx.with_env
def test_level2_tracestate_in_every_mode(env):
    """The server span keeps, and the libcurl call made while serving
    sends on, the tracestate Level 2 asks for, whatever the server's mode."""
    rx = Receiver()
    try:
        for mode, name, port, ng, before in sample_server_modes(env, rx, "ts-"):
            for path, lines, _ in LEVEL2_TRACESTATE:
                c = socket.create_connection(("127.0.0.1", port), 10)
                c.sendall(("GET %s HTTP/1.1\r\nHost: x\r\ntraceparent: 00-%s-%s-01\r\n%s"
                           "Connection: close\r\n\r\n"
                           % (path, TRACE, PARENT,
                              "".join("tracestate: %s\r\n" % l for l in lines))).encode())
                answer = c.makefile("rb").read()
                check(answer.startswith(b"HTTP/1.1 200"), "%s %s: %r" % (mode, path, answer[:40]))
                c.close()
            n = len(LEVEL2_TRACESTATE)
            spans = received(rx, name, 3 * n, "spans")
            servers = {attrs(s)["url.path"]: s for s in spans if kind(s) == "SPAN_KIND_SERVER"}
            outbound = wait_for(lambda: len(ng.log()) == before + n and ng.log()[before:], 10,
                                "nginx's log")
            for (path, _, want), line in zip(LEVEL2_TRACESTATE, outbound):
                s = servers[path]
                check(hexid(s, "trace_id") == TRACE and hexid(s, "parent_span_id") == PARENT,
                      "%s %s: the trace is not continued" % (mode, path))
                got = one(s, "trace_state", b"").decode()
                check(got == want, "%s %s: server span tracestate %r, expected %r"
                      % (mode, path, got, want))
                check(line[1].split("-")[1] == TRACE, "%s %s: nginx got %r" % (mode, path, line[1]))
                check(line[2] == want, "%s %s: sent on %r, expected %r" % (mode, path, line[2],
                                                                           want))
    finally:
        rx.stop()


@tx.with_env
def test_pipelining_split_reads_and_non_http(env):
    """Pipelined requests in one packet, a request dribbled a byte at a
    time with a large header, a POST body split across reads: every
    answer unchanged, one span per request read on its own. A non-HTTP client on the same
    server gets the same bytes back as without the shim and no span."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        port = start_sample_server(env, "thread", "pipe")

        def exchange(chunks, delay=0.0):
            c = socket.create_connection(("127.0.0.1", port), 10)
            for ch in chunks:
                c.sendall(ch)
                if delay:
                    time.sleep(delay)
            c.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                out += d
            c.close()
            return out

        pipelined = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
        out = exchange([pipelined + b"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
        check(out.count(b"HTTP/1.1 200") == 4, "pipelined answers %r" % out[:300])
        check(all(b"GET /p%d -" % i in out for i in range(4)), "pipelined bodies %r" % out)
        big = b"GET /dribble HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 6000 + \
              b"\r\nConnection: close\r\n\r\n"
        out = exchange([big[i:i + 1] for i in range(60)] + [big[60:]], 0.002)
        check(out.startswith(b"HTTP/1.1 200") and b"GET /dribble -" in out, "dribbled %r" % out)
        post = b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
        out = exchange([post + b"01234", b"56789"], 0.05)
        check(out.startswith(b"HTTP/1.1 200") and b"POST /post -" in out, "post %r" % out)
        junk = bytes(range(256)) * 4
        check(exchange([junk]) == b"", "a non-HTTP client got an answer")
        # Requests pipelined behind the first one in the same read get no
        # span of their own (a documented limit): only /p0 of the four.
        spans = received(rx, "pipe", 3, "server spans")
        paths = sorted(attrs(s)["url.path"] for s in spans)
        check(paths == ["/dribble", "/p0", "/post"], "paths %r" % paths)
        for s in spans:
            check(attrs(s)["http.response.status_code"] == 200, "status %r" % attrs(s))
        time.sleep(0.5)
        late = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == "pipe"]
        check(len(late) == 3, "spans after the non-HTTP client: %d" % len(late))
    finally:
        rx.stop()


# A server that reads as the test tells it to, on two connections in turn:
# on the first, the first request and one byte of the next (a read
# boundary inside a pipelined request), then the rest, then a third
# request; on the second, a request and the end of the client's bytes
# (it shut its side down) before the response is written.
CUT_AND_HALF_CLOSE = r'''
import socket, sys
port, first = int(sys.argv[1]), int(sys.argv[2])
ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
no = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(4)
c, _ = l.accept()
assert len(c.recv(first + 1, socket.MSG_WAITALL)) == first + 1
c.sendall(ok)
c.recv(4096)
c.sendall(no)
c.recv(4096)
c.sendall(ok)
c.close()
c, _ = l.accept()
c.recv(4096)
assert c.recv(4096) == b""
c.sendall(ok)
c.close()
'''


@tx.with_env
def test_pipelined_request_cut_by_a_read_and_half_close(env):
    """A read that ends inside a pipelined request (the first request's
    head and one byte of the next; a read that ends with whole pipelined
    requests is test_short_path_spans_match_the_long_way's "p", traced on):
    the first request gets its span and the connection is traced no
    further, counted
    (dynobs.http.server.pipelined), rather than a span for a request read
    from its middle ("ET /b"). A client that shuts its side down after its
    request: the span ends with the response written after that, status
    200, not as a connection closed."""
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = tx.free_port()
        first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        p = start(env, ["/usr/bin/python3", "-c", CUT_AND_HALF_CLOSE, str(port), str(len(first))],
                  "cut")
        # (no probe connection first: the server takes the first one as the
        # test's)
        def connected():
            if p.poll() is not None:
                raise tx.Failure("the test's server exited: %r" % p.stderr.read()[-300:])
            try:
                return socket.create_connection(("127.0.0.1", port), 10)
            except ConnectionRefusedError:
                return None
        c = wait_for(connected, 10, "the test's server listening")
        c.sendall(first + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        f = c.makefile("rb")

        def answer():
            line = f.readline()
            while f.readline() not in (b"\r\n", b""):
                pass
            f.read(2)
            return line

        check(answer().startswith(b"HTTP/1.1 200"), "the first answer")
        check(answer().startswith(b"HTTP/1.1 404"), "the second answer")
        c.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        check(answer().startswith(b"HTTP/1.1 200"), "the third answer")
        c.close()
        c = socket.create_connection(("127.0.0.1", port), 10)
        c.sendall(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
        c.shutdown(socket.SHUT_WR)
        check(c.makefile("rb").read().startswith(b"HTTP/1.1 200"), "the half-closed client's answer")
        c.close()
        check(p.wait(10) == 0, "the test's server: %r" % p.stderr.read()[-300:])
        spans = received(rx, "cut", 2, "server spans")
        by_path = {attrs(s)["url.path"]: s for s in spans}
        check(sorted(by_path) == ["/a", "/d"], "spans %r" % sorted(by_path))
        for path in ("/a", "/d"):
            a = attrs(by_path[path])
            check(a["http.request.method"] == "GET" and a["http.response.status_code"] == 200 and
                  "error.type" not in a and not is_error(by_path[path]), "%s: %r" % (path, a))
        def pipelined():
            for line in env.metrics().splitlines():
                if line.startswith("dynobs_http_server_pipelined_total{") and \
                        'service_name="cut"' in line:
                    return float(line.rsplit(" ", 1)[1])
            return None
        wait_for(lambda: pipelined() == 1, 10, "the connection traced no further, counted")
        time.sleep(0.5)
        late = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == "cut"]
        check(len(late) == 2, "spans later: %d" % len(late))
    finally:
        rx.stop()


@tx.with_env
def test_end_to_end_one_trace(env):
    """curl -> A (Python http.server, urllib) -> B (C server: libcurl to
    nginx, one PostgreSQL query, an API span) -> nginx. All of them run
    under the shim; one trace, correctly linked, and nginx logs it."""
    hc.require_third_party("curl/python/nginx")
    rx = Receiver()
    pg = None
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        pg = tp.Postgres(env)
        ng = hc.Nginx(env, preload=True)
        b_port = start_sample_server(env, "thread", "service-b", "http://127.0.0.1:%d/index.html" % ng.port,
                             pg.conninfo())
        a_port = tx.free_port()
        script = os.path.join(env.dir, "service_a.py")
        with open(script, "w") as f:
            f.write(SERVICE_A)
        a = start(env, ["/usr/bin/python3", script, str(a_port), "http://127.0.0.1:%d" % b_port],
                  "service-a")
        wait_listening(a_port, a, "service A")
        before = len(ng.log())
        r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/order/42" % a_port],
                           env=env.app_env({"OTEL_SERVICE_NAME": "curl"}), capture_output=True,
                           timeout=60)
        check(r.returncode == 0 and r.stdout == b"A got: GET /order/42 db ok\n",
              "curl: %r %r" % (r.stdout, r.stderr))

        # curl: CLIENT; A: SERVER, CLIENT; B: SERVER, CLIENT (http), CLIENT
        # (db; plus its connect), render; nginx: SERVER.
        # The trace starts at curl's CLIENT span.
        curl = received(rx, "curl", 1, "client span")[0]
        trace = hexid(curl, "trace_id")

        def whole():
            spans = [(r["service.name"], s) for r, s in spans_of(rx.accepted("/v1/traces"))
                     if hexid(s, "trace_id") == trace]
            return spans if len(spans) >= 9 else None
        spans = wait_for(whole, 20, "the whole trace")
        by = {}
        for svc, s in spans:
            by.setdefault((svc, kind(s), one(s, "name").decode()), []).append(s)
        keys = sorted(by)
        check([len(v) for v in by.values()] == [1] * len(by), "duplicates in %r" % keys)
        want = [("curl", "SPAN_KIND_CLIENT", "GET"),
                ("nginx", "SPAN_KIND_SERVER", "GET /index.html"),
                ("service-a", "SPAN_KIND_CLIENT", "GET"),
                ("service-a", "SPAN_KIND_SERVER", "GET /order/{id}"),
                ("service-b", "SPAN_KIND_CLIENT", "CONNECT"),
                ("service-b", "SPAN_KIND_CLIENT", "GET"),
                ("service-b", "SPAN_KIND_CLIENT", "SELECT pg_class"),
                ("service-b", "SPAN_KIND_INTERNAL", "render"),
                ("service-b", "SPAN_KIND_SERVER", "GET /order/{id}")]
        check(keys == want, "spans %r" % keys)

        def sid(k):
            return hexid(by[k][0], "span_id")

        def parent(k):
            return hexid(by[k][0], "parent_span_id")
        links = [(("curl", "SPAN_KIND_CLIENT", "GET"), None),
                 (("service-a", "SPAN_KIND_SERVER", "GET /order/{id}"), ("curl", "SPAN_KIND_CLIENT", "GET")),
                 (("service-a", "SPAN_KIND_CLIENT", "GET"), ("service-a", "SPAN_KIND_SERVER", "GET /order/{id}")),
                 (("service-b", "SPAN_KIND_SERVER", "GET /order/{id}"), ("service-a", "SPAN_KIND_CLIENT", "GET"))]
        for k in want[4:8]:
            links.append((k, ("service-b", "SPAN_KIND_SERVER", "GET /order/{id}")))
        links.append((("nginx", "SPAN_KIND_SERVER", "GET /index.html"), ("service-b", "SPAN_KIND_CLIENT", "GET")))
        for child, par in links:
            expect = None if par is None else sid(par)
            check(parent(child) == expect, "%r: parent %s, expected %s" % (child, parent(child),
                                                                           expect))
        check(len({sid(k) for k in want}) == len(want), "span ids repeat")
        a_srv = attrs(by[("service-a", "SPAN_KIND_SERVER", "GET /order/{id}")][0])
        check(a_srv["url.path"] == "/order/42" and a_srv["server.port"] == a_port, "A %r" % a_srv)
        line = wait_for(lambda: len(ng.log()) > before and ng.log()[-1], 10, "nginx's log")
        check(line[1].split("-")[1:3] == [trace, sid(("service-b", "SPAN_KIND_CLIENT", "GET"))],
              "nginx logged %r" % line[1])
        check("/* " in pg.server_log() or "SELECT count(*) FROM pg_class" in pg.server_log(),
              "the query reached PostgreSQL")
    finally:
        rx.stop()
        if pg:
            pg.stop()


@tx.with_env
def test_nginx_under_the_shim_under_load(env):
    """nginx itself preloaded (a root master, workers that drop to nobody,
    epoll, sendfile): exact server spans and http.server.request.duration
    per request under concurrent load from wrk."""
    hc.require_third_party("nginx")
    if not shutil.which("wrk"):
        raise tx.Failure("wrk is missing (Debian: wrk)")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        ng = hc.Nginx(env, preload=True, workers=2,
                      locations="    location /boom { return 503; }\n")
        base = "http://127.0.0.1:%d" % ng.port
        for path, want in (("/big.bin", 200), ("/missing", 404), ("/boom", 503)):
            status, body = get(base + path, {"traceparent": "00-%s-%s-01" % (TRACE, PARENT)})
            check(status == want, "%s: %d" % (path, status))
            if path == "/big.bin":
                check(len(body) == 300000, "sendfile body %d bytes" % len(body))
        r = subprocess.run(["wrk", "-t2", "-c8", "-d1s", base + "/index.html"],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "wrk: %s" % r.stderr)
        time.sleep(0.3)
        total = len(ng.log())  # every request nginx answered, the probe ones included
        check(total > 1000, "wrk made only %d requests" % total)

        def counted():
            n = 0
            for line in env.metrics().splitlines():
                if line.startswith('http_server_request_duration_seconds_count{service_name="nginx"'):
                    n += int(float(line.rsplit(" ", 1)[1]))
            return n
        wait_for(lambda: counted() == total, 15, "%d requests in http.server.request.duration"
                 % total)

        def spans_and_drops():
            spans = [s for r, s in spans_of(rx.accepted("/v1/traces"))
                     if r["service.name"] == "nginx"]
            dropped = env.metric("dynobs_exporter_ring_records_dropped_total") or 0
            return (spans, dropped) if len(spans) + dropped == total else None
        spans, dropped = wait_for(spans_and_drops, 30, "every request a span or a counted drop")
        print("  nginx: %d requests, %d spans, %d counted drops" % (total, len(spans), dropped))
        check(len(spans) > total // 2, "most spans dropped: %d of %d" % (len(spans), total))
        by_path = {}
        for s in spans:
            check(kind(s) == "SPAN_KIND_SERVER", "kind")
            a = attrs(s)
            by_path.setdefault(a["url.path"], []).append(s)
            check(a["server.port"] == ng.port and a["http.request.method"] == "GET", "attrs %r" % a)
        for path, want in (("/big.bin", 200), ("/missing", 404), ("/boom", 503)):
            s = by_path.get(path, [None])[0]
            if s is None:
                continue  # its span was among the counted drops
            check(attrs(s)["http.response.status_code"] == want, "%s: %r" % (path, attrs(s)))
            check(hexid(s, "trace_id") == TRACE and hexid(s, "parent_span_id") == PARENT,
                  "%s does not continue the trace" % path)
            check(is_error(s) == (want >= 500), "%s: error status" % path)
        for s in by_path.get("/index.html", []):
            check(attrs(s)["http.response.status_code"] == 200, "wrk request %r" % attrs(s))
    finally:
        rx.stop()


HTTPS_SERVICE = service(r'''
import http.server, ssl, sys, urllib.request

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with urllib.request.urlopen(sys.argv[2]) as r:
            body = b"tls: " + r.read()
        self.reply(body)

srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
''')


@tx.with_env
def test_https_server_spans_from_inside_tls(env):
    """An HTTPS server (Python's http.server with ssl, OpenSSL underneath)
    gets its SERVER spans from the decrypted bytes: curl's traceparent,
    sent inside TLS, is continued; url.scheme is https; the handler's
    outbound call is a child; the TLS bytes on the socket are not traced
    a second time."""
    hc.require_third_party("python3 and curl")
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        key, cert = os.path.join(env.dir, "key.pem"), os.path.join(env.dir, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                           capture_output=True)
        check(r.returncode == 0, "openssl: %r" % r.stderr[-300:])
        bport, sport = tx.free_port(), tx.free_port()
        b = start(env, ["/usr/bin/python3", "-c", SERVICE_A.replace(
            "urllib.request.urlopen(sys.argv[2] + self.path)", "__import__('io').BytesIO(b'x')"),
            str(bport), "-"], "plain")
        wait_listening(bport, b, "the plain service")
        p = start(env, ["/usr/bin/python3", "-c", HTTPS_SERVICE, str(sport),
                        "http://127.0.0.1:%d/inner" % bport, cert, key], "secure")
        wait_listening(sport, p, "the HTTPS service")
        r = subprocess.run(["curl", "-sk", "https://127.0.0.1:%d/pay?card=1" % sport],
                           env=env.app_env({"OTEL_SERVICE_NAME": "payer"}), capture_output=True,
                           timeout=30)
        check(r.returncode == 0 and r.stdout == b"tls: A got: x", "response %r" % r.stdout)
        client = received(rx, "payer", 1, "curl span")[0]
        spans = received(rx, "secure", 2, "server and client spans")
        server = [s for s in spans if kind(s) == "SPAN_KIND_SERVER"][0]
        out = [s for s in spans if kind(s) == "SPAN_KIND_CLIENT"][0]
        a = attrs(server)
        check(a["url.scheme"] == "https" and a["url.path"] == "/pay" and
              a["http.response.status_code"] == 200, "server span %r" % a)
        check(hexid(server, "trace_id") == hexid(client, "trace_id") and
              hexid(server, "parent_span_id") == hexid(client, "span_id"),
              "continues curl's trace from inside TLS")
        check(hexid(out, "parent_span_id") == hexid(server, "span_id"), "outbound call is a child")
    finally:
        rx.stop()


class Recorder(RecordingServer):
    """An HTTP server outside the shim that keeps the headers of every
    request it gets."""

    def __init__(self):
        super().__init__(lambda h: (h.path, [(k.lower(), v) for k, v in h.headers.items()]),
                         lambda h: b"ok")
        self.got = self.entries


@tx.with_env
def test_correlation_ids_and_baggage_passed_on(env):
    """X-Request-ID and X-Correlation-ID (DYNOBS_CORRELATION_HEADERS'
    default) are recorded on the server span and sent once on the
    outbound call made in its context; a header sent twice is neither;
    the list can be changed. W3C baggage travels on the same way, never
    recorded."""
    rx = Receiver()
    rec = Recorder()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        script = os.path.join(env.dir, "service_a.py")
        with open(script, "w") as f:
            f.write(SERVICE_A)
        port = tx.free_port()
        p = start(env, ["/usr/bin/python3", script, str(port), rec.url()], "corr-svc",
                  {"DYNOBS_BAGGAGE_ATTRIBUTES": "userId"})
        wait_listening(port, p, "service A")
        answers = [get("http://127.0.0.1:%d/one" % port, {"X-Request-ID": "req-123",
                                                         "X-Correlation-Id": "corr 9",
                                                         "baggage": " userId = alice , tier=gold;ttl=5"})]
        c = socket.create_connection(("127.0.0.1", port), 10)
        c.sendall(("GET /two HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\r\nx-request-id: b\r\n"
                   "baggage: a=1,b c=2\r\nConnection: close\r\n\r\n").encode())
        check(c.makefile("rb").readline().startswith(b"HTTP/1.1 200"), "second request")
        c.close()
        port2 = tx.free_port()
        p2 = start(env, ["/usr/bin/python3", script, str(port2), rec.url()], "corr-svc2",
                   {"DYNOBS_CORRELATION_HEADERS": "X-Trace-Me"})
        wait_listening(port2, p2, "service A (X-Trace-Me)")
        answers.append(get("http://127.0.0.1:%d/three" % port2,
                           {"X-Request-ID": "req-3", "X-Trace-Me": "me"}))
        # Through libcurl (the C sample server's outbound call).
        port3 = start_sample_server(env, "thread", "corr-curl", rec.url() + "/four")
        answers.append(get("http://127.0.0.1:%d/x" % port3,
                           {"X-Request-ID": "via-curl", "baggage": "k=v"}))
        check([a[0] for a in answers] == [200, 200, 200], "answers to /one, /three, /x: %r" % answers)
        # Each outbound call was made before its answer: all four are in.
        check(sorted(path for path, _ in rec.got) == ["/four", "/one", "/three", "/two"],
              "calls at the recorder: %r" % rec.got)
        got = {path: hdrs for path, hdrs in rec.got}

        def values(path, name):
            return [v for k, v in got[path] if k == name]

        check(values("/one", "x-request-id") == ["req-123"], "/one: %r" % got["/one"])
        check(values("/one", "x-correlation-id") == ["corr 9"], "/one: %r" % got["/one"])
        check(len(values("/one", "traceparent")) == 1, "/one: one traceparent")
        check(values("/two", "x-request-id") == [], "/two: an ambiguous id was sent on")
        # W3C baggage: carried on once, in its normal form; a malformed
        # list is dropped whole; never recorded.
        check(values("/one", "baggage") == ["userId=alice,tier=gold;ttl=5"],
              "/one: %r" % got["/one"])
        check(values("/two", "baggage") == [], "/two: a malformed baggage was sent on")
        check(values("/three", "baggage") == [], "/three: %r" % got["/three"])
        check(values("/three", "x-trace-me") == ["me"] and values("/three", "x-request-id") == [],
              "/three: %r" % got["/three"])
        check(values("/four", "x-request-id") == ["via-curl"], "/four: %r" % got["/four"])
        check(values("/four", "baggage") == ["k=v"], "/four: %r" % got["/four"])
        spans = received(rx, "corr-svc", 4, "spans")
        by_path = {attrs(s)["url.path"]: s for s in spans if kind(s) == "SPAN_KIND_SERVER"}
        a1, a2 = attrs(by_path["/one"]), attrs(by_path["/two"])
        check(a1.get("http.request.header.x-request-id") == "req-123" and
              a1.get("http.request.header.x-correlation-id") == "corr 9", "/one: %r" % a1)
        check(not any(k.startswith("http.request.header.") for k in a2), "/two: %r" % a2)
        # Baggage is recorded only for the keys named (userId here).
        check(a1.get("userId") == "alice", "/one: userId not recorded: %r" % a1)
        check(not any("gold" in str(v) or k in ("tier", "ttl") for k, v in a1.items()),
              "/one: baggage recorded that was not asked for: %r" % a1)
        s3 = [s for s in received(rx, "corr-svc2", 2, "spans") if kind(s) == "SPAN_KIND_SERVER"]
        a3 = attrs(s3[0])
        check(a3.get("http.request.header.x-trace-me") == "me" and
              "http.request.header.x-request-id" not in a3, "/three: %r" % a3)
    finally:
        rec.stop()
        rx.stop()


def main():
    if not os.path.exists(SAMPLE_SERVER):
        print("%s is missing (built with the tests where libpq-dev is)" % SAMPLE_SERVER)
        return 1
    if not hc.nginx_found():
        return tx.skip_file("nginx is missing (Debian: nginx-light)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
