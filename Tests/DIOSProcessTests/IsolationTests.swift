import DIOS
import Foundation
import Testing

/// What an untrusted task process cannot reach, and what a hostile one
/// cannot do to its instance.
@Suite(.serialized) struct IsolationTests {
    @Test func anUntrustedProcessReachesNothingItWasNotGranted() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let arena: String
        if case .hugepages(let path) = node.arena.backing { arena = path } else { arena = "" }
        let status = try await node.withTask { task in
            let p = try task.lookup(program)[0]
            // Another task process, whose channel and memory it must not reach either.
            let other = try task.run(p, commandLine: ["sleep"])
            var otherPID: Int32 = 0
            for _ in 0..<2000 where otherPID == 0 {
                otherPID = node.processes.all.last { $0.state == .running }?.pid ?? 0
                try await Task.sleep(for: .milliseconds(1))
            }
            let status = try await task.status(
                of: try task.run(p, commandLine: ["isolation", arena, "\(getpid())", "\(otherPID)"], flags: .untrusted))
            try task.delete(other)
            return status
        }
        #expect(status == 0, "\(allLogs(node))")
        #expect(allLogs(node).contains("isolation: 0 leaks"), "\(allLogs(node))")
        #expect(node.processes.all.contains { !$0.trusted })
    }

    @Test func aHostileProcessNeitherCrashesNorStallsItsInstance() async throws {
        // Every ended writer's entry (and log) is kept: the hostile one's log
        // is read at the end, after hundreds of writers have come and gone.
        let node = try CheckProgram.makeNode(instances: 1, keepEnded: 1 << 20)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let entries = 1_000_000
        let (hostile, streamed, objectsAfter) = try await node.withTask { task in
            let p = try task.lookup(program)[0]
            let objectsBefore = node.instance.objectCount
            let hostile = try task.run(p, commandLine: ["hostile", "\(entries)", "42"], flags: .untrusted)
            // Meanwhile another task process on the same instance streams to us.
            var streamed = 0
            while try task.describe(hostile).kind == .task {
                let (_, stream) = try task.create(.stream(messageSize: 16, depth: 16))
                let writer = try task.run(p, arguments: [stream], commandLine: ["stream", "100"])
                for _ in 0..<100 {
                    let m = try await task.read(stream)
                    #expect(m.count == 16)
                }
                #expect(try await task.status(of: writer) == 0)
                try task.delete(stream)
                streamed += 1
                if try task.selectNow(hostile) { break }
            }
            let status = try await task.status(of: hostile)
            return (status, streamed, node.instance.objectCount - objectsBefore)
        }
        // It ran its entries (each refused or served) and was ended for moving
        // its ring's tail backwards.
        #expect(allLogs(node).contains("hostile: \(entries) entries"), "\(allLogs(node))")
        #expect(hostile == 137)
        #expect(streamed >= 1)
        // The objects its random creates made stay, as any task's do, but the
        // instance's pools bound them.
        #expect(objectsAfter < 10_000)
    }
}

extension TaskContext {
    /// Whether `ref` is readable now (a task: it has ended).
    func selectNow(_ ref: Ref) throws -> Bool {
        let tx: ReadTransaction
        do { tx = try beginRead(ref) } catch .wouldBlock { return false }
        _ = endRead(tx)
        return true
    }
}
