/* ledgerdr._ionhash's document encoder: encode_hashed, a value's Ion binary and its Ion Hash serialization in
 * one pass (see ionhash.c for the contract). */
#include "ionhash.h"

#include <datetime.h>

int encode_doc_init(void)
{
    if (PyDateTimeAPI == NULL) {
        PyDateTime_IMPORT;
        if (PyDateTimeAPI == NULL) PyErr_Clear(); /* datetimes then go to the fallback */
    }
    return 0;
}

/* --- encode_hashed -------------------------------------------------------------------------------------- */


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
int enc_sid(Enc *e, PyObject *key, const char *text, Py_ssize_t n, Py_ssize_t *sid)
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
int uint64_bytes(unsigned long long m, unsigned char *out)
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

PyObject *py_encode_hashed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
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
