import DIOS
import DIOSTransport
import DIOSWire
import Foundation
import Testing

/// A task process started on another node: two nodes in this process joined
/// by kernel UDP on loopback, the executable registered on both (a run
/// carries only the program's name and its command line).
@Suite(.serialized) struct RemoteProcessTests {
    static func makePair() async throws -> [Node] {
        let session = SessionConfiguration(retransmitTimeout: .milliseconds(1), failureTimeout: .seconds(2))
        let transports = try (0..<2).map { _ in try UDPTransport(bind: PeerAddress("127.0.0.1", port: 0)!) }
        var peers: [InstanceID: PeerAddress] = [:]
        for (n, t) in transports.enumerated() { peers[InstanceID(node: UInt16(n), core: 0)] = t.localAddress }
        var nodes: [Node] = []
        for (n, t) in transports.enumerated() {
            var configuration = NodeConfiguration()
            configuration.node = UInt16(n)
            configuration.arenaSize = 16 << 20
            configuration.idlePolicy = .adaptive(spins: 64, yields: 10, maxSleep: .milliseconds(50))
            configuration.processes = ProcessOptions(
                logDirectory: CheckProgram.directory + "/remote-\(UUID().uuidString)")
            let endpoint = WireEndpoint(
                local: InstanceID(node: UInt16(n), core: 0), transport: t, peers: peers, configuration: session,
                now: DispatchTime.now().uptimeNanoseconds, seed: UInt64(n) &+ 17)
            let node = try Node(configuration, wires: [endpoint])
            await node.register(try CheckProgram.executable())
            nodes.append(node)
        }
        return nodes
    }

    @Test func aProcessOnAnotherNodeStreamsInOrderAndItsStatusComesBack() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        let remote = InstanceID(node: 1, core: 0)
        for _ in 0..<500 {
            if try await nodes[0].withTask({ _ in nodes[0].instance.wireEndpoint?.isReachable(remote) ?? false }) {
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let count: UInt64 = 100_000
        let (received, status) = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            // `.writable`: the task there gets the stream's write end; this side reads.
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["stream", "\(count)"],
                flags: .writable, on: remote)
            let next = try await task.readChecked(stream, count: count, from: child)
            return (next, try await task.status(of: child))
        }
        #expect(received == count, "\(allLogs(nodes[1]))")
        #expect(status == 0, "\(allLogs(nodes[1]))")
        #expect(allLogs(nodes[1]).contains("wrote \(count) messages"))
    }

    /// The command line and the environment cross the wire with the run.
    @Test func aProcessOnAnotherNodeGetsItsCallersEnvironment() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        let remote = InstanceID(node: 1, core: 0)
        for _ in 0..<500 {
            if try await nodes[0].withTask({ _ in nodes[0].instance.wireEndpoint?.isReachable(remote) ?? false }) {
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let status = try await nodes[0].withTask { task in
            try await task.status(
                of: try task.run(
                    try task.lookup(program)[0], commandLine: ["env", "WHERE", "node 0 ü"],
                    environment: ["WHERE=node 0 ü"], on: remote))
        }
        #expect(status == 0, "\(allLogs(nodes[1]))")
        #expect(allLogs(nodes[1]).contains("the environment holds"))
    }
}
