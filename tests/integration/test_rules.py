#!/usr/bin/env python3
"""Rules change what is recorded, live: one Python service under the shim
and one exporter with DYNOBS_RULES, and the rules file rewritten while both
run (neither is restarted: the service's pid is checked at the end).
  1. the first file (routes by the heuristic, the default health-check
     filter): server spans are named by route, /healthz is counted in
     metrics but not traced, no query string is recorded;
  2. a second file adds a route pattern, a redaction rule (query values
     but `page` redacted, a user agent replaced) and two drop rules (one
     for traces, one for metrics): within 5 s every one of them shows in
     the spans the OTLP receiver gets and in /metrics;
  3. a broken third file is refused with its line and column (in the
     exporter's log, on /metrics, and by --check-rules), and the second
     file's rules stay in force.
On one keep-alive connection (the shim keeps a connection's last rules
decision, route and attributes while method, host, path and headers
repeat), the same request is decided anew once new rules are in force,
a changed User-Agent shows on the next span, and a recorded query string
comes and goes with the request's target.

Usage: test_rules.py BUILD_DIR SOURCE_DIR [test names]"""
import http.client
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer, service  # noqa: E402

check, wait_for, one, attrs, spans_of = tx.check, tx.wait_for, tx.one, tx.attrs, tx.spans_of

SERVICE = service(r'''
import http.server, sys
class Handler(QuietHandler):
    def do_GET(self):
        self.reply(b"ok")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')

FIRST = """\
file_format: "0.3"
dynobs:
  version: 1
  routes:
    - unmatched: heuristic
  filters:
    - match:
        span.kind: server
        url.path: [/healthz, /readyz, /livez, /metrics]
      drop: [traces]
"""

SECOND = """\
file_format: "0.3"
dynobs:
  version: 1
  routes:
    - patterns: ["/items/{name}"]
      unmatched: heuristic
  redaction:
    - match:
        span.kind: server
      query:
        record: true
        allowed: [page]
      attributes:
        - key: user_agent.original
          value: "*secret*"
          with: REDACTED
  filters:
    - match:
        url.path: /private/*
      drop: [traces]
    - match:
        url.path: /uncounted/*
      drop: [metrics]
    - match:
        attributes:
          user_agent.original: crawler-*
      drop: [traces]
    - match:
        span.kind: server
        url.path: [/healthz, /readyz, /livez, /metrics]
      drop: [traces]
"""

# The second file without its attribute conditions (which keep a
# connection from reusing its last decision).
THIRD = """\
file_format: "0.3"
dynobs:
  version: 1
  routes:
    - patterns: ["/items/{name}"]
      unmatched: heuristic
  redaction:
    - match:
        span.kind: server
      query:
        record: true
        allowed: [page]
"""

# Line 5, column 14: a ratio out of range.
BROKEN = """\
file_format: "0.3"
dynobs:
  version: 1
  sampling:
    - sampler: {trace_id_ratio_based: {ratio: 7}}
"""


def get(port, path, ua):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"User-Agent": ua})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def server_spans(rx):
    """(name, attributes) of every server span received, in order of
    arrival (each body decoded once, kept with its receiver)."""
    out = []
    if not hasattr(rx, "decoded"):
        rx.decoded = {}
    for i, body in enumerate(rx.accepted("/v1/traces")):
        if i not in rx.decoded:
            rx.decoded[i] = [(one(sp, "name").decode(), attrs(sp))
                           for _, sp in spans_of([body])
                           if one(sp, "kind") == "SPAN_KIND_SERVER"]
        out.extend(rx.decoded[i])
    return out


def route_count(env, route):
    """The request count of http.server.request.duration for a route."""
    total = None
    for line in env.metrics().splitlines():
        if (line.startswith("http_server_request_duration_seconds_count{") and
                'http_route="%s"' % route in line):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def write(path, text):
    # A new file renamed into place, as editors and config management do.
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def generation(env):
    return env.metric("dynobs_exporter_rules_generation")


def check_rules(path):
    return subprocess.run([tx.EXPORTER, "--check-rules", path], capture_output=True, text=True,
                          timeout=30)


def start_with_rules(env, rx, text, name):
    """The rules file, an exporter publishing it and a Python service under
    the shim: (rules path, service process, its port)."""
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, text)
    env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
    wait_for(lambda: (generation(env) or 0) > 0, 10, "the first rules in force")
    port = tx.free_port()
    path = os.path.join(env.dir, "svc.py")
    with open(path, "w") as f:
        f.write(SERVICE)
    p = subprocess.Popen([sys.executable, path, str(port)],
                         env=env.app_env({"OTEL_SERVICE_NAME": name}),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env.procs.append(p)
    hs.wait_listening(port, p, "the service")
    return rules, p, port


@tx.with_env
def test_route_redaction_and_drop_rules_apply_live(env):
    rx = Receiver()
    try:
        rules, p, port = start_with_rules(env, rx, FIRST, "rules-svc")

        # 1. The first rules.
        get(port, "/items/apple?page=2&token=t1", "agent-secret-1")
        get(port, "/healthz", "probe")
        get(port, "/private/1", "agent")
        wait_for(lambda: any(n.startswith("GET /private") for n, _ in server_spans(rx)), 10,
                 "the first spans")
        spans = server_spans(rx)
        names = sorted(n for n, _ in spans)
        print("first rules: server spans %s" % names)
        check("GET /items/apple" in names, "no span named by the heuristic route: %s" % names)
        check(not any("/healthz" in n for n in names), "/healthz traced: %s" % names)
        a = dict(spans)["GET /items/apple"]
        check(a.get("http.route") == "/items/apple", "http.route: %r" % a.get("http.route"))
        check("url.query" not in a, "a query string recorded by default: %r" % a.get("url.query"))
        check(a.get("user_agent.original") == "agent-secret-1", "user agent: %r" %
              a.get("user_agent.original"))
        wait_for(lambda: route_count(env, "/healthz") == 1, 10, "/healthz counted in metrics")

        # 2. The second rules, without restarting anything.
        gen1 = generation(env)
        write(rules, SECOND)
        t0 = time.time()
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules in force")
        # The shim takes a new generation at its next request once the
        # exporter has written it into the segment (its next drain).

        def second_in_force():
            get(port, "/items/pear?page=3&token=t2", "agent-secret-2")
            return any(n == "GET /items/{name}" for n, _ in server_spans(rx))
        wait_for(second_in_force, 5, "a span named by the new route pattern")
        took = time.time() - t0
        print("second rules in force in the service %.2f s after the file changed" % took)
        check(took <= 5.0, "the new rules took %.1f s" % took)
        before = len(server_spans(rx))
        private_before = route_count(env, "/private/{id}")
        check(private_before == 1, "/private/1 counted %r times" % private_before)
        get(port, "/private/2", "agent")
        get(port, "/items/crawled", "crawler-7")
        get(port, "/uncounted/1", "agent")
        get(port, "/items/fig?page=9&token=t3", "agent-secret-3")
        wait_for(lambda: any(n.startswith("GET /uncounted") for n, _ in server_spans(rx)[before:]),
                 10, "the span of /uncounted/1")
        wait_for(lambda: any(a.get("url.query") == "page=9&token=REDACTED"
                             for n, a in server_spans(rx)), 10, "the redacted query")
        spans = server_spans(rx)[before:]
        names = [n for n, _ in spans]
        print("second rules: server spans %s" % names)
        check(not any(n.startswith("GET /private") for n in names),
              "a span of /private/ exported after the drop rule: %s" % names)
        check(not any(a.get("user_agent.original", "").startswith("crawler") for _, a in spans),
              "a span of a crawler exported after the attribute drop rule")
        fig = [a for n, a in spans if a.get("url.query", "").startswith("page=9")][0]
        check(fig.get("http.route") == "/items/{name}", "route %r" % fig.get("http.route"))
        check(fig.get("user_agent.original") == "REDACTED",
              "user agent not replaced: %r" % fig.get("user_agent.original"))
        wait_for(lambda: route_count(env, "/private/{id}") == 2, 10,
                 "/private/2 counted although not traced")
        check(route_count(env, "/uncounted/{id}") is None,
              "/uncounted/1 counted despite the metrics drop rule")

        # 3. A broken file: refused, and the second rules stay.
        gen2 = generation(env)
        write(rules, BROKEN)
        wait_for(lambda: env.metric("dynobs_exporter_rules_last_reload_success") == 0, 5,
                 "the broken file refused")
        log = env.log()
        check(re.search(re.escape(rules) + r":5:\d+: dynobs\.sampling\[0\]", log),
              "the exporter's log does not give the place of the error: %s" % log[-1500:])
        check(generation(env) == gen2, "the generation changed after a broken file")
        r = check_rules(rules)
        check(r.returncode == 1 and re.search(r":5:\d+:", r.stderr),
              "--check-rules on the broken file: %d %r" % (r.returncode, r.stderr))
        write(rules + ".good", SECOND)
        r = check_rules(rules + ".good")
        check(r.returncode == 0, "--check-rules on a good file: %d %r" % (r.returncode, r.stderr))
        before = len(server_spans(rx))
        get(port, "/items/kiwi?page=1", "agent")
        wait_for(lambda: any(n == "GET /items/{name}" for n, _ in server_spans(rx)[before:]), 10,
                 "a span still named by the second rules")
        check(p.poll() is None, "the service exited")
        check(env.exporter.poll() is None, "the exporter exited")
    finally:
        rx.stop()


@tx.with_env
def test_the_shipped_and_documented_rules_compile(env):
    # rules/default.yaml, and every YAML example of README.md and
    # rules/README.md that is a whole file (starts with file_format, and
    # is no outline with "{...}" in it).
    files = [os.path.join(tx.SOURCE, "rules", "default.yaml")]
    for doc in ("README.md", os.path.join("rules", "README.md")):
        with open(os.path.join(tx.SOURCE, doc)) as f:
            text = f.read()
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            if block.startswith("file_format:") and "..." not in block:
                path = os.path.join(env.dir, "%s-%d.yaml" % (doc.replace("/", "-"), i))
                write(path, block)
                files.append(path)
    check(len(files) >= 2, "no documented example found")
    for path in files:
        r = check_rules(path)
        print(r.stdout.strip() or r.stderr.strip())
        check(r.returncode == 0, "%s does not compile: %s" % (path, r.stderr))


@tx.with_env
def test_a_damaged_table_is_refused_by_the_shim_and_counted(env):
    # The exporter validated what it published; a table changed on disk
    # afterwards (here cut short before the service read it) is refused by
    # the shim, counted, and the rules in force stay.
    rx = Receiver()
    try:
        rules, p, port = start_with_rules(env, rx, FIRST, "damaged-svc")
        get(port, "/items/apple", "agent")
        gen1 = generation(env)
        write(rules, SECOND)
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules published")
        table = os.path.join(env.shm, ".rules.%d" % int(generation(env)))
        with open(table, "r+b") as f:
            f.truncate(200)
        time.sleep(0.3)  # the exporter's next drain names the new generation
        get(port, "/items/pear", "agent")
        wait_for(lambda: any(n == "GET /items/pear" for n, _ in server_spans(rx)), 10,
                 "a span still named by the first rules")
        check(not any(n == "GET /items/{name}" for n, _ in server_spans(rx)),
              "the damaged table's route was used")
        failures = env.metric('dynobs_rules_load_failures_total{service_name="damaged-svc"}')
        check(failures is not None and failures >= 1, "the refusal is not counted: %r" % failures)
        check(p.poll() is None, "the service exited")
    finally:
        rx.stop()


CURL_RULES = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        span.kind: client
        url.path: /skip/*
      drop: [traces, metrics]
"""


@tx.with_env
def test_a_filter_drops_libcurl_transfers_by_path(env):
    tx.require_third_party("curl")
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, CURL_RULES)
    rx = Receiver()
    target = RecordingServer(lambda h: h.path, lambda h: b"ok")
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        for path in ("/skip/1", "/keep/1"):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", target.url() + path],
                               env=env.app_env({"OTEL_SERVICE_NAME": "curl-rules"}),
                               capture_output=True, timeout=30)
            check(r.returncode == 0, "curl failed: %r" % r.stderr)
        check(sorted(target.entries) == ["/keep/1", "/skip/1"], "requests %r" % target.entries)

        def clients():
            return [attrs(sp).get("url.full", "") for res, sp in spans_of(rx.accepted("/v1/traces"))
                    if res.get("service.name") == "curl-rules"]
        got = wait_for(lambda: clients() or None, 10, "the span of /keep/1")
        time.sleep(0.5)
        got = clients()
        print("libcurl spans: %s" % got)
        check(len(got) == 1 and got[0].endswith("/keep/1"), "spans %r" % got)
        def counted():
            return sum(float(l.rsplit(" ", 1)[1]) for l in env.metrics().splitlines()
                       if l.startswith("http_client_request_duration_seconds_count{") and
                       'service_name="curl-rules"' in l)
        wait_for(lambda: counted() >= 1, 10, "the transfer of /keep/1 counted")
        time.sleep(0.3)
        check(counted() == 1, "%s transfers counted, the dropped one with them" % counted())
    finally:
        target.stop()
        rx.stop()


LOGS_DROPPED = """\
file_format: "0.3"
dynobs:
  version: 1
  filters:
    - match:
        service.name: quiet-*
      drop: [logs]
"""


@tx.with_env
def test_a_filter_drops_the_logs_of_a_service(env):
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, LOGS_DROPPED)
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules, "OTEL_METRICS_EXPORTER": "none"})
        env.run_app("logs", {"OTEL_SERVICE_NAME": "quiet-logger"})
        env.run_app("logs", {"OTEL_SERVICE_NAME": "logger"})

        def services():
            out = []
            for body in rx.accepted("/v1/logs"):
                for rl in tx.decode(body, tx.LOG_REQ, tx.OWN_PROTO).get("resource_logs", []):
                    svc = attrs(one(rl, "resource", {})).get("service.name")
                    for sl in rl.get("scope_logs", []):
                        out += [svc] * len(sl.get("log_records", []))
            return out
        got = wait_for(lambda: services() if services().count("logger") >= 2 else None, 10,
                       "the logs of the service no rule drops")
        time.sleep(0.5)
        got = services()
        print("log records by service: %s" % {s: got.count(s) for s in set(got)})
        check("quiet-logger" not in got, "a dropped service's logs were exported")
        # Its spans are not dropped: the filter names logs only.
        wait_for(lambda: any(r.get("service.name") == "quiet-logger"
                             for r, _ in spans_of(rx.accepted("/v1/traces"))), 10,
                 "the spans of the service whose logs are dropped")
    finally:
        rx.stop()


KEEP_ALIVE_SERVICE = service(r'''
import http.server, sys
class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.reply(b"ok")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


def fresh_server_spans(rx):
    """(name, attributes) of every server span rx got, decoded anew."""
    return [(one(sp, "name").decode(), attrs(sp)) for _, sp in spans_of(rx.accepted("/v1/traces"))
            if one(sp, "kind") == "SPAN_KIND_SERVER"]


@tx.with_env
def test_keep_alive_requests_follow_new_rules_and_headers(env):
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, FIRST)
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (generation(env) or 0) > 0, 10, "the first rules in force")
        port = tx.free_port()
        path = os.path.join(env.dir, "svc.py")
        with open(path, "w") as f:
            f.write(KEEP_ALIVE_SERVICE)
        p = subprocess.Popen([sys.executable, path, str(port)],
                             env=env.app_env({"OTEL_SERVICE_NAME": "keep-alive-svc"}),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(port, p, "the service")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def ka(path, ua):
            conn.request("GET", path, headers={"User-Agent": ua})
            r = conn.getresponse()
            r.read()
            check(r.status == 200, "%s: status %d" % (path, r.status))

        def of(path):
            return [(n, a.get("user_agent.original")) for n, a in fresh_server_spans(rx)
                    if a.get("url.path") == path]

        # The first rules: the same request three times, then another
        # User-Agent, all on one connection; the last request is the one
        # repeated first under the second rules.
        ka("/private/1", "agent")
        for ua in ("ua-one", "ua-one", "ua-one", "ua-two"):
            ka("/items/apple", ua)
        wait_for(lambda: len(of("/items/apple")) == 4 and of("/private/1"), 10, "the first spans")
        got = of("/items/apple")
        print("first rules, one connection: %s" % got)
        check(got == [("GET /items/apple", "ua-one")] * 3 + [("GET /items/apple", "ua-two")],
              "spans of one keep-alive connection: %s" % got)
        check(of("/private/1") == [("GET /private/{id}", "agent")], "%s" % of("/private/1"))

        # The second rules: the same requests on the same connection now
        # take the new route pattern, the drop rules and the redaction.
        gen1 = generation(env)
        write(rules, SECOND)
        wait_for(lambda: (generation(env) or 0) > gen1, 5, "the second rules in force")

        def second_in_force():
            get(port, "/items/pear", "agent")
            return any(a.get("url.path") == "/items/pear" and n == "GET /items/{name}"
                       for n, a in fresh_server_spans(rx))
        wait_for(second_in_force, 5, "the second rules in the service")
        ka("/items/apple", "ua-two")
        ka("/private/1", "agent")
        ka("/items/apple", "crawler-1")
        ka("/items/apple", "ua-secret-3")
        wait_for(lambda: len(of("/items/apple")) >= 6, 10, "the spans after the second rules")
        time.sleep(0.5)  # for any span that should not be there
        got = of("/items/apple")[4:]
        print("second rules, same connection: %s" % got)
        check(got == [("GET /items/{name}", "ua-two"), ("GET /items/{name}", "REDACTED")],
              "spans of the same connection under the second rules: %s" % got)
        check(len(of("/private/1")) == 1, "/private/1 traced after the drop rule: %s" %
              of("/private/1"))
        wait_for(lambda: route_count(env, "/private/{id}") == 2, 10,
                 "/private/1 counted again though not traced")

        # The third rules (no attribute conditions): a request with a
        # recorded query, then the same path without one, twice.
        gen2 = generation(env)
        write(rules, THIRD)
        wait_for(lambda: (generation(env) or 0) > gen2, 5, "the third rules in force")

        def third_in_force():
            get(port, "/items/pear", "crawler-probe")
            return any(a.get("user_agent.original") == "crawler-probe"
                       for _, a in fresh_server_spans(rx))
        wait_for(third_in_force, 5, "the third rules in the service")
        for target in ("/items/apple?page=1&token=t", "/items/apple", "/items/apple"):
            ka(target, "ua-two")
        wait_for(lambda: len(of("/items/apple")) >= 9, 10, "the spans after the third rules")
        got = [(n, a.get("http.request.method"), a.get("http.route"), a.get("url.query"))
               for n, a in fresh_server_spans(rx) if a.get("url.path") == "/items/apple"][6:]
        print("third rules, same connection: %s" % got)
        want = [("GET /items/{name}", "GET", "/items/{name}", q)
                for q in ("page=1&token=REDACTED", None, None)]
        check(got == want, "spans of the same connection under the third rules: %s" % got)
        conn.close()
        check(p.poll() is None, "the service exited")
    finally:
        rx.stop()


def main():
    if not os.path.exists("/usr/bin/protoc") and not tx.shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
