import CLinux
package import DIOSCore
import DIOSWire

/// The replicated name service (DESIGN §7). Each instance is the authority on
/// the objects it holds: `create` publishes an insertion, `delete` a removal
/// (a tombstone), as deltas to every other instance — through the control
/// queues to this node's others, and through the wire to the instances of other
/// nodes it relays to (`NameService.relays(to:)`); each sibling relays the
/// delta on to its own share of them. Each instance keeps a replica of everyone
/// else's (an observed-remove set), so `lookup` answers from memory. The
/// session with a node's relay ending (failure, restart) purges what that node
/// published; when it comes back the relay sends the node's whole state again.
///
/// Only what tasks `create` is published (not proxies, stream ends made for
/// other nodes, or programs, which every instance registers for itself). A
/// node of one instance and no wire publishes nothing: its table is the whole
/// name space, and its data path stays free of the replica's bookkeeping.
extension KernelInstance {
    /// Whether there is anyone to publish names to.
    var replicating: Bool { fabric.instanceCount > 1 || wire != nil }

    /// Publishes a new object of this instance.
    func publish(_ object: ObjectID) {
        guard replicating else { return }
        let i = Int(object.index)
        let (tag, delta) = nameService.publish(objects.records[i].name, instanceRecord(i, object))
        objects.records[i].nameTag = tag
        broadcast(delta)
    }

    /// Publishes the removal of an object of this instance.
    func unpublish(_ i: Int) {
        let tag = objects.records[i].nameTag
        guard tag != 0 else { return }
        objects.records[i].nameTag = 0
        broadcast(nameService.unpublish(objects.records[i].name, tag: tag))
    }

    private func instanceRecord(_ i: Int, _ object: ObjectID) -> InstanceRecord {
        let r = objects.records[i]
        let size = r.kind == .blob ? r.maxWriteSize : (r.buffer?.capacity ?? 0)
        return InstanceRecord(owner: id, object: object, kind: r.kind, size: size, persistent: r.persistent)
    }

    private func broadcast(_ delta: NameDelta) {
        // The siblings first: each relays it on to its share of the other
        // nodes' instances while this one sends to its own.
        for peer in 0..<fabric.instanceCount where peer != index { send(.name(delta), to: peer) }
        relayName(delta)
    }

    /// Sends `delta` (this instance's or a sibling's) to the instances of other
    /// nodes this one relays to.
    func relayName(_ delta: NameDelta) {
        guard let wire else { return }
        wire.hold()  // one burst to every peer
        defer { wire.sendHeld() }
        var bytes: [UInt8]? = nil  // encoded once for every peer, if any
        let now = clinux_monotonic_ns()
        let sibling = delta.origin != id
        for session in wire.sessions where session.isUp && nameService.relays(to: session.peer) {
            if bytes == nil { bytes = RemoteMessage.nameDelta(delta).encoded() }
            sendToPeer(encoded: bytes!, to: session.peer, wire: wire, now: now)
            if sibling { counters.namesRelayed &+= 1 }
        }
    }

    /// A delta from an instance of this node, or (checked) from another node's
    /// relay. Whether it was taken.
    @discardableResult
    func applyName(_ delta: NameDelta, from peer: InstanceID) -> Bool {
        guard nameService.receive(delta, from: peer) else {
            counters.remoteRefused &+= 1
            return false
        }
        if let nameApplied, case .insert(let name, _, _) = delta { nameApplied(name) }
        return true
    }

    /// This node's names, for an instance of another node that just came up,
    /// if this instance relays to it: its own objects and its siblings'.
    func sendNameState(to peer: InstanceID) {
        guard nameService.relays(to: peer) else { return }
        var own: [(Name, InstanceRecord, UInt64)] = []
        for i in objects.records.indices
        where objects.records[i].live && !objects.records[i].deleted && objects.records[i].nameTag != 0 {
            let object = ObjectID(index: UInt32(i), generation: objects.records[i].generation)
            own.append((objects.records[i].name, instanceRecord(i, object), objects.records[i].nameTag))
        }
        for message in nameService.syncMessages(own: own, to: peer) { sendToPeer(message, to: peer) }
    }

    func applyNameSync(reset: Bool, inserts: [NameDelta], from peer: InstanceID) {
        let before = nameService.refused
        nameService.receiveSync(reset: reset, inserts: inserts, from: peer)
        counters.remoteRefused &+= nameService.refused - before
    }

    /// A local stand-in for an instance held elsewhere, reused per instance.
    /// A blob on another instance (of this node or another) is read and
    /// written through it (remote calls); other kinds held elsewhere answer
    /// `describe` and can be deleted here, but their I/O is refused.
    func standIn(for record: InstanceRecord, name: Name) -> ObjectID? {
        let key = RemoteEnd(peer: record.owner, origin: record.object)
        if let existing = standIns[key], objects.isLive(existing) { return existing }
        let peerBlob = record.kind == .blob && record.owner != id
        let size = peerBlob ? record.size : 0
        guard let object = makeObject(kind: record.kind, name: name, bufferSize: size, maxWriteSize: size, flags: [])
        else {
            return nil
        }
        names.remove(name, object)  // a stand-in is not an instance of the name here
        let i = Int(object.index)
        objects.records[i].bridge = peerBlob ? .blob : .elsewhere
        objects.records[i].remotePeer = record.owner
        objects.records[i].remoteOrigin = record.object
        objects.records[i].ownerElsewhere = record.owner
        standIns[key] = object
        return object
    }

    /// Handles `nameConfirm` from a peer: whether `object` still holds `name` here.
    func confirmName(_ name: Name, _ object: ObjectID, call: UInt32, from peer: InstanceID) {
        let ok =
            objects.isLive(object) && objects.records[Int(object.index)].name == name
            && objects.records[Int(object.index)].nameTag != 0
        sendToPeer(.blobReply(call: call, status: ok ? .ok : .deleted, ok: ok), to: peer)
    }

    /// The instances of other nodes this one has a session with now, and this
    /// node's own instances: the membership view `lookup` filters by.
    package func reachableInstances() -> [InstanceID] {
        checkThread()
        var all = (0..<fabric.instanceCount).map { InstanceID(node: id.node, core: UInt16($0)) }
        if let wire { all += wire.sessions.filter(\.isUp).map(\.peer) }
        return all.sorted()
    }

    /// Every name this instance knows, with its instances (for `dios names`).
    package func nameListing() -> [(name: Name, owners: [InstanceID])] {
        checkThread()
        var all: [Name: [InstanceID]] = [:]
        for i in objects.records.indices
        where objects.records[i].live && !objects.records[i].deleted
            && objects.records[i].nameTag != 0
        {
            all[objects.records[i].name, default: []].append(id)
        }
        for (name, records) in nameService.others.all {
            for r in records where r.owner.node == id.node || (wire?.isReachable(r.owner) ?? false) {
                all[name, default: []].append(r.owner)
            }
        }
        return all.keys.sorted().map { ($0, all[$0]!.sorted()) }
    }
}
