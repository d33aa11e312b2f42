/* ledgerdr._ionhash: native twins of the hot functions of ledgerdr.journal.ionwrite.
 *
 * encode_hashed(value, table, fallback) -> (ion, s)
 *     Ion binary encoding of `value` against the SymbolTable `table` and its Ion Hash serialization s(value),
 *     byte for byte what ionwrite.encode_hashed(value, table) returns. Only values whose type is exactly
 *     dict (with exact str keys), list, tuple, str, int, bool, float, bytes, bytearray, None, decimal.Decimal
 *     (finite), datetime.datetime (naive or tzinfo datetime.timezone.utc), amazon.ion's Timestamp (the same
 *     zones, second precision, up to 5 fraction digits) or SymbolToken (with text, or SID 0) are handled here; any other value (subclasses included) is handed to
 *     fallback(value, table), which returns the (ion, s) pair of the Python implementation, and its result
 *     is spliced in. New symbols are added to a table of type exactly ionwrite.SymbolTable the way
 *     SymbolTable.sid adds them (sids, texts, _pieces), without calling it; any other table gets table.sid().
 * binary_hash_repr(data) -> bytes | None
 *     ionwrite.binary_hash_repr ported path by path: s(value) of the one value of a self-contained Ion
 *     binary stream, or None when the stream is outside the subset read there.
 * binary_ion_hash(data) -> bytes | None
 *     sha256(binary_hash_repr(data)), or None.
 * binary_top_field(data, name) -> (descriptor, body) | (-1, b"") | None
 *     ionwrite.binary_top_field ported path by path: a top-level field of the struct a stream holds.
 * encode_block(table, strand_id, sequence_no, transaction_id, timestamp_repr, statements, writes, system_hashes,
 *              previous_block_hash) -> (ion, block_hash, entries_hash, entries, revision_hashes) | None
 *     The block envelope of journal.writer._envelope_python, byte for byte: the revisions (each write's data
 *     spliced in, already encoded against `table`), transactionInfo, the Merkle roots and the chained block
 *     hash. None when an argument is outside the common case written here (a document twice, unsorted
 *     statement indexes, odd hash lengths, non-str texts): the Python code then does it.
 * sha256(data) -> bytes
 *     The SHA-256 of sha256.c (exposed for tests, with _sha256_portable and SHA256_ACCELERATED).
 *
 * The Python functions stay the reference; tests/test_ionhash_native.py checks that both give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

#include "ionread.h"


static PyObject *str_sid;      /* "sid" */
static PyObject *str_sids;     /* "sids" */
static PyObject *str_texts;    /* "texts" */
static PyObject *str_pieces;   /* "_pieces" */
static PyObject *str_as_tuple; /* "as_tuple" */
static PyObject *str_precision, *str_fractional_precision, *str_fractional_seconds; /* Timestamp's */

/* Exact types written here besides the builtins, looked up at the first encode_hashed call (not at import:
 * ionwrite imports this module). NULL when unavailable: such values then go to the fallback. */
static int types_ready;
static PyObject *decimal_type;     /* decimal.Decimal */
static PyObject *symbol_token_type; /* amazon.ion.symbols.SymbolToken */
static PyObject *timestamp_type;    /* amazon.ion.core.Timestamp */
static PyObject *symbol_table_type; /* ledgerdr.journal.ionwrite.SymbolTable, once that module is loaded */

static PyObject *attr_of_module(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name), *found;
    if (module == NULL) {
        PyErr_Clear();
        return NULL;
    }
    found = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    if (found == NULL || !PyType_Check(found)) {
        PyErr_Clear();
        Py_CLEAR(found);
    }
    return found;
}

static void init_types(void)
{
    if (!types_ready) {
        types_ready = 1;
        decimal_type = attr_of_module("decimal", "Decimal");
        symbol_token_type = attr_of_module("amazon.ion.symbols", "SymbolToken");
        timestamp_type = attr_of_module("amazon.ion.core", "Timestamp");
    }
    if (symbol_table_type == NULL) { /* only from sys.modules: never import ionwrite from here */
        PyObject *name = PyUnicode_FromString("ledgerdr.journal.ionwrite"), *module;
        if (name == NULL) {
            PyErr_Clear();
            return;
        }
        module = PyImport_GetModule(name);
        Py_DECREF(name);
        if (module == NULL) {
            PyErr_Clear();
            return;
        }
        symbol_table_type = PyObject_GetAttrString(module, "SymbolTable");
        Py_DECREF(module);
        if (symbol_table_type == NULL || !PyType_Check(symbol_table_type)) {
            PyErr_Clear();
            Py_CLEAR(symbol_table_type);
        }
    }
}

/* --- encode_hashed -------------------------------------------------------------------------------------- */

typedef struct {
    PyObject *table;
    PyObject *fallback;
    PyObject *sids;   /* table.sids, fetched at the first symbol; owned */
    PyObject *texts;  /* table.texts and table._pieces, when `fast`; owned */
    PyObject *pieces;
    int fast;         /* the table is exactly a SymbolTable: add symbols here, not through table.sid */
    Buf ion;
    Buf s;
    Buf hashes; /* field hashes of the structs being encoded, a stack */
    int depth;
} Enc;

static int enc_value(Enc *e, PyObject *value);

static int enc_fallback(Enc *e, PyObject *value)
{
    PyObject *pair = PyObject_CallFunctionObjArgs(e->fallback, value, e->table, NULL);
    PyObject *ion, *s;
    int rc = -1;
    if (pair == NULL) return -1;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_Format(PyExc_TypeError, "fallback must return a (bytes, bytes) tuple, not %.100s",
                     Py_TYPE(pair)->tp_name);
        goto done;
    }
    ion = PyTuple_GET_ITEM(pair, 0);
    s = PyTuple_GET_ITEM(pair, 1);
    if (buf_add(&e->ion, PyBytes_AS_STRING(ion), PyBytes_GET_SIZE(ion)) < 0) goto done;
    if (buf_add(&e->s, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s)) < 0) goto done;
    rc = 0;
done:
    Py_DECREF(pair);
    return rc;
}

static int enc_magnitude(Enc *e, int negative, const unsigned char *mag, Py_ssize_t n)
{
    unsigned char code = negative ? 0x30 : 0x20;
    if (put_scalar(&e->ion, code, mag, n) < 0) return -1;
    return buf_add_scalar_s(&e->s, code, mag, n);
}

static int enc_int(Enc *e, PyObject *value)
{
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (!overflow) {
        unsigned char mag[8];
        unsigned long long m = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
        int n = 0, i;
        while (n < 8 && (m >> (8 * n))) n++;
        for (i = 0; i < n; i++) mag[i] = (unsigned char)(m >> (8 * (n - 1 - i)));
        return enc_magnitude(e, x < 0, mag, n);
    } else {
        PyObject *absolute = PyNumber_Absolute(value);
        size_t bits;
        Py_ssize_t n;
        unsigned char *mag;
        int rc = -1;
        if (absolute == NULL) return -1;
        bits = _PyLong_NumBits(absolute);
        if (bits == (size_t)-1 && PyErr_Occurred()) {
            Py_DECREF(absolute);
            return -1;
        }
        n = (Py_ssize_t)((bits + 7) / 8);
        mag = (unsigned char *)PyMem_Malloc(n ? (size_t)n : 1);
        if (mag == NULL) {
            Py_DECREF(absolute);
            PyErr_NoMemory();
            return -1;
        }
#if PY_VERSION_HEX >= 0x030D0000
        if (_PyLong_AsByteArray((PyLongObject *)absolute, mag, (size_t)n, 0, 0, 1) == 0)
#else
        if (_PyLong_AsByteArray((PyLongObject *)absolute, mag, (size_t)n, 0, 0) == 0)
#endif
            rc = enc_magnitude(e, overflow < 0, mag, n);
        PyMem_Free(mag);
        Py_DECREF(absolute);
        return rc;
    }
}

static int enc_float(Enc *e, double x)
{
    unsigned char packed[8];
    uint64_t bits;
    int i;
    if (x == 0.0 && !signbit(x)) {
        if (buf_add(&e->ion, "\x40", 1) < 0) return -1;
        return buf_add3(&e->s, 0x0B, 0x40, 0x0E);
    }
    memcpy(&bits, &x, 8);
    for (i = 0; i < 8; i++) packed[i] = (unsigned char)(bits >> (56 - 8 * i));
    if (buf_add(&e->ion, "\x48", 1) < 0 || buf_add(&e->ion, packed, 8) < 0) return -1;
    if (x != x) return buf_add_scalar_s(&e->s, 0x40, (const unsigned char *)"\x7f\xf8\0\0\0\0\0\0", 8);
    return buf_add_scalar_s(&e->s, 0x40, packed, 8);
}

static int enc_raw(Enc *e, unsigned char code, const unsigned char *raw, Py_ssize_t n)
{
    if (put_scalar(&e->ion, code, raw, n) < 0) return -1;
    return buf_add_scalar_s(&e->s, code, raw, n);
}

static int enc_enter(Enc *e)
{
    if (e->depth >= MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded while encoding an Ion value");
        return -1;
    }
    if (Py_EnterRecursiveCall(" while encoding an Ion value")) return -1;
    e->depth++;
    return 0;
}

static void enc_leave(Enc *e)
{
    e->depth--;
    Py_LeaveRecursiveCall();
}

/* table.sids (and, for an exact SymbolTable, texts and _pieces), fetched once per call. */
static int enc_table(Enc *e)
{
    e->sids = PyObject_GetAttr(e->table, str_sids);
    if (e->sids == NULL) return -1;
    if (!PyDict_Check(e->sids)) {
        PyErr_SetString(PyExc_TypeError, "table.sids must be a dict");
        Py_CLEAR(e->sids);
        return -1;
    }
    if (symbol_table_type != NULL && (PyObject *)Py_TYPE(e->table) == symbol_table_type &&
        PyDict_CheckExact(e->sids)) {
        e->texts = PyObject_GetAttr(e->table, str_texts);
        if (e->texts == NULL) return -1;
        e->pieces = PyObject_GetAttr(e->table, str_pieces);
        if (e->pieces == NULL) return -1;
        e->fast = PyList_CheckExact(e->texts) && PyList_CheckExact(e->pieces);
    }
    return 0;
}

/* SymbolTable.sid(key) without the call: sids[key] = len(texts) + 10, texts.append(key),
 * _pieces.append(td(0x80, len(utf8)) + utf8) (ionwrite._string_piece). `text`/`n` is key's UTF-8. */
static int enc_add_symbol(Enc *e, PyObject *key, const char *text, Py_ssize_t n, Py_ssize_t *sid)
{
    unsigned char head[11];
    int h = td_bytes(0x80, (uint64_t)n, head);
    Py_ssize_t next = PyList_GET_SIZE(e->texts) + 10;
    PyObject *sid_obj, *piece;
    int rc = -1;
    sid_obj = PyLong_FromSsize_t(next);
    if (sid_obj == NULL) return -1;
    piece = PyBytes_FromStringAndSize(NULL, h + n);
    if (piece == NULL) {
        Py_DECREF(sid_obj);
        return -1;
    }
    memcpy(PyBytes_AS_STRING(piece), head, (size_t)h);
    memcpy(PyBytes_AS_STRING(piece) + h, text, (size_t)n);
    if (PyDict_SetItem(e->sids, key, sid_obj) == 0 && PyList_Append(e->texts, key) == 0 &&
        PyList_Append(e->pieces, piece) == 0) {
        *sid = next;
        rc = 0;
    }
    Py_DECREF(sid_obj);
    Py_DECREF(piece);
    return rc;
}

/* The SID of the symbol `key` (an exact str; `text`/`n` its UTF-8) in the table: table.sids[key], else
 * added as table.sid(key) adds it. */
static int enc_sid(Enc *e, PyObject *key, const char *text, Py_ssize_t n, Py_ssize_t *sid)
{
    PyObject *found, *added = NULL;
    if (e->sids == NULL && enc_table(e) < 0) return -1;
    found = PyDict_GetItemWithError(e->sids, key);
    if (found == NULL || found == Py_None) {
        if (found == NULL && PyErr_Occurred()) return -1;
        if (e->fast) return enc_add_symbol(e, key, text, n, sid);
        added = PyObject_CallMethodObjArgs(e->table, str_sid, key, NULL);
        if (added == NULL) return -1;
        found = added;
    }
    *sid = PyLong_AsSsize_t(found);
    Py_XDECREF(added);
    if (*sid == -1 && PyErr_Occurred()) return -1;
    if (*sid < 0) {
        PyErr_SetString(PyExc_ValueError, "negative symbol ID");
        return -1;
    }
    return 0;
}

static int enc_dict(Enc *e, PyObject *dict)
{
    Py_ssize_t pos = 0, ion_start, hash_start;
    PyObject *key, *item;
    int rc = -1;

    while (PyDict_Next(dict, &pos, &key, &item)) {
        if (!PyUnicode_CheckExact(key)) return enc_fallback(e, dict); /* the Python handler does it all */
    }
    if (enc_enter(e) < 0) return -1;
    ion_start = e->ion.len;
    hash_start = e->hashes.len;
    pos = 0;
    while (PyDict_Next(dict, &pos, &key, &item)) {
        Py_ssize_t n, sid, s_start;
        const char *text;
        unsigned char head[10];
        int ok;
        Py_INCREF(key);
        Py_INCREF(item);
        text = PyUnicode_AsUTF8AndSize(key, &n); /* s(name) first, as _name_parts does, then the SID */
        ok = text != NULL && enc_sid(e, key, text, n, &sid) == 0;
        if (ok) ok = buf_add(&e->ion, head, varuint_bytes((uint64_t)sid, head)) == 0;
        if (ok) {
            s_start = e->s.len;
            ok = buf_add_scalar_s(&e->s, 0x70, (const unsigned char *)text, n) == 0 && enc_value(e, item) == 0 &&
                 push_field_hash(&e->s, s_start, &e->hashes) == 0;
        }
        Py_DECREF(key);
        Py_DECREF(item);
        if (!ok) goto done;
    }
    if (finish_struct_s(&e->s, &e->hashes, hash_start) < 0) goto done;
    rc = buf_insert_td(&e->ion, ion_start, 0xD0);
done:
    enc_leave(e);
    return rc;
}

static int enc_sequence(Enc *e, PyObject *seq)
{
    Py_ssize_t i, ion_start;
    int rc = -1, is_list = PyList_CheckExact(seq);
    if (enc_enter(e) < 0) return -1;
    ion_start = e->ion.len;
    if (buf_reserve(&e->s, 2) < 0) goto done;
    e->s.p[e->s.len++] = 0x0B;
    e->s.p[e->s.len++] = 0xB0;
    for (i = 0; i < (is_list ? PyList_GET_SIZE(seq) : PyTuple_GET_SIZE(seq)); i++) {
        PyObject *item = is_list ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
        int bad;
        Py_INCREF(item);
        bad = enc_value(e, item);
        Py_DECREF(item);
        if (bad) goto done;
    }
    if (buf_add(&e->s, "\x0e", 1) < 0) goto done;
    rc = buf_insert_td(&e->ion, ion_start, 0xB0);
done:
    enc_leave(e);
    return rc;
}

/* hashing._varint of a 64-bit value into out (at most 11 octets); returns its length. */
static int varint_bytes(long long value, unsigned char *out)
{
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    unsigned char groups[11];
    int n = 0, i;
    if (magnitude < 64) {
        out[0] = (unsigned char)(0x80 | (value < 0 ? 0x40 : 0) | magnitude);
        return 1;
    }
    groups[n++] = (unsigned char)(0x80 | (magnitude & 0x7F));
    magnitude >>= 7;
    while (magnitude) {
        groups[n++] = (unsigned char)(magnitude & 0x7F);
        magnitude >>= 7;
    }
    if (groups[n - 1] & 0x40) groups[n++] = 0; /* no room for the sign bit in the leading group */
    if (value < 0) groups[n - 1] |= 0x40;
    for (i = 0; i < n; i++) out[i] = groups[n - 1 - i];
    return n;
}

/* hashing._int_field of the minimal big-endian magnitude mag[0:n] into out (n + 1 octets at most). */
static Py_ssize_t int_field_bytes(const unsigned char *mag, Py_ssize_t n, int negative, unsigned char *out)
{
    Py_ssize_t len = 0;
    if (n && (mag[0] & 0x80)) out[len++] = 0;
    if (n) memcpy(out + len, mag, (size_t)n);
    len += n;
    if (negative) {
        if (len)
            out[0] |= 0x80;
        else
            out[len++] = 0x80;
    }
    return len;
}

/* Minimal big-endian bytes of m into out (8 at most); returns the count (0 for zero). */
static int uint64_bytes(unsigned long long m, unsigned char *out)
{
    int n = 0, i;
    while (n < 8 && (m >> (8 * n))) n++;
    for (i = 0; i < n; i++) out[i] = (unsigned char)(m >> (8 * (n - 1 - i)));
    return n;
}

/* Above this many digits a coefficient is left to the Python code (building it here is quadratic). */
#define DECIMAL_MAX_DIGITS 4000

/* ionwrite._decimal for an exact, finite decimal.Decimal: exponent VarInt then coefficient Int. */
static int enc_decimal(Enc *e, PyObject *value)
{
    PyObject *parts = PyObject_CallMethodNoArgs(value, str_as_tuple), *digits, *exponent, *big = NULL;
    long long exp;
    int overflow = 0, negative, rc = -1;
    Py_ssize_t ndigits, i, mag_len = 0, rep_len;
    unsigned char small[8], *mag = small, *rep = NULL, stack_rep[32];

    if (parts == NULL) return -1;
    if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(parts, 1))) {
        Py_DECREF(parts);
        return enc_fallback(e, value);
    }
    digits = PyTuple_GET_ITEM(parts, 1);
    exponent = PyTuple_GET_ITEM(parts, 2);
    ndigits = PyTuple_GET_SIZE(digits);
    if (!PyLong_CheckExact(exponent) || ndigits > DECIMAL_MAX_DIGITS) goto fallback; /* NaN, Infinity */
    exp = PyLong_AsLongLongAndOverflow(exponent, &overflow);
    if (exp == -1 && PyErr_Occurred()) goto done;
    /* Beyond the Python code's exact context (Emax 999_999_999) its scaleb may raise: let it. */
    if (overflow || exp > 999999999LL || exp < -999999999LL) goto fallback;
    negative = PyObject_IsTrue(PyTuple_GET_ITEM(parts, 0));
    if (negative < 0) goto done;

    if (ndigits <= 18) {
        unsigned long long c = 0;
        for (i = 0; i < ndigits; i++) {
            long d = PyLong_AsLong(PyTuple_GET_ITEM(digits, i));
            if (d == -1 && PyErr_Occurred()) goto done;
            if (d < 0 || d > 9) goto fallback;
            c = c * 10 + (unsigned long long)d;
        }
        mag_len = uint64_bytes(c, small);
    } else { /* coefficient = digits as an int, 18 digits at a time */
        size_t bits;
        big = PyLong_FromLong(0);
        if (big == NULL) goto done;
        for (i = 0; i < ndigits;) {
            unsigned long long chunk = 0, scale = 1;
            PyObject *scale_obj, *chunk_obj, *tmp;
            Py_ssize_t stop = i + 18 < ndigits ? i + 18 : ndigits;
            for (; i < stop; i++) {
                long d = PyLong_AsLong(PyTuple_GET_ITEM(digits, i));
                if (d == -1 && PyErr_Occurred()) goto done;
                if (d < 0 || d > 9) goto fallback;
                chunk = chunk * 10 + (unsigned long long)d;
                scale *= 10;
            }
            scale_obj = PyLong_FromUnsignedLongLong(scale);
            if (scale_obj == NULL) goto done;
            tmp = PyNumber_Multiply(big, scale_obj);
            Py_DECREF(scale_obj);
            if (tmp == NULL) goto done;
            Py_SETREF(big, tmp);
            chunk_obj = PyLong_FromUnsignedLongLong(chunk);
            if (chunk_obj == NULL) goto done;
            tmp = PyNumber_Add(big, chunk_obj);
            Py_DECREF(chunk_obj);
            if (tmp == NULL) goto done;
            Py_SETREF(big, tmp);
        }
        bits = _PyLong_NumBits(big);
        if (bits == (size_t)-1 && PyErr_Occurred()) goto done;
        mag_len = (Py_ssize_t)((bits + 7) / 8);
        mag = (unsigned char *)PyMem_Malloc(mag_len ? (size_t)mag_len : 1);
        if (mag == NULL) {
            PyErr_NoMemory();
            goto done;
        }
#if PY_VERSION_HEX >= 0x030D0000
        if (_PyLong_AsByteArray((PyLongObject *)big, mag, (size_t)mag_len, 0, 0, 1) < 0) goto done;
#else
        if (_PyLong_AsByteArray((PyLongObject *)big, mag, (size_t)mag_len, 0, 0) < 0) goto done;
#endif
    }

    if (!mag_len && !exp && !negative) { /* 0d0 has no representation */
        if (buf_add(&e->ion, "\x50", 1) < 0) goto done;
        rc = buf_add3(&e->s, 0x0B, 0x50, 0x0E);
        goto done;
    }
    rep = mag_len + 12 <= (Py_ssize_t)sizeof stack_rep ? stack_rep : (unsigned char *)PyMem_Malloc((size_t)mag_len + 12);
    if (rep == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    rep_len = varint_bytes(exp, rep);
    rep_len += int_field_bytes(mag, mag_len, negative, rep + rep_len);
    rc = enc_raw(e, 0x50, rep, rep_len);
    goto done;

fallback:
    rc = enc_fallback(e, value);
done:
    if (rep != NULL && rep != stack_rep) PyMem_Free(rep);
    if (mag != small) PyMem_Free(mag);
    Py_XDECREF(big);
    Py_DECREF(parts);
    return rc;
}

/* offset, year, month, day, hour, minute and second of a timestamp (hashing._timestamp_repr at second
 * precision) into rep (8 octets at most); the offset is VarInt 0 for UTC, negative zero when naive. */
static int timestamp_head(PyObject *value, int naive, unsigned char *rep)
{
    int year = PyDateTime_GET_YEAR(value), n = 0;
    rep[n++] = naive ? 0xC0 : 0x80;
    if (year < 0x80) {
        rep[n++] = (unsigned char)(0x80 | year);
    } else {
        rep[n++] = (unsigned char)(year >> 7);
        rep[n++] = (unsigned char)(0x80 | (year & 0x7F));
    }
    rep[n++] = (unsigned char)(0x80 | PyDateTime_GET_MONTH(value));
    rep[n++] = (unsigned char)(0x80 | PyDateTime_GET_DAY(value));
    rep[n++] = (unsigned char)(0x80 | PyDateTime_DATE_GET_HOUR(value));
    rep[n++] = (unsigned char)(0x80 | PyDateTime_DATE_GET_MINUTE(value));
    rep[n++] = (unsigned char)(0x80 | PyDateTime_DATE_GET_SECOND(value));
    return n;
}

/* ionwrite._timestamp for an exact datetime.datetime, naive or in datetime.timezone.utc (hashing's
 * _timestamp_repr of a plain datetime: second precision and six fraction digits). */
static int enc_datetime(Enc *e, PyObject *value)
{
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(value);
    unsigned char rep[16], mag[4];
    int n, us = PyDateTime_DATE_GET_MICROSECOND(value);
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC) return enc_fallback(e, value);
    n = timestamp_head(value, tz == Py_None, rep);
    rep[n++] = 0xC6; /* fraction exponent -6, then the microseconds (none when zero) */
    n += (int)int_field_bytes(mag, uint64_bytes((unsigned long long)us, mag), 0, rep + n);
    return enc_raw(e, 0x60, rep, n);
}

/* An int attribute of value (an int subclass such as TimestampPrecision too), or -1 when absent, None or
 * not an int in [0, 2**31); no error is left set. */
static long int_attr(PyObject *value, PyObject *name)
{
    PyObject *attr = PyObject_GetAttr(value, name);
    long result = -1;
    if (attr != NULL && PyLong_Check(attr)) {
        result = PyLong_AsLong(attr);
        if (result < 0 || result > 0x7FFFFFFF) result = -1;
    }
    Py_XDECREF(attr);
    PyErr_Clear();
    return result;
}

/* ionwrite._timestamp for an exact amazon.ion Timestamp at second precision with 0 to 5 fraction digits,
 * naive or in datetime.timezone.utc (as ms_timestamp and amazon.ion's reader make them); any other goes to
 * the fallback. hashing._fraction_repr: exponent -digits, coefficient the microseconds cut to the digits;
 * a zero coefficient writes the exponent alone (none at all for zero digits). */
static int enc_timestamp(Enc *e, PyObject *value)
{
    static const int POW10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(value), *fraction;
    unsigned char rep[24], mag[4];
    long digits;
    int n, coefficient;
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC) return enc_fallback(e, value);
    if (int_attr(value, str_precision) != 4) return enc_fallback(e, value); /* TimestampPrecision.SECOND */
    digits = int_attr(value, str_fractional_precision);
    fraction = PyObject_GetAttr(value, str_fractional_seconds);
    PyErr_Clear();
    Py_XDECREF(fraction);
    if (fraction == NULL || fraction == Py_None || digits < 0 || digits > 5) return enc_fallback(e, value);
    n = timestamp_head(value, tz == Py_None, rep);
    coefficient = PyDateTime_DATE_GET_MICROSECOND(value) / POW10[6 - digits];
    if (digits) rep[n++] = (unsigned char)(0xC0 | digits); /* VarInt -digits */
    if (coefficient) n += (int)int_field_bytes(mag, uint64_bytes((unsigned long long)coefficient, mag), 0, rep + n);
    return enc_raw(e, 0x60, rep, n);
}

/* ionwrite._symbol for an exact SymbolToken: with str text, or no text and SID 0; the rest goes to the
 * fallback (which raises Unencodable for unknown text). */
static int enc_symbol_token(Enc *e, PyObject *value)
{
    PyObject *text, *sid_obj;
    unsigned char mag[8], head[11];
    Py_ssize_t sid, n;
    const char *raw;
    int h, m;
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) < 2) return enc_fallback(e, value);
    text = PyTuple_GET_ITEM(value, 0);
    if (text == Py_None) {
        int overflow = 0;
        sid_obj = PyTuple_GET_ITEM(value, 1);
        if (!PyLong_CheckExact(sid_obj) || PyLong_AsLongLongAndOverflow(sid_obj, &overflow) != 0 || overflow)
            return enc_fallback(e, value); /* (-1 and an overflowing SID set no error) */
        if (buf_add(&e->ion, "\x70", 1) < 0) return -1;
        return buf_add3(&e->s, 0x0B, 0x71, 0x0E);
    }
    if (!PyUnicode_CheckExact(text)) return enc_fallback(e, value);
    raw = PyUnicode_AsUTF8AndSize(text, &n);
    if (raw == NULL) { /* a lone surrogate: the Python code adds the symbol, then fails; let it */
        PyErr_Clear();
        return enc_fallback(e, value);
    }
    Py_INCREF(value);
    if (enc_sid(e, text, raw, n, &sid) < 0) {
        Py_DECREF(value);
        return -1;
    }
    m = uint64_bytes((unsigned long long)sid, mag);
    h = td_bytes(0x70, (uint64_t)m, head);
    if (buf_add(&e->ion, head, h) < 0 || buf_add(&e->ion, mag, m) < 0) {
        Py_DECREF(value);
        return -1;
    }
    h = sid ? buf_add_scalar_s(&e->s, 0x70, (const unsigned char *)raw, n) : buf_add3(&e->s, 0x0B, 0x71, 0x0E);
    Py_DECREF(value);
    return h;
}

static int enc_value(Enc *e, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *raw = PyUnicode_AsUTF8AndSize(value, &n);
        if (raw == NULL) return -1;
        return enc_raw(e, 0x80, (const unsigned char *)raw, n);
    }
    if (type == &PyDict_Type) return enc_dict(e, value);
    if (type == &PyLong_Type) return enc_int(e, value);
    if (type == &PyList_Type || type == &PyTuple_Type) return enc_sequence(e, value);
    if (type == &PyBool_Type) {
        if (buf_add(&e->ion, value == Py_True ? "\x11" : "\x10", 1) < 0) return -1;
        return buf_add3(&e->s, 0x0B, value == Py_True ? 0x11 : 0x10, 0x0E);
    }
    if (type == &PyFloat_Type) return enc_float(e, PyFloat_AS_DOUBLE(value));
    if (type == &PyBytes_Type)
        return enc_raw(e, 0xA0, (const unsigned char *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    if (type == &PyByteArray_Type)
        return enc_raw(e, 0xA0, (const unsigned char *)PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value));
    if (value == Py_None) {
        if (buf_add(&e->ion, "\x0f", 1) < 0) return -1;
        return buf_add3(&e->s, 0x0B, 0x0F, 0x0E);
    }
    if ((PyObject *)type == decimal_type) return enc_decimal(e, value);
    if (PyDateTimeAPI != NULL && type == PyDateTimeAPI->DateTimeType) return enc_datetime(e, value);
    if ((PyObject *)type == symbol_token_type) return enc_symbol_token(e, value);
    if ((PyObject *)type == timestamp_type && timestamp_type != NULL) return enc_timestamp(e, value);
    return enc_fallback(e, value);
}

static PyObject *py_encode_hashed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Enc e;
    PyObject *result = NULL;
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_hashed() takes 3 arguments (value, table, fallback), %zd given",
                     nargs);
        return NULL;
    }
    init_types();
    memset(&e, 0, sizeof e);
    e.table = args[1];
    e.fallback = args[2];
    if (enc_value(&e, args[0]) == 0) {
        result = Py_BuildValue("(y#y#)", (const char *)e.ion.p, e.ion.len, (const char *)e.s.p, e.s.len);
    }
    Py_XDECREF(e.sids);
    Py_XDECREF(e.texts);
    Py_XDECREF(e.pieces);
    buf_free(&e.ion);
    buf_free(&e.s);
    buf_free(&e.hashes);
    return result;
}

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

static PyObject *py_binary_hash_repr(PyObject *module, PyObject *arg)
{
    (void)module;
    return hash_repr(arg, 0);
}

static PyObject *py_binary_ion_hash(PyObject *module, PyObject *arg)
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

static PyObject *py_sha256(PyObject *module, PyObject *arg)
{
    (void)module;
    return digest_of(arg, ldr_sha256);
}

static PyObject *py_sha256_portable(PyObject *module, PyObject *arg)
{
    (void)module;
    return digest_of(arg, ldr_sha256_portable);
}

/* --- encode_block --------------------------------------------------------------------------------------- */

#include "envelope.h"

static PyObject *envelope_keys[F_COUNT]; /* the names as interned str, made at module init */

/* A str's UTF-8, or NULL with no error set when it is not an exact str or cannot be encoded (the caller
 * then returns None and the Python path raises what it raises). */
static const char *utf8_of(PyObject *text, Py_ssize_t *n)
{
    const char *raw;
    if (!PyUnicode_CheckExact(text)) return NULL;
    raw = PyUnicode_AsUTF8AndSize(text, n);
    if (raw == NULL) PyErr_Clear();
    return raw;
}

/* An exact int in [0, 2**63), else -1 with no error set. */
static long long small_uint(PyObject *value)
{
    int overflow = 0;
    long long x;
    if (!PyLong_CheckExact(value)) return -1;
    x = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (x == -1 && PyErr_Occurred()) PyErr_Clear();
    return overflow || x < 0 ? -1 : x;
}

/* One write, unpacked from writer's (table_name, table_id, document_id, version, data_ion, data_hash,
 * statement_indexes) tuple; the objects are borrowed from it. */
typedef struct {
    const char *table_name, *table_id, *doc_id;
    Py_ssize_t table_name_n, table_id_n, doc_id_n;
    PyObject *doc_key;
    unsigned long long version;
    const unsigned char *data, *data_hash; /* NULL for a delete */
    Py_ssize_t data_n;
    PyObject *indexes;
} BlockWrite;

/* Unpack one write; 0 when it is outside what encode_block writes (indexes must be a sorted set). */
static int unpack_write(PyObject *item, BlockWrite *w)
{
    PyObject *data, *data_hash;
    Py_ssize_t i;
    long long version, previous = -1;
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 7) return 0;
    w->table_name = utf8_of(PyTuple_GET_ITEM(item, 0), &w->table_name_n);
    w->table_id = utf8_of(PyTuple_GET_ITEM(item, 1), &w->table_id_n);
    w->doc_key = PyTuple_GET_ITEM(item, 2);
    w->doc_id = utf8_of(w->doc_key, &w->doc_id_n);
    version = small_uint(PyTuple_GET_ITEM(item, 3));
    data = PyTuple_GET_ITEM(item, 4);
    data_hash = PyTuple_GET_ITEM(item, 5);
    w->indexes = PyTuple_GET_ITEM(item, 6);
    if (w->table_name == NULL || w->table_id == NULL || w->doc_id == NULL || version < 0) return 0;
    w->version = (unsigned long long)version;
    w->data = w->data_hash = NULL;
    w->data_n = 0;
    if (data != Py_None) {
        if (!PyBytes_CheckExact(data) || !PyBytes_CheckExact(data_hash) || PyBytes_GET_SIZE(data_hash) != 32)
            return 0;
        w->data = (const unsigned char *)PyBytes_AS_STRING(data);
        w->data_n = PyBytes_GET_SIZE(data);
        w->data_hash = (const unsigned char *)PyBytes_AS_STRING(data_hash);
    }
    if (!PyTuple_CheckExact(w->indexes)) return 0;
    for (i = 0; i < PyTuple_GET_SIZE(w->indexes); i++) {
        long long index = small_uint(PyTuple_GET_ITEM(w->indexes, i));
        if (index <= previous) return 0;
        previous = index;
    }
    return 1;
}

typedef struct {
    Enc e;                      /* the table's symbols (e.ion and e.s unused) */
    unsigned char sid[F_COUNT][10];
    int sid_n[F_COUNT];         /* the encoded SID of each envelope name */
    Buf s;                      /* scratch for one s() at a time */
    Buf out;                    /* the block */
    Buf revisions, info;        /* the revisions' and transactionInfo's encodings, built before the block */
    Buf address, ts, tx;        /* encodings of blockAddress, the block timestamp and the transaction id */
    Buf ts_s;                   /* s(block timestamp) */
    unsigned char tx_time_hash[32], tx_id_hash[32], start_time_hash[32];
} Blk;

static void blk_free(Blk *k)
{
    Buf *bufs[] = {&k->s, &k->out, &k->revisions, &k->info, &k->address, &k->ts, &k->tx, &k->ts_s};
    size_t i;
    for (i = 0; i < sizeof bufs / sizeof bufs[0]; i++) buf_free(bufs[i]);
    Py_XDECREF(k->e.sids);
    Py_XDECREF(k->e.texts);
    Py_XDECREF(k->e.pieces);
}

static inline int put_field(Blk *k, Buf *b, int name)
{
    return buf_add(b, k->sid[name], k->sid_n[name]);
}

static int put_buf(Buf *b, const Buf *piece)
{
    return buf_add(b, piece->p, piece->len);
}

/* s(name) of an envelope field name (none of them holds an octet the escape changes) onto k->s. */
static int s_name(Blk *k, int name)
{
    return buf_add_scalar_s(&k->s, 0x70, (const unsigned char *)ENVELOPE_NAMES[name],
                            (Py_ssize_t)strlen(ENVELOPE_NAMES[name]));
}

/* sha256(k->s) into out; k->s is emptied. */
static void hash_s(Blk *k, unsigned char *out)
{
    ldr_sha256(k->s.p, (size_t)k->s.len, out);
    k->s.len = 0;
}

/* H(s(name) || s(value)) of a field whose value is the scalar tq/raw[0:n]. */
static int field_hash(Blk *k, int name, unsigned char tq, const void *raw, Py_ssize_t n, unsigned char *out)
{
    if (s_name(k, name) < 0 || buf_add_scalar_s(&k->s, tq, (const unsigned char *)raw, n) < 0) return -1;
    hash_s(k, out);
    return 0;
}

/* s(struct) onto k->s from its field hashes hashes[0:32n] (sorted in place). */
static int s_struct(Blk *k, unsigned char *hashes, Py_ssize_t n)
{
    if (n > 1) qsort(hashes, (size_t)n, 32, cmp_hash);
    return buf_add_scalar_s(&k->s, 0xD0, hashes, 32 * n);
}

/* The envelope names' SIDs (added to the table in _ENVELOPE's order, as SymbolTable.fields adds them), and
 * the encodings and hashes every revision and statement of the block shares. */
static int blk_prepare(Blk *k, PyObject *strand, unsigned long long seq, PyObject *tx_id, PyObject *ts_rep)
{
    Py_ssize_t i, strand_n, tx_n, rep_n = PyBytes_GET_SIZE(ts_rep);
    const char *strand_raw = utf8_of(strand, &strand_n), *tx_raw = utf8_of(tx_id, &tx_n);
    const unsigned char *rep = (const unsigned char *)PyBytes_AS_STRING(ts_rep);
    unsigned char mag[8];
    for (i = 0; i < F_COUNT; i++) {
        Py_ssize_t sid;
        if (enc_sid(&k->e, envelope_keys[i], ENVELOPE_NAMES[i], (Py_ssize_t)strlen(ENVELOPE_NAMES[i]), &sid) < 0)
            return -1;
        k->sid_n[i] = varuint_bytes((uint64_t)sid, k->sid[i]);
    }
    if (put_field(k, &k->address, F_STRAND_ID) < 0 || put_scalar(&k->address, 0x80, strand_raw, strand_n) < 0 ||
        put_field(k, &k->address, F_SEQUENCE_NO) < 0 ||
        put_scalar(&k->address, 0x20, mag, uint64_bytes(seq, mag)) < 0 || buf_insert_td(&k->address, 0, 0xD0) < 0)
        return -1;
    if (put_scalar(&k->ts, 0x60, rep, rep_n) < 0 || buf_add_scalar_s(&k->ts_s, 0x60, rep, rep_n) < 0 ||
        put_scalar(&k->tx, 0x80, tx_raw, tx_n) < 0)
        return -1;
    if (s_name(k, F_TX_TIME) < 0 || put_buf(&k->s, &k->ts_s) < 0) return -1;
    hash_s(k, k->tx_time_hash);
    if (s_name(k, F_START_TIME) < 0 || put_buf(&k->s, &k->ts_s) < 0) return -1;
    hash_s(k, k->start_time_hash);
    return field_hash(k, F_TX_ID, 0x80, tx_raw, tx_n, k->tx_id_hash);
}

/* One write's revision struct onto k->revisions, its hash into out (a delete's is H(metadata), CONTRACTS §4). */
static int blk_revision(Blk *k, const BlockWrite *w, unsigned char *out)
{
    unsigned char fields[4 * 32], mag[8], metadata_hash[32];
    int m = uint64_bytes(w->version, mag);
    Buf *r = &k->revisions;
    Py_ssize_t start = r->len, metadata_start;
    if (field_hash(k, F_ID, 0x80, w->doc_id, w->doc_id_n, fields) < 0 ||
        field_hash(k, F_VERSION, 0x20, mag, m, fields + 32) < 0)
        return -1;
    memcpy(fields + 64, k->tx_time_hash, 32);
    memcpy(fields + 96, k->tx_id_hash, 32);
    if (s_struct(k, fields, 4) < 0) return -1;
    hash_s(k, metadata_hash);
    if (w->data == NULL)
        memcpy(out, metadata_hash, 32);
    else
        dot32(metadata_hash, w->data_hash, out);
    if (put_field(k, r, F_BLOCK_ADDRESS) < 0 || put_buf(r, &k->address) < 0 || put_field(k, r, F_HASH) < 0 ||
        put_scalar(r, 0xA0, out, 32) < 0)
        return -1;
    if (w->data != NULL && (put_field(k, r, F_DATA) < 0 || buf_add(r, w->data, w->data_n) < 0)) return -1;
    if (put_field(k, r, F_METADATA) < 0) return -1;
    metadata_start = r->len;
    if (put_field(k, r, F_ID) < 0 || put_scalar(r, 0x80, w->doc_id, w->doc_id_n) < 0 ||
        put_field(k, r, F_VERSION) < 0 || put_scalar(r, 0x20, mag, m) < 0 || put_field(k, r, F_TX_TIME) < 0 ||
        put_buf(r, &k->ts) < 0 || put_field(k, r, F_TX_ID) < 0 || put_buf(r, &k->tx) < 0)
        return -1;
    if (buf_insert_td(r, metadata_start, 0xD0) < 0) return -1;
    return buf_insert_td(r, start, 0xD0);
}

/* A system revision ({hash}, a DDL's) onto k->revisions. */
static int blk_system_revision(Blk *k, const unsigned char *hash)
{
    Py_ssize_t start = k->revisions.len;
    if (put_field(k, &k->revisions, F_HASH) < 0 || put_scalar(&k->revisions, 0xA0, hash, 32) < 0) return -1;
    return buf_insert_td(&k->revisions, start, 0xD0);
}

/* transactionInfo.statements onto k->info; H(its field) into out. */
static int blk_statements(Blk *k, PyObject *statements, unsigned char *out)
{
    Py_ssize_t i, n, list_start, count = PyTuple_GET_SIZE(statements);
    Buf all = {NULL, 0, 0}; /* s() of each statement struct, concatenated */
    Buf *b = &k->info;
    int rc = -1;
    if (put_field(k, b, F_STATEMENTS) < 0) goto done;
    list_start = b->len;
    for (i = 0; i < count; i++) {
        unsigned char fields[3 * 32], digest[32];
        const char *text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(statements, i), &n); /* checked already */
        Py_ssize_t struct_start = b->len;
        if (buf_add_scalar_s(&k->s, 0x80, (const unsigned char *)text, n) < 0) goto done;
        ldr_sha256(k->s.p, (size_t)k->s.len, digest); /* statementDigest = H(s(text)) */
        k->s.len = 0;
        if (field_hash(k, F_STATEMENT, 0x80, text, n, fields) < 0 ||
            field_hash(k, F_STATEMENT_DIGEST, 0xA0, digest, 32, fields + 64) < 0)
            goto done;
        memcpy(fields + 32, k->start_time_hash, 32);
        if (s_struct(k, fields, 3) < 0 || put_buf(&all, &k->s) < 0) goto done;
        k->s.len = 0;
        if (put_field(k, b, F_STATEMENT) < 0 || put_scalar(b, 0x80, text, n) < 0 ||
            put_field(k, b, F_START_TIME) < 0 || put_buf(b, &k->ts) < 0 || put_field(k, b, F_STATEMENT_DIGEST) < 0 ||
            put_scalar(b, 0xA0, digest, 32) < 0 || buf_insert_td(b, struct_start, 0xD0) < 0)
            goto done;
    }
    if (buf_insert_td(b, list_start, 0xB0) < 0 || s_name(k, F_STATEMENTS) < 0 ||
        buf_add(&k->s, "\x0b\xb0", 2) < 0 || put_buf(&k->s, &all) < 0 || buf_add(&k->s, "\x0e", 1) < 0)
        goto done;
    hash_s(k, out);
    rc = 0;
done:
    buf_free(&all);
    return rc;
}

/* transactionInfo.documents (one entry per write: the caller has checked the ids are distinct) onto k->info;
 * H(its field) into out. Each document id is added to the table as a field name, in the writes' order. */
static int blk_documents(Blk *k, const BlockWrite *writes, Py_ssize_t count, unsigned char *out)
{
    Buf *b = &k->info;
    unsigned char *hashes = (unsigned char *)PyMem_Malloc((size_t)(count ? count : 1) * 32);
    Py_ssize_t d, i, documents_start;
    int rc = -1;
    if (hashes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (put_field(k, b, F_DOCUMENTS) < 0) goto done;
    documents_start = b->len;
    for (d = 0; d < count; d++) {
        const BlockWrite *w = &writes[d];
        unsigned char fields[3 * 32], head[10], mag[8];
        Py_ssize_t sid, entry_start, list_start;
        if (enc_sid(&k->e, w->doc_key, w->doc_id, w->doc_id_n, &sid) < 0 ||
            buf_add(b, head, varuint_bytes((uint64_t)sid, head)) < 0)
            goto done;
        entry_start = b->len;
        if (put_field(k, b, F_TABLE_NAME) < 0 || put_scalar(b, 0x80, w->table_name, w->table_name_n) < 0 ||
            put_field(k, b, F_TABLE_ID) < 0 || put_scalar(b, 0x80, w->table_id, w->table_id_n) < 0 ||
            put_field(k, b, F_STATEMENTS) < 0)
            goto done;
        list_start = b->len;
        if (s_name(k, F_STATEMENTS) < 0 || buf_add(&k->s, "\x0b\xb0", 2) < 0) goto done;
        for (i = 0; i < PyTuple_GET_SIZE(w->indexes); i++) {
            int m = uint64_bytes((unsigned long long)PyLong_AsLongLong(PyTuple_GET_ITEM(w->indexes, i)), mag);
            if (put_scalar(b, 0x20, mag, m) < 0 || buf_add_scalar_s(&k->s, 0x20, mag, m) < 0) goto done;
        }
        if (buf_add(&k->s, "\x0e", 1) < 0 || buf_insert_td(b, list_start, 0xB0) < 0 ||
            buf_insert_td(b, entry_start, 0xD0) < 0)
            goto done;
        hash_s(k, fields + 64);
        if (field_hash(k, F_TABLE_NAME, 0x80, w->table_name, w->table_name_n, fields) < 0 ||
            field_hash(k, F_TABLE_ID, 0x80, w->table_id, w->table_id_n, fields + 32) < 0)
            goto done;
        /* the entry's field hash: H(s(document id as a symbol) || s(entry)) */
        if (buf_add_scalar_s(&k->s, 0x70, (const unsigned char *)w->doc_id, w->doc_id_n) < 0 ||
            s_struct(k, fields, 3) < 0)
            goto done;
        hash_s(k, hashes + 32 * d);
    }
    if (buf_insert_td(b, documents_start, 0xD0) < 0 || s_name(k, F_DOCUMENTS) < 0 || s_struct(k, hashes, count) < 0)
        goto done;
    hash_s(k, out);
    rc = 0;
done:
    PyMem_Free(hashes);
    return rc;
}

/* The block's struct onto k->out, once the revisions and transactionInfo are encoded. */
static int blk_envelope(Blk *k, const unsigned char *block_hash, const unsigned char *entries_hash,
                        const unsigned char *previous, Py_ssize_t previous_n, const unsigned char *entries,
                        Py_ssize_t entry_count)
{
    Buf *b = &k->out;
    Py_ssize_t i, list_start;
    if (put_field(k, b, F_BLOCK_ADDRESS) < 0 || put_buf(b, &k->address) < 0 || put_field(k, b, F_TRANSACTION_ID) < 0 ||
        put_buf(b, &k->tx) < 0 || put_field(k, b, F_BLOCK_TIMESTAMP) < 0 || put_buf(b, &k->ts) < 0 ||
        put_field(k, b, F_BLOCK_HASH) < 0 || put_scalar(b, 0xA0, block_hash, 32) < 0 ||
        put_field(k, b, F_ENTRIES_HASH) < 0 || put_scalar(b, 0xA0, entries_hash, 32) < 0 ||
        put_field(k, b, F_PREVIOUS_BLOCK_HASH) < 0 || put_scalar(b, 0xA0, previous, previous_n) < 0 ||
        put_field(k, b, F_ENTRIES_HASH_LIST) < 0)
        return -1;
    list_start = b->len;
    for (i = 0; i < entry_count; i++)
        if (put_scalar(b, 0xA0, entries + 32 * i, 32) < 0) return -1;
    if (buf_insert_td(b, list_start, 0xB0) < 0 || put_field(k, b, F_TRANSACTION_INFO) < 0 || put_buf(b, &k->info) < 0)
        return -1;
    if (k->revisions.len) {
        if (put_field(k, b, F_REVISIONS) < 0 || buf_add_td(b, 0xB0, k->revisions.len) < 0 ||
            put_buf(b, &k->revisions) < 0)
            return -1;
    }
    return buf_insert_td(b, 0, 0xD0);
}

/* Checks encode_block's arguments (statements, writes and system hashes as tuples by now); 0 when they are
 * outside what it writes (it then returns None). */
static int blk_arguments(PyObject *const *args, BlockWrite **writes, Py_ssize_t *write_count)
{
    Py_ssize_t i, n, prev_n;
    PyObject *seen = NULL;
    if (utf8_of(args[1], &n) == NULL || small_uint(args[2]) < 0 || utf8_of(args[3], &n) == NULL ||
        !PyBytes_CheckExact(args[4]) || !PyBytes_CheckExact(args[8]))
        return 0;
    prev_n = PyBytes_GET_SIZE(args[8]);
    if (prev_n != 0 && prev_n != 32) return 0;
    for (i = 0; i < PyTuple_GET_SIZE(args[5]); i++)
        if (utf8_of(PyTuple_GET_ITEM(args[5], i), &n) == NULL) return 0;
    for (i = 0; i < PyTuple_GET_SIZE(args[7]); i++) {
        PyObject *hash = PyTuple_GET_ITEM(args[7], i);
        if (!PyBytes_CheckExact(hash) || PyBytes_GET_SIZE(hash) != 32) return 0;
    }
    *write_count = PyTuple_GET_SIZE(args[6]);
    *writes = (BlockWrite *)PyMem_Calloc((size_t)(*write_count ? *write_count : 1), sizeof(BlockWrite));
    if (*writes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < *write_count; i++)
        if (!unpack_write(PyTuple_GET_ITEM(args[6], i), &(*writes)[i])) return 0;
    if (*write_count > 1) { /* several revisions of one document share an entry: the Python path groups them */
        seen = PySet_New(NULL);
        if (seen == NULL) return -1;
        for (i = 0; i < *write_count; i++) {
            int found = PySet_Contains(seen, (*writes)[i].doc_key);
            if (found != 0 || PySet_Add(seen, (*writes)[i].doc_key) < 0) {
                Py_DECREF(seen);
                return found > 0 ? 0 : -1;
            }
        }
        Py_DECREF(seen);
    }
    return 1;
}

/* Everything after the checks. `hashes` has room for twice the revisions' hashes (the second half is the
 * Merkle root's scratch). */
static PyObject *blk_encode(Blk *k, PyObject *const *args, const BlockWrite *writes, Py_ssize_t write_count,
                            unsigned char *hashes)
{
    PyObject *systems = args[7], *previous = args[8], *entries_tuple = NULL, *hashes_tuple = NULL, *result = NULL;
    Py_ssize_t i, system_count = PyTuple_GET_SIZE(systems), revision_count = write_count + system_count;
    Py_ssize_t entry_count = 0, info_count = 1, previous_n = PyBytes_GET_SIZE(previous);
    unsigned char entries[2 * 32], root[2 * 32], info_fields[2 * 32], entries_hash[32], block_hash[32];
    if (blk_prepare(k, args[1], (unsigned long long)small_uint(args[2]), args[3], args[4]) < 0) return NULL;
    for (i = 0; i < write_count; i++)
        if (blk_revision(k, &writes[i], hashes + 32 * i) < 0) return NULL;
    for (i = 0; i < system_count; i++) {
        const unsigned char *hash = (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(systems, i));
        memcpy(hashes + 32 * (write_count + i), hash, 32);
        if (blk_system_revision(k, hash) < 0) return NULL;
    }
    if (revision_count) {
        memcpy(hashes + 32 * revision_count, hashes, (size_t)(32 * revision_count)); /* merkle_root32 overwrites */
        merkle_root32(hashes + 32 * revision_count, revision_count);
        memcpy(entries, hashes + 32 * revision_count, 32);
        entry_count = 1;
    }
    if (blk_statements(k, args[5], info_fields) < 0) return NULL;
    if (write_count) {
        if (blk_documents(k, writes, write_count, info_fields + 32) < 0) return NULL;
        info_count = 2;
    }
    if (buf_insert_td(&k->info, 0, 0xD0) < 0 || s_struct(k, info_fields, info_count) < 0) return NULL;
    hash_s(k, entries + 32 * entry_count++);
    memcpy(root, entries, (size_t)(32 * entry_count));
    merkle_root32(root, entry_count);
    memcpy(entries_hash, root, 32);
    if (previous_n)
        dot32(entries_hash, (const unsigned char *)PyBytes_AS_STRING(previous), block_hash);
    else
        memcpy(block_hash, entries_hash, 32);
    if (blk_envelope(k, block_hash, entries_hash, (const unsigned char *)PyBytes_AS_STRING(previous), previous_n,
                     entries, entry_count) < 0)
        return NULL;
    entries_tuple = PyTuple_New(entry_count);
    hashes_tuple = PyTuple_New(revision_count);
    if (entries_tuple == NULL || hashes_tuple == NULL) goto done;
    for (i = 0; i < entry_count; i++) {
        PyObject *entry = PyBytes_FromStringAndSize((const char *)entries + 32 * i, 32);
        if (entry == NULL) goto done;
        PyTuple_SET_ITEM(entries_tuple, i, entry);
    }
    for (i = 0; i < revision_count; i++) {
        PyObject *hash = PyBytes_FromStringAndSize((const char *)hashes + 32 * i, 32);
        if (hash == NULL) goto done;
        PyTuple_SET_ITEM(hashes_tuple, i, hash);
    }
    result = Py_BuildValue("(y#y#y#OO)", (const char *)k->out.p, k->out.len, (const char *)block_hash, (Py_ssize_t)32,
                           (const char *)entries_hash, (Py_ssize_t)32, entries_tuple, hashes_tuple);
done:
    Py_XDECREF(entries_tuple);
    Py_XDECREF(hashes_tuple);
    return result;
}

static PyObject *py_encode_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Blk k;
    BlockWrite *writes = NULL;
    Py_ssize_t write_count = 0, revision_count;
    unsigned char *hashes = NULL;
    PyObject *result = NULL, *owned[9];
    int usable, i;
    (void)module;
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError,
                     "encode_block() takes 9 arguments (table, strand_id, sequence_no, transaction_id, "
                     "timestamp_repr, statements, writes, system_hashes, previous_block_hash), %zd given",
                     nargs);
        return NULL;
    }
    init_types();
    for (i = 5; i <= 7; i++)
        if (!PyList_CheckExact(args[i]) && !PyTuple_CheckExact(args[i])) return Py_NewRef(Py_None);
    /* Tuples of the sequences: what is read here stays alive even if a table's sid() changes the lists. */
    memcpy(owned, args, sizeof owned);
    owned[5] = owned[6] = owned[7] = NULL;
    for (i = 5; i <= 7; i++)
        if ((owned[i] = PySequence_Tuple(args[i])) == NULL) goto done;
    usable = blk_arguments(owned, &writes, &write_count);
    if (usable <= 0) {
        result = usable < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    revision_count = write_count + PyTuple_GET_SIZE(owned[7]);
    hashes = (unsigned char *)PyMem_Malloc((size_t)(2 * revision_count + 1) * 32); /* the hashes, then scratch */
    if (hashes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memset(&k, 0, sizeof k);
    k.e.table = owned[0];
    result = blk_encode(&k, owned, writes, write_count, hashes);
    blk_free(&k);
done:
    for (i = 5; i <= 7; i++) Py_XDECREF(owned[i]);
    PyMem_Free(hashes);
    PyMem_Free(writes);
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

static PyObject *py_binary_top_field(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
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

/* --- module --------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"sha256", py_sha256, METH_O, "sha256(data) -> the 32-byte SHA-256 digest of data."},
    {"_sha256_portable", py_sha256_portable, METH_O,
     "_sha256_portable(data) -> sha256(data) by the portable code even where SHA-NI is used (for tests)."},
    {"encode_hashed", (PyCFunction)(void (*)(void))py_encode_hashed, METH_FASTCALL,
     "encode_hashed(value, table, fallback) -> (ion, s): ionwrite.encode_hashed(value, table); values of\n"
     "other than the plain types are encoded by fallback(value, table)."},
    {"encode_block", (PyCFunction)(void (*)(void))py_encode_block, METH_FASTCALL,
     "encode_block(table, strand_id, sequence_no, transaction_id, timestamp_repr, statements, writes,\n"
     "system_hashes, previous_block_hash) -> (ion, block_hash, entries_hash, entries, revision_hashes), or None\n"
     "when an argument is outside what it writes (journal.writer then encodes the block in Python)."},
    {"binary_hash_repr", py_binary_hash_repr, METH_O,
     "binary_hash_repr(data) -> s(value) of the stream's one value, or None (ionwrite.binary_hash_repr)."},
    {"binary_top_field", (PyCFunction)(void (*)(void))py_binary_top_field, METH_FASTCALL,
     "binary_top_field(data, name) -> (descriptor, body) of the struct's field, (-1, b'') when absent, or None\n"
     "(ionwrite.binary_top_field)."},
    {"binary_ion_hash", py_binary_ion_hash, METH_O,
     "binary_ion_hash(data) -> sha256(binary_hash_repr(data)), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_ionhash",
    "Native twins of ledgerdr.journal.ionwrite's encode_hashed and binary_hash_repr (same bytes).", -1, methods,
};

PyMODINIT_FUNC PyInit__ionhash(void)
{
    PyObject *module, *envelope;
    int i;
    if (str_sid == NULL) {
        str_sid = PyUnicode_InternFromString("sid");
        str_sids = PyUnicode_InternFromString("sids");
        str_texts = PyUnicode_InternFromString("texts");
        str_pieces = PyUnicode_InternFromString("_pieces");
        str_as_tuple = PyUnicode_InternFromString("as_tuple");
        str_precision = PyUnicode_InternFromString("precision");
        str_fractional_precision = PyUnicode_InternFromString("fractional_precision");
        str_fractional_seconds = PyUnicode_InternFromString("fractional_seconds");
        if (str_sid == NULL || str_sids == NULL || str_texts == NULL || str_pieces == NULL || str_as_tuple == NULL ||
            str_precision == NULL || str_fractional_precision == NULL || str_fractional_seconds == NULL)
            return NULL;
    }
    if (PyDateTimeAPI == NULL) {
        PyDateTime_IMPORT;
        if (PyDateTimeAPI == NULL) PyErr_Clear(); /* datetimes then go to the fallback */
    }
    if (envelope_keys[0] == NULL) {
        for (i = 0; i < F_COUNT; i++)
            if ((envelope_keys[i] = PyUnicode_InternFromString(ENVELOPE_NAMES[i])) == NULL) return NULL;
    }
    module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    envelope = PyTuple_New(F_COUNT);
    if (envelope == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    for (i = 0; i < F_COUNT; i++) PyTuple_SET_ITEM(envelope, i, Py_NewRef(envelope_keys[i]));
    if (PyModule_AddObjectRef(module, "SHA256_ACCELERATED", ldr_sha256_accelerated() ? Py_True : Py_False) < 0 ||
        PyModule_AddObjectRef(module, "ENVELOPE", envelope) < 0)
        Py_CLEAR(module);
    Py_DECREF(envelope);
    return module;
}
