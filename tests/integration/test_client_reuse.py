"""What an outbound connection keeps from its last request (the rules'
decision, the span's first attributes, the duration metric's series;
preload/client_memo.h) never outlives the facts it was made for: on one
keep-alive HTTP/1 connection, one libcurl easy handle and one libpq
connection, requests and statements that repeat, that differ in what the
memo is keyed by (path, query, host, statement text, status, outcome) and
that come after the rules file changed are each traced and counted as if
decided anew. The HTTP client is a Python program under the shim (plain
sockets), the libcurl one tests/progs/curlreuse.c, the database client
psycopg2 under Debian's /usr/bin/python3; each reads its next request
from stdin, so that the rules change between two requests of the same
connection.

usage: test_client_reuse.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_libpq as tl  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer  # noqa: E402

check, wait_for, one, attrs, spans_of = tx.check, tx.wait_for, tx.one, tx.attrs, tx.spans_of


def write(path, text):
    # A new file renamed into place, as editors and config management do.
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def generation(env):
    return env.metric("dynobs_exporter_rules_generation")


LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def counts(env, metric, service):
    """{frozenset of (label, value) without service_name: count} of a
    histogram's series for one service."""
    out = {}
    for line in env.metrics().splitlines():
        if not line.startswith(metric + "_count{"):
            continue
        labels = dict(LABELS.findall(line[line.index("{"):line.rindex("}") + 1]))
        if labels.pop("service_name", None) != service:
            continue
        out[frozenset(labels.items())] = float(line.rsplit(" ", 1)[1])
    return out


class Client:
    """A process under the shim that runs one request per stdin line and
    prints one line back once it is done."""

    def __init__(self, env, argv, service):
        self.p = subprocess.Popen(argv, env=env.app_env({"OTEL_SERVICE_NAME": service}),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        env.procs.append(self.p)

    def do(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        check(out, "the client stopped: %s" % (self.p.stderr.read() if self.p.poll() is not None
                                               else ""))
        return out.strip()

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


# ---- HTTP/1 client -------------------------------------------------------

HTTP_CLIENT = r'''
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for line in sys.stdin:
    path, *host = line.split()
    conn.request("GET", path, headers={"Host": host[0]} if host else {})
    r = conn.getresponse()
    r.read()
    print(r.status, flush=True)
'''

HTTP_FIRST = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.kind: client
        url.path: /private/*
      drop: [traces]
    - match:
        span.kind: client
        url.path: /uncounted/*
      drop: [metrics]
"""

HTTP_SECOND = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.kind: client
        url.path: /a
      drop: [traces]
"""


@tx.with_env
def test_http_client_connection_reuse(env):
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, HTTP_FIRST)
    rx = Receiver()
    target = RecordingServer(lambda h: (h.path, h.headers.get("Host")),
                             lambda h: b"ok")
    # 404 for /missing: the recorder's handler answers 200, so it is told.
    orig = target.httpd.RequestHandlerClass.reply

    def reply(self, body):
        if self.path == "/missing":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        orig(self, body)
    target.httpd.RequestHandlerClass.reply = reply
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (generation(env) or 0) > 0, 10, "the first rules in force")
        prog = os.path.join(env.dir, "client.py")
        with open(prog, "w") as f:
            f.write(HTTP_CLIENT)
        c = Client(env, [sys.executable, prog, str(target.port)], "reuse-http")
        port = target.port
        local = "http://127.0.0.1:%d" % port

        def spans():
            return [(a.get("url.full"), a.get("server.address"), a.get("server.port"),
                     a.get("http.response.status_code"), a.get("error.type"),
                     a.get("http.request.method"), a.get("network.protocol.version"))
                    for _, sp in spans_of(rx.accepted("/v1/traces"))
                    for a in [attrs(sp)] if one(sp, "kind") == "SPAN_KIND_CLIENT"]

        # The first rules: repeats, then each fact the memo is keyed by
        # changing on its own, back and forth.
        # A Host as long as the last one, then the last one again.
        same_length = "127.0.0.2:%d" % port
        first = ["/a", "/a", "/a?x=1", "/private/1", "/private/1", "/uncounted/1",
                 "/uncounted/1", "/a other.example:8080", "/a", "/a " + same_length, "/a",
                 "/missing", "/missing", "/a"]
        statuses = [c.do(r) for r in first]
        check(statuses == ["404" if r == "/missing" else "200" for r in first],
              "statuses %r" % statuses)
        want = [(local + "/a", "127.0.0.1", port, 200, None),
                (local + "/a", "127.0.0.1", port, 200, None),
                (local + "/a?x=REDACTED", "127.0.0.1", port, 200, None),
                (local + "/uncounted/1", "127.0.0.1", port, 200, None),
                (local + "/uncounted/1", "127.0.0.1", port, 200, None),
                ("http://other.example:8080/a", "other.example", 8080, 200, None),
                (local + "/a", "127.0.0.1", port, 200, None),
                ("http://%s/a" % same_length, "127.0.0.2", port, 200, None),
                (local + "/a", "127.0.0.1", port, 200, None),
                (local + "/missing", "127.0.0.1", port, 404, "404"),
                (local + "/missing", "127.0.0.1", port, 404, "404"),
                (local + "/a", "127.0.0.1", port, 200, None)]
        wait_for(lambda: len(spans()) >= len(want), 10, "the first spans")
        time.sleep(0.5)  # for any span that should not be there
        got = spans()
        print("first rules, one connection: %s" % [g[0] for g in got])
        check([g[:5] for g in got] == want, "client spans %s" % got)
        check(all(g[5:] == ("GET", "1.1") for g in got), "method and version %s" % got)

        def series(address, p, code):
            s = {("http_request_method", "GET"), ("server_address", address),
                 ("server_port", str(p)), ("http_response_status_code", str(code))}
            if code >= 400:
                s.add(("error_type", str(code)))
            return frozenset(s)
        ok, other, missing = (series("127.0.0.1", port, 200),
                              series("other.example", 8080, 200),
                              series("127.0.0.1", port, 404))
        want_counts = {ok: 8, other: 1, missing: 2, series("127.0.0.2", port, 200): 1}
        metric = "http_client_request_duration_seconds"
        try:
            wait_for(lambda: counts(env, metric, "reuse-http") == want_counts, 10,
                     "the first requests counted (%s)" % want_counts)
        finally:
            print("client series: %s" % counts(env, metric, "reuse-http"))

        # The second rules, the same connection: /private/1 (dropped from
        # traces until now) is traced, /a no longer is; all are counted.
        gen1 = generation(env)
        write(rules, HTTP_SECOND)
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules published")
        probes = 0

        def second_in_force():
            nonlocal probes
            probes += 1
            c.do("/private/1")
            return any(s[0] == local + "/private/1" for s in spans())
        wait_for(second_in_force, 5, "the second rules in the client")
        time.sleep(1)  # the probes' spans still on their way
        before = len(spans())
        for r in ("/a", "/a", "/private/1"):
            check(c.do(r) == "200", "status of %s" % r)
        wait_for(lambda: len(spans()) >= before + 1, 10, "the span of the last /private/1")
        time.sleep(0.5)
        got = spans()[before:]
        print("second rules, same connection: %s" % [g[0] for g in got])
        check([g[:5] for g in got] == [(local + "/private/1", "127.0.0.1", port, 200, None)],
              "spans under the second rules %s" % got)
        want_counts[ok] += probes + 3
        wait_for(lambda: counts(env, metric, "reuse-http") == want_counts, 10,
                 "the requests under the second rules counted (%s)" % want_counts)
        c.close()
    finally:
        target.stop()
        rx.stop()


# ---- libcurl ---------------------------------------------------------------

CURLREUSE = os.path.join(tx.BUILD, "tests", "dynobs-curlreuse")

CURL_FIRST = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.kind: client
        url.path: /private/*
      drop: [traces]
"""

CURL_SECOND = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.kind: client
        url.path: /a
      drop: [traces]
"""


@tx.with_env
def test_libcurl_handle_reuse(env):
    if not os.path.exists(CURLREUSE):
        raise tx.Skipped("libcurl's headers are missing (Debian: libcurl4-openssl-dev)")
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, CURL_FIRST)
    rx = Receiver()
    target = RecordingServer(lambda h: h.path, lambda h: b"ok")
    orig = target.httpd.RequestHandlerClass.reply

    def reply(self, body):
        if self.path == "/missing":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        orig(self, body)
    target.httpd.RequestHandlerClass.reply = reply
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (generation(env) or 0) > 0, 10, "the first rules in force")
        c = Client(env, [CURLREUSE], "reuse-curl")
        port = target.port
        local, other = "http://127.0.0.1:%d" % port, "http://localhost:%d" % port

        def spans():
            return [(one(sp, "name").decode(), a.get("url.full"), a.get("server.address"),
                     a.get("server.port"), a.get("http.response.status_code"),
                     a.get("error.type"), a.get("network.protocol.version"))
                    for _, sp in spans_of(rx.accepted("/v1/traces"))
                    for a in [attrs(sp)] if one(sp, "kind") == "SPAN_KIND_CLIENT"]

        first = [local + "/a", local + "/a", local + "/a?x=1", local + "/private/1",
                 other + "/a", local + "/missing", local + "/missing", local + "/a"]
        codes = [c.do(u) for u in first]
        check(codes == ["404" if u.endswith("/missing") else "200" for u in first],
              "codes %r" % codes)

        def span(url, address, status):
            full = url.replace("x=1", "x=REDACTED")
            return ("GET", full, address, port, status, "404" if status == 404 else None, "1.1")
        want = [span(local + "/a", "127.0.0.1", 200), span(local + "/a", "127.0.0.1", 200),
                span(local + "/a?x=1", "127.0.0.1", 200), span(other + "/a", "localhost", 200),
                span(local + "/missing", "127.0.0.1", 404),
                span(local + "/missing", "127.0.0.1", 404), span(local + "/a", "127.0.0.1", 200)]
        wait_for(lambda: len(spans()) >= len(want), 10, "the first spans")
        time.sleep(0.5)
        got = spans()
        print("first rules, one handle: %s" % [g[1] for g in got])
        check(got == want, "libcurl spans %s" % got)

        def series(address, code):
            s = {("http_request_method", "GET"), ("server_address", address),
                 ("server_port", str(port)), ("http_response_status_code", str(code))}
            if code >= 400:
                s.add(("error_type", str(code)))
            return frozenset(s)
        ok = series("127.0.0.1", 200)
        want_counts = {ok: 5, series("localhost", 200): 1, series("127.0.0.1", 404): 2}
        metric = "http_client_request_duration_seconds"
        wait_for(lambda: counts(env, metric, "reuse-curl") == want_counts, 10,
                 "the first transfers counted (%s)" % want_counts)

        gen1 = generation(env)
        write(rules, CURL_SECOND)
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules published")
        probes = 0

        def second_in_force():
            nonlocal probes
            probes += 1
            c.do(local + "/private/1")
            return any(s[1] == local + "/private/1" for s in spans())
        wait_for(second_in_force, 5, "the second rules in the client")
        time.sleep(1)  # the probes' spans still on their way
        before = len(spans())
        for u in (local + "/a", local + "/a", local + "/private/1"):
            check(c.do(u) == "200", "code of %s" % u)
        wait_for(lambda: len(spans()) >= before + 1, 10, "the span of the last /private/1")
        time.sleep(0.5)
        got = spans()[before:]
        check(got == [span(local + "/private/1", "127.0.0.1", 200)],
              "spans under the second rules %s" % got)
        want_counts[ok] += probes + 3
        wait_for(lambda: counts(env, metric, "reuse-curl") == want_counts, 10,
                 "the transfers under the second rules counted (%s)" % want_counts)
        c.close()
    finally:
        target.stop()
        rx.stop()


# ---- libpq -----------------------------------------------------------------

PQ_CLIENT = r'''
import psycopg2, sys
c = psycopg2.connect(sys.argv[1])
c.autocommit = True
cur = c.cursor()
for line in sys.stdin:
    try:
        cur.execute(line.strip())
        print("ok", flush=True)
    except psycopg2.Error as e:
        print(e.pgcode, flush=True)
'''

PQ_FIRST = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.name: SELECT t1
      drop: [traces]
    - match:
        span.name: SELECT t2
      drop: [metrics]
"""

PQ_SECOND = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.name: SELECT t2
      drop: [traces]
"""


@tx.with_env
def test_libpq_connection_reuse(env):
    tx.require_system_python3()
    r = subprocess.run(["/usr/bin/python3", "-c", "import psycopg2"], capture_output=True)
    if r.returncode != 0:
        raise tx.Skipped("python3-psycopg2 is not installed")
    if not os.path.exists(tl.PGBIN + "/postgres"):
        raise tx.Skipped("PostgreSQL 15 is missing (Debian: postgresql-15)")
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, PQ_FIRST)
    rx = Receiver()
    pg = None
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (generation(env) or 0) > 0, 10, "the first rules in force")
        pg = tl.Postgres(env)
        prog = os.path.join(env.dir, "pq.py")
        with open(prog, "w") as f:
            f.write(PQ_CLIENT)
        c = Client(env, ["/usr/bin/python3", prog, pg.conninfo()], "reuse-pq")

        def spans():
            return [(one(sp, "name").decode(), a.get("db.query.text"), a.get("db.operation.name"),
                     a.get("db.collection.name"), a.get("error.type"),
                     a.get("db.response.returned_rows"))
                    for _, sp in spans_of(rx.accepted("/v1/traces"))
                    for a in [attrs(sp)] if a.get("db.system.name") == "postgresql" and
                    one(sp, "name") != b"CONNECT"]

        for q in ("CREATE TABLE t1 (a int)", "CREATE TABLE t2 (a int)",
                  "INSERT INTO t2 VALUES (1), (2)"):
            check(c.do(q) == "ok", q)
        first = ["SELECT a FROM t1", "SELECT a FROM t1", "SELECT a FROM t2", "SELECT a FROM t2",
                 "SELECT a FROM t2 WHERE a = 1", "SELECT a FROM t1 WHERE a = 5",
                 "SELECT a FROM t3", "SELECT a FROM t3", "SELECT a FROM t2"]
        results = [c.do(q) for q in first]
        check(results == ["42P01" if "t3" in q else "ok" for q in first], "results %r" % results)
        t2 = ("SELECT t2", "SELECT a FROM t2", "SELECT", "t2", None, 2)
        t3 = ("SELECT t3", "SELECT a FROM t3", "SELECT", "t3", "42P01", None)
        want = [("CREATE", "CREATE TABLE t1 (a int)", "CREATE", None, None, None),
                ("CREATE", "CREATE TABLE t2 (a int)", "CREATE", None, None, None),
                ("INSERT t2", "INSERT INTO t2 VALUES (?), (?)", "INSERT", "t2", None, None),
                t2, t2, ("SELECT t2", "SELECT a FROM t2 WHERE a = ?", "SELECT", "t2", None, 1),
                t3, t3, t2]
        try:
            wait_for(lambda: len(spans()) >= len(want), 10, "the first spans")
        finally:
            print("database spans: %s" % spans())
        time.sleep(0.5)
        got = spans()
        print("first rules, one connection: %s" % [g[1] for g in got])
        check(got == want, "database spans %s" % got)

        def series(op, error=None):
            s = {("db_system_name", "postgresql"), ("db_operation_name", op),
                 ("db_namespace", "postgres"), ("server_address", "127.0.0.1")}
            if error:
                s |= {("db_response_status_code", error), ("error_type", error)}
            return frozenset(s)
        select, missing = series("SELECT"), series("SELECT", "42P01")
        # t1's three SELECTs are counted though not traced; t2's four are
        # traced though not counted.
        want_counts = {series("CREATE"): 2, series("INSERT"): 1, select: 3, missing: 2}
        metric = "db_client_operation_duration_seconds"
        wait_for(lambda: {k: v for k, v in counts(env, metric, "reuse-pq").items()
                          if k in want_counts} == want_counts, 10,
                 "the first statements counted (%s)" % want_counts)

        # The second rules, the same connection: t1 traced, t2 dropped from
        # traces and counted.
        gen1 = generation(env)
        write(rules, PQ_SECOND)
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules published")
        probes = 0

        def second_in_force():
            nonlocal probes
            probes += 1
            c.do("SELECT a FROM t1")
            return any(s[0] == "SELECT t1" for s in spans())
        wait_for(second_in_force, 5, "the second rules in the client")
        time.sleep(1)  # the probes' spans still on their way
        before = len(spans())
        for q in ("SELECT a FROM t2", "SELECT a FROM t2", "SELECT a FROM t1"):
            check(c.do(q) == "ok", q)
        wait_for(lambda: len(spans()) >= before + 1, 10, "the span of the last t1 SELECT")
        time.sleep(0.5)
        got = spans()[before:]
        check(got == [("SELECT t1", "SELECT a FROM t1", "SELECT", "t1", None, 0)],
              "spans under the second rules %s" % got)
        want_counts[select] += probes + 3
        wait_for(lambda: {k: v for k, v in counts(env, metric, "reuse-pq").items()
                          if k in want_counts} == want_counts, 10,
                 "the statements under the second rules counted (%s)" % want_counts)
        c.close()
    finally:
        if pg:
            pg.stop()
        rx.stop()


def main():
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
