import CDIOSTask
public import DIOSCore

/// An open read of a task process: a view of the object's bytes (for a
/// trusted process on a local stream, the message's slot in the arena; else a
/// copy in its channel's window), ended exactly once by
/// `ProcessTask.endRead(_:)`. Dropping it abandons the read.
public struct ProcessReadTransaction: ~Copyable {
    var txn: dios_txn
    /// The reference the read is on.
    public let ref: Ref

    init(txn: dios_txn, ref: Ref) {
        self.txn = txn
        self.ref = ref
    }

    /// Bytes readable in the view.
    public var count: Int { txn.size }

    /// Calls `body` with the view; the pointer must not escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: txn.data, count: txn.size))
    }

    /// The integer at `offset`, or `.outsideView` when it does not lie in the view.
    public func load<T: FixedWidthInteger>(fromByteOffset offset: Int = 0, as type: T.Type) throws(CallError) -> T {
        guard offset >= 0, offset <= txn.size - MemoryLayout<T>.size else {
            throw .outsideView(offset: offset, count: MemoryLayout<T>.size, viewSize: txn.size)
        }
        return txn.data.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    consuming func end() -> Bool {
        var t = txn
        discard self
        return dios_end_read(&t) == 1
    }

    deinit {
        var t = txn
        _ = dios_abandon(&t)
    }
}

/// An open write of a task process: a writable view of the bytes reserved,
/// ended exactly once by `ProcessTask.endWrite(_:)`, which publishes `length`
/// bytes (all of the view unless `setLength` said fewer). Dropping it
/// abandons the write: nothing is published.
public struct ProcessWriteTransaction: ~Copyable {
    var txn: dios_txn
    /// The reference the write is on.
    public let ref: Ref
    /// The bytes `endWrite` publishes.
    public private(set) var length: Int

    init(txn: dios_txn, ref: Ref) {
        self.txn = txn
        self.ref = ref
        self.length = txn.size
    }

    /// Bytes reserved for the write.
    public var capacity: Int { txn.size }

    /// Publishes only the first `length` bytes; `.outsideView` (and no change) beyond the view.
    public mutating func setLength(_ length: Int) throws(CallError) {
        guard length >= 0, length <= txn.size else {
            throw .outsideView(offset: 0, count: length, viewSize: txn.size)
        }
        self.length = length
    }

    /// Calls `body` with the writable view; the pointer must not escape.
    public func withUnsafeMutableBytes<R, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: txn.data, count: txn.size))
    }

    /// Stores `value` at `offset`, or `.outsideView` when it does not lie in the view.
    public func store<T: FixedWidthInteger>(_ value: T, toByteOffset offset: Int = 0) throws(CallError) {
        guard offset >= 0, offset <= txn.size - MemoryLayout<T>.size else {
            throw .outsideView(offset: offset, count: MemoryLayout<T>.size, viewSize: txn.size)
        }
        txn.data.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    consuming func end() -> Bool {
        var t = txn
        let n = length
        discard self
        return dios_end_write(&t, n) == 1
    }

    deinit {
        var t = txn
        _ = dios_abandon(&t)
    }
}
