package import DIOSCore

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
