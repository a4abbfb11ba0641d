public import DIOS

/// Tasks across nodes, for the README's cluster job and the multi-process tests:
/// numbered messages streamed to a task on another node and checked there, a
/// blob held here read and written by a task on another node under the
/// consistency rules (DESIGN §2), and a watch on a stream from another node that
/// reports when that node is lost.
public enum RemoteDemo {
    /// Reads a count (the first message), then that many numbered messages, and
    /// fails unless each is the next one, intact.
    static let sink = Name.wellKnown("dios.stream.sink")
    /// Writes numbered messages until its stream closes or fails, or it is stopped.
    static let source = Name.wellKnown("dios.stream.source")
    /// Reads and writes a blob held by the node that started it, in step with
    /// that node, and fails unless the consistency rules hold (see `blob(on:with:say:)`).
    static let blobChecker = Name.wellKnown("dios.blob.checker")

    struct OutOfOrder: Error, CustomStringConvertible {
        let expected: UInt64, got: UInt64
        var description: String { "message \(got) arrived where \(expected) was due" }
    }

    public static func register(on node: Node) async {
        await node.register(sink, label: "stream sink") { task in
            let stream = try task.delegated()[0]
            let count = try await read(task, stream)?.index ?? 0
            for i in 0..<count {
                let m = try await read(task, stream)
                guard let m, m.index == i, m.mix == i &* 0x9E37_79B9_7F4A_7C15 else {
                    throw OutOfOrder(expected: i, got: m?.index ?? .max)
                }
            }
        }
        await node.register(blobChecker, label: "blob checker") { task in
            let refs = try task.delegated()
            guard refs.count == 3 else {
                throw RuleBroken("handed \(refs.count) references, not a blob and two streams")
            }
            do {
                try await checkFromAfar(task, blob: refs[0], toOwner: refs[1], fromOwner: refs[2])
            } catch {
                tellNow(task, refs[1], "failed: \(error)")
                throw error
            }
        }
        await node.register(source, label: "stream source") { task in
            let stream = try task.delegated()[0]
            var i: UInt64 = 0
            while true {
                try await write(task, stream, i, i &* 0x9E37_79B9_7F4A_7C15)
                i += 1
            }
        }
    }

    /// One 16-byte message, waiting while the ring is full.
    static func write(_ task: TaskContext, _ stream: Ref, _ a: UInt64, _ b: UInt64) async throws {
        while true {
            do {
                let w = try task.beginWrite(stream, size: 16)
                try w.store(a)
                try w.store(b, toByteOffset: 8)
                guard task.endWrite(w) else { throw CallError.objectDeleted }
                return
            } catch CallError.wouldBlock {
                _ = try await task.select([stream], flags: .writable)
            }
        }
    }

    /// The next 16-byte message, or nil when the stream closed.
    static func read(_ task: TaskContext, _ stream: Ref) async throws -> (index: UInt64, mix: UInt64)? {
        while true {
            let r: ReadTransaction
            do throws(CallError) { r = try task.beginRead(stream) } catch {
                switch error {
                case .wouldBlock:
                    _ = try await task.select([stream])
                    continue
                case .objectDeleted:
                    return nil
                default:
                    throw error
                }
            }
            let m = (try r.load(as: UInt64.self), try r.load(fromByteOffset: 8, as: UInt64.self))
            _ = task.endRead(r)
            return m
        }
    }

    /// The index in the next message, or nil when none waits.
    static func nextIndex(_ task: TaskContext, _ stream: Ref) throws(CallError) -> UInt64? {
        let r: ReadTransaction
        do throws(CallError) { r = try task.beginRead(stream) } catch {
            if error == .wouldBlock { return nil }
            throw error
        }
        let i = try r.load(as: UInt64.self)
        _ = task.endRead(r)
        return i
    }

    /// Waits until every one of `peers` is reachable (or `seconds` pass).
    public static func waitForPeers(_ node: Node, _ peers: [InstanceID], seconds: Int) async throws -> Bool {
        for _ in 0..<(seconds * 50) {
            if try await node.withTask(
                label: "peer wait",
                { _ in
                    peers.allSatisfy { p in node.instance.wireEndpoint?.isReachable(p) ?? false }
                })
            {
                return true
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Streams `count` numbered messages to a sink on `peer`; returns when the
    /// sink has checked them all.
    public static func stream(on node: Node, to peer: InstanceID, count: Int, say: @Sendable (String) -> Void)
        async throws -> Bool
    {
        let started = ContinuousClock.now
        let (status, retransmits, fast, inPlace) = try await node.withTask(label: "stream demo") { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 1024))
            let sink = try task.run(try task.lookup(Self.sink)[0], arguments: [stream], on: peer)
            try await write(task, stream, UInt64(count), 0)
            for i in 0..<UInt64(count) { try await write(task, stream, i, i &* 0x9E37_79B9_7F4A_7C15) }
            _ = try await task.select([sink])
            let r = try task.beginRead(sink)
            let status = try r.load(as: Int64.self)
            _ = task.endRead(r)
            let counters = node.instance.wireEndpoint?.session(for: peer)?.counters
            return (status, counters?.retransmits ?? 0, counters?.fastRetransmits ?? 0, counters?.sentInPlace ?? 0)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let rate = Int(Double(count) / max(seconds, 1e-9))
        if status == 0 {
            say(
                "diosd: stream to \(peer): \(count) messages arrived in order, \(Int(seconds * 1000)) ms, \(rate) "
                    + "msgs/s, \(retransmits) frames resent (\(fast) on duplicate acknowledgements), \(inPlace) sent "
                    + "from the frame the task wrote them in"
            )
        } else {
            say("diosd: stream to \(peer): FAILED, the sink exited with status \(status)")
        }
        return status == 0
    }

    /// Runs `executable` as a task process on `peer` (which fetches it from
    /// this node if it lacks it), as `stream COUNT` with the write end of a
    /// stream, and checks that its `count` numbered, checksummed messages (a
    /// sequence number and `n &* 0x9E3779B97F4A7C15 ^ 0xD1B54A32D192ED03`)
    /// arrive in order; says how it went.
    public static func stream(
        on node: Node, from executable: Executable, on peer: InstanceID, count: Int,
        say: @Sendable (String) -> Void
    ) async throws -> Bool {
        let started = ContinuousClock.now
        await node.register(executable)
        let (received, status) = try await node.withTask(label: "stream demo") { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 1024))
            let writer = try task.run(
                try task.lookup(executable.name)[0], arguments: [stream], commandLine: ["stream", "\(count)"],
                flags: .writable, on: peer, label: "stream demo")
            var next: UInt64 = 0
            var waitOn = [stream, writer]
            while next < UInt64(count) {
                do throws(CallError) {
                    let r = try task.beginRead(stream)
                    let whole = r.count == 16
                    let seq = try r.load(fromByteOffset: 0, as: UInt64.self)
                    let sum = try r.load(fromByteOffset: 8, as: UInt64.self)
                    _ = task.endRead(r)
                    guard whole, seq == next, sum == seq &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03 else { break }
                    next += 1
                } catch .wouldBlock {
                    // Once the writer has ended, the rest may still be on its way: wait on the stream, a while.
                    let ready = try await task.select(waitOn)
                    if ready == writer {
                        waitOn = [stream, try task.create(.timer(after: .seconds(10))).ref]
                    } else if ready != stream {
                        break
                    }
                }
            }
            return (next, try await task.exitStatus(of: writer))
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        if received == UInt64(count) && status == 0 {
            say(
                "diosd: stream from a task process on \(peer): \(count) messages arrived in order, "
                    + "\(Int(seconds * 1000)) ms, \(Int(Double(count) / max(seconds, 1e-9))) msgs/s")
            return true
        }
        say(
            "diosd: stream from a task process on \(peer): FAILED, \(received) of \(count) messages in order, "
                + "the process's status \(status)")
        return false
    }

    /// Starts a source on `peer` and reads it until that node is lost; reports
    /// the failure as the task saw it. Runs until then.
    public static func watch(on node: Node, peer: InstanceID, say: @escaping @Sendable (String) -> Void) async throws {
        try await node.withTask(label: "watch") { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let source = try task.run(try task.lookup(Self.source)[0], arguments: [stream], flags: .writable, on: peer)
            var next: UInt64 = 0
            var lastAt = ContinuousClock.now
            var failure: CallError? = nil
            while failure == nil {
                do throws(CallError) {
                    guard let i = try nextIndex(task, stream) else {
                        _ = try await task.select([stream])
                        continue
                    }
                    guard i == next else { throw .invalidArgument("message \(i) arrived where \(next) was due") }
                    if next == 0 { say("diosd: watching \(peer): its messages arrive") }
                    next += 1
                    lastAt = ContinuousClock.now
                } catch {
                    failure = error
                }
            }
            let waited = ContinuousClock.now - lastAt
            let ms = waited.components.seconds * 1000 + waited.components.attoseconds / 1_000_000_000_000_000
            say("diosd: lost \(peer) after \(next) messages in order, told \(ms) ms after the last: \(failure!)")
            _ = try await task.select([source])
            let r = try task.beginRead(source)
            say("diosd: the task on \(peer) ended with status \(try r.load(as: Int64.self))")
            _ = task.endRead(r)
        }
    }
}
