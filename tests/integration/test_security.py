"""Nothing secret is recorded by default. A request carrying an
Authorization header, a cookie and a password in its query string goes
through two services under the shim (an HTTP server that calls another
one with the same secrets, and a PostgreSQL statement with a secret
string literal), with a log record from the Python API in between. No
secret may appear in any OTLP body (traces, metrics, logs), in
Prometheus' /metrics, or in the segments themselves.

usage: test_security.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402
import test_libpq as tl  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import service  # noqa: E402

check, wait_for = tx.check, tx.wait_for
SECRETS = [b"S3cr3t-Bearer-Tok", b"S3cr3t-Cookie-Val", b"S3cr3t-Passw0rd", b"S3cr3t-Sql-Lit"]

SERVICE = service(r'''
import http.server, logging, sys, urllib.request, psycopg2, dynobs
dynobs.enable(logs=True)
log = logging.getLogger("svc")
log.setLevel(logging.INFO)
db = psycopg2.connect(sys.argv[3])
db.autocommit = True

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if sys.argv[2] != "-":
            req = urllib.request.Request(sys.argv[2] + "/next?password=S3cr3t-Passw0rd&x=1",
                                         headers={"Authorization": "Bearer S3cr3t-Bearer-Tok",
                                                  "Cookie": "session=S3cr3t-Cookie-Val"})
            urllib.request.urlopen(req).read()
            with db.cursor() as c:
                c.execute("SELECT count(*) FROM pg_class WHERE relname = %s", ("S3cr3t-Sql-Lit",))
                c.fetchone()
        log.info("handled %s", self.command)
        body = b"ok"
        self.reply(body)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


@tx.with_env
def test_no_secret_reaches_any_export(env):
    tl.require_third_party("python3")
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        pg = tl.Postgres(env)
        pa, pb = tx.free_port(), tx.free_port()
        for name, port, peer in (("front", pa, "http://127.0.0.1:%d" % pb), ("back", pb, "-")):
            p = subprocess.Popen(["/usr/bin/python3", "-c", SERVICE, str(port), peer,
                                  pg.conninfo()],
                                 env=env.app_env({"OTEL_SERVICE_NAME": name,
                                                  "PYTHONPATH": os.path.join(tx.SOURCE, "python")}),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            env.procs.append(p)
            hs.wait_listening(port, p, name)
        # curl, also under the shim, sends the secrets to the first service.
        r = subprocess.run(["curl", "-sS", "-H", "Authorization: Bearer S3cr3t-Bearer-Tok",
                            "-H", "Cookie: session=S3cr3t-Cookie-Val",
                            "http://127.0.0.1:%d/login?user=bob&password=S3cr3t-Passw0rd" % pa],
                           env=env.app_env({"OTEL_SERVICE_NAME": "curl"}), capture_output=True,
                           timeout=30)
        check(r.returncode == 0 and r.stdout == b"ok", "request: %r" % r.stderr)

        def complete():
            spans = tx.spans_of(rx.accepted("/v1/traces"))
            services = {res["service.name"] for res, _ in spans}
            dbs = [sp for _, sp in spans if tx.attrs(sp).get("db.system.name") == "postgresql"
                   and tx.attrs(sp).get("db.operation.name") == "SELECT"]
            logs = rx.accepted("/v1/logs")
            metrics = rx.accepted("/v1/metrics")
            return (services == {"curl", "front", "back"} and dbs and len(logs) >= 1 and
                    metrics) or None
        wait_for(complete, 20, "spans of curl, front and back, a SELECT span, log records and "
                 "metrics")
        # What the SELECT span kept: the statement with its literal replaced.
        texts = [tx.attrs(sp).get("db.query.text") for _, sp in tx.spans_of(rx.accepted("/v1/traces"))
                 if tx.attrs(sp).get("db.operation.name") == "SELECT"]
        check(any(t and "relname = ?" in t for t in texts), "scrubbed statement: %s" % texts)
        urls = [tx.attrs(sp).get("url.full") for _, sp in tx.spans_of(rx.accepted("/v1/traces"))
                if tx.attrs(sp).get("url.full")]
        check(any("password=REDACTED" in u for u in urls), "redacted query: %s" % urls)
        bodies = [b for (_, _, b, _) in rx.all()]
        check(bodies, "nothing exported")
        for secret in SECRETS:
            leaks = [i for i, b in enumerate(bodies) if secret in b]
            check(not leaks, "%s found in OTLP bodies %s" % (secret.decode(), leaks))
            check(secret.decode() not in env.metrics(), "%s in /metrics" % secret.decode())
        # Nor in what is left in shared memory (exited or running processes).
        for name in os.listdir(env.shm):
            try:
                with open(os.path.join(env.shm, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue  # an exited process's, reaped since the listing: nothing is left of it
            for secret in SECRETS:
                check(secret not in data, "%s in segment %s" % (secret.decode(), name))
    finally:
        rx.stop()


if __name__ == "__main__":
    sys.exit(tx.run_tests(globals()))
