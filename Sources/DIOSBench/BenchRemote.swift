import ArgumentParser
import CLinux
import DIOS
import DIOSDevices
import DIOSHost
import DIOSTransport
import DIOSWire
import Dispatch
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench ipc --remote`: round trips between two nodes, in one run:
/// - `udp-blocking-*` and `udp-poll-*`: Linux UDP sockets ping-ponging, with
///   blocking receives and busy-polled ones — the baseline;
/// - `dios-udp-*`: a task on node 0 and an echo task on node 1, a stream each
///   way, over the DIOS wire (sessions, acknowledgements) on the same sockets.
/// Each over loopback (`lo`), and over a veth pair between two network
/// namespaces (`veth`, two "hosts" on one machine; needs root and `ip`).
/// Then, when DPDK starts (root, hugepages; see `BenchDPDK.swift`):
/// - `dpdk-raw-memif`: two threads ping-ponging over a pair of memif ports in
///   this process through `DPDKTransport` alone, and `dios-memif`: the DIOS round
///   trip with each node's wire over one of those ports (messages written in
///   the mbuf that carries them, and read in the one they arrived in), and
///   `dios-memif-copy`: the same with every message copied from the writer's
///   ring into an mbuf and from the mbuf into the reader's ring; `dios-memif-auth`
///   and `dios-memif-enc`: in place, every frame authenticated (AES-256-GCM tag)
///   and also encrypted;
/// - `dpdk-raw-veth` / `dios-veth` / `dios-veth-copy` / `-auth` / `-enc`: the same over
///   `net_af_packet` on the veth pair;
/// - `dpdk-raw-xdp` / `dios-xdp` / `dios-xdp-copy`: the same over `net_af_xdp`
///   (AF_XDP sockets) on a second veth pair.
/// Nodes, sockets and echo threads sit on the two `--cores`.
extension BenchIPC {
    func runRemote(_ cpus: [Int], _ sizes: [Int], _ clock: TSC) async throws {
        var results: [Result] = []
        var notes: [String] = []
        let loopback = PeerAddress("127.0.0.1", port: 0)!
        let links: [(name: String, a: PeerAddress, b: PeerAddress, nsA: String?, nsB: String?)]
        let wanted = Set(self.links.split(separator: ",").map(String.init))
        var veth: VethPair? = nil
        var signalSources: [any DispatchSourceSignal] = []
        if wanted.contains("veth") {
            VethPair.removeStale()
            let pair = VethPair.forThisProcess()
            // Caught before the pair exists, so a signal at any moment removes what was made.
            signalSources = pair.removeOnSignal()
            do {
                try pair.make()
                veth = pair
            } catch {
                notes.append("veth skipped: \(error)")
            }
        }
        defer {
            for source in signalSources { source.cancel() }
            // A signal's handler is removing the pair and will exit with the
            // signal's status: wait for it rather than finish first with 0.
            while VethPair.stoppingOnSignal.load(ordering: .acquiring) { pause() }
            if !signalSources.isEmpty { VethPair.stopCatchingSignals() }
            veth?.remove()
        }
        var all = [(name: String, a: PeerAddress, b: PeerAddress, nsA: String?, nsB: String?)]()
        if wanted.contains("lo") { all.append((name: "lo", a: loopback, b: loopback, nsA: nil, nsB: nil)) }
        if let veth { all.append((name: "veth", a: veth.addressA, b: veth.addressB, nsA: veth.nsA, nsB: veth.nsB)) }
        links = all
        for link in links {
            for size in sizes {
                results.append(
                    Result(
                        mechanism: "udp-blocking-\(link.name)", payload: size,
                        histogram: try udpPingPong(cpus, size, poll: false, link.a, link.b, link.nsA, link.nsB, clock)))
                results.append(
                    Result(
                        mechanism: "udp-poll-\(link.name)", payload: size,
                        histogram: try udpPingPong(cpus, size, poll: true, link.a, link.b, link.nsA, link.nsB, clock)))
            }
            results += try await diosRemote(cpus, sizes, link.name, link.a, link.b, link.nsA, link.nsB, clock)
        }
        // DPDK last: its veth rows take over the veth pair (both ends into nsA).
        var dpdk: (results: [Result], notes: [String]) = ([], [])
        if wanted.contains("memif") || veth != nil {
            dpdk = await dpdkRemote(
                cpus, sizes, veth, clock, memif: wanted.contains("memif"), xdp: wanted.contains("xdp"))
        }
        results += dpdk.results
        notes += dpdk.notes
        try drawPlot(results, title: "IPC round trips between two nodes")
        if json {
            for r in results {
                let h = r.histogram
                print(
                    #"{"mechanism":"\#(r.mechanism)","payload":\#(r.payload),"samples":\#(h.totalCount),"#
                        + #""min_ns":\#(h.min),"p50_ns":\#(h.valueAtPercentile(50)),"#
                        + #""p99_ns":\#(h.valueAtPercentile(99)),"p999_ns":\#(h.valueAtPercentile(99.9))}"#
                )
            }
            return
        }
        print(
            "Cross-node round trip, node 0 on CPU \(cpus[0]) and node 1 on CPU \(cpus[1]), \(iterations) samples each "
                + "(ns; the DPDK rows take turns in \(dpdkRounds) rounds)"
        )
        print(HostDescription.current())
        print(
            pad("mechanism", 18) + pad("payload", 9, right: true) + pad("min", 9, right: true)
                + pad("p50", 9, right: true)
                + pad("p99", 9, right: true) + pad("p99.9", 9, right: true))
        for r in results {
            let h = r.histogram
            print(
                pad(r.mechanism, 18) + pad("\(r.payload)", 9, right: true) + pad("\(h.min)", 9, right: true)
                    + pad("\(h.valueAtPercentile(50))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99.9))", 9, right: true))
        }
        func p50(_ m: String, _ size: Int) -> Double? {
            results.first { $0.mechanism == m && $0.payload == size }.map { Double($0.histogram.valueAtPercentile(50)) }
        }
        for link in links {
            for size in sizes where size == 64 || sizes.count == 1 {
                guard let d = p50("dios-udp-\(link.name)", size), let b = p50("udp-blocking-\(link.name)", size),
                    let p = p50("udp-poll-\(link.name)", size)
                else { continue }
                print("\(link.name), \(size) B: DIOS/udp-poll \(format(d / p))x, udp-blocking/DIOS \(format(b / d))x")
            }
        }
        func roundP50s(_ m: String, _ size: Int) -> [UInt64] {
            results.first { $0.mechanism == m && $0.payload == size }?.roundP50s ?? []
        }
        for link in ["memif", "veth", "xdp"] {
            for size in sizes {
                guard let d = p50("dios-\(link)", size), let r = p50("dpdk-raw-\(link)", size) else { continue }
                var line = "DPDK \(link), \(size) B: DIOS/raw \(format(d / r))x"
                if link == "memif" { line += " (goal <= 1.3x)" }
                line += Self.roundByRound(roundP50s("dios-\(link)", size), over: roundP50s("dpdk-raw-\(link)", size))
                line +=
                    ", DIOS over raw \(Self.signed(d - r)) ns"
                    + Self.roundByRound(roundP50s("dios-\(link)", size), minus: roundP50s("dpdk-raw-\(link)", size))
                if let c = p50("dios-\(link)-copy", size) { line += ", copying/in place \(format(c / d))x" }
                if let a = p50("dios-\(link)-auth", size) {
                    line += ", authenticated/plain \(format(a / d))x (goal <= \(size <= 64 ? "1.1" : "1.15")x)"
                }
                if let e = p50("dios-\(link)-enc", size) { line += ", encrypted/plain \(format(e / d))x" }
                let udp = link == "memif" ? "lo" : "veth"
                if let u = p50("dios-udp-\(udp)", size) { line += ", dios-udp-\(udp)/dios-\(link) \(format(u / d))x" }
                if link != "memif", let b = p50("udp-blocking-veth", size) {
                    line += ", udp-blocking-veth/dios-\(link) \(format(b / d))x"
                }
                print(line)
            }
        }
        for note in notes { print(note) }
    }

    /// A UDP socket bound to `address`, made inside network namespace `ns`
    /// (by a thread that entered it; the socket stays there).
    func udpSocket(_ address: PeerAddress, in ns: String?) throws -> Int32 {
        let fd = onPinnedThread(cpu: 0) { () -> Int32 in
            if let ns, clinux_enter_netns(ns) != 0 { return -1 }
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { return -1 }
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            sa.sin_addr.s_addr = address.ipv4.bigEndian
            let r = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if r != 0 {
                close(fd)
                return -1
            }
            return fd
        }
        guard fd >= 0 else {
            throw CommandFailure("cannot make a UDP socket at \(address) in \(ns ?? "this namespace")")
        }
        return fd
    }

    static func boundAddress(_ fd: Int32, _ ip: UInt32) -> sockaddr_in {
        var sa = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        sa.sin_addr.s_addr = ip.bigEndian
        return sa
    }

    /// Linux UDP: a thread on each CPU, one echoing what the other sends.
    func udpPingPong(
        _ cpus: [Int], _ size: Int, poll: Bool, _ a: PeerAddress, _ b: PeerAddress, _ nsA: String?, _ nsB: String?,
        _ clock: TSC
    ) throws -> Histogram<UInt64> {
        let fa = try udpSocket(a, in: nsA)
        let fb = try udpSocket(b, in: nsB)
        defer {
            close(fa)
            close(fb)
        }
        var toA = Self.boundAddress(fa, a.ipv4)
        var toB = Self.boundAddress(fb, b.ipv4)
        let (addrA, addrB) = (toA, toB)
        _ = (toA, toB)
        toA = addrA
        toB = addrB
        let total = warmup + iterations
        let flags: Int32 = poll ? Int32(MSG_DONTWAIT) : 0
        let echo = spawn(cpu: cpus[1]) {
            var to = addrA
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            defer { buffer.deallocate() }
            for _ in 0..<total {
                var n = recv(fb, buffer, 4096, flags)
                while n < 0 { n = recv(fb, buffer, 4096, flags) }
                _ = withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fb, buffer, n, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
        let warmup = warmup
        let histogram = onPinnedThread(cpu: cpus[0]) {
            var to = addrB
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 1, count: 4096)
            defer { buffer.deallocate() }
            var histogram = Self.newHistogram()
            for i in 0..<total {
                let t0 = clinux_stamp_begin()
                _ = withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fa, buffer, size, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                var n = recv(fa, buffer, 4096, flags)
                while n < 0 { n = recv(fa, buffer, 4096, flags) }
                let t1 = clinux_stamp_end()
                if i >= warmup { _ = histogram.record(clock.nanoseconds(t1 &- t0)) }
            }
            return histogram
        }
        pthread_join(echo, nil)
        return histogram
    }

    static let remoteEcho = Name.wellKnown("bench.remote.echo")

    /// Echoes each message of its first stream onto its second; ends on an empty one.
    @Sendable static func echo(_ task: TaskContext) async throws {
        let refs = try task.delegated()
        let (ping, pong) = (refs[0], refs[1])
        let pings = [ping]
        while true {
            _ = try await task.select(pings)
            let r = try task.beginRead(ping)
            let n = r.count
            if n == 0 {
                _ = task.endRead(r)
                return
            }
            let w = try task.beginWrite(pong, size: n)
            w.withUnsafeMutableBytes { dst in r.withUnsafeBytes { dst.copyMemory(from: $0) } }
            _ = task.endWrite(w)
            _ = task.endRead(r)
        }
    }

    /// Two nodes in this process, one instance each (node 0 on the first CPU,
    /// node 1 on the second, busy polling), their wires over UDP sockets at `a`
    /// and `b`; a task on node 0 and an echo task on node 1.
    func diosRemote(
        _ cpus: [Int], _ sizes: [Int], _ link: String, _ a: PeerAddress, _ b: PeerAddress, _ nsA: String?,
        _ nsB: String?,
        _ clock: TSC
    ) async throws -> [Result] {
        let ta = try onPinnedThread(cpu: cpus[0]) { () -> Swift.Result<UDPTransport, TransportError> in
            if let nsA, clinux_enter_netns(nsA) != 0 { return .failure(.configuration("cannot enter \(nsA)")) }
            do throws(TransportError) { return .success(try UDPTransport(bind: a)) } catch { return .failure(error) }
        }.get()
        let tb = try onPinnedThread(cpu: cpus[1]) { () -> Swift.Result<UDPTransport, TransportError> in
            if let nsB, clinux_enter_netns(nsB) != 0 { return .failure(.configuration("cannot enter \(nsB)")) }
            do throws(TransportError) { return .success(try UDPTransport(bind: b)) } catch { return .failure(error) }
        }.get()
        return try await diosEcho(
            cpus, sizes, mechanism: "dios-udp-\(link)", ta, tb, threadStarted: nil, threadEnding: nil, clock)
    }

    /// The DIOS round trip over any pair of transports: node 0 (on the first
    /// CPU) over `ta`, node 1 (on the second) over `tb`, one instance each.
    /// `threadStarted`/`threadEnding` run on each instance's polling thread
    /// (a DPDK transport registers it with the EAL there).
    func diosEcho(
        _ cpus: [Int], _ sizes: [Int], mechanism: String, _ ta: any FrameTransport, _ tb: any FrameTransport,
        inPlace: Bool = true, protection: FrameProtection = .plain, threadStarted: (@Sendable (Int) -> Void)?,
        threadEnding: (@Sendable (Int) -> Void)?, iterations: Int? = nil, warmup: Int? = nil, _ clock: TSC
    ) async throws -> [Result] {
        // One secret for both nodes, made for this run.
        let security = protection == .plain ? nil : WireSecurity(secret: .generate(), protection: protection)
        let ia = InstanceID(node: 0, core: 0)
        let ib = InstanceID(node: 1, core: 0)
        let session = SessionConfiguration(retransmitTimeout: .milliseconds(5))
        var nodes: [Node] = []
        for (n, (transport, peer)) in [(ta, (ib, tb.localAddress)), (tb, (ia, ta.localAddress))].enumerated() {
            var configuration = NodeConfiguration()
            configuration.instanceThreadStarted = threadStarted
            configuration.instanceThreadEnding = threadEnding
            configuration.node = UInt16(n)
            configuration.cores = [cpus[n]]
            configuration.arenaSize = 32 << 20
            configuration.idlePolicy = idleWord == "busy" ? .busy : .adaptive
            configuration.logger.logLevel = .warning  // peers coming up is not news here
            configuration.writesInPlace = inPlace
            configuration.readsInPlace = inPlace
            let endpoint = WireEndpoint(
                local: InstanceID(node: UInt16(n), core: 0), transport: transport, peers: [peer.0: peer.1],
                configuration: session, now: clinux_monotonic_ns(), seed: clinux_monotonic_ns() &+ UInt64(n),
                security: security)
            nodes.append(try Node(configuration, wires: [endpoint]))
        }
        defer { for node in nodes { node.shutdown() } }
        // Registered on both nodes: `run` names the program, and the node that
        // starts it looks the name up among its own programs.
        for node in nodes { await node.register(Self.remoteEcho, label: "echo", program: Self.echo) }
        let node0 = nodes[0]
        for _ in 0..<500 {
            if try await node0.withTask({ _ in node0.instance.wireEndpoint?.isReachable(ib) ?? false }) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let iterations = iterations ?? self.iterations
        let warmup = warmup ?? self.warmup
        return try await node0.withTask { task in
            var results: [Result] = []
            for size in sizes {
                let (_, ping) = try task.create(.stream(messageSize: size, depth: 8))
                let (_, pong) = try task.create(.stream(messageSize: size, depth: 8))
                let pongWriteEnd = try task.restrict(pong, to: [.write, .copy])
                let echo = try task.run(try task.lookup(Self.remoteEcho)[0], arguments: [ping, pongWriteEnd], on: ib)
                let histogram = try await Self.roundTrips(
                    task, ping, pong, echo: echo, size: size, warmup: warmup, iterations: iterations, clock)
                results.append(Result(mechanism: mechanism, payload: size, histogram: histogram))
            }
            return results
        }
    }
}
