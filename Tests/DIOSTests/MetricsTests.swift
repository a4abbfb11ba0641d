import DIOS
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The metrics endpoint, scraped by a real Prometheus (Debian's `prometheus`):
/// two `diosd` nodes over kernel UDP, each serving `/metrics`, and the
/// counters seen moving in Prometheus as a stream crosses between them.
@Suite(.serialized) struct MetricsTests {
    static let prometheus = "/usr/bin/prometheus"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prometheus), "needs Debian's prometheus package"))
    func prometheusSeesTheCountersMoveAsAStreamCrosses() throws {
        let cluster = try DiosdClusterTests.Cluster(nodes: 2, metrics: true)
        try cluster.start(0)
        try cluster.start(1)
        try #require(cluster.waitFor(0, "control socket") && cluster.waitFor(1, "control socket"))
        let targets = cluster.file.nodes.map { "\($0.metricsListen!)" }

        // The endpoint itself: Prometheus's text format, each instance labelled.
        let page = try #require(Self.get(targets[1], "/metrics"))
        #expect(page.status == 200 && page.body.contains("# TYPE dios_messages_in_total counter"))
        #expect(page.body.contains(#"dios_polls_total{dios_instance="1.0"}"#))
        #expect(Self.get(targets[1], "/nothing")?.status == 404)

        let server = try PrometheusServer(scraping: targets)
        defer { server.stop() }
        #expect(server.waitUntil("count(up{job=\"dios\"} == 1)", reaches: 2, seconds: 60), "\(server.log)")
        let query = #"dios_messages_in_total{dios_instance="1.0"}"#
        let before = try #require(server.value(of: query), "\(server.log)")

        // While the stream keeps both instances busy, the endpoint answers.
        let count = 50_000
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var reply = ""
        let socket = cluster.socket(0)
        Thread.detachNewThread {
            reply = DiosdClusterTests.Cluster.request(socket, "stream 1.0 \(count)")
            done.signal()
        }
        var answeredDuring = 0
        while done.wait(timeout: .now() + .milliseconds(50)) == .timedOut {
            if let page = Self.get(targets[0], "/metrics"), page.status == 200 { answeredDuring += 1 }
        }
        #expect(reply.contains("\(count) messages arrived in order"), "\(reply)\n\(cluster.text(0))")
        #expect(answeredDuring > 0)
        #expect(
            server.waitUntil(query, reaches: before + Double(count), seconds: 30),
            "\(query): \(server.value(of: query) ?? -1), was \(before)")
        let out = #"dios_messages_out_total{dios_instance="0.0"}"#
        #expect(server.waitUntil(out, reaches: Double(count), seconds: 30))
        // Each message counted once: when the task wrote it, not again when its instance sent it.
        #expect((server.value(of: out) ?? 0) < Double(count) * 1.1, "\(server.value(of: out) ?? -1)")
        #expect(server.waitUntil(#"dios_frames_received_total{dios_instance="1.0"}"#, reaches: 1, seconds: 30))
        #expect(server.value(of: #"dios_peers_reachable{dios_instance="0.0"}"#) == 1)
        #expect(cluster.stop(0) == 0)
        #expect(cluster.stop(1) == 0)
    }

    /// A whole HTTP/1.0 exchange with `address` ("host:port"): status and body.
    static func get(_ address: String, _ path: String) -> (status: Int, body: String)? {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, String(parts[0]), &sa.sin_addr)
        let connected = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return nil }
        let request = "GET \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n"
        _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        let text = DiosdClusterTests.Cluster.readAll(fd)
        guard let head = text.range(of: "\r\n\r\n"),
            let status = Int(text.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return (status, String(text[head.upperBound...]))
    }
}

/// A Prometheus server of its own (config, storage and port in /tmp), scraping
/// `targets` every second as job `dios`; queried through its HTTP API.
final class PrometheusServer {
    let directory: String
    let address: String
    let process = Process()

    init(scraping targets: [String]) throws {
        directory = "/tmp/dios-prometheus-\(getpid())-\(UInt32.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        address = "127.0.0.1:\(19_000 + Int(getpid() % 500) * 2)"
        let config = """
            global: {scrape_interval: 1s, scrape_timeout: 1s}
            scrape_configs:
              - job_name: dios
                static_configs: [{targets: [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]}]

            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: directory + "/log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/log"))
        process.executableURL = URL(fileURLWithPath: MetricsTests.prometheus)
        process.arguments = [
            "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=\(address)",
        ]
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? "" }

    /// The value of an instant `query`'s first sample, or nil (no sample, or no answer).
    func value(of query: String) -> Double? {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&+=")
        guard let q = query.addingPercentEncoding(withAllowedCharacters: allowed),
            let reply = MetricsTests.get(address, "/api/v1/query?query=\(q)"), reply.status == 200,
            let json = try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
            let sample = result.first?["value"] as? [Any], sample.count == 2, let text = sample[1] as? String
        else { return nil }
        return Double(text)
    }

    /// Waits until `query`'s value is at least `target`; false after `seconds`.
    func waitUntil(_ query: String, reaches target: Double, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let v = value(of: query), v >= target { return true }
            usleep(250_000)
        }
        return false
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
