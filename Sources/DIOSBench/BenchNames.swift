import ArgumentParser
import CLinux
import DIOS
import DIOSDevices
import DIOSTransport
import DIOSWire
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench names`: the replicated name service on a three-node cluster of
/// two instances each, in this process over UDP on loopback (adaptive idle by default,
/// spinning little, since six instances share this machine's cores):
/// - `lookup-weak-local`: `lookup` of a name held by the calling instance;
/// - `lookup-weak-remote`: `lookup` of a name held on another node, from the
///   local replica;
/// (a weak lookup is timed in batches of 32, a strong one on its own)
/// - `lookup-strong-remote`: the same confirmed with the owner (a round trip);
/// - `create-call`: how long that `create` call takes (it publishes the name:
///   one control message to the node's other instance, one `sendmmsg` of two
///   datagrams, to the instances of the other nodes it relays to; the other
///   instance sends the other two, in parallel);
/// - `create-to-visible`: from `create` on one instance until the replicas of
///   all five others hold the name (each instance reports the moment its
///   replica takes it in, through `NodeConfiguration.nameApplied`; from then
///   its `lookup` finds it);
/// next to `udp-poll-lo`, a Linux UDP round trip measured in the same run, so
/// the figures read as network round trips, and `udp-fanout-lo`, what the
/// kernel alone takes to deliver four datagrams from one socket, one to each
/// of the other nodes' instances (see `udpFanout`; a `create` sends them from
/// two).
struct BenchNames: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "names",
        abstract: "Name-service latencies on a local three-node cluster, next to a UDP round trip.")

    @Option(help: "Lookups measured.") var iterations = 2_000
    @Option(help: "create → visible trials.") var trials = 200
    @Flag(help: "One JSON object per line instead of a table.") var json = false
    @Option(help: "Also draws every row's distribution into FILE (.svg or .png), with gnuplot.") var plot: String?
    @Flag(help: "Busy-poll every instance (for a machine with six cores to spare).") var busy = false

    /// With fewer cores than instances, an instance that spins after its work
    /// holds a core a woken one needs: a name reaches the five others one
    /// spin-length apart (100 spins cost about 70 µs per instance here). So
    /// the default spins 10 times and sleeps.
    var idlePolicy: IdlePolicy { busy ? .busy : .adaptive(spins: 10, yields: 0, maxSleep: .milliseconds(1)) }

    static func name(_ trial: Int) -> Name { Name.wellKnown("bench.names.\(trial)") }

    /// The kernel's own cost of what a `create` sends: one `sendmmsg` of a
    /// 64-byte datagram to each of `receivers` sockets on loopback, each read
    /// by its own thread (spinning with `busy`, else blocking in `recv`); from
    /// the send until the last has it. (On loopback the sender's system call
    /// carries every datagram through the stack, one after another.)
    static func udpFanout(receivers: Int, trials: Int, busy: Bool) throws -> Histogram<UInt64> {
        let loopback = PeerAddress("127.0.0.1", port: 0)!
        let sender = try UDPTransport(bind: loopback)
        var sockets: [Int32] = []
        var ports: [UInt16] = []
        for _ in 0..<receivers {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_addr.s_addr = loopback.ipv4.bigEndian
            _ = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            ports.append(UInt16(bigEndian: BenchIPC.boundAddress(fd, loopback.ipv4).sin_port))
            sockets.append(fd)
        }
        defer { for fd in sockets { close(fd) } }
        // arrived[trial * receivers + r]: when receiver r got trial's datagram.
        let arrived = UnsafeMutablePointer<UInt64>.allocate(capacity: trials * receivers)
        arrived.initialize(repeating: 0, count: trials * receivers)
        defer { arrived.deallocate() }
        let cells = UInt(bitPattern: arrived)
        let cpus = max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        var threads: [pthread_t] = []
        for (r, fd) in sockets.enumerated() {
            threads.append(
                spawn(cpu: (r + 1) % cpus) {
                    let cell = UnsafeMutablePointer<UInt64>(bitPattern: cells)!
                    var trial: UInt64 = 0
                    for _ in 0..<trials {
                        var n = recv(fd, &trial, 8, busy ? Int32(MSG_DONTWAIT) : 0)
                        while n < 0 { n = recv(fd, &trial, 8, busy ? Int32(MSG_DONTWAIT) : 0) }
                        clinux_store_release_u64(cell + Int(trial) * receivers + r, clinux_monotonic_ns())
                    }
                })
        }
        var histogram = BenchIPC.newHistogram()
        for trial in 0..<trials {
            let t0 = clinux_monotonic_ns()
            sender.hold()
            for port in ports {
                var payload = [UInt8](repeating: 0, count: 64)
                withUnsafeBytes(of: UInt64(trial)) { payload.replaceSubrange(0..<8, with: $0) }
                _ = payload.withUnsafeBytes { sender.send($0, to: PeerAddress(ipv4: loopback.ipv4, port: port)) }
            }
            sender.flush()
            var last: UInt64 = 0
            for r in 0..<receivers {
                var at = clinux_load_acquire_u64(arrived + trial * receivers + r)
                while at == 0 {
                    if !busy { sched_yield() }
                    at = clinux_load_acquire_u64(arrived + trial * receivers + r)
                }
                last = max(last, at)
            }
            _ = histogram.record(last - t0)
        }
        for t in threads { pthread_join(t, nil) }
        return histogram
    }

    /// Waits 100 µs on `timer` (re-armed each time).
    static func nap(_ task: TaskContext, _ timer: Ref) async throws {
        let w = try task.beginWrite(timer, size: 8)
        try w.store(UInt64(100_000).littleEndian)
        _ = task.endWrite(w)
        _ = try await task.select([timer])
    }

    func run() async throws {
        if let plot { try LatencyPlot.check(plot) }
        let clock = TSC.calibrate()
        var ipc = try BenchIPC.parse(["--iterations", "\(iterations)", "--warmup", "\(iterations / 10)"])
        ipc.json = json
        let loopback = PeerAddress("127.0.0.1", port: 0)!
        var results: [(String, Histogram<UInt64>)] = []
        results.append(
            ("udp-poll-lo", try ipc.udpPingPong([0, 1], 64, poll: true, loopback, loopback, nil, nil, clock)))
        results.append(("udp-fanout-lo", try Self.udpFanout(receivers: 4, trials: trials, busy: busy)))

        // The cluster.
        var addresses: [InstanceID: PeerAddress] = [:]
        var sockets: [[UDPTransport]] = []
        for n in 0..<3 {
            var row: [UDPTransport] = []
            for k in 0..<2 {
                let t = try UDPTransport(bind: loopback)
                addresses[InstanceID(node: UInt16(n), core: UInt16(k))] = t.localAddress
                row.append(t)
            }
            sockets.append(row)
        }
        // When each instance's replica took in each trial's name.
        let trials = trials
        let trialOf = Dictionary(uniqueKeysWithValues: (0..<trials).map { (Self.name($0), $0) })
        let applied = Mutex<[[InstanceID: UInt64]]>(Array(repeating: [:], count: trials))
        let nameApplied: @Sendable (InstanceID, Name) -> Void = { instance, name in
            let now = clinux_monotonic_ns()
            guard let trial = trialOf[name] else { return }
            applied.withLock { if $0[trial][instance] == nil { $0[trial][instance] = now } }
        }
        var nodes: [Node] = []
        for n in 0..<3 {
            var configuration = NodeConfiguration()
            configuration.node = UInt16(n)
            configuration.cores = [0, 1]
            configuration.pin = false
            configuration.arenaSize = 16 << 20
            configuration.idlePolicy = idlePolicy
            configuration.logger.logLevel = .warning
            configuration.nameApplied = nameApplied
            let peers = addresses.filter { $0.key.node != UInt16(n) }
            let wires = sockets[n].enumerated().map { k, socket in
                WireEndpoint(
                    local: InstanceID(node: UInt16(n), core: UInt16(k)), transport: socket, peers: peers,
                    configuration: SessionConfiguration(), now: clinux_monotonic_ns(),
                    seed: clinux_monotonic_ns() &+ UInt64(k))
            }
            nodes.append(try Node(configuration, wires: wires))
        }
        defer { for node in nodes { node.shutdown() } }
        let node0 = nodes[0]
        for _ in 0..<500 {
            if try await node0.withTask({ task in task.reachableInstances().count == 6 }) { break }
            try await Task.sleep(for: .milliseconds(10))
        }

        // Lookups of a name held on node 1, from node 0.
        let target = try await nodes[1].withTask { task in try task.create(.blob(size: 64)).name }
        let own = try await node0.withTask { task in try task.create(.blob(size: 64)).name }
        for _ in 0..<500 {
            if (try? await node0.withTask({ task in try task.lookup(target).count })) == 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let iterations = iterations
        for (label, name, flags) in [
            ("lookup-weak-local", own, Flags()), ("lookup-weak-remote", target, Flags()),
            ("lookup-strong-remote", target, Flags.strong),
        ] {
            let h = try await node0.withTask { task in
                var h = BenchIPC.newHistogram()
                // A weak lookup is timed over a batch of 32 (a sample is the
                // batch's mean), a strong one (a round trip) on its own.
                let batch = flags.contains(.strong) ? 1 : 32
                var refs: [Ref] = []
                refs.reserveCapacity(batch)
                for i in 0..<(iterations + iterations / 10) {
                    let t0 = clinux_stamp_begin()
                    for _ in 0..<batch { _ = try task.lookup(name, flags: flags, into: &refs) }
                    let t1 = clinux_stamp_end()
                    for r in refs { try task.delete(r, flags: .referenceOnly) }
                    refs.removeAll(keepingCapacity: true)
                    if i >= iterations / 10 { _ = h.record(clock.nanoseconds(t1 &- t0) / UInt64(batch)) }
                }
                return h
            }
            results.append((label, h))
        }

        // create → visible on the five other instances: the creator naps on a
        // timer until all five have reported the name (the naps do not enter
        // the figure, which runs from create to the fifth replica's report).
        let (call, visible) = try await node0.withTask { task in
            let (_, timer) = try task.create(.timer(after: .microseconds(20)))
            var call = BenchIPC.newHistogram()
            var visible = BenchIPC.newHistogram()
            for trial in 0..<trials {
                let t0 = clinux_monotonic_ns()
                let ref = try task.create(.blob(size: 8), named: Self.name(trial))
                _ = call.record(clinux_monotonic_ns() - t0)
                while applied.withLock({ $0[trial].count }) < 5 { try await Self.nap(task, timer) }
                let last = applied.withLock { $0[trial].values.max()! }
                _ = visible.record(last - t0)
                try task.delete(ref, flags: .referenceOnly)
            }
            return (call, visible)
        }
        // The create call itself (on loopback its sends carry the datagrams
        // through the kernel to the receivers' sockets), then the whole spread.
        results.append(("create-call", call))
        results.append(("create-to-visible", visible))

        let rtt = Double(results[0].1.valueAtPercentile(50))
        if let plot {
            try LatencyPlot.draw(
                results, title: "Name service: a create seen across the cluster", axis: "time", to: plot)
            if !json { print("plot: \(plot)") }
        }
        if json {
            for (m, h) in results {
                print(
                    #"{"mechanism":"\#(m)","samples":\#(h.totalCount),"min_ns":\#(h.min),"#
                        + #""p50_ns":\#(h.valueAtPercentile(50)),"p99_ns":\#(h.valueAtPercentile(99)),"#
                        + #""p999_ns":\#(h.valueAtPercentile(99.9)),"#
                        + #""vs_udp_rtt_p50":\#(format(Double(h.valueAtPercentile(50)) / rtt))}"#
                )
            }
            return
        }
        print("Name service on three nodes of two instances (UDP on loopback, \(busy ? "busy" : "adaptive") idle), ns")
        print(HostDescription.current())
        print(
            pad("measure", 22) + pad("samples", 9, right: true) + pad("min", 10, right: true)
                + pad("p50", 10, right: true)
                + pad("p99", 10, right: true) + pad("p50/udp RTT", 13, right: true))
        for (m, h) in results {
            print(
                pad(m, 22) + pad("\(h.totalCount)", 9, right: true) + pad("\(h.min)", 10, right: true)
                    + pad("\(h.valueAtPercentile(50))", 10, right: true)
                    + pad("\(h.valueAtPercentile(99))", 10, right: true)
                    + pad(format(Double(h.valueAtPercentile(50)) / rtt) + "x", 13, right: true))
        }
        let fanout = Double(results[1].1.valueAtPercentile(50))
        let spread = Double(results[results.count - 1].1.valueAtPercentile(50))
        print(
            "create-to-visible: \(format(spread / rtt))x a UDP round trip (goal <= 3), \(format(spread / fanout))x "
                + "udp-fanout-lo"
        )
    }
}
