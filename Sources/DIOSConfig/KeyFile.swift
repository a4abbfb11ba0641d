public import DIOSWire

#if canImport(Glibc)
import Glibc
#endif

/// The cluster's secret on disk: 64 hexadecimal digits and a newline, in a
/// file only its owner may read or write (mode 0600), owned by the user
/// reading it or by root. Every node of a cluster reads the same file (or a
/// copy of it).
public enum KeyFile {
    /// Reads the secret at `path`, refusing a file that others could read or
    /// write, or that holds anything but one secret.
    public static func load(_ path: String) throws(ConfigError) -> ClusterSecret {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw .invalid(
                "the cluster's key file \(path): \(String(cString: strerror(errno))) (make one with dios cluster keygen)"
            )
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .invalid("the cluster's key file \(path) is not a file") }
        guard st.st_mode & 0o077 == 0 else {
            throw .invalid(
                "the cluster's key file \(path) is open to others (mode \(String(st.st_mode & 0o777, radix: 8))): "
                    + "chmod 600 \(path)")
        }
        guard st.st_uid == geteuid() || st.st_uid == 0 else {
            throw .invalid("the cluster's key file \(path) belongs to user \(st.st_uid), not to this one or root")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path) }
        guard let secret = parse(text) else {
            throw .invalid(
                "the cluster's key file \(path) must hold \(ClusterSecret.size * 2) hexadecimal digits (dios cluster keygen)"
            )
        }
        return secret
    }

    /// The secret written as `text`, or nil.
    public static func parse(_ text: String) -> ClusterSecret? {
        let digits = text.hasSuffix("\n") ? Substring(text.dropLast()) : Substring(text)
        guard digits.count == ClusterSecret.size * 2, digits.allSatisfy(\.isHexDigit) else { return nil }
        var bytes: [UInt8] = []
        var i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(i, offsetBy: 2)
            bytes.append(UInt8(digits[i..<j], radix: 16)!)
            i = j
        }
        return ClusterSecret(bytes: bytes)
    }

    /// Writes a new secret to `path` (mode 0600), refusing to replace a file
    /// already there unless `replacing`.
    @discardableResult
    public static func generate(_ path: String, replacing: Bool = false) throws(ConfigError) -> ClusterSecret {
        let secret = ClusterSecret.generate()
        let text = secret.bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "\n"
        // Written beside the target and renamed over it, so no reader sees a
        // half-written key; created 0600, so it is never open to others.
        let partial = "\(path).\(getpid()).new"
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .invalid("cannot write \(partial): \(String(cString: strerror(errno)))") }
        let written = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.utf8.count, synced else {
            unlink(partial)
            throw .invalid("cannot write \(partial): \(String(cString: strerror(errno)))")
        }
        if !replacing {
            // link(2) fails when the target exists: no race with another keygen.
            defer { unlink(partial) }
            guard link(partial, path) == 0 else {
                throw .invalid(
                    errno == EEXIST
                        ? "\(path) exists: the cluster has a key (keygen --force replaces it)"
                        : "cannot write \(path): \(String(cString: strerror(errno)))")
            }
        } else if rename(partial, path) != 0 {
            unlink(partial)
            throw .invalid("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return secret
    }
}

extension ClusterFile {
    /// How the nodes of the cluster file at `path` protect their frames: its
    /// secret read from its key file, or nil when its frames are plain.
    public func security(for path: String) throws(ConfigError) -> WireSecurity? {
        guard frames != .plain else { return nil }
        if let why = WireSecurity.unavailable { throw .invalid(why) }
        return WireSecurity(secret: try KeyFile.load(keyPath(for: path)), protection: frames)
    }
}
