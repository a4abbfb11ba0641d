import CLinux
import DIOS
import DIOSMemory
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench ipc`'s round trips between two cores, every mechanism on the
/// same two pinned threads — kernel instance 0's and instance 1's — in blocks
/// that take turns.
///
/// A task on each instance walks one schedule in lockstep: a warm-up block of
/// each mechanism, then `rounds` rounds of one block each, rotating which goes
/// first. A VM's vCPUs move between hyperthreads, cores and sockets every few
/// seconds (here the floor alone was seen at 51 ns and at 413 ns in one minute),
/// so measuring the mechanisms one after another compared different machines;
/// interleaved, a move falls on all of them alike and the ratios compare like
/// with like.
///
/// The mechanisms:
/// - `floor`: one cache line each way, a release store and an acquire spin;
/// - `floor-c`: the same ping-pong written in C (`clinux_floor_driver`), so
///   the floor every ratio divides by is checked against code no Swift
///   compiler touched, in the same run on the same threads;
/// - `ring-raw`: a pair of `StreamRing`s in plain memory, no kernel around them
///   (what DIOS's own bookkeeping costs on top);
/// - `dios`: a pair of DIOS streams, `beginWrite`/`endWrite` out,
///   `select`/`beginRead`/`endRead` back;
/// - `dios+calls` (with `--extra-calls N`): the same, the echo first making N
///   sets of the four stream calls on a stream of its own: what DIOS's calls
///   cost where they lie on a round trip's path, (dios+calls − dios) / N;
/// - `dios-traced` (with `--traced`): `dios` with both instances recording
///   every call in their trace rings (`dios trace`), against `dios` untraced
///   in the same run;
/// - `uds-blocking`, `uds-poll`: a Unix-domain SOCK_SEQPACKET pair, receiving
///   blocked in the kernel or spinning on non-blocking receives.
///
/// The driver stamps each round trip with the TSC, fenced (`clinux_stamp_begin`,
/// `clinux_stamp_end`: see Bench/README.md, "How the clock is read"); the echo returns the payload
/// (all of it: it copies what it read into what it writes) and the driver checks
/// it got its own message back.
extension BenchIPC {
    enum Mechanism: Sendable, Equatable {
        case floor, floorC, ringRaw, dios, diosExtra, diosTraced, udsBlocking, udsPoll

        var label: String {
            switch self {
            case .floor: "floor"
            case .floorC: "floor-c"
            case .ringRaw: "ring-raw"
            case .dios: "dios"
            case .diosExtra: "dios+calls"
            case .diosTraced: "dios-traced"
            case .udsBlocking: "uds-blocking"
            case .udsPoll: "uds-poll"
            }
        }
    }

    /// One mechanism at one payload size: a histogram of its own.
    struct Lane: Sendable {
        var mechanism: Mechanism
        var payload: Int
        /// Which of the per-size resources (raw rings, DIOS streams) it uses.
        var sizeIndex: Int
        /// For `diosExtra`: the sets of four calls the echo makes first.
        var extraSets = 0
    }

    /// A run of `count` round trips of one lane.
    struct Block: Sendable {
        var lane: Int
        var count: Int
        var measured: Bool
    }

    /// Warm-up blocks for every lane, then `rounds` rotations of measured blocks
    /// that together make `iterations` round trips per lane.
    static func schedule(lanes: Int, warmup: Int, iterations: Int, rounds: Int) -> [Block] {
        var blocks = (0..<lanes).map { Block(lane: $0, count: warmup, measured: false) }
        for r in 0..<rounds {
            let count = iterations / rounds + (r < iterations % rounds ? 1 : 0)
            guard count > 0 else { continue }
            for k in 0..<lanes { blocks.append(Block(lane: (k + r) % lanes, count: count, measured: true)) }
        }
        return blocks
    }

    /// Memory and sockets both sides use outside DIOS: the floors' cache lines
    /// (two for the Swift floor, two for the C one), a pair of raw rings per
    /// payload size, and one socket pair.
    struct Plain: @unchecked Sendable {
        let memory: UnsafeMutableRawPointer
        let ringBytes: [Int]
        let rings: [(ping: StreamRing, pong: StreamRing)]
        let sockets: (driver: Int32, echo: Int32)

        init(sizes: [Int]) throws {
            ringBytes = sizes.map { StreamRing.byteSize(messageSize: $0, depth: 8) }
            let total = 512 + 2 * ringBytes.reduce(0, +)
            memory = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 4096)
            memory.initializeMemory(as: UInt8.self, repeating: 0, count: total)
            var offset = 512
            var rings: [(ping: StreamRing, pong: StreamRing)] = []
            for (size, bytes) in zip(sizes, ringBytes) {
                let ping = StreamRing.initialize(at: memory + offset, messageSize: size, depth: 8)
                let pong = StreamRing.initialize(at: memory + offset + bytes, messageSize: size, depth: 8)
                rings.append((ping, pong))
                offset += 2 * bytes
            }
            self.rings = rings
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else {
                memory.deallocate()
                throw BenchError("socketpair: \(String(cString: strerror(errno)))")
            }
            sockets = (fds[0], fds[1])
        }

        var ping: UnsafeMutablePointer<UInt64> { memory.assumingMemoryBound(to: UInt64.self) }
        var pong: UnsafeMutablePointer<UInt64> { (memory + 128).assumingMemoryBound(to: UInt64.self) }
        /// The sets of extra calls the echo made (`diosExtra`), stored once it is done.
        var extraSetsMade: UnsafeMutablePointer<UInt64> { (memory + 192).assumingMemoryBound(to: UInt64.self) }
        /// The C floor's lines.
        var pingC: UnsafeMutablePointer<UInt64> { (memory + 256).assumingMemoryBound(to: UInt64.self) }
        var pongC: UnsafeMutablePointer<UInt64> { (memory + 384).assumingMemoryBound(to: UInt64.self) }

        func release() {
            close(sockets.driver)
            close(sockets.echo)
            memory.deallocate()
        }
    }

    /// Runs every lane interleaved on two DIOS instances; a histogram per lane.
    func interleaved(_ cpus: [Int], _ lanes: [Lane], sizes: [Int], _ clock: TSC) async throws -> [Result] {
        let plain = try Plain(sizes: sizes)
        defer { plain.release() }
        let node = try makeNode(cpus)
        defer { node.shutdown() }
        let blocks = Self.schedule(lanes: lanes.count, warmup: warmup, iterations: iterations, rounds: rounds)
        let echo = await node.register(label: "echo") { task in
            try await Self.echoSide(task, plain, lanes, blocks)
        }
        let histograms = try await node.withTask(on: 0) { task -> [(Histogram<UInt64>, [UInt64])] in
            var streams: [(ping: Ref, pong: Ref)] = []
            for size in sizes {
                let (_, ping) = try task.create(.stream(messageSize: size, depth: 8))
                let (_, pong) = try task.create(.stream(messageSize: size, depth: 8))
                streams.append((ping, pong))
            }
            let echoTask = try task.run(
                try task.lookup(echo)[0], arguments: streams.flatMap { [$0.ping, $0.pong] }, on: 1)
            let histograms = try await Self.driverSide(task, plain, streams, lanes, blocks, clock)
            _ = try await task.select([echoTask])
            return histograms
        }
        // The sets the echo made per round trip of the `diosExtra` lanes, as
        // it counted them (the echo has exited: its count is stored).
        let extraTrips = blocks.reduce(0) { $0 + (lanes[$1.lane].mechanism == .diosExtra ? $1.count : 0) }
        let setsPerTrip = extraTrips > 0 ? Double(clinux_load_acquire_u64(plain.extraSetsMade)) / Double(extraTrips) : 0
        return zip(lanes, histograms).map {
            Result(
                mechanism: $0.mechanism.label, payload: $0.payload, histogram: $1.0, roundP50s: $1.1,
                extraSetsPerTrip: $0.mechanism == .diosExtra ? setsPerTrip : nil)
        }
    }

    /// The side that starts each round trip and times it. Per lane: the
    /// histogram of every measured round trip, and each round's p50.
    static func driverSide(
        _ task: TaskContext, _ plain: Plain, _ streams: [(ping: Ref, pong: Ref)], _ lanes: [Lane], _ blocks: [Block],
        _ clock: TSC
    ) async throws -> [(Histogram<UInt64>, [UInt64])] {
        var histograms = lanes.map { _ in newHistogram() }
        var roundP50s = lanes.map { _ in [UInt64]() }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 1, count: 4096)
        defer { buffer.deallocate() }
        var floorSeq: UInt64 = 0
        var floorCSeq: UInt64 = 1  // the C floor's next sequence number
        let maxBlock = blocks.map(\.count).max() ?? 0
        let ticks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(maxBlock, 1))
        defer { ticks.deallocate() }
        var seq: UInt64 = 0  // the number each message carries
        for block in blocks {
            let lane = lanes[block.lane]
            let size = lane.payload
            // This block's round trips; merged into the lane's once it ends.
            var blockHistogram = newHistogram()
            // One loop per mechanism, the switch outside it: nothing but the
            // round trip itself between the two stamps.
            @inline(__always) func record(_ t0: UInt64, _ echoed: UInt64) {
                let t1 = clinux_stamp_end()
                precondition(echoed == seq, "\(lane.mechanism.label) echo out of order")
                if block.measured { _ = blockHistogram.record(clock.nanoseconds(t1 &- t0)) }
            }
            switch lane.mechanism {
            case .floor:
                for _ in 0..<block.count {
                    seq &+= 1
                    floorSeq &+= 1
                    let t0 = clinux_stamp_begin()
                    clinux_store_release_u64(plain.ping, floorSeq)
                    while clinux_load_acquire_u64(plain.pong) != floorSeq { clinux_cpu_relax() }
                    record(t0, seq)
                }
            case .floorC:
                clinux_floor_driver(plain.pingC, plain.pongC, floorCSeq, Int32(block.count), ticks)
                floorCSeq &+= UInt64(block.count)
                if block.measured {
                    for k in 0..<block.count { _ = blockHistogram.record(clock.nanoseconds(ticks[k])) }
                }
            case .ringRaw:
                let (ping, pong) = plain.rings[lane.sizeIndex]
                for _ in 0..<block.count {
                    seq &+= 1
                    let t0 = clinux_stamp_begin()
                    var slot = ping.reserve()
                    while slot == nil { slot = ping.reserve() }
                    slot!.storeBytes(of: seq, as: UInt64.self)
                    ping.publish(length: size)
                    var message = pong.peek()
                    while message == nil {
                        clinux_cpu_relax()
                        message = pong.peek()
                    }
                    let echoed = message!.0.load(as: UInt64.self)
                    pong.release()
                    record(t0, echoed)
                }
            case .dios, .diosExtra, .diosTraced:
                let ping = streams[lane.sizeIndex].ping
                let pong = streams[lane.sizeIndex].pong
                let pongs = [pong]
                task.traceThisInstance(lane.mechanism == .diosTraced)
                defer { task.traceThisInstance(false) }
                for _ in 0..<block.count {
                    seq &+= 1
                    let t0 = clinux_stamp_begin()
                    let w = try task.beginWrite(ping, size: size)
                    try w.store(seq)
                    _ = task.endWrite(w)
                    _ = try await task.select(pongs)
                    let r = try task.beginRead(pong)
                    let echoed = try r.load(as: UInt64.self)
                    _ = task.endRead(r)
                    record(t0, echoed)
                }
            case .udsBlocking, .udsPoll:
                let flags: Int32 = lane.mechanism == .udsPoll ? Int32(MSG_DONTWAIT) : 0
                let socket = plain.sockets.driver
                for _ in 0..<block.count {
                    seq &+= 1
                    buffer.storeBytes(of: seq, as: UInt64.self)
                    let t0 = clinux_stamp_begin()
                    _ = send(socket, buffer, size, 0)
                    var n = recv(socket, buffer, 4096, flags)
                    while n < 0 { n = recv(socket, buffer, 4096, flags) }
                    record(t0, buffer.load(as: UInt64.self))
                }
            }
            if block.measured {
                histograms[block.lane].add(blockHistogram)
                roundP50s[block.lane].append(blockHistogram.valueAtPercentile(50))
            }
        }
        return Array(zip(histograms, roundP50s))
    }

    /// The side that returns each message, following the same schedule.
    static func echoSide(_ task: TaskContext, _ plain: Plain, _ lanes: [Lane], _ blocks: [Block]) async throws {
        let refs = try task.delegated()
        // A stream of the echo's own, for the extra calls of `diosExtra` (made
        // only when such a lane runs).
        let own = lanes.contains { $0.extraSets > 0 } ? try task.create(.stream(messageSize: 8, depth: 8)).1 : nil
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        defer { buffer.deallocate() }
        var floorSeq: UInt64 = 0
        var floorCSeq: UInt64 = 1
        var extraSetsMade: UInt64 = 0
        defer { clinux_store_release_u64(plain.extraSetsMade, extraSetsMade) }
        for block in blocks {
            let lane = lanes[block.lane]
            switch lane.mechanism {
            case .floor:
                for _ in 0..<block.count {
                    floorSeq &+= 1
                    while clinux_load_acquire_u64(plain.ping) != floorSeq { clinux_cpu_relax() }
                    clinux_store_release_u64(plain.pong, floorSeq)
                }
            case .floorC:
                clinux_floor_echo(plain.pingC, plain.pongC, floorCSeq, Int32(block.count))
                floorCSeq &+= UInt64(block.count)
            case .ringRaw:
                let (ping, pong) = plain.rings[lane.sizeIndex]
                for _ in 0..<block.count {
                    var message = ping.peek()
                    while message == nil {
                        clinux_cpu_relax()
                        message = ping.peek()
                    }
                    var slot = pong.reserve()
                    while slot == nil { slot = pong.reserve() }
                    slot!.copyMemory(from: message!.0, byteCount: message!.1)
                    pong.publish(length: message!.1)
                    ping.release()
                }
            case .dios, .diosExtra, .diosTraced:
                let ping = refs[2 * lane.sizeIndex]
                let pong = refs[2 * lane.sizeIndex + 1]
                let pings = [ping]
                task.traceThisInstance(lane.mechanism == .diosTraced)
                defer { task.traceThisInstance(false) }
                for _ in 0..<block.count {
                    _ = try await task.select(pings)
                    for _ in 0..<lane.extraSets {
                        let w = try task.beginWrite(own!, size: 8)
                        _ = task.endWrite(w)
                        let r = try task.beginRead(own!)
                        if task.endRead(r) { extraSetsMade &+= 1 }
                    }
                    let r = try task.beginRead(ping)
                    let w = try task.beginWrite(pong, size: r.count)
                    w.withUnsafeMutableBytes { dst in r.withUnsafeBytes { dst.copyMemory(from: $0) } }
                    _ = task.endWrite(w)
                    _ = task.endRead(r)
                }
            case .udsBlocking, .udsPoll:
                let flags: Int32 = lane.mechanism == .udsPoll ? Int32(MSG_DONTWAIT) : 0
                let socket = plain.sockets.echo
                for _ in 0..<block.count {
                    var n = recv(socket, buffer, 4096, flags)
                    while n < 0 { n = recv(socket, buffer, 4096, flags) }
                    _ = send(socket, buffer, n, 0)
                }
            }
        }
    }
}

/// A benchmark that cannot set itself up.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
