import DIOSCore

extension Session {
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
                if delivered != received || messageReady, let failure = deliverHeld(deliver) {
                    return fail(failure, now: now)
                }
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
        (receiveFrames + slot * configuration.maxFragment).copyMemory(
            from: payload.baseAddress!, byteCount: payload.count)
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
    private func take(_ payload: UnsafeRawBufferPointer, flags: UInt8, deliver: (UnsafeRawBufferPointer) -> Bool)
        -> Take
    {
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
    func deliverHeld(_ deliver: (UnsafeRawBufferPointer) -> Bool) -> PeerFailure? {
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
}
