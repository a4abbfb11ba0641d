public import DIOSCore

/// The name-service protocol of one instance (DESIGN §7), apart from any I/O so
/// that the kernel and the simulation run the same code.
///
/// The instance is the authority on its own objects: it publishes an insertion
/// when one is created and a removal (a tombstone) when it is deleted, and sends
/// them to every other instance. It keeps a replica of everyone else's
/// (`others`, an observed-remove set). A peer may speak only for itself. When a
/// peer's session ends, what it published is purged (a restarted peer has none
/// of its old objects); when it comes back it sends its whole state again.
public struct NameService: Sendable {
    public let local: InstanceID
    public private(set) var others: ORSetNameReplica
    private var counter: UInt64 = 0
    /// Deltas refused because a peer spoke for another instance.
    public private(set) var refused: UInt64 = 0

    public init(local: InstanceID) {
        self.local = local
        others = ORSetNameReplica(origin: local)
    }

    /// A new object of this instance: its insertion tag, and the delta to send.
    public mutating func publish(_ name: Name, _ record: InstanceRecord) -> (tag: UInt64, delta: NameDelta) {
        counter &+= 1
        return (counter, .insert(name, record, InsertTag(origin: local, counter: counter)))
    }

    /// The removal of an object published under `tag`.
    public func unpublish(_ name: Name, tag: UInt64) -> NameDelta {
        .remove(name, InsertTag(origin: local, counter: tag))
    }

    /// A delta from `peer`; refused (false) unless it is about `peer`'s own objects.
    @discardableResult
    public mutating func receive(_ delta: NameDelta, from peer: InstanceID) -> Bool {
        switch delta {
        case .insert(_, let record, let tag):
            guard tag.origin == peer, record.owner == peer else {
                refused &+= 1
                return false
            }
        case .remove(_, let tag):
            guard tag.origin == peer else {
                refused &+= 1
                return false
            }
        }
        others.apply(delta)
        return true
    }

    /// A peer's whole state (in one or more messages; the first resets).
    public mutating func receiveSync(reset: Bool, inserts: [NameDelta], from peer: InstanceID) {
        if reset { others.purge(owner: peer) }
        for d in inserts { receive(d, from: peer) }
    }

    /// `peer`'s session ended: forget what it published.
    public mutating func peerDown(_ peer: InstanceID) { others.purge(owner: peer) }

    /// The messages that carry this instance's whole state to a peer that just
    /// came up: its live objects, `(name, record, tag)`, in chunks.
    public func syncMessages(own: [(Name, InstanceRecord, UInt64)], chunk: Int = 800) -> [RemoteMessage] {
        let inserts = own.map { NameDelta.insert($0.0, $0.1, InsertTag(origin: local, counter: $0.2)) }
        var messages: [RemoteMessage] = []
        var start = 0
        repeat {
            let end = min(start + chunk, inserts.count)
            messages.append(.nameSync(reset: start == 0, inserts: Array(inserts[start..<end])))
            start = end
        } while start < inserts.count
        return messages
    }

    /// The instances of `name` held elsewhere that `reachable` admits.
    public func lookup(_ name: Name, reachable: (InstanceID) -> Bool) -> [InstanceRecord] {
        others.lookup(name).filter { reachable($0.owner) }
    }
}
