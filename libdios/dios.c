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
#include "dios_internal.h"

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

struct libdios libdios = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT, .doorbell = -1};

static int env_fd(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return (*end == 0 && v >= 0 && v < 1 << 20) ? (int)v : -1;
}

static void attach(void) {
    libdios.attached = -1;
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
    libdios.base = p;
    libdios.header = h;
    libdios.sq = (struct dios_sqe *)(libdios.base + DIOS_CHANNEL_SQ_OFFSET);
    libdios.cq = (struct dios_cqe *)(libdios.base + DIOS_CHANNEL_CQ_OFFSET);
    libdios.window = libdios.base + DIOS_CHANNEL_WINDOW_OFFSET;
    libdios.sq_tail = __atomic_load_n(&h->sq_tail, __ATOMIC_ACQUIRE);
    libdios.cq_head = __atomic_load_n(&h->cq_head, __ATOMIC_ACQUIRE);
    libdios.doorbell = env_fd(DIOS_ENV_DOORBELL_FD);
    libdios.attached = 1;
    // A trusted task maps the arena its streams' rings lie in; without it
    // every call goes through the channel, as an untrusted task's do.
    int arena = env_fd(DIOS_ENV_ARENA_FD);
    if (arena >= 0 && h->trusted && fstat(arena, &st) == 0 && st.st_size > 0) {
        void *a = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, arena, 0);
        if (a != MAP_FAILED) {
            libdios.arena = a;
            libdios.arena_size = (size_t)st.st_size;
        }
    }
    if (arena >= 0) close(arena);
}

// A task process lives no longer than the diosd that started it: when that
// thread goes, the kernel sends SIGKILL. Done at load time, before main, so a
// program killed early in its life is not left behind either.
__attribute__((constructor)) static void dios_at_load(void) {
    if (env_fd(DIOS_ENV_CHANNEL_FD) < 0) return;
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137); // the parent went before the request took hold
    pthread_once(&libdios.once, attach);
}

int libdios_ready(void) {
    pthread_once(&libdios.once, attach);
    return libdios.attached == 1;
}

int dios_is_task(void) { return libdios_ready(); }
int dios_is_trusted(void) { return libdios_ready() && libdios.header->trusted != 0; }

int dios_arena_span(void **base, size_t *size) {
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    if (!libdios.arena) return -DIOS_E_UNTRUSTED;
    if (base) *base = libdios.arena;
    if (size) *size = libdios.arena_size;
    return 0;
}

void libdios_ring_doorbell(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&libdios.header->instance_sleeping, __ATOMIC_ACQUIRE) && libdios.doorbell >= 0) {
        uint64_t one = 1;
        (void)!write(libdios.doorbell, &one, sizeof(one));
    }
}

static void wait_for_completion(void) {
    volatile struct dios_channel_header *h = libdios.header;
    // On the instance's own CPU a pause only delays the answer: yield at once.
    int first = h->instance_cpu >= 0 && sched_getcpu() == h->instance_cpu ? PAUSES : 0;
    for (int i = first; i < PAUSES + YIELDS; i++) {
        if (__atomic_load_n(&h->cq_tail, __ATOMIC_ACQUIRE) != libdios.cq_head) return;
        if (i < PAUSES) {
            __builtin_ia32_pause();
        } else {
            sched_yield();
        }
    }
    for (;;) {
        __atomic_store_n(&h->process_sleeping, 1, __ATOMIC_SEQ_CST);
        uint32_t seen = __atomic_load_n(&h->cq_tail, __ATOMIC_SEQ_CST);
        if (seen != libdios.cq_head) break;
        // A bounded sleep: should the kernel's wake be missed, the next look is
        // at most 100 ms away.
        struct timespec limit = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        syscall(SYS_futex, (uint32_t *)&h->cq_tail, FUTEX_WAIT, seen, &limit, NULL, 0);
    }
    __atomic_store_n(&h->process_sleeping, 0, __ATOMIC_RELAXED);
}

// Submits one entry and waits for its completion; the lock is held.
int libdios_submit(struct dios_sqe *e, struct dios_cqe *out) {
    e->user_data = ++libdios.next_call;
    libdios.sq[libdios.sq_tail & MASK] = *e;
    libdios.sq_tail++;
    __atomic_store_n(&libdios.header->sq_tail, libdios.sq_tail, __ATOMIC_RELEASE);
    libdios_ring_doorbell();
    wait_for_completion();
    *out = libdios.cq[libdios.cq_head & MASK];
    libdios.cq_head++;
    __atomic_store_n(&libdios.header->cq_head, libdios.cq_head, __ATOMIC_RELEASE);
    if (out->user_data != e->user_data) return -DIOS_E_NO_CHANNEL;
    return out->error == 0 ? 0 : -out->error;
}

static int call(struct dios_sqe *e, struct dios_cqe *out) {
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    int r = libdios_submit(e, out);
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

static uint64_t area_offset(uint32_t area) { return (uint64_t)area * DIOS_WINDOW_AREA; }

static dios_ref word_ref(uint64_t w) { return (dios_ref){.slot = (uint32_t)(w >> 32), .generation = (uint32_t)w}; }

struct dios_sqe libdios_entry(uint16_t op, dios_ref ref, uint32_t flags) {
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
    struct dios_sqe e = libdios_entry(DIOS_OP_CREATE, no_ref, flags);
    e.arg[0] = (uint64_t)spec->kind;
    e.arg[1] = spec->kind == DIOS_TIMER ? spec->after_ns : spec->size;
    e.arg[2] = spec->depth;
    e.arg[3] = area_offset(SCRATCH_AREA);
    e.arg[4] = UINT64_MAX;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    int r = libdios_submit(&e, &c);
    if (r == 0) {
        *ref_out = word_ref(c.value[0]);
        if (name_out) memcpy(name_out, libdios.window + area_offset(SCRATCH_AREA), sizeof(*name_out));
    }
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

int dios_create_named(const dios_spec *spec, const dios_name *name, uint32_t flags, dios_ref *ref_out) {
    if (!spec || !name || !ref_out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = libdios_entry(DIOS_OP_CREATE, no_ref, flags);
    e.arg[0] = (uint64_t)spec->kind;
    e.arg[1] = spec->kind == DIOS_TIMER ? spec->after_ns : spec->size;
    e.arg[2] = spec->depth;
    e.arg[3] = area_offset(SCRATCH_AREA);
    e.arg[4] = area_offset(SCRATCH_AREA) + 64;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    memcpy(libdios.window + e.arg[4], name, sizeof(*name));
    int r = libdios_submit(&e, &c);
    if (r == 0) *ref_out = word_ref(c.value[0]);
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

// Copies `n` references into the scratch area at `offset`.
static void put_refs(uint64_t offset, const dios_ref *refs, size_t n) {
    struct dios_wire_ref *w = (struct dios_wire_ref *)(libdios.window + offset);
    for (size_t i = 0; i < n; i++) w[i] = (struct dios_wire_ref){refs[i].slot, refs[i].generation};
}

static void get_refs(uint64_t offset, dios_ref *refs, size_t n) {
    const struct dios_wire_ref *w = (const struct dios_wire_ref *)(libdios.window + offset);
    for (size_t i = 0; i < n; i++) refs[i] = (dios_ref){w[i].slot, w[i].generation};
}

#define REFS_IN 4096u
#define REFS_OUT (REFS_IN + 8u * DIOS_MAX_REFS_PER_CALL)

int dios_lookup(const dios_name *name, uint32_t flags, dios_ref *refs, size_t max, size_t *found) {
    if (!name || (max && !refs)) return -DIOS_E_INVALID_ARGUMENT;
    if (max > DIOS_MAX_REFS_PER_CALL) max = DIOS_MAX_REFS_PER_CALL;
    struct dios_sqe e = libdios_entry(DIOS_OP_LOOKUP, no_ref, flags);
    e.arg[0] = 0;
    e.arg[1] = REFS_OUT;
    e.arg[2] = max;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    memcpy(libdios.window, name, sizeof(*name));
    int r = libdios_submit(&e, &c);
    if (r == 0) {
        size_t n = c.value[0] < max ? (size_t)c.value[0] : max;
        get_refs(REFS_OUT, refs, n);
        if (found) *found = (size_t)c.value[0];
    }
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

static int take_area(uint32_t *area) {
    for (uint32_t a = 1; a < DIOS_WINDOW_AREAS; a++) {
        if (!(libdios.areas & (1u << a))) {
            libdios.areas |= 1u << a;
            *area = a;
            return 0;
        }
    }
    return -DIOS_E_BUSY;
}

// A transaction's begin: the view is one window area of its own, named in
// the entry's argument `area_arg`.
static int begin(struct dios_sqe *e, int area_arg, dios_txn *txn) {
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    uint32_t area;
    int r = take_area(&area);
    if (r == 0) {
        e->arg[area_arg] = area_offset(area);
        struct dios_cqe c;
        r = libdios_submit(e, &c);
        if (r == 0) {
            *txn = (dios_txn){.handle = c.value[0], .data = libdios.window + area_offset(area), .size = (size_t)c.value[1],
                              .area = area};
        } else {
            libdios.areas &= ~(1u << area);
        }
    }
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

int dios_begin_read(dios_ref ref, uint32_t flags, dios_txn *txn) {
    if (!txn) return -DIOS_E_INVALID_ARGUMENT;
    struct libdios_map *m = libdios_map_for(ref, 0);
    if (m) {
        int r = libdios_mapped_begin_read(m, txn);
        if (r != LIBDIOS_USE_CHANNEL) return r;
    }
    struct dios_sqe e = libdios_entry(DIOS_OP_BEGIN_READ, ref, flags);
    e.arg[1] = DIOS_WINDOW_AREA;
    return begin(&e, 0, txn);
}

static int end(uint16_t op, dios_txn *txn, size_t length) {
    if (txn && txn->area == LIBDIOS_TXN_MAPPED) return libdios_mapped_end(txn, op != DIOS_OP_ABANDON, length);
    if (!txn || txn->area == 0 || txn->area >= DIOS_WINDOW_AREAS) return -DIOS_E_NOT_IN_TRANSACTION;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    struct dios_sqe e = libdios_entry(op, no_ref, 0);
    e.arg[0] = txn->handle;
    e.arg[1] = length;
    struct dios_cqe c;
    pthread_mutex_lock(&libdios.lock);
    int r = libdios_submit(&e, &c);
    if (r != -DIOS_E_OUTSIDE_VIEW) {  // a length beyond the view leaves the write open
        libdios.areas &= ~(1u << txn->area);
        txn->area = 0;
    }
    pthread_mutex_unlock(&libdios.lock);
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
    struct libdios_map *m = libdios_map_for(ref, 1);
    if (m) {
        int r = libdios_mapped_begin_write(m, size, txn);
        if (r != LIBDIOS_USE_CHANNEL) return r;
    }
    if (size > DIOS_WINDOW_AREA) return -DIOS_E_TOO_LARGE;
    struct dios_sqe e = libdios_entry(DIOS_OP_BEGIN_WRITE, ref, flags);
    e.arg[0] = size;
    return begin(&e, 1, txn);
}

int dios_run(dios_ref program, const dios_ref *args, size_t nargs, uint32_t flags, int node, int core,
             dios_ref *task_out) {
    if ((nargs && !args) || nargs > DIOS_MAX_REFS_PER_CALL || !task_out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = libdios_entry(DIOS_OP_RUN, program, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = nargs;
    if (core < 0) {
        e.arg[2] = UINT64_MAX;
    } else {
        e.arg[2] = (node < 0 ? 0xFFFFull : (uint64_t)(uint16_t)node) << 16 | (uint16_t)core;
    }
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    put_refs(REFS_IN, args, nargs);
    int r = libdios_submit(&e, &c);
    if (r == 0) *task_out = word_ref(c.value[0]);
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

int dios_pause(dios_ref task, uint32_t flags) {
    struct dios_sqe e = libdios_entry(DIOS_OP_PAUSE, task, flags);
    struct dios_cqe c;
    return call(&e, &c);
}

int dios_copy(const dios_ref *refs, size_t n, dios_ref task, uint32_t rights, uint32_t flags, dios_ref *out) {
    if ((n && !refs) || n > DIOS_MAX_REFS_PER_CALL) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = libdios_entry(DIOS_OP_COPY, task, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = n;
    e.arg[2] = rights;
    e.arg[3] = REFS_OUT;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    put_refs(REFS_IN, refs, n);
    int r = libdios_submit(&e, &c);
    if (r == 0 && out) get_refs(REFS_OUT, out, n);
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

int dios_delete(dios_ref ref, uint32_t flags) {
    struct dios_sqe e = libdios_entry(DIOS_OP_DELETE, ref, flags);
    struct dios_cqe c;
    return call(&e, &c);
}

int dios_select(const dios_ref *refs, size_t n, uint32_t flags, size_t *ready_index) {
    if (!refs || n == 0 || n > DIOS_MAX_REFS_PER_CALL) return -DIOS_E_INVALID_ARGUMENT;
    // Streams this process works itself are watched here a while first: the
    // kernel is asked to wait only when none becomes ready meanwhile.
    long local = libdios_mapped_select(refs, n, (flags & DIOS_WRITABLE) != 0);
    if (local >= 0) {
        if (ready_index) *ready_index = (size_t)local;
        return 0;
    }
    struct dios_sqe e = libdios_entry(DIOS_OP_SELECT, no_ref, flags);
    e.arg[0] = REFS_IN;
    e.arg[1] = n;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    put_refs(REFS_IN, refs, n);
    int r = libdios_submit(&e, &c);
    if (r == 0 && ready_index) *ready_index = (size_t)c.value[0];
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

int dios_restrict(dios_ref ref, uint32_t rights, dios_ref *out) {
    if (!out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = libdios_entry(DIOS_OP_RESTRICT, ref, 0);
    e.arg[0] = rights;
    struct dios_cqe c;
    int r = call(&e, &c);
    if (r == 0) *out = word_ref(c.value[0]);
    return r;
}

int dios_describe(dios_ref ref, dios_entry *out) {
    if (!out) return -DIOS_E_INVALID_ARGUMENT;
    struct dios_sqe e = libdios_entry(DIOS_OP_DESCRIBE, ref, 0);
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
    struct dios_sqe e = libdios_entry(DIOS_OP_DELEGATED, no_ref, 0);
    e.arg[0] = REFS_OUT;
    e.arg[1] = max;
    struct dios_cqe c;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    pthread_mutex_lock(&libdios.lock);
    int r = libdios_submit(&e, &c);
    if (r == 0) {
        size_t n = c.value[0] < max ? (size_t)c.value[0] : max;
        get_refs(REFS_OUT, refs, n);
        if (count) *count = (size_t)c.value[0];
    }
    pthread_mutex_unlock(&libdios.lock);
    return r;
}

// The conveniences submit one entry per attempt (begin, copy, end in the
// kernel), through the scratch area, under the lock.
int dios_write(dios_ref ref, const void *bytes, size_t length, uint32_t flags) {
    if (length > DIOS_WINDOW_AREA) return -DIOS_E_TOO_LARGE;
    if (length && !bytes) return -DIOS_E_INVALID_ARGUMENT;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    for (struct libdios_map *m = libdios_map_for(ref, 1); m;) {
        dios_txn txn;
        int r = libdios_mapped_begin_write(m, length, &txn);
        if (r == LIBDIOS_USE_CHANNEL) break;
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t i;
            r = dios_select(&ref, 1, flags | DIOS_WRITABLE, &i);
            if (r < 0) return r;
            continue;
        }
        if (r < 0) return r;
        memcpy(txn.data, bytes, length);
        return libdios_mapped_end(&txn, 1, length);
    }
    // One submission that waits in the kernel while the stream is full.
    struct dios_sqe e = libdios_entry(DIOS_OP_WRITE, ref, flags);
    e.arg[0] = area_offset(SCRATCH_AREA);
    e.arg[1] = length;
    e.arg[2] = 1;
    struct dios_cqe c;
    pthread_mutex_lock(&libdios.lock);
    memcpy(libdios.window + e.arg[0], bytes, length);
    int r = libdios_submit(&e, &c);
    pthread_mutex_unlock(&libdios.lock);
    return r < 0 ? r : (int)c.value[0];
}

int dios_read(dios_ref ref, void *buffer, size_t capacity, size_t *length, uint32_t flags) {
    if (capacity && !buffer) return -DIOS_E_INVALID_ARGUMENT;
    if (!libdios_ready()) return -DIOS_E_NO_CHANNEL;
    for (struct libdios_map *m = libdios_map_for(ref, 0); m;) {
        dios_txn txn;
        int r = libdios_mapped_begin_read(m, &txn);
        if (r == LIBDIOS_USE_CHANNEL) break;
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t i;
            r = dios_select(&ref, 1, flags & ~(uint32_t)DIOS_WRITABLE, &i);
            if (r < 0) return r;
            continue;
        }
        if (r < 0) return r;
        memcpy(buffer, txn.data, txn.size < capacity ? txn.size : capacity);
        if (length) *length = txn.size;
        r = libdios_mapped_end(&txn, 1, 0);
        return r < 0 ? r : 0;
    }
    for (;;) {
        struct dios_sqe e = libdios_entry(DIOS_OP_READ, ref, flags);
        e.arg[0] = area_offset(SCRATCH_AREA);
        e.arg[1] = DIOS_WINDOW_AREA;
        e.arg[2] = 1; // waits in the kernel while there is nothing to read
        struct dios_cqe c;
        pthread_mutex_lock(&libdios.lock);
        int r = libdios_submit(&e, &c);
        if (r == 0 && c.value[1] == 1) {
            size_t size = (size_t)c.value[0];
            memcpy(buffer, libdios.window + e.arg[0], size < capacity ? size : capacity);
            if (length) *length = size;
        }
        pthread_mutex_unlock(&libdios.lock);
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
