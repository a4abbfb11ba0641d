import DIOSCore
import Testing

@Suite struct NameReplicaTests {
    let a = InstanceID(node: 0, core: 0)
    let b = InstanceID(node: 1, core: 0)
    func record(_ i: UInt32, owner: InstanceID) -> InstanceRecord {
        InstanceRecord(
            owner: owner, object: ObjectID(index: i, generation: 1), kind: .blob, size: 64, persistent: false)
    }

    @Test func insertThenLookupEverywhere() {
        var ra = ORSetNameReplica(origin: a)
        var rb = ORSetNameReplica(origin: b)
        let name = Name.random()
        let d = ra.insert(name, record(1, owner: a))
        let changed = rb.apply(d)
        #expect(changed)
        #expect(ra.lookup(name) == [record(1, owner: a)])
        #expect(rb.lookup(name) == ra.lookup(name))
        let again = rb.apply(d)
        #expect(!again)  // a duplicate changes nothing
    }

    @Test func removalArrivingBeforeItsInsertStillWins() {
        var ra = ORSetNameReplica(origin: a)
        var rb = ORSetNameReplica(origin: b)
        let name = Name.random()
        let insert = ra.insert(name, record(1, owner: a))
        let removes = ra.remove(name, object: ObjectID(index: 1, generation: 1), owner: a)
        #expect(removes.count == 1)
        #expect(ra.lookup(name).isEmpty)
        for d in removes { rb.apply(d) }
        rb.apply(insert)  // late, reordered
        #expect(rb.lookup(name).isEmpty)
        #expect(rb == ra)
    }

    @Test func concurrentInsertsOfOneNameBothSurvive() {
        var ra = ORSetNameReplica(origin: a)
        var rb = ORSetNameReplica(origin: b)
        let name = Name.random()
        let da = ra.insert(name, record(1, owner: a))
        let db = rb.insert(name, record(2, owner: b))
        ra.apply(db)
        rb.apply(da)
        #expect(ra.lookup(name).count == 2)
        #expect(ra == rb)
    }

    @Test func mergeCatchesUpARestartedReplica() {
        var ra = ORSetNameReplica(origin: a)
        let names = (0..<20).map { _ in Name.random() }
        for (i, n) in names.enumerated() { _ = ra.insert(n, record(UInt32(i), owner: a)) }
        _ = ra.remove(names[3], object: ObjectID(index: 3, generation: 1), owner: a)
        var fresh = ORSetNameReplica(origin: b)
        fresh.merge(ra.state)
        #expect(fresh == ra)
        #expect(fresh.lookup(names[3]).isEmpty)
        #expect(fresh.names.count == 19)
    }
}
