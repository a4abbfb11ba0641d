public import DIOSCore

/// The wire form of a name-service delta (big-endian):
///
///     insert: 0x01, name (32), tag (origin node u16, core u16, counter u64),
///             owner (node u16, core u16), object (index u32, generation u32),
///             kind u8, persistent u8 (0 or 1), size u64      = 67 bytes
///     remove: 0x02, name (32), tag (12)                      = 45 bytes
extension NameDelta {
    public static let insertSize = 67
    public static let removeSize = 45

    /// Appends the delta's bytes.
    public func encode(into out: inout [UInt8]) {
        switch self {
        case .insert(let name, let record, let tag):
            out.append(1)
            out += name.bytes
            Self.put(tag, &out)
            Self.put(UInt16(record.owner.node), &out)
            Self.put(UInt16(record.owner.core), &out)
            Self.put(record.object.index, &out)
            Self.put(record.object.generation, &out)
            out.append(record.kind.rawValue)
            out.append(record.persistent ? 1 : 0)
            Self.put(UInt64(record.size), &out)
        case .remove(let name, let tag):
            out.append(2)
            out += name.bytes
            Self.put(tag, &out)
        }
    }

    /// Decodes exactly one delta from `bytes`.
    public static func decode(_ bytes: some Collection<UInt8>) throws(WireError) -> NameDelta {
        var reader = ByteReader(Array(bytes))
        let delta = try decode(from: &reader)
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        return delta
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> NameDelta {
        let type = try r.u8()
        switch type {
        case 1:
            let name = try r.name()
            let tag = try r.tag()
            let owner = InstanceID(node: try r.u16(), core: try r.u16())
            let object = ObjectID(index: try r.u32(), generation: try r.u32())
            let kindByte = try r.u8()
            guard let kind = ObjectKind(rawValue: kindByte) else { throw .unknownKind(kindByte) }
            let flag = try r.u8()
            guard flag <= 1 else { throw .invalidFlag(flag) }
            let size = try r.u64()
            guard size <= UInt64(Int.max) else { throw .valueOutOfRange("size") }
            return .insert(
                name, InstanceRecord(owner: owner, object: object, kind: kind, size: Int(size), persistent: flag == 1),
                tag)
        case 2:
            return .remove(try r.name(), try r.tag())
        default:
            throw .unknownType(type)
        }
    }

    static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out += $0 }
    }

    static func put(_ tag: InsertTag, _ out: inout [UInt8]) {
        put(tag.origin.node, &out)
        put(tag.origin.core, &out)
        put(tag.counter, &out)
    }
}

/// Reads big-endian fields from a byte array, checking every bound.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func take(_ n: Int) throws(WireError) -> ArraySlice<UInt8> {
        guard n <= remaining else { throw .truncated(needed: offset + n, have: bytes.count) }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        var v: T = 0
        for b in try take(MemoryLayout<T>.size) { v = v << 8 | T(b) }
        return v
    }

    mutating func u8() throws(WireError) -> UInt8 { try integer(UInt8.self) }
    mutating func u16() throws(WireError) -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws(WireError) -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws(WireError) -> UInt64 { try integer(UInt64.self) }
    mutating func name() throws(WireError) -> Name { Name(bytes: try take(32))! }
    mutating func tag() throws(WireError) -> InsertTag {
        InsertTag(origin: InstanceID(node: try u16(), core: try u16()), counter: try u64())
    }
}
