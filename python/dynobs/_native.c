/* dynobs._native: the hot part of `with dynobs.span("x"):` in C.
 *
 * The pure-Python package reaches the library through ctypes, and two
 * ctypes calls plus a Python span object and its with-protocol cost
 * microseconds. This module does the same work without leaving C: span()
 * starts a span in the common cases (no explicit parent, what is current
 * is a span of ours or nothing outside a coroutine, attributes of the
 * common types), and SpanBase carries
 * the state every span has (handle, name, token, ended) with __enter__,
 * __exit__ and end() written against it. Everything else stays in
 * dynobs/__init__.py, which is also the fallback when this module is
 * missing or DYNOBS_PYTHON_NATIVE=0: any call that is not the common
 * case is handed, unchanged, to the Python start_span, so both paths
 * share one definition of what a span is.
 *
 * The library is the one ctypes loaded (preloaded or by path): the
 * package hands over the addresses of the dynobs_span_* functions used
 * here, so this module links against nothing of ours. The
 * GIL stays held across those calls (ctypes releases it): they neither
 * block nor call back into Python, so no thread can wait on them while
 * holding something they need. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

typedef void *(*span_start_fn)(const char *name, int kind);
typedef void *(*span_start_ex_fn)(const char *name, int kind, const char *parent,
                                  const char *tracestate, int flags);
typedef int (*span_end_fn)(void *span);
typedef int (*set_str_fn)(void *span, const char *key, const char *value);
typedef int (*set_int_fn)(void *span, const char *key, int64_t value);
typedef int (*set_double_fn)(void *span, const char *key, double value);
typedef int (*set_bool_fn)(void *span, const char *key, int value);

static span_start_fn span_start; /* NULL until ready(): spans start in Python */
static span_start_fn bound_start;
static span_start_ex_fn span_start_ex;
static span_end_fn span_end;
static set_str_fn set_str;
static set_int_fn set_int;
static set_double_fn set_double;
static set_bool_fn set_bool;

/* include/dynobs/dynobs.h: DYNOBS_EINVAL and the span flags. */
#define EINVAL_RC (-22)
#define SPAN_NO_CONTEXT 0x2
#define SPAN_LOCAL_PARENT 0x4

/* Set once by setup(): the package's objects this module works with. */
static PyObject *current;      /* the ContextVar of the current span */
static PyObject *running_loop; /* asyncio's _get_running_loop */
static PyObject *traces_on;    /* a one-item list: spans recorded or not */
static PyObject *py_start;     /* the Python start_span: every other case */
static PyObject *py_refused;   /* counts a refused span, returns a no-op span */
static PyObject *py_set_attr;  /* Span.set_attribute in Python: every other value */
static PyTypeObject *span_type; /* dynobs.Span, a subclass of SpanBase */

#define KIND_INTERNAL 1
#define KIND_MAX 5

typedef struct {
    PyObject_HEAD
    void *h;
    PyObject *name;
    PyObject *token; /* the context variable's token while current */
    PyObject *tp;    /* the traceparent, once asked for */
    PyObject *ts;    /* tracestate inherited from a remote parent */
    int ended;
} SpanBase;

static int span_traverse(SpanBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->token);
    Py_VISIT(self->tp);
    Py_VISIT(self->ts);
    return 0;
}

static int span_clear(SpanBase *self)
{
    Py_CLEAR(self->name);
    Py_CLEAR(self->token);
    Py_CLEAR(self->tp);
    Py_CLEAR(self->ts);
    return 0;
}

/* dynobs.Span is a heap subclass: its deallocator drops the reference to
 * the type after this one has run (this base type is static). */
static void span_dealloc(SpanBase *self)
{
    PyObject_GC_UnTrack(self);
    span_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The handle as ctypes takes it (an int, or None for no span), so that
 * the methods written in Python pass it on as they always did. */
static PyObject *span_get_h(SpanBase *self, void *closure)
{
    (void)closure;
    if (self->h == NULL)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr(self->h);
}

static int span_set_h(SpanBase *self, PyObject *v, void *closure)
{
    void *h = NULL;

    (void)closure;
    if (v != NULL && v != Py_None) {
        h = PyLong_AsVoidPtr(v);
        if (h == NULL && PyErr_Occurred())
            return -1;
    }
    self->h = h;
    return 0;
}

static PyObject *span_get_ended(SpanBase *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->ended);
}

static int span_set_ended(SpanBase *self, PyObject *v, void *closure)
{
    int t = v == NULL ? 0 : PyObject_IsTrue(v);

    (void)closure;
    if (t < 0)
        return -1;
    self->ended = t;
    return 0;
}

static PyObject *span_get_recording(SpanBase *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(!self->ended);
}

static void span_finish(SpanBase *self)
{
    if (self->ended)
        return;
    self->ended = 1;
    if (self->h != NULL && span_end != NULL)
        span_end(self->h);
    self->h = NULL;
}

static int set_attribute(SpanBase *s, PyObject *key, PyObject *value);

/* fn(self, *args, **kwargs) for a vectorcall of a method. */
static PyObject *call_with_self(PyObject *fn, PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t i, n = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *small[8], **stack = small, *r;

    if (n + 1 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        stack = PyMem_New(PyObject *, n + 1);
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = self;
    for (i = 0; i < n; i++)
        stack[i + 1] = args[i];
    r = PyObject_Vectorcall(fn, stack, nargs + 1, kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return r;
}

/* Span.set_attribute(key, value): the common types in C; any other call
 * (keywords, other types, a refused key) is the Python function's. */
static PyObject *span_set_attribute(SpanBase *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 2)
        return call_with_self(py_set_attr, (PyObject *)self, args, nargs, kwnames);
    if (!self->ended && set_attribute(self, args[0], args[1]) < 0)
        return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *span_end_method(SpanBase *self, PyObject *unused)
{
    (void)unused;
    span_finish(self);
    Py_RETURN_NONE;
}

static PyObject *span_enter(SpanBase *self, PyObject *unused)
{
    PyObject *token;

    (void)unused;
    token = PyContextVar_Set(current, (PyObject *)self);
    if (token == NULL)
        return NULL;
    Py_XSETREF(self->token, token);
    Py_INCREF(self);
    return (PyObject *)self;
}

/* As the Python __exit__: an Exception leaving the block is recorded (by
 * the Python method _record_error, off the hot path), the context
 * variable is reset (a ValueError there means the block ended in another
 * context, a moved generator, and is ignored), then the span ends. */
static PyObject *span_exit(SpanBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *token;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "__exit__ takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (args[1] != Py_None) {
        int is_exc = PyObject_IsInstance(args[1], PyExc_Exception);
        if (is_exc < 0)
            return NULL;
        if (is_exc) {
            PyObject *r = PyObject_CallMethod((PyObject *)self, "_record_error", "OO",
                                              args[0], args[1]);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    token = self->token;
    if (token != NULL && token != Py_None) {
        self->token = NULL;
        if (PyContextVar_Reset(current, token) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(token);
                return NULL;
            }
            PyErr_Clear();
        }
        Py_DECREF(token);
    }
    span_finish(self);
    Py_RETURN_FALSE;
}

static PyMethodDef span_methods[] = {
    {"end", (PyCFunction)span_end_method, METH_NOARGS, "Ends the span (once)."},
    {"set_attribute", (PyCFunction)(void (*)(void))span_set_attribute,
     METH_FASTCALL | METH_KEYWORDS, "set_attribute(key, value): returns the span."},
    {"__enter__", (PyCFunction)span_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))span_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef span_members[] = {
    {"name", T_OBJECT, offsetof(SpanBase, name), 0, NULL},
    {"_token", T_OBJECT, offsetof(SpanBase, token), 0, NULL},
    {"_tp", T_OBJECT, offsetof(SpanBase, tp), 0, NULL},
    {"_ts", T_OBJECT, offsetof(SpanBase, ts), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef span_getset[] = {
    {"_h", (getter)span_get_h, (setter)span_set_h, NULL, NULL},
    {"_ended", (getter)span_get_ended, (setter)span_set_ended, NULL, NULL},
    {"recording", (getter)span_get_recording, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpanBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dynobs._native.SpanBase",
    .tp_basicsize = sizeof(SpanBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What every span holds, for dynobs.Span (the C half of it).",
    .tp_traverse = (traverseproc)span_traverse,
    .tp_clear = (inquiry)span_clear,
    .tp_dealloc = (destructor)span_dealloc,
    .tp_methods = span_methods,
    .tp_members = span_members,
    .tp_getset = span_getset,
    .tp_new = PyType_GenericNew,
};

/* span()'s arguments, in the order of the Python start_span. */
enum { ARG_NAME, ARG_KIND, ARG_ATTRIBUTES, ARG_PARENT, ARG_ROOT, NARGS };
static const char *const arg_names[NARGS] = {"name", "kind", "attributes", "parent", "root"};

/* Fills argv from a vectorcall; 0 when the call is anything this module
 * does not decide itself (then the Python start_span takes it whole,
 * errors included). */
static int parse(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                 PyObject *argv[NARGS])
{
    Py_ssize_t i, nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);

    if (nargs < 1 || nargs > NARGS)
        return 0;
    for (i = 0; i < NARGS; i++)
        argv[i] = i < nargs ? args[i] : NULL;
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int j;

        for (j = 1; j < NARGS; j++)
            if (PyUnicode_CompareWithASCIIString(k, arg_names[j]) == 0)
                break;
        if (j == NARGS || argv[j] != NULL)
            return 0;
        argv[j] = args[nargs + i];
    }
    return 1;
}

/* One attribute, as Span.set_attribute sets it; the Python function
 * takes every value this does not (an int beyond 64 bits, a str that is
 * not UTF-8, any other type) and raises its ValueError for a refused key. */
static int set_attribute(SpanBase *s, PyObject *key, PyObject *value)
{
    const char *k = PyUnicode_CheckExact(key) && set_str != NULL ? PyUnicode_AsUTF8(key) : NULL;
    int rc = EINVAL_RC;

    if (k == NULL) {
        PyErr_Clear();
    } else if (value == Py_None) {
        return 0;
    } else if (PyBool_Check(value)) {
        rc = set_bool(s->h, k, value == Py_True);
    } else if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow); /* 64 bits here */

        if (!overflow && !(v == -1 && PyErr_Occurred()))
            rc = set_int(s->h, k, v);
        PyErr_Clear();
    } else if (PyFloat_CheckExact(value)) {
        rc = set_double(s->h, k, PyFloat_AS_DOUBLE(value));
    } else if (PyUnicode_CheckExact(value)) {
        const char *v = PyUnicode_AsUTF8(value);

        if (v != NULL)
            rc = set_str(s->h, k, v);
        PyErr_Clear();
    }
    if (rc == EINVAL_RC) {
        PyObject *r = PyObject_CallFunctionObjArgs(py_set_attr, (PyObject *)s, key, value, NULL);

        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* The parent's traceparent and tracestate, as the Python start_span
 * passes them on for a current span of ours; 0 when it is not that
 * (then Python decides), -1 on an error. The strings live as long as
 * the references left in *tp_obj and the parent. */
static int parent_of(SpanBase *parent, PyObject **tp_obj, const char **tp, const char **ts)
{
    *tp = *ts = NULL;
    if (parent->tp != NULL && parent->tp != Py_None) {
        *tp_obj = parent->tp;
        Py_INCREF(*tp_obj);
    } else {
        *tp_obj = PyObject_GetAttrString((PyObject *)parent, "traceparent");
    }
    if (*tp_obj == NULL)
        return -1;
    if (*tp_obj != Py_None) {
        if (!PyUnicode_CheckExact(*tp_obj) || (*tp = PyUnicode_AsUTF8(*tp_obj)) == NULL)
            goto python;
        if (**tp == '\0')
            *tp = NULL;
    }
    if (parent->ts != NULL && parent->ts != Py_None) {
        if (!PyUnicode_CheckExact(parent->ts) || (*ts = PyUnicode_AsUTF8(parent->ts)) == NULL)
            goto python;
        if (**ts == '\0')
            *ts = NULL;
    }
    return 1;
python:
    PyErr_Clear();
    Py_CLEAR(*tp_obj);
    return 0;
}

/* The common cases of start_span in C: no parent or root given, and
 * what is current is a span of ours, or nothing outside a running event
 * loop; attributes in a dict. Anything else, to Python. */
static PyObject *span_fast(PyObject *module, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames)
{
    PyObject *argv[NARGS], *attrs, *parent, *loop, *tp_obj = NULL, *key, *value;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), pos = 0;
    const char *name, *tp = NULL, *ts = NULL;
    long kind = KIND_INTERNAL;
    SpanBase *s;
    void *h;

    (void)module;
    if (span_start == NULL || !parse(args, nargs, kwnames, argv))
        goto python;
    if (argv[ARG_KIND] != NULL) {
        if (!PyLong_CheckExact(argv[ARG_KIND]))
            goto python;
        kind = PyLong_AsLong(argv[ARG_KIND]);
        if (kind < KIND_INTERNAL || kind > KIND_MAX) {
            PyErr_Clear();
            goto python;
        }
    }
    attrs = argv[ARG_ATTRIBUTES];
    if (attrs == Py_None || (attrs != NULL && PyDict_CheckExact(attrs) && PyDict_GET_SIZE(attrs) == 0))
        attrs = NULL;
    if ((attrs != NULL && !PyDict_CheckExact(attrs)) ||
        (argv[ARG_PARENT] != NULL && argv[ARG_PARENT] != Py_None) ||
        (argv[ARG_ROOT] != NULL && argv[ARG_ROOT] != Py_False) ||
        PyList_GET_ITEM(traces_on, 0) != Py_True || !PyUnicode_CheckExact(argv[ARG_NAME]))
        goto python;
    name = PyUnicode_AsUTF8(argv[ARG_NAME]);
    if (name == NULL) { /* lone surrogates: Python encodes them with "replace" */
        PyErr_Clear();
        goto python;
    }
    if (PyContextVar_Get(current, NULL, &parent) < 0)
        return NULL;
    Py_XDECREF(parent); /* the context still holds it */
    if (parent == Py_None)
        parent = NULL;
    if (parent != NULL && Py_TYPE(parent) != span_type)
        goto python; /* a remote parent (attach) */
    loop = PyObject_CallNoArgs(running_loop);
    if (loop == NULL)
        return NULL;
    Py_DECREF(loop);
    /* In a coroutine with no span of ours current, the asyncio bridge may
     * know the request it serves: Python asks it. */
    if (loop != Py_None && parent == NULL)
        goto python;
    if (parent == NULL) {
        h = span_start(name, (int)kind);
    } else {
        int rc = parent_of((SpanBase *)parent, &tp_obj, &tp, &ts);

        if (rc <= 0) {
            if (rc < 0)
                return NULL;
            goto python;
        }
        /* A coroutine leaves the thread's context alone: it belongs to
         * whichever task runs (the context variable carries ours). */
        h = span_start_ex(name, (int)kind, tp, ts,
                          SPAN_LOCAL_PARENT | (loop != Py_None ? SPAN_NO_CONTEXT : 0));
        Py_DECREF(tp_obj);
    }
    if (h == NULL)
        return PyObject_CallOneArg(py_refused, argv[ARG_NAME]);
    s = (SpanBase *)span_type->tp_alloc(span_type, 0);
    if (s == NULL) {
        span_end(h);
        return NULL;
    }
    s->h = h;
    Py_INCREF(argv[ARG_NAME]);
    s->name = argv[ARG_NAME];
    if (ts != NULL) { /* the parent's, kept by it */
        s->ts = ((SpanBase *)parent)->ts;
        Py_INCREF(s->ts);
    }
    /* As in Python, a span whose attributes raise stays started. */
    while (attrs != NULL && PyDict_Next(attrs, &pos, &key, &value)) {
        int rc;

        Py_INCREF(key);
        Py_INCREF(value);
        rc = set_attribute(s, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            Py_DECREF(s);
            return NULL;
        }
    }
    return (PyObject *)s;
python:
    return PyObject_Vectorcall(py_start, args, nargsf, kwnames);
}

static PyObject *setup(PyObject *module, PyObject *args)
{
    PyObject *cls, *var, *loop, *on, *start, *refused, *set_attr;

    (void)module;
    if (!PyArg_ParseTuple(args, "O!O!OO!OOO", &PyType_Type, &cls, &PyContextVar_Type, &var,
                          &loop, &PyList_Type, &on, &start, &refused, &set_attr))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &SpanBaseType) || PyList_GET_SIZE(on) != 1) {
        PyErr_SetString(PyExc_TypeError, "setup: a SpanBase subclass and a one-item list");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(span_type, (PyTypeObject *)cls);
    Py_INCREF(var);
    Py_XSETREF(current, var);
    Py_INCREF(loop);
    Py_XSETREF(running_loop, loop);
    Py_INCREF(on);
    Py_XSETREF(traces_on, on);
    Py_INCREF(start);
    Py_XSETREF(py_start, start);
    Py_INCREF(refused);
    Py_XSETREF(py_refused, refused);
    Py_INCREF(set_attr);
    Py_XSETREF(py_set_attr, set_attr);
    Py_RETURN_NONE;
}

/* The addresses of the library's functions, from ctypes: spans that
 * Python starts meanwhile can use them at once; span() starts spans
 * itself only after ready(). */
static PyObject *bind(PyObject *module, PyObject *args)
{
    enum { START, START_EX, END, SET_STR, SET_INT, SET_DOUBLE, SET_BOOL, NFN };
    void *fn[NFN];
    int i;

    (void)module;
    if (py_start == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind: setup() first");
        return NULL;
    }
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != NFN) {
        PyErr_SetString(PyExc_TypeError, "bind: 7 function addresses");
        return NULL;
    }
    for (i = 0; i < NFN; i++) {
        fn[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(args, i));
        if (fn[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "bind: a NULL function address");
            return NULL;
        }
    }
    /* Data and function pointers are the same size wherever CPython runs. */
    bound_start = (span_start_fn)fn[START];
    span_start_ex = (span_start_ex_fn)fn[START_EX];
    span_end = (span_end_fn)fn[END];
    set_str = (set_str_fn)fn[SET_STR];
    set_int = (set_int_fn)fn[SET_INT];
    set_double = (set_double_fn)fn[SET_DOUBLE];
    set_bool = (set_bool_fn)fn[SET_BOOL];
    Py_RETURN_NONE;
}

/* From here on span() starts spans itself: the package has set up what
 * their Python methods use. */
static PyObject *ready(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (bound_start == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ready: bind() first");
        return NULL;
    }
    span_start = bound_start;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"span", (PyCFunction)(void (*)(void))span_fast, METH_FASTCALL | METH_KEYWORDS,
     "span(name, kind=INTERNAL, attributes=None, parent=None, root=False)\n--\n\n"
     "dynobs.start_span (which see), in C when no span of ours is current, no\n"
     "event loop runs, and neither attributes nor a parent are given."},
    {"setup", setup, METH_VARARGS,
     "setup(Span, current, running_loop, traces_on, start_span, refused, set_attribute)"},
    {"bind", bind, METH_VARARGS,
     "bind(start, start_ex, end, set_str, set_int, set_double, set_bool): the\n"
     "addresses of those dynobs_span_* functions in the library loaded."},
    {"ready", ready, METH_NOARGS, "ready(): span() starts spans itself from now on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "dynobs._native",
    "The hot part of dynobs spans in C (see dynobs/_native.c).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m;

    if (PyType_Ready(&SpanBaseType) < 0)
        return NULL;
    m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    /* What __init__.py and this module agree on (setup, bind, ready and
     * SpanBase): a module of another version is not used. */
    if (PyModule_AddIntConstant(m, "API", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SpanBaseType);
    if (PyModule_AddObject(m, "SpanBase", (PyObject *)&SpanBaseType) < 0) {
        Py_DECREF(&SpanBaseType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
