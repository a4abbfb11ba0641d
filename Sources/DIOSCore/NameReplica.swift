/// One instance of a named object, as the name service knows it.
public struct InstanceRecord: Hashable, Sendable {
    /// The kernel instance holding it.
    public var owner: InstanceID
    /// Its id within the owner.
    public var object: ObjectID
    public var kind: ObjectKind
    public var size: Int
    public var persistent: Bool

    public init(owner: InstanceID, object: ObjectID, kind: ObjectKind, size: Int, persistent: Bool) {
        self.owner = owner
        self.object = object
        self.kind = kind
        self.size = size
        self.persistent = persistent
    }
}

/// Identifies one insertion into the name service: the replica that made it and
/// that replica's counter. Unique by construction, so inserts commute.
public struct InsertTag: Hashable, Sendable, Comparable {
    public var origin: InstanceID
    public var counter: UInt64

    public init(origin: InstanceID, counter: UInt64) {
        self.origin = origin
        self.counter = counter
    }

    public static func < (a: InsertTag, b: InsertTag) -> Bool { (a.origin, a.counter) < (b.origin, b.counter) }
}

/// A change to the name service, spread between replicas by message.
public enum NameDelta: Hashable, Sendable {
    /// `record` is an instance of `name`, inserted under `tag`.
    case insert(Name, InstanceRecord, InsertTag)
    /// The insertion `tag` of `name` is removed (a tombstone: it never comes back).
    case remove(Name, InsertTag)

    public var name: Name {
        switch self {
        case .insert(let n, _, _), .remove(let n, _): n
        }
    }

    /// The instance that published it.
    public var origin: InstanceID {
        switch self {
        case .insert(_, _, let tag), .remove(_, let tag): tag.origin
        }
    }
}

/// The interface the kernel uses for the name service, so the replica behind it
/// can later be a partition of the name space (consistent hashing, R replicas
/// per partition, local caches — DESIGN §7) without changing its callers.
public protocol NameReplica: Sendable {
    /// Every instance of `name` this replica knows and has not seen removed.
    func lookup(_ name: Name) -> [InstanceRecord]
    /// The same, with the insertion tags a removal must name.
    func observed(_ name: Name) -> [(InsertTag, InstanceRecord)]
    /// Calls `body` with every instance of `name` this replica knows, in no
    /// particular order and without building an array (`lookup`'s hot path).
    func forEach(of name: Name, _ body: (InstanceRecord) -> Void)
    /// Applies a delta from this or another replica. Idempotent and
    /// commutative: any order and any duplication reach the same state.
    /// Returns whether the state changed.
    @discardableResult mutating func apply(_ delta: NameDelta) -> Bool
    /// A summary of the whole state, for anti-entropy.
    var state: ReplicaState { get }
    /// Merges another replica's state (anti-entropy after a restart or a partition).
    mutating func merge(_ state: ReplicaState)
}

/// A replica's whole state: what was inserted, and which insertions were removed.
public struct ReplicaState: Equatable, Sendable {
    public var inserts: [InsertTag: (Name, InstanceRecord)]
    public var tombstones: Set<InsertTag>

    public init(inserts: [InsertTag: (Name, InstanceRecord)] = [:], tombstones: Set<InsertTag> = []) {
        self.inserts = inserts
        self.tombstones = tombstones
    }

    public static func == (a: ReplicaState, b: ReplicaState) -> Bool {
        a.tombstones == b.tombstones && a.inserts.count == b.inserts.count
            && a.inserts.allSatisfy { tag, value in b.inserts[tag].map { $0 == value } ?? false }
    }
}

extension NameReplica {
    /// By way of `lookup` (a replica that can do better without an array says so).
    public func forEach(of name: Name, _ body: (InstanceRecord) -> Void) {
        for record in lookup(name) { body(record) }
    }
}

/// The name service replica of DESIGN §7: an observed-remove set of
/// (name, instance) pairs. Names are unique by construction, so inserts never
/// conflict; a removal names the insertion it observed (its tag) and leaves a
/// tombstone, so a removed instance never reappears, whatever the order,
/// delay or duplication of the messages that carry the deltas.
public struct ORSetNameReplica: NameReplica, Equatable {
    /// Live insertions, by name.
    private var live: [Name: [InsertTag: InstanceRecord]] = [:]
    /// Every insertion ever seen (also removed ones: an insert that arrives after
    /// its own removal must stay removed), and the removed tags.
    private var seen: [InsertTag: (Name, InstanceRecord)] = [:]
    private var tombstones: Set<InsertTag> = []
    /// This replica's identity and its insertion counter.
    public let origin: InstanceID
    private var counter: UInt64 = 0

    public init(origin: InstanceID) { self.origin = origin }

    /// A new local insertion: the delta to apply here and to send to the others.
    public mutating func insert(_ name: Name, _ record: InstanceRecord) -> NameDelta {
        counter += 1
        let delta = NameDelta.insert(name, record, InsertTag(origin: origin, counter: counter))
        apply(delta)
        return delta
    }

    /// Removals of every instance of `name` this replica observes held by
    /// `owner`'s object `object` (normally one): the deltas to apply and send.
    public mutating func remove(_ name: Name, object: ObjectID, owner: InstanceID) -> [NameDelta] {
        let tags = (live[name] ?? [:]).filter { $0.value.object == object && $0.value.owner == owner }.keys.sorted()
        let deltas = tags.map { NameDelta.remove(name, $0) }
        for d in deltas { apply(d) }
        return deltas
    }

    public func lookup(_ name: Name) -> [InstanceRecord] { observed(name).map(\.1) }

    public func forEach(of name: Name, _ body: (InstanceRecord) -> Void) {
        // By index, in place: copying the inner dictionary out would retain it.
        guard let i = live.index(forKey: name) else { return }
        for record in live.values[i].values { body(record) }
    }

    public func observed(_ name: Name) -> [(InsertTag, InstanceRecord)] {
        guard let instances = live[name] else { return [] }
        return instances.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    @discardableResult
    public mutating func apply(_ delta: NameDelta) -> Bool {
        switch delta {
        case .insert(let name, let record, let tag):
            guard seen[tag] == nil else { return false }
            seen[tag] = (name, record)
            if tag.origin == origin { counter = max(counter, tag.counter) }
            guard !tombstones.contains(tag) else { return true }
            live[name, default: [:]][tag] = record
            return true
        case .remove(let name, let tag):
            guard tombstones.insert(tag).inserted else { return false }
            if live[name]?.removeValue(forKey: tag) != nil, live[name]?.isEmpty == true { live[name] = nil }
            return true
        }
    }

    public var state: ReplicaState {
        ReplicaState(inserts: seen, tombstones: tombstones)
    }

    public mutating func merge(_ state: ReplicaState) {
        for tag in state.tombstones {
            let name = state.inserts[tag]?.0 ?? seen[tag]?.0
            if let name { apply(.remove(name, tag)) } else { tombstones.insert(tag) }
        }
        for (tag, (name, record)) in state.inserts { apply(.insert(name, record, tag)) }
    }

    /// Names with at least one live instance.
    public var names: [Name] { live.keys.sorted() }

    /// What the replica keeps: every insertion it has seen (removed ones
    /// too) and its tombstones.
    public var size: (insertions: Int, tombstones: Int) { (seen.count, tombstones.count) }

    /// Forgets everything the instances of `node` inserted or removed, without
    /// tombstones: used when the session that carries that node's deltas here
    /// ends, before the node sends its whole state again (its instances are the
    /// authority on their own objects, and a restarted node has none of its old
    /// ones).
    public mutating func purge(node: UInt16) {
        for (name, instances) in live {
            let kept = instances.filter { $0.value.owner.node != node }
            live[name] = kept.isEmpty ? nil : kept
        }
        seen = seen.filter { $0.value.1.owner.node != node }
        tombstones = tombstones.filter { $0.origin.node != node }
    }

    /// Every live insertion, `(name, instance, tag)`, in the order of their tags
    /// (the same in every process, unlike a dictionary's).
    public func forEachLiveInsert(_ body: (Name, InstanceRecord, InsertTag) -> Void) {
        var all: [(Name, InstanceRecord, InsertTag)] = []
        for (name, instances) in live {
            for (tag, record) in instances { all.append((name, record, tag)) }
        }
        for (name, record, tag) in all.sorted(by: { $0.2 < $1.2 }) { body(name, record, tag) }
    }

    /// Calls `body` with every live (name, instance) pair, in no particular
    /// order and without building arrays (for checks that run often).
    public func forEachLive(_ body: (Name, InstanceRecord) -> Void) {
        for (name, instances) in live {
            for record in instances.values { body(name, record) }
        }
    }

    /// Every live (name, instance) pair, by name.
    public var all: [(Name, [InstanceRecord])] {
        live.keys.sorted().map { name in (name, observed(name).map(\.1)) }
    }

    public static func == (a: ORSetNameReplica, b: ORSetNameReplica) -> Bool {
        a.live == b.live && a.tombstones == b.tombstones
    }
}
