import CLinux
public import DIOSCore
import DIOSMemory
import DIOSWire

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
        if _slowPath(tracing) { return try tracedBeginRead(task, ref, flags: flags) }
        if let grant = nextMessageNow(task, ref) { return grant }
        return try beginReadInGeneral(task, ref, flags: flags)
    }

    @inline(never)
    func tracedBeginRead(_ task: TaskID, _ ref: Ref, flags: Flags) throws(CallError) -> IOGrant {
        do throws(CallError) {
            let grant: IOGrant
            if let fast = nextMessageNow(task, ref) {
                grant = fast
            } else {
                grant = try beginReadInGeneral(task, ref, flags: flags)
            }
            traceBegin(.beginRead, task, grant, bytes: grant.count)
            return grant
        } catch {
            traceRefused(.beginRead, task, ref, error, bytes: 0)
            throw error
        }
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
                return try beginPeerRead(entry, i, strong: flags.contains(.strong))
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
            guard let (payload, count) = ring.peek(followingHeld: r.pointee.heldFrames > 0) else {
                throw ring.isClosed ? closedStreamError(i) : .wouldBlock
            }
            r.pointee.readerOpen = true
            grant = IOGrant(
                object: entry.object, base: payload, count: count, version: r.pointee.version, mode: .stream)
        case .timer, .task:
            guard r.pointee.ready else {
                throw r.pointee.bridge == .elsewhere ? unreachableHere(i, .beginRead) : .wouldBlock
            }
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
        if _slowPath(tracing) {
            let name = tracedName(grant)
            let held = grant.mode == .stream && consumeNow(grant) || endReadInGeneral(grant)
            traceEnd(.endRead, bytes: grant.count, held: held, name: name)
            return held
        }
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
        if _slowPath(r.pointee.bridge == .blob) { return endPeerRead(grant, i) }
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
            if grant.mode == .strong { _ = endPeerRead(grant, i) } else { objects.records[i].openTransactions -= 1 }
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
        if _slowPath(tracing) { return try tracedBeginWrite(task, ref, size: size, flags: flags) }
        if let grant = reserveSlotNow(task, ref, size: size) { return grant }
        return try beginWriteInGeneral(task, ref, size: size, flags: flags)
    }

    @inline(never)
    func tracedBeginWrite(_ task: TaskID, _ ref: Ref, size: Int, flags: Flags) throws(CallError) -> IOGrant {
        do throws(CallError) {
            let grant: IOGrant
            if let fast = reserveSlotNow(task, ref, size: size) {
                grant = fast
            } else {
                grant = try beginWriteInGeneral(task, ref, size: size, flags: flags)
            }
            traceBegin(.beginWrite, task, grant, bytes: size)
            return grant
        } catch {
            traceRefused(.beginWrite, task, ref, error, bytes: size)
            throw error
        }
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
                return try beginPeerWrite(entry, i, size: size, strong: flags.contains(.strong))
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
        if _slowPath(tracing) {
            let name = tracedName(grant)
            let held = endWriteUntraced(grant, length: length)
            traceEnd(.endWrite, bytes: length, held: held, name: name)
            return held
        }
        return endWriteUntraced(grant, length: length)
    }

    @inline(__always)
    func endWriteUntraced(_ grant: IOGrant, length: Int) -> Bool {
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
        if _slowPath(r.pointee.bridge == .blob) { return endPeerWrite(grant, i, length: length, commit: true) }
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
            _ = endPeerWrite(grant, i, length: 0, commit: false)
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
}
