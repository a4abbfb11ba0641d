public import DIOSKernel
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket that no client can hold up, as the control socket and
/// the metrics endpoint need: one thread accepts; each connection is served
/// on a thread of its own, at most `maxInFlight` at once (the next one gets
/// `busy`); a reply waits at most 5 s for a client that does not
/// read (`SO_SNDTIMEO`). Reading a request within a size and a deadline is
/// `BoundedServer.read`. Never on an instance's thread.
public final class BoundedServer: @unchecked Sendable {
    private let fd: Int32
    private let maxInFlight: Int
    private let busy: @Sendable (Int32) -> Void
    private let handle: @Sendable (Int32) -> Void
    private var thread = pthread_t()
    /// Connections being served now.
    private let inFlight = Atomic<Int>(0)

    /// Serves the listening socket `fd` (bound and listening; this server
    /// closes it on `stop`). `handle` answers a connection and closes it;
    /// `busy` does so for one over the limit, on the accepting thread.
    public init(
        listening fd: Int32, maxInFlight: Int, busy: @escaping @Sendable (Int32) -> Void,
        handle: @escaping @Sendable (Int32) -> Void
    ) {
        self.fd = fd
        self.maxInFlight = maxInFlight
        self.busy = busy
        self.handle = handle
    }

    /// Starts the accepting thread.
    public func start() throws(OSThread.StartError) {
        thread = try OSThread.start { self.serve() }
    }

    /// Stops accepting and waits for the accepting thread (connections being
    /// served finish on their own threads).
    public func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        pthread_join(thread, nil)
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // closed by stop()
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // not inherited by task processes
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard inFlight.add(1, ordering: .relaxed).newValue <= maxInFlight else {
                inFlight.subtract(1, ordering: .relaxed)
                busy(client)
                continue
            }
            do throws(OSThread.StartError) {
                pthread_detach(
                    try OSThread.start {
                        self.handle(client)
                        self.inFlight.subtract(1, ordering: .relaxed)
                    })
            } catch {
                inFlight.subtract(1, ordering: .relaxed)
                close(client)
            }
        }
    }

    /// How reading a request ended.
    public enum Read: Equatable, Sendable {
        /// The request: the bytes up to the end `end` found (exclusive of
        /// what follows it).
        case complete([UInt8])
        /// The client closed before an end came; what it sent.
        case closed([UInt8])
        /// No end within `limit` bytes.
        case tooLong
        /// Not all of it within the deadline.
        case late
    }

    /// Reads from `client` until `end(bytes, from)` finds the end of a request
    /// (it returns the index just past it; `from` is where the bytes just read
    /// begin, less `lookBack`, so a terminator split across reads is found
    /// without rescanning): at most `limit` bytes, all within `deadline` however
    /// slowly they come.
    public static func read(
        _ client: Int32, limit: Int, deadline: Duration, lookBack: Int = 0, end: ([UInt8], Int) -> Int?
    ) -> Read {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let until = ContinuousClock.now + deadline
        while true {
            let left = ContinuousClock.now.duration(to: until)
            guard left > .zero else { return .late }
            var ready = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(
                clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let r = poll(&ready, 1, milliseconds)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return .late }
            let n = Glibc.read(client, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .closed(bytes) }
            let from = max(0, bytes.count - lookBack)
            bytes += buffer[0..<n]
            if let stop = end(bytes, from) {
                guard stop <= limit else { return .tooLong }
                return .complete(Array(bytes[0..<stop]))
            }
            guard bytes.count <= limit else { return .tooLong }
        }
    }
}
