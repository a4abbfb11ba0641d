import DIOS
import DIOSKernel
import DIOSTransport
import DIOSWire
import Testing

/// The wire's zero-copy receive, without DPDK: node 0's transport lands each
/// datagram in a buffer of a fixed pool (as a NIC lands packets in mbufs) and
/// lets the receiver keep it. A message from another node then stays in the
/// buffer it arrived in, the reader's `beginRead` viewing it there, and the
/// buffer goes back when the read ends or the stream goes. (Over DPDK the
/// same path keeps mbufs: see DiosdClusterTests.)
@Suite(.serialized) struct ReadInPlaceTests {
    /// A kernel UDP socket whose frames are received into its own buffers and
    /// may be kept (`keepReceived`); it checks every buffer given back was
    /// kept, once. Used from its instance's thread only (tests read its
    /// figures in a task there).
    final class KeepingTransport: FrameTransport, @unchecked Sendable {
        static let bufferSize = 1472
        let inner: UDPTransport
        var localAddress: PeerAddress { inner.localAddress }
        var maxFrameSize: Int { inner.maxFrameSize }
        var readinessFD: Int32? { inner.readinessFD }
        private var free: [UnsafeMutableRawPointer] = (0..<512).map { _ in
            .allocate(byteCount: bufferSize, alignment: 64)
        }
        private(set) var kept: Set<UnsafeMutableRawPointer> = []
        private(set) var everKept = 0
        private(set) var mostKept = 0
        private var handing: UnsafeRawBufferPointer? = nil

        init(_ inner: UDPTransport) { self.inner = inner }

        func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool { inner.send(frame, to: peer) }
        func hold() { inner.hold() }
        func flush() { inner.flush() }
        func peerLeaving(_ address: PeerAddress) {}

        func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
            inner.receive { bytes, source in
                guard let buffer = free.popLast() else { return }  // none free: dropped, as by a NIC
                buffer.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                let frame = UnsafeRawBufferPointer(start: buffer, count: bytes.count)
                handing = frame
                body(frame, source)
                handing = nil
                if !kept.contains(buffer) { free.append(buffer) }
            }
        }

        func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? {
            guard let frame = handing, let start = frame.baseAddress, bytes >= start && bytes < start + frame.count
            else {
                return nil
            }
            let buffer = UnsafeMutableRawPointer(mutating: start)
            kept.insert(buffer)
            everKept += 1
            mostKept = max(mostKept, kept.count)
            return OpaquePointer(buffer)
        }

        func releaseReceived(_ handle: OpaquePointer) {
            let buffer = UnsafeMutableRawPointer(handle)
            precondition(kept.remove(buffer) != nil, "a frame given back twice, or never kept")
            free.append(buffer)
        }

        /// Whether `p` lies in a buffer kept now.
        func holds(_ p: UnsafeRawPointer) -> Bool {
            kept.contains { p >= UnsafeRawPointer($0) && p < UnsafeRawPointer($0) + Self.bufferSize }
        }
    }

    static let source = Name.wellKnown("test.readinplace.source")
    static let reader = Name.wellKnown("test.readinplace.reader")

    /// Node 0 of `instances` instances, node 1 of one. Instance 0.0 receives
    /// through a `KeepingTransport`, the others through plain sockets. Node 1's
    /// source writes `messages` numbered messages, node 0's reader reads them
    /// (as ClusterTests').
    static func makeNodes(messages: Int, instances: Int = 1) async throws -> (nodes: [Node], keeping: KeepingTransport)
    {
        let session = SessionConfiguration(retransmitTimeout: .milliseconds(1), failureTimeout: .seconds(2))
        let ids = (0..<instances).map { InstanceID(node: 0, core: UInt16($0)) } + [InstanceID(node: 1, core: 0)]
        let sockets = try ids.map { _ in try UDPTransport(bind: PeerAddress("127.0.0.1", port: 0)!) }
        let keeping = KeepingTransport(sockets[0])
        let transports: [any FrameTransport] = [keeping] + sockets.dropFirst().map { $0 as any FrameTransport }
        var addresses: [InstanceID: PeerAddress] = [:]
        for (id, t) in zip(ids, transports) { addresses[id] = t.localAddress }
        var nodes: [Node] = []
        for n: UInt16 in [0, 1] {
            var configuration = NodeConfiguration()
            configuration.node = n
            configuration.cores = n == 0 ? Array(0..<instances) : [0]
            configuration.arenaSize = 16 << 20
            configuration.idlePolicy = .adaptive
            let wires = zip(ids, transports).filter { $0.0.node == n }.map { id, t in
                WireEndpoint(
                    local: id, transport: t, peers: addresses.filter { $0.key.node != n }, configuration: session,
                    now: monotonicNanoseconds(),
                    seed: UInt64(id.node) << 16 &+ UInt64(id.core) &* 7919 &+ monotonicNanoseconds())
            }
            let node = try Node(configuration, wires: wires)
            await node.register(source, label: "source") { task in
                try await ClusterTests.writeNumbered(task, task.delegated()[0], count: messages)
            }
            await node.register(reader, label: "reader") { task in
                try await ClusterTests.readNumbered(task, task.delegated()[0], count: messages)
            }
            nodes.append(node)
        }
        try await ClusterTests.waitUntilConnected(nodes[0], to: InstanceID(node: 1, core: 0))
        return (nodes, keeping)
    }

    /// A stream node 1's source writes `count` messages into, read here, once
    /// this instance holds them all, unread, in the frames they came in (or
    /// 5 s have passed); and the source's task object.
    static func streamHolding(_ count: Int, _ task: TaskContext, _ node: Node) async throws -> (
        stream: Ref, source: Ref
    ) {
        let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
        let source = try task.run(
            try task.lookup(Self.source)[0], arguments: [stream], flags: .writable, on: InstanceID(node: 1, core: 0))
        try await waitUntilHeld(count, task, node)
        return (stream, source)
    }

    /// Waits (in `task`, on `node`'s instance 0) until it holds `count` received frames, or 5 s pass.
    static func waitUntilHeld(_ count: Int, _ task: TaskContext, _ node: Node) async throws {
        let (_, timer) = try task.create(.timer(after: .milliseconds(1)))
        var waited = 0
        while node.instance.framesHeld < count && waited < 5_000 {
            _ = try await task.select([timer])
            let w = try task.beginWrite(timer, size: 8)
            try w.store(UInt64(1_000_000))
            _ = task.endWrite(w)
            waited += 1
        }
        try task.delete(timer)
    }

    @Test func aMessageFromAnotherNodeIsReadInTheFrameItArrivedIn() async throws {
        let count = 5_000
        let (nodes, keeping) = try await Self.makeNodes(messages: count)
        defer { for n in nodes { n.shutdown() } }
        let node0 = nodes[0]
        let (inPlace, counted, stillKept, held, status) = try await node0.withTask { task in
            let before = node0.instance.counters.readInPlace
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let source = try task.run(
                try task.lookup(Self.source)[0], arguments: [stream], flags: .writable, on: InstanceID(node: 1, core: 0)
            )
            var inPlace = 0
            for expected in 0..<UInt64(count) {
                let r: ReadTransaction
                do { r = try task.beginRead(stream) } catch CallError.wouldBlock {
                    _ = try await task.select([stream])
                    r = try task.beginRead(stream)
                }
                let view = r.baseAddress
                let here = keeping.holds(view)
                if here { inPlace += 1 }
                let (number, mix) = (try r.load(as: UInt64.self), try r.load(fromByteOffset: 8, as: UInt64.self))
                let consistent = task.endRead(r)
                #expect(number == expected && mix == expected &* 0x9E37_79B9_7F4A_7C15)
                #expect(consistent)
                if here { #expect(!keeping.holds(view), "the frame goes back when the read ends") }
            }
            let status = try await ClusterTests.status(task, source)
            return (
                inPlace, Int(node0.instance.counters.readInPlace - before), keeping.kept.count,
                node0.instance.framesHeld, status
            )
        }
        #expect(status == 0)
        // Over loopback frames arrive in order, and most find room in the ring
        // (those that do not wait in the session, a copy, until they do).
        #expect(inPlace > count / 4, "\(inPlace) of \(count) read in place")
        #expect(counted == inPlace && keeping.everKept == inPlace)
        #expect(stillKept == 0 && held == 0)
    }

    @Test func aStreamThatGoesGivesBackTheFramesItHeld() async throws {
        let count = 32
        let (nodes, keeping) = try await Self.makeNodes(messages: count)
        defer { for n in nodes { n.shutdown() } }
        let node0 = nodes[0]
        let (mostHeld, stillKept, held) = try await node0.withTask { task in
            let (stream, _) = try await Self.streamHolding(count, task, node0)
            let mostHeld = node0.instance.framesHeld
            try task.delete(stream)  // unread: its frames go back with it
            return (mostHeld, keeping.kept.count, node0.instance.framesHeld)
        }
        #expect(mostHeld == count, "all \(count) messages wait in the frames they came in")
        #expect(stillKept == 0 && held == 0)
    }

    /// Handing a stream to another instance of the node shares its ring, so the
    /// messages it holds in this instance's received frames are copied into
    /// the ring first, and the frames given back; the reader there reads them all.
    @Test func aStreamHandedToAnotherInstanceTakesItsMessagesIn() async throws {
        let count = 32
        let (nodes, keeping) = try await Self.makeNodes(messages: count, instances: 2)
        defer { for n in nodes { n.shutdown() } }
        let node0 = nodes[0]
        let (mostHeld, stillKept, held, status) = try await node0.withTask { task in
            let (stream, source) = try await Self.streamHolding(count, task, node0)
            let mostHeld = node0.instance.framesHeld
            let reader = try task.run(
                try task.lookup(Self.reader)[0], arguments: [stream], on: InstanceID(node: 0, core: 1))
            let (stillKept, held) = (keeping.kept.count, node0.instance.framesHeld)
            let status = (try await ClusterTests.status(task, reader), try await ClusterTests.status(task, source))
            return (mostHeld, stillKept, held, status)
        }
        #expect(mostHeld == count)
        #expect(stillKept == 0 && held == 0)
        #expect(status == (0, 0))
    }

    /// ... but not while a read of one of them is open: its view lies in a frame.
    @Test func noHandOverUnderAnOpenReadOfAHeldMessage() async throws {
        let count = 8
        let (nodes, keeping) = try await Self.makeNodes(messages: count, instances: 2)
        defer { for n in nodes { n.shutdown() } }
        let node0 = nodes[0]
        let (heldDuring, keptDuring, heldAfter) = try await node0.withTask { task in
            let (stream, _) = try await Self.streamHolding(count, task, node0)
            let r = try task.beginRead(stream)
            let inFrame = keeping.holds(r.baseAddress)
            let first = try r.load(as: UInt64.self)
            #expect(throws: CallError.busy) {
                try task.run(try task.lookup(Self.reader)[0], arguments: [stream], on: InstanceID(node: 0, core: 1))
            }
            let (heldDuring, keptDuring) = (node0.instance.framesHeld, keeping.kept.count)
            let consistent = task.endRead(r)
            #expect(inFrame && first == 0 && consistent)
            return (heldDuring, keptDuring, node0.instance.framesHeld)
        }
        #expect(heldDuring == count && keptDuring == count, "nothing was copied in or given back")
        #expect(heldAfter == count - 1)
    }
}
