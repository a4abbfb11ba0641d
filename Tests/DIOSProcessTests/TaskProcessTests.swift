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

    /// The caller's environment entries reach the process, over its node's
    /// (a `PATH` the caller gives replaces the node's); entries that could not
    /// be carried, or that name the kernel's own variables, are refused
    /// before anything starts.
    @Test func aProcessGetsTheEnvironmentItsCallerGave() async throws {
        let node = try CheckProgram.makeNode(instances: 2)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let (statuses, refusals) = try await node.withTask { task in
            let p = try task.lookup(program)[0]
            let here = try task.run(
                p, commandLine: ["env", "GREETING", "hello world", "PATH", "/opt/bin"],
                environment: ["GREETING=hello world", "PATH=/opt/bin"])
            let sibling = try task.run(
                p, commandLine: ["env", "EMPTY", ""], environment: ["EMPTY="], on: 1)
            var refusals: [CallError] = []
            for bad in [["DIOS_CHANNEL_FD=9"], ["no-equals-sign"], ["=value"], ["K=\u{0}"]] {
                do throws(CallError) { _ = try task.run(p, commandLine: ["exit", "0"], environment: bad) } catch {
                    refusals.append(error)
                }
            }
            return ([try await task.status(of: here), try await task.status(of: sibling)], refusals)
        }
        #expect(statuses == [0, 0], "\(allLogs(node))")
        #expect(refusals.count == 4)
        #expect(refusals.allSatisfy { if case .invalidArgument = $0 { true } else { false } })
        #expect(node.processes.all.count == 2)  // the refused runs started nothing
    }

    @Test func theSameBytesAreTheSameProgram() async throws {
        let a = try CheckProgram.executable()
        let b = try Executable(path: try CheckProgram.built.get())
        #expect(a.name == b.name)
        #expect(a.size > 0)
        // A path that names no file is no program.
        #expect(throws: ExecutableError.self) { try Executable(path: "/nonexistent/dios-check") }
    }

    @Test func aMovedProgramKeepsItsNameAndIsWhereItWasMoved() throws {
        let copy = "/tmp/dios-moved-\(getpid())"
        let there = "\(copy).there"
        defer { unlink(copy); unlink(there) }
        let bytes = try #require(FileManager.default.contents(atPath: try CheckProgram.built.get()))
        #expect(FileManager.default.createFile(atPath: copy, contents: bytes, attributes: [.posixPermissions: 0o755]))
        let original = try Executable(path: copy)
        let moved = try original.moved(to: there)
        #expect(moved.name == original.name && moved.size == original.size && moved.path == there)
        #expect(access(copy, F_OK) != 0)
        #expect(try Executable(path: there).name == original.name)
        // Into a directory that does not exist: refused, and the file stays.
        #expect(throws: ExecutableError.unmovable(from: there, to: "/nonexistent/x", errno: ENOENT)) {
            try moved.moved(to: "/nonexistent/x")
        }
        #expect(access(there, X_OK) == 0)
    }
}
