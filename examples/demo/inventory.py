"""Demo service "inventory": GET /stock/NAME reads the quantity of NAME
from PostgreSQL (psycopg2, that is libpq: traced by the shim, with the
trace context carried into the database as a SQL comment).

No dynobs code at all: everything it reports comes from the shim.

usage: inventory.py PORT LIBPQ_CONNINFO
"""
import sys

import psycopg2
from jsonservice import JSONHandler, serve

db = psycopg2.connect(sys.argv[2])
db.autocommit = True


class Handler(JSONHandler):
    def do_GET(self):
        item = self.path.rsplit("/", 1)[-1]
        with db.cursor() as cur:
            cur.execute("SELECT quantity FROM stock WHERE item = %s", (item,))
            row = cur.fetchone()
        self.send_json({"item": item, "quantity": row[0] if row else 0})


serve(Handler)
