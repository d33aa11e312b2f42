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
