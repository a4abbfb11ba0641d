// CLinux — Linux bits Swift cannot reach directly: CPU-affinity macros, hugepage
// mmap flags, eventfd, and a compiler barrier/pause for spin loops.
// Every function is prefixed `clinux_`; each wraps exactly one libc facility.
#ifndef CLINUX_H
#define CLINUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
/// The corresponding libc calls are `CPU_ZERO`/`CPU_SET` and `pthread_setaffinity_np`.
int clinux_pin_current_thread(int cpu);

/// The CPU the calling thread runs on now, or -1. Wraps `sched_getcpu`.
int clinux_current_cpu(void);

/// Number of CPUs in the calling thread's affinity mask. Wraps `sched_getaffinity`/`CPU_COUNT`.
int clinux_affinity_cpu_count(void);

/// The CPUs in the calling thread's affinity mask, ascending: writes up to
/// `max` of them to `out` and returns how many there are (-1 on error).
int clinux_affinity_cpus(int *out, int max);

/// mmap flags Swift's Glibc module does not export on every toolchain.
int clinux_map_hugetlb(void);
int clinux_map_populate(void);
int clinux_map_shared(void);
int clinux_map_private(void);
int clinux_map_anonymous(void);
void *clinux_map_failed(void);

/// A close-on-exec memfd of `size` bytes (ordinary pages, shareable by
/// descriptor). Returns the fd or -1 (errno set). Wraps `memfd_create`.
int clinux_memfd(const char *name, size_t size);

/// Creates a non-blocking, close-on-exec eventfd. Returns the fd or -1 (errno set).
int clinux_eventfd(void);
/// Adds 1 to an eventfd counter. Returns 0 or an errno value (EAGAIN when saturated is fine).
int clinux_eventfd_signal(int fd);
/// Waits until the eventfd is signalled, `other_fd` or `third_fd` (each if not
/// negative) becomes readable, or `timeout_ns` passes (negative: forever);
/// clears the eventfd. Returns 1 when woken, 0 on timeout, -errno on error.
/// Wraps `ppoll`.
int clinux_eventfd_wait(int fd, int other_fd, int third_fd, int64_t timeout_ns);

/// A close-on-exec epoll set, and adding or removing a descriptor to wake on
/// when readable (level-triggered). Return the fd / 0, or -errno.
int clinux_epoll_create(void);
int clinux_epoll_add(int epoll_fd, int fd);
int clinux_epoll_remove(int epoll_fd, int fd);

/// The CPU's spin-wait hint (`pause` on x86, `yield` on arm64).
static inline void clinux_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Installs SIGINT and SIGTERM handlers that write the signal number (one byte)
/// to a pipe, and returns the pipe's read end (or -1). Signal handlers may do
/// almost nothing safely; a thread reading the pipe does the rest.
int clinux_termination_signal_fd(void);

/// Makes stdout line-buffered even into a pipe. Wraps `setvbuf(stdout, ..., _IOLBF)`.
void clinux_line_buffer_stdout(void);

/// Atomics on memory Swift does not own as an `Atomic` value: rings and their
/// indices in the shared hugepage arena. Inline, so each is one instruction.
static inline uint64_t clinux_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void clinux_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t clinux_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void clinux_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/// Sequentially consistent, for a flag one side sets before it sleeps and the
/// other reads after it publishes (each then sees the other's write).
static inline uint32_t clinux_load_seqcst_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void clinux_store_seqcst_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/// Compare-and-swap; returns 1 when `*p` was `expected` and is now `desired`.
static inline int clinux_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint32_t clinux_fetch_add_u32(uint32_t *p, int32_t delta) {
    return __atomic_fetch_add(p, (uint32_t)delta, __ATOMIC_ACQ_REL);
}

/// The CPU's time-stamp counter: a few cycles to read, constant-rate on the
/// CPUs DIOS targets. Callers calibrate it against the monotonic clock.
static inline uint64_t clinux_rdtsc(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return 0;
#endif
}

/// A time-stamp read that neither earlier nor later instructions pass:
/// `lfence; rdtsc; lfence`. A bare `rdtsc` may execute before the loads it
/// follows complete (a spin loop's exit is predicted, not waited for), so a
/// short interval between bare stamps reads short. Use `clinux_stamp_begin`
/// before and `clinux_stamp_end` after what is timed.
static inline uint64_t clinux_stamp_begin(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0\n\tisb" : "=r"(v) : : "memory");
    return v;
#else
    return 0;
#endif
}

/// The closing stamp: `rdtscp` waits for every earlier instruction to
/// execute (loads included), and the `lfence` after it keeps later ones
/// from starting before the read.
static inline uint64_t clinux_stamp_end(void) {
#if defined(__x86_64__)
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    (void)aux;
    return ((uint64_t)hi << 32) | lo;
#else
    return clinux_stamp_begin();
#endif
}

/// The floor as plain C, timed with the fenced stamps: `count` round trips of
/// one cache line each way (`ping` and `pong`, each on a line of its own; a
/// release store, an acquire spin with the CPU's pause hint). The driver
/// writes each round trip's ticks to `ticks`; the echo, on another thread,
/// answers. `first` is the sequence number the first round trip carries;
/// both sides pass the same. Checks the benchmark's Swift floor against
/// code no Swift compiler touched.
void clinux_floor_driver(uint64_t *ping, uint64_t *pong, uint64_t first, int count, uint64_t *ticks);
void clinux_floor_echo(uint64_t *ping, uint64_t *pong, uint64_t first, int count);

/// Reports a fatal signal (SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE,
/// SIGABRT) on standard error before the process dies: which kernel instance's
/// thread it hit and the task that last called into that instance. The
/// handler then hands the signal to whatever handler was installed before it
/// (Swift's backtracer), or to the default action. Call once, early.
void clinux_install_crash_report(void);

/// Tells the crash report which kernel instance the calling thread runs
/// (`instance` of node `node`, pinned to `cpu`, -1 when unpinned).
void clinux_crash_set_thread(int node, int instance, int cpu);

/// The task (index and generation) that last called into the calling
/// thread's instance; a store to a thread-local word (generation high,
/// index + 1 low: 0 means no task has called yet). Initial-exec: the word
/// is in the executable's own TLS block, so the store is one `mov` off %fs
/// on every call that names a task; the default model for position-
/// independent code went through `__tls_get_addr` each time.
extern __thread uint64_t clinux_crash_task __attribute__((tls_model("initial-exec")));
static inline void clinux_crash_note_task(uint32_t index, uint32_t generation) {
    clinux_crash_task = ((uint64_t)generation << 32) + (uint64_t)index + 1;
}

/// Fills `length` bytes from the kernel CSPRNG. Returns bytes written or -1
/// (errno set). Wraps `getrandom(2)`.
long clinux_getrandom(void *buffer, size_t length);

/// Monotonic clock in nanoseconds. Wraps `clock_gettime(CLOCK_MONOTONIC)`.
uint64_t clinux_monotonic_ns(void);

/// The calling thread's kernel thread id. Wraps `gettid`.
int32_t clinux_gettid(void);

/// Moves the calling thread into the network namespace named `name` (as made by
/// `ip netns add`, under /var/run/netns). Sockets the thread creates from then
/// on belong to that namespace. Returns 0 or an errno value. Wraps `setns(2)`.
int clinux_enter_netns(const char *name);

/// Receives up to `count` UDP datagrams without blocking, datagram i into
/// `buffers + i * slot_size` (at most `slot_size` bytes). For each, stores its
/// length in `lengths[i]` (-1 when it was truncated), and its source IPv4 address
/// and port, in host byte order, in `addresses[i]` and `ports[i]`. Returns the
/// number received, 0 when none wait, or -1 (errno set). Wraps `recvmmsg(2)`.
int clinux_udp_receive_burst(int fd, void *buffers, size_t slot_size, int count,
                             int32_t *lengths, uint32_t *addresses, uint16_t *ports);

/// Sends `count` datagrams with one sendmmsg(2): datagram i is `lengths[i]`
/// bytes at `buffers + i * slot_size`, to `addresses[i]`:`ports[i]` (host
/// order). Returns how many were sent (the rest were not), or -1 with errno.
int clinux_udp_send_burst(int fd, const void *buffers, size_t slot_size, int count,
                          const int32_t *lengths, const uint32_t *addresses, const uint16_t *ports);

#ifdef __cplusplus
}
#endif
#endif
