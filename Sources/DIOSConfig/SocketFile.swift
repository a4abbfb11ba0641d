import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Unix-domain socket files that a process listens on (a node's control
/// socket, a memif server's socket with `socket-abstract=no`). A process
/// killed leaves its file behind, and binding that path again fails with
/// "Address already in use"; a live one must not have its file taken away.
public enum SocketFile {
    /// Whether a process listens at `path` now: a connection to it succeeds.
    public static func isListening(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
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
