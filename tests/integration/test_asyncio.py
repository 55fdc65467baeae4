#!/usr/bin/env python3
"""asyncio servers under the shim, with the dynobs package's bridge
(python/dynobs/_asyncio.py): an aiohttp server whose handler calls the
backend with aiohttp's ClientSession (pooled, kept-alive connections),
and uvicorn running an ASGI app whose handler calls it over a connection
of its own (asyncio.open_connection). As in test_event_loops.py, with 3
sequential and 4 concurrent requests, each in its own trace, every
outbound call is in its own request's trace (7 of 7) and none in another's.

The bridge comes from dynobs-run (runtimes/python/sitecustomize.py), or
from dynobs.enable() in a process preloaded by hand. A stress test sends
60 concurrent requests whose handlers call out at once, after
asyncio.sleep(0), from a task, from loop.call_soon and from
loop.call_later: with the bridge all 60 are linked; the shim alone (no
bridge: the loop's thread multiplexes) links none; never a wrong one.
Pipelined requests (two in one write) never put a call in the other
request's trace, and dynobs-run's start-up hook keeps the system's
sitecustomize and imports nothing until asyncio is imported.

The services run with Debian's /usr/bin/python3, which has python3-aiohttp
and python3-uvicorn; each test is skipped, with a message, without them.

Usage: test_asyncio.py BUILD_DIR SOURCE_DIR [test names]"""
import os
import secrets
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_event_loops as ev  # noqa: E402

tx, hs, check = ev.tx, ev.hs, ev.check
PY = "/usr/bin/python3"

# GET /hop?id=N calls GET BACKEND/back?id=N, in one of five ways (mode:
# N % 5 when the service runs with "deferred", else at once).
COMMON = r'''
import asyncio, os, sys
port, back, deferred = int(sys.argv[1]), sys.argv[2], len(sys.argv) > 3
if os.environ.get("SVC_ENABLE"):
    import dynobs
    dynobs.enable(logs=False)
running = set()


async def deferred_call(go, i):
    loop = asyncio.get_running_loop()
    mode = i % 5 if deferred else 0
    if mode == 0:
        return await go(i)
    if mode == 1:
        await asyncio.sleep(0)
        return await go(i)
    if mode == 2:
        return await loop.create_task(go(i))
    fut = loop.create_future()

    def later():
        t = asyncio.ensure_future(go(i))
        running.add(t)  # asyncio keeps only weak references to tasks
        t.add_done_callback(running.discard)
        t.add_done_callback(lambda t: fut.set_exception(t.exception()) if t.exception()
                            else fut.set_result(t.result()))
    if mode == 3:
        loop.call_soon(later)
    else:
        loop.call_later(0.005, later)
    return await fut
'''

AIOHTTP = COMMON + r'''
import aiohttp
from aiohttp import web

session = None


async def go(i):
    async with session.get(back + "/back?id=%d" % i) as r:
        return await r.text()


async def hop(request):
    body = await deferred_call(go, int(request.query["id"]))
    return web.Response(text="aiohttp got: " + body)


async def start(app):
    global session
    session = aiohttp.ClientSession()


app = web.Application()
app.router.add_get("/hop", hop)
app.on_startup.append(start)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
'''

UVICORN = COMMON + r'''
import uvicorn
host, bport = back[len("http://"):].split(":")


async def go(i):
    reader, writer = await asyncio.open_connection(host, int(bport))
    writer.write(("GET /back?id=%d HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n"
                  % (i, host, bport)).encode())
    data = await reader.read()
    writer.close()
    return data.partition(b"\r\n\r\n")[2].decode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    q = dict(p.partition("=")[::2] for p in scope["query_string"].decode().split("&"))
    body = ("uvicorn got: " + await deferred_call(go, int(q["id"]))).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


uvicorn.run(app, host="127.0.0.1", port=port, loop="asyncio", http="h11",
            log_level="warning", access_log=False)
'''


def need(module, package):
    r = subprocess.run([PY, "-c", "import " + module], capture_output=True)
    if r.returncode != 0:
        raise tx.Skipped("%s cannot import %s (Debian: %s)" % (PY, module, package))


def service(env, name, text):
    return ev.script(env, name, text)


@tx.with_env
def test_aiohttp_server_and_client_session(env):
    need("aiohttp", "python3-aiohttp")
    port = tx.free_port()
    ev.run_service(env, "aiohttp-svc", [ev.RUN, "--no-exporter", "--", PY,
                                        service(env, "aio.py", AIOHTTP), "{port}", "{backend}"],
                   port)


@tx.with_env
def test_aiohttp_bridge_from_enable(env):
    # Preloaded by hand, without dynobs-run: dynobs.enable() installs it.
    need("aiohttp", "python3-aiohttp")
    port = tx.free_port()
    ev.run_service(env, "aiohttp-enable", [PY, service(env, "aio.py", AIOHTTP), "{port}",
                                           "{backend}"], port,
                   extra={"SVC_ENABLE": "1", "PYTHONPATH": os.path.join(tx.SOURCE, "python")})


@tx.with_env
def test_uvicorn_asgi_app(env):
    need("uvicorn", "python3-uvicorn")
    port = tx.free_port()
    ev.run_service(env, "uvicorn-svc", [ev.RUN, "--no-exporter", "--", PY,
                                        service(env, "uv.py", UVICORN), "{port}", "{backend}"],
                   port)


def stress(env, name, text, module, package):
    # 60 concurrent requests, each handler calling out in one of five
    # ways; with the bridge (dynobs-run) and with the shim alone.
    need(module, package)
    path = service(env, name + ".py", text)
    for bridge in (True, False):
        port = tx.free_port()
        backend = ev.Backend()
        try:
            argv = ([ev.RUN, "--no-exporter", "--"] if bridge else []) + [
                PY, path, str(port), backend.url(), "deferred"]
            e = env.app_env({"OTEL_SERVICE_NAME": name})
            p = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            env.procs.append(p)
            hs.wait_listening(port, p, name)
            callers = ev.callers_for(range(60))
            ev.burst(port, callers, callers)
            by_trace = {trace: i for i, (trace, _) in callers.items()}
            seen = ev.backend_calls(backend, 60)
            linked = wrong = 0
            per_mode = [0] * 5
            for ident, tps in seen:
                check(len(tps) <= 1, "request %s sent %d traceparents" % (ident, len(tps)))
                trace = tps[0].split("-")[1] if tps else None
                if trace == callers[int(ident)][0]:
                    linked += 1
                    per_mode[int(ident) % 5] += 1
                elif trace in by_trace:
                    wrong += 1
            print("%s, %s: %d of 60 linked (now, sleep(0), task, call_soon, call_later: %s), "
                  "%d wrong" % (name, "with the bridge" if bridge else "shim alone", linked,
                                "/".join(map(str, per_mode)), wrong))
            check(wrong == 0, "%d calls in another request's trace" % wrong)
            if bridge:
                check(linked == 60, "only %d of 60 calls in their request's trace" % linked)
            else:
                check(linked == 0, "the shim alone linked %d calls: is the bridge loaded?" % linked)
            p.kill()
            p.wait()
        finally:
            backend.stop()


@tx.with_env
def test_aiohttp_deferred_calls_never_in_a_wrong_trace(env):
    stress(env, "aiohttp-deferred", AIOHTTP, "aiohttp", "python3-aiohttp")


@tx.with_env
def test_uvicorn_deferred_calls_never_in_a_wrong_trace(env):
    stress(env, "uvicorn-deferred", UVICORN, "uvicorn", "python3-uvicorn")


HOOK_PROBE = r"""
import sys
print("dynobs" in sys.modules)
try:
    import sitecustomize
    print(sitecustomize.__file__)
except ImportError:
    print(None)
import asyncio
d = sys.modules.get("dynobs")
print(d is not None, d is not None and d._bridge[0])
"""


@tx.with_env
def test_dynobs_run_python_start_up_hook(env):
    # dynobs-run's sitecustomize imports nothing before asyncio is, keeps
    # the system's sitecustomize running (Debian has one), installs the
    # bridge when asyncio is imported, and imports nothing with the shim off.
    r = subprocess.run([PY, "-c", "import sitecustomize; print(sitecustomize.__file__)"],
                       capture_output=True, text=True, env=env.app_env({"LD_PRELOAD": ""}))
    system = r.stdout.strip() if r.returncode == 0 else None
    for extra, bridge in (({}, "True True"), ({"OTEL_SDK_DISABLED": "true"}, "False False")):
        r = subprocess.run([ev.RUN, "--no-exporter", "--", PY, "-c", HOOK_PROBE],
                           capture_output=True, text=True, env=env.app_env(extra), timeout=60)
        check(r.returncode == 0 and not r.stderr, "exit %d: %s" % (r.returncode, r.stderr))
        lines = r.stdout.split("\n")
        check(lines[0] == "False", "dynobs imported before asyncio: %r" % r.stdout)
        if system:
            check(lines[1] == system, "the system's sitecustomize %s did not run: %r" % (
                system, r.stdout))
        else:
            check(lines[1].endswith("runtimes/python/sitecustomize.py"), r.stdout)
        check(lines[2] == bridge, "%r: bridge installed? %r" % (extra, r.stdout))
    print("dynobs-run: bridge installed when asyncio is imported, not with the shim off; "
          "system sitecustomize: %s" % system)


def pipelined(port, callers, idents):
    """Sends the requests idents in one write on one connection (HTTP/1.1
    pipelining) and reads their responses."""
    with socket.create_connection(("127.0.0.1", port), 30) as s:
        s.sendall(b"".join(b"GET /hop?id=%d HTTP/1.1\r\nHost: x\r\ntraceparent: 00-%s-%s-01\r\n"
                           b"\r\n" % (i, callers[i][0].encode(), callers[i][1].encode())
                           for i in idents))
        f = s.makefile("rb")
        for i in idents:
            status = f.readline()
            check(status.startswith(b"HTTP/1.1 200"), "request %d: %r" % (i, status))
            length = 0
            while True:
                line = f.readline().strip()
                if not line:
                    break
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            body = f.read(length)
            check(("back %d" % i).encode() in body, "request %d: body %r" % (i, body))


@tx.with_env
def test_pipelined_requests_never_in_a_wrong_trace(env):
    # Two requests in one write: uvicorn starts the second one's task from
    # the first one's code once it has answered, so that task inherits the
    # first request's context; aiohttp runs both from one task. Whatever
    # the context says, the bridge announces a request only while the shim
    # still serves it: no call ends up in the other request's trace.
    need("aiohttp", "python3-aiohttp")
    need("uvicorn", "python3-uvicorn")
    for name, text in (("uvicorn-pipelined", UVICORN), ("aiohttp-pipelined", AIOHTTP)):
        port = tx.free_port()
        backend = ev.Backend()
        try:
            e = env.app_env({"OTEL_SERVICE_NAME": name})
            p = subprocess.Popen([ev.RUN, "--no-exporter", "--", PY,
                                  service(env, name + ".py", text), str(port), backend.url()],
                                 env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            env.procs.append(p)
            hs.wait_listening(port, p, name)
            callers = {i: (secrets.token_hex(16), secrets.token_hex(8)) for i in range(20)}
            for i in range(0, 20, 2):
                pipelined(port, callers, (i, i + 1))
            by_trace = {trace: i for i, (trace, _) in callers.items()}
            with backend.lock:
                seen = list(backend.seen)
            check(len(seen) == 20, "%s: the backend got %d calls" % (name, len(seen)))
            linked, wrong = [], []
            for ident, tps in seen:
                trace = tps[0].split("-")[1] if tps else None
                if trace == callers[int(ident)][0]:
                    linked.append(int(ident))
                elif trace in by_trace:
                    wrong.append("%s in the trace of %d" % (ident, by_trace[trace]))
            print("%s: %d of 20 linked (%d of the 10 first, %d of the 10 second), %d wrong%s" % (
                name, len(linked), sum(i % 2 == 0 for i in linked),
                sum(i % 2 == 1 for i in linked), len(wrong), (": " + ", ".join(wrong)) if wrong
                else ""))
            check(not wrong, "%s: %s" % (name, ", ".join(wrong)))
            check(all(i in linked for i in range(0, 20, 2)),
                  "%s: a first request's call is not linked (%r)" % (name, linked))
            p.kill()
            p.wait()
        finally:
            backend.stop()


def main():
    if not os.path.exists(PY):
        return tx.skip_file("%s is missing (Debian: python3)" % PY)
    if not ev.shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
