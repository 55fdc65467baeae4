#!/usr/bin/env python3
"""Rules under stress, and redaction that cannot be made weaker.

  1. Reload under load: a Python service (and nginx serving static files,
     where nginx is installed) under the shim, driven by 4 client threads
     (two keep their connection alive, two open one per request) while the
     rules file is rewritten every 300 ms, alternating between two files
     whose routes and drop-traces filter differ, with a broken file now
     and then. Every request must be answered 200, every one counted
     exactly once in http.server.request.duration whatever the rules in
     force, every span named as one of the two files would name it (never
     a mix of both), and the exporter's reload counters must agree with
     what it read.
  2. Redaction is never weaker than the defaults: --check-rules refuses a
     headers list naming authorization, cookie or set-cookie; a redaction
     entry that only replaces an attribute records no query string and no
     credential headers (even when DYNOBS_CORRELATION_HEADERS names them),
     and no secret appears anywhere in what the exporter sends; an entry
     that allows query keys redacts the others; an entry for another
     service changes nothing here.

Usage: test_rules_stress.py BUILD_DIR SOURCE_DIR [test names]"""
import http.client
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_client as hc  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import service  # noqa: E402

check, wait_for, one, attrs, spans_of = tx.check, tx.wait_for, tx.one, tx.attrs, tx.spans_of

# HTTP/1.1, so that a client may keep its connection alive.
SERVICE = service(r'''
import http.server, sys
class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.reply(b"ok")
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


def write(path, text):
    # A new file renamed into place, as editors and config management do.
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def start_service(env, name, extra=None):
    port = tx.free_port()
    path = os.path.join(env.dir, name + ".py")
    with open(path, "w") as f:
        f.write(SERVICE)
    e = {"OTEL_SERVICE_NAME": name}
    e.update(extra or {})
    p = subprocess.Popen([sys.executable, path, str(port)], env=env.app_env(e),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env.procs.append(p)
    hs.wait_listening(port, p, name)
    return p, port


def get(port, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class SpanLog:
    """The spans the receiver got, each body decoded once."""

    def __init__(self, rx):
        self.rx = rx
        self.done = 0
        self.spans = []  # (service.name, kind, name, attributes)

    def all(self):
        bodies = self.rx.accepted("/v1/traces")
        for body in bodies[self.done:]:
            for res, sp in spans_of([body]):
                self.spans.append((res.get("service.name"), one(sp, "kind"),
                                   one(sp, "name").decode(), attrs(sp)))
        self.done = len(bodies)
        return self.spans


def request_count(env):
    """The sum of http_server_request_duration_seconds_count over every
    series on /metrics."""
    total = 0
    for line in env.metrics().splitlines():
        if line.startswith("http_server_request_duration_seconds_count"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def counter(env, name):
    return int(env.metric(name) or 0)


# ---- 1. reload under load ----

# The paths the clients ask for, and how each file names them. A path a
# file drops from traces has no name there (None): its spans can only come
# from the other file.
PATHS = ["/items/apple", "/users/bob", "/a/x", "/b/y"]

FILE_A = """\
file_format: "1.0"
dynobs:
  version: 1
  routes:
    - patterns: ["/items/{name}"]
      unmatched: heuristic
  filters:
    - match: {span.kind: server, url.path: /b/*}
      drop: [traces]
"""
ROUTE_A = {"/items/apple": "/items/{name}", "/users/bob": "/users/bob", "/a/x": "/a/x",
           "/b/y": None}

FILE_B = """\
file_format: "1.0"
dynobs:
  version: 1
  routes:
    - patterns: ["/users/{who}", "/b/*"]
      unmatched: wildcard
  filters:
    - match: {span.kind: server, url.path: /a/*}
      drop: [traces]
"""
ROUTE_B = {"/items/apple": "/*", "/users/bob": "/users/{who}", "/a/x": None, "/b/y": "/b/*"}

# Line 6, column 17: not a route pattern (no leading /).
BROKEN = """\
file_format: "1.0"
dynobs:
  version: 1
  routes:
    - patterns:
        - "users/{who}"
"""

LOAD_SECONDS = 8.0
REWRITE_EVERY = 0.3
# A broken file stays in place longer than the exporter's one-second look
# at the file, so that each one is surely read (and refused).
BROKEN_HOLD = 1.3
BROKEN_EVERY = 8  # rewrites
UA = "rules-stress-load"


def drive(targets, stop, results, keepalive, seed):
    """One client thread: requests to every target in turn until stop is
    set; results gets (target port, status or exception text)."""
    conns = {}
    i = seed
    while not stop.is_set():
        port = targets[i % len(targets)]
        path = PATHS[(i // len(targets)) % len(PATHS)]
        i += 1
        try:
            if keepalive:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", path, headers={"User-Agent": UA})
                r = c.getresponse()
                r.read()
                status = r.status
                if r.will_close:
                    c.close()
                    del conns[port]
            else:
                status = get(port, path, {"User-Agent": UA, "Connection": "close"})
        except Exception as e:  # noqa: BLE001 (any failure is a failed request)
            status = "%s: %s" % (type(e).__name__, e)
            c = conns.pop(port, None)
            if c:
                c.close()
        results.append((port, path, status))
    for c in conns.values():
        c.close()


def rewrite(rules, stop, log):
    """Rewrites the rules file until stop is set: A and B alternately every
    300 ms, a broken file every BROKEN_EVERY rewrites. log gets each kind
    written."""
    n = 0
    while not stop.is_set():
        n += 1
        if n % BROKEN_EVERY == 0:
            write(rules, BROKEN)
            log.append("broken")
            time.sleep(BROKEN_HOLD)  # even when stopping: it must be read
            continue
        good = FILE_B if len(log) % 2 == 0 else FILE_A
        write(rules, good)
        log.append("A" if good is FILE_A else "B")
        stop.wait(REWRITE_EVERY)


@tx.with_env
def test_reload_under_load(env):
    tx.require_third_party("python3")
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, FILE_A)
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (env.metric("dynobs_exporter_rules_generation") or 0) > 0, 10,
                 "the first rules in force")
        svc, port = start_service(env, "stress-svc")
        targets = {port: "stress-svc"}
        ng = None
        try:
            hc.require_third_party("nginx")
            if not hc.nginx_found():
                raise tx.Skipped("nginx is missing (Debian: nginx-light)")
        except tx.Skipped as e:
            tx.skip_part("nginx under the shim serving static files", str(e))
        else:
            ng = hc.Nginx(env, preload=True)
            for p in PATHS:
                f = os.path.join(ng.dir, "html", p.lstrip("/"))
                os.makedirs(os.path.dirname(f), exist_ok=True)
                os.chmod(os.path.dirname(f), 0o755)
                with open(f, "w") as out:
                    out.write("static %s\n" % p)
                os.chmod(f, 0o644)
            targets[ng.port] = "nginx"
        ports = sorted(targets)
        # Each service takes the first rules (its first spans named by
        # them) before the load starts, and the counts settle.
        spans = SpanLog(rx)
        for p in ports:
            def named_by_a(p=p):
                check(get(p, "/items/apple", {"User-Agent": "warm-up"}) == 200,
                      "warm-up request to %s" % targets[p])
                return any(sv == targets[p] and n == "GET /items/{name}"
                           for sv, _, n, _ in spans.all())
            wait_for(named_by_a, 15, "%s under the first rules" % targets[p])

        def settled():
            a = request_count(env)
            time.sleep(0.5)
            return request_count(env) == a
        wait_for(settled, 10, "the request counts settled")
        counted0 = request_count(env)
        reloads0 = counter(env, "dynobs_exporter_rules_reloads_total")
        failures0 = counter(env, "dynobs_exporter_rules_reload_failures_total")
        with open(os.path.join(env.dir, "exporter.log")) as f:
            log0 = len(f.read())

        stop = threading.Event()
        results = [[] for _ in range(4)]
        written = []
        clients = [threading.Thread(target=drive, args=(ports, stop, results[i], i < 2, i))
                   for i in range(4)]
        writer = threading.Thread(target=rewrite, args=(rules, stop, written))
        t0 = time.time()
        for t in clients + [writer]:
            t.start()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for t in clients + [writer]:
            t.join(30)
        took = time.time() - t0
        check(not any(t.is_alive() for t in clients), "a client hung for 30 s after the load")
        # The last file written is a good one, so that the rules in force
        # at the end are known.
        write(rules, FILE_A)
        written.append("A")

        done = [r for rs in results for r in rs]
        failed = [r for r in done if r[2] != 200]
        good = sum(1 for w in written if w != "broken")
        broken = written.count("broken")
        print("%d requests in %.1f s (%.0f/s) to %s; %d rewrites (%d good, %d broken)" % (
            len(done), took, len(done) / took, ", ".join(targets[p] for p in ports),
            len(written), good, broken))
        check(len(done) > 100, "only %d requests in %.0f s" % (len(done), took))
        check(not failed, "%d requests failed, e.g. %r" % (len(failed), failed[:5]))
        check(svc.poll() is None, "the service exited")
        check(ng is None or ng.proc.poll() is None, "nginx exited")
        check(env.exporter.poll() is None, "the exporter exited")

        # Every request counted once.
        want = counted0 + len(done)
        try:
            wait_for(lambda: request_count(env) >= want, 15, "every request counted")
        finally:
            print("counted %d of %d requests sent" % (request_count(env) - counted0, len(done)))
        time.sleep(1.0)
        counted = request_count(env)
        check(counted == want, "http_server_request_duration_seconds_count sums to %d, "
              "%d more than the requests sent" % (counted - counted0, counted - want))

        # Every span named by one file or the other, never a mix.
        wait_for(lambda: env.metric("dynobs_exporter_rules_last_reload_success") == 1, 5,
                 "the last file in force")
        time.sleep(1.5)  # the spans of the last requests
        load = [(sv, n, a) for sv, k, n, a in spans.all()
                if k == "SPAN_KIND_SERVER" and a.get("user_agent.original") == UA]
        check(load, "no span of the load arrived")
        bad = []
        by_file = {"A": 0, "B": 0}
        for sv, n, a in load:
            path = a.get("url.path")
            allowed = {}
            for f, routes in (("A", ROUTE_A), ("B", ROUTE_B)):
                if routes.get(path):
                    allowed["GET " + routes[path]] = f
            f = allowed.get(n)
            if f is None or a.get("http.route") != n[4:]:
                bad.append((sv, path, n, a.get("http.route")))
            else:
                by_file[f] += 1
        print("%d spans of the load: %d named by file A, %d by file B" % (
            len(load), by_file["A"], by_file["B"]))
        check(not bad, "%d spans named by neither file (service, path, name, route), e.g. %r" % (
            len(bad), bad[:5]))
        for p in ports:
            check(any(sv == targets[p] for sv, _, _ in load), "no span of %s" % targets[p])
        check(by_file["A"] and by_file["B"], "the spans were not named by both files: %r" %
              by_file)

        # The reload counters: the exporter looks at the file once a
        # second, so it reads about one rewrite in three; each look after
        # a rewrite is one reload (good file) or one failure (broken
        # file, each held longer than a second so that each is read).
        reloads = counter(env, "dynobs_exporter_rules_reloads_total") - reloads0
        failures = counter(env, "dynobs_exporter_rules_reload_failures_total") - failures0
        with open(os.path.join(env.dir, "exporter.log")) as f:
            log = f.read()[log0:]
        in_force = len(re.findall(r"rules: \S+ in force \(generation", log))
        refused = len(re.findall(r"rules: .*the rules in force \(generation \d+\) stay", log))
        print("exporter: %d reloads, %d refused (the log says %d and %d)" % (
            reloads, failures, in_force, refused))
        check(failures == broken, "%d reload failures for %d broken files" % (failures, broken))
        check(refused == failures, "%d refusals logged, %d counted" % (refused, failures))
        check(in_force == reloads, "%d reloads logged, %d counted" % (in_force, reloads))
        check(reloads <= good, "%d reloads for %d good files" % (reloads, good))
        # Time with a good file in place, when every look finds a new one.
        looks = took - broken * BROKEN_HOLD
        check(reloads >= looks / 1.0 - 2, "%d reloads in %.1f s of good files changing every "
              "%.1f s" % (reloads, looks, REWRITE_EVERY))
    finally:
        rx.stop()


# ---- 2. redaction never weaker than the defaults ----

def check_rules(path):
    return subprocess.run([tx.EXPORTER, "--check-rules", path], capture_output=True, text=True,
                          timeout=30)


NEVER = ["authorization", "cookie", "set-cookie", "Authorization", "Set-Cookie"]


@tx.with_env
def test_check_rules_refuses_credential_headers(env):
    for name in NEVER:
        for text in ("""\
file_format: "1.0"
dynobs:
  version: 1
  redaction:
    - headers: [x-request-id, %s]
""" % name, """\
file_format: "1.0"
instrumentation/development:
  general:
    http:
      server: {request_captured_headers: [X-Request-Id, %s]}
dynobs:
  version: 1
""" % name):
            path = os.path.join(env.dir, "never.yaml")
            write(path, text)
            r = check_rules(path)
            check(r.returncode == 1 and "never recorded" in r.stderr,
                  "--check-rules with %s in a headers list: exit %d, %r" % (
                      name, r.returncode, r.stderr + r.stdout))
    print("--check-rules refuses %s in both headers lists" % ", ".join(NEVER))


SECRET_QUERY = "password=s3cret&page=2"
AUTH = "Bearer tok-AUTHSECRET-123"
COOKIE = "session=COOKIESECRET-456"
SECRETS = [b"s3cret", AUTH.encode(), b"AUTHSECRET", COOKIE.encode(), b"COOKIESECRET"]

# Each file has a user-agent replacement that applies to this service, so
# that its spans show when the file is in force.
ONLY_ATTRIBUTE = """\
file_format: "1.0"
dynobs:
  version: 1
  redaction:
    - attributes:
        - {key: user_agent.original, value: "probe*", with: "%s"}
"""
QUERY_ALLOWED = """\
file_format: "1.0"
dynobs:
  version: 1
  redaction:
    - query: {record: true, allowed: [page]}
      attributes:
        - {key: user_agent.original, value: "probe*", with: "%s"}
"""
OTHER_SERVICE = """\
file_format: "1.0"
dynobs:
  version: 1
  redaction:
    - match: {service.name: other}
      query: {record: true, allowed: [password]}
    - attributes:
        - {key: user_agent.original, value: "probe*", with: "%s"}
"""

# Every header a request may name in DYNOBS_CORRELATION_HEADERS (at most 4),
# credentials included: the shim refuses such a list (they would be sent on
# to every destination) and keeps its default, x-request-id included; the
# credentials must stay out of everything either way.
CORRELATION = "x-request-id,authorization,cookie,set-cookie"


@tx.with_env
def test_redaction_never_weaker_than_defaults(env):
    tx.require_third_party("python3")
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, ONLY_ATTRIBUTE % "ua-b")
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (env.metric("dynobs_exporter_rules_generation") or 0) > 0, 10,
                 "the rules in force")
        svc, port = start_service(env, "redact-svc", {"DYNOBS_CORRELATION_HEADERS": CORRELATION})
        # The shim refuses the list (test_config.c) and keeps the default.
        spans = SpanLog(rx)
        probes = [0]

        def in_force(marker):
            def probe():
                probes[0] += 1
                check(get(port, "/probe", {"User-Agent": "probe-%d" % probes[0],
                                           "X-Request-Id": "probe-%d" % probes[0]}) == 200,
                      "a probe request failed")
                return any(a.get("user_agent.original") == marker for _, _, _, a in spans.all())
            wait_for(probe, 15, "the rules with %s in force" % marker)

        def secret_request(rid):
            status = get(port, "/login?" + SECRET_QUERY, {
                "User-Agent": "client", "Authorization": AUTH, "Cookie": COOKIE,
                "Set-Cookie": COOKIE, "X-Request-Id": rid})
            check(status == 200, "the request answered %d" % status)

            def found():
                for sv, k, n, a in spans.all():
                    if a.get("http.request.header.x-request-id") == rid:
                        return a
                return None
            a = wait_for(found, 10, "the span of request %s (x-request-id recorded)" % rid)
            check(a.get("url.path") == "/login", "url.path %r" % a.get("url.path"))
            for h in ("authorization", "cookie", "set-cookie"):
                check("http.request.header." + h not in a,
                      "%s recorded: %r" % (h, a.get("http.request.header." + h)))
            for k, v in a.items():
                check(not any(s.decode() in str(v) for s in SECRETS),
                      "a secret in attribute %s = %r" % (k, v))
            return a

        # (b) An entry that only replaces an attribute: the defaults hold.
        in_force("ua-b")
        a = secret_request("rid-b")
        check("url.query" not in a, "url.query recorded: %r" % a.get("url.query"))
        print("(b) only an attribute replaced: %r" % sorted(a))

        # (c) Query values recorded but those allowed redacted.
        write(rules, QUERY_ALLOWED % "ua-c")
        in_force("ua-c")
        a = secret_request("rid-c")
        check(a.get("url.query") == "password=REDACTED&page=2",
              "url.query with page allowed: %r" % a.get("url.query"))
        print("(c) url.query %s" % a["url.query"])

        # (d) An entry for another service changes nothing here.
        write(rules, OTHER_SERVICE % "ua-d")
        in_force("ua-d")
        a = secret_request("rid-d")
        check("url.query" not in a,
              "an entry for another service recorded url.query: %r" % a.get("url.query"))
        print("(d) another service's entry: no url.query")

        # Nothing the exporter sent, on any path, holds a secret; nor does
        # anything the shim wrote to shared memory.
        time.sleep(1.0)
        sent = rx.all()
        check(sent, "the exporter sent nothing")
        for path, _, body, _ in sent:
            for s in SECRETS:
                check(s not in body, "%r in a body sent to %s" % (s, path))
        env.exporter.send_signal(tx.signal.SIGTERM)
        env.exporter.wait(10)
        shm = 0
        for root, _, files in os.walk(env.shm):
            for name in files:
                shm += 1
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for s in SECRETS:
                    check(s not in data, "%r in shared memory (%s)" % (s, name))
        check(shm, "no file in the segment directory %s" % env.shm)
        print("no secret in %d bodies sent nor in %d files of shared memory" % (len(sent), shm))
        check(svc.poll() is None, "the service exited")
    finally:
        rx.stop()


def main():
    if not tx.shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
