"""Tests of the asyncio bridge (dynobs/_asyncio.py) with plain asyncio, in
every CPython >= 3.9 found: a server made with asyncio.start_server (one
task per connection, kept alive, reading request after request) whose
handler calls a backend over asyncio.open_connection, at once, after
asyncio.sleep(0), from a task, from loop.call_soon, and with writelines.
Each request carries a traceparent of its own trace.

    DYNOBS_BUILD_DIR=build /usr/bin/python3 -m pytest python/tests
"""

import json

from test_dynobs import python, run  # noqa: F401  (the fixture: each interpreter, both paths)


PROGRAM = r"""
import asyncio, http.client, http.server, json, os, secrets, sys, threading
import dynobs
if os.environ.get("BRIDGE") == "1":
    dynobs.enable(logs=False)
    assert dynobs._bridge[0], "the bridge is not installed"

seen = {}  # backend: id -> the trace of the traceparent it got


class Back(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        ident = self.path.partition("id=")[2]
        tp = self.headers.get("traceparent")
        seen[ident] = tp.split("-")[1] if tp else None
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


back = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Back)
threading.Thread(target=back.serve_forever, daemon=True).start()
running = set()


async def call(ident, lines=False):
    r, w = await asyncio.open_connection("127.0.0.1", back.server_port)
    head = [b"GET /back?id=" + ident.encode() + b" HTTP/1.1\r\n",
            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"]
    if lines:
        w.writelines(head)
    else:
        w.write(b"".join(head))
    await r.read()
    w.close()


gates = {}


async def handle(ident):
    loop = asyncio.get_running_loop()
    mode = ident.split("-")[0]
    if mode == "now":
        await call(ident)
    elif mode == "sleep":
        await asyncio.sleep(0)
        await call(ident)
    elif mode == "task":
        await loop.create_task(call(ident))
    elif mode == "soon":
        fut = loop.create_future()

        def later():
            t = loop.create_task(call(ident))
            running.add(t)
            t.add_done_callback(lambda t: (running.discard(t), fut.set_result(None)))
        loop.call_soon(later)
        await fut
    elif mode == "lines":
        await call(ident, lines=True)
    elif mode == "first":
        # A task that outlives its request: it calls out while the next
        # request of the same kept-alive connection is being served.
        conn = ident.split("-")[1]
        gate = gates[conn] = (asyncio.Event(), asyncio.Event())

        async def background():
            await gate[0].wait()
            await call("bg-" + conn)
            gate[1].set()
        t = loop.create_task(background())
        running.add(t)
        await call(ident)
    elif mode == "second":
        gate = gates[ident.split("-")[1]]
        gate[0].set()
        await gate[1].wait()
        await call(ident)


async def serve(reader, writer):
    # One task per connection, as asyncio.start_server makes them (before
    # 3.12 asyncio keeps no reference to it: this set does).
    running.add(asyncio.current_task())
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            ident = head.split(b" ")[1].partition(b"id=")[2].decode()
            await handle(ident)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    writer.close()


callers = {}


def client(conn, idents):
    # One kept-alive connection, its requests one after another.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for ident in idents:
        trace = secrets.token_hex(16)
        callers[ident] = trace
        c.request("GET", "/hop?id=" + ident,
                  headers={"traceparent": "00-%s-%s-01" % (trace, secrets.token_hex(8))})
        r = c.getresponse()
        assert r.read() == b"ok"
    c.close()


async def main():
    global port
    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    plan = {str(n): ["%s-%d-%d" % (mode, n, k) for k, mode in enumerate(
        ["now", "sleep", "task", "soon", "lines", "first", "second"])] for n in range(4)}
    threads = [threading.Thread(target=client, args=(n, idents)) for n, idents in plan.items()]
    for t in threads:
        t.start()
    await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join() for t in threads])
    srv.close()
    await srv.wait_closed()

asyncio.run(main())
print(json.dumps({"seen": seen, "callers": callers}))
"""


def outcome(out):
    d = json.loads(out.strip().splitlines()[-1])
    by_trace = {t: i for i, t in d["callers"].items()}
    linked, wrong, own = [], [], []
    for ident, trace in d["seen"].items():
        # bg-N is made for request first-N-5, after its response.
        mine = ident if not ident.startswith("bg-") else "first-%s-5" % ident[3:]
        if trace == d["callers"].get(mine):
            linked.append(ident)
        elif trace in by_trace:
            wrong.append("%s in the trace of %s" % (ident, by_trace[trace]))
        else:
            own.append(ident)
    return d, sorted(linked), wrong, sorted(own)


def test_requests_of_kept_alive_connections_link_their_calls(python):
    out, _ = run(PROGRAM, python, env={"BRIDGE": "1"}, preload=True)
    d, linked, wrong, own = outcome(out)
    assert len(d["seen"]) == 4 * 8, d
    assert wrong == []
    # Every call made while its request is served is in that request's
    # trace. The one made after its request's response, while the next
    # request of its connection is served, is in neither: a trace of its
    # own. The bridge links a call only while the shim still serves its
    # request, which is what keeps a context inherited by mistake (see
    # tests/integration/test_asyncio.py, pipelined requests) from linking a call to
    # another request; the price is this late call.
    assert own == sorted("bg-%d" % n for n in range(4)), (own, linked)
    assert len(linked) == 4 * 7


def test_without_the_bridge_no_call_is_linked_and_none_wrongly(python):
    out, _ = run(PROGRAM, python, env={"BRIDGE": "0"}, preload=True)
    d, linked, wrong, own = outcome(out)
    assert len(d["seen"]) == 4 * 8, d
    assert wrong == [] and linked == []


def test_without_the_shim_the_bridge_stays_out(python):
    out, _ = run("""
        import asyncio, dynobs
        from asyncio import selector_events
        dynobs.enable(logs=False)
        print(dynobs._bridge[0],
              hasattr(selector_events._SelectorSocketTransport.write, "__dynobs__"))
    """, python)
    assert out.split() == ["False", "False"]


def test_spans_and_calls_in_a_coroutine_serving_a_request(python):
    # In a handler, dynobs.span() is a child of the request's server span
    # (the shim's), and a call made inside it is the span's child.
    out, rec = run(r"""
        import asyncio, http.server, threading, urllib.request, dynobs
        dynobs.enable(logs=False)

        class Back(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            def log_message(self, *a):
                pass

        back = http.server.HTTPServer(("127.0.0.1", 0), Back)
        threading.Thread(target=back.serve_forever, daemon=True).start()

        async def serve(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            print(dynobs.current_traceparent() is not None)
            with dynobs.span("work"):
                r, w = await asyncio.open_connection("127.0.0.1", back.server_port)
                w.write(b"GET /back HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await r.read()
                w.close()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        async def main():
            srv = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = srv.sockets[0].getsockname()[1]
            req = urllib.request.Request("http://127.0.0.1:%d/hop" % port, headers={
                "traceparent": "00-%s-%s-01" % ("ab" * 16, "cd" * 8)})
            body = await asyncio.get_running_loop().run_in_executor(
                None, lambda: urllib.request.urlopen(req, timeout=30).read())
            print(body.decode())
            srv.close()

        asyncio.run(main())
        back.shutdown()
    """, python, preload=True)
    assert out.split() == ["True", "ok"]
    # (The backend, in the same process, has a server span in the trace too.)
    server = [s for s in rec.spans if s["kind"] == "SERVER" and s["parent"] == "cd" * 8]
    assert len(server) == 1 and server[0]["trace"] == "ab" * 16, rec.text
    work = rec.span("work")
    assert work["trace"] == "ab" * 16 and work["parent"] == server[0]["span"], rec.text
    assert not work["remote"], rec.text
    client = [s for s in rec.spans if s["kind"] == "CLIENT" and s["parent"] == work["span"]]
    assert len(client) == 1 and client[0]["trace"] == "ab" * 16, rec.text
