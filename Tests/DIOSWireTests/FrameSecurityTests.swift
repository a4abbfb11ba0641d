import CDIOSCrypto
import DIOSCore
import DIOSWire
import Testing

/// Protected frames: a session whose frames are sealed with keys from the
/// cluster's secret delivers as a plain one does, and a frame made, altered
/// or replayed by anyone on the link is dropped, counted, and changes nothing.
@Suite struct FrameSecurityTests {
    static let secret = ClusterSecret(bytes: (0..<32).map { UInt8($0) })!
    static let left = PeerAddress(ipv4: 0x7F00_0001, port: 1)
    static let right = PeerAddress(ipv4: 0x7F00_0001, port: 2)

    static func security(_ protection: FrameProtection, secret: ClusterSecret = secret) -> WireSecurity {
        WireSecurity(secret: secret, protection: protection, counterStart: 1_000)
    }

    /// The frames waiting for `address`, as copies of their own (an encrypted
    /// frame is decrypted where it is received, so a shared buffer would change).
    static func capture(_ pair: Pair, to address: PeerAddress) -> [[UInt8]] {
        (pair.net.queues[address] ?? []).map { $0.map { $0 } }
    }

    static func inject(_ pair: Pair, _ frames: [[UInt8]], to address: PeerAddress) {
        pair.net.queues[address, default: []] += frames.map { $0.map { $0 } }
    }

    /// Under loss, duplication and reordering, numbered messages (some of
    /// several frames, some written in place) arrive exactly once and in
    /// order, authenticated and encrypted; resent frames are sealed again.
    @Test(arguments: [FrameProtection.authenticated, .encrypted])
    func protectedSessionsDeliverInOrderUnderFaults(_ protection: FrameProtection) {
        let pair = Pair(
            faults: FaultConfiguration(loss: 0.05, duplicate: 0.02, reorder: 0.05, delay: .microseconds(30), seed: 3),
            lending: true, security: Self.security(protection))
        let r = SessionTests().run(pair, messages: 20_000, refuseEvery: 89, inPlace: true)
        #expect(r.delivered == 20_000)
        #expect(r.outOfOrder == 0)
        #expect(pair.left.sessions[0].counters.retransmits > 0)
        #expect(pair.left.sessions[0].counters.sentInPlace > 0)
        #expect(pair.leftChanges == [.up] && pair.rightChanges == [.up])
        // Duplicates made by the fault stage are separate datagrams with the
        // same counter: refused before the session sees them.
        #expect(pair.right.counters.replayed > 0)
        #expect(pair.right.counters.forged == 0 && pair.left.counters.forged == 0)
        #expect(pair.left.configuration.maxFragment == 1472 - FrameHeader.size - WireSecurity.trailerSize)
    }

    /// Encrypted, the payload is not on the wire; authenticated, it is (and
    /// still cannot be changed).
    @Test(arguments: [FrameProtection.authenticated, .encrypted])
    func onlyEncryptedFramesHideTheirPayload(_ protection: FrameProtection) {
        let pair = Pair(security: Self.security(protection))
        for _ in 0..<3 { pair.step() }
        let marker = Array("a payload anyone on the link could read".utf8)
        #expect(pair.send(marker))
        let frames = Self.capture(pair, to: Self.right)
        let data = frames.filter { $0.count > FrameHeader.size + WireSecurity.trailerSize }
        #expect(data.count == 1)
        let visible = data.contains { frame in
            frame.indices.dropLast(marker.count - 1).contains { frame[$0..<$0 + marker.count].elementsEqual(marker) }
        }
        #expect(visible == (protection == .authenticated))
        var got: [UInt8] = []
        for _ in 0..<3 {
            pair.step { m in
                got = Array(m); return true
            }
        }
        #expect(got == marker)
    }

    /// Every byte of a genuine data frame, flipped in turn: each altered frame
    /// is refused as forged, the session's state does not move, nothing is
    /// delivered; the genuine frame then goes through.
    @Test(arguments: [FrameProtection.authenticated, .encrypted])
    func aFrameAlteredAnywhereIsRefusedAndChangesNothing(_ protection: FrameProtection) {
        let pair = Pair(security: Self.security(protection))
        for _ in 0..<3 { pair.step() }
        #expect(pair.send(Array(repeating: 7, count: 100)))
        let genuine = Self.capture(pair, to: Self.right)
        pair.net.queues[Self.right] = []
        #expect(genuine.count == 1)
        let frame = genuine[0]
        let before = pair.right.sessions[0].counters
        let epoch = pair.right.sessions[0].peerEpoch
        var delivered = 0
        func receive(_ frames: [[UInt8]]) {
            Self.inject(pair, frames, to: Self.right)
            _ = pair.right.poll(
                now: pair.net.now,
                deliver: { _, _ in
                    delivered += 1
                    return true
                }, changed: { _, _ in })
        }
        for i in frame.indices {
            var altered = frame
            altered[i] ^= 0x01
            receive([altered])
        }
        #expect(delivered == 0)
        // A flipped bit of the sender's name finds no session; one of the
        // counter may name a counter taken before (refused as a replay,
        // before the tag is checked); every other one fails the tag.
        let refused = pair.right.counters
        #expect(refused.forged + refused.replayed + refused.unknownPeer == UInt64(frame.count))
        #expect(refused.forged >= UInt64(frame.count - 4 - 8))
        #expect(pair.right.sessions[0].counters == before)
        #expect(pair.right.sessions[0].peerEpoch == epoch)
        receive(genuine)
        #expect(delivered == 1)
    }

    /// An on-path recorder replays what it saw: the session's frames again
    /// (data, acknowledgements, heartbeats), and, after the peer restarted,
    /// the frames of its earlier incarnation, the opening ones included. None
    /// is taken: nothing is delivered twice and the session stays up.
    @Test func replayedFramesAreRefusedEvenFromAnEarlierIncarnation() {
        let pair = Pair(security: Self.security(.authenticated))
        var recorded: [[UInt8]] = []
        var delivered: [[UInt8]] = []
        func step() {
            recorded += Self.capture(pair, to: Self.left)
            pair.step { m in
                delivered.append(Array(m)); return true
            }
        }
        for n in 0..<20 {
            #expect(pair.send([UInt8(n)]))
            step()
        }
        for _ in 0..<5 { step() }
        #expect(delivered.count == 20)
        // The right side (which sends to the left) restarts; the left takes
        // the new incarnation once.
        pair.restartRight(seed: 99)
        for _ in 0..<10 { step() }
        #expect(pair.leftChanges.starts(with: [.up, .down(.restarted), .up]))
        #expect(pair.left.isReachable(pair.b))
        let changes = pair.leftChanges
        let epoch = pair.left.sessions[0].peerEpoch
        let counters = pair.left.sessions[0].counters
        let replayedBefore = pair.left.counters.replayed
        // Everything recorded, from both incarnations, again.
        Self.inject(pair, recorded, to: Self.left)
        _ = pair.left.poll(now: pair.net.now, deliver: { _, _ in true }, changed: { pair.leftChanges.append($1) })
        #expect(pair.left.counters.replayed - replayedBefore == UInt64(recorded.count))
        #expect(pair.leftChanges == changes)
        #expect(pair.left.sessions[0].peerEpoch == epoch)
        #expect(pair.left.sessions[0].counters.resets == counters.resets)
        #expect(pair.left.isReachable(pair.b))
    }

    /// A node with another secret is never heard: its frames are forged to
    /// the others, and no session comes up either way.
    @Test func aNodeWithAnotherSecretIsNeverHeard() {
        let net = Loopback()
        let pa = net.port(1)
        let pb = net.port(2)
        let a = InstanceID(node: 0, core: 0)
        let b = InstanceID(node: 1, core: 0)
        let left = WireEndpoint(
            local: a, transport: pa, peers: [b: pb.localAddress], configuration: SessionConfiguration(), now: net.now,
            seed: 1, security: Self.security(.authenticated))
        let right = WireEndpoint(
            local: b, transport: pb, peers: [a: pa.localAddress], configuration: SessionConfiguration(), now: net.now,
            seed: 2, security: Self.security(.authenticated, secret: .generate()))
        var changes = 0
        for _ in 0..<50 {
            _ = left.poll(now: net.now, deliver: { _, _ in true }, changed: { _, _ in changes += 1 })
            _ = right.poll(now: net.now, deliver: { _, _ in true }, changed: { _, _ in changes += 1 })
            net.now += 5_000_000
        }
        #expect(changes == 0)
        #expect(!left.isReachable(b) && !right.isReachable(a))
        #expect(left.counters.forged > 0 && right.counters.forged > 0)
    }

    /// A plain frame (no trailer) sent to a protected endpoint is refused
    /// whole, and a frame too short to carry a trailer is malformed.
    @Test func aPlainFrameIsRefusedByAProtectedEndpoint() {
        let pair = Pair(security: Self.security(.authenticated))
        for _ in 0..<3 { pair.step() }
        let heartbeat = withUnsafeTemporaryAllocation(byteCount: FrameHeader.size, alignment: 8) { buffer in
            FrameHeader(
                type: .heartbeat, source: pair.a, destination: pair.b, sourceEpoch: 1234,
                destinationEpoch: pair.right.sessions[0].localEpoch
            ).encode(into: buffer.baseAddress!)
            return Array(buffer)
        }
        // The second carries a trailer of made-up bytes: a counter never
        // taken, so the tag is checked, and fails.
        Self.inject(
            pair, [heartbeat, heartbeat + [UInt8](repeating: 0xFF, count: WireSecurity.trailerSize)], to: Self.right)
        let epoch = pair.right.sessions[0].peerEpoch
        _ = pair.right.poll(now: pair.net.now, deliver: { _, _ in true }, changed: { pair.rightChanges.append($1) })
        #expect(pair.right.counters.malformed == 1)
        #expect(pair.right.counters.forged == 1)
        #expect(pair.right.sessions[0].peerEpoch == epoch)
        #expect(pair.rightChanges == [.up])
    }

    /// A flood of frames from a million made-up senders: each is counted and
    /// dropped before any session or key is looked at, and the endpoint keeps
    /// no state for any of them.
    @Test func aMillionMadeUpSendersLeaveNothingBehind() {
        let pair = Pair(security: Self.security(.authenticated))
        for _ in 0..<3 { pair.step() }
        var frame = [UInt8](repeating: 0, count: FrameHeader.size + WireSecurity.trailerSize)
        let sessions = pair.right.sessions.count
        for batch in 0..<100 {
            var frames: [[UInt8]] = []
            frames.reserveCapacity(10_000)
            for k in 0..<10_000 {
                let id = InstanceID(node: UInt16(2 + (batch * 10_000 + k) / 60_000), core: UInt16(k % 60_000))
                frame.withUnsafeMutableBytes { buffer in
                    FrameHeader(type: .heartbeat, source: id, destination: pair.b, sourceEpoch: 1, destinationEpoch: 0)
                        .encode(into: buffer.baseAddress!)
                }
                frames.append(frame)
            }
            pair.net.queues[Self.right, default: []] += frames
            _ = pair.right.poll(now: pair.net.now, deliver: { _, _ in true }, changed: { _, _ in })
        }
        #expect(pair.right.counters.unknownPeer == 1_000_000)
        #expect(pair.right.counters.forged == 0)
        #expect(pair.right.sessions.count == sessions)
        #expect(pair.right.isReachable(pair.a))
    }
}

/// The primitives against values published or computed elsewhere: HKDF-SHA256
/// against RFC 5869's first test case, AES-256-GCM against Python's
/// `cryptography` (OpenSSL), sealing in place and opening back.
@Suite struct FrameCryptoKnownAnswerTests {
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func hkdfMatchesRFC5869() {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let salt = [UInt8](0x00...0x0c)
        let info = [UInt8](0xf0...0xf9)
        var out = [UInt8](repeating: 0, count: 42)
        let ok = out.withUnsafeMutableBufferPointer {
            dios_hkdf_sha256(ikm, ikm.count, salt, salt.count, info, info.count, $0.baseAddress, 42)
        }
        #expect(ok == 0)
        #expect(
            Self.hex(out)
                == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test(.enabled(if: WireSecurity.unavailable == nil))
    func aesGCMMatchesAnIndependentImplementation() throws {
        let key = [UInt8](0..<32)
        let aead = try #require(dios_aead_new(key))
        defer { dios_aead_free(aead) }
        let iv: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]
        let header = Array("header-bytes-36-long".utf8) + [UInt8](repeating: UInt8(ascii: "."), count: 16)
        let payload = Array(String(repeating: "payload!", count: 3).utf8)
        var tag = [UInt8](repeating: 0, count: 16)
        // Encrypted: the payload in place, the header authenticated.
        var frame = header + payload
        #expect(dios_aead_seal(aead, iv, &frame, 36, payload.count, &tag) == 0)
        #expect(
            Self.hex(frame[36...] + tag)
                == "8c9d5963f869a3c9a08761f7f257502762066ee8965f71a405d64a0af0f4eb90944ef08523af41ca")
        #expect(dios_aead_open(aead, iv, &frame, 36, payload.count, tag) == 0)
        #expect(frame == header + payload)
        // Authenticated only: the whole frame in the clear, under the tag.
        #expect(dios_aead_seal(aead, iv, &frame, frame.count, 0, &tag) == 0)
        #expect(Self.hex(tag) == "ff4fb4f8e84a40a81048f5bf62d834dc")
        frame[40] ^= 1
        #expect(dios_aead_open(aead, iv, &frame, frame.count, 0, tag) != 0)
    }
}
