public import DIOSCore

/// An object handed to a task on another node, as `run` describes it: a stream
/// (the task there gets a ring of its own, bridged to the one here) or a blob
/// (the task there reaches it through remote calls to this node).
public struct RemoteArgument: Equatable, Sendable {
    /// The object on the node that handed it (it keys the stream's messages and
    /// names the blob in remote calls).
    public var object: ObjectID
    public var kind: ObjectKind
    public var name: Name
    /// Stream: the largest message. Blob: its size.
    public var maxWriteSize: Int
    /// Stream: ring depth (1 for a blob).
    public var depth: Int
    /// Stream: the task there gets the write end (the handing side reads), else
    /// the read end. Blob: unused.
    public var writeEnd: Bool
    /// The rights the task there gets.
    public var rights: Rights

    public init(
        object: ObjectID, kind: ObjectKind = .stream, name: Name, maxWriteSize: Int, depth: Int, writeEnd: Bool,
        rights: Rights = []
    ) {
        self.object = object
        self.kind = kind
        self.name = name
        self.maxWriteSize = maxWriteSize
        self.depth = depth
        self.writeEnd = writeEnd
        self.rights = rights
    }
}

/// How the owner of a blob answered a remote call on it.
public enum BlobStatus: UInt8, Sendable, Equatable {
    case ok = 0
    /// A conflicting hold is open (a writer, or strong readers): try again.
    case busy = 1
    /// The blob is gone.
    case deleted = 2
    /// The blob was not handed to the caller, or not with this right.
    case denied = 3
}

/// What one kernel instance tells an instance on another node, carried as one
/// session message. Big-endian; the first byte is the kind:
///
///     1 stream data     origin stream (index u32, generation u32), then the payload
///     2 stream closed   origin stream
///                       (kinds 1 and 2 when the sender holds the origin stream,
///                       9 and 10 when the receiver does)
///     3 run             proxy (8), program name (32), trusted u8,
///                       label length u16, label (UTF-8), argument count u16,
///                       per argument: object (8), kind u8, name (32), max write u32,
///                       depth u32, write end u8, rights u8; then the command
///                       line and then the environment: each count u16, per
///                       entry: length u16, UTF-8
///     4 started         proxy (8), task (index u32, generation u32)
///     5 failed to start proxy (8), reason length u16, reason (UTF-8)
///     6 exited          proxy (8), status i32
///     7 pause           task (8), resume u8
///     8 stop            task (8)
///    11 blob read       blob (8), call u32, strong u8
///    12 blob data       call u32, status u8, version u64, then the blob's bytes
///    13 blob release    blob (8)                     (ends a strong read)
///    14 blob validate   blob (8), call u32, version u64
///    15 blob write      blob (8), call u32, strong u8 (begins a write)
///    16 blob commit     blob (8), call u32, commit u8, then the bytes written
///    17 blob reply      call u32, status u8, ok u8
///    18 name delta      one name-service delta (see NameDelta's wire form)
///    19 name sync       reset u8, count u16, then that many insert deltas: the
///                       sender's own instances (reset: forget what it sent before)
///    20 name confirm    name (32), object (8), call u32 (answered by a blob reply)
///
/// Blob calls are answered in order on the session, matched by `call`.
/// A stream's messages are keyed by the stream object on the node that handed it
/// over ("origin"), which both ends know from the start.
public enum RemoteMessage: Equatable, Sendable {
    /// `senderIsOrigin`: the stream object `origin` is on the sending node.
    case streamData(origin: ObjectID, senderIsOrigin: Bool)
    case streamClosed(origin: ObjectID, senderIsOrigin: Bool)
    case run(
        proxy: ObjectID, program: Name, trusted: Bool, label: String, streams: [RemoteArgument],
        invocation: Invocation = Invocation())
    case started(proxy: ObjectID, task: TaskID)
    case failedToStart(proxy: ObjectID, reason: String)
    case exited(proxy: ObjectID, status: Int32)
    case pause(task: TaskID, resume: Bool)
    case stop(task: TaskID)
    case blobRead(blob: ObjectID, call: UInt32, strong: Bool)
    /// The blob's bytes follow (at the returned payload offset).
    case blobData(call: UInt32, status: BlobStatus, version: UInt64)
    case blobRelease(blob: ObjectID)
    case blobValidate(blob: ObjectID, call: UInt32, version: UInt64)
    case blobWrite(blob: ObjectID, call: UInt32, strong: Bool)
    /// The bytes written follow (at the returned payload offset).
    case blobCommit(blob: ObjectID, call: UInt32, commit: Bool)
    case blobReply(call: UInt32, status: BlobStatus, ok: Bool)
    case nameDelta(NameDelta)
    case nameSync(reset: Bool, inserts: [NameDelta])
    case nameConfirm(name: Name, object: ObjectID, call: UInt32)
    /// The sender is stopping (not failing): its session ends now, and what
    /// depended on it is told at once rather than after the failure timeout.
    case leaving

    /// Bytes of a stream-data message before its payload.
    public static let streamDataPrefix = 9
    static let maxText = Invocation.maxLength
    static let maxStreams = 64
    /// The most command-line arguments a run carries.
    static let maxArguments = 256

    /// The origin and direction of a stream-data message, read in place; nil
    /// when `bytes` is not one (or is too short to be: `decode` then says why).
    @inlinable @inline(__always)
    public static func peekStreamData(_ bytes: UnsafeRawBufferPointer) -> (origin: ObjectID, senderIsOrigin: Bool)? {
        guard bytes.count >= streamDataPrefix, let base = bytes.baseAddress else { return nil }
        let kind = base.load(as: UInt8.self)
        guard kind == 1 || kind == 9 else { return nil }
        let index = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
        let generation = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 5, as: UInt32.self))
        return (ObjectID(index: index, generation: generation), kind == 1)
    }

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
        case .run(let proxy, let program, let trusted, let label, let streams, let invocation):
            out.append(3)
            put(proxy)
            out += program.bytes
            out.append(trusted ? 1 : 0)
            put(text: label)
            put(UInt16(streams.count))
            for s in streams {
                put(s.object)
                out.append(s.kind.rawValue)
                out += s.name.bytes
                put(UInt32(clamping: s.maxWriteSize))
                put(UInt32(clamping: s.depth))
                out.append(s.writeEnd ? 1 : 0)
                out.append(s.rights.rawValue)
            }
            // `Invocation.refusal` has kept what does not fit out of every run.
            for list in [invocation.commandLine, invocation.environment] {
                let entries = list.prefix(Self.maxArguments)
                put(UInt16(entries.count))
                for a in entries { put(text: a) }
            }
        case .started(let proxy, let task): out.append(4); put(proxy); put(task)
        case .failedToStart(let proxy, let reason): out.append(5); put(proxy); put(text: reason)
        case .exited(let proxy, let status): out.append(6); put(proxy); put(status)
        case .pause(let task, let resume): out.append(7); put(task); out.append(resume ? 1 : 0)
        case .stop(let task): out.append(8); put(task)
        case .blobRead(let b, let call, let strong): out.append(11); put(b); put(call); out.append(strong ? 1 : 0)
        case .blobData(let call, let status, let version):
            out.append(12); put(call); out.append(status.rawValue); put(version)
        case .blobRelease(let b): out.append(13); put(b)
        case .blobValidate(let b, let call, let version): out.append(14); put(b); put(call); put(version)
        case .blobWrite(let b, let call, let strong): out.append(15); put(b); put(call); out.append(strong ? 1 : 0)
        case .blobCommit(let b, let call, let commit): out.append(16); put(b); put(call); out.append(commit ? 1 : 0)
        case .blobReply(let call, let status, let ok):
            out.append(17); put(call); out.append(status.rawValue); out.append(ok ? 1 : 0)
        case .nameDelta(let delta): out.append(18); delta.encode(into: &out)
        case .nameSync(let reset, let inserts):
            out.append(19)
            out.append(reset ? 1 : 0)
            put(UInt16(clamping: inserts.count))
            for d in inserts.prefix(Int(UInt16.max)) { d.encode(into: &out) }
        case .nameConfirm(let name, let object, let call): out.append(20); out += name.bytes; put(object); put(call)
        case .leaving: out.append(21)
        }
        return out
    }

    /// Decodes one message. For stream data, the payload is what follows the
    /// prefix in `bytes` (`decode` returns its offset). Checks every bound; bad
    /// input is refused whole with a typed error.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (RemoteMessage, payloadOffset: Int)
    {
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
            var streams: [RemoteArgument] = []
            for _ in 0..<count {
                let object = try r.object()
                let kindByte = try r.u8()
                guard let kind = ObjectKind(rawValue: kindByte), kind == .stream || kind == .blob else {
                    throw .unknownKind(kindByte)
                }
                let name = try r.name()
                let maxWrite = Int(try r.u32())
                let depth = Int(try r.u32())
                guard depth >= 1 && depth <= 1 << 16 else { throw .valueOutOfRange("stream depth \(depth)") }
                let writeEnd = try r.flag()
                let rightsByte = try r.u8()
                guard rightsByte & ~Rights.all.rawValue == 0 else { throw .invalidFlag(rightsByte) }
                streams.append(
                    RemoteArgument(
                        object: object, kind: kind, name: name, maxWriteSize: maxWrite, depth: depth,
                        writeEnd: writeEnd,
                        rights: Rights(rawValue: rightsByte)))
            }
            var lists: [[String]] = []
            for what in ["argument", "environment entry"] {
                let count = Int(try r.u16())
                guard count <= maxArguments else { throw .valueOutOfRange("\(what) count \(count)") }
                var list: [String] = []
                for _ in 0..<count { list.append(try r.text()) }
                lists.append(list)
            }
            message = .run(
                proxy: proxy, program: program, trusted: trusted, label: label, streams: streams,
                invocation: Invocation(commandLine: lists[0], environment: lists[1]))
        case 4: message = .started(proxy: try r.object(), task: try r.task())
        case 5: message = .failedToStart(proxy: try r.object(), reason: try r.text())
        case 6: message = .exited(proxy: try r.object(), status: Int32(bitPattern: try r.u32()))
        case 7: message = .pause(task: try r.task(), resume: try r.flag())
        case 8: message = .stop(task: try r.task())
        case 11: message = .blobRead(blob: try r.object(), call: try r.u32(), strong: try r.flag())
        case 12:
            let call = try r.u32()
            let status = try r.status()
            return (.blobData(call: call, status: status, version: try r.u64()), r.offset)
        case 13: message = .blobRelease(blob: try r.object())
        case 14: message = .blobValidate(blob: try r.object(), call: try r.u32(), version: try r.u64())
        case 15: message = .blobWrite(blob: try r.object(), call: try r.u32(), strong: try r.flag())
        case 16: return (.blobCommit(blob: try r.object(), call: try r.u32(), commit: try r.flag()), r.offset)
        case 17: message = .blobReply(call: try r.u32(), status: try r.status(), ok: try r.flag())
        case 18:
            let rest = UnsafeRawBufferPointer(rebasing: bytes[r.offset...])
            r.offset = bytes.count
            message = .nameDelta(try NameDelta.decode(rest))
        case 19:
            let reset = try r.flag()
            let count = Int(try r.u16())
            var inserts: [NameDelta] = []
            for _ in 0..<count {
                try r.need(NameDelta.insertSize)
                let delta = try NameDelta.decode(
                    UnsafeRawBufferPointer(rebasing: bytes[r.offset..<(r.offset + NameDelta.insertSize)]))
                r.offset += NameDelta.insertSize
                guard case .insert = delta else { throw .unknownType(2) }
                inserts.append(delta)
            }
            message = .nameSync(reset: reset, inserts: inserts)
        case 20: message = .nameConfirm(name: try r.name(), object: try r.object(), call: try r.u32())
        case 21: message = .leaving
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
    mutating func u64() throws(WireError) -> UInt64 { try integer(UInt64.self) }
    mutating func status() throws(WireError) -> BlobStatus {
        let b = try u8()
        guard let s = BlobStatus(rawValue: b) else { throw .valueOutOfRange("blob status \(b)") }
        return s
    }
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
