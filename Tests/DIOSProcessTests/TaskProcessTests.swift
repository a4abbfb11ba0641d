import DIOS
import DIOSChannel
import Foundation
import Testing

/// Executables run as task processes: a C program built against libdios,
/// started by `run` on an instance of the node, its calls crossing its channel.
@Suite(.serialized) struct TaskProcessTests {
    /// A million messages from a task process on the other instance. Every
    /// thread here spins a little before it sleeps (spins: 64): with two
    /// instances and a task process on two CPUs, longer spins only take the
    /// CPU from the thread being waited for.
    @Test func aCProgramStreamsNumberedMessagesFromAnotherInstanceInOrder() async throws {
        let node = try CheckProgram.makeNode(spins: 64)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
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
    }

    @Test func theExitStatusReturnsToTheCaller() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let status = try await node.withTask { task in
            try await task.status(of: try task.run(try task.lookup(program)[0], commandLine: ["exit", "7"]))
        }
        #expect(status == 7)
        let entry = try #require(node.processes.all.last)
        #expect(entry.state == .exited && entry.status == 7 && entry.trusted)
    }

    @Test func aProcessReadsAndWritesABlobWithTheConsistencyRulesHolding() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let (status, first) = try await node.withTask { task in
            let (_, blob) = try task.create(.blob(size: 64))
            let s = try await task.status(
                of: try task.run(try task.lookup(program)[0], arguments: [blob], commandLine: ["blob"]))
            return (s, try await task.read(blob).first)
        }
        #expect(status == 0, "\(lastLog(node))")
        #expect(first == 0xAB)  // what the process committed last
    }

    @Test func aProcessSeesTheArgumentsAndOutputItWasGiven() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let status = try await node.withTask { task in
            try await task.status(of: try task.run(try task.lookup(program)[0], commandLine: ["no-such-mode"]))
        }
        #expect(status == 2)
        #expect(lastLog(node).contains("no mode no-such-mode"))
    }

    @Test func theSameBytesAreTheSameProgram() async throws {
        let a = try CheckProgram.executable()
        let b = try Executable(path: try CheckProgram.built.get())
        #expect(a.name == b.name)
        #expect(a.size > 0)
        // A path that names no file is no program.
        #expect(throws: ExecutableError.self) { try Executable(path: "/nonexistent/dios-check") }
    }
}
