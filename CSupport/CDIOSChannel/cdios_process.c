#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cdios_process.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int cdios_memfd(const char *name, size_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int cdios_pipe(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : -errno; }

int cdios_futex_wake(uint32_t *word) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE, 1 << 30, NULL, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

// The untrusted task's filter: the system calls that would reach past its
// channel — the network, other processes' memory, tracing — fail with EPERM.
// Files are kept from it by its uid (when diosd can give it one).
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
static struct sock_filter untrusted_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    DENY(__NR_socket),
    DENY(__NR_socketpair),
    DENY(__NR_ptrace),
    DENY(__NR_process_vm_readv),
    DENY(__NR_process_vm_writev),
    DENY(__NR_pidfd_getfd),
    DENY(__NR_kcmp),
    DENY(__NR_perf_event_open),
    DENY(__NR_bpf),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

int cdios_spawn(const struct cdios_spawn_request *rq, int *pid_out) {
    struct sock_fprog prog = {.len = sizeof(untrusted_filter) / sizeof(untrusted_filter[0]),
                              .filter = untrusted_filter};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) return -errno;
    volatile int child_error = 0;
    // vfork: the child borrows this thread's memory until it execs, so it only
    // makes raw system calls (no allocation, no locks, no libc set-id calls,
    // which would signal the parent's threads) and reports a failure through
    // `child_error`, which the parent reads once the child has gone.
    pid_t pid = vfork();
    if (pid < 0) {
        int e = errno;
        close(devnull);
        return -e;
    }
    if (pid == 0) {
        int e = 0;
        sigset_t none;
        sigemptyset(&none);
        if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(long)) != 0) e = errno;
        // diosd ignores SIGPIPE; an ignored signal stays ignored across execve.
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        if (!e && sigaction(SIGPIPE, &dfl, NULL) != 0) e = errno;
        if (!e && setpgid(0, 0) != 0) e = errno;
        if (!e && syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) e = errno;
        if (!e && dup2(devnull, 0) < 0) e = errno;
        if (!e && dup2(rq->log_fd, 1) < 0) e = errno;
        if (!e && dup2(rq->log_fd, 2) < 0) e = errno;
        // 3 to 5 may be taken by the sources themselves: move them above first.
        int ch = !e ? (int)syscall(SYS_fcntl, rq->channel_fd, F_DUPFD, 10) : -1;
        int bell = !e ? (int)syscall(SYS_fcntl, rq->doorbell_fd, F_DUPFD, 10) : -1;
        int arena = !e && rq->arena_fd >= 0 ? (int)syscall(SYS_fcntl, rq->arena_fd, F_DUPFD, 10) : -1;
        if (!e && (ch < 0 || bell < 0 || (rq->arena_fd >= 0 && arena < 0))) e = errno;
        if (!e && dup2(ch, 3) < 0) e = errno;
        if (!e && dup2(bell, 4) < 0) e = errno;
        if (!e && arena >= 0 && dup2(arena, 5) < 0) e = errno;
        if (!e && syscall(SYS_close_range, arena >= 0 ? 6 : 5, ~0U, 0) != 0) e = errno;
        if (!e && rq->untrusted) {
            if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) e = errno;
            if (!e && rq->gid >= 0 && syscall(SYS_setgroups, 0, NULL) != 0) e = errno;
            if (!e && rq->gid >= 0 && syscall(SYS_setresgid, rq->gid, rq->gid, rq->gid) != 0) e = errno;
            if (!e && rq->uid >= 0 && syscall(SYS_setresuid, rq->uid, rq->uid, rq->uid) != 0) e = errno;
            if (!e && syscall(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) e = errno;
        }
        if (!e) {
            syscall(SYS_execve, rq->path, rq->argv, rq->envp);
            e = errno;
        }
        child_error = e ? e : ENOEXEC;
        _exit(127);
    }
    close(devnull);
    int e = child_error;
    if (e) {
        waitpid(pid, NULL, 0);
        return -e;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -e;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    *pid_out = pid;
    return pidfd;
}

int cdios_reap(int pidfd, int *signalled, int *code) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) return -errno;
    if (info.si_pid == 0) return 0;
    *signalled = info.si_code == CLD_EXITED ? 0 : 1;
    *code = info.si_status;
    return 1;
}

int cdios_wait_exit(int pidfd, int timeout_ms) {
    struct pollfd p = {.fd = pidfd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -errno;
    return r > 0 ? 1 : 0;
}

int cdios_signal(int pidfd, int signal) {
    return syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) == 0 ? 0 : -errno;
}

int cdios_process_may_run_on(int pid, int cpu) {
    cpu_set_t set;
    if (cpu < 0 || cpu >= CPU_SETSIZE) return 0;
    if (sched_getaffinity(pid, sizeof(set), &set) != 0) return -errno;
    return CPU_ISSET(cpu, &set) ? 1 : 0;
}
