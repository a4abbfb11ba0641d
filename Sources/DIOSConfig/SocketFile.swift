import Foundation

#if canImport(Glibc)
public import Glibc
#endif

/// Unix-domain socket files that a process listens on (a node's control
/// socket, a memif server's socket with `socket-abstract=no`). A process
/// killed leaves its file behind, and binding that path again fails with
/// "Address already in use"; a live one must not have its file taken away.
public enum SocketFile {
    /// Whether `path` fits a socket address (`sockaddr_un`, 107 bytes and a NUL).
    public static func fits(_ path: String) -> Bool {
        path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path)
    }

    /// Calls `call` (`bind` or `connect`) for socket `fd` with `path` as its
    /// Unix-domain address: the call's result, or -1 with `errno` set to
    /// ENAMETOOLONG when `path` does not fit. The one place such an address
    /// is built.
    public static func attach(
        _ fd: Int32, to path: String, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) -> Int32 {
        guard fits(path) else {
            errno = ENAMETOOLONG
            return -1
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                call(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Whether a process listens at `path` now: a connection to it succeeds.
    public static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return attach(fd, to: path) { connect($0, $1, $2) } == 0
    }

    /// Whether `path` names a socket file.
    public static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
    }

    /// Removes the socket file at `path` when nothing listens on it (it was
    /// left by a process that died). True when it removed one; a path that is
    /// not a socket, or one a process listens on, is left alone.
    @discardableResult
    public static func removeIfStale(_ path: String) -> Bool {
        guard isSocket(path), !isListening(path) else { return false }
        return unlink(path) == 0
    }
}
