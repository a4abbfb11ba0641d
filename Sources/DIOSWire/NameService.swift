public import DIOSCore

/// The name-service protocol of one instance (DESIGN §7), apart from any I/O so
/// that the kernel and the simulation run the same code.
///
/// The instance is the authority on its own objects: it publishes an insertion
/// when one is created and a removal (a tombstone) when it is deleted. It keeps
/// a replica of everyone else's (`others`, an observed-remove set).
///
/// **Who carries a delta where.** The instances of a node share one process and
/// fail together, so a node speaks for its instances as one: an instance sends
/// a delta to its siblings (through the node's control rings), and to another
/// node's instance `p` only if it is `p`'s *relay* on this node — the instance
/// `p.core % siblings` (`relays(to:)`) — which carries every delta of every
/// instance of this node to `p`, its siblings' too. The work of a `create`
/// (one datagram per instance of every other node) is so spread over the
/// node's instances, in parallel, instead of all falling on the creator; and
/// each pair of instances still carries a given name's deltas in order on one
/// path (sibling ring, then one session).
///
/// A peer may speak only for instances of its own node. When the session with
/// the instance that relays a node to this one ends, what that node published
/// is purged (a restarted node has none of its old objects; deltas sent while
/// the session was down are lost); when it comes back the relay sends the
/// whole node's state again. The session with another instance of that node
/// ending changes nothing here: `lookup` leaves that instance out while it is
/// unreachable (its objects still exist), and its deltas still come through
/// the relay.
public struct NameService: Sendable {
    public let local: InstanceID
    /// How many instances this node has (`local` among them).
    public let siblings: Int
    public private(set) var others: ORSetNameReplica
    private var counter: UInt64 = 0
    /// Deltas refused because a peer spoke for another node's instance.
    public private(set) var refused: UInt64 = 0
    /// Per other node, the instance of it that relays its names here: the one
    /// the last whole-state sync came from.
    private var relayOf: [UInt16: InstanceID] = [:]

    public init(local: InstanceID, siblings: Int = 1) {
        precondition(siblings >= 1 && Int(local.core) < siblings, "an instance of a node of \(siblings)")
        self.local = local
        self.siblings = siblings
        others = ORSetNameReplica(origin: local)
    }

    /// Whether this instance carries its node's deltas to `peer`, an instance
    /// of another node.
    @inline(__always)
    public func relays(to peer: InstanceID) -> Bool { Int(peer.core) % siblings == Int(local.core) }

    /// A new object of this instance: its insertion tag, and the delta to send.
    public mutating func publish(_ name: Name, _ record: InstanceRecord) -> (tag: UInt64, delta: NameDelta) {
        counter &+= 1
        return (counter, .insert(name, record, InsertTag(origin: local, counter: counter)))
    }

    /// The removal of an object published under `tag`.
    public func unpublish(_ name: Name, tag: UInt64) -> NameDelta {
        .remove(name, InsertTag(origin: local, counter: tag))
    }

    /// A delta from `peer` (a sibling, or the relay of another node); refused
    /// (false) unless it is about an object of an instance of `peer`'s node,
    /// published by that instance.
    @discardableResult
    public mutating func receive(_ delta: NameDelta, from peer: InstanceID) -> Bool {
        switch delta {
        case .insert(_, let record, let tag):
            guard tag.origin.node == peer.node, record.owner == tag.origin, tag.origin != local else {
                refused &+= 1
                return false
            }
        case .remove(_, let tag):
            guard tag.origin.node == peer.node, tag.origin != local else {
                refused &+= 1
                return false
            }
        }
        others.apply(delta)
        return true
    }

    /// The whole state of `peer`'s node, from its relay to this instance (in
    /// one or more messages; the first resets what that node published).
    public mutating func receiveSync(reset: Bool, inserts: [NameDelta], from peer: InstanceID) {
        guard peer.node != local.node else {
            refused &+= UInt64(inserts.count)
            return
        }
        if reset {
            others.purge(node: peer.node)
            relayOf[peer.node] = peer
        }
        for d in inserts { receive(d, from: peer) }
    }

    /// `peer`'s session ended. If `peer` relays its node here (or nothing came
    /// from that node yet), forget what the node published: deltas sent until
    /// the session is back would be lost, and then the relay sends it all again.
    public mutating func peerDown(_ peer: InstanceID) {
        guard peer.node != local.node, relayOf[peer.node].map({ $0 == peer }) ?? true else { return }
        others.purge(node: peer.node)
        relayOf[peer.node] = nil
    }

    /// The messages that carry this node's whole state to `peer`, an instance
    /// of another node whose session just came up and that this one relays to
    /// (`relays(to:)`; none otherwise): the live objects of this instance,
    /// `(name, record, tag)`, and those of its siblings as its replica holds
    /// them, in chunks.
    public func syncMessages(own: [(Name, InstanceRecord, UInt64)], to peer: InstanceID, chunk: Int = 800)
        -> [RemoteMessage]
    {
        guard relays(to: peer) else { return [] }
        var inserts = own.map { NameDelta.insert($0.0, $0.1, InsertTag(origin: local, counter: $0.2)) }
        if siblings > 1 {
            others.forEachLiveInsert { name, record, tag in
                if tag.origin.node == local.node { inserts.append(.insert(name, record, tag)) }
            }
        }
        var messages: [RemoteMessage] = []
        var start = 0
        repeat {
            let end = min(start + chunk, inserts.count)
            messages.append(.nameSync(reset: start == 0, inserts: Array(inserts[start..<end])))
            start = end
        } while start < inserts.count
        return messages
    }

    /// Calls `body` with each instance of `name` the replica holds (`lookup`'s
    /// path: no array built). `mutating` only so that a caller holding this in
    /// a class property passes it in place: a non-mutating call would first
    /// copy the replica out of the property, retaining and releasing each of
    /// its tables (about a third of a lookup's instructions).
    @inlinable
    public mutating func forEachInstance(of name: Name, _ body: (InstanceRecord) -> Void) {
        others.forEach(of: name, body)
    }

    /// The instances of `name` held elsewhere that `reachable` admits.
    public func lookup(_ name: Name, reachable: (InstanceID) -> Bool) -> [InstanceRecord] {
        others.lookup(name).filter { reachable($0.owner) }
    }
}
