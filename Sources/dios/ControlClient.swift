import ArgumentParser
import DIOSBench
import DIOSConfig
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Talks to a node's control socket.
enum ControlClient {
    /// Sends one request and returns the whole reply.
    static func request(_ request: String, socket path: String) throws -> String {
        let fd = try connect(request, socket: path)
        defer { close(fd) }
        var reply = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    /// Sends one request and returns the connection, to read the reply from.
    static func connect(_ request: String, socket path: String) throws -> Int32 {
        guard SocketFile.fits(path) else { throw ValidationError("socket path too long") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CommandFailure("socket: \(String(cString: strerror(errno)))") }
        let connected = SocketFile.attach(fd, to: path) { Glibc.connect($0, $1, $2) }
        guard connected == 0 else {
            let e = errno
            close(fd)
            throw CommandFailure(
                "no node at \(path): \(String(cString: strerror(e))) (is diosd running with this control socket?)")
        }
        _ = (request + "\n").utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        return fd
    }

    /// The top-level fields of one JSON object (a node's status line), as
    /// text: numbers as written, a list as its items joined by spaces; none
    /// when the line is not a JSON object.
    static func fields(of line: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            return [:]
        }
        return object.mapValues { value in
            switch value {
            case let text as String: text
            case let list as [Any]: list.map { "\($0)" }.joined(separator: " ")
            default: "\(value)"
            }
        }
    }
}
