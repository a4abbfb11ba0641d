import CLinux
import DequeModule
import Synchronization

/// The executor that runs a kernel instance's tasks: jobs run only when the
/// instance's polling loop calls `runPending()`, on the instance's own thread.
///
/// Tasks are Swift tasks started with this executor as their preference, so
/// every non-isolated `await` inside a program resumes here: a program and the
/// kernel instance it calls into never run at the same time. `enqueue` may come
/// from any thread (a task started from outside, a continuation resumed from a
/// foreign thread). The inbox's lock is taken there and by `runPending` when
/// jobs wait (a poll that finds none reads an atomic count), and never by
/// another instance's loop.
public final class InstanceExecutor: TaskExecutor, @unchecked Sendable {
    private let inbox = Lock(Deque<UnownedJob>())  // a pthread mutex, which TSan sees (Lock.swift)
    /// Jobs enqueued and not yet taken: a lock-free hint for spinning callers.
    private let pending = Atomic<Int>(0)
    @exclusivity(unchecked) private var running: Deque<UnownedJob> = []
    /// Signalled when a job arrives while the loop sleeps.
    let doorbell: Doorbell

    init(doorbell: Doorbell) {
        self.doorbell = doorbell
        running.reserveCapacity(64)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        inbox.withLock { $0.append(job) }
        pending.add(1, ordering: .releasing)
        doorbell.ring()
    }

    /// Whether jobs may be waiting, without taking the lock.
    var hasPendingHint: Bool { pending.load(ordering: .relaxed) > 0 }

    /// Whether jobs are waiting.
    var hasPending: Bool { inbox.withLock { !$0.isEmpty } }

    /// Runs every job queued so far (not those they enqueue in turn, which wait
    /// for the next poll so timers and rings are not starved). Returns how many ran.
    /// Must be called on the instance's thread.
    func runPending() -> Int {
        // Most polls find nothing: they read the hint and take no lock. A job
        // counted in `pending` is in the inbox (added after its append); one
        // appended but not yet counted is taken by the next poll.
        guard pending.load(ordering: .acquiring) > 0 else { return 0 }
        inbox.withLock { inbox in
            swap(&inbox, &running)
        }
        let n = running.count
        if n > 0 { pending.subtract(n, ordering: .relaxed) }
        while let job = running.popFirst() {
            // As a task executor only: the task runs nonisolated, so its calls into
            // nonisolated async functions continue inline instead of hopping
            // (an isolated run would make every such call a trip through enqueue).
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
        return n
    }
}

/// An eventfd the polling loop sleeps on when idle, rung by whoever gives it work.
/// Rings are cheap when nobody sleeps: one atomic load.
///
/// The sleeper announces itself, then checks for work once more; a ringer makes
/// its work visible, then looks. A ringer whose store was not yet visible when it
/// looked (x86 may let the load pass the store: the data path does not pay for
/// a fence) leaves the sleeper to its timeout, `maxSleep` at most — a late
/// wake-up, never a lost message. `busy` loops never sleep.
final class Doorbell: Sendable {
    let fd: Int32
    /// `sleeping` is read by every instance that hands this one work — on each
    /// message through a shared ring — and written only when this one sleeps.
    /// The padding gives it a cache line of its own wherever the allocator puts
    /// the object: sharing one with the next allocation (say the owner's
    /// instance, written on every call) made each of those reads a miss
    /// (`dios bench ipc`: ~50 ns a round trip).
    private let before: CacheLinePad = .init()
    private let sleeping = Atomic<Bool>(false)
    private let after: CacheLinePad = .init()

    init() {
        fd = clinux_eventfd()
        precondition(fd >= 0, "eventfd failed")
    }

    deinit { _ = close(fd) }

    func ring() {
        if sleeping.load(ordering: .sequentiallyConsistent) { _ = clinux_eventfd_signal(fd) }
    }

    /// Sleeps until rung or `timeoutNanoseconds` pass, unless `stillIdle` (checked
    /// after announcing the sleep, so a ring in between is not lost) says no.
    func sleep(
        timeoutNanoseconds: Int64, alsoWakingOn other: Int32 = -1, and third: Int32 = -1, stillIdle: () -> Bool
    ) {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if stillIdle() { _ = clinux_eventfd_wait(fd, other, third, timeoutNanoseconds) }
        sleeping.store(false, ordering: .sequentiallyConsistent)
    }
}

/// 64 bytes of nothing, to keep a hot word off its neighbours' cache lines.
struct CacheLinePad: Sendable {
    let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
}

#if canImport(Glibc)
import Glibc
#endif
