/// What an object is. The kind travels in every reference, so a call can reject a
/// reference of the wrong kind before it touches the object.
public enum ObjectKind: UInt8, Sendable, CustomStringConvertible, CaseIterable {
    /// An unstructured set of bytes in memory.
    case blob
    /// An ordered message channel (an IPC stream).
    case stream
    /// A one-shot alarm: readable once its deadline has passed.
    case timer
    /// A running (or finished) task: readable once the task has exited.
    case task
    /// A program that `run` can start.
    case program

    public var description: String {
        switch self {
        case .blob: "blob"
        case .stream: "stream"
        case .timer: "timer"
        case .task: "task"
        case .program: "program"
        }
    }
}

/// Where an object instance lies relative to the task that holds the reference,
/// after the original DIOS `reference.h`: the cost of touching it.
public enum Proximity: UInt8, Sendable, Comparable, CustomStringConvertible {
    /// Held by the caller's own kernel instance (same core): plain loads and stores.
    case localCore
    /// Held by another instance of the same node: reached through cross-core rings.
    case localNode
    /// In memory on another node: reached through the network transport.
    case remoteMemory
    /// On a disk of this node.
    case localDisk
    /// On a disk of another node.
    case remoteDisk

    public static func < (a: Proximity, b: Proximity) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .localCore: "local-core"
        case .localNode: "local-node"
        case .remoteMemory: "remote-memory"
        case .localDisk: "local-disk"
        case .remoteDisk: "remote-disk"
        }
    }
}

/// What a reference lets its holder do. `copy` may only narrow these.
///
/// (The options here and in `Flags` are computed and inlinable, not stored
/// `static let`s: another module reaches a stored one through a lazy-init
/// accessor call, and the data path names them on every call.)
public struct Rights: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    @inlinable public static var read: Rights { Rights(rawValue: 1 << 0) }
    @inlinable public static var write: Rights { Rights(rawValue: 1 << 1) }
    /// Delegate the reference to another task (`copy`).
    @inlinable public static var copy: Rights { Rights(rawValue: 1 << 2) }
    @inlinable public static var delete: Rights { Rights(rawValue: 1 << 3) }
    /// Start the program (`run`), pause or resume the task (`pause`).
    @inlinable public static var run: Rights { Rights(rawValue: 1 << 4) }

    @inlinable public static var all: Rights { Rights(rawValue: 0b1_1111) }  // read, write, copy, delete, run

    public var description: String {
        let names: [(Rights, String)] = [(.read, "r"), (.write, "w"), (.copy, "c"), (.delete, "d"), (.run, "x")]
        return names.map { contains($0.0) ? $0.1 : "-" }.joined()
    }
}

/// Identifies a kernel instance cluster-wide: the node and the core-instance on it.
public struct InstanceID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var node: UInt16
    public var core: UInt16

    @inlinable public init(node: UInt16, core: UInt16) {
        self.node = node
        self.core = core
    }

    public static func < (a: InstanceID, b: InstanceID) -> Bool { (a.node, a.core) < (b.node, b.core) }
    /// Both fields as one word: a session or name lookup hashes this per message.
    public func hash(into hasher: inout Hasher) { hasher.combine(UInt32(node) << 16 | UInt32(core)) }
    public var description: String { "\(node).\(core)" }
}

/// An object instance within the instance that holds it: slot plus generation,
/// so an id that outlived its object never reaches a newer one in the same slot.
public struct ObjectID: Hashable, Sendable, CustomStringConvertible {
    public var index: UInt32
    public var generation: UInt32

    @inlinable public init(index: UInt32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }

    public var description: String { "#\(index)/\(generation)" }
    /// Both fields as one word.
    public func hash(into hasher: inout Hasher) { hasher.combine(UInt64(index) << 32 | UInt64(generation)) }
}

/// The set of options every call takes. Each call reads the flags that concern it
/// and ignores the rest, as the DIOS calls do.
public struct Flags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// I/O: hold the object for the transaction (shared for reads, exclusive for
    /// writes) instead of the default weak, optimistic regime. `lookup`: confirm
    /// with the owning instances instead of answering from the local replica.
    @inlinable public static var strong: Flags { Flags(rawValue: 1 << 0) }
    /// `create`: the instance should survive its creator (kept on durable media
    /// where the node has them).
    @inlinable public static var persistent: Flags { Flags(rawValue: 1 << 1) }
    /// `run`: start the task untrusted (no `lookup`, no `run`).
    @inlinable public static var untrusted: Flags { Flags(rawValue: 1 << 2) }
    /// `pause`: resume a paused task instead of pausing it.
    @inlinable public static var resume: Flags { Flags(rawValue: 1 << 3) }
    /// `select`: wait until a reference is writable rather than readable.
    @inlinable public static var writable: Flags { Flags(rawValue: 1 << 4) }
    /// `delete`: drop only the caller's reference, leaving the object.
    @inlinable public static var referenceOnly: Flags { Flags(rawValue: 1 << 5) }
}
