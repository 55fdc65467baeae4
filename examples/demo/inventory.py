"""Demo service "inventory": GET /stock/NAME reads the quantity of NAME
from PostgreSQL (psycopg2, that is libpq: traced by the shim, with the
trace context carried into the database as a SQL comment).

No dynobs code at all: everything it reports comes from the shim.

usage: inventory.py PORT LIBPQ_CONNINFO
"""
import http.server
import json
import sys

import psycopg2

db = psycopg2.connect(sys.argv[2])
db.autocommit = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        item = self.path.rsplit("/", 1)[-1]
        with db.cursor() as cur:
            cur.execute("SELECT quantity FROM stock WHERE item = %s", (item,))
            row = cur.fetchone()
        body = json.dumps({"item": item, "quantity": row[0] if row else 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
