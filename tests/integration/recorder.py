"""One recording HTTP server for the integration tests: on a free loopback
port (optionally over TLS), outside the shim, it keeps one entry per GET
(what record(handler) returns) and answers 200 with body(handler).
test_event_loops.py's Backend, test_deepbind.py's and test_http_server.py's
Recorder are this server with their own record and body.

service(source) gives a service script for the shim: QuietHandler's
source, then source."""
import http.server
import os
import ssl
import threading

from quiet_handler import QuietHandler

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "quiet_handler.py")) as f:
    QUIET_HANDLER_SOURCE = f.read()


def service(source):
    """A Python service script whose handler may derive from QuietHandler."""
    return QUIET_HANDLER_SOURCE + source


def traceparents(handler):
    """Every traceparent line of the request, in order ([] if none)."""
    return handler.headers.get_all("traceparent") or []


class RecordingServer:
    """status(handler), when given, is the answer's status (200 else)."""

    def __init__(self, record, body, http11=True, tls_dir=None, status=None):
        self.entries = []
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1" if http11 else "HTTP/1.0"

            def do_GET(self):
                with server.lock:
                    server.entries.append(record(self))
                if status:
                    self.reply(body(self), status(self))
                else:
                    self.reply(body(self))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls_dir:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem"))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
