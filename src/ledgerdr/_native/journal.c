/* ledgerdr._journal: journal blocks verified in C straight from their Ion binary bytes.
 *
 * verify_blocks(data, rows[, first_seq, last_seq, stop_seq]) -> list | None
 *     `data` is an Ion binary data object whose every block is self-contained (a version marker, at most one
 *     local symbol table `$ion_symbol_table::{symbols:[...]}`, then the block struct), as ledgerdr's exports
 *     write them. For each block, in one pass over its bytes: every revision's Ion Hash (metadata, data)
 *     against its stated hash (a delete: IonHash(metadata), or dot with IonHash(null), CONTRACTS §4), the
 *     statements' digests, IonHash(transactionInfo) and the revisions' Merkle root in entriesHashList, the
 *     entries Merkle root, and blockHash = dot(entriesHash, previousBlockHash). One tuple per block:
 *         (sequence_no, strand_id, previous_block_hash, block_hash, revisions, system_entries, start, end,
 *          timestamp_ms, rows, statements)
 *     `start:end` is the block's own segment of `data`. With `rows` false the last three are None; with
 *     `rows` true (and, given first_seq and last_seq, for the blocks of those sequence numbers only: the others
 *     are parsed for their stated hashes and links, not hashed, with revisions and system_entries 0 and the last
 *     three None, as units.load_unit checks only the links of another unit's blocks), `timestamp_ms` is
 *     blockTimestamp in epoch milliseconds, `rows` a tuple of one
 *         (table_id, table_name, document_id, version, document_ion | None, revision_hash, tx_time_ms, tx_id)
 *     per document revision in block order (None for a delete; the document as a self-contained Ion binary
 *     stream with a symbol table of its own, symbols in first-use order as ionwrite.SymbolTable numbers them),
 *     and `statements` the texts of the statements that may change a table definition (they start with
 *     CREATE, DROP or UNDROP in any case, or hold a non-ASCII character). A stop_seq >= 0 ends the list with the first block at or past it.
 *     None for the whole object when anything is outside that common case: another stream layout, a field off
 *     QLDB's schema or repeated, a redacted revision or redactionInfo, a hash that does not recompute, odd
 *     lengths, timestamps Python's datetime would not take, a txTime not at millisecond precision in UTC
 *     (a row's txTime is its epoch milliseconds). The Python path (journal.verify, restore.units) then does
 *     the object and reports exactly what it always reports; it stays the reference, and the tests hold the
 *     two equal (tests/test_journal_native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "civil.h"
#include "ionread.h"

#include "envelope.h"

#define N_UNKNOWN (-1)
#define N_UNSEEN (-2)

/* s(null): its Ion Hash is a deleted revision's data hash under the second accepted rule. */
static unsigned char NULL_HASH[32];

/* One value's head: type code (high nibble), body d[start:end]; null true for null.<type>. */
typedef struct {
    int code;
    int null;
    Py_ssize_t head, start, end;
} Val;

/* A document's table, from transactionInfo.documents: the document id's symbol, and its strings. */
typedef struct {
    uint64_t sid;
    Py_ssize_t name, name_n, id, id_n;
} DocTable;

typedef struct {
    Rd r;               /* the reader of ionread.h, over the current segment */
    int *field;         /* per SID of the segment: its N_ name, N_UNKNOWN, or N_UNSEEN (not looked up yet) */
    Py_ssize_t field_cap;
    Buf entries;        /* entriesHashList, 32 bytes each, then scratch for the Merkle roots */
    Buf revisions;      /* the revisions' hashes */
    DocTable *docs;
    Py_ssize_t docs_n, docs_cap;
    /* a document's own symbol table while it is copied */
    int64_t *remap;     /* per SID of the segment: its SID in the document's table, or -1 */
    Py_ssize_t remap_cap;
    Buf doc;            /* the document's bytes */
    Buf symbols;        /* the document's symbol list: encoded strings */
    Buf texts;          /* the same symbols' texts, for look-ups by text */
    Buf text_off;       /* Py_ssize_t offsets into texts, one per symbol plus one */
    int64_t next_sid;
    int rows;           /* build rows (restore) */
    int64_t first, last; /* ... for the blocks of these sequence numbers only */
    int want;           /* rows for the block being read */
    int64_t seq;        /* the sequence number of the last block read */
} J;

/* --- reading ------------------------------------------------------------------------------------------- */

static int vu(const unsigned char *d, Py_ssize_t *pos, Py_ssize_t end, uint64_t *out)
{
    uint64_t value = 0;
    Py_ssize_t p = *pos;
    while (p < end) {
        unsigned char octet = d[p++];
        if (value >= ((uint64_t)1 << 50)) return NOTREAD;
        value = (value << 7) | (octet & 0x7F);
        if (octet & 0x80) {
            *pos = p;
            *out = value;
            return OK;
        }
    }
    return NOTREAD;
}

static int j_varuint(const J *j, Py_ssize_t *pos, Py_ssize_t end, uint64_t *out)
{
    return vu(j->r.d, pos, end, out);
}

/* The value at d[pos], which must end by `end`. NOP padding, annotations and reserved codes are not read. */
static int j_val(const J *j, Py_ssize_t pos, Py_ssize_t end, Val *v)
{
    unsigned char descriptor;
    uint64_t length;
    if (pos >= end) return NOTREAD;
    v->head = pos;
    descriptor = j->r.d[pos++];
    v->code = descriptor >> 4;
    length = descriptor & 0x0F;
    v->null = length == 15;
    if ((v->code == 0 && !v->null) || v->code >= 0xE) return NOTREAD; /* NOP padding, annotations, reserved */
    if (v->null || v->code == 1) {
        v->start = v->end = pos;
        return OK;
    }
    if (length == 14 || (v->code == 0xD && length == 1)) {
        if (j_varuint(j, &pos, end, &length) != OK) return NOTREAD;
    }
    if (length > (uint64_t)(end - pos)) return NOTREAD;
    v->start = pos;
    v->end = pos + (Py_ssize_t)length;
    return OK;
}

/* The schema name of a field SID (looked up once per segment and SID). */
static int j_name(J *j, uint64_t sid)
{
    int i, found = N_UNKNOWN;
    Py_ssize_t n, off;
    if (sid == 0 || sid >= (uint64_t)j->r.count) return N_UNKNOWN;
    if (j->field[sid] != N_UNSEEN) return j->field[sid];
    off = j->r.noff[sid];
    n = j->r.noff[sid + 1] - off - 3; /* s(symbol) is 0x0B 0x70 text 0x0E; no schema name needs escapes */
    for (i = 0; i < F_COUNT; i++) {
        const char *name = ENVELOPE_NAMES[i];
        if ((Py_ssize_t)strlen(name) == n && memcmp(j->r.names.p + off + 2, name, (size_t)n) == 0) {
            found = i;
            break;
        }
    }
    j->field[sid] = found;
    return found;
}

/* The next field of the struct body being walked: its schema name and value; 0 at the end, 1 for a field,
 * NOTREAD. */
static int j_field(J *j, Py_ssize_t *pos, Py_ssize_t end, int *name, uint64_t *sid, Val *v)
{
    if (*pos >= end) return 0;
    if (j_varuint(j, pos, end, sid) != OK) return NOTREAD;
    if (*sid == 0 || *sid >= (uint64_t)j->r.count) return NOTREAD;
    *name = j_name(j, *sid);
    if (j_val(j, *pos, end, v) != OK) return NOTREAD;
    *pos = v->end;
    return 1;
}

/* A field seen twice is off the schema (Python's dict keeps one of them). */
static int j_once(unsigned *seen, int name)
{
    if (name < 0) return 1;
    if (*seen & (1u << name)) return 0;
    *seen |= 1u << name;
    return 1;
}

static int j_uint(const J *j, const Val *v, int64_t *out)
{
    uint64_t x = 0;
    Py_ssize_t p;
    if (v->code != 2 || v->null || v->end - v->start > 8) return NOTREAD;
    for (p = v->start; p < v->end; p++) x = (x << 8) | j->r.d[p];
    if (x > (uint64_t)INT64_MAX) return NOTREAD;
    *out = (int64_t)x;
    return OK;
}

static int j_hash(const Val *v)
{
    return v->code == 0xA && !v->null && v->end - v->start == 32;
}

static int j_string(const J *j, const Val *v)
{
    return v->code == 8 && !v->null && valid_utf8(j->r.d + v->start, v->end - v->start);
}

/* Ion Hash of the value at d[pos:end]. */
static int j_ion_hash(J *j, Py_ssize_t pos, Py_ssize_t end, unsigned char *out)
{
    Py_ssize_t after;
    int rc;
    j->r.out.len = 0;
    if ((rc = rd_value(&j->r, pos, end, &after)) != OK) return rc;
    if (after != end) return NOTREAD;
    ldr_sha256(j->r.out.p, (size_t)j->r.out.len, out);
    return OK;
}

static int j_in_entries(const J *j, Py_ssize_t count, const unsigned char *hash)
{
    Py_ssize_t i;
    for (i = 0; i < count; i++)
        if (memcmp(j->entries.p + 32 * i, hash, 32) == 0) return 1;
    return 0;
}

/* --- timestamps ---------------------------------------------------------------------------------------- */

static int leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Epoch milliseconds of an Ion timestamp, as storage.to_ms computes them from the datetime amazon.ion
 * gives: a known offset (a naive datetime is not taken), a valid date in years 1-9999, a fraction of at
 * most microsecond precision. */
static int ts_ms(const unsigned char *d, Py_ssize_t p, Py_ssize_t end, int64_t *ms)
{
    static const unsigned char month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    uint64_t f[6] = {0, 1, 1, 0, 0, 0}; /* year, month, day, hour, minute, second */
    int i, count = 0;
    int64_t fraction_ms = 0;
    if (p >= end) return NOTREAD;
    { /* the offset, a VarInt (the fields are UTC); -0 is an unknown offset: amazon.ion gives a naive datetime */
        int negative = d[p] & 0x40;
        uint64_t magnitude = d[p] & 0x3F;
        while (!(d[p] & 0x80)) {
            if (++p >= end) return NOTREAD;
            magnitude |= d[p] & 0x7F;
        }
        p++;
        if (negative && magnitude == 0) return NOTREAD;
    }
    for (i = 0; i < 6 && p < end; i++) {
        if (vu(d, &p, end, &f[i]) != OK) return NOTREAD;
        count++;
    }
    if (count == 4) return NOTREAD; /* an hour without minutes */
    if (p < end) {                  /* the fraction: exponent VarInt, coefficient Int */
        int negative;
        uint64_t exponent = 0, coefficient = 0;
        Py_ssize_t q;
        if (count != 6) return NOTREAD;
        negative = d[p] & 0x40;
        exponent = d[p] & 0x3F;
        while (!(d[p] & 0x80)) {
            if (++p >= end || exponent > 64) return NOTREAD;
            exponent = (exponent << 7) | (d[p] & 0x7F);
        }
        p++;
        if (end - p > 8) return NOTREAD;
        if (p < end && (d[p] & 0x80)) return NOTREAD; /* a negative coefficient */
        for (q = p; q < end; q++) coefficient = (coefficient << 8) | d[q];
        if (coefficient) {
            uint64_t scale = 1;
            unsigned k;
            if (!negative || exponent > 6) return NOTREAD;
            for (k = 0; k < exponent; k++) scale *= 10;
            if (coefficient >= scale) return NOTREAD; /* a fraction of one second or more */
            fraction_ms = (int64_t)(exponent <= 3 ? coefficient * (1000 / scale) : coefficient / (scale / 1000));
        } else if (!negative && exponent != 0) {
            return NOTREAD;
        }
    }
    if (f[0] < 1 || f[0] > 9999 || f[1] < 1 || f[1] > 12 || f[3] > 23 || f[4] > 59 || f[5] > 59) return NOTREAD;
    if (f[2] < 1 || f[2] > (uint64_t)(month_days[f[1] - 1] + (f[1] == 2 && leap((int64_t)f[0])))) return NOTREAD;
    *ms = ((days_from_civil((int64_t)f[0], (unsigned)f[1], (unsigned)f[2]) * 24 + (int64_t)f[3]) * 60 +
           (int64_t)f[4]) * 60000 + (int64_t)f[5] * 1000 + fraction_ms;
    return OK;
}

static int j_timestamp_ms(const J *j, const Val *v, int64_t *ms)
{
    if (v->code != 6 || v->null) return NOTREAD;
    return ts_ms(j->r.d, v->start, v->end, ms);
}

/* A timestamp at millisecond precision in UTC (offset +00:00, six fields, a fraction of exponent -3), as QLDB
 * writes txTime: a row carries txTime as epoch ms, which holds nothing more (the PostgreSQL target writes its Ion
 * text from them); any other txTime sends the object to the Python path. */
static int ts_utc_ms(const unsigned char *d, Py_ssize_t p, Py_ssize_t end)
{
    int fields = 0;
    if (p >= end || d[p++] != 0x80) return 0;
    while (p < end && fields < 6) {
        while (p < end && !(d[p] & 0x80)) p++;
        if (p++ >= end) return 0;
        fields++;
    }
    return fields == 6 && p < end && d[p] == 0xC3 && end - p <= 3 && (p + 1 == end || !(d[p + 1] & 0x80));
}

/* Rd.scalar_check: scalars inside hashed values that amazon.ion would not read (so the Python path would
 * report the object unreadable) are declined: strings that are not UTF-8, timestamps that are not dates (and,
 * more strictly than needed, those ts_ms does not take), decimals whose exponent does not end. */
static int j_scalar_check(const unsigned char *d, int code, Py_ssize_t start, Py_ssize_t end)
{
    int64_t ms;
    if (code == 0x80) return valid_utf8(d + start, end - start) ? OK : NOTREAD;
    if (code == 0x60) return ts_ms(d, start, end, &ms);
    if (code == 0x50 && start < end) {
        while (!(d[start] & 0x80))
            if (++start >= end) return NOTREAD;
    }
    return OK;
}

/* --- a document as a stream of its own ------------------------------------------------------------------ */

/* The text of SID `sid` (< count) into t[0:n]: s(symbol) unescaped. Returns n. */
static Py_ssize_t j_symbol_text(const J *j, uint64_t sid, unsigned char *t)
{
    const unsigned char *s = j->r.names.p + j->r.noff[sid] + 2, *stop = j->r.names.p + j->r.noff[sid + 1] - 1;
    Py_ssize_t n = 0;
    while (s < stop) {
        if (*s == 0x0C) s++;
        t[n++] = *s++;
    }
    return n;
}

/* The document-table SID of segment SID `sid`: a system symbol's text keeps its SID, another text gets the
 * next SID the first time it is met (ionwrite.SymbolTable.sid). */
static int j_remap(J *j, uint64_t sid, uint64_t *out)
{
    unsigned char *text;
    Py_ssize_t n, i, *offs;
    if (sid == 0) {
        *out = 0;
        return OK;
    }
    if (sid >= (uint64_t)j->r.count) return NOTREAD;
    if (j->remap[sid] >= 0) {
        *out = (uint64_t)j->remap[sid];
        return OK;
    }
    if (sid < 10) {
        *out = sid;
        j->remap[sid] = (int64_t)sid;
        return OK;
    }
    if (buf_reserve(&j->texts, j->r.noff[sid + 1] - j->r.noff[sid]) < 0) return ERROR;
    text = j->texts.p + j->texts.len;
    n = j_symbol_text(j, sid, text);
    for (i = 0; i < 9; i++) {
        if ((Py_ssize_t)strlen(SYSTEM_SYMBOLS[i]) == n && memcmp(SYSTEM_SYMBOLS[i], text, (size_t)n) == 0) {
            *out = (uint64_t)i + 1;
            j->remap[sid] = (int64_t)i + 1;
            return OK;
        }
    }
    offs = (Py_ssize_t *)j->text_off.p;
    for (i = 0; i < j->next_sid - 10; i++) { /* the same text under another SID of the segment */
        if (offs[i + 1] - offs[i] == n && memcmp(j->texts.p + offs[i], text, (size_t)n) == 0) {
            *out = (uint64_t)i + 10;
            j->remap[sid] = (int64_t)i + 10;
            return OK;
        }
    }
    j->texts.len += n;
    if (buf_reserve(&j->text_off, (Py_ssize_t)sizeof(Py_ssize_t)) < 0) return ERROR;
    memcpy(j->text_off.p + j->text_off.len, &j->texts.len, sizeof(Py_ssize_t));
    j->text_off.len += (Py_ssize_t)sizeof(Py_ssize_t);
    if (put_scalar(&j->symbols, 0x80, text, n) < 0) return ERROR;
    *out = (uint64_t)j->next_sid;
    j->remap[sid] = j->next_sid++;
    return OK;
}

static int put_varuint(Buf *b, uint64_t value)
{
    unsigned char tmp[10];
    return buf_add(b, tmp, varuint_bytes(value, tmp));
}

static int j_copy(J *j, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after);

static int j_copy_inner(J *j, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after)
{
    const unsigned char *d = j->r.d;
    Buf *out = &j->doc;
    Val v;
    Py_ssize_t start, p;
    uint64_t sid, mapped;
    int rc;
    if (pos < end && d[pos] >> 4 == 0xE) { /* annotations: the value is copied first, as ionwrite encodes it */
        uint64_t length, annotations_length;
        Py_ssize_t body = pos + 1, annotations, annotations_end, stop, inner_end;
        unsigned char head[11];
        Buf prefix = {NULL, 0, 0};
        length = d[pos] & 0x0F;
        if (length == 15 || length < 3) return NOTREAD;
        if (length == 14 && j_varuint(j, &body, end, &length) != OK) return NOTREAD;
        if (length > (uint64_t)(end - body)) return NOTREAD;
        stop = body + (Py_ssize_t)length;
        annotations = body;
        if (j_varuint(j, &annotations, stop, &annotations_length) != OK) return NOTREAD;
        if (annotations_length == 0 || annotations_length >= (uint64_t)(stop - annotations)) return NOTREAD;
        annotations_end = annotations + (Py_ssize_t)annotations_length;
        if (d[annotations_end] >> 4 == 0xE) return NOTREAD;
        start = out->len;
        if ((rc = j_copy(j, annotations_end, stop, &inner_end)) != OK) return rc;
        if (inner_end != stop) return NOTREAD;
        for (p = annotations; p < annotations_end;) {
            if (j_varuint(j, &p, annotations_end, &sid) != OK || sid == 0) {
                buf_free(&prefix);
                return NOTREAD;
            }
            if ((rc = j_remap(j, sid, &mapped)) != OK || (rc = put_varuint(&prefix, mapped) < 0 ? ERROR : OK)) {
                buf_free(&prefix);
                return rc;
            }
        }
        {
            int n = varuint_bytes((uint64_t)prefix.len, head);
            Py_ssize_t total = n + prefix.len, body_n = out->len - start;
            if (buf_reserve(out, total) < 0) {
                buf_free(&prefix);
                return ERROR;
            }
            memmove(out->p + start + total, out->p + start, (size_t)body_n);
            memcpy(out->p + start, head, (size_t)n);
            memcpy(out->p + start + n, prefix.p, (size_t)prefix.len);
            out->len += total;
        }
        buf_free(&prefix);
        *after = stop;
        return buf_insert_td(out, start, 0xE0) < 0 ? ERROR : OK;
    }
    if (j_val(j, pos, end, &v) != OK) return NOTREAD;
    *after = v.end;
    if (v.null || v.code == 1 || (v.code != 7 && v.code < 0xB)) /* scalars: as they are */
        return buf_add(out, d + v.head, v.end - v.head) < 0 ? ERROR : OK;
    if (v.code == 7) {
        unsigned char raw[8];
        int n = 0, i;
        if (v.end - v.start > 7) return NOTREAD;
        for (sid = 0, p = v.start; p < v.end; p++) sid = (sid << 8) | d[p];
        if ((rc = j_remap(j, sid, &mapped)) != OK) return rc;
        for (; mapped; mapped >>= 8) raw[n++] = (unsigned char)(mapped & 0xFF);
        if (buf_add_td(out, 0x70, n) < 0 || buf_reserve(out, n) < 0) return ERROR;
        for (i = n - 1; i >= 0; i--) out->p[out->len++] = raw[i];
        return OK;
    }
    start = out->len;
    p = v.start;
    while (p < v.end) {
        if (v.code == 0xD) {
            if (j_varuint(j, &p, v.end, &sid) != OK || sid == 0 || p >= v.end) return NOTREAD;
            if ((rc = j_remap(j, sid, &mapped)) != OK) return rc;
            if (put_varuint(out, mapped) < 0) return ERROR;
        }
        if ((rc = j_copy(j, p, v.end, &p)) != OK) return rc;
    }
    return buf_insert_td(out, start, (unsigned char)(v.code << 4)) < 0 ? ERROR : OK;
}

static int j_copy(J *j, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after)
{
    int rc;
    if (rd_enter(&j->r) != OK) return ERROR;
    rc = j_copy_inner(j, pos, end, after);
    rd_leave(&j->r);
    return rc;
}

/* The document at d[pos:end] as a self-contained stream (SymbolTable.standalone), a new bytes object. */
static int j_document(J *j, Py_ssize_t pos, Py_ssize_t end, PyObject **out)
{
    Py_ssize_t i, after;
    int rc;
    Buf *b = &j->symbols;
    for (i = 0; i < j->r.count; i++) j->remap[i] = -1;
    j->doc.len = j->symbols.len = j->texts.len = 0;
    j->text_off.len = 0;
    if (buf_add(&j->text_off, &j->texts.len, (Py_ssize_t)sizeof(Py_ssize_t)) < 0) return ERROR;
    j->next_sid = 10;
    if ((rc = j_copy(j, pos, end, &after)) != OK) return rc;
    if (after != end) return NOTREAD;
    if (j->next_sid > 10) { /* IVM $ion_symbol_table::{symbols:[...]}, built inside out in `symbols` */
        if (buf_insert_td(b, 0, 0xB0) < 0 || buf_add(b, "\x87", 1) < 0) return ERROR;
        memmove(b->p + 1, b->p, (size_t)(b->len - 1));
        b->p[0] = 0x87;
        if (buf_insert_td(b, 0, 0xD0) < 0 || buf_add(b, "\x81\x83", 2) < 0) return ERROR;
        memmove(b->p + 2, b->p, (size_t)(b->len - 2));
        b->p[0] = 0x81;
        b->p[1] = 0x83;
        if (buf_insert_td(b, 0, 0xE0) < 0) return ERROR;
    }
    *out = PyBytes_FromStringAndSize(NULL, 4 + b->len + j->doc.len);
    if (*out == NULL) return ERROR;
    memcpy(PyBytes_AS_STRING(*out), IVM, 4);
    if (b->len) memcpy(PyBytes_AS_STRING(*out) + 4, b->p, (size_t)b->len); /* no symbols: b->p may be NULL */
    if (j->doc.len) memcpy(PyBytes_AS_STRING(*out) + 4 + b->len, j->doc.p, (size_t)j->doc.len);
    return OK;
}

/* --- one block ----------------------------------------------------------------------------------------- */

/* The symbol table of the segment starting at d[pos] (its version marker), SIDs' names in j->r; *pos is
 * moved past the marker and the table. */
static int j_prelude(J *j, Py_ssize_t *pos, Py_ssize_t end)
{
    Py_ssize_t p = *pos + 4, i;
    int rc;
    if (end - *pos < 4 || memcmp(j->r.d + *pos, IVM, 4) != 0) return NOTREAD;
    PyMem_Free(j->r.noff);
    j->r.noff = NULL;
    j->r.names.len = 0;
    if (p < end && j->r.d[p] >> 4 == 0xE) {
        uint64_t length = j->r.d[p] & 0x0F, annotations_length;
        Py_ssize_t body = p + 1, first, stop;
        if (length == 15) return NOTREAD;
        if (length == 14 && j_varuint(j, &body, end, &length) != OK) return NOTREAD;
        if (length > (uint64_t)(end - body)) return NOTREAD;
        stop = body + (Py_ssize_t)length;
        first = body;
        if (j_varuint(j, &first, stop, &annotations_length) != OK) return NOTREAD;
        if (annotations_length != 1 || first >= stop || j->r.d[first] != 0x83) return NOTREAD;
        if ((rc = rd_symbol_names(&j->r, first + 1, stop)) != OK) return rc;
        p = stop;
    } else if (rd_system_names(&j->r, 0) != OK) {
        return ERROR;
    }
    if (j->r.count > j->field_cap) {
        PyMem_Free(j->field);
        PyMem_Free(j->remap);
        j->field_cap = j->r.count * 2;
        j->field = (int *)PyMem_Malloc(sizeof(int) * (size_t)j->field_cap);
        j->remap = (int64_t *)PyMem_Malloc(sizeof(int64_t) * (size_t)j->field_cap);
        if (j->field == NULL || j->remap == NULL) {
            PyErr_NoMemory();
            return ERROR;
        }
    }
    for (i = 0; i < j->r.count; i++) j->field[i] = N_UNSEEN;
    *pos = p;
    return OK;
}

typedef struct {
    int64_t seq, ts_ms;
    Val strand, block_hash, entries_hash, previous, timestamp, info, revisions;
    int has_info, has_revisions;
    Py_ssize_t entries_n;
    PyObject *statements; /* list, with rows */
} Block;

static int j_address(J *j, const Val *v, Block *b)
{
    Py_ssize_t pos = v->start;
    unsigned seen = 0;
    int name, rc;
    uint64_t sid;
    Val f;
    if (v->code != 0xD || v->null) return NOTREAD;
    while ((rc = j_field(j, &pos, v->end, &name, &sid, &f)) == 1) {
        if (!j_once(&seen, name)) return NOTREAD;
        if (name == F_STRAND_ID && j_string(j, &f))
            b->strand = f;
        else if (name == F_SEQUENCE_NO && j_uint(j, &f, &b->seq) == OK)
            ;
        else
            return NOTREAD;
    }
    return rc == 0 && seen == ((1u << F_STRAND_ID) | (1u << F_SEQUENCE_NO)) ? OK : NOTREAD;
}

static int j_entries(J *j, const Val *v, Block *b)
{
    Py_ssize_t pos = v->start;
    Val h;
    if (v->code != 0xB || v->null) return NOTREAD;
    j->entries.len = 0;
    while (pos < v->end) {
        if (j_val(j, pos, v->end, &h) != OK || !j_hash(&h)) return NOTREAD;
        if (buf_add(&j->entries, j->r.d + h.start, 32) < 0) return ERROR;
        pos = h.end;
    }
    b->entries_n = j->entries.len / 32;
    return b->entries_n ? OK : NOTREAD;
}

/* A statement that may change a table definition: it starts (after ASCII white space) with CREATE, DROP or
 * UNDROP in any case (targets/ddl.py's is_ddl_text), or holds a non-ASCII character (decided in Python). */
static int has_prefix(const unsigned char *s, Py_ssize_t n, const char *word)
{
    Py_ssize_t i;
    for (i = 0; word[i] != '\0'; i++)
        if (i >= n || (s[i] | 0x20) != word[i]) return 0;
    return 1;
}

static int may_define_table(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        if (s[i] >= 0x80) return 1;
    for (i = 0; i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')); i++)
        ;
    return has_prefix(s + i, n - i, "create") || has_prefix(s + i, n - i, "drop") ||
           has_prefix(s + i, n - i, "undrop");
}

static int j_statements(J *j, const Val *v, Block *b)
{
    Py_ssize_t pos = v->start;
    Val st;
    if (v->code != 0xB || v->null) return NOTREAD;
    while (pos < v->end) {
        Py_ssize_t fpos;
        unsigned seen = 0;
        int name, rc;
        uint64_t sid;
        Val f, text = {0}, digest = {0};
        if (j_val(j, pos, v->end, &st) != OK || st.code != 0xD || st.null) return NOTREAD;
        pos = st.end;
        fpos = st.start;
        while ((rc = j_field(j, &fpos, st.end, &name, &sid, &f)) == 1) {
            if (!j_once(&seen, name)) return NOTREAD;
            if (name == F_STATEMENT) text = f;
            if (name == F_STATEMENT_DIGEST) digest = f;
        }
        if (rc != 0 || !(seen & (1u << F_STATEMENT)) || !j_string(j, &text)) return NOTREAD;
        if (seen & (1u << F_STATEMENT_DIGEST)) {
            unsigned char h[32];
            if (!j_hash(&digest)) return NOTREAD;
            j->r.out.len = 0;
            if (buf_add_scalar_s(&j->r.out, 0x80, j->r.d + text.start, text.end - text.start) < 0) return ERROR;
            ldr_sha256(j->r.out.p, (size_t)j->r.out.len, h);
            if (memcmp(h, j->r.d + digest.start, 32) != 0) return NOTREAD;
        }
        if (b->statements != NULL && may_define_table(j->r.d + text.start, text.end - text.start)) {
            PyObject *s = PyUnicode_DecodeUTF8((const char *)j->r.d + text.start, text.end - text.start, "strict");
            if (s == NULL || PyList_Append(b->statements, s) < 0) {
                Py_XDECREF(s);
                return ERROR;
            }
            Py_DECREF(s);
        }
    }
    return OK;
}

static int j_documents(J *j, const Val *v)
{
    Py_ssize_t pos = v->start, i;
    int name, rc;
    uint64_t sid;
    Val doc;
    if (v->code != 0xD || v->null) return NOTREAD;
    j->docs_n = 0;
    while ((rc = j_field(j, &pos, v->end, &name, &sid, &doc)) == 1) {
        Py_ssize_t fpos = doc.start;
        unsigned seen = 0;
        DocTable *t;
        Val f;
        int fname;
        uint64_t fsid;
        if (doc.code != 0xD || doc.null) return NOTREAD;
        for (i = 0; i < j->docs_n; i++)
            if (j->docs[i].sid == sid) return NOTREAD; /* a document named twice */
        if (j->docs_n == j->docs_cap) {
            DocTable *grown;
            j->docs_cap = j->docs_cap ? 2 * j->docs_cap : 16;
            grown = (DocTable *)PyMem_Realloc(j->docs, sizeof(DocTable) * (size_t)j->docs_cap);
            if (grown == NULL) {
                PyErr_NoMemory();
                return ERROR;
            }
            j->docs = grown;
        }
        t = &j->docs[j->docs_n++];
        t->sid = sid;
        while ((rc = j_field(j, &fpos, doc.end, &fname, &fsid, &f)) == 1) {
            if (!j_once(&seen, fname)) return NOTREAD;
            if (fname == F_TABLE_NAME || fname == F_TABLE_ID) {
                if (!j_string(j, &f)) return NOTREAD;
                if (fname == F_TABLE_NAME) {
                    t->name = f.start;
                    t->name_n = f.end - f.start;
                } else {
                    t->id = f.start;
                    t->id_n = f.end - f.start;
                }
            }
        }
        if (rc != 0 || (seen & ((1u << F_TABLE_NAME) | (1u << F_TABLE_ID))) !=
                           ((1u << F_TABLE_NAME) | (1u << F_TABLE_ID)))
            return NOTREAD;
    }
    return rc == 0 ? OK : NOTREAD;
}

static int j_info(J *j, Block *b)
{
    Py_ssize_t pos = b->info.start;
    unsigned seen = 0;
    int name, rc;
    uint64_t sid;
    Val f;
    unsigned char h[32];
    j->docs_n = 0;
    if (b->info.code != 0xD || b->info.null) return NOTREAD;
    if ((rc = j_ion_hash(j, b->info.head, b->info.end, h)) != OK) return rc;
    if (!j_in_entries(j, b->entries_n, h)) return NOTREAD;
    while ((rc = j_field(j, &pos, b->info.end, &name, &sid, &f)) == 1) {
        if (!j_once(&seen, name)) return NOTREAD;
        if (name == F_STATEMENTS && (rc = j_statements(j, &f, b)) != OK) return rc;
        if (name == F_DOCUMENTS && j->want && (rc = j_documents(j, &f)) != OK) return rc;
    }
    return rc == 0 ? OK : NOTREAD;
}

static PyObject *str_of(const J *j, Py_ssize_t start, Py_ssize_t n)
{
    return PyUnicode_DecodeUTF8((const char *)j->r.d + start, n, "strict");
}

/* The row of one document revision (see the module comment). */
static int j_row(J *j, const Val *meta, const Val *data, int has_data, const unsigned char *hash, PyObject *rows)
{
    Py_ssize_t pos = meta->start, i;
    unsigned seen = 0;
    int name, rc;
    uint64_t sid;
    Val f, id = {0}, version = {0}, tx_time = {0}, tx_id = {0};
    int64_t version_n, tx_ms;
    DocTable *t = NULL;
    PyObject *row, *ion = NULL;
    while ((rc = j_field(j, &pos, meta->end, &name, &sid, &f)) == 1) {
        if (!j_once(&seen, name)) return NOTREAD;
        if (name == F_ID) id = f;
        if (name == F_VERSION) version = f;
        if (name == F_TX_TIME) tx_time = f;
        if (name == F_TX_ID) tx_id = f;
    }
    if (rc != 0 || !j_string(j, &id) || !j_string(j, &tx_id) || j_uint(j, &version, &version_n) != OK ||
        j_timestamp_ms(j, &tx_time, &tx_ms) != OK || !ts_utc_ms(j->r.d, tx_time.start, tx_time.end))
        return NOTREAD;
    for (i = 0; i < j->docs_n && t == NULL; i++) { /* the document's table: its id is a field name there */
        const DocTable *c = &j->docs[i];
        Py_ssize_t off = j->r.noff[c->sid], n = j->r.noff[c->sid + 1] - off;
        j->r.out.len = 0;
        if (buf_add_scalar_s(&j->r.out, 0x70, j->r.d + id.start, id.end - id.start) < 0) return ERROR;
        if (n == j->r.out.len && memcmp(j->r.out.p, j->r.names.p + off, (size_t)n) == 0) t = &j->docs[i];
    }
    if (t == NULL) return NOTREAD;
    if (has_data) {
        if ((rc = j_document(j, data->head, data->end, &ion)) != OK) return rc;
    } else {
        ion = Py_NewRef(Py_None);
    }
    row = Py_BuildValue("(NNNLNy#LN)", str_of(j, t->id, t->id_n), str_of(j, t->name, t->name_n),
                        str_of(j, id.start, id.end - id.start), (long long)version_n, ion, hash, (Py_ssize_t)32,
                        (long long)tx_ms, str_of(j, tx_id.start, tx_id.end - tx_id.start));
    if (row == NULL) return ERROR;
    rc = PyList_Append(rows, row);
    Py_DECREF(row);
    return rc < 0 ? ERROR : OK;
}

/* Every revision of the block: hashes checked, counted, and (rows) turned into rows. */
static int j_revisions(J *j, Block *b, Py_ssize_t *revisions, Py_ssize_t *system, PyObject *rows)
{
    Py_ssize_t pos = b->revisions.start;
    Val rv;
    j->revisions.len = 0;
    if (b->revisions.code != 0xB || b->revisions.null) return NOTREAD;
    while (pos < b->revisions.end) {
        Py_ssize_t fpos;
        unsigned seen = 0;
        int name, rc;
        uint64_t sid;
        Val f, hash = {0}, meta = {0}, data = {0};
        unsigned char mh[32], dh[32], h[32];
        const unsigned char *stated;
        if (j_val(j, pos, b->revisions.end, &rv) != OK || rv.code != 0xD || rv.null) return NOTREAD;
        pos = rv.end;
        fpos = rv.start;
        while ((rc = j_field(j, &fpos, rv.end, &name, &sid, &f)) == 1) {
            if (!j_once(&seen, name)) return NOTREAD;
            if (name == F_HASH) hash = f;
            else if (name == F_METADATA) meta = f;
            else if (name == F_DATA) data = f;
            else if (name == F_BLOCK_ADDRESS) { /* not hashed: read as strictly as amazon.ion would */
                Block address;
                Py_ssize_t n = b->strand.end - b->strand.start;
                if ((rc = j_address(j, &f, &address)) != OK) return rc;
                /* no hash covers it: a revision that names another block goes to the Python path, which
                 * reports it (journal.verify, "revision's blockAddress is not its block's") */
                if (address.seq != b->seq || address.strand.end - address.strand.start != n ||
                    memcmp(j->r.d + address.strand.start, j->r.d + b->strand.start, (size_t)n) != 0)
                    return NOTREAD;
            } else {
                return NOTREAD; /* dataHash (redacted), or off the schema */
            }
        }
        if (rc != 0 || !j_hash(&hash)) return NOTREAD;
        stated = j->r.d + hash.start;
        if (buf_add(&j->revisions, stated, 32) < 0) return ERROR;
        if (!(seen & (1u << F_METADATA))) {
            if (seen & (1u << F_DATA)) return NOTREAD;
            (*system)++;
            continue;
        }
        if (meta.code != 0xD || meta.null) return NOTREAD;
        if ((rc = j_ion_hash(j, meta.head, meta.end, mh)) != OK) return rc;
        if (seen & (1u << F_DATA)) {
            if (data.null) return NOTREAD;
            if ((rc = j_ion_hash(j, data.head, data.end, dh)) != OK) return rc;
            dot32(mh, dh, h);
            if (memcmp(h, stated, 32) != 0) return NOTREAD;
        } else if (memcmp(mh, stated, 32) != 0) {
            dot32(mh, NULL_HASH, h);
            if (memcmp(h, stated, 32) != 0) return NOTREAD;
        }
        (*revisions)++;
        if (rows != NULL && (rc = j_row(j, &meta, &data, (seen & (1u << F_DATA)) != 0, stated, rows)) != OK)
            return rc;
    }
    return OK;
}

/* The block struct at d[pos:end] (the rest of its segment): checked, and its tuple. */
static int j_block(J *j, Py_ssize_t seg_start, Py_ssize_t pos, Py_ssize_t end, PyObject **out)
{
    Block b;
    Val top, f;
    unsigned seen = 0;
    int name, rc;
    uint64_t sid;
    Py_ssize_t revisions = 0, system = 0, fpos;
    unsigned char root[32];
    PyObject *rows = NULL, *strand = NULL;
    const unsigned char *previous;
    Py_ssize_t previous_n;
    memset(&b, 0, sizeof b);
    if (j_val(j, pos, end, &top) != OK || top.code != 0xD || top.null || top.end != end) return NOTREAD;
    fpos = top.start;
    while ((rc = j_field(j, &fpos, top.end, &name, &sid, &f)) == 1) {
        if (!j_once(&seen, name)) return NOTREAD;
        switch (name) {
        case F_BLOCK_ADDRESS:
            if ((rc = j_address(j, &f, &b)) != OK) return rc;
            break;
        case F_TRANSACTION_ID:
            if (!j_string(j, &f)) return NOTREAD;
            break;
        case F_BLOCK_TIMESTAMP:
            b.timestamp = f;
            break;
        case F_BLOCK_HASH:
            b.block_hash = f;
            break;
        case F_ENTRIES_HASH:
            b.entries_hash = f;
            break;
        case F_PREVIOUS_BLOCK_HASH:
            b.previous = f;
            break;
        case F_ENTRIES_HASH_LIST:
            if ((rc = j_entries(j, &f, &b)) != OK) return rc;
            break;
        case F_TRANSACTION_INFO:
            b.info = f;
            b.has_info = 1;
            break;
        case F_REVISIONS:
            b.revisions = f;
            b.has_revisions = 1;
            break;
        default:
            return NOTREAD; /* redactionInfo, or off the schema */
        }
    }
    if (rc != 0) return NOTREAD;
    if (!(seen & (1u << F_BLOCK_ADDRESS)) || !(seen & (1u << F_ENTRIES_HASH_LIST)) || !j_hash(&b.block_hash) ||
        !j_hash(&b.entries_hash) || b.timestamp.code != 6 || b.timestamp.null)
        return NOTREAD;
    if (seen & (1u << F_PREVIOUS_BLOCK_HASH)) {
        if (b.previous.null && (b.previous.code == 0xA || b.previous.code == 0)) {
            previous_n = 0;
        } else if (b.previous.code == 0xA && (b.previous.end - b.previous.start == 32 ||
                                              b.previous.end == b.previous.start)) {
            previous_n = b.previous.end - b.previous.start;
        } else {
            return NOTREAD;
        }
    } else {
        previous_n = 0;
    }
    previous = j->r.d + b.previous.start;
    if (j_timestamp_ms(j, &b.timestamp, &b.ts_ms) != OK) return NOTREAD;
    j->seq = b.seq;
    j->want = j->rows && b.seq >= j->first && b.seq <= j->last;
    if (j->rows && !j->want) {
        /* Another unit's block (restore.rows): its hashes are that unit's to check, as units.load_unit checks
         * only the links of the blocks outside its range; the caller checks this block's link from its
         * stated hashes. Not hashed here, so a unit cut from a large object does not verify all before it. */
        if ((strand = str_of(j, b.strand.start, b.strand.end - b.strand.start)) == NULL) return ERROR;
        *out = Py_BuildValue("(LNy#y#nnnnOOO)", (long long)b.seq, strand, previous, previous_n,
                             j->r.d + b.block_hash.start, (Py_ssize_t)32, (Py_ssize_t)0, (Py_ssize_t)0, seg_start, end,
                             Py_None, Py_None, Py_None);
        return *out == NULL ? ERROR : OK;
    }
    if (j->want) {
        if ((b.statements = PyList_New(0)) == NULL) return ERROR;
        if ((rows = PyList_New(0)) == NULL) {
            rc = ERROR;
            goto done;
        }
    }
    if (b.has_info && (rc = j_info(j, &b)) != OK) goto done;
    if (b.has_revisions) {
        if ((rc = j_revisions(j, &b, &revisions, &system, rows)) != OK) goto done;
        if (j->revisions.len) {
            merkle_root32(j->revisions.p, j->revisions.len / 32);
            if (!j_in_entries(j, b.entries_n, j->revisions.p)) {
                rc = NOTREAD;
                goto done;
            }
        }
    }
    if (buf_reserve(&j->entries, 32) < 0) {
        rc = ERROR;
        goto done;
    }
    memcpy(root, j->entries.p, 32);
    if (b.entries_n > 1) { /* the root, computed on a copy: entries are still read above */
        if (buf_reserve(&j->entries, j->entries.len) < 0) {
            rc = ERROR;
            goto done;
        }
        memcpy(j->entries.p + j->entries.len, j->entries.p, (size_t)j->entries.len);
        merkle_root32(j->entries.p + 32 * b.entries_n, b.entries_n);
        memcpy(root, j->entries.p + 32 * b.entries_n, 32);
    }
    if (memcmp(root, j->r.d + b.entries_hash.start, 32) != 0) {
        rc = NOTREAD;
        goto done;
    }
    if (previous_n)
        dot32(root, previous, root);
    if (memcmp(root, j->r.d + b.block_hash.start, 32) != 0) {
        rc = NOTREAD;
        goto done;
    }
    if ((strand = str_of(j, b.strand.start, b.strand.end - b.strand.start)) == NULL) {
        rc = ERROR;
        goto done;
    }
    if (j->want) {
        PyObject *row_tuple = PyList_AsTuple(rows), *statements = PyList_AsTuple(b.statements);
        if (row_tuple == NULL || statements == NULL) {
            Py_XDECREF(row_tuple);
            Py_XDECREF(statements);
            Py_DECREF(strand);
            rc = ERROR;
            goto done;
        }
        *out = Py_BuildValue("(LNy#y#nnnnLNN)", (long long)b.seq, strand, previous, previous_n,
                             j->r.d + b.block_hash.start, (Py_ssize_t)32, revisions, system, seg_start, end,
                             (long long)b.ts_ms, row_tuple, statements);
    } else {
        *out = Py_BuildValue("(LNy#y#nnnnOOO)", (long long)b.seq, strand, previous, previous_n,
                             j->r.d + b.block_hash.start, (Py_ssize_t)32, revisions, system, seg_start, end,
                             Py_None, Py_None, Py_None);
    }
    strand = NULL; /* stolen (N), also on failure */
    rc = *out == NULL ? ERROR : OK;
done:
    Py_XDECREF(rows);
    Py_XDECREF(b.statements);
    return rc;
}

/* The end of the segment starting at `pos`: the next version marker, or the end of data. The block value
 * itself says where it ends, so this is only a bound: j_block requires the value to end exactly there. */
static Py_ssize_t j_segment_end(J *j, Py_ssize_t pos, Py_ssize_t n)
{
    Val v;
    Py_ssize_t p = pos + 4;
    uint64_t length;
    if (p < n && j->r.d[p] >> 4 == 0xE) { /* skip the symbol table */
        Py_ssize_t body = p + 1;
        length = j->r.d[p] & 0x0F;
        if (length == 15) return -1;
        if (length == 14 && j_varuint(j, &body, n, &length) != OK) return -1;
        if (length > (uint64_t)(n - body)) return -1;
        p = body + (Py_ssize_t)length;
    }
    if (j_val(j, p, n, &v) != OK) return -1;
    return v.end;
}

static void j_free(J *j)
{
    rd_free(&j->r);
    PyMem_Free(j->field);
    PyMem_Free(j->remap);
    buf_free(&j->entries);
    buf_free(&j->revisions);
    PyMem_Free(j->docs);
    buf_free(&j->doc);
    buf_free(&j->symbols);
    buf_free(&j->texts);
    buf_free(&j->text_off);
}

static PyObject *py_verify_blocks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    J j;
    PyObject *blocks = NULL, *block;
    Py_ssize_t pos = 0, end;
    int rows, rc = OK;
    long long first = 0, last = INT64_MAX, stop = -1;
    (void)module;
    if (nargs != 2 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "verify_blocks(data, rows[, first_seq, last_seq, stop_seq]) takes two or "
                                         "five arguments");
        return NULL;
    }
    if ((rows = PyObject_IsTrue(args[1])) < 0) return NULL;
    if (nargs == 5) {
        first = PyLong_AsLongLong(args[2]);
        last = PyLong_AsLongLong(args[3]);
        stop = PyLong_AsLongLong(args[4]);
        if (PyErr_Occurred()) return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    memset(&j, 0, sizeof j);
    j.rows = rows;
    j.first = first;
    j.last = last;
    j.r.d = (const unsigned char *)view.buf;
    j.r.n = view.len;
    j.r.scalar_check = j_scalar_check;
    if ((blocks = PyList_New(0)) == NULL) goto fail;
    if (view.len == 0) rc = NOTREAD;
    while (rc == OK && pos < view.len) {
        Py_ssize_t value;
        end = j_segment_end(&j, pos, view.len);
        if (end < 0) {
            rc = NOTREAD;
            break;
        }
        value = pos;
        if ((rc = j_prelude(&j, &value, end)) != OK) break;
        block = NULL;
        if ((rc = j_block(&j, pos, value, end, &block)) != OK) break;
        rc = PyList_Append(blocks, block) < 0 ? ERROR : OK;
        Py_DECREF(block);
        pos = end;
        if (rc == OK && stop >= 0 && j.seq >= stop) break; /* the caller reads no further */
    }
    if (rc == ERROR && PyErr_ExceptionMatches(PyExc_RecursionError)) { /* hostile nesting: Python decides */
        PyErr_Clear();
        rc = NOTREAD;
    }
    if (rc == ERROR) goto fail;
    j_free(&j);
    PyBuffer_Release(&view);
    if (rc == NOTREAD) {
        Py_DECREF(blocks);
        Py_RETURN_NONE;
    }
    return blocks;
fail:
    Py_XDECREF(blocks);
    j_free(&j);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"verify_blocks", (PyCFunction)(void (*)(void))py_verify_blocks, METH_FASTCALL,
     "verify_blocks(data, rows) -> one tuple per verified block, or None (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_journal",
    "Journal blocks verified in C straight from their Ion binary bytes (journal.verify stays the reference).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__journal(void)
{
    static const unsigned char null_s[3] = {0x0B, 0x0F, 0x0E};
    ldr_sha256(null_s, 3, NULL_HASH);
    return PyModule_Create(&module_def);
}
