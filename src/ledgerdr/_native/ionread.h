/* What both ledgerdr._ionhash and ledgerdr._journal read and write with: the growable buffer's helpers, Ion
 * Hash serialization pieces (escape, s() of scalars and structs), type descriptors, the Ion binary reader
 * that computes s(value) straight from the bytes (ionread.binary_hash_repr's twin), and hashing.dot /
 * merkle_root on 32-byte hashes. Static functions in a header: each extension gets its own copy. */
#ifndef LEDGERDR_IONREAD_H
#define LEDGERDR_IONREAD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "sha256.h"
#include "utf8.h"

/* Hard cap on container nesting, on top of Python's recursion limit (which is what normally stops a deep
 * value: Py_EnterRecursiveCall raises RecursionError as the Python code would). Keeps the C stack safe when
 * the recursion limit has been raised very high. */
#define MAX_DEPTH 10000

/* --- growable byte buffer helpers -------------------------------------------------------------------- */

static inline int buf_add(Buf *b, const void *data, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->p + b->len, data, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_add3(Buf *b, unsigned char x, unsigned char y, unsigned char z)
{
    if (buf_reserve(b, 3) < 0) return -1;
    b->p[b->len] = x;
    b->p[b->len + 1] = y;
    b->p[b->len + 2] = z;
    b->len += 3;
    return 0;
}

static void buf_free(Buf *b)
{
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Whether one of the 8 bytes of w is 0x0B, 0x0C or 0x0E: the zero-byte test on w xor each byte repeated,
 * exact as to whether any byte is zero. */
#define ESC_ONES 0x0101010101010101ULL
#define ESC_HIGHS 0x8080808080808080ULL
#define ESC_ZERO_BYTE(v) (((v) - ESC_ONES) & ~(v) & ESC_HIGHS)
static inline int word_needs_escape(uint64_t w)
{
    uint64_t b = w ^ (0x0B * ESC_ONES), c = w ^ (0x0C * ESC_ONES), e = w ^ (0x0E * ESC_ONES);
    return (ESC_ZERO_BYTE(b) | ESC_ZERO_BYTE(c) | ESC_ZERO_BYTE(e)) != 0;
}

/* Ion Hash escape: 0x0B, 0x0E and 0x0C are each preceded by 0x0C. Eight bytes at a time where none of
 * them needs it (most of a document's text and of a hash), byte by byte in the others. */
static int buf_add_escaped(Buf *b, const unsigned char *src, Py_ssize_t n)
{
    Py_ssize_t i = 0, j;
    unsigned char *out;
    if (buf_reserve(b, 2 * n) < 0) return -1;
    out = b->p + b->len;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        if (!word_needs_escape(w)) {
            memcpy(out, &w, 8);
            out += 8;
            continue;
        }
        for (j = i; j < i + 8; j++) {
            unsigned char c = src[j];
            if (c == 0x0B || c == 0x0C || c == 0x0E) *out++ = 0x0C;
            *out++ = c;
        }
    }
    for (; i < n; i++) {
        unsigned char c = src[i];
        if (c == 0x0B || c == 0x0C || c == 0x0E) *out++ = 0x0C;
        *out++ = c;
    }
    b->len = out - b->p;
    return 0;
}

/* B || tq || escape(raw) || E */
static int buf_add_scalar_s(Buf *b, unsigned char tq, const unsigned char *raw, Py_ssize_t n)
{
    if (buf_reserve(b, 2 * n + 3) < 0) return -1;
    b->p[b->len++] = 0x0B;
    b->p[b->len++] = tq;
    if (buf_add_escaped(b, raw, n) < 0) return -1;
    b->p[b->len++] = 0x0E;
    return 0;
}

/* VarUInt of `value` into out (at most 10 octets); returns its length. */
static int varuint_bytes(uint64_t value, unsigned char *out)
{
    unsigned char tmp[10];
    int n = 0, i;
    tmp[n++] = (unsigned char)(0x80 | (value & 0x7F));
    value >>= 7;
    while (value) {
        tmp[n++] = (unsigned char)(value & 0x7F);
        value >>= 7;
    }
    for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* Type descriptor (and VarUInt length when it does not fit the low nibble); returns its length. */
static int td_bytes(unsigned char code, uint64_t length, unsigned char *out)
{
    if (length < 14) {
        out[0] = (unsigned char)(code | length);
        return 1;
    }
    out[0] = (unsigned char)(code | 14);
    return 1 + varuint_bytes(length, out + 1);
}

static int buf_add_td(Buf *b, unsigned char code, Py_ssize_t length)
{
    unsigned char head[11];
    int n = td_bytes(code, (uint64_t)length, head);
    return buf_add(b, head, n);
}

/* A scalar's type descriptor and its representation raw[0:n]. */
static int put_scalar(Buf *b, unsigned char code, const void *raw, Py_ssize_t n)
{
    return buf_add_td(b, code, n) < 0 ? -1 : buf_add(b, raw, n);
}

/* Put the type descriptor of the body b[start:] in front of it. */
static int buf_insert_td(Buf *b, Py_ssize_t start, unsigned char code)
{
    unsigned char head[11];
    Py_ssize_t body = b->len - start;
    int n = td_bytes(code, (uint64_t)body, head);
    if (buf_reserve(b, n) < 0) return -1;
    memmove(b->p + start + n, b->p + start, (size_t)body);
    memcpy(b->p + start, head, (size_t)n);
    b->len += n;
    return 0;
}

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Sort count 32-byte hashes at p in memcmp order: by insertion for the few fields of most structs (no call
 * per comparison), by qsort for many. */
static void sort_hashes(unsigned char *p, Py_ssize_t count)
{
    Py_ssize_t i, j;
    unsigned char held[32];
    if (count > 16) {
        qsort(p, (size_t)count, 32, cmp_hash);
        return;
    }
    for (i = 1; i < count; i++) {
        if (memcmp(p + (i - 1) * 32, p + i * 32, 32) <= 0) continue;
        memcpy(held, p + i * 32, 32);
        for (j = i; j > 0 && memcmp(p + (j - 1) * 32, held, 32) > 0; j--) memcpy(p + j * 32, p + (j - 1) * 32, 32);
        memcpy(p + j * 32, held, 32);
    }
}

/* s(struct) from the field hashes in hashes[start:]: sorted, concatenated, escaped, wrapped. The hashes
 * are popped off afterwards. */
static int finish_struct_s(Buf *out, Buf *hashes, Py_ssize_t start)
{
    Py_ssize_t count = (hashes->len - start) / 32;
    if (count > 1) sort_hashes(hashes->p + start, count);
    if (buf_reserve(out, 2 * (hashes->len - start) + 3) < 0) return -1;
    out->p[out->len++] = 0x0B;
    out->p[out->len++] = 0xD0;
    if (buf_add_escaped(out, hashes->p + start, hashes->len - start) < 0) return -1;
    out->p[out->len++] = 0x0E;
    hashes->len = start;
    return 0;
}

/* sha256(s[start:]) pushed onto hashes; s is truncated back to start. */
static int push_field_hash(Buf *s, Py_ssize_t start, Buf *hashes)
{
    if (buf_reserve(hashes, 32) < 0) return -1;
    ldr_sha256(s->p + start, (size_t)(s->len - start), hashes->p + hashes->len);
    hashes->len += 32;
    s->len = start;
    return 0;
}

/* --- binary_hash_repr ----------------------------------------------------------------------------------- */

/* Outcomes of the readers: OK, NOTREAD (outside the subset, or the Python code's IndexError: None), or
 * ERROR (a Python exception is set: RecursionError, MemoryError). */
#define OK 0
#define NOTREAD 1
#define ERROR (-1)

/* VarUInts longer than any buffer saturate here: every comparison the reader makes then goes the way it
 * goes with the exact (arbitrarily large) Python int. */
#define HUGE_VALUE ((uint64_t)1 << 58)

typedef struct {
    const unsigned char *d;
    Py_ssize_t n;     /* len(data): reading at or past it is the Python code's IndexError */
    Buf out;          /* s() being built */
    Buf hashes;       /* field hashes of the structs being read, a stack */
    Buf names;        /* s(symbol) of each SID, concatenated */
    Py_ssize_t *noff; /* names of SID i: names.p[noff[i]:noff[i + 1]]; SID 0 has none */
    Py_ssize_t count; /* len(names) in the Python code: 10 + local symbols */
    int depth;
    /* Optional: a check of each scalar's body d[start:end] by type code (0x20..0xA0); NOTREAD declines the
     * stream. The journal verifier declines what amazon.ion would not read (bad UTF-8, impossible dates). */
    int (*scalar_check)(const unsigned char *d, int code, Py_ssize_t start, Py_ssize_t end);
} Rd;

static const char *const SYSTEM_SYMBOLS[9] = {
    "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version", "imports", "symbols", "max_id",
    "$ion_shared_symbol_table",
};

static int rd_varuint(Rd *r, Py_ssize_t *pos, Py_ssize_t end, uint64_t *out)
{
    uint64_t value = 0;
    Py_ssize_t p = *pos;
    while (p < end) {
        unsigned char octet;
        if (p >= r->n) return NOTREAD;
        octet = r->d[p++];
        if (value < ((uint64_t)1 << 50))
            value = (value << 7) | (octet & 0x7F);
        else
            value = HUGE_VALUE;
        if (octet & 0x80) {
            *pos = p;
            *out = value;
            return OK;
        }
    }
    return NOTREAD;
}

/* _typed_length: (length, position of the body) of a non-null value of type_code at d[*pos]. */
static int rd_typed_length(Rd *r, Py_ssize_t *pos, Py_ssize_t end, int type_code, uint64_t *length)
{
    unsigned char descriptor;
    if (*pos >= r->n) return NOTREAD;
    descriptor = r->d[(*pos)++];
    if (descriptor >> 4 != type_code || (descriptor & 0x0F) == 0x0F) return NOTREAD;
    *length = descriptor & 0x0F;
    if (*length == 14 || (type_code == 0xD && *length == 1)) return rd_varuint(r, pos, end, length);
    return OK;
}

/* The system symbols' names: SIDs 1-9. */
static int rd_system_names(Rd *r, Py_ssize_t capacity)
{
    int i;
    if (capacity < 0) capacity = 0;
    r->noff = (Py_ssize_t *)PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(capacity + 11));
    if (r->noff == NULL) {
        PyErr_NoMemory();
        return ERROR;
    }
    r->noff[0] = r->noff[1] = 0;
    for (i = 0; i < 9; i++) {
        const char *text = SYSTEM_SYMBOLS[i];
        if (buf_add_scalar_s(&r->names, 0x70, (const unsigned char *)text, (Py_ssize_t)strlen(text)) < 0)
            return ERROR;
        r->noff[i + 2] = r->names.len;
    }
    r->count = 10;
    return OK;
}

/* _symbol_names: the names of the local symbol table struct at d[pos:end] (after its annotation). */
static int rd_symbol_names(Rd *r, Py_ssize_t pos, Py_ssize_t end)
{
    uint64_t length, sid;
    Py_ssize_t stop;
    int seen = 0, rc;
    /* each symbol takes at least one octet of d[pos:end] */
    PyMem_Free(r->noff);
    r->names.len = 0;
    if (rd_system_names(r, end - pos) != OK) return ERROR;
    if ((rc = rd_typed_length(r, &pos, end, 0xD, &length)) != OK) return rc;
    if ((uint64_t)pos + length != (uint64_t)end) return NOTREAD;
    while (pos < end) {
        if ((rc = rd_varuint(r, &pos, end, &sid)) != OK) return rc;
        if (sid != 7 || seen) return NOTREAD; /* only `symbols`, once */
        seen = 1;
        if ((rc = rd_typed_length(r, &pos, end, 0xB, &length)) != OK) return rc;
        if ((uint64_t)pos + length > (uint64_t)end) return NOTREAD;
        stop = pos + (Py_ssize_t)length;
        while (pos < stop) {
            if ((rc = rd_typed_length(r, &pos, stop, 0x8, &length)) != OK) return rc;
            if ((uint64_t)pos + length > (uint64_t)stop) return NOTREAD;
            if (!valid_utf8(r->d + pos, (Py_ssize_t)length)) return NOTREAD;
            if (buf_add_scalar_s(&r->names, 0x70, r->d + pos, (Py_ssize_t)length) < 0) return ERROR;
            r->count++;
            r->noff[r->count] = r->names.len;
            pos += (Py_ssize_t)length;
        }
    }
    return OK;
}

/* Free what a reader allocated (its struct itself is the caller's). */
static void rd_free(Rd *r)
{
    PyMem_Free(r->noff);
    r->noff = NULL;
    buf_free(&r->out);
    buf_free(&r->hashes);
    buf_free(&r->names);
}

static inline int rd_add_name(Rd *r, uint64_t sid)
{
    return buf_add(&r->out, r->names.p + r->noff[sid], r->noff[sid + 1] - r->noff[sid]) < 0 ? ERROR : OK;
}

static int rd_value(Rd *r, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after);

static int rd_enter(Rd *r)
{
    if (r->depth >= MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded while reading Ion binary");
        return ERROR;
    }
    if (Py_EnterRecursiveCall(" while reading Ion binary")) return ERROR;
    r->depth++;
    return OK;
}

static void rd_leave(Rd *r)
{
    r->depth--;
    Py_LeaveRecursiveCall();
}

/* _read_fields: s(struct) of the fields at d[pos:stop]. */
static int rd_fields(Rd *r, Py_ssize_t pos, Py_ssize_t stop)
{
    Py_ssize_t hash_start = r->hashes.len;
    int rc;
    while (pos < stop) {
        uint64_t sid;
        Py_ssize_t s_start;
        if ((rc = rd_varuint(r, &pos, stop, &sid)) != OK) return rc;
        if (!(0 < sid && sid < (uint64_t)r->count)) return NOTREAD; /* unknown field name */
        if (pos >= stop) return NOTREAD;                             /* field without a value */
        s_start = r->out.len;
        if (rd_add_name(r, sid) != OK) return ERROR;
        if ((rc = rd_value(r, pos, stop, &pos)) != OK) return rc;
        if (push_field_hash(&r->out, s_start, &r->hashes) < 0) return ERROR;
    }
    return finish_struct_s(&r->out, &r->hashes, hash_start) < 0 ? ERROR : OK;
}

/* _read_value: s(value) of the value at d[pos], which must end by `end`; *after is the position after it. */
static int rd_value_inner(Rd *r, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after)
{
    unsigned char descriptor, code;
    uint64_t length;
    Py_ssize_t stop;
    int rc;

    if (pos >= r->n) return NOTREAD;
    descriptor = r->d[pos++];
    code = descriptor & 0xF0;
    length = descriptor & 0x0F;
    if (length == 15) { /* null.<type> */
        int t = code >> 4;
        if (t >= 0xE) return NOTREAD;
        if (buf_add3(&r->out, 0x0B, t == 3 ? 0x2F : (unsigned char)(code | 0x0F), 0x0E) < 0) return ERROR;
        *after = pos;
        return OK;
    }
    if (code == 0x10) {
        if (length > 1) return NOTREAD;
        if (buf_add3(&r->out, 0x0B, length ? 0x11 : 0x10, 0x0E) < 0) return ERROR;
        *after = pos;
        return OK;
    }
    if (length == 14 || (length == 1 && code == 0xD0)) {
        if ((rc = rd_varuint(r, &pos, end, &length)) != OK) return rc;
    }
    if ((uint64_t)pos + length > (uint64_t)end) return NOTREAD; /* length past the end */
    stop = pos + (Py_ssize_t)length;
    *after = stop;
    if (r->scalar_check != NULL && code >= 0x20 && code <= 0xA0 && r->scalar_check(r->d, code, pos, stop) != OK)
        return NOTREAD;
    switch (code) {
    case 0x30:
        if (!length) return NOTREAD; /* negative zero int */
        /* fall through */
    case 0x20:
    case 0x50:
    case 0x60:
    case 0x80:
    case 0x90:
    case 0xA0:
        return buf_add_scalar_s(&r->out, code, r->d + pos, (Py_ssize_t)length) < 0 ? ERROR : OK;
    case 0xD0:
        return rd_fields(r, pos, stop);
    case 0xB0:
    case 0xC0:
        if (buf_reserve(&r->out, 2) < 0) return ERROR;
        r->out.p[r->out.len++] = 0x0B;
        r->out.p[r->out.len++] = code;
        while (pos < stop) {
            if ((rc = rd_value(r, pos, stop, &pos)) != OK) return rc;
        }
        return buf_add(&r->out, "\x0e", 1) < 0 ? ERROR : OK;
    case 0x40: {
        uint64_t bits = 0;
        int i;
        if (length == 0) return buf_add3(&r->out, 0x0B, 0x40, 0x0E) < 0 ? ERROR : OK;
        if (length != 8) return NOTREAD; /* float width */
        for (i = 0; i < 8; i++) bits = (bits << 8) | r->d[pos + i];
        if ((bits & 0x7FF0000000000000ULL) == 0x7FF0000000000000ULL && (bits & 0x000FFFFFFFFFFFFFULL))
            return buf_add_scalar_s(&r->out, 0x40, (const unsigned char *)"\x7f\xf8\0\0\0\0\0\0", 8) < 0 ? ERROR
                                                                                                        : OK;
        return buf_add_scalar_s(&r->out, 0x40, r->d + pos, 8) < 0 ? ERROR : OK;
    }
    case 0x70: {
        uint64_t sid = 0;
        Py_ssize_t p = pos;
        while (p < stop && r->d[p] == 0) p++; /* leading zero octets */
        if (p == stop) return buf_add3(&r->out, 0x0B, 0x71, 0x0E) < 0 ? ERROR : OK; /* symbol zero */
        if (stop - p > 7) return NOTREAD;                                               /* unknown symbol */
        for (; p < stop; p++) sid = (sid << 8) | r->d[p];
        if (sid >= (uint64_t)r->count) return NOTREAD; /* unknown symbol */
        return rd_add_name(r, sid);
    }
    case 0xE0: {
        uint64_t annotations_length, sid;
        Py_ssize_t annotations_end, inner_end;
        if ((rc = rd_varuint(r, &pos, stop, &annotations_length)) != OK) return rc;
        if ((uint64_t)pos + annotations_length >= (uint64_t)stop) return NOTREAD; /* annotation wrapper */
        annotations_end = pos + (Py_ssize_t)annotations_length;
        if (buf_reserve(&r->out, 2) < 0) return ERROR;
        r->out.p[r->out.len++] = 0x0B;
        r->out.p[r->out.len++] = 0xE0;
        while (pos < annotations_end) {
            if ((rc = rd_varuint(r, &pos, annotations_end, &sid)) != OK) return rc;
            if (!(0 < sid && sid < (uint64_t)r->count)) return NOTREAD; /* unknown annotation */
            if (rd_add_name(r, sid) != OK) return ERROR;
        }
        if (pos >= r->n) return NOTREAD;
        if (r->d[pos] >> 4 == 0xE) return NOTREAD; /* nested annotation wrapper */
        if ((rc = rd_value(r, pos, stop, &inner_end)) != OK) return rc;
        if (inner_end != stop) return NOTREAD; /* annotation wrapper length */
        return buf_add(&r->out, "\x0e", 1) < 0 ? ERROR : OK;
    }
    default:
        return NOTREAD; /* NOP padding, reserved */
    }
}

static int rd_value(Rd *r, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *after)
{
    int rc;
    if (rd_enter(r) != OK) return ERROR;
    rc = rd_value_inner(r, pos, end, after);
    rd_leave(r);
    return rc;
}

static const unsigned char IVM[4] = {0xE0, 0x01, 0x00, 0xEA};

/* ionread._stream_prelude: the symbol names of a self-contained stream d[0:n] (after its version marker, the
 * local symbol table when there is one), and in *pos the position of its first value. */
static int rd_prelude(Rd *r, Py_ssize_t *start)
{
    Py_ssize_t pos = 4, end = r->n;
    int rc;
    if (r->n < 4 || memcmp(r->d, IVM, 4) != 0) return NOTREAD;
    if (rd_system_names(r, 0) != OK) return ERROR;
    if (pos < end && r->d[pos] >> 4 == 0xE) { /* an annotation wrapper: the symbol table, or the value */
        uint64_t length = r->d[pos] & 0x0F, annotations_length;
        Py_ssize_t body = pos + 1, first, stop;
        if (length == 14 && (rc = rd_varuint(r, &body, end, &length)) != OK) return rc;
        stop = body + (Py_ssize_t)length; /* length < 2**58: no overflow */
        first = body;
        if ((rc = rd_varuint(r, &first, stop, &annotations_length)) != OK) return rc;
        if (annotations_length == 1) {
            if (first >= r->n) return NOTREAD;
            if (r->d[first] == 0x83 && stop <= end) { /* $ion_symbol_table:: */
                if ((rc = rd_symbol_names(r, first + 1, stop)) != OK) return rc;
                pos = stop;
            }
        }
    }
    *start = pos;
    return OK;
}

/* binary_hash_repr on d[0:n]: OK with s() in r->out, NOTREAD (None) or ERROR. */
static int rd_stream(Rd *r)
{
    Py_ssize_t pos, end = r->n, after;
    int rc;
    if ((rc = rd_prelude(r, &pos)) != OK) return rc;
    if (pos >= end || (pos + 4 <= r->n && memcmp(r->d + pos, IVM, 4) == 0)) return NOTREAD;
    if ((rc = rd_value(r, pos, end, &after)) != OK) return rc;
    return after == end ? OK : NOTREAD;
}

/* hashing.dot of two 32-byte hashes: SHA-256 of both, the smaller first, compared as QLDB compares them:
 * octet by octet from the last, each as a signed byte. */
static void dot32(const unsigned char *a, const unsigned char *b, unsigned char *out)
{
    unsigned char pair[64];
    int a_first = 0, i;
    for (i = 31; i >= 0; i--) {
        if (a[i] != b[i]) {
            a_first = (a[i] ^ 0x80) < (b[i] ^ 0x80);
            break;
        }
    }
    memcpy(pair, a_first ? a : b, 32);
    memcpy(pair + 32, a_first ? b : a, 32);
    ldr_sha256(pair, 64, out);
}

/* hashing.merkle_root of the n >= 1 hashes level[0:32n], in place: the root ends in level[0:32]. */
static void merkle_root32(unsigned char *level, Py_ssize_t n)
{
    while (n > 1) {
        Py_ssize_t i, m = 0;
        for (i = 0; i + 1 < n; i += 2, m++) dot32(level + 32 * i, level + 32 * (i + 1), level + 32 * m);
        if (n % 2) memmove(level + 32 * m++, level + 32 * (n - 1), 32);
        n = m;
    }
}

#endif
