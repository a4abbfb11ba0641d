import DIOSCore

extension Session {
    // MARK: Timers

    /// Offers held messages again, resends frames whose acknowledgement is
    /// overdue, sends an acknowledgement or heartbeat when one is due, and
    /// declares the peer failed after `failureTimeout` of silence.
    public func poll(now: UInt64, via transport: any FrameTransport, deliver: (UnsafeRawBufferPointer) -> Bool)
        -> PeerFailure?
    {
        clock = now
        if delivered != received || messageReady {
            if let failure = deliverHeld(deliver) { return failOnly(failure, now: now) }
        }
        if waitingCount > 0 { sendWaiting(now: now) }
        if now &- lastHeard > times.failure && now > lastHeard {
            return failOnly(.timeout(after: configuration.failureTimeout), now: now)
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
            } else if now &- sentAt[slot] >= times.retransmit * backoff {
                resend(slot: slot, now: now, via: transport)
                backoff = min(backoff * 2, 64)
            }
        }
        if ackPending && (ackUrgent || now &- ackOwedSince >= times.ackDelay) {
            sendControl(.ack, now: now, via: transport)
        } else if !ackPending && now &- lastSent >= times.heartbeat {
            sendControl(.heartbeat, now: now, via: transport)
        }
        return nil
    }

    func oweAck(urgent: Bool) {
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

    func fail(_ failure: PeerFailure, now: UInt64) -> Outcome {
        .failed(failOnly(failure, now: now))
    }

    private func failOnly(_ failure: PeerFailure, now: UInt64) -> PeerFailure {
        reset(now: now)
        return failure
    }

    /// Forgets everything in flight and starts a new incarnation: a new local
    /// epoch, the peer's unknown until it answers.
    func reset(now: UInt64) {
        counters.resets &+= 1
        lastHeard = now
        localEpoch = freshEpoch()
        sealer?.rekey(epoch: localEpoch)
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

    func freshEpoch() -> UInt32 {
        var e: UInt32
        repeat { e = UInt32(truncatingIfNeeded: epochSource.next()) } while e == 0 || e == localEpoch
        return e
    }

    /// Serial-number distance `a - b` (RFC 1982): positive when `a` is after `b`.
    @inline(__always)
    static func distance(_ a: UInt32, _ b: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }
}
