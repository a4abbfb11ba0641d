/// A buffer carved from an arena: its offset and its size class. The pool that
/// handed it out is the only one that may take it back.
public struct ArenaBuffer: Hashable, Sendable {
    public let offset: Int
    public let sizeClass: UInt8

    @inlinable public var capacity: Int { BufferPool.minimumSize << Int(sizeClass) }
}

/// A per-instance allocator over one region of the arena: power-of-two size
/// classes from 64 B to 2 MiB, each with a free list, carved from the region on
/// first use. One instance owns a pool and nothing else touches it, so it takes
/// no locks; in steady state (buffers reused) it does not allocate.
public struct BufferPool {
    public static let minimumSize = 64
    public static let maximumSize = 2 << 20
    static let classCount = 16  // 64 << 15 == 2 MiB

    public let arena: HugepageArena
    /// The arena's base, kept here so address arithmetic touches no class reference.
    @usableFromInline let base: UnsafeMutableRawPointer
    public let regionStart: Int
    public let regionEnd: Int
    private var next: Int
    private var freeLists: [[Int]]
    public private(set) var bytesInUse = 0
    public private(set) var buffersInUse = 0

    /// A pool over `[offset, offset + length)` of `arena`.
    public init(arena: HugepageArena, offset: Int, length: Int) {
        precondition(offset >= 0 && length >= 0 && offset + length <= arena.size, "pool region outside the arena")
        self.arena = arena
        self.base = arena.base
        self.regionStart = offset
        self.regionEnd = offset + length
        self.next = offset
        self.freeLists = (0..<Self.classCount).map { _ in
            var list: [Int] = []
            list.reserveCapacity(64)
            return list
        }
    }

    /// The size class that holds `size` bytes, or nil when larger than 2 MiB.
    @inlinable
    public static func sizeClass(for size: Int) -> UInt8? {
        guard size <= maximumSize else { return nil }
        let rounded = max(size, minimumSize)
        let bits = Int.bitWidth - (rounded - 1).leadingZeroBitCount  // ceil(log2(rounded))
        return UInt8(bits - 6)
    }

    /// A buffer of at least `size` bytes, or nil when the region is spent.
    public mutating func allocate(_ size: Int) -> ArenaBuffer? {
        guard size >= 0, let cls = Self.sizeClass(for: size) else { return nil }
        let capacity = Self.minimumSize << Int(cls)
        let offset: Int
        if let reused = freeLists[Int(cls)].popLast() {
            offset = reused
        } else {
            // Align each buffer to its own size (at most a hugepage), so a 64-byte
            // buffer is one cache line and no buffer straddles a hugepage.
            let align = min(capacity, HugepageArena.hugepageSize)
            let aligned = (next + align - 1) / align * align
            guard aligned + capacity <= regionEnd else { return nil }
            offset = aligned
            next = aligned + capacity
        }
        bytesInUse += capacity
        buffersInUse += 1
        return ArenaBuffer(offset: offset, sizeClass: cls)
    }

    /// Returns a buffer to its free list.
    public mutating func free(_ buffer: ArenaBuffer) {
        precondition(buffer.offset >= regionStart && buffer.offset < regionEnd, "buffer from another pool")
        freeLists[Int(buffer.sizeClass)].append(buffer.offset)
        bytesInUse -= buffer.capacity
        buffersInUse -= 1
    }

    /// The buffer's first byte.
    @inlinable
    public func address(of buffer: ArenaBuffer) -> UnsafeMutableRawPointer {
        base + buffer.offset  // offsets come only from `allocate`, inside the region
    }
}
