// libdios: streams a trusted task process works itself.
//
// A trusted process maps the node's arena (descriptor 5). The first read or
// write of a stream asks the kernel for that side of it (one submission:
// DIOS_OP_MAP_STREAM); if that side is held in a ring on this node (a local
// stream, or one whose other end is on another node: the instance sends what
// is published there, and delivers there what arrives), the kernel gives the
// ring's offset in the arena, and from then
// on `dios_begin_read`/`dios_end_read`/`dios_begin_write`/`dios_end_write`
// are loads and stores on the ring, with the same slot and sequence protocol
// the kernel's instances use (see DIOS_RING_* in dios_channel.h): nothing
// crosses the channel on the data path. The kernel counts what moved on its
// next turn; a process whose instance sleeps writes the doorbell after
// publishing or releasing, as after a submission.
//
// Anything else (a blob, a side held elsewhere, an untrusted process)
// and every refusal goes through the channel as before; a side whose ring
// closes (the stream deleted, its writer gone) is given back, and the
// kernel's answer is the one the caller sees.
#define _GNU_SOURCE
#include "dios_internal.h"

#include <sched.h>
#include <string.h>

#define MAX_MAPS 64u
#define MAX_REFUSED 64u
// How long `dios_select` looks at mapped rings before asking the kernel to
// wait (the same pauses-then-yields as a call waiting for its completion).
#define SELECT_PAUSES 256
#define SELECT_YIELDS 256

struct libdios_map {
    dios_ref ref;
    uint32_t writer;
    uint32_t live;
    uint8_t *ring;
    uint64_t depth;
    uint64_t stride;
    uint64_t max_write;
    // 1 while a transaction is open on this side: one at a time, as in the kernel.
    uint32_t open;
};

static struct {
    struct libdios_map maps[MAX_MAPS];
    uint32_t count; // published with release: entries below it are set up
    // Sides the kernel will not map (another kind, a side held elsewhere), so
    // their calls go straight through the channel.
    struct {
        dios_ref ref;
        uint32_t writer;
    } refused[MAX_REFUSED];
    uint32_t refused_next;
} maps;

static int same(dios_ref a, dios_ref b) { return a.slot == b.slot && a.generation == b.generation; }

static uint64_t *u64_at(uint8_t *ring, uint32_t offset) { return (uint64_t *)(ring + offset); }

static uint8_t *slot_of(const struct libdios_map *m, uint64_t index) {
    return m->ring + DIOS_RING_SLOTS + (index & (m->depth - 1)) * m->stride;
}

static int closed(const struct libdios_map *m) {
    return __atomic_load_n((uint32_t *)(m->ring + DIOS_RING_CLOSED), __ATOMIC_ACQUIRE) != 0;
}

static void refuse(dios_ref ref, int writer) {
    uint32_t n = maps.refused_next++ % MAX_REFUSED;
    maps.refused[n].ref = ref;
    maps.refused[n].writer = (uint32_t)writer;
}

static int refused(dios_ref ref, int writer) {
    for (uint32_t n = 0; n < MAX_REFUSED; n++) {
        if (same(maps.refused[n].ref, ref) && maps.refused[n].writer == (uint32_t)writer &&
            (ref.slot | ref.generation) != 0)
            return 1;
    }
    return 0;
}

static struct libdios_map *find(dios_ref ref, int writer) {
    uint32_t n = __atomic_load_n(&maps.count, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        struct libdios_map *m = &maps.maps[i];
        if (__atomic_load_n(&m->live, __ATOMIC_ACQUIRE) && m->writer == (uint32_t)writer && same(m->ref, ref)) return m;
    }
    return NULL;
}

// The ring at `offset` checked to lie in the arena as its header says; the lock is held.
static struct libdios_map *install(dios_ref ref, int writer, uint64_t offset, uint64_t max_write) {
    if (offset > libdios.arena_size || libdios.arena_size - offset < DIOS_RING_SLOTS) return NULL;
    uint8_t *ring = libdios.arena + offset;
    uint64_t depth = *(uint32_t *)(ring + DIOS_RING_DEPTH);
    uint64_t stride = *(uint32_t *)(ring + DIOS_RING_STRIDE);
    if (depth == 0 || (depth & (depth - 1)) || stride < 8 || max_write > stride - 8 ||
        depth * stride > libdios.arena_size - offset - DIOS_RING_SLOTS)
        return NULL;
    struct libdios_map *m = NULL;
    for (uint32_t i = 0; i < maps.count && !m; i++) {
        if (!maps.maps[i].live) m = &maps.maps[i];
    }
    if (!m && maps.count < MAX_MAPS) m = &maps.maps[maps.count];
    if (!m) return NULL;
    m->ref = ref;
    m->writer = (uint32_t)writer;
    m->ring = ring;
    m->depth = depth;
    m->stride = stride;
    m->max_write = max_write;
    m->open = 0;
    __atomic_store_n(&m->live, 1, __ATOMIC_RELEASE);
    if (m == &maps.maps[maps.count]) __atomic_store_n(&maps.count, maps.count + 1, __ATOMIC_RELEASE);
    return m;
}

// Gives the side back to the kernel; its later calls go through the channel.
static void give_back(struct libdios_map *m) {
    pthread_mutex_lock(&libdios.lock);
    if (m->live) {
        struct dios_sqe e = libdios_entry(DIOS_OP_UNMAP_STREAM, m->ref, 0);
        e.arg[0] = m->writer;
        struct dios_cqe c;
        (void)libdios_submit(&e, &c);
        __atomic_store_n(&m->live, 0, __ATOMIC_RELEASE);
        refuse(m->ref, (int)m->writer);
    }
    pthread_mutex_unlock(&libdios.lock);
}

struct libdios_map *libdios_map_for(dios_ref ref, int writer) {
    if (!libdios_ready() || !libdios.arena) return NULL;
    struct libdios_map *m = find(ref, writer);
    if (m) return m;
    pthread_mutex_lock(&libdios.lock);
    m = find(ref, writer);
    if (!m && !refused(ref, writer)) {
        struct dios_sqe e = libdios_entry(DIOS_OP_MAP_STREAM, ref, 0);
        e.arg[0] = (uint64_t)writer;
        struct dios_cqe c;
        int r = libdios_submit(&e, &c);
        if (r == 0) {
            m = install(ref, writer, c.value[0], c.value[1]);
            if (!m) {
                // A ring this process cannot work (no slot left in its table):
                // the kernel keeps the side, and the channel serves it.
                e = libdios_entry(DIOS_OP_UNMAP_STREAM, ref, 0);
                e.arg[0] = (uint64_t)writer;
                (void)libdios_submit(&e, &c);
                refuse(ref, writer);
            }
        } else if (r == -DIOS_E_WRONG_KIND || r == -DIOS_E_INVALID_ARGUMENT || r == -DIOS_E_UNTRUSTED) {
            refuse(ref, writer);
        }
        // Any other refusal (a bad reference, a side held): the channel's
        // call says so in turn.
    }
    pthread_mutex_unlock(&libdios.lock);
    return m;
}

static int take(struct libdios_map *m) {
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(&m->open, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void put(struct libdios_map *m) { __atomic_store_n(&m->open, 0, __ATOMIC_RELEASE); }

// The oldest message's slot, its length in `*length`, or NULL when none.
static uint8_t *oldest(struct libdios_map *m, uint32_t *length) {
    uint64_t head = *u64_at(m->ring, DIOS_RING_HEAD); // this side's own index
    uint8_t *s = slot_of(m, head);
    uint64_t header = __atomic_load_n((uint64_t *)s, __ATOMIC_ACQUIRE);
    if ((uint32_t)(header >> 32) != (uint32_t)(head + 1)) return NULL;
    *length = (uint32_t)header;
    return s;
}

int libdios_mapped_begin_read(struct libdios_map *m, dios_txn *txn) {
    if (!take(m)) return -DIOS_E_BUSY;
    uint32_t length = 0;
    uint8_t *s = oldest(m, &length);
    // Closed after its last message was published: look once more.
    if (!s && closed(m)) s = oldest(m, &length);
    if (!s || (length & DIOS_RING_HELD_ELSEWHERE)) {
        int gone = s || closed(m);
        put(m);
        if (!gone) return -DIOS_E_WOULD_BLOCK;
        give_back(m);
        return LIBDIOS_USE_CHANNEL;
    }
    *txn = (dios_txn){.handle = (uint64_t)(m - maps.maps), .data = s + 8, .size = length, .area = LIBDIOS_TXN_MAPPED};
    return 0;
}

int libdios_mapped_begin_write(struct libdios_map *m, size_t size, dios_txn *txn) {
    if (!take(m)) return -DIOS_E_BUSY;
    if (closed(m)) {
        put(m);
        give_back(m);
        return LIBDIOS_USE_CHANNEL;
    }
    if (size > m->max_write) {
        put(m);
        return -DIOS_E_TOO_LARGE;
    }
    uint64_t tail = *u64_at(m->ring, DIOS_RING_TAIL);
    uint64_t *cached = u64_at(m->ring, DIOS_RING_CACHED_HEAD);
    if (tail - *cached >= m->depth) {
        *cached = __atomic_load_n(u64_at(m->ring, DIOS_RING_HEAD), __ATOMIC_ACQUIRE);
        if (tail - *cached >= m->depth) {
            put(m);
            return -DIOS_E_WOULD_BLOCK;
        }
    }
    *txn = (dios_txn){
        .handle = (uint64_t)(m - maps.maps), .data = slot_of(m, tail) + 8, .size = size, .area = LIBDIOS_TXN_MAPPED};
    return 0;
}

int libdios_mapped_end(dios_txn *txn, int publish, size_t length) {
    if (txn->handle >= MAX_MAPS) return -DIOS_E_NOT_IN_TRANSACTION;
    struct libdios_map *m = &maps.maps[txn->handle];
    if (!__atomic_load_n(&m->open, __ATOMIC_ACQUIRE)) return -DIOS_E_NOT_IN_TRANSACTION;
    if (publish && m->writer) {
        if (length > txn->size) return -DIOS_E_OUTSIDE_VIEW; // the write stays open
        uint64_t *tail = u64_at(m->ring, DIOS_RING_TAIL);
        uint64_t t = *tail;
        __atomic_store_n((uint64_t *)slot_of(m, t), (t + 1) << 32 | (uint32_t)length, __ATOMIC_RELEASE);
        __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    } else if (publish) {
        uint64_t *head = u64_at(m->ring, DIOS_RING_HEAD);
        __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
    }
    txn->area = 0;
    put(m);
    if (publish) libdios_ring_doorbell();
    return 1;
}

static int ready_now(struct libdios_map *m) {
    if (closed(m)) return 1;
    if (m->writer) {
        uint64_t tail = *u64_at(m->ring, DIOS_RING_TAIL);
        return tail - __atomic_load_n(u64_at(m->ring, DIOS_RING_HEAD), __ATOMIC_ACQUIRE) < m->depth;
    }
    uint32_t length;
    return oldest(m, &length) != NULL;
}

long libdios_mapped_select(const dios_ref *refs, size_t n, int writable) {
    if (!libdios.arena || n > 8) return -1;
    struct libdios_map *m[8];
    for (size_t i = 0; i < n; i++) {
        m[i] = find(refs[i], writable);
        if (!m[i]) return -1;
    }
    for (int round = 0; round < SELECT_PAUSES + SELECT_YIELDS; round++) {
        for (size_t i = 0; i < n; i++) {
            if (ready_now(m[i])) return (long)i;
        }
        if (round < SELECT_PAUSES) {
            __builtin_ia32_pause();
        } else {
            sched_yield();
        }
    }
    return -1;
}
