import CLinux
package import DIOSCore
import DIOSMemory
package import DIOSWire

/// A stream handed over by another node, keyed as its messages name it.
struct RemoteEnd: Hashable {
    var peer: InstanceID
    var origin: ObjectID

    /// The four fields packed into one word for the hasher (`lookup` of a name
    /// held elsewhere finds its stand-in by this key).
    var packed: UInt64 {
        UInt64(peer.node) << 48 | UInt64(peer.core) << 32 | UInt64(origin.index) ^ UInt64(origin.generation) &* 0x9E37_79B9_7F4A_7C15
    }

    func hash(into hasher: inout Hasher) { hasher.combine(packed) }

    /// As `Name`'s: a multiply-xorshift with the table's seed, not SipHash.
    func _rawHashValue(seed: Int) -> Int { Name.mix(packed, seed: seed) }
}

/// What a task started by another node's instance gets when that node is lost.
package let lostTaskStatus: Int32 = -128

/// Instances on other nodes: the wire endpoint this instance polls, streams
/// bridged between a ring here and a session, tasks run on another node, and
/// what happens when a peer fails.
///
/// A bridged stream keeps the local data path unchanged: the task here writes
/// into (or reads from) a ring in its own instance's memory exactly as for a
/// local stream; the kernel moves messages between that ring and the session
/// (one copy each way: the session keeps a copy until it is acknowledged). A
/// ring that fills holds the writer (`.wouldBlock`); a receiver's full ring
/// holds the message in the session, whose credit then holds the sender. When
/// the peer fails, every bridged stream with it is closed with the reason and
/// its waiters wake: `beginRead`/`beginWrite` then fail with `.unreachable`.
extension KernelInstance {
    /// Connects the instance to other nodes. Call before the instance is polled.
    package func attachWire(_ endpoint: WireEndpoint) {
        checkThread()
        precondition(endpoint.local == id, "endpoint for \(endpoint.local) attached to instance \(id)")
        precondition(wire == nil, "a wire attached twice to instance \(id)")  // records keep its sessions unretained
        wire = endpoint
        wireRef = Unmanaged.passUnretained(endpoint)
    }

    /// The wire's sessions (for status).
    package var wireEndpoint: WireEndpoint? { wire }

    /// What an idle loop also sleeps on: frames arriving (when the transport can say).
    /// Nil without a wire, or when the wire has no descriptor to wait on.
    package var wireReadinessFD: Int32? {
        guard let wire else { return nil }
        return wire.transport.readinessFD ?? -1
    }

    /// Polls the wire: what arrived, the sessions' timers, and bridged
    /// streams' messages and control messages waiting to be sent. `quick`
    /// (from `select`'s spin, many times a microsecond) takes only what
    /// arrived, stamped with that time (read on an earlier, full poll).
    /// `clock`: for a full poll, the time just read (`poll` read it for its
    /// turn and nothing ran since), so as not to read the clock twice.
    func pollWire(quick: UInt64? = nil, clock: UInt64? = nil) -> Int {
        guard let wireRef else { return 0 }
        return wireRef._withUnsafeGuaranteedRef { wire in pollWire(wire, quick: quick, clock: clock) }
    }

    private func pollWire(_ wire: WireEndpoint, quick: UInt64?, clock: UInt64?) -> Int {
        let now: UInt64
        if let quick {
            now = quick
        } else {
            now = clock ?? clinux_monotonic_ns()
            turnClock = now
        }
        // What a full poll sends (acks, answers, stream data) leaves in one
        // burst. A quick one (`spin`) mostly finds nothing: the endpoint holds
        // what it sends only once a frame has arrived. (The closures are
        // written in the call: held in constants, they would retain `self`.)
        let full = quick == nil
        if full { wire.hold() }
        defer { if full { wire.sendHeld() } }
        var work = wire.poll(
            now: now, timers: full, holdWhenReceiving: !full,
            deliver: { peer, bytes in self.deliverRemote(bytes, from: peer) },
            changed: { peer, change in self.peerChanged(peer, change) })
        if !leavingPeers.isEmpty { endLeavingSessions(wire, now: now) }
        if !frameWaiters.isEmpty { wakeFrameWaiters(wire) }
        guard full else { return work }
        if !remoteOutbox.isEmpty { work += flushRemoteOutbox(now: now) }
        if !bridges.isEmpty { work += pumpBridges(now: now) }
        return work
    }

    // MARK: Sending

    /// Tells every instance of the other nodes this one is stopping (`Node.leave`).
    package func announceLeaving() {
        checkThread()
        guard let wire else { return }
        wire.hold()
        defer { wire.sendHeld() }
        let bytes = RemoteMessage.leaving.encoded()
        let now = clinux_monotonic_ns()
        for session in wire.sessions where session.isUp { sendRemote(encoded: bytes, to: session.peer, wire: wire, now: now) }
    }

    /// Ends the sessions of peers that said they are leaving, now that the
    /// endpoint's poll (which delivered their word) has returned, and reports
    /// them down: what depended on them learns at once, not after the timeout.
    private func endLeavingSessions(_ wire: WireEndpoint, now: UInt64) {
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
    func sendRemote(_ message: RemoteMessage, to peer: InstanceID, body: UnsafeRawBufferPointer? = nil) {
        if peer.node == id.node {
            send(.blob(message, body: body.map { Array($0) } ?? []), to: Int(peer.core))
            return
        }
        guard let wire else { return }
        var bytes = message.encoded()
        if let body, body.count > 0 { bytes += body }
        sendRemote(encoded: bytes, to: peer, wire: wire, now: clinux_monotonic_ns())
    }

    /// `sendRemote` of a message already encoded (one encoding for many peers).
    func sendRemote(encoded bytes: [UInt8], to peer: InstanceID, wire: WireEndpoint, now: UInt64) {
        // In order per peer; a peer whose session is full holds back only its own.
        if !remoteOutbox.contains(where: { $0.peer == peer }), trySend(bytes, to: peer, wire: wire, now: now) { return }
        remoteOutbox.append((peer, bytes))
    }

    private func trySend(_ bytes: [UInt8], to peer: InstanceID, wire: WireEndpoint, now: UInt64) -> Bool {
        bytes.withUnsafeBytes { body in
            do throws(SessionError) {
                return try wire.send(to: peer, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body, now: now)
            } catch {
                logger.error("dropping a control message for \(peer): \(error)")
                return true
            }
        }
    }

    private func flushRemoteOutbox(now: UInt64) -> Int {
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
                let head = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[0..<RemoteMessage.streamDataPrefix])
                return (try? wire.send(to: peer, prefix: head, body: body, now: now)) ?? false
            }
            guard accepted else { break }
            ring.release()
            sent += 1
        }
        if sent > 0 {
            counters.messagesOut &+= UInt64(sent)
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

    // MARK: Writing in place

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

    private func pumpBridges(now: UInt64) -> Int {
        guard let wireRef else { return 0 }
        var moved = 0
        var k = 0
        while k < bridges.count {
            let object = bridges[k]
            guard objects.exists(object) else {
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            // Nothing below creates an object, so the pointer stays valid.
            let r = objects.records.pointer(Int(object.index))
            guard r.pointee.bridge == .sends, let ring = r.pointee.ring, r.pointee.remoteFailure == nil else {
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            // Most polls find the ring empty (a message written is usually sent
            // from the writer's own call, `sendNow`): no call, no session.
            if ring.hasMessage() {
                moved += wireRef._withUnsafeGuaranteedRef { sendQueued(object, ring, $0, now: now) }
            }
            if r.pointee.deleted && !ring.hasMessage() {
                if !r.pointee.keepStreamOpen {
                    sendRemote(
                        .streamClosed(origin: r.pointee.remoteOrigin, senderIsOrigin: r.pointee.originHere),
                        to: r.pointee.remotePeer)
                }
                r.pointee.bridge = .none
                if r.pointee.openTransactions == 0 { reclaim(object) }
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            k += 1
        }
        return moved
    }

    // MARK: Receiving

    /// Handles one message from an instance on another node. False when it is
    /// stream data whose ring is full: the session offers it again later.
    /// Anything malformed, or naming what is not its own, is refused and counted.
    package func deliverRemote(_ bytes: UnsafeRawBufferPointer, from peer: InstanceID) -> Bool {
        // Stream data, nearly every message: its 9-byte prefix read in place,
        // without building a `RemoteMessage` (the same checks as `decode`),
        // and delivered here, in one function (see `deliverStreamData`).
        if let (origin, senderIsOrigin) = RemoteMessage.peekStreamData(bytes) {
            return deliverStreamData(
                UnsafeRawBufferPointer(rebasing: bytes[RemoteMessage.streamDataPrefix...]), origin: origin,
                senderIsOrigin: senderIsOrigin, from: peer)
        }
        return deliverControl(bytes, from: peer)
    }

    /// `deliverRemote` of anything but stream data: decoded in full.
    @inline(never)
    private func deliverControl(_ bytes: UnsafeRawBufferPointer, from peer: InstanceID) -> Bool {
        let message: RemoteMessage
        let payloadOffset: Int
        do throws(WireError) { (message, payloadOffset) = try RemoteMessage.decode(bytes) } catch {
            counters.remoteRefused &+= 1
            logger.warning("refused a message from \(peer): \(error)")
            return true
        }
        switch message {
        case .streamData(let origin, let senderIsOrigin):  // `peekStreamData` takes these first
            return deliverStreamDataOutOfLine(
                UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...]), origin: origin, senderIsOrigin: senderIsOrigin,
                from: peer)
        case .streamClosed(let origin, let senderIsOrigin):
            if let object = bridgedStream(origin, senderIsOrigin: senderIsOrigin, from: peer) {
                objects.records[Int(object.index)].ring?.close()
                markDirty(object)
            }
        case .run(let proxy, let program, let trusted, let label, let streams):
            startForRemote(peer: peer, proxy: proxy, program: program, trusted: trusted, label: label, streams: streams)
        case .started(let proxy, let task):
            let live = objects.isLive(proxy) && objects.records[Int(proxy.index)].remoteNode == peer
            proxyStarted(proxy, task, live: live) { stop, resume in
                self.sendRemote(stop ? .stop(task: task) : .pause(task: task, resume: resume), to: peer)
            }
        case .failedToStart(let proxy, let reason):
            logger.warning("task did not start on \(peer): \(reason)")
            if objects.exists(proxy), objects.records[Int(proxy.index)].remoteNode == peer {
                failBridges(ofProxy: proxy, reason: "the task did not start: \(reason)")
                finishTaskObject(proxy, status: -1)
            }
        case .exited(let proxy, let status):
            if objects.exists(proxy), objects.records[Int(proxy.index)].remoteNode == peer {
                finishTaskObject(proxy, status: status)
            }
        case .pause(let task, let resume):
            if startedBy(peer, task) { setPaused(task, paused: !resume) }
        case .stop(let task):
            if startedBy(peer, task) { stop(task) }
        case .leaving:
            leavingPeers.append(peer)  // its session ends once the poll delivering this returns
        case .blobRead, .blobRelease, .blobValidate, .blobWrite, .blobCommit, .blobData, .blobReply:
            handleBlobMessage(message, body: UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...]), from: peer)
        case .nameDelta(let delta):
            applyName(delta, from: peer)
        case .nameSync(let reset, let inserts):
            applyNameSync(reset: reset, inserts: inserts, from: peer)
        case .nameConfirm(let name, let object, let call):
            confirmName(name, object, call: call, from: peer)
        }
        return true
    }

    /// Whether `task` is one that `peer` started here (only it may pause or stop it).
    private func startedBy(_ peer: InstanceID, _ task: TaskID) -> Bool {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation && tasks[i].live
            && tasks[i].remoteProxy?.peer == peer
    }

    @inline(never)
    private func deliverStreamDataOutOfLine(
        _ payload: UnsafeRawBufferPointer, origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID
    ) -> Bool {
        deliverStreamData(payload, origin: origin, senderIsOrigin: senderIsOrigin, from: peer)
    }

    /// A message of a stream from `peer` into the ring it feeds here. False when
    /// the ring is full (the session offers it again later). Inlined, with
    /// `bridgedStream`, into `deliverRemote`: the frame's way up is a chain
    /// of calls, each passing on what the one before found.
    @inline(__always)
    private func deliverStreamData(
        _ payload: UnsafeRawBufferPointer, origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID
    ) -> Bool {
        guard let object = bridgedStream(origin, senderIsOrigin: senderIsOrigin, from: peer) else {
            counters.remoteRefused &+= 1  // its stream is gone here: nobody will read it
            return true
        }
        let r = objects.records.pointer(Int(object.index))  // nothing below creates an object
        guard payload.count <= r.pointee.maxWriteSize, let ring = r.pointee.ring else {
            counters.remoteRefused &+= 1
            return true
        }
        guard let slot = ring.reserve() else { return false }
        if let base = payload.baseAddress, payload.count > 0 {
            // Zero-copy: the message stays in the frame it arrived in, the
            // reader viewing it there, when the transport keeps frames and the
            // ring is this instance's alone (a handle means nothing elsewhere).
            if readsInPlace && !r.pointee.crossInstance && framesHeld < Self.maxFramesHeld,
                let handle = wireRef?._withUnsafeGuaranteedRef({ $0.keepReceived(base) })
            {
                ring.publish(at: base, length: payload.count, handle: handle)
                r.pointee.heldFrames += 1
                framesHeld += 1
                counters.readInPlace &+= 1
            } else {
                slot.copyMemory(from: base, byteCount: payload.count)
                ring.publish(length: payload.count)
            }
        } else {
            ring.publish(length: payload.count)
        }
        r.pointee.version &+= 1
        markDirty(object)
        return true
    }

    /// Gives back to the wire a received frame that held a message of stream
    /// record `i` (read now, or the stream is going).
    func giveBackHeldFrame(_ handle: OpaquePointer, of i: Int) {
        objects.records[i].heldFrames -= 1
        framesHeld -= 1
        wireRef?._withUnsafeGuaranteedRef { $0.releaseReceived(handle) }
    }

    /// Gives back every received frame that holds a message of stream record
    /// `i`, with (`copyIn`) or without the message: its ring is about to be
    /// shared with another instance, or to go.
    func releaseHeldFrames(of i: Int, copyIn: Bool) {
        guard objects.records[i].heldFrames > 0, let ring = objects.records[i].ring else { return }
        if copyIn {
            ring.copyInHeldMessages { giveBackHeldFrame($0, of: i) }
        } else {
            ring.forEachHandle { giveBackHeldFrame($0, of: i) }
        }
    }

    /// The stream here that `peer`'s messages for `origin` feed, or nil.
    ///
    /// A stream the peer made (`senderIsOrigin`) is found through `remoteEnds`;
    /// the last one found is remembered, since one stream usually carries a run
    /// of messages and hashing the key costs more than the rest of the delivery.
    /// It is forgotten whenever `remoteEnds` changes, and checked
    /// again here: whichever way it was found, the record must say it is that
    /// peer's end of that origin, or the message is refused.
    @inline(__always)
    private func bridgedStream(_ origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID) -> ObjectID? {
        let object: ObjectID
        if senderIsOrigin {
            let key = RemoteEnd(peer: peer, origin: origin)
            if let last = lastRemoteEnd, last.key == key, objects.exists(last.object) {
                object = last.object
            } else {
                guard let o = remoteEnds[key] else { return nil }
                lastRemoteEnd = (key, o)
                object = o
            }
        } else {
            object = origin
        }
        let i = Int(object.index)
        guard objects.exists(object), objects.records[i].kind == .stream, objects.records[i].remotePeer == peer,
            objects.records[i].remoteOrigin == origin, objects.records[i].bridge == .receives
        else { return nil }
        return object
    }

    // MARK: run across nodes

    /// `run` onto an instance of another node: a proxy task object here stands
    /// for the task there. Each argument must be a stream made here and not yet
    /// shared. The task there gets its write end (this side reads) when the
    /// reference handed over cannot read (see `restrict`) or `flags` has
    /// `.writable`; otherwise its read end (this side writes).
    func runOnNode(
        _ t: Int, _ programEntry: ReferenceEntry, arguments: [ReferenceEntry], refs: [Ref], flags: Flags,
        label: String, on target: InstanceID
    ) throws(CallError) -> Ref {
        guard let wire, wire.session(for: target) != nil else {
            throw .invalidArgument("no instance \(target) in this node's cluster")
        }
        if let down = wire.session(for: target), !down.isUp {
            throw .unreachable(target, reason: "no session with it (not started, or failed)")
        }
        func handsWriteEnd(_ e: ReferenceEntry) -> Bool { flags.contains(.writable) || !e.rights.contains(.read) }
        for (e, ref) in zip(arguments, refs) {
            if e.kind == .blob {
                guard objects.records[Int(e.object.index)].bridge == .none else {
                    throw .invalidArgument("a blob held by another node cannot be handed on")
                }
                guard !e.rights.intersection([.read, .write]).isEmpty else {
                    throw .reference(.missingRight(ref, needed: .read, held: e.rights))
                }
                continue
            }
            guard e.kind == .stream else { throw .wrongKind(.run, e.kind) }
            let r = objects.records[Int(e.object.index)]
            guard r.ring != nil, !r.crossInstance, r.ringOwner == nil, r.bridge == .none else {
                throw .invalidArgument("stream \(r.name) is already shared; hand another node a stream of its own")
            }
            let needed: Rights = handsWriteEnd(e) ? .write : .read
            guard e.rights.contains(needed) else {
                throw .reference(.missingRight(ref, needed: needed, held: e.rights))
            }
        }
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        let programName = objects.records[Int(programEntry.object.index)].name
        guard let proxy = makeObject(kind: .task, name: nameSource.fresh(), bufferSize: 64, maxWriteSize: 0, flags: []) else {
            throw .outOfMemory(requested: 64)
        }
        objects.records[Int(proxy.index)].remoteNode = target
        var streams: [RemoteArgument] = []
        for e in arguments {
            let i = Int(e.object.index)
            if e.kind == .blob {
                let rights = e.rights.intersection([.read, .write])
                sharedBlobs[RemoteEnd(peer: target, origin: e.object), default: []].formUnion(rights)
                streams.append(
                    RemoteArgument(
                        object: e.object, kind: .blob, name: objects.records[i].name,
                        maxWriteSize: objects.records[i].maxWriteSize, depth: 1, writeEnd: false, rights: rights))
                continue
            }
            let ring = objects.records[i].ring!
            let writeEnd = handsWriteEnd(e)
            objects.records[i].bridge = writeEnd ? .receives : .sends
            objects.records[i].remotePeer = target
            objects.records[i].remoteSession = wire.session(for: target).map { Unmanaged.passUnretained($0) }
            objects.records[i].remoteOrigin = e.object
            objects.records[i].originHere = true
            objects.records[i].proxyOfBridge = proxy
            if !writeEnd { bridges.append(e.object) }
            streams.append(
                RemoteArgument(
                    object: e.object, name: objects.records[i].name, maxWriteSize: objects.records[i].maxWriteSize,
                    depth: Int(ring.depth), writeEnd: writeEnd))
        }
        sendRemote(
            .run(proxy: proxy, program: programName, trusted: !flags.contains(.untrusted), label: label, streams: streams),
            to: target)
        var entry = entry(for: proxy, rights: .all)
        entry.proximity = .remoteMemory
        return try! insertRef(t, entry)
    }

    /// Handles `.run` from another node: starts the program here with a local
    /// ring for each stream, bridged to the peer.
    private func startForRemote(
        peer: InstanceID, proxy: ObjectID, program: Name, trusted: Bool, label: String, streams: [RemoteArgument]
    ) {
        let programObject = names.first(of: program) { objects.isLive($0) && objects.records[Int($0.index)].kind == .program }
        guard let programObject, let body = programs[objects.records[Int(programObject.index)].program] else {
            sendRemote(.failedToStart(proxy: proxy, reason: "no program \(program) on \(id)"), to: peer)
            return
        }
        let child: TaskID
        do { child = try makeTask(trusted: trusted, label: label) } catch {
            sendRemote(.failedToStart(proxy: proxy, reason: error.description), to: peer)
            return
        }
        let c = Int(child.index)
        tasks[c].remoteProxy = (peer, proxy)
        tasks[c].unheld = true
        for s in streams {
            if s.kind == .blob {
                guard let proxy = makeObject(kind: .blob, name: s.name, bufferSize: s.maxWriteSize, maxWriteSize: s.maxWriteSize, flags: [])
                else {
                    logger.warning("no memory for a blob proxy from \(peer); the task starts without it")
                    continue
                }
                let i = Int(proxy.index)
                objects.records[i].bridge = .blob
                objects.records[i].remotePeer = peer
                objects.records[i].remoteOrigin = s.object
                tasks[c].madeEnds.append(proxy)
                var entry = entry(for: proxy, rights: s.rights.intersection([.read, .write]).union(.delete))
                entry.proximity = .remoteMemory
                if let ref = try? insertRef(c, entry) { tasks[c].delegated.append(ref) }
                continue
            }
            let slots = 1 << (Int.bitWidth - (s.depth - 1).leadingZeroBitCount)
            let bytes = StreamRing.byteSize(messageSize: max(s.maxWriteSize, 1), depth: slots)
            guard bytes <= BufferPool.maximumSize,
                let end = makeObject(kind: .stream, name: s.name, bufferSize: bytes, maxWriteSize: s.maxWriteSize, flags: [])
            else {
                logger.warning("no memory for a stream from \(peer); the task starts without it")
                continue
            }
            let i = Int(end.index)
            objects.records[i].ring = StreamRing.initialize(
                at: pool.address(of: objects.records[i].buffer!), messageSize: max(s.maxWriteSize, 1), depth: slots)
            objects.records[i].bridge = s.writeEnd ? .sends : .receives
            objects.records[i].remotePeer = peer
            objects.records[i].remoteSession = wire?.session(for: peer).map { Unmanaged.passUnretained($0) }
            objects.records[i].remoteOrigin = s.object
            objects.records[i].originHere = false
            remoteEnds[RemoteEnd(peer: peer, origin: s.object)] = end
            lastRemoteEnd = nil  // the hint never outlives a change to remoteEnds
            tasks[c].madeEnds.append(end)
            if s.writeEnd { bridges.append(end) }
            var entry = entry(for: end, rights: s.writeEnd ? [.write, .delete] : [.read, .delete])
            entry.proximity = .remoteMemory
            if let ref = try? insertRef(c, entry) { tasks[c].delegated.append(ref) }
        }
        start(child, entry: body)
        sendRemote(.started(proxy: proxy, task: child), to: peer)
    }

    // MARK: Failure

    /// A peer came up, or failed: on failure every stream bridged to it is
    /// closed with the reason (its waiters wake and see `.unreachable`), proxies
    /// of tasks there finish with `lostTaskStatus`, and tasks it started here stop.
    func peerChanged(_ peer: InstanceID, _ change: PeerChange) {
        switch change {
        case .up:
            logger.info("instance \(peer) is reachable")
            counters.peersUp &+= 1
            sendNameState(to: peer)
        case .down(let failure):
            logger.warning("instance \(peer) failed: \(failure)")
            counters.peersDown &+= 1
            let reason = failure.description
            for i in objects.records.indices where objects.records[i].live {
                let object = ObjectID(index: UInt32(i), generation: objects.records[i].generation)
                if objects.records[i].bridge != .none && objects.records[i].remotePeer == peer {
                    failBridge(object, reason: reason)
                } else if objects.records[i].remoteNode == peer && !objects.records[i].ready {
                    finishTaskObject(object, status: lostTaskStatus)
                }
            }
            releaseBlobs(of: peer, reason: reason)
            nameService.peerDown(peer)
            remoteEnds = remoteEnds.filter { $0.key.peer != peer }
            lastRemoteEnd = nil
            remoteOutbox.removeAll { $0.peer == peer }
            for i in tasks.indices where tasks[i].live && tasks[i].remoteProxy?.peer == peer {
                stop(TaskID(index: UInt32(i), generation: tasks[i].generation))
            }
        }
    }

    private func failBridge(_ object: ObjectID, reason: String) {
        let i = Int(object.index)
        guard objects.records[i].remoteFailure == nil else { return }
        objects.records[i].remoteFailure = reason
        objects.records[i].ring?.close()
        objects.records[i].version &+= 1
        markDirty(object)
        // Deleted while it still drained to the peer: nothing more will go.
        if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(object) }
    }

    private func failBridges(ofProxy proxy: ObjectID, reason: String) {
        for i in objects.records.indices where objects.records[i].live && objects.records[i].proxyOfBridge == proxy {
            failBridge(ObjectID(index: UInt32(i), generation: objects.records[i].generation), reason: reason)
        }
    }

    /// The error for a stream whose ring is closed: the peer's failure, or deletion.
    @inline(never)
    func closedStreamError(_ i: Int) -> CallError {
        if let reason = objects.records[i].remoteFailure { return .unreachable(objects.records[i].remotePeer, reason: reason) }
        return .objectDeleted
    }
}
