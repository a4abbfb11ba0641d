public import DIOSCore
package import DIOSKernel

/// An open read: a view into the object's own buffer (no copy), ended exactly
/// once by `TaskContext.endRead(_:)`.
///
/// It is `~Copyable`, so the compiler rejects using it after `endRead` and ending
/// it twice. Dropping it without `endRead` releases its hold (a stream message
/// then stays unread). Like the task that opened it, it belongs to the kernel
/// instance's thread. `load` checks bounds and throws `.outsideView`;
/// `uncheckedLoad` does not.
@frozen
public struct ReadTransaction: ~Copyable {
    @usableFromInline let kernel: Unmanaged<KernelInstance>
    @usableFromInline let grant: IOGrant
    /// The reference the read is on.
    public let ref: Ref

    @inlinable
    init(kernel: Unmanaged<KernelInstance>, grant: IOGrant, ref: Ref) {
        self.kernel = kernel
        self.grant = grant
        self.ref = ref
    }

    /// Bytes readable in the view.
    @inlinable public var count: Int { grant.count }

    /// The view itself, borrowed from the transaction.
    public var bytes: RawSpan {
        @_lifetime(borrow self)
        get {
            let span = RawSpan(_unsafeStart: UnsafeRawPointer(grant.base), byteCount: grant.count)
            return _overrideLifetime(span, borrowing: self)
        }
    }

    /// Calls `body` with the view as a buffer pointer; the pointer must not escape.
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: grant.base, count: grant.count))
    }

    /// A fixed-width integer at `offset` (unaligned loads allowed), or
    /// `.outsideView` when it does not lie wholly inside the view.
    @inlinable
    public func load<T: FixedWidthInteger>(fromByteOffset offset: Int = 0, as type: T.Type) throws(CallError) -> T {
        try checkView(offset, MemoryLayout<T>.size, grant.count)
        return grant.base.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// `load` without the bounds check, for a loop that has checked its
    /// offsets once. A load outside the view reads whatever lies there in the
    /// arena (debug builds trap): the caller answers for the offset.
    @inlinable
    public func uncheckedLoad<T: FixedWidthInteger>(fromByteOffset offset: Int = 0, as type: T.Type) -> T {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= grant.count, "read outside the view")
        return grant.base.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// The view's first byte, for checking where it lies (the zero-copy contract).
    public var baseAddress: UnsafeRawPointer { UnsafeRawPointer(grant.base) }

    @inlinable
    consuming func end() -> Bool {
        let grant = self.grant
        let ok = kernel._withUnsafeGuaranteedRef { $0.endRead(grant) }
        discard self
        return ok
    }

    deinit { let grant = self.grant; kernel._withUnsafeGuaranteedRef { $0.abandonRead(grant) } }
}

/// An open write: a view into the target buffer (a blob's second buffer, which
/// starts as its committed bytes and replaces them at `endWrite`; a stream's
/// slot; for a stream read on another node, the frame that carries it),
/// published by `TaskContext.endWrite(_:)`. `~Copyable` for the same reasons as
/// `ReadTransaction`; dropping it publishes nothing: no reader, on any core,
/// sees a byte of a write that was not ended.
///
/// The checked accessors (`store`, `copy(from:)`, `setLength`) throw
/// `.outsideView` for bytes outside the view and write nothing; the
/// `unchecked` ones are for loops that checked their offsets once. The spans
/// of `bytes` check bounds as every Swift collection does: by trapping.
@frozen
public struct WriteTransaction: ~Copyable {
    @usableFromInline let kernel: Unmanaged<KernelInstance>
    @usableFromInline let grant: IOGrant
    /// The reference the write is on.
    public let ref: Ref
    /// How many bytes `endWrite` publishes: the reserved size unless set lower
    /// with `setLength(_:)`.
    public var length: Int { _length }
    @usableFromInline var _length: Int

    /// Publishes only the first `length` bytes of the view; `.outsideView`
    /// (and no change) when `length` is negative or beyond the view.
    @inlinable
    public mutating func setLength(_ length: Int) throws(CallError) {
        try checkView(0, length, grant.count)
        _length = length
    }

    @inlinable
    init(kernel: Unmanaged<KernelInstance>, grant: IOGrant, ref: Ref) {
        self.kernel = kernel
        self.grant = grant
        self.ref = ref
        self._length = grant.count
    }

    /// Bytes reserved for the write.
    @inlinable public var capacity: Int { grant.count }

    /// The writable view, borrowed mutably from the transaction.
    public var bytes: MutableRawSpan {
        @_lifetime(&self)
        mutating get {
            let span = MutableRawSpan(_unsafeStart: grant.base, byteCount: grant.count)
            return _overrideLifetime(span, mutating: &self)
        }
    }

    /// Calls `body` with the view as a mutable buffer pointer; the pointer must not escape.
    @inlinable
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E)
        -> R
    {
        try body(UnsafeMutableRawBufferPointer(start: grant.base, count: grant.count))
    }

    /// Stores a fixed-width integer at `offset` (unaligned stores allowed), or
    /// throws `.outsideView`, writing nothing, when it would not lie wholly
    /// inside the view.
    @inlinable
    public func store<T: FixedWidthInteger>(_ value: T, toByteOffset offset: Int = 0) throws(CallError) {
        try checkView(offset, MemoryLayout<T>.size, grant.count)
        grant.base.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// `store` without the bounds check, for a loop that has checked its
    /// offsets once. A store outside the view corrupts whatever lies there in
    /// the arena — another object, or the kernel's rings (debug builds trap):
    /// the caller answers for the offset.
    @inlinable
    public func uncheckedStore<T: FixedWidthInteger>(_ value: T, toByteOffset offset: Int = 0) {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= grant.count, "write outside the view")
        grant.base.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// Copies `bytes` into the view at `offset`, or throws `.outsideView`,
    /// copying nothing, when they would not fit.
    @inlinable
    public func copy(from bytes: some Collection<UInt8>, toByteOffset offset: Int = 0) throws(CallError) {
        try checkView(offset, bytes.count, grant.count)
        UnsafeMutableRawBufferPointer(start: grant.base + offset, count: bytes.count).copyBytes(from: bytes)
    }

    /// The view's first byte, for checking where it lies (the zero-copy contract).
    public var baseAddress: UnsafeMutableRawPointer { grant.base }

    @inlinable
    consuming func end() -> Bool {
        let grant = self.grant, length = self.length
        let ok = kernel._withUnsafeGuaranteedRef { $0.endWrite(grant, length: length) }
        discard self
        return ok
    }

    deinit { let grant = self.grant; kernel._withUnsafeGuaranteedRef { $0.abandonWrite(grant) } }
}

/// Whether `count` bytes at `offset` lie inside a view of `size` bytes; the
/// checked accessors' one test, written so that no operand can overflow
/// (`offset + count` could, for an offset near `Int.max`).
@inlinable
func checkView(_ offset: Int, _ count: Int, _ size: Int) throws(CallError) {
    guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
        throw .outsideView(offset: offset, count: count, viewSize: size)
    }
}
