// Frame authentication for the DIOS wire: AES-256-GCM and HMAC-SHA256 from
// libsodium (and its SHA-256, for program names), behind plain C types. A key's schedule is computed once, when its
// context is made, so sealing a frame costs the GCM pass and nothing else (no
// allocation, no key expansion, no provider dispatch); every call works on the
// caller's buffer in place, so a frame is sealed where it will be sent (a DPDK
// mbuf) and opened where it arrived.
#ifndef DIOS_CRYPTO_H
#define DIOS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define DIOS_AEAD_KEY_SIZE 32
#define DIOS_AEAD_IV_SIZE 12
#define DIOS_AEAD_TAG_SIZE 16

/// NULL when this machine can seal frames; otherwise why not (libsodium's
/// AES-GCM needs a CPU with AES-NI and PCLMULQDQ).
const char *dios_aead_unavailable(void);

/// One AES-256-GCM key, ready to seal and open (its expanded schedule).
typedef struct dios_aead dios_aead;

/// A context for `key` (32 bytes); NULL when `dios_aead_unavailable()`.
dios_aead *dios_aead_new(const uint8_t *key);
void dios_aead_free(dios_aead *aead);

/// Seals `bytes` in place: the first `clear` bytes are authenticated as they
/// are, the `secret` bytes after them are encrypted in place and
/// authenticated; the 16-byte tag goes to `tag`. 0 on success.
int dios_aead_seal(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret, uint8_t *tag);

/// Checks `tag` over `bytes` as `dios_aead_seal` made it and decrypts the
/// `secret` bytes in place. 0 when authentic; -1 otherwise (the frame is
/// then to be dropped).
int dios_aead_open(dios_aead *aead, const uint8_t *iv, uint8_t *bytes, size_t clear, size_t secret,
                   const uint8_t *tag);

/// HKDF-SHA256 (RFC 5869) over libsodium's HMAC-SHA256: `out_length` bytes
/// (at most 255 × 32) from `key` with `salt` and `info`. 0 on success.
int dios_hkdf_sha256(const uint8_t *key, size_t key_length, const uint8_t *salt, size_t salt_length,
                     const uint8_t *info, size_t info_length, uint8_t *out, size_t out_length);

/// SHA-256 (libsodium), for naming programs by their bytes. The state is
/// the caller's: `DIOS_SHA256_STATE_SIZE` bytes, 8-byte aligned.
#define DIOS_SHA256_STATE_SIZE 128
void dios_sha256_init(void *state);
void dios_sha256_update(void *state, const uint8_t *bytes, size_t count);
/// Writes the 32-byte digest to `out`.
void dios_sha256_final(void *state, uint8_t *out);

#endif
