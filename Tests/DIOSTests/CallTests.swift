import DIOS
import DIOSKernel
import Testing

/// The synchronous calls, driven on the test's own thread.
@Suite struct CallTests {
    let kernel: StandaloneInstance
    let task: TaskContext

    init() throws {
        kernel = try StandaloneInstance(arenaSize: 8 << 20, label: "calltests")
        task = kernel.attach()
    }

    @Test func createEachKind() throws {
        let (blobName, blob) = try task.create(.blob(size: 100))
        let (streamName, stream) = try task.create(.stream(messageSize: 64, depth: 8))
        let (_, timer) = try task.create(.timer(after: .seconds(60)))
        #expect(blobName != streamName)
        let b = try task.describe(blob)
        #expect(b.kind == .blob && b.rights == .all && b.maxWriteSize == 100 && b.proximity == .localCore)
        #expect(try task.describe(stream).kind == .stream)
        #expect(try task.describe(stream).maxWriteSize == 64)
        #expect(try task.describe(timer).kind == .timer)
        #expect(kernel.instance.objectCount == 4)  // three and the task object
    }

    @Test func createRejectsBadSpecsAndChangesNothing() throws {
        let before = kernel.instance.objectCount
        #expect(throws: CallError.invalidArgument("blob size -1")) { try task.create(.blob(size: -1)) }
        #expect(throws: CallError.outOfMemory(requested: 3 << 20)) { try task.create(.blob(size: 3 << 20)) }
        #expect(throws: CallError.invalidArgument("stream depth 0")) {
            try task.create(.stream(messageSize: 8, depth: 0))
        }
        // Sizes whose ring size would overflow: refused, not a trap in the kernel.
        #expect(throws: CallError.outOfMemory(requested: Int.max)) { try task.create(.stream(messageSize: Int.max)) }
        #expect(throws: CallError.outOfMemory(requested: 1 << 61)) {
            try task.create(.stream(messageSize: 1 << 61, depth: 1 << 20))
        }
        #expect(kernel.instance.objectCount == before)
    }

    @Test func blobWriteThenRead() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let w = try task.beginWrite(blob, size: 5)
        try w.copy(from: Array("hello".utf8))
        let ended1 = task.endWrite(w)
        #expect(ended1)
        let r = try task.beginRead(blob)
        let value1 = r.count
        #expect(value1 == 5)
        let value2 = r.withUnsafeBytes { Array($0) }
        #expect(value2 == Array("hello".utf8))
        let ended2 = task.endRead(r)
        #expect(ended2)
    }

    @Test func newBlobsAreZeroedEvenWhenBuffersAreReused() throws {
        let (_, a) = try task.create(.blob(size: 64))
        let w = try task.beginWrite(a, size: 64)
        try w.copy(from: [UInt8](repeating: 0xAB, count: 64))
        let ended3 = task.endWrite(w)
        #expect(ended3)
        try task.delete(a)
        let (_, b) = try task.create(.blob(size: 64))
        let r = try task.beginRead(b)
        #expect(r.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        _ = task.endRead(r)
    }

    @Test func writeLargerThanMaximumIsRefused() throws {
        let (_, blob) = try task.create(.blob(size: 16))
        #expect(throws: CallError.tooLarge(requested: 17, maximum: 16)) { _ = try task.beginWrite(blob, size: 17) }
        // Nothing is held: a write of the right size goes through.
        let w = try task.beginWrite(blob, size: 16)
        let ended4 = task.endWrite(w)
        #expect(ended4)
    }

    @Test func weakReadIsConsistentWithoutInterleavedWrite() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let r = try task.beginRead(blob)
        let ended5 = task.endRead(r)
        #expect(ended5)
    }

    @Test func weakReadFailsWhenAWriteCommitsInBetween() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let r = try task.beginRead(blob)
        let w = try task.beginWrite(blob, size: 8)
        try w.store(UInt64(42))
        let ended6 = task.endWrite(w)
        #expect(ended6)
        let ended7 = task.endRead(r)
        #expect(!ended7)
        // Retrying sees the new value, consistently.
        let again = try task.beginRead(blob)
        let value3 = try again.load(as: UInt64.self)
        #expect(value3 == 42)
        let ended8 = task.endRead(again)
        #expect(ended8)
    }

    @Test func weakReadFailsWhileAWriteIsOpen() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let w = try task.beginWrite(blob, size: 8)
        let r = try task.beginRead(blob)  // writers never wait for weak readers
        let ended9 = task.endRead(r)
        #expect(!ended9)
        let ended10 = task.endWrite(w)
        #expect(ended10)
    }

    @Test func weakReadFailsAcrossAnAbandonedWrite() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let r = try task.beginRead(blob)
        do {
            let w = try task.beginWrite(blob, size: 8)
            try w.store(UInt64(7))
        }  // dropped without endWrite: nothing published, but the bytes may have changed
        let ended11 = task.endRead(r)
        #expect(!ended11)
        let w2 = try task.beginWrite(blob, size: 8)  // the writer slot was released
        let ended12 = task.endWrite(w2)
        #expect(ended12)
    }

    @Test func strongReadHoldsExcludeWriters() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let r1 = try task.beginRead(blob, flags: .strong)
        let r2 = try task.beginRead(blob, flags: .strong)  // shared holds coexist
        #expect(throws: CallError.wouldBlock) { _ = try task.beginWrite(blob, size: 8) }
        #expect(throws: CallError.wouldBlock) { _ = try task.beginWrite(blob, size: 8, flags: .strong) }
        let ended13 = task.endRead(r1)
        #expect(ended13)
        #expect(throws: CallError.wouldBlock) { _ = try task.beginWrite(blob, size: 8) }
        let ended14 = task.endRead(r2)
        #expect(ended14)
        let w = try task.beginWrite(blob, size: 8, flags: .strong)
        let ended15 = task.endWrite(w)
        #expect(ended15)
    }

    @Test func strongWriteHoldExcludesReadersAndWriters() throws {
        let (_, blob) = try task.create(.blob(size: 64))
        let w = try task.beginWrite(blob, size: 8, flags: .strong)
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(blob, flags: .strong) }
        #expect(throws: CallError.busy) { _ = try task.beginWrite(blob, size: 8, flags: .strong) }
        let ended16 = task.endWrite(w)
        #expect(ended16)
        let r = try task.beginRead(blob, flags: .strong)
        let ended17 = task.endRead(r)
        #expect(ended17)
    }

    @Test func strongReadIsFalseWhenDeletedUnderTheHold() throws {
        // A strong read cannot be interleaved by a write, so it is consistent
        // until the object is deleted under it.
        let (_, blob) = try task.create(.blob(size: 64))
        let r = try task.beginRead(blob, flags: .strong)
        try task.delete(blob)
        let ended18 = task.endRead(r)
        #expect(!ended18)
    }

    @Test func streamCarriesMessagesInOrder() throws {
        let (_, stream) = try task.create(.stream(messageSize: 32, depth: 4))
        for round in 0..<10 {
            for i in 0..<4 {
                let w = try task.beginWrite(stream, size: 8)
                try w.store(UInt64(round * 4 + i))
                let ended19 = task.endWrite(w)
                #expect(ended19)
            }
            for i in 0..<4 {
                let r = try task.beginRead(stream)
                let value4 = r.count
                #expect(value4 == 8)
                let value5 = try r.load(as: UInt64.self)
                #expect(value5 == UInt64(round * 4 + i))
                let ended20 = task.endRead(r)
                #expect(ended20)
            }
        }
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(stream) }
    }

    @Test func fullStreamRefusesAndOverwritesNothing() throws {
        let (_, stream) = try task.create(.stream(messageSize: 8, depth: 2))
        for i in 0..<2 {
            let w = try task.beginWrite(stream, size: 8)
            try w.store(UInt64(i))
            let ended21 = task.endWrite(w)
            #expect(ended21)
        }
        #expect(throws: CallError.wouldBlock) { _ = try task.beginWrite(stream, size: 8) }
        let r = try task.beginRead(stream)
        let value6 = try r.load(as: UInt64.self)
        #expect(value6 == 0)
        let ended22 = task.endRead(r)
        #expect(ended22)
        let r2 = try task.beginRead(stream)
        let value7 = try r2.load(as: UInt64.self)
        #expect(value7 == 1)
        let ended23 = task.endRead(r2)
        #expect(ended23)
    }

    /// `beginWrite`/`beginRead`/`endWrite`/`endRead` on a stream take a fast
    /// path that hands anything unusual to the general one: each refusal here
    /// must still be the general path's, and leave the stream as it was.
    @Test func streamRefusalsChangeNothing() throws {
        let (_, stream) = try task.create(.stream(messageSize: 16, depth: 2))
        #expect(throws: CallError.invalidArgument("write size -1")) { _ = try task.beginWrite(stream, size: -1) }
        #expect(throws: CallError.tooLarge(requested: 17, maximum: 16)) { _ = try task.beginWrite(stream, size: 17) }
        let w = try task.beginWrite(stream, size: 8)
        #expect(throws: CallError.busy) { _ = try task.beginWrite(stream, size: 8) }  // one write open at a time
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(stream) }  // nothing published yet
        try w.store(UInt64(7))
        let published = task.endWrite(w)
        #expect(published)
        let r = try task.beginRead(stream)
        #expect(throws: CallError.busy) { _ = try task.beginRead(stream) }  // one read open at a time
        let value = try r.load(as: UInt64.self)
        #expect(value == 7)
        let consumed = task.endRead(r)
        #expect(consumed)
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(stream) }

        // Rights: a read-only reference cannot write, a write-only one cannot read.
        let child = kernel.attach(trusted: true)
        let childRef = try selfReference(child)
        let readOnly = try task.copy([stream], to: childRef, rights: [.read])[0]
        let writeOnly = try task.copy([stream], to: childRef, rights: [.write])[0]
        #expect(throws: CallError.reference(.missingRight(readOnly, needed: .write, held: .read))) {
            _ = try child.beginWrite(readOnly, size: 8)
        }
        #expect(throws: CallError.reference(.missingRight(writeOnly, needed: .read, held: .write))) {
            _ = try child.beginRead(writeOnly)
        }

        // Deleted under an open write and an open read: both end false, and
        // the stale reference is refused as such.
        let w2 = try child.beginWrite(writeOnly, size: 8)
        let published2 = child.endWrite(w2)
        #expect(published2)
        let r2 = try child.beginRead(readOnly)
        let w3 = try task.beginWrite(stream, size: 8)
        try task.delete(stream)
        let wrote = task.endWrite(w3)
        #expect(!wrote)
        let read = child.endRead(r2)
        #expect(!read)
        #expect(throws: CallError.reference(.stale(stream))) { _ = try task.beginWrite(stream, size: 8) }
        #expect(throws: CallError.objectDeleted) { _ = try child.beginRead(readOnly) }
    }

    @Test func abandonedStreamReadLeavesTheMessage() throws {
        let (_, stream) = try task.create(.stream(messageSize: 8, depth: 2))
        let w = try task.beginWrite(stream, size: 8)
        try w.store(UInt64(99))
        let ended24 = task.endWrite(w)
        #expect(ended24)
        _ = try task.beginRead(stream)  // dropped without endRead
        let r = try task.beginRead(stream)
        let value8 = try r.load(as: UInt64.self)
        #expect(value8 == 99)
        let ended25 = task.endRead(r)
        #expect(ended25)
    }

    @Test func zeroCopyViewsLieInTheObjectsArenaBuffer() throws {
        let (_, blob) = try task.create(.blob(size: 256))
        let (_, stream) = try task.create(.stream(messageSize: 128, depth: 4))
        for ref in [blob, stream] {
            let object = try task.describe(ref).object
            let ranges = kernel.instance.bufferRanges(of: object)
            let w = try task.beginWrite(ref, size: 100)
            let writeAddress = UInt(bitPattern: w.baseAddress)
            #expect(ranges.contains { $0.contains(writeAddress) && $0.contains(writeAddress + 99) })
            #expect(kernel.arena.contains(w.baseAddress))
            try w.store(UInt32(0xD105), toByteOffset: 0)
            let ended26 = task.endWrite(w)
            #expect(ended26)
            let r = try task.beginRead(ref)
            // The reader's view is the very bytes the writer filled.
            #expect(UInt(bitPattern: r.baseAddress) == writeAddress)
            let value9 = try r.load(as: UInt32.self)
            #expect(value9 == 0xD105)
            let ended27 = task.endRead(r)
            #expect(ended27)
        }
    }

    @Test func staleReferenceAfterDelete() throws {
        let (_, blob) = try task.create(.blob(size: 8))
        try task.delete(blob)
        #expect(throws: CallError.reference(.stale(blob))) { _ = try task.beginRead(blob) }
        #expect(throws: CallError.reference(.stale(blob))) { try task.delete(blob) }
        // A new object reusing the slot does not answer to the old reference.
        let (_, other) = try task.create(.blob(size: 8))
        #expect(other.slot == blob.slot && other.generation != blob.generation)
        #expect(throws: CallError.reference(.stale(blob))) { _ = try task.beginWrite(blob, size: 1) }
    }

    @Test func deleteThroughOneReferenceInvalidatesOthers() throws {
        let (name, blob) = try task.create(.blob(size: 8))
        let second = try #require(try task.lookup(name).first)
        try task.delete(blob)
        #expect(throws: CallError.objectDeleted) { _ = try task.beginRead(second) }
        #expect(throws: CallError.noSuchName(name)) { try task.lookup(name) }
        // Deleting it again through the dangling reference succeeds and drops that reference.
        try task.delete(second)
        #expect(throws: CallError.reference(.stale(second))) { try task.describe(second) }
    }

    @Test func deleteWithoutTheRightIsRefused() throws {
        let child = kernel.attach(trusted: true)
        let childRef = try selfReference(child)
        let (_, blob) = try task.create(.blob(size: 8))
        let delegated = try task.copy([blob], to: childRef, rights: [.read])
        #expect(throws: CallError.reference(.missingRight(delegated[0], needed: .delete, held: .read))) {
            try child.delete(delegated[0])
        }
        #expect(try task.describe(blob).kind == .blob)  // still there
        try child.delete(delegated[0], flags: .referenceOnly)  // dropping one's own reference is fine
        #expect(throws: CallError.reference(.stale(delegated[0]))) { try child.describe(delegated[0]) }
    }

    @Test func copyRestrictsRights() throws {
        let child = kernel.attach(trusted: false)
        let childRef = try selfReference(child)
        let (_, blob) = try task.create(.blob(size: 8))
        let refs = try task.copy([blob], to: childRef, rights: [.read])
        #expect(try child.describe(refs[0]).rights == [.read])
        #expect(try child.delegated() == refs)
        let r = try child.beginRead(refs[0])
        let ended28 = child.endRead(r)
        #expect(ended28)
        #expect(throws: CallError.reference(.missingRight(refs[0], needed: .write, held: .read))) {
            _ = try child.beginWrite(refs[0], size: 1)
        }
    }

    @Test func copyCannotWidenAndChangesNothing() throws {
        let middle = kernel.attach(trusted: true)
        let last = kernel.attach(trusted: false)
        let middleRef = try selfReference(middle)
        let lastRef = try selfReference(last)
        let lastInMiddle = try task.copy([lastRef], to: middleRef)[0]
        let (_, blob) = try task.create(.blob(size: 8))
        let (_, other) = try task.create(.blob(size: 8))
        let held = [
            try task.copy([blob], to: middleRef, rights: [.read, .write, .copy])[0],
            try task.copy([other], to: middleRef, rights: [.read, .copy])[0],
        ]
        let before = try last.delegated()
        let tableBefore = try kernel.instance.references(of: last.task).count
        // Asking for write (not held) refuses the whole call, including the valid part.
        #expect(
            throws: CallError.reference(.widening(held[1], requested: [.read, .write, .copy], held: [.read, .copy]))
        ) {
            try middle.copy(held, to: lastInMiddle, rights: [.read, .write, .copy])
        }
        #expect(try last.delegated() == before)
        #expect(try kernel.instance.references(of: last.task).count == tableBefore)
        #expect(try middle.describe(held[1]).rights == [.read, .copy])
        // Narrowing works.
        let ok = try middle.copy(held, to: lastInMiddle, rights: [.read])
        #expect(try last.describe(ok[0]).rights == [.read])
        // Without the copy right, nothing can be delegated at all.
        let middleInLast = try task.copy([middleRef], to: lastRef)[0]
        #expect(throws: CallError.reference(.missingRight(ok[0], needed: .copy, held: [.read]))) {
            try last.copy([ok[0]], to: middleInLast)
        }
    }

    @Test func untrustedTasksCannotLookupOrRun() throws {
        let untrusted = kernel.attach(trusted: false)
        let untrustedRef = try selfReference(untrusted)
        let (name, _) = try task.create(.blob(size: 8))
        #expect(throws: CallError.untrusted(.lookup)) { try untrusted.lookup(name) }
        // Even holding a program reference with every right, it cannot run it.
        let programName = Name.random()
        _ = kernel.instance.registerProgram(programName) { _, _ in 0 }
        let program = try #require(try task.lookup(programName).first)
        let delegated = try task.copy([program], to: untrustedRef)[0]
        #expect(try untrusted.describe(delegated).rights == .all)
        let objects = kernel.instance.objectCount
        #expect(throws: CallError.untrusted(.run)) { try untrusted.run(delegated) }
        #expect(kernel.instance.objectCount == objects)
        #expect(kernel.instance.taskCount == 2)
    }

    @Test func lookupFindsTheInstance() throws {
        let (name, blob) = try task.create(.blob(size: 8))
        let found = try task.lookup(name)
        #expect(found.count == 1)
        #expect(try task.describe(found[0]).object == task.describe(blob).object)
        let unknown = Name.random()
        #expect(throws: CallError.noSuchName(unknown)) { try task.lookup(unknown) }
    }

    @Test func wrongKindsAreRefused() throws {
        let (_, timer) = try task.create(.timer(after: .seconds(60)))
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(timer) }
        #expect(throws: CallError.invalidArgument("a timer is written with 8 bytes, got 4")) {
            _ = try task.beginWrite(timer, size: 4)
        }
        let (_, blob) = try task.create(.blob(size: 8))
        #expect(throws: CallError.wrongKind(.pause, .blob)) { try task.pause(blob) }
        #expect(throws: CallError.wrongKind(.run, .blob)) { try task.run(blob) }
    }

    @Test func forgedReferencesAreRejected() throws {
        let forged = Ref(slot: 4242, generation: 1)
        #expect(throws: CallError.reference(.invalid(forged))) { _ = try task.beginRead(forged) }
        #expect(throws: CallError.reference(.invalid(forged))) { try task.delete(forged) }
    }

    @Test func timerFiresAndCanBeRearmed() throws {
        let (_, timer) = try task.create(.timer(after: .zero))
        kernel.poll()
        let r = try task.beginRead(timer)
        let value10 = r.count
        #expect(value10 == 8)
        let ended29 = task.endRead(r)
        #expect(ended29)
        let w = try task.beginWrite(timer, size: 8)
        try w.store(UInt64(60_000_000_000).littleEndian)
        let ended30 = task.endWrite(w)
        #expect(ended30)
        kernel.poll()
        #expect(throws: CallError.wouldBlock) { _ = try task.beginRead(timer) }
    }

    /// A reference to an attached task, made by looking up its task object.
    func selfReference(_ context: TaskContext) throws -> Ref {
        let object = try #require(kernel.instance.taskObjectName(context.task))
        return try #require(try task.lookup(object).first)
    }
}
