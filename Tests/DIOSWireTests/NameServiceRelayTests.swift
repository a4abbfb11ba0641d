import DIOSCore
import DIOSWire
import Testing

/// `NameService`'s rules for nodes of several instances: a node's instances
/// speak for each other, each carries the node's deltas to its share of the
/// other nodes' instances, and only the end of the session with the instance
/// that relays a node purges what that node published.
@Suite struct NameServiceRelayTests {
    static func id(_ node: UInt16, _ core: UInt16) -> InstanceID { InstanceID(node: node, core: core) }
    static func record(_ owner: InstanceID, _ i: UInt32) -> InstanceRecord {
        InstanceRecord(owner: owner, object: ObjectID(index: i, generation: 1), kind: .blob, size: 8, persistent: false)
    }
    /// `origin`'s insertion `counter`, of its object `counter`, under a new name.
    static func inserted(_ origin: InstanceID, _ counter: UInt64) -> NameDelta {
        .insert(Name.random(), record(origin, UInt32(counter)), InsertTag(origin: origin, counter: counter))
    }
    /// What `others` holds, as (name, owner) pairs.
    static func held(_ s: NameService) -> Set<String> {
        var all: Set<String> = []
        s.others.forEachLive { name, r in all.insert("\(name) \(r.owner)") }
        return all
    }

    /// Every instance of another node is relayed to by exactly one instance of
    /// this node, whatever the two nodes' sizes.
    @Test(arguments: [1, 2, 3, 4])
    func eachRemoteInstanceHasExactlyOneRelay(siblings: Int) {
        let mine = (0..<siblings).map { NameService(local: Self.id(0, UInt16($0)), siblings: siblings) }
        for remoteCores in 1...5 {
            for core in 0..<remoteCores {
                let relays = mine.filter { $0.relays(to: Self.id(1, UInt16(core))) }
                #expect(relays.count == 1, "\(siblings) siblings, instance 1.\(core)")
            }
        }
    }

    /// An instance takes deltas about its sibling's objects from the sibling or
    /// from another node's relay only when they come from that node; never
    /// about its own objects.
    @Test func aPeerSpeaksOnlyForItsOwnNode() {
        var s = NameService(local: Self.id(0, 0), siblings: 2)
        let fromB1 = Self.inserted(Self.id(1, 1), 1)
        do {
            let taken = s.receive(fromB1, from: Self.id(1, 0))
            #expect(taken)  // relayed by 1.1's sibling
        }
        do {
            let taken = s.receive(fromB1, from: Self.id(2, 0))
            #expect(!taken)  // another node speaking for 1.1
        }
        let ofMine = Self.inserted(Self.id(0, 0), 9)
        do {
            let taken = s.receive(ofMine, from: Self.id(0, 1))
            #expect(!taken)  // nobody speaks for this instance
        }
        // An insertion whose record names another owner than its tag.
        let forged = NameDelta.insert(
            Name.random(), Self.record(Self.id(1, 0), 2), InsertTag(origin: Self.id(1, 1), counter: 7))
        do {
            let taken = s.receive(forged, from: Self.id(1, 1))
            #expect(!taken)
        }
        #expect(s.refused == 3)
        #expect(Self.held(s).count == 1)
        // A whole-state sync from a sibling is refused: siblings share deltas only.
        s.receiveSync(reset: true, inserts: [fromB1], from: Self.id(0, 1))
        #expect(s.refused == 4)
        #expect(Self.held(s).count == 1)
    }

    /// The session with another instance of a node ending leaves that node's
    /// names; the session with its relay ending purges them all.
    @Test func onlyTheRelaysSessionEndingPurgesTheNode() {
        var s = NameService(local: Self.id(0, 1), siblings: 2)
        let relay = Self.id(1, 1)  // 1.(1 % 2) relays node 1 to instance 0.1
        let b0 = NameService(local: Self.id(1, 0), siblings: 2)
        let b1 = NameService(local: relay, siblings: 2)
        #expect(b1.relays(to: s.local))
        #expect(!b0.relays(to: s.local))
        let (d0, d1, c0) = (Self.inserted(Self.id(1, 0), 1), Self.inserted(relay, 1), Self.inserted(Self.id(2, 0), 1))
        s.receiveSync(reset: true, inserts: [d0, d1], from: relay)
        s.receiveSync(reset: true, inserts: [c0], from: Self.id(2, 0))
        #expect(Self.held(s).count == 3)
        s.peerDown(Self.id(1, 0))  // not the relay: 1.0 is left out by lookup's reachability, not forgotten
        #expect(Self.held(s).count == 3)
        s.peerDown(relay)  // deltas from node 1 could now be lost: forget it all
        #expect(Self.held(s).count == 1)
        #expect(s.lookup(c0.name, reachable: { _ in true }).map(\.owner) == [Self.id(2, 0)])
        // Back up, the relay sends node 1's whole state again.
        s.receiveSync(reset: true, inserts: [d1], from: relay)
        #expect(Self.held(s) == ["\(c0.name) \(Self.id(2, 0))", "\(d1.name) \(relay)"])
    }

    /// A reset sync from a node's relay replaces everything that node had
    /// published here, both instances' (a restarted node has none of its old
    /// objects).
    @Test func aResetSyncReplacesTheWholeNode() {
        var s = NameService(local: Self.id(0, 0), siblings: 1)
        let (old0, old1) = (Self.inserted(Self.id(1, 0), 1), Self.inserted(Self.id(1, 1), 1))
        s.receiveSync(reset: true, inserts: [old0, old1], from: Self.id(1, 0))
        #expect(Self.held(s).count == 2)
        let new1 = Self.inserted(Self.id(1, 1), 2)
        s.receiveSync(reset: true, inserts: [new1], from: Self.id(1, 0))
        #expect(Self.held(s) == ["\(new1.name) \(Self.id(1, 1))"])
    }

    /// The relay's sync carries its own objects and its siblings' (as its
    /// replica holds them), none of other nodes'; an instance that is not the
    /// peer's relay sends none.
    @Test func theRelaysSyncCarriesTheWholeNode() {
        var a0 = NameService(local: Self.id(0, 0), siblings: 2)
        var a1 = NameService(local: Self.id(0, 1), siblings: 2)
        let (tag0, mine) = a0.publish(Name.random(), Self.record(Self.id(0, 0), 1))
        let (_, sibling) = a1.publish(Name.random(), Self.record(Self.id(0, 1), 1))
        let (_, removed) = a1.publish(Name.random(), Self.record(Self.id(0, 1), 2))
        for d in [sibling, removed, a1.unpublish(removed.name, tag: 2)] {
            let taken = a0.receive(d, from: a1.local)
            #expect(taken)
        }
        let elsewhere = Self.inserted(Self.id(2, 0), 1)
        a0.receiveSync(reset: true, inserts: [elsewhere], from: Self.id(2, 0))
        let own = [(mine.name, Self.record(Self.id(0, 0), 1), tag0)]
        let peer = Self.id(1, 0)  // 0 % 2: relayed by 0.0
        #expect(a0.relays(to: peer))
        let messages = a0.syncMessages(own: own, to: peer)
        var receiver = NameService(local: peer, siblings: 2)
        for case .nameSync(let reset, let inserts) in messages {
            receiver.receiveSync(reset: reset, inserts: inserts, from: a0.local)
        }
        #expect(Self.held(receiver) == ["\(mine.name) \(Self.id(0, 0))", "\(sibling.name) \(Self.id(0, 1))"])
        #expect(a0.syncMessages(own: own, to: Self.id(1, 1)).isEmpty)  // 0.1 relays to 1.1
    }
}
