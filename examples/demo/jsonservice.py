"""What the two demo services share: a handler that answers with a JSON
document, and the server loop on the port given as the first argument."""
import http.server
import json
import sys


class JSONHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, doc, status=200):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(handler):
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
