"""The request handler the tests' small HTTP servers start from: it answers
with a body and its Content-Length, and logs nothing (a test's output is
its checks). recorder.py imports it for the servers outside the shim; the
service scripts that run under the shim (python3 -c, no access to this
folder) get its source prepended by recorder.service()."""
import http.server


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
