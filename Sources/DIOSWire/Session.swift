public import DIOSCore

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
    /// `configuration`'s times in nanoseconds.
    let times: SessionTimes

    @exclusivity(unchecked) public internal(set) var localEpoch: UInt32
    /// The peer's epoch, 0 until a frame from it arrives.
    @exclusivity(unchecked) public internal(set) var peerEpoch: UInt32 = 0
    /// Whether the peer has been heard in this session.
    public var isUp: Bool { peerEpoch != 0 }
    /// Until when frames from a peer that said it is leaving are dropped
    /// (`peerLeft`): while it winds down it still sends, and would otherwise
    /// start a new session with this one's next incarnation.
    @exclusivity(unchecked) var quietUntil: UInt64 = 0
    /// How long a peer that left is not heard (its `Node.leave` grace is 100 ms).
    public static let leaveQuiet: UInt64 = 1_000_000_000

    // Send side: frames [sendBase, nextSequence) are in flight.
    private let sendFrames: UnsafeMutableRawPointer
    private let sendLengths: Slots<Int>
    let sentAt: Slots<UInt64>
    @exclusivity(unchecked) var nextSequence: UInt32 = 0
    @exclusivity(unchecked) var sendBase: UInt32 = 0
    @exclusivity(unchecked) var peerCredit: UInt32
    /// Per slot, the transport frame a message was written in place in (nil:
    /// the frame is a copy in `sendFrames`). Kept until acknowledged.
    private let inPlace: Slots<TransportFrame?>
    /// Frames lent for messages being written in place, not yet sent.
    @exclusivity(unchecked) public internal(set) var lent = 0
    /// Messages written in place that the window had no room for yet, oldest
    /// first: they go before anything sent after them (`send` refuses while
    /// any wait). At most `window` are lent or waiting.
    let waiting: Slots<TransportFrame?>
    private let waitingLengths: Slots<Int>
    @exclusivity(unchecked) private var waitingHead = 0
    @exclusivity(unchecked) public internal(set) var waitingCount = 0
    /// The transport the in-place frames belong to (set when one is lent).
    @exclusivity(unchecked) var frameOwner: (any FrameTransport)? = nil

    /// Slots are indexed by sequence number masked with this (see `slot`).
    private let slotMask: UInt32

    // Receive side: [delivered, received) arrived in order; later ones may be held.
    let receiveFrames: UnsafeMutableRawPointer
    let receiveLengths: Slots<Int>  // -1: empty slot
    let receiveFlags: Slots<UInt8>
    @exclusivity(unchecked) var received: UInt32 = 0
    @exclusivity(unchecked) var delivered: UInt32 = 0
    let assembly: UnsafeMutableRawPointer
    @exclusivity(unchecked) var assembled = 0
    @exclusivity(unchecked) var assembling = false
    @exclusivity(unchecked) var messageReady = false

    @exclusivity(unchecked) var ackPending = false
    /// When the owed acknowledgement became owed; it waits `ackDelay` for a data
    /// frame to carry it, unless it is urgent (frames out of order, duplicates,
    /// a new epoch), so a request–reply exchange sends no separate ack frames.
    @exclusivity(unchecked) var ackOwedSince: UInt64 = 0
    @exclusivity(unchecked) var ackUrgent = false
    @exclusivity(unchecked) var clock: UInt64 = 0
    @exclusivity(unchecked) var lastHeard: UInt64
    @exclusivity(unchecked) var lastSent: UInt64
    @exclusivity(unchecked) var duplicateAcks = 0
    @exclusivity(unchecked) var fastRetransmit = false
    /// The retransmission timeout doubles while the oldest frame stays unacknowledged.
    @exclusivity(unchecked) var backoff: UInt64 = 1
    @exclusivity(unchecked) var epochSource: SplitMix64

    @exclusivity(unchecked) public internal(set) var counters = SessionCounters()

    /// Seals what this end sends and opens what the peer sent, when frames
    /// are protected (nil: plain frames).
    let sealer: FrameSealer?
    /// Per slot, the counter its frame was last sealed with (0: not sealed
    /// since it was written): an encrypted frame is decrypted with it before
    /// it is sealed again to be resent.
    private let sealedWith: Slots<UInt64>

    public init(
        local: InstanceID, peer: InstanceID, address: PeerAddress, configuration: SessionConfiguration,
        now: UInt64, seed: UInt64, security: WireSecurity? = nil
    ) {
        precondition(configuration.window > 0 && configuration.maxFragment > 0, "session window and frame size")
        self.local = local
        self.peer = peer
        self.address = address
        self.configuration = configuration
        self.times = SessionTimes(configuration)
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
        epochSource = SplitMix64(
            seed: seed ^ (UInt64(local.node) << 48 | UInt64(local.core) << 32) ^ UInt64(peer.node) << 16
                ^ UInt64(peer.core))
        localEpoch = 0
        sealedWith = Slots(repeating: 0, count: n)
        if let security, security.protection != .plain {
            precondition(
                configuration.frameTrailer == WireSecurity.trailerSize, "protected frames need room for a trailer")
            sealer = FrameSealer(security, local: local, peer: peer, epoch: 0)
        } else {
            sealer = nil
        }
        localEpoch = freshEpoch()
        sealer?.rekey(epoch: localEpoch)
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
    func slot(_ seq: UInt32) -> Int { Int(seq & slotMask) }

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
            sealedWith[slot] = 0
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
            length <= configuration.maxFragment
                && length <= frame.capacity - FrameHeader.size - configuration.frameTrailer,
            "message too long for one frame")
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
    public func sendLentNow(_ frame: TransportFrame, length: Int, now: UInt64, via transport: any FrameTransport)
        -> Bool
    {
        guard isUp, waitingCount == 0, hasRoomForOne, length <= configuration.maxFragment,
            length <= frame.capacity - FrameHeader.size - configuration.frameTrailer
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
        let total = protect(frame.bytes, length: FrameHeader.size + length, slot: slot)
        _ = transport.sendFrame(frame, length: total, to: address)
        recordSent(slot: slot, now: now)
        counters.messagesSent &+= 1
        counters.sentInPlace &+= 1
    }

    /// Sends the waiting in-place messages the window now has room for.
    func sendWaiting(now: UInt64) {
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
    func releaseInPlace(from: UInt32, to: UInt32, via transport: any FrameTransport) {
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
    func releaseInPlace() {
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
    private func transmit(slot: Int, sequence: UInt32, flags: UInt8, now: UInt64, via transport: any FrameTransport)
        -> Bool
    {
        let n = sendLengths[slot]
        if let frame = inPlace[slot] {
            // A device may still be reading an earlier send of it: resend later.
            guard transport.isIdle(frame) else { return false }
            unprotect(frame.bytes, length: FrameHeader.size + n, slot: slot)
            header(.data, flags: flags, length: n, sequence: sequence).encode(into: frame.bytes)
            let total = protect(frame.bytes, length: FrameHeader.size + n, slot: slot)
            _ = transport.sendFrame(frame, length: total, to: address)
        } else {
            let frame = sendFrames + slot * configuration.maxFrameSize
            unprotect(frame, length: FrameHeader.size + n, slot: slot)
            header(.data, flags: flags, length: n, sequence: sequence).encode(into: frame)
            let total = protect(frame, length: FrameHeader.size + n, slot: slot)
            _ = transport.send(UnsafeRawBufferPointer(start: frame, count: total), to: address)
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

    /// Seals a frame of `length` bytes in place when frames are protected,
    /// and returns how many bytes to send (the trailer included).
    @inline(__always)
    private func protect(_ frame: UnsafeMutableRawPointer, length: Int, slot: Int?) -> Int {
        guard let sealer else { return length }
        let used = sealer.seal(frame, length: length)
        if let slot { sealedWith[slot] = used }
        return length + WireSecurity.trailerSize
    }

    /// Before a kept frame is sealed again: its payload back to plain text.
    @inline(__always)
    private func unprotect(_ frame: UnsafeMutableRawPointer, length: Int, slot: Int) {
        guard let sealer, sealedWith[slot] != 0 else { return }
        sealer.unseal(frame, length: length, counter: sealedWith[slot])
        sealedWith[slot] = 0
    }

    func resend(slot: Int, now: UInt64, via transport: any FrameTransport) {
        let flags = frameBytes(slot).load(fromByteOffset: 4, as: UInt8.self)
        if transmit(slot: slot, sequence: sendBase, flags: flags, now: now, via: transport) {
            counters.retransmits &+= 1
        }
    }

    private func header(_ type: FrameType, flags: UInt8 = 0, length: Int = 0, sequence: UInt32 = 0) -> FrameHeader {
        FrameHeader(
            type: type, flags: flags, payloadLength: UInt16(length), source: local, destination: peer,
            sourceEpoch: localEpoch, destinationEpoch: peerEpoch, sequence: sequence, ack: received,
            credit: delivered &+ UInt32(configuration.window))
    }

    /// Sends a frame with no payload (an acknowledgement or heartbeat).
    func sendControl(_ type: FrameType, now: UInt64, via transport: any FrameTransport) {
        withUnsafeTemporaryAllocation(byteCount: FrameHeader.size + WireSecurity.trailerSize, alignment: 8) { buffer in
            header(type).encode(into: buffer.baseAddress!)
            let total = protect(buffer.baseAddress!, length: FrameHeader.size, slot: nil)
            _ = transport.send(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: total), to: address)
        }
        lastSent = now
        ackPending = false
        ackUrgent = false
        counters.controlFramesSent &+= 1
    }
}
