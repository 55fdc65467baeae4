"""asyncio: each inbound HTTP request's context carried across tasks and
callbacks, and announced to the shim as the parent of the outbound HTTP/1
requests made in it.

On an event loop the shim cannot tell from below which request an
outbound call belongs to (a thread that waits with epoll serves many at
once), so it binds none. asyncio can tell: a task or a callback copies
the contextvars of the code that created it. The bridge uses two calls of
the shim's C API:

  - dynobs_server_traceparent(fd): the request being served on a socket;
  - dynobs_client_parent(fd, traceparent): the parent of the next HTTP
    request written on a socket.

Inbound. A selector socket transport delivers the bytes it reads to its
protocol from its read-ready callback (_SelectorSocketTransport._read_ready,
every CPython from 3.9 on). While that callback runs, the bridge puts a
_Request for the socket into the context; a task or a callback created
meanwhile (uvicorn creates each request's task in data_received) copies
it. The _Request is pinned, by the end of the callback at the latest, to
the request the shim says that socket was serving then: the bytes were
read by then, and a later look-up could find the next request of a
keep-alive connection. A server that runs all requests of a connection in
one task woken from data_received (aiohttp's RequestHandler.start) creates
a task per request for its handler (aiohttp's _handle_request); that
coroutine is wrapped to enter its request's context when it starts. A
task that reads a request from an asyncio stream (asyncio.start_server's
handlers, one task per connection) enters it as its read returns: the
shim says which request that connection serves then.

Outbound. Just before the first bytes of an HTTP/1 request (a request
line) are written on a socket transport (write, writelines), the parent
is announced on that socket: the current dynobs span of the writer's
context, else its request, if the shim still serves that request on its
socket. That last check keeps a context inherited by mistake (a task
started for a pipelined request from the previous request's code, a
socket number reused) from linking a call to another request: a wrong
link is worse than none. A context without either announces nothing; the
shim then starts the call's own trace, as without the bridge.

Installed by dynobs.enable() and by dynobs-run (runtimes/python), only
when the shim is preloaded and on: otherwise nothing of this runs. It
never raises into the application and never changes what it sends or
receives.

Not covered: TLS (asyncio's TLS runs OpenSSL over memory buffers, whose
bytes the shim does not see as a socket's), the proactor loop (Windows),
uvloop (its transports are not these), and the loop's low-level socket
calls (loop.sock_sendall and friends)."""

import contextvars
import ctypes
import functools
import inspect
import re
import sys

_pkg = sys.modules[__name__.rpartition(".")[0]]
_request = contextvars.ContextVar("dynobs_request", default=None)
_installed = [False]
_lib = None
_TP_LEN = 55

# The start of an HTTP/1 request: method token, target, version. A
# response ("HTTP/1.1 200 OK") or a body does not match, so a parent is
# never left on a connection for a request it does not start (the shim
# keeps an announced parent until the next request's head goes out).
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32} [^\s]{1,8192} HTTP/1\.")
_PENDING = object()


def _server_traceparent(fd):
    buf = ctypes.create_string_buffer(_TP_LEN + 1)
    n = _lib.dynobs_server_traceparent(fd, buf, len(buf))
    return buf.raw[:n].decode("ascii") if n == _TP_LEN else None


class _Request:
    """The request that the shim was serving on socket fd when its bytes
    reached the code of this context (None: none was)."""

    __slots__ = ("fd", "_tp")

    def __init__(self, fd):
        self.fd = fd
        self._tp = _PENDING

    def traceparent(self):
        tp = self._tp
        if tp is _PENDING:
            tp = self._tp = _server_traceparent(self.fd)
        return tp


def request_traceparent():
    """The traceparent of the request this context serves, while the shim
    still serves it; None otherwise (and when the bridge is off)."""
    r = _request.get()
    if r is None:
        return None
    tp = r.traceparent()
    if tp is None or _server_traceparent(r.fd) != tp:
        return None
    return tp


def _fd_of(transport):
    fd = getattr(transport, "_sock_fd", None)
    if isinstance(fd, int):
        return fd
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock.fileno() if sock is not None else -1


def enter(transport):
    """The calling task serves the request being served now on the socket
    of transport (a server's per-request task, as it starts)."""
    try:
        fd = _fd_of(transport)
        if fd >= 0:
            r = _Request(fd)
            r.traceparent()
            _request.set(r)
    except Exception:
        pass


def _stream_enter(reader):
    # A task that reads from a server connection with a request in flight
    # serves that request (asyncio.start_server's handlers: one task per
    # connection, woken from data_received, reading request after request).
    # Reading from any other stream (a client's response) changes nothing.
    fd = _fd_of(reader._transport)
    if fd < 0:
        return
    tp = _server_traceparent(fd)
    if tp is None:
        return
    cur = _request.get()
    if cur is not None and cur.fd == fd and cur._tp == tp:
        return
    r = _Request(fd)
    r._tp = tp
    _request.set(r)


def _announce(transport, data):
    if not _REQUEST_LINE.match(data):
        return
    s = _pkg._current.get()
    tp = s.traceparent if s is not None else None
    if tp is None:
        tp = request_traceparent()
    if tp is not None:
        _lib.dynobs_client_parent(transport._sock_fd, tp.encode("ascii"))


# ---- the transport's hooks ----

def _hook_read_ready(real):
    def _read_ready(self):
        try:
            if _frameworks:
                _hook_frameworks()
            r = _Request(self._sock_fd)
            token = _request.set(r)
        except Exception:
            return real(self)
        try:
            return real(self)
        finally:
            try:
                # The reader's context is the same object at every call:
                # what this call put there goes, and what its code created
                # meanwhile keeps the request these bytes belonged to.
                _request.reset(token)
                r.traceparent()
            except Exception:
                pass
    return _read_ready


def _hook_write(real):
    def write(self, data):
        try:
            _announce(self, data)
        except Exception:
            pass
        return real(self, data)
    return write


def _hook_writelines(real):
    def writelines(self, list_of_data):
        try:
            # The first buffer says whether a request starts here; the
            # list may be any iterable, so it is only looked at when it is
            # a list or a tuple.
            if isinstance(list_of_data, (list, tuple)):
                for data in list_of_data:
                    if len(data):
                        _announce(self, data)
                        break
        except Exception:
            pass
        return real(self, list_of_data)
    return writelines


def _hook_stream_read(real):
    async def read(self, *args, **kwargs):
        data = await real(self, *args, **kwargs)
        try:
            _stream_enter(self)
        except Exception:
            pass
        return data
    return read


def _patch(cls, name, hook):
    real = cls.__dict__.get(name)
    if real is None or getattr(real, "__dynobs__", False):
        return
    fn = hook(real)
    functools.update_wrapper(fn, real)
    fn.__dynobs__ = True
    setattr(cls, name, fn)


# ---- servers that run a connection's requests in one task ----

def _hook_aiohttp(mod):
    # aiohttp (3.8 to 3.11 at least): RequestHandler.start() waits for each
    # request of a connection in one task, then runs _handle_request in a
    # new task ("a new task is used for copy context vars").
    cls = getattr(mod, "RequestHandler", None)
    real = cls.__dict__.get("_handle_request") if cls is not None else None
    if real is None or getattr(real, "__dynobs__", False) or \
            not inspect.iscoroutinefunction(real):
        return

    @functools.wraps(real)
    async def _handle_request(self, *args, **kwargs):
        enter(getattr(self, "transport", None))
        return await real(self, *args, **kwargs)

    _handle_request.__dynobs__ = True
    cls._handle_request = _handle_request


# module name -> its hook: looked for at each delivery until the module
# is imported, which happens before it is delivered its first request.
_frameworks = {"aiohttp.web_protocol": _hook_aiohttp}


def _hook_frameworks():
    for name in list(_frameworks):
        mod = sys.modules.get(name)
        hook = _frameworks.pop(name, None) if mod is not None else None
        if hook is not None:
            try:
                hook(mod)
            except Exception:
                pass


def install():
    """Installs the bridge when the shim is preloaded and on (idempotent).
    True when it is installed."""
    global _lib
    with _pkg._lock:
        if _installed[0]:
            return True
        lib = _pkg._load()
        if not lib or not _pkg._preloaded or not _pkg._bridge_api or \
                not lib.dynobs_enabled():
            return False
        try:
            from asyncio import selector_events, streams
            cls = selector_events._SelectorSocketTransport
        except (ImportError, AttributeError):
            return False
        _lib = lib
        _patch(cls, "_read_ready", _hook_read_ready)
        _patch(cls, "write", _hook_write)
        # 3.12 and later write a list with sendmsg; before, writelines is
        # the base class's, which calls write.
        _patch(cls, "writelines", _hook_writelines)
        for name in ("read", "readline", "readuntil", "readexactly"):
            _patch(streams.StreamReader, name, _hook_stream_read)
        _hook_frameworks()
        _installed[0] = True
        return True
