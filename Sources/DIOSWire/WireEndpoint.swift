public import DIOSCore

/// One instance's end of the wire: its transport and a session with every peer
/// instance it knows. The kernel instance polls it from its loop; it decodes
/// each frame's header (refusing malformed ones whole), routes the frame to its
/// session, runs the sessions' timers, and reports peers going up and down.
public final class WireEndpoint {
    public let local: InstanceID
    public let transport: any FrameTransport
    public let configuration: SessionConfiguration
    @exclusivity(unchecked) public private(set) var sessions: [Session] = []
    @exclusivity(unchecked) private var byPeer: [InstanceID: Int] = [:]
    /// The peers as words (node << 16 | core), in session order: with few
    /// peers a scan of these finds a session faster than hashing.
    @exclusivity(unchecked) private var peerWords: [UInt32] = []
    /// `sessions` again, unretained (`sessions` keeps them alive): the send
    /// path calls a session without retaining and releasing it each message.
    @exclusivity(unchecked) private var unretained: [Unmanaged<Session>] = []
    @exclusivity(unchecked) public private(set) var counters = EndpointCounters()
    /// The last malformed frame's error, for diagnostics.
    @exclusivity(unchecked) public private(set) var lastDecodeError: WireError? = nil

    /// `peers` are the other instances (on other nodes) and where they listen;
    /// `seed` must differ between incarnations of this instance (the real node
    /// draws it from the OS), since session epochs come from it. With
    /// `security`, every frame is sealed and opened with keys from the
    /// cluster's secret, and one that does not open is dropped and counted.
    public init(
        local: InstanceID, transport: any FrameTransport, peers: [InstanceID: PeerAddress],
        configuration: SessionConfiguration, now: UInt64, seed: UInt64, security: WireSecurity? = nil
    ) {
        self.local = local
        self.transport = transport
        var configuration = configuration
        configuration.maxFrameSize = min(configuration.maxFrameSize, transport.maxFrameSize)
        configuration.frameTrailer = WireSecurity.trailer(security)
        self.configuration = configuration
        for (peer, address) in peers.sorted(by: { $0.key < $1.key }) where peer != local {
            byPeer[peer] = sessions.count
            peerWords.append(UInt32(peer.node) << 16 | UInt32(peer.core))
            sessions.append(
                Session(
                    local: local, peer: peer, address: address, configuration: configuration, now: now, seed: seed,
                    security: security))
            unretained.append(Unmanaged.passUnretained(sessions[sessions.count - 1]))
        }
    }

    public func session(for peer: InstanceID) -> Session? { index(of: peer).map { sessions[$0] } }

    /// Where `peer`'s session is in `sessions`, if it has one.
    @inline(__always)
    private func index(of peer: InstanceID) -> Int? {
        guard peerWords.count <= 16 else { return byPeer[peer] }
        let word = UInt32(peer.node) << 16 | UInt32(peer.core)
        return peerWords.withUnsafeBufferPointer { words in
            for k in 0..<words.count where words[k] == word { return k }
            return nil
        }
    }

    @exclusivity(unchecked) private var holdDepth = 0

    /// Frames sent from now until the matching `sendHeld()` may leave together
    /// (one system call, or one doorbell, for the lot: see
    /// `FrameTransport.hold`). Nests; the outermost `sendHeld()` sends.
    public func hold() {
        if holdDepth == 0 { transport.hold() }
        holdDepth += 1
    }

    /// Ends a `hold()`; the outermost sends what was kept.
    public func sendHeld() {
        holdDepth -= 1
        if holdDepth == 0 { transport.flush() }
    }

    /// Sends what is kept now, staying in the hold (before waiting for an answer).
    public func sendKeptNow() {
        guard holdDepth > 0 else { return }
        transport.flush()
        transport.hold()
    }

    /// Whether a session with `peer` is established (heard from, not failed since).
    public func isReachable(_ peer: InstanceID) -> Bool {
        guard let i = index(of: peer) else { return false }
        return unretained[i]._withUnsafeGuaranteedRef { $0.isUp }
    }

    /// Queues one message for `peer` (`prefix` then `body`). False when its
    /// session's window is full now; the caller retries on a later poll.
    public func send(
        to peer: InstanceID, prefix: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, now: UInt64
    ) throws(SessionError) -> Bool {
        guard let i = index(of: peer) else { throw .unknownPeer(peer) }
        let result = unretained[i]._withUnsafeGuaranteedRef { session -> Swift.Result<Bool, SessionError> in
            do throws(SessionError) {
                return .success(try session.send(prefix: prefix, body: body, now: now, via: transport))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// A transport frame to write one message for `peer` in place (see
    /// `Session.lendFrame`).
    @inline(__always)
    public func lendFrame(for peer: InstanceID) -> FrameLoan {
        guard let i = index(of: peer) else { return .none }
        return unretained[i]._withUnsafeGuaranteedRef { $0.lendFrame(via: transport) }
    }

    /// Whether `lendFrame(for: peer)` would find room now.
    public func canLend(to peer: InstanceID) -> Bool {
        guard let i = index(of: peer) else { return false }
        return unretained[i]._withUnsafeGuaranteedRef { $0.canLend }
    }

    /// Sends a lent frame holding a message of `length` bytes after the frame
    /// header. False: not sent, the frame is still the caller's (`giveBack`).
    @inline(__always)
    public func sendLent(_ frame: TransportFrame, length: Int, to peer: InstanceID, now: UInt64) -> Bool {
        guard let i = index(of: peer) else { return false }
        return unretained[i]._withUnsafeGuaranteedRef { $0.sendLent(frame, length: length, now: now, via: transport) }
    }

    /// Returns a lent frame that was not sent.
    public func giveBack(_ frame: TransportFrame, for peer: InstanceID) {
        guard let i = index(of: peer) else { return transport.releaseFrame(frame) }
        unretained[i]._withUnsafeGuaranteedRef { $0.giveBack(frame, via: transport) }
    }

    /// While `poll` delivers a message: keeps the frame it arrived in, if
    /// `bytes` lies in it (see `FrameTransport.keepReceived`).
    @inlinable @inline(__always)
    public func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? { transport.keepReceived(bytes) }

    /// Gives back a frame `keepReceived` kept.
    @inlinable @inline(__always)
    public func releaseReceived(_ handle: OpaquePointer) { transport.releaseReceived(handle) }

    /// `peer` said it is leaving: ends its session (see `Session.peerLeft`)
    /// and tells the transport, which may stop using a link to it alone
    /// (`FrameTransport.peerLeaving`). True when the session was up: the
    /// caller reports the peer down.
    public func peerLeft(_ peer: InstanceID, now: UInt64) -> Bool {
        guard let i = index(of: peer) else { return false }
        transport.peerLeaving(sessions[i].address)
        return sessions[i].peerLeft(now: now)
    }

    /// Receives what waits, delivers messages in order through `deliver` (false:
    /// cannot take it now; offered again later), and runs the sessions' timers.
    /// Reports every change of a peer's state through `changed`. Returns the
    /// frames handled.
    ///
    /// With `timers` false only what arrived is handled: the sessions' timers
    /// (acks due, retransmission, heartbeats, failure, messages held back) wait
    /// for a poll with timers, which a caller polling in a tight loop makes
    /// every few polls.
    ///
    /// With `holdWhenReceiving`, what the sessions and `deliver` send is held
    /// (`hold()`) from the first frame that arrives until the last is handled,
    /// so a poll that finds nothing costs no hold.
    public func poll(
        now: UInt64, timers: Bool = true, holdWhenReceiving: Bool = false,
        deliver: (InstanceID, UnsafeRawBufferPointer) -> Bool, changed: (InstanceID, PeerChange) -> Void
    ) -> Int {
        var holding = false
        defer { if holding { sendHeld() } }
        let n = transport.receive { frame, _ in
            if holdWhenReceiving && !holding {
                hold()
                holding = true
            }
            counters.framesIn &+= 1
            var frame = frame
            var opened: Int? = nil
            let trailer = configuration.frameTrailer
            if trailer > 0 {
                // Only the sender's name is read before the tag checks, to
                // find the session (and so the key) the frame claims.
                guard frame.count >= FrameHeader.size + trailer else {
                    counters.malformed &+= 1
                    lastDecodeError = .truncated(needed: FrameHeader.size + trailer, have: frame.count)
                    return
                }
                let source = InstanceID(
                    node: UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 8, as: UInt16.self)),
                    core: UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 10, as: UInt16.self)))
                guard let i = index(of: source) else {
                    counters.unknownPeer &+= 1
                    return
                }
                // Opened where it arrived: the transport's receive buffer (a
                // socket's, or an mbuf) is this instance's to write until the
                // callback returns, and an encrypted payload is decrypted there.
                let result = unretained[i]._withUnsafeGuaranteedRef {
                    $0.sealer!.open(UnsafeMutableRawBufferPointer(mutating: frame))
                }
                switch result {
                case .success(let plain): frame = plain
                case .failure(.forged):
                    counters.forged &+= 1
                    return
                case .failure(.replayed):
                    counters.replayed &+= 1
                    return
                }
                opened = i
            }
            let h: FrameHeader
            do throws(WireError) { h = try FrameHeader.decode(frame) } catch {
                counters.malformed &+= 1
                lastDecodeError = error
                return
            }
            guard h.destination == local else {
                counters.misaddressed &+= 1
                return
            }
            guard let i = opened ?? index(of: h.source) else {
                counters.unknownPeer &+= 1
                return
            }
            // Unretained: `sessions` keeps it (a retain and release per frame otherwise).
            unretained[i]._withUnsafeGuaranteedRef { session in
                let wasUp = session.isUp
                let payload = UnsafeRawBufferPointer(rebasing: frame[FrameHeader.size...])
                switch session.receive(
                    h, payload: payload, now: now, via: transport, deliver: { deliver(h.source, $0) })
                {
                case .accepted:
                    if !wasUp && session.isUp { changed(h.source, .up) }
                case .stale:
                    break
                case .peerRestarted:
                    changed(h.source, .down(.restarted))
                    if session.isUp { changed(h.source, .up) }
                case .failed(let failure):
                    changed(h.source, .down(failure))
                }
            }
        }
        guard timers else { return n }
        for k in unretained.indices {
            unretained[k]._withUnsafeGuaranteedRef { session in
                let wasUp = session.isUp
                // The peer, not the session, in the closure: capturing the
                // session retained and released it on every full poll.
                let peer = session.peer
                if let failure = session.poll(now: now, via: transport, deliver: { deliver(peer, $0) }) {
                    // A peer never heard from has nothing in flight to lose: no news.
                    if wasUp { changed(peer, .down(failure)) }
                }
            }
        }
        return n
    }
}

/// Frames the endpoint refused before any session saw them.
public struct EndpointCounters: Sendable, Equatable {
    public init() {}
    public var framesIn: UInt64 = 0
    public var malformed: UInt64 = 0
    public var misaddressed: UInt64 = 0
    public var unknownPeer: UInt64 = 0
    /// Protected frames whose tag did not check (made or altered without the secret).
    public var forged: UInt64 = 0
    /// Protected frames whose counter was taken before (replayed).
    public var replayed: UInt64 = 0
}
