import ArgumentParser
import CLinux
import DIOS
import DIOSConfig
import DIOSDevices
import DIOSKernel
import DIOSMemory
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench ipc`: round trips between two cores, in one run, for
/// 1. the hardware floor — two threads bouncing a cache line;
/// 2. the raw ring — the same two threads through a pair of DIOS `StreamRing`s
///    with no kernel around them (what DIOS's own bookkeeping costs on top);
/// 3. DIOS — a task on each core, a pair of streams, select/beginRead/endRead;
/// 4. Linux — a Unix-domain socket pair, blocking and busy-polled;
/// all on the same two pinned threads, interleaved (`BenchIPCLocal.swift`);
/// plus DIOS one-way throughput. Every figure comes from this run.
struct BenchIPC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipc", abstract: "IPC round-trip latency between two cores: floor, DIOS, Unix sockets.")

    @Option(
        name: .customLong("iterations"),
        help: "Round trips measured per mechanism and payload (default: 100,000; 10,000 with --remote).")
    var iterationsOption: Int?
    @Option(
        name: .customLong("warmup"),
        help: "Round trips run first and not measured (default: 10,000; 1,000 with --remote).")
    var warmupOption: Int?
    /// Across nodes a round trip takes microseconds, not nanoseconds, and there
    /// are five links' rows: fewer samples keep the run to a minute or two.
    var iterations: Int { iterationsOption ?? (remote || processes ? 10_000 : 100_000) }
    var warmup: Int { warmupOption ?? (remote || processes ? 1_000 : 10_000) }
    @Option(help: "Rounds the measured round trips are spread over, the mechanisms taking turns.") var rounds = 20
    @Option(help: "The two CPUs, e.g. 0,1.") var cores = "0,1"
    @Option(help: "Payload sizes in bytes (default: 8,64,512,4096; 64 with --processes).") var payloads: String?
    @Option(
        help: ArgumentHelp(
            "DIOS idle policy: busy (lowest latency) or adaptive (default: busy; adaptive with --processes, whose "
                + "processes share their instances' CPUs).")
    )
    var idle: String?
    /// The idle policy's word, given or by default.
    var idleWord: String { idle ?? (processes ? "adaptive" : "busy") }
    /// `idle`'s policy (`run` has refused any other word).
    var idlePolicy: IdlePolicy { (try? Setting.idle(idleWord)) ?? .adaptive }
    @Option(name: .customLong("throughput-messages"), help: "Messages in the one-way throughput run.")
    var throughputMessages = 5_000_000
    @Flag(help: "One JSON object per line instead of a table.") var json = false
    @Option(help: "Also draws every row's latency distribution into FILE (.svg or .png), with gnuplot.")
    var plot: String?
    @Option(help: "Which to run besides the floor: dios, uds (comma-separated).") var only = "dios,uds"
    @Flag(help: "Also run dios with both instances tracing every call (dios-traced), to weigh tracing.")
    var traced = false
    @Option(help: "With --remote, the links: lo, veth, memif, xdp (comma-separated; xdp needs veth).") var links =
        "lo,veth,memif,xdp"
    @Option(
        name: .customLong("extra-calls"),
        help:
            ArgumentHelp(
                "Also time DIOS with the echo making this many sets of the four stream calls first (dios+calls): the "
                    + "calls' cost on the round trip's path.")
    )
    var extraCalls = 0
    @Flag(
        help:
            "Across nodes instead: DIOS over UDP next to Linux UDP, on loopback and on a veth pair between namespaces.")
    var remote = false
    @Flag(
        help: ArgumentHelp(
            "Programs as processes instead: two in-process tasks, two trusted and two untrusted task processes, and "
                + "a Linux process pair over a busy-polled Unix socket; and run-to-first-call next to posix_spawn."))
    var processes = false
    @Option(help: "With --processes, the built benchmark program (default: built from Bench/Programs/dios-ipc.c).")
    var program: String?
    @Option(
        name: .customLong("process-cores"),
        help: "With --processes, two CPUs for the pinging and echoing task processes (default: their instances').")
    var processCores: String?

    func run() async throws {
        let cpus: [Int]
        do throws(ConfigError) {
            cpus = try Setting.cores(cores)
            _ = try Setting.idle(idleWord, key: "--idle")
        } catch .invalid(let why) {
            throw ValidationError(why)
        } catch {
            throw ValidationError("\(error)")
        }
        guard cpus.count == 2 else { throw ValidationError("--cores needs two different CPUs") }
        try requireAllowed(cpus)
        let sizes = (payloads ?? (processes ? "64" : "8,64,512,4096")).split(separator: ",").compactMap { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 8 && $0 <= 4096 }) else {
            throw ValidationError("--payloads are sizes from 8 to 4096")
        }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
        guard iterations > 0, warmup >= 0 else {
            throw ValidationError("--iterations must be positive, --warmup not negative")
        }
        guard (0...64).contains(extraCalls) else { throw ValidationError("--extra-calls is from 0 to 64") }
        if let plot { try LatencyPlot.check(plot) }
        let clock = TSC.calibrate()
        if remote {
            try await runRemote(cpus, sizes, clock)
            return
        }
        if processes {
            try await runProcesses(cpus, sizes, clock)
            return
        }
        let selected = Set(only.split(separator: ",").map(String.init))
        var lanes = [
            Lane(mechanism: .floor, payload: 8, sizeIndex: 0), Lane(mechanism: .floorC, payload: 8, sizeIndex: 0),
        ]
        var mechanisms: [Mechanism] = [.ringRaw]
        if selected.contains("dios") { mechanisms.append(.dios) }
        if selected.contains("dios") && extraCalls > 0 { mechanisms.append(.diosExtra) }
        if selected.contains("dios") && traced { mechanisms.append(.diosTraced) }
        if selected.contains("uds") { mechanisms += [.udsBlocking, .udsPoll] }
        for mechanism in mechanisms {
            for (k, size) in sizes.enumerated() {
                lanes.append(
                    Lane(
                        mechanism: mechanism, payload: size, sizeIndex: k,
                        extraSets: mechanism == .diosExtra ? extraCalls : 0))
            }
        }
        let stamps = onPinnedThread(cpu: cpus[0]) { clock.stampPairCost() }
        let results = try await interleaved(cpus, lanes, sizes: sizes, clock)
        let throughput = selected.contains("dios") ? try await diosThroughput(cpus, clock) : 0

        let floorP50 = Double(results[0].histogram.valueAtPercentile(50))
        try drawPlot(results, title: "IPC round trips between CPU \(cpus[0]) and CPU \(cpus[1])")
        if json {
            for r in results {
                print(
                    #"{"mechanism":"\#(r.mechanism)","payload":\#(r.payload),"samples":\#(r.histogram.totalCount),"#
                        + #""min_ns":\#(r.histogram.min),"p50_ns":\#(r.histogram.valueAtPercentile(50)),"#
                        + #""p99_ns":\#(r.histogram.valueAtPercentile(99)),"#
                        + #""p999_ns":\#(r.histogram.valueAtPercentile(99.9)),"#
                        + #""vs_floor_p50":\#(format(Double(r.histogram.valueAtPercentile(50)) / floorP50))}"#
                )
            }
            print(
                #"{"mechanism":"dios","payload":64,"direction":"one-way","messages":\#(throughputMessages),"#
                    + #""msgs_per_s":\#(Int(throughput))}"#
            )
            print(
                #"{"clock":"lfence;rdtsc;lfence .. rdtscp;lfence","tsc_hz":\#(Int(clock.hertz)),"#
                    + #""stamp_pair_min_ns":\#(stamps.min),"stamp_pair_p50_ns":\#(stamps.p50)}"#
            )
            return
        }
        print(
            "IPC round trip between CPU \(cpus[0]) and CPU \(cpus[1]), \(iterations) samples each, interleaved in "
                + "\(rounds) rounds (ns; DIOS idle \(idleWord))"
        )
        print(HostDescription.current())
        print(
            "clock: TSC at \(format(clock.hertz / 1e9)) GHz, stamped lfence;rdtsc;lfence before and rdtscp;lfence "
                + "after; "
                + "a stamp pair alone costs min \(stamps.min) / p50 \(stamps.p50) ns (inside every figure)")
        print(
            pad("mechanism", 14) + pad("payload", 9, right: true) + pad("min", 9, right: true)
                + pad("p50", 9, right: true)
                + pad("p99", 9, right: true) + pad("p99.9", 9, right: true) + pad("p50/floor", 11, right: true))
        for r in results {
            let h = r.histogram
            print(
                pad(r.mechanism, 14) + pad("\(r.payload)", 9, right: true) + pad("\(h.min)", 9, right: true)
                    + pad("\(h.valueAtPercentile(50))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99.9))", 9, right: true)
                    + pad(format(Double(h.valueAtPercentile(50)) / floorP50) + "x", 11, right: true))
        }
        func p50(_ mechanism: String, _ size: Int) -> Double? {
            results.first { $0.mechanism == mechanism && $0.payload == size }.map {
                Double($0.histogram.valueAtPercentile(50))
            }
        }
        func roundP50s(_ mechanism: String, _ size: Int) -> [UInt64] {
            results.first { $0.mechanism == mechanism && $0.payload == size }?.roundP50s ?? []
        }
        if let c = p50("floor-c", 8) {
            print(
                "floor check: the Swift floor's p50 is \(format(floorP50 / c))x the C floor's (floor-c, the same "
                    + "ping-pong compiled as C)"
                    + Self.roundByRound(results[0].roundP50s, over: roundP50s("floor-c", 8)))
        }
        for size in sizes where size == 64 || sizes.count == 1 {
            guard let d = p50("dios", size) else { continue }
            var line =
                "\(size) B: DIOS/floor \(format(d / floorP50))x"
                + Self.roundByRound(roundP50s("dios", size), over: results[0].roundP50s)
            if let r = p50("ring-raw", size) {
                line +=
                    ", DIOS/raw ring \(format(d / r))x, DIOS over the raw ring \(Self.signed(d - r)) ns"
                    + Self.roundByRound(roundP50s("dios", size), minus: roundP50s("ring-raw", size))
            }
            if let p = p50("uds-poll", size) {
                line +=
                    ", uds-poll/DIOS \(format(p / d))x"
                    + Self.roundByRound(roundP50s("uds-poll", size), over: roundP50s("dios", size))
            }
            if let b = p50("uds-blocking", size) { line += ", uds-blocking/DIOS \(format(b / d))x" }
            print(line)
            if let e = p50("dios+calls", size),
                let sets = results.first(where: { $0.mechanism == "dios+calls" && $0.payload == size })?
                    .extraSetsPerTrip,
                sets > 0
            {
                let perSet = (e - d) / sets
                let rounds = zip(roundP50s("dios+calls", size), roundP50s("dios", size)).map {
                    (Double($0) - Double($1)) / sets
                }
                var costs =
                    "\(size) B: DIOS's four stream calls (beginWrite, endWrite, beginRead, endRead) on the round "
                    + "trip's path: \(Self.signed(perSet)) ns a set"
                if rounds.count > 1 {
                    let r = Self.medianAndRange(rounds)
                    costs +=
                        " [round by round: median \(Self.signed(r.median)), \(Self.signed(r.low)) to "
                        + "\(Self.signed(r.high)) over \(rounds.count) rounds]"
                }
                let counted = sets == sets.rounded() ? "\(Int(sets))" : format(sets)
                print(
                    costs
                        + " (dios+calls less dios, over the \(counted) sets the echo made first in each round trip, "
                        + "by its own count)"
                )
            }
        }
        print("DIOS one-way throughput, 64 B messages: \(format(throughput / 1e6)) million msgs/s")
    }

    /// `--plot`: every result's distribution, one curve each.
    func drawPlot(_ results: [Result], title: String) throws(CommandFailure) {
        guard let plot else { return }
        try LatencyPlot.draw(results.map { ("\($0.mechanism) \($0.payload) B", $0.histogram) }, title: title, to: plot)
        if !json { print("plot: \(plot)") }
    }

    struct Result {
        var mechanism: String
        var payload: Int
        var histogram: Histogram<UInt64>
        /// Each round's p50 in round order, where the mechanisms took turns in
        /// rounds (the DPDK rows of `--remote`): ratios between mechanisms are
        /// then also taken round by round, so that a machine whose speed
        /// drifts during the run (a shared VM) compares like with like.
        var roundP50s: [UInt64] = []
        /// For `dios+calls`: the sets of four calls the echo made per round
        /// trip, as it counted them.
        var extraSetsPerTrip: Double? = nil
    }

    /// ` [round by round: median Mx, A-Bx over N rounds]`: `numerator`'s
    /// p50 over `denominator`'s, taken round by round; empty unless both
    /// have the same rounds, more than one.
    static func roundByRound(_ numerator: [UInt64], over denominator: [UInt64]) -> String {
        guard numerator.count > 1 && numerator.count == denominator.count else { return "" }
        let r = medianAndRange(zip(numerator, denominator).map { Double($0) / Double(max($1, 1)) })
        return
            " [round by round: median \(format(r.median))x, \(format(r.low))-\(format(r.high))x over "
            + "\(numerator.count) rounds]"
    }

    /// ` [round by round: median +M ns, A to B ns over N rounds]`: `minuend`'s
    /// p50 less `subtrahend`'s, round by round: DIOS's own cost as a time.
    static func roundByRound(_ minuend: [UInt64], minus subtrahend: [UInt64]) -> String {
        guard minuend.count > 1 && minuend.count == subtrahend.count else { return "" }
        let r = medianAndRange(zip(minuend, subtrahend).map { Double($0) - Double($1) })
        return
            " [round by round: median \(signed(r.median)), \(signed(r.low)) to \(signed(r.high)) over "
            + "\(minuend.count) rounds]"
    }

    /// The median (of the middle two for an even count), least and greatest of `values` (not empty).
    static func medianAndRange(_ values: [Double]) -> (median: Double, low: Double, high: Double) {
        let v = values.sorted()
        return ((v[(v.count - 1) / 2] + v[v.count / 2]) / 2, v[0], v[v.count - 1])
    }

    /// A difference in whole nanoseconds with its sign: "+84", "-3".
    static func signed(_ ns: Double) -> String {
        let n = Int(ns.rounded())
        return n >= 0 ? "+\(n)" : "\(n)"
    }

    static func newHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    }

    // MARK: DIOS

    static let echoProgram = Name.wellKnown("bench.ipc.echo")

    func makeNode(_ cpus: [Int]) throws -> Node {
        var configuration = NodeConfiguration()
        configuration.cores = cpus
        configuration.arenaSize = 64 << 20
        configuration.idlePolicy = idlePolicy
        return try Node(configuration)
    }

    /// Times `warmup + iterations` round trips of a `size`-byte message out on
    /// `ping` and back on `pong` through the echo task `echo` (wherever it runs),
    /// then sends the empty message that ends it and waits for it to exit.
    static func roundTrips(
        _ task: TaskContext, _ ping: Ref, _ pong: Ref, echo: Ref, size: Int, warmup: Int, iterations: Int, _ clock: TSC
    ) async throws -> Histogram<UInt64> {
        let pongs = [pong]
        var histogram = newHistogram()
        for i in 0..<(warmup + iterations) {
            let t0 = clinux_stamp_begin()
            let w = try task.beginWrite(ping, size: size)
            try w.store(UInt64(i))
            _ = task.endWrite(w)
            _ = try await task.select(pongs)
            let r = try task.beginRead(pong)
            let echoed = try r.load(as: UInt64.self)
            _ = task.endRead(r)
            let t1 = clinux_stamp_end()
            precondition(echoed == UInt64(i), "echo out of order")
            if i >= warmup { _ = histogram.record(clock.nanoseconds(t1 &- t0)) }
        }
        let stop = try task.beginWrite(ping, size: 0)
        _ = task.endWrite(stop)
        _ = try await task.select([echo])
        return histogram
    }

    /// One-way: a task on the second core writes 64-byte messages as fast as the
    /// ring lets it; the first core's task reads them. Messages per second.
    func diosThroughput(_ cpus: [Int], _ clock: TSC) async throws -> Double {
        let node = try makeNode(cpus)
        defer { node.shutdown() }
        let count = throughputMessages
        let source = await node.register(label: "source", program: Self.numberedSource(count: count))
        return try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 64, depth: 1024))
            let streams = [stream]
            _ = try task.run(try task.lookup(source)[0], arguments: [stream], on: 1)
            _ = try await task.select(streams)
            let start = clinux_stamp_begin()
            var received = 0
            var sum: UInt64 = 0
            while received < count {
                do {
                    let r = try task.beginRead(stream)
                    sum &+= try r.load(as: UInt64.self)
                    _ = task.endRead(r)
                    received += 1
                } catch CallError.wouldBlock {
                    _ = try await task.select(streams)
                }
            }
            let elapsed = clock.nanoseconds(clinux_stamp_end() &- start)
            precondition(sum == UInt64(count) * UInt64(count - 1) / 2, "throughput run lost or reordered messages")
            return Double(count) / (Double(elapsed) / 1e9)
        }
    }

}

extension BenchIPC {
    /// A program that writes `count` 64-byte messages, numbered from 0 in
    /// their first 8 bytes, to the stream it is handed, waiting whenever the
    /// ring is full.
    static func numberedSource(count: Int) -> Program {
        { task in
            let stream = try task.delegated()[0]
            let streams = [stream]
            var i = 0
            while i < count {
                do {
                    let w = try task.beginWrite(stream, size: 64)
                    try w.store(UInt64(i))
                    _ = task.endWrite(w)
                    i += 1
                } catch CallError.wouldBlock {
                    _ = try await task.select(streams, flags: .writable)
                }
            }
        }
    }
}

/// Refuses CPUs this process may not run on: a thread could not be pinned
/// there, and the figures would be for CPUs other than the ones printed (as
/// `diosd` refuses such cores).
func requireAllowed(_ cpus: [Int], orAdd hint: String = "") throws {
    let allowed = Set(OSThread.allowedCPUs())
    if let bad = cpus.first(where: { !allowed.contains($0) }) {
        throw ValidationError(
            "CPU \(bad) is not among the CPUs this process may run on (\(OSThread.describe(allowed.sorted())))\(hint)")
    }
}

/// The time-stamp counter, calibrated against CLOCK_MONOTONIC.
struct TSC {
    var nanosecondsPerTick: Double

    static func calibrate() -> TSC {
        let n0 = clinux_monotonic_ns()
        let t0 = clinux_rdtsc()
        var n1 = n0
        while n1 - n0 < 50_000_000 { n1 = clinux_monotonic_ns() }
        let t1 = clinux_rdtsc()
        return TSC(nanosecondsPerTick: Double(n1 - n0) / Double(t1 - t0))
    }

    func nanoseconds(_ ticks: UInt64) -> UInt64 { UInt64(Double(ticks) * nanosecondsPerTick) }

    /// The ticks per second the calibration found.
    var hertz: Double { 1e9 / nanosecondsPerTick }

    /// What a stamp pair costs with nothing between the stamps
    /// (`clinux_stamp_begin` then `clinux_stamp_end`), over `count` pairs on
    /// the calling thread: part of every round trip a benchmark times.
    func stampPairCost(count: Int = 100_000) -> (min: UInt64, p50: UInt64) {
        var histogram = BenchIPC.newHistogram()
        for _ in 0..<count {
            let t0 = clinux_stamp_begin()
            let t1 = clinux_stamp_end()
            _ = histogram.record(nanoseconds(t1 &- t0))
        }
        return (histogram.min, histogram.valueAtPercentile(50))
    }
}

/// Runs `body` on a new thread pinned to `cpu`.
func spawn(cpu: Int, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    do throws(OSThread.StartError) { return try OSThread.start(pinnedTo: cpu, body) } catch {
        fatalError("bench thread for CPU \(cpu): \(error)")
    }
}

/// Runs `body` on a new thread pinned to `cpu`, waits for it, and returns its result.
func onPinnedThread<T>(cpu: Int, _ body: @escaping @Sendable () -> T) -> T {
    let slot = ResultSlot<T>()
    let thread = spawn(cpu: cpu) { slot.value = body() }
    pthread_join(thread, nil)
    return slot.value!
}

/// Carries a thread's result to the thread that joins it (written before the join).
final class ResultSlot<T>: @unchecked Sendable { var value: T? }
