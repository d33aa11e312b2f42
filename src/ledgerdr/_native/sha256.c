/* SHA-256 as specified in FIPS 180-4 (section 6.2). Portable C99, and on x86-64 with GCC or Clang the SHA
 * extensions (SHA-NI) when CPUID reports them: the write path hashes every struct field, and SHA-NI is
 * several times faster than the portable rounds. */
#include <string.h>

#include "sha256.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LDR_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

static void compress_one(uint32_t state[8], const unsigned char *block)
{
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h, t1, t2;
    int i;
    for (i = 0; i < 16; i++) {
        w[i] = ((uint32_t)block[4 * i] << 24) | ((uint32_t)block[4 * i + 1] << 16) |
               ((uint32_t)block[4 * i + 2] << 8) | (uint32_t)block[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];
    }
    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (i = 0; i < 64; i++) {
        t1 = h + BSIG1(e) + CH(e, f, g) + K[i] + w[i];
        t2 = BSIG0(a) + MAJ(a, b, c);
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

static void compress_portable(uint32_t state[8], const unsigned char *data, size_t blocks)
{
    while (blocks--) {
        compress_one(state, data);
        data += 64;
    }
}

#ifdef LDR_SHA_NI
/* The rounds with the SHA extensions: four rounds per sha256rnds2 pair, the message schedule by
 * sha256msg1/msg2 (X[g] = msg2(msg1(X[g-4], X[g-3]) + W[4g-7..4g-4], X[g-1]) for the 16 groups of 4 words). */
__attribute__((target("sha,sse4.1,ssse3"))) static void compress_shani(uint32_t state[8], const unsigned char *data,
                                                                      size_t blocks)
{
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i state0, state1, tmp, msg, abef, cdgh, x[4];
    int g;

    tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);    /* EFGH */
    state0 = _mm_alignr_epi8(tmp, state1, 8);    /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0); /* CDGH */

    while (blocks--) {
        abef = state0;
        cdgh = state1;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
        for (g = 0; g < 16; g++) {
            if (g < 4) {
                x[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), MASK);
            } else {
                tmp = _mm_sha256msg1_epu32(x[g & 3], x[(g + 1) & 3]);
                tmp = _mm_add_epi32(tmp, _mm_alignr_epi8(x[(g + 3) & 3], x[(g + 2) & 3], 4));
                x[g & 3] = _mm_sha256msg2_epu32(tmp, x[(g + 3) & 3]);
            }
            msg = _mm_add_epi32(x[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);       /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);    /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0); /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);    /* ABEF */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}
#endif

static ldr_sha256_blocks_fn chosen;

static ldr_sha256_blocks_fn choose(void)
{
    if (chosen == NULL) {
        ldr_sha256_blocks_fn fn = compress_portable;
#ifdef LDR_SHA_NI
        unsigned int a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9)) && /* SSE4.1, SSSE3 */
            __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)))             /* SHA */
            fn = compress_shani;
#endif
        chosen = fn;
    }
    return chosen;
}

int ldr_sha256_accelerated(void)
{
    return choose() != compress_portable;
}

void ldr_sha256_init(ldr_sha256_ctx *ctx)
{
    static const uint32_t H0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    ctx->blocks = choose();
    memcpy(ctx->state, H0, sizeof H0);
    ctx->length = 0;
    ctx->used = 0;
}

void ldr_sha256_update(ldr_sha256_ctx *ctx, const unsigned char *data, size_t len)
{
    ctx->length += len;
    if (ctx->used) {
        size_t take = 64 - ctx->used;
        if (take > len) take = len;
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        len -= take;
        if (ctx->used < 64) return;
        ctx->blocks(ctx->state, ctx->block, 1);
        ctx->used = 0;
    }
    if (len >= 64) {
        ctx->blocks(ctx->state, data, len / 64);
        data += len & ~(size_t)63;
        len &= 63;
    }
    if (len) {
        memcpy(ctx->block, data, len);
        ctx->used = len;
    }
}

void ldr_sha256_final(ldr_sha256_ctx *ctx, unsigned char out[32])
{
    uint64_t bits = ctx->length * 8;
    int i;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > 56) {
        memset(ctx->block + ctx->used, 0, 64 - ctx->used);
        ctx->blocks(ctx->state, ctx->block, 1);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56 - ctx->used);
    for (i = 0; i < 8; i++) ctx->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    ctx->blocks(ctx->state, ctx->block, 1);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(ctx->state[i] >> 24);
        out[4 * i + 1] = (unsigned char)(ctx->state[i] >> 16);
        out[4 * i + 2] = (unsigned char)(ctx->state[i] >> 8);
        out[4 * i + 3] = (unsigned char)ctx->state[i];
    }
}

void ldr_sha256(const unsigned char *data, size_t len, unsigned char out[32])
{
    ldr_sha256_ctx ctx;
    ldr_sha256_init(&ctx);
    ldr_sha256_update(&ctx, data, len);
    ldr_sha256_final(&ctx, out);
}

void ldr_sha256_portable(const unsigned char *data, size_t len, unsigned char out[32])
{
    ldr_sha256_ctx ctx;
    ldr_sha256_init(&ctx);
    ctx.blocks = compress_portable;
    ldr_sha256_update(&ctx, data, len);
    ldr_sha256_final(&ctx, out);
}
