/* ledgerdr._httpfast: the common `ledgerdr serve` request — one complete HTTP/1.1 SendCommand POST with a
 * Content-Length body, SigV4-signed — framed and verified in C, for the threaded stack (serve/threaded.py).
 *
 * session_body(buf, max_body, keys[, now]) -> bytes | int
 *     `buf` is what a connection has received since its last answered request. The body (bytes) when `buf`
 *     is exactly one request that the Python path (httptools, then serve/sigv4.py `verify`, then the
 *     `X-Amz-Target` check of app.py) would accept as a `QLDBSession.SendCommand` call: framed, SigV4-verified
 *     in full against `keys` (key id -> secret) at `now` (epoch seconds; the clock when omitted). Otherwise
 *     NEED_MORE (0: every complete line so far is one this path takes and the request is not complete yet) or
 *     FALLBACK (1: anything else — the Python path then takes `buf` and decides, with its errors).
 *
 * parse(buf, max_body) -> tuple | int
 *     The framing alone, for the tests: (path, headers {lowercase name: [value]}, body) or NEED_MORE/FALLBACK.
 *
 * This path never rejects: it accepts only a narrow, strictly checked form (the one botocore and the bench
 * client send) and hands everything else to the Python path, which stays the reference for every rule and
 * every error (tests/test_serve_httpfast.py holds the two in agreement on random and mutated requests).
 * Taken here: request line `POST <path> HTTP/1.1` with a path of [A-Za-z0-9._~/-] (no query); header names
 * of RFC 7230 token characters, each sent once; values of printable ASCII (space allowed inside) with no
 * leading or trailing space; a Content-Length of at most FAST_MAX_BODY and `max_body`; no Transfer-Encoding,
 * Expect, Upgrade or Proxy-Connection; a Connection header, if any, `keep-alive`; nothing after the body
 * (pipelining goes to the Python path). SigV4: as sigv4.py computes it, with a request whose X-Amz-Date is
 * more than SKEW_SURE seconds off (near the 5-minute limit, or past it) left to Python's rule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "civil.h"
#include "sha256.h"

#define NEED_MORE 0
#define FALLBACK 1
#define OK 2
#define MAX_HEADERS 48
#define MAX_HEAD 16384          /* request line and headers: a longer head goes to the Python path */
#define FAST_MAX_BODY 262144    /* larger bodies go to the Python path (no re-parse of a growing buffer) */
#define SKEW_SURE 290           /* seconds: within this, surely inside sigv4.py's 5-minute window */
#define MAX_SIGNED 32

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} header_t;

typedef struct {
    const char *path;
    size_t path_len;
    header_t headers[MAX_HEADERS];
    int count;
    const char *body;
    size_t body_len;
} request_t;

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '~' || c == '/' || c == '-';
}

static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* Whether the n bytes at p are `lowercase` (n bytes long at least) ignoring case. */
static int lower_equals(const char *p, size_t n, const char *lowercase)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lowercase[i])
            return 0;
    return 1;
}

/* Whether header name `name` (as sent) is `lowercase` ignoring case. */
static int name_is(const header_t *h, const char *lowercase)
{
    return h->name_len == strlen(lowercase) && lower_equals(h->name, h->name_len, lowercase);
}

static int same_name(const header_t *a, const header_t *b)
{
    size_t i;
    if (a->name_len != b->name_len)
        return 0;
    for (i = 0; i < a->name_len; i++)
        if (lower((unsigned char)a->name[i]) != lower((unsigned char)b->name[i]))
            return 0;
    return 1;
}

static const header_t *find(const request_t *r, const char *lowercase)
{
    int i;
    for (i = 0; i < r->count; i++)
        if (name_is(&r->headers[i], lowercase))
            return &r->headers[i];
    return NULL;
}

/* The request line; returns the offset after it, 0 when more is needed, -1 to fall back. */
static Py_ssize_t request_line(const char *p, Py_ssize_t len, request_t *r)
{
    static const char method[] = "POST /";
    static const char version[] = " HTTP/1.1\r\n";
    Py_ssize_t i, start;
    for (i = 0; i < (Py_ssize_t)sizeof(method) - 1; i++) {
        if (i >= len)
            return 0;
        if (p[i] != method[i])
            return -1;
    }
    start = i - 1;
    while (i < len && is_path_char((unsigned char)p[i]))
        i++;
    if (i >= len)
        return i - start > 4096 ? -1 : 0;
    r->path = p + start;
    r->path_len = (size_t)(i - start);
    for (start = i; i - start < (Py_ssize_t)sizeof(version) - 1; i++) {
        if (i >= len)
            return 0;
        if (p[i] != version[i - start])
            return -1;
    }
    return i;
}

/* One header line at p[0:len]; returns its length with CRLF, 0 when more is needed, -1 to fall back. */
static Py_ssize_t header_line(const char *p, Py_ssize_t len, header_t *h)
{
    Py_ssize_t i = 0, value_start, value_end;
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i >= len)
        return 0;
    if (i == 0 || p[i] != ':')
        return -1;
    h->name = p;
    h->name_len = (size_t)i;
    i++;
    while (i < len && p[i] == ' ')
        i++;
    value_start = i;
    while (i < len && (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] <= 0x7e)
        i++;
    if (i >= len)
        return 0;
    if (p[i] != '\r')
        return -1;
    value_end = i;
    if (value_end == value_start || p[value_end - 1] == ' ')
        return -1; /* empty, or trailing space: how llhttp reports those is its business */
    if (i + 1 >= len)
        return 0;
    if (p[i + 1] != '\n')
        return -1;
    h->value = p + value_start;
    h->value_len = (size_t)(value_end - value_start);
    return i + 2;
}

static int value_is(const header_t *h, const char *lowercase)
{
    return h->value_len == strlen(lowercase) && lower_equals(h->value, h->value_len, lowercase);
}

/* The framing checks on a complete head; the Content-Length, or -1 to fall back. */
static Py_ssize_t check_headers(const request_t *r, Py_ssize_t max_body)
{
    const header_t *length = NULL;
    Py_ssize_t declared = 0;
    size_t k;
    int i, j;
    for (i = 0; i < r->count; i++) {
        const header_t *h = &r->headers[i];
        for (j = 0; j < i; j++)
            if (same_name(h, &r->headers[j]))
                return -1;
        if (name_is(h, "transfer-encoding") || name_is(h, "expect") || name_is(h, "upgrade") ||
            name_is(h, "proxy-connection"))
            return -1;
        if (name_is(h, "connection") && !value_is(h, "keep-alive"))
            return -1;
        if (name_is(h, "content-length"))
            length = h;
    }
    if (length == NULL || length->value_len > 7 || (length->value_len > 1 && length->value[0] == '0'))
        return -1;
    for (k = 0; k < length->value_len; k++) {
        char c = length->value[k];
        if (c < '0' || c > '9')
            return -1;
        declared = declared * 10 + (c - '0');
    }
    if (declared > max_body || declared > FAST_MAX_BODY)
        return -1;
    return declared;
}

/* Whether the head's bytes p[0:n] (a header line, complete or not) name Content-Length, its colon included. */
static int starts_content_length(const char *p, Py_ssize_t n)
{
    static const char name[] = "content-length:";
    return n >= (Py_ssize_t)sizeof name - 1 && lower_equals(p, sizeof name - 1, name);
}

static int all_digits(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* llhttp judges a Content-Length value as it arrives — a non-digit, or a second Content-Length whose value has
 * begun, is an error at once, before the head is complete — where this path judges the head once it is whole.
 * While a head is incomplete (p[at:len] the start of its next line), such a one goes to httptools, so that both
 * say the same of it as it arrives; the prefixes of a well-formed head still wait for more. */
static int judged_early(const char *p, Py_ssize_t at, Py_ssize_t len, const request_t *r)
{
    int i, seen = 0;
    Py_ssize_t k;
    for (i = 0; i < r->count; i++) {
        const header_t *h = &r->headers[i];
        if (!name_is(h, "content-length"))
            continue;
        if (seen || !all_digits(h->value, h->value_len))
            return 1;
        seen = 1;
    }
    if (!starts_content_length(p + at, len - at))
        return 0;
    for (k = at + 15; k < len && (p[k] == ' ' || p[k] == '\t'); k++)
        ;
    if (k < len && seen)
        return 1;
    for (; k < len; k++)
        if ((p[k] < '0' || p[k] > '9') && !(p[k] == '\r' && k == len - 1))
            return 1;
    return 0;
}

static int frame(const char *p, Py_ssize_t len, Py_ssize_t max_body, request_t *r)
{
    Py_ssize_t at = request_line(p, len, r), step, declared;
    if (at <= 0)
        return at == 0 ? NEED_MORE : FALLBACK;
    r->count = 0;
    for (;;) {
        if (at >= MAX_HEAD)
            return FALLBACK;
        if (at + 1 >= len) {
            if (at < len && p[at] != '\r' && !is_tchar((unsigned char)p[at]))
                return FALLBACK;
            return judged_early(p, at, len, r) ? FALLBACK : NEED_MORE;
        }
        if (p[at] == '\r') {
            if (p[at + 1] != '\n')
                return FALLBACK;
            at += 2;
            break;
        }
        if (r->count == MAX_HEADERS)
            return FALLBACK;
        step = header_line(p + at, len - at, &r->headers[r->count]);
        if (step < 0)
            return FALLBACK;
        if (step == 0)
            return (len - at > MAX_HEAD || judged_early(p, at, len, r)) ? FALLBACK : NEED_MORE;
        r->count++;
        at += step;
    }
    declared = check_headers(r, max_body);
    if (declared < 0)
        return FALLBACK;
    if (len - at < declared)
        return NEED_MORE;
    if (len - at > declared)
        return FALLBACK; /* pipelined: the Python path frames them */
    r->body = p + at;
    r->body_len = (size_t)declared;
    return OK;
}

/* ------------------------------------------------------------------------------------------- SigV4 */

typedef struct {
    const char *p;
    size_t n;
} span_t;

static int span_eq(span_t a, const char *s) { return a.n == strlen(s) && memcmp(a.p, s, a.n) == 0; }

/* `prefix` then spaces (at least `min_spaces`); advances *at. */
static int expect(const char *p, size_t len, size_t *at, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len - *at < n || memcmp(p + *at, prefix, n) != 0)
        return 0;
    *at += n;
    return 1;
}

static void skip_spaces(const char *p, size_t len, size_t *at)
{
    while (*at < len && p[*at] == ' ')
        (*at)++;
}

/* A run of characters other than ',' and space, at least one. */
static int field(const char *p, size_t len, size_t *at, span_t *out)
{
    size_t start = *at;
    while (*at < len && p[*at] != ',' && p[*at] != ' ')
        (*at)++;
    out->p = p + start;
    out->n = *at - start;
    return out->n > 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* sigv4.py's _AUTH pattern, for values of printable ASCII (where \s is the space). */
static int authorization(const header_t *h, span_t *credential, span_t *signed_names, span_t *signature)
{
    const char *p = h->value;
    size_t len = h->value_len, at = 0, start, k;
    if (!expect(p, len, &at, "AWS4-HMAC-SHA256") || at >= len || p[at] != ' ')
        return 0;
    skip_spaces(p, len, &at);
    if (!expect(p, len, &at, "Credential=") || !field(p, len, &at, credential) || !expect(p, len, &at, ","))
        return 0;
    skip_spaces(p, len, &at);
    if (!expect(p, len, &at, "SignedHeaders=") || !field(p, len, &at, signed_names) || !expect(p, len, &at, ","))
        return 0;
    skip_spaces(p, len, &at);
    if (!expect(p, len, &at, "Signature="))
        return 0;
    start = at;
    for (k = 0; k < 64; k++, at++)
        if (at >= len || hex_value(p[at]) < 0)
            return 0;
    signature->p = p + start;
    signature->n = 64;
    skip_spaces(p, len, &at);
    return at == len;
}

static int digits(const char *p, int n, int *out)
{
    int i, v = 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* `YYYYMMDDTHHMMSSZ` as epoch seconds, when Python's datetime takes it too. */
static int amz_date(const header_t *h, int64_t *epoch)
{
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = h->value;
    int year, month, day, hour, minute, second, leap;
    if (h->value_len != 16 || p[8] != 'T' || p[15] != 'Z')
        return 0;
    if (!digits(p, 4, &year) || !digits(p + 4, 2, &month) || !digits(p + 6, 2, &day) || !digits(p + 9, 2, &hour) ||
        !digits(p + 11, 2, &minute) || !digits(p + 13, 2, &second))
        return 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month - 1] || hour > 23 ||
        minute > 59 || second > 59)
        return 0;
    leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return 0;
    *epoch = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hour * 3600 + minute * 60 + second;
    return 1;
}

/* The derived key's HMAC pads as SHA-256 states, per key id, secret, date, region and service: a client's
 * requests all day share one. Guarded by the GIL (this module never releases it). */
#define CACHE_SLOTS 16
#define CACHE_TEXT 512

typedef struct {
    int used;
    size_t text_len;
    char text[CACHE_TEXT]; /* secret \0 date \0 region \0 service */
    ldr_sha256_ctx inner, outer;
} pads_t;

static pads_t cache[CACHE_SLOTS];
static int cache_next;

static void hmac(const unsigned char *key, size_t key_len, const unsigned char *msg, size_t msg_len,
                 unsigned char out[32])
{
    unsigned char block[64], inner[32];
    ldr_sha256_ctx ctx;
    size_t i;
    memset(block, 0, sizeof(block));
    if (key_len > 64)
        ldr_sha256(key, key_len, block);
    else
        memcpy(block, key, key_len);
    for (i = 0; i < 64; i++)
        block[i] ^= 0x36;
    ldr_sha256_init(&ctx);
    ldr_sha256_update(&ctx, block, 64);
    ldr_sha256_update(&ctx, msg, msg_len);
    ldr_sha256_final(&ctx, inner);
    for (i = 0; i < 64; i++)
        block[i] ^= 0x36 ^ 0x5c;
    ldr_sha256_init(&ctx);
    ldr_sha256_update(&ctx, block, 64);
    ldr_sha256_update(&ctx, inner, 32);
    ldr_sha256_final(&ctx, out);
}

static const pads_t *signing_pads(const char *secret, size_t secret_len, span_t date, span_t region, span_t service)
{
    char text[CACHE_TEXT];
    unsigned char key[64], block[64];
    size_t len = secret_len + date.n + region.n + service.n + 3, i;
    pads_t *slot;
    int s;
    if (len > CACHE_TEXT)
        return NULL;
    memcpy(text, secret, secret_len);
    text[secret_len] = 0;
    memcpy(text + secret_len + 1, date.p, date.n);
    text[secret_len + 1 + date.n] = 0;
    memcpy(text + secret_len + 2 + date.n, region.p, region.n);
    text[secret_len + 2 + date.n + region.n] = 0;
    memcpy(text + secret_len + 3 + date.n + region.n, service.p, service.n);
    for (s = 0; s < CACHE_SLOTS; s++)
        if (cache[s].used && cache[s].text_len == len && memcmp(cache[s].text, text, len) == 0)
            return &cache[s];
    {
        /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
        unsigned char first[CACHE_TEXT + 4];
        memcpy(first, "AWS4", 4);
        memcpy(first + 4, secret, secret_len);
        hmac(first, secret_len + 4, (const unsigned char *)date.p, date.n, key);
        hmac(key, 32, (const unsigned char *)region.p, region.n, key);
        hmac(key, 32, (const unsigned char *)service.p, service.n, key);
        hmac(key, 32, (const unsigned char *)"aws4_request", 12, key);
    }
    slot = &cache[cache_next];
    cache_next = (cache_next + 1) % CACHE_SLOTS;
    slot->used = 1;
    slot->text_len = len;
    memcpy(slot->text, text, len);
    memset(block, 0, sizeof(block));
    memcpy(block, key, 32);
    for (i = 0; i < 64; i++)
        block[i] ^= 0x36;
    ldr_sha256_init(&slot->inner);
    ldr_sha256_update(&slot->inner, block, 64);
    for (i = 0; i < 64; i++)
        block[i] ^= 0x36 ^ 0x5c;
    ldr_sha256_init(&slot->outer);
    ldr_sha256_update(&slot->outer, block, 64);
    return slot;
}

static void update(ldr_sha256_ctx *ctx, const char *p, size_t n) { ldr_sha256_update(ctx, (const unsigned char *)p, n); }

static void to_hex(const unsigned char *digest, char *out)
{
    static const char hexdigits[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 32; i++) {
        out[2 * i] = hexdigits[digest[i] >> 4];
        out[2 * i + 1] = hexdigits[digest[i] & 15];
    }
}

/* sigv4.py's _canonical_path for a path of [A-Za-z0-9._~/-] (which quote(safe="/~") leaves as it is); 0 when
 * it has more than MAX_SEGMENTS segments (left to Python). */
#define MAX_SEGMENTS 64
static int canonical_path(ldr_sha256_ctx *ctx, const char *path, size_t len)
{
    span_t parts[MAX_SEGMENTS];
    size_t count = 0, at = 0, i;
    while (at <= len) {
        size_t start = at;
        while (at < len && path[at] != '/')
            at++;
        span_t part = {path + start, at - start};
        if (part.n == 2 && part.p[0] == '.' && part.p[1] == '.') {
            if (count)
                count--;
        } else if (part.n && !(part.n == 1 && part.p[0] == '.')) {
            if (count == MAX_SEGMENTS)
                return 0;
            parts[count++] = part;
        }
        at++;
    }
    update(ctx, "/", 1);
    for (i = 0; i < count; i++) {
        if (i)
            update(ctx, "/", 1);
        update(ctx, parts[i].p, parts[i].n);
    }
    if (count && path[len - 1] == '/')
        update(ctx, "/", 1);
    return 1;
}

/* The header's value folded as " ".join(value.split()) (values here hold no whitespace but the space). */
static void folded(ldr_sha256_ctx *ctx, const header_t *h)
{
    size_t i = 0, start;
    int first = 1;
    while (i < h->value_len) {
        while (i < h->value_len && h->value[i] == ' ')
            i++;
        if (i >= h->value_len)
            break;
        start = i;
        while (i < h->value_len && h->value[i] != ' ')
            i++;
        if (!first)
            update(ctx, " ", 1);
        update(ctx, h->value + start, i - start);
        first = 0;
    }
}

/* The header named exactly `name` once lowercased (SignedHeaders names must already be lowercase). */
static const header_t *signed_header(const request_t *r, span_t name)
{
    int i;
    size_t k;
    for (i = 0; i < r->count; i++) {
        const header_t *h = &r->headers[i];
        if (h->name_len != name.n)
            continue;
        for (k = 0; k < name.n; k++)
            if (lower((unsigned char)h->name[k]) != (unsigned char)name.p[k])
                break;
        if (k == name.n)
            return h;
    }
    return NULL;
}

/* 1 when sigv4.py's `verify` accepts `r` at `now`; 0 when it would not or might not (Python then decides). */
static int verified(const request_t *r, PyObject *keys, double now)
{
    const header_t *auth = find(r, "authorization"), *date_header = find(r, "x-amz-date"), *target;
    span_t credential, names, signature, scope[5], name, signed_list[MAX_SIGNED];
    const char *secret;
    Py_ssize_t secret_len;
    PyObject *key_id, *value;
    const pads_t *pads;
    ldr_sha256_ctx ctx;
    unsigned char digest[32];
    char hex[64];
    int64_t signed_at;
    size_t at, start, i;
    int parts = 0, count = 0, has_host = 0;
    unsigned diff = 0;

    target = find(r, "x-amz-target");
    if (target == NULL || target->value_len != 23 || memcmp(target->value, "QLDBSession.SendCommand", 23) != 0)
        return 0;
    if (auth == NULL || date_header == NULL || !authorization(auth, &credential, &names, &signature))
        return 0;
    for (at = 0, start = 0; at <= credential.n; at++) {
        if (at == credential.n || credential.p[at] == '/') {
            if (parts == 5)
                return 0;
            scope[parts].p = credential.p + start;
            scope[parts].n = at - start;
            if (scope[parts].n == 0)
                return 0;
            parts++;
            start = at + 1;
        }
    }
    if (parts != 5 || !span_eq(scope[4], "aws4_request"))
        return 0;
    if (!amz_date(date_header, &signed_at) || date_header->value_len < scope[1].n ||
        memcmp(date_header->value, scope[1].p, scope[1].n) != 0)
        return 0;
    if ((double)signed_at - now > SKEW_SURE || now - (double)signed_at > SKEW_SURE)
        return 0;
    for (at = 0, start = 0; at <= names.n; at++) {
        if (at == names.n || names.p[at] == ';') {
            name.p = names.p + start;
            name.n = at - start;
            if (count == MAX_SIGNED || name.n == 0 || signed_header(r, name) == NULL)
                return 0;
            has_host |= span_eq(name, "host");
            signed_list[count++] = name;
            start = at + 1;
        }
    }
    if (!has_host || !PyDict_Check(keys))
        return 0;
    key_id = PyUnicode_DecodeLatin1(scope[0].p, (Py_ssize_t)scope[0].n, NULL);
    if (key_id == NULL)
        return -1;
    value = PyDict_GetItemWithError(keys, key_id);
    Py_DECREF(key_id);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_Check(value))
        return 0;
    secret = PyUnicode_AsUTF8AndSize(value, &secret_len);
    if (secret == NULL) { /* not encodable: Python's path answers that */
        PyErr_Clear();
        return 0;
    }
    pads = signing_pads(secret, (size_t)secret_len, scope[1], scope[2], scope[3]);
    if (pads == NULL)
        return 0;

    /* the canonical request's hash */
    ldr_sha256_init(&ctx);
    update(&ctx, "POST\n", 5);
    if (!canonical_path(&ctx, r->path, r->path_len))
        return 0;
    update(&ctx, "\n\n", 2); /* no query on this path */
    for (i = 0; i < (size_t)count; i++) {
        update(&ctx, signed_list[i].p, signed_list[i].n);
        update(&ctx, ":", 1);
        folded(&ctx, signed_header(r, signed_list[i]));
        update(&ctx, "\n", 1);
    }
    update(&ctx, "\n", 1);
    update(&ctx, names.p, names.n);
    update(&ctx, "\n", 1);
    ldr_sha256((const unsigned char *)r->body, r->body_len, digest);
    to_hex(digest, hex);
    update(&ctx, hex, 64);
    ldr_sha256_final(&ctx, digest);
    to_hex(digest, hex);

    /* the string to sign, through the cached pads */
    ctx = pads->inner;
    update(&ctx, "AWS4-HMAC-SHA256\n", 17);
    update(&ctx, date_header->value, date_header->value_len);
    update(&ctx, "\n", 1);
    update(&ctx, credential.p + scope[0].n + 1, credential.n - scope[0].n - 1);
    update(&ctx, "\n", 1);
    update(&ctx, hex, 64);
    ldr_sha256_final(&ctx, digest);
    ctx = pads->outer;
    ldr_sha256_update(&ctx, digest, 32);
    ldr_sha256_final(&ctx, digest);
    to_hex(digest, hex);
    for (i = 0; i < 64; i++) /* constant time: every character compared */
        diff |= (unsigned)(unsigned char)hex[i] ^ (unsigned)lower((unsigned char)signature.p[i]);
    return diff == 0;
}

/* ------------------------------------------------------------------------------------------- Python */

static double clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static PyObject *session_body(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t max_body;
    PyObject *keys, *now_obj = Py_None, *result;
    request_t r;
    double now;
    int status, ok;
    if (!PyArg_ParseTuple(args, "y*nO|O", &buf, &max_body, &keys, &now_obj))
        return NULL;
    status = frame((const char *)buf.buf, buf.len, max_body, &r);
    if (status != OK) {
        PyBuffer_Release(&buf);
        return PyLong_FromLong(status);
    }
    if (now_obj == Py_None) {
        now = clock_now();
    } else {
        now = PyFloat_AsDouble(now_obj);
        if (now == -1.0 && PyErr_Occurred()) {
            PyBuffer_Release(&buf);
            return NULL;
        }
    }
    ok = verified(&r, keys, now);
    if (ok < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    result = ok ? PyBytes_FromStringAndSize(r.body, (Py_ssize_t)r.body_len) : PyLong_FromLong(FALLBACK);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *parse(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t max_body;
    PyObject *headers = NULL, *result = NULL;
    request_t r;
    int status, i;
    size_t k;
    if (!PyArg_ParseTuple(args, "y*n", &buf, &max_body))
        return NULL;
    status = frame((const char *)buf.buf, buf.len, max_body, &r);
    if (status != OK) {
        PyBuffer_Release(&buf);
        return PyLong_FromLong(status);
    }
    headers = PyDict_New();
    if (headers == NULL)
        goto done;
    for (i = 0; i < r.count; i++) {
        char name[MAX_HEAD];
        PyObject *key, *values;
        for (k = 0; k < r.headers[i].name_len; k++)
            name[k] = (char)lower((unsigned char)r.headers[i].name[k]);
        key = PyUnicode_DecodeLatin1(name, (Py_ssize_t)r.headers[i].name_len, NULL);
        values = Py_BuildValue("[N]", PyUnicode_DecodeLatin1(r.headers[i].value, (Py_ssize_t)r.headers[i].value_len,
                                                             NULL));
        if (key == NULL || values == NULL || PyDict_SetItem(headers, key, values) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(values);
            goto done;
        }
        Py_DECREF(key);
        Py_DECREF(values);
    }
    result = Py_BuildValue("(NOy#)", PyUnicode_DecodeLatin1(r.path, (Py_ssize_t)r.path_len, NULL), headers, r.body,
                           (Py_ssize_t)r.body_len);
done:
    Py_XDECREF(headers);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"session_body", session_body, METH_VARARGS,
     "session_body(buf, max_body, keys[, now]) -> the body of one verified SendCommand request, or NEED_MORE/FALLBACK"},
    {"parse", parse, METH_VARARGS, "parse(buf, max_body) -> (path, headers, body) or NEED_MORE/FALLBACK"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_httpfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__httpfast(void)
{
    PyObject *m = PyModule_Create(&mod);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "NEED_MORE", NEED_MORE) < 0 || PyModule_AddIntConstant(m, "FALLBACK", FALLBACK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
