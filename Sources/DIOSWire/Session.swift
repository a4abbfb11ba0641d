public import DIOSCore

/// How a session numbers, paces and gives up.
public struct SessionConfiguration: Sendable, Equatable {
    /// Frames in flight (sent, not yet acknowledged), and frames a receiver holds
    /// that it could not deliver yet.
    public var window: Int
    /// A frame not acknowledged this long after it was sent is sent again.
    public var retransmitTimeout: UInt64
    /// A session that sent nothing for this long sends a heartbeat.
    public var heartbeatInterval: UInt64
    /// A peer heard nothing from for this long is declared failed.
    public var failureTimeout: UInt64
    /// The largest frame the transport carries (header included).
    public var maxFrameSize: Int
    /// The largest message a session carries (fragmented into frames).
    public var maxMessageSize: Int
    /// How long an acknowledgement waits for a data frame to carry it.
    public var ackDelay: UInt64

    public init(
        window: Int = 128, retransmitTimeout: UInt64 = 2_000_000, heartbeatInterval: UInt64 = 20_000_000,
        failureTimeout: UInt64 = 1_000_000_000, maxFrameSize: Int = 1472, maxMessageSize: Int = 65_536,
        ackDelay: UInt64 = 50_000
    ) {
        self.ackDelay = ackDelay
        self.window = window
        self.retransmitTimeout = retransmitTimeout
        self.heartbeatInterval = heartbeatInterval
        self.failureTimeout = failureTimeout
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
    }

    /// Payload bytes one frame carries.
    public var maxFragment: Int { maxFrameSize - FrameHeader.size }
}

/// Why a peer was declared failed.
public enum PeerFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing heard from it within the failure timeout.
    case timeout(milliseconds: UInt64)
    /// It came back as a new incarnation (restarted, or it declared us failed):
    /// whatever was in flight in the old session is gone.
    case restarted
    /// It broke the protocol (a message over the size limit, a fragment out of place).
    case protocolViolation(String)
    /// It said it was stopping (`RemoteMessage.leaving`).
    case left

    public var description: String {
        switch self {
        case .timeout(let ms): "no answer within \(ms) ms"
        case .restarted: "the peer began a new session (it restarted, or had given this instance up)"
        case .protocolViolation(let s): "protocol violation: \(s)"
        case .left: "the peer stopped"
        }
    }
}

/// Why a message could not be queued.
public enum SessionError: Error, Equatable, Sendable {
    /// Larger than the configured maximum message size.
    case messageTooLarge(Int, maximum: Int)
    /// No such peer in the endpoint's table.
    case unknownPeer(InstanceID)
}

/// A change in a peer's reachability, reported by the endpoint.
public enum PeerChange: Equatable, Sendable {
    /// The first frame of a new session arrived: the peer is reachable.
    case up
    /// The session failed; every message in flight in it is lost, and whatever
    /// depended on the peer must be told.
    case down(PeerFailure)
}

/// One end of a reliable, ordered message session between two instances.
///
/// Messages are fragmented into numbered frames. The sender keeps each frame
/// until it is acknowledged, resends it after `retransmitTimeout`, and never
/// has more than `window` frames in flight or sends beyond the receiver's
/// credit. The receiver drops duplicates, holds frames that arrive early, and
/// delivers whole messages in order; a message the consumer cannot take yet
/// (a full ring) stays held and is offered again on the next poll, and the
/// credit it advertises stops the sender meanwhile. Nothing is ever dropped
/// silently: when the peer stays silent past `failureTimeout` (or restarts),
/// the session is declared failed and starts over with a new epoch.
///
/// All memory is allocated at creation: sending, receiving and delivering
/// allocate nothing. A session belongs to one instance's thread, so its state
/// is not checked for exclusive access at run time (the checks cost more than
/// a frame's header).
public final class Session {
    public let local: InstanceID
    public let peer: InstanceID
    public let address: PeerAddress
    public let configuration: SessionConfiguration

    @exclusivity(unchecked) public private(set) var localEpoch: UInt32
    /// The peer's epoch, 0 until a frame from it arrives.
    @exclusivity(unchecked) public private(set) var peerEpoch: UInt32 = 0
    /// Whether the peer has been heard in this session.
    public var isUp: Bool { peerEpoch != 0 }
    /// Until when frames from a peer that said it is leaving are dropped
    /// (`peerLeft`): while it winds down it still sends, and would otherwise
    /// start a new session with this one's next incarnation.
    @exclusivity(unchecked) private var quietUntil: UInt64 = 0
    /// How long a peer that left is not heard (its `Node.leave` grace is 100 ms).
    public static let leaveQuiet: UInt64 = 1_000_000_000

    // Send side: frames [sendBase, nextSequence) are in flight.
    private let sendFrames: UnsafeMutableRawPointer
    private let sendLengths: Slots<Int>
    private let sentAt: Slots<UInt64>
    @exclusivity(unchecked) private var nextSequence: UInt32 = 0
    @exclusivity(unchecked) private var sendBase: UInt32 = 0
    @exclusivity(unchecked) private var peerCredit: UInt32
    /// Per slot, the transport frame a message was written in place in (nil:
    /// the frame is a copy in `sendFrames`). Kept until acknowledged.
    private let inPlace: Slots<TransportFrame?>
    /// Frames lent for messages being written in place, not yet sent.
    @exclusivity(unchecked) public private(set) var lent = 0
    /// Messages written in place that the window had no room for yet, oldest
    /// first: they go before anything sent after them (`send` refuses while
    /// any wait). At most `window` are lent or waiting.
    private let waiting: Slots<TransportFrame?>
    private let waitingLengths: Slots<Int>
    @exclusivity(unchecked) private var waitingHead = 0
    @exclusivity(unchecked) public private(set) var waitingCount = 0
    /// The transport the in-place frames belong to (set when one is lent).
    @exclusivity(unchecked) private var frameOwner: (any FrameTransport)? = nil

    /// Slots are indexed by sequence number masked with this (see `slot`).
    private let slotMask: UInt32

    // Receive side: [delivered, received) arrived in order; later ones may be held.
    private let receiveFrames: UnsafeMutableRawPointer
    private let receiveLengths: Slots<Int>  // -1: empty slot
    private let receiveFlags: Slots<UInt8>
    @exclusivity(unchecked) private var received: UInt32 = 0
    @exclusivity(unchecked) private var delivered: UInt32 = 0
    private let assembly: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var assembled = 0
    @exclusivity(unchecked) private var assembling = false
    @exclusivity(unchecked) private var messageReady = false

    @exclusivity(unchecked) var ackPending = false
    /// When the owed acknowledgement became owed; it waits `ackDelay` for a data
    /// frame to carry it, unless it is urgent (frames out of order, duplicates,
    /// a new epoch), so a request–reply exchange sends no separate ack frames.
    @exclusivity(unchecked) private var ackOwedSince: UInt64 = 0
    @exclusivity(unchecked) private var ackUrgent = false
    @exclusivity(unchecked) private var clock: UInt64 = 0
    @exclusivity(unchecked) private var lastHeard: UInt64
    @exclusivity(unchecked) private var lastSent: UInt64
    @exclusivity(unchecked) private var duplicateAcks = 0
    @exclusivity(unchecked) private var fastRetransmit = false
    /// The retransmission timeout doubles while the oldest frame stays unacknowledged.
    @exclusivity(unchecked) private var backoff: UInt64 = 1
    @exclusivity(unchecked) private var epochSource: SplitMix64

    @exclusivity(unchecked) public private(set) var counters = SessionCounters()

    public init(
        local: InstanceID, peer: InstanceID, address: PeerAddress, configuration: SessionConfiguration,
        now: UInt64, seed: UInt64
    ) {
        precondition(configuration.window > 0 && configuration.maxFragment > 0, "session window and frame size")
        self.local = local
        self.peer = peer
        self.address = address
        self.configuration = configuration
        let w = configuration.window
        // Slots for the window, rounded up to a power of two so that a
        // sequence number's slot is a mask, not a division.
        let n = 1 << (Int.bitWidth - (w - 1).leadingZeroBitCount)
        slotMask = UInt32(n - 1)
        sendFrames = .allocate(byteCount: n * configuration.maxFrameSize, alignment: 64)
        receiveFrames = .allocate(byteCount: n * configuration.maxFragment, alignment: 64)
        assembly = .allocate(byteCount: configuration.maxMessageSize, alignment: 64)
        sendLengths = Slots(repeating: 0, count: n)
        sentAt = Slots(repeating: 0, count: n)
        inPlace = Slots(repeating: nil, count: n)
        waiting = Slots(repeating: nil, count: n)
        waitingLengths = Slots(repeating: 0, count: n)
        receiveLengths = Slots(repeating: -1, count: n)
        receiveFlags = Slots(repeating: 0, count: n)
        peerCredit = UInt32(w)
        lastHeard = now
        lastSent = 0
        epochSource = SplitMix64(seed: seed ^ (UInt64(local.node) << 48 | UInt64(local.core) << 32) ^ UInt64(peer.node) << 16 ^ UInt64(peer.core))
        localEpoch = 0
        localEpoch = freshEpoch()
    }

    deinit {
        releaseInPlace()
        sendFrames.deallocate()
        receiveFrames.deallocate()
        assembly.deallocate()
    }

    /// Frames sent and not yet acknowledged.
    public var inFlight: Int { Int(nextSequence &- sendBase) }

    /// The slot of sequence number `seq` (of a frame sent or received).
    @inline(__always)
    private func slot(_ seq: UInt32) -> Int { Int(seq & slotMask) }

    // MARK: Sending

    /// Queues one message (`prefix` then `body`, fragmented as needed) and sends
    /// its frames. Returns false, queuing nothing, when the window or the
    /// peer's credit has no room for all of them now.
    public func send(
        prefix: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, now: UInt64, via transport: any FrameTransport
    ) throws(SessionError) -> Bool {
        let total = prefix.count + body.count
        guard total <= configuration.maxMessageSize else {
            throw .messageTooLarge(total, maximum: configuration.maxMessageSize)
        }
        let chunk = configuration.maxFragment
        let fragments = max(1, (total + chunk - 1) / chunk)
        guard waitingCount == 0, inFlight + fragments <= configuration.window,
            Self.distance(nextSequence &+ UInt32(fragments), peerCredit) <= 0
        else { return false }
        var offset = 0
        for f in 0..<fragments {
            let n = min(chunk, total - offset)
            let seq = nextSequence
            let slot = slot(seq)
            precondition(inPlace[slot] == nil, "an in-place frame left in a free slot")
            let frame = sendFrames + slot * configuration.maxFrameSize
            let payload = frame + FrameHeader.size
            // Gather [offset, offset + n) of prefix ++ body.
            var copied = 0
            if offset < prefix.count {
                let k = min(n, prefix.count - offset)
                payload.copyMemory(from: prefix.baseAddress! + offset, byteCount: k)
                copied = k
            }
            if copied < n {
                let from = offset + copied - prefix.count
                payload.advanced(by: copied).copyMemory(from: body.baseAddress! + from, byteCount: n - copied)
            }
            var flags: UInt8 = 0
            if f == 0 { flags |= FrameHeader.firstFragment }
            if f == fragments - 1 { flags |= FrameHeader.lastFragment }
            sendLengths[slot] = n
            nextSequence &+= 1
            transmit(slot: slot, sequence: seq, flags: flags, now: now, via: transport)
            offset += n
        }
        counters.messagesSent &+= 1
        return true
    }

    // MARK: Sending in place

    /// Lends a transport frame for one message of up to `maxFragment` bytes to
    /// be written in place (at `bytes + FrameHeader.size`), then sent with
    /// `sendLent`: `.full` while `window` frames are lent or waiting for room
    /// (wait: `canLend`), `.none` when the transport copies, has no frame free,
    /// or the peer has not answered yet (send a copy instead).
    public func lendFrame(via transport: any FrameTransport) -> FrameLoan {
        guard isUp else { return .none }
        guard lent + waitingCount < configuration.window else { return .full }
        guard let frame = transport.allocateFrame() else { return .none }
        if frameOwner.map({ $0 !== transport }) ?? true { frameOwner = transport }  // no retain and release per loan
        lent += 1
        return .lent(frame)
    }

    /// Whether `lendFrame` would find room now.
    public var canLend: Bool { isUp && lent + waitingCount < configuration.window }

    /// Sends a lent frame holding one whole message of `length` bytes after the
    /// header — now, or once the window has room, before anything sent after
    /// it — and keeps it (not a copy) until acknowledged. False when the session
    /// started over since the loan and the peer has not answered yet: the frame
    /// is then still the caller's, to copy out and `giveBack`.
    public func sendLent(_ frame: TransportFrame, length: Int, now: UInt64, via transport: any FrameTransport) -> Bool {
        precondition(
            length <= configuration.maxFragment && length <= frame.capacity - FrameHeader.size, "message too long for one frame")
        guard isUp else { return false }
        lent -= 1
        if waitingCount == 0 && hasRoomForOne {
            transmitLent(frame, length: length, now: now, via: transport)
        } else {
            let k = (waitingHead + waitingCount) & Int(slotMask)
            waiting[k] = frame
            waitingLengths[k] = length
            waitingCount += 1
        }
        return true
    }

    /// `sendLent`'s common case, in one pass: the session is up, no message
    /// waits, and the window and the peer's credit have room, so the frame
    /// takes the next sequence number and leaves now. A frame just lent has
    /// never been sent, so no device can still be reading it (`transmit`'s
    /// `isIdle` check is for resends). False for anything else, changing
    /// nothing: the caller then calls `sendLent`, which decides.
    public func sendLentNow(_ frame: TransportFrame, length: Int, now: UInt64, via transport: any FrameTransport) -> Bool {
        guard isUp, waitingCount == 0, hasRoomForOne, length <= configuration.maxFragment,
            length <= frame.capacity - FrameHeader.size
        else { return false }
        lent -= 1
        transmitLent(frame, length: length, now: now, via: transport)
        return true
    }

    /// Returns a lent frame that was not sent.
    public func giveBack(_ frame: TransportFrame, via transport: any FrameTransport) {
        lent -= 1
        transport.releaseFrame(frame)
    }

    private var hasRoomForOne: Bool {
        inFlight < configuration.window && Self.distance(nextSequence &+ 1, peerCredit) <= 0
    }

    /// Gives a lent frame the next sequence number and slot, and sends it.
    /// The frame has never been sent (it comes from `sendLent` or the waiting
    /// queue), so no device can still be reading it: `transmit`'s `isIdle`
    /// check is for resends. Inlined into `sendLentNow`, the stream fast path.
    @inline(__always)
    private func transmitLent(_ frame: TransportFrame, length: Int, now: UInt64, via transport: any FrameTransport) {
        let seq = nextSequence
        let slot = slot(seq)
        precondition(inPlace[slot] == nil, "an in-place frame left in a free slot")
        inPlace[slot] = frame
        sendLengths[slot] = length
        nextSequence &+= 1
        header(.data, flags: FrameHeader.firstFragment | FrameHeader.lastFragment, length: length, sequence: seq)
            .encode(into: frame.bytes)
        _ = transport.sendFrame(frame, length: FrameHeader.size + length, to: address)
        recordSent(slot: slot, now: now)
        counters.messagesSent &+= 1
        counters.sentInPlace &+= 1
    }

    /// Sends the waiting in-place messages the window now has room for.
    private func sendWaiting(now: UInt64) {
        guard waitingCount > 0, let transport = frameOwner else { return }
        while waitingCount > 0 && hasRoomForOne {
            let frame = waiting[waitingHead]!
            waiting[waitingHead] = nil
            let length = waitingLengths[waitingHead]
            waitingHead = (waitingHead + 1) & Int(slotMask)
            waitingCount -= 1
            transmitLent(frame, length: length, now: now, via: transport)
        }
    }

    /// Releases the in-place frames of slots `[from, to)`, acknowledged or abandoned.
    @inline(__always)
    private func releaseInPlace(from: UInt32, to: UInt32, via transport: any FrameTransport) {
        assert(frameOwner.map { $0 === transport } ?? true, "frames released to a transport they were not lent from")
        var seq = from
        while seq != to {
            let slot = slot(seq)
            if let frame = inPlace[slot] {
                transport.releaseFrame(frame)
                inPlace[slot] = nil
            }
            seq &+= 1
        }
    }

    /// Releases every frame in flight and every one waiting to be sent.
    private func releaseInPlace() {
        for slot in 0..<inPlace.count {
            if let frame = inPlace[slot] { frameOwner?.releaseFrame(frame) }
            inPlace[slot] = nil
            if let frame = waiting[slot] { frameOwner?.releaseFrame(frame) }
            waiting[slot] = nil
        }
        waitingHead = 0
        waitingCount = 0
    }

    /// Where slot `slot`'s frame is: in a transport frame, or the session's copy.
    @inline(__always)
    private func frameBytes(_ slot: Int) -> UnsafeMutableRawPointer {
        inPlace[slot]?.bytes ?? sendFrames + slot * configuration.maxFrameSize
    }

    @discardableResult
    private func transmit(slot: Int, sequence: UInt32, flags: UInt8, now: UInt64, via transport: any FrameTransport) -> Bool {
        let n = sendLengths[slot]
        if let frame = inPlace[slot] {
            // A device may still be reading an earlier send of it: resend later.
            guard transport.isIdle(frame) else { return false }
            header(.data, flags: flags, length: n, sequence: sequence).encode(into: frame.bytes)
            _ = transport.sendFrame(frame, length: FrameHeader.size + n, to: address)
        } else {
            let frame = sendFrames + slot * configuration.maxFrameSize
            header(.data, flags: flags, length: n, sequence: sequence).encode(into: frame)
            _ = transport.send(UnsafeRawBufferPointer(start: frame, count: FrameHeader.size + n), to: address)
        }
        recordSent(slot: slot, now: now)
        return true
    }

    /// A data frame in slot `slot` left at `now`: its resend timer starts, and
    /// the acknowledgement it carried is no longer owed.
    @inline(__always)
    private func recordSent(slot: Int, now: UInt64) {
        sentAt[slot] = now
        lastSent = now
        ackPending = false
        ackUrgent = false
        counters.framesSent &+= 1
    }

    private func resend(slot: Int, now: UInt64, via transport: any FrameTransport) {
        let flags = frameBytes(slot).load(fromByteOffset: 4, as: UInt8.self)
        if transmit(slot: slot, sequence: sendBase, flags: flags, now: now, via: transport) { counters.retransmits &+= 1 }
    }

    private func header(_ type: FrameType, flags: UInt8 = 0, length: Int = 0, sequence: UInt32 = 0) -> FrameHeader {
        FrameHeader(
            type: type, flags: flags, payloadLength: UInt16(length), source: local, destination: peer,
            sourceEpoch: localEpoch, destinationEpoch: peerEpoch, sequence: sequence, ack: received,
            credit: delivered &+ UInt32(configuration.window))
    }

    /// Sends a frame with no payload (an acknowledgement or heartbeat).
    func sendControl(_ type: FrameType, now: UInt64, via transport: any FrameTransport) {
        withUnsafeTemporaryAllocation(byteCount: FrameHeader.size, alignment: 8) { buffer in
            header(type).encode(into: buffer.baseAddress!)
            _ = transport.send(UnsafeRawBufferPointer(buffer), to: address)
        }
        lastSent = now
        ackPending = false
        ackUrgent = false
        counters.controlFramesSent &+= 1
    }

    // MARK: Receiving

    /// What became of a frame handed to `receive`.
    public enum Outcome: Equatable, Sendable {
        case accepted
        /// Addressed to an earlier incarnation of this end: dropped.
        case stale
        /// The peer is a new incarnation: the old session failed. The frame was
        /// then taken as the first of the new session.
        case peerRestarted
        case failed(PeerFailure)
    }

    /// Takes one frame from the peer: acknowledgements free the window, data is
    /// held or delivered in order through `deliver` (which returns false when it
    /// cannot take the message now; the message is then offered again later).
    ///
    /// `transport` is the one frames are lent from (`lendFrame`): the
    /// acknowledged ones go back to it. (Passed rather than read from
    /// `frameOwner`, a call through which retains and releases the transport.)
    public func receive(
        _ h: FrameHeader, payload: UnsafeRawBufferPointer, now: UInt64, via transport: any FrameTransport,
        deliver: (UnsafeRawBufferPointer) -> Bool
    ) -> Outcome {
        clock = now
        if h.destinationEpoch != 0 && h.destinationEpoch != localEpoch {
            counters.staleFrames &+= 1
            oweAck(urgent: true)  // our heartbeat/ack tells the peer our epoch
            return .stale
        }
        if _slowPath(quietUntil != 0) {
            if now < quietUntil {
                counters.staleFrames &+= 1
                return .stale
            }
            quietUntil = 0
        }
        var outcome = Outcome.accepted
        if peerEpoch != h.sourceEpoch {
            if peerEpoch != 0 {
                reset(now: now)
                outcome = .peerRestarted
                // Frames of the new incarnation name our old epoch only if sent
                // before it learnt ours; ours is new now, so take only unaddressed ones.
                guard h.destinationEpoch == 0 else {
                    oweAck(urgent: true)
                    return outcome
                }
            }
            peerEpoch = h.sourceEpoch
            oweAck(urgent: true)
        }
        lastHeard = now
        // Acknowledgement and credit.
        if Self.distance(h.ack, sendBase) > 0 && Self.distance(h.ack, nextSequence) <= 0 {
            releaseInPlace(from: sendBase, to: h.ack, via: transport)
            sendBase = h.ack
            duplicateAcks = 0
            backoff = 1
        } else if h.ack == sendBase && inFlight > 0 && h.type == .ack && h.credit == peerCredit {
            // The peer holds frames after a hole at `sendBase`: after three such
            // acknowledgements, resend the missing frame without waiting for the timer.
            // One that moves the credit was sent because the peer's task read
            // messages, not because a frame came after a hole (a hole holds the
            // credit still), so it is no duplicate.
            duplicateAcks += 1
            if duplicateAcks == 3 { fastRetransmit = true }
        }
        if Self.distance(h.credit, peerCredit) > 0 { peerCredit = h.credit }
        if waitingCount > 0 { sendWaiting(now: now) }
        guard h.type == .data else {
            if h.type == .heartbeat { oweAck(urgent: false) }
            return outcome
        }
        counters.framesReceived &+= 1
        oweAck(urgent: false)
        let s = h.sequence
        if Self.distance(s, received) < 0 {
            counters.duplicates &+= 1
            oweAck(urgent: true)  // our acknowledgement may have been lost
            return outcome
        }
        guard Self.distance(s, delivered) < configuration.window else {
            counters.beyondCredit &+= 1
            return outcome
        }
        guard payload.count <= configuration.maxFragment else {
            return fail(.protocolViolation("a fragment of \(payload.count) bytes"), now: now)
        }
        // The common case: the next frame, nothing held: deliver from the frame itself.
        if s == delivered && received == delivered && !messageReady {
            switch take(payload, flags: h.flags, deliver: deliver) {
            case .consumed:
                delivered &+= 1
                received &+= 1
                advanceReceived()
                if delivered != received || messageReady, let failure = deliverHeld(deliver) { return fail(failure, now: now) }
                return outcome
            case .refused:
                break  // hold it below
            case .violation(let why):
                return fail(.protocolViolation(why), now: now)
            }
        }
        let slot = slot(s)
        if receiveLengths[slot] >= 0 {
            counters.duplicates &+= 1
            return outcome
        }
        if s != received { oweAck(urgent: true) }  // a hole: tell the sender at once
        (receiveFrames + slot * configuration.maxFragment).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        receiveLengths[slot] = payload.count
        receiveFlags[slot] = h.flags
        advanceReceived()
        if let failure = deliverHeld(deliver) { return fail(failure, now: now) }
        return outcome
    }

    /// Moves `received` over frames held in order behind it.
    @inline(__always)
    private func advanceReceived() {
        while Self.distance(received, delivered) < configuration.window
            && receiveLengths[slot(received)] >= 0
        {
            received &+= 1
        }
    }

    private enum Take { case consumed, refused, violation(String) }

    /// Passes one in-order fragment on: a whole message straight to `deliver`,
    /// a part into the assembly buffer.
    @inline(__always)
    private func take(_ payload: UnsafeRawBufferPointer, flags: UInt8, deliver: (UnsafeRawBufferPointer) -> Bool) -> Take {
        let first = flags & FrameHeader.firstFragment != 0
        let last = flags & FrameHeader.lastFragment != 0
        if first && last && !assembling {
            guard deliver(payload) else { return .refused }
            counters.messagesDelivered &+= 1
            return .consumed
        }
        if first {
            if assembling { return .violation("a message started inside another") }
            assembling = true
            assembled = 0
        } else if !assembling {
            return .violation("a continuation fragment outside a message")
        }
        guard assembled + payload.count <= configuration.maxMessageSize else {
            return .violation("a message over \(configuration.maxMessageSize) bytes")
        }
        if payload.count > 0 {
            (assembly + assembled).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        assembled += payload.count
        if last {
            messageReady = true
            offerAssembled(deliver)
        }
        return .consumed
    }

    private func offerAssembled(_ deliver: (UnsafeRawBufferPointer) -> Bool) {
        guard deliver(UnsafeRawBufferPointer(start: assembly, count: assembled)) else { return }
        counters.messagesDelivered &+= 1
        messageReady = false
        assembling = false
        assembled = 0
    }

    /// Delivers held frames in order until one is refused. Returns a failure if
    /// the held frames break the protocol.
    private func deliverHeld(_ deliver: (UnsafeRawBufferPointer) -> Bool) -> PeerFailure? {
        if messageReady {
            offerAssembled(deliver)
            if messageReady { return nil }
        }
        while delivered != received {
            let slot = slot(delivered)
            let payload = UnsafeRawBufferPointer(
                start: receiveFrames + slot * configuration.maxFragment, count: receiveLengths[slot])
            switch take(payload, flags: receiveFlags[slot], deliver: deliver) {
            case .refused:
                return nil
            case .violation(let why):
                return .protocolViolation(why)
            case .consumed:
                receiveLengths[slot] = -1
                delivered &+= 1
                oweAck(urgent: false)  // the credit moved
                if messageReady { return nil }
            }
        }
        return nil
    }

    // MARK: Timers

    /// Offers held messages again, resends frames whose acknowledgement is
    /// overdue, sends an acknowledgement or heartbeat when one is due, and
    /// declares the peer failed after `failureTimeout` of silence.
    public func poll(now: UInt64, via transport: any FrameTransport, deliver: (UnsafeRawBufferPointer) -> Bool) -> PeerFailure? {
        clock = now
        if delivered != received || messageReady {
            if let failure = deliverHeld(deliver) { return failOnly(failure, now: now) }
        }
        if waitingCount > 0 { sendWaiting(now: now) }
        if now &- lastHeard > configuration.failureTimeout && now > lastHeard {
            return failOnly(.timeout(milliseconds: configuration.failureTimeout / 1_000_000), now: now)
        }
        // Only the oldest frame is resent: the receiver holds what came after a
        // hole, so its acknowledgement then jumps to the next hole (if any).
        if inFlight > 0 {
            let slot = slot(sendBase)
            if fastRetransmit {
                fastRetransmit = false
                duplicateAcks = 0
                resend(slot: slot, now: now, via: transport)
                counters.fastRetransmits &+= 1
            } else if now &- sentAt[slot] >= configuration.retransmitTimeout * backoff {
                resend(slot: slot, now: now, via: transport)
                backoff = min(backoff * 2, 64)
            }
        }
        if ackPending && (ackUrgent || now &- ackOwedSince >= configuration.ackDelay) {
            sendControl(.ack, now: now, via: transport)
        } else if !ackPending && now &- lastSent >= configuration.heartbeatInterval {
            sendControl(.heartbeat, now: now, via: transport)
        }
        return nil
    }

    private func oweAck(urgent: Bool) {
        if !ackPending {
            ackPending = true
            ackOwedSince = clock
        }
        if urgent { ackUrgent = true }
    }

    /// The peer said it is leaving: the session ends now (what was in flight
    /// is dropped), and nothing from the peer is taken for `leaveQuiet`; after
    /// that a new incarnation of it starts a session as usual. True when the
    /// session was up.
    public func peerLeft(now: UInt64) -> Bool {
        guard isUp else { return false }
        reset(now: now)
        quietUntil = max(now &+ Self.leaveQuiet, 1)
        ackPending = false  // nobody to tell
        ackUrgent = false
        return true
    }

    // MARK: Failure

    private func fail(_ failure: PeerFailure, now: UInt64) -> Outcome {
        .failed(failOnly(failure, now: now))
    }

    private func failOnly(_ failure: PeerFailure, now: UInt64) -> PeerFailure {
        reset(now: now)
        return failure
    }

    /// Forgets everything in flight and starts a new incarnation: a new local
    /// epoch, the peer's unknown until it answers.
    private func reset(now: UInt64) {
        counters.resets &+= 1
        lastHeard = now
        localEpoch = freshEpoch()
        peerEpoch = 0
        releaseInPlace()  // frames in flight or waiting are abandoned (lent ones stay their writers')
        nextSequence = 0
        sendBase = 0
        peerCredit = UInt32(configuration.window)
        duplicateAcks = 0
        fastRetransmit = false
        backoff = 1
        received = 0
        delivered = 0
        for i in 0..<receiveLengths.count { receiveLengths[i] = -1 }
        assembling = false
        messageReady = false
        assembled = 0
        oweAck(urgent: true)
    }

    private func freshEpoch() -> UInt32 {
        var e: UInt32
        repeat { e = UInt32(truncatingIfNeeded: epochSource.next()) } while e == 0 || e == localEpoch
        return e
    }

    /// Serial-number distance `a - b` (RFC 1982): positive when `a` is after `b`.
    @inline(__always)
    static func distance(_ a: UInt32, _ b: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }
}

/// What `Session.lendFrame` gives.
public enum FrameLoan: Equatable, Sendable {
    case lent(TransportFrame)
    /// As many frames as the window holds are lent or waiting: wait for room.
    case full
    /// None to lend (the transport copies, none is free, or the peer has not
    /// answered yet): send a copy.
    case none
}

/// A session's running totals (for `dios status` and the tests).
public struct SessionCounters: Sendable, Equatable {
    public var messagesSent: UInt64 = 0
    public var messagesDelivered: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var framesReceived: UInt64 = 0
    public var controlFramesSent: UInt64 = 0
    public var retransmits: UInt64 = 0
    /// Of `retransmits`, those sent on three duplicate acknowledgements
    /// rather than on the timer.
    public var fastRetransmits: UInt64 = 0
    /// Messages sent from the transport frame they were written in (no copy).
    public var sentInPlace: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var beyondCredit: UInt64 = 0
    public var staleFrames: UInt64 = 0
    public var resets: UInt64 = 0
}

/// A small, fast, seedable generator (SplitMix64): epochs here, fault decisions
/// in the fault stage. Deterministic for a seed.
public struct SplitMix64: Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// A fixed run of slots in memory the session owns, indexed by `Session.slot`.
/// A class's `Array` property re-checks its uniqueness (a runtime call) on every
/// write, several times per frame; here a write is a store. Noncopyable: the
/// session holds it and frees it once, when it goes.
struct Slots<Element>: ~Copyable {
    private let base: UnsafeMutablePointer<Element>
    let count: Int

    init(repeating value: Element, count: Int) {
        base = .allocate(capacity: count)
        base.initialize(repeating: value, count: count)
        self.count = count
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    subscript(i: Int) -> Element {
        @inline(__always) get {
            precondition(i >= 0 && i < count, "slot \(i) out of range")
            return base[i]
        }
        @inline(__always) nonmutating set {
            precondition(i >= 0 && i < count, "slot \(i) out of range")
            base[i] = newValue
        }
    }
}
