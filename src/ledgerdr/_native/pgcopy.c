/* ledgerdr._pgcopy: what the PostgreSQL target writes, built in C from the journal verifier's rows.
 *
 * to_json(ion) -> bytes | None
 *     The JSON text of a self-contained Ion binary stream holding one value (a version marker, at most one local
 *     symbol table `$ion_symbol_table::{symbols:[...]}`, the value), byte for byte what the Python conversion
 *     gives for the value amazon.ion reads from it: targets/postgres.py `_jsonb_text(simpleion.loads(ion))`
 *     (QLDB's down-conversion, reference §1.5, written by orjson, an escaped NUL turned into U+FFFD because
 *     jsonb cannot hold U+0000). None when the value is outside what this reader knows (an integer or decimal
 *     coefficient over 64 bits, a symbol with unknown text, a timestamp amazon.ion would give another text,
 *     nesting deeper than JSON_DEPTH, anything malformed): the caller then converts it in Python, which stays
 *     the reference (tests/test_pgcopy_native.py holds the two equal).
 *
 * history_copy(rows, fallback) -> dict[str, bytes]
 *     PostgreSQL binary COPY data (header, tuples, trailer) per table id for the restore's history rows
 *     (targets.base.HistoryRow: table_id, document_id, version, document Ion | None, revision hash, txTime in
 *     epoch ms, txId, block sequence number, data hash | None), in the column order of postgres.COLUMNS:
 *     id text, version int4, tx_time timestamptz, tx_time_ion text, tx_id text, data jsonb, ion bytea, hash
 *     bytea, data_hash bytea, deleted bool, type_lost bool, block_seq int8. `tx_time_ion` is the millisecond
 *     UTC text of txTime (the journal verifier gives rows only for txTimes in that form); `data` is to_json of
 *     the document, or `fallback(ion)` (str) where to_json gives None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "buffer.h"
#include "civil.h"
#include "utf8.h"

#define OK 0
#define NOTREAD 1
#define ERROR (-1)
/* orjson refuses nesting past 255 levels (a RecursionError-like JSONEncodeError): deeper values are left to it. */
#define JSON_DEPTH 200

static const char *const SYSTEM_SYMBOLS[10] = {
    NULL, "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version", "imports", "symbols", "max_id",
    "$ion_shared_symbol_table",
};

static int add(Buf *b, const void *p, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) return ERROR;
    memcpy(b->p + b->len, p, (size_t)n);
    b->len += n;
    return OK;
}

static int add_c(Buf *b, char c)
{
    if (buf_reserve(b, 1) < 0) return ERROR;
    b->p[b->len++] = (unsigned char)c;
    return OK;
}

static int add_s(Buf *b, const char *s)
{
    return add(b, s, (Py_ssize_t)strlen(s));
}

/* --- reading --------------------------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *d;
    Py_ssize_t n;
    Py_ssize_t *sym_start, *sym_len; /* local symbols (SID 10 on): text d[start:start+len] */
    Py_ssize_t sym_count, sym_cap;
    int depth;
    Buf out;
} R;

static int varuint(const R *r, Py_ssize_t *p, Py_ssize_t end, uint64_t *out)
{
    uint64_t v = 0;
    while (*p < end) {
        unsigned char c = r->d[(*p)++];
        if (v >> 56) return NOTREAD;
        v = (v << 7) | (c & 0x7F);
        if (c & 0x80) {
            *out = v;
            return OK;
        }
    }
    return NOTREAD;
}

/* A VarInt: magnitude and sign (negative zero is *negative set with magnitude 0). */
static int varint(const R *r, Py_ssize_t *p, Py_ssize_t end, uint64_t *magnitude, int *negative)
{
    unsigned char c;
    uint64_t v;
    if (*p >= end) return NOTREAD;
    c = r->d[(*p)++];
    *negative = (c & 0x40) != 0;
    v = c & 0x3F;
    while (!(c & 0x80)) {
        if (*p >= end || (v >> 56)) return NOTREAD;
        c = r->d[(*p)++];
        v = (v << 7) | (c & 0x7F);
    }
    *magnitude = v;
    return OK;
}

/* The head of the value at d[*p]: type code, length nibble, body d[*start:*end]. */
static int head(const R *r, Py_ssize_t *p, Py_ssize_t limit, int *code, int *nibble, Py_ssize_t *start,
                Py_ssize_t *end)
{
    uint64_t length;
    unsigned char td;
    if (*p >= limit) return NOTREAD;
    td = r->d[(*p)++];
    *code = td >> 4;
    *nibble = td & 0x0F;
    length = (uint64_t)*nibble;
    if (*nibble == 15 || (*code == 1)) length = 0;
    else if (*nibble == 14 || (*code == 0xD && *nibble == 1)) {
        if (varuint(r, p, limit, &length) != OK) return NOTREAD;
    }
    if (length > (uint64_t)(limit - *p)) return NOTREAD;
    *start = *p;
    *end = *p + (Py_ssize_t)length;
    *p = *end;
    return OK;
}

/* The text of symbol `sid`: NOTREAD for SID 0 and unknown symbols (JSON has no name for them). */
static int symbol_text(const R *r, uint64_t sid, const unsigned char **text, Py_ssize_t *n)
{
    if (sid >= 1 && sid <= 9) {
        *text = (const unsigned char *)SYSTEM_SYMBOLS[sid];
        *n = (Py_ssize_t)strlen(SYSTEM_SYMBOLS[sid]);
        return OK;
    }
    if (sid < 10 || sid - 10 >= (uint64_t)r->sym_count || r->sym_start[sid - 10] < 0) return NOTREAD;
    *text = r->d + r->sym_start[sid - 10];
    *n = r->sym_len[sid - 10];
    return OK;
}

/* `$ion_symbol_table::{symbols:[...]}` (nothing else in it) at the annotation wrapper's body d[start:end]. */
static int symbol_table(R *r, Py_ssize_t p, Py_ssize_t end)
{
    uint64_t annotations, sid;
    int code, nibble, seen = 0;
    Py_ssize_t start, stop;
    if (varuint(r, &p, end, &annotations) != OK || annotations != 1 || p >= end || r->d[p] != 0x83) return NOTREAD;
    p++;
    if (head(r, &p, end, &code, &nibble, &start, &stop) != OK || code != 0xD || nibble == 15 || p != end)
        return NOTREAD;
    p = start;
    while (p < stop) {
        Py_ssize_t s, e;
        if (varuint(r, &p, stop, &sid) != OK || sid != 7 || seen) return NOTREAD;
        seen = 1;
        if (head(r, &p, stop, &code, &nibble, &s, &e) != OK || code != 0xB || nibble == 15) return NOTREAD;
        while (s < e) {
            Py_ssize_t ts, te;
            if (head(r, &s, e, &code, &nibble, &ts, &te) != OK || code != 8 || nibble == 15) return NOTREAD;
            if (!valid_utf8(r->d + ts, te - ts)) return NOTREAD;
            if (r->sym_count == r->sym_cap) {
                Py_ssize_t cap = r->sym_cap ? 2 * r->sym_cap : 32;
                Py_ssize_t *a = PyMem_Realloc(r->sym_start, sizeof(Py_ssize_t) * (size_t)cap);
                Py_ssize_t *b;
                if (a == NULL) goto nomem;
                r->sym_start = a;
                b = PyMem_Realloc(r->sym_len, sizeof(Py_ssize_t) * (size_t)cap);
                if (b == NULL) goto nomem;
                r->sym_len = b;
                r->sym_cap = cap;
            }
            r->sym_start[r->sym_count] = ts;
            r->sym_len[r->sym_count++] = te - ts;
        }
    }
    return OK;
nomem:
    PyErr_NoMemory();
    return ERROR;
}

/* --- writing JSON ---------------------------------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

/* A JSON string as orjson escapes it; U+0000 becomes U+FFFD (postgres._jsonb_text). With `clob`, the octets of a
 * clob: its printable ASCII octets as they are, each other one as the six characters \u00xx (codecs.to_json), the
 * whole JSON-escaped. */
static int json_string(Buf *b, const unsigned char *s, Py_ssize_t n, int clob)
{
    Py_ssize_t i;
    if (buf_reserve(b, 7 * n + 2) < 0) return ERROR;
    b->p[b->len++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        unsigned char *o = b->p + b->len;
        if (c == '"' || c == '\\') {
            o[0] = '\\';
            o[1] = c;
            b->len += 2;
        } else if (c >= 0x20 && (!clob || c <= 0x7E)) {
            *o = c;
            b->len++;
        } else if (clob) {
            memcpy(o, "\\\\u00", 5);
            o[5] = (unsigned char)HEX[c >> 4];
            o[6] = (unsigned char)HEX[c & 15];
            b->len += 7;
        } else {
            o[0] = '\\';
            switch (c) {
            case '\b': o[1] = 'b'; b->len += 2; break;
            case '\t': o[1] = 't'; b->len += 2; break;
            case '\n': o[1] = 'n'; b->len += 2; break;
            case '\f': o[1] = 'f'; b->len += 2; break;
            case '\r': o[1] = 'r'; b->len += 2; break;
            case 0: memcpy(o, "\\ufffd", 6); b->len += 6; break;
            default:
                memcpy(o, "\\u00", 4);
                o[4] = (unsigned char)HEX[c >> 4];
                o[5] = (unsigned char)HEX[c & 15];
                b->len += 6;
            }
        }
    }
    b->p[b->len++] = '"';
    return OK;
}

static int add_u64(Buf *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[23 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return add(b, tmp + 24 - n, n);
}

/* A big-endian magnitude of at most 8 octets (the first octet's top bit masked by the caller). */
static int magnitude(const unsigned char *p, Py_ssize_t n, uint64_t *out)
{
    uint64_t v = 0;
    Py_ssize_t i;
    if (n > 8) return NOTREAD;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    *out = v;
    return OK;
}

/* A float as orjson writes it: Python's repr, except e-05 written out and no zero padding of exponents. */
static int json_float(Buf *b, double x)
{
    char *r, *e;
    int rc;
    if (x != x || x == Py_HUGE_VAL || x == -Py_HUGE_VAL) return add_s(b, "null");
    r = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL) return ERROR;
    e = strchr(r, 'e');
    if (e == NULL || e[1] == '+') {
        rc = add_s(b, r);
    } else if (strcmp(e, "e-05") == 0) { /* d[.ddd]e-05 → 0.0000dddd */
        char *q = r;
        rc = OK;
        if (*q == '-') rc = add_c(b, *q++);
        if (rc == OK) rc = add_s(b, "0.0000");
        for (; q < e && rc == OK; q++)
            if (*q != '.') rc = add_c(b, *q);
    } else { /* e-0N → e-N */
        rc = add(b, r, e - r + 2);
        if (rc == OK) rc = add_s(b, e[2] == '0' ? e + 3 : e + 2);
    }
    PyMem_Free(r);
    return rc;
}

/* A decimal as postgres._jsonable writes it (codecs._decimal_fragment): plain digits for a negative exponent
 * (format 'f'), else digits and `e<exponent>`. */
static int json_decimal(R *r, Py_ssize_t p, Py_ssize_t end)
{
    uint64_t exponent, coefficient = 0;
    int negative_exponent, negative = 0;
    char digits[24];
    int n = 0;
    Buf *b = &r->out;
    if (p == end) return add_c(b, '0'); /* 0d0 */
    if (varint(r, &p, end, &exponent, &negative_exponent) != OK) return NOTREAD;
    if (p < end) {
        unsigned char first[8];
        if (end - p > 8) return NOTREAD;
        negative = (r->d[p] & 0x80) != 0;
        memcpy(first, r->d + p, (size_t)(end - p));
        first[0] &= 0x7F;
        magnitude(first, end - p, &coefficient);
    }
    if (exponent > 4096) return NOTREAD;
    do {
        digits[23 - n++] = (char)('0' + coefficient % 10);
        coefficient /= 10;
    } while (coefficient);
    if (negative && add_c(b, '-') != OK) return ERROR;
    if (!negative_exponent || exponent == 0) {
        if (add(b, digits + 24 - n, n) != OK) return ERROR;
        if (exponent) {
            if (add_c(b, 'e') != OK || add_u64(b, exponent) != OK) return ERROR;
        }
        return OK;
    }
    if ((uint64_t)n > exponent) {
        Py_ssize_t whole = n - (Py_ssize_t)exponent;
        if (add(b, digits + 24 - n, whole) != OK || add_c(b, '.') != OK ||
            add(b, digits + 24 - n + whole, (Py_ssize_t)exponent) != OK)
            return ERROR;
        return OK;
    }
    if (add_s(b, "0.") != OK || buf_reserve(b, (Py_ssize_t)exponent) < 0) return ERROR;
    memset(b->p + b->len, '0', (size_t)(exponent - (uint64_t)n));
    b->len += (Py_ssize_t)(exponent - (uint64_t)n);
    return add(b, digits + 24 - n, n);
}

static int valid_date(uint64_t y, uint64_t m, uint64_t d)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= (uint64_t)(days[m - 1] + (m == 2 && leap));
}

static int add_2(Buf *b, unsigned v)
{
    char t[2] = {(char)('0' + v / 10 % 10), (char)('0' + v % 10)};
    return add(b, t, 2);
}

/* A timestamp's Ion text (codecs.timestamp_text of what amazon.ion reads), as a JSON string. */
static int json_timestamp(R *r, Py_ssize_t p, Py_ssize_t end)
{
    uint64_t f[6] = {0, 1, 1, 0, 0, 0}, offset_m, exponent = 0, coefficient = 0;
    int offset_negative, count = 0, has_fraction = 0, i;
    int64_t offset, local_y;
    unsigned local_mo, local_d, local_h, local_mi;
    Buf *b = &r->out;
    char year[5];
    if (varint(r, &p, end, &offset_m, &offset_negative) != OK) return NOTREAD;
    for (i = 0; i < 6 && p < end; i++, count++)
        if (varuint(r, &p, end, &f[i]) != OK) return NOTREAD;
    if (count == 0 || count == 4) return NOTREAD;
    if (p < end) {
        int negative;
        if (count != 6 || varint(r, &p, end, &exponent, &negative) != OK || !negative || exponent == 0 ||
            exponent > 30)
            return NOTREAD;
        if (p < end) {
            if (r->d[p] & 0x80 || magnitude(r->d + p, end - p, &coefficient) != OK) return NOTREAD;
        }
        if (exponent < 20) {
            uint64_t scale = 1;
            for (i = 0; i < (int)exponent; i++) scale *= 10;
            if (coefficient >= scale) return NOTREAD;
        }
        has_fraction = 1;
    }
    if (!valid_date(f[0], f[1], f[2]) || f[3] > 23 || f[4] > 59 || f[5] > 59) return NOTREAD;
    if (count < 5) {
        if (!(offset_negative && offset_m == 0)) return NOTREAD; /* a date with an offset: left to amazon.ion */
        snprintf(year, sizeof year, "%04u", (unsigned)f[0]);
        if (add_c(b, '"') != OK || add(b, year, 4) != OK) return ERROR;
        if (count >= 2 && (add_c(b, '-') != OK || add_2(b, (unsigned)f[1]) != OK)) return ERROR;
        if (count == 3 && (add_c(b, '-') != OK || add_2(b, (unsigned)f[2]) != OK)) return ERROR;
        return add_s(b, count == 3 ? "\"" : "T\"");
    }
    if (offset_m > 23 * 60 + 59) return NOTREAD;
    offset = offset_negative ? -(int64_t)offset_m : (int64_t)offset_m;
    { /* local time = UTC + offset */
        int64_t minutes = (days_from_civil((int64_t)f[0], (unsigned)f[1], (unsigned)f[2]) * 24 + (int64_t)f[3]) * 60 +
                          (int64_t)f[4] + offset;
        int64_t days = (minutes >= 0 ? minutes : minutes - 1439) / 1440;
        int64_t in_day = minutes - days * 1440;
        civil_from_days(days, &local_y, &local_mo, &local_d);
        local_h = (unsigned)(in_day / 60);
        local_mi = (unsigned)(in_day % 60);
        if (local_y < 1 || local_y > 9999) return NOTREAD;
    }
    snprintf(year, sizeof year, "%04u", (unsigned)local_y);
    if (add_c(b, '"') != OK || add(b, year, 4) != OK || add_c(b, '-') != OK || add_2(b, local_mo) != OK ||
        add_c(b, '-') != OK || add_2(b, local_d) != OK || add_c(b, 'T') != OK || add_2(b, local_h) != OK ||
        add_c(b, ':') != OK || add_2(b, local_mi) != OK)
        return ERROR;
    if (count == 6 && (add_c(b, ':') != OK || add_2(b, (unsigned)f[5]) != OK)) return ERROR;
    if (has_fraction) {
        char digits[32];
        int n = (int)exponent;
        for (i = n - 1; i >= 0; i--) {
            digits[i] = (char)('0' + coefficient % 10);
            coefficient /= 10;
        }
        if (add_c(b, '.') != OK || add(b, digits, n) != OK) return ERROR;
    }
    if (offset_negative && offset_m == 0) return add_s(b, "-00:00\"");
    if (offset == 0) return add_s(b, "Z\"");
    if (add_c(b, offset < 0 ? '-' : '+') != OK || add_2(b, (unsigned)(offset_m / 60)) != OK || add_c(b, ':') != OK ||
        add_2(b, (unsigned)(offset_m % 60)) != OK)
        return ERROR;
    return add_c(b, '"');
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int json_blob(Buf *b, const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i;
    unsigned char *o;
    if (buf_reserve(b, (n + 2) / 3 * 4 + 2) < 0) return ERROR;
    o = b->p + b->len;
    *o++ = '"';
    for (i = 0; i + 2 < n; i += 3) {
        *o++ = (unsigned char)B64[s[i] >> 2];
        *o++ = (unsigned char)B64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *o++ = (unsigned char)B64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *o++ = (unsigned char)B64[s[i + 2] & 63];
    }
    if (n - i == 1) {
        *o++ = (unsigned char)B64[s[i] >> 2];
        *o++ = (unsigned char)B64[(s[i] & 3) << 4];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        *o++ = (unsigned char)B64[s[i] >> 2];
        *o++ = (unsigned char)B64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *o++ = (unsigned char)B64[(s[i + 1] & 15) << 2];
        *o++ = '=';
    }
    *o++ = '"';
    b->len = o - b->p;
    return OK;
}

static int json_value(R *r, Py_ssize_t *p, Py_ssize_t limit);

/* A struct: each field name once, where it first appears, with the value of its last occurrence (IonPyDict keeps
 * every value; JSON keeps the last, as postgres._json_ion_struct does). */
static int json_struct(R *r, Py_ssize_t p, Py_ssize_t end)
{
    Py_ssize_t fields[64][3]; /* (unused), name length, value position */
    const unsigned char *texts[64];
    Py_ssize_t count = 0, i, j;
    Buf *b = &r->out;
    while (p < end) {
        uint64_t sid;
        const unsigned char *text;
        Py_ssize_t n, skip;
        int code, nibble;
        Py_ssize_t s, e;
        if (varuint(r, &p, end, &sid) != OK || p >= end) return NOTREAD;
        if (symbol_text(r, sid, &text, &n) != OK) return NOTREAD;
        if (count == 64) return NOTREAD;
        texts[count] = text;
        fields[count][1] = n;
        fields[count][2] = p;
        count++;
        skip = p;
        if (head(r, &skip, end, &code, &nibble, &s, &e) != OK) return NOTREAD;
        p = skip;
    }
    if (add_c(b, '{') != OK) return ERROR;
    for (i = 0; i < count; i++) {
        Py_ssize_t last = i, pos;
        int first = 1, rc;
        for (j = 0; j < i && first; j++)
            if (fields[j][1] == fields[i][1] && memcmp(texts[j], texts[i], (size_t)fields[i][1]) == 0) first = 0;
        for (j = i + 1; j < count && last == i; j++)
            if (fields[j][1] == fields[i][1] && memcmp(texts[j], texts[i], (size_t)fields[i][1]) == 0) last = j;
        if (last != i) { /* a value JSON drops: read all the same (amazon.ion refuses the stream if it is bad) */
            Py_ssize_t mark = b->len;
            pos = fields[i][2];
            rc = json_value(r, &pos, end);
            b->len = mark;
            if (rc != OK) return rc;
        }
        if (!first) continue;
        for (j = i + 1; j < count; j++)
            if (fields[j][1] == fields[i][1] && memcmp(texts[j], texts[i], (size_t)fields[i][1]) == 0) last = j;
        if (b->len > 0 && b->p[b->len - 1] != '{' && add_c(b, ',') != OK) return ERROR;
        if (json_string(b, texts[i], fields[i][1], 0) != OK || add_c(b, ':') != OK) return ERROR;
        pos = fields[last][2];
        if ((rc = json_value(r, &pos, end)) != OK) return rc;
    }
    return add_c(b, '}');
}

static int json_sequence(R *r, Py_ssize_t p, Py_ssize_t end)
{
    Buf *b = &r->out;
    int rc;
    if (add_c(b, '[') != OK) return ERROR;
    while (p < end) {
        if (b->p[b->len - 1] != '[' && add_c(b, ',') != OK) return ERROR;
        if ((rc = json_value(r, &p, end)) != OK) return rc;
    }
    return add_c(b, ']');
}

static int json_value(R *r, Py_ssize_t *p, Py_ssize_t limit)
{
    int code, nibble, rc = NOTREAD;
    Py_ssize_t start, end;
    Buf *b = &r->out;
    if (head(r, p, limit, &code, &nibble, &start, &end) != OK) return NOTREAD;
    if (nibble == 15 && code <= 0xD) return add_s(b, "null"); /* null.<type>, null.null included */
    if (++r->depth > JSON_DEPTH) return NOTREAD;
    switch (code) {
    case 0x1:
        rc = nibble > 1 ? NOTREAD : add_s(b, nibble ? "true" : "false");
        break;
    case 0x2:
    case 0x3: {
        uint64_t v;
        if (magnitude(r->d + start, end - start, &v) != OK || (code == 3 && v == 0)) break;
        rc = (code == 3 && add_c(b, '-') != OK) ? ERROR : add_u64(b, v);
        break;
    }
    case 0x4: {
        uint64_t bits = 0;
        Py_ssize_t i;
        double x;
        if (end - start == 0) {
            rc = add_s(b, "0.0");
            break;
        }
        if (end - start != 4 && end - start != 8) break;
        for (i = start; i < end; i++) bits = (bits << 8) | r->d[i];
        if (end - start == 4) {
            uint32_t bits32 = (uint32_t)bits;
            float f;
            memcpy(&f, &bits32, 4);
            x = (double)f;
        } else {
            memcpy(&x, &bits, 8);
        }
        rc = json_float(b, x);
        break;
    }
    case 0x5:
        rc = json_decimal(r, start, end);
        break;
    case 0x6:
        rc = json_timestamp(r, start, end);
        break;
    case 0x7: {
        uint64_t sid;
        const unsigned char *text;
        Py_ssize_t n;
        if (magnitude(r->d + start, end - start, &sid) != OK || symbol_text(r, sid, &text, &n) != OK) break;
        rc = json_string(b, text, n, 0);
        break;
    }
    case 0x8:
        if (!valid_utf8(r->d + start, end - start)) break;
        rc = json_string(b, r->d + start, end - start, 0);
        break;
    case 0x9:
        rc = json_string(b, r->d + start, end - start, 1);
        break;
    case 0xA:
        rc = json_blob(b, r->d + start, end - start);
        break;
    case 0xB:
    case 0xC:
        rc = json_sequence(r, start, end);
        break;
    case 0xD:
        rc = json_struct(r, start, end);
        break;
    case 0xE: { /* annotations: dropped, as the down-conversion drops them */
        uint64_t annotations_length, sid;
        Py_ssize_t q = start, annotations_end, inner;
        const unsigned char *text;
        Py_ssize_t n;
        if (nibble < 3 || varuint(r, &q, end, &annotations_length) != OK) break;
        if (annotations_length == 0 || annotations_length >= (uint64_t)(end - q)) break;
        annotations_end = q + (Py_ssize_t)annotations_length;
        while (q < annotations_end) {
            if (varuint(r, &q, annotations_end, &sid) != OK || symbol_text(r, sid, &text, &n) != OK) goto done;
        }
        if (q != annotations_end || (r->d[q] >> 4) == 0xE) break;
        inner = q;
        rc = json_value(r, &inner, end);
        if (rc == OK && inner != end) rc = NOTREAD;
        break;
    }
    default:
        break;
    }
done:
    r->depth--;
    return rc;
}

static void r_free(R *r)
{
    PyMem_Free(r->sym_start);
    PyMem_Free(r->sym_len);
    r->sym_start = r->sym_len = NULL;
    r->sym_count = r->sym_cap = 0;
}

static const unsigned char IVM[4] = {0xE0, 0x01, 0x00, 0xEA};

/* The JSON of stream d[0:n] appended to `out`: OK, NOTREAD (out restored), or ERROR. */
static int stream_json(const unsigned char *d, Py_ssize_t n, Buf *out)
{
    R r;
    Py_ssize_t p = 4, mark = out->len;
    int rc;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.n = n;
    r.out = *out;
    if (n < 5 || memcmp(d, IVM, 4) != 0) return NOTREAD;
    if (d[p] == 0xEE || (d[p] >> 4 == 0xE && p + 1 < n && d[p + 1] == 0x81 && p + 2 < n && d[p + 2] == 0x83) ||
        (d[p] >> 4 == 0xE && (d[p] & 0xF) == 0xE)) {
        /* an annotation wrapper: the local symbol table when its annotation is $ion_symbol_table alone */
        int code, nibble;
        Py_ssize_t q = p, s, e, a = 0;
        uint64_t annotations;
        if (head(&r, &q, n, &code, &nibble, &s, &e) != OK) {
            r_free(&r);
            return NOTREAD;
        }
        a = s;
        if (code == 0xE && varuint(&r, &a, e, &annotations) == OK && annotations == 1 && a < e && d[a] == 0x83) {
            rc = symbol_table(&r, s, e);
            if (rc != OK) {
                r_free(&r);
                return rc;
            }
            p = q;
        }
    }
    if (p >= n || (p + 4 <= n && memcmp(d + p, IVM, 4) == 0)) {
        r_free(&r);
        return NOTREAD;
    }
    rc = json_value(&r, &p, n);
    if (rc == OK && p != n) rc = NOTREAD;
    *out = r.out;
    if (rc != OK) out->len = mark;
    r_free(&r);
    return rc;
}

static PyObject *to_json(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    Buf out = {NULL, 0, 0};
    int rc;
    PyObject *result;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    rc = stream_json((const unsigned char *)view.buf, view.len, &out);
    PyBuffer_Release(&view);
    if (rc == ERROR) {
        PyMem_Free(out.p);
        return NULL;
    }
    result = rc == OK ? PyBytes_FromStringAndSize((const char *)out.p, out.len) : Py_NewRef(Py_None);
    PyMem_Free(out.p);
    return result;
}

/* --- binary COPY --------------------------------------------------------------------------------------------- */

static const unsigned char COPY_HEADER[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0,
                                              0, 0, 0, 0, 0, 0, 0, 0};
#define COLUMN_COUNT 12
#define PG_EPOCH_MS 946684800000LL /* 2000-01-01T00:00:00Z, PostgreSQL's timestamp origin */

static int put32(Buf *b, uint32_t v)
{
    unsigned char t[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    return add(b, t, 4);
}

static int put64(Buf *b, uint64_t v)
{
    return put32(b, (uint32_t)(v >> 32)) == OK ? put32(b, (uint32_t)v) : ERROR;
}

static int field_null(Buf *b)
{
    return put32(b, 0xFFFFFFFFu);
}

static int field(Buf *b, const void *p, Py_ssize_t n)
{
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a value too large for one PostgreSQL field");
        return ERROR;
    }
    return put32(b, (uint32_t)n) == OK ? add(b, p, n) : ERROR;
}

static int field_str(Buf *b, PyObject *s)
{
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(s, &n);
    return text == NULL ? ERROR : field(b, text, n);
}

static int field_bytes_or_null(Buf *b, PyObject *v)
{
    if (v == Py_None) return field_null(b);
    if (!PyBytes_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "history_copy: expected bytes or None");
        return ERROR;
    }
    return field(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
}

/* txTime's millisecond UTC text, YYYY-MM-DDTHH:MM:SS.mmmZ. */
static int field_ms_text(Buf *b, int64_t ms)
{
    int64_t days = (ms >= 0 ? ms : ms - 86399999) / 86400000, in_day = ms - days * 86400000, y;
    unsigned m, d;
    char text[32];
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) {
        PyErr_SetString(PyExc_ValueError, "history_copy: txTime out of range");
        return ERROR;
    }
    snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", (int)y, m, d, (int)(in_day / 3600000),
             (int)(in_day / 60000 % 60), (int)(in_day / 1000 % 60), (int)(in_day % 1000));
    return field(b, text, 24);
}

/* The jsonb field of a document: version octet 1, then its JSON (C, or `fallback(ion)` where C declines). */
static int field_jsonb(Buf *b, PyObject *ion, PyObject *fallback)
{
    Py_ssize_t length_at = b->len;
    int rc;
    if (put32(b, 0) != OK || add_c(b, 1) != OK) return ERROR;
    rc = stream_json((const unsigned char *)PyBytes_AS_STRING(ion), PyBytes_GET_SIZE(ion), b);
    if (rc == ERROR) return ERROR;
    if (rc == NOTREAD) {
        PyObject *text = PyObject_CallOneArg(fallback, ion);
        Py_ssize_t n;
        const char *s;
        if (text == NULL) return ERROR;
        s = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
        if (s == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "history_copy: fallback must return str");
            Py_DECREF(text);
            return ERROR;
        }
        rc = add(b, s, n);
        Py_DECREF(text);
        if (rc != OK) return ERROR;
    }
    {
        uint32_t n = (uint32_t)(b->len - length_at - 4);
        b->p[length_at] = (unsigned char)(n >> 24);
        b->p[length_at + 1] = (unsigned char)(n >> 16);
        b->p[length_at + 2] = (unsigned char)(n >> 8);
        b->p[length_at + 3] = (unsigned char)n;
    }
    return OK;
}

static int copy_row(Buf *b, PyObject *row, PyObject *fallback)
{
    PyObject *doc_id, *ion, *hash, *tx_id, *data_hash;
    long long version, tx_ms, block_seq;
    static const unsigned char FALSE_FIELD[5] = {0, 0, 0, 1, 0}, TRUE_FIELD[5] = {0, 0, 0, 1, 1};
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 9) {
        PyErr_SetString(PyExc_TypeError, "history_copy: a row is a tuple of 9");
        return ERROR;
    }
    doc_id = PyTuple_GET_ITEM(row, 1);
    ion = PyTuple_GET_ITEM(row, 3);
    hash = PyTuple_GET_ITEM(row, 4);
    tx_id = PyTuple_GET_ITEM(row, 6);
    data_hash = PyTuple_GET_ITEM(row, 8);
    version = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 2));
    tx_ms = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 5));
    block_seq = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 7));
    if (PyErr_Occurred()) return ERROR;
    if (version < INT32_MIN || version > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "history_copy: version out of int4 range");
        return ERROR;
    }
    if (ion != Py_None && !PyBytes_Check(ion)) {
        PyErr_SetString(PyExc_TypeError, "history_copy: document Ion must be bytes or None");
        return ERROR;
    }
    if (buf_reserve(b, 2) < 0) return ERROR;
    b->p[b->len++] = 0;
    b->p[b->len++] = COLUMN_COUNT;
    if (field_str(b, doc_id) != OK || put32(b, 4) != OK || put32(b, (uint32_t)(int32_t)version) != OK ||
        put32(b, 8) != OK || put64(b, (uint64_t)((tx_ms - PG_EPOCH_MS) * 1000)) != OK || field_ms_text(b, tx_ms) != OK ||
        field_str(b, tx_id) != OK)
        return ERROR;
    if ((ion == Py_None ? field_null(b) : field_jsonb(b, ion, fallback)) != OK) return ERROR;
    if (field_bytes_or_null(b, ion) != OK || field_bytes_or_null(b, hash) != OK ||
        field_bytes_or_null(b, data_hash) != OK)
        return ERROR;
    if (add(b, ion == Py_None && data_hash == Py_None ? TRUE_FIELD : FALSE_FIELD, 5) != OK) return ERROR;
    if (add(b, FALSE_FIELD, 5) != OK) return ERROR; /* type_lost: rows come from Ion binary only */
    return put32(b, 8) == OK ? put64(b, (uint64_t)block_seq) : ERROR;
}

static PyObject *history_copy(PyObject *self, PyObject *args)
{
    PyObject *rows, *fallback, *seq, *out = NULL, *keys = NULL;
    Buf *bufs = NULL;
    Py_ssize_t n, i, tables = 0, cap = 0;
    if (!PyArg_ParseTuple(args, "OO:history_copy", &rows, &fallback)) return NULL;
    seq = PySequence_Fast(rows, "history_copy: rows must be a sequence");
    if (seq == NULL) return NULL;
    keys = PyList_New(0);
    if (keys == NULL) goto fail;
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i), *table;
        Py_ssize_t t;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 9) {
            PyErr_SetString(PyExc_TypeError, "history_copy: a row is a tuple of 9");
            goto fail;
        }
        table = PyTuple_GET_ITEM(row, 0);
        for (t = 0; t < tables; t++) {
            PyObject *known = PyList_GET_ITEM(keys, t);
            int same = known == table ? 1 : PyObject_RichCompareBool(known, table, Py_EQ);
            if (same < 0) goto fail;
            if (same) break;
        }
        if (t == tables) {
            if (tables == cap) {
                Buf *grown = PyMem_Realloc(bufs, sizeof(Buf) * (size_t)(cap ? 2 * cap : 4));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto fail;
                }
                bufs = grown;
                cap = cap ? 2 * cap : 4;
            }
            memset(&bufs[t], 0, sizeof(Buf));
            tables++;
            if (PyList_Append(keys, table) < 0 || add(&bufs[t], COPY_HEADER, 19) != OK) goto fail;
        }
        if (copy_row(&bufs[t], row, fallback) != OK) goto fail;
    }
    out = PyDict_New();
    if (out == NULL) goto fail;
    for (i = 0; i < tables; i++) {
        PyObject *data;
        if (add(&bufs[i], "\xff\xff", 2) != OK) goto fail;
        data = PyBytes_FromStringAndSize((const char *)bufs[i].p, bufs[i].len);
        if (data == NULL || PyDict_SetItem(out, PyList_GET_ITEM(keys, i), data) < 0) {
            Py_XDECREF(data);
            goto fail;
        }
        Py_DECREF(data);
    }
    for (i = 0; i < tables; i++) PyMem_Free(bufs[i].p);
    PyMem_Free(bufs);
    Py_DECREF(keys);
    Py_DECREF(seq);
    return out;
fail:
    for (i = 0; i < tables; i++) PyMem_Free(bufs[i].p);
    PyMem_Free(bufs);
    Py_XDECREF(keys);
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"to_json", to_json, METH_O,
     "to_json(ion: bytes) -> bytes | None\n\nThe JSON text of a self-contained Ion binary value, as the PostgreSQL "
     "target's Python conversion writes it; None where this reader declines (the caller converts in Python)."},
    {"history_copy", history_copy, METH_VARARGS,
     "history_copy(rows, fallback) -> dict[str, bytes]\n\nPostgreSQL binary COPY data per table id for history "
     "rows (targets.base.HistoryRow); fallback(ion) -> str gives the JSON of a document to_json declines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_pgcopy", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pgcopy(void) { return PyModule_Create(&mod); }
