public import DIOSCore

#if canImport(Glibc)
import Glibc
#endif

/// An executable file (ELF, any language) as a program object: named by the
/// SHA-256 of its bytes, so the same program has the same name on every node
/// and a copy fetched from elsewhere can be checked against it.
public struct Executable: Sendable, Equatable {
    /// The file, as an absolute path with its links resolved.
    public let path: String
    /// The SHA-256 of its bytes.
    public let name: Name
    public let size: Int

    /// Reads and hashes the file. Refused when it cannot be read or is not executable.
    public init(path: String) throws(ExecutableError) {
        guard let resolved = realpath(path, nil) else { throw .unreadable(path: path, errno: errno) }
        let absolute = String(cString: resolved)
        free(resolved)
        guard access(absolute, X_OK) == 0 else { throw .notExecutable(path: absolute, errno: errno) }
        let fd = open(absolute, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: absolute, errno: errno) }
        defer { close(fd) }
        var hash = SHA256()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var size = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: absolute, errno: errno)
            }
            if n == 0 { break }
            hash.update(chunk[0..<n])
            size += n
        }
        self.path = absolute
        self.name = Name(bytes: hash.finish())!
        self.size = size
    }

    private init(path: String, name: Name, size: Int) {
        self.path = path
        self.name = name
        self.size = size
    }

    /// Moves the file to `path` (rename(2): the same file system) and returns
    /// it there, under the name it had: the bytes are not read again.
    public func moved(to path: String) throws(ExecutableError) -> Executable {
        guard rename(self.path, path) == 0 else { throw .unmovable(from: self.path, to: path, errno: errno) }
        guard let resolved = realpath(path, nil) else { throw .unreadable(path: path, errno: errno) }
        defer { free(resolved) }
        return Executable(path: String(cString: resolved), name: name, size: size)
    }
}

/// Why a file cannot be a program.
public enum ExecutableError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, errno: Int32)
    case notExecutable(path: String, errno: Int32)
    case unmovable(from: String, to: String, errno: Int32)

    public var description: String {
        switch self {
        case .unreadable(let p, let e): "cannot read \(p): \(String(cString: strerror(e)))"
        case .notExecutable(let p, let e): "\(p) is not executable: \(String(cString: strerror(e)))"
        case .unmovable(let from, let to, let e): "cannot move \(from) to \(to): \(String(cString: strerror(e)))"
        }
    }
}
