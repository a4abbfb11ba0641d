public import DIOSCore

/// What a frame carries.
public enum FrameType: UInt8, Sendable, CaseIterable {
    /// A fragment of a message, numbered in its session.
    case data = 1
    /// Acknowledgement and credit only.
    case ack = 2
    /// Keep-alive: says the sender is alive, carries acknowledgement and credit.
    case heartbeat = 3
}

/// The fixed header at the start of every DIOS frame (the UDP payload).
/// Big-endian on the wire, 36 bytes:
///
///     magic u16 (0xD105) | version u8 (1) | type u8 | flags u8 | reserved u8 (0)
///     payload length u16
///     source instance (node u16, core u16) | destination instance (node u16, core u16)
///     source epoch u32 | destination epoch u32 (0: not yet known)
///     sequence u32 | acknowledgement u32 | credit u32
///
/// An epoch names one incarnation of a session end: a restarted instance, or
/// one that declared its peer failed, starts a new epoch, so stale frames from
/// before are recognised and dropped. `sequence` numbers data frames; `ack` is
/// the next sequence the sender of this frame expects from its peer (all
/// before it arrived); `credit` is the first sequence it cannot accept yet.
public struct FrameHeader: Equatable, Sendable {
    public static let size = 36
    public static let magic: UInt16 = 0xD105
    public static let version: UInt8 = 1

    /// Flags: this fragment starts a message / ends it.
    public static let firstFragment: UInt8 = 1
    public static let lastFragment: UInt8 = 2

    public var type: FrameType
    public var flags: UInt8
    public var payloadLength: UInt16
    public var source: InstanceID
    public var destination: InstanceID
    public var sourceEpoch: UInt32
    public var destinationEpoch: UInt32
    public var sequence: UInt32
    public var ack: UInt32
    public var credit: UInt32

    public init(
        type: FrameType, flags: UInt8 = 0, payloadLength: UInt16 = 0, source: InstanceID, destination: InstanceID,
        sourceEpoch: UInt32, destinationEpoch: UInt32, sequence: UInt32 = 0, ack: UInt32 = 0, credit: UInt32 = 0
    ) {
        self.type = type
        self.flags = flags
        self.payloadLength = payloadLength
        self.source = source
        self.destination = destination
        self.sourceEpoch = sourceEpoch
        self.destinationEpoch = destinationEpoch
        self.sequence = sequence
        self.ack = ack
        self.credit = credit
    }

    /// Writes the header into the first `size` bytes of `out`.
    @inlinable @inline(__always)
    public func encode(into out: UnsafeMutableRawPointer) {
        var w = out
        func put<T: FixedWidthInteger>(_ v: T) {
            w.storeBytes(of: v.bigEndian, as: T.self)
            w += MemoryLayout<T>.size
        }
        put(Self.magic)
        put(Self.version)
        put(type.rawValue)
        put(flags)
        put(UInt8(0))
        put(payloadLength)
        put(source.node)
        put(source.core)
        put(destination.node)
        put(destination.core)
        put(sourceEpoch)
        put(destinationEpoch)
        put(sequence)
        put(ack)
        put(credit)
    }

    /// Decodes the header of `frame` and checks it against the frame: magic,
    /// version, type, reserved bits, and that exactly `payloadLength` bytes follow.
    /// Never reads outside `frame`.
    @inline(__always)
    public static func decode(_ frame: UnsafeRawBufferPointer) throws(WireError) -> FrameHeader {
        guard frame.count >= size else { throw .truncated(needed: size, have: frame.count) }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(bigEndian: frame.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let magic = get(0, UInt16.self)
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = get(2, UInt8.self)
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let typeByte = get(3, UInt8.self)
        guard let type = FrameType(rawValue: typeByte) else { throw .unknownType(typeByte) }
        let flags = get(4, UInt8.self)
        guard flags & ~(firstFragment | lastFragment) == 0, get(5, UInt8.self) == 0 else { throw .invalidFlag(flags) }
        let length = get(6, UInt16.self)
        guard Int(length) == frame.count - size else {
            throw .lengthMismatch(declared: Int(length), actual: frame.count - size)
        }
        if type != .data {
            guard length == 0 else { throw .valueOutOfRange("payload of a \(type) frame") }
            guard flags == 0 else { throw .invalidFlag(flags) }
        }
        return FrameHeader(
            type: type, flags: flags, payloadLength: length,
            source: InstanceID(node: get(8, UInt16.self), core: get(10, UInt16.self)),
            destination: InstanceID(node: get(12, UInt16.self), core: get(14, UInt16.self)),
            sourceEpoch: get(16, UInt32.self), destinationEpoch: get(20, UInt32.self),
            sequence: get(24, UInt32.self), ack: get(28, UInt32.self), credit: get(32, UInt32.self))
    }
}
