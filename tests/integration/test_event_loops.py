#!/usr/bin/env python3
"""Traces that hold together in the servers people run: a small service in
each runtime answers GET /hop?id=N by making one outbound HTTP call to a
backend (GET /back?id=N) before it answers. Under the shim, with 3
sequential and then 4 concurrent requests, each carrying a traceparent of
its own trace:
  - every server span continues its caller;
  - the outbound call of request N reaches the backend in request N's
    trace, as a child of the service's CLIENT span, itself a child of the
    server span (at least 95% of them: with 7 calls, all of them);
  - no call is ever in another request's trace.
nginx, as a reverse proxy in front of the Python service, is checked over
the whole chain: every span of it in the caller's trace, each with the
parent its test states.
Each runtime is skipped, with a message, where it is not installed.

Usage: test_event_loops.py BUILD_DIR SOURCE_DIR [test names]"""
import os
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_client as hc  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer, service, traceparents  # noqa: E402

check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                 tx.spans_of)


def backend_id(path):
    """The id of a backend request, from its query string."""
    q = path.partition("?")[2]
    return dict(p.partition("=")[::2] for p in q.split("&")).get("id", "")


class Backend(RecordingServer):
    """The service's outbound target, outside the shim: records the id and
    the traceparent of every request it gets."""

    def __init__(self):
        super().__init__(lambda h: (backend_id(h.path), traceparents(h)),
                         lambda h: ("back " + backend_id(h.path)).encode())
        self.seen = self.entries


def call(port, ident, trace, parent):
    req = urllib.request.Request("http://127.0.0.1:%d/hop?id=%d" % (port, ident), headers={
        "traceparent": "00-%s-%s-01" % (trace, parent), "Connection": "close"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
        check(r.status == 200, "request %d: status %d (%r)" % (ident, r.status, body))
        check(("back %d" % ident).encode() in body, "request %d: body %r" % (ident, body))


def callers_for(idents):
    """A caller's (trace, parent) ids for each request id."""
    return {i: (secrets.token_hex(16), secrets.token_hex(8)) for i in idents}


def burst(port, callers, idents):
    """The requests of idents at once, each with its caller's ids."""
    errors = []

    def one_call(i):
        try:
            call(port, i, *callers[i])
        except Exception as e:  # reported below, with the others
            errors.append("request %d: %s" % (i, e))

    threads = [threading.Thread(target=one_call, args=(i,)) for i in idents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "; ".join(errors[:5]))


def drive(port):
    """3 sequential, then 4 concurrent requests; their (trace, parent) ids."""
    callers = callers_for(range(1, 8))
    for i in (1, 2, 3):
        call(port, i, *callers[i])
    burst(port, callers, (4, 5, 6, 7))
    return callers


def backend_calls(backend, n):
    """What the backend recorded, which must be n calls."""
    with backend.lock:
        seen = list(backend.seen)
    check(len(seen) == n, "the backend got %d calls" % len(seen))
    return seen


def check_linked(name, rx, backend, callers, service):
    """The server spans continue their callers and every outbound call is
    in its own request's trace, through the service's CLIENT span."""
    with backend.lock:
        seen = list(backend.seen)
    check(sorted(int(i) for i, _ in seen) == list(range(1, 8)),
          "%s: the backend got %r" % (name, [i for i, _ in seen]))
    spans = hs.received(rx, service, 14, "server and client spans")
    servers = {hexid(s, "trace_id"): s for s in spans if hs.kind(s) == "SPAN_KIND_SERVER"}
    clients = {hexid(s, "span_id"): s for s in spans if hs.kind(s) == "SPAN_KIND_CLIENT"}
    check(len(servers) == 7 and len(clients) == 7,
          "%s: %d server spans in %d traces, %d client spans" % (
              name, sum(hs.kind(s) == "SPAN_KIND_SERVER" for s in spans), len(servers),
              len(clients)))
    by_trace = {trace: i for i, (trace, _) in callers.items()}
    linked = wrong = 0
    report = []
    for ident, tps in seen:
        i = int(ident)
        trace, parent = callers[i]
        server = servers.get(trace)
        check(server is not None, "%s: request %d has no server span in its trace" % (name, i))
        check(hexid(server, "parent_span_id") == parent,
              "%s: request %d's server span does not continue its caller" % (name, i))
        check(len(tps) == 1, "%s: request %d reached the backend with %d traceparents" % (
            name, i, len(tps)))
        _, t, p, _ = tps[0].split("-")
        if t == trace:
            client = clients.get(p)
            check(client is not None and hexid(client, "trace_id") == trace,
                  "%s: request %d's outbound traceparent names no client span of its trace" % (
                      name, i))
            check(hexid(client, "parent_span_id") == hexid(server, "span_id"),
                  "%s: request %d's client span is not a child of its server span" % (name, i))
            linked += 1
            report.append("%d:linked" % i)
        elif t in by_trace:
            wrong += 1
            report.append("%d:IN TRACE OF %d" % (i, by_trace[t]))
        else:
            report.append("%d:own trace" % i)
    print("%s: %d of 7 outbound calls in the right trace, %d in a wrong one (%s)" % (
        name, linked, wrong, ", ".join(report)))
    check(wrong == 0, "%s: %d outbound calls in another request's trace" % (name, wrong))
    check(linked >= 7 * 0.95, "%s: only %d of 7 outbound calls in the right trace" % (name, linked))


def run_service(env, name, argv, port, extra=None, cwd=None):
    rx = Receiver()
    backend = Backend()
    try:
        env.start_exporter(rx.url())
        e = env.app_env(dict({"OTEL_SERVICE_NAME": name, "BACKEND": backend.url()},
                             **(extra or {})))
        p = subprocess.Popen([a.replace("{port}", str(port)).replace("{backend}", backend.url())
                              for a in argv], env=e, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(port, p, name)
        callers = drive(port)
        check_linked(name, rx, backend, callers, name)
    finally:
        backend.stop()
        rx.stop()


def need_nginx():
    hc.require_third_party("nginx")
    if not hc.nginx_found():
        raise tx.Skipped("nginx is missing (Debian: nginx-light)")


def need(tool, package):
    if not shutil.which(tool):
        raise tx.Skipped("%s is missing (Debian: %s)" % (tool, package))


# ---- the services ----

NODE = r'''
const http = require('http');
const [port, back] = process.argv.slice(2);
http.createServer((req, res) => {
  const id = new URL(req.url, 'http://x').searchParams.get('id');
  http.get(back + '/back?id=' + id, (r) => {
    let body = '';
    r.on('data', (d) => { body += d; });
    r.on('end', () => { res.end('node got: ' + body); });
  }).on('error', (e) => { res.statusCode = 502; res.end(String(e)); });
}).listen(Number(port), '127.0.0.1');
'''

RUBY = r'''
require 'socket'
require 'net/http'
port, back = ARGV[0].to_i, ARGV[1]
server = TCPServer.new('127.0.0.1', port)
loop do
  Thread.start(server.accept) do |c|
    begin
      line = c.gets
      while (h = c.gets) && h != "\r\n"; end
      id = line[/id=(\d+)/, 1]
      body = "ruby got: " + Net::HTTP.get(URI("#{back}/back?id=#{id}"))
      c.write "HTTP/1.1 200 OK\r\nContent-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
    ensure
      c.close
    end
  end
end
'''

PHP_ROUTER = r'''<?php
$id = intval($_GET['id'] ?? '0');
echo "php got: " . file_get_contents(getenv('BACKEND') . "/back?id=" . $id);
'''


def script(env, name, text):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


RUN = os.path.join(tx.BUILD, "dynobs-run")


@tx.with_env
def test_node_http_server(env):
    # Through dynobs-run, as users start it: it loads the Node bridge.
    need("node", "nodejs")
    port = tx.free_port()
    run_service(env, "node-svc", [RUN, "--no-exporter", "--", "node",
                                  script(env, "svc.js", NODE), "{port}", "{backend}"], port)


NODE_DEFERRED = r'''
const http = require('http');
const [port, back] = process.argv.slice(2);
http.createServer((req, res) => {
  const id = Number(new URL(req.url, 'http://x').searchParams.get('id'));
  const go = () => http.get(back + '/back?id=' + id, (r) => {
    let body = '';
    r.on('data', (d) => { body += d; });
    r.on('end', () => { res.end('node got: ' + body); });
  }).on('error', (e) => { res.statusCode = 502; res.end(String(e)); });
  // The outbound call from each of Node's places to run code later.
  [go, () => setImmediate(go), () => setTimeout(go, 0),
   () => Promise.resolve().then(go)][id % 4]();
}).listen(Number(port), '127.0.0.1');
'''


def ambiguous(env, service):
    """dynobs_context_ambiguous_total of a service on /metrics, or None."""
    for line in env.metrics().splitlines():
        if (line.startswith("dynobs_context_ambiguous_total{") and
                'service_name="%s"' % service in line):
            return float(line.rsplit(" ", 1)[1])
    return None


@tx.with_env
def test_node_deferred_calls_never_in_a_wrong_trace(env):
    # 60 concurrent requests whose handlers call out now, from
    # setImmediate, from setTimeout and from a promise: with the bridge
    # every call is in its own trace; the shim alone (no bridge) links
    # none and never a wrong one.
    need("node", "nodejs")
    path = script(env, "deferred.js", NODE_DEFERRED)
    env.start_exporter()
    for bridge in (True, False):
        port = tx.free_port()
        backend = Backend()
        try:
            argv = ([RUN, "--no-exporter", "--"] if bridge else []) + ["node", path, str(port),
                                                                       backend.url()]
            service = "node-deferred-" + ("bridge" if bridge else "alone")
            e = env.app_env({"OTEL_SERVICE_NAME": service})
            p = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            env.procs.append(p)
            hs.wait_listening(port, p, "node")
            callers = callers_for(range(60))
            burst(port, callers, callers)
            by_trace = {trace: i for i, (trace, _) in callers.items()}
            seen = backend_calls(backend, 60)
            linked = wrong = 0
            for ident, tps in seen:
                check(len(tps) <= 1, "request %s sent %d traceparents" % (ident, len(tps)))
                trace = tps[0].split("-")[1] if tps else None
                if trace == callers[int(ident)][0]:
                    linked += 1
                elif trace in by_trace:
                    wrong += 1
            print("node deferred, %s: %d of 60 linked, %d wrong" % (
                "with the bridge" if bridge else "shim alone", linked, wrong))
            check(wrong == 0, "%d calls in another request's trace" % wrong)
            if bridge:
                check(linked == 60, "only %d of 60 calls in their request's trace" % linked)
            # The calls the shim could not place are counted, on its own
            # (and, once its count has arrived, none with the bridge).
            if not bridge:
                n = wait_for(lambda: ambiguous(env, service), 10,
                             "dynobs_context_ambiguous_total")
                check(n == 60 - linked, "%s ambiguous calls counted, %d unlinked" % (n, 60 - linked))
                check(ambiguous(env, "node-deferred-bridge") is None,
                      "calls counted as ambiguous with the bridge")
            p.kill()
            p.wait()
        finally:
            backend.stop()


@tx.with_env
def test_node_bridge_carries_tracestate_baggage_and_correlation_ids(env):
    # What the request carried in travels with the calls the bridge links:
    # its tracestate, W3C baggage (normalised) and correlation ids.
    need("node", "nodejs")
    rec = RecordingServer(lambda h: {k: h.headers.get_all(k) or [] for k in
                                     ("traceparent", "tracestate", "baggage", "x-request-id")},
                          lambda h: b"back")
    try:
        port = tx.free_port()
        e = env.app_env({"OTEL_SERVICE_NAME": "node-carry"})
        p = subprocess.Popen([RUN, "--no-exporter", "--", "node", script(env, "svc.js", NODE),
                              str(port), rec.url()], env=e, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(port, p, "node")
        trace = secrets.token_hex(16)
        for i in range(3):
            req = urllib.request.Request("http://127.0.0.1:%d/hop?id=%d" % (port, i), headers={
                "traceparent": "00-%s-%s-01" % (trace, secrets.token_hex(8)),
                "tracestate": "vendor=v%d" % i, "baggage": "tenant = acme%d" % i,
                "X-Request-ID": "req-%d" % i, "Connection": "close"})
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
        with rec.lock:
            got = list(rec.entries)
        check(len(got) == 3, "the backend got %d calls" % len(got))
        for i, h in enumerate(got):
            check(len(h["traceparent"]) == 1 and h["traceparent"][0].split("-")[1] == trace,
                  "call %d: %r" % (i, h))
            check(h["tracestate"] == ["vendor=v%d" % i] and h["baggage"] == ["tenant=acme%d" % i]
                  and h["x-request-id"] == ["req-%d" % i], "call %d: %r" % (i, h))
    finally:
        rec.stop()


@tx.with_env
def test_ruby_thread_per_connection(env):
    need("ruby", "ruby")
    port = tx.free_port()
    run_service(env, "ruby-svc", ["ruby", script(env, "svc.rb", RUBY), "{port}", "{backend}"],
                port)


@tx.with_env
def test_php_builtin_server(env):
    need("php", "php-cli")
    port = tx.free_port()
    script(env, "index.php", PHP_ROUTER)
    run_service(env, "php-svc", ["php", "-S", "127.0.0.1:{port}", "index.php"], port,
                cwd=env.dir)


# com.sun.net.httpserver with a fixed pool of 4 threads, the outbound call
# with HttpURLConnection. Its dispatcher thread accepts with epoll and
# hands each connection, back in blocking mode, to a pool thread, which
# reads the request, makes the call and writes the response: a blocking
# thread per request.
#
# java.net.http.HttpClient is not tested here, as it does not link: the
# handler's thread only connects (non-blocking), the request is written by
# one of the client's "HttpClient-1-Worker" threads and the response read
# by its "SelectorManager" thread (epoll), neither of which serves the
# inbound request; 0 to 3 of 7 calls were in their request's trace (those
# the handler's thread happened to write itself), none in a wrong one.
# And when the response is read before the writing thread's interposer
# has committed the request's bytes, the shim's request reader for that
# pooled connection stays in the body of a request already answered: its
# later requests go without a traceparent or a CLIENT span.
JAVA = r"""
import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

public class Svc {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String back = args[1];
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 16);
        server.createContext("/hop", ex -> {
            String id = ex.getRequestURI().getQuery().replaceAll(".*id=(\\d+).*", "$1");
            HttpURLConnection c =
                (HttpURLConnection) new URL(back + "/back?id=" + id).openConnection();
            String got;
            try (InputStream in = c.getInputStream()) {
                got = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            byte[] body = ("java got: " + got).getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        });
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.start();
    }
}
"""


@tx.with_env
def test_java_httpserver_thread_pool(env):
    need("javac", "openjdk-17-jdk-headless")
    # Compiled into the test's directory first: the JVM then starts in
    # well under the 15 s wait_listening allows.
    src = script(env, "Svc.java", JAVA)
    r = subprocess.run(["javac", "-d", env.dir, src], capture_output=True, timeout=120)
    check(r.returncode == 0, "javac: %s" % r.stderr[-500:])
    port = tx.free_port()
    run_service(env, "java-svc", ["java", "-cp", env.dir, "Svc", "{port}", "{backend}"], port)

# HTTP::Daemon, a child process per connection; the outbound call with
# HTTP::Tiny (core Perl).
PERL = r'''
use strict;
use warnings;
use HTTP::Daemon;
use HTTP::Response;
use HTTP::Tiny;
my ($port, $back) = @ARGV;
$SIG{CHLD} = 'IGNORE';
my $d = HTTP::Daemon->new(LocalAddr => '127.0.0.1', LocalPort => $port, ReuseAddr => 1)
    or die "listen: $!";
while (my $c = $d->accept) {
    if (fork) { close $c; next; }
    my $r = $c->get_request;
    my ($id) = $r->uri =~ /id=(\d+)/;
    my $got = HTTP::Tiny->new->get("$back/back?id=$id");
    my $res = HTTP::Response->new(200);
    $res->content("perl got: $got->{content}");
    $c->send_response($res);
    $c->close;
    exit 0;
}
'''


@tx.with_env
def test_perl_http_daemon_fork_per_connection(env):
    need("perl", "perl")
    r = subprocess.run(["perl", "-MHTTP::Daemon", "-e", "1"], capture_output=True)
    if r.returncode != 0:
        raise tx.Skipped("Perl's HTTP::Daemon is missing (Debian: libhttp-daemon-perl)")
    port = tx.free_port()
    run_service(env, "perl-svc", ["perl", script(env, "svc.pl", PERL), "{port}", "{backend}"],
                port)


# http.server's ThreadingHTTPServer (a blocking thread per connection);
# the outbound call with urllib.
PYTHON = service(r'''
import http.server
import sys
import urllib.request

port, back = int(sys.argv[1]), sys.argv[2]


class Handler(QuietHandler):
    def do_GET(self):
        ident = self.path.rpartition("id=")[2]
        with urllib.request.urlopen(back + "/back?id=" + ident, timeout=30) as r:
            body = b"python got: " + r.read()
        self.reply(body)


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
''')


@tx.with_env
def test_python_threading_http_server(env):
    port = tx.free_port()
    run_service(env, "python-svc", [sys.executable, script(env, "svc.py", PYTHON), "{port}",
                                    "{backend}"], port)


@tx.with_env
def test_blocking_handler_that_waits_with_epoll_keeps_its_request(env):
    # A thread-per-request server whose handler uses a library that waits
    # with epoll (here, Python's selectors on the handler's thread) still
    # serves one request at a time: its calls stay in the request's trace.
    port = tx.free_port()
    src = PYTHON.replace("        ident = self.path.rpartition",
                         "        import select\n"
                         "        ep = select.epoll()\n"
                         "        ep.poll(0)\n"
                         "        ep.close()\n"
                         "        ident = self.path.rpartition")
    check(src != PYTHON, "the handler was not changed")
    run_service(env, "python-epoll", [sys.executable, script(env, "svc_epoll.py", src), "{port}",
                                      "{backend}"], port)


@tx.with_env
def test_nginx_proxy_in_front_of_python(env):
    # caller -> nginx (epoll, under the shim) -> the Python service above
    # (under the shim) -> the backend. nginx's proxy_pass copies the
    # caller's traceparent into the upstream request, and the shim takes a
    # traceparent already in a request as the application's own: it adds
    # none, and the CLIENT span it records continues that header. So, for
    # each request, the chain is exactly:
    #   caller's span
    #     ├─ nginx SERVER
    #     ├─ nginx CLIENT (the upstream call; its id is not on the wire)
    #     └─ python SERVER (continues the caller's header nginx passed on)
    #          └─ python CLIENT -> the backend gets this span's id
    # nginx's own spans are siblings in the caller's trace, not parents of
    # the Python server span.
    need_nginx()
    rx = Receiver()
    backend = Backend()
    try:
        env.start_exporter(rx.url())
        py_port = tx.free_port()
        p = subprocess.Popen([sys.executable, script(env, "svc.py", PYTHON), str(py_port),
                              backend.url()], env=env.app_env({"OTEL_SERVICE_NAME": "python-svc"}),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(py_port, p, "python-svc")
        ng = hc.Nginx(env, preload=True, locations=(
            "    location /hop { proxy_pass http://127.0.0.1:%d; }\n" % py_port))
        callers = drive(ng.port)
        # The Python leg: its server spans continue the callers (through
        # the header nginx passed on), its calls are in their own traces.
        check_linked("nginx -> python-svc", rx, backend, callers, "python-svc")
        # nginx: 7 SERVER and 7 CLIENT spans for /hop, plus the SERVER span
        # of the Nginx helper's probe of /index.html.
        spans = hs.received(rx, "nginx", 15, "nginx spans")
        py = {hexid(s, "trace_id"): s for r, s in spans_of(rx.accepted("/v1/traces"))
              if r["service.name"] == "python-svc" and hs.kind(s) == "SPAN_KIND_SERVER"}
        for i, (trace, parent) in callers.items():
            mine = [s for s in spans if hexid(s, "trace_id") == trace]
            srv = [s for s in mine if hs.kind(s) == "SPAN_KIND_SERVER"]
            cli = [s for s in mine if hs.kind(s) == "SPAN_KIND_CLIENT"]
            check(len(srv) == 1 and len(cli) == 1 and len(mine) == 2,
                  "request %d: nginx has %d server and %d client spans in its trace" % (
                      i, len(srv), len(cli)))
            check(attrs(srv[0]).get("url.path") == "/hop" and
                  attrs(cli[0]).get("server.port") == py_port,
                  "request %d: nginx spans %r, %r" % (i, attrs(srv[0]), attrs(cli[0])))
            check(hexid(srv[0], "parent_span_id") == parent,
                  "request %d: nginx's server span does not continue its caller" % i)
            check(hexid(cli[0], "parent_span_id") == parent,
                  "request %d: nginx's upstream call is not a child of the caller's span "
                  "(the header it passed on), parent %s" % (i, hexid(cli[0], "parent_span_id")))
            check(hexid(py[trace], "parent_span_id") == parent,
                  "request %d: the Python server span's parent is %s, not the caller's %s" % (
                      i, hexid(py[trace], "parent_span_id"), parent))
        logged = sorted(l[1] for l in ng.log() if l[0].startswith("/hop"))
        check(logged == sorted("00-%s-%s-01" % c for c in callers.values()),
              "nginx received %r" % logged)
        print("nginx -> python-svc: 7 of 7 requests: nginx SERVER, nginx CLIENT and python "
              "SERVER children of the caller's span, python CLIENT child of python SERVER")
    finally:
        backend.stop()
        rx.stop()

FPM_CONF = """[global]
pid = {d}/fpm.pid
error_log = {d}/fpm.log
daemonize = no
[www]
listen = 127.0.0.1:{port}
pm = static
pm.max_children = 2
clear_env = no
catch_workers_output = yes
"""

FPM_SCRIPT = r'''<?php
$id = intval($_GET['id'] ?? '0');
echo "fpm got: " . file_get_contents(getenv('BACKEND') . "/back?id=" . $id);
'''


@tx.with_env
def test_php_fpm_behind_nginx(env):
    # caller -> nginx (not traced here) -> php-fpm over FastCGI (under the
    # shim): each php-fpm request is a SERVER span continuing the
    # traceparent nginx passes on as HTTP_TRACEPARENT, and the PHP
    # script's outbound call is its child.
    need_nginx()
    fpm = shutil.which("php-fpm") or shutil.which("php-fpm8.2")
    if not fpm:
        raise tx.Skipped("php-fpm is missing (Debian: php-fpm)")
    rx = Receiver()
    backend = Backend()
    try:
        env.start_exporter(rx.url())
        fpm_port = tx.free_port()
        conf = script(env, "fpm.conf", FPM_CONF.format(d=env.dir, port=fpm_port))
        www = os.path.join(env.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "hop.php"), "w") as f:
            f.write(FPM_SCRIPT)
        for d in (env.dir, www):
            os.chmod(d, 0o755)
        os.chmod(os.path.join(www, "hop.php"), 0o644)
        p = subprocess.Popen([fpm, "-R", "-F", "-y", conf],
                             env=env.app_env({"OTEL_SERVICE_NAME": "php-fpm",
                                              "BACKEND": backend.url()}),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(fpm_port, p, "php-fpm")
        ng = hc.Nginx(env, locations=(
            "    location /hop { include /etc/nginx/fastcgi_params; "
            "fastcgi_param SCRIPT_FILENAME %s/hop.php; fastcgi_pass 127.0.0.1:%d; }\n"
            % (www, fpm_port)))
        callers = drive(ng.port)
        check_linked("php-fpm", rx, backend, callers, "php-fpm")
    finally:
        backend.stop()
        rx.stop()


def main():
    if not shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
