import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard output at once (fd 1, unbuffered), so a parent
/// reading it from a file or pipe sees progress lines as they happen.
func say(_ line: String) {
    let text = line + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
}

/// Writes "dios-dpdk-probe: message" to standard error (fd 2, unbuffered).
func warn(_ message: String) {
    let line = "dios-dpdk-probe: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// Monotonic nanoseconds.
@inline(__always) func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}
