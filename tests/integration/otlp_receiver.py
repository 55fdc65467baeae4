"""A small OTLP/HTTP receiver for tests: it records every request (path,
headers, body with gzip undone) and answers with a scripted sequence of
status codes, optionally after a delay. Standard library only, so it runs
under any python3 on the machine."""

import gzip
import http.server
import threading


class Receiver:
    def __init__(self, port=0, statuses=None, delay=0.0, retry_after=None):
        self.requests = []  # (path, headers, body, status answered)
        self.statuses = list(statuses or [])  # consumed in order; then 200
        self.delay = delay
        self.retry_after = retry_after
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append((self.path, dict(self.headers), body, status))
                self.send_response(status)
                if status in (429, 503) and receiver.retry_after is not None:
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def accepted(self, path_suffix):
        """Bodies answered 2xx on paths ending with path_suffix."""
        with self.lock:
            return [b for (p, h, b, s) in self.requests if p.endswith(path_suffix) and s < 300]

    def all(self):
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
