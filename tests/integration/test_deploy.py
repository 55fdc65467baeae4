"""What deploy/ ships for operators, checked against real tools: the
Prometheus recording and alerting rules (promtool check rules, promtool
test rules, and a real Prometheus evaluating them over a traced service's
metrics), the Grafana dashboard (its queries parse, name only metrics
dynobs exports, its JSON has what Grafana provisioning needs) and the
OpenTelemetry Collector configuration (receives OTLP/HTTP on the port the
exporter sends to, every pipeline wired).

usage: test_deploy.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as ths  # noqa: E402

BUILD, SOURCE = tx.BUILD, tx.SOURCE
DEPLOY = os.path.join(SOURCE, "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "dynobs-rules.yml")
RULES_TEST = os.path.join(DEPLOY, "prometheus", "dynobs-rules.test.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "dynobs-red.json")
check, wait_for = tx.check, tx.wait_for

# What dynobs exports to Prometheus (README.md): the semantic conventions'
# duration histograms and the exporter's own series.
KNOWN = re.compile(r"^(http_server_request_duration_seconds|http_client_request_duration_seconds|"
                   r"db_client_operation_duration_seconds|rpc_(server|client)_duration_milliseconds)"
                   r"_(bucket|count|sum)$|^dynobs_exporter_[a-z_]+$|^up$")


def promtool(*args, cwd=None):
    r = subprocess.run(["promtool"] + list(args), capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def dashboard_exprs():
    with open(DASHBOARD) as f:
        d = json.load(f)
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append(t["expr"])
    return d, out


def grafana_to_promql(expr):
    """Grafana's variables replaced as Grafana would before querying."""
    return (expr.replace("$__rate_interval", "5m").replace('"$service"', '".*"')
            .replace('"$route"', '".*"'))


def metric_names(expr):
    names = set()
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|\[)", expr):
        names.add(m.group(1))
    for fn in ("rate", "sum", "histogram_quantile", "by", "increase"):
        names.discard(fn)
    return names


def test_rules_check_and_unit_tests():
    rc, out = promtool("check", "rules", RULES)
    check(rc == 0 and "SUCCESS" in out, "promtool check rules: %s" % out)
    rc, out = promtool("test", "rules", os.path.basename(RULES_TEST),
                       cwd=os.path.dirname(RULES_TEST))
    check(rc == 0 and "SUCCESS" in out, "promtool test rules: %s" % out)


@tx.with_env
def test_dashboard_queries_parse_and_name_real_metrics(env):
    d, exprs = dashboard_exprs()
    check(d.get("uid") and d.get("title") and exprs, "a dashboard with queries")
    check(all(p.get("datasource") for p in d["panels"] if p["type"] != "row"),
          "every panel names its data source")
    names = {v["name"] for v in d["templating"]["list"]}
    check({"service", "route"} <= names, "service and route variables: %r" % names)
    # Each query as a recording rule: promtool parses every one of them.
    path = os.path.join(env.dir, "dash-rules.yml")
    with open(path, "w") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, e in enumerate(exprs):
            f.write("      - record: dashboard:q%d\n        expr: %s\n"
                    % (i, json.dumps(grafana_to_promql(e))))
    rc, out = promtool("check", "rules", path)
    check(rc == 0, "the dashboard's queries parse: %s" % out)
    unknown = set()
    for e in exprs:
        unknown |= {n for n in metric_names(e) if not KNOWN.match(n)}
    check(not unknown, "the dashboard names metrics dynobs does not export: %r" % unknown)
    with open(RULES) as f:
        text = f.read()
    # the queries, not the annotations' templates
    text = "\n".join(l for l in text.splitlines() if "{{" not in l and "description:" not in l)
    used = {n for n in metric_names(text) if ":" not in n}
    check(len(used) >= 6 and all(KNOWN.match(n) for n in used),
          "the rules name metrics dynobs exports: %r" % used)


def test_collector_config():
    path = os.path.join(DEPLOY, "otelcol", "config.yaml")
    # Debian's python3-yaml where it is; else the file's shape by lines.
    py = "/usr/bin/python3"
    r = subprocess.run([py, "-c", "import yaml, json, sys; "
                        "print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", path],
                       capture_output=True, text=True) if os.path.exists(py) else None
    if not r or r.returncode != 0:
        raise tx.Skipped("python3-yaml is not installed for %s" % py)
    cfg = json.loads(r.stdout)
    check(cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318"),
          "OTLP/HTTP on 4318, where dynobs-exporter sends")
    for sig in ("traces", "metrics", "logs"):
        p = cfg["service"]["pipelines"][sig]
        check(p["receivers"] == ["otlp"] and all(x in cfg["exporters"] for x in p["exporters"])
              and all(x in cfg["processors"] for x in p["processors"]),
              "the %s pipeline is wired" % sig)


@tx.with_env
def test_prometheus_evaluates_the_rules_on_a_traced_service(env):
    """A real Prometheus scrapes a real exporter with the shipped scrape
    configuration and rules, while a traced server answers 20% errors: the
    recorded error ratio is 0.2 and the error alert is pending."""
    if not shutil.which("prometheus"):
        raise tx.Skipped("prometheus is missing")
    env.start_exporter(None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    port = ths.start_sample_server(env, "thread", "deploy-shop")
    prom_dir = os.path.join(env.dir, "prom")
    os.makedirs(prom_dir)
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
        conf = f.read()
    conf = (conf.replace("127.0.0.1:9464", "127.0.0.1:%d" % env.prom_port)
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 30s", "evaluation_interval: 1s"))
    with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
        f.write(conf)
    with open(RULES) as f:
        rules = f.read().replace("interval: 30s", "interval: 1s")
    with open(os.path.join(prom_dir, "dynobs-rules.yml"), "w") as f:
        f.write(rules)
    pport = tx.free_port()
    prom = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
                             "--storage.tsdb.path=" + os.path.join(prom_dir, "data"),
                             "--web.listen-address=127.0.0.1:%d" % pport],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=prom_dir)
    env.procs.append(prom)

    def query(q):
        try:
            data = json.loads(tx.http_get("http://127.0.0.1:%d/api/v1/query?query=%s"
                                          % (pport, urllib.parse.quote(q)), 2))
            return data["data"]["result"]
        except (OSError, ValueError, KeyError):
            return None

    def get(path):
        return tx_get(port, path)
    # Both series exist before the traffic that is measured, so that their
    # increases line up sample for sample.
    get("/index.html")
    get("/fail")
    wait_for(lambda: len(query('http_server_request_duration_seconds_count'
                               '{service_name="deploy-shop"}') or []) == 2, 30,
             "Prometheus to scrape both series")
    wait_for(lambda: (query('count_over_time(http_server_request_duration_seconds_count'
                            '{service_name="deploy-shop",error_type="500"}[1m])') or
                      [{"value": [0, "0"]}])[0]["value"][1] not in ("0", "1"), 30,
             "two scrapes of the series")
    for i in range(10):
        get("/fail" if i % 5 == 0 else "/index.html")

    def ratio():
        r = query('service:http_server_errors:ratio_rate5m{service_name="deploy-shop"}')
        if not r:
            return None
        v = float(r[0]["value"][1])
        return v if abs(v - 0.2) < 0.02 else None
    wait_for(ratio, 60, "the recorded error ratio to reach 0.2 (2 failures in 10 requests)")
    wait_for(lambda: query('ALERTS{alertname="DynobsHighErrorRate",service_name="deploy-shop"}'),
             30, "DynobsHighErrorRate to be pending")


def tx_get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def main():
    if not shutil.which("promtool"):
        return tx.skip_file("promtool is missing (Debian: prometheus)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
