// CDIOSChannel — what the kernel needs from Linux to host task processes:
// the channel's memory, futex wake-ups, and spawning and watching a child.
// Every function is prefixed `cdios_`.
#ifndef CDIOS_PROCESS_H
#define CDIOS_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include "dios_channel.h"

#ifdef __cplusplus
extern "C" {
#endif

/// A sealed-size, close-on-exec memfd of `size` bytes. Returns the fd or -errno.
int cdios_memfd(const char *name, size_t size);

/// A non-blocking, close-on-exec pipe: `fds[0]` reads, `fds[1]` writes. 0 or -errno.
int cdios_pipe(int fds[2]);

/// Wakes every waiter on a futex word in shared memory. Returns the number woken or -errno.
int cdios_futex_wake(uint32_t *word);

/// How to start a task process.
struct cdios_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// Become descriptors 3 and 4 in the child (the names in its environment).
    int channel_fd;
    int doorbell_fd;
    /// Becomes descriptor 5 when not negative (a trusted task's arena).
    int arena_fd;
    /// Standard output and error go here; standard input is /dev/null.
    int log_fd;
    /// Untrusted: no new privileges, a seccomp filter (no sockets, no ptrace,
    /// no reading other processes' memory) and, when diosd runs as root, a
    /// uid and gid of its own (`uid`, `gid`; negative: keep diosd's).
    int untrusted;
    int uid;
    int gid;
};

/// Starts the process (vfork + execve): its own process group, the parent's
/// death signal SIGKILL, every other descriptor closed. Writes its pid and
/// returns a pidfd for it, or -errno (the child's execve error included).
int cdios_spawn(const struct cdios_spawn_request *request, int *pid_out);

/// Whether the process behind `pidfd` has ended, without waiting: 1 and its
/// status (`*signalled` 0: exit code; 1: the signal), 0 while it runs, -errno.
/// Reaps it.
int cdios_reap(int pidfd, int *signalled, int *code);

/// Waits until `pidfd` is readable (the process ended) or `timeout_ms` passes
/// (negative: forever). Returns 1, 0 on timeout, -errno.
int cdios_wait_exit(int pidfd, int timeout_ms);

/// Whether process `pid` may run on `cpu` (its affinity mask holds it):
/// 1 or 0, or -errno. Wraps `sched_getaffinity`.
int cdios_process_may_run_on(int pid, int cpu);

/// Sends `signal` through the pidfd (no pid reuse race). Returns 0 or -errno.
int cdios_signal(int pidfd, int signal);

#ifdef __cplusplus
}
#endif

#endif
