// The channel between a DIOS kernel instance and one task process: the layout
// of the shared memory both sides map, and the entries that cross it.
//
// `diosd` makes the channel for one process alone (a memfd, inherited by that
// child only) and polls it from the instance's loop. The process submits calls
// as fixed-size entries in the submission ring (SQ) and reads their results in
// the completion ring (CQ), io_uring-style: `user_data` passes through, and a
// call's data (names, arrays of references, the bytes read and written by a
// task that does not map the arena) lies in the channel's window, named by
// offset. References cross as table slots, never pointers.
//
// The kernel treats everything here as hostile: it keeps its own copies of the
// indices it owns (SQ head, CQ tail) and never reads them back, copies each
// entry out once before looking at it, and bounds-checks every offset and
// count against the window. libdios (the C ABI) is the one writer on the
// process side; this header is shared by it and by the kernel.
#ifndef DIOS_CHANNEL_H
#define DIOS_CHANNEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// "DIOSCHN" and the layout's version in the last byte.
#define DIOS_CHANNEL_MAGIC 0x44494F5343484E01ULL
/// Entries in each ring (a power of two).
#define DIOS_RING_ENTRIES 64u
/// Where the rings and the window lie in the channel's memory.
#define DIOS_CHANNEL_SQ_OFFSET 4096u
#define DIOS_CHANNEL_CQ_OFFSET (DIOS_CHANNEL_SQ_OFFSET + DIOS_RING_ENTRIES * 64u)
#define DIOS_CHANNEL_WINDOW_OFFSET (1u << 16)
/// The window: 8 areas of 2 MiB, the largest view a call returns.
#define DIOS_WINDOW_AREA (2u << 20)
#define DIOS_WINDOW_AREAS 8u
#define DIOS_WINDOW_SIZE (DIOS_WINDOW_AREA * DIOS_WINDOW_AREAS)
#define DIOS_CHANNEL_SIZE (DIOS_CHANNEL_WINDOW_OFFSET + DIOS_WINDOW_SIZE)
/// The most references one call passes in the window (lookup, run, copy, select).
#define DIOS_MAX_REFS_PER_CALL 1024u

/// The environment variables through which a task process finds its channel.
#define DIOS_ENV_CHANNEL_FD "DIOS_CHANNEL_FD"
#define DIOS_ENV_DOORBELL_FD "DIOS_DOORBELL_FD"
/// A trusted task process's descriptor for the node's arena (the hugetlbfs
/// file, or a memfd where there are no hugepages), to map shared.
#define DIOS_ENV_ARENA_FD "DIOS_ARENA_FD"

/// Operations. The eleven calls, then the conveniences the Swift API also has.
enum dios_op {
    DIOS_OP_CREATE = 1,
    DIOS_OP_LOOKUP = 2,
    DIOS_OP_BEGIN_READ = 3,
    DIOS_OP_END_READ = 4,
    DIOS_OP_BEGIN_WRITE = 5,
    DIOS_OP_END_WRITE = 6,
    DIOS_OP_RUN = 7,
    DIOS_OP_PAUSE = 8,
    DIOS_OP_COPY = 9,
    DIOS_OP_DELETE = 10,
    DIOS_OP_SELECT = 11,
    DIOS_OP_ABANDON = 12,
    DIOS_OP_RESTRICT = 13,
    DIOS_OP_DESCRIBE = 14,
    DIOS_OP_DELEGATED = 15,
    DIOS_OP_HELLO = 16,
    /// A whole write or read in one entry (begin, copy, end): what
    /// `dios_write` and `dios_read` submit, one round trip instead of two.
    /// `arg[2]` 1: one that would block waits for the reference (a select
    /// and the call again, in the kernel) instead of being refused.
    DIOS_OP_WRITE = 17,
    DIOS_OP_READ = 18,
    /// A trusted process takes one side of a local stream (`arg[0]`: 0 the
    /// read side, 1 the write side) and works its ring in its own mapping of
    /// the arena: the completion gives the ring's offset in the arena
    /// (`value[0]`) and the largest message it may write (`value[1]`). Until
    /// it gives the side back (`DIOS_OP_UNMAP_STREAM`, same arguments) or
    /// ends, no one else reads (or writes) that side.
    DIOS_OP_MAP_STREAM = 19,
    DIOS_OP_UNMAP_STREAM = 20,
};
#define DIOS_OP_LAST DIOS_OP_UNMAP_STREAM

/// A stream's ring as it lies in the arena (the kernel's `StreamRing`): what
/// a trusted process works on a side it mapped. Offsets from the ring's
/// start; each index is written by its side alone. Message n (from 0) lies in
/// slot n mod depth, whose header (u64) is (n + 1) << 32 | length; a length
/// with bit 31 set is a message held elsewhere, which a mapped ring never has.
#define DIOS_RING_TAIL 0u          /* u64, the producer's: messages published */
#define DIOS_RING_CACHED_HEAD 8u   /* u64, the producer's copy of head */
#define DIOS_RING_HEAD 64u         /* u64, the consumer's: messages released */
#define DIOS_RING_CLOSED 136u      /* u32, non-zero once closed */
#define DIOS_RING_DEPTH 144u       /* u32, slots (a power of two) */
#define DIOS_RING_STRIDE 148u      /* u32, bytes per slot */
#define DIOS_RING_MAX_MESSAGE 152u /* u32 */
#define DIOS_RING_SLOTS 256u       /* the first slot */
#define DIOS_RING_HELD_ELSEWHERE (1u << 31)

/// A submission: 64 bytes. `ref` is the call's main reference; `arg` is per
/// operation (see the kernel's `ChannelRequest` for each one's meaning).
struct dios_sqe {
    uint64_t user_data;
    uint16_t op;
    uint16_t reserved;
    uint32_t flags;
    uint32_t ref_slot;
    uint32_t ref_generation;
    uint64_t arg[5];
};

/// A completion: 32 bytes. `error` is 0 or a `dios_error` code, `detail` a
/// number that qualifies it (a size, a right), `value` the results.
struct dios_cqe {
    uint64_t user_data;
    int32_t error;
    uint32_t detail;
    uint64_t value[2];
};

/// A reference as it lies in the window: a slot of the task's table.
struct dios_wire_ref {
    uint32_t slot;
    uint32_t generation;
};

/// The channel's first page. Each index has a cache line of its own: the side
/// that writes it is the only writer.
struct dios_channel_header {
    uint64_t magic;
    uint32_t ring_entries;
    uint32_t window_size;
    uint32_t window_offset;
    /// The task's pid as `diosd` spawned it and whether the task is trusted:
    /// written by the kernel, for the process to read.
    int32_t pid;
    uint32_t trusted;
    /// The CPU the task's instance runs on (-1: not pinned). A process on
    /// the same CPU waits by yielding it, never by spinning: the instance
    /// cannot serve it until it does.
    int32_t instance_cpu;
    uint32_t pad0[8];
    /// Written by the process, read by the kernel.
    uint32_t sq_tail;
    uint32_t pad1[15];
    /// Written by the kernel.
    uint32_t sq_head;
    uint32_t pad2[15];
    /// Written by the kernel; the process sleeps on it (a futex word).
    uint32_t cq_tail;
    uint32_t pad3[15];
    /// Written by the process.
    uint32_t cq_head;
    /// Set by the process before it sleeps on `cq_tail`: the kernel wakes it.
    uint32_t process_sleeping;
    uint32_t pad4[14];
    /// Set by the kernel while its instance sleeps: the process writes to the
    /// doorbell descriptor after submitting.
    uint32_t instance_sleeping;
    uint32_t pad5[15];
};

#ifdef __cplusplus
}
#endif

#endif
