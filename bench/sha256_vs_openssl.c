/* Own SHA-256 (src/ledgerdr/_native/sha256.c) against OpenSSL's libcrypto on ledgerdr's call pattern:
 * one-shot hashes of many short inputs (32-200 bytes: Ion Hash's per-value and per-field digests, Merkle
 * pairs of 64 bytes). Built and run by bench/bench_sha256.py; prints one line of JSON. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha256.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef void (*one_shot)(const unsigned char *, size_t, unsigned char *);

static void openssl_sha256(const unsigned char *d, size_t n, unsigned char *out) { SHA256(d, n, out); }

static EVP_MD_CTX *evp_ctx;
static const EVP_MD *evp_md;
static void openssl_evp(const unsigned char *d, size_t n, unsigned char *out)
{
    EVP_DigestInit_ex(evp_ctx, evp_md, NULL);
    EVP_DigestUpdate(evp_ctx, d, n);
    EVP_DigestFinal_ex(evp_ctx, out, NULL);
}

static double run(one_shot fn, const unsigned char *data, const size_t *lens, size_t count, unsigned char *sink)
{
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double start = now();
        size_t off = 0;
        for (size_t i = 0; i < count; i++) {
            fn(data + off, lens[i], sink + 32 * (i & 1023));
            off += lens[i];
        }
        double t = (now() - start) / (double)count * 1e9;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? (size_t)atol(argv[1]) : 2000000;
    size_t *lens = malloc(count * sizeof *lens);
    size_t total = 0;
    srand(7);
    for (size_t i = 0; i < count; i++) { /* a third Merkle pairs, the rest 32-200 byte Ion Hash inputs */
        lens[i] = (i % 3 == 0) ? 64 : 32 + (size_t)(rand() % 169);
        total += lens[i];
    }
    unsigned char *data = malloc(total), sink[32 * 1024], a[32], b[32];
    for (size_t i = 0; i < total; i++) data[i] = (unsigned char)rand();
    evp_ctx = EVP_MD_CTX_new();
    evp_md = EVP_sha256();
    for (size_t i = 0, off = 0; i < 1000; off += lens[i++]) { /* same answers before timing anything */
        ldr_sha256(data + off, lens[i], a);
        openssl_evp(data + off, lens[i], b);
        if (memcmp(a, b, 32)) { fprintf(stderr, "digests differ at input %zu\n", i); return 1; }
    }
    double own = run(ldr_sha256, data, lens, count, sink);
    double portable = run(ldr_sha256_portable, data, lens, count, sink);
    double ssl = run(openssl_sha256, data, lens, count, sink);
    double evp = run(openssl_evp, data, lens, count, sink);
    printf("{\"inputs\": %zu, \"mean_bytes\": %.1f, \"own_accelerated\": %d, \"own_ns\": %.1f, \"own_portable_ns\": %.1f, "
           "\"openssl_sha256_ns\": %.1f, \"openssl_evp_ns\": %.1f}\n",
           count, (double)total / count, ldr_sha256_accelerated(), own, portable, ssl, evp);
    return 0;
}
