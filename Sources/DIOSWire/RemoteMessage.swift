public import DIOSCore

/// A stream handed to a task on another node, as `run` describes it.
public struct RemoteStream: Equatable, Sendable {
    /// The stream object on the node that handed it (it keys the stream's messages).
    public var object: ObjectID
    public var name: Name
    public var maxWriteSize: Int
    public var depth: Int
    /// The task there gets the write end (the handing side reads), else the read end.
    public var writeEnd: Bool

    public init(object: ObjectID, name: Name, maxWriteSize: Int, depth: Int, writeEnd: Bool) {
        self.object = object
        self.name = name
        self.maxWriteSize = maxWriteSize
        self.depth = depth
        self.writeEnd = writeEnd
    }
}

/// What one kernel instance tells an instance on another node, carried as one
/// session message. Big-endian; the first byte is the kind:
///
///     1 stream data     origin stream (index u32, generation u32), then the payload
///     2 stream closed   origin stream
///                       (kinds 1 and 2 when the sender holds the origin stream,
///                       9 and 10 when the receiver does)
///     3 run             proxy (8), program name (32), trusted u8,
///                       label length u16, label (UTF-8), stream count u16,
///                       per stream: object (8), name (32), max write u32, depth u32,
///                       write end u8
///     4 started         proxy (8), task (index u32, generation u32)
///     5 failed to start proxy (8), reason length u16, reason (UTF-8)
///     6 exited          proxy (8), status i32
///     7 pause           task (8), resume u8
///     8 stop            task (8)
///
/// A stream's messages are keyed by the stream object on the node that handed it
/// over ("origin"), which both ends know from the start.
public enum RemoteMessage: Equatable, Sendable {
    /// `senderIsOrigin`: the stream object `origin` is on the sending node.
    case streamData(origin: ObjectID, senderIsOrigin: Bool)
    case streamClosed(origin: ObjectID, senderIsOrigin: Bool)
    case run(proxy: ObjectID, program: Name, trusted: Bool, label: String, streams: [RemoteStream])
    case started(proxy: ObjectID, task: TaskID)
    case failedToStart(proxy: ObjectID, reason: String)
    case exited(proxy: ObjectID, status: Int32)
    case pause(task: TaskID, resume: Bool)
    case stop(task: TaskID)

    /// Bytes of a stream-data message before its payload.
    public static let streamDataPrefix = 9
    static let maxText = 1024
    static let maxStreams = 64

    /// Writes the 9-byte prefix of a stream-data message for `origin`.
    @inlinable
    public static func encodeStreamData(origin: ObjectID, senderIsOrigin: Bool, into out: UnsafeMutableRawPointer) {
        out.storeBytes(of: senderIsOrigin ? 1 : 9, as: UInt8.self)
        out.storeBytes(of: origin.index.bigEndian, toByteOffset: 1, as: UInt32.self)
        out.storeBytes(of: origin.generation.bigEndian, toByteOffset: 5, as: UInt32.self)
    }

    /// The whole message as bytes (control messages; the data path uses
    /// `encodeStreamData` and sends the payload after it without a copy here).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { out += $0 } }
        func put(_ o: ObjectID) { put(o.index); put(o.generation) }
        func put(_ t: TaskID) { put(t.index); put(t.generation) }
        func put(text: String) {
            let bytes = Array(text.utf8.prefix(Self.maxText))
            put(UInt16(bytes.count))
            out += bytes
        }
        switch self {
        case .streamData(let o, let s): out.append(s ? 1 : 9); put(o)
        case .streamClosed(let o, let s): out.append(s ? 2 : 10); put(o)
        case .run(let proxy, let program, let trusted, let label, let streams):
            out.append(3)
            put(proxy)
            out += program.bytes
            out.append(trusted ? 1 : 0)
            put(text: label)
            put(UInt16(streams.count))
            for s in streams {
                put(s.object)
                out += s.name.bytes
                put(UInt32(clamping: s.maxWriteSize))
                put(UInt32(clamping: s.depth))
                out.append(s.writeEnd ? 1 : 0)
            }
        case .started(let proxy, let task): out.append(4); put(proxy); put(task)
        case .failedToStart(let proxy, let reason): out.append(5); put(proxy); put(text: reason)
        case .exited(let proxy, let status): out.append(6); put(proxy); put(status)
        case .pause(let task, let resume): out.append(7); put(task); out.append(resume ? 1 : 0)
        case .stop(let task): out.append(8); put(task)
        }
        return out
    }

    /// Decodes one message. For stream data, the payload is what follows the
    /// prefix in `bytes` (`decode` returns its offset). Checks every bound; bad
    /// input is refused whole with a typed error.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (RemoteMessage, payloadOffset: Int) {
        var r = RawReader(bytes)
        let kind = try r.u8()
        let message: RemoteMessage
        switch kind {
        case 1, 9: return (.streamData(origin: try r.object(), senderIsOrigin: kind == 1), r.offset)
        case 2, 10: message = .streamClosed(origin: try r.object(), senderIsOrigin: kind == 2)
        case 3:
            let proxy = try r.object()
            let program = try r.name()
            let trusted = try r.flag()
            let label = try r.text()
            let count = Int(try r.u16())
            guard count <= maxStreams else { throw .valueOutOfRange("stream count \(count)") }
            var streams: [RemoteStream] = []
            for _ in 0..<count {
                let object = try r.object()
                let name = try r.name()
                let maxWrite = Int(try r.u32())
                let depth = Int(try r.u32())
                guard depth >= 1 && depth <= 1 << 16 else { throw .valueOutOfRange("stream depth \(depth)") }
                let writeEnd = try r.flag()
                streams.append(RemoteStream(object: object, name: name, maxWriteSize: maxWrite, depth: depth, writeEnd: writeEnd))
            }
            message = .run(proxy: proxy, program: program, trusted: trusted, label: label, streams: streams)
        case 4: message = .started(proxy: try r.object(), task: try r.task())
        case 5: message = .failedToStart(proxy: try r.object(), reason: try r.text())
        case 6: message = .exited(proxy: try r.object(), status: Int32(bitPattern: try r.u32()))
        case 7: message = .pause(task: try r.task(), resume: try r.flag())
        case 8: message = .stop(task: try r.task())
        default: throw .unknownType(kind)
        }
        guard r.offset == bytes.count else { throw .trailingBytes(bytes.count - r.offset) }
        return (message, r.offset)
    }
}

/// Reads big-endian fields from raw bytes, checking every bound.
struct RawReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func need(_ n: Int) throws(WireError) {
        guard n <= bytes.count - offset else { throw .truncated(needed: offset + n, have: bytes.count) }
    }
    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        try need(MemoryLayout<T>.size)
        defer { offset += MemoryLayout<T>.size }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    mutating func u8() throws(WireError) -> UInt8 { try integer(UInt8.self) }
    mutating func u16() throws(WireError) -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws(WireError) -> UInt32 { try integer(UInt32.self) }
    mutating func flag() throws(WireError) -> Bool {
        let b = try u8()
        guard b <= 1 else { throw .invalidFlag(b) }
        return b == 1
    }
    mutating func object() throws(WireError) -> ObjectID { ObjectID(index: try u32(), generation: try u32()) }
    mutating func task() throws(WireError) -> TaskID { TaskID(index: try u32(), generation: try u32()) }
    mutating func name() throws(WireError) -> Name {
        try need(32)
        defer { offset += 32 }
        return Name(bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 32)]))!
    }
    mutating func text() throws(WireError) -> String {
        let n = Int(try u16())
        guard n <= RemoteMessage.maxText else { throw .valueOutOfRange("text of \(n) bytes") }
        try need(n)
        defer { offset += n }
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]), as: UTF8.self)
        else { throw .valueOutOfRange("text encoding") }
        return s
    }
}
