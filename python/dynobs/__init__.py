"""dynobs for Python: custom spans, metrics and logs in the same traces as
what the preloaded shim records.

In a process started under the shim (LD_PRELOAD=libdynobs.so, or
dynobs-run), this module talks to the library already loaded. In a plain
interpreter it loads libdynobs.so itself on first use (no automatic
instrumentation happens then: only what is called here is recorded).

    import dynobs
    with dynobs.span("checkout", attributes={"cart.items": 3}) as s:
        s.add_event("priced")
    dynobs.counter("orders").add(1, {"region": "eu"})

Standard library only (ctypes), CPython 3.9 or later; spans take a faster
path through dynobs/_native.c where it was built (pip or CMake, when a C
compiler and Python's headers are there; DYNOBS_PYTHON_NATIVE=0 turns it off).
"""

import asyncio
import atexit
import contextvars
import ctypes
import ctypes.util
import fcntl
import functools
import inspect
import logging
import os
import subprocess
import sys
import threading
import traceback
import warnings


def _version():
    """The package's version. An installed package has it in _version.py,
    which python/dynobs_build.py writes into the wheel; run from the source
    tree, it is read from the repository's CMakeLists.txt, the one place
    where the version is set."""
    try:
        from ._version import __version__ as v
        return v
    except ImportError:
        pass
    import re
    cmake = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                         "CMakeLists.txt")
    try:
        with open(cmake) as f:
            m = re.search(r"project\(\s*dynobs\s+VERSION\s+([0-9][0-9.]*)", f.read())
    except OSError:
        m = None
    return m.group(1) if m else "0+unknown"


__version__ = _version()

__all__ = [
    "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "UNSET", "OK", "ERROR",
    "Span", "span", "start_span", "traced", "current_span", "current_traceparent", "attach",
    "counter", "updown_counter", "updown", "gauge", "histogram", "log", "LoggingHandler",
    "enable", "enabled", "library_path", "stats", "watch", "Watch", "MetricConflict",
]

# Span kinds and status codes: OTLP's numbers.
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
_KINDS = frozenset((INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER))
UNSET, OK, ERROR = 0, 1, 2

_EINVAL, _ENOSPC, _ENOENT, _EBUSY, _EDISABLED, _ETRUNC = -22, -28, -2, -16, -1000, -1001
_EEXIST = -17
_SPAN_ROOT, _SPAN_NO_CONTEXT, _SPAN_LOCAL_PARENT = 0x1, 0x2, 0x4
_ATTR_STRING, _ATTR_BOOL, _ATTR_INT, _ATTR_DOUBLE = 1, 2, 3, 4
_METRIC_COUNTER, _METRIC_UPDOWN, _METRIC_GAUGE, _METRIC_HISTOGRAM = 1, 2, 3, 4
_TRACEPARENT_LEN = 55

# What was refused or failed without raising (full tables, a log handler
# that could not record): counted here, never silent.
class _Stats(dict):
    """dynobs.stats: the counters of what was refused (a dict, as it has
    always been), and, called, the composite statistics of a metric series
    of this process (see __call__)."""

    def __call__(self, name, labels=None, window_ms=10000):
        """Count, sum, avg, min and max of the values a gauge or histogram
        series of this process recorded in the last window_ms (up to
        15000; 0: since the series started), read from the process's own
        segment, with the series' current value: a dict with "count",
        "sum", "avg", "min", "max" (exact; NaN when count is 0),
        "window_ms" (the time covered), "value" and "kind" ("counter",
        "updown", "gauge", "histogram"; counters have no windows: count 0).
        None when the series does not exist (yet) or dynobs is off;
        ValueError for a window longer than kept."""
        return _metric_stats(name, labels, window_ms)


stats = _Stats({"spans_refused": 0, "metric_updates_refused": 0, "logs_refused": 0,
                "log_handler_errors": 0, "watch_callback_errors": 0})

_lock = threading.RLock()
_lib = None
_lib_path = None
_preloaded = False   # the library was mapped before this module loaded it (LD_PRELOAD)
_bridge_api = False  # it has dynobs_server_traceparent and dynobs_client_parent
_handle_api = False  # it has dynobs_metric_get and dynobs_metric_record_h
_stats_api = False   # it has dynobs_metrics_declare, dynobs_metric_stats and watches
_signals = {"traces": True, "metrics": True, "logs": True}
_traces_on = [True]  # _signals["traces"], read on every span
_start = _start_plain = None  # dynobs_span_start_ex and dynobs_span_start, once loaded
_current = contextvars.ContextVar("dynobs_current_span", default=None)


class _AttrValue(ctypes.Union):
    _fields_ = [("s", ctypes.c_char_p), ("i", ctypes.c_int64), ("d", ctypes.c_double),
                ("b", ctypes.c_int)]


class _Attr(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("type", ctypes.c_int), ("v", _AttrValue)]


class _MetricDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("unit", ctypes.c_char_p), ("kind", ctypes.c_int),
                ("bounds", ctypes.POINTER(ctypes.c_double)), ("nbounds", ctypes.c_size_t)]


class _MetricDecl(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
                ("unit", ctypes.c_char_p), ("kind", ctypes.c_int),
                ("bounds", ctypes.POINTER(ctypes.c_double)), ("nbounds", ctypes.c_size_t),
                ("labels", ctypes.c_char_p)]


class _MetricStats(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("sum", ctypes.c_double), ("avg", ctypes.c_double),
                ("min", ctypes.c_double), ("max", ctypes.c_double),
                ("window_ms", ctypes.c_uint64), ("value", ctypes.c_double),
                ("kind", ctypes.c_int)]


class _WatchEvent(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("condition", ctypes.c_int), ("name", ctypes.c_char_p),
                ("labels", ctypes.c_char_p), ("threshold", ctypes.c_double),
                ("value", ctypes.c_double), ("previous", ctypes.c_double),
                ("time_ns", ctypes.c_uint64)]


_WATCH_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(_WatchEvent), ctypes.c_void_p)


# ---- finding and loading the library ----

def _loaded_path():
    """The libdynobs.so this process already has mapped (preloaded), if any."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                base = os.path.basename(path)
                if base.startswith("libdynobs.so") and os.path.isfile(path):
                    return path
    except OSError:
        pass
    return None


def _candidates():
    env = os.environ.get("DYNOBS_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    # A source tree: python/dynobs/ beside build/.
    yield os.path.join(here, "..", "..", "build", "libdynobs.so")
    found = ctypes.util.find_library("dynobs")
    if found:
        yield found
    for d in ("/usr/local/lib", "/usr/lib", "/usr/local/lib64", "/usr/lib/x86_64-linux-gnu"):
        yield os.path.join(d, "libdynobs.so")


def _bind(lib):
    c = ctypes
    sigs = {
        "dynobs_enabled": (c.c_int, []),
        "dynobs_strerror": (c.c_char_p, [c.c_int]),
        "dynobs_span_start_ex": (c.c_void_p, [c.c_char_p, c.c_int, c.c_char_p, c.c_char_p,
                                              c.c_int]),
        "dynobs_span_start": (c.c_void_p, [c.c_char_p, c.c_int]),
        "dynobs_span_set_str": (c.c_int, [c.c_void_p, c.c_char_p, c.c_char_p]),
        "dynobs_span_set_int": (c.c_int, [c.c_void_p, c.c_char_p, c.c_int64]),
        "dynobs_span_set_double": (c.c_int, [c.c_void_p, c.c_char_p, c.c_double]),
        "dynobs_span_set_bool": (c.c_int, [c.c_void_p, c.c_char_p, c.c_int]),
        "dynobs_span_add_event_attrs": (c.c_int, [c.c_void_p, c.c_char_p,
                                                  c.POINTER(_Attr), c.c_size_t]),
        "dynobs_span_set_status": (c.c_int, [c.c_void_p, c.c_int, c.c_char_p]),
        "dynobs_span_end": (c.c_int, [c.c_void_p]),
        "dynobs_span_traceparent": (c.c_int, [c.c_void_p, c.c_char_p, c.c_size_t]),
        "dynobs_current_traceparent": (c.c_int, [c.c_char_p, c.c_size_t]),
        "dynobs_current_tracestate": (c.c_int, [c.c_char_p, c.c_size_t]),
        "dynobs_context_attach": (c.c_int, [c.c_char_p, c.c_char_p]),
        "dynobs_context_detach": (None, []),
        "dynobs_metric_record": (c.c_int, [c.POINTER(_MetricDesc), c.c_double, c.c_char_p]),
        "dynobs_log_record": (c.c_int, [c.c_int, c.c_char_p, c.c_char_p, c.POINTER(_Attr),
                                        c.c_size_t, c.c_char_p]),
        "dynobs_set_service_name": (c.c_int, [c.c_char_p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    # The runtimes' bridge (dynobs._asyncio): a library built before it
    # lacks these two, and the rest of this module works with it all the same.
    for name, (res, args) in {
        "dynobs_baggage_get": (c.c_int, [c.c_char_p, c.c_char_p, c.c_size_t]),
        "dynobs_baggage_set": (c.c_int, [c.c_char_p, c.c_char_p]),
    }.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = res
            fn.argtypes = args
    bridge = {
        "dynobs_server_traceparent": (c.c_int, [c.c_int, c.c_char_p, c.c_size_t]),
        "dynobs_client_parent": (c.c_int, [c.c_int, c.c_char_p]),
    }
    found = 0
    for name, (res, args) in bridge.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = res
            fn.argtypes = args
            found += 1
    # Metric handles: a library built before them lacks these two, and the
    # instruments then update by name.
    global _handle_api
    handle_fns = {
        "dynobs_metric_get": (c.c_void_p, [c.POINTER(_MetricDesc), c.c_char_p]),
        "dynobs_metric_record_h": (c.c_int, [c.c_void_p, c.c_double]),
    }
    _handle_api = all(getattr(lib, n, None) is not None for n in handle_fns)
    if _handle_api:
        for name, (res, args) in handle_fns.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
    # Declared metrics, statistics and watches (issue 18): a library
    # built before them lacks these, and then descriptions are left out,
    # stats() says None and watch() raises.
    global _stats_api
    stats_fns = {
        "dynobs_metrics_declare": (c.c_int, [c.POINTER(_MetricDecl), c.c_size_t, c.c_void_p]),
        "dynobs_metric_stats": (c.c_int, [c.c_char_p, c.c_char_p, c.c_uint32,
                                          c.POINTER(_MetricStats)]),
        "dynobs_metric_watch": (c.c_int, [c.c_char_p, c.c_char_p, c.c_int, c.c_double,
                                          _WATCH_FN, c.c_void_p]),
        "dynobs_metric_unwatch": (c.c_int, [c.c_int]),
    }
    _stats_api = all(getattr(lib, n, None) is not None for n in stats_fns)
    if _stats_api:
        for name, (res, args) in stats_fns.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
    return found == len(bridge)


def _load():
    """The library, loaded on first use; None when it cannot be found
    (every call is then a no-op, and enabled() says False)."""
    global _lib, _lib_path, _start, _start_plain, _preloaded, _bridge_api
    if _lib is not None:
        return _lib or None
    with _lock:
        if _lib is not None:
            return _lib or None
        path = _loaded_path()
        tried = []
        if path is None:
            for cand in _candidates():
                tried.append(cand)
                if os.path.isfile(cand) or (cand and "/" not in cand):
                    path = cand
                    break
        if path is None:
            warnings.warn("dynobs: libdynobs.so not found (tried %s); set DYNOBS_LIBRARY. "
                          "Spans, metrics and logs are not recorded." % ", ".join(tried),
                          RuntimeWarning, stacklevel=3)
            _lib = False
            return None
        preloaded = not tried  # found mapped already, by _loaded_path()
        try:
            lib = ctypes.CDLL(path)
            bridge = _bind(lib)
        except (OSError, AttributeError) as e:
            warnings.warn("dynobs: cannot use %s: %s" % (path, e), RuntimeWarning, stacklevel=3)
            _lib = False
            return None
        _start, _start_plain = lib.dynobs_span_start_ex, lib.dynobs_span_start
        if _native:
            # Before _lib: another thread that sees _lib may start a span
            # in Python, whose C methods (end, set_attribute) need these.
            _native.bind(*(ctypes.cast(getattr(lib, "dynobs_span_" + f), ctypes.c_void_p).value
                           for f in ("start", "start_ex", "end", "set_str", "set_int",
                                     "set_double", "set_bool")))
        _preloaded, _bridge_api = preloaded, bridge
        _lib, _lib_path = lib, os.path.realpath(path)
        if _native:
            # Last: from here on span() starts spans in C without coming
            # here, and their Python methods use _lib.
            _native.ready()
        return lib


def library_path():
    """The path of the libdynobs.so in use, or None."""
    _load()
    return _lib_path


def enabled():
    """True when spans, metrics and logs are being recorded in this process."""
    lib = _load()
    return bool(lib and lib.dynobs_enabled())


def _strerror(rc):
    lib = _load()
    return lib.dynobs_strerror(rc).decode() if lib else "dynobs is not loaded"


def _enc(s, what):
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError("%s must be a str, not %s" % (what, type(s).__name__))
    return s.encode("utf-8", "replace")


try:
    _running_loop = asyncio.events._get_running_loop  # no exception when there is none
except AttributeError:  # pragma: no cover
    def _running_loop():
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None


def _in_event_loop():
    return _running_loop() is not None


# ---- spans ----

def _set_attribute(self, key, value):
    """Span.set_attribute(key, value), returning the span: the ctypes
    path's, and what dynobs._native hands every value it does not set."""
    if self._ended:
        return self
    k = _enc(key, "attribute key")
    if isinstance(value, bool):
        rc = _lib.dynobs_span_set_bool(self._h, k, int(value))
    elif isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            value = str(value)
            rc = _lib.dynobs_span_set_str(self._h, k, value.encode())
        else:
            rc = _lib.dynobs_span_set_int(self._h, k, value)
    elif isinstance(value, float):
        rc = _lib.dynobs_span_set_double(self._h, k, value)
    elif value is None:
        return self
    else:
        rc = _lib.dynobs_span_set_str(self._h, k, _enc(value if isinstance(value, (str, bytes))
                                                       else str(value), "value"))
    if rc == _EINVAL:
        raise ValueError("attribute %r: %s" % (key, _strerror(rc)))
    return self


class _PySpanBase:
    """What every span holds, and its with-protocol: the pure-Python half
    of Span (dynobs/_native.c has the same in C, used when it is built)."""

    _tp = None      # the traceparent, once asked for
    _token = None   # the contextvar token while current
    _ts = None      # tracestate inherited from a remote parent

    set_attribute = _set_attribute

    @property
    def recording(self):
        return not self._ended

    def end(self):
        if self._ended:
            return
        self._ended = True
        _lib.dynobs_span_end(self._h)
        self._h = None

    # with-block: the span is the current one inside it
    def __enter__(self):
        self._token = _current.set(self)
        return self

    def __exit__(self, etype, exc, tb):
        if exc is not None and isinstance(exc, Exception):
            self._record_error(etype, exc)
        token = self._token
        if token is not None:
            self._token = None
            try:
                _current.reset(token)
            except ValueError:  # exited in another context (a moved generator)
                pass
        if not self._ended:
            self._ended = True
            _lib.dynobs_span_end(self._h)
            self._h = None
        return False


_NATIVE_API = 1  # what this file expects of dynobs._native (its API constant)


def _native_module():
    """dynobs._native (the C half of spans), or None: not built for this
    interpreter (or built from another version), or DYNOBS_PYTHON_NATIVE=0.
    Installed by pip beside this file; in a source tree, built by CMake
    into python/ of the build directory, found beside the library named
    by DYNOBS_LIBRARY or LD_PRELOAD, else in build/ beside python/."""
    if os.environ.get("DYNOBS_PYTHON_NATIVE") == "0":
        return None
    try:
        from . import _native
        return _native if getattr(_native, "API", None) == _NATIVE_API else None
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(here, "_version.py")):
        return None  # installed (pip wrote _version.py): its own module or none
    import importlib.machinery
    import importlib.util
    libs = [os.environ.get("DYNOBS_LIBRARY")]
    libs += [p for p in os.environ.get("LD_PRELOAD", "").replace(":", " ").split()
             if os.path.basename(p).startswith("libdynobs.so")]
    libs.append(os.path.join(here, "..", "..", "build", "libdynobs.so"))
    # Only this interpreter's exact ABI: the module uses the full C API.
    fn = "_native" + importlib.machinery.EXTENSION_SUFFIXES[0]
    for lib in libs:
        path = os.path.join(os.path.dirname(lib), "python", fn) if lib and "/" in lib else None
        if not path or not os.path.isfile(path):
            continue
        try:
            spec = importlib.util.spec_from_file_location(__name__ + "._native", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        except (ImportError, OSError):
            continue
        if getattr(mod, "API", None) == _NATIVE_API:
            sys.modules[spec.name] = mod
            return mod
    return None


_native = _native_module()


class Span(_native.SpanBase if _native else _PySpanBase):
    """A span started by start_span() or span(). Ends once (end() or the
    with-block's end); every method is a no-op on a span that is not
    recorded (dynobs disabled, or a full pool, counted in stats)."""

    def __init__(self, handle, name, tracestate=None):
        self.name = name
        self._h = handle
        self._ended = not handle
        if tracestate:
            self._ts = tracestate

    @property
    def traceparent(self):
        """The W3C traceparent of this span ("00-<trace>-<span>-<flags>"), or None."""
        if self._tp is None and self._h:
            buf = ctypes.create_string_buffer(_TRACEPARENT_LEN + 1)
            if _lib.dynobs_span_traceparent(self._h, buf, len(buf)) > 0:
                self._tp = buf.value.decode()
        return self._tp

    @property
    def trace_id(self):
        tp = self.traceparent
        return tp[3:35] if tp else None

    @property
    def span_id(self):
        tp = self.traceparent
        return tp[36:52] if tp else None

    def set_attributes(self, attributes):
        for k, v in (attributes or {}).items():
            self.set_attribute(k, v)
        return self

    def add_event(self, name, attributes=None):
        if self._ended:
            return self
        arr, n, _keep = _attr_array(attributes)
        rc = _lib.dynobs_span_add_event_attrs(self._h, _enc(name, "event name"), arr, n)
        if rc == _EINVAL:
            raise ValueError("event %r: %s" % (name, _strerror(rc)))
        return self

    def set_status(self, code, description=None):
        if code not in (UNSET, OK, ERROR):
            raise ValueError("status code must be dynobs.UNSET, OK or ERROR")
        if not self._ended:
            _lib.dynobs_span_set_status(self._h, code,
                                        _enc(description, "description") if description else None)
        return self

    def record_exception(self, exc):
        """Adds an "exception" event (type, message, stack trace) as the
        OpenTelemetry semantic conventions name them."""
        if self._ended or exc is None:
            return self
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.add_event("exception", {
            "exception.type": _qualname(type(exc)),
            "exception.message": str(exc),
            "exception.stacktrace": tb,
        })
        return self

    def _record_error(self, etype, exc):
        # An Exception leaving the with-block (from either __exit__).
        self.set_status(ERROR, "%s: %s" % (_qualname(etype), exc))
        self.record_exception(exc)

    def __repr__(self):
        return "<dynobs.Span %r %s>" % (self.name, self.traceparent or "not recording")


class _Remote:
    """A remote parent made current by attach()."""

    __slots__ = ("traceparent", "_ts")

    def __init__(self, tp, ts):
        self.traceparent = tp
        self._ts = ts


def _qualname(t):
    m = getattr(t, "__module__", "")
    return t.__qualname__ if m in ("builtins", "", None) else "%s.%s" % (m, t.__qualname__)


def _attr_array(attributes):
    """A ctypes array of dynobs_attr for a dict, its length, and the
    encoded strings it points into (kept alive by the caller)."""
    if not attributes:
        return None, 0, None
    arr = (_Attr * len(attributes))()
    keep = []
    for i, (k, v) in enumerate(attributes.items()):
        kb = _enc(k, "attribute key")
        keep.append(kb)
        a = arr[i]
        a.key = kb
        if isinstance(v, bool):
            a.type, a.v.b = _ATTR_BOOL, int(v)
        elif isinstance(v, int) and -(1 << 63) <= v < (1 << 63):
            a.type, a.v.i = _ATTR_INT, v
        elif isinstance(v, float):
            a.type, a.v.d = _ATTR_DOUBLE, v
        else:
            vb = _enc(v if isinstance(v, (str, bytes)) else str(v), "attribute value")
            keep.append(vb)
            a.type, a.v.s = _ATTR_STRING, vb
    return arr, len(attributes), keep


_names = {}  # span name -> its UTF-8 bytes, for the names used most


def _start_span(name, kind=INTERNAL, attributes=None, parent=None, root=False):
    """Starts a span and returns it; the caller ends it (span.end()). Its
    parent is `parent` (a Span, or a traceparent string), else the current
    span of this context, else what the shim has current on this thread
    (the request a server is handling), else it starts a trace."""
    if kind not in _KINDS:
        raise ValueError("kind must be one of dynobs.INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER")
    nb = _names.get(name)
    if nb is None:
        nb = _enc(name, "span name")
        if len(_names) < 4096 and isinstance(name, str):
            _names[name] = nb
    lib = _lib or _load()
    if not lib or not _traces_on[0]:
        return Span(None, name)
    if parent is None and not root and not attributes:
        parent = _current.get()
        if parent is None and _running_loop() is None:
            # The common case: no span of ours is current, so the shim's
            # context of this thread (if any) is the parent, and the span
            # becomes it (two arguments: the cheapest call ctypes has).
            h = _start_plain(nb, kind)
            return Span(h, name) if h else _refused(name)
    flags = 0
    tp = ts = None
    implicit = False
    if root:
        flags = _SPAN_ROOT
    else:
        if parent is None:
            parent = _current.get()
        if parent is None and _bridge[0] and _running_loop() is not None:
            # A coroutine serving a request (asyncio bridge): its server span.
            parent = _aio.request_traceparent()
            implicit = parent is not None
            if implicit:
                flags = _SPAN_LOCAL_PARENT  # the shim's span, in this process
        if parent is not None:
            if isinstance(parent, str):
                tp = parent
            else:
                tp, ts = parent.traceparent, parent._ts
                if isinstance(parent, Span):
                    flags = _SPAN_LOCAL_PARENT
    # In a coroutine, the thread's context belongs to whichever task runs:
    # leave it alone (the contextvar carries the parent between our spans).
    if _running_loop() is not None:
        flags |= _SPAN_NO_CONTEXT
    h = _start(nb, kind, tp.encode() if tp else None, ts.encode() if ts else None, flags)
    if not h:
        if tp and isinstance(parent, str) and not implicit:
            raise ValueError("invalid traceparent %r" % tp)
        if lib.dynobs_enabled():
            stats["spans_refused"] += 1
        return Span(None, name)
    s = Span(h, name, ts)
    if attributes:
        s.set_attributes(attributes)
    return s


def _refused(name):
    """The span that was not started (the library refused it): counted
    when dynobs is on, and a no-op span all the same."""
    if _lib.dynobs_enabled():
        stats["spans_refused"] += 1
    return Span(None, name)


def span(name, kind=INTERNAL, attributes=None, parent=None, root=False):
    """A span for a with-block, current inside it:

        with dynobs.span("charge", attributes={"amount": 12.5}) as s:
            ...

    An exception leaving the block sets error status and adds an
    "exception" event, then goes on up."""
    return start_span(name, kind, attributes, parent, root)


if _native:
    # The C module starts the common case itself and hands every other
    # call to _start_span, which is the definition of both.
    _native.setup(Span, _current, _running_loop, _traces_on, _start_span, _refused,
                  _set_attribute)
    start_span = span = _native.span
else:
    start_span = _start_span


def traced(name=None, kind=INTERNAL, attributes=None):
    """Decorator: each call of the function (or coroutine function) runs in
    a span named after it (or `name`)."""

    def wrap(fn):
        sname = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*a, **kw):
                with start_span(sname, kind, attributes):
                    return await fn(*a, **kw)
            return awrapper

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with start_span(sname, kind, attributes):
                return fn(*a, **kw)
        return wrapper

    if callable(name):  # used as @traced without parentheses
        fn, name = name, None
        return wrap(fn)
    return wrap


def current_span():
    """The Span current in this context (None outside any span of ours)."""
    s = _current.get()
    return s if isinstance(s, Span) else None


def current_traceparent():
    """The traceparent of the current span: ours, else the shim's on this
    thread (a request being served); None outside any."""
    s = _current.get()
    if s is not None:
        return s.traceparent
    lib = _load()
    if not lib:
        return None
    if _bridge[0] and _running_loop() is not None:
        tp = _aio.request_traceparent()
        if tp is not None:
            return tp
    buf = ctypes.create_string_buffer(_TRACEPARENT_LEN + 1)
    return buf.value.decode() if lib.dynobs_current_traceparent(buf, len(buf)) > 0 else None


def get_baggage(key):
    """The value of key in the current context's W3C baggage (what the
    request being served carried in, and what set_baggage added), or None.
    The shim's context of this thread (not an asyncio task's)."""
    lib = _load()
    fn = getattr(lib, "dynobs_baggage_get", None) if lib else None
    if fn is None:
        return None
    buf = ctypes.create_string_buffer(8193)
    n = fn(key.encode(), buf, len(buf))
    return buf.value.decode() if n >= 0 else None


class set_baggage:
    """For a with-block, the current context carries W3C baggage key=value
    (value None: key removed), sent on with the HTTP calls made in it:

        with dynobs.span("checkout"), dynobs.set_baggage("tenant", "acme"):
            ...

    ValueError for a key or value the W3C grammar refuses (percent-encode
    the value); nothing happens without a current span or request, or in a
    running event loop (the shim's context is the thread's)."""

    def __init__(self, key, value):
        self.key, self.value = key, value
        self._set = False

    def __enter__(self):
        lib = _load()
        fn = getattr(lib, "dynobs_baggage_set", None) if lib else None
        if fn is None or _in_event_loop():
            return self
        rc = fn(self.key.encode(), None if self.value is None else str(self.value).encode())
        if rc == -22:
            raise ValueError("invalid baggage entry %r=%r" % (self.key, self.value))
        self._set = rc == 0
        return self

    def __exit__(self, *exc):
        if self._set:
            _lib.dynobs_context_detach()
            self._set = False
        return False


class attach:
    """Makes a remote parent current for a with-block (a traceparent taken
    from a message, a job, an environment variable):

        with dynobs.attach(headers["traceparent"], headers.get("tracestate")):
            ...

    An invalid traceparent raises ValueError; an invalid tracestate is
    dropped, as the W3C specification says."""

    def __init__(self, traceparent, tracestate=None):
        self.traceparent = traceparent
        self.tracestate = tracestate
        self._token = None
        self._attached = False

    def __enter__(self):
        tp = self.traceparent
        if not isinstance(tp, str) or not _valid_traceparent(tp):
            raise ValueError("invalid traceparent %r" % (tp,))
        lib = _load()
        if lib and not _in_event_loop():
            rc = lib.dynobs_context_attach(tp.encode(),
                                           self.tracestate.encode() if self.tracestate else None)
            self._attached = rc == 0
        self._token = _current.set(_Remote(tp.lower(), self.tracestate))
        return self

    def __exit__(self, *exc):
        _current.reset(self._token)
        if self._attached:
            _lib.dynobs_context_detach()
            self._attached = False
        return False


def _valid_traceparent(tp):
    """W3C Trace Context level 2 syntax, version 00 (or a later version
    with the same leading fields)."""
    hexd = set("0123456789abcdef")
    p = tp.strip().split("-")
    if len(p) < 4 or len(p[0]) != 2 or len(p[1]) != 32 or len(p[2]) != 16 or len(p[3]) != 2:
        return False
    if not all(set(x) <= hexd for x in p[:4]) or p[0] == "ff":
        return False
    if p[0] == "00" and len(p) != 4:
        return False
    return p[1] != "0" * 32 and p[2] != "0" * 16


# ---- metrics ----

def _labels(labels):
    if not labels:
        return None
    parts = []
    for k, v in labels.items():
        k, v = str(k), str(v)
        if not k or "," in k or "=" in k or "," in v:
            raise ValueError("label %r=%r: keys cannot be empty or hold ',' or '=', values "
                             "cannot hold ','" % (k, v))
        parts.append("%s=%s" % (k, v))
    return ",".join(parts).encode()


# Label sets per instrument updated through a handle (the series looked
# up once); the others are updated by name.
_INSTRUMENT_HANDLES = 64


class _Instrument:
    _kind = 0

    def __init__(self, name, unit=None, bounds=None, description=None):
        self.name = name
        self.description = description
        self._handles = {}  # encoded labels -> handle, or None: update by name
        self._desc = _MetricDesc(_enc(name, "metric name"), _enc(unit, "unit") if unit else None,
                                 self._kind, None, 0)
        if bounds is not None:
            b = [float(x) for x in bounds]
            if any(y <= x for x, y in zip(b, b[1:])):
                raise ValueError("histogram bounds must be strictly increasing")
            self._bounds = (ctypes.c_double * len(b))(*b)
            self._desc.bounds = self._bounds
            self._desc.nbounds = len(b)
        if description is not None:
            self._declare(description)

    def _declare(self, description):
        """Declares the metric (its description reaches # HELP and OTLP):
        MetricConflict when this process declared the name before with
        another kind, unit, description or bounds."""
        lib = _load()
        if not lib or not _stats_api:
            return
        d = self._desc
        decl = _MetricDecl(d.name, _enc(description, "description"), d.unit, d.kind, d.bounds,
                           d.nbounds, None)
        rc = lib.dynobs_metrics_declare(ctypes.byref(decl), 1, None)
        if rc == _EEXIST:
            raise MetricConflict("metric %r: %s" % (self.name, _strerror(rc)))
        if rc == _EINVAL:
            raise ValueError("metric %r: %s" % (self.name, _strerror(rc)))

    def stats(self, labels=None, window_ms=10000):
        """dynobs.stats() of this metric's series with these labels."""
        return _metric_stats(self.name, labels, window_ms)

    def watch(self, callback, labels=None, above=None, below=None, change=None):
        """dynobs.watch() of this metric's series with these labels."""
        return watch(self.name, callback, labels, above=above, below=below, change=change)

    def _record(self, value, labels):
        lib = _load()
        if not lib or not _signals["metrics"]:
            return
        enc = _labels(labels)
        h = self._handles.get(enc, 0)
        if h == 0 and _handle_api and len(self._handles) < _INSTRUMENT_HANDLES:
            # NULL for a malformed name or labels: by name, which says why.
            h = self._handles[enc] = lib.dynobs_metric_get(ctypes.byref(self._desc), enc)
        if h:
            rc = lib.dynobs_metric_record_h(h, float(value))
        else:
            rc = lib.dynobs_metric_record(ctypes.byref(self._desc), float(value), enc)
        if rc == _EINVAL:
            raise ValueError("metric %r: %s" % (self.name, _strerror(rc)))
        if rc == _ENOSPC:
            stats["metric_updates_refused"] += 1


class Counter(_Instrument):
    _kind = _METRIC_COUNTER

    def add(self, value=1, labels=None):
        if value < 0:
            raise ValueError("a counter only goes up: %r" % (value,))
        self._record(value, labels)


class UpDownCounter(_Instrument):
    _kind = _METRIC_UPDOWN

    def add(self, value, labels=None):
        self._record(value, labels)


class Gauge(_Instrument):
    _kind = _METRIC_GAUGE

    def set(self, value, labels=None):
        self._record(value, labels)


class Histogram(_Instrument):
    _kind = _METRIC_HISTOGRAM

    def record(self, value, labels=None):
        self._record(value, labels)


class MetricConflict(ValueError):
    """A metric declared again with another kind, unit, description or
    bounds than its first declaration in this process (which stands)."""


def counter(name, unit=None, description=None):
    """A counter; with a description, the metric is declared (the
    description reaches # HELP and OTLP; see MetricConflict)."""
    return Counter(name, unit, description=description)


def updown_counter(name, unit=None, description=None):
    return UpDownCounter(name, unit, description=description)


updown = updown_counter


def gauge(name, unit=None, description=None):
    return Gauge(name, unit, description=description)


def histogram(name, unit=None, bounds=None, description=None):
    """bounds: at most 15 explicit bucket bounds; the OpenTelemetry SDK's
    defaults when None. Fixed by the first record of each series (or by
    the declaration, with a description)."""
    return Histogram(name, unit, bounds, description=description)


_KIND_NAMES = {_METRIC_COUNTER: "counter", _METRIC_UPDOWN: "updown", _METRIC_GAUGE: "gauge",
               _METRIC_HISTOGRAM: "histogram"}


def _label_string(labels):
    if labels is None or isinstance(labels, bytes):
        return labels or None
    if isinstance(labels, str):
        return labels.encode() if labels else None
    return _labels(labels)


def _metric_stats(name, labels, window_ms):
    lib = _load()
    if not lib or not _stats_api:
        return None
    window_ms = int(window_ms)
    if window_ms < 0:
        raise ValueError("window_ms must be >= 0")
    out = _MetricStats()
    rc = lib.dynobs_metric_stats(_enc(name, "metric name"), _label_string(labels),
                                 min(window_ms, 0xffffffff), ctypes.byref(out))
    if rc == _EINVAL:
        raise ValueError("stats of %r over %d ms: %s (windows up to 15000 ms are kept)"
                         % (name, window_ms, _strerror(rc)))
    if rc != 0:
        return None
    return {"count": out.count, "sum": out.sum, "avg": out.avg, "min": out.min, "max": out.max,
            "window_ms": out.window_ms, "value": out.value,
            "kind": _KIND_NAMES.get(out.kind, str(out.kind))}


# ---- watches ----

_CONDITIONS = {"above": 1, "below": 2, "change": 3}
_CONDITION_NAMES = {v: k for k, v in _CONDITIONS.items()}
_watches = {}     # id -> Watch, while it is active: keeps its C callback alive
_retired = []     # callbacks of watches cancelled from inside a callback
_watch_thread = [None]  # the thread ident of dynobs's watch thread, once seen


class Watch:
    """An active watch (dynobs.watch); cancel() ends it."""

    def __init__(self, name, labels, condition, threshold, callback):
        self.name, self.labels, self.condition, self.threshold = name, labels, condition, threshold
        self._callback = callback
        self._fn = _WATCH_FN(self._fire)
        self.id = 0

    def _fire(self, ev, _user):
        _watch_thread[0] = threading.get_ident()
        e = ev.contents
        event = {"id": e.id, "condition": _CONDITION_NAMES.get(e.condition, e.condition),
                 "name": e.name.decode(errors="replace"),
                 "labels": e.labels.decode(errors="replace"), "threshold": e.threshold,
                 "value": e.value, "previous": e.previous, "time_ns": e.time_ns}
        try:
            self._callback(event)
        except Exception:  # a callback's error must not reach the C thread
            stats["watch_callback_errors"] += 1
            traceback.print_exc()

    def cancel(self):
        """Ends the watch: from a callback, at once; from another thread,
        once a callback of this watch running meanwhile has returned.
        True when it was active."""
        with _lock:
            active = _watches.pop(self.id, None) is not None
        if not active:
            return False
        _lib.dynobs_metric_unwatch(self.id)
        if threading.get_ident() == _watch_thread[0]:
            # Its C callback may be running right now (this very call may
            # be inside it): freed later, outside any callback.
            _retired.append(self._fn)
        else:
            del _retired[:]
        return True

    @property
    def active(self):
        return self.id in _watches

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()

    def __repr__(self):
        return "<dynobs.Watch %s{%s} %s %r%s>" % (self.name, self.labels or "", self.condition,
                                                 self.threshold, "" if self.active else
                                                 " cancelled")


@atexit.register
def _cancel_watches():
    """No callback into an interpreter that is shutting down."""
    for w in list(_watches.values()):
        w.cancel()


def watch(name, callback, labels=None, above=None, below=None, change=None):
    """Calls callback(event) from dynobs's watch thread (within a few ms)
    when the series of name and labels in this process crosses a
    threshold: above=x when its value goes from <= x to > x, below=x from
    >= x to < x, change=d when it moves by more than d from the value last
    reported (0: any change); exactly one of them. The value of a gauge,
    a counter's total, a histogram's average over the last second. event
    is a dict: id, condition, name, labels, threshold, value, previous,
    time_ns (CLOCK_MONOTONIC). Returns a Watch (cancel() ends it, also
    from inside the callback); RuntimeError when dynobs is off or too old,
    ValueError for bad arguments, OverflowError past 256 watches."""
    given = [(k, v) for k, v in (("above", above), ("below", below), ("change", change))
             if v is not None]
    if len(given) != 1:
        raise ValueError("watch: exactly one of above=, below=, change=")
    if not callable(callback):
        raise ValueError("watch: callback must be callable")
    cond, threshold = given[0]
    lib = _load()
    if not lib or not _stats_api:
        raise RuntimeError("watch: dynobs is not loaded here (or predates watches)")
    w = Watch(name, _label_string(labels), cond, float(threshold), callback)
    with _lock:
        rc = lib.dynobs_metric_watch(_enc(name, "metric name"), w.labels, _CONDITIONS[cond],
                                     w.threshold, w._fn, None)
        if rc > 0:
            w.id = rc
            _watches[rc] = w
    if rc == _EINVAL:
        raise ValueError("watch of %r: %s" % (name, _strerror(rc)))
    if rc == _ENOSPC:
        raise OverflowError("watch of %r: %s" % (name, _strerror(rc)))
    if rc <= 0:
        raise RuntimeError("watch of %r: %s" % (name, _strerror(rc)))
    return w


# ---- logs ----

def log(severity, message, attributes=None, severity_text=None):
    """Records a log record (severity: an OpenTelemetry SeverityNumber,
    1-24, e.g. 9 INFO, 13 WARN, 17 ERROR) in the current span."""
    lib = _load()
    if not lib or not _signals["logs"]:
        return
    arr, n, _keep = _attr_array(attributes)
    s = _current.get()
    tp = s.traceparent if s is not None else None
    if s is None and _bridge[0] and _running_loop() is not None:
        tp = _aio.request_traceparent()
    rc = lib.dynobs_log_record(int(severity), _enc(severity_text, "severity text")
                               if severity_text else None, _enc(message, "message"), arr, n,
                               tp.encode() if tp else None)
    if rc == _EINVAL:
        raise ValueError("log record: %s" % _strerror(rc))
    if rc in (_ENOSPC, -12):
        stats["logs_refused"] += 1


def _severity(levelno):
    # Python's levels onto OpenTelemetry's ranges: DEBUG 5, INFO 9,
    # WARNING 13, ERROR 17, CRITICAL 21; in-between levels in between.
    if levelno <= 0:
        return 0
    if levelno < 10:
        return 1
    return min(24, 5 + (levelno - 10) * 4 // 10)


def _export(record):
    """Records a logging.LogRecord as an OpenTelemetry log record in the
    current span. Never raises (failures are counted)."""
    try:
        attrs = {
            "logger.name": record.name,
            "code.namespace": record.module,
            "code.function": record.funcName,
            "code.filepath": record.pathname,
            "code.lineno": record.lineno,
            "thread.id": record.thread or 0,
            "thread.name": record.threadName or "",
        }
        if record.exc_info and record.exc_info[1] is not None:
            et, ev, tb = record.exc_info
            attrs["exception.type"] = _qualname(et)
            attrs["exception.message"] = str(ev)
            attrs["exception.stacktrace"] = "".join(traceback.format_exception(et, ev, tb))
        log(_severity(record.levelno), record.getMessage(), attrs, record.levelname)
    except Exception:
        stats["log_handler_errors"] += 1


class LoggingHandler(logging.Handler):
    """A logging handler that records each record as an OpenTelemetry log
    record in the current span: level, message, logger name, module,
    function, file and line, thread, and the exception if any. It never
    raises into the application (failures are counted in
    dynobs.stats["log_handler_errors"]).

    enable() captures records without it; an application that adds it
    anyway decides with it (its place, level and filters) what of the
    records passing through it is exported, each once."""

    def emit(self, record):
        if _capture[0]:
            # The capture has exported this record already (in the thread
            # that logged it, also when this handler runs behind a
            # QueueListener or a MemoryHandler), unless it found this handler
            # on the record's way and left the record to it; then the first
            # LoggingHandler that emits it takes it. A record handed to this
            # handler directly, never logged through a logger, is taken for
            # exported.
            if not getattr(_tls, "deferred", False):
                return
            _tls.deferred = False
        _export(record)


# ---- capturing the application's log records (enable(logs=True)) ----
#
# enable() must not change what the application's logging does. A handler
# on the root logger would: logging.basicConfig() does nothing once the root
# logger has a handler (so after enable() the usual basicConfig(level=INFO)
# left the console silent and the root level at WARNING), and logging's last
# resort (WARNING and above on stderr when no handler exists) went quiet.
# So the capture is no handler: it wraps Logger.callHandlers, the method
# through which logging hands a record to the handlers of its logger and
# the loggers above. Logging calls it once per record, after the logger's
# level, logging.disable() and the logger's filters have let the record
# through (Logger.isEnabledFor and Logger.handle check them first; a
# disabled logger never gets there), so the levels the application set on
# its loggers decide what is exported, and the root logger's handlers stay
# the application's. It runs in the thread that logged, so the record is in
# that thread's span, as with the handler. Not chosen: a record factory
# (logging.setLogRecordFactory) sees each record before the logger's
# filters and before a disabled logger drops it, and an application that
# sets its own factory replaces it; wrapping Logger.handle would have to
# repeat its disabled and filter checks (whose protocol changed in 3.12).
# A Logger subclass that overrides callHandlers without calling it is not
# captured.
#
# Where the record goes is the walk callHandlers makes (_route repeats it):
# up the hierarchy until a logger with propagate=False. A record that
# reaches the top is exported, as a handler on the root logger would see
# it, whatever the handlers' own levels. A logger with propagate=False
# keeps its records to its own handlers (uvicorn's and gunicorn's access
# loggers do, to print them once); they are exported when the application
# still outputs them there: a handler on the way admits the record's level
# (its filters are not run a second time; a NullHandler outputs nothing, it
# is how a logger is silenced), or there is none and logging's last resort
# prints it.

_capture = [False]         # enable(logs=True) in effect
_tls = threading.local()   # .deferred: the record in dispatch is left to a LoggingHandler
_call_handlers = None      # the Logger.callHandlers that the capture wraps
_SKIP, _EXPORT, _DEFER = 0, 1, 2


def _route(logger, record):
    """What the capture does with record, logged through logger."""
    level = record.levelno
    c, found, admitted = logger, False, False
    while True:
        for h in c.handlers:
            if isinstance(h, LoggingHandler):
                return _DEFER
            found = True
            if level >= h.level and not isinstance(h, logging.NullHandler):
                admitted = True
        if c.parent is None:
            return _EXPORT
        if not c.propagate:
            break
        c = c.parent
    if not found:
        last = logging.lastResort
        admitted = last is not None and level >= last.level
    return _EXPORT if admitted else _SKIP


def _install_capture():
    global _call_handlers
    if _call_handlers is not None:
        return
    real = logging.Logger.callHandlers

    @functools.wraps(real)
    def callHandlers(self, record):
        if not _capture[0]:
            return real(self, record)
        try:
            route = _route(self, record)
        except Exception:
            stats["log_handler_errors"] += 1
            route = _SKIP
        if route == _EXPORT:
            _export(record)
        elif route == _DEFER:
            # Saved and restored: a handler may log, and its record is
            # dispatched inside this one.
            prev = getattr(_tls, "deferred", False)
            _tls.deferred = True
            try:
                return real(self, record)
            finally:
                _tls.deferred = prev
        return real(self, record)

    _call_handlers = real
    logging.Logger.callHandlers = callHandlers


# ---- enable ----

def enable(service_name=None, endpoint=None, sampler=None, traces=True, metrics=True,
           logs=True):
    """Sets dynobs up for this process. Explicit arguments win over the
    OTEL_* variables, which win over the defaults.

    service_name: service.name (OTEL_SERVICE_NAME).
    endpoint: the OTLP/HTTP endpoint of the dynobs-exporter that enable()
        starts when none is running for this segment directory
        (OTEL_EXPORTER_OTLP_ENDPOINT); an exporter already running keeps
        its own.
    sampler: "always_on", "always_off", "traceidratio:0.25",
        "parentbased_traceidratio:0.25", ... (OTEL_TRACES_SAMPLER[_ARG]).
    traces, metrics, logs: turn this module's spans, metrics or logs off;
        logs=True also exports the records of the logging module that the
        application's logger levels let through, without adding a handler
        (its basicConfig, dictConfig and handlers work as without dynobs).
    Returns True when recording."""
    with _lock:
        loaded = _lib is not None and _lib is not False
        if sampler is not None:
            sname, _, sarg = str(sampler).partition(":")
            if loaded:
                if os.environ.get("OTEL_TRACES_SAMPLER") != sname:
                    warnings.warn("dynobs: the sampler is chosen when the library starts; set "
                                  "OTEL_TRACES_SAMPLER before starting the process",
                                  RuntimeWarning, stacklevel=2)
            else:
                os.environ["OTEL_TRACES_SAMPLER"] = sname
                if sarg:
                    os.environ["OTEL_TRACES_SAMPLER_ARG"] = sarg
        if service_name is not None and not loaded and not _loaded_path():
            os.environ["OTEL_SERVICE_NAME"] = service_name
        lib = _load()
        if lib and service_name is not None:
            rc = lib.dynobs_set_service_name(_enc(service_name, "service name"))
            if rc == _EBUSY:
                warnings.warn("dynobs: service.name is already fixed for this process (its "
                              "segment exists); set OTEL_SERVICE_NAME before it starts",
                              RuntimeWarning, stacklevel=2)
            elif rc == _EINVAL:
                raise ValueError("service name %r: %s" % (service_name, _strerror(rc)))
        _signals.update(traces=bool(traces), metrics=bool(metrics), logs=bool(logs))
        _traces_on[0] = bool(traces)
        if logs:
            _install_capture()
        _capture[0] = bool(logs)
        if endpoint is not None:
            _ensure_exporter(endpoint)
        _install_bridge()
        return enabled()


# ---- asyncio (dynobs._asyncio) ----

_bridge = [False]  # installed: coroutines serving a request take it as their parent


def _install_bridge():
    """Carries each inbound request's context across asyncio tasks and
    announces it to the shim as the parent of their outbound HTTP calls,
    when the shim is preloaded (enable(), and dynobs-run through
    runtimes/python/sitecustomize.py). Never raises; True when installed."""
    try:
        _bridge[0] = _aio.install()
    except Exception:
        _bridge[0] = False
    return _bridge[0]


def _ensure_exporter(endpoint):
    if not (endpoint.startswith("http://") or endpoint.startswith("https://")):
        raise ValueError("endpoint %r: expected an http:// or https:// URL" % endpoint)
    d = os.environ.get("DYNOBS_SHM_DIR") or "/dev/shm/dynobs"
    os.makedirs(d, exist_ok=True)
    lock = os.path.join(d, ".exporter.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # one is running
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    exe = _find_exporter()
    if not exe:
        warnings.warn("dynobs: dynobs-exporter not found (set DYNOBS_EXPORTER); nothing will be "
                      "sent to %s" % endpoint, RuntimeWarning, stacklevel=3)
        return False
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, DYNOBS_SHM_DIR=d,
               DYNOBS_EXPORTER_IDLE_EXIT=env.get("DYNOBS_EXPORTER_IDLE_EXIT", "30"))
    # Through a shell that exits at once: the exporter is not our child.
    subprocess.run(["sh", "-c", 'setsid "$0" </dev/null >>"$1" 2>&1 &', exe,
                    os.path.join(d, ".exporter.log")], env=env, check=False)
    return True


def _find_exporter():
    cands = [os.environ.get("DYNOBS_EXPORTER")]
    if _lib_path:
        libdir = os.path.dirname(_lib_path)
        cands += [os.path.join(libdir, "exporter", "dynobs-exporter"),
                  os.path.join(libdir, "..", "bin", "dynobs-exporter")]
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "build", "exporter", "dynobs-exporter"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.realpath(c)
    import shutil
    return shutil.which("dynobs-exporter")


from . import _asyncio as _aio  # noqa: E402  (it reads this module's names)
