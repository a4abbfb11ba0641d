import ArgumentParser
import CLinux
import DIOS
import DIOSDevices
import DIOSKernel
import DIOSMemory
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench scale`: what the multikernel's "no shared state" buys on many
/// cores. For each step, one node with 2N instances (instance 2k on the
/// step's CPU 2k, its partner 2k+1 on CPU 2k+1) runs N pairs at the same time:
/// 1. one-way throughput: a task on each odd instance streams 64-byte
///    messages to a task on its even partner; the figure is all the pairs'
///    messages over the time from the first pair's first message to the last
///    pair's last one;
/// 2. round trips: a task on each even instance ping-pongs 64-byte messages
///    with an echo on its partner; the pairs' samples are merged.
/// Two baselines from the same run: the one-pair step (the total as a share
/// of N times one pair's rate, 1.0 being perfect scaling, and the round
/// trip's p50 over one pair's), and `ring-raw`, the same N pairs of threads on
/// the same CPUs streaming through bare `StreamRing`s with no kernel around
/// them, so what the machine itself loses as pairs are added (shared caches,
/// memory, hyperthreads of one core sold as CPUs) is told apart from what
/// DIOS loses. Every pair checks that its messages came complete and in order.
struct BenchScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract:
            "Many pairs of instances at once: one-way throughput and round trips, next to one pair in the same run.")

    @Option(
        help:
            ArgumentHelp(
                "Pair counts to run, e.g. 1,2,4 (default: 1, 2, 4, … up to half the CPUs given; one pair, the "
                    + "baseline, "
                    + "always runs first).")
    )
    var pairs = ""
    @Option(help: "The CPUs, in pair order (default: the CPUs this process may use).") var cores = ""
    @Option(help: "64-byte messages each pair streams one way.") var messages = 2_000_000
    @Option(help: "One-way runs per step, DIOS and ring-raw each; the median is shown.") var repeats = 3
    @Option(help: "Round trips measured per pair.") var iterations = 50_000
    @Option(help: "Round trips each pair runs first and does not measure.") var warmup = 5_000
    @Option(help: "DIOS idle policy: busy (lowest latency) or adaptive.") var idle = "busy"
    @Flag(
        inversion: .prefixedNo, help: "Pin each instance to its CPU (--no-pin takes --cores as a count of instances).")
    var pin = true
    @Flag(help: "One JSON object per line instead of a table.") var json = false
    @Option(help: "Also draws the throughput of each step into FILE (.svg or .png), with gnuplot.") var plot: String?

    /// One step's figures.
    struct Step {
        var cpus: [Int]
        var total: Double
        var perPair: [Double]
        var rawTotal: Double
        var roundTrip: Histogram<UInt64>
    }

    func run() async throws {
        let cpus = try cpuList()
        let steps = try pairCounts(available: cpus.count / 2)
        guard ["busy", "adaptive"].contains(idle) else { throw ValidationError("--idle must be busy or adaptive") }
        guard messages > 0, iterations > 0, repeats > 0, warmup >= 0 else {
            throw ValidationError("--messages, --iterations and --repeats must be positive, --warmup not negative")
        }
        if let plot { try LatencyPlot.check(plot) }
        let clock = TSC.calibrate()
        if !json {
            print(
                "Pairs of instances at once, 64 B messages, DIOS idle \(idle)\(pin ? "" : ", unpinned"): "
                    + "\(messages) messages one way and \(iterations) round trips per pair")
            print(HostDescription.current())
            print(
                pad("pairs", 6) + pad("cpus", 12) + pad("msgs/s total", 14, right: true)
                    + pad("per pair min", 14, right: true)
                    + pad("vs N x 1", 10, right: true) + pad("ring-raw", 12, right: true)
                    + pad("raw vs N x 1", 14, right: true)
                    + pad("dios/raw", 10, right: true) + pad("rt p50", 9, right: true) + pad("rt p99", 9, right: true)
                    + pad("rt p99.9", 10, right: true) + pad("p50 vs 1", 10, right: true))
        }
        var baseline: Step?
        var drawn: [(pairs: Int, dios: Double, raw: Double)] = []
        for n in steps {
            let step = try await measure(pairs: n, cpus: Array(cpus.prefix(2 * n)), clock)
            drawn.append((n, step.total, step.rawTotal))
            let one = baseline ?? step
            if baseline == nil { baseline = step }
            let efficiency = step.total / (Double(n) * one.total)
            let rawEfficiency = step.rawTotal / (Double(n) * one.rawTotal)
            let p50 = step.roundTrip.valueAtPercentile(50)
            let p50Ratio = Double(p50) / Double(one.roundTrip.valueAtPercentile(50))
            let h = step.roundTrip
            if json {
                print(
                    #"{"mechanism":"dios-scale","pairs":\#(n),"payload":64,"direction":"one-way","#
                        + #""messages":\#(n * messages),"msgs_per_s":\#(Int(step.total)),"#
                        + #""per_pair_min_msgs_per_s":\#(Int(step.perPair.min() ?? 0)),"#
                        + #""vs_one_pair":\#(format(efficiency)),"#
                        + #""vs_ring_raw":\#(format(step.total / step.rawTotal))}"#
                )
                print(
                    #"{"mechanism":"ring-raw-scale","pairs":\#(n),"payload":64,"direction":"one-way","#
                        + #""messages":\#(n * messages),"msgs_per_s":\#(Int(step.rawTotal)),"#
                        + #""vs_one_pair":\#(format(rawEfficiency))}"#
                )
                print(
                    #"{"mechanism":"dios-scale","pairs":\#(n),"payload":64,"samples":\#(h.totalCount),"#
                        + #""min_ns":\#(h.min),"p50_ns":\#(p50),"p99_ns":\#(h.valueAtPercentile(99)),"#
                        + #""p999_ns":\#(h.valueAtPercentile(99.9)),"vs_one_pair_p50":\#(format(p50Ratio))}"#
                )
            } else {
                let cpuText = pin ? OSThread.describe(step.cpus) : "\(2 * n) unpinned"
                print(
                    pad("\(n)", 6) + pad(cpuText, 12) + pad(format(step.total / 1e6) + " M", 14, right: true)
                        + pad(format((step.perPair.min() ?? 0) / 1e6) + " M", 14, right: true)
                        + pad(format(efficiency), 10, right: true)
                        + pad(format(step.rawTotal / 1e6) + " M", 12, right: true)
                        + pad(format(rawEfficiency), 14, right: true)
                        + pad(format(step.total / step.rawTotal), 10, right: true)
                        + pad("\(p50)", 9, right: true)
                        + pad("\(h.valueAtPercentile(99))", 9, right: true)
                        + pad("\(h.valueAtPercentile(99.9))", 10, right: true)
                        + pad(format(p50Ratio) + "x", 10, right: true))
            }
        }
        if let plot {
            try LatencyPlot.drawThroughput(
                [("dios", drawn.map { ($0.pairs, $0.dios) }), ("ring-raw", drawn.map { ($0.pairs, $0.raw) })],
                title: "One-way throughput of pairs of instances at once", to: plot)
            if !json { print("plot: \(plot)") }
        }
    }

    /// The CPUs from `--cores` (or the allowed ones), at least two, none twice.
    func cpuList() throws -> [Int] {
        if cores.isEmpty {
            let allowed = OSThread.allowedCPUs()
            guard allowed.count >= 2 else { throw ValidationError("this process may run on fewer than two CPUs") }
            return allowed
        }
        let list = cores.split(separator: ",").map { Int($0) }
        guard list.allSatisfy({ $0 != nil && $0! >= 0 }), list.count >= 2, Set(list.map { $0! }).count == list.count
        else {
            throw ValidationError("--cores is a list of at least two different CPU numbers, e.g. 0,1,2,3")
        }
        let cpus = list.map { $0! }
        if pin { try requireAllowed(cpus, orAdd: "; or pass --no-pin") }
        return cpus
    }

    /// The steps from `--pairs`, or 1, 2, 4, … up to `available`.
    func pairCounts(available: Int) throws -> [Int] {
        if pairs.isEmpty {
            var steps: [Int] = []
            var n = 1
            while n <= available {
                steps.append(n)
                n *= 2
            }
            if let last = steps.last, last < available { steps.append(available) }
            return steps
        }
        let steps = pairs.split(separator: ",").map { Int($0) }
        guard steps.allSatisfy({ $0 != nil && $0! >= 1 }), !steps.isEmpty else {
            throw ValidationError("--pairs is a list of positive counts, e.g. 1,2,4")
        }
        if let tooMany = steps.first(where: { $0! > available }) {
            throw ValidationError("\(tooMany!) pairs need \(2 * tooMany!) CPUs; \(2 * available) given")
        }
        // The one-pair step is the baseline: it runs first, asked for or not.
        return [1] + steps.map { $0! }.filter { $0 != 1 }
    }

    /// Both phases, all pairs at once: first `ring-raw` (before the node
    /// exists: its polling threads would share the CPUs), then one node of
    /// `2 * pairs` instances on `cpus`. The one-way figures are the median of
    /// `--repeats` runs.
    func measure(pairs n: Int, cpus: [Int], _ clock: TSC) async throws -> Step {
        var rawTotals: [Double] = []
        for _ in 0..<repeats { rawTotals.append(try rawThroughput(pairs: n, cpus: cpus, clock)) }
        let rawTotal = rawTotals.sorted()[repeats / 2]

        var configuration = NodeConfiguration()
        configuration.cores = cpus
        configuration.pin = pin
        configuration.arenaSize = 64 << 20
        configuration.idlePolicy = idle == "busy" ? .busy : .adaptive
        configuration.logger.logLevel = .warning
        let node = try Node(configuration)
        defer { node.shutdown() }
        let source = await node.register(label: "source", program: BenchIPC.numberedSource(count: messages))
        let echo = await node.register(label: "echo", program: BenchIPC.echo)

        var runs: [(total: Double, perPair: [Double])] = []
        for _ in 0..<repeats { runs.append(try await diosThroughput(node, source: source, pairs: n, clock)) }
        let (total, perPair) = runs.sorted { $0.total < $1.total }[repeats / 2]

        // Round trips: each even instance's task against an echo on its partner.
        let (iterations, warmup) = (self.iterations, self.warmup)
        var merged = BenchIPC.newHistogram()
        try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
            for k in 0..<n {
                group.addTask {
                    try await node.withTask(on: 2 * k) { task in
                        let (_, ping) = try task.create(.stream(messageSize: 64, depth: 8))
                        let (_, pong) = try task.create(.stream(messageSize: 64, depth: 8))
                        let echoTask = try task.run(try task.lookup(echo)[0], arguments: [ping, pong], on: 2 * k + 1)
                        return try await BenchIPC.roundTrips(
                            task, ping, pong, echo: echoTask, size: 64, warmup: warmup, iterations: iterations, clock)
                    }
                }
            }
            for try await histogram in group { merged.add(histogram) }
        }
        return Step(cpus: cpus, total: total, perPair: perPair, rawTotal: rawTotal, roundTrip: merged)
    }

    /// One way: each even instance's task reads its partner's stream, all
    /// pairs at once; the pairs' messages over the time from the first pair's
    /// first message to the last pair's last, and each pair's own rate.
    func diosThroughput(_ node: Node, source: Name, pairs n: Int, _ clock: TSC) async throws -> (
        total: Double, perPair: [Double]
    ) {
        let count = messages
        let spans = try await withThrowingTaskGroup(of: (start: UInt64, end: UInt64).self) { group in
            for k in 0..<n {
                group.addTask {
                    try await node.withTask(on: 2 * k) { task in
                        let (_, stream) = try task.create(.stream(messageSize: 64, depth: 1024))
                        let streams = [stream]
                        _ = try task.run(try task.lookup(source)[0], arguments: [stream], on: 2 * k + 1)
                        _ = try await task.select(streams)
                        let start = clinux_stamp_begin()
                        var expected: UInt64 = 0
                        while expected < UInt64(count) {
                            do {
                                let r = try task.beginRead(stream)
                                let value = try r.load(as: UInt64.self)
                                _ = task.endRead(r)
                                guard value == expected else {
                                    throw BenchError("pair \(k): message \(value) arrived where \(expected) was due")
                                }
                                expected += 1
                            } catch CallError.wouldBlock {
                                _ = try await task.select(streams)
                            }
                        }
                        try task.delete(stream)
                        return (start, clinux_stamp_end())
                    }
                }
            }
            var spans: [(start: UInt64, end: UInt64)] = []
            for try await span in group { spans.append(span) }
            return spans
        }
        let first = spans.map(\.start).min()!
        let last = spans.map(\.end).max()!
        let total = Double(n * count) / (Double(clock.nanoseconds(last &- first)) / 1e9)
        let perPair = spans.map { Double(count) / (Double(clock.nanoseconds($0.end &- $0.start)) / 1e9) }
        return (total, perPair)
    }

    /// `ring-raw`: N pairs of plain threads on the step's CPUs (reader on CPU
    /// 2k, writer on 2k+1, as DIOS places its tasks), each pair a bare
    /// `StreamRing` of the DIOS stream's shape (64-byte messages, 1,024 deep)
    /// in page-aligned memory of its own; timed as the DIOS step is, from the
    /// first pair's first message to the last pair's last.
    func rawThroughput(pairs n: Int, cpus: [Int], _ clock: TSC) throws -> Double {
        let bytes = (StreamRing.byteSize(messageSize: 64, depth: 1024) + 4095) / 4096 * 4096
        let memory = (0..<n).map { _ in UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096) }
        defer { for m in memory { m.deallocate() } }
        // A ring is laid out over zeroed memory (the kernel zeroes its buffers
        // too): a slot's old header would pass for a message not yet written.
        for m in memory { m.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        // Spinning threads that share CPUs (unpinned, or adaptive) give them up
        // after a while, as an adaptive instance does.
        let yields = !pin || idle == "adaptive"
        let rings = memory.map { StreamRing.initialize(at: $0, messageSize: 64, depth: 1024) }
        let count = messages
        let spans = (0..<n).map { _ in ResultSlot<Swift.Result<(UInt64, UInt64), BenchError>>() }
        var threads: [pthread_t] = []
        for k in 0..<n {
            let ring = rings[k]
            let span = spans[k]
            threads.append(
                try startThread(pin ? cpus[2 * k + 1] : nil) {
                    var i: UInt64 = 0
                    var spins = 0
                    while i < UInt64(count) {
                        guard let slot = ring.reserve() else {
                            spins += 1
                            if yields && spins % 1024 == 0 { sched_yield() } else { clinux_cpu_relax() }
                            continue
                        }
                        slot.storeBytes(of: i, as: UInt64.self)
                        ring.publish(length: 64)
                        i += 1
                    }
                })
            threads.append(
                try startThread(pin ? cpus[2 * k] : nil) {
                    var expected: UInt64 = 0
                    var start: UInt64 = 0
                    var spins = 0
                    var failure: BenchError? = nil
                    while expected < UInt64(count) {
                        guard let (data, _) = ring.peek() else {
                            spins += 1
                            if yields && spins % 1024 == 0 { sched_yield() } else { clinux_cpu_relax() }
                            continue
                        }
                        if expected == 0 { start = clinux_stamp_begin() }
                        let value = data.load(as: UInt64.self)
                        ring.release()
                        // Said at the end: the writer must still get its `count` through.
                        if value != expected && failure == nil {
                            failure = BenchError(
                                "ring-raw pair \(k): message \(value) arrived where \(expected) was due")
                        }
                        expected += 1
                    }
                    let end = clinux_stamp_end()
                    span.value = failure.map { .failure($0) } ?? .success((start, end))
                })
        }
        for thread in threads { pthread_join(thread, nil) }
        let times = try spans.map { try $0.value!.get() }
        let elapsed = clock.nanoseconds(times.map(\.1).max()! &- times.map(\.0).min()!)
        return Double(n * count) / (Double(elapsed) / 1e9)
    }

    func startThread(_ cpu: Int?, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        do throws(OSThread.StartError) { return try OSThread.start(pinnedTo: cpu, body) } catch {
            throw BenchError("bench thread for CPU \(cpu.map(String.init) ?? "any"): \(error)")
        }
    }
}
