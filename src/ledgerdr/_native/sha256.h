/* A small SHA-256 (FIPS 180-4), so the accelerators need no OpenSSL: plain portable C, plus the x86 SHA
 * extensions when the CPU has them (chosen at run time; both give the same digests). */
#ifndef LEDGERDR_SHA256_H
#define LEDGERDR_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef void (*ldr_sha256_blocks_fn)(uint32_t state[8], const unsigned char *data, size_t blocks);

typedef struct {
    ldr_sha256_blocks_fn blocks; /* the compression function used */
    uint32_t state[8];
    uint64_t length;         /* bytes hashed so far */
    unsigned char block[64]; /* pending input */
    size_t used;             /* bytes in block */
} ldr_sha256_ctx;

void ldr_sha256_init(ldr_sha256_ctx *ctx);
void ldr_sha256_update(ldr_sha256_ctx *ctx, const unsigned char *data, size_t len);
void ldr_sha256_final(ldr_sha256_ctx *ctx, unsigned char out[32]);
/* One-shot digest of data[0:len]. */
void ldr_sha256(const unsigned char *data, size_t len, unsigned char out[32]);
/* The same digest, always computed by the portable code (for tests). */
void ldr_sha256_portable(const unsigned char *data, size_t len, unsigned char out[32]);
/* Whether the x86 SHA extensions are in use. */
int ldr_sha256_accelerated(void);

#endif
