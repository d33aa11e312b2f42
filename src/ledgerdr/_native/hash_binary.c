/* ledgerdr._ionhash's readers: Ion Hash straight from a stream's Ion binary bytes (binary_hash_repr,
 * binary_ion_hash), a struct's top-level field (binary_top_field), and SHA-256 for tests. */
#include "ionhash.h"

/* Runs rd_stream on `arg` (a bytes-like object); returns a new reference: the bytes, None, or NULL. */
static PyObject *hash_repr(PyObject *arg, int digest)
{
    Py_buffer view;
    Rd r;
    int rc;
    PyObject *result = NULL;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    memset(&r, 0, sizeof r);
    r.d = (const unsigned char *)view.buf;
    r.n = view.len;
    rc = rd_stream(&r);
    if (rc == OK) {
        if (digest) {
            unsigned char out[32];
            ldr_sha256(r.out.p, (size_t)r.out.len, out);
            result = PyBytes_FromStringAndSize((const char *)out, 32);
        } else {
            result = PyBytes_FromStringAndSize((const char *)r.out.p, r.out.len);
        }
    } else if (rc == NOTREAD) {
        result = Py_NewRef(Py_None);
    }
    rd_free(&r);
    PyBuffer_Release(&view);
    return result;
}

PyObject *py_binary_hash_repr(PyObject *module, PyObject *arg)
{
    (void)module;
    return hash_repr(arg, 0);
}

PyObject *py_binary_ion_hash(PyObject *module, PyObject *arg)
{
    (void)module;
    return hash_repr(arg, 1);
}

static PyObject *digest_of(PyObject *arg, void (*sha)(const unsigned char *, size_t, unsigned char *))
{
    Py_buffer view;
    unsigned char out[32];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    sha((const unsigned char *)view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

PyObject *py_sha256(PyObject *module, PyObject *arg)
{
    (void)module;
    return digest_of(arg, ldr_sha256);
}

PyObject *py_sha256_portable(PyObject *module, PyObject *arg)
{
    (void)module;
    return digest_of(arg, ldr_sha256_portable);
}

/* hashing.dot: an empty operand gives the other unchanged (as bytes), else both must be 32 bytes (ValueError
 * with hashing.dot's message). */
PyObject *py_dot(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer a, b;
    unsigned char out[32];
    PyObject *result = NULL;
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "dot(a, b) takes two arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &a, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &b, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (a.len == 0) {
        result = PyBytes_FromStringAndSize((const char *)b.buf, b.len);
    } else if (b.len == 0) {
        result = PyBytes_FromStringAndSize((const char *)a.buf, a.len);
    } else if (a.len != 32 || b.len != 32) {
        PyErr_Format(PyExc_ValueError, "dot needs 32-byte hashes, got %zd and %zd bytes", a.len, b.len);
    } else {
        dot32((const unsigned char *)a.buf, (const unsigned char *)b.buf, out);
        result = PyBytes_FromStringAndSize((const char *)out, 32);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

/* --- binary_top_field ----------------------------------------------------------------------------------- */

/* ionread.binary_top_field_python ported path by path: the top-level field of the struct d[0:n] whose s(name)
 * is wanted[0:wanted_n]; OK with *found (0: absent) and its descriptor and body, NOTREAD (None) or ERROR. */
static int rd_top_field(Rd *r, const unsigned char *wanted, Py_ssize_t wanted_n, int *found, int *descriptor,
                        Py_ssize_t *start, Py_ssize_t *stop)
{
    Py_ssize_t pos, end = r->n;
    uint64_t length, sid;
    int rc;
    if ((rc = rd_prelude(r, &pos)) != OK) return rc;
    if (pos >= end) return NOTREAD;
    if (r->d[pos] >> 4 != 0xD || (r->d[pos] & 0x0F) == 0x0F) return NOTREAD; /* not a struct */
    length = r->d[pos++] & 0x0F;
    if ((length == 14 || length == 1) && (rc = rd_varuint(r, &pos, end, &length)) != OK) return rc;
    if ((uint64_t)pos + length != (uint64_t)end) return NOTREAD;
    *found = 0;
    while (pos < end) {
        unsigned char d;
        Py_ssize_t body;
        if ((rc = rd_varuint(r, &pos, end, &sid)) != OK) return rc;
        if (!(0 < sid && sid < (uint64_t)r->count)) return NOTREAD;
        if (pos >= r->n) return NOTREAD;
        d = r->d[pos];
        body = pos + 1;
        length = d & 0x0F;
        if (length == 15 || d >> 4 == 0x1)
            length = 0;
        else if ((length == 14 || (length == 1 && d >> 4 == 0xD)) && (rc = rd_varuint(r, &body, end, &length)) != OK)
            return rc;
        if ((uint64_t)body + length > (uint64_t)end) return NOTREAD;
        pos = body + (Py_ssize_t)length;
        if (r->noff[sid + 1] - r->noff[sid] == wanted_n && memcmp(r->names.p + r->noff[sid], wanted, (size_t)wanted_n) == 0) {
            if (*found) return NOTREAD; /* the name twice: decode */
            *found = 1;
            *descriptor = d;
            *start = body;
            *stop = pos;
        }
    }
    return OK;
}

PyObject *py_binary_top_field(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Rd r;
    Buf wanted = {NULL, 0, 0};
    const char *name;
    Py_ssize_t name_n, start = 0, stop = 0;
    int rc, found = 0, descriptor = 0;
    PyObject *result = NULL;
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "binary_top_field(data, name) takes two arguments");
        return NULL;
    }
    if ((name = utf8_of(args[1], &name_n)) == NULL) Py_RETURN_NONE; /* the Python code decides */
    if (buf_add_scalar_s(&wanted, 0x70, (const unsigned char *)name, name_n) < 0) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        buf_free(&wanted);
        return NULL;
    }
    memset(&r, 0, sizeof r);
    r.d = (const unsigned char *)view.buf;
    r.n = view.len;
    rc = rd_top_field(&r, wanted.p, wanted.len, &found, &descriptor, &start, &stop);
    if (rc == OK)
        result = found ? Py_BuildValue("(iy#)", descriptor, r.d + start, stop - start) : Py_BuildValue("(iy)", -1, "");
    else if (rc == NOTREAD)
        result = Py_NewRef(Py_None);
    rd_free(&r);
    buf_free(&wanted);
    PyBuffer_Release(&view);
    return result;
}

/* --- stored_index_keys ---------------------------------------------------------------------------------- */

#define INDEX_KEY_MAX 64 /* storage._bounded: a longer key is b"h" + its SHA-256 */

/* index_keys.index_key of an int field whose magnitude is the big-endian body d[0:n] (negative when `negative`):
 * b"n" + repr(float(value)). Py_None when the magnitude does not fit an int64 (Python decides); NULL on
 * MemoryError. int64 → double rounds to nearest even, as Python's int.__float__ does. */
static PyObject *int_index_key(const unsigned char *d, Py_ssize_t n, int negative)
{
    uint64_t magnitude = 0;
    double value;
    char *text;
    PyObject *key;
    Py_ssize_t i;
    if (n > 8) Py_RETURN_NONE;
    for (i = 0; i < n; i++) magnitude = (magnitude << 8) | d[i];
    if (magnitude > (uint64_t)INT64_MAX) Py_RETURN_NONE;
    value = (double)(int64_t)magnitude;
    if (negative) value = -value;
    if (value == 0.0) value = 0.0; /* -0 is 0 */
    text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL); /* float.__repr__ */
    if (text == NULL) return NULL;
    key = PyBytes_FromFormat("n%s", text);
    PyMem_Free(text);
    return key;
}

/* index_keys.text_index_key of a string field's UTF-8 body d[0:n]: b"t" + the bytes, bounded. */
static PyObject *text_index_key(const unsigned char *d, Py_ssize_t n)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, n + 1), *hashed;
    if (key == NULL) return NULL;
    PyBytes_AS_STRING(key)[0] = 't';
    memcpy(PyBytes_AS_STRING(key) + 1, d, (size_t)n);
    if (n + 1 <= INDEX_KEY_MAX) return key;
    hashed = PyBytes_FromStringAndSize(NULL, 33);
    if (hashed != NULL) {
        PyBytes_AS_STRING(hashed)[0] = 'h';
        ldr_sha256((const unsigned char *)PyBytes_AS_STRING(key), (size_t)(n + 1),
                   (unsigned char *)PyBytes_AS_STRING(hashed) + 1);
    }
    Py_DECREF(key);
    return hashed;
}

/* The index key of one stored document's field (targets.embedded._stored_index_key's fast paths): a new
 * reference to the key, Py_None when the struct has no such field, Py_Ellipsis when Python must decide (the
 * stream or the value is outside what is read here: a null, a non-UTF-8 string, a big int, another type), NULL
 * on error. */
static PyObject *stored_index_key(const unsigned char *d, Py_ssize_t n, const Buf *wanted)
{
    Rd r;
    Py_ssize_t start = 0, stop = 0;
    int rc, found = 0, descriptor = 0, code;
    PyObject *key;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.n = n;
    rc = rd_top_field(&r, wanted->p, wanted->len, &found, &descriptor, &start, &stop);
    rd_free(&r);
    if (rc == ERROR) return NULL;
    if (rc == NOTREAD) return Py_NewRef(Py_Ellipsis);
    if (!found) Py_RETURN_NONE;
    code = descriptor >> 4;
    if ((descriptor & 0x0F) == 0x0F) return Py_NewRef(Py_Ellipsis); /* a typed null */
    if (code == 0x8 && valid_utf8(d + start, stop - start)) return text_index_key(d + start, stop - start);
    if (code == 0x2 || (code == 0x3 && stop > start)) {
        key = int_index_key(d + start, stop - start, code == 0x3);
        if (key != Py_None) return key;
        Py_DECREF(key);
    }
    return Py_NewRef(Py_Ellipsis);
}

PyObject *py_stored_index_keys(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *rows, *entries = NULL, *undecided = NULL, *result = NULL;
    Buf wanted = {NULL, 0, 0};
    const char *name;
    Py_ssize_t name_n, i, count;
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "stored_index_keys(rows, name, index_id) takes three arguments");
        return NULL;
    }
    if ((name = utf8_of(args[1], &name_n)) == NULL) Py_RETURN_NONE; /* the Python code decides */
    if ((rows = PySequence_Fast(args[0], "stored_index_keys: rows must be a sequence")) == NULL) return NULL;
    if (buf_add_scalar_s(&wanted, 0x70, (const unsigned char *)name, name_n) < 0) goto done;
    if ((entries = PyList_New(0)) == NULL || (undecided = PyList_New(0)) == NULL) goto done;
    count = PySequence_Fast_GET_SIZE(rows);
    for (i = 0; i < count; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(rows, i), *doc_id, *data, *key, *entry;
        int rc;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 2) {
            PyErr_SetString(PyExc_TypeError, "stored_index_keys: each row must be a (doc_id, data) tuple");
            goto done;
        }
        doc_id = PyTuple_GET_ITEM(row, 0);
        data = PyTuple_GET_ITEM(row, 1);
        if (data == Py_None) continue; /* no current data: no entry */
        if (!PyBytes_Check(data)) {
            if (PyList_Append(undecided, row) < 0) goto done;
            continue;
        }
        key = stored_index_key((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &wanted);
        if (key == NULL) goto done;
        if (key == Py_None) {
            Py_DECREF(key);
            continue;
        }
        if (key == Py_Ellipsis) {
            Py_DECREF(key);
            if (PyList_Append(undecided, row) < 0) goto done;
            continue;
        }
        entry = PyTuple_Pack(3, args[2], key, doc_id);
        Py_DECREF(key);
        if (entry == NULL) goto done;
        rc = PyList_Append(entries, entry);
        Py_DECREF(entry);
        if (rc < 0) goto done;
    }
    result = PyTuple_Pack(2, entries, undecided);
done:
    Py_XDECREF(entries);
    Py_XDECREF(undecided);
    Py_DECREF(rows);
    buf_free(&wanted);
    return result;
}

/* --- text_ion_hash ------------------------------------------------------------------------------------- */

/* hashing.ion_hash(text) of an exact str: SHA-256 of s(string) = 0x0B 0x80 escape(UTF-8) 0x0E. None when text is
 * not an exact str or has no UTF-8 form (a lone surrogate): hashing.ion_hash then decides. */
PyObject *py_text_ion_hash(PyObject *module, PyObject *arg)
{
    Buf s = {NULL, 0, 0};
    const char *raw;
    Py_ssize_t n;
    unsigned char out[32];
    (void)module;
    if ((raw = utf8_of(arg, &n)) == NULL) Py_RETURN_NONE;
    if (buf_add_scalar_s(&s, 0x80, (const unsigned char *)raw, n) < 0) {
        buf_free(&s);
        return NULL;
    }
    ldr_sha256(s.p, (size_t)s.len, out);
    buf_free(&s);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}
