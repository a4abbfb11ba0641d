import DIOS
import Synchronization
import Testing

/// Tasks running on a node's polling thread (adaptive idle, so the test runner
/// keeps a core): select, run, pause, copy between running tasks.
@Suite(.serialized) struct NodeTests {
    static func makeNode() throws -> Node {
        var configuration = NodeConfiguration()
        configuration.arenaSize = 8 << 20
        configuration.idlePolicy = .adaptive
        return try Node(configuration)
    }

    @Test func selectWithATimerTimesOut() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let (winner, timerRef, elapsed) = try await node.withTask { task in
            let start = ContinuousClock.now
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 4))
            let (_, timer) = try task.create(.timer(after: .milliseconds(20)))
            let ready = try await task.select([stream, timer])
            return (ready, timer, ContinuousClock.now - start)
        }
        #expect(winner == timerRef)
        #expect(elapsed >= .milliseconds(20))
    }

    @Test func selectReturnsTheFirstReadableReference() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let (ready, expected) = try await node.withTask { task in
            let (_, a) = try task.create(.stream(messageSize: 8, depth: 4))
            let (_, b) = try task.create(.stream(messageSize: 8, depth: 4))
            let (_, timer) = try task.create(.timer(after: .seconds(30)))
            try await task.write([1, 2, 3], to: b)
            return (try await task.select([a, b, timer]), b)
        }
        #expect(ready == expected)
    }

    @Test func selectWakesWhenAnotherTaskWrites() async throws {
        let node = try Self.makeNode()
        let writerName = await node.register(label: "writer") { task in
            let stream = try await task.awaitDelegated(count: 1)[0]
            for i in 0..<100 { try await task.write(withUnsafeBytes(of: UInt32(i)) { Array($0) }, to: stream) }
        }
        defer { node.shutdown() }
        let received = try await node.withTask { task in
            let writer = try task.lookup(writerName)[0]
            let (_, stream) = try task.create(.stream(messageSize: 4, depth: 8))
            let (_, timeout) = try task.create(.timer(after: .seconds(10)))
            _ = try task.run(writer, arguments: [stream])
            var values: [UInt32] = []
            while values.count < 100 {
                let ready = try await task.select([stream, timeout])
                #expect(ready == stream, "timed out")
                if ready != stream { break }
                let tx = try task.beginRead(stream)
                values.append(try tx.load(as: UInt32.self))
                _ = task.endRead(tx)
            }
            return values
        }
        #expect(received == Array(0..<100))
    }

    @Test func runStartsAProgramAndItsTaskBecomesReadableOnExit() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let ok = await node.register(label: "ok") { _ in }
        let failing = await node.register(label: "fails") { _ in throw CallError.busy }
        let statuses = try await node.withTask { task in
            var statuses: [Int64] = []
            for name in [ok, failing] {
                let child = try task.run(try task.lookup(name)[0])
                #expect(try task.describe(child).kind == .task)
                _ = try await task.select([child])
                let tx = try task.beginRead(child)
                statuses.append(try tx.load(as: Int64.self))
                _ = task.endRead(tx)
            }
            return statuses
        }
        #expect(statuses == [0, 1])
    }

    @Test func untrustedChildCannotRunOrLookupButCanUseWhatItWasGiven() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let outcome = Mutex<[String]>([])
        let child = await node.register(label: "untrusted") { task in
            let refs = try await task.awaitDelegated(count: 2)
            let (blob, stream) = (refs[0], refs[1])
            do { _ = try task.lookup(.random()) } catch { outcome.withLock { $0.append("lookup: \(error)") } }
            do { _ = try task.run(blob) } catch { outcome.withLock { $0.append("run: \(error)") } }
            let text = try await task.read(blob)
            try await task.write(text.reversed(), to: stream)
        }
        let reply = try await node.withTask { task in
            let (_, blob) = try task.create(.blob(size: 16))
            let w = try task.beginWrite(blob, size: 5)
            try w.copy(from: Array("hello".utf8))
            _ = task.endWrite(w)
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 2))
            let program = try task.lookup(child)[0]
            let childTask = try task.run(program, flags: .untrusted)
            try task.copy([blob], to: childTask, rights: [.read])
            try task.copy([stream], to: childTask, rights: [.write])
            return String(decoding: try await task.read(stream), as: UTF8.self)
        }
        #expect(reply == "olleh")
        #expect(
            outcome.withLock { $0 } == [
                "lookup: lookup is for trusted tasks only", "run: run is for trusted tasks only",
            ])
    }

    @Test func pauseStopsSchedulingUntilResumed() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let counter = await node.register(label: "counter") { task in
            let stream = try await task.awaitDelegated(count: 1)[0]
            var i: UInt64 = 0
            while true {
                try await task.write(withUnsafeBytes(of: i) { Array($0) }, to: stream)
                i += 1
                try await task.yield()
            }
        }
        let (whilePaused, afterResume) = try await node.withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 1024))
            let child = try task.run(try task.lookup(counter)[0], arguments: [stream])
            // Let it run, then pause it and drain what it wrote.
            while try await task.read(stream).isEmpty {}
            try task.pause(child)
            try await task.yield()  // the child reaches its next kernel call and stops there
            while true {
                guard let tx = try? task.beginRead(stream) else { break }
                _ = task.endRead(tx)
            }
            // While paused, nothing more arrives, however long we wait.
            let (_, timer) = try task.create(.timer(after: .milliseconds(50)))
            let whilePaused = try await task.select([stream, timer]) == stream
            try task.resume(child)
            let (_, timeout) = try task.create(.timer(after: .seconds(10)))
            let afterResume = try await task.select([stream, timeout]) == stream
            try task.delete(child)  // stops it
            return (whilePaused, afterResume)
        }
        #expect(!whilePaused)
        #expect(afterResume)
    }

    @Test func deletingATaskStopsIt() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let sleeper = await node.register(label: "sleeper") { task in
            let (_, timer) = try task.create(.timer(after: .seconds(3600)))
            _ = try await task.select([timer])
        }
        let tasksAfter = try await node.withTask { task in
            let child = try task.run(try task.lookup(sleeper)[0])
            try await task.yield()
            try task.delete(child)
            for _ in 0..<100 { try await task.yield() }
            return node.instance.taskCount
        }
        #expect(tasksAfter == 1)  // only the attached task itself
    }

    @Test func shutdownStopsBlockedTasks() async throws {
        let node = try Self.makeNode()
        let sleeper = await node.register(label: "sleeper") { task in
            let (_, timer) = try task.create(.timer(after: .seconds(3600)))
            _ = try await task.select([timer])
        }
        try await node.withTask { task in _ = try task.run(try task.lookup(sleeper)[0]) }
        node.shutdown()  // returns only once the sleeper has been stopped
        #expect(node.instance.runningTaskCount == 0)
    }
}
