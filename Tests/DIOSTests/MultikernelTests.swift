import DIOS
import DIOSKernel
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A node of two instances (adaptive idle, so the test runner keeps a core):
/// tasks on different instances talk through streams whose rings both share.
@Suite(.serialized) struct MultikernelTests {
    static func makeNode() throws -> Node {
        var configuration = NodeConfiguration()
        configuration.cores = [0, 1]
        configuration.arenaSize = 32 << 20
        configuration.idlePolicy = .adaptive
        return try Node(configuration)
    }

    static let producer = Name.wellKnown("test.producer")

    /// Writes `count` numbered messages (8-byte index, then filler derived from
    /// it) to the stream it is given, waiting whenever the ring is full.
    static func registerProducer(_ node: Node, count: Int, size: Int) async {
        await node.register(producer, label: "producer") { task in
            let stream = try task.delegated()[0]
            for i in 0..<UInt64(count) {
                while true {
                    do {
                        let w = try task.beginWrite(stream, size: size)
                        try w.store(i)
                        if size >= 16 { try w.store(i &* 0x9E37_79B9_7F4A_7C15, toByteOffset: 8) }
                        _ = task.endWrite(w)
                        break
                    } catch CallError.wouldBlock {
                        _ = try await task.select([stream], flags: .writable)
                    }
                }
            }
        }
    }

    @Test func aMillionMessagesArriveCompleteAndInOrder() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let count = 1_000_000
        await Self.registerProducer(node, count: count, size: 16)
        let (received, checksum, expected) = try await node.withTask(on: 0) { task in
            // A shallow ring, so the producer is held back over and over.
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let producer = try task.run(try task.lookup(Self.producer)[0], arguments: [stream], on: 1)
            #expect(try task.describe(producer).proximity == .localNode)
            var next: UInt64 = 0
            var checksum: UInt64 = 0
            var expected: UInt64 = 0
            while next < UInt64(count) {
                let r: ReadTransaction
                do { r = try task.beginRead(stream) } catch CallError.wouldBlock {
                    _ = try await task.select([stream])
                    continue
                }
                let i = try r.load(as: UInt64.self)
                let mix = try r.load(fromByteOffset: 8, as: UInt64.self)
                _ = task.endRead(r)
                if i != next { break }  // out of order or lost: stop and report below
                checksum = checksum &+ mix
                expected = expected &+ (i &* 0x9E37_79B9_7F4A_7C15)
                next += 1
            }
            _ = try await task.select([producer])  // it exits after the last message
            return (next, checksum, expected)
        }
        #expect(received == UInt64(count))
        #expect(checksum == expected)
    }

    @Test func theReaderReadsTheVerySlotTheWriterFilled() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let echo = await node.register(label: "addresses") { task in
            let refs = try task.delegated()
            for _ in 0..<100 {
                // Write into the slot and say where it is, in the slot itself.
                while true {
                    do {
                        let w = try task.beginWrite(refs[0], size: 8)
                        try w.store(UInt64(UInt(bitPattern: w.baseAddress)))
                        _ = task.endWrite(w)
                        break
                    } catch CallError.wouldBlock {
                        _ = try await task.select([refs[0]], flags: .writable)
                    }
                }
            }
        }
        let matches = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 16))
            let range = try #require(node.instance.bufferRange(of: try task.describe(stream).object))
            _ = try task.run(try task.lookup(echo)[0], arguments: [stream], on: 1)
            var matches = 0
            for _ in 0..<100 {
                _ = try await task.select([stream])
                let r = try task.beginRead(stream)
                let written = UInt(try r.load(as: UInt64.self))
                if written == UInt(bitPattern: r.baseAddress) && range.contains(written) { matches += 1 }
                _ = task.endRead(r)
            }
            return matches
        }
        #expect(matches == 100)
    }

    /// A task run on another core leaves nothing there when it exits: its task
    /// object (its proxy here keeps the status) and the end of the stream it
    /// was handed go, and the stream stays open here for the next writer.
    @Test func aTaskRunOnAnotherCoreLeavesNoObjectsThere() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        await Self.registerProducer(node, count: 1, size: 8)
        let other = node.instances[1]
        func objectsThere() async throws -> Int { try await node.withTask(on: 1) { _ in other.objectCount } }
        let before = try await objectsThere()
        let read = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 4))
            var read = 0
            for _ in 0..<20 {
                let producer = try task.run(try task.lookup(Self.producer)[0], arguments: [stream], on: 1)
                _ = try await task.select([producer])
                _ = try await task.read(stream)
                read += 1
                try task.delete(producer)
            }
            return read
        }
        #expect(read == 20)
        var after = try await objectsThere()
        for _ in 0..<100 where after > before {
            try await Task.sleep(for: .milliseconds(10))
            after = try await objectsThere()
        }
        #expect(after == before, "instance 1 kept \(after - before) objects from 20 finished tasks")
    }

    @Test func selectAcrossInstancesWakesForTheStreamOrTimesOut() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        await Self.registerProducer(node, count: 1, size: 8)
        let (first, second) = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 4))
            let (_, timeout) = try task.create(.timer(after: .seconds(10)))
            _ = try task.run(try task.lookup(Self.producer)[0], arguments: [stream], on: 1)
            let first = try await task.select([stream, timeout]) == stream
            let r = try task.beginRead(stream)
            _ = task.endRead(r)
            // Nothing more comes: the timer wins.
            let (_, short) = try task.create(.timer(after: .milliseconds(30)))
            let second = try await task.select([stream, short]) == short
            return (first, second)
        }
        #expect(first)
        #expect(second)
    }

    @Test func aStreamHasOneWriterInstance() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        await Self.registerProducer(node, count: 1, size: 8)
        let refused = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 4))
            let w = try task.beginWrite(stream, size: 8)  // this instance claims the writer side
            _ = task.endWrite(w)
            let child = try task.run(try task.lookup(Self.producer)[0], arguments: [stream], on: 1)
            _ = try await task.select([child])
            let status = try task.beginRead(child)
            let value = try status.load(as: Int64.self)
            _ = task.endRead(status)
            return value
        }
        #expect(refused == 1)  // the producer's beginWrite was refused (.busy): it ended with an error
    }

    @Test func pauseAndStopReachATaskOnAnotherInstance() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let ticker = await node.register(label: "ticker") { task in
            let stream = try task.delegated()[0]
            var i: UInt64 = 0
            while true {
                do {
                    let w = try task.beginWrite(stream, size: 8)
                    try w.store(i)
                    _ = task.endWrite(w)
                    i += 1
                } catch CallError.wouldBlock {}
                try await task.yield()
            }
        }
        let (pausedQuiet, resumedTicks) = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 8, depth: 1024))
            let child = try task.run(try task.lookup(ticker)[0], arguments: [stream], on: 1)
            _ = try await task.select([stream])
            try task.pause(child)
            // Drain until the pause has landed: then nothing more arrives.
            var quietRounds = 0
            while quietRounds < 3 {
                let (_, t) = try task.create(.timer(after: .milliseconds(20)))
                var got = false
                while let r = try? task.beginRead(stream) {
                    _ = task.endRead(r)
                    got = true
                }
                quietRounds = got ? 0 : quietRounds + 1
                _ = try await task.select([t])
            }
            let (_, t2) = try task.create(.timer(after: .milliseconds(50)))
            let pausedQuiet = try await task.select([stream, t2]) == t2
            try task.resume(child)
            let (_, t3) = try task.create(.timer(after: .seconds(10)))
            let resumedTicks = try await task.select([stream, t3]) == stream
            try task.delete(child)  // stops it, on its own instance
            return (pausedQuiet, resumedTicks)
        }
        #expect(pausedQuiet)
        #expect(resumedTicks)
        // The ticker is gone from instance 1: only the task asking remains.
        var remaining = 0
        for _ in 0..<200 {
            remaining = try await node.withTask(on: 1) { _ in node.instances[1].taskCount }
            if remaining == 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(remaining == 1)
    }

    /// Instances share no state: each is confined to its own thread, checked on
    /// every call (debug builds). Touching instance 1 from elsewhere traps.
    @Test func anInstanceUsedOffItsThreadTraps() async {
        // A Swift trap (the confinement assertion) is SIGILL; a thrown error would
        // be an ordinary failure exit and not match.
        await #expect(processExitsWith: .signal(SIGILL)) {
            var configuration = NodeConfiguration()
            configuration.cores = [0, 1]
            configuration.arenaSize = 8 << 20
            let node = try Node(configuration)
            try await node.withTask(on: 0) { task in
                // A task of instance 0 reaching into instance 1's kernel directly.
                _ = node.instances[1].attachTask(trusted: true)
            }
        }
    }
}
