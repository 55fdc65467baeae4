"""PostgreSQL tracing through libpq against a real PostgreSQL 15 server
that the test starts (as the postgres user, in a temporary directory, on a
free loopback port and a unix socket). Clients run under LD_PRELOAD: a C
libpq program inside a C API span, psql -c, and psycopg2 with Debian's
/usr/bin/python3. Spans go through the exporter to a test OTLP receiver.

usage: test_libpq.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

BUILD = tx.BUILD
PGCLIENT = os.path.join(BUILD, "tests", "dynobs-pgclient")
PGBIN = "/usr/lib/postgresql/15/bin"
check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                 tx.spans_of)


class Postgres:
    def __init__(self, env):
        os.chmod(env.dir, 0o755)
        self.dir = os.path.join(env.dir, "pg")
        os.makedirs(self.dir)
        pg = pwd.getpwnam("postgres")
        os.chown(self.dir, pg.pw_uid, pg.pw_gid)
        self.port = tx.free_port()
        self.log_path = os.path.join(self.dir, "server.log")
        r = subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/initdb", "-D",
                            self.dir + "/data", "--auth=trust", "-U", "postgres"],
                           capture_output=True, timeout=120)
        check(r.returncode == 0, "initdb: %s" % r.stderr[-500:])
        self.log = open(self.log_path, "w")
        os.chown(self.log_path, pg.pw_uid, pg.pw_gid)
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", PGBIN + "/postgres", "-D", self.dir + "/data",
             "-k", self.dir, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "log_statement=all", "-c", "fsync=off"],
            stdout=self.log, stderr=subprocess.STDOUT)
        env.procs.append(self.proc)
        self.env = env
        wait_for(self.ready, 30, "PostgreSQL to accept connections")

    def ready(self):
        r = subprocess.run([PGBIN + "/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                           capture_output=True)
        return r.returncode == 0

    def conninfo(self, unix=False):
        host = self.dir if unix else "127.0.0.1"
        return "host=%s port=%d user=postgres dbname=postgres" % (host, self.port)

    def stop(self):
        pidfile = os.path.join(self.dir, "data", "postmaster.pid")
        try:
            with open(pidfile) as f:
                os.kill(int(f.readline()), signal.SIGINT)  # fast shutdown
        except (OSError, ValueError):
            pass

    def server_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def run(env, argv, preload, extra=None):
    e = env.app_env(extra) if preload else {k: v for k, v in os.environ.items()
                                            if k != "LD_PRELOAD"}
    r = subprocess.run(argv, env=e, capture_output=True, timeout=120)
    return r


# Shared with the other test files (test_exporter.py).
require_third_party = tx.require_third_party


def setup(env, extra=None):
    rx = Receiver()
    env.start_exporter(rx.url(), dict({"OTEL_METRICS_EXPORTER": "none"}, **(extra or {})))
    return rx, Postgres(env)


def db_spans(rx, service):
    return [s for r, s in spans_of(rx.accepted("/v1/traces"))
            if r["service.name"] == service and attrs(s).get("db.system.name") == "postgresql"
            or (r["service.name"] == service and one(s, "name") == b"handle-job")]


@tx.with_env
def test_c_program_sync_async_prepared_and_error(env):
    rx, pg = setup(env)
    try:
        plain = run(env, [PGCLIENT, pg.conninfo()], False)
        check(plain.returncode == 0, "without shim: %s" % plain.stderr)
        traced = run(env, [PGCLIENT, pg.conninfo()], True, {"OTEL_SERVICE_NAME": "pgc"})
        check(traced.returncode == 0, "with shim: %s" % traced.stderr)
        check(traced.stdout == plain.stdout, "results differ with the shim")
        check(b"\nfour\nfive\nsync PGRES_PIPELINE_SYNC\n" in traced.stdout,
              "COPY and pipeline mode work: %r" % traced.stdout[-80:])
        wait_for(lambda: len(db_spans(rx, "pgc")) >= 11, 15, "the spans")
        time.sleep(0.5)
        spans = db_spans(rx, "pgc")
        job = [s for s in spans if one(s, "name") == b"handle-job"][0]
        db = [s for s in spans if s is not job]
        names = sorted(one(s, "name").decode() for s in db)
        check(names == sorted(["CONNECT", "CREATE", "INSERT items", "SELECT items", "PREPARE",
                               "SELECT items", "SELECT items", "SELEC", "COPY",
                               "SELECT items"]),
              "span names %r (pipelined queries are not traced)" % names)
        for s in db:
            a = attrs(s)
            check(one(s, "kind") == "SPAN_KIND_CLIENT", "kind")
            check(hexid(s, "parent_span_id") == hexid(job, "span_id"), "parent is the API span")
            check(hexid(s, "trace_id") == hexid(job, "trace_id"), "one trace")
            check(a["db.namespace"] == "postgres" and a["server.address"] == "127.0.0.1" and
                  a["server.port"] == pg.port, "connection attributes %r" % a)
        by_text = {attrs(s).get("db.query.text"): s for s in db}
        sel = attrs(by_text["SELECT name FROM items WHERE id = $1"])
        check(sel["db.operation.name"] == "SELECT" and sel["db.collection.name"] == "items" and
              sel["db.response.returned_rows"] == 1, "parameterised select %r" % sel)
        check("INSERT INTO items VALUES (?, ?), (?, ?), (?, ?);" in by_text,
              "literals scrubbed: %r" % list(by_text))
        prepared = [s for s in db if attrs(s).get("db.query.text") ==
                    "SELECT id FROM items WHERE name = $1"]
        check(len(prepared) == 2, "PREPARE and EXECUTE both carry the statement's text")
        err = by_text["SELEC ?"]
        a = attrs(err)
        check(a["db.response.status_code"] == "42601" and a["error.type"] == "42601",
              "syntax error %r" % a)
        check(one(one(err, "status"), "code") == "STATUS_CODE_ERROR", "error status")
        multi = attrs(by_text["SELECT count(*) FROM items; SELECT ?"])
        check(multi["db.response.returned_rows"] == 1, "async result rows")
    finally:
        rx.stop()
        pg.stop()


@tx.with_env
def test_sqlcommenter_reaches_the_server_log(env):
    rx, pg = setup(env)
    try:
        r = run(env, [PGCLIENT, pg.conninfo(unix=True)], True,
                {"OTEL_SERVICE_NAME": "pgsc", "DYNOBS_SQLCOMMENTER": "1"})
        check(r.returncode == 0, "pgclient: %s" % r.stderr)
        wait_for(lambda: len(db_spans(rx, "pgsc")) >= 11, 15, "the spans")
        log = pg.server_log()
        # "statement: ..." for simple queries, "execute <unnamed>: ..." for
        # PQexecParams (extended protocol).
        comments = re.findall(r"(?:statement|execute [^:]*): (.*?) "
                              r"/\*traceparent='00-([0-9a-f]{32})-([0-9a-f]{16})-0\d'\*/", log)
        check(len(comments) >= 4, "sqlcommenter comments in the server log: %d" % len(comments))
        spans = {hexid(s, "span_id"): s for s in db_spans(rx, "pgsc")}
        for stmt, trace, span in comments:
            s = spans.get(span)
            check(s is not None, "no span %s for %r" % (span, stmt))
            check(hexid(s, "trace_id") == trace, "trace id")
        check("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three') /*traceparent=" in log,
              "the comment goes before the trailing semicolon")
        check(re.search(r"statement: SELECT count\(\*\) FROM items; SELECT 'done' /\*traceparent=",
                        log), "several statements in one string still run, commented once")
        unix = attrs(list(spans.values())[0])
        check(unix["server.address"] == pg.dir, "unix socket path as server.address %r" % unix)
    finally:
        rx.stop()
        pg.stop()


@tx.with_env
def test_psql(env):
    require_third_party("psql")
    rx, pg = setup(env)
    try:
        argv = ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-At", "-c",
                "select 1 as a, 'x' as b; select count(*) > 0 from pg_class;"]
        plain = run(env, argv, False)
        traced = run(env, argv, True, {"OTEL_SERVICE_NAME": "psql"})
        check(plain.returncode == 0 and traced.stdout == plain.stdout,
              "psql output differs: %r vs %r" % (traced.stdout, plain.stdout))
        bad = run(env, ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-c",
                        "selec 1"], True, {"OTEL_SERVICE_NAME": "psql"})
        check(bad.returncode != 0, "the syntax error fails")
        wait_for(lambda: any(attrs(s).get("db.response.status_code") == "42601"
                             for s in db_spans(rx, "psql")), 15, "the error span")
        ok = [s for s in db_spans(rx, "psql") if attrs(s).get("db.operation.name") == "SELECT"]
        check(ok and attrs(ok[0])["db.query.text"] ==
              "select ? as a, ? as b; select count(*) > ? from pg_class;", "psql statement")
    finally:
        rx.stop()
        pg.stop()


@tx.with_env
def test_psycopg2(env):
    tx.require_system_python3()
    r = subprocess.run(["/usr/bin/python3", "-c", "import psycopg2"], capture_output=True)
    if r.returncode != 0:
        raise tx.Skipped("python3-psycopg2 is not installed")
    rx, pg = setup(env)
    try:
        code = ("import psycopg2, sys\n"
                "c = psycopg2.connect(sys.argv[1])\n"
                "cur = c.cursor()\n"
                "cur.execute('select relname from pg_class where relname = %s', ('pg_type',))\n"
                "print(cur.fetchall())\n"
                "try:\n"
                "    cur.execute('selec 1')\n"
                "except psycopg2.Error as e:\n"
                "    print(e.pgcode)\n")
        argv = ["/usr/bin/python3", "-c", code, pg.conninfo()]
        plain = run(env, argv, False)
        traced = run(env, argv, True, {"OTEL_SERVICE_NAME": "py"})
        check(plain.returncode == 0 and traced.stdout == plain.stdout == b"[('pg_type',)]\n42601\n",
              "psycopg2 output %r vs %r" % (traced.stdout, plain.stdout))
        wait_for(lambda: len(db_spans(rx, "py")) >= 3, 15, "the spans")
        spans = db_spans(rx, "py")
        texts = [attrs(s).get("db.query.text") for s in spans]
        check("select relname from pg_class where relname = ?" in texts, "query %r" % texts)
        err = [s for s in spans if attrs(s).get("error.type") == "42601"]
        check(len(err) == 1, "the error span")
    finally:
        rx.stop()
        pg.stop()


@tx.with_env
def test_operation_metric(env):
    rx, pg = setup(env)
    try:
        r = run(env, [PGCLIENT, pg.conninfo()], True, {"OTEL_SERVICE_NAME": "pgm",
                                                       "OTEL_TRACES_SAMPLER": "always_off"})
        check(r.returncode == 0, "pgclient")
        series = ('db_client_operation_duration_seconds_count{service_name="pgm",'
                  'db_namespace="postgres",db_operation_name="SELECT",'
                  'db_system_name="postgresql",server_address="127.0.0.1"}')
        wait_for(lambda: env.metric(series) == 4, 10, "four SELECTs counted, unsampled")
        err = ('db_client_operation_duration_seconds_count{service_name="pgm",'
               'db_namespace="postgres",db_operation_name="SELEC",'
               'db_response_status_code="42601",db_system_name="postgresql",'
               'error_type="42601",server_address="127.0.0.1"}')
        check(env.metric(err) == 1, "the error counted with its SQLSTATE")
    finally:
        rx.stop()
        pg.stop()


def main():
    if not os.path.exists(PGBIN + "/postgres") or not os.path.exists(PGCLIENT):
        return tx.skip_file("PostgreSQL 15 or the libpq client is missing "
                            "(Debian: postgresql-15 libpq-dev)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
