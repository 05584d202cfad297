/* edi.x12._speedups: the two loops of the fast path that touch every segment, in C.
 *
 * edi/x12/fastpath.py holds the Python versions: they are the reference (their docstrings are
 * the contract), the fallback when this is not built, and tests/test_fastpath.py holds the two
 * equal on random inputs. What the loops decide with (limits, errors, handlers) stays in Python.
 *
 * split_uniform(data, start, stop, separator, base) -> (bodies, offsets, longest) or None
 *     One pass of memchr over the run instead of split, count, min, max and accumulate.
 * dispatch(target, bodies, offsets, first_number, table, missing) -> None
 *     Calls handler(target, body, number, offset) per handled body. A small table of the keys
 *     (first four bytes) seen in this call answers repeats, so no key object is made per
 *     segment; the dict is asked once per distinct key.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int
is_whitespace(unsigned char byte)
{
    return byte == ' ' || byte == '\t' || byte == '\r' || byte == '\n' || byte == 0x0b || byte == 0x0c;
}

static PyObject *
split_uniform(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "split_uniform(data, start, stop, separator, base)");
        return NULL;
    }
    Py_buffer data, separator;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[3], &separator, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *result = NULL, *bodies = NULL, *offsets = NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t stop = PyLong_AsSsize_t(args[2]);
    Py_ssize_t base = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        goto done;
    if (start < 0 || stop > data.len || start > stop || separator.len < 1) {
        PyErr_SetString(PyExc_ValueError, "split_uniform: bad region or separator");
        goto done;
    }
    const char *bytes = (const char *)data.buf;
    const char *sep = (const char *)separator.buf;
    Py_ssize_t sep_len = separator.len;
    char term = sep[0];
    if (sep_len > 1 && memchr(sep + 1, term, (size_t)(sep_len - 1)) != NULL) {
        result = Py_NewRef(Py_None);  /* a line break holding the terminator: the general path */
        goto done;
    }
    bodies = PyList_New(0);
    offsets = PyList_New(0);
    if (bodies == NULL || offsets == NULL)
        goto done;
    Py_ssize_t longest = 0;
    Py_ssize_t at = start;
    while (at < stop) {
        const char *found = memchr(bytes + at, term, (size_t)(stop - at));
        if (found == NULL)
            goto not_uniform;  /* the region does not end with a separator */
        Py_ssize_t end = found - bytes;
        if (end + sep_len > stop || memcmp(found + 1, sep + 1, (size_t)(sep_len - 1)) != 0)
            goto not_uniform;
        Py_ssize_t length = end - at;
        /* Whitespace after a separator (an empty body: the next terminator, when that is a
         * newline) is the general path's: it becomes the next segment's prefix there. */
        if (is_whitespace((unsigned char)bytes[at]))
            goto not_uniform;
        if (length > longest)
            longest = length;
        PyObject *body = PyBytes_FromStringAndSize(bytes + at, length);
        if (body == NULL)
            goto done;
        int failed = PyList_Append(bodies, body);
        Py_DECREF(body);
        if (failed)
            goto done;
        PyObject *offset = PyLong_FromSsize_t(base + at);
        if (offset == NULL)
            goto done;
        failed = PyList_Append(offsets, offset);
        Py_DECREF(offset);
        if (failed)
            goto done;
        at = end + sep_len;
    }
    result = Py_BuildValue("(OOn)", bodies, offsets, longest);
    goto done;
not_uniform:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(bodies);
    Py_XDECREF(offsets);
    PyBuffer_Release(&separator);
    PyBuffer_Release(&data);
    return result;
}

#define SEEN_SLOTS ((size_t)128)  /* a power of two, over the distinct keys a batch holds (~40) */

typedef struct {
    uint64_t key;  /* 0: free; else the key's length in the low byte and its bytes above */
    PyObject *handler;  /* borrowed from the table: no Python code runs during the call */
} Seen;

static PyObject *
dispatch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "dispatch(target, bodies, offsets, first_number, table, missing)");
        return NULL;
    }
    PyObject *target = args[0], *bodies = args[1], *offsets = args[2], *table = args[4], *missing = args[5];
    if (!PyList_Check(bodies) || !PyList_Check(offsets) || !PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "dispatch: bodies and offsets are lists, table a dict");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(bodies);
    if (PyList_GET_SIZE(offsets) != count) {
        PyErr_SetString(PyExc_ValueError, "dispatch: bodies and offsets differ in length");
        return NULL;
    }
    Py_ssize_t first = PyLong_AsSsize_t(args[3]);
    if (first == -1 && PyErr_Occurred())
        return NULL;
    Py_INCREF(bodies);
    Py_INCREF(offsets);
    Py_INCREF(table);
    Seen seen[SEEN_SLOTS];
    memset(seen, 0, sizeof seen);
    PyObject *result = NULL;
    PyObject *call[4];
    call[0] = target;
    /* Both lengths re-read each time: a handler is Python code and could change the lists. */
    for (Py_ssize_t i = 0; i < count && i < PyList_GET_SIZE(bodies) && i < PyList_GET_SIZE(offsets); i++) {
        PyObject *body = PyList_GET_ITEM(bodies, i);
        if (!PyBytes_Check(body)) {
            PyErr_SetString(PyExc_TypeError, "dispatch: a body is not bytes");
            goto done;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(body);
        Py_ssize_t width = length < 4 ? length : 4;
        uint64_t key = (uint64_t)width + 1;
        memcpy((char *)&key + 1, PyBytes_AS_STRING(body), (size_t)width);
        size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 57) & (SEEN_SLOTS - 1);
        PyObject *handler = NULL;
        Seen *free_entry = NULL;
        for (size_t probe = 0; probe < SEEN_SLOTS; probe++) {
            Seen *entry = &seen[(slot + probe) & (SEEN_SLOTS - 1)];
            if (entry->key == key) {
                handler = entry->handler;
                break;
            }
            if (entry->key == 0) {
                free_entry = entry;
                break;
            }
        }
        if (handler == NULL) {
            PyObject *name = PyBytes_FromStringAndSize(PyBytes_AS_STRING(body), width);
            if (name == NULL)
                goto done;
            handler = PyDict_GetItemWithError(table, name);
            Py_DECREF(name);
            if (handler == NULL) {
                if (PyErr_Occurred())
                    goto done;
                handler = missing;
            }
            if (free_entry != NULL) {
                free_entry->key = key;
                free_entry->handler = Py_NewRef(handler);
            }
        }
        if (handler == Py_None)
            continue;
        PyObject *number = PyLong_FromSsize_t(first + i);
        if (number == NULL)
            goto done;
        Py_INCREF(body);
        call[1] = body;
        call[2] = number;
        call[3] = PyList_GET_ITEM(offsets, i);
        Py_INCREF(call[3]);
        PyObject *returned;
        if (handler == missing) {
            PyObject *resolved = PyObject_Vectorcall(missing, call, 4, NULL);
            returned = resolved;
            if (resolved != NULL && resolved != Py_None) {
                returned = PyObject_Vectorcall(resolved, call, 4, NULL);
                Py_DECREF(resolved);
            }
        } else {
            returned = PyObject_Vectorcall(handler, call, 4, NULL);
        }
        Py_DECREF(body);
        Py_DECREF(number);
        Py_DECREF(call[3]);
        if (returned == NULL)
            goto done;
        Py_DECREF(returned);
    }
    result = Py_NewRef(Py_None);
done:
    for (size_t slot = 0; slot < SEEN_SLOTS; slot++)
        Py_XDECREF(seen[slot].handler);
    Py_DECREF(table);
    Py_DECREF(offsets);
    Py_DECREF(bodies);
    return result;
}

static PyMethodDef methods[] = {
    {"dispatch", (PyCFunction)(void (*)(void))dispatch, METH_FASTCALL,
     "dispatch(target, bodies, offsets, first_number, table, missing): call each body's handler"},
    {"split_uniform", (PyCFunction)(void (*)(void))split_uniform, METH_FASTCALL,
     "split_uniform(data, start, stop, separator, base) -> (bodies, offsets, longest) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "edi.x12._speedups",
    .m_doc = "The fast path's per-segment loops in C (edi/x12/fastpath.py has them in Python).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
