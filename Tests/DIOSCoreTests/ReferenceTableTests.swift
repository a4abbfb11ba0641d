import DIOSCore
import Testing

@Suite struct ReferenceTableTests {
    func entry(_ rights: Rights = .all) -> ReferenceEntry {
        ReferenceEntry(
            object: ObjectID(index: 7, generation: 1), owner: InstanceID(node: 0, core: 0), kind: .blob,
            rights: rights, proximity: .localCore, maxWriteSize: 64, persistent: false)
    }

    @Test func insertResolveRemove() throws {
        var table = ReferenceTable()
        let ref = try table.insert(entry())
        #expect(try table.entry(ref) == entry())
        #expect(table.count == 1)
        try table.remove(ref)
        #expect(table.count == 0)
        #expect(throws: ReferenceError.stale(ref)) { try table.entry(ref) }
    }

    @Test func reusedSlotRejectsOldGeneration() throws {
        var table = ReferenceTable()
        let old = try table.insert(entry())
        try table.remove(old)
        let new = try table.insert(entry(.read))
        #expect(new.slot == old.slot)
        #expect(new.generation != old.generation)
        #expect(throws: ReferenceError.stale(old)) { try table.entry(old) }
        #expect(try table.entry(new).rights == .read)
    }

    @Test func forgedReferencesAreInvalid() throws {
        var table = ReferenceTable()
        let ref = try table.insert(entry())
        let forged = Ref(slot: 99, generation: 1)
        #expect(throws: ReferenceError.invalid(forged)) { try table.entry(forged) }
        let future = Ref(slot: ref.slot, generation: ref.generation + 5)
        #expect(throws: ReferenceError.invalid(future)) { try table.entry(future) }
    }

    @Test func rightsAreChecked() throws {
        var table = ReferenceTable()
        let ref = try table.insert(entry(.read))
        #expect(throws: ReferenceError.missingRight(ref, needed: .write, held: .read)) {
            try table.entry(ref, requiring: .write)
        }
        #expect(try table.entry(ref, requiring: .read).rights == .read)
    }

    @Test func capacityIsEnforced() throws {
        var table = ReferenceTable(capacity: 2)
        _ = try table.insert(entry())
        _ = try table.insert(entry())
        #expect(throws: ReferenceError.tableFull) { try table.insert(entry()) }
        #expect(table.count == 2)
    }
}
