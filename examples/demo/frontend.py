"""Demo service "frontend": GET /checkout?item=NAME asks the inventory
service for the stock of NAME and answers with a small JSON document.

It is an ordinary http.server program. Run under dynobs-run, the shim
traces its requests and its outgoing HTTP call with no code change; the
few dynobs calls below add a business span, a metric and a log record
to the same trace.

usage: frontend.py PORT INVENTORY_URL
"""
import json
import logging
import sys
import urllib.parse
import urllib.request

import dynobs
from jsonservice import JSONHandler, serve

dynobs.enable(logs=True)
log = logging.getLogger("frontend")
log.setLevel(logging.INFO)
orders = dynobs.counter("demo.orders", "{order}")


class Handler(JSONHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        item = urllib.parse.parse_qs(url.query).get("item", ["widget"])[0]
        with dynobs.span("checkout", attributes={"demo.item": item}) as span:
            with urllib.request.urlopen("%s/stock/%s" % (sys.argv[2], item)) as r:
                stock = json.loads(r.read())
            ok = stock["quantity"] > 0
            span.set_attribute("demo.in_stock", ok)
            orders.add(1, {"item": item, "result": "ok" if ok else "out_of_stock"})
            log.info("checkout of %s: %d in stock", item, stock["quantity"])
        self.send_json({"item": item, "ordered": ok}, 200 if ok else 409)


serve(Handler)
