/* ledgerdr._ionhash.snapshot_rows: a snapshot part of format 2 (snapshots.py documents the layout) read
 * and checked in one pass, the rows a target stores handed back. The pure-Python reader
 * (snapshots.read_part_python) stays the reference; tests/test_snapshot_format.py checks both agree.
 *
 * Per record: the key order (strictly after the record before it), the block number inside the snapshot's
 * range, and the revision hash recomputed: IonHash(metadata) from the stored columns (id, version, txTime
 * at millisecond precision in UTC, as QLDB and the embedded ledger write it, txId), IonHash(data) straight
 * from the document's Ion binary, then dot. A document this reader does not take (rd_stream says NOTREAD)
 * is listed for the Python path to hash. */
#include "ionhash.h"

#define F_DELETED 1
#define F_REDACTED 2
#define F_TYPE_LOST 4

typedef struct {
    const unsigned char *d;
    Py_ssize_t n, p;
    const char *error; /* why the part is unreadable (static text) */
} Cur;

/* LEB128, minimal (a tampered longer form of the same number is refused like any other change). */
static int cur_varuint(Cur *c, uint64_t *out)
{
    uint64_t v = 0;
    int shift = 0;
    while (c->p < c->n) {
        unsigned char b = c->d[c->p++];
        if (shift == 63 && (b & 0x7E)) break;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift) break; /* a redundant last group */
            *out = v;
            return 0;
        }
        shift += 7;
        if (shift > 63) break;
    }
    c->error = "bad or truncated number";
    return -1;
}

static int cur_bytes(Cur *c, Py_ssize_t n, const unsigned char **out)
{
    if (n < 0 || c->n - c->p < n) {
        c->error = "truncated";
        return -1;
    }
    *out = c->d + c->p;
    c->p += n;
    return 0;
}

/* A length-prefixed field: its bytes and length. */
static int cur_field(Cur *c, const unsigned char **out, Py_ssize_t *n)
{
    uint64_t length;
    if (cur_varuint(c, &length) < 0) return -1;
    if (length > (uint64_t)(c->n - c->p)) {
        c->error = "truncated";
        return -1;
    }
    *n = (Py_ssize_t)length;
    return cur_bytes(c, *n, out);
}

static int cur_text(Cur *c, const unsigned char **out, Py_ssize_t *n)
{
    if (cur_field(c, out, n) < 0) return -1;
    if (!valid_utf8(*out, *n)) {
        c->error = "text is not UTF-8";
        return -1;
    }
    return 0;
}

/* The Ion timestamp representation of epoch milliseconds `ms` (journal.writer.ms_timestamp: UTC offset,
 * second precision, three fraction digits) into rep; its length, or -1 outside years 1..9999. */
static int ms_timestamp_rep(int64_t ms, unsigned char *rep)
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t in_day = ms - days * 86400000, z, era, doe, yoe, doy, mp, y, m, d;
    int n = 0, frac = (int)(in_day % 1000), secs = (int)(in_day / 1000);
    /* civil_from_days (H. Hinnant): the proleptic Gregorian date of a day count from 1970-01-01 */
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = yoe + era * 400 + (m <= 2);
    if (y < 1 || y > 9999) return -1;
    rep[n++] = 0x80; /* offset +00:00 */
    if (y < 0x80) {
        rep[n++] = (unsigned char)(0x80 | y);
    } else {
        rep[n++] = (unsigned char)(y >> 7);
        rep[n++] = (unsigned char)(0x80 | (y & 0x7F));
    }
    rep[n++] = (unsigned char)(0x80 | m);
    rep[n++] = (unsigned char)(0x80 | d);
    rep[n++] = (unsigned char)(0x80 | (secs / 3600));
    rep[n++] = (unsigned char)(0x80 | (secs / 60 % 60));
    rep[n++] = (unsigned char)(0x80 | (secs % 60));
    rep[n++] = 0xC3; /* fraction exponent -3; a zero coefficient is omitted */
    if (frac >= 0x100) rep[n++] = (unsigned char)(frac >> 8);
    else if (frac >= 0x80) rep[n++] = 0x00; /* keep the Int's sign bit clear */
    if (frac) rep[n++] = (unsigned char)(frac & 0xFF);
    return n;
}

static const unsigned char NAME_ID[] = "id", NAME_VERSION[] = "version", NAME_TX_TIME[] = "txTime",
                           NAME_TX_ID[] = "txId";

/* H(s(name) || s(value)) of one metadata field into out. */
static int field_hash_of(Buf *s, const unsigned char *name, unsigned char tq, const unsigned char *raw,
                         Py_ssize_t n, unsigned char *out)
{
    s->len = 0;
    if (buf_add_scalar_s(s, 0x70, name, (Py_ssize_t)strlen((const char *)name)) < 0 ||
        buf_add_scalar_s(s, tq, raw, n) < 0)
        return -1;
    ldr_sha256(s->p, (size_t)s->len, out);
    return 0;
}

/* IonHash({id, version, txTime, txId}) into out: 0, -1 (memory), 1 (txTime outside years 1..9999). */
static int metadata_hash(Buf *s, const unsigned char *id, Py_ssize_t id_n, uint64_t version, int64_t tx_ms,
                         const unsigned char *tx_id, Py_ssize_t tx_id_n, unsigned char *out)
{
    unsigned char fields[4 * 32], mag[8], rep[16];
    int rep_n = ms_timestamp_rep(tx_ms, rep);
    if (rep_n < 0) return 1;
    if (field_hash_of(s, NAME_ID, 0x80, id, id_n, fields) < 0 ||
        field_hash_of(s, NAME_VERSION, 0x20, mag, uint64_bytes(version, mag), fields + 32) < 0 ||
        field_hash_of(s, NAME_TX_TIME, 0x60, rep, rep_n, fields + 64) < 0 ||
        field_hash_of(s, NAME_TX_ID, 0x80, tx_id, tx_id_n, fields + 96) < 0)
        return -1;
    qsort(fields, 4, 32, cmp_hash);
    s->len = 0;
    if (buf_add_scalar_s(s, 0xD0, fields, 4 * 32) < 0) return -1;
    ldr_sha256(s->p, (size_t)s->len, out);
    return 0;
}

/* IonHash of the document d[0:n] (a stream of its own): OK, NOTREAD (left to Python) or ERROR. */
static int document_hash(const unsigned char *d, Py_ssize_t n, unsigned char *out)
{
    Rd r;
    int rc;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.n = n;
    rc = rd_stream(&r);
    if (rc == OK) ldr_sha256(r.out.p, (size_t)r.out.len, out);
    rd_free(&r);
    return rc;
}

typedef struct {
    PyObject *tables;   /* [(table id, table name)] */
    PyObject **ids;     /* borrowed from tables: each table id as str */
    Py_ssize_t count;
    PyObject *rows, *type_lost, *unread, *problems;
    Py_ssize_t deleted, redacted, rule_unknown;
    Buf s;
} Out;

static int problem(Out *o, Py_ssize_t index, const char *detail)
{
    PyObject *item = Py_BuildValue("(ns)", index, detail);
    int rc = item == NULL ? -1 : PyList_Append(o->problems, item);
    Py_XDECREF(item);
    return rc;
}

static int add_index(PyObject *list, Py_ssize_t index)
{
    PyObject *item = PyLong_FromSsize_t(index);
    int rc = item == NULL ? -1 : PyList_Append(list, item);
    Py_XDECREF(item);
    return rc;
}

static int read_tables(Cur *c, Out *o)
{
    uint64_t count, i;
    if (cur_varuint(c, &count) < 0) return -1;
    if (count > (uint64_t)(c->n - c->p) / 2) {
        c->error = "table count beyond the object";
        return -1;
    }
    o->count = (Py_ssize_t)count;
    o->tables = PyList_New(o->count);
    o->ids = PyMem_Calloc((size_t)o->count + 1, sizeof(PyObject *));
    if (o->tables == NULL || o->ids == NULL) {
        PyErr_NoMemory();
        return -2;
    }
    for (i = 0; i < count; i++) {
        const unsigned char *id, *name;
        Py_ssize_t id_n, name_n;
        PyObject *pair;
        if (cur_text(c, &id, &id_n) < 0 || cur_text(c, &name, &name_n) < 0) return -1;
        pair = Py_BuildValue("(s#s#)", id, id_n, name, name_n);
        if (pair == NULL) return -2;
        PyList_SET_ITEM(o->tables, (Py_ssize_t)i, pair);
        o->ids[i] = PyTuple_GET_ITEM(pair, 0);
        if (i && PyUnicode_Compare(o->ids[i - 1], o->ids[i]) >= 0) { /* by id, each once: index order is key order */
            if (PyErr_Occurred()) return -2;
            c->error = "tables not in id order";
            return -1;
        }
    }
    return 0;
}

/* The key of the record before: its table index, document id and version (order check). */
typedef struct {
    int has;
    uint64_t table;
    const unsigned char *doc;
    Py_ssize_t doc_n;
    uint64_t version;
} Key;

static int key_after(const Key *before, uint64_t table, const unsigned char *doc, Py_ssize_t doc_n,
                     uint64_t version)
{
    int c;
    if (!before->has || table != before->table) return !before->has || table > before->table;
    c = memcmp(before->doc, doc, (size_t)Py_MIN(before->doc_n, doc_n));
    if (c != 0) return c < 0;
    if (before->doc_n != doc_n) return before->doc_n < doc_n;
    return before->version < version;
}

/* One record: checked, and its row appended. -1: unreadable (c->error), -2: a Python error. */
static int read_record(Cur *c, Out *o, Py_ssize_t index, Key *before, uint64_t first_seq, uint64_t last_seq)
{
    static const unsigned char null_s[3] = {0x0B, 0x0F, 0x0E};
    uint64_t table, version, seq, flags;
    const unsigned char *doc, *tx_id, *tx, *stated, *data_hash = NULL, *ion = NULL;
    Py_ssize_t doc_n, tx_id_n, ion_n = 0;
    int64_t tx_ms;
    unsigned char meta[32], computed[32], dh[32];
    int rc, checked = 1;
    PyObject *row;
    if (cur_varuint(c, &table) < 0 || cur_text(c, &doc, &doc_n) < 0 || cur_varuint(c, &version) < 0 ||
        cur_varuint(c, &flags) < 0 || cur_varuint(c, &seq) < 0 || cur_bytes(c, 8, &tx) < 0 ||
        cur_text(c, &tx_id, &tx_id_n) < 0 || cur_bytes(c, 32, &stated) < 0)
        return -1;
    if (table >= (uint64_t)o->count || flags > 7 || (flags & F_DELETED && flags & (F_REDACTED | F_TYPE_LOST)) ||
        (flags & F_REDACTED && flags & F_TYPE_LOST) || version > (uint64_t)INT64_MAX || seq > (uint64_t)INT64_MAX) {
        c->error = "a field is out of range";
        return -1;
    }
    if (flags & F_REDACTED && cur_bytes(c, 32, &data_hash) < 0) return -1;
    if (!(flags & (F_DELETED | F_REDACTED)) && cur_field(c, &ion, &ion_n) < 0) return -1;
    tx_ms = (int64_t)(((uint64_t)tx[0] << 56) | ((uint64_t)tx[1] << 48) | ((uint64_t)tx[2] << 40) |
                      ((uint64_t)tx[3] << 32) | ((uint64_t)tx[4] << 24) | ((uint64_t)tx[5] << 16) |
                      ((uint64_t)tx[6] << 8) | (uint64_t)tx[7]);
    if (!key_after(before, table, doc, doc_n, version) && problem(o, index, "not after the record before it") < 0)
        return -2;
    before->has = 1, before->table = table, before->doc = doc, before->doc_n = doc_n, before->version = version;
    if ((seq < first_seq || seq > last_seq) && problem(o, index, "block outside the snapshot's range") < 0)
        return -2;
    rc = metadata_hash(&o->s, doc, doc_n, version, tx_ms, tx_id, tx_id_n, meta);
    if (rc < 0) return -2;
    if (rc == 1) {
        if (problem(o, index, "txTime outside years 1..9999") < 0) return -2;
    } else if (flags & F_DELETED) {
        o->deleted++;
        if (memcmp(meta, stated, 32) != 0) {
            ldr_sha256(null_s, 3, dh);
            dot32(meta, dh, computed);
            if (memcmp(computed, stated, 32) != 0) o->rule_unknown++; /* QLDB never published it (CONTRACTS §4) */
        }
    } else if (flags & F_REDACTED) {
        o->redacted++;
        dot32(meta, data_hash, computed);
        if (memcmp(computed, stated, 32) != 0 &&
            problem(o, index, "redacted revision: hash != dot(metadata, dataHash)") < 0)
            return -2;
    } else if (flags & F_TYPE_LOST) {
        if (add_index(o->type_lost, index) < 0) return -2; /* JSON lost its types: checked by chain only */
    } else {
        rc = document_hash(ion, ion_n, dh);
        if (rc == ERROR) return -2;
        if (rc == NOTREAD) {
            checked = 0;
            if (add_index(o->unread, index) < 0) return -2;
        }
        if (checked) {
            dot32(meta, dh, computed);
            if (memcmp(computed, stated, 32) != 0 &&
                problem(o, index, "hash does not recompute from metadata and data") < 0)
                return -2;
        }
    }
    row = Py_BuildValue("(Os#KNy#Ls#KN)", o->ids[table], doc, doc_n, (unsigned long long)version,
                        ion ? PyBytes_FromStringAndSize((const char *)ion, ion_n) : Py_NewRef(Py_None),
                        stated, (Py_ssize_t)32, (long long)tx_ms, tx_id, tx_id_n, (unsigned long long)seq,
                        data_hash ? PyBytes_FromStringAndSize((const char *)data_hash, 32) : Py_NewRef(Py_None));
    if (row == NULL) return -2;
    rc = PyList_Append(o->rows, row);
    Py_DECREF(row);
    return rc < 0 ? -2 : 0;
}

static const unsigned char MAGIC[8] = {'L', 'D', 'R', 'S', 'N', 'A', 'P', '2'};

/* snapshot_rows(data, first_seq, last_seq) -> (tables, rows, counts, type_lost, unread, problems). */
PyObject *py_snapshot_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Cur c;
    Out o;
    Key before = {0};
    uint64_t count, i;
    unsigned long long first_seq, last_seq;
    PyObject *result = NULL;
    int rc = 0;
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "snapshot_rows(data, first_seq, last_seq)");
        return NULL;
    }
    first_seq = PyLong_AsUnsignedLongLong(args[1]);
    last_seq = PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    memset(&o, 0, sizeof o);
    c.d = (const unsigned char *)view.buf, c.n = view.len, c.p = 0, c.error = NULL;
    o.rows = PyList_New(0), o.type_lost = PyList_New(0), o.unread = PyList_New(0), o.problems = PyList_New(0);
    if (o.rows == NULL || o.type_lost == NULL || o.unread == NULL || o.problems == NULL) goto done;
    if (c.n < 8 || memcmp(c.d, MAGIC, 8) != 0) {
        c.error = "not a format-2 snapshot part";
        rc = -1;
    } else {
        c.p = 8;
        rc = read_tables(&c, &o);
        if (rc == 0) rc = cur_varuint(&c, &count);
        for (i = 0; rc == 0 && i < count; i++) rc = read_record(&c, &o, (Py_ssize_t)i, &before, first_seq, last_seq);
        if (rc == 0 && c.p != c.n) {
            c.error = "bytes after the last record";
            rc = -1;
        }
    }
    if (rc == -1) {
        PyErr_Format(PyExc_ValueError, "record #%zd at byte %zd: %s", PyList_GET_SIZE(o.rows), c.p, c.error);
    } else if (rc == 0) {
        result = Py_BuildValue("(OO(nnnnn)OOO)", o.tables, o.rows, PyList_GET_SIZE(o.rows), o.deleted, o.redacted,
                               PyList_GET_SIZE(o.type_lost), o.rule_unknown, o.type_lost, o.unread, o.problems);
    }
done:
    Py_XDECREF(o.tables);
    Py_XDECREF(o.rows);
    Py_XDECREF(o.type_lost);
    Py_XDECREF(o.unread);
    Py_XDECREF(o.problems);
    PyMem_Free(o.ids);
    buf_free(&o.s);
    PyBuffer_Release(&view);
    return result;
}
