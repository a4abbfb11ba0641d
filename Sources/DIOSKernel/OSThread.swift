import CLinux

#if canImport(Glibc)
public import Glibc
#endif

/// Threads of the operating system's own, for what must not run on Swift's
/// cooperative pool: an instance's polling loop (it never yields the thread),
/// and the node's service threads that block in system calls (the control
/// socket's `accept`, the wait for a termination signal). One place holds the
/// `pthread_create` boilerplate: the closure crosses to the new thread in a
/// retained box, which the thread takes back.
public enum OSThread {
    /// Why a thread did not start: `pthread_create`'s error number.
    public struct StartError: Error, CustomStringConvertible {
        public let code: Int32
        public var description: String { "pthread_create: \(String(cString: strerror(code))) (\(code))" }
    }

    /// The CPUs this process may run on (its affinity mask, as `taskset` or a
    /// cgroup's cpuset leave it), ascending; empty if it cannot be read.
    public static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let n = cpus.withUnsafeMutableBufferPointer { clinux_affinity_cpus($0.baseAddress, Int32($0.count)) }
        return n <= 0 ? [] : cpus.prefix(Int(min(n, 1024))).map(Int.init)
    }

    /// CPUs as a short list of ranges: `0-3,8,10-11`.
    public static func describe(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = cpus.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(j == i ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// Starts `body` on a new thread, pinned to `cpu` first when one is given
    /// (a CPU the process may not use leaves the thread unpinned: callers that
    /// must know pin in `body` with `clinux_pin_current_thread`). Returns the
    /// thread: join it (`pthread_join`), or detach it (`pthread_detach`) when
    /// nobody will, or its stack outlives it.
    @discardableResult
    public static func start(pinnedTo cpu: Int? = nil, _ body: @escaping @Sendable () -> Void) throws(StartError)
        -> pthread_t
    {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            let cpu: Int?
            init(_ body: @escaping @Sendable () -> Void, cpu: Int?) {
                self.body = body
                self.cpu = cpu
            }
        }
        let box = Unmanaged.passRetained(Box(body, cpu: cpu))
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { argument in
                let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
                if let cpu = box.cpu { _ = clinux_pin_current_thread(Int32(cpu)) }
                box.body()
                return nil
            }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw StartError(code: result)
        }
        return thread
    }
}
