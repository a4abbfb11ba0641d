package import DIOSCore
import DIOSMemory

/// One side of a local stream that a trusted task process works itself, in
/// its own mapping of the arena: the process reserves, publishes, peeks and
/// releases slots as an instance does, and the kernel only watches the side's
/// index move.
struct StreamMap {
    let task: TaskID
    let object: ObjectID
    let writer: Bool
    let ring: StreamRing
    /// The stream was shared with another instance before the map.
    let wasShared: Bool
    /// The side's index (published or released messages) when last looked at.
    var seen: UInt64
}

// Trusted task processes on streams whose side is held in a ring on this
// node: the data path without the instance. A stream between two tasks here
// is worked by both ends in the ring; a stream with its other end on another
// node is bridged, and the instance only moves messages between the ring
// and the wire (its pump sends what the process publishes; it delivers what
// arrives for the process to read). A process takes a side (`mapStream`) with one call through its
// channel; from then on its `beginRead`/`endRead`/`beginWrite`/`endWrite`
// are loads and stores on the ring in the arena, which it maps shared. The
// instance treats the side as it treats a side held by another instance (the
// ring counts as shared: its waiters are checked every turn, its peers woken
// by doorbell), and each turn it counts what the process moved, so versions,
// counters, waiters and the other side's instance see every message.
extension KernelInstance {
    /// Gives `task`'s process the write side (`writer`) or read side of the
    /// local stream `ref` names: the ring's offset in the arena and the
    /// largest message it may write. Refused unless the task is trusted, the
    /// side is held in a ring here (a local stream, the write side of one
    /// read on another node, or the read side of one written there), and no
    /// one holds that side open (`.busy`; another instance claimed it, too).
    package func mapStream(_ task: TaskID, _ ref: Ref, writer: Bool) throws(CallError) -> (
        offset: Int, maxMessage: Int
    ) {
        checkThread()
        counters.calls &+= 1
        let call: Call = writer ? .beginWrite : .beginRead
        guard isTrusted(task) else { throw .untrusted(call) }
        let (entry, i) = try resolve(task, ref, writer ? .write : .read)
        guard entry.kind == .stream else { throw .wrongKind(call, entry.kind) }
        let r = objects.records.pointer(i)
        // A stream read on another node: the process writes the ring here,
        // and the instance's bridge pump sends what it publishes. Written on
        // another node: the instance delivers into the ring, the process reads.
        let bridgeSide: Bridge = writer ? .sends : .receives
        guard let ring = r.pointee.ring, r.pointee.bridge == .none || r.pointee.bridge == bridgeSide else {
            throw .invalidArgument("this side of the stream is not held in a ring on this node")
        }
        guard !r.pointee.deleted else { throw .objectDeleted }
        guard !(writer ? r.pointee.writerOpen : r.pointee.readerOpen), ring.claim(writer: writer, for: claimID)
        else { throw .busy }
        // Messages kept in the frames they arrived in are addresses only this
        // instance may follow: copied into their slots before the ring is shared.
        if r.pointee.bridge == .receives { releaseHeldFrames(of: i, copyIn: true) }
        let wasShared = r.pointee.crossInstance
        r.pointee.crossInstance = true
        if writer {
            r.pointee.writerOpen = true
            r.pointee.writerMapped = true
        } else {
            r.pointee.readerOpen = true
            r.pointee.readerMapped = true
        }
        // The map holds the ring's memory as an open transaction would: a
        // delete while it lasts closes the ring and frees nothing.
        r.pointee.openTransactions += 1
        streamMaps.append(
            StreamMap(
                task: task, object: entry.object, writer: writer, ring: ring, wasShared: wasShared,
                seen: writer ? ring.published : ring.released))
        return (ring.base - pool.arena.base, min(entry.maxWriteSize, ring.maxMessage))
    }

    /// Takes back a side `task` mapped (`mapStream`).
    package func unmapStream(_ task: TaskID, _ ref: Ref, writer: Bool) throws(CallError) {
        checkThread()
        counters.calls &+= 1
        // The reference, not the object: a deleted stream's side is given back too.
        let entry = try referenceEntry(try taskIndex(task), ref)
        guard
            let n = streamMaps.firstIndex(where: { $0.task == task && $0.object == entry.object && $0.writer == writer }
            )
        else { throw .notInTransaction }
        endStreamMap(at: n)
    }

    /// Takes back every side `task` mapped: its process ended.
    package func unmapStreams(of task: TaskID) {
        checkThread()
        var n = 0
        while n < streamMaps.count {
            if streamMaps[n].task == task { endStreamMap(at: n) } else { n += 1 }
        }
    }

    /// How many sides task processes map on this instance.
    package var streamMapCount: Int { streamMaps.count }

    private func endStreamMap(at n: Int) {
        _ = catchUp(n)
        let m = streamMaps.remove(at: n)
        let i = Int(m.object.index)
        let r = objects.records.pointer(i)
        if m.writer {
            r.pointee.writerOpen = false
            r.pointee.writerMapped = false
        } else {
            r.pointee.readerOpen = false
            r.pointee.readerMapped = false
        }
        if !m.wasShared && !streamMaps.contains(where: { $0.object == m.object }) {
            r.pointee.crossInstance = false
        }
        r.pointee.openTransactions -= 1
        markDirty(m.object)
        if r.pointee.deleted && r.pointee.openTransactions == 0 { reclaim(m.object) }
    }

    /// Counts what the processes moved since the last turn: each message a
    /// begin and an end, the version moved on, waiters here and the other
    /// side's instance told. Returns how many sides moved.
    func serviceStreamMaps() -> Int {
        var moved = 0
        for n in streamMaps.indices where catchUp(n) { moved += 1 }
        return moved
    }

    /// Whether a process moved a side since the last look (checked before sleeping).
    var streamMapsMoved: Bool {
        streamMaps.contains { ($0.writer ? $0.ring.published : $0.ring.released) != $0.seen }
    }

    private func catchUp(_ n: Int) -> Bool {
        let m = streamMaps[n]
        let now = m.writer ? m.ring.published : m.ring.released
        let delta = now &- m.seen
        guard delta != 0 else { return false }
        streamMaps[n].seen = now
        let r = objects.records.pointer(Int(m.object.index))
        r.pointee.version &+= delta
        counters.calls &+= 2 &* delta
        if m.writer { counters.messagesOut &+= delta } else { counters.messagesIn &+= delta }
        markDirty(m.object)
        if _slowPath(r.pointee.bridge == .sends) {
            sendNow(m.object, m.ring)  // the pump would, a turn later
        } else {
            wakePeer(of: m.ring, writer: !m.writer)
        }
        return true
    }
}
