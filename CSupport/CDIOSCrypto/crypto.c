#include "dios_crypto.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>

struct dios_aead {
    EVP_CIPHER_CTX *ctx;
};

dios_aead *dios_aead_new(const uint8_t *key) {
    dios_aead *aead = OPENSSL_malloc(sizeof *aead);
    if (aead == NULL) return NULL;
    aead->ctx = EVP_CIPHER_CTX_new();
    // The key schedule once, here; each seal or open then sets only the IV.
    if (aead->ctx == NULL || EVP_CipherInit_ex(aead->ctx, EVP_aes_128_gcm(), NULL, key, NULL, 1) != 1 ||
        EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_SET_IVLEN, DIOS_AEAD_IV_SIZE, NULL) != 1) {
        dios_aead_free(aead);
        return NULL;
    }
    return aead;
}

void dios_aead_free(dios_aead *aead) {
    if (aead == NULL) return;
    EVP_CIPHER_CTX_free(aead->ctx);
    OPENSSL_free(aead);
}

int dios_aead_seal(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret, uint8_t *tag) {
    int n = 0;
    if (EVP_CipherInit_ex(aead->ctx, NULL, NULL, NULL, iv, 1) != 1) return -1;
    if (clear > 0 && EVP_CipherUpdate(aead->ctx, NULL, &n, bytes, (int)clear) != 1) return -1;
    if (secret > 0 && EVP_CipherUpdate(aead->ctx, bytes + clear, &n, bytes + clear, (int)secret) != 1) return -1;
    if (EVP_CipherFinal_ex(aead->ctx, bytes + clear + secret, &n) != 1) return -1;
    return EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_GET_TAG, DIOS_AEAD_TAG_SIZE, tag) == 1 ? 0 : -1;
}

int dios_aead_open(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret,
                   const uint8_t *tag) {
    int n = 0;
    if (EVP_CipherInit_ex(aead->ctx, NULL, NULL, NULL, iv, 0) != 1) return -1;
    if (clear > 0 && EVP_CipherUpdate(aead->ctx, NULL, &n, bytes, (int)clear) != 1) return -1;
    if (secret > 0 && EVP_CipherUpdate(aead->ctx, bytes + clear, &n, bytes + clear, (int)secret) != 1) return -1;
    // The expected tag is set for the check; libcrypto copies it.
    if (EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_SET_TAG, DIOS_AEAD_TAG_SIZE, (void *)tag) != 1) return -1;
    return EVP_CipherFinal_ex(aead->ctx, bytes + clear + secret, &n) == 1 ? 0 : -1;
}

int dios_aead_unseal(dios_aead *aead, const uint8_t *iv, uint8_t *secret, size_t length) {
    int n = 0;
    if (EVP_CipherInit_ex(aead->ctx, NULL, NULL, NULL, iv, 0) != 1) return -1;
    // GCM's keystream does not depend on the authenticated data: the
    // decryption alone gives the plain text back (no final step, no tag).
    return length == 0 || EVP_CipherUpdate(aead->ctx, secret, &n, secret, (int)length) == 1 ? 0 : -1;
}

int dios_hkdf_sha256(const uint8_t *key, size_t key_length, const uint8_t *salt, size_t salt_length,
                     const uint8_t *info, size_t info_length, uint8_t *out, size_t out_length) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (ctx == NULL) return -1;
    size_t length = out_length;
    int ok = EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_length) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_key(ctx, key, (int)key_length) == 1 &&
             EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_length) == 1 && EVP_PKEY_derive(ctx, out, &length) == 1 &&
             length == out_length;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}
