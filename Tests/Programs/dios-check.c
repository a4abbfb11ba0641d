// A DIOS task process for the tests, written against the C ABI as a user's
// program would be: `dios-check MODE ARGS...`, its references delegated by
// `run`. Exit status 0 means every check it makes held.
#define _GNU_SOURCE
#include <dios.h>
#include <dios_channel.h>

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static uint64_t checksum(uint64_t seq) { return seq * 0x9E3779B97F4A7C15ull ^ 0xD1B54A32D192ED03ull; }

static int fail(const char *what, int r) {
    fprintf(stderr, "dios-check: %s: %s (%d)\n", what, dios_strerror(r), r);
    return 1;
}

static int delegated(dios_ref *refs, size_t want) {
    size_t n = 0;
    int r = dios_delegated(refs, want, &n);
    if (r < 0) return fail("delegated", r);
    if (n < want) {
        fprintf(stderr, "dios-check: %zu references delegated, %zu needed\n", n, want);
        return 1;
    }
    return 0;
}

// Streams COUNT numbered, checksummed messages into the stream it was given.
static int stream(uint64_t count) {
    dios_ref out;
    if (delegated(&out, 1)) return 1;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t m[2] = {i, checksum(i)};
        int r = dios_write(out, m, sizeof(m), 0);
        if (r < 0) return fail("write", r);
    }
    printf("wrote %llu messages\n", (unsigned long long)count);
    return 0;
}

// Reads COUNT messages from the first stream and checks their order and sums.
static int sink(uint64_t count) {
    dios_ref in;
    if (delegated(&in, 1)) return 1;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t m[2];
        size_t n = 0;
        int r = dios_read(in, m, sizeof(m), &n, 0);
        if (r < 0) return fail("read", r);
        if (n != sizeof(m) || m[0] != i || m[1] != checksum(i)) {
            fprintf(stderr, "dios-check: message %llu is wrong (%zu bytes, seq %llu)\n", (unsigned long long)i, n,
                    (unsigned long long)m[0]);
            return 1;
        }
    }
    printf("read %llu messages in order\n", (unsigned long long)count);
    return 0;
}

// Echoes COUNT messages from the first stream to the second.
static int echo(uint64_t count) {
    dios_ref r2[2];
    if (delegated(r2, 2)) return 1;
    for (uint64_t i = 0; i < count; i++) {
        uint8_t m[4096];
        size_t n = 0;
        int r = dios_read(r2[0], m, sizeof(m), &n, 0);
        if (r < 0) return fail("read", r);
        r = dios_write(r2[1], m, n, 0);
        if (r < 0) return fail("write", r);
    }
    return 0;
}

// Whether the view lies in this process's mapping of the arena; `in_arena`
// says where it must lie: 1 there (a trusted task on a local stream), 0 in
// the channel's window (an untrusted task, which maps no arena at all).
static int view_where(const dios_txn *t, int in_arena) {
    void *base = NULL;
    size_t size = 0;
    int r = dios_arena_span(&base, &size);
    if (!in_arena) {
        if (r != -DIOS_E_UNTRUSTED) {
            fprintf(stderr, "dios-check: an untrusted task maps the arena (%d)\n", r);
            return 1;
        }
        return 0;
    }
    if (r < 0) return fail("arena_span", r);
    uintptr_t p = (uintptr_t)t->data, b = (uintptr_t)base;
    if (p < b || p + t->size > b + size) {
        fprintf(stderr, "dios-check: a view at %p (%zu bytes) lies outside the arena [%p, +%zu)\n", t->data, t->size,
                base, size);
        return 1;
    }
    return 0;
}

// `stream`, each message written in place: begin_write, the view filled, end_write.
static int inplace_stream(uint64_t count, int in_arena) {
    dios_ref out;
    if (delegated(&out, 1)) return 1;
    for (uint64_t i = 0; i < count;) {
        dios_txn t;
        int r = dios_begin_write(out, 16, 0, &t);
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t k;
            if ((r = dios_select(&out, 1, DIOS_WRITABLE, &k)) < 0) return fail("select", r);
            continue;
        }
        if (r < 0) return fail("begin_write", r);
        if (view_where(&t, in_arena)) return 1;
        uint64_t m[2] = {i, checksum(i)};
        memcpy(t.data, m, sizeof(m));
        if ((r = dios_end_write(&t, sizeof(m))) != 1) return fail("end_write", r);
        i++;
    }
    printf("wrote %llu messages in place\n", (unsigned long long)count);
    return 0;
}

// A trusted writer that lies in the ring it maps: it takes the first slot of
// a fresh stream's write side and, without ending the write, publishes two
// forged headers (the ring's layout from dios_channel.h): the first says its
// message is held elsewhere, at a made-up address; the second claims 2 GiB.
// The kernel reading them must stay inside the slots.
static int forge(void) {
    dios_ref out;
    if (delegated(&out, 1)) return 1;
    dios_txn t;
    int r = dios_begin_write(out, 16, 0, &t);
    if (r < 0) return fail("begin_write", r);
    uint8_t *slot0 = (uint8_t *)t.data - 8;
    uint8_t *ring = slot0 - DIOS_RING_SLOTS;
    uint32_t stride = *(uint32_t *)(ring + DIOS_RING_STRIDE);
    uint8_t *slot1 = slot0 + stride;
    ((uint64_t *)slot0)[1] = 0xdead0000ull; // "the message's address"
    ((uint64_t *)slot0)[2] = 0xbeefull;     // "its handle"
    __atomic_store_n((uint64_t *)slot1, 2ull << 32 | 0x7fffffffu, __ATOMIC_RELEASE);
    __atomic_store_n((uint64_t *)slot0, 1ull << 32 | DIOS_RING_HELD_ELSEWHERE | 16u, __ATOMIC_RELEASE);
    printf("forged 2 headers, stride %u\n", stride);
    return 0;
}

// `sink`, each message read in place: begin_read, the view checked, end_read.
static int inplace_sink(uint64_t count, int in_arena) {
    dios_ref in;
    if (delegated(&in, 1)) return 1;
    for (uint64_t i = 0; i < count;) {
        dios_txn t;
        int r = dios_begin_read(in, 0, &t);
        if (r == -DIOS_E_WOULD_BLOCK) {
            size_t k;
            if ((r = dios_select(&in, 1, 0, &k)) < 0) return fail("select", r);
            continue;
        }
        if (r < 0) return fail("begin_read", r);
        if (view_where(&t, in_arena)) return 1;
        uint64_t m[2];
        if (t.size != sizeof(m)) {
            fprintf(stderr, "dios-check: message %llu has %zu bytes\n", (unsigned long long)i, t.size);
            return 1;
        }
        memcpy(m, t.data, sizeof(m));
        if (m[0] != i || m[1] != checksum(i)) {
            fprintf(stderr, "dios-check: message %llu is wrong (seq %llu)\n", (unsigned long long)i,
                    (unsigned long long)m[0]);
            return 1;
        }
        if ((r = dios_end_read(&t)) != 1) return fail("end_read", r);
        i++;
    }
    printf("read %llu messages in place, in order\n", (unsigned long long)count);
    return 0;
}

// The blob rules as a process sees them: a committed write is read back; a
// weak read overlapped by a commit is inconsistent; a strong write excludes
// another writer; a write not ended publishes nothing.
static int blob(void) {
    dios_ref b;
    if (delegated(&b, 1)) return 1;
    uint8_t pattern[64];
    for (int i = 0; i < 64; i++) pattern[i] = (uint8_t)(i * 7 + 1);
    int r = dios_write(b, pattern, sizeof(pattern), 0);
    if (r != 1) return fail("write", r);
    uint8_t back[64];
    size_t n = 0;
    r = dios_read(b, back, sizeof(back), &n, 0);
    if (r < 0) return fail("read", r);
    if (memcmp(back, pattern, sizeof(back)) != 0) {
        fprintf(stderr, "dios-check: the blob does not read back what was written\n");
        return 1;
    }
    dios_txn rd, wr;
    if ((r = dios_begin_read(b, 0, &rd)) < 0) return fail("begin_read", r);
    if ((r = dios_begin_write(b, 64, 0, &wr)) < 0) return fail("begin_write", r);
    memset(wr.data, 0xAB, 64);
    if ((r = dios_end_write(&wr, 64)) != 1) return fail("end_write", r);
    if ((r = dios_end_read(&rd)) != 0) {
        fprintf(stderr, "dios-check: a weak read overlapped by a commit said consistent (%d)\n", r);
        return 1;
    }
    dios_txn strong, second;
    if ((r = dios_begin_write(b, 64, DIOS_STRONG, &strong)) < 0) return fail("strong begin_write", r);
    r = dios_begin_write(b, 64, 0, &second);
    if (r != -DIOS_E_BUSY && r != -DIOS_E_WOULD_BLOCK) {
        fprintf(stderr, "dios-check: a second writer under a strong write was let in (%d)\n", r);
        return 1;
    }
    memset(strong.data, 0xCD, 64);
    if ((r = dios_abandon(&strong)) < 0) return fail("abandon", r);
    r = dios_read(b, back, sizeof(back), &n, 0);
    if (r < 0) return fail("read", r);
    if (back[0] != 0xAB) {
        fprintf(stderr, "dios-check: an abandoned write was published\n");
        return 1;
    }
    printf("blob rules hold\n");
    return 0;
}

// Takes a strong write on the blob, says so on the stream, then waits to be killed.
static int hold(void) {
    dios_ref r2[2];
    if (delegated(r2, 2)) return 1;
    dios_txn w;
    int r = dios_begin_write(r2[0], 64, DIOS_STRONG, &w);
    if (r < 0) return fail("strong begin_write", r);
    memset(w.data, 0xEE, 64);
    const char msg[] = "holding";
    r = dios_write(r2[1], msg, sizeof(msg), 0);
    if (r < 0) return fail("write", r);
    for (;;) pause();
}

// What an untrusted process must not reach: each attempt that succeeds is a
// failure. `diosd` is the node's pid, `other` another task process's.
static int reach_process(int pid, const char *whose) {
    int leaks = 0;
    char path[256];
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    if (open(path, O_RDONLY) >= 0) {
        fprintf(stderr, "leak: opened %s's memory, %s\n", whose, path);
        leaks++;
    }
    for (int fd = 0; fd < 64; fd++) {
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
        int f = open(path, O_RDONLY);
        if (f >= 0) {
            fprintf(stderr, "leak: opened %s's descriptor %s\n", whose, path);
            leaks++;
            close(f);
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/map_files", pid);
    if (open(path, O_RDONLY | O_DIRECTORY) >= 0) {
        fprintf(stderr, "leak: opened %s's mapped files\n", whose);
        leaks++;
    }
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0) {
        fprintf(stderr, "leak: traced %s\n", whose);
        leaks++;
    }
    char byte;
    struct iovec local = {&byte, 1}, remote = {(void *)0x400000, 1};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) >= 0 || errno != EPERM) {
        fprintf(stderr, "leak: process_vm_readv of %s was not refused with EPERM\n", whose);
        leaks++;
    }
    return leaks;
}

static int isolation(const char *arena, int diosd, int other) {
    int leaks = 0;
    if (arena[0] && open(arena, O_RDONLY) >= 0) {
        fprintf(stderr, "leak: opened the arena file %s\n", arena);
        leaks++;
    }
    leaks += reach_process(diosd, "diosd");
    if (other > 0) leaks += reach_process(other, "another task");
    if (socket(AF_INET, SOCK_DGRAM, 0) >= 0) {
        fprintf(stderr, "leak: made a socket\n");
        leaks++;
    }
    // The calls still work, checked against its table: lookup is refused.
    dios_name none = {{1, 2, 3, 4}};
    size_t found = 0;
    dios_ref got;
    int r = dios_lookup(&none, 0, &got, 1, &found);
    if (r != -DIOS_E_UNTRUSTED) {
        fprintf(stderr, "leak: an untrusted lookup was not refused (%d)\n", r);
        leaks++;
    }
    printf("isolation: %d leaks\n", leaks);
    return leaks == 0 ? 0 : 1;
}

// Writes COUNT random submissions straight into its ring, as a hostile task
// would, waiting for each completion; then moves its ring's tail backwards.
static int hostile(uint64_t count, uint64_t seed) {
    const char *s = getenv("DIOS_CHANNEL_FD");
    if (!s) return 2;
    int fd = atoi(s);
    uint8_t *base = mmap(NULL, DIOS_CHANNEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return 2;
    volatile struct dios_channel_header *h = (void *)base;
    struct dios_sqe *sq = (void *)(base + DIOS_CHANNEL_SQ_OFFSET);
    uint32_t tail = h->sq_tail, head = h->cq_head;
    uint64_t x = seed | 1;
    uint64_t errors = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct dios_sqe e;
        uint64_t *w = (uint64_t *)&e;
        for (int k = 0; k < 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            w[k] = x;
        }
        // Mostly real operations with wild arguments, some with small ones
        // that reach past the decoder into the kernel's own checks.
        e.op = (uint16_t)(x % 20);
        if (e.op == DIOS_OP_SELECT) e.op = DIOS_OP_DESCRIBE; // a select could wait for good
        if (x & 1) {
            e.ref_slot %= 8;
            e.ref_generation %= 3;
            for (int k = 0; k < 5; k++) e.arg[k] %= 4096;
        }
        sq[tail % DIOS_RING_ENTRIES] = e;
        tail++;
        __atomic_store_n(&h->sq_tail, tail, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (h->instance_sleeping) {
            uint64_t one = 1;
            (void)!write(4, &one, 8);
        }
        // Waits as libdios does: on its instance's CPU, by yielding it (a
        // process that spins there only slows itself, and the machine).
        while (__atomic_load_n(&h->cq_tail, __ATOMIC_ACQUIRE) == head) {
            if (h->instance_cpu >= 0 && sched_getcpu() == h->instance_cpu) {
                sched_yield();
            } else {
                __builtin_ia32_pause();
            }
        }
        struct dios_cqe *c = (void *)(base + DIOS_CHANNEL_CQ_OFFSET + (head % DIOS_RING_ENTRIES) * 32);
        if (c->error) errors++;
        head++;
        __atomic_store_n(&h->cq_head, head, __ATOMIC_RELEASE);
    }
    printf("hostile: %llu entries, %llu refused\n", (unsigned long long)count, (unsigned long long)errors);
    fflush(stdout);
    // Indices moved backwards: the kernel ends this task.
    __atomic_store_n(&h->sq_tail, tail - 5, __ATOMIC_RELEASE);
    (void)!write(4, &(uint64_t){1}, 8);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dios-check stream|sink|inplace-stream|inplace-sink|echo|blob|forge|env|hold|isolation|hostile|exit|sleep ...\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    if (!dios_is_task() && strcmp(mode, "hostile") != 0) {
        fprintf(stderr, "dios-check: not started as a DIOS task\n");
        return 3;
    }
    if (!strcmp(mode, "stream")) return stream(n);
    if (!strcmp(mode, "sink")) return sink(n);
    if (!strcmp(mode, "echo")) return echo(n);
    if (!strcmp(mode, "inplace-stream")) return inplace_stream(n, argc > 3 && atoi(argv[3]));
    if (!strcmp(mode, "inplace-sink")) return inplace_sink(n, argc > 3 && atoi(argv[3]));
    if (!strcmp(mode, "blob")) return blob();
    if (!strcmp(mode, "forge")) return forge();
    if (!strcmp(mode, "hold")) return hold();
    if (!strcmp(mode, "isolation"))
        return isolation(argc > 2 ? argv[2] : "", argc > 3 ? atoi(argv[3]) : 1, argc > 4 ? atoi(argv[4]) : 0);
    if (!strcmp(mode, "hostile")) return hostile(n, argc > 3 ? strtoull(argv[3], NULL, 10) : 1);
    if (!strcmp(mode, "env")) {
        // dios-check env KEY VALUE...: each KEY has VALUE in the environment; PATH is set.
        for (int i = 2; i + 1 < argc; i += 2) {
            const char *v = getenv(argv[i]);
            if (!v || strcmp(v, argv[i + 1]) != 0) {
                fprintf(stderr, "dios-check: %s is %s, not %s\n", argv[i], v ? v : "(unset)", argv[i + 1]);
                return 1;
            }
        }
        if (!getenv("PATH")) {
            fprintf(stderr, "dios-check: no PATH\n");
            return 1;
        }
        printf("the environment holds\n");
        return 0;
    }
    if (!strcmp(mode, "exit")) return (int)n;
    if (!strcmp(mode, "sleep")) {
        for (;;) pause();
    }
    fprintf(stderr, "dios-check: no mode %s\n", mode);
    return 2;
}
