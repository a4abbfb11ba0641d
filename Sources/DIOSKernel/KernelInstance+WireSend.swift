import CLinux
import DIOSCore
import DIOSMemory
import DIOSWire

// Sending to instances on other nodes: control messages and a bridged stream's messages, through the sessions.
extension KernelInstance {
    /// Tells every instance of the other nodes this one is stopping (`Node.leave`).
    package func announceLeaving() {
        checkThread()
        guard let wire else { return }
        wire.hold()
        defer { wire.sendHeld() }
        let bytes = RemoteMessage.leaving.encoded()
        let now = clinux_monotonic_ns()
        for session in wire.sessions where session.isUp {
            sendToPeer(encoded: bytes, to: session.peer, wire: wire, now: now)
        }
    }

    /// Ends the sessions of peers that said they are leaving, now that the
    /// endpoint's poll (which delivered their word) has returned, and reports
    /// them down: what depended on them learns at once, not after the timeout.
    func endLeavingSessions(_ wire: WireEndpoint, now: UInt64) {
        let leaving = leavingPeers
        leavingPeers.removeAll()
        for peer in leaving where wire.peerLeft(peer, now: now) { peerChanged(peer, .down(.left)) }
    }

    /// Moves what waits in bridged streams' rings into their sessions now.
    func flushBridges() {
        if !bridges.isEmpty { _ = pumpBridges(now: clinux_monotonic_ns()) }
    }

    /// Sends a control message to an instance on another node, in order behind
    /// any that wait for room in its session. A blob call's messages may also
    /// be for an instance of this node (a proxy of a sibling's blob): those go
    /// through the fabric's control queue.
    func sendToPeer(_ message: RemoteMessage, to peer: InstanceID, body: UnsafeRawBufferPointer? = nil) {
        if peer.node == id.node {
            send(.blob(message, body: body.map { Array($0) } ?? []), to: Int(peer.core))
            return
        }
        guard let wire else { return }
        var bytes = message.encoded()
        if let body, body.count > 0 { bytes += body }
        sendToPeer(encoded: bytes, to: peer, wire: wire, now: clinux_monotonic_ns())
    }

    /// `sendToPeer` of a message already encoded (one encoding for many peers).
    func sendToPeer(encoded bytes: [UInt8], to peer: InstanceID, wire: WireEndpoint, now: UInt64) {
        // In order per peer; a peer whose session is full holds back only its own.
        if !remoteOutbox.contains(where: { $0.peer == peer }), trySend(bytes, to: peer, wire: wire, now: now) { return }
        remoteOutbox.append((peer, bytes))
    }

    private func trySend(_ bytes: [UInt8], to peer: InstanceID, wire: WireEndpoint, now: UInt64) -> Bool {
        bytes.withUnsafeBytes { body in
            do throws(SessionError) {
                return try wire.send(
                    to: peer, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body, now: now)
            } catch {
                logger.error("dropping a control message for \(peer): \(error)")
                return true
            }
        }
    }

    func flushRemoteOutbox(now: UInt64) -> Int {
        guard let wire else { return 0 }
        var sent = 0
        var blocked: Set<InstanceID> = []
        var k = 0
        while k < remoteOutbox.count {
            let (peer, bytes) = remoteOutbox[k]
            if !blocked.contains(peer), trySend(bytes, to: peer, wire: wire, now: now) {
                remoteOutbox.remove(at: k)
                sent += 1
            } else {
                blocked.insert(peer)
                k += 1
            }
        }
        return sent
    }

    /// Moves messages from the rings of streams read on another node into their
    /// sessions, as far as the sessions' windows allow. A deleted stream is
    /// drained first; then the other end is told it closed.
    /// Moves the messages waiting in a bridged stream's ring into its session,
    /// as far as the window allows. Returns how many went.
    func sendQueued(_ object: ObjectID, _ ring: StreamRing, _ wire: WireEndpoint, now: UInt64) -> Int {
        let i = Int(object.index)
        let peer = objects.records[i].remotePeer
        let origin = objects.records[i].remoteOrigin
        let senderIsOrigin = objects.records[i].originHere
        var prefix: (UInt64, UInt64) = (0, 0)
        var sent = 0
        while let (payload, count) = ring.peek() {
            let accepted = withUnsafeMutableBytes(of: &prefix) { p in
                RemoteMessage.encodeStreamData(origin: origin, senderIsOrigin: senderIsOrigin, into: p.baseAddress!)
                let body = UnsafeRawBufferPointer(start: payload, count: count)
                let head = UnsafeRawBufferPointer(
                    rebasing: UnsafeRawBufferPointer(p)[0..<RemoteMessage.streamDataPrefix])
                return (try? wire.send(to: peer, prefix: head, body: body, now: now)) ?? false
            }
            guard accepted else { break }
            ring.release()
            sent += 1
        }
        if sent > 0 {
            // Not counted in messagesOut: each was counted when its writer
            // published it (endWrite, or a process's side seen moving).
            objects.records[i].version &+= 1
            markDirty(object)  // a writer waiting for room
        }
        return sent
    }

    /// A message was just published into a stream read on another node: send
    /// it now, from the writer's call, rather than on the loop's next turn.
    @inline(never)
    func sendNow(_ object: ObjectID, _ ring: StreamRing) {
        guard let wireRef, objects.records[Int(object.index)].remoteFailure == nil else { return }
        _ = wireRef._withUnsafeGuaranteedRef { sendQueued(object, ring, $0, now: turnClock) }
    }
}
