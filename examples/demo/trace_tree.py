"""Prints the traces found in dynobs-exporter's console output as indented
trees with durations, and the log records of each trace under it.

usage: trace_tree.py CONSOLE_OUTPUT [--root-service NAME]
  --root-service: only the traces that start in that service
"""
import re
import sys

SPAN = re.compile(r'^span service=(\S+) name="(.*?)" kind=(\S+) trace_id=(\w+) span_id=(\w+) '
                  r'parent_id=(\S+) duration_ms=([\d.]+) status=(\w+)(.*)$')
LOG = re.compile(r'^log service=(\S+) severity=(\S*) trace_id=(\w*) span_id=(\w*) body="(.*)"$')
SHOWN = ("http.request.method", "url.path", "url.full", "http.response.status_code",
         "db.system", "db.query.text", "db.operation.name", "demo.item", "demo.in_stock")


def attributes(rest):
    out = []
    for m in re.finditer(r' ([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', rest):
        if m[1] in SHOWN:
            out.append("%s=%s" % (m[1], m[2]))
    return out


def main():
    spans, logs = {}, []
    with open(sys.argv[1], errors="replace") as f:
        for line in f:
            m = SPAN.match(line.rstrip("\n"))
            if m:
                spans[m[5]] = {"service": m[1], "name": m[2], "kind": m[3], "trace": m[4],
                               "id": m[5], "parent": m[6], "ms": float(m[7]), "status": m[8],
                               "attrs": attributes(m[9])}
                continue
            m = LOG.match(line.rstrip("\n"))
            if m:
                logs.append({"service": m[1], "severity": m[2], "trace": m[3], "span": m[4],
                             "body": m[5]})
    root_service = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--root-service" else None
    traces = sorted({s["trace"] for s in spans.values()
                     if not root_service or (s["service"] == root_service and
                                             s["parent"] not in spans)})
    for t in traces:
        members = [s for s in spans.values() if s["trace"] == t]
        print("trace %s (%d spans)" % (t, len(members)))
        kids = {}
        for s in members:
            kids.setdefault(s["parent"] if s["parent"] in spans else None, []).append(s)

        def show(s, depth):
            status = "" if s["status"].upper() == "UNSET" else "  [%s]" % s["status"]
            print("%s%-*s %9.3f ms  %s%s" % ("  " * depth, 44 - 2 * depth,
                                             "%s: %s %s" % (s["service"], s["kind"], s["name"]),
                                             s["ms"], " ".join(s["attrs"]), status))
            for lg in logs:
                if lg["span"] == s["id"]:
                    print("%s  log %s: %s" % ("  " * depth, lg["severity"], lg["body"]))
            for k in sorted(kids.get(s["id"], []), key=lambda x: -x["ms"]):
                show(k, depth + 1)
        for root in sorted(kids.get(None, []), key=lambda x: -x["ms"]):
            show(root, 1)
    return 0 if traces else 1


if __name__ == "__main__":
    sys.exit(main())
