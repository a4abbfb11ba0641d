public import DIOSCore

/// One submission as copied out of the ring: 64 bytes of plain fields, read
/// once, so nothing the process writes afterwards changes what is checked.
public struct SubmissionEntry: Sendable, Equatable {
    public var userData: UInt64
    public var operation: UInt16
    public var flags: UInt32
    public var ref: Ref
    public var arguments: (UInt64, UInt64, UInt64, UInt64, UInt64)

    public init(
        userData: UInt64, operation: UInt16, flags: UInt32, ref: Ref,
        arguments: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
    ) {
        self.userData = userData
        self.operation = operation
        self.flags = flags
        self.ref = ref
        self.arguments = arguments
    }

    /// Reads the entry from `bytes` (at least `ChannelLayout.submissionSize`).
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= ChannelLayout.submissionSize else { return nil }
        func word(_ at: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        func half(_ at: Int) -> UInt32 {
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
        }
        userData = word(0)
        operation = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        flags = half(12)
        ref = Ref(slot: half(16), generation: half(20))
        arguments = (word(24), word(32), word(40), word(48), word(56))
    }

    /// Writes the entry as libdios lays it out (for tests and hostile clients).
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= ChannelLayout.submissionSize)
        bytes.storeBytes(of: userData.littleEndian, toByteOffset: 0, as: UInt64.self)
        bytes.storeBytes(of: operation.littleEndian, toByteOffset: 8, as: UInt16.self)
        bytes.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        bytes.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt32.self)
        bytes.storeBytes(of: ref.slot.littleEndian, toByteOffset: 16, as: UInt32.self)
        bytes.storeBytes(of: ref.generation.littleEndian, toByteOffset: 20, as: UInt32.self)
        let a = [arguments.0, arguments.1, arguments.2, arguments.3, arguments.4]
        for (n, v) in a.enumerated() { bytes.storeBytes(of: v.littleEndian, toByteOffset: 24 + 8 * n, as: UInt64.self) }
    }

    public static func == (a: SubmissionEntry, b: SubmissionEntry) -> Bool {
        a.userData == b.userData && a.operation == b.operation && a.flags == b.flags && a.ref == b.ref
            && a.arguments == b.arguments
    }
}

/// One completion: `error` 0 or a `ChannelErrorCode`, `detail` qualifying it.
public struct CompletionEntry: Sendable, Equatable {
    public var userData: UInt64
    public var error: Int32
    public var detail: UInt32
    public var values: (UInt64, UInt64)

    public init(userData: UInt64, error: Int32 = 0, detail: UInt32 = 0, values: (UInt64, UInt64) = (0, 0)) {
        self.userData = userData
        self.error = error
        self.detail = detail
        self.values = values
    }

    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= ChannelLayout.completionSize else { return nil }
        userData = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        error = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: Int32.self))
        detail = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        values = (
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        )
    }

    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= ChannelLayout.completionSize)
        bytes.storeBytes(of: userData.littleEndian, toByteOffset: 0, as: UInt64.self)
        bytes.storeBytes(of: error.littleEndian, toByteOffset: 8, as: Int32.self)
        bytes.storeBytes(of: detail.littleEndian, toByteOffset: 12, as: UInt32.self)
        bytes.storeBytes(of: values.0.littleEndian, toByteOffset: 16, as: UInt64.self)
        bytes.storeBytes(of: values.1.littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    public static func == (a: CompletionEntry, b: CompletionEntry) -> Bool {
        a.userData == b.userData && a.error == b.error && a.detail == b.detail && a.values == b.values
    }
}

extension Ref {
    /// A reference as one completion value: slot in the high half.
    @inlinable public var word: UInt64 { UInt64(slot) << 32 | UInt64(generation) }
    @inlinable public init(word: UInt64) {
        self.init(slot: UInt32(word >> 32), generation: UInt32(truncatingIfNeeded: word))
    }
}
