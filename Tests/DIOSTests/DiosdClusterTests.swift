import Foundation
import Testing

/// Real clusters: one `diosd` process per node, talking DIOS frames over kernel
/// UDP sockets on loopback, started and stopped (or killed) as a user would.
@Suite(.serialized) struct DiosdClusterTests {
    /// A cluster file in /tmp and the nodes' processes, logging to files.
    final class Cluster {
        let name: String
        let path: String
        let nodes: Int
        var processes: [Int: Process] = [:]

        init(nodes: Int, faults: String = "", failureTimeoutMs: Int = 1000) throws {
            self.nodes = nodes
            name = "test\(getpid())x\(UInt32.random(in: 0..<1_000_000))"
            path = "/tmp/dios-\(name).yaml"
            let base = 20_000 + Int(getpid() % 400) * 100 + Int.random(in: 0..<50)
            var yaml = """
                name: \(name)
                idle: adaptive
                log_level: notice
                session:
                  failure_timeout_ms: \(failureTimeoutMs)
                  heartbeat_ms: 20

                """
            if !faults.isEmpty { yaml += "faults: {\(faults)}\n" }
            yaml += "nodes:\n"
            for n in 0..<nodes {
                yaml += """
                      - id: \(n)
                        address: 127.0.0.1
                        port: \(base + n * 2)
                        cores: [\(n % 2)]
                        arena_mib: 16
                        control_socket: /tmp/dios-\(name)-\(n).sock

                    """
            }
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        }

        func log(_ n: Int) -> String { "/tmp/dios-\(name)-\(n).log" }
        func socket(_ n: Int) -> String { "/tmp/dios-\(name)-\(n).sock" }

        /// Starts node `n` (`diosd --cluster FILE --node n` plus `extra`).
        func start(_ n: Int, _ extra: [String] = []) throws {
            _ = FileManager.default.createFile(atPath: log(n), contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log(n)))
            let p = Process()
            p.executableURL = DiosdProcessTests.diosd
            p.arguments = ["--cluster", path, "--node", "\(n)"] + extra
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            processes[n] = p
        }

        func text(_ n: Int) -> String { (try? String(contentsOfFile: log(n), encoding: .utf8)) ?? "" }

        /// Waits until node `n`'s output contains `needle`; false after `seconds`.
        func waitFor(_ n: Int, _ needle: String, seconds: Double = 30) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if text(n).contains(needle) { return true }
                if processes[n]?.isRunning == false { return text(n).contains(needle) }
                usleep(20_000)
            }
            return false
        }

        /// `dios status --json` of node `n`.
        func status(_ n: Int) -> String {
            let p = Process()
            p.executableURL = DiosdProcessTests.dios
            p.arguments = ["status", "--socket", socket(n), "--json"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            guard (try? p.run()) != nil else { return "" }
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }

        /// Waits until node `n`'s status says `peer` is down (or up).
        func waitForPeer(_ n: Int, _ peer: String, up: Bool, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let s = status(n)
                let field = up ? "peers_up" : "peers_down"
                if let range = s.range(of: "\"\(field)\":\""),
                    s[range.upperBound...].prefix(while: { $0 != "\"" }).split(separator: " ").contains(Substring(peer))
                {
                    return true
                }
                usleep(50_000)
            }
            return false
        }

        func stop(_ n: Int) -> Int32? {
            guard let p = processes[n] else { return nil }
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
            processes[n] = nil
            return p.terminationStatus
        }

        func kill9(_ n: Int) {
            guard let p = processes[n] else { return }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            processes[n] = nil
        }

        deinit {
            for (_, p) in processes where p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
            for n in 0..<nodes {
                unlink(log(n))
                unlink(socket(n))
            }
            unlink(path)
        }
    }

    /// Three nodes over kernel UDP: 100,000 numbered messages from node 0 to a
    /// task on node 1, and as many to node 2, arrive complete and in order.
    @Test func threeNodesStreamInOrderOverUDP() throws {
        let cluster = try Cluster(nodes: 3)
        try cluster.start(1)
        try cluster.start(2)
        #expect(cluster.waitFor(1, "control socket") && cluster.waitFor(2, "control socket"))
        try cluster.start(0, ["--stream-to", "1.0,2.0", "--messages", "100000", "--once"])
        _ = cluster.waitFor(0, "node stopped cleanly", seconds: 120)
        let out = cluster.text(0)
        #expect(cluster.stop(0) == 0, "\(out)")
        #expect(out.contains("stream to 1.0: 100000 messages arrived in order"), "\(out)")
        #expect(out.contains("stream to 2.0: 100000 messages arrived in order"), "\(out)")
        #expect(cluster.stop(1) == 0)
        #expect(cluster.stop(2) == 0)
    }

    /// The seeded fault stage on both nodes' sockets (5% loss, duplication,
    /// reordering, delay): every message still arrives exactly once, in order.
    @Test func aLossyLinkStillDeliversEveryMessageOnceInOrder() throws {
        let cluster = try Cluster(nodes: 2, faults: "loss: 0.05, duplicate: 0.02, reorder: 0.05, delay_us: 50, seed: 9")
        try cluster.start(1)
        #expect(cluster.waitFor(1, "control socket"))
        try cluster.start(0, ["--stream-to", "1.0", "--messages", "100000", "--once"])
        _ = cluster.waitFor(0, "node stopped cleanly", seconds: 180)
        let out = cluster.text(0)
        #expect(cluster.stop(0) == 0, "\(out)")
        #expect(out.contains("fault stage on 127.0.0.1"), "\(out)")
        #expect(out.contains("stream to 1.0: 100000 messages arrived in order"), "\(out)")
        #expect(!out.contains(", 0 frames resent"), "the fault stage dropped nothing? \(out)")
        #expect(cluster.stop(1) == 0)
    }

    /// `kill -9` of a node: the task reading from it is told within the failure
    /// timeout, the other nodes mark it down and keep serving; restarted, it is
    /// re-admitted.
    @Test func aKilledNodeIsDetectedAndReadmittedWhenItReturns() throws {
        let cluster = try Cluster(nodes: 3, failureTimeoutMs: 500)
        try cluster.start(1)
        try cluster.start(2)
        #expect(cluster.waitFor(1, "control socket") && cluster.waitFor(2, "control socket"))
        try cluster.start(0, ["--watch", "1.0"])
        #expect(cluster.waitFor(0, "watching 1.0: its messages arrive"), "\(cluster.text(0))")
        #expect(cluster.waitForPeer(2, "1.0", up: true, seconds: 10))

        cluster.kill9(1)
        let killed = Date()
        #expect(cluster.waitFor(0, "lost 1.0 after", seconds: 10), "\(cluster.text(0))")
        let detected = Date().timeIntervalSince(killed)
        #expect(detected < 3, "took \(detected) s with a 500 ms timeout")
        #expect(cluster.text(0).contains("instance 1.0 is unreachable: no answer within 500 ms"), "\(cluster.text(0))")
        #expect(cluster.waitFor(0, "the task on 1.0 ended with status -128"), "\(cluster.text(0))")
        #expect(cluster.waitForPeer(2, "1.0", up: false, seconds: 5))
        // The survivors still serve, and still reach each other.
        #expect(cluster.waitForPeer(0, "2.0", up: true, seconds: 5))
        #expect(cluster.waitForPeer(2, "0.0", up: true, seconds: 5))

        try cluster.start(1)
        #expect(cluster.waitFor(1, "control socket"))
        #expect(cluster.waitForPeer(0, "1.0", up: true, seconds: 10))
        #expect(cluster.waitForPeer(2, "1.0", up: true, seconds: 10))
        for n in 0..<3 { #expect(cluster.stop(n) == 0) }
    }
}
