// dios.h — the C ABI of DIOS: the eleven calls for a program that runs as a
// DIOS task process (started by `run`, or `dios run PROGRAM`).
//
// Build against it with `cc prog.c $(pkg-config --cflags --libs dios)`. Every
// call returns 0 (or a count, or a boolean, as documented) on success and a
// negative `dios_error` on failure; `dios_strerror` names it. A refused call
// changes nothing. Calls are synchronous and may be made from any thread of
// the process (they are serialised); `dios_select` waits.
#ifndef DIOS_H
#define DIOS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A reference: a slot in this task's reference table and its generation.
/// It is only a number pair; the kernel checks it on every call.
typedef struct dios_ref {
    uint32_t slot;
    uint32_t generation;
} dios_ref;

/// A name: 256 bits, unique in the cluster.
typedef struct dios_name {
    uint64_t words[4];
} dios_name;

/// Why a call failed (returned negated). Mirrors the Swift `CallError`.
typedef enum dios_error {
    DIOS_OK = 0,
    DIOS_E_REF_INVALID = 1,       ///< the reference was never issued to this task
    DIOS_E_REF_STALE = 2,         ///< its object was deleted or the reference dropped
    DIOS_E_REF_MISSING_RIGHT = 3, ///< the reference lacks a right the call needs (detail: the right)
    DIOS_E_REF_WIDENING = 4,      ///< copy asked for rights the reference does not hold
    DIOS_E_TABLE_FULL = 5,        ///< the reference table is full
    DIOS_E_UNTRUSTED = 6,         ///< lookup and run are for trusted tasks only
    DIOS_E_WRONG_KIND = 7,        ///< the call does not apply to this kind of object
    DIOS_E_WOULD_BLOCK = 8,       ///< not ready now: select on the reference to wait
    DIOS_E_BUSY = 9,              ///< another transaction holds the object
    DIOS_E_OBJECT_DELETED = 10,   ///< the object was deleted
    DIOS_E_TOO_LARGE = 11,        ///< the write exceeds the maximum (detail: the maximum)
    DIOS_E_NO_SUCH_NAME = 12,     ///< lookup found no reachable instance of the name
    DIOS_E_OUT_OF_MEMORY = 13,    ///< the pools have no buffer that large
    DIOS_E_INVALID_ARGUMENT = 14, ///< an argument was out of range
    DIOS_E_NOT_IN_TRANSACTION = 15, ///< no such open transaction
    DIOS_E_TASK_STOPPED = 16,     ///< the task is being stopped
    DIOS_E_UNREACHABLE = 17,      ///< the instance holding the object stopped answering
    DIOS_E_OUTSIDE_VIEW = 18,     ///< an access outside the transaction's view
    DIOS_E_BAD_ENTRY = 19,        ///< the kernel could not decode the call's ring entry
    DIOS_E_NO_CHANNEL = 20,       ///< this process is not a DIOS task (no channel), or it is closed
} dios_error;

/// Options every call takes; each call reads those that concern it.
enum {
    DIOS_STRONG = 1 << 0,         ///< I/O: hold the object; lookup: confirm with the owners
    DIOS_PERSISTENT = 1 << 1,     ///< create: the object survives its creator
    DIOS_UNTRUSTED = 1 << 2,      ///< run: start the task untrusted
    DIOS_RESUME = 1 << 3,         ///< pause: resume instead
    DIOS_WRITABLE = 1 << 4,       ///< select: wait until writable
    DIOS_REFERENCE_ONLY = 1 << 5, ///< delete: drop only this reference
};

/// What a reference lets its holder do.
enum {
    DIOS_RIGHT_READ = 1 << 0,
    DIOS_RIGHT_WRITE = 1 << 1,
    DIOS_RIGHT_COPY = 1 << 2,
    DIOS_RIGHT_DELETE = 1 << 3,
    DIOS_RIGHT_RUN = 1 << 4,
    DIOS_RIGHTS_ALL = 0x1F,
};
/// `dios_copy`: keep the rights held.
#define DIOS_RIGHTS_AS_HELD 0xFFFFFFFFu

typedef enum dios_kind {
    DIOS_BLOB = 0,
    DIOS_STREAM = 1,
    DIOS_TIMER = 2,
    DIOS_TASK = 3,
    DIOS_PROGRAM = 4,
} dios_kind;

/// What `dios_create` makes: a blob of `size` bytes, a stream of messages of
/// up to `size` bytes with `depth` in flight (0: 64), or a timer readable
/// after `after_ns` nanoseconds.
typedef struct dios_spec {
    dios_kind kind;
    uint32_t depth;
    uint64_t size;
    uint64_t after_ns;
} dios_spec;

/// What the task's table says of a reference.
typedef struct dios_entry {
    dios_kind kind;
    uint32_t rights;
    uint32_t proximity; ///< 0 this core, 1 this node, 2 another node's memory
    uint32_t persistent;
    uint64_t max_write_size;
    uint16_t owner_node;
    uint16_t owner_core;
} dios_entry;

/// An open read or write: `data` views `size` bytes. For a trusted process
/// on a stream held on its node, the view is the message's slot in the
/// arena, read and written in place with no call to the kernel; otherwise a
/// copy in the channel's window. End it exactly once.
typedef struct dios_txn {
    uint64_t handle;
    void *data;
    size_t size;
    uint32_t area;
} dios_txn;

/// Where `dios_run` starts a task: this task's own instance, or one named.
#define DIOS_HERE (-1)

// The eleven calls.
int dios_create(const dios_spec *spec, uint32_t flags, dios_name *name_out, dios_ref *ref_out);
int dios_lookup(const dios_name *name, uint32_t flags, dios_ref *refs, size_t max, size_t *found);
int dios_begin_read(dios_ref ref, uint32_t flags, dios_txn *txn);
/// 1: what was read is consistent; 0: read again.
int dios_end_read(dios_txn *txn);
int dios_begin_write(dios_ref ref, size_t size, uint32_t flags, dios_txn *txn);
/// Publishes the first `length` bytes of the view; 1: committed.
int dios_end_write(dios_txn *txn, size_t length);
int dios_run(dios_ref program, const dios_ref *args, size_t nargs, uint32_t flags, int node, int core,
             dios_ref *task_out);
int dios_pause(dios_ref task, uint32_t flags);
int dios_copy(const dios_ref *refs, size_t n, dios_ref task, uint32_t rights, uint32_t flags, dios_ref *out);
int dios_delete(dios_ref ref, uint32_t flags);
/// Waits until one of `refs` is readable (DIOS_WRITABLE: writable); its index.
int dios_select(const dios_ref *refs, size_t n, uint32_t flags, size_t *ready);

// Conveniences over them, as the Swift API has.
/// Ends a transaction without publishing (a write) or validating (a read).
int dios_abandon(dios_txn *txn);
int dios_create_named(const dios_spec *spec, const dios_name *name, uint32_t flags, dios_ref *ref_out);
int dios_restrict(dios_ref ref, uint32_t rights, dios_ref *out);
int dios_describe(dios_ref ref, dios_entry *out);
/// The references delegated to this task (by run or copy), oldest first.
int dios_delegated(dios_ref *refs, size_t max, size_t *count);
/// Writes one message (or a whole blob), waiting until the reference is writable.
int dios_write(dios_ref ref, const void *bytes, size_t length, uint32_t flags);
/// Reads one message (or a blob's bytes, until consistent), waiting until it
/// is readable; `*length` gets its size (at most `capacity` bytes are copied).
int dios_read(dios_ref ref, void *buffer, size_t capacity, size_t *length, uint32_t flags);

/// Whether this process is a DIOS task (it has a channel), and whether trusted.
int dios_is_task(void);
int dios_is_trusted(void);
/// A trusted task's mapping of its node's arena, where the views of the local
/// streams it reads and writes in place lie. -DIOS_E_UNTRUSTED for a task
/// that does not map it.
int dios_arena_span(void **base, size_t *size);
/// A message for an error code (positive or negative).
const char *dios_strerror(int error);

#ifdef __cplusplus
}
#endif

#endif
