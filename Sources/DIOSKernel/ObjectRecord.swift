import DIOSCore
import DIOSMemory
import DIOSWire

/// One object instance held by a kernel instance. All kinds share one record
/// shape, kept in a flat array: the data path indexes it, never allocates.
///
/// Why one shape and not a record per kind: an `ObjectID` is a slot index, and
/// every call resolves a reference to a slot and then reads a few fields in
/// place through `RecordTable.pointer` (the stream fast path: `ring`, `bridge`,
/// `readerOpen`, a version). A per-kind record would be an enum payload (read
/// by copying it out and writing it back, or switched on before every field)
/// or a table per kind (a second index to keep and check). The fields are
/// grouped by kind below; a field that means nothing for a kind keeps its
/// default, and "none" is `nil`, never a sentinel number.
struct ObjectRecord {
    var generation: UInt32 = 1
    var live = false
    var kind: ObjectKind = .blob
    var name = Name(words: (0, 0, 0, 0))
    var persistent = false
    /// Rights a `lookup` of the name grants.
    var lookupRights: Rights = .all
    var buffer: ArenaBuffer? = nil
    /// Blob held here: the buffer an open write fills, as large as `buffer`.
    /// `endWrite` swaps the two, so `buffer` only ever holds committed bytes
    /// and a write dropped (or abandoned by a failed peer) leaves no trace.
    var shadow: ArenaBuffer? = nil
    /// Blob: a seqlock-style version, odd while a write is open (readers that
    /// overlap a write fail validation, committed or not). Others: bumped
    /// on every committed change, so waiters can tell something happened.
    var version: UInt64 = 0
    /// Blob: bytes written. Timer/task: bytes readable once ready.
    var length = 0
    var maxWriteSize = 0
    /// Strong readers holding the object.
    var sharedHolds: Int32 = 0
    /// A writer (weak or strong) has an open transaction.
    var writerOpen = false
    /// The open write is strong (excludes readers).
    var exclusive = false
    /// A stream reader has an open transaction.
    var readerOpen = false
    /// A trusted task process works the stream's read (write) side itself;
    /// `readerOpen` (`writerOpen`) stays set meanwhile, so no one else does.
    var readerMapped = false
    var writerMapped = false
    /// Open transactions of any kind; the buffer is released only when this is 0.
    var openTransactions: Int32 = 0
    /// Deleted, but transactions are still open on the buffer.
    var deleted = false

    // Stream: its ring (in this instance's buffer, or another's), whether an end
    // is on another instance, and — for an end attached here — who owns the ring.
    var ring: StreamRing? = nil
    var crossInstance = false
    var ringOwner: (instance: Int, object: ObjectID)? = nil
    /// Deleted here, but the ring's memory waits for the other instances' ends.
    var awaitingEnds = false

    // A stream with one end on another node: the kernel moves its messages
    // between the ring here and the wire. `bridge` says which way.
    var bridge: Bridge = .none
    var remotePeer = InstanceID(node: 0, core: 0)
    /// A bridged stream's session with `remotePeer`, unretained: the stream
    /// fast path sends and borrows frames through it without finding it in
    /// the endpoint each message. The endpoint keeps its sessions for its
    /// life, and an instance's wire is attached once and never replaced.
    var remoteSession: Unmanaged<Session>? = nil
    /// The stream object on the node that handed the stream over (keys its messages).
    var remoteOrigin = ObjectID(index: 0, generation: 0)
    /// Whether that node is this one.
    var originHere = false
    /// Set when the peer failed: why (the stream is closed with it).
    var remoteFailure: String? = nil
    /// The transport frame an open `beginWrite` writes in place (`IOMode.frame`).
    var lentFrame: TransportFrame? = nil
    /// Messages in the ring held in received frames, read in place
    /// (`StreamRing.publish(at:length:handle:)`): each is given back to the
    /// wire when read, or when the stream goes.
    var heldFrames: Int32 = 0
    /// Its writer was told `.wouldBlock` until the session lends frames again.
    var waitsForFrame = false
    /// An end let go of when its task exited (`retire`): reclaiming it does not
    /// close the stream for its other ends.
    var keepStreamOpen = false
    /// The proxy of the task on the other node this stream was handed to.
    var proxyOfBridge: ObjectID? = nil
    /// A blob here with a write open on behalf of this peer.
    var peerWriter: InstanceID? = nil
    /// Published in the name service under this insertion counter (0: not published).
    var nameTag: UInt64 = 0
    /// A stand-in's owner.
    var ownerElsewhere: InstanceID? = nil

    // Task proxy: a task started on a sibling instance (another core of this
    // node), by its index, stood for by this object.
    var siblingInstance: Int? = nil
    /// ... or on another node.
    var remoteNode: InstanceID? = nil
    var peerTask: TaskID? = nil
    var pendingPause: Bool? = nil
    var pendingStop = false

    // Timer: monotonic deadline; task: its id; program: index into the registry.
    var deadline: UInt64 = 0
    var ready = false
    var task = TaskID(index: 0, generation: 0)
    var program: Int? = nil

}

/// Which way the kernel moves a bridged stream's messages.
enum Bridge: UInt8 {
    case none
    /// The kernel reads the ring and sends its messages to the peer (the task
    /// on the other node reads them).
    case sends
    /// The kernel writes what the peer sends into the ring (the task on the
    /// other node writes).
    case receives
    /// A proxy for a blob held by the peer: its calls are remote calls.
    case blob
    /// A stand-in for an instance held elsewhere (found by `lookup`) that this
    /// kernel cannot reach for I/O: it answers `describe`, its I/O is refused.
    case elsewhere
}

/// The instance's objects: a slot array with generations and a free list, so an
/// `ObjectID` from a deleted object never reaches the next one in its slot.
struct ObjectStore: ~Copyable {
    var records: RecordTable
    var slots: SlotAllocator

    init(reserve: Int) {
        records = RecordTable(reserve: reserve)
        slots = SlotAllocator(reserve: reserve)
    }

    mutating func insert(_ record: ObjectRecord) -> ObjectID {
        var record = record
        record.live = true
        if let slot = slots.reusable() {
            record.generation = records[Int(slot)].generation
            records[Int(slot)] = record
            return ObjectID(index: slot, generation: record.generation)
        }
        record.generation = SlotAllocator.firstGeneration
        records.append(record)
        return ObjectID(index: UInt32(records.count - 1), generation: record.generation)
    }

    /// Whether `id` still names a live (not deleted) object.
    @inline(__always)
    func isLive(_ id: ObjectID) -> Bool {
        let i = Int(id.index)
        return i < records.count && records[i].generation == id.generation && records[i].live && !records[i].deleted
    }

    /// Whether `id` names the record in its slot (live or deleted-but-draining).
    @inline(__always)
    func exists(_ id: ObjectID) -> Bool {
        let i = Int(id.index)
        return i < records.count && records[i].generation == id.generation && records[i].live
    }

    /// Frees the slot; the generation bump makes every old id fail.
    mutating func release(_ id: ObjectID) {
        let i = Int(id.index)
        records[i].live = false
        records[i].deleted = false
        records[i].generation = slots.release(id.index, generation: records[i].generation)
    }

    var liveCount: Int { records.count - slots.freeCount }
}

/// The object records of one instance, in memory the table owns, reached by
/// pointer. Changing a field of an `Array` element held by a class re-checks
/// the array's uniqueness (a runtime call) on every write, several times per
/// data-path call; here a write is a store. Noncopyable: one owner, freed
/// once. A pointer into it stays valid until the next `append` (which may move
/// the records), so none is kept across calls.
struct RecordTable: ~Copyable {
    private var base: UnsafeMutablePointer<ObjectRecord>
    private(set) var count = 0
    private var capacity: Int

    init(reserve: Int) {
        capacity = max(reserve, 16)
        base = .allocate(capacity: capacity)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    subscript(i: Int) -> ObjectRecord {
        unsafeAddress {
            precondition(i >= 0 && i < count, "object record \(i) out of range")
            return UnsafePointer(base + i)
        }
        nonmutating unsafeMutableAddress {
            precondition(i >= 0 && i < count, "object record \(i) out of range")
            return base + i
        }
    }

    /// The record at `i` by pointer, bounds-checked once: for a data-path call
    /// that reads and writes several fields, each of which would otherwise
    /// re-check the bounds and reload the table (about a quarter of such a
    /// call's instructions). Valid until the next `append`, which may move the
    /// records: hold it only across code that creates no object.
    @inline(__always)
    func pointer(_ i: Int) -> UnsafeMutablePointer<ObjectRecord> {
        precondition(i >= 0 && i < count, "object record \(i) out of range")
        return base + i
    }

    var indices: Range<Int> { 0..<count }

    mutating func append(_ record: ObjectRecord) {
        if count == capacity {
            let bigger = UnsafeMutablePointer<ObjectRecord>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: base, count: count)
            base.deallocate()
            base = bigger
            capacity *= 2
        }
        (base + count).initialize(to: record)
        count += 1
    }

    /// The records, for a scan that changes none of them and appends nothing.
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<ObjectRecord>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }
}
