// DIOS data-path benchmarks: the per-call cost of the synchronous calls on one
// kernel instance driven by the benchmark thread (`StandaloneInstance`), next to
// the hardware floor of the same work done on a plain struct.
//
// Every benchmark runs `benchmark.scaledIterations` (1000) operations per
// iteration; the default output shows per-operation figures (rows marked `*`;
// package-benchmark 1.38.1's `--scale` flag turns that off). The data-path
// benchmarks (weak read pair, write pair, stream message) must not allocate:
// their mallocCountTotal threshold is 0 (see Thresholds/ and README.md).

import Benchmark
import DIOS

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Fixture

/// One kernel instance with the objects the benchmarks use, created on first
/// use. The instance belongs to one thread; each benchmark body re-adopts the
/// thread it runs on before touching it (the check is debug-only anyway).
final class Fixture {
    let kernel: StandaloneInstance
    let task: TaskContext
    let blob: Ref
    let blobName: Name
    let stream: Ref

    init() {
        do {
            kernel = try StandaloneInstance(arenaSize: 64 << 20, label: "bench")
            task = kernel.attach()
            (blobName, blob) = try task.create(.blob(size: 64))
            (_, stream) = try task.create(.stream(messageSize: 64, depth: 64))
            // Commit one write so the blob has a version and 64 readable bytes.
            let w = try task.beginWrite(blob, size: 64)
            try w.store(UInt64(1))
            let committed = task.endWrite(w)
            precondition(committed)
        } catch {
            fatalError("benchmark fixture: \(error)")
        }
    }

    /// Makes the calling thread the instance's thread.
    func adopt() { kernel.instance.adoptCurrentThread() }
}

nonisolated(unsafe) var sharedFixture: Fixture?

func fixture() -> Fixture {
    if let f = sharedFixture {
        f.adopt()
        return f
    }
    let f = Fixture()
    sharedFixture = f
    return f
}

// MARK: - Hardware floor

/// What a seqlock read costs without a kernel: load the version, copy 64 bytes
/// out, load the version again and compare. The memory lives on the heap and is
/// reached through a pointer the optimiser cannot see through (it escapes to a
/// global), so the loads are not hoisted out of the loop.
struct SeqlockFloor {
    let version: UnsafeMutablePointer<UInt64>
    let payload: UnsafeMutableRawPointer
    let scratch: UnsafeMutableRawPointer

    init() {
        var p: UnsafeMutableRawPointer?
        precondition(posix_memalign(&p, 64, 192) == 0)
        let base = p!
        base.initializeMemory(as: UInt8.self, repeating: 0, count: 192)
        version = (base + 128).bindMemory(to: UInt64.self, capacity: 1)
        version.pointee = 2
        payload = base
        scratch = base + 64
    }

    @inline(__always)
    func read() -> Bool {
        let v0 = version.pointee
        memcpy(scratch, payload, 64)
        let v1 = version.pointee
        return v0 == v1 && v0 & 1 == 0
    }
}

nonisolated(unsafe) var sharedFloor: SeqlockFloor?

/// The name-lookup floor's table: 1024 names, one of them the fixture blob's,
/// built once.
nonisolated(unsafe) var sharedNameTable: [Name: ObjectID]?

func nameTableFloor() -> ([Name: ObjectID], Name) {
    let name = fixture().blobName
    if let table = sharedNameTable { return (table, name) }
    var table: [Name: ObjectID] = [:]
    table.reserveCapacity(1024)
    for i in 0..<1023 { table[.random()] = ObjectID(index: UInt32(i), generation: 1) }
    table[name] = ObjectID(index: 1023, generation: 1)
    sharedNameTable = table
    return (table, name)
}

func seqlockFloor() -> SeqlockFloor {
    if let f = sharedFloor { return f }
    let f = SeqlockFloor()
    sharedFloor = f
    return f
}

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    /// Data-path benchmarks: any allocation is a regression. Checked against the
    /// p90 static thresholds in Thresholds/ by `benchmark thresholds check`.
    let noAllocations: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: .init(absolute: BenchmarkThresholds.Absolute.strict)
    ]

    Benchmark.defaultConfiguration = .init(
        metrics: metrics,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: .kilo(100)
    )

    // Each benchmark runs in a process of its own, which ends after it: the
    // fixture goes first, so its arena is unmapped and its hugepage file
    // removed rather than left to the next arena's sweep.
    Benchmark.teardown = {
        sharedFixture = nil
        sharedCrossCoreFixture?.finish()
        sharedCrossCoreFixture = nil
    }

    let dataPath = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: .kilo(100),
        thresholds: noAllocations
    )

    // 5. The floor a weak read pair is measured against.
    Benchmark("floor: seqlock read (64 B copy + version compare)") { benchmark in
        let f = seqlockFloor()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(f.read())
        }
        benchmark.stopMeasurement()
    }

    // 1. beginRead + endRead on a 64-byte blob (weak: validated by version).
    Benchmark("weak read pair (64 B blob)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        let blob = f.blob
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            do {
                let tx = try task.beginRead(blob)
                blackHole(task.endRead(tx))
            } catch {
                fatalError("beginRead: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    // 2. beginWrite + one 8-byte store + endWrite on a 64-byte blob.
    Benchmark("write pair (64 B blob)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        let blob = f.blob
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            do {
                let w = try task.beginWrite(blob, size: 64)
                try w.store(UInt64(truncatingIfNeeded: i))
                blackHole(task.endWrite(w))
            } catch {
                fatalError("beginWrite: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    // 3. create + delete of a 64-byte blob: not the data path, but with one
    //    instance per name stored inline and names drawn from a buffered
    //    CSPRNG pool it does not allocate either, and the gate keeps it so.
    Benchmark("create + delete (64 B blob)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            do {
                let (_, ref) = try task.create(.blob(size: 64))
                try task.delete(ref)
                blackHole(ref)
            } catch {
                fatalError("create/delete: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    // Weak lookup of a name this instance holds, answered from its own table
    //    into an array with room, then the reference dropped again: the
    //    name-service read path (DESIGN §7); it must not allocate.
    Benchmark("weak lookup + drop (local hit)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        let name = f.blobName
        var refs: [Ref] = []
        refs.reserveCapacity(8)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            do {
                _ = try task.lookup(name, into: &refs)
                try task.delete(refs[0], flags: .referenceOnly)
                refs.removeAll(keepingCapacity: true)
            } catch {
                fatalError("lookup: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    // The floor a weak lookup hit is measured against: what it does without a
    //    kernel — find the name in a hash table of 1024 names (as the
    //    instance's name table is, `[Name: ObjectID]`) and append what it
    //    found to an array with room. No reference table, no rights, no
    //    replica of other instances.
    Benchmark("floor: name lookup ([Name: ObjectID] hit + append)") { benchmark in
        let (table, name) = nameTableFloor()
        var found: [ObjectID] = []
        found.reserveCapacity(benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            if let object = table[name] { found.append(object) }
        }
        benchmark.stopMeasurement()
        blackHole(found.count)
    }

    // Weak lookup alone (the goal is <= 100 ns with no allocation on a
    //    hit): 1000 lookups of a name held here are timed, each into an array
    //    with room; the 1000 references are dropped after the measurement stops.
    Benchmark("weak lookup (local hit)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        let name = f.blobName
        var refs: [Ref] = []
        refs.reserveCapacity(benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            do {
                _ = try task.lookup(name, into: &refs)
            } catch {
                fatalError("lookup: \(error)")
            }
        }
        benchmark.stopMeasurement()
        for ref in refs {
            do { try task.delete(ref, flags: .referenceOnly) } catch { fatalError("drop: \(error)") }
        }
    }

    // 4. One 64-byte stream message through a stream on one core: write it
    //    (beginWrite + store + endWrite), then read it (beginRead + endRead).
    Benchmark("stream message (64 B, one core)", configuration: dataPath) { benchmark in
        let f = fixture()
        let task = f.task
        let stream = f.stream
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            do {
                let w = try task.beginWrite(stream, size: 64)
                try w.store(UInt64(truncatingIfNeeded: i))
                blackHole(task.endWrite(w))
                let r = try task.beginRead(stream)
                blackHole(task.endRead(r))
            } catch {
                fatalError("stream message: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    // 5. A 64-byte message to a task on another instance (its own polling
    //    thread) and its echo back: beginWrite/endWrite here, select +
    //    beginRead + beginWrite + endWrite + endRead there, beginRead/endRead
    //    here. The malloc count covers the whole process, both instances.
    Benchmark("stream round trip across instances (64 B)", configuration: dataPath) { benchmark in
        let f = crossCoreFixture()
        let task = f.task
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            do {
                let w = try task.beginWrite(f.ping, size: 64)
                try w.store(UInt64(truncatingIfNeeded: i))
                blackHole(task.endWrite(w))
                // Typed throws: `.wouldBlock` is a value here, not a boxed `any Error`
                // (an untyped catch would allocate a box per miss).
                while true {
                    do throws(CallError) {
                        let r = try task.beginRead(f.pong)
                        blackHole(task.endRead(r))
                        break
                    } catch .wouldBlock {
                        continue  // the echo is on its way
                    }
                }
            } catch {
                fatalError("cross-instance round trip: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }
}

// MARK: - Cross-instance fixture

let echoProgram = Name.wellKnown("bench.echo")

/// This thread drives instance 0; instance 1 runs on a polling thread of its
/// own (busy idle) and runs an echo task that answers every ping with a pong.
final class CrossCoreFixture {
    let kernel: StandaloneInstance
    let task: TaskContext
    let ping: Ref
    let pong: Ref
    let echoTask: Ref

    init() {
        let echo: Program = { task in
            let refs = try task.delegated()
            let pings = [refs[0]]
            while true {
                _ = try await task.select(pings)
                // The fixture's `finish` deletes the ping stream: the echo ends.
                guard let r = try? task.beginRead(refs[0]) else { return }
                let w = try task.beginWrite(refs[1], size: r.count)
                w.withUnsafeMutableBytes { dst in r.withUnsafeBytes { dst.copyMemory(from: $0) } }
                _ = task.endWrite(w)
                _ = task.endRead(r)
            }
        }
        do {
            kernel = try StandaloneInstance(
                arenaSize: 64 << 20, label: "bench-xcore", peers: 1, idle: .busy, programs: [(echoProgram, echo)])
            task = kernel.attach()
            (_, ping) = try task.create(.stream(messageSize: 64, depth: 64))
            (_, pong) = try task.create(.stream(messageSize: 64, depth: 64))
            echoTask = try task.run(try task.lookup(echoProgram)[0], arguments: [ping, pong], on: 1)
        } catch {
            fatalError("cross-instance fixture: \(error)")
        }
    }

    /// Ends the echo: its stream deleted, its `select` wakes and its next call
    /// fails, so the task returns (a task suspended for good would keep its
    /// instance, and the arena, alive). Waits until it has.
    func finish() {
        kernel.instance.adoptCurrentThread()
        try? task.delete(ping)
        while true {  // the proxy becomes readable when the task has exited
            do throws(CallError) {
                _ = task.endRead(try task.beginRead(echoTask))
                return
            } catch .wouldBlock {
                kernel.poll()  // the proxy learns of the exit in a message from instance 1
            } catch {
                fatalError("cross-instance fixture: ending the echo: \(error)")
            }
        }
    }
}

nonisolated(unsafe) var sharedCrossCoreFixture: CrossCoreFixture?

func crossCoreFixture() -> CrossCoreFixture {
    if let f = sharedCrossCoreFixture {
        f.kernel.instance.adoptCurrentThread()
        return f
    }
    let f = CrossCoreFixture()
    sharedCrossCoreFixture = f
    return f
}
