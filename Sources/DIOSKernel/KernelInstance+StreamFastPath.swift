import CLinux
package import DIOSCore
import DIOSMemory
import DIOSWire

// The stream fast path: a message call on a local stream ring, in a few
// loads and stores, handing anything else to the general calls in +IO.
extension KernelInstance {
    /// The record of the stream `ref` names for `task`, when the reference is
    /// valid, holds `rights`, and names a live stream held here; else nil.
    @inline(__always)
    func liveStream(
        _ task: TaskID, _ ref: Ref, _ rights: Rights
    ) -> (UnsafeMutablePointer<ObjectRecord>, ReferenceEntry)? {
        let t = Int(task.index)
        guard t < tasks.count, tasks[t].generation == task.generation, tasks[t].live, !tasks[t].stopping,
            let entry = tasks[t].refs.validEntry(ref), entry.kind == .stream, entry.rights.isSuperset(of: rights),
            objects.isLive(entry.object)
        else { return nil }
        clinux_crash_note_task(task.index, task.generation)
        return (objects.records.pointer(Int(entry.object.index)), entry)
    }

    /// `beginRead`'s common case: the next message of a stream held here whose
    /// read side this instance has claimed. Nil for anything else (an empty or
    /// closed ring, an open read, a bad reference), and the general path
    /// decides and says why. Changes nothing unless it returns a grant.
    @inline(__always)
    func nextMessageNow(_ task: TaskID, _ ref: Ref) -> IOGrant? {
        checkThread()
        guard let (r, entry) = liveStream(task, ref, .read), !r.pointee.readerOpen, r.pointee.bridge != .sends,
            let ring = r.pointee.ring, ring.claimant(writer: false) == claimID,
            let (payload, count) = ring.peek(followingHeld: r.pointee.heldFrames > 0)
        else { return nil }
        counters.calls &+= 1
        r.pointee.readerOpen = true
        r.pointee.openTransactions += 1
        return IOGrant(object: entry.object, base: payload, count: count, version: r.pointee.version, mode: .stream)
    }

    /// `beginWrite`'s common cases: a free slot of a stream read on this node,
    /// or a frame lent by the wire for a stream read on another (see
    /// `lendFrameNow`), where this instance has claimed the write side. Nil for
    /// anything else (a full or closed ring, an open write, a bad reference or
    /// size), and the general path decides and says why. Changes nothing
    /// unless it returns a grant.
    @inline(__always)
    func reserveSlotNow(_ task: TaskID, _ ref: Ref, size: Int) -> IOGrant? {
        checkThread()
        guard let (r, entry) = liveStream(task, ref, .write), size >= 0, size <= entry.maxWriteSize,
            !r.pointee.writerOpen, let ring = r.pointee.ring, ring.claimant(writer: true) == claimID, !ring.isClosed
        else { return nil }
        if _slowPath(r.pointee.bridge != .none) {
            return r.pointee.bridge == .sends ? lendFrameNow(r, entry.object, ring, size: size) : nil
        }
        guard let payload = ring.reserve() else { return nil }
        counters.calls &+= 1
        r.pointee.writerOpen = true
        r.pointee.openTransactions += 1
        return IOGrant(object: entry.object, base: payload, count: size, version: r.pointee.version, mode: .stream)
    }

    /// `reserveSlotNow` for a stream read on another node: the frame that will
    /// carry the message, when the wire lends one now (`lendFrame`); nil
    /// otherwise (no room, messages wait in the ring, ...), and the general
    /// path asks again and decides. Lending nothing changes nothing.
    ///
    /// Inlined: out of line, its call's spills cost more than its body, and a
    /// fast path that left such writes to the general path would check
    /// everything twice; the local case pays only for the branch. The loan
    /// asks the record's session directly (`lendFrame`), not the endpoint.
    /// (`Bench/callgrind.sh`'s `wire` profile counts what this costs.)
    @inline(__always)
    func lendFrameNow(
        _ r: UnsafeMutablePointer<ObjectRecord>, _ object: ObjectID, _ ring: StreamRing, size: Int
    ) -> IOGrant? {
        guard case .lent(let frame) = lendFrame(r, ring, size: size) else { return nil }
        counters.calls &+= 1
        r.pointee.lentFrame = frame
        r.pointee.writerOpen = true
        r.pointee.openTransactions += 1
        return IOGrant(
            object: object, base: frame.bytes + FrameHeader.size + RemoteMessage.streamDataPrefix, count: size,
            version: r.pointee.version, mode: .frame)
    }

    /// `endWrite`'s common case: publishes a message written in a slot of a
    /// live stream read on this node. False for anything else (a deleted
    /// object, a failed peer), and the general path decides.
    @inline(__always)
    func publishNow(_ grant: IOGrant, length: Int) -> Bool {
        checkThread()
        guard objects.exists(grant.object) else { return false }
        let r = objects.records.pointer(Int(grant.object.index))
        guard !r.pointee.deleted, r.pointee.bridge == .none, r.pointee.remoteFailure == nil, let ring = r.pointee.ring
        else { return false }
        precondition(length >= 0 && length <= grant.count, "endWrite length outside the view")
        ring.publish(length: length)  // first: the reader may be waiting for it
        streamTransactionEnded(r, grant.object, ring, writer: true)
        return true
    }

    /// `endWrite`'s common case for a message written in place in a lent
    /// frame (`lendFrameNow`): the stream's prefix goes in front of it and the
    /// session sends the frame now (`Session.sendLentNow`), the record's
    /// session reached directly. False for anything else (a deleted object, a
    /// failed peer, a window with no room, a session started over), changing
    /// nothing, and the general path decides. Out of line: the local
    /// `endWrite` pays only for the test of the grant's mode.
    @inline(never)
    func sendFrameNow(_ grant: IOGrant, length: Int) -> Bool {
        checkThread()
        guard objects.exists(grant.object), let wireRef else { return false }
        let r = objects.records.pointer(Int(grant.object.index))
        guard !r.pointee.deleted, r.pointee.remoteFailure == nil, let frame = r.pointee.lentFrame,
            let session = r.pointee.remoteSession, let ring = r.pointee.ring
        else { return false }
        precondition(length >= 0 && length <= grant.count, "endWrite length outside the view")
        RemoteMessage.encodeStreamData(
            origin: r.pointee.remoteOrigin, senderIsOrigin: r.pointee.originHere, into: frame.bytes + FrameHeader.size)
        let now = turnClock
        let sent = wireRef._withUnsafeGuaranteedRef { wire in
            session._withUnsafeGuaranteedRef {
                $0.sendLentNow(frame, length: RemoteMessage.streamDataPrefix + length, now: now, via: wire.transport)
            }
        }
        guard sent else { return false }
        r.pointee.lentFrame = nil
        streamTransactionEnded(r, grant.object, ring, writer: true)
        return true
    }

    /// `endRead`'s common case: consumes the message read from a live stream.
    /// False for anything else (a deleted object), and the general path decides.
    @inline(__always)
    func consumeNow(_ grant: IOGrant) -> Bool {
        checkThread()
        guard objects.exists(grant.object) else { return false }
        let r = objects.records.pointer(Int(grant.object.index))
        guard !r.pointee.deleted, r.pointee.bridge != .blob, let ring = r.pointee.ring else { return false }
        if _slowPath(r.pointee.heldFrames > 0), let handle = ring.oldestHandle() {
            giveBackHeldFrame(handle, of: Int(grant.object.index))  // the message was read in the frame it came in
        }
        ring.release()
        streamTransactionEnded(r, grant.object, ring, writer: false)
        return true
    }

    /// The bookkeeping after a fast `endWrite` published (`writer`) or a fast
    /// `endRead` released a message: the call and the message counted, the
    /// side's transaction closed, the version moved on for waiters, and the
    /// other side's instance woken if it may sleep.
    @inline(__always)
    func streamTransactionEnded(
        _ r: UnsafeMutablePointer<ObjectRecord>, _ object: ObjectID, _ ring: StreamRing, writer: Bool
    ) {
        counters.calls &+= 1
        if r.pointee.crossInstance { wakePeer(of: ring, writer: !writer) }
        r.pointee.openTransactions -= 1
        if writer {
            r.pointee.writerOpen = false
            counters.messagesOut &+= 1
        } else {
            r.pointee.readerOpen = false
            counters.messagesIn &+= 1
        }
        r.pointee.version &+= 1
        markDirty(object)
    }

    /// Why I/O on a record without the means for it is refused: a stand-in for an
    /// instance held elsewhere, or the wrong kind.
    @inline(never)
    func unreachableHere(_ i: Int, _ call: Call) -> CallError {
        if let owner = objects.records[i].ownerElsewhere {
            return .invalidArgument(
                "\(call.rawValue): this \(objects.records[i].kind) is held by instance \(owner); only blobs held "
                    + "elsewhere are reachable from here so far"
            )
        }
        return .wrongKind(call, objects.records[i].kind)
    }

    /// The address of an object's own buffer, or `.wrongKind` for objects without one.
    @inline(__always)
    func bufferAddress(_ i: Int, _ call: Call) throws(CallError) -> UnsafeMutableRawPointer {
        guard let buffer = objects.records[i].buffer else { throw unreachableHere(i, call) }
        return pool.address(of: buffer)
    }

    /// A blob's write is committed: its shadow, which the write filled,
    /// becomes its buffer (readers see it from now), and the old buffer the
    /// next write's shadow. The version becomes even.
    @inline(__always)
    func commitShadow(_ r: UnsafeMutablePointer<ObjectRecord>, length: Int) {
        swap(&r.pointee.buffer, &r.pointee.shadow)
        r.pointee.length = length
        r.pointee.version &+= 1  // even: committed
    }

    /// The buffers of an object, for checking that a view lies in one of
    /// them (the zero-copy contract, checked by tests): a blob has two (the
    /// committed bytes and the shadow a write fills), a stream its ring.
    package func bufferRanges(of object: ObjectID) -> [Range<UInt>] {
        guard objects.exists(object) else { return [] }
        var ranges = bufferRange(of: object).map { [$0] } ?? []
        if let shadow = objects.records[Int(object.index)].shadow {
            let start = UInt(bitPattern: pool.address(of: shadow))
            ranges.append(start..<(start + UInt(shadow.capacity)))
        }
        return ranges
    }

    /// The range of an object's ring, or of its (committed) buffer.
    package func bufferRange(of object: ObjectID) -> Range<UInt>? {
        guard objects.exists(object) else { return nil }
        if let ring = objects.records[Int(object.index)].ring {
            let start = UInt(bitPattern: ring.base)
            return start..<(start + UInt(StreamRing.headerSize) + UInt(ring.depth) * UInt(ring.stride))
        }
        guard let buffer = objects.records[Int(object.index)].buffer else { return nil }
        let start = UInt(bitPattern: pool.address(of: buffer))
        return start..<(start + UInt(buffer.capacity))
    }
}
