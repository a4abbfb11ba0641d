import DIOS
import DIOSHost
public import DIOSWire

#if canImport(Glibc)
import Glibc
#endif

/// Serves a node's metrics over HTTP: `GET /metrics` answers Prometheus's
/// text format (`NodeMetrics.scrape`), anything else a 404.
///
/// Like the control socket, no client can hold it up: each connection has a
/// thread of its own, at most `maxInFlight` at once (the next one gets a 503);
/// a request's head must arrive whole, within `maxRequest` bytes, inside
/// `requestDeadline`; a reply waits at most 5 s for a client that does not
/// read. It never runs on an instance's thread.
public final class MetricsServer: @unchecked Sendable {
    /// Where it listens (the port the kernel chose, when asked for port 0).
    public let address: PeerAddress
    private let metrics: NodeMetrics
    private let server: BoundedServer

    static let maxInFlight = 16
    static let maxRequest = 8192
    static let requestDeadline: Duration = .seconds(2)

    /// Binds and listens at `address` (TCP).
    public init(listen address: PeerAddress, metrics: NodeMetrics) throws(MetricsServerError) {
        self.metrics = metrics
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = address.port.bigEndian
        sa.sin_addr = in_addr(s_addr: address.ipv4.bigEndian)
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw .system("bind/listen \(address)", e)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.address = PeerAddress(ipv4: address.ipv4, port: UInt16(bigEndian: actual.sin_port))
        server = BoundedServer(
            listening: fd, maxInFlight: Self.maxInFlight,
            busy: { Self.reply(status: "503 Service Unavailable", body: Array("busy\n".utf8), to: $0) },
            handle: { Self.handle($0, metrics: metrics) })
    }

    /// Serves until `stop()`.
    public func start() throws(MetricsServerError) {
        do throws(OSThread.StartError) { try server.start() } catch {
            throw .system("its thread", error.code)
        }
    }

    /// Stops accepting and waits for the accepting thread.
    public func stop() { server.stop() }

    private static func handle(_ client: Int32, metrics: NodeMetrics) {
        switch HTTPRequestHead.read(client, limit: Self.maxRequest, deadline: Self.requestDeadline) {
        case .head(let head):
            guard head.method == "GET" || head.method == "HEAD" else {
                return Self.reply(status: "405 Method Not Allowed", body: Array("GET /metrics\n".utf8), to: client)
            }
            guard head.path == "/metrics" else {
                return Self.reply(
                    status: "404 Not Found", body: Array("the metrics are at /metrics\n".utf8), to: client)
            }
            Self.reply(
                status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: metrics.scrape(),
                withBody: head.method == "GET", to: client)
        case .malformed:
            Self.reply(status: "400 Bad Request", body: Array("not an HTTP/1 request\n".utf8), to: client)
        case .tooLong:
            Self.reply(status: "431 Request Header Fields Too Large", body: [], to: client)
        case .late:
            Self.reply(status: "408 Request Timeout", body: [], to: client)
        }
    }

    /// Sends a whole response and closes the connection.
    static func reply(
        status: String, type: String = "text/plain; charset=utf-8", body: [UInt8], withBody: Bool = true,
        to client: Int32
    ) {
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var bytes = Array(head.utf8)
        if withBody { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            sent += n
        }
        // The client may still be sending (a body we ignore): close only our
        // side first, so it reads the reply rather than a reset.
        shutdown(client, Int32(SHUT_WR))
        close(client)
    }
}

/// Why the metrics server did not start.
public enum MetricsServerError: Error, CustomStringConvertible {
    case system(String, Int32)

    public var description: String {
        switch self {
        case .system(let what, let e): "metrics endpoint: \(what): \(String(cString: strerror(e)))"
        }
    }
}
