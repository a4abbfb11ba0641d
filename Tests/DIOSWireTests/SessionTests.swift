import DIOSCore
import DIOSWire
import Testing

/// Two endpoints over the loopback wire with the real fault stage in between.
final class Pair {
    let net = Loopback()
    let a = InstanceID(node: 0, core: 0)
    let b = InstanceID(node: 1, core: 0)
    var left: WireEndpoint
    var right: WireEndpoint
    var leftChanges: [PeerChange] = []
    var rightChanges: [PeerChange] = []
    let configuration: SessionConfiguration

    /// The left side's port (its frames are lent when `lending`).
    let leftPort: Loopback.Port

    /// How both ends protect their frames (nil: plain).
    let security: WireSecurity?

    init(
        faults: FaultConfiguration = FaultConfiguration(), configuration: SessionConfiguration = SessionConfiguration(),
        lending: Bool = false, security: WireSecurity? = nil
    ) {
        self.configuration = configuration
        self.security = security
        let pa = net.port(1)
        let pb = net.port(2)
        pa.lending = lending
        leftPort = pa
        let clock = { [net] in net.now }
        left = WireEndpoint(
            local: a, transport: FaultyTransport(pa, faults: faults, clock: clock), peers: [b: pb.localAddress],
            configuration: configuration, now: net.now, seed: 1, security: security)
        var rightFaults = faults
        rightFaults.seed &+= 1
        right = WireEndpoint(
            local: b, transport: FaultyTransport(pb, faults: rightFaults, clock: clock), peers: [a: pa.localAddress],
            configuration: configuration, now: net.now, seed: 2, security: security)
    }

    /// A new incarnation of the right side. Protected, its frame counters
    /// start later than the old one's, as a restarted node's clock has moved.
    func restartRight(seed: UInt64) {
        var security = security
        security?.counterStart += 1 << 40
        right = WireEndpoint(
            local: b, transport: net.port(2), peers: [a: PeerAddress(ipv4: 0x7F00_0001, port: 1)],
            configuration: configuration, now: net.now, seed: seed, security: security)
    }

    /// One turn of both endpoints; `deliver` takes what reaches the right side.
    func step(advance: UInt64 = 10_000, deliver: (UnsafeRawBufferPointer) -> Bool = { _ in true }) {
        _ = left.poll(now: net.now, deliver: { _, _ in true }, changed: { leftChanges.append($1) })
        _ = right.poll(now: net.now, deliver: { _, m in deliver(m) }, changed: { rightChanges.append($1) })
        net.now += advance
    }

    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { body in
            (try? left.send(to: b, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body, now: net.now))
                ?? false
        }
    }

    /// Writes `bytes` in a lent frame and sends it: true when sent, false when
    /// the session has lent all it may (`.full`), nil when it lends none.
    /// As the kernel does: `sendLentNow` first, `sendLent` when it declines.
    func sendInPlace(_ bytes: [UInt8]) -> Bool? {
        switch left.lendFrame(for: b) {
        case .lent(let frame):
            bytes.withUnsafeBytes {
                (frame.bytes + FrameHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
            }
            let session = left.sessions[0]
            if session.sendLentNow(frame, length: bytes.count, now: net.now, via: left.transport) { return true }
            let sent = left.sendLent(frame, length: bytes.count, to: b, now: net.now)
            precondition(sent, "an up session refused a lent frame")
            return true
        case .full:
            return false
        case .none:
            return nil
        }
    }
}

@Suite struct SessionTests {
    /// A message: its number, then bytes derived from it, of a size that makes
    /// some messages span several frames.
    static func message(_ n: Int) -> [UInt8] {
        let size = 8 + (n * 7919) % (n % 10 == 0 ? 5000 : 300)
        var bytes = withUnsafeBytes(of: UInt64(n).littleEndian) { Array($0) }
        for i in 8..<size { bytes.append(UInt8(truncatingIfNeeded: n &* 31 &+ i)) }
        return bytes
    }

    static func check(_ m: UnsafeRawBufferPointer, expected: Int) -> Bool {
        guard m.count >= 8, Int(m.loadUnaligned(as: UInt64.self)) == expected else { return false }
        return Array(m) == message(expected)
    }

    /// Sends `messages` numbered messages and checks they arrive in order. With
    /// `inPlace`, every message that fits one frame is written in a lent frame
    /// when the session lends one, and copied otherwise.
    func run(_ pair: Pair, messages: Int, refuseEvery: Int = 0, inPlace: Bool = false) -> (
        delivered: Int, outOfOrder: Int
    ) {
        var next = 0
        var sent = 0
        var outOfOrder = 0
        var offers = 0
        var steps = 0
        func sendOne() -> Bool {
            let m = Self.message(sent)
            if inPlace && m.count <= pair.left.configuration.maxFragment, let lent = pair.sendInPlace(m) { return lent }
            return pair.send(m)
        }
        while next < messages && steps < 50 * messages {
            while sent < messages && sendOne() { sent += 1 }
            pair.step { m in
                offers += 1
                if refuseEvery > 0 && offers % refuseEvery == 0 { return false }  // a full ring
                if !Self.check(m, expected: next) { outOfOrder += 1 }
                next += 1
                return true
            }
            steps += 1
        }
        return (next, outOfOrder)
    }

    @Test func deliversInOrderOnACleanLink() {
        let pair = Pair()
        let r = run(pair, messages: 5_000)
        #expect(r.delivered == 5_000)
        #expect(r.outOfOrder == 0)
        #expect(pair.left.sessions[0].counters.retransmits == 0)
        #expect(pair.rightChanges == [.up])
    }

    /// The bar: 5% loss plus duplication and reordering, and every
    /// message still arrives exactly once, in order.
    @Test func exactlyOnceInOrderUnderLossDuplicationAndReordering() {
        let pair = Pair(
            faults: FaultConfiguration(loss: 0.05, duplicate: 0.02, reorder: 0.05, delay: .microseconds(30), seed: 7))
        let r = run(pair, messages: 100_000, refuseEvery: 97)
        #expect(r.delivered == 100_000)
        #expect(r.outOfOrder == 0)
        let sender = pair.left.sessions[0].counters
        let receiver = pair.right.sessions[0].counters
        #expect(sender.retransmits > 0)
        #expect(receiver.duplicates > 0)
        #expect(receiver.messagesDelivered == 100_000)
        #expect(pair.leftChanges == [.up] && pair.rightChanges == [.up])  // never declared failed
    }

    /// A lost frame with frames after it: the receiver holds them and says so
    /// at once, and after three duplicate acknowledgements the sender resends
    /// the missing frame without waiting for its timer.
    @Test func threeDuplicateAcknowledgementsResendTheMissingFrameBeforeTheTimer() {
        let pair = Pair()
        var delivered: [Int] = []
        let take: (UnsafeRawBufferPointer) -> Bool = { m in
            delivered.append(Int(m.loadUnaligned(as: UInt64.self)))
            return true
        }
        // Up, with nothing in flight.
        #expect(pair.send(Self.message(1)))
        for _ in 0..<5 { pair.step(deliver: take) }
        #expect(delivered == [1])
        let right = PeerAddress(ipv4: 0x7F00_0001, port: 2)
        let started = pair.net.now
        // Message 2's frame is lost on the way.
        #expect(pair.send(Self.message(2)))
        #expect(pair.net.queues[right]?.count == 1)
        pair.net.queues[right] = []
        // Three more, one a turn: each arrival after the hole is acknowledged at once.
        for n in 3...5 {
            #expect(pair.send(Self.message(n)))
            pair.step(deliver: take)
        }
        for _ in 0..<4 { pair.step(deliver: take) }
        #expect(delivered == [1, 2, 3, 4, 5])
        #expect(pair.net.now - started < pair.configuration.retransmitTimeout.nanoseconds)  // the timer never fired
        let sender = pair.left.sessions[0].counters
        #expect(sender.fastRetransmits == 1)
        #expect(sender.retransmits == 1)
    }

    /// An acknowledgement that only gives more credit (the receiver's task read
    /// messages) says nothing about a lost frame: three of them do not resend
    /// one (as TCP does not count window updates as duplicates).
    @Test func acknowledgementsThatOnlyMoveTheCreditAreNotDuplicates() throws {
        let pair = Pair()
        #expect(pair.send(Self.message(1)))
        for _ in 0..<5 { pair.step() }
        let leftAddress = PeerAddress(ipv4: 0x7F00_0001, port: 1)
        let rightAddress = PeerAddress(ipv4: 0x7F00_0001, port: 2)
        // A frame of the right side's as a template: its heartbeat after a quiet while.
        pair.net.now += pair.configuration.heartbeatInterval.nanoseconds
        _ = pair.right.poll(now: pair.net.now, deliver: { _, _ in true }, changed: { _, _ in })
        let template = try #require(pair.net.queues[leftAddress]?.last)
        pair.net.queues[leftAddress] = []
        var header = try template.withUnsafeBytes { bytes throws(WireError) in try FrameHeader.decode(bytes) }
        // Message 2 goes out and is in flight (held up on the way).
        #expect(pair.send(Self.message(2)))
        #expect(pair.net.queues[rightAddress]?.count == 1)
        let held = pair.net.queues[rightAddress]!
        pair.net.queues[rightAddress] = []
        // Three acknowledgements of everything before it, each with more credit.
        header.type = .ack
        for _ in 1...3 {
            header.credit &+= 1
            var bytes = [UInt8](repeating: 0, count: FrameHeader.size)
            bytes.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
            pair.net.queues[leftAddress, default: []].append(bytes)
        }
        _ = pair.left.poll(now: pair.net.now, deliver: { _, _ in true }, changed: { _, _ in })
        #expect(pair.left.sessions[0].counters.retransmits == 0)
        #expect(pair.net.queues[rightAddress, default: []].count == 0)  // nothing resent
        // Message 2 arrives after all, once.
        pair.net.queues[rightAddress] = held
        var delivered: [Int] = []
        for _ in 0..<5 {
            pair.step { m in
                delivered.append(Int(m.loadUnaligned(as: UInt64.self))); return true
            }
        }
        #expect(delivered == [2])
    }

    /// Messages written in place in lent transport frames (as DPDK lends mbufs),
    /// mixed with copied ones, under the same faults: every message arrives
    /// once, in order; retransmissions send the lent frame again; every frame
    /// goes back to the transport once acknowledged, none twice.
    @Test func inPlaceFramesArriveExactlyOnceInOrderAndAreReleasedOnce() {
        let pair = Pair(
            faults: FaultConfiguration(loss: 0.05, duplicate: 0.02, reorder: 0.05, delay: .microseconds(30), seed: 11),
            lending: true)
        let r = run(pair, messages: 20_000, refuseEvery: 89, inPlace: true)
        #expect(r.delivered == 20_000)
        #expect(r.outOfOrder == 0)
        let sender = pair.left.sessions[0].counters
        #expect(sender.sentInPlace > 10_000)  // all that fit one frame, once the peer answered
        #expect(sender.sentInPlace < sender.messagesSent)  // the multi-frame ones were copied
        #expect(sender.retransmits > 0)
        for _ in 0..<2_000 where pair.left.sessions[0].inFlight > 0 { pair.step() }
        #expect(pair.left.sessions[0].inFlight == 0)
        #expect(pair.leftPort.out.isEmpty, "\(pair.leftPort.out.count) frames never released")
    }

    /// Lent frames that the window has no room for wait, in order, ahead of
    /// anything sent after them; the session lends no more than a window's
    /// worth, and a copied message waits behind them.
    @Test func lentFramesWaitForTheWindowAheadOfCopies() {
        let pair = Pair(lending: true)
        let w = pair.configuration.window
        #expect(pair.sendInPlace([0]) == nil)  // the peer has not answered yet: no loan
        #expect(pair.send(Self.message(0)))
        var delivered: [Int] = []
        let take: (UnsafeRawBufferPointer) -> Bool = { m in
            delivered.append(Int(m.loadUnaligned(as: UInt64.self))); return true
        }
        for _ in 0..<3 { pair.step(deliver: take) }
        #expect(delivered == [0])
        // Without polls nothing is acknowledged: a window's worth goes out, a
        // window's worth waits, and then the session lends no more.
        var n = 1
        while pair.sendInPlace(Self.message(n).prefix(64).map { $0 }) == true { n += 1 }
        #expect(n - 1 == 2 * w)
        #expect(pair.sendInPlace([1]) == false)
        #expect(!pair.send(Self.message(n)))  // a copy waits behind the lent frames
        for _ in 0..<50 { pair.step(deliver: take) }
        #expect(delivered == Array(0..<n))
        #expect(pair.send(Self.message(n)))
        for _ in 0..<50 { pair.step(deliver: take) }
        #expect(delivered == Array(0...n))
        #expect(pair.leftPort.out.isEmpty)
    }

    /// `sendLentNow`, the one-pass send of the stream fast path, sends only
    /// when the frame can leave at once; with the window full it declines,
    /// changing nothing, and `sendLent` (which the kernel calls next) queues
    /// the frame to go once the window has room.
    @Test func sendLentNowDeclinesWhatCannotLeaveAtOnceAndChangesNothing() {
        let pair = Pair(lending: true)
        let w = pair.configuration.window
        #expect(pair.send(Self.message(0)))
        for _ in 0..<3 { pair.step() }
        let session = pair.left.sessions[0]
        func lend() -> TransportFrame {
            guard case .lent(let frame) = pair.left.lendFrame(for: pair.b) else { preconditionFailure("no loan") }
            return frame
        }
        // Room: it goes now, from the frame.
        let before = session.counters
        #expect(session.sendLentNow(lend(), length: 8, now: pair.net.now, via: pair.left.transport))
        #expect(session.counters.sentInPlace == before.sentInPlace + 1 && session.lent == 0)
        // Fill the window (nothing is acknowledged without polls).
        while session.inFlight < w {
            #expect(session.sendLentNow(lend(), length: 8, now: pair.net.now, via: pair.left.transport))
        }
        func onTheWire() -> Int { pair.net.queues.values.reduce(0) { $0 + $1.count } }
        let sentFrames = onTheWire()
        // Full: declined, nothing changed, nothing sent; the frame is still lent.
        let full = lend()
        let was = (session.counters, session.inFlight, session.waitingCount, session.lent)
        #expect(!session.sendLentNow(full, length: 8, now: pair.net.now, via: pair.left.transport))
        #expect((session.counters, session.inFlight, session.waitingCount, session.lent) == was)
        #expect(onTheWire() == sentFrames)
        // `sendLent` queues it; it leaves once the peer's acknowledgement frees the window.
        #expect(pair.left.sendLent(full, length: 8, to: pair.b, now: pair.net.now))
        #expect(session.waitingCount == 1 && session.lent == 0)
        for _ in 0..<50 where session.inFlight > 0 || session.waitingCount > 0 { pair.step() }
        #expect(session.inFlight == 0 && session.waitingCount == 0)
        #expect(session.counters.sentInPlace == before.sentInPlace + UInt64(w) + 1)
        #expect(pair.leftPort.out.isEmpty, "\(pair.leftPort.out.count) frames never released")
    }

    /// A restarted peer ends the session: the frames in flight and waiting are
    /// given back to the transport.
    @Test func aRestartGivesBackTheFramesInFlight() {
        let pair = Pair(lending: true)
        for _ in 0..<3 { pair.step() }
        for n in 0..<10 { #expect(pair.sendInPlace(Self.message(n).prefix(32).map { $0 }) == true) }
        #expect(pair.leftPort.out.count == 10)
        pair.restartRight(seed: 99)
        for _ in 0..<5 { pair.step() }
        #expect(pair.leftChanges.contains(.down(.restarted)))
        #expect(pair.leftPort.out.isEmpty)
    }

    /// A peer that says it is leaving ends the session at once; what it still
    /// sends while it winds down (for `Session.leaveQuiet`) does not bring the
    /// session back; afterwards a new incarnation of it comes up as usual.
    @Test func aPeerThatLeavesEndsTheSessionAndIsNotHeardWhileItWindsDown() {
        let pair = Pair()
        for _ in 0..<3 { pair.step() }
        #expect(pair.left.isReachable(pair.b))
        #expect(pair.left.peerLeft(pair.b, now: pair.net.now))
        #expect(pair.leftChanges == [.up])  // the caller reports it (the kernel does)
        #expect(!pair.left.isReachable(pair.b))
        #expect(!pair.left.peerLeft(pair.b, now: pair.net.now))  // once
        // For most of the quiet time the right side still runs, answering the
        // left's new epoch with a new session of its own: not taken.
        for _ in 0..<80 { pair.step(advance: 10_000_000) }
        #expect(!pair.left.isReachable(pair.b))
        #expect(pair.left.sessions[0].counters.staleFrames > 0)
        #expect(pair.leftChanges == [.up])
        // It is gone; a new incarnation comes once the quiet time is over.
        pair.restartRight(seed: 77)
        for _ in 0..<40 { pair.step(advance: 10_000_000) }
        #expect(pair.left.isReachable(pair.b))
        #expect(pair.leftChanges == [.up, .up])
    }

    /// A consumer that takes nothing stops the sender at the window: the credit
    /// holds it, and nothing is dropped.
    @Test func backPressureHoldsTheSender() {
        let pair = Pair()
        var sent = 0
        for _ in 0..<100 {
            while pair.send([1, 2, 3]) { sent += 1 }
            pair.step { _ in false }
        }
        #expect(sent == pair.configuration.window)
        var got = 0
        for _ in 0..<100 {
            while pair.send([1, 2, 3]) { sent += 1 }
            pair.step { _ in
                got += 1; return true
            }
        }
        #expect(got == sent)
        #expect(sent > pair.configuration.window)
    }

    @Test func refusesOversizedMessages() {
        let pair = Pair(configuration: SessionConfiguration(maxMessageSize: 100))
        let big = [UInt8](repeating: 0, count: 101)
        let result: Result<Bool, SessionError> = big.withUnsafeBytes { body in
            do throws(SessionError) {
                return .success(
                    try pair.left.send(
                        to: pair.b, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body, now: 0))
            } catch { return .failure(error) }
        }
        #expect(result == .failure(.messageTooLarge(101, maximum: 100)))
        #expect(pair.left.sessions[0].inFlight == 0)
    }

    /// A silent peer is declared failed within the failure timeout, and comes
    /// back (a new session) once it answers again.
    @Test func silenceIsDetectedAndHealed() {
        let pair = Pair(configuration: SessionConfiguration(failureTimeout: .milliseconds(100)))
        for _ in 0..<10 { pair.step() }
        #expect(pair.leftChanges == [.up])
        pair.net.silenced = [PeerAddress(ipv4: 0x7F00_0001, port: 2)]
        #expect(pair.send([1]))
        let silentSince = pair.net.now
        var detectedAt: UInt64? = nil
        while detectedAt == nil && pair.net.now - silentSince < 1_000_000_000 {
            pair.step(advance: 1_000_000)
            if pair.leftChanges.count > 1 { detectedAt = pair.net.now }
        }
        #expect(pair.leftChanges.last == .down(.timeout(after: .milliseconds(100))))
        #expect((detectedAt ?? .max) - silentSince <= 102_000_000)
        pair.net.silenced = []
        for _ in 0..<50 { pair.step(advance: 1_000_000) }
        #expect(pair.leftChanges.last == .up)
        #expect(pair.left.isReachable(pair.b) && pair.right.isReachable(pair.a))
        var got: [UInt8] = []
        #expect(pair.send([42]))
        for _ in 0..<10 {
            pair.step {
                got += $0; return true
            }
        }
        #expect(got == [42])
    }

    /// A restarted peer is a new incarnation: the old session is reported failed
    /// at once (not after a timeout), and the new one carries messages.
    @Test func restartIsDetected() {
        let pair = Pair()
        for _ in 0..<5 { pair.step() }
        pair.restartRight(seed: 99)
        for _ in 0..<5 { pair.step() }
        #expect(pair.leftChanges == [.up, .down(.restarted), .up])
        var got: [UInt8] = []
        #expect(pair.send([7, 7]))
        for _ in 0..<10 {
            pair.step {
                got += $0; return true
            }
        }
        #expect(got == [7, 7])
    }

    /// Malformed frames are counted and change nothing.
    @Test func malformedFramesAreRefused() {
        let pair = Pair()
        for _ in 0..<5 { pair.step() }
        let before = pair.right.sessions[0].counters
        pair.net.queues[PeerAddress(ipv4: 0x7F00_0001, port: 2), default: []].append([0xD1, 0x05, 1, 1, 0])
        pair.step()
        #expect(pair.right.counters.malformed == 1)
        #expect(pair.right.lastDecodeError == .truncated(needed: FrameHeader.size, have: 5))
        #expect(pair.right.sessions[0].counters.framesReceived == before.framesReceived)
    }
}
