import CLinux
import DIOSCore
import DIOSTransport
import DIOSWire
import Testing

@Suite struct UDPTransportTests {
    static let loopback = PeerAddress("127.0.0.1", port: 0)!

    /// Frames go through real sockets on loopback, in a burst, with their source.
    @Test func carriesFramesBetweenSockets() throws {
        let a = try UDPTransport(bind: Self.loopback)
        let b = try UDPTransport(bind: Self.loopback)
        #expect(a.localAddress.port != 0 && a.localAddress.port != b.localAddress.port)
        for i in 0..<10 {
            let frame = [UInt8](repeating: UInt8(i), count: 100 + i)
            #expect(frame.withUnsafeBytes { a.send($0, to: b.localAddress) })
        }
        var got: [[UInt8]] = []
        var from: Set<PeerAddress> = []
        for _ in 0..<1000 where got.count < 10 {
            _ = b.receive { frame, source in
                got.append(Array(frame))
                from.insert(source)
            }
        }
        #expect(got.count == 10)
        #expect(
            got.enumerated().allSatisfy { $0.element == [UInt8](repeating: UInt8($0.offset), count: 100 + $0.offset) })
        #expect(from == [a.localAddress])
    }

    /// Frames sent between `hold()` and `flush()` stay here until the flush
    /// (or until a burst's worth wait), then arrive, in order, each where it
    /// was addressed.
    @Test func heldFramesLeaveTogetherAtFlush() throws {
        let a = try UDPTransport(bind: Self.loopback)
        let b = try UDPTransport(bind: Self.loopback)
        let c = try UDPTransport(bind: Self.loopback)
        func drain(_ t: UDPTransport, expecting: Int) -> [[UInt8]] {
            var got: [[UInt8]] = []
            for _ in 0..<10_000 where got.count < expecting { _ = t.receive { frame, _ in got.append(Array(frame)) } }
            return got
        }
        a.hold()
        for i in 0..<20 {
            #expect(
                [UInt8](repeating: UInt8(i), count: 64 + i).withUnsafeBytes {
                    a.send($0, to: i % 2 == 0 ? b.localAddress : c.localAddress)
                })
        }
        #expect(b.receive { _, _ in } == 0 && c.receive { _, _ in } == 0)  // held
        a.flush()
        let expectedB = stride(from: 0, to: 20, by: 2).map { [UInt8](repeating: UInt8($0), count: 64 + $0) }
        let expectedC = stride(from: 1, to: 20, by: 2).map { [UInt8](repeating: UInt8($0), count: 64 + $0) }
        #expect(drain(b, expecting: 10) == expectedB)
        #expect(drain(c, expecting: 10) == expectedC)
        // More than a burst (32) while held: the first burst leaves early, none is lost.
        a.hold()
        for i in 0..<70 { #expect(withUnsafeBytes(of: UInt64(i)) { a.send($0, to: b.localAddress) }) }
        a.flush()
        #expect(
            drain(b, expecting: 70).map { $0.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } } == Array(0..<70))
        #expect(a.sendFailures == 0)
        // After the flush, sends go at once again.
        #expect(withUnsafeBytes(of: UInt64(99)) { a.send($0, to: c.localAddress) })
        #expect(drain(c, expecting: 1).count == 1)
    }

    @Test func bindFailureIsTyped() throws {
        let a = try UDPTransport(bind: Self.loopback)
        #expect(throws: TransportError.self) { try UDPTransport(bind: a.localAddress) }
    }

    /// Two endpoints over real sockets with the fault stage on both sides: every
    /// message arrives once, in order.
    @Test func sessionOverLossyUDP() throws {
        let sa = try UDPTransport(bind: Self.loopback)
        let sb = try UDPTransport(bind: Self.loopback)
        let clock = { clinuxNow() }
        let faults = FaultConfiguration(loss: 0.05, duplicate: 0.02, reorder: 0.05, seed: 3)
        let ia = InstanceID(node: 0, core: 0)
        let ib = InstanceID(node: 1, core: 0)
        let config = SessionConfiguration(retransmitTimeout: .microseconds(500))
        let a = WireEndpoint(
            local: ia, transport: FaultyTransport(sa, faults: faults, clock: clock), peers: [ib: sb.localAddress],
            configuration: config, now: clock(), seed: 11)
        let b = WireEndpoint(
            local: ib, transport: FaultyTransport(sb, faults: faults, clock: clock), peers: [ia: sa.localAddress],
            configuration: config, now: clock(), seed: 12)
        let total = 20_000
        var sent = 0
        var next = 0
        var bad = 0
        let deadline = clock() + 60_000_000_000
        while next < total && clock() < deadline {
            while sent < total {
                let ok = withUnsafeBytes(of: UInt64(sent)) { body in
                    let none = UnsafeRawBufferPointer(start: nil, count: 0)
                    return (try? a.send(to: ib, prefix: none, body: body, now: clock()))
                        ?? false
                }
                guard ok else { break }
                sent += 1
            }
            _ = a.poll(now: clock(), deliver: { _, _ in true }, changed: { _, _ in })
            _ = b.poll(
                now: clock(),
                deliver: { _, m in
                    if m.count != 8 || m.loadUnaligned(as: UInt64.self) != UInt64(next) { bad += 1 }
                    next += 1
                    return true
                }, changed: { _, _ in })
        }
        #expect(next == total)
        #expect(bad == 0)
        #expect(a.sessions[0].counters.retransmits > 0)
    }
}

func clinuxNow() -> UInt64 { clinux_monotonic_ns() }
