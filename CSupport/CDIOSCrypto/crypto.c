#include "dios_crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct dios_aead {
    crypto_aead_aes256gcm_state state;  // 16-byte aligned: the context is allocated so
};

const char *dios_aead_unavailable(void) {
    if (sodium_init() < 0) return "libsodium did not start";
    if (!crypto_aead_aes256gcm_is_available())
        return "this CPU lacks AES-NI or PCLMULQDQ, which authenticated frames need (security.frames: plain "
               "turns them off)";
    return NULL;
}

dios_aead *dios_aead_new(const uint8_t *key) {
    if (dios_aead_unavailable() != NULL) return NULL;
    void *memory = NULL;
    if (posix_memalign(&memory, 64, sizeof(dios_aead)) != 0) return NULL;
    dios_aead *aead = memory;
    crypto_aead_aes256gcm_beforenm(&aead->state, key);
    return aead;
}

void dios_aead_free(dios_aead *aead) {
    if (aead == NULL) return;
    sodium_memzero(aead, sizeof *aead);
    free(aead);
}

int dios_aead_seal(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret, uint8_t *tag) {
    unsigned long long tag_length = 0;
    // In place: libsodium reads each block of the message before it writes it.
    return crypto_aead_aes256gcm_encrypt_detached_afternm(bytes + clear, tag, &tag_length, bytes + clear, secret,
                                                          bytes, clear, NULL, iv, &aead->state);
}

int dios_aead_open(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret,
                   const uint8_t *tag) {
    return crypto_aead_aes256gcm_decrypt_detached_afternm(bytes + clear, NULL, bytes + clear, secret, tag, bytes,
                                                          clear, iv, &aead->state);
}

int dios_hkdf_sha256(const uint8_t *key, size_t key_length, const uint8_t *salt, size_t salt_length,
                     const uint8_t *info, size_t info_length, uint8_t *out, size_t out_length) {
    if (sodium_init() < 0 || out_length > 255 * crypto_auth_hmacsha256_BYTES) return -1;
    // Extract: PRK = HMAC(salt, key).
    uint8_t prk[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init(&state, salt, salt_length);
    crypto_auth_hmacsha256_update(&state, key, key_length);
    crypto_auth_hmacsha256_final(&state, prk);
    // Expand: T(i) = HMAC(PRK, T(i-1) | info | i), the output their concatenation.
    uint8_t block[crypto_auth_hmacsha256_BYTES];
    size_t done = 0;
    for (uint8_t i = 1; done < out_length; i++) {
        crypto_auth_hmacsha256_init(&state, prk, sizeof prk);
        if (i > 1) crypto_auth_hmacsha256_update(&state, block, sizeof block);
        crypto_auth_hmacsha256_update(&state, info, info_length);
        crypto_auth_hmacsha256_update(&state, &i, 1);
        crypto_auth_hmacsha256_final(&state, block);
        size_t n = out_length - done < sizeof block ? out_length - done : sizeof block;
        memcpy(out + done, block, n);
        done += n;
    }
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(block, sizeof block);
    return 0;
}

_Static_assert(sizeof(crypto_hash_sha256_state) <= DIOS_SHA256_STATE_SIZE, "DIOS_SHA256_STATE_SIZE too small");

void dios_sha256_init(void *state) {
    (void)sodium_init();
    crypto_hash_sha256_init(state);
}

void dios_sha256_update(void *state, const uint8_t *bytes, size_t count) {
    crypto_hash_sha256_update(state, bytes, count);
}

void dios_sha256_final(void *state, uint8_t *out) { crypto_hash_sha256_final(state, out); }
