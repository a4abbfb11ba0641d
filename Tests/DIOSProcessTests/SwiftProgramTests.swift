import DIOS
import Foundation
import Testing

/// A task process written in Swift (`Tests/Programs/SwiftCheck`, over the
/// DIOSTaskProcess library), run as the C program is.
@Suite(.serialized) struct SwiftProgramTests {
    /// `dios-swift-check`, built by `swift build` next to the tests.
    static func executable() throws -> Executable {
        try Executable(
            path: URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("dios-swift-check").path)
    }

    /// A million numbered, checksummed messages from a Swift process on the
    /// other instance, each written in place (it is trusted), in order.
    @Test func aSwiftProgramStreamsAMillionMessagesFromAnotherInstanceInOrder() async throws {
        let node = try CheckProgram.makeNode(spins: 64)
        defer { node.shutdown() }
        let program = await node.register(try Self.executable())
        let count: UInt64 = 1_000_000
        let (received, status) = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["stream", "\(count)"], on: 1)
            let next = try await task.readChecked(stream, count: count, from: child)
            return (next, try await task.status(of: child))
        }
        #expect(received == count, "\(lastLog(node))")
        #expect(status == 0, "\(lastLog(node))")
        #expect(node.processes.all.last?.dataCalls == 0)
    }

    @Test func aSwiftProgramReadsAndWritesABlobWithTheConsistencyRulesHolding() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try Self.executable())
        let (status, first) = try await node.withTask { task in
            let (_, blob) = try task.create(.blob(size: 64))
            let s = try await task.status(
                of: try task.run(try task.lookup(program)[0], arguments: [blob], commandLine: ["blob"]))
            return (s, try await task.read(blob).first)
        }
        #expect(status == 0, "\(lastLog(node))")
        #expect(first == 0xAB)
        #expect(lastLog(node).contains("blob rules hold"))
    }

    /// The library says what the process is: trusted (with the arena mapped) or not.
    @Test func aSwiftProgramKnowsWhetherItIsTrusted() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try Self.executable())
        let statuses = try await node.withTask { task in
            let p = try task.lookup(program)[0]
            return [
                try await task.status(of: try task.run(p, commandLine: ["trusted"])),
                try await task.status(of: try task.run(p, commandLine: ["trusted"], flags: .untrusted)),
            ]
        }
        #expect(statuses == [0, 1])
    }

    /// On another node over kernel UDP: the stream crosses the wire, its
    /// messages in order, and the status comes back.
    @Test func aSwiftProgramOnAnotherNodeStreamsInOrder() async throws {
        let nodes = try await RemoteProcessTests.makePair()
        defer { for n in nodes { n.shutdown() } }
        let program = try Self.executable()
        for n in nodes { await n.register(program) }
        let remote = InstanceID(node: 1, core: 0)
        try await RemoteProcessTests.waitUntilReachable(nodes)
        let count: UInt64 = 20_000
        let (received, status) = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let child = try task.run(
                try task.lookup(program.name)[0], arguments: [stream], commandLine: ["stream", "\(count)"],
                flags: .writable, on: remote)
            let next = try await task.readChecked(stream, count: count, from: child)
            return (next, try await task.status(of: child))
        }
        #expect(received == count, "\(allLogs(nodes[1]))")
        #expect(status == 0, "\(allLogs(nodes[1]))")
    }
}
