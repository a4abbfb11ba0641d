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

int clinux_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int clinux_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof(one));
    if (n == (ssize_t)sizeof(one)) return 0;
    return errno;
}

int clinux_eventfd_wait(int fd, int other_fd, int64_t timeout_ns) {
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN, .revents = 0}, {.fd = other_fd, .events = POLLIN, .revents = 0}};
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    int r = ppoll(p, other_fd >= 0 ? 2 : 1, tsp, NULL);
    if (r < 0) return errno == EINTR ? 0 : -errno;
    if (r == 0) return 0;
    if (p[0].revents & POLLIN) {
        uint64_t value;
        (void)read(fd, &value, sizeof(value));
    }
    return 1;
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
