"""The exporter's live view (/ui/) in a real browser: a traced server makes
a trace of three spans (its SERVER span, a libcurl CLIENT span to an
upstream and a span of the C API), and Debian's headless Chromium, driven
by ui_browser.py, finds it among the recent traces, opens its waterfall
and shows the server span's attributes on a click. Screenshots are kept in
BUILD_DIR/test-artifacts/ui/. The JSON behind the view and the assets'
independence from the network are checked too.

usage: test_ui.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as ths  # noqa: E402
from recorder import RecordingServer  # noqa: E402

BUILD = tx.BUILD
ART = os.path.join(BUILD, "test-artifacts", "ui")
check, wait_for = tx.check, tx.wait_for


def make_trace(env, name):
    up = RecordingServer(lambda h: h.path, lambda h: b"up")
    port = ths.start_sample_server(env, "thread", name, up.url() + "/upstream")
    st = tx_get(port, "/items/42")
    check(st == 200, "the traced server answered %d" % st)
    return up


def tx_get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


@tx.with_env
def test_traces_json_and_assets(env):
    env.start_exporter(None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    up = make_trace(env, "ui-json")
    try:
        base = "http://127.0.0.1:%d" % env.prom_port

        def trace():
            data = json.loads(tx.http_get(base + "/ui/api/traces"))
            for t in data["recent"]:
                if any(s["service"] == "ui-json" and s["kind"] == "server" for s in t["spans"]):
                    return t
            return None
        t = wait_for(trace, 20, "the trace in /ui/api/traces")
        check(len(t["spans"]) == 3, "three spans: %r" % [s["name"] for s in t["spans"]])
        srv = [s for s in t["spans"] if s["kind"] == "server"][0]
        check(srv["attributes"].get("http.request.method") == "GET" and
              srv["attributes"].get("url.path") == "/items/42", "server attributes %r"
              % srv["attributes"])
        ids = {s["span_id"] for s in t["spans"]}
        check(sum(1 for s in t["spans"] if s["parent_id"] not in ids) == 1,
              "one root, the others linked to it")
        check(0 <= srv["start_ms"] <= t["duration_ms"] and srv["duration_ms"] <= t["duration_ms"],
              "span times within the trace")
        page = tx.http_get(base + "/ui/")
        check("<script src=\"/ui/app.js\"></script>" in page, "the page")
        assets = page + tx.http_get(base + "/ui/app.js") + tx.http_get(base + "/ui/style.css")
        external = re.findall(r"(?:src|href)=[\"']?(https?:)?//", assets)
        check(not external and "cdn" not in assets.lower(), "nothing loaded from elsewhere")
    finally:
        up.stop()


@tx.with_env
def test_live_view_in_headless_chromium(env):
    for p in ("/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/python3"):
        if not os.path.exists(p):
            raise tx.Skipped("%s is missing (Debian: chromium chromium-driver python3-selenium)" % p)
    r = subprocess.run(["/usr/bin/python3", "-c", "import selenium"], capture_output=True)
    if r.returncode != 0:
        raise tx.Skipped("python3-selenium is not installed")
    env.start_exporter(None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    up = make_trace(env, "ui-shop")
    try:
        shutil.rmtree(ART, ignore_errors=True)
        r = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__),
                                                             "ui_browser.py"),
                            "http://127.0.0.1:%d/ui/" % env.prom_port, "ui-shop", ART],
                           capture_output=True, text=True, timeout=180,
                           env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        check(r.returncode == 0 and r.stdout.startswith("ok "),
              "the browser: %s%s" % (r.stdout, r.stderr[-1500:]))
        print(r.stdout.strip())
        for png in ("1-traces.png", "2-waterfall.png", "3-span.png"):
            check(os.path.getsize(os.path.join(ART, png)) > 1000, "screenshot %s" % png)
    finally:
        up.stop()


def main():
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
