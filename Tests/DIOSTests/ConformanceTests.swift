import DIOS
import DIOSKernel
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Wrong answers an outside suite found in the calls: a sibling instance's
/// blob read as empty and consistent, a dropped write published half-done,
/// references to deleted objects copied. Each test failed before its fix.
@Suite(.serialized) struct ConformanceTests {
    /// Two instances, adaptive idle: the multikernel suite's node.
    static func makeNode() throws -> Node { try MultikernelTests.makeNode() }

    /// A 64-byte blob on instance 0 holding `pattern(1, 64)`; its name.
    static func blobOnInstance0(_ node: Node) async throws -> Name {
        try await node.withTask(on: 0) { task in
            let (name, blob) = try task.create(.blob(size: 64))
            try await task.write(Self.pattern(1, 64), to: blob)
            return name
        }
    }

    /// `lookup` from another instance, retried until the name's delta has
    /// reached that instance's replica.
    static func lookUp(_ task: TaskContext, _ name: Name) async throws -> Ref {
        for _ in 0..<100_000 {
            do throws(CallError) { return try task.lookup(name)[0] } catch .noSuchName {
                try await task.yield()
            }
        }
        throw CallError.noSuchName(name)
    }

    static func pattern(_ seed: UInt8, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0) &+ seed }
    }

    // MARK: 1. A sibling instance's blob

    @Test func aSiblingInstanceReadsAndWritesABlobsRealBytes() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let name = try await Self.blobOnInstance0(node)
        try await node.withTask(on: 1) { task in
            let blob = try await Self.lookUp(task, name)
            let entry = try task.describe(blob)
            #expect(entry.kind == .blob && entry.maxWriteSize == 64 && entry.proximity == .localNode)
            // Weak and strong reads see the owner's bytes, never an empty view.
            for flags: Flags in [[], .strong] {
                let r = try task.beginRead(blob, flags: flags)
                let bytes = r.withUnsafeBytes { Array($0) }
                let consistent = task.endRead(r)
                #expect(bytes == Self.pattern(1, 64) && consistent)
            }
            #expect(throws: CallError.tooLarge(requested: 65, maximum: 64)) { _ = try task.beginWrite(blob, size: 65) }
            let w = try task.beginWrite(blob, size: 64)
            try w.copy(from: Self.pattern(2, 64))
            let committed = task.endWrite(w)
            #expect(committed)
            let strong = try task.beginWrite(blob, size: 8, flags: .strong)
            try strong.store(UInt64(0xD105))
            let committedStrong = task.endWrite(strong)
            #expect(committedStrong)
        }
        let seen = try await node.withTask(on: 0) { task in
            try await task.read(try task.lookup(name)[0])
        }
        #expect(seen == withUnsafeBytes(of: UInt64(0xD105).littleEndian) { Array($0) })
    }

    @Test func aSiblingsWeakReadOverlappedByACommitIsInconsistent() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let name = try await Self.blobOnInstance0(node)
        let consistent = try await node.withTask(on: 1) { task in
            let blob = try await Self.lookUp(task, name)
            let r = try task.beginRead(blob)
            // The owner commits a write while the read is open.
            _ = try await node.withTask(on: 0) { owner in
                try await owner.write(Self.pattern(9, 64), to: try owner.lookup(name)[0])
            }
            return task.endRead(r)
        }
        #expect(!consistent)
    }

    // MARK: 2. A dropped write publishes nothing

    @Test func aDroppedBlobWritePublishesNothing() throws {
        let kernel = try StandaloneInstance(arenaSize: 8 << 20, label: "conformance")
        let task = kernel.attach()
        let (_, blob) = try task.create(.blob(size: 64))
        let w = try task.beginWrite(blob, size: 64)
        try w.copy(from: Self.pattern(1, 64))
        let committed = task.endWrite(w)
        #expect(committed)
        for flags: Flags in [[], .strong] {
            do {
                let dropped = try task.beginWrite(blob, size: 64, flags: flags)
                try dropped.copy(from: [UInt8](repeating: 0xEE, count: 32))
            }  // dropped without endWrite
            for readFlags: Flags in [[], .strong] {
                let r = try task.beginRead(blob, flags: readFlags)
                let bytes = r.withUnsafeBytes { Array($0) }
                let consistent = task.endRead(r)
                #expect(consistent && bytes == Self.pattern(1, 64))
            }
        }
        // A weak read overlapping the dropped write reads the committed bytes.
        let r = try task.beginRead(blob)
        do { _ = try task.beginWrite(blob, size: 64).copy(from: [UInt8](repeating: 0xEE, count: 64)) }
        let bytes = r.withUnsafeBytes { Array($0) }
        _ = task.endRead(r)
        #expect(bytes == Self.pattern(1, 64))
        // The view of a new write starts from the committed bytes.
        let next = try task.beginWrite(blob, size: 64)
        let start = next.withUnsafeMutableBytes { Array($0) }
        let committedNext = task.endWrite(next)
        #expect(start == Self.pattern(1, 64) && committedNext)
    }

    @Test func aSiblingsDroppedWritePublishesNothing() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let name = try await Self.blobOnInstance0(node)
        try await node.withTask(on: 1) { task in
            let blob = try await Self.lookUp(task, name)
            let w = try task.beginWrite(blob, size: 64)
            try w.copy(from: [UInt8](repeating: 0xEE, count: 32))
            _ = consume w  // dropped without endWrite
        }
        // The sibling's drop reaches the owner as a message that may land
        // during the owner's first read (which then fails validation, as any
        // overlapped read does): `read` retries until a read is consistent.
        let bytes = try await node.withTask(on: 0) { task in try await task.read(try task.lookup(name)[0]) }
        #expect(bytes == Self.pattern(1, 64))
    }

    /// `read` retries an inconsistent read; the write it overlapped belongs to
    /// another task on the same instance, which runs only if `read` yields (it
    /// spun on the instance's thread, and the node hung).
    @Test(.timeLimit(.minutes(1))) func readWaitsOutAWriteOpenOnItsOwnInstance() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let name = try await Self.blobOnInstance0(node)
        let opened = Atomic<Bool>(false)
        async let written: Bool = node.withTask(on: 0) { task in
            let w = try task.beginWrite(try task.lookup(name)[0], size: 64)
            try w.copy(from: Self.pattern(2, 64))
            opened.store(true, ordering: .releasing)
            for _ in 0..<100 { try await task.yield() }  // the reader starts meanwhile
            return task.endWrite(w)
        }
        let bytes = try await node.withTask(on: 0) { task in
            while !opened.load(ordering: .acquiring) { try await task.yield() }
            return try await task.read(try task.lookup(name)[0])
        }
        #expect(try await written)
        #expect(bytes == Self.pattern(2, 64))
    }

    /// What the writer and the two readers of `noReaderEverAcceptsAPartialWrite`
    /// share: when the writer is done, and how many reads each reader accepted.
    final class ReadRace: Sendable {
        let done = Atomic<Bool>(false)
        private let acceptedOn0 = Atomic<Int>(0)
        private let acceptedOn1 = Atomic<Int>(0)
        func accepted(_ reader: Int) -> Int {
            reader == 0 ? acceptedOn0.load(ordering: .acquiring) : acceptedOn1.load(ordering: .acquiring)
        }
        func accept(_ reader: Int) {
            if reader == 0 {
                acceptedOn0.add(1, ordering: .releasing)
            } else {
                acceptedOn1.add(1, ordering: .releasing)
            }
        }
    }

    /// A writer fills the whole blob with one value per write, committing the
    /// even values and dropping the odd ones part-way; readers on the same
    /// instance and on the other one never accept a mixed or dropped state.
    /// Every write that is not paused at overlaps the readers, so their weak
    /// reads mostly fail; every 100th committed write and the dropped one after
    /// it, the writer holds still until both readers have accepted a read, so
    /// each reader accepts the committed state of both (whatever the load on
    /// the host) and the check cannot pass by accepting nothing.
    @Test func noReaderEverAcceptsAPartialWrite() async throws {
        let node = try Self.makeNode()
        defer { node.shutdown() }
        let name = try await node.withTask(on: 0) { task in try task.create(.blob(size: 256)).name }
        let writes = 4_000
        let race = ReadRace()
        let missedWindows = Atomic<Int>(0)
        let writer = await node.register(label: "writer") { task in
            let blob = try task.lookup(name)[0]
            for k in 1...writes {
                let value = UInt8(truncatingIfNeeded: k)
                let w = try task.beginWrite(blob, size: 256)
                if k % 2 == 0 {
                    try w.copy(from: [UInt8](repeating: value, count: 256))
                    _ = task.endWrite(w)
                } else {
                    try w.copy(from: [UInt8](repeating: value, count: 128))
                }  // odd: dropped half-written
                if k % 100 < 2 {
                    let seen = (race.accepted(0), race.accepted(1))
                    let deadline = ContinuousClock.now + .seconds(20)
                    while race.accepted(0) == seen.0 || race.accepted(1) == seen.1 {
                        guard ContinuousClock.now < deadline else {
                            missedWindows.add(1, ordering: .relaxed)
                            break
                        }
                        try await task.yield()
                    }
                }
                try await task.yield()
            }
            race.done.store(true, ordering: .releasing)
        }
        let reader: @Sendable (TaskContext, Int) async throws -> (accepted: Int, bad: Int) = { task, index in
            let blob = try await Self.lookUp(task, name)
            var accepted = 0, bad = 0
            while !race.done.load(ordering: .acquiring) {
                let r = try task.beginRead(blob)
                let bytes = r.withUnsafeBytes { Array($0) }
                if task.endRead(r) {
                    accepted += 1
                    // The blob starts zeroed (0 is even): any other state is a
                    // committed write's whole 256 bytes of one even value.
                    if bytes.count != 256 || bytes.contains(where: { $0 != bytes[0] }) || bytes[0] % 2 == 1 { bad += 1 }
                    race.accept(index)
                }
                try await task.yield()
            }
            return (accepted, bad)
        }
        async let sameCore = node.withTask(on: 0) { task in try await reader(task, 0) }
        async let otherCore = node.withTask(on: 1) { task in try await reader(task, 1) }
        try await node.withTask(on: 0) { task in
            _ = try await task.select([try task.run(try task.lookup(writer)[0])])
        }
        let (same, other) = try await (sameCore, otherCore)
        #expect(same.bad == 0 && other.bad == 0)
        #expect(missedWindows.load(ordering: .relaxed) == 0)
        #expect(same.accepted >= 2 * writes / 100 && other.accepted >= 2 * writes / 100)
    }

    // MARK: 3. References to deleted objects

    @Test func copyAndRestrictOfADeletedObjectAreRefused() throws {
        let kernel = try StandaloneInstance(arenaSize: 8 << 20, label: "conformance")
        let task = kernel.attach()
        let child = kernel.attach(trusted: false)
        let childName = try #require(kernel.instance.taskObjectName(child.task))
        let childRef = try #require(try task.lookup(childName).first)
        let (_, blob) = try task.create(.blob(size: 8))
        let second = try task.restrict(blob, to: [.read, .copy])
        try task.delete(blob)
        let before = try child.delegated().count
        #expect(throws: CallError.objectDeleted) { _ = try task.copy([second], to: childRef) }
        #expect(throws: CallError.objectDeleted) { _ = try task.restrict(second, to: [.read]) }
        #expect(throws: CallError.objectDeleted) { _ = try task.describe(second) }
        #expect(try child.delegated().count == before)
        // Deleting it through the dangling reference still succeeds.
        try task.delete(second, flags: .referenceOnly)
    }
}

/// A task's bounds mistake on a view: a typed error, the node intact; and a
/// task that does crash the node is named in what the process says as it dies.
@Suite(.serialized) struct ViewBoundsTests {
    @Test func outOfBoundsAccessorsThrowAndChangeNothing() async throws {
        let node = try ConformanceTests.makeNode()
        defer { node.shutdown() }
        try await node.withTask(on: 1) { task in
            let (_, blob) = try task.create(.blob(size: 8))
            try await task.write([UInt8](repeating: 7, count: 8), to: blob)
            var w = try task.beginWrite(blob, size: 8)
            #expect(throws: CallError.outsideView(offset: 8, count: 8, viewSize: 8)) {
                try w.store(UInt64(1), toByteOffset: 8)
            }
            #expect(throws: CallError.outsideView(offset: 1, count: 8, viewSize: 8)) {
                try w.store(UInt64(1), toByteOffset: 1)
            }
            #expect(throws: CallError.outsideView(offset: -1, count: 1, viewSize: 8)) {
                try w.store(UInt8(1), toByteOffset: -1)
            }
            #expect(throws: CallError.outsideView(offset: Int.max, count: 4, viewSize: 8)) {
                try w.store(UInt32(1), toByteOffset: Int.max)
            }
            #expect(throws: CallError.outsideView(offset: 4, count: 5, viewSize: 8)) {
                try w.copy(from: [UInt8](repeating: 1, count: 5), toByteOffset: 4)
            }
            #expect(throws: CallError.outsideView(offset: 0, count: 9, viewSize: 8)) { try w.setLength(9) }
            #expect(w.length == 8)
            try w.store(UInt8(9), toByteOffset: 7)
            let committed = task.endWrite(w)
            #expect(committed)
            let r = try task.beginRead(blob)
            #expect(throws: CallError.outsideView(offset: 1, count: 8, viewSize: 8)) {
                _ = try r.load(fromByteOffset: 1, as: UInt64.self)
            }
            let last = try r.load(fromByteOffset: 7, as: UInt8.self)
            let first = try r.load(as: UInt8.self)
            let consistent = task.endRead(r)
            #expect(last == 9 && first == 7 && consistent)
        }
        // Both instances still serve.
        for index in 0..<2 {
            let alive = try await node.withTask(on: index) { task in try task.create(.blob(size: 8)).name }
            _ = alive
        }
    }

    @Test func aTaskThatCrashesTheNodeIsNamedAsItDies() async {
        let result = await #expect(processExitsWith: .signal(SIGILL), observing: [\.standardErrorContent]) {
            Node.reportCrashes()
            var configuration = NodeConfiguration()
            configuration.cores = [0, 1]
            configuration.arenaSize = 8 << 20
            let node = try Node(configuration)
            try await node.withTask(on: 1) { task in
                let (_, blob) = try task.create(.blob(size: 8))
                let w = try task.beginWrite(blob, size: 8)
                let offsets = [0, 8]
                // A bounds mistake of the task's own (a Swift array index) traps.
                try w.store(UInt64(1), toByteOffset: offsets[Int(task.instanceIndex) + 1 + Int(w.capacity)])
            }
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("dios: fatal SIGILL"))
        #expect(text.contains("on the thread of kernel instance 0.1"))
        #expect(text.contains("the last task to call into it was task"))
    }
}
