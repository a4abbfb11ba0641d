import DIOS
import DIOSTransport
import DIOSWire
import Foundation
import Testing

/// A task process started on another node: two nodes in this process joined
/// by kernel UDP on loopback, the executable registered on both (a run
/// carries only the program's name and its command line).
@Suite(.serialized) struct RemoteProcessTests {
    static func makePair(registeringOn registering: Set<Int> = [0, 1]) async throws -> [Node] {
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
                logDirectory: CheckProgram.directory + "/remote-\(UUID().uuidString)",
                programDirectory: CheckProgram.directory + "/programs-\(UUID().uuidString)")
            let endpoint = WireEndpoint(
                local: InstanceID(node: UInt16(n), core: 0), transport: t, peers: peers, configuration: session,
                now: DispatchTime.now().uptimeNanoseconds, seed: UInt64(n) &+ 17)
            let node = try Node(configuration, wires: [endpoint])
            if registering.contains(n) { await node.register(try CheckProgram.executable()) }
            nodes.append(node)
        }
        return nodes
    }

    @Test func aProcessOnAnotherNodeStreamsInOrderAndItsStatusComesBack() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        let remote = InstanceID(node: 1, core: 0)
        try await RemoteProcessTests.waitUntilReachable(nodes)
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
        // The process wrote the ring its instance sends from, in its own
        // mapping of the arena: no write crossed its channel.
        let entry = try #require(nodes[1].processes.all.first)
        #expect(entry.dataCalls == 0, "\(entry.dataCalls) reads and writes crossed its ring")
        #expect(entry.calls < count / 4, "\(entry.calls) submissions")
    }

    /// The other way: a task here writes, the process there reads what its
    /// instance delivers into the ring, in its own mapping, in order.
    @Test func aProcessOnAnotherNodeReadsInItsOwnMapping() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        try await RemoteProcessTests.waitUntilReachable(nodes)
        let count: UInt64 = 100_000
        let status = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["sink", "\(count)"],
                on: InstanceID(node: 1, core: 0))
            try await task.writeChecked(stream, count: count)
            return try await task.status(of: child)
        }
        #expect(status == 0, "\(allLogs(nodes[1]))")
        #expect(allLogs(nodes[1]).contains("read \(count) messages in order"))
        let entry = try #require(nodes[1].processes.all.first)
        #expect(entry.dataCalls == 0, "\(entry.dataCalls) reads and writes crossed its ring")
        #expect(entry.calls < count / 4, "\(entry.calls) submissions")
    }

    /// An untrusted process maps nothing: across the wire too, its every
    /// write is an entry in its ring, copied from its window.
    @Test func anUntrustedProcessOnAnotherNodeWritesThroughItsChannel() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        try await RemoteProcessTests.waitUntilReachable(nodes)
        let count: UInt64 = 2_000
        let (received, status) = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["stream", "\(count)"],
                flags: [.writable, .untrusted], on: InstanceID(node: 1, core: 0))
            let next = try await task.readChecked(stream, count: count, from: child)
            return (next, try await task.status(of: child))
        }
        #expect(received == count && status == 0, "\(allLogs(nodes[1]))")
        let entry = try #require(nodes[1].processes.all.first)
        #expect(entry.dataCalls >= count)
    }

    /// The command line and the environment cross the wire with the run.
    @Test func aProcessOnAnotherNodeGetsItsCallersEnvironment() async throws {
        let nodes = try await Self.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try CheckProgram.executable().name
        let remote = InstanceID(node: 1, core: 0)
        try await RemoteProcessTests.waitUntilReachable(nodes)
        let status = try await nodes[0].withTask { task in
            try await task.status(
                of: try task.run(
                    try task.lookup(program)[0], commandLine: ["env", "WHERE", "node 0 ü"],
                    environment: ["WHERE=node 0 ü"], on: remote))
        }
        #expect(status == 0, "\(allLogs(nodes[1]))")
        #expect(allLogs(nodes[1]).contains("the environment holds"))
    }

    static func waitUntilReachable(_ nodes: [Node]) async throws {
        let remote = InstanceID(node: 1, core: 0)
        for _ in 0..<500 {
            if try await nodes[0].withTask({ _ in nodes[0].instance.wireEndpoint?.isReachable(remote) ?? false }) {
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A program only the caller's node has: the other node fetches it over
    /// DIOS, checks its bytes against its name, keeps and registers it, and
    /// runs it; a second run there finds it registered.
    @Test func aNodeFetchesAProgramItLacksFromTheNodeThatAsks() async throws {
        let nodes = try await Self.makePair(registeringOn: [0])
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilReachable(nodes)
        let program = try CheckProgram.executable()
        #expect(nodes[1].executables.isEmpty)
        let statuses = try await nodes[0].withTask { task in
            let p = try task.lookup(program.name)[0]
            return [
                try await task.status(
                    of: try task.run(p, commandLine: ["exit", "3"], on: InstanceID(node: 1, core: 0))),
                try await task.status(
                    of: try task.run(p, commandLine: ["exit", "4"], on: InstanceID(node: 1, core: 0))),
            ]
        }
        #expect(statuses == [3, 4], "\(allLogs(nodes[1]))")
        let fetched = try #require(nodes[1].executables.first)
        #expect(fetched.name == program.name && fetched.size == program.size)
        #expect(fetched.path.hasPrefix(nodes[1].configuration.processes.programDirectory))
        #expect(try Executable(path: fetched.path).name == program.name)
        #expect(nodes[1].processes.all.count == 2)
    }

    /// A program the asking node has only as a closure cannot travel: the
    /// task there ends with 127, as a shell's command not found, and nothing
    /// is registered.
    @Test func aProgramThatIsNoExecutableIsNotFetched() async throws {
        let nodes = try await Self.makePair(registeringOn: [])
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilReachable(nodes)
        let closure = await nodes[0].register(label: "closure") { _ in }
        let status = try await nodes[0].withTask { task in
            try await task.status(of: try task.run(try task.lookup(closure)[0], on: InstanceID(node: 1, core: 0)))
        }
        #expect(status == 127)
        #expect(nodes[1].executables.isEmpty)
    }
}
