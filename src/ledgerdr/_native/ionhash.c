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
 *     ionread.binary_hash_repr ported path by path: s(value) of the one value of a self-contained Ion
 *     binary stream, or None when the stream is outside the subset read there.
 * binary_ion_hash(data) -> bytes | None
 *     sha256(binary_hash_repr(data)), or None.
 * binary_plain_hashed(data) -> (hash, value) | (hash, Ellipsis) | None
 *     binary_ion_hash(data) and, from the same walk, the value as plain Python values (dict, list, str, int,
 *     bool, float, Decimal: what serve's session_api._plain makes of amazon.ion's values), or Ellipsis when the
 *     value holds anything else (plain_binary.c says what); None when binary_ion_hash gives None.
 * text_ion_hash(text) -> bytes | None
 *     hashing.ion_hash(text) of an exact str, or None (not an exact str, or a lone surrogate).
 * binary_top_field(data, name) -> (descriptor, body) | (-1, b"") | None
 *     ionread.binary_top_field ported path by path: a top-level field of the struct a stream holds.
 * stored_index_keys(rows, name, index_id) -> (entries, undecided) | None
 *     The index entries (index_id, key, doc_id) of field `name` of stored documents, rows (doc_id, data) as
 *     targets.embedded._stored_index_key keys them from the bytes: a string or int field; the rows whose key
 *     needs the document decoded (a null, another type, a stream outside binary_top_field's) in `undecided`;
 *     rows without data or the field give none. None when `name` is not encodable (Python decides all).
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
 *
 * The module is several files: this one (the function table, init, and the caches the others share), encode_doc.c,
 * hash_binary.c, plain_binary.c, encode_block.c and snapshot_rows.c, with their shared declarations in ionhash.h.
 */
#include "ionhash.h"

PyObject *str_sid;      /* "sid" */
PyObject *str_sids;     /* "sids" */
PyObject *str_texts;    /* "texts" */
PyObject *str_pieces;   /* "_pieces" */
PyObject *str_as_tuple; /* "as_tuple" */
PyObject *str_precision, *str_fractional_precision, *str_fractional_seconds; /* Timestamp's */

/* Exact types written here besides the builtins, looked up at the first encode_hashed call (not at import:
 * ionwrite imports this module). NULL when unavailable: such values then go to the fallback. */
int types_ready;
PyObject *decimal_type;     /* decimal.Decimal */
PyObject *symbol_token_type; /* amazon.ion.symbols.SymbolToken */
PyObject *timestamp_type;    /* amazon.ion.core.Timestamp */
PyObject *symbol_table_type; /* ledgerdr.journal.ionwrite.SymbolTable, once that module is loaded */

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

void init_types(void)
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

/* --- module --------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"sha256", py_sha256, METH_O, "sha256(data) -> the 32-byte SHA-256 digest of data."},
    {"dot", (PyCFunction)(void (*)(void))py_dot, METH_FASTCALL,
     "dot(a, b) -> hashing.dot(a, b): SHA-256 of the two 32-byte hashes, the smaller (QLDB's order) first."},
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
     "binary_hash_repr(data) -> s(value) of the stream's one value, or None (ionread.binary_hash_repr)."},
    {"snapshot_rows", (PyCFunction)(void (*)(void))py_snapshot_rows, METH_FASTCALL,
     "snapshot_rows(data, first_seq, last_seq) -> (tables, rows, counts, type_lost, unread, problems): a format-2 "
     "snapshot part read and every revision hash recomputed (snapshots.read_part_python is the reference)."},
    {"binary_top_field", (PyCFunction)(void (*)(void))py_binary_top_field, METH_FASTCALL,
     "binary_top_field(data, name) -> (descriptor, body) of the struct's field, (-1, b'') when absent, or None\n"
     "(ionread.binary_top_field)."},
    {"stored_index_keys", (PyCFunction)(void (*)(void))py_stored_index_keys, METH_FASTCALL,
     "stored_index_keys(rows, name, index_id) -> (entries, undecided) | None: index entries of stored documents\n"
     "(targets.embedded._stored_index_key)."},
    {"binary_ion_hash", py_binary_ion_hash, METH_O,
     "binary_ion_hash(data) -> sha256(binary_hash_repr(data)), or None."},
    {"text_ion_hash", py_text_ion_hash, METH_O,
     "text_ion_hash(text) -> hashing.ion_hash(text) of an exact str, or None (no UTF-8 form: Python decides)."},
    {"binary_plain_hashed", py_binary_plain_hashed, METH_O,
     "binary_plain_hashed(data) -> (binary_ion_hash(data), the value as plain Python values or Ellipsis), or None."},
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
    if (encode_doc_init() < 0) return NULL;
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
