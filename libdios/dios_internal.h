// What libdios's files share: the channel's state and the calls over it.
// Nothing here is exported from the library (hidden visibility).
#ifndef DIOS_INTERNAL_H
#define DIOS_INTERNAL_H

#include "dios.h"
#include "dios_channel.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define LIBDIOS_HIDDEN __attribute__((visibility("hidden")))

struct libdios {
    pthread_mutex_t lock;
    pthread_once_t once;
    int attached; // 1 attached, -1 no channel
    uint8_t *base;
    volatile struct dios_channel_header *header;
    struct dios_sqe *sq;
    struct dios_cqe *cq;
    uint8_t *window;
    int doorbell;
    uint32_t sq_tail;
    uint32_t cq_head;
    uint32_t areas; // bit n: window area n is in use
    uint64_t next_call;
    // A trusted process's mapping of the node's arena (NULL: none).
    uint8_t *arena;
    size_t arena_size;
};

/// The one channel of this process.
extern struct libdios libdios LIBDIOS_HIDDEN;

/// Attaches on first use; whether the process has a channel.
int libdios_ready(void) LIBDIOS_HIDDEN;
/// Writes the doorbell if the instance sleeps (after anything it must see).
void libdios_ring_doorbell(void) LIBDIOS_HIDDEN;
/// Submits one entry and waits for its completion; the lock is held.
int libdios_submit(struct dios_sqe *e, struct dios_cqe *out) LIBDIOS_HIDDEN;
/// A zeroed submission for `op` on `ref`.
struct dios_sqe libdios_entry(uint16_t op, dios_ref ref, uint32_t flags) LIBDIOS_HIDDEN;

// Streams a trusted process works in its own mapping of the arena
// (dios_streams.c). A transaction on one has `area` LIBDIOS_TXN_MAPPED.
#define LIBDIOS_TXN_MAPPED 0x80000000u
/// Not worked in place (not mapped, or given back): use the channel.
#define LIBDIOS_USE_CHANNEL 1
struct libdios_map;
/// The side of `ref` this process maps, mapping it now if it may; NULL when
/// the stream is not worked in place (an untrusted process, another kind,
/// a stream whose other end is on another node).
struct libdios_map *libdios_map_for(dios_ref ref, int writer) LIBDIOS_HIDDEN;
/// 0, a negative error, or LIBDIOS_USE_CHANNEL (the side was given back).
int libdios_mapped_begin_read(struct libdios_map *m, dios_txn *txn) LIBDIOS_HIDDEN;
int libdios_mapped_begin_write(struct libdios_map *m, size_t size, dios_txn *txn) LIBDIOS_HIDDEN;
/// Ends a mapped transaction: `publish` 1 ends it (a write publishes
/// `length` bytes), 0 abandons it. 1, or a negative error.
int libdios_mapped_end(dios_txn *txn, int publish, size_t length) LIBDIOS_HIDDEN;
/// Whether one of `refs`, every one mapped, became ready while spinning
/// (its index), -1 when they are not all mapped or none became ready.
long libdios_mapped_select(const dios_ref *refs, size_t n, int writable) LIBDIOS_HIDDEN;

#endif
