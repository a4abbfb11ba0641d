// libdios: the process side of a DIOS task's channel (see dios_channel.h).
//
// One channel per process, attached from the descriptor `diosd` passed in the
// environment. Calls are serialised by one lock: each writes one submission,
// then waits for its completion — spinning a little, then sleeping on the
// completion ring's tail (a futex in the shared memory) until the kernel
// wakes it, as the kernel's instances idle.
#define _GNU_SOURCE
#include "dios.h"
#include "dios_channel.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_AREA 0u
#define MASK (DIOS_RING_ENTRIES - 1u)
// How a caller waits for its completion: a few microseconds of pauses (the
// answer of a call served at once), then yields (the instance that serves it
// may need this CPU: with fewer CPUs than busy threads, a spinning caller
// only delays its own answer), then a futex sleep.
#define PAUSES 256
#define YIELDS 256

static struct {
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
} ch = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT, .doorbell = -1};

static int env_fd(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return (*end == 0 && v >= 0 && v < 1 << 20) ? (int)v : -1;
}

static void attach(void) {
    ch.attached = -1;
    int fd = env_fd(DIOS_ENV_CHANNEL_FD);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)DIOS_CHANNEL_SIZE) return;
    void *p = mmap(NULL, DIOS_CHANNEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return;
    struct dios_channel_header *h = p;
    if (h->magic != DIOS_CHANNEL_MAGIC || h->ring_entries != DIOS_RING_ENTRIES ||
        h->window_size != DIOS_WINDOW_SIZE || h->window_offset != DIOS_CHANNEL_WINDOW_OFFSET) {
        munmap(p, DIOS_CHANNEL_SIZE);
        return;
    }
    ch.base = p;
    ch.header = h;
    ch.sq = (struct dios_sqe *)(ch.base + DIOS_CHANNEL_SQ_OFFSET);
    ch.cq = (struct dios_cqe *)(ch.base + DIOS_CHANNEL_CQ_OFFSET);
    ch.window = ch.base + DIOS_CHANNEL_WINDOW_OFFSET;
    ch.sq_tail = __atomic_load_n(&h->sq_tail, __ATOMIC_ACQUIRE);
    ch.cq_head = __atomic_load_n(&h->cq_head, __ATOMIC_ACQUIRE);
    ch.doorbell = env_fd(DIOS_ENV_DOORBELL_FD);
    ch.attached = 1;
}

// A task process lives no longer than the diosd that started it: when that
// thread goes, the kernel sends SIGKILL. Done at load time, before main, so a
// program killed early in its life is not left behind either.
__attribute__((constructor)) static void dios_at_load(void) {
    if (env_fd(DIOS_ENV_CHANNEL_FD) < 0) return;
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137); // the parent went before the request took hold
    pthread_once(&ch.once, attach);
}

static int ready(void) {
    pthread_once(&ch.once, attach);
    return ch.attached == 1;
}

int dios_is_task(void) { return ready(); }
int dios_is_trusted(void) { return ready() && ch.header->trusted != 0; }

static void ring_doorbell(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ch.header->instance_sleeping, __ATOMIC_ACQUIRE) && ch.doorbell >= 0) {
        uint64_t one = 1;
        (void)!write(ch.doorbell, &one, sizeof(one));
    }
}

static void wait_for_completion(void) {
    volatile struct dios_channel_header *h = ch.header;
    for (int i = 0; i < PAUSES + YIELDS; i++) {
        if (__atomic_load_n(&h->cq_tail, __ATOMIC_ACQUIRE) != ch.cq_head) return;
        if (i < PAUSES) {
            __builtin_ia32_pause();
        } else {
            sched_yield();
        }
    }
    for (;;) {
        __atomic_store_n(&h->process_sleeping, 1, __ATOMIC_SEQ_CST);
        uint32_t seen = __atomic_load_n(&h->cq_tail, __ATOMIC_SEQ_CST);
        if (seen != ch.cq_head) break;
        // A bounded sleep: should the kernel's wake be missed, the next look is
        // at most 100 ms away.
        struct timespec limit = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        syscall(SYS_futex, (uint32_t *)&h->cq_tail, FUTEX_WAIT, seen, &limit, NULL, 0);
    }
    __atomic_store_n(&h->process_sleeping, 0, __ATOMIC_RELAXED);
}

// Submits one entry and waits for its completion; the lock is held.
static int submit(struct dios_sqe *e, struct dios_cqe *out) {
    e->user_data = ++ch.next_call;
    ch.sq[ch.sq_tail & MASK] = *e;
    ch.sq_tail++;
    __atomic_store_n(&ch.header->sq_tail, ch.sq_tail, __ATOMIC_RELEASE);
    ring_doorbell();
    wait_for_completion();
    *out = ch.cq[ch.cq_head & MASK];
    ch.cq_head++;
    __atomic_store_n(&ch.header->cq_head, ch.cq_head, __ATOMIC_RELEASE);
    if (out->user_data != e->user_data) return -DIOS_E_NO_CHANNEL;
    return out->error == 0 ? 0 : -out->error;
}

static int call(struct dios_sqe *e, struct dios_cqe *out) {
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    int r = submit(e, out);
    pthread_mutex_unlock(&ch.lock);
    return r;
}

static uint64_t area_offset(uint32_t area) { return (uint64_t)area * DIOS_WINDOW_AREA; }

static dios_ref word_ref(uint64_t w) { return (dios_ref){.slot = (uint32_t)(w >> 32), .generation = (uint32_t)w}; }

static struct dios_sqe entry(uint16_t op, dios_ref ref, uint32_t flags) {
    struct dios_sqe e;
    memset(&e, 0, sizeof(e));
    e.op = op;
    e.flags = flags;
    e.ref_slot = ref.slot;
    e.ref_generation = ref.generation;
    return e;
}

static const dios_ref no_ref = {0, 0};

int dios_create(const dios_spec *spec, uint32_t flags, dios_name *name_out, dios_ref *ref_out) {
    if (!spec || !ref_out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_CREATE, no_ref, flags);
    e.arg[0] = (uint64_t)spec->kind;
    e.arg[1] = spec->kind == DIOS_TIMER ? spec->after_ns : spec->size;
    e.arg[2] = spec->depth;
    e.arg[3] = area_offset(SCRATCH_AREA);
    e.arg[4] = UINT64_MAX;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    int r = submit(&e, &c);
    if (r == 0) {
        *ref_out = word_ref(c.value[0]);
        if (name_out) memcpy(name_out, ch.window + area_offset(SCRATCH_AREA), sizeof(*name_out));
    }
    pthread_mutex_unlock(&ch.lock);
    return r;
}

int dios_create_named(const dios_spec *spec, const dios_name *name, uint32_t flags, dios_ref *ref_out) {
    if (!spec || !name || !ref_out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_CREATE, no_ref, flags);
    e.arg[0] = (uint64_t)spec->kind;
    e.arg[1] = spec->kind == DIOS_TIMER ? spec->after_ns : spec->size;
    e.arg[2] = spec->depth;
    e.arg[3] = area_offset(SCRATCH_AREA);
    e.arg[4] = area_offset(SCRATCH_AREA) + 64;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    memcpy(ch.window + e.arg[4], name, sizeof(*name));
    int r = submit(&e, &c);
    if (r == 0) *ref_out = word_ref(c.value[0]);
    pthread_mutex_unlock(&ch.lock);
    return r;
}

// Copies `n` references into the scratch area at `offset`.
static void put_refs(uint64_t offset, const dios_ref *refs, size_t n) {
    struct dios_wire_ref *w = (struct dios_wire_ref *)(ch.window + offset);
    for (size_t i = 0; i < n; i++) w[i] = (struct dios_wire_ref){refs[i].slot, refs[i].generation};
}

static void get_refs(uint64_t offset, dios_ref *refs, size_t n) {
    const struct dios_wire_ref *w = (const struct dios_wire_ref *)(ch.window + offset);
    for (size_t i = 0; i < n; i++) refs[i] = (dios_ref){w[i].slot, w[i].generation};
}

#define REFS_IN 4096u
#define REFS_OUT (REFS_IN + 8u * DIOS_MAX_REFS_PER_CALL)

int dios_lookup(const dios_name *name, uint32_t flags, dios_ref *refs, size_t max, size_t *found) {
    if (!name || (max && !refs)) return -DIOS_E_INVALID_ARGUMENT;
    if (max > DIOS_MAX_REFS_PER_CALL) max = DIOS_MAX_REFS_PER_CALL;
    struct dios_sqe e = entry(DIOS_OP_LOOKUP, no_ref, flags);
    e.arg[0] = 0;
    e.arg[1] = REFS_OUT;
    e.arg[2] = max;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    memcpy(ch.window, name, sizeof(*name));
    int r = submit(&e, &c);
    if (r == 0) {
        size_t n = c.value[0] < max ? (size_t)c.value[0] : max;
        get_refs(REFS_OUT, refs, n);
        if (found) *found = (size_t)c.value[0];
    }
    pthread_mutex_unlock(&ch.lock);
    return r;
}

static int take_area(uint32_t *area) {
    for (uint32_t a = 1; a < DIOS_WINDOW_AREAS; a++) {
        if (!(ch.areas & (1u << a))) {
            ch.areas |= 1u << a;
            *area = a;
            return 0;
        }
    }
    return -DIOS_E_BUSY;
}

// A transaction's begin: the view is one window area of its own, named in
// the entry's argument `area_arg`.
static int begin(struct dios_sqe *e, int area_arg, dios_txn *txn) {
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    uint32_t area;
    int r = take_area(&area);
    if (r == 0) {
        e->arg[area_arg] = area_offset(area);
        struct dios_cqe c;
        r = submit(e, &c);
        if (r == 0) {
            *txn = (dios_txn){.handle = c.value[0], .data = ch.window + area_offset(area), .size = (size_t)c.value[1],
                              .area = area};
        } else {
            ch.areas &= ~(1u << area);
        }
    }
    pthread_mutex_unlock(&ch.lock);
    return r;
}

int dios_begin_read(dios_ref ref, uint32_t flags, dios_txn *txn) {
    if (!txn) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_BEGIN_READ, ref, flags);
    e.arg[1] = DIOS_WINDOW_AREA;
    return begin(&e, 0, txn);
}

static int end(uint16_t op, dios_txn *txn, size_t length) {
    if (!txn || txn->area == 0 || txn->area >= DIOS_WINDOW_AREAS) return -DIOS_E_NOT_IN_TRANSACTION;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    struct dios_sqe e = entry(op, no_ref, 0);
    e.arg[0] = txn->handle;
    e.arg[1] = length;
    struct dios_cqe c;
    pthread_mutex_lock(&ch.lock);
    int r = submit(&e, &c);
    if (r != -DIOS_E_OUTSIDE_VIEW) {  // a length beyond the view leaves the write open
        ch.areas &= ~(1u << txn->area);
        txn->area = 0;
    }
    pthread_mutex_unlock(&ch.lock);
    return r == 0 ? (int)c.value[0] : r;
}

int dios_end_read(dios_txn *txn) { return end(DIOS_OP_END_READ, txn, 0); }
int dios_end_write(dios_txn *txn, size_t length) { return end(DIOS_OP_END_WRITE, txn, length); }
int dios_abandon(dios_txn *txn) {
    int r = end(DIOS_OP_ABANDON, txn, 0);
    return r < 0 ? r : 0;
}

int dios_begin_write(dios_ref ref, size_t size, uint32_t flags, dios_txn *txn) {
    if (!txn) return -DIOS_E_INVALID_ARGUMENT;
    if (size > DIOS_WINDOW_AREA) return -DIOS_E_TOO_LARGE;
    struct dios_sqe e = entry(DIOS_OP_BEGIN_WRITE, ref, flags);
    e.arg[0] = size;
    return begin(&e, 1, txn);
}

int dios_run(dios_ref program, const dios_ref *args, size_t nargs, uint32_t flags, int node, int core,
             dios_ref *task_out) {
    if ((nargs && !args) || nargs > DIOS_MAX_REFS_PER_CALL || !task_out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_RUN, program, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = nargs;
    if (core < 0) {
        e.arg[2] = UINT64_MAX;
    } else {
        e.arg[2] = (node < 0 ? 0xFFFFull : (uint64_t)(uint16_t)node) << 16 | (uint16_t)core;
    }
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    put_refs(REFS_IN, args, nargs);
    int r = submit(&e, &c);
    if (r == 0) *task_out = word_ref(c.value[0]);
    pthread_mutex_unlock(&ch.lock);
    return r;
}

int dios_pause(dios_ref task, uint32_t flags) {
    struct dios_sqe e = entry(DIOS_OP_PAUSE, task, flags);
    struct dios_cqe c;
    return call(&e, &c);
}

int dios_copy(const dios_ref *refs, size_t n, dios_ref task, uint32_t rights, uint32_t flags, dios_ref *out) {
    if ((n && !refs) || n > DIOS_MAX_REFS_PER_CALL) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_COPY, task, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = n;
    e.arg[2] = rights;
    e.arg[3] = REFS_OUT;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    put_refs(REFS_IN, refs, n);
    int r = submit(&e, &c);
    if (r == 0 && out) get_refs(REFS_OUT, out, n);
    pthread_mutex_unlock(&ch.lock);
    return r;
}

int dios_delete(dios_ref ref, uint32_t flags) {
    struct dios_sqe e = entry(DIOS_OP_DELETE, ref, flags);
    struct dios_cqe c;
    return call(&e, &c);
}

int dios_select(const dios_ref *refs, size_t n, uint32_t flags, size_t *ready_index) {
    if (!refs || n == 0 || n > DIOS_MAX_REFS_PER_CALL) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_SELECT, no_ref, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = n;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    put_refs(REFS_IN, refs, n);
    int r = submit(&e, &c);
    if (r == 0 && ready_index) *ready_index = (size_t)c.value[0];
    pthread_mutex_unlock(&ch.lock);
    return r;
}

int dios_restrict(dios_ref ref, uint32_t rights, dios_ref *out) {
    if (!out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_RESTRICT, ref, 0);
    e.arg[0] = rights;
    struct dios_cqe c;
    int r = call(&e, &c);
    if (r == 0) *out = word_ref(c.value[0]);
    return r;
}

int dios_describe(dios_ref ref, dios_entry *out) {
    if (!out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = entry(DIOS_OP_DESCRIBE, ref, 0);
    struct dios_cqe c;
    int r = call(&e, &c);
    if (r == 0) {
        uint64_t v = c.value[0];
        *out = (dios_entry){.kind = (dios_kind)(v & 0xFF), .rights = (uint32_t)(v >> 8 & 0xFF),
                            .proximity = (uint32_t)(v >> 16 & 0xFF), .persistent = (uint32_t)(v >> 24 & 0xFF),
                            .max_write_size = c.value[1], .owner_node = (uint16_t)(v >> 32),
                            .owner_core = (uint16_t)(v >> 48)};
    }
    return r;
}

int dios_delegated(dios_ref *refs, size_t max, size_t *count) {
    if (max && !refs) return -DIOS_E_INVALID_ARGUMENT;
    if (max > DIOS_MAX_REFS_PER_CALL) max = DIOS_MAX_REFS_PER_CALL;
    struct dios_sqe e = entry(DIOS_OP_DELEGATED, no_ref, 0);
    e.arg[0] = REFS_OUT;
    e.arg[1] = max;
    struct dios_cqe c;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&ch.lock);
    int r = submit(&e, &c);
    if (r == 0) {
        size_t n = c.value[0] < max ? (size_t)c.value[0] : max;
        get_refs(REFS_OUT, refs, n);
        if (count) *count = (size_t)c.value[0];
    }
    pthread_mutex_unlock(&ch.lock);
    return r;
}

// The conveniences submit one entry per attempt (begin, copy, end in the
// kernel), through the scratch area, under the lock.
int dios_write(dios_ref ref, const void *bytes, size_t length, uint32_t flags) {
    if (length > DIOS_WINDOW_AREA) return -DIOS_E_TOO_LARGE;
    if (length && !bytes) return -DIOS_E_INVALID_ARGUMENT;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    for (;;) {
        struct dios_sqe e = entry(DIOS_OP_WRITE, ref, flags);
        e.arg[0] = area_offset(SCRATCH_AREA);
        e.arg[1] = length;
        struct dios_cqe c;
        pthread_mutex_lock(&ch.lock);
        memcpy(ch.window + e.arg[0], bytes, length);
        int r = submit(&e, &c);
        pthread_mutex_unlock(&ch.lock);
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t i;
            r = dios_select(&ref, 1, flags | DIOS_WRITABLE, &i);
            if (r < 0) return r;
            continue;
        }
        return r < 0 ? r : (int)c.value[0];
    }
}

int dios_read(dios_ref ref, void *buffer, size_t capacity, size_t *length, uint32_t flags) {
    if (capacity && !buffer) return -DIOS_E_INVALID_ARGUMENT;
    if (!ready()) return -DIOS_E_NO_CHANNEL;
    for (;;) {
        struct dios_sqe e = entry(DIOS_OP_READ, ref, flags);
        e.arg[0] = area_offset(SCRATCH_AREA);
        e.arg[1] = DIOS_WINDOW_AREA;
        struct dios_cqe c;
        pthread_mutex_lock(&ch.lock);
        int r = submit(&e, &c);
        if (r == 0 && c.value[1] == 1) {
            size_t size = (size_t)c.value[0];
            memcpy(buffer, ch.window + e.arg[0], size < capacity ? size : capacity);
            if (length) *length = size;
        }
        pthread_mutex_unlock(&ch.lock);
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t i;
            r = dios_select(&ref, 1, flags & ~(uint32_t)DIOS_WRITABLE, &i);
            if (r < 0) return r;
            continue;
        }
        if (r < 0) return r;
        if (c.value[1] == 1) return 0;
        sched_yield(); // overlapped by a write: read again
    }
}

const char *dios_strerror(int error) {
    switch (error < 0 ? -error : error) {
    case DIOS_OK: return "success";
    case DIOS_E_REF_INVALID: return "the reference was never issued to this task";
    case DIOS_E_REF_STALE: return "the reference is stale: its object was deleted or the reference dropped";
    case DIOS_E_REF_MISSING_RIGHT: return "the reference lacks a right the call needs";
    case DIOS_E_REF_WIDENING: return "copy may only restrict rights";
    case DIOS_E_TABLE_FULL: return "the reference table is full";
    case DIOS_E_UNTRUSTED: return "lookup and run are for trusted tasks only";
    case DIOS_E_WRONG_KIND: return "the call does not apply to this kind of object";
    case DIOS_E_WOULD_BLOCK: return "the object is not ready; select on it to wait";
    case DIOS_E_BUSY: return "another transaction holds the object";
    case DIOS_E_OBJECT_DELETED: return "the object was deleted";
    case DIOS_E_TOO_LARGE: return "the write exceeds the reference's maximum write size";
    case DIOS_E_NO_SUCH_NAME: return "no reachable instance of the name";
    case DIOS_E_OUT_OF_MEMORY: return "the pools have no buffer of that size left";
    case DIOS_E_INVALID_ARGUMENT: return "an argument was out of range";
    case DIOS_E_NOT_IN_TRANSACTION: return "no such open transaction";
    case DIOS_E_TASK_STOPPED: return "the task is being stopped";
    case DIOS_E_UNREACHABLE: return "the instance holding the object is unreachable";
    case DIOS_E_OUTSIDE_VIEW: return "the access lies outside the transaction's view";
    case DIOS_E_BAD_ENTRY: return "the kernel could not decode the call's ring entry";
    case DIOS_E_NO_CHANNEL: return "this process is not a DIOS task, or its channel is closed";
    default: return "unknown DIOS error";
    }
}
