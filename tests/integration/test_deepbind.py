"""Libraries loaded with RTLD_DEEPBIND still reach the shim
(preload/dlopen.c): a small C library loaded so by a test program, and
PHP's curl extension (PHP loads its extensions with RTLD_DEEPBIND) doing
curl_exec over http and https. A recording HTTP server counts the
traceparent lines of every request; the exporter ships the CLIENT spans
to a test OTLP receiver, and both must agree.

usage: test_deepbind.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402  (shared helpers; argv parsed there)
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer, traceparents  # noqa: E402

BUILD = tx.BUILD
PROG = os.path.join(BUILD, "tests", "dynobs-deepbind")
PEER = os.path.join(BUILD, "tests", "libdynobs-deepbind-peer.so")
check, wait_for, one, attrs, hexid, spans_of = (tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid,
                                                tx.spans_of)

PHP_SCRIPT = r"""<?php
foreach (array_slice($argv, 1) as $url) {
    $c = curl_init($url);
    curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
    curl_setopt($c, CURLOPT_CAINFO, getenv("TEST_CA"));
    $body = curl_exec($c);
    if ($body === false) {
        fwrite(STDERR, curl_error($c) . "\n");
        exit(1);
    }
    echo curl_getinfo($c, CURLINFO_RESPONSE_CODE), " ", $body, "\n";
    curl_close($c);
}
"""


class Recorder(RecordingServer):
    """An HTTP server on a free loopback port (optionally over TLS) that
    records, per request, its path and the traceparent values it got."""

    def __init__(self, tls_dir=None):
        super().__init__(lambda h: (h.path, traceparents(h)), lambda h: b"hello " + h.path.encode(),
                         http11=False, tls_dir=tls_dir)
        self.requests = self.entries


def make_cert(d):
    cert = os.path.join(d, "cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", os.path.join(d, "key.pem"), "-out", cert],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl req: %s" % r.stderr)
    return cert


def run(env, argv, preload, extra=None):
    e = env.app_env(extra) if preload else dict(os.environ)
    if not preload:
        e.pop("LD_PRELOAD", None)
        e.update(extra or {})
    r = subprocess.run(argv, env=e, capture_output=True, timeout=60, text=True)
    check(r.returncode == 0, "%s exited %d: %s" % (argv[0], r.returncode, r.stderr[-800:]))
    return r.stdout


def check_spans(rx, name, requests, want):
    """One CLIENT span of service name per request, each named by the one
    traceparent the server received; want: [(scheme, port, path)]."""
    wait_for(lambda: len([s for r, s in spans_of(rx.accepted("/v1/traces"))
                          if r["service.name"] == name]) >= len(want), 10,
             "%d client spans of %s" % (len(want), name))
    spans = [s for r, s in spans_of(rx.accepted("/v1/traces")) if r["service.name"] == name]
    check(len(spans) == len(want), "%s: %d spans for %d requests" % (name, len(spans), len(want)))
    by_id = {hexid(s, "span_id"): s for s in spans}
    for (path, tps), (scheme, port, want_path) in zip(requests, want):
        check(path == want_path, "%s: request %r, expected %r" % (name, path, want_path))
        check(len(tps) == 1, "%s %s: traceparent lines %r" % (name, path, tps))
        parts = tps[0].split("-")
        check(len(parts) == 4 and parts[0] == "00", "traceparent form %r" % tps[0])
        s = by_id.get(parts[2])
        check(s is not None, "%s %s: no client span with id %s" % (name, path, parts[2]))
        check(hexid(s, "trace_id") == parts[1], "trace ids differ")
        check(one(s, "kind") == "SPAN_KIND_CLIENT", "kind %r" % one(s, "kind"))
        a = attrs(s)
        check(a.get("http.request.method") == "GET", "method %r" % a)
        if scheme:  # the libcurl layer knows the URL
            check(a.get("url.full") == "%s://127.0.0.1:%d%s" % (scheme, port, want_path),
                  "url.full %r" % a)
            check(a.get("http.response.status_code") == 200, "status %r" % a)


@tx.with_env
def test_deepbind_library_reaches_the_shim_and_keeps_its_own_symbols(env):
    rx = Receiver()
    srv = Recorder()
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        for mode in ("now", "lazy"):
            argv = [PROG, mode, PEER, str(srv.port)]
            # The same outcome with and without the shim: the library's own
            # write() and deepbind_whoami() win for its own references (the
            # program defines deepbind_whoami too, and the shim interposes
            # write), and a successful dlopen leaves no dlerror.
            want = "status=200 whoami=library own_writes=1 dlerror=clean\n"
            plain = run(env, argv, False)
            check(plain == want, "%s without the shim: %r" % (mode, plain))
            check(srv.requests[-1] == ("/" + mode, []), "a traceparent without the shim: %r"
                  % srv.requests[-1:])
            before = len(srv.requests)
            traced = run(env, argv, True, {"OTEL_SERVICE_NAME": "deepbind-" + mode})
            check(traced == want, "%s with the shim: %r" % (mode, traced))
            check_spans(rx, "deepbind-" + mode, srv.requests[before:], [(None, 0, "/" + mode)])
    finally:
        srv.stop()
        rx.stop()


@tx.with_env
def test_dlopen_by_soname_keeps_the_callers_runpath(env):
    # Only this program's RUNPATH finds the library: glibc must still see
    # the program as the caller of dlopen when the shim is in between.
    out = run(env, [PROG, "search", os.path.basename(PEER)], True)
    check(out == "search=ok\n", "dlopen by soname under the shim: %r" % out)


def php_curl_missing():
    php = shutil.which("php")
    if not php:
        return "php is missing (Debian: php-cli)"
    r = subprocess.run([php, "-r", 'exit(function_exists("curl_exec") ? 0 : 3);'],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        return "PHP's curl extension is missing (Debian: php-curl)"
    return None


@tx.with_env
def test_php_curl_exec_http_and_https(env):
    why = php_curl_missing()
    if why:
        raise tx.Skipped(why)
    cert = make_cert(env.dir)
    script = os.path.join(env.dir, "get.php")
    with open(script, "w") as f:
        f.write(PHP_SCRIPT)
    rx = Receiver()
    plain_srv, tls_srv = Recorder(), Recorder(env.dir)
    try:
        env.start_exporter(rx.url(), {"OTEL_METRICS_EXPORTER": "none"})
        argv = ["php", script, "http://127.0.0.1:%d/one" % plain_srv.port,
                "https://127.0.0.1:%d/two" % tls_srv.port,
                "http://127.0.0.1:%d/three" % plain_srv.port]
        extra = {"TEST_CA": cert}
        plain = run(env, argv, False, extra)
        check(plain == "200 hello /one\n200 hello /two\n200 hello /three\n", "php: %r" % plain)
        check(all(not tps for _, tps in plain_srv.requests + tls_srv.requests),
              "a traceparent without the shim")
        p0, t0 = len(plain_srv.requests), len(tls_srv.requests)
        extra["OTEL_SERVICE_NAME"] = "php"
        traced = run(env, argv, True, extra)
        check(traced == plain, "php's output differs with the shim: %r" % traced)
        got = plain_srv.requests[p0:] + tls_srv.requests[t0:]
        check_spans(rx, "php", got,
                    [("http", plain_srv.port, "/one"), ("http", plain_srv.port, "/three"),
                     ("https", tls_srv.port, "/two")])
    finally:
        plain_srv.stop()
        tls_srv.stop()
        rx.stop()


def main():
    if os.environ.get("DYNOBS_TEST_PRELOAD_FIRST"):
        return tx.skip_file("under AddressSanitizer: its runtime's own dlopen refuses "
                            "RTLD_DEEPBIND, and PHP drops the flag in sanitizer builds")
    if not shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    if not shutil.which("openssl"):
        return tx.skip_file("openssl is missing (Debian: openssl)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
