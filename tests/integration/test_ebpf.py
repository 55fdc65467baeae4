"""The exporter's eBPF source (dynobs-exporter --ebpf, ebpf/) on processes
started WITHOUT the shim: psql and a libpq + libcurl service traced by
--pid and by --exe, Node.js (whose OpenSSL is linked into the node
executable) making HTTPS requests, and a Go net/http server and client
built here from Debian's golang-go. Spans go through the exporter to a
test OTLP receiver, decoded with protoc; metrics are read on /metrics.
Everything is skipped with its reason where BPF cannot run (not root, no
kernel BTF, an exporter built without eBPF).

usage: test_ebpf.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_libpq as tpq  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer  # noqa: E402

BUILD, SOURCE = tx.BUILD, tx.SOURCE
APP = os.path.join(BUILD, "tests", "dynobs-ebpf-app")
check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                 tx.spans_of)
TP_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP_PARENT = "00f067aa0ba902b7"


def bpf_unavailable():
    """Why eBPF cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root: eBPF needs root, or CAP_BPF and CAP_PERFMON"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    if not os.path.exists(os.path.join(BUILD, "ebpf", "proc.skel.h")):
        return ("dynobs-exporter was built without eBPF (DYNOBS_WITH_EBPF; Debian: clang bpftool "
                "libbpf-dev)")
    return None


def plain_env(extra=None):
    """A process's environment without the shim (nor the sanitizer's
    runtime: these programs are not built with it)."""
    e = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "DYNOBS_SHM_DIR")}
    e.update(extra or {})
    return e


def start_ebpf_exporter(env, rx, args):
    return env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"},
                              args=["--ebpf"] + args)


def wait_probes(env, pid, lib):
    """Until the exporter says the process's LIB has its uprobes."""
    pat = re.compile(r"pid %d: \d+ probes on \S*%s" % (pid, re.escape(lib)))
    wait_for(lambda: pat.search(env.log()), 20, "uprobes on %s in pid %d" % (lib, pid))


def wait_traced(env, pid):
    wait_for(lambda: ("tracing pid %d" % pid) in env.log(), 20, "pid %d to be traced" % pid)


def ebpf_spans(rx, service):
    return [(r, s) for r, s in spans_of(rx.accepted("/v1/traces"))
            if r.get("service.name") == service]


def make_backend(tls_dir=None):
    """A plain HTTP/1.1 backend outside the shim that records each request's
    path and headers (.entries) and answers 404 for /missing."""
    srv = RecordingServer(lambda h: (h.path, dict((k.lower(), v) for k, v in h.headers.items())),
                          lambda h: b"backend says hi", tls_dir=tls_dir,
                          status=lambda h: 404 if h.path == "/missing" else 200)
    srv.seen = srv.entries
    return srv


def make_cert(d):
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"), "-days",
                        "2", "-subj", "/CN=localhost"], capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl req: %s" % r.stderr[-300:])


def get(port, path, headers=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


# ---- the tests ----

def test_pgresult_layout():
    """pq.bpf.c reads a result's status and row count at fixed offsets of
    libpq's struct pg_result: checked against the installed libpq."""
    name = ctypes.util.find_library("pq")
    if not name:
        raise tx.Skipped("libpq is not installed")
    pq = ctypes.CDLL(name)
    pq.PQmakeEmptyPGresult.restype = ctypes.c_void_p
    pq.PQmakeEmptyPGresult.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pq.PQresultStatus.argtypes = [ctypes.c_void_p]
    pq.PQntuples.argtypes = [ctypes.c_void_p]
    pq.PQclear.argtypes = [ctypes.c_void_p]
    for status in (1, 2, 7):  # COMMAND_OK, TUPLES_OK, FATAL_ERROR
        r = pq.PQmakeEmptyPGresult(None, status)
        at40 = ctypes.c_int.from_address(r + 40).value
        at0 = ctypes.c_int.from_address(r).value
        check(at40 == pq.PQresultStatus(r) == status, "resultStatus at 40: %d" % at40)
        check(at0 == pq.PQntuples(r), "ntups at 0: %d" % at0)
        pq.PQclear(r)


@tx.with_env
def test_psql_by_pid(env):
    """psql started without LD_PRELOAD, then traced by --pid: its
    statements become database spans (scrubbed text, operation, table,
    rows; the failing one an error), with dynobs.source=ebpf."""
    # The program itself, not Debian's /usr/bin/psql: that is a Perl
    # wrapper that execs it, and a pid traced before it runs another
    # program stops being traced (ebpf/proc.bpf.c, on_exec), as the
    # exporter would find it on a loaded machine.
    psql_bin = os.path.join(tpq.PGBIN, "psql")
    if not os.access(psql_bin, os.X_OK):
        raise tx.Skipped("%s is missing (Debian: postgresql-client-15)" % psql_bin)
    rx = Receiver()
    pg = tpq.Postgres(env)
    psql = subprocess.Popen([psql_bin, "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                             "-At"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=plain_env({"OTEL_SERVICE_NAME": "psql-e"}),
                            text=True)
    env.procs.append(psql)
    try:
        start_ebpf_exporter(env, rx, ["--pid", str(psql.pid)])
        wait_probes(env, psql.pid, "libpq.so")
        psql.stdin.write("select count(*) from pg_class where relname = 'pg_type';\n"
                         "selec 1;\n")
        psql.stdin.flush()

        def spans():
            return [s for r, s in ebpf_spans(rx, "psql-e")
                    if attrs(s).get("db.system.name") == "postgresql"]
        wait_for(lambda: len(spans()) >= 2, 20, "two database spans from psql")
        got = spans()
        ok = [s for s in got if attrs(s).get("db.operation.name") == "SELECT"]
        check(len(ok) == 1, "one SELECT span: %r" % [attrs(s) for s in got])
        a = attrs(ok[0])
        check(a["db.query.text"] == "select count(*) from pg_class where relname = ?;",
              "scrubbed statement: %r" % a)
        check(a["db.collection.name"] == "pg_class" and a["db.response.returned_rows"] == 1,
              "table and rows: %r" % a)
        check(one(ok[0], "name") == b"SELECT pg_class", "span name %r" % one(ok[0], "name"))
        bad = [s for s in got if attrs(s).get("db.operation.name") == "SELEC"]
        check(len(bad) == 1 and attrs(bad[0]).get("error.type") == "_OTHER" and
              "STATUS_CODE_ERROR" in str(bad[0].get("status")), "the failing statement: %r" % got)
        res = [r for r, s in ebpf_spans(rx, "psql-e")][0]
        check(res.get("dynobs.source") == "ebpf", "resource says eBPF: %r" % res)
        check(len(got) == 2, "no statement twice: %d spans" % len(got))
    finally:
        psql.stdin.close()
        psql.wait(10)
        rx.stop()
        pg.stop()


def check_app_trace(rx, backend, service, count):
    """count requests served by the eBPF test service: each a server span
    continuing the caller, with a database span and an HTTP client span
    as its children; nothing injected into the backend's requests."""
    def spans():
        return ebpf_spans(rx, service)
    wait_for(lambda: len([s for r, s in spans() if one(s, "kind") == "SPAN_KIND_SERVER"]) >= count
             and len(spans()) >= 3 * count, 20, "%d traced requests of %s" % (count, service))
    got = spans()
    check(all(r.get("dynobs.source") == "ebpf" for r, s in got), "resource says eBPF")
    servers = [s for r, s in got if one(s, "kind") == "SPAN_KIND_SERVER"]
    check(len(servers) == count and len(got) == 3 * count,
          "%d server spans of %d spans, want %d and %d" % (len(servers), len(got), count,
                                                           3 * count))
    for srv in servers:
        a = attrs(srv)
        check(hexid(srv, "trace_id") == TP_TRACE and hexid(srv, "parent_span_id") == TP_PARENT,
              "the server span continues the caller's traceparent")
        check(a.get("http.request.method") == "GET" and a.get("url.path", "").startswith("/work/")
              and a.get("http.route") == "/work/{id}" and a.get("http.response.status_code") == 200,
              "server attributes: %r" % a)
        kids = [s for r, s in got if hexid(s, "parent_span_id") == hexid(srv, "span_id")]
        kinds = sorted(attrs(s).get("db.system.name") or attrs(s).get("http.request.method")
                       for s in kids)
        check(kinds == ["GET", "postgresql"], "children of the request: %r" % kinds)
        cl = [s for s in kids if attrs(s).get("http.request.method")][0]
        check(attrs(cl).get("url.full") == "http://127.0.0.1:%d/backend" % backend.port and
              attrs(cl).get("http.response.status_code") == 200, "client span %r" % attrs(cl))
    check(len(backend.seen) == count and all("traceparent" not in h for p, h in backend.seen),
          "the backend got %d requests, none with a traceparent (no injection through eBPF)"
          % len(backend.seen))


def run_app(env, pg, backend, count, preload=False, service="ebpf-app"):
    port = tx.free_port()
    extra = {"OTEL_SERVICE_NAME": service}
    e = env.app_env(extra) if preload else plain_env(extra)
    p = subprocess.Popen([APP, str(port), pg.conninfo(), "http://127.0.0.1:%d/backend" % backend.port,
                          str(count)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e,
                         text=True)
    env.procs.append(p)
    check(p.stdout.readline().strip() == "listening", "the service listens")
    return p, port


def drive_app(port, count):
    for i in range(count):
        st = get(port, "/work/%d" % (i + 1),
                 {"traceparent": "00-%s-%s-01" % (TP_TRACE, TP_PARENT)})
        check(st == 200, "status %d" % st)


@tx.with_env
def test_libpq_curl_service_by_pid(env):
    """A service started before the exporter, traced by --pid."""
    rx, backend, pg = Receiver(), make_backend(), tpq.Postgres(env)
    try:
        p, port = run_app(env, pg, backend, 3)
        start_ebpf_exporter(env, rx, ["--pid", str(p.pid)])
        wait_probes(env, p.pid, "libpq.so")
        drive_app(port, 3)
        check_app_trace(rx, backend, "ebpf-app", 3)
        wait_for(lambda: env.metric('http_server_request_duration_seconds_count{'
                                    'service_name="ebpf-app",http_request_method="GET",'
                                    'http_response_status_code="200",http_route="/work/{id}",'
                                    'url_scheme="http"}') == 3, 10, "the server duration metric")
    finally:
        rx.stop()
        backend.stop()
        pg.stop()


@tx.with_env
def test_libpq_curl_service_by_exe(env):
    """A service started after the exporter, traced by --exe; then the same
    executable under LD_PRELOAD is left to the shim (never traced twice)."""
    rx, backend, pg = Receiver(), make_backend(), tpq.Postgres(env)
    try:
        start_ebpf_exporter(env, rx, ["--exe", APP])
        p, port = run_app(env, pg, backend, 2)
        # its libraries get their probes at its first event (here its
        # connection to PostgreSQL) or 200 ms after it started
        wait_probes(env, p.pid, "libpq.so")
        drive_app(port, 2)
        check_app_trace(rx, backend, "ebpf-app", 2)
        backend.seen.clear()
        if os.environ.get("DYNOBS_TEST_PRELOAD_FIRST"):
            tx.skip_part("the preloaded copy", "the service is not built with AddressSanitizer")
            return
        q, port = run_app(env, pg, backend, 2, preload=True, service="ebpf-app-shim")
        drive_app(port, 2)
        wait_for(lambda: "pid %d has libdynobs.so" % q.pid in env.log(), 20,
                 "the preloaded process to be left to the shim")
        q.wait(20)

        def shim_spans():
            return ebpf_spans(rx, "ebpf-app-shim")
        wait_for(lambda: len([s for r, s in shim_spans()
                              if one(s, "kind") == "SPAN_KIND_SERVER"]) >= 2, 20,
                 "the shim's spans")
        time.sleep(1)
        got = shim_spans()
        check(all(r.get("dynobs.source") != "ebpf" for r, s in got),
              "no eBPF span of the preloaded process")
        check(len([s for r, s in got if one(s, "kind") == "SPAN_KIND_SERVER"]) == 2,
              "each request once: %d server spans" % len(got))
    finally:
        rx.stop()
        backend.stop()
        pg.stop()


def node_binary():
    node = shutil.which("node")
    return os.path.realpath(node) if node else None


NODE_CLIENT = r"""
const https = require('https');
const agent = new https.Agent({ keepAlive: true });
function get(path) {
  return new Promise((res, rej) => {
    https.get({ host: '127.0.0.1', port: process.argv[2], path, rejectUnauthorized: false,
                agent }, r => { r.resume(); r.on('end', () => res(r.statusCode)); })
      .on('error', rej);
  });
}
(async () => {
  await new Promise(r => process.stdin.once('data', r));
  for (const p of ['/users/1', '/users/2', '/missing']) console.log(p, await get(p));
  process.exit(0);
})();
"""


@tx.with_env
def test_node_https_by_exe(env):
    """Node.js links OpenSSL into its executable: the shim sees only
    ciphertext, eBPF's uprobes on node's own SSL_write/SSL_read see the
    requests. Client spans with method, URL and status; no injection."""
    node = node_binary()
    if not node:
        raise tx.Skipped("node is missing")
    make_cert(env.dir)
    rx, backend = Receiver(), make_backend(tls_dir=env.dir)
    try:
        start_ebpf_exporter(env, rx, ["--exe", node])
        script = os.path.join(env.dir, "client.js")
        with open(script, "w") as f:
            f.write(NODE_CLIENT)
        p = subprocess.Popen([node, script, str(backend.port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=plain_env({"OTEL_SERVICE_NAME": "node-e"}))
        env.procs.append(p)
        wait_traced(env, p.pid)
        wait_probes(env, p.pid, os.path.basename(node))
        out, _ = p.communicate("go\n", timeout=60)
        check(p.returncode == 0 and "/missing 404" in out, "node client: %r" % out)

        def spans():
            return [s for r, s in ebpf_spans(rx, "node-e") if one(s, "kind") == "SPAN_KIND_CLIENT"]
        wait_for(lambda: len(spans()) >= 3, 20, "three HTTPS client spans from node")
        got = sorted(spans(), key=lambda s: attrs(s)["url.full"])
        check(len(got) == 3, "three spans: %r" % [attrs(s) for s in got])
        want = [("/missing", 404), ("/users/1", 200), ("/users/2", 200)]
        for s, (path, code) in zip(got, want):
            a = attrs(s)
            check(a["http.request.method"] == "GET" and
                  a["url.full"] == "https://127.0.0.1:%d%s" % (backend.port, path) and
                  a["http.response.status_code"] == code, "span %r" % a)
        check(all("traceparent" not in h for p_, h in backend.seen), "nothing injected")
    finally:
        rx.stop()
        backend.stop()


GO_PROGRAM = r"""
package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	switch os.Args[1] {
	case "serve":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fail" {
				w.WriteHeader(500)
			}
			fmt.Fprintf(w, "hello %s\n", r.URL.Path)
		})
		http.ListenAndServe("127.0.0.1:"+os.Args[2], nil)
	case "get":
		bufio.NewReader(os.Stdin).ReadString('\n')
		for _, u := range os.Args[2:] {
			resp, err := http.Get(u)
			if err != nil {
				fmt.Println(u, err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Println(u, resp.StatusCode)
		}
	}
}
"""


@tx.with_env
def test_go_server_and_client_by_exe(env):
    """A statically linked Go program (net/http, no libc, no OpenSSL):
    spans from the socket system calls. One server started before the
    exporter, the client after it."""
    go = shutil.which("go")
    if not go:
        raise tx.Skipped("go is missing (Debian: golang-go)")
    src = os.path.join(env.dir, "gohttp")
    os.makedirs(src)
    with open(os.path.join(src, "main.go"), "w") as f:
        f.write(GO_PROGRAM)
    with open(os.path.join(src, "go.mod"), "w") as f:
        f.write("module dynobsebpf\n\ngo 1.19\n")
    genv = plain_env({"HOME": env.dir, "GOCACHE": os.path.join(env.dir, "gocache"),
                      "GOPATH": os.path.join(env.dir, "gopath"), "CGO_ENABLED": "0",
                      "GOFLAGS": "-mod=mod", "GOPROXY": "off"})
    binary = os.path.join(env.dir, "gohttp-bin")
    r = subprocess.run([go, "build", "-o", binary, "."], cwd=src, env=genv, capture_output=True,
                       text=True, timeout=300)
    check(r.returncode == 0, "go build: %s" % r.stderr[-500:])
    rx = Receiver()
    try:
        port = tx.free_port()
        srv = subprocess.Popen([binary, "serve", str(port)], env=plain_env(
            {"OTEL_SERVICE_NAME": "go-server"}), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        env.procs.append(srv)
        wait_for(lambda: tpq_ready(port), 10, "the Go server")
        start_ebpf_exporter(env, rx, ["--exe", binary])
        wait_traced(env, srv.pid)
        urls = ["http://127.0.0.1:%d/hello/%d" % (port, i) for i in (1, 2)]
        urls.append("http://127.0.0.1:%d/fail" % port)
        cl = subprocess.Popen([binary, "get"] + urls, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=plain_env({"OTEL_SERVICE_NAME": "go-client"}))
        env.procs.append(cl)
        wait_traced(env, cl.pid)
        out, _ = cl.communicate("go\n", timeout=60)
        check(cl.returncode == 0 and "/fail 500" in out, "go client: %r" % out)

        def kind(service, k):
            return [s for r, s in ebpf_spans(rx, service) if one(s, "kind") == k]
        wait_for(lambda: len(kind("go-server", "SPAN_KIND_SERVER")) >= 3 and
                 len(kind("go-client", "SPAN_KIND_CLIENT")) >= 3, 20, "Go's spans")
        servers = kind("go-server", "SPAN_KIND_SERVER")
        clients = kind("go-client", "SPAN_KIND_CLIENT")
        check(len(servers) == 3 and len(clients) == 3, "3 and 3: %d, %d" % (len(servers),
                                                                            len(clients)))
        routes = sorted((attrs(s)["http.route"], attrs(s)["http.response.status_code"])
                        for s in servers)
        check(routes == [("/fail", 500), ("/hello/{id}", 200), ("/hello/{id}", 200)],
              "server routes %r" % routes)
        fail = [s for s in servers if attrs(s)["http.route"] == "/fail"][0]
        check(attrs(fail).get("error.type") == "500" and
              "STATUS_CODE_ERROR" in str(fail.get("status")), "the 500 is an error")
        check(all(attrs(s).get("user_agent.original", "").startswith("Go-http-client") and
                  attrs(s).get("client.address") == "127.0.0.1" for s in servers),
              "server attributes %r" % [attrs(s) for s in servers])
        check(sorted(attrs(s)["url.full"] for s in clients) == sorted(urls),
              "client URLs %r" % [attrs(s) for s in clients])
        check(all(one(s, "parent_span_id") in (None, b"") for s in clients),
              "Go's calls are not linked by thread (goroutines move)")
        check(env.metric('http_server_request_duration_seconds_count{service_name="go-server",'
                         'http_request_method="GET",http_response_status_code="200",'
                         'http_route="/hello/{id}",url_scheme="http"}') == 2,
              "the server duration metric")
    finally:
        rx.stop()


def tpq_ready(port):
    try:
        return get(port, "/ready") == 200
    except OSError:
        return False


@tx.with_env
def test_without_privileges_the_exporter_carries_on(env):
    """As an unprivileged user, --ebpf gives one clear error and the
    exporter goes on serving /metrics."""
    os.makedirs(env.shm)
    os.chmod(env.dir, 0o755)
    os.chmod(env.shm, 0o1777)
    nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True)
    if nobody.returncode != 0 or not shutil.which("setpriv"):
        raise tx.Skipped("no 'nobody' user or setpriv")
    uid = nobody.stdout.strip()
    port = tx.free_port()
    e = plain_env({"DYNOBS_SHM_DIR": env.shm, "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
                   "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    log = open(os.path.join(env.dir, "nobody.log"), "w")
    p = subprocess.Popen(["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups",
                          "--inh-caps=-all", "--bounding-set=-all", tx.EXPORTER, "--ebpf", "--pid",
                          str(os.getpid())], env=e, stdout=log, stderr=subprocess.STDOUT)
    env.procs.append(p)

    def metrics():
        try:
            return tx.http_get("http://127.0.0.1:%d/metrics" % port, 2)
        except OSError:
            return ""
    wait_for(lambda: "dynobs_exporter_ebpf_running 0" in metrics(), 20,
             "the unprivileged exporter's /metrics")
    with open(os.path.join(env.dir, "nobody.log")) as f:
        text = f.read()
    errors = [l for l in text.splitlines() if "ebpf:" in l and " error:" in l]
    check(len(errors) == 1 and "needs root, or CAP_BPF and CAP_PERFMON" in errors[0] and
          "carrying on without eBPF" in errors[0], "one clear error: %r" % errors)


def main():
    why = bpf_unavailable()
    if why:
        return tx.skip_file(why)
    if not os.path.exists(APP):
        return tx.skip_file("libpq or libcurl development files are missing "
                            "(Debian: libpq-dev libcurl4-openssl-dev)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
