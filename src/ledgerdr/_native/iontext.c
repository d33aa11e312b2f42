/* ledgerdr._iontext: Ion 1.0 binary -> Ion text, without building Python objects per value.
 *
 * binary_to_text(data: bytes) -> bytes
 *
 * Writes every top-level user value of the binary stream (not version markers, not local symbol
 * tables) as Ion text followed by "\n", with no $ion_1_0 marker. The text is equivalent to the input
 * for the Ion data model: types, annotations, decimal and timestamp precision, timestamp offsets
 * (including the unknown offset -00:00), -0d0, -0e0, typed nulls.
 *
 * Raises ValueError (naming the byte offset) for malformed input (truncated values, lengths that do
 * not add up, bad UTF-8, reserved type codes, out-of-range timestamp fields) and for what this module
 * deliberately does not support: symbols with unknown text other than $0, local symbol tables that
 * import shared tables, and a few corner cases where Ion text cannot say what the binary says (a
 * top-level symbol value that looks like a version marker, $ion_symbol_table::null.struct). The caller
 * falls back to amazon.ion on ValueError. Never reads outside the buffer.
 *
 * Plain C99 + the CPython C API; the GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "buffer.h"
#include "civil.h"

#define MAX_DEPTH 1000
#define MAX_FRACTION_DIGITS 100000

typedef const unsigned char *cptr;

typedef struct {
    cptr p;       /* NULL: unknown text */
    Py_ssize_t n;
} Sym;

typedef struct {
    cptr base;    /* start of the input, for error offsets */
    Buf buf; /* the text written so far */
    Sym *syms;
    size_t nsyms, capsyms;
} Ctx;

typedef struct {
    int t, l;     /* type code and length nibble */
    cptr head;    /* the type descriptor byte */
    cptr body;    /* first byte of the representation */
    cptr end;     /* one past the last byte of the value */
} Hdr;

static const char *const SYSTEM_SYMBOLS[10] = {
    NULL, "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version",
    "imports", "symbols", "max_id", "$ion_shared_symbol_table",
};

#define SID_ION_SYMBOL_TABLE 3
#define SID_IMPORTS 6
#define SID_SYMBOLS 7

static const char *const NULL_NAMES[14] = {
    "null", "null.bool", "null.int", "null.int", "null.float", "null.decimal", "null.timestamp",
    "null.symbol", "null.string", "null.clob", "null.blob", "null.list", "null.sexp", "null.struct",
};

/* ---------------------------------------------------------------- errors and output buffer */

static int fail(Ctx *c, cptr at, const char *msg)
{
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "Ion binary: %s at byte offset %zd", msg, (Py_ssize_t)(at - c->base));
    return -1;
}

static inline int reserve(Ctx *c, size_t n)
{
    if (n > (size_t)PY_SSIZE_T_MAX)
        return PyErr_NoMemory(), -1;
    return buf_reserve(&c->buf, (Py_ssize_t)n);
}

static inline int put(Ctx *c, const char *s, size_t n)
{
    if (reserve(c, n) < 0)
        return -1;
    memcpy(((char *)c->buf.p) + c->buf.len, s, n);
    c->buf.len += n;
    return 0;
}

static inline int putc_(Ctx *c, char ch)
{
    if (reserve(c, 1) < 0)
        return -1;
    ((char *)c->buf.p)[c->buf.len++] = ch;
    return 0;
}

static inline int puts_(Ctx *c, const char *s) { return put(c, s, strlen(s)); }

static int put_u64(Ctx *c, uint64_t v)
{
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(c, tmp + i, (size_t)(24 - i));
}

/* fixed-width, zero-padded decimal (for timestamp fields) */
static int put_padded(Ctx *c, unsigned v, int width)
{
    char tmp[12];
    for (int i = width - 1; i >= 0; i--) {
        tmp[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return put(c, tmp, (size_t)width);
}

/* ---------------------------------------------------------------- primitive readers */

static int rd_varuint(Ctx *c, cptr *pp, cptr end, uint64_t *out)
{
    cptr p = *pp;
    uint64_t r = 0;
    for (;;) {
        if (p >= end)
            return fail(c, p, "truncated VarUInt");
        if (r > (UINT64_C(0x7FFFFFFFFFFFFFFF) >> 7))
            return fail(c, p, "VarUInt too large");
        unsigned b = *p++;
        r = (r << 7) | (b & 0x7F);
        if (b & 0x80)
            break;
    }
    *pp = p;
    *out = r;
    return 0;
}

/* VarInt: magnitude in *mag, sign in *neg (a negative zero gives mag 0, neg 1) */
static int rd_varint(Ctx *c, cptr *pp, cptr end, uint64_t *mag, int *neg)
{
    cptr p = *pp;
    if (p >= end)
        return fail(c, p, "truncated VarInt");
    unsigned b = *p++;
    *neg = (b & 0x40) != 0;
    uint64_t r = b & 0x3F;
    while (!(b & 0x80)) {
        if (p >= end)
            return fail(c, p, "truncated VarInt");
        if (r > (UINT64_C(0x7FFFFFFFFFFFFFFF) >> 7))
            return fail(c, p, "VarInt too large");
        b = *p++;
        r = (r << 7) | (b & 0x7F);
    }
    *pp = p;
    *mag = r;
    return 0;
}

/* Big-endian unsigned magnitude of n bytes (first byte masked with `mask`) -> decimal digits. */
static int put_magnitude(Ctx *c, cptr p, size_t n, unsigned mask)
{
    unsigned first = n ? (p[0] & mask) : 0;
    /* skip leading zero bytes */
    if (n && first == 0) {
        p++;
        n--;
        while (n && p[0] == 0) {
            p++;
            n--;
        }
        mask = 0xFF;
        first = n ? p[0] : 0;
    }
    if (n <= 8) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = (v << 8) | (i == 0 ? first : p[i]);
        return put_u64(c, v);
    }
    unsigned char *tmp = PyMem_Malloc(n);
    if (!tmp) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(tmp, p, n);
    tmp[0] = (unsigned char)first;
    PyObject *lng = _PyLong_FromByteArray(tmp, n, 0, 0);
    PyMem_Free(tmp);
    if (!lng)
        return -1;
    PyObject *s = PyObject_Str(lng);
    Py_DECREF(lng);
    if (!s)
        return -1;
    Py_ssize_t sl;
    const char *u = PyUnicode_AsUTF8AndSize(s, &sl);
    int r = u ? put(c, u, (size_t)sl) : -1;
    Py_DECREF(s);
    return r;
}

static int bytes_all_zero(cptr p, size_t n, unsigned mask)
{
    if (n == 0)
        return 1;
    if (p[0] & mask)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int rd_header(Ctx *c, cptr *pp, cptr end, Hdr *h)
{
    cptr p = *pp;
    if (p >= end)
        return fail(c, p, "truncated value");
    h->head = p;
    unsigned td = *p++;
    int t = (int)(td >> 4), l = (int)(td & 0x0F);
    uint64_t len;
    if (t == 15)
        return fail(c, h->head, "reserved type code 15");
    if (l == 15) {
        if (t == 14)
            return fail(c, h->head, "invalid annotation wrapper length");
        len = 0;
    } else if (t == 1) {
        if (l > 1)
            return fail(c, h->head, "invalid bool length");
        len = 0;
    } else if (l == 14 || (t == 13 && l == 1)) {
        if (rd_varuint(c, &p, end, &len) < 0)
            return -1;
    } else {
        len = (uint64_t)l;
    }
    if (t == 14 && l == 0)
        return fail(c, h->head, "misplaced version marker or invalid annotation wrapper");
    if (len > (uint64_t)(end - p))
        return fail(c, h->head, "value length exceeds its container");
    h->t = t;
    h->l = l;
    h->body = p;
    h->end = p + len;
    *pp = h->end;
    return 0;
}

static inline int is_nop(const Hdr *h) { return h->t == 0 && h->l != 15; }

/* ---------------------------------------------------------------- symbols */

static void reset_symbols(Ctx *c)
{
    for (int i = 0; i < 10; i++) {
        c->syms[i].p = (cptr)SYSTEM_SYMBOLS[i];
        c->syms[i].n = SYSTEM_SYMBOLS[i] ? (Py_ssize_t)strlen(SYSTEM_SYMBOLS[i]) : 0;
    }
    c->nsyms = 10;
}

static int add_symbol(Ctx *c, cptr p, Py_ssize_t n)
{
    if (c->nsyms == c->capsyms) {
        size_t cap = c->capsyms * 2;
        Sym *ns = PyMem_Realloc(c->syms, cap * sizeof(Sym));
        if (!ns) {
            PyErr_NoMemory();
            return -1;
        }
        c->syms = ns;
        c->capsyms = cap;
    }
    c->syms[c->nsyms].p = p;
    c->syms[c->nsyms].n = n;
    c->nsyms++;
    return 0;
}

static int is_identifier(cptr p, size_t n)
{
    if (n == 0)
        return 0;
    unsigned ch = p[0];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '$'))
        return 0;
    int all_digits_after = 1;
    for (size_t i = 1; i < n; i++) {
        ch = p[i];
        if (ch >= '0' && ch <= '9')
            continue;
        all_digits_after = 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '$'))
            return 0;
    }
    if (p[0] == '$' && n > 1 && all_digits_after)
        return 0;
    switch (n) {
    case 3:
        return memcmp(p, "nan", 3) != 0;
    case 4:
        return memcmp(p, "null", 4) != 0 && memcmp(p, "true", 4) != 0;
    case 5:
        return memcmp(p, "false", 5) != 0;
    }
    return 1;
}

/* text like $ion_1_0: Ion text reads it, even quoted, as a version marker at top level */
static int looks_like_ivm(cptr p, size_t n)
{
    if (n < 8 || memcmp(p, "$ion_", 5) != 0)
        return 0;
    size_t i = 5, d = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        d++;
    }
    if (!d || i >= n || p[i] != '_')
        return 0;
    i++;
    d = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        d++;
    }
    return d && i == n;
}

static const char HEX[] = "0123456789ABCDEF";

/* Escaped, UTF-8-validated text between quotes (quote is '"' or '\''). */
static int put_escaped(Ctx *c, cptr p, size_t n, char quote, cptr at)
{
    if (n > (size_t)PY_SSIZE_T_MAX / 4 - 8 || reserve(c, 4 * n + 2) < 0)
        return -1;
    char *o = ((char *)c->buf.p) + c->buf.len;
    *o++ = quote;
    cptr e = p + n;
    while (p < e) {
        unsigned b = *p;
        if (b < 0x80) {
            if (b >= 0x20 && b < 0x7F && b != (unsigned)quote && b != '\\') {
                *o++ = (char)b;
            } else {
                *o++ = '\\';
                switch (b) {
                case '\n': *o++ = 'n'; break;
                case '\t': *o++ = 't'; break;
                case '\r': *o++ = 'r'; break;
                case '\\': *o++ = '\\'; break;
                case '"': *o++ = '"'; break;
                case '\'': *o++ = '\''; break;
                default:
                    *o++ = 'x';
                    *o++ = HEX[b >> 4];
                    *o++ = HEX[b & 15];
                }
            }
            p++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else {
            c->buf.len = (size_t)(o - ((char *)c->buf.p));
            return fail(c, at, "invalid UTF-8 in text");
        }
        if ((size_t)(e - p) < need + 1 || p[1] < lo || p[1] > hi) {
            c->buf.len = (size_t)(o - ((char *)c->buf.p));
            return fail(c, at, "invalid UTF-8 in text");
        }
        for (size_t k = 2; k <= need; k++) {
            if ((p[k] & 0xC0) != 0x80) {
                c->buf.len = (size_t)(o - ((char *)c->buf.p));
                return fail(c, at, "invalid UTF-8 in text");
            }
        }
        for (size_t k = 0; k <= need; k++)
            *o++ = (char)p[k];
        p += need + 1;
    }
    *o++ = quote;
    c->buf.len = (size_t)(o - ((char *)c->buf.p));
    return 0;
}

static int put_symbol_text(Ctx *c, cptr p, size_t n, cptr at)
{
    if (is_identifier(p, n))
        return put(c, (const char *)p, n);
    return put_escaped(c, p, n, '\'', at);
}

static int lookup(Ctx *c, uint64_t sid, cptr at, const Sym **s)
{
    if (sid >= c->nsyms || c->syms[sid].p == NULL)
        return fail(c, at, "symbol with unknown text");
    *s = &c->syms[sid];
    return 0;
}

static int put_sid(Ctx *c, uint64_t sid, cptr at)
{
    if (sid == 0)
        return put(c, "$0", 2);
    const Sym *s;
    if (lookup(c, sid, at, &s) < 0)
        return -1;
    return put_symbol_text(c, s->p, (size_t)s->n, at);
}

/* ---------------------------------------------------------------- scalars */

static int write_float(Ctx *c, const Hdr *h)
{
    double v;
    size_t n = (size_t)(h->end - h->body);
    cptr p = h->body;
    if (n == 0) {
        return put(c, "0e0", 3);
    } else if (n == 4) {
        uint32_t u = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        float f;
        memcpy(&f, &u, 4);
        v = (double)f;
    } else if (n == 8) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = (u << 8) | p[i];
        memcpy(&v, &u, 8);
    } else {
        return fail(c, h->head, "invalid float length");
    }
    if (isnan(v))
        return put(c, "nan", 3);
    if (isinf(v))
        return v > 0 ? put(c, "+inf", 4) : put(c, "-inf", 4);
    char *s = PyOS_double_to_string(v, 'r', 0, 0, NULL);
    if (!s)
        return -1;
    size_t sl = strlen(s);
    int r = put(c, s, sl);
    if (r == 0 && !memchr(s, 'e', sl) && !memchr(s, 'E', sl))
        r = put(c, "e0", 2);
    PyMem_Free(s);
    return r;
}

static int write_decimal(Ctx *c, const Hdr *h)
{
    if (h->body == h->end)
        return put(c, "0d0", 3);
    cptr p = h->body;
    uint64_t emag;
    int eneg;
    if (rd_varint(c, &p, h->end, &emag, &eneg) < 0)
        return -1;
    size_t n = (size_t)(h->end - p);
    if (n && (p[0] & 0x80) && putc_(c, '-') < 0)
        return -1;
    if (put_magnitude(c, p, n, 0x7F) < 0 || putc_(c, 'd') < 0)
        return -1;
    if (eneg && emag && putc_(c, '-') < 0)
        return -1;
    return put_u64(c, emag);
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int write_timestamp(Ctx *c, const Hdr *h)
{
    cptr p = h->body, e = h->end;
    uint64_t omag, year, month = 1, day = 1, hour = 0, minute = 0, second = 0;
    int oneg, prec; /* 0 year, 1 month, 2 day, 3 minute, 4 second */
    if (rd_varint(c, &p, e, &omag, &oneg) < 0 || rd_varuint(c, &p, e, &year) < 0)
        return -1;
    prec = 0;
    if (p < e) {
        if (rd_varuint(c, &p, e, &month) < 0)
            return -1;
        prec = 1;
    }
    if (p < e) {
        if (rd_varuint(c, &p, e, &day) < 0)
            return -1;
        prec = 2;
    }
    if (p < e) {
        if (rd_varuint(c, &p, e, &hour) < 0 || rd_varuint(c, &p, e, &minute) < 0)
            return -1;
        prec = 3;
    }
    if (p < e) {
        if (rd_varuint(c, &p, e, &second) < 0)
            return -1;
        prec = 4;
    }
    int has_frac = 0, fneg = 0;
    uint64_t fexp = 0;
    cptr coef = NULL;
    size_t ncoef = 0;
    if (p < e) {
        if (rd_varint(c, &p, e, &fexp, &fneg) < 0)
            return -1;
        has_frac = 1;
        coef = p;
        ncoef = (size_t)(e - p);
    }
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
        day > (uint64_t)days_in_month((int64_t)year, (int)month) || hour > 23 || minute > 59 || second > 59)
        return fail(c, h->head, "timestamp field out of range");
    int known = !(oneg && omag == 0);
    if (omag >= 24 * 60)
        return fail(c, h->head, "timestamp offset out of range");
    int64_t off = oneg ? -(int64_t)omag : (int64_t)omag;
    int64_t y = (int64_t)year;
    int mo = (int)month, d = (int)day, hh = (int)hour, mi = (int)minute;
    if (prec >= 3 && known && off != 0) {
        int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 1440 + hh * 60 + mi + off;
        int64_t days = t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
        int64_t mins = t - days * 1440;
        unsigned umo, ud;
        civil_from_days(days, &y, &umo, &ud);
        mo = (int)umo;
        d = (int)ud;
        hh = (int)(mins / 60);
        mi = (int)(mins % 60);
        if (y < 1 || y > 9999)
            return fail(c, h->head, "timestamp out of range after applying its offset");
    }
    if (put_padded(c, (unsigned)y, 4) < 0)
        return -1;
    if (prec == 0)
        return putc_(c, 'T');
    if (putc_(c, '-') < 0 || put_padded(c, (unsigned)mo, 2) < 0)
        return -1;
    if (prec == 1)
        return putc_(c, 'T');
    if (putc_(c, '-') < 0 || put_padded(c, (unsigned)d, 2) < 0)
        return -1;
    if (prec == 2)
        return 0;
    if (putc_(c, 'T') < 0 || put_padded(c, (unsigned)hh, 2) < 0 || putc_(c, ':') < 0 ||
        put_padded(c, (unsigned)mi, 2) < 0)
        return -1;
    if (prec >= 4) {
        if (putc_(c, ':') < 0 || put_padded(c, (unsigned)second, 2) < 0)
            return -1;
        if (has_frac) {
            int coef_neg = ncoef && (coef[0] & 0x80);
            int zero = bytes_all_zero(coef, ncoef, 0x7F);
            if (coef_neg)
                return fail(c, h->head, "negative timestamp fraction");
            if (fneg && fexp > 0) {
                if (fexp > MAX_FRACTION_DIGITS)
                    return fail(c, h->head, "timestamp fraction too precise");
                size_t k = (size_t)fexp;
                if (putc_(c, '.') < 0)
                    return -1;
                size_t start = c->buf.len;
                if (put_magnitude(c, coef, ncoef, 0x7F) < 0)
                    return -1;
                size_t nd = c->buf.len - start;
                if (nd > k)
                    return fail(c, h->head, "timestamp fraction not below one second");
                if (nd < k) {
                    if (reserve(c, k - nd) < 0)
                        return -1;
                    memmove(((char *)c->buf.p) + start + (k - nd), ((char *)c->buf.p) + start, nd);
                    memset(((char *)c->buf.p) + start, '0', k - nd);
                    c->buf.len += k - nd;
                }
            } else if (!zero) {
                return fail(c, h->head, "timestamp fraction not below one second");
            }
            /* a zero fraction with exponent >= 0 is ignored (Ion 1.0 binary spec) */
        }
    }
    if (!known)
        return put(c, "-00:00", 6);
    if (off == 0)
        return putc_(c, 'Z');
    int64_t a = off < 0 ? -off : off;
    if (putc_(c, off < 0 ? '-' : '+') < 0 || put_padded(c, (unsigned)(a / 60), 2) < 0 || putc_(c, ':') < 0)
        return -1;
    return put_padded(c, (unsigned)(a % 60), 2);
}

static int rd_uint_sid(Ctx *c, const Hdr *h, uint64_t *sid)
{
    size_t n = (size_t)(h->end - h->body);
    cptr p = h->body;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (v >> 55)
            return fail(c, h->head, "symbol ID too large");
        v = (v << 8) | p[i];
    }
    *sid = v;
    return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int write_blob(Ctx *c, cptr p, size_t n)
{
    if (n > (size_t)PY_SSIZE_T_MAX / 2 || reserve(c, (n + 2) / 3 * 4 + 4) < 0)
        return -1;
    char *o = ((char *)c->buf.p) + c->buf.len;
    *o++ = '{';
    *o++ = '{';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = ((unsigned)p[i] << 16) | ((unsigned)p[i + 1] << 8) | p[i + 2];
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        unsigned v = ((unsigned)p[i] << 16) | ((unsigned)p[i + 1] << 8);
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    c->buf.len = (size_t)(o - ((char *)c->buf.p));
    return put(c, "}}", 2);
}

static int write_clob(Ctx *c, cptr p, size_t n)
{
    if (n > (size_t)PY_SSIZE_T_MAX / 4 - 8 || reserve(c, 4 * n + 6) < 0)
        return -1;
    char *o = ((char *)c->buf.p) + c->buf.len;
    *o++ = '{';
    *o++ = '{';
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned b = p[i];
        if (b >= 0x20 && b < 0x7F && b != '"' && b != '\\') {
            *o++ = (char)b;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = HEX[b >> 4];
            *o++ = HEX[b & 15];
        }
    }
    *o++ = '"';
    *o++ = '}';
    *o++ = '}';
    c->buf.len = (size_t)(o - ((char *)c->buf.p));
    return 0;
}

/* ---------------------------------------------------------------- values */

static int write_value(Ctx *c, const Hdr *h, int depth, int top);

static int write_sequence(Ctx *c, const Hdr *h, int depth, char open, char sep, char close)
{
    if (putc_(c, open) < 0)
        return -1;
    cptr p = h->body;
    int first = 1;
    while (p < h->end) {
        Hdr v;
        if (rd_header(c, &p, h->end, &v) < 0)
            return -1;
        if (is_nop(&v))
            continue;
        if (!first && putc_(c, sep) < 0)
            return -1;
        first = 0;
        if (write_value(c, &v, depth + 1, 0) < 0)
            return -1;
    }
    return putc_(c, close);
}

static int write_struct(Ctx *c, const Hdr *h, int depth)
{
    if (h->l == 1 && h->body == h->end)
        return fail(c, h->head, "empty sorted struct");
    if (putc_(c, '{') < 0)
        return -1;
    cptr p = h->body;
    int first = 1;
    while (p < h->end) {
        uint64_t sid;
        cptr at = p;
        Hdr v;
        if (rd_varuint(c, &p, h->end, &sid) < 0 || rd_header(c, &p, h->end, &v) < 0)
            return -1;
        if (is_nop(&v))
            continue;
        if (!first && putc_(c, ',') < 0)
            return -1;
        first = 0;
        if (put_sid(c, sid, at) < 0 || putc_(c, ':') < 0 || write_value(c, &v, depth + 1, 0) < 0)
            return -1;
    }
    return putc_(c, '}');
}

/* Parses an annotation wrapper: the annotation SIDs span [*a, *ae), the wrapped value goes in *v. */
static int rd_annotations(Ctx *c, const Hdr *h, cptr *a, cptr *ae, Hdr *v)
{
    cptr p = h->body;
    uint64_t alen;
    if (rd_varuint(c, &p, h->end, &alen) < 0)
        return -1;
    if (alen == 0 || alen > (uint64_t)(h->end - p))
        return fail(c, h->head, "invalid annotations length");
    *a = p;
    *ae = p + alen;
    p += alen;
    if (rd_header(c, &p, h->end, v) < 0)
        return -1;
    if (v->end != h->end)
        return fail(c, h->head, "annotation wrapper length does not match its value");
    if (v->t == 14 || is_nop(v))
        return fail(c, v->head, "invalid value in annotation wrapper");
    return 0;
}

static int write_value(Ctx *c, const Hdr *h, int depth, int top)
{
    if (depth > MAX_DEPTH)
        return fail(c, h->head, "nesting too deep");
    int t = h->t;
    if (h->l == 15 && t != 14)
        return puts_(c, NULL_NAMES[t]);
    size_t n = (size_t)(h->end - h->body);
    switch (t) {
    case 1:
        return h->l ? put(c, "true", 4) : put(c, "false", 5);
    case 2:
        return put_magnitude(c, h->body, n, 0xFF);
    case 3:
        if (bytes_all_zero(h->body, n, 0xFF))
            return fail(c, h->head, "negative zero int");
        if (putc_(c, '-') < 0)
            return -1;
        return put_magnitude(c, h->body, n, 0xFF);
    case 4:
        return write_float(c, h);
    case 5:
        return write_decimal(c, h);
    case 6:
        return write_timestamp(c, h);
    case 7: {
        uint64_t sid;
        if (rd_uint_sid(c, h, &sid) < 0)
            return -1;
        if (top && sid != 0) {
            const Sym *s;
            if (lookup(c, sid, h->head, &s) < 0)
                return -1;
            if (looks_like_ivm(s->p, (size_t)s->n))
                return fail(c, h->head, "top-level symbol value reads as a version marker in text");
        }
        return put_sid(c, sid, h->head);
    }
    case 8:
        return put_escaped(c, h->body, n, '"', h->head);
    case 9:
        return write_clob(c, h->body, n);
    case 10:
        return write_blob(c, h->body, n);
    case 11:
        return write_sequence(c, h, depth, '[', ',', ']');
    case 12:
        return write_sequence(c, h, depth, '(', ' ', ')');
    case 13:
        return write_struct(c, h, depth);
    case 14: {
        cptr a, ae;
        Hdr v;
        if (rd_annotations(c, h, &a, &ae, &v) < 0)
            return -1;
        while (a < ae) {
            uint64_t sid;
            cptr at = a;
            if (rd_varuint(c, &a, ae, &sid) < 0 || put_sid(c, sid, at) < 0 || put(c, "::", 2) < 0)
                return -1;
        }
        return write_value(c, &v, depth, 0);
    }
    default:
        return fail(c, h->head, "invalid type code");
    }
}

/* ---------------------------------------------------------------- local symbol tables */

/* The struct `st` of a top-level $ion_symbol_table::{...}: updates the current symbol table. */
static int load_symbol_table(Ctx *c, const Hdr *st)
{
    Hdr imports = {0}, symbols = {0};
    int have_imports = 0, have_symbols = 0;
    if (st->l == 1 && st->body == st->end)
        return fail(c, st->head, "empty sorted struct");
    cptr p = st->body;
    while (p < st->end) {
        uint64_t sid;
        Hdr v;
        if (rd_varuint(c, &p, st->end, &sid) < 0 || rd_header(c, &p, st->end, &v) < 0)
            return -1;
        if (is_nop(&v))
            continue;
        if (sid == SID_IMPORTS) {
            if (have_imports++)
                return fail(c, v.head, "symbol table with repeated imports field");
            imports = v;
        } else if (sid == SID_SYMBOLS) {
            if (have_symbols++)
                return fail(c, v.head, "symbol table with repeated symbols field");
            symbols = v;
        }
    }
    int append = 0;
    if (have_imports) {
        if (imports.t == 7 && imports.l != 15) {
            uint64_t sid;
            if (rd_uint_sid(c, &imports, &sid) < 0)
                return -1;
            if (sid != SID_ION_SYMBOL_TABLE)
                return fail(c, imports.head, "unsupported symbol table imports");
            append = 1;
        } else if (imports.t == 11 && imports.l != 15) {
            cptr q = imports.body;
            while (q < imports.end) {
                Hdr e;
                if (rd_header(c, &q, imports.end, &e) < 0)
                    return -1;
                if (!is_nop(&e))
                    return fail(c, e.head, "shared symbol table imports are not supported");
            }
        } else {
            return fail(c, imports.head, "unsupported symbol table imports");
        }
    }
    if (!append)
        reset_symbols(c);
    if (have_symbols && symbols.t == 11 && symbols.l != 15) {
        cptr q = symbols.body;
        while (q < symbols.end) {
            Hdr e;
            if (rd_header(c, &q, symbols.end, &e) < 0)
                return -1;
            if (is_nop(&e))
                continue;
            if (e.t == 14) {
                cptr a, ae;
                Hdr inner;
                if (rd_annotations(c, &e, &a, &ae, &inner) < 0)
                    return -1;
                e = inner;
            }
            if (e.t == 8 && e.l != 15) {
                if (add_symbol(c, e.body, e.end - e.body) < 0)
                    return -1;
            } else if (add_symbol(c, NULL, 0) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- entry point */

static PyObject *binary_to_text(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.base = (cptr)view.buf;
    cptr p = c.base, end = c.base + view.len;
    PyObject *result = NULL;
    c.capsyms = 64;
    c.syms = PyMem_Malloc(c.capsyms * sizeof(Sym));
    if (!c.syms) {
        PyErr_NoMemory();
        goto done;
    }
    reset_symbols(&c);
    if (view.len > 0 && buf_grow(&c.buf, view.len * 2 + 64) < 0)
        goto done;
    if (p < end && (end - p < 4 || p[0] != 0xE0)) {
        fail(&c, p, "stream does not start with a version marker");
        goto done;
    }
    while (p < end) {
        if (p[0] == 0xE0) {
            if (end - p >= 4 && p[1] == 0x01 && p[2] == 0x00 && p[3] == 0xEA) {
                reset_symbols(&c);
                p += 4;
                continue;
            }
            fail(&c, p, "unsupported or truncated Ion version marker");
            goto done;
        }
        Hdr h;
        if (rd_header(&c, &p, end, &h) < 0)
            goto done;
        if (is_nop(&h))
            continue;
        if (h.t == 14) {
            cptr a, ae;
            Hdr v;
            if (rd_annotations(&c, &h, &a, &ae, &v) < 0)
                goto done;
            uint64_t first;
            if (rd_varuint(&c, &a, ae, &first) < 0)
                goto done;
            if (first == SID_ION_SYMBOL_TABLE && v.t == 13) {
                if (v.l == 15) {
                    fail(&c, h.head, "$ion_symbol_table::null.struct is not supported");
                    goto done;
                }
                if (load_symbol_table(&c, &v) < 0)
                    goto done;
                continue;
            }
        }
        if (write_value(&c, &h, 0, 1) < 0 || putc_(&c, '\n') < 0)
            goto done;
    }
    result = PyBytes_FromStringAndSize(c.buf.p ? (char *)c.buf.p : "", c.buf.len);
done:
    PyMem_Free(c.buf.p);
    PyMem_Free(c.syms);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"binary_to_text", binary_to_text, METH_O,
     "binary_to_text(data: bytes) -> bytes\n\n"
     "Convert an Ion 1.0 binary stream to equivalent Ion text, one top-level value per line, without "
     "a version marker. Raises ValueError (naming the byte offset) for malformed input and for what it "
     "does not support (shared symbol table imports, symbols with unknown text other than $0)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_iontext", NULL, -1, methods};

PyMODINIT_FUNC PyInit__iontext(void) { return PyModule_Create(&mod); }
