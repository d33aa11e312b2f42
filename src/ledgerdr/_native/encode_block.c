/* ledgerdr._ionhash's journal block envelope: encode_block (see ionhash.c for the contract). */
#include "ionhash.h"

/* --- encode_block --------------------------------------------------------------------------------------- */


PyObject *envelope_keys[F_COUNT]; /* the names as interned str, made at module init */

/* A str's UTF-8, or NULL with no error set when it is not an exact str or cannot be encoded (the caller
 * then returns None and the Python path raises what it raises). */
const char *utf8_of(PyObject *text, Py_ssize_t *n)
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

PyObject *py_encode_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
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
