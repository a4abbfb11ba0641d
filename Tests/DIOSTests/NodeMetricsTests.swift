import DIOS
import Foundation
import Testing

@testable import DIOSMetrics

/// A node's counters as Prometheus text, read from the instances' counter
/// boards; and the endpoint's reading of requests.
@Suite(.serialized) struct NodeMetricsTests {
    /// The value of `metric` with `dios_instance="id"` in Prometheus text.
    static func sample(_ text: String, _ metric: String, _ id: String) -> Double? {
        let prefix = "\(metric){dios_instance=\"\(id)\"} "
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return Double(line.dropFirst(prefix.count))
    }

    @Test func aScrapeShowsWhatEachInstanceDidWithoutAskingIt() async throws {
        var configuration = NodeConfiguration()
        configuration.arenaSize = 8 << 20
        configuration.cores = [0, 1]
        configuration.pin = false
        configuration.idlePolicy = .adaptive
        let node = try Node(configuration)
        defer { node.shutdown() }
        let metrics = NodeMetrics(node: node)
        let text0 = String(decoding: metrics.scrape(), as: UTF8.self)
        #expect(text0.contains("# TYPE dios_calls_total counter"))
        #expect(text0.contains("# TYPE dios_tasks_live gauge"))
        #expect(Self.sample(text0, "dios_polls_total", "0.1") != nil)
        let count = 10_000
        try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 64))
            for _ in 0..<count {
                while true {
                    do {
                        let w = try task.beginWrite(stream, size: 8)
                        _ = task.endWrite(w)
                        let r = try task.beginRead(stream)
                        _ = task.endRead(r)
                        break
                    } catch CallError.wouldBlock {
                        await Task.yield()
                    }
                }
            }
        }
        // The instance publishes every 1,024 turns and before it sleeps.
        var text = ""
        for _ in 0..<200 {
            text = String(decoding: metrics.scrape(), as: UTF8.self)
            if let out = Self.sample(text, "dios_messages_out_total", "0.0"), out >= Double(count) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(Self.sample(text, "dios_messages_out_total", "0.0") == Double(count))
        #expect(Self.sample(text, "dios_messages_in_total", "0.0") == Double(count))
        #expect((Self.sample(text, "dios_calls_total", "0.0") ?? 0) >= Double(4 * count))
        #expect(Self.sample(text, "dios_messages_out_total", "0.1") == 0)
        // Counters never go back, scrape after scrape.
        let again = String(decoding: metrics.scrape(), as: UTF8.self)
        #expect(
            (Self.sample(again, "dios_polls_total", "0.0") ?? 0) >= (Self.sample(text, "dios_polls_total", "0.0") ?? 1))
    }

    @Test func requestHeadsAreReadOrRefused() {
        #expect(
            HTTPRequestHead.parse(Array("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
                == HTTPRequestHead(method: "GET", path: "/metrics"))
        for bad in [
            "", "\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "get /metrics HTTP/1.1\r\n\r\n",
            "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
        ] {
            #expect(HTTPRequestHead.parse(Array(bad.utf8)) == nil, "\(bad.debugDescription)")
        }
        #expect(HTTPRequestHead.end(of: Array("GET / HTTP/1.0\r\n\r\nbody".utf8)) == 18)
        #expect(HTTPRequestHead.end(of: Array("GET / HTTP/1.0\r\n".utf8)) == nil)
    }

    /// A head that comes a few bytes at a time, its blank line split across
    /// reads, is read whole; one that never ends is cut at the limit.
    @Test func aHeadInPiecesIsReadAndAnEndlessOneRefused() throws {
        var pieces: [Int32] = [0, 0]
        var endless: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pieces) == 0)
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &endless) == 0)
        defer { for fd in pieces + endless { close(fd) } }
        let head = Array("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        let writer = pieces[1]
        let thread = Thread {
            for piece in stride(from: 0, to: head.count, by: 3) {
                _ = head[piece..<min(piece + 3, head.count)].withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
                usleep(2000)
            }
        }
        thread.start()
        #expect(
            HTTPRequestHead.read(pieces[0], limit: 8192, deadline: .seconds(5))
                == .head(HTTPRequestHead(method: "GET", path: "/metrics")))
        let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 9000)
        #expect(bytes.withUnsafeBytes { write(endless[1], $0.baseAddress, $0.count) } == 9000)
        #expect(HTTPRequestHead.read(endless[0], limit: 8192, deadline: .seconds(5)) == .tooLong)
    }

    /// Random bytes, and random mutations of a good head, never trap the
    /// parser; whatever it accepts is a request line of the form it reads.
    @Test func randomRequestHeadsNeverTrapTheParser() {
        var rng = SystemRandomNumberGenerator()
        let good = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        for n in 0..<20_000 {
            var bytes: [UInt8]
            if n % 2 == 0 {
                bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = good
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            _ = HTTPRequestHead.end(of: bytes)
            if let head = HTTPRequestHead.parse(bytes) {
                #expect(!head.method.isEmpty && head.path.hasPrefix("/"))
            }
        }
    }
}
