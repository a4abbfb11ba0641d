import CLinux
import DIOSCore
import DIOSMemory
import DIOSWire

// Writing in place: a message for another node written straight into the transport frame that carries it.
extension KernelInstance {
    /// A transport frame for `beginWrite` on the stream record `r` (read on another
    /// node) to write a `size`-byte message in, so it leaves from where the task
    /// wrote it. `.none` — the message then goes through the ring and is copied
    /// into a frame — when the transport copies anyway (kernel sockets), the
    /// message needs more than one frame, messages wait in the ring ahead of it
    /// (they go first), or the session has no answer from the peer yet.
    ///
    /// `.full`: the session has as many messages written in place lent or
    /// waiting as its window holds; the writer waits (`.wouldBlock`) until it
    /// drains (`wakeFrameWaiters`) rather than fall back to the ring, so a
    /// stream that streams keeps writing in place.
    ///
    /// The session is the one the record keeps (`remoteSession`), asked
    /// directly. Inlined, in the stream fast path too (`lendFrameNow`).
    @inline(__always)
    func lendFrame(_ r: UnsafeMutablePointer<ObjectRecord>, _ ring: StreamRing, size: Int) -> FrameLoan {
        guard writesInPlace, let session = r.pointee.remoteSession, r.pointee.remoteFailure == nil, let wireRef,
            !ring.hasMessage()
        else { return .none }
        return wireRef._withUnsafeGuaranteedRef { wire in
            session._withUnsafeGuaranteedRef { s -> FrameLoan in
                guard RemoteMessage.streamDataPrefix + size <= s.configuration.maxFragment else { return .none }
                return s.lendFrame(via: wire.transport)
            }
        }
    }

    /// Stream records whose writer waits for its session to lend frames again.
    func waitForFrame(_ object: ObjectID) {
        guard !objects.records[Int(object.index)].waitsForFrame else { return }  // listed once
        objects.records[Int(object.index)].waitsForFrame = true
        frameWaiters.append(object)
    }

    /// Makes writable again the streams whose session can lend frames now (or
    /// that are gone or failed: their writers learn why from `beginWrite`).
    func wakeFrameWaiters(_ wire: WireEndpoint) {
        var k = 0
        while k < frameWaiters.count {
            let object = frameWaiters[k]
            let i = Int(object.index)
            if objects.exists(object) && objects.records[i].remoteFailure == nil
                && !wire.canLend(to: objects.records[i].remotePeer)
            {
                k += 1
                continue
            }
            if objects.exists(object) {
                objects.records[i].waitsForFrame = false
                markDirty(object)
            }
            frameWaiters.swapAt(k, frameWaiters.count - 1)
            frameWaiters.removeLast()
        }
    }

    /// `endWrite` of a message written in place: puts the stream's prefix in
    /// front of it and sends the frame. When the session cannot take it now (it
    /// started over since `beginWrite`), the message is copied into the ring and
    /// goes like any other. False when the peer failed since `beginWrite`.
    @inline(never)
    func sendLentFrame(_ i: Int, _ grant: IOGrant, length: Int) -> Bool {
        guard let frame = objects.records[i].lentFrame, let wireRef else { return false }
        objects.records[i].lentFrame = nil
        let peer = objects.records[i].remotePeer
        return wireRef._withUnsafeGuaranteedRef { wire -> Bool in
            guard objects.records[i].remoteFailure == nil, let ring = objects.records[i].ring else {
                wire.giveBack(frame, for: peer)
                return false
            }
            RemoteMessage.encodeStreamData(
                origin: objects.records[i].remoteOrigin, senderIsOrigin: objects.records[i].originHere,
                into: frame.bytes + FrameHeader.size)
            let sent = wire.sendLent(
                frame, length: RemoteMessage.streamDataPrefix + length, to: peer, now: turnClock)
            if sent { return true }  // counted by the session (`SessionCounters.sentInPlace`)
            // The ring was empty at beginWrite and only this (open) writer fills it.
            guard let slot = ring.reserve() else {
                wire.giveBack(frame, for: peer)
                return false
            }
            if length > 0 { slot.copyMemory(from: grant.base, byteCount: length) }
            ring.publish(length: length)
            wire.giveBack(frame, for: peer)
            return true
        }
    }

    /// Gives back the frame an abandoned (or deleted-meanwhile) write had.
    func returnLentFrame(_ i: Int) {
        guard let frame = objects.records[i].lentFrame else { return }
        objects.records[i].lentFrame = nil
        let peer = objects.records[i].remotePeer
        if let wireRef { wireRef._withUnsafeGuaranteedRef { $0.giveBack(frame, for: peer) } }
    }
}
