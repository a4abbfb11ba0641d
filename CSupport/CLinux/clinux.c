#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int clinux_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int clinux_current_cpu(void) { return sched_getcpu(); }

int clinux_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}

int clinux_affinity_cpus(int *out, int max) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        if (n < max) out[n] = cpu;
        n++;
    }
    return n;
}

int clinux_map_hugetlb(void) { return MAP_HUGETLB; }
int clinux_map_populate(void) { return MAP_POPULATE; }
int clinux_map_shared(void) { return MAP_SHARED; }
int clinux_map_private(void) { return MAP_PRIVATE; }
int clinux_map_anonymous(void) { return MAP_ANONYMOUS; }
void *clinux_map_failed(void) { return MAP_FAILED; }

int clinux_memfd(const char *name, size_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int clinux_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int clinux_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof(one));
    if (n == (ssize_t)sizeof(one)) return 0;
    return errno;
}

int clinux_eventfd_wait(int fd, int other_fd, int third_fd, int64_t timeout_ns) {
    struct pollfd p[3] = {{.fd = fd, .events = POLLIN, .revents = 0}, {.fd = other_fd, .events = POLLIN, .revents = 0},
                          {.fd = third_fd, .events = POLLIN, .revents = 0}};
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    int r = ppoll(p, 3, tsp, NULL);  // a negative fd is skipped
    if (r < 0) return errno == EINTR ? 0 : -errno;
    if (r == 0) return 0;
    if (p[0].revents & POLLIN) {
        uint64_t value;
        (void)read(fd, &value, sizeof(value));
    }
    return 1;
}

int clinux_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int clinux_epoll_add(int epoll_fd, int fd) {
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

int clinux_epoll_remove(int epoll_fd, int fd) {
    return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : -errno;
}

uint64_t clinux_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int32_t clinux_gettid(void) { return (int32_t)gettid(); }

static int clinux_signal_pipe[2] = {-1, -1};

static void clinux_on_signal(int signo) {
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    (void)!write(clinux_signal_pipe[1], &b, 1);
    errno = saved;
}

int clinux_termination_signal_fd(void) {
    if (clinux_signal_pipe[0] >= 0) return clinux_signal_pipe[0];
    if (pipe2(clinux_signal_pipe, O_CLOEXEC) != 0) return -1;
    struct sigaction sa;
    sa.sa_handler = clinux_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return -1;
    return clinux_signal_pipe[0];
}

void clinux_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

long clinux_getrandom(void *buffer, size_t length) { return (long)getrandom(buffer, length, 0); }

int clinux_udp_receive_burst(int fd, void *buffers, size_t slot_size, int count,
                             int32_t *lengths, uint32_t *addresses, uint16_t *ports) {
    enum { MAX_BURST = 64 };
    if (count > MAX_BURST) count = MAX_BURST;
    struct mmsghdr messages[MAX_BURST];
    struct iovec vectors[MAX_BURST];
    struct sockaddr_in sources[MAX_BURST];
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = (char *)buffers + (size_t)i * slot_size;
        vectors[i].iov_len = slot_size;
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &sources[i];
        messages[i].msg_hdr.msg_namelen = sizeof sources[i];
    }
    int n = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    for (int i = 0; i < n; i++) {
        lengths[i] = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)messages[i].msg_len;
        addresses[i] = ntohl(sources[i].sin_addr.s_addr);
        ports[i] = ntohs(sources[i].sin_port);
    }
    return n;
}

int clinux_udp_send_burst(int fd, const void *buffers, size_t slot_size, int count,
                          const int32_t *lengths, const uint32_t *addresses, const uint16_t *ports) {
    enum { MAX_BURST = 64 };
    if (count > MAX_BURST) count = MAX_BURST;
    struct mmsghdr messages[MAX_BURST];
    struct iovec vectors[MAX_BURST];
    struct sockaddr_in targets[MAX_BURST];
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = (char *)buffers + (size_t)i * slot_size;
        vectors[i].iov_len = (size_t)lengths[i];
        memset(&targets[i], 0, sizeof targets[i]);
        targets[i].sin_family = AF_INET;
        targets[i].sin_addr.s_addr = htonl(addresses[i]);
        targets[i].sin_port = htons(ports[i]);
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &targets[i];
        messages[i].msg_hdr.msg_namelen = sizeof targets[i];
    }
    int sent = 0;
    while (sent < count) {  // sendmmsg may stop short; a failure ends the burst
        int n = sendmmsg(fd, messages + sent, (unsigned)(count - sent), MSG_DONTWAIT);
        if (n <= 0) return sent > 0 ? sent : (n < 0 ? -1 : 0);
        sent += n;
    }
    return sent;
}

int clinux_enter_netns(const char *name) {
    char path[256];
    if (snprintf(path, sizeof path, "/var/run/netns/%s", name) >= (int)sizeof path) return ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int r = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    return r == 0 ? 0 : e;
}

// MARK: The C floor

void clinux_floor_driver(uint64_t *ping, uint64_t *pong, uint64_t first, int count, uint64_t *ticks) {
    for (int k = 0; k < count; k++) {
        uint64_t seq = first + (uint64_t)k;
        uint64_t t0 = clinux_stamp_begin();
        __atomic_store_n(ping, seq, __ATOMIC_RELEASE);
        while (__atomic_load_n(pong, __ATOMIC_ACQUIRE) != seq) clinux_cpu_relax();
        ticks[k] = clinux_stamp_end() - t0;
    }
}

void clinux_floor_echo(uint64_t *ping, uint64_t *pong, uint64_t first, int count) {
    for (int k = 0; k < count; k++) {
        uint64_t seq = first + (uint64_t)k;
        while (__atomic_load_n(ping, __ATOMIC_ACQUIRE) != seq) clinux_cpu_relax();
        __atomic_store_n(pong, seq, __ATOMIC_RELEASE);
    }
}

// MARK: The crash report
//
// A signal handler may call only async-signal-safe functions: the line is
// built by hand in a stack buffer and written with write(2).

__thread uint64_t clinux_crash_task __attribute__((tls_model("initial-exec"))) = 0;
static __thread int crash_node = -1, crash_instance = -1, crash_cpu = -1;

static const int crash_signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
#define CRASH_SIGNALS (int)(sizeof crash_signals / sizeof crash_signals[0])
static struct sigaction crash_previous[CRASH_SIGNALS];

void clinux_crash_set_thread(int node, int instance, int cpu) {
    crash_node = node;
    crash_instance = instance;
    crash_cpu = cpu;
}

static size_t crash_put(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    return at;
}

static size_t crash_put_u64(char *buf, size_t at, size_t cap, uint64_t v) {
    char digits[20];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 20);
    while (n > 0 && at + 1 < cap) buf[at++] = digits[--n];
    return at;
}

static const char *crash_signal_name(int signo) {
    switch (signo) {
    case SIGILL: return "SIGILL (a Swift runtime check failed: an index or view out of range, an overflow, a force-unwrapped nil)";
    case SIGTRAP: return "SIGTRAP (a runtime check failed)";
    case SIGSEGV: return "SIGSEGV (a bad memory access)";
    case SIGBUS: return "SIGBUS (a bad memory access)";
    case SIGFPE: return "SIGFPE (an arithmetic fault)";
    case SIGABRT: return "SIGABRT (the process aborted)";
    default: return "a fatal signal";
    }
}

static void crash_handler(int signo, siginfo_t *info, void *context) {
    char line[512];
    size_t n = 0, cap = sizeof line;
    n = crash_put(line, n, cap, "dios: fatal ");
    n = crash_put(line, n, cap, crash_signal_name(signo));
    if (crash_instance >= 0) {
        n = crash_put(line, n, cap, " on the thread of kernel instance ");
        n = crash_put_u64(line, n, cap, (uint64_t)crash_node);
        n = crash_put(line, n, cap, ".");
        n = crash_put_u64(line, n, cap, (uint64_t)crash_instance);
        if (crash_cpu >= 0) {
            n = crash_put(line, n, cap, " (CPU ");
            n = crash_put_u64(line, n, cap, (uint64_t)crash_cpu);
            n = crash_put(line, n, cap, ")");
        }
        if (clinux_crash_task != 0) {
            uint64_t t = clinux_crash_task;
            n = crash_put(line, n, cap, "; the last task to call into it was task ");
            n = crash_put_u64(line, n, cap, (t & 0xffffffffu) - 1);
            n = crash_put(line, n, cap, " (generation ");
            n = crash_put_u64(line, n, cap, t >> 32);
            n = crash_put(line, n, cap, ")");
        }
        n = crash_put(line, n, cap, ". In-process tasks share the node's address space: the node stops, and every task on it ends\n");
    } else {
        n = crash_put(line, n, cap, " outside the kernel instances' threads; the node stops\n");
    }
    ssize_t ignored = write(2, line, n);
    (void)ignored;
    for (int k = 0; k < CRASH_SIGNALS; k++) {
        if (crash_signals[k] != signo) continue;
        struct sigaction *previous = &crash_previous[k];
        if ((previous->sa_flags & SA_SIGINFO) && previous->sa_sigaction) {
            previous->sa_sigaction(signo, info, context);
            return;
        }
        if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
            previous->sa_handler(signo);
            return;
        }
    }
    // The default action: raised again (pending while this handler runs,
    // delivered as it returns), so the process ends by the signal it got.
    signal(signo, SIG_DFL);
    raise(signo);
}

void clinux_install_crash_report(void) {
    static int installed = 0;
    if (__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL)) return;
    for (int k = 0; k < CRASH_SIGNALS; k++) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = crash_handler;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(crash_signals[k], &action, &crash_previous[k]);
    }
}
