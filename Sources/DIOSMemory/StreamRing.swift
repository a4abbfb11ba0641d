public import CLinux

/// A single-producer/single-consumer ring of fixed-size message slots laid out
/// in arena memory: the stream's buffer itself.
///
/// The writer fills a slot in place and publishes it by storing the slot's
/// header — its length and its sequence number — with release ordering; the
/// reader polls the header of the slot it expects next, so a message crosses
/// between cores as the cache line(s) of its own slot and nothing else. The
/// reader releases slots by storing `head`, which the writer reads only when
/// its cached copy says the ring is full. Nothing is copied between them,
/// nothing is overwritten (a full ring refuses), and the two sides may be on
/// different kernel instances (threads): every shared word is written by one
/// side only.
///
/// Which instance writes and which reads is claimed in the header on first use
/// (compare-and-swap), so a ring never gets a second producer or consumer.
///
/// Layout (offsets from `base`):
///
///     0    producer line: tail (u64), cached head (u64)
///     64   consumer line: head (u64)
///     128  control line: writer claim (u32), reader claim (u32), closed (u32),
///          attached ends (u32), depth (u32), stride (u32), max message (u32)
///     256  slots: depth × stride bytes; each slot = header (u64: sequence << 32
///          | length), then the payload. Message n (from 0) is in slot n mod
///          depth with sequence (n + 1) mod 2³², so a slot's previous message
///          never looks like its next. Slots start on 128-byte boundaries (a
///          ring is allocated aligned to its size class), so a message of up
///          to 120 bytes lies in one 128-byte pair of cache lines, which the
///          L2 spatial prefetcher fetches together.
///
/// A message may also be held elsewhere (`publish(at:length:handle:)`): in a
/// buffer the producer keeps for it, such as the mbuf a frame from another
/// node arrived in, read there with no copy. Its slot's length has bit 31 set
/// (`heldElsewhere`) and its payload holds the message's address and the
/// buffer's handle (a u64 each). Only a ring whose two sides are on one
/// instance holds such messages: the handle means something to that instance
/// alone, which gives the buffer back when the message is released
/// (`oldestHandle`) or the ring goes (`forEachHandle`), or copies the messages
/// in before the ring is shared (`copyInHeldMessages`).
public struct StreamRing: @unchecked Sendable {
    public static let headerSize = 256
    public static let slotHeader = 8
    @usableFromInline static let headerBytes = 256
    @usableFromInline static let slotHeaderBytes = 8
    /// In a slot's length: the message is held elsewhere (see above).
    @usableFromInline static let heldElsewhere: UInt32 = 1 << 31

    /// The ring's first byte, in the arena.
    public let base: UnsafeMutableRawPointer
    public let depth: UInt64
    public let stride: Int
    public let maxMessage: Int

    // The data-path methods are @inlinable so the kernel's calls compile to a
    // few loads and stores, not calls into this module.

    /// The bytes a ring needs: header plus `depth` (a power of two) slots.
    public static func byteSize(messageSize: Int, depth: Int) -> Int {
        headerSize + depth * stride(messageSize: messageSize)
    }

    public static func stride(messageSize: Int) -> Int { (slotHeader + messageSize + 63) / 64 * 64 }

    /// Lays a new ring out over zeroed memory at `base`.
    public static func initialize(at base: UnsafeMutableRawPointer, messageSize: Int, depth: Int) -> StreamRing {
        precondition(depth > 0 && depth & (depth - 1) == 0, "ring depth must be a power of two")
        let ring = StreamRing(
            base: base, depth: UInt64(depth), stride: stride(messageSize: messageSize), maxMessage: messageSize)
        ring.u32(at: 144).pointee = UInt32(depth)
        ring.u32(at: 148).pointee = UInt32(ring.stride)
        ring.u32(at: 152).pointee = UInt32(messageSize)
        ring.u32(at: 140).pointee = 1  // one end attached: the creator's
        return ring
    }

    /// The ring already laid out at `base` (another instance's view of it).
    public static func attach(at base: UnsafeMutableRawPointer) -> StreamRing {
        let depth = base.load(fromByteOffset: 144, as: UInt32.self)
        let stride = base.load(fromByteOffset: 148, as: UInt32.self)
        let max = base.load(fromByteOffset: 152, as: UInt32.self)
        return StreamRing(base: base, depth: UInt64(depth), stride: Int(stride), maxMessage: Int(max))
    }

    @usableFromInline
    init(base: UnsafeMutableRawPointer, depth: UInt64, stride: Int, maxMessage: Int) {
        self.base = base
        self.depth = depth
        self.stride = stride
        self.maxMessage = maxMessage
    }

    @inlinable @inline(__always) func u64(at offset: Int) -> UnsafeMutablePointer<UInt64> {
        (base + offset).assumingMemoryBound(to: UInt64.self)
    }

    @inlinable @inline(__always) func u32(at offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    @inlinable @inline(__always) func slot(_ index: UInt64) -> UnsafeMutableRawPointer {
        // Wrapping arithmetic: the masked index is below `depth`, and the ring
        // (header plus depth × stride bytes) was mapped whole, so nothing here
        // can overflow; checked arithmetic would add three branches per call.
        base + (Self.headerBytes &+ Int(truncatingIfNeeded: index & (depth &- 1)) &* stride)
    }

    // MARK: Claims

    /// Claims the writer (or reader) side for `instance` (any non-zero number).
    /// True when the side is, or now becomes, this instance's.
    @inlinable @inline(__always)
    public func claim(writer: Bool, for instance: UInt32) -> Bool {
        let p = u32(at: writer ? 128 : 132)
        let current = clinux_load_acquire_u32(p)
        if current == instance { return true }
        return current == 0 && clinux_cas_u32(p, 0, instance) != 0
    }

    /// The instance holding a side, or 0.
    @inlinable public func claimant(writer: Bool) -> UInt32 { clinux_load_acquire_u32(u32(at: writer ? 128 : 132)) }

    /// Marks the ring closed: the other side sees `isClosed` and stops.
    public func close() { clinux_store_release_u32(u32(at: 136), 1) }
    @inlinable public var isClosed: Bool { clinux_load_acquire_u32(u32(at: 136)) != 0 }

    /// Counts ends (objects on instances) attached to the ring; returns the count after.
    @discardableResult
    public func adjustEnds(by delta: Int32) -> UInt32 {
        clinux_fetch_add_u32(u32(at: 140), delta) &+ UInt32(bitPattern: delta)
    }

    // MARK: Producer

    /// The next free slot's payload, or nil when the ring is full. Producer only.
    @inlinable @inline(__always)
    public func reserve() -> UnsafeMutableRawPointer? {
        let tail = u64(at: 0).pointee  // only the producer writes tail
        if tail &- u64(at: 8).pointee >= depth {
            // Cached head says full: refresh it from the consumer's line.
            let head = clinux_load_acquire_u64(u64(at: 64))
            u64(at: 8).pointee = head
            if tail &- head >= depth { return nil }
        }
        return slot(tail) + Self.slotHeaderBytes
    }

    /// Publishes the reserved slot with `length` payload bytes. Producer only.
    @inlinable @inline(__always)
    public func publish(length: Int) {
        let tail = u64(at: 0).pointee
        let header = UInt64(truncatingIfNeeded: tail &+ 1) << 32 | UInt64(UInt32(length))
        clinux_store_release_u64(slot(tail).assumingMemoryBound(to: UInt64.self), header)
        clinux_store_release_u64(u64(at: 0), tail &+ 1)  // for `count` and `hasSpace`
    }

    /// Publishes the reserved slot as a message of `length` bytes at `data`, in
    /// a buffer the producer keeps (`handle`) until the consumer has released
    /// the message: nothing is copied. Producer only; both sides on one instance.
    @inlinable @inline(__always)
    public func publish(at data: UnsafeRawPointer, length: Int, handle: OpaquePointer) {
        let tail = u64(at: 0).pointee
        let s = slot(tail)
        s.storeBytes(of: UInt(bitPattern: data), toByteOffset: Self.slotHeaderBytes, as: UInt.self)
        s.storeBytes(of: UInt(bitPattern: handle), toByteOffset: Self.slotHeaderBytes + 8, as: UInt.self)
        let header = UInt64(truncatingIfNeeded: tail &+ 1) << 32 | UInt64(UInt32(length) | Self.heldElsewhere)
        clinux_store_release_u64(s.assumingMemoryBound(to: UInt64.self), header)
        clinux_store_release_u64(u64(at: 0), tail &+ 1)
    }

    /// Whether a slot is free now. Either side (or a third party) may ask.
    @inlinable @inline(__always)
    public func hasSpace() -> Bool {
        clinux_load_acquire_u64(u64(at: 0)) &- clinux_load_acquire_u64(u64(at: 64)) < depth
    }

    // MARK: Consumer

    /// The oldest published message (payload and length), or nil when empty. Consumer only.
    ///
    /// A slot's header may have been written by a task process that maps the
    /// arena, so it is not believed: the length is cut to the slot, and a
    /// message held elsewhere is followed only with `followingHeld` (the
    /// consumer's instance knows it put such messages in the ring, and no
    /// process writes a ring that holds them). Otherwise the slot's own bytes
    /// are the message.
    @inlinable @inline(__always)
    public func peek(followingHeld: Bool = false) -> (UnsafeMutableRawPointer, Int)? {
        let head = u64(at: 64).pointee  // only the consumer writes head
        let s = slot(head)
        let header = clinux_load_acquire_u64(s.assumingMemoryBound(to: UInt64.self))
        guard UInt32(truncatingIfNeeded: header >> 32) == UInt32(truncatingIfNeeded: head &+ 1) else { return nil }
        let length = UInt32(truncatingIfNeeded: header)
        if _slowPath(length & Self.heldElsewhere != 0) && followingHeld {
            let data = s.load(fromByteOffset: Self.slotHeaderBytes, as: UInt.self)
            return (UnsafeMutableRawPointer(bitPattern: data)!, Int(length & ~Self.heldElsewhere))
        }
        return (s + Self.slotHeaderBytes, min(Int(length & ~Self.heldElsewhere), stride &- Self.slotHeaderBytes))
    }

    /// The handle of the oldest message's buffer when it is held elsewhere,
    /// else nil (also when there is none). Consumer only: call it before
    /// `release()` and give the buffer back.
    @inlinable
    public func oldestHandle() -> OpaquePointer? {
        let head = u64(at: 64).pointee
        return handle(in: slot(head), sequence: head &+ 1)
    }

    @inlinable
    func handle(in s: UnsafeMutableRawPointer, sequence: UInt64) -> OpaquePointer? {
        let header = clinux_load_acquire_u64(s.assumingMemoryBound(to: UInt64.self))
        guard UInt32(truncatingIfNeeded: header >> 32) == UInt32(truncatingIfNeeded: sequence),
            UInt32(truncatingIfNeeded: header) & Self.heldElsewhere != 0
        else { return nil }
        return OpaquePointer(bitPattern: s.load(fromByteOffset: Self.slotHeaderBytes + 8, as: UInt.self))
    }

    /// Calls `body` with the handle of every unreleased message held elsewhere,
    /// oldest first (the ring is going: give the buffers back). Only while
    /// neither side runs, or from the one instance holding both.
    public func forEachHandle(_ body: (OpaquePointer) -> Void) {
        let tail = clinux_load_acquire_u64(u64(at: 0))
        var n = clinux_load_acquire_u64(u64(at: 64))
        while n != tail {
            if let h = handle(in: slot(n), sequence: n &+ 1) { body(h) }
            n &+= 1
        }
    }

    /// Copies every unreleased message held elsewhere into its own slot, and
    /// gives each buffer back through `release`: afterwards the ring holds its
    /// messages itself and may be shared with another instance. Only from the
    /// one instance holding both sides, with no read of the oldest open.
    public func copyInHeldMessages(release: (OpaquePointer) -> Void) {
        let tail = clinux_load_acquire_u64(u64(at: 0))
        var n = clinux_load_acquire_u64(u64(at: 64))
        while n != tail {
            let s = slot(n)
            if let h = handle(in: s, sequence: n &+ 1) {
                let header = s.load(as: UInt64.self)
                let length = Int(UInt32(truncatingIfNeeded: header) & ~Self.heldElsewhere)
                let data = UnsafeRawPointer(bitPattern: s.load(fromByteOffset: Self.slotHeaderBytes, as: UInt.self))!
                precondition(
                    length <= stride - Self.slotHeaderBytes, "a message held elsewhere is larger than its slot")
                // The address and handle are read: the message may cover them.
                if length > 0 { (s + Self.slotHeaderBytes).copyMemory(from: data, byteCount: length) }
                release(h)
                clinux_store_release_u64(s.assumingMemoryBound(to: UInt64.self), header & ~UInt64(Self.heldElsewhere))
            }
            n &+= 1
        }
    }

    /// Releases the oldest message's slot to the producer. Consumer only.
    @inlinable @inline(__always)
    public func release() {
        clinux_store_release_u64(u64(at: 64), u64(at: 64).pointee &+ 1)
    }

    /// Whether a message is waiting. Either side (or a third party) may ask.
    @inlinable @inline(__always)
    public func hasMessage() -> Bool {
        let head = clinux_load_acquire_u64(u64(at: 64))
        let header = clinux_load_acquire_u64(slot(head).assumingMemoryBound(to: UInt64.self))
        return UInt32(truncatingIfNeeded: header >> 32) == UInt32(truncatingIfNeeded: head &+ 1)
    }

    /// Messages published since the ring was made (the producer's index).
    public var published: UInt64 { clinux_load_acquire_u64(u64(at: 0)) }
    /// Messages released since the ring was made (the consumer's index).
    public var released: UInt64 { clinux_load_acquire_u64(u64(at: 64)) }

    /// Messages published and not yet released (either side may ask; approximate
    /// while the other side runs).
    public var count: UInt64 { clinux_load_acquire_u64(u64(at: 0)) &- clinux_load_acquire_u64(u64(at: 64)) }
}
