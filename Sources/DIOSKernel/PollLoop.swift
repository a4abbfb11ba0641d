import CLinux
public import DIOSCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A thread that owns one kernel instance and polls it until stopped.
///
/// On stop it tells every task to stop, keeps polling until they have finished
/// (or `drainTimeout` passes), and returns.
public final class PollLoop: Sendable {
    public let instance: KernelInstance
    public let policy: IdlePolicy
    public let cpu: Int?
    /// Runs on the loop's thread once it is pinned, before it polls (e.g. to
    /// register the thread with DPDK), and as the thread ends.
    public let threadStarted: (@Sendable () -> Void)?
    public let threadEnding: (@Sendable () -> Void)?
    private let stopRequested = Atomic<Bool>(false)
    private let abandon = Atomic<Bool>(false)
    private let adopted = Atomic<Bool>(false)
    private let thread = Lock<pthread_t?>(nil)

    public init(
        instance: KernelInstance, policy: IdlePolicy, cpu: Int? = nil,
        threadStarted: (@Sendable () -> Void)? = nil, threadEnding: (@Sendable () -> Void)? = nil
    ) {
        self.instance = instance
        self.policy = policy
        self.cpu = cpu
        self.threadStarted = threadStarted
        self.threadEnding = threadEnding
    }

    /// Starts the loop's thread.
    public func start() {
        let tid: pthread_t
        do throws(OSThread.StartError) { tid = try OSThread.start { self.body() } } catch {
            preconditionFailure("the polling thread of instance \(instance.id) did not start: \(error)")
        }
        thread.withLock { $0 = tid }
        // Return only once the thread owns the instance, so from here on any
        // use of the instance from another thread is caught.
        while !adopted.load(ordering: .acquiring) { sched_yield() }
    }

    /// Stops the loop and waits for its thread. With `drain` (the default) the
    /// instance's tasks are told and run to their end first (for at most 2 s);
    /// without, the thread stops at once, as if the process had died: its
    /// tasks never run again and nothing more is sent or answered.
    public func stop(drain: Bool = true) {
        if !drain { abandon.store(true, ordering: .sequentiallyConsistent) }
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        _ = clinux_eventfd_signal(instance.doorbell.fd)
        if let tid = thread.withLock({ t -> pthread_t? in
            defer { t = nil }; return t
        }) {
            pthread_join(tid, nil)
        }
    }

    private func body() {
        if let cpu {
            let r = clinux_pin_current_thread(Int32(cpu))
            if r != 0 { instance.logger.warning("cannot pin to CPU \(cpu): \(String(cString: strerror(r)))") }
        }
        threadStarted?()
        defer { threadEnding?() }
        instance.adoptCurrentThread()
        clinux_crash_set_thread(Int32(instance.id.node), Int32(instance.index), Int32(cpu ?? -1))
        adopted.store(true, ordering: .releasing)
        var idle = 0
        while !stopRequested.load(ordering: .relaxed) {
            if instance.poll() > 0 {
                idle = 0
                continue
            }
            idle += 1
            idleStep(&idle)
        }
        guard !abandon.load(ordering: .relaxed) else { return }
        // Shutdown: tell tasks, then let them run to their end.
        instance.stopAll()
        let deadline = clinux_monotonic_ns() + 2_000_000_000
        while instance.runningTaskCount > 0 && clinux_monotonic_ns() < deadline {
            if instance.poll() == 0 { sched_yield() }
        }
    }

    @inline(__always)
    private func idleStep(_ idle: inout Int) {
        switch policy {
        case .busy:
            // A task process on this CPU can only run when the loop lets it.
            if instance.hostsProcessOnItsCPU { sched_yield() } else { clinux_cpu_relax() }
        case .adaptive(let spins, let yields, let maxSleep):
            if idle < spins && !instance.hostsProcessOnItsCPU {
                clinux_cpu_relax()
            } else if idle < spins + yields {
                sched_yield()
            } else {
                // With a wire, sessions keep time (retransmission, heartbeats): wake
                // at least every millisecond, and on any frame arriving.
                let cap = instance.wireReadinessFD == nil ? maxSleep.nanoseconds : min(maxSleep.nanoseconds, 1_000_000)
                let timeout = min(instance.nanosecondsToNextTimer() ?? cap, cap)
                instance.publishCounters()  // what a reader sees while the instance sleeps
                instance.doorbell.sleep(
                    timeoutNanoseconds: Int64(min(timeout, UInt64(Int64.max))),
                    alsoWakingOn: instance.wireReadinessFD ?? -1, and: instance.channelBellFD
                ) {
                    self.instance.isIdle() && !self.stopRequested.load(ordering: .relaxed)
                }
                instance.channelsAwake()
                idle = spins  // after a sleep, yield a little before sleeping again
            }
        }
    }
}
