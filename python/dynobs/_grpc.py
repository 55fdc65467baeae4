"""grpcio servers: each call's handler runs with its request's server span
as the current context, so that the calls it makes are the span's
children.

grpcio reads requests on its own I/O threads and runs handlers on the
server's thread pool: the shim sees the request (its SERVER span continues
the caller's traceparent, preload/h2server.c) but not which pool thread
runs it. A server interceptor, added to every grpc.server() made after
install(), reads the caller's traceparent from the call's metadata, asks
the shim for the span serving the request that came with it
(dynobs_served_traceparent: exact, the caller's span id names one
request), and attaches it around the handler. A call without a
traceparent, or one the shim is not serving, runs as before.

Unary and stream-unary handlers are covered whole; for handlers that
return a stream of responses the context covers the call that makes the
stream, not its iteration later.

The shim must be preloaded (it exports the functions used here); the
package's ctypes loading is not needed."""
import ctypes

_lib = None


def _load():
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(None)
            f = lib.dynobs_served_traceparent
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.dynobs_context_attach.restype = ctypes.c_int
            lib.dynobs_context_attach.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            lib.dynobs_context_detach.restype = None
            lib.dynobs_context_detach.argtypes = []
            _lib = lib
        except (AttributeError, OSError):
            _lib = False
    return _lib


def _served(caller):
    buf = ctypes.create_string_buffer(64)
    n = _lib.dynobs_served_traceparent(caller.encode("ascii", "replace"), buf, len(buf))
    return buf.raw[:n] if n > 0 else None


def _caller_of(details):
    for item in getattr(details, "invocation_metadata", None) or ():
        key, value = item[0], item[1]
        if key == "traceparent" and isinstance(value, str):
            return value
    return None


def _wrap(fn, caller):
    if fn is None:
        return None

    def handler(request, context):
        tp = _served(caller)
        attached = tp is not None and _lib.dynobs_context_attach(tp, None) == 0
        try:
            return fn(request, context)
        finally:
            if attached:
                _lib.dynobs_context_detach()
    return handler


def _interceptor(grpc):
    class Interceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            h = continuation(details)
            caller = _caller_of(details) if h is not None else None
            if not caller or not hasattr(h, "_replace"):
                return h
            return h._replace(unary_unary=_wrap(h.unary_unary, caller),
                              unary_stream=_wrap(h.unary_stream, caller),
                              stream_unary=_wrap(h.stream_unary, caller),
                              stream_stream=_wrap(h.stream_stream, caller))
    return Interceptor()


def install(grpc):
    """Adds the interceptor to the servers grpc.server() makes from now on
    (once; nothing when the shim is not preloaded)."""
    real = getattr(grpc, "server", None)
    if real is None or getattr(real, "__dynobs__", False) or not _load():
        return False
    ours = _interceptor(grpc)

    def server(*args, **kwargs):
        if len(args) >= 3:
            args = list(args)
            args[2] = list(args[2] or ()) + [ours]
        else:
            kwargs["interceptors"] = list(kwargs.get("interceptors") or ()) + [ours]
        return real(*args, **kwargs)
    server.__dynobs__ = True
    server.__wrapped__ = real
    server.__doc__ = real.__doc__
    grpc.server = server
    return True
