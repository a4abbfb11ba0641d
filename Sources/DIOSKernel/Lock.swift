#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex: the kernel's lock, for the few places where
/// threads meet (an executor's inbox, a polling loop's thread handle). Nothing
/// on an instance's data path takes it.
///
/// Not `Synchronization.Mutex`: on Linux that one locks with atomics and
/// futex calls inside the standard library, which ThreadSanitizer does not
/// see, so every access it guards reads to TSan as a race (the executor's
/// inbox did, on each job enqueued from another thread). A pthread mutex is
/// one TSan intercepts, so a `--sanitize=thread` build checks the instances'
/// isolation with no false reports; CI runs the multikernel suites that way.
/// Uncontended it costs the same: an atomic exchange to lock, one to unlock.
///
/// The mutex lives in memory of its own: a class's stored property has no
/// address Swift promises to keep, and a pthread mutex must not move.
final class Lock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Only touched under the mutex, so Swift's dynamic exclusivity check (a
    /// runtime call on every access, on each poll's inbox look) is left out.
    @exclusivity(unchecked) private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let r = pthread_mutex_init(mutex, nil)
        precondition(r == 0, "pthread_mutex_init: \(r)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
