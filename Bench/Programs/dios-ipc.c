// The processes of `dios bench ipc --processes`, written against the C ABI
// as a user's program would be. Times are TSC ticks (`lfence; rdtsc; lfence`
// before, `rdtscp; lfence` after, as the Swift benchmarks stamp), converted
// by the benchmark with its own calibration.
//
//   dios-ipc ping ITERATIONS WARMUP SIZE CPU OUT   a task given [ping, pong]:
//       writes SIZE bytes on ping, reads the echo on pong; the measured
//       round trips' ticks go to the file OUT (u64 each), then an empty
//       message ends the echo
//   dios-ipc echo CPU                              a task given [ping, pong]:
//       sends every message back until an empty one
//   dios-ipc first-call                            a task given [stream]: its
//       first call writes the TSC read when main began
//   dios-ipc stamp                                 not a task: prints the TSC
//       read when main began (what posix_spawn of the same binary costs)
//   dios-ipc uds ITERATIONS WARMUP SIZE CPU0 CPU1 OUT   not a task: the same
//       round trips over a Unix socket pair between two processes, each
//       busy-polling with MSG_DONTWAIT (what a user would pick instead)
//
// CPU -1 leaves a process where it was started (a task process starts on
// its instance's CPU).
#define _GNU_SOURCE
#include <dios.h>

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static inline uint64_t stamp_begin(void) {
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t stamp_end(void) {
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    (void)aux;
    return ((uint64_t)hi << 32) | lo;
}

static int fail(const char *what, int r) {
    fprintf(stderr, "dios-ipc: %s: %s (%d)\n", what, r < 0 ? dios_strerror(r) : strerror(errno), r);
    return 1;
}

static int pin(int cpu) {
    if (cpu < 0) return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : fail("sched_setaffinity", 0);
}

static int save(const char *path, const uint64_t *ticks, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(ticks, sizeof(*ticks), n, f) != n || fclose(f) != 0) return fail(path, 0);
    return 0;
}

// One message out and its echo back: dios_write and dios_read, which wait
// while they must (a trusted process on its mapped rings, an untrusted one in
// the kernel, one submission a call).
static int trip(dios_ref ping, dios_ref pong, uint64_t i, size_t size, uint64_t *echoed) {
    static uint8_t message[4096];
    memcpy(message, &i, sizeof(i));
    int e = dios_write(ping, message, size, 0);
    if (e < 0) return e;
    size_t n = 0;
    if ((e = dios_read(pong, message, sizeof(message), &n, 0)) < 0) return e;
    memcpy(echoed, message, sizeof(*echoed));
    return 0;
}

static int ping(uint64_t iterations, uint64_t warmup, size_t size, int cpu, const char *out) {
    if (pin(cpu)) return 1;
    dios_ref refs[2];
    size_t n = 0;
    int e = dios_delegated(refs, 2, &n);
    if (e < 0 || n < 2) return fail("delegated", e < 0 ? e : -DIOS_E_INVALID_ARGUMENT);
    uint64_t *ticks = calloc(iterations, sizeof(*ticks));
    if (!ticks) return fail("calloc", 0);
    for (uint64_t i = 0; i < warmup + iterations; i++) {
        uint64_t echoed = 0;
        uint64_t t0 = stamp_begin();
        if ((e = trip(refs[0], refs[1], i, size, &echoed)) < 0) return fail("round trip", e);
        uint64_t t1 = stamp_end();
        if (echoed != i) {
            fprintf(stderr, "dios-ipc: echo %llu came back as %llu\n", (unsigned long long)i,
                    (unsigned long long)echoed);
            return 1;
        }
        if (i >= warmup) ticks[i - warmup] = t1 - t0;
    }
    if ((e = dios_write(refs[0], NULL, 0, 0)) < 0) return fail("write the end", e);
    return save(out, ticks, iterations);
}

static int echo(int cpu) {
    if (pin(cpu)) return 1;
    dios_ref refs[2];
    size_t n = 0;
    int e = dios_delegated(refs, 2, &n);
    if (e < 0 || n < 2) return fail("delegated", e < 0 ? e : -DIOS_E_INVALID_ARGUMENT);
    uint8_t message[4096];
    for (;;) {
        size_t size = 0;
        if ((e = dios_read(refs[0], message, sizeof(message), &size, 0)) < 0) return fail("read", e);
        if (size == 0) return 0;
        if ((e = dios_write(refs[1], message, size, 0)) < 0) return fail("write", e);
    }
}

static int uds(uint64_t iterations, uint64_t warmup, size_t size, int cpu0, int cpu1, const char *out) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) return fail("socketpair", 0);
    char buffer[4096];
    pid_t child = fork();
    if (child < 0) return fail("fork", 0);
    if (child == 0) {
        if (pin(cpu1)) _exit(1);
        for (;;) {
            ssize_t got;
            while ((got = recv(sv[1], buffer, sizeof(buffer), MSG_DONTWAIT)) < 0 && errno == EAGAIN) {}
            if (got <= 0) _exit(got == 0 ? 0 : 1);
            if (send(sv[1], buffer, (size_t)got, 0) != got) _exit(1);
        }
    }
    if (pin(cpu0)) return 1;
    uint64_t *ticks = calloc(iterations, sizeof(*ticks));
    if (!ticks) return fail("calloc", 0);
    memset(buffer, 0, sizeof(buffer));
    for (uint64_t i = 0; i < warmup + iterations; i++) {
        uint64_t t0 = stamp_begin();
        memcpy(buffer, &i, sizeof(i));
        if (send(sv[0], buffer, size, 0) != (ssize_t)size) return fail("send", 0);
        ssize_t got;
        while ((got = recv(sv[0], buffer, sizeof(buffer), MSG_DONTWAIT)) < 0 && errno == EAGAIN) {}
        uint64_t t1 = stamp_end();
        uint64_t echoed;
        memcpy(&echoed, buffer, sizeof(echoed));
        if (got != (ssize_t)size || echoed != i) return fail("echo", 0);
        if (i >= warmup) ticks[i - warmup] = t1 - t0;
    }
    shutdown(sv[0], SHUT_WR);
    waitpid(child, NULL, 0);
    return save(out, ticks, iterations);
}

int main(int argc, char **argv) {
    uint64_t at_main = stamp_begin();
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "stamp")) {
        printf("%llu\n", (unsigned long long)at_main);
        return 0;
    }
    if (!strcmp(mode, "first-call")) {
        dios_ref out;
        size_t n = 0;
        // dios_delegated is the first call; its answer names the stream.
        int e = dios_delegated(&out, 1, &n);
        if (e < 0 || n < 1) return fail("delegated", e);
        return dios_write(out, &at_main, sizeof(at_main), 0) < 0;
    }
    if (!strcmp(mode, "ping") && argc > 6)
        return ping(strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                    atoi(argv[5]), argv[6]);
    if (!strcmp(mode, "echo") && argc > 2) return echo(atoi(argv[2]));
    if (!strcmp(mode, "uds") && argc > 7)
        return uds(strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                   atoi(argv[5]), atoi(argv[6]), argv[7]);
    fprintf(stderr, "usage: dios-ipc ping|echo|first-call|stamp|uds ...\n");
    return 2;
}
