/* ledgerdr._ionhash's binary_plain_hashed: a served statement parameter's Ion binary read once by the Ion Hash
 * reader of ionread.h (the walk that vouches for the bytes and gives their Ion Hash), then decoded straight to
 * the plain Python values session_api._plain would make of amazon.ion's IonPy values — without amazon.ion's
 * reader building the IonPy values first and _plain copying them.
 *
 * The plain subset is _plain's: unannotated structs without a repeated field name (dict, fields in their
 * order), lists (list), strings (str), ints (int), bools (bool), floats but NaN (float) and decimals (Decimal),
 * containers nested less than _PLAIN_DEPTH (32) deep. A value with anything else anywhere in it (a null, a
 * symbol, a timestamp, a blob, an s-expression, an annotation, a repeated name, NaN, a 4-byte float, a string
 * that is not strict UTF-8, an int or a decimal's coefficient over 63 bits, a decimal's exponent over 2**27) is
 * left to the Python path whole: it then decodes with amazon.ion and _plain as before, hash already known. */
#include "ionhash.h"

#define PLAIN_DEPTH 32                /* session_api._PLAIN_DEPTH: a container this deep stays as amazon.ion's */
#define EXPONENT_LIMIT ((int64_t)1 << 27) /* decimals' exponents handled here: |e| below it */

typedef struct {
    Rd *r;
    PyObject **names; /* a str per SID, made at its first use; r->count entries */
} Pl;

/* The text of SID `sid` (known to the reader: 0 < sid < r->count) as a str, borrowed from the cache. The reader
 * keeps each name as s(symbol) = 0x0B 0x70 escape(text) 0x0E, escape putting 0x0C before 0x0B, 0x0C and 0x0E. */
static PyObject *pl_name(Pl *p, uint64_t sid)
{
    Rd *r = p->r;
    const unsigned char *s = r->names.p + r->noff[sid] + 2, *stop = r->names.p + r->noff[sid + 1] - 1;
    unsigned char *text, *out;
    PyObject *name;
    if (p->names[sid] != NULL) return p->names[sid];
    if ((text = (unsigned char *)PyMem_Malloc((size_t)(stop - s) + 1)) == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (out = text; s < stop; s++) {
        if (*s == 0x0C) s++; /* an escaped byte follows */
        *out++ = *s;
    }
    name = PyUnicode_DecodeUTF8((const char *)text, out - text, "strict"); /* checked UTF-8 (ionread.h) */
    PyMem_Free(text);
    p->names[sid] = name;
    return name;
}

/* A big-endian magnitude of at most 8 octets; NOTREAD when longer or over 63 bits. */
static int pl_magnitude(const unsigned char *d, Py_ssize_t n, uint64_t *out)
{
    uint64_t m = 0;
    Py_ssize_t i;
    if (n > 8) return NOTREAD;
    for (i = 0; i < n; i++) m = (m << 8) | d[i];
    if (m > (uint64_t)INT64_MAX) return NOTREAD;
    *out = m;
    return OK;
}

/* An Ion decimal's body d[0:n]: VarInt exponent, then the coefficient as a sign-and-magnitude Int. Made from
 * its text ("-0E-2" keeps the sign and the exponent, as amazon.ion's Decimal does). */
static int pl_decimal(const unsigned char *d, Py_ssize_t n, PyObject **out)
{
    int64_t exponent = 0;
    uint64_t coefficient = 0;
    int negative_exponent, negative = 0, rc;
    Py_ssize_t i = 0;
    unsigned char first[8];
    char text[64];
    if (decimal_type == NULL) return NOTREAD;
    if (n == 0) { /* 0d0 */
        *out = PyObject_CallFunction(decimal_type, "s", "0");
        return *out == NULL ? ERROR : OK;
    }
    negative_exponent = (d[0] & 0x40) != 0;
    exponent = d[0] & 0x3F;
    while (!(d[i] & 0x80)) {
        if (++i >= n || exponent >= EXPONENT_LIMIT) return NOTREAD;
        exponent = (exponent << 7) | (d[i] & 0x7F);
    }
    i++;
    if (exponent >= EXPONENT_LIMIT) return NOTREAD;
    if (negative_exponent) exponent = -exponent;
    if (i < n) {
        if (n - i > 8) return NOTREAD;
        memcpy(first, d + i, (size_t)(n - i));
        negative = (first[0] & 0x80) != 0;
        first[0] &= 0x7F;
        if ((rc = pl_magnitude(first, n - i, &coefficient)) != OK) return rc;
    }
    snprintf(text, sizeof text, "%s%lluE%lld", negative ? "-" : "", (unsigned long long)coefficient,
             (long long)exponent);
    *out = PyObject_CallFunction(decimal_type, "s", text);
    return *out == NULL ? ERROR : OK;
}

static int pl_value(Pl *p, Py_ssize_t pos, Py_ssize_t end, int depth, Py_ssize_t *after, PyObject **out);

/* The fields of a struct d[pos:stop] into a new dict; NOTREAD at a repeated name. */
static int pl_struct(Pl *p, Py_ssize_t pos, Py_ssize_t stop, int depth, PyObject **out)
{
    Rd *r = p->r;
    PyObject *dict = PyDict_New(), *name, *value;
    uint64_t sid;
    int rc;
    if (dict == NULL) return ERROR;
    while (pos < stop) {
        if ((rc = rd_varuint(r, &pos, stop, &sid)) != OK) goto fail;
        rc = NOTREAD;
        if (!(0 < sid && sid < (uint64_t)r->count) || pos >= stop) goto fail; /* the walk declines these too */
        rc = ERROR;
        if ((name = pl_name(p, sid)) == NULL) goto fail;
        if ((rc = PyDict_Contains(dict, name)) != 0) { /* 1: a repeated name (the struct stays an IonPyDict) */
            rc = rc < 0 ? ERROR : NOTREAD;
            goto fail;
        }
        if ((rc = pl_value(p, pos, stop, depth + 1, &pos, &value)) != OK) goto fail;
        rc = PyDict_SetItem(dict, name, value) < 0 ? ERROR : OK;
        Py_DECREF(value);
        if (rc != OK) goto fail;
    }
    *out = dict;
    return OK;
fail:
    Py_DECREF(dict);
    return rc;
}

static int pl_list(Pl *p, Py_ssize_t pos, Py_ssize_t stop, int depth, PyObject **out)
{
    PyObject *list = PyList_New(0), *value;
    int rc;
    if (list == NULL) return ERROR;
    while (pos < stop) {
        if ((rc = pl_value(p, pos, stop, depth + 1, &pos, &value)) != OK) goto fail;
        rc = PyList_Append(list, value) < 0 ? ERROR : OK;
        Py_DECREF(value);
        if (rc != OK) goto fail;
    }
    *out = list;
    return OK;
fail:
    Py_DECREF(list);
    return rc;
}

/* The plain value at d[pos] (ending by `end`) into *out, *after the position after it; NOTREAD outside the plain
 * subset, ERROR with a Python exception set. The walk has already read these bytes: the framing checks here only
 * keep this pass safe on its own. */
static int pl_value(Pl *p, Py_ssize_t pos, Py_ssize_t end, int depth, Py_ssize_t *after, PyObject **out)
{
    Rd *r = p->r;
    unsigned char descriptor, code;
    uint64_t length, magnitude;
    Py_ssize_t stop;
    int rc;
    if (pos >= end) return NOTREAD;
    descriptor = r->d[pos++];
    code = descriptor & 0xF0;
    length = descriptor & 0x0F;
    if (length == 15) return NOTREAD; /* a typed null */
    if (code == 0x10) {
        if (length > 1) return NOTREAD;
        *after = pos;
        *out = Py_NewRef(length ? Py_True : Py_False);
        return OK;
    }
    if (length == 14 || (length == 1 && code == 0xD0)) {
        if ((rc = rd_varuint(r, &pos, end, &length)) != OK) return rc;
    }
    if (length > (uint64_t)(end - pos)) return NOTREAD; /* (a sum could wrap: the walk vouches, this pass checks anyway) */
    stop = pos + (Py_ssize_t)length;
    *after = stop;
    switch (code) {
    case 0x20:
    case 0x30:
        if ((rc = pl_magnitude(r->d + pos, stop - pos, &magnitude)) != OK) return rc;
        if (code == 0x30 && magnitude == 0) return NOTREAD; /* negative zero: not an int the walk reads */
        *out = PyLong_FromLongLong(code == 0x30 ? -(int64_t)magnitude : (int64_t)magnitude);
        return *out == NULL ? ERROR : OK;
    case 0x40: {
        uint64_t bits = 0;
        double value;
        int i;
        if (length == 0) {
            *out = PyFloat_FromDouble(0.0);
            return *out == NULL ? ERROR : OK;
        }
        if (length != 8) return NOTREAD;
        for (i = 0; i < 8; i++) bits = (bits << 8) | r->d[pos + i];
        memcpy(&value, &bits, 8);
        if (value != value) return NOTREAD; /* NaN keeps amazon.ion's IonPyFloat (the encoders differ) */
        *out = PyFloat_FromDouble(value);
        return *out == NULL ? ERROR : OK;
    }
    case 0x50:
        return pl_decimal(r->d + pos, stop - pos, out);
    case 0x80:
        *out = PyUnicode_DecodeUTF8((const char *)r->d + pos, stop - pos, "strict");
        if (*out != NULL) return OK;
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return ERROR;
        PyErr_Clear();
        return NOTREAD; /* amazon.ion's reader decides what such a string is */
    case 0xB0:
        return depth >= PLAIN_DEPTH ? NOTREAD : pl_list(p, pos, stop, depth, out);
    case 0xD0:
        return depth >= PLAIN_DEPTH ? NOTREAD : pl_struct(p, pos, stop, depth, out);
    default:
        return NOTREAD; /* symbols, timestamps, clobs, blobs, s-expressions, annotations, NOP padding */
    }
}

/* binary_plain_hashed(data) -> (hash, value) | (hash, Ellipsis) | None: the Ion Hash of the stream's one value as
 * binary_ion_hash gives it, with that value as plain Python values (session_api._plain's, see the top) or
 * Ellipsis when it is outside them; None when binary_ion_hash gives None. */
PyObject *py_binary_plain_hashed(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    Rd r;
    Pl p = {&r, NULL};
    Py_ssize_t pos, after, i;
    PyObject *result = NULL, *value = NULL;
    unsigned char digest[32];
    int rc;
    (void)module;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    memset(&r, 0, sizeof r);
    r.d = (const unsigned char *)view.buf;
    r.n = view.len;
    init_types();
    rc = rd_prelude(&r, &pos); /* rd_stream, keeping the position of the value */
    if (rc == OK && (pos >= r.n || (pos + 4 <= r.n && memcmp(r.d + pos, IVM, 4) == 0))) rc = NOTREAD;
    if (rc == OK) rc = rd_value(&r, pos, r.n, &after);
    if (rc == OK && after != r.n) rc = NOTREAD;
    if (rc == NOTREAD) result = Py_NewRef(Py_None);
    if (rc != OK) goto done;
    ldr_sha256(r.out.p, (size_t)r.out.len, digest);
    if ((p.names = (PyObject **)PyMem_Calloc((size_t)r.count + 1, sizeof(PyObject *))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    rc = pl_value(&p, pos, r.n, 0, &after, &value);
    if (rc == ERROR) goto done;
    if (rc == NOTREAD) value = Py_NewRef(Py_Ellipsis);
    result = Py_BuildValue("(y#N)", (const char *)digest, (Py_ssize_t)32, value);
done:
    if (p.names != NULL) {
        for (i = 0; i <= r.count; i++) Py_XDECREF(p.names[i]);
        PyMem_Free(p.names);
    }
    rd_free(&r);
    PyBuffer_Release(&view);
    return result;
}
