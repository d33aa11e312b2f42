/* ledgerdr._statedigest: the target side of the restore's state digest (targets/digest.py, which stays the
 * reference) straight from the rows a target stores, and the fold of packed leaves.
 *
 * leaves(table_id, rows, lost) -> (packed, fallback, shared)
 *     rows: (doc_id, version, data, hash, tx_time_ms, tx_id, data_hash[, in_current]) tuples as the embedded
 *     ledger stores them (`Target.iter_state_rows`). For each, the 33-byte record leaf ‖ reason of
 *     digest._DigestBuilder.add: H is the journal's hash for a delete, a redacted row or a row in `lost` (a set
 *     of (doc_id, version), or None), else dot(IonHash(metadata), IonHash(data)) recomputed from the stored
 *     columns and bytes. A row whose recomputed hash differs from the stored one, whose bytes the reader does
 *     not read, or whose columns are not of the expected types is listed in `fallback` (its record is left
 *     zero): the Python path decides it, so a mismatch is only ever reported from the decoded value. `shared`:
 *     the records, in row order, of the rows not in `fallback` whose eighth column is true (a history row the
 *     target's current state holds identically: its record is the current row's too, base.StateRows).
 * pack_rows(rows) -> (table_ids, packed)
 *     digest.pack_journal of the entries of restore.rows' history rows, without a Python tuple per entry.
 * entries(packed, tables) -> count
 *     How many packed journal entries `packed` holds; ValueError when truncated or naming a table index at or
 *     past `tables`.
 * journal(parts, redacted) -> [(table_id, table_name, history, current)]
 *     digest.digest_of_journal's leaves from packed entries (digest.pack_journal): parts are (tables, packed),
 *     `tables` the part's (table id, table name) pairs that entries name by position; `redacted` the set of
 *     (table id, document id, version) keys redactions name. Per table, in the order first named: its
 *     history records (leaf ‖ reason) and its current records (the newest entry of each document, unless a
 *     delete), packed for `fold`.
 * fold(history, current) -> (history_hash, current_hash, revisions, live, reasons)
 *     digest._DigestBuilder.finish for one table: each side's records (33 bytes) sorted, one per leaf (the
 *     last, whose reason is the highest), their leaves folded; reasons counts the history records kept by
 *     reason (RECOMPUTED, JSON_TYPE_LOST, DELETED, REDACTED).
 */
#include "ionread.h"
#include "civil.h" /* after Python.h (ionread.h): Python.h comes first */

enum { RECOMPUTED, JSON_TYPE_LOST, DELETED, REDACTED, REASON_COUNT };
#define RECORD 33

/* s(name) of the metadata's field names, and s(struct)'s pieces, built once. */
static Buf name_id, name_version, name_tx_time, name_tx_id;

/* VarUInt into out; its length. */
static int put_varuint_raw(uint64_t value, unsigned char *out)
{
    return varuint_bytes(value, out);
}

/* hashing._timestamp_repr of writer.ms_timestamp(storage.from_ms(ms)): UTC offset, year, month..second, then
 * three fractional digits (exponent -3, the milliseconds as an Int; none when zero). 0: done, -1: a year
 * the Python code would not build (outside 1..9999). */
static int timestamp_repr(int64_t ms, unsigned char *out, int *n)
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rest = ms - days * 86400000, y;
    unsigned m, d, millis = (unsigned)(rest % 1000), secs = (unsigned)(rest / 1000);
    int k = 0;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) return -1;
    out[k++] = 0x80; /* offset: VarInt 0 (UTC) */
    k += put_varuint_raw((uint64_t)y, out + k);
    out[k++] = (unsigned char)(0x80 | m);
    out[k++] = (unsigned char)(0x80 | d);
    out[k++] = (unsigned char)(0x80 | (secs / 3600));
    out[k++] = (unsigned char)(0x80 | (secs / 60 % 60));
    out[k++] = (unsigned char)(0x80 | (secs % 60));
    out[k++] = 0xC3; /* exponent: VarInt -3 */
    if (millis) {    /* coefficient: Int, a leading zero octet when the top bit would read as the sign */
        if (millis >= 0x80) out[k++] = (unsigned char)(millis >> 8);
        out[k++] = (unsigned char)(millis & 0xFF);
    }
    *n = k;
    return 0;
}

/* sha256(s(name) || s(value)) appended to hashes; s is scratch. */
static int field_hash(Buf *s, const Buf *name, unsigned char tq, const unsigned char *raw, Py_ssize_t n, Buf *hashes)
{
    s->len = 0;
    if (buf_add(s, name->p, name->len) < 0 || buf_add_scalar_s(s, tq, raw, n) < 0) return -1;
    return push_field_hash(s, 0, hashes);
}

/* IonHash of {id, version, txTime, txId} (hashing.ion_hash of the metadata embedded._stored rebuilds) into
 * out; 0, 1 when the Python code must decide (an unrepresentable time), -1 on an error (set). */
static int metadata_hash(Buf *s, Buf *hashes, const char *id, Py_ssize_t id_n, uint64_t version, int64_t tx_ms,
                         const char *tx_id, Py_ssize_t tx_id_n, unsigned char *out)
{
    unsigned char raw[24];
    int n = 0;
    hashes->len = 0;
    while (version) { /* UInt: big-endian magnitude, zero is empty */
        memmove(raw + 1, raw, (size_t)n++);
        raw[0] = (unsigned char)(version & 0xFF);
        version >>= 8;
    }
    if (field_hash(s, &name_version, 0x20, raw, n, hashes) < 0) return -1;
    if (timestamp_repr(tx_ms, raw, &n) < 0) return 1;
    if (field_hash(s, &name_tx_time, 0x60, raw, n, hashes) < 0) return -1;
    if (field_hash(s, &name_id, 0x80, (const unsigned char *)id, id_n, hashes) < 0) return -1;
    if (field_hash(s, &name_tx_id, 0x80, (const unsigned char *)tx_id, tx_id_n, hashes) < 0) return -1;
    s->len = 0;
    if (finish_struct_s(s, hashes, 0) < 0) return -1;
    ldr_sha256(s->p, (size_t)s->len, out);
    return 0;
}

/* IonHash of a stored document's Ion binary bytes; 0, 1 (not read: the Python code decides), -1 (error). */
static int data_hash(const char *data, Py_ssize_t n, unsigned char *out)
{
    Rd r;
    int rc;
    memset(&r, 0, sizeof r);
    r.d = (const unsigned char *)data;
    r.n = n;
    rc = rd_stream(&r);
    if (rc == OK) ldr_sha256(r.out.p, (size_t)r.out.len, out);
    rd_free(&r);
    return rc == OK ? 0 : rc == NOTREAD ? 1 : -1;
}

/* Whether (doc, version) is in `lost`; -1 on an error. */
static int is_lost(PyObject *lost, PyObject *doc, PyObject *version)
{
    PyObject *key;
    int found;
    if (lost == Py_None || PySet_GET_SIZE(lost) == 0) return 0;
    if ((key = PyTuple_Pack(2, doc, version)) == NULL) return -1;
    found = PySet_Contains(lost, key);
    Py_DECREF(key);
    return found;
}

typedef struct {
    Buf s, hashes, leaf;
    const char *table;
    Py_ssize_t table_n;
} Ctx;

/* The record of one row into rec; 0, 1 (fallback), -1 (error). */
static int row_record(Ctx *c, PyObject *row, PyObject *lost, unsigned char *rec)
{
    PyObject *doc, *version_obj, *data, *hash, *tx_ms_obj, *tx_id, *stored_data_hash;
    const char *doc_s, *tx_id_s;
    Py_ssize_t doc_n, tx_id_n;
    unsigned long long version;
    long long tx_ms;
    unsigned char h[32], meta[32], dh[32], be[8];
    const unsigned char *revision_hash = h;
    Py_ssize_t hash_n = 32;
    int reason, rc, i;
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 7 || PyTuple_GET_SIZE(row) > 8) return 1;
    doc = PyTuple_GET_ITEM(row, 0);
    version_obj = PyTuple_GET_ITEM(row, 1);
    data = PyTuple_GET_ITEM(row, 2);
    hash = PyTuple_GET_ITEM(row, 3);
    tx_ms_obj = PyTuple_GET_ITEM(row, 4);
    tx_id = PyTuple_GET_ITEM(row, 5);
    stored_data_hash = PyTuple_GET_ITEM(row, 6);
    if (!PyUnicode_Check(doc) || !PyLong_Check(version_obj) || !PyBytes_Check(hash) || !PyLong_Check(tx_ms_obj) ||
        !PyUnicode_Check(tx_id) || (data != Py_None && !PyBytes_Check(data)))
        return 1;
    version = PyLong_AsUnsignedLongLong(version_obj);
    if (version == (unsigned long long)-1 && PyErr_Occurred()) { /* negative or too big: Python raises */
        PyErr_Clear();
        return 1;
    }
    if ((doc_s = PyUnicode_AsUTF8AndSize(doc, &doc_n)) == NULL || (tx_id_s = PyUnicode_AsUTF8AndSize(tx_id, &tx_id_n)) == NULL) {
        PyErr_Clear(); /* a lone surrogate: the Python code raises it */
        return 1;
    }
    if (data == Py_None) {
        reason = stored_data_hash == Py_None ? DELETED : REDACTED;
    } else if ((rc = is_lost(lost, doc, version_obj)) != 0) {
        if (rc < 0) return -1;
        reason = JSON_TYPE_LOST;
    } else {
        reason = RECOMPUTED;
    }
    if (reason != RECOMPUTED) {
        revision_hash = (const unsigned char *)PyBytes_AS_STRING(hash);
        hash_n = PyBytes_GET_SIZE(hash);
    } else {
        tx_ms = PyLong_AsLongLong(tx_ms_obj);
        if (tx_ms == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
        if (PyBytes_GET_SIZE(hash) != 32) return 1;
        if ((rc = metadata_hash(&c->s, &c->hashes, doc_s, doc_n, version, tx_ms, tx_id_s, tx_id_n, meta)) != 0) return rc;
        if ((rc = data_hash(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), dh)) != 0) return rc;
        dot32(meta, dh, h);
        if (memcmp(h, PyBytes_AS_STRING(hash), 32) != 0) return 1;
    }
    /* leaf_hash: sha256(tableId ‖ 0 ‖ documentId ‖ 0 ‖ version (8 octets, big-endian) ‖ H) */
    c->leaf.len = 0;
    for (i = 0; i < 8; i++) be[i] = (unsigned char)(version >> (56 - 8 * i));
    if (buf_add(&c->leaf, c->table, c->table_n) < 0 || buf_add(&c->leaf, "", 1) < 0 || buf_add(&c->leaf, doc_s, doc_n) < 0 ||
        buf_add(&c->leaf, "", 1) < 0 || buf_add(&c->leaf, be, 8) < 0 || buf_add(&c->leaf, revision_hash, hash_n) < 0)
        return -1;
    ldr_sha256(c->leaf.p, (size_t)c->leaf.len, rec);
    rec[32] = (unsigned char)reason;
    return 0;
}

static PyObject *py_leaves(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *rows, *lost, *packed = NULL, *fallback = NULL, *seq = NULL, *result = NULL;
    Buf shared = {NULL, 0, 0};
    Ctx c;
    Py_ssize_t i, n;
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "leaves(table_id, rows, lost) takes three arguments");
        return NULL;
    }
    rows = args[1];
    lost = args[2];
    if (lost != Py_None && !PyAnySet_Check(lost)) {
        PyErr_SetString(PyExc_TypeError, "lost must be a set or None");
        return NULL;
    }
    memset(&c, 0, sizeof c);
    if ((c.table = PyUnicode_AsUTF8AndSize(args[0], &c.table_n)) == NULL) return NULL;
    if ((seq = PySequence_Fast(rows, "rows must be a sequence")) == NULL) return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if ((packed = PyBytes_FromStringAndSize(NULL, n * RECORD)) == NULL || (fallback = PyList_New(0)) == NULL) goto done;
    memset(PyBytes_AS_STRING(packed), 0, (size_t)(n * RECORD));
    for (i = 0; i < n; i++) {
        unsigned char *rec = (unsigned char *)PyBytes_AS_STRING(packed) + i * RECORD;
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        int rc = row_record(&c, row, lost, rec);
        if (rc < 0) goto done;
        if (rc == 0 && PyTuple_GET_SIZE(row) == 8) { /* row_record took only a tuple of 7 or 8 */
            int in_current = PyObject_IsTrue(PyTuple_GET_ITEM(row, 7));
            if (in_current < 0 || (in_current && buf_add(&shared, rec, RECORD) < 0)) goto done;
        }
        if (rc > 0) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(fallback, index) < 0) {
                Py_XDECREF(index);
                goto done;
            }
            Py_DECREF(index);
        }
    }
    result = Py_BuildValue("(OOy#)", packed, fallback, shared.p ? (const char *)shared.p : "", shared.len);
done:
    buf_free(&shared);
    buf_free(&c.s);
    buf_free(&c.hashes);
    buf_free(&c.leaf);
    Py_XDECREF(seq);
    Py_XDECREF(packed);
    Py_XDECREF(fallback);
    return result;
}

static int cmp_record(const void *a, const void *b)
{
    return memcmp(a, b, RECORD);
}

#define PREFIXES 65536      /* records are first scattered by their first two octets */
#define SCATTER_FROM 4096   /* records: fewer are copied and sorted whole (the counts would cost more) */

/* `n` records of `in` sorted into `out` (memcmp order): scattered by their first two octets (a counting sort),
 * then each run of one prefix sorted on its own. Leaves are SHA-256 outputs, spread evenly over the prefixes, so a
 * run holds a few records and the whole is about linear (qsort of 1,000,000 records: ~0.5 s); any input still
 * sorts right, at worst (one prefix) as qsort. 0, or -1 when the counts could not be allocated. No Python calls. */
static int sort_records(const unsigned char *in, unsigned char *out, size_t n)
{
    size_t *at, i, b;
    if (n < SCATTER_FROM) {
        memcpy(out, in, n * RECORD);
        qsort(out, n, RECORD, cmp_record);
        return 0;
    }
    if ((at = (size_t *)calloc(PREFIXES + 1, sizeof(size_t))) == NULL) return -1;
    for (i = 0; i < n; i++) at[((size_t)in[i * RECORD] << 8 | in[i * RECORD + 1]) + 1]++;
    for (b = 0; b < PREFIXES; b++) at[b + 1] += at[b];  /* at[b]: where prefix b's run starts */
    for (i = 0; i < n; i++) {
        size_t *next = &at[(size_t)in[i * RECORD] << 8 | in[i * RECORD + 1]];
        memcpy(out + (*next)++ * RECORD, in + i * RECORD, RECORD);
    }
    /* now at[b] is where run b ends, and run b starts where run b - 1 ends */
    for (b = 0; b < PREFIXES; b++) {
        size_t start = b ? at[b - 1] : 0;
        if (at[b] - start > 1) qsort(out + start * RECORD, at[b] - start, RECORD, cmp_record);
    }
    free(at);
    return 0;
}

/* Sort the records into a private copy (`sort_records`), keep one per leaf (the last, which sorts highest), fold
 * their leaves with SHA-256; the count kept, -1 on an error. */
static Py_ssize_t fold_records(PyObject *arg, unsigned char *out, Py_ssize_t reasons[REASON_COUNT])
{
    Py_buffer view;
    unsigned char *copy;
    Py_ssize_t n, i, kept = 0;
    int sorted;
    ldr_sha256_ctx ctx;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return -1;
    if (view.len % RECORD) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "packed leaves must be a multiple of %d octets", RECORD);
        return -1;
    }
    n = view.len / RECORD;
    if ((copy = (unsigned char *)PyMem_Malloc(view.len ? (size_t)view.len : 1)) == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    sorted = sort_records((const unsigned char *)view.buf, copy, (size_t)n);
    if (sorted == 0) {
        ldr_sha256_init(&ctx);
        for (i = 0; i < n; i++) {
            const unsigned char *rec = copy + (size_t)i * RECORD;
            if (i + 1 < n && memcmp(rec, rec + RECORD, 32) == 0) continue; /* the next one has this leaf too */
            ldr_sha256_update(&ctx, rec, 32);
            if (reasons && rec[32] < REASON_COUNT) reasons[rec[32]]++;
            kept++;
        }
        ldr_sha256_final(&ctx, out);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyMem_Free(copy);
    if (sorted < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return kept;
}

static PyObject *py_fold(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char history[32], current[32];
    Py_ssize_t reasons[REASON_COUNT] = {0, 0, 0, 0}, revisions, live;
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fold(history, current) takes two arguments");
        return NULL;
    }
    if ((revisions = fold_records(args[0], history, reasons)) < 0) return NULL;
    if ((live = fold_records(args[1], current, NULL)) < 0) return NULL;
    return Py_BuildValue("(y#y#nn(nnnn))", history, (Py_ssize_t)32, current, (Py_ssize_t)32, revisions, live,
                         reasons[RECOMPUTED], reasons[JSON_TYPE_LOST], reasons[DELETED], reasons[REDACTED]);
}

/* --- the journal side (digest.digest_of_journal over packed entries) ---------------------------------- */

enum { ENTRY_DELETED = 1, ENTRY_NO_DATA = 2, ENTRY_TYPE_LOST = 4 };
#define ENTRY_HEAD 47 /* digest._ENTRY: table index u32, flags u8, version u64, hash 32, document id length u16 */

typedef struct {
    uint64_t version;
    const unsigned char *doc;
    uint32_t table;
    uint16_t doc_n;
    unsigned char live;
    unsigned char leaf[32];
} Entry;

static uint64_t le_uint(const unsigned char *p, int n)
{
    uint64_t v = 0;
    while (n--) v = (v << 8) | p[n];
    return v;
}

/* (table, document, version, live, leaf) ascending: the last of a document's run is its newest, as
 * digest._NewestLeaves keeps the greatest (version, live, leaf). */
static int cmp_entry(const void *a, const void *b)
{
    const Entry *x = (const Entry *)a, *y = (const Entry *)b;
    int c;
    if (x->table != y->table) return x->table < y->table ? -1 : 1;
    c = memcmp(x->doc, y->doc, x->doc_n < y->doc_n ? x->doc_n : y->doc_n);
    if (c) return c;
    if (x->doc_n != y->doc_n) return x->doc_n < y->doc_n ? -1 : 1;
    if (x->version != y->version) return x->version < y->version ? -1 : 1;
    if (x->live != y->live) return x->live < y->live ? -1 : 1;
    return memcmp(x->leaf, y->leaf, 32);
}

typedef struct {
    PyObject *ids;    /* list of table id str, by global index */
    PyObject *names;  /* list of table names (the last a part gives wins) */
    PyObject *index;  /* dict table id -> global index */
    Buf *history;     /* per global index: leaf || reason records */
    Buf *current;
    Py_ssize_t count; /* tables */
} Tables;

/* The global index of table (id, name) from a part; -1 on an error. */
static Py_ssize_t table_index(Tables *t, PyObject *pair)
{
    PyObject *id, *name, *found;
    Py_ssize_t i;
    if (!PyTuple_Check(pair) && !PyList_Check(pair)) goto bad;
    if (PySequence_Fast_GET_SIZE(pair) != 2) goto bad;
    id = PySequence_Fast_GET_ITEM(pair, 0);
    name = PySequence_Fast_GET_ITEM(pair, 1);
    if (!PyUnicode_Check(id) || !PyUnicode_Check(name)) goto bad;
    if ((found = PyDict_GetItemWithError(t->index, id)) != NULL) {
        i = PyLong_AsSsize_t(found);
        if (PyList_SetItem(t->names, i, Py_NewRef(name)) < 0) return -1;
        return i;
    }
    if (PyErr_Occurred()) return -1;
    i = t->count;
    {
        PyObject *number = PyLong_FromSsize_t(i);
        int rc = number == NULL ? -1 : PyDict_SetItem(t->index, id, number);
        Py_XDECREF(number);
        if (rc < 0 || PyList_Append(t->ids, id) < 0 || PyList_Append(t->names, name) < 0) return -1;
    }
    {
        Buf *h = PyMem_Realloc(t->history, sizeof(Buf) * (size_t)(i + 1)), *c;
        if (h == NULL) goto nomem;
        t->history = h;
        memset(&h[i], 0, sizeof(Buf));
        c = PyMem_Realloc(t->current, sizeof(Buf) * (size_t)(i + 1));
        if (c == NULL) goto nomem;
        t->current = c;
        memset(&c[i], 0, sizeof(Buf));
    }
    t->count = i + 1;
    return i;
nomem:
    PyErr_NoMemory();
    return -1;
bad:
    PyErr_SetString(PyExc_ValueError, "a part's tables must be (table id, table name) pairs of str");
    return -1;
}

/* Whether (table id, document id, version) is in `redacted`; -1 on an error. */
static int is_redacted(PyObject *redacted, PyObject *table_id, const Entry *e)
{
    PyObject *doc, *version, *key;
    int found;
    if (PySet_GET_SIZE(redacted) == 0) return 0;
    doc = PyUnicode_DecodeUTF8((const char *)e->doc, e->doc_n, NULL);
    version = PyLong_FromUnsignedLongLong(e->version);
    key = doc && version ? PyTuple_Pack(3, table_id, doc, version) : NULL;
    Py_XDECREF(doc);
    Py_XDECREF(version);
    if (key == NULL) return -1;
    found = PySet_Contains(redacted, key);
    Py_DECREF(key);
    return found;
}

/* Read one part's entries onto `entries` (their history records go to the tables' buffers). 0 or -1. */
static int journal_part(Tables *t, PyObject *part, PyObject *redacted, Buf *entries, Buf *leaf)
{
    PyObject *tables, *seq = NULL;
    Py_buffer view;
    Py_ssize_t *map = NULL, n_tables, i, pos = 0;
    int rc = -1;
    if (!PyTuple_Check(part) || PyTuple_GET_SIZE(part) != 2) {
        PyErr_SetString(PyExc_TypeError, "each part must be a (tables, packed) tuple");
        return -1;
    }
    tables = PyTuple_GET_ITEM(part, 0);
    if ((seq = PySequence_Fast(tables, "a part's tables must be a sequence")) == NULL) return -1;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(part, 1), &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(seq);
        return -1;
    }
    n_tables = PySequence_Fast_GET_SIZE(seq);
    if ((map = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_tables + 1))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n_tables; i++)
        if ((map[i] = table_index(t, PySequence_Fast_GET_ITEM(seq, i))) < 0) goto done;
    while (pos < view.len) {
        const unsigned char *p = (const unsigned char *)view.buf + pos;
        uint32_t local;
        unsigned flags;
        Entry e;
        int reason;
        if (view.len - pos < ENTRY_HEAD) goto truncated;
        local = (uint32_t)le_uint(p, 4);
        flags = p[4];
        e.version = le_uint(p + 5, 8);
        e.doc_n = (uint16_t)le_uint(p + 45, 2);
        e.doc = p + ENTRY_HEAD;
        if (view.len - pos - ENTRY_HEAD < e.doc_n) goto truncated;
        if (local >= (uint32_t)n_tables) {
            PyErr_SetString(PyExc_ValueError, "packed journal entry names a table the part does not list");
            goto done;
        }
        e.table = (uint32_t)map[local];
        e.live = !(flags & ENTRY_DELETED);
        if (flags & ENTRY_DELETED) {
            reason = DELETED;
        } else if (flags & ENTRY_NO_DATA) {
            reason = REDACTED;
        } else {
            int hit = is_redacted(redacted, PyList_GET_ITEM(t->ids, e.table), &e);
            if (hit < 0) goto done;
            reason = hit ? REDACTED : flags & ENTRY_TYPE_LOST ? JSON_TYPE_LOST : RECOMPUTED;
        }
        {   /* leaf_hash(tableId, documentId, version, hash) */
            Py_ssize_t id_n;
            const char *id = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(t->ids, e.table), &id_n);
            unsigned char be[8];
            int k;
            if (id == NULL) goto done;
            for (k = 0; k < 8; k++) be[k] = (unsigned char)(e.version >> (56 - 8 * k));
            leaf->len = 0;
            if (buf_add(leaf, id, id_n) < 0 || buf_add(leaf, "", 1) < 0 || buf_add(leaf, e.doc, e.doc_n) < 0 ||
                buf_add(leaf, "", 1) < 0 || buf_add(leaf, be, 8) < 0 || buf_add(leaf, p + 13, 32) < 0)
                goto done;
            ldr_sha256(leaf->p, (size_t)leaf->len, e.leaf);
        }
        {
            Buf *h = &t->history[e.table];
            unsigned char r = (unsigned char)reason;
            if (buf_add(h, e.leaf, 32) < 0 || buf_add(h, &r, 1) < 0 || buf_add(entries, &e, sizeof e) < 0) goto done;
        }
        pos += ENTRY_HEAD + e.doc_n;
    }
    rc = 0;
    goto done;
truncated:
    PyErr_SetString(PyExc_ValueError, "packed journal entries are truncated");
done:
    PyMem_Free(map);
    PyBuffer_Release(&view);
    Py_DECREF(seq);
    return rc;
}

/* pack_rows(rows) -> (table ids in the order first named, packed entries): digest.pack_journal of the journal
 * entries of HistoryRow tuples (restore.rows: table id, document id, version, Ion or None, hash, ...), flags
 * ENTRY_DELETED | ENTRY_NO_DATA where the Ion is None. ValueError as pack_journal's. */
static PyObject *py_pack_rows(PyObject *module, PyObject *arg)
{
    PyObject *seq, *index = NULL, *ids = NULL, *result = NULL;
    Buf out = {NULL, 0, 0};
    Py_ssize_t i, n;
    (void)module;
    if ((seq = PySequence_Fast(arg, "rows must be a sequence")) == NULL) return NULL;
    if ((index = PyDict_New()) == NULL || (ids = PyList_New(0)) == NULL) goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i), *table, *found, *hash;
        unsigned char head[ENTRY_HEAD];
        const char *doc;
        Py_ssize_t doc_n, t;
        unsigned long long version;
        int k;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 5 || !PyUnicode_Check(PyTuple_GET_ITEM(row, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(row, 1)) || !PyBytes_Check(PyTuple_GET_ITEM(row, 4))) {
            PyErr_SetString(PyExc_TypeError, "a row must be (table id, document id, version, ion, hash, ...)");
            goto done;
        }
        table = PyTuple_GET_ITEM(row, 0);
        if ((found = PyDict_GetItemWithError(index, table)) != NULL) {
            t = PyLong_AsSsize_t(found);
        } else {
            PyObject *number;
            int rc;
            if (PyErr_Occurred()) goto done;
            t = PyList_GET_SIZE(ids);
            if ((number = PyLong_FromSsize_t(t)) == NULL) goto done;
            rc = PyDict_SetItem(index, table, number);
            Py_DECREF(number);
            if (rc < 0 || PyList_Append(ids, table) < 0) goto done;
        }
        hash = PyTuple_GET_ITEM(row, 4);
        version = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(row, 2));
        if (version == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "a row's version does not pack (0..2**64-1)");
            goto done;
        }
        if ((doc = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(row, 1), &doc_n)) == NULL) goto done;
        if (PyBytes_GET_SIZE(hash) != 32 || doc_n > 0xFFFF || t > 0xFFFFFFFFLL) {
            PyErr_SetString(PyExc_ValueError, "a row does not pack (a hash not of 32 bytes, or a document id over "
                                              "65,535 bytes)");
            goto done;
        }
        for (k = 0; k < 4; k++) head[k] = (unsigned char)((uint64_t)t >> (8 * k));
        head[4] = PyTuple_GET_ITEM(row, 3) == Py_None ? ENTRY_DELETED | ENTRY_NO_DATA : 0;
        for (k = 0; k < 8; k++) head[5 + k] = (unsigned char)(version >> (8 * k));
        memcpy(head + 13, PyBytes_AS_STRING(hash), 32);
        head[45] = (unsigned char)(doc_n & 0xFF);
        head[46] = (unsigned char)(doc_n >> 8);
        if (buf_add(&out, head, ENTRY_HEAD) < 0 || buf_add(&out, doc, doc_n) < 0) goto done;
    }
    result = Py_BuildValue("(Oy#)", ids, out.p ? (const char *)out.p : "", out.len);
done:
    buf_free(&out);
    Py_XDECREF(index);
    Py_XDECREF(ids);
    Py_DECREF(seq);
    return result;
}

/* entries(packed, tables) -> the number of packed entries, each naming a table below `tables`; ValueError
 * when they are truncated or name another table. */
static PyObject *py_entries(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos = 0, count = 0, tables;
    const char *problem = NULL;
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "entries(packed, tables) takes two arguments");
        return NULL;
    }
    if ((tables = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    while (pos < view.len) {
        const unsigned char *p = (const unsigned char *)view.buf + pos;
        if (view.len - pos < ENTRY_HEAD || view.len - pos - ENTRY_HEAD < (Py_ssize_t)le_uint(p + 45, 2)) {
            problem = "packed journal entries are truncated";
            break;
        }
        if (le_uint(p, 4) >= (uint64_t)tables) {
            problem = "packed journal entry names a table the part does not list";
            break;
        }
        pos += ENTRY_HEAD + (Py_ssize_t)le_uint(p + 45, 2);
        count++;
    }
    PyBuffer_Release(&view);
    if (problem) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *py_journal(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Tables t;
    Buf entries = {NULL, 0, 0}, leaf = {NULL, 0, 0};
    PyObject *parts = NULL, *result = NULL;
    Py_ssize_t i, n;
    (void)module;
    if (nargs != 2 || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "journal(parts, redacted) takes a sequence of parts and a set");
        return NULL;
    }
    memset(&t, 0, sizeof t);
    if ((parts = PySequence_Fast(args[0], "parts must be a sequence")) == NULL) return NULL;
    if ((t.ids = PyList_New(0)) == NULL || (t.names = PyList_New(0)) == NULL || (t.index = PyDict_New()) == NULL)
        goto done;
    for (i = 0; i < PySequence_Fast_GET_SIZE(parts); i++)
        if (journal_part(&t, PySequence_Fast_GET_ITEM(parts, i), args[1], &entries, &leaf) < 0) goto done;
    /* The current state: each document's newest entry, when it is not a delete. Entries point into the
     * parts' bytes, which `parts` keeps alive. */
    n = entries.len / (Py_ssize_t)sizeof(Entry);
    if (n > 1) qsort(entries.p, (size_t)n, sizeof(Entry), cmp_entry);
    for (i = 0; i < n; i++) {
        const Entry *e = (const Entry *)entries.p + i, *next = e + 1;
        if (i + 1 < n && next->table == e->table && next->doc_n == e->doc_n && memcmp(next->doc, e->doc, e->doc_n) == 0)
            continue; /* not the newest of its document */
        if (e->live) {
            Buf *c = &t.current[e->table];
            if (buf_add(c, e->leaf, 32) < 0 || buf_add(c, "", 1) < 0) goto done;
        }
    }
    if ((result = PyList_New(t.count)) == NULL) goto done;
    for (i = 0; i < t.count; i++) {
        PyObject *item = Py_BuildValue("(OOy#y#)", PyList_GET_ITEM(t.ids, i), PyList_GET_ITEM(t.names, i),
                                       t.history[i].p ? (const char *)t.history[i].p : "", t.history[i].len,
                                       t.current[i].p ? (const char *)t.current[i].p : "", t.current[i].len);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    for (i = 0; i < t.count; i++) {
        buf_free(&t.history[i]);
        buf_free(&t.current[i]);
    }
    PyMem_Free(t.history);
    PyMem_Free(t.current);
    Py_XDECREF(t.ids);
    Py_XDECREF(t.names);
    Py_XDECREF(t.index);
    buf_free(&entries);
    buf_free(&leaf);
    Py_DECREF(parts);
    return result;
}

static PyMethodDef methods[] = {
    {"leaves", (PyCFunction)(void (*)(void))py_leaves, METH_FASTCALL,
     "leaves(table_id, rows, lost) -> (packed 33-octet records, indexes the Python path decides, the records of "
     "rows flagged in the current state too)."},
    {"pack_rows", (PyCFunction)py_pack_rows, METH_O,
     "pack_rows(rows) -> (table ids, packed journal entries) of restore.rows' history rows."},
    {"entries", (PyCFunction)(void (*)(void))py_entries, METH_FASTCALL,
     "entries(packed, tables) -> how many packed journal entries (ValueError when malformed)."},
    {"journal", (PyCFunction)(void (*)(void))py_journal, METH_FASTCALL,
     "journal(parts, redacted) -> [(table_id, table_name, history, current)] of packed journal entries."},
    {"fold", (PyCFunction)(void (*)(void))py_fold, METH_FASTCALL,
     "fold(history, current) -> (history_hash, current_hash, revisions, live, reasons)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_statedigest",
    "The restore's state digest from a target's stored rows (targets.digest stays the reference).", -1, methods,
};

static int name_s(Buf *b, const char *text)
{
    return buf_add_scalar_s(b, 0x70, (const unsigned char *)text, (Py_ssize_t)strlen(text));
}

PyMODINIT_FUNC PyInit__statedigest(void)
{
    if (name_s(&name_id, "id") < 0 || name_s(&name_version, "version") < 0 || name_s(&name_tx_time, "txTime") < 0 ||
        name_s(&name_tx_id, "txId") < 0)
        return NULL;
    return PyModule_Create(&module_def);
}
