import CLinux
import DIOS
import DIOSKernel
import DIOSTransport
import DIOSWire
import Testing

/// Nodes in one process, one instance each, talking over real UDP sockets on
/// loopback (with the seeded fault stage where a test asks for it). The
/// multi-process cluster, with `diosd` and `kill -9`, is in DiosdClusterTests.
@Suite(.serialized) struct ClusterTests {
    static let sink = Name.wellKnown("test.cluster.sink")
    static let source = Name.wellKnown("test.cluster.source")
    static let echo = Name.wellKnown("test.cluster.echo")
    static let blobber = Name.wellKnown("test.cluster.blobber")

    struct Failed: Error, CustomStringConvertible { let description: String }

    /// On node 1: works on a blob held by node 0, through a stream to node 0 and
    /// one back, checking the regimes of DESIGN §2 across nodes.
    @Sendable static func blobber(_ task: TaskContext) async throws {
        let refs = try task.delegated()
        let (blob, toOwner, fromOwner) = (refs[0], refs[1], refs[2])
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw Failed(description: what) } }
        #expect(try task.describe(blob).proximity == .remoteMemory)
        // A weak read sees the owner's bytes and validates.
        var r = try task.beginRead(blob)
        try check(r.load(as: UInt64.self) == 1, "first read")
        try check(task.endRead(r), "first read validates")
        // A (strong) write from here commits at the owner.
        let w = try task.beginWrite(blob, size: 8, flags: .strong)
        try w.store(UInt64(2))
        try check(task.endWrite(w), "remote write commits")
        // A weak read overlapped by a write at the owner fails validation.
        r = try task.beginRead(blob)
        try check(r.load(as: UInt64.self) == 2, "read of our write")
        _ = try await task.write([1], to: toOwner)  // "I am reading; write now"
        _ = try await task.read(fromOwner)  // "written"
        try check(!task.endRead(r), "an overlapped weak read must not validate")
        r = try task.beginRead(blob)
        try check(r.load(as: UInt64.self) == 3, "read of the owner's write")
        try check(task.endRead(r), "second read validates")
        // A strong read holds writers off at the owner until it ends.
        r = try task.beginRead(blob, flags: .strong)
        _ = try await task.write([2], to: toOwner)  // "holding"
        let answer = try await task.read(fromOwner)
        try check(answer == [0], "the owner's write should have been held off")
        try check(task.endRead(r), "strong read ends")
        _ = try await task.write([3], to: toOwner)  // "released"
    }
    /// `count` nodes, each with one instance and the test programs registered.
    /// The failure timeout is generous (a loaded 2-core CI box stalls threads),
    /// except where a test is about failures.
    static func makeCluster(
        _ count: Int, faults: FaultConfiguration = FaultConfiguration(), messages: Int,
        failureTimeout: Duration = .seconds(2)
    ) async throws -> [Node] {
        let session = SessionConfiguration(retransmitTimeout: .milliseconds(1), failureTimeout: failureTimeout)
        let transports = try (0..<count).map { _ in try UDPTransport(bind: PeerAddress("127.0.0.1", port: 0)!) }
        var peers: [InstanceID: PeerAddress] = [:]
        for (n, t) in transports.enumerated() { peers[InstanceID(node: UInt16(n), core: 0)] = t.localAddress }
        var nodes: [Node] = []
        for (n, t) in transports.enumerated() {
            var configuration = NodeConfiguration()
            configuration.node = UInt16(n)
            configuration.arenaSize = 16 << 20
            configuration.idlePolicy = .adaptive
            var f = faults
            f.seed &+= UInt64(n)
            let transport: any FrameTransport =
                faults.isActive ? FaultyTransport(t, faults: f, clock: { monotonicNanoseconds() }) : t
            let endpoint = WireEndpoint(
                local: InstanceID(node: UInt16(n), core: 0), transport: transport, peers: peers, configuration: session,
                now: monotonicNanoseconds(), seed: UInt64(n) &* 7919 &+ monotonicNanoseconds())
            let node = try Node(configuration, wires: [endpoint])
            await node.register(sink, label: "sink") { task in
                try await readNumbered(task, task.delegated()[0], count: messages)
            }
            await node.register(source, label: "source") { task in
                try await writeNumbered(task, task.delegated()[0], count: messages)
            }
            await node.register(blobber, label: "blobber", program: blobber)
            await node.register(echo, label: "echo") { task in
                let refs = try task.delegated()
                for _ in 0..<messages {
                    let bytes = try await task.read(refs[0])
                    guard try await task.write(bytes, to: refs[1]) else { throw CallError.objectDeleted }
                }
            }
            nodes.append(node)
        }
        return nodes
    }

    struct OutOfOrder: Error { let expected: UInt64, got: UInt64 }

    /// Writes `count` messages: the index, then a value derived from it.
    static func writeNumbered(_ task: TaskContext, _ stream: Ref, count: Int) async throws {
        for i in 0..<UInt64(count) {
            while true {
                do {
                    let w = try task.beginWrite(stream, size: 16)
                    try w.store(i)
                    try w.store(i &* 0x9E37_79B9_7F4A_7C15, toByteOffset: 8)
                    guard task.endWrite(w) else { throw CallError.objectDeleted }
                    break
                } catch CallError.wouldBlock {
                    _ = try await task.select([stream], flags: .writable)
                }
            }
        }
    }

    /// Reads `count` messages and checks each is the next one, intact.
    static func readNumbered(_ task: TaskContext, _ stream: Ref, count: Int) async throws {
        var next: UInt64 = 0
        while next < UInt64(count) {
            let r: ReadTransaction
            do { r = try task.beginRead(stream) } catch CallError.wouldBlock {
                _ = try await task.select([stream])
                continue
            }
            let i = try r.load(as: UInt64.self)
            let mix = try r.load(fromByteOffset: 8, as: UInt64.self)
            _ = task.endRead(r)
            guard i == next, mix == i &* 0x9E37_79B9_7F4A_7C15 else { throw OutOfOrder(expected: next, got: i) }
            next += 1
        }
    }

    /// Waits for a task (or its proxy) to exit and returns its status.
    static func status(_ task: TaskContext, _ proxy: Ref) async throws -> Int64 {
        _ = try await task.select([proxy])
        let r = try task.beginRead(proxy)
        let status = try r.load(as: Int64.self)
        _ = task.endRead(r)
        return status
    }

    static func waitUntilConnected(_ node: Node, to peer: InstanceID) async throws {
        for _ in 0..<500 {
            let up = try await node.withTask { _ in node.instance.wireEndpoint?.isReachable(peer) ?? false }
            if up { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("\(peer) never became reachable")
    }

    @Test func aStreamCarriesMessagesToATaskOnAnotherNode() async throws {
        let count = 100_000
        let nodes = try await Self.makeCluster(2, messages: count)
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let status = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let sink = try task.run(
                try task.lookup(Self.sink)[0], arguments: [stream], on: InstanceID(node: 1, core: 0))
            #expect(try task.describe(sink).proximity == .remoteMemory)
            // This side writes; the other node reads, and may not read here.
            #expect(throws: CallError.busy) {
                let r = try task.beginRead(stream); _ = task.endRead(r)
            }
            try await Self.writeNumbered(task, stream, count: count)
            return try await Self.status(task, sink)
        }
        #expect(status == 0)
    }

    /// With `.writable`, the task on the other node writes and this side reads.
    @Test func aTaskOnAnotherNodeWritesToUs() async throws {
        let count = 20_000
        let nodes = try await Self.makeCluster(2, messages: count)
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let status = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let source = try task.run(
                try task.lookup(Self.source)[0], arguments: [stream], flags: .writable, on: InstanceID(node: 1, core: 0)
            )
            #expect(throws: CallError.busy) {
                let w = try task.beginWrite(stream, size: 16); _ = task.endWrite(w)
            }
            try await Self.readNumbered(task, stream, count: count)
            return try await Self.status(task, source)
        }
        #expect(status == 0)
    }

    /// One task on another node with a stream each way: the request stream's
    /// read end and (through a write-only reference) the reply stream's write end.
    @Test func anEchoOnAnotherNodeUsesStreamsBothWays() async throws {
        let count = 2_000
        let nodes = try await Self.makeCluster(2, messages: count)
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let (echoed, status) = try await nodes[0].withTask { task in
            let (_, requests) = try task.create(.stream(messageSize: 64, depth: 16))
            let (_, replies) = try task.create(.stream(messageSize: 64, depth: 16))
            let writeOnly = try task.restrict(replies, to: [.write, .copy])
            #expect(throws: CallError.self) { try task.restrict(writeOnly, to: [.read, .write]) }  // never widens
            let echo = try task.run(
                try task.lookup(Self.echo)[0], arguments: [requests, writeOnly], on: InstanceID(node: 1, core: 0))
            var echoed = 0
            for i in 0..<count {
                let message = (0..<(8 + i % 56)).map { UInt8(truncatingIfNeeded: $0 &+ i) }
                _ = try await task.write(message, to: requests)
                if try await task.read(replies) == message { echoed += 1 }
            }
            return (echoed, try await Self.status(task, echo))
        }
        #expect(echoed == count)
        #expect(status == 0)
    }

    /// The stream ends (and blob stand-ins) a node makes for a task started
    /// there from another node go when that task exits: many short remote
    /// tasks leave nothing behind on the node that ran them.
    @Test func aRemoteTaskLeavesNoObjectsBehind() async throws {
        let nodes = try await Self.makeCluster(2, messages: 3)
        defer { for n in nodes { n.shutdown() } }
        let remote = nodes[1]
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        func remoteObjects() async throws -> Int { try await remote.withTask { _ in remote.instance.objectCount } }
        let before = try await remoteObjects()
        for _ in 0..<20 {
            let status = try await nodes[0].withTask { task in
                let (_, requests) = try task.create(.stream(messageSize: 16, depth: 16))
                let (_, replies) = try task.create(.stream(messageSize: 16, depth: 16))
                let (_, blob) = try task.create(.blob(size: 64))
                let writeOnly = try task.restrict(replies, to: [.write, .copy])
                let echo = try task.run(
                    try task.lookup(Self.echo)[0], arguments: [requests, writeOnly, blob],
                    on: InstanceID(node: 1, core: 0))
                for i in 0..<3 {
                    _ = try await task.write([UInt8(i)], to: requests)
                    _ = try await task.read(replies)
                }
                let status = try await Self.status(task, echo)
                for ref in [requests, replies, blob] { try task.delete(ref) }
                return status
            }
            #expect(status == 0)
        }
        var after = try await remoteObjects()
        for _ in 0..<100 where after > before {  // ends drain and go on the node's next turns
            try await Task.sleep(for: .milliseconds(10))
            after = try await remoteObjects()
        }
        #expect(after == before, "node 1 kept \(after - before) objects from 20 finished remote tasks")
    }

    /// A blob held by node 0 read and written by a task on node 1: weak reads
    /// validate with the owner, a write at the owner fails an overlapping weak
    /// read, a strong read holds the owner's writers off, a remote write commits.
    @Test func aBlobOnAnotherNodeKeepsTheConsistencyRules() async throws {
        let nodes = try await Self.makeCluster(2, messages: 1)
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let (status, final) = try await nodes[0].withTask { task in
            let (_, blob) = try task.create(.blob(size: 8))
            var w = try task.beginWrite(blob, size: 8)
            try w.store(UInt64(1))
            _ = task.endWrite(w)
            let (_, toOwner) = try task.create(.stream(messageSize: 8, depth: 4))
            let (_, fromOwner) = try task.create(.stream(messageSize: 8, depth: 4))
            let toOwnerWriteEnd = try task.restrict(toOwner, to: [.write, .copy])
            let blobber = try task.run(
                try task.lookup(Self.blobber)[0], arguments: [blob, toOwnerWriteEnd, fromOwner],
                on: InstanceID(node: 1, core: 0))
            // The next signal from the task there; if it ends first, its check failed.
            func signal() async throws {
                if try await task.select([toOwner, blobber]) == blobber {
                    throw Failed(
                        description: "the task on node 1 ended early, status \(try await Self.status(task, blobber))")
                }
                _ = try await task.read(toOwner)
            }
            try await signal()  // it is reading: write under it
            w = try task.beginWrite(blob, size: 8)
            try w.store(UInt64(3))
            _ = task.endWrite(w)
            _ = try await task.write([9], to: fromOwner)
            try await signal()  // it holds a strong read: a write must wait
            var heldOff = false
            do {
                let w = try task.beginWrite(blob, size: 8)
                _ = task.endWrite(w)
            } catch CallError.wouldBlock { heldOff = true }
            _ = try await task.write([heldOff ? 0 : 1], to: fromOwner)
            try await signal()  // released: writing works again
            w = try task.beginWrite(blob, size: 8)
            try w.store(UInt64(4))
            _ = task.endWrite(w)
            let status = try await Self.status(task, blobber)
            let r = try task.beginRead(blob)
            let final = try r.load(as: UInt64.self)
            _ = task.endRead(r)
            return (status, final)
        }
        #expect(status == 0)
        #expect(final == 4)
    }

    /// The fault stage drops 5%, duplicates and reorders on both nodes' real
    /// sockets: every message still arrives once, in order.
    @Test func exactlyOnceInOrderThroughTheFaultStage() async throws {
        let count = 20_000
        let faults = FaultConfiguration(loss: 0.05, duplicate: 0.02, reorder: 0.05, delay: .microseconds(50), seed: 5)
        let nodes = try await Self.makeCluster(2, faults: faults, messages: count)
        defer { for n in nodes { n.shutdown() } }
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let (status, retransmits) = try await nodes[0].withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 256))
            let sink = try task.run(
                try task.lookup(Self.sink)[0], arguments: [stream], on: InstanceID(node: 1, core: 0))
            try await Self.writeNumbered(task, stream, count: count)
            let status = try await Self.status(task, sink)
            return (status, nodes[0].instance.wireEndpoint!.sessions[0].counters.retransmits)
        }
        #expect(status == 0)
        #expect(retransmits > 0)
    }

    /// When the other node goes away, a task blocked on a stream from it wakes
    /// within the failure timeout with `.unreachable`. This node keeps serving.
    /// The other node halts (its instances stop at once, as in a crash; an
    /// orderly shutdown would first let its tasks run for up to 2 s), so the
    /// proxy of its task finishes with `lostTaskStatus`.
    @Test func aFailedNodeIsReportedToTheTasksThatDependOnIt() async throws {
        let nodes = try await Self.makeCluster(2, messages: 1_000_000_000, failureTimeout: .milliseconds(300))
        try await Self.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        let other = nodes[1]
        let (error, status, waited) = try await nodes[0].withTask { task -> (CallError?, Int64, Int64) in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let source = try task.run(
                try task.lookup(Self.source)[0], arguments: [stream], flags: .writable, on: InstanceID(node: 1, core: 0)
            )
            // Messages flow...
            _ = try await task.select([stream])
            let r = try task.beginRead(stream)
            let first = try r.load(as: UInt64.self)
            #expect(first == 0)
            _ = task.endRead(r)
            // ...until the other node stops answering.
            // (Timed from when its threads have stopped: how long they take to
            // notice the halt depends on the load, not on failure detection.)
            let halted = Task.detached { () -> UInt64 in
                other.halt()
                return monotonicNanoseconds()
            }
            var failure: CallError? = nil
            while failure == nil {
                do {
                    let r = try task.beginRead(stream)
                    _ = task.endRead(r)
                } catch CallError.wouldBlock {
                    _ = try await task.select([stream])
                } catch let e as CallError { failure = e }
            }
            let waited = Int64(monotonicNanoseconds()) - Int64(await halted.value)
            return (failure, try await Self.status(task, source), waited)
        }
        guard case .unreachable(let who, _) = error else {
            Issue.record("expected .unreachable, got \(String(describing: error))")
            return
        }
        #expect(who == InstanceID(node: 1, core: 0))
        #expect(status == Int64(lostTaskStatus))
        #expect(waited < 2_000_000_000)  // the timeout is 300 ms; generous for a loaded CI box
        #expect(waited > 0)  // not before it fell silent
        // The surviving node still serves its own tasks.
        let local = try await nodes[0].withTask { task in
            let (_, blob) = try task.create(.blob(size: 8))
            return try task.describe(blob).kind
        }
        #expect(local == .blob)
        nodes[0].shutdown()
    }
}

func monotonicNanoseconds() -> UInt64 { clinux_monotonic_ns() }
