import CDIOSChannel
import DIOSKernel

#if canImport(Glibc)
import Glibc
#endif

/// How a task process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    /// The status its task object reports: the exit code, or 128 plus the
    /// signal, as a shell reports it.
    public var status: Int32 {
        switch self {
        case .exited(let code): code
        case .signalled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signalled(let signal): "killed by signal \(signal)"
        }
    }
}

/// Why a task process did not start.
public enum SpawnError: Error, Equatable, Sendable, CustomStringConvertible {
    case channel(ChannelError)
    case log(path: String, errno: Int32)
    case exec(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .channel(let e): "cannot make the task's channel: \(e)"
        case .log(let path, let e): "cannot open the task's log \(path): \(String(cString: strerror(e)))"
        case .exec(let path, let e): "cannot start \(path): \(String(cString: strerror(e)))"
        }
    }
}

/// A started task process: its pid, a pidfd to signal and reap it by (no pid
/// reuse race), and a watcher thread that tells the instance the moment it ends.
final class TaskProcess: @unchecked Sendable {
    let pid: Int32
    let pidfd: Int32
    private var exit: ProcessExit? = nil
    /// Told when the pidfd is closed.
    var released: (() -> Void)? = nil

    private init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
    }

    deinit {
        close(pidfd)
        released?()
    }

    /// Starts `path` with its channel as descriptors 3 and 4 (and, when
    /// `arena` is not negative, the node's arena as 5) and its output into
    /// `log`. An untrusted process gets `identity` (uid, gid) where diosd may
    /// give one, and never the arena.
    static func spawn(
        path: String, arguments: [String], environment: [String], channel: TaskChannel, log: Int32,
        untrusted: Bool, identity: (uid: Int32, gid: Int32)?, arena: Int32 = -1
    ) throws(SpawnError) -> TaskProcess {
        precondition(!untrusted || arena < 0, "an untrusted task process never gets the arena")
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let descriptors = ["DIOS_CHANNEL_FD=3", "DIOS_DOORBELL_FD=4"] + (arena >= 0 ? ["DIOS_ARENA_FD=5"] : [])
        let envp = (environment + descriptors).map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: Int32 = 0
        let pidfd = path.withCString { cPath in
            argv.withUnsafeBufferPointer { a in
                envp.withUnsafeBufferPointer { e in
                    var request = cdios_spawn_request(
                        path: cPath, argv: a.baseAddress, envp: e.baseAddress, channel_fd: channel.memory,
                        doorbell_fd: channel.bellWrite, arena_fd: arena, log_fd: log, untrusted: untrusted ? 1 : 0,
                        uid: identity?.uid ?? -1, gid: identity?.gid ?? -1)
                    return cdios_spawn(&request, &pid)
                }
            }
        }
        guard pidfd >= 0 else { throw .exec(path: path, errno: -pidfd) }
        channel.setPID(pid)
        return TaskProcess(pid: pid, pidfd: pidfd)
    }

    /// Starts a thread that waits for the process to end, then marks the
    /// channel ended and wakes the instance (from any thread: `wake` only
    /// rings its doorbell).
    func watch(_ channel: TaskChannel, kernel: KernelInstance) {
        let fd = pidfd
        let watched = WatchedEnd(channel: channel, kernel: kernel)
        do {
            let thread = try OSThread.start {
                while cdios_wait_exit(fd, -1) == 0 {}
                watched.channel.ended.store(true, ordering: .releasing)
                watched.kernel.wake()
            }
            pthread_detach(thread)
        } catch {
            // No thread: the server polls for the end instead (`reap` on each turn).
            channel.ended.store(true, ordering: .releasing)
        }
    }

    func signal(_ signal: Int32) { _ = cdios_signal(pidfd, signal) }

    /// How the process ended, once it has (reaping it), or nil while it runs.
    func reap() -> ProcessExit? {
        if let exit { return exit }
        var signalled: Int32 = 0
        var code: Int32 = 0
        guard cdios_reap(pidfd, &signalled, &code) == 1 else { return nil }
        exit = signalled != 0 ? .signalled(code) : .exited(code)
        return exit
    }

    /// Waits (blocking the calling thread) until the process has ended.
    func waitForExit() -> ProcessExit {
        while true {
            if let e = reap() { return e }
            _ = cdios_wait_exit(pidfd, 100)
        }
    }
}

private struct WatchedEnd: @unchecked Sendable {
    let channel: TaskChannel
    let kernel: KernelInstance
}
