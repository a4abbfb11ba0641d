import CLinux
import DIOSCore
import DIOSWire

/// A remote call in progress: at most one per instance, since the calling task
/// holds the instance's thread until the answer comes.
struct PendingCall {
    var call: UInt32
    var peer: InstanceID
    /// Where a blob's bytes go (the proxy's own buffer).
    var target: UnsafeMutableRawBufferPointer?
    var reply: BlobReply? = nil
    var failure: String? = nil
}

struct BlobReply {
    var status: BlobStatus
    var ok: Bool
    var version: UInt64
    var length: Int
}

/// Blobs held by another instance: of another node, or of this one. A blob
/// handed to a task on another node (an argument of `run`), or found by
/// `lookup` on another instance, stays with its owner; the task holds a proxy,
/// a blob object whose buffer receives copies. Between nodes the calls ride
/// the wire's sessions; between a node's instances, the control queues (the
/// instances share the arena, but not each other's objects: the owner alone
/// touches its blob, so its versions and holds stay single-threaded). Its calls are remote calls on the owner,
/// following the regimes of DESIGN §2:
///
/// - weak `beginRead` fetches the bytes and their version; weak `endRead`
///   validates that version with the owner (true only if no write committed or
///   was open meanwhile);
/// - strong `beginRead` takes a shared hold at the owner (`.wouldBlock` while a
///   writer is open there) and `endRead` releases it;
/// - `beginWrite` opens a write at the owner (one writer at a time, waiting for
///   strong holds: `.wouldBlock`); the task fills the proxy's buffer; `endWrite`
///   ships the bytes and the owner commits them.
///
/// A remote call holds the calling task's instance until the owner answers (a
/// network round trip: the instance keeps polling its wire meanwhile, so other
/// traffic flows) or the owner is declared failed (`.unreachable`).
extension KernelInstance {
    // MARK: The calling side

    /// How long a call on a sibling instance's blob waits for its answer. A
    /// sibling does not fail alone (it is this process), but a task there may
    /// hold its thread without yielding; past this the call says so.
    static let siblingCallTimeout: Duration = .seconds(10)

    /// Sends `make(call)` (with `body` after it) to `peer` and polls the wire
    /// (or, for an instance of this node, the control queues) until the
    /// answer to that call arrives, or the peer fails. Requests from others
    /// are served meanwhile, so two instances calling each other both finish.
    func peerCall(
        to peer: InstanceID, into target: UnsafeMutableRawBufferPointer? = nil, body: UnsafeRawBufferPointer? = nil,
        _ make: (UInt32) -> RemoteMessage
    ) throws(CallError) -> BlobReply {
        let sibling = peer.node == id.node
        let timeout: UInt64
        if sibling {
            guard Int(peer.core) < fabric.instanceCount, Int(peer.core) != index else {
                throw .invalidArgument("no instance \(peer) to call")
            }
            timeout = Self.siblingCallTimeout.nanoseconds
        } else {
            guard let wire, let session = wire.session(for: peer), session.isUp else {
                throw .unreachable(peer, reason: "no session with it")
            }
            timeout = wire.configuration.failureTimeout.nanoseconds
        }
        nextCall &+= 1
        let call = nextCall
        pendingCall = PendingCall(call: call, peer: peer, target: target)
        sendToPeer(make(call), to: peer, body: body)
        if !sibling { wire?.sendKeptNow() }  // in case a caller holds frames: the answer waits on this one
        let deadline = clinux_monotonic_ns() + timeout
        while true {
            if sibling { _ = drainControl() } else { _ = pollWire() }
            if let reply = pendingCall?.reply {
                pendingCall = nil
                return reply
            }
            if let failure = pendingCall?.failure {
                pendingCall = nil
                throw .unreachable(peer, reason: failure)
            }
            if clinux_monotonic_ns() > deadline {
                pendingCall = nil
                throw .unreachable(
                    peer,
                    reason: sibling
                        ? "no answer within \(Self.siblingCallTimeout): a task there holds its thread"
                        : "no answer to a call within the failure timeout")
            }
            clinux_cpu_relax()
        }
    }

    func checkProxy(_ i: Int) throws(CallError) {
        if let reason = objects.records[i].remoteFailure {
            throw .unreachable(objects.records[i].remotePeer, reason: reason)
        }
    }

    static func error(for status: BlobStatus) -> CallError {
        switch status {
        case .ok: .invalidArgument("no error")
        case .busy: .wouldBlock
        case .deleted: .objectDeleted
        case .denied: .invalidArgument("the owner refused: the blob was not handed over with this right")
        }
    }

    /// `beginRead` on a proxy: the owner's bytes, copied into the proxy's buffer.
    func beginPeerRead(_ entry: ReferenceEntry, _ i: Int, strong: Bool) throws(CallError) -> IOGrant {
        try checkProxy(i)
        let base = try bufferAddress(i, .beginRead)
        let capacity = objects.records[i].maxWriteSize
        let origin = objects.records[i].remoteOrigin
        let reply = try peerCall(
            to: objects.records[i].remotePeer, into: UnsafeMutableRawBufferPointer(start: base, count: capacity)
        ) { .blobRead(blob: origin, call: $0, strong: strong) }
        guard reply.status == .ok else { throw Self.error(for: reply.status) }
        objects.records[i].openTransactions += 1
        return IOGrant(
            object: entry.object, base: base, count: reply.length, version: reply.version,
            mode: strong ? .strong : .weak)
    }

    /// `endRead` on a proxy: weak reads validate their version with the owner;
    /// strong reads release their hold there.
    func endPeerRead(_ grant: IOGrant, _ i: Int) -> Bool {
        objects.records[i].openTransactions -= 1
        defer { if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(grant.object) } }
        guard objects.records[i].remoteFailure == nil, !objects.records[i].deleted else { return false }
        let peer = objects.records[i].remotePeer
        let origin = objects.records[i].remoteOrigin
        switch grant.mode {
        case .strong:
            sendToPeer(.blobRelease(blob: origin), to: peer)
            return true
        default:
            guard grant.version & 1 == 0 else { return false }  // a write was open when it was read
            let reply = try? peerCall(to: peer) { .blobValidate(blob: origin, call: $0, version: grant.version) }
            return reply?.ok ?? false
        }
    }

    /// `beginWrite` on a proxy: opens the write at the owner; the task fills the
    /// proxy's buffer.
    func beginPeerWrite(_ entry: ReferenceEntry, _ i: Int, size: Int, strong: Bool) throws(CallError) -> IOGrant {
        try checkProxy(i)
        let base = try bufferAddress(i, .beginWrite)
        let origin = objects.records[i].remoteOrigin
        let reply = try peerCall(to: objects.records[i].remotePeer) {
            .blobWrite(blob: origin, call: $0, strong: strong)
        }
        guard reply.status == .ok else { throw Self.error(for: reply.status) }
        objects.records[i].writerOpen = true
        objects.records[i].openTransactions += 1
        return IOGrant(object: entry.object, base: base, count: size, version: 0, mode: strong ? .strong : .weak)
    }

    /// `endWrite` (or, with `commit` false, an abandoned write) on a proxy: the
    /// bytes go to the owner, which commits them. True when committed there.
    func endPeerWrite(_ grant: IOGrant, _ i: Int, length: Int, commit: Bool) -> Bool {
        objects.records[i].openTransactions -= 1
        objects.records[i].writerOpen = false
        defer {
            markDirty(grant.object)
            if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(grant.object) }
        }
        guard objects.records[i].remoteFailure == nil else { return false }
        let peer = objects.records[i].remotePeer
        let origin = objects.records[i].remoteOrigin
        guard commit else {
            sendToPeer(.blobCommit(blob: origin, call: 0, commit: false), to: peer)
            return false
        }
        let reply = try? peerCall(to: peer, body: UnsafeRawBufferPointer(start: grant.base, count: length)) {
            .blobCommit(blob: origin, call: $0, commit: true)
        }
        return reply?.ok ?? false
    }

    /// A blob call or answer from `peer` (another node's instance, or a sibling).
    func handleBlobMessage(_ message: RemoteMessage, body: UnsafeRawBufferPointer, from peer: InstanceID) {
        switch message {
        case .blobRead, .blobRelease, .blobValidate, .blobWrite, .blobCommit:
            serveBlob(message, body: body, from: peer)
        case .blobData(let call, let status, let version):
            takeReply(
                call, BlobReply(status: status, ok: status == .ok, version: version, length: 0), bytes: body, from: peer
            )
        case .blobReply(let call, let status, let ok):
            takeReply(
                call, BlobReply(status: status, ok: ok, version: 0, length: 0),
                bytes: UnsafeRawBufferPointer(start: nil, count: 0), from: peer)
        default:
            counters.remoteRefused &+= 1
        }
    }

    /// The answer to this instance's pending call.
    func takeReply(_ call: UInt32, _ reply: BlobReply, bytes: UnsafeRawBufferPointer, from peer: InstanceID) {
        guard var pending = pendingCall, pending.call == call, pending.peer == peer else {
            counters.remoteRefused &+= 1  // an answer nobody waits for (the call timed out)
            return
        }
        var reply = reply
        if let target = pending.target, reply.status == .ok {
            let n = min(bytes.count, target.count)
            if n > 0 { target.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n) }
            reply.length = n
        }
        pending.reply = reply
        pendingCall = pending
    }

    // MARK: The owner's side

    /// The blob `object` if it was handed to `peer` with `right`.
    /// Handed over by `run`, or published (then `lookup` grants its lookup rights).
    private func sharedBlob(_ object: ObjectID, with peer: InstanceID, needing right: Rights) -> (Int, BlobStatus) {
        let i = Int(object.index)
        let live = objects.isLive(object) && objects.records[i].kind == .blob
        let handed = sharedBlobs[RemoteEnd(peer: peer, origin: object)]?.contains(right) ?? false
        let published = live && objects.records[i].nameTag != 0 && objects.records[i].lookupRights.contains(right)
        guard handed || published else { return (0, live || !objects.exists(object) ? .denied : .deleted) }
        guard live else { return (0, .deleted) }
        return (i, .ok)
    }

    /// Handles a blob call from `peer` on a blob held here.
    func serveBlob(_ message: RemoteMessage, body: UnsafeRawBufferPointer, from peer: InstanceID) {
        switch message {
        case .blobRead(let blob, let call, let strong):
            let (i, status) = sharedBlob(blob, with: peer, needing: .read)
            guard status == .ok else {
                sendToPeer(.blobData(call: call, status: status, version: 0), to: peer)
                return
            }
            if strong {
                guard !objects.records[i].writerOpen else {
                    sendToPeer(.blobData(call: call, status: .busy, version: 0), to: peer)
                    return
                }
                objects.records[i].sharedHolds += 1
                peerReadHolds[RemoteEnd(peer: peer, origin: blob), default: 0] += 1
            }
            let base = pool.address(of: objects.records[i].buffer!)
            sendToPeer(
                .blobData(call: call, status: .ok, version: objects.records[i].version), to: peer,
                body: UnsafeRawBufferPointer(start: base, count: objects.records[i].length))
        case .blobRelease(let blob):
            let key = RemoteEnd(peer: peer, origin: blob)
            guard let holds = peerReadHolds[key], holds > 0 else {
                counters.remoteRefused &+= 1
                return
            }
            peerReadHolds[key] = holds == 1 ? nil : holds - 1
            if objects.exists(blob) {
                objects.records[Int(blob.index)].sharedHolds -= 1
                markDirty(blob)
            }
        case .blobValidate(let blob, let call, let version):
            let (i, status) = sharedBlob(blob, with: peer, needing: .read)
            let ok = status == .ok && objects.records[i].version == version && version & 1 == 0
            sendToPeer(.blobReply(call: call, status: status, ok: ok), to: peer)
        case .blobWrite(let blob, let call, let strong):
            let (i, status) = sharedBlob(blob, with: peer, needing: .write)
            guard status == .ok else {
                sendToPeer(.blobReply(call: call, status: status, ok: false), to: peer)
                return
            }
            guard !objects.records[i].writerOpen, objects.records[i].sharedHolds == 0 else {
                sendToPeer(.blobReply(call: call, status: .busy, ok: false), to: peer)
                return
            }
            objects.records[i].writerOpen = true
            objects.records[i].exclusive = strong
            objects.records[i].peerWriter = peer
            objects.records[i].version &+= 1  // odd: a write is open
            markDirty(blob)
            sendToPeer(.blobReply(call: call, status: .ok, ok: true), to: peer)
        case .blobCommit(let blob, let call, let commit):
            let (i, status) = sharedBlob(blob, with: peer, needing: .write)
            guard status == .ok, objects.records[i].writerOpen, objects.records[i].peerWriter == peer else {
                if commit {
                    sendToPeer(.blobReply(call: call, status: status == .ok ? .denied : status, ok: false), to: peer)
                }
                return
            }
            var ok = false
            objects.records[i].writerOpen = false
            objects.records[i].exclusive = false
            objects.records[i].peerWriter = nil
            if commit && body.count <= objects.records[i].maxWriteSize, let shadow = objects.records[i].shadow {
                // Into the shadow, then swapped in: the committed bytes are
                // never written in place, as for a local write.
                let base = pool.address(of: shadow)
                if body.count > 0 { base.copyMemory(from: body.baseAddress!, byteCount: body.count) }
                commitShadow(objects.records.pointer(i), length: body.count)
                ok = true
            } else {
                objects.records[i].version &+= 1  // even: abandoned, failing overlapping reads
            }
            markDirty(blob)
            if commit { sendToPeer(.blobReply(call: call, status: ok ? .ok : .denied, ok: ok), to: peer) }
        default:
            break
        }
    }

    /// A peer failed: its holds and open writes on blobs here end, and a call
    /// waiting on it fails.
    func releaseBlobs(of peer: InstanceID, reason: String) {
        if pendingCall?.peer == peer { pendingCall?.failure = reason }
        for (key, holds) in peerReadHolds where key.peer == peer {
            if objects.exists(key.origin) {
                objects.records[Int(key.origin.index)].sharedHolds -= holds
                markDirty(key.origin)
            }
        }
        peerReadHolds = peerReadHolds.filter { $0.key.peer != peer }
        sharedBlobs = sharedBlobs.filter { $0.key.peer != peer }
        for i in objects.records.indices where objects.records[i].live && objects.records[i].peerWriter == peer {
            objects.records[i].writerOpen = false
            objects.records[i].exclusive = false
            objects.records[i].peerWriter = nil
            objects.records[i].version &+= 1
            markDirty(ObjectID(index: UInt32(i), generation: objects.records[i].generation))
        }
    }
}
