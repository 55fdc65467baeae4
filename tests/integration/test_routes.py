#!/usr/bin/env python3
"""http.route on served requests, with the built-in defaults (no rules
file): a Python http.server under the shim, the exporter, a test OTLP
receiver.
  - /users/123 and /users/456 are one route, /users/{id}: one span name
    "GET /users/{id}", one series of http.server.request.duration; the
    same from php-fpm behind nginx (FastCGI: the route of REQUEST_URI);
  - a flood of 3000 requests on random paths (numeric ids, UUIDs, random
    words, depths 1 to 5, random query strings) makes at most 100 series
    of http.server.request.duration, whose counts add up to exactly 3000,
    and every server span carries http.route and is named "GET <route>",
    with no query string and no UUID or number left in any route.

Usage: test_routes.py BUILD_DIR SOURCE_DIR [test names]"""
import http.client
import os
import random
import re
import shutil
import string
import subprocess
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_event_loops as el  # noqa: E402
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import service  # noqa: E402

check, wait_for, one, attrs, spans_of = tx.check, tx.wait_for, tx.one, tx.attrs, tx.spans_of
# Debian's interpreter, as a service would run; any python3 will do.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

SERVER = service(r'''
import http.server, sys

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    # Head and body are two writes: without this, each keep-alive
    # response waits for the client's delayed acknowledgement.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.reply(b"ok")

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')

COUNT = "http_server_request_duration_seconds_count{"


def start_server(env, name):
    path = os.path.join(env.dir, "server.py")
    with open(path, "w") as f:
        f.write(SERVER)
    port = tx.free_port()
    p = hs.start(env, [PYTHON, path, str(port)], name)
    hs.wait_listening(port, p, "the Python server")
    return port


def send(port, paths, threads=4):
    """GETs every path over keep-alive connections from a few threads;
    every answer must be 200."""
    errors = []

    def worker(part):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for p in part:
                c.request("GET", p)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append("%s: %d" % (p, r.status))
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            c.close()

    ts = [threading.Thread(target=worker, args=(paths[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "requests failed: %r" % errors[:5])


def series(env, svc):
    """{labels: count} of http.server.request.duration for one service."""
    out = {}
    for line in env.metrics().splitlines():
        if line.startswith(COUNT) and 'service_name="%s"' % svc in line:
            labels, _, value = line.rpartition(" ")
            out[labels] = float(value)
    return out


def server_spans(rx, svc, n):
    decoded = []  # the spans of the bodies seen so far: each decoded once

    def have():
        bodies = rx.accepted("/v1/traces")
        decoded.extend(spans_of(bodies[have.seen:]))
        have.seen = len(bodies)
        got = [s for r, s in decoded
               if r["service.name"] == svc and one(s, "kind") == "SPAN_KIND_SERVER"]
        return got if len(got) >= n else None
    have.seen = 0
    spans = wait_for(have, 60, "%d server spans of %s" % (n, svc))
    check(len(spans) == n, "%d server spans, expected %d" % (len(spans), n))
    return spans


@tx.with_env
def test_two_ids_one_route(env):
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = start_server(env, "routes-ids")
        send(port, ["/users/123", "/users/456?tab=posts", "/users/123/"], threads=1)
        spans = server_spans(rx, "routes-ids", 3)
        for s in spans:
            a = attrs(s)
            check(a.get("http.route") == "/users/{id}", "http.route %r" % a.get("http.route"))
            check(one(s, "name").decode() == "GET /users/{id}", "name %r" % one(s, "name"))
        check(sorted(attrs(s)["url.path"] for s in spans) == ["/users/123", "/users/123/",
                                                              "/users/456"],
              "url.path keeps the path itself")
        wait_for(lambda: sum(series(env, "routes-ids").values()) == 3, 15, "3 requests counted")
        got = series(env, "routes-ids")
        check(len(got) == 1 and 'http_route="/users/{id}"' in next(iter(got)),
              "one series, labelled with the route: %r" % got)
    finally:
        rx.stop()


@tx.with_env
def test_fastcgi_two_ids_one_route(env):
    el.need_nginx()
    fpm = shutil.which("php-fpm") or shutil.which("php-fpm8.2")
    if not fpm:
        raise tx.Skipped("php-fpm is missing (Debian: php-fpm)")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        fpm_port = tx.free_port()
        conf = el.script(env, "fpm.conf", el.FPM_CONF.format(d=env.dir, port=fpm_port))
        www = os.path.join(env.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "ok.php"), "w") as f:
            f.write("<?php echo 'ok';\n")
        for d in (env.dir, www):
            os.chmod(d, 0o755)
        os.chmod(os.path.join(www, "ok.php"), 0o644)
        p = subprocess.Popen([fpm, "-R", "-F", "-y", conf],
                             env=env.app_env({"OTEL_SERVICE_NAME": "routes-fpm"}),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        env.procs.append(p)
        hs.wait_listening(fpm_port, p, "php-fpm")
        ng = el.hc.Nginx(env, locations=(
            "    location /users { include /etc/nginx/fastcgi_params; "
            "fastcgi_param SCRIPT_FILENAME %s/ok.php; fastcgi_pass 127.0.0.1:%d; }\n"
            % (www, fpm_port)))
        send(ng.port, ["/users/123", "/users/456?tab=posts"], threads=1)
        for s in server_spans(rx, "routes-fpm", 2):
            a = attrs(s)
            check(a.get("http.route") == "/users/{id}", "http.route %r" % a.get("http.route"))
            check(one(s, "name").decode() == "GET /users/{id}", "name %r" % one(s, "name"))
        wait_for(lambda: sum(series(env, "routes-fpm").values()) == 2, 15, "2 requests counted")
        got = series(env, "routes-fpm")
        check(len(got) == 1 and 'http_route="/users/{id}"' in next(iter(got)),
              "one series, labelled with the route: %r" % got)
    finally:
        rx.stop()


def word(rng):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))


def random_path(rng):
    segs = []
    for _ in range(rng.randint(1, 5)):
        k = rng.random()
        if k < 0.3:
            segs.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        elif k < 0.5:
            segs.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        else:
            segs.append(word(rng))
    path = "/" + "/".join(segs)
    if rng.random() < 0.3:
        path += "?q=%s&page=%d" % (word(rng), rng.randint(1, 99))
    return path


@tx.with_env
def test_flood_of_random_paths_is_capped_and_counted(env):
    total = 3000
    rng = random.Random(int(os.environ.get("DYNOBS_TEST_SEED", "14")))
    # A few known routes first, then the flood.
    paths = ["/users/1", "/users/2/orders/3"] + [random_path(rng) for _ in range(total - 2)]
    check(len(set(paths)) > total * 0.95, "the paths repeat")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        port = start_server(env, "routes-flood")
        send(port, paths[:2], threads=1)
        send(port, paths[2:])

        def counted():
            n = sum(series(env, "routes-flood").values())
            return n if n >= total else None
        wait_for(counted, 60, "%d requests in http.server.request.duration" % total)
        spans = server_spans(rx, "routes-flood", total)
        got = series(env, "routes-flood")
        check(sum(got.values()) == total,
              "counted %d, sent %d" % (sum(got.values()), total))
        check(len(got) <= 100, "%d series of http.server.request.duration" % len(got))
        check(all("http_route=" in k for k in got), "a series without http.route")
        # The trie's folds are counted on /metrics.
        folds = env.metric('dynobs_http_route_folds_total{service_name="routes-flood"}')
        print("route segments folded past 10 values: %s" % folds)
        check(folds is not None and folds > 0, "the trie's folds are not on /metrics")
        routes = set()
        uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
        for s in spans:
            a = attrs(s)
            r = a.get("http.route")
            check(r is not None, "a server span without http.route: %r" % a)
            check(one(s, "name").decode() == "GET " + r, "name %r, route %r" % (one(s, "name"), r))
            check("?" not in r and "q=" not in r, "query string in the route %r" % r)
            check(not uuid_re.search(r) and not re.search(r"/[0-9]+(/|$)", r),
                  "an id left in %r (%s)" % (r, a.get("url.path")))
            routes.add(r)
        names = {one(s, "name").decode() for s in spans}
        check("GET /users/{id}" in names and "GET /users/{id}/orders/{id}" in names,
              "known routes missing: %r" % sorted(names)[:20])
        check(len(routes) <= 100, "%d routes" % len(routes))
        # Each series counts exactly the requests of its route (the label
        # cache of a keep-alive connection follows the route).
        by_route = {}
        for s in spans:
            r = attrs(s)["http.route"]
            by_route[r] = by_route.get(r, 0) + 1
        per_series = {re.search(r'http_route="([^"]*)"', k).group(1): v for k, v in got.items()}
        check(per_series == by_route, "series and spans disagree: %r" % sorted(
            set(per_series.items()) ^ set(by_route.items()))[:10])
        print("  %d requests: %d routes, %d series" % (total, len(routes), len(got)))
    finally:
        rx.stop()


def main():
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
