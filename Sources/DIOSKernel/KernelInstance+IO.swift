import CLinux
public import DIOSCore
import DIOSMemory
import DIOSWire

/// An open I/O transaction as the kernel issued it: a view into the object's own
/// buffer and what `end` needs to validate it. Only the kernel makes these; the
/// `DIOS` module wraps each in a `~Copyable` transaction that is ended once.
@usableFromInline
package struct IOGrant: @unchecked Sendable {
    package let object: ObjectID
    /// The first byte of the view, inside the object's buffer in the arena.
    @usableFromInline package let base: UnsafeMutableRawPointer
    /// The object's version when the transaction began (weak reads validate it).
    package let version: UInt64
    /// The view's size in 32 bits (no view is over `BufferPool.maximumSize`,
    /// 2 MiB) and the mode beside it: the grant is four words, which Swift
    /// returns in registers (five went through memory, on every begin call).
    @usableFromInline let count32: UInt32
    package let mode: IOMode

    @usableFromInline package var count: Int { Int(count32) }

    package init(object: ObjectID, base: UnsafeMutableRawPointer, count: Int, version: UInt64, mode: IOMode) {
        assert(count >= 0 && count <= Int(UInt32.max), "a view of \(count) bytes")
        self.object = object
        self.base = base
        self.version = version
        self.count32 = UInt32(truncatingIfNeeded: count)
        self.mode = mode
    }
}

/// How a transaction holds its object.
package enum IOMode: UInt8, Sendable {
    /// Optimistic: validated by version at the end (a blob read or write).
    case weak
    /// A shared (read) or exclusive (write) hold on a blob.
    case strong
    /// A stream slot: the next message (read) or a reserved slot (write).
    case stream
    /// A timer's or task's value.
    case value
    /// A message for another node written in place in a transport frame
    /// (`objects.records[i].lentFrame`), sent from there by `endWrite`.
    case frame
}

/// `beginRead`/`endRead`/`beginWrite`/`endWrite`. These are the data path:
/// no allocation, no locks, no suspension — a call that cannot proceed now
/// throws `.wouldBlock` and the task selects on the reference to wait.
extension KernelInstance {
    /// `beginRead`: a read view into the object's buffer.
    ///
    /// Blobs: weak (default) remembers the version; `.strong` takes a shared hold,
    /// refused with `.wouldBlock` while a writer is open. Streams: the next message,
    /// `.wouldBlock` when empty. Timers and tasks: their value once fired / exited.
    @usableFromInline
    package func beginRead(_ task: TaskID, _ ref: Ref, flags: Flags) throws(CallError) -> IOGrant {
        if let grant = nextMessageNow(task, ref) { return grant }
        return try beginReadInGeneral(task, ref, flags: flags)
    }

    /// `beginRead` in full: every kind and every refusal, where the stream fast
    /// path (below) hands over whatever is not its common case.
    @inline(never)
    func beginReadInGeneral(_ task: TaskID, _ ref: Ref, flags: Flags) throws(CallError) -> IOGrant {
        checkThread()
        counters.calls &+= 1
        let (entry, i) = try resolve(task, ref, .read)
        // The record by pointer (see `RecordTable.pointer`): nothing below
        // creates an object before its last use.
        let r = objects.records.pointer(i)
        let grant: IOGrant
        switch entry.kind {
        case .blob:
            if _slowPath(r.pointee.bridge == .blob) {
                return try beginRemoteRead(entry, i, strong: flags.contains(.strong))
            }
            let base = try bufferAddress(i, .beginRead)
            let strong = flags.contains(.strong)
            if strong {
                guard !r.pointee.writerOpen else { throw .wouldBlock }
                r.pointee.sharedHolds += 1
            }
            grant = IOGrant(
                object: entry.object, base: base, count: r.pointee.length,
                version: r.pointee.version, mode: strong ? .strong : .weak)
        case .stream:
            guard let ring = r.pointee.ring else { throw unreachableHere(i, .beginRead) }
            guard ring.claim(writer: false, for: claimID) else { throw .busy }
            guard !r.pointee.readerOpen, r.pointee.bridge != .sends else { throw .busy }
            guard let (payload, count) = ring.peek() else { throw ring.isClosed ? closedStreamError(i) : .wouldBlock }
            r.pointee.readerOpen = true
            grant = IOGrant(
                object: entry.object, base: payload, count: count, version: r.pointee.version, mode: .stream)
        case .timer, .task:
            guard r.pointee.ready else { throw r.pointee.bridge == .elsewhere ? unreachableHere(i, .beginRead) : .wouldBlock }
            let base = try bufferAddress(i, .beginRead)
            grant = IOGrant(
                object: entry.object, base: base, count: r.pointee.length,
                version: r.pointee.version, mode: .value)
        case .program:
            throw .wrongKind(.beginRead, entry.kind)
        }
        r.pointee.openTransactions += 1
        return grant
    }

    /// `endRead`: whether what was read is consistent. Weak blob reads are false
    /// when a write was committed (or was open) since `beginRead`; every read is
    /// false when the object was deleted meanwhile. Ending a stream read consumes
    /// the message.
    @usableFromInline
    package func endRead(_ grant: IOGrant) -> Bool {
        if grant.mode == .stream, consumeNow(grant) { return true }
        return endReadInGeneral(grant)
    }

    /// `endRead` in full: every kind and every refusal, where the stream fast
    /// path (below) hands over whatever is not its common case.
    @inline(never)
    func endReadInGeneral(_ grant: IOGrant) -> Bool {
        checkThread()
        counters.calls &+= 1
        let i = Int(grant.object.index)
        guard objects.exists(grant.object) else { return false }
        let r = objects.records.pointer(i)  // nothing below creates an object
        if _slowPath(r.pointee.bridge == .blob) { return endRemoteRead(grant, i) }
        r.pointee.openTransactions -= 1
        let deleted = r.pointee.deleted
        let consistent: Bool
        switch grant.mode {
        case .weak:
            let v = r.pointee.version
            consistent = !deleted && v == grant.version && v & 1 == 0
        case .strong:
            r.pointee.sharedHolds -= 1
            if r.pointee.sharedHolds == 0 { markDirty(grant.object) }
            consistent = !deleted
        case .stream:
            r.pointee.readerOpen = false
            if !deleted, let ring = r.pointee.ring {
                if _slowPath(r.pointee.heldFrames > 0), let handle = ring.oldestHandle() {
                    giveBackHeldFrame(handle, of: i)  // the message was read in the frame it came in
                }
                ring.release()
                r.pointee.version &+= 1
                counters.messagesIn &+= 1
                markDirty(grant.object)
                if r.pointee.crossInstance { wakePeer(of: ring, writer: true) }
            }
            consistent = !deleted
        case .value, .frame:
            consistent = !deleted
        }
        if deleted && r.pointee.openTransactions == 0 { reclaim(grant.object) }
        return consistent
    }

    /// A read transaction dropped without `endRead`: releases its hold, leaving a
    /// stream message unconsumed.
    package func abandonRead(_ grant: IOGrant) {
        checkThread()
        let i = Int(grant.object.index)
        guard objects.exists(grant.object) else { return }
        if objects.records[i].bridge == .blob {  // a proxy: a strong hold is released at the owner
            if grant.mode == .strong { _ = endRemoteRead(grant, i) } else { objects.records[i].openTransactions -= 1 }
            return
        }
        objects.records[i].openTransactions -= 1
        switch grant.mode {
        case .strong:
            objects.records[i].sharedHolds -= 1
            markDirty(grant.object)
        case .stream:
            objects.records[i].readerOpen = false
            markDirty(grant.object)
        case .weak, .value, .frame:
            break
        }
        if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(grant.object) }
    }

    /// `beginWrite`: a writable view of `size` bytes into the target buffer.
    ///
    /// Blobs: the view is the blob's shadow buffer, holding its committed bytes
    /// to start with; `endWrite` swaps it in, so readers never see a write
    /// until it is committed, and a dropped one never. Weak writers never
    /// wait for weak readers (they fail validation instead); any writer waits for
    /// strong read holds (`.wouldBlock`), and one writer at a time (`.busy`).
    /// Streams: the next free slot (`.wouldBlock` when full — never overwritten).
    /// Timers: 8 bytes, a little-endian UInt64 of nanoseconds that re-arms it.
    @usableFromInline
    package func beginWrite(_ task: TaskID, _ ref: Ref, size: Int, flags: Flags) throws(CallError) -> IOGrant {
        if let grant = reserveSlotNow(task, ref, size: size) { return grant }
        return try beginWriteInGeneral(task, ref, size: size, flags: flags)
    }

    /// `beginWrite` in full: every kind and every refusal, where the stream fast
    /// path (below) hands over whatever is not its common case.
    @inline(never)
    func beginWriteInGeneral(_ task: TaskID, _ ref: Ref, size: Int, flags: Flags) throws(CallError) -> IOGrant {
        checkThread()
        counters.calls &+= 1
        let (entry, i) = try resolve(task, ref, .write)
        let r = objects.records.pointer(i)  // nothing below creates an object
        guard size >= 0 else { throw .invalidArgument("write size \(size)") }
        guard size <= entry.maxWriteSize else { throw .tooLarge(requested: size, maximum: entry.maxWriteSize) }
        guard !r.pointee.writerOpen else { throw .busy }
        let grant: IOGrant
        switch entry.kind {
        case .blob:
            if _slowPath(r.pointee.bridge == .blob) {
                return try beginRemoteWrite(entry, i, size: size, strong: flags.contains(.strong))
            }
            guard let shadow = r.pointee.shadow, let committed = r.pointee.buffer else {
                throw unreachableHere(i, .beginWrite)
            }
            guard r.pointee.sharedHolds == 0 else { throw .wouldBlock }
            // The write fills the shadow, which starts as the committed bytes
            // (a write may change a few of them); `endWrite` swaps it in.
            let base = pool.address(of: shadow)
            let kept = min(size, r.pointee.length)
            if kept > 0 { base.copyMemory(from: pool.address(of: committed), byteCount: kept) }
            let strong = flags.contains(.strong)
            r.pointee.exclusive = strong
            r.pointee.version &+= 1  // odd: a write is open
            grant = IOGrant(
                object: entry.object, base: base, count: size, version: r.pointee.version,
                mode: strong ? .strong : .weak)
        case .stream:
            guard let ring = r.pointee.ring else { throw unreachableHere(i, .beginWrite) }
            guard ring.claim(writer: true, for: claimID), r.pointee.bridge != .receives else { throw .busy }
            guard !ring.isClosed else { throw closedStreamError(i) }
            let loan = _slowPath(r.pointee.bridge == .sends) ? lendFrame(r, ring, size: size) : .none
            if case .lent(let frame) = loan {
                // Read on another node: written in place in the frame that carries it.
                r.pointee.lentFrame = frame
                grant = IOGrant(
                    object: entry.object, base: frame.bytes + FrameHeader.size + RemoteMessage.streamDataPrefix,
                    count: size, version: r.pointee.version, mode: .frame)
            } else if _slowPath(loan == .full) {
                waitForFrame(entry.object)
                throw .wouldBlock
            } else {
                guard let payload = ring.reserve() else { throw .wouldBlock }
                grant = IOGrant(
                    object: entry.object, base: payload, count: size, version: r.pointee.version, mode: .stream)
            }
        case .timer:
            guard size == 8 else { throw .invalidArgument("a timer is written with 8 bytes, got \(size)") }
            let base = try bufferAddress(i, .beginWrite)
            grant = IOGrant(object: entry.object, base: base, count: 8, version: r.pointee.version, mode: .value)
        case .task, .program:
            throw .wrongKind(.beginWrite, entry.kind)
        }
        r.pointee.writerOpen = true
        r.pointee.openTransactions += 1
        return grant
    }

    /// `endWrite`: publishes the first `length` bytes of the view. True when the
    /// write is committed; false when the object was deleted meanwhile.
    @usableFromInline
    package func endWrite(_ grant: IOGrant, length: Int) -> Bool {
        if grant.mode == .stream, publishNow(grant, length: length) { return true }
        if _slowPath(grant.mode == .frame), sendFrameNow(grant, length: length) { return true }
        return endWriteInGeneral(grant, length: length)
    }

    /// `endWrite` in full: every kind and every refusal, where the stream fast
    /// path (below) hands over whatever is not its common case.
    @inline(never)
    func endWriteInGeneral(_ grant: IOGrant, length: Int) -> Bool {
        checkThread()
        counters.calls &+= 1
        let i = Int(grant.object.index)
        guard objects.exists(grant.object) else { return false }
        precondition(length >= 0 && length <= grant.count, "endWrite length outside the view")
        let r = objects.records.pointer(i)  // nothing below creates an object
        if _slowPath(r.pointee.bridge == .blob) { return endRemoteWrite(grant, i, length: length, commit: true) }
        r.pointee.openTransactions -= 1
        r.pointee.writerOpen = false
        r.pointee.exclusive = false
        let deleted = r.pointee.deleted
        if !deleted {
            switch grant.mode {
            case .weak, .strong:
                commitShadow(r, length: length)
            case .stream:
                if let ring = r.pointee.ring {
                    // The peer failed since beginWrite: the message cannot reach it.
                    if _slowPath(r.pointee.remoteFailure != nil) {
                        markDirty(grant.object)
                        return false  // the reserved slot was never published
                    }
                    ring.publish(length: length)
                    if r.pointee.crossInstance { wakePeer(of: ring, writer: false) }
                    if _slowPath(r.pointee.bridge == .sends) { sendNow(grant.object, ring) }
                }
                r.pointee.version &+= 1
                counters.messagesOut &+= 1
            case .value:
                let ns = UInt64(littleEndian: grant.base.loadUnaligned(as: UInt64.self))
                r.pointee.version &+= 2
                arm(grant.object, after: ns)
            case .frame:
                guard sendLentFrame(i, grant, length: length) else {
                    markDirty(grant.object)
                    return false  // the peer failed since beginWrite
                }
                r.pointee.version &+= 1
                counters.messagesOut &+= 1
            }
            markDirty(grant.object)
        } else if grant.mode == .frame {
            returnLentFrame(i)
        }
        if deleted && r.pointee.openTransactions == 0 { reclaim(grant.object) }
        return !deleted
    }

    /// A write transaction dropped without `endWrite`: nothing is published. A
    /// blob's write filled its shadow, never its committed bytes; its version
    /// still moves on (to even), so readers that overlapped it fail validation
    /// as they would for a committed write.
    package func abandonWrite(_ grant: IOGrant) {
        checkThread()
        let i = Int(grant.object.index)
        guard objects.exists(grant.object) else { return }
        if objects.records[i].bridge == .blob {
            _ = endRemoteWrite(grant, i, length: 0, commit: false)
            return
        }
        objects.records[i].openTransactions -= 1
        objects.records[i].writerOpen = false
        objects.records[i].exclusive = false
        if grant.mode == .frame { returnLentFrame(i) }
        if grant.mode == .weak || grant.mode == .strong { objects.records[i].version &+= 1 }
        markDirty(grant.object)
        if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(grant.object) }
    }

    // MARK: The stream fast path

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
            let ring = r.pointee.ring, ring.claimant(writer: false) == claimID, let (payload, count) = ring.peek()
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
    /// Inlined: out of line, its call's spills cost more than its body (at
    /// stop 15 a remote `beginWrite` took 479 instructions against 443,
    /// callgrind's `wire`), and a fast path that left such writes to the
    /// general path paid for checking everything twice (534). The local case
    /// pays for the branch (121 instructions against 105 without it). Since
    /// stop 16 the loan asks the record's session directly (`lendFrame`):
    /// a remote `beginWrite` is 396, the session's part included.
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
            return .invalidArgument("\(call.rawValue): this \(objects.records[i].kind) is held by instance \(owner); only blobs held elsewhere are reachable from here so far")
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
