public import DIOSCore

/// A span of the channel's window, checked to lie inside it.
public struct WindowRange: Sendable, Equatable {
    public let offset: Int
    public let count: Int

    /// The span, or nil when any byte of it lies outside a window of `size` bytes
    /// (overflow included: both numbers come from the process).
    public init?(offset: UInt64, count: UInt64, windowSize: Int) {
        let size = UInt64(windowSize)
        guard offset <= size, count <= size - offset else { return nil }
        self.offset = Int(offset)
        self.count = Int(count)
    }
}

/// Where `run` starts the task.
public enum RunTarget: Sendable, Equatable {
    /// The caller's own instance.
    case here
    /// Instance `core` of the caller's node.
    case sibling(core: Int)
    /// An instance of any node.
    case instance(InstanceID)
}

/// A submission, decoded and checked: every offset and count lies in the
/// window, every number fits what it stands for. What the kernel then checks
/// (references against the task's table, rights, sizes against objects) is
/// the same as for any task's call.
public enum ChannelRequest: Sendable, Equatable {
    case create(ObjectSpec, flags: Flags, nameOut: WindowRange, nameIn: WindowRange?)
    case lookup(name: WindowRange, flags: Flags, out: WindowRange, max: Int)
    case beginRead(Ref, flags: Flags, into: WindowRange)
    case endRead(handle: UInt64)
    case beginWrite(Ref, size: Int, flags: Flags, from: WindowRange)
    case endWrite(handle: UInt64, length: Int)
    case abandon(handle: UInt64)
    case run(Ref, arguments: WindowRange, flags: Flags, on: RunTarget)
    case pause(Ref, flags: Flags)
    case copy(to: Ref, refs: WindowRange, rights: Rights?, flags: Flags, out: WindowRange)
    case delete(Ref, flags: Flags)
    case select(refs: WindowRange, flags: Flags)
    case restrict(Ref, to: Rights)
    case describe(Ref)
    case delegated(out: WindowRange, max: Int)
    case hello
    /// A whole write or read; with `wait`, one that would block waits for
    /// the reference (as `select` would) instead of being refused.
    case write(Ref, flags: Flags, from: WindowRange, wait: Bool)
    case read(Ref, flags: Flags, into: WindowRange, wait: Bool)
    /// Take (or give back) the write side (`writer`) or read side of a stream.
    case mapStream(Ref, writer: Bool)
    case unmapStream(Ref, writer: Bool)

    /// Decodes `entry` for a window of `windowSize` bytes.
    public static func decode(
        _ entry: SubmissionEntry, windowSize: Int = ChannelLayout.windowSize
    ) throws(ChannelEntryError) -> ChannelRequest {
        guard let op = ChannelOperation(rawValue: entry.operation) else {
            throw .unknownOperation(entry.operation)
        }
        let a = entry.arguments
        let flags = Flags(rawValue: entry.flags)
        let ref = entry.ref
        func range(_ what: String, _ offset: UInt64, _ count: UInt64) throws(ChannelEntryError) -> WindowRange {
            guard let r = WindowRange(offset: offset, count: count, windowSize: windowSize) else {
                throw .outsideWindow(what, offset: offset, count: count)
            }
            return r
        }
        func refs(_ what: String, _ offset: UInt64, _ count: UInt64) throws(ChannelEntryError) -> WindowRange {
            guard count <= UInt64(ChannelLayout.maxReferencesPerCall) else { throw .tooManyReferences(count) }
            return try range(what, offset, count * 8)
        }
        func size(_ what: String, _ value: UInt64) throws(ChannelEntryError) -> Int {
            guard value <= UInt64(ChannelLayout.windowArea) else { throw .outOfRange(what, value) }
            return Int(value)
        }
        switch op {
        case .create:
            let spec: ObjectSpec
            switch a.0 {
            case 0: spec = .blob(size: try size("blob size", a.1))
            case 1:
                guard a.2 <= 65_536 else { throw .outOfRange("stream depth", a.2) }
                spec = .stream(messageSize: try size("message size", a.1), depth: a.2 == 0 ? 64 : Int(a.2))
            case 2:
                guard a.1 <= UInt64(Int64.max) else { throw .outOfRange("timer nanoseconds", a.1) }
                spec = .timer(after: .nanoseconds(Int64(a.1)))
            default: throw .outOfRange("object kind to create", a.0)
            }
            let nameIn = a.4 == .max ? nil : try range("name", a.4, 32)
            return .create(spec, flags: flags, nameOut: try range("name out", a.3, 32), nameIn: nameIn)
        case .lookup:
            return .lookup(
                name: try range("name", a.0, 32), flags: flags, out: try refs("references out", a.1, a.2),
                max: Int(a.2))
        case .beginRead:
            return .beginRead(ref, flags: flags, into: try range("read view", a.0, a.1))
        case .endRead:
            return .endRead(handle: a.0)
        case .beginWrite:
            let n = try size("write size", a.0)
            return .beginWrite(ref, size: n, flags: flags, from: try range("write view", a.1, UInt64(n)))
        case .endWrite:
            return .endWrite(handle: a.0, length: try size("write length", a.1))
        case .abandon:
            return .abandon(handle: a.0)
        case .run:
            let target: RunTarget
            if a.2 == .max {
                target = .here
            } else {
                guard a.2 <= 0xFFFF_FFFF else { throw .outOfRange("instance", a.2) }
                let node = UInt16(truncatingIfNeeded: a.2 >> 16)
                let core = UInt16(truncatingIfNeeded: a.2)
                target = node == 0xFFFF ? .sibling(core: Int(core)) : .instance(InstanceID(node: node, core: core))
            }
            return .run(ref, arguments: try refs("arguments", a.0, a.1), flags: flags, on: target)
        case .pause:
            return .pause(ref, flags: flags)
        case .copy:
            let rights: Rights?
            if a.2 == 0xFFFF_FFFF {
                rights = nil
            } else {
                guard a.2 <= UInt64(Rights.all.rawValue) else { throw .outOfRange("rights", a.2) }
                rights = Rights(rawValue: UInt8(a.2))
            }
            return .copy(
                to: ref, refs: try refs("references", a.0, a.1), rights: rights, flags: flags,
                out: try refs("references out", a.3, a.1))
        case .delete:
            return .delete(ref, flags: flags)
        case .select:
            guard a.1 > 0 else { throw .outOfRange("select's reference count", 0) }
            return .select(refs: try refs("references", a.0, a.1), flags: flags)
        case .restrict:
            guard a.0 <= UInt64(Rights.all.rawValue) else { throw .outOfRange("rights", a.0) }
            return .restrict(ref, to: Rights(rawValue: UInt8(a.0)))
        case .describe:
            return .describe(ref)
        case .delegated:
            return .delegated(out: try refs("references out", a.0, a.1), max: Int(a.1))
        case .hello:
            return .hello
        case .write:
            guard a.2 <= 1 else { throw .outOfRange("write's wait", a.2) }
            return .write(
                ref, flags: flags, from: try range("write", a.0, UInt64(try size("write length", a.1))), wait: a.2 == 1)
        case .read:
            guard a.2 <= 1 else { throw .outOfRange("read's wait", a.2) }
            return .read(ref, flags: flags, into: try range("read", a.0, a.1), wait: a.2 == 1)
        case .mapStream, .unmapStream:
            guard a.0 <= 1 else { throw .outOfRange("stream side", a.0) }
            return op == .mapStream ? .mapStream(ref, writer: a.0 == 1) : .unmapStream(ref, writer: a.0 == 1)
        }
    }
}

/// Why a submission could not be decoded. Its completion says
/// `ChannelErrorCode.badEntry`, and nothing is done.
public enum ChannelEntryError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownOperation(UInt16)
    case outsideWindow(String, offset: UInt64, count: UInt64)
    case tooManyReferences(UInt64)
    case outOfRange(String, UInt64)

    public var description: String {
        switch self {
        case .unknownOperation(let op): "no operation \(op)"
        case .outsideWindow(let what, let offset, let count):
            "the \(what) (\(count) bytes at \(offset)) lies outside the window"
        case .tooManyReferences(let n): "\(n) references in one call (at most \(ChannelLayout.maxReferencesPerCall))"
        case .outOfRange(let what, let v): "\(what) \(v) is out of range"
        }
    }
}
