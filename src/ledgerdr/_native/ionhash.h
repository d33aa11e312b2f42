/* ledgerdr._ionhash, shared between its three parts: the document encoder (encode_doc.c), Ion Hash read
 * from Ion binary (hash_binary.c) and the journal block envelope (encode_block.c); ionhash.c is the module
 * (its functions are listed there) and holds the type and name caches all three use. */
#ifndef LEDGERDR_IONHASH_H
#define LEDGERDR_IONHASH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "ionread.h"
#include "sha256.h"

/* Interned attribute names and the types the encoder recognises (made at module init / first use). */
extern PyObject *str_sid, *str_sids, *str_texts, *str_pieces, *str_as_tuple;
extern PyObject *str_precision, *str_fractional_precision, *str_fractional_seconds;
extern int types_ready;
extern PyObject *decimal_type, *symbol_token_type, *timestamp_type, *symbol_table_type;
void init_types(void);

/* The document encoder's state: encode_block encodes strings and symbols through it too. */
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

int enc_sid(Enc *e, PyObject *key, const char *text, Py_ssize_t n, Py_ssize_t *sid);
int uint64_bytes(unsigned long long m, unsigned char *out);
int encode_doc_init(void); /* the datetime C API, for this part only (datetime.h keeps it per file) */

extern PyObject *envelope_keys[F_COUNT];
const char *utf8_of(PyObject *text, Py_ssize_t *n);

PyObject *py_encode_hashed(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_encode_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_binary_hash_repr(PyObject *module, PyObject *arg);
PyObject *py_binary_ion_hash(PyObject *module, PyObject *arg);
PyObject *py_binary_plain_hashed(PyObject *module, PyObject *arg); /* plain_binary.c */
PyObject *py_text_ion_hash(PyObject *module, PyObject *arg);
PyObject *py_binary_top_field(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_stored_index_keys(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_snapshot_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs); /* snapshot_rows.c */
PyObject *py_sha256(PyObject *module, PyObject *arg);
PyObject *py_dot(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_sha256_portable(PyObject *module, PyObject *arg);

#endif
