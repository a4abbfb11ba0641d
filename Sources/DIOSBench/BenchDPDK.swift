import CLinux
import DIOSHost
import DIOSTransport
import DIOSWire
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The DPDK rows of `dios bench ipc --remote`. DPDK allows one EAL per process,
/// so both ends live on it: two memif ports joined through one (abstract)
/// socket, server and client, and, when the veth pair exists, an af_packet
/// port on each of its ends (both ends moved into `nsA` first, since an
/// af_packet port binds its interface in the namespace of the thread that
/// starts the EAL, and the memif ends must share one namespace too), and an
/// af_xdp port on each end of a second veth pair made in `nsA`.
/// Node 0 / the timing thread gets the first port of a pair, node 1 / the echo
/// thread the second; each has its own IPv4 address and the other's MAC as
/// its one static neighbour.
extension BenchIPC {
    /// The DPDK rows and why any were left out. Never throws: a DPDK that does
    /// not start skips its rows with a note, the UDP rows stand.
    func dpdkRemote(_ cpus: [Int], _ sizes: [Int], _ veth: VethPair?, _ clock: TSC, memif: Bool, xdp: Bool) async -> (
        results: [Result], notes: [String]
    ) {
        #if DIOS_DPDK
        guard geteuid() == 0 else { return ([], ["DPDK rows skipped: needs root (hugepages, memif)"]) }
        var notes: [String] = []
        // af_packet on the veth pair: move the far end into nsA, next to the near one.
        var vethInterfaces: (String, String)? = nil
        if let veth {
            if Host.ip(["-n", veth.nsB, "link", "set", veth.interfaceB, "netns", veth.nsA]).status == 0,
                Host.ip(["-n", veth.nsA, "link", "set", veth.interfaceB, "up"]).status == 0
            {
                vethInterfaces = (veth.interfaceA, veth.interfaceB)
            } else {
                notes.append("dpdk-raw-veth/dios-veth skipped: cannot move \(veth.interfaceB) into \(veth.nsA)")
            }
        } else {
            notes.append("dpdk-raw-veth/dios-veth skipped: no veth pair")
        }
        // af_xdp on a second veth pair, made inside nsA (it goes with it).
        var xdpInterfaces: (String, String)? = nil
        if xdp, let veth, vethInterfaces != nil {
            let (x0, x1) = ("dbxa" + veth.tag, "dbxb" + veth.tag)
            if Host.ip(["-n", veth.nsA, "link", "add", x0, "type", "veth", "peer", "name", x1]).status == 0,
                Host.ip(["-n", veth.nsA, "link", "set", x0, "up"]).status == 0,
                Host.ip(["-n", veth.nsA, "link", "set", x1, "up"]).status == 0
            {
                xdpInterfaces = (x0, x1)
            } else {
                notes.append("dpdk-raw-xdp/dios-xdp skipped: cannot make a second veth pair in \(veth.nsA)")
            }
        } else if xdp {
            notes.append("dpdk-raw-xdp/dios-xdp skipped: no veth pair")
        }
        let setup: DPDKBenchSetup
        let namespace = vethInterfaces == nil ? nil : veth?.nsA
        switch DPDKBenchSetup.start(cpus: cpus, namespace: namespace, veth: vethInterfaces, xdp: xdpInterfaces) {
        case .success(let s): setup = s
        case .failure(let error) where xdpInterfaces != nil:
            // A device that does not probe fails the whole EAL: the other rows go on without af_xdp.
            notes.append("dpdk-raw-xdp/dios-xdp skipped: the EAL did not start with af_xdp ports: \(error)")
            switch DPDKBenchSetup.start(cpus: cpus, namespace: namespace, veth: vethInterfaces, xdp: nil) {
            case .success(let s): setup = s
            case .failure(let error): return ([], notes + ["DPDK rows skipped: \(error)"])
            }
        case .failure(let error):
            return ([], notes + ["DPDK rows skipped: \(error)"])
        }
        notes += setup.notes
        // The mechanisms take turns in rounds (`dpdkRounds`, each with a
        // warm-up of its own: DIOS's nodes are made anew each round), so a
        // machine whose speed drifts during the run weighs on them alike;
        // each row pools its rounds, and keeps each round's p50.
        let roundCount = dpdkRounds
        let roundWarmup = roundCount == 1 ? warmup : max(min(warmup, 1_000), warmup / roundCount)
        var results: [Result] = []
        func add(_ result: Result) {
            let p50 = result.histogram.valueAtPercentile(50)
            if let k = results.firstIndex(where: { $0.mechanism == result.mechanism && $0.payload == result.payload }) {
                results[k].histogram.add(result.histogram)
                results[k].roundP50s.append(p50)
            } else {
                var first = result
                first.roundP50s = [p50]
                results.append(first)
            }
        }
        func note(_ text: String) { if !notes.contains(text) { notes.append(text) } }
        for round in 0..<roundCount {
            let count = iterations / roundCount + (round < iterations % roundCount ? 1 : 0)
            for link in setup.links where memif || link.name != "memif" {
                for size in sizes {
                    // The raw ping-pong has no fragmentation: one message, one frame.
                    guard size <= EthernetUDP.maxPayload else {
                        note(
                            "dpdk-raw rows: \(size) B is more than one frame carries (\(EthernetUDP.maxPayload) B), "
                                + "so no raw row; DIOS fragments it"
                        )
                        continue
                    }
                    let (histogram, retries, failure) = dpdkRawPingPong(
                        cpus, size, link, setup.environment, iterations: count, warmup: roundWarmup, clock)
                    if let failure {
                        notes.append("dpdk-raw-\(link.name) \(size) B, round \(round + 1): stopped early: \(failure)")
                    }
                    if retries > 0 {
                        notes.append(
                            "dpdk-raw-\(link.name) \(size) B, round \(round + 1): \(retries) round trip(s) resent "
                                + "after 100 ms, not recorded"
                        )
                    }
                    add(Result(mechanism: "dpdk-raw-\(link.name)", payload: size, histogram: histogram))
                }
                // DIOS as it runs (messages written in the mbuf that carries them,
                // and read in the one they arrived in), with every message
                // copied from the writer's ring into an mbuf and from the mbuf into
                // the reader's ring, and in place with every frame authenticated
                // (`-auth`), and encrypted too (`-enc`).
                let variants: [(suffix: String, inPlace: Bool, protection: FrameProtection)] = [
                    ("", true, .plain), ("-copy", false, .plain), ("-auth", true, .authenticated),
                    ("-enc", true, .encrypted),
                ]
                for (suffix, inPlace, protection) in variants {
                    let mechanism = "dios-\(link.name)" + suffix
                    do {
                        let environment = setup.environment
                        let ta = try DPDKTransport(
                            port: link.a, queue: 0, localAddress: link.diosA,
                            neighbours: [link.diosB.ipv4: link.b.mac.bytes])
                        let tb = try DPDKTransport(
                            port: link.b, queue: 0, localAddress: link.diosB,
                            neighbours: [link.diosA.ipv4: link.a.mac.bytes])
                        for result in try await diosEcho(
                            cpus, sizes, mechanism: mechanism, ta, tb, inPlace: inPlace, protection: protection,
                            threadStarted: { _ in try? environment.registerCurrentThread() },
                            threadEnding: { _ in environment.unregisterCurrentThread() }, iterations: count,
                            warmup: roundWarmup, clock)
                        {
                            add(result)
                        }
                        let (ca, cb) = (ta.counters, tb.counters)
                        if ca.sendQueueFull + cb.sendQueueFull + ca.noMbuf + cb.noMbuf + ca.unknownNeighbour
                            + cb.unknownNeighbour > 0
                        {
                            notes.append(
                                "\(mechanism), round \(round + 1): tx queue full "
                                    + "\(ca.sendQueueFull)+\(cb.sendQueueFull), no mbuf \(ca.noMbuf)+\(cb.noMbuf), no "
                                    + "neighbour \(ca.unknownNeighbour)+\(cb.unknownNeighbour)"
                            )
                        }
                        if inPlace && ca.sentInPlace + cb.sentInPlace == 0 {
                            note("\(mechanism): no message was sent in place")
                        }
                        if inPlace && ca.kept + cb.kept == 0 { note("\(mechanism): no message was read in place") }
                    } catch {
                        note("\(mechanism) failed: \(error)")
                    }
                }
            }
        }
        setup.finish()
        return (results, notes)
        #else
        return ([], ["DPDK rows skipped: this dios was built without the DPDK trait"])
        #endif
    }

    /// The rounds the DPDK rows take turns in: `--rounds`, but none shorter
    /// than 1,000 round trips.
    var dpdkRounds: Int { max(1, min(rounds, iterations / 1_000)) }

    #if DIOS_DPDK
    /// Raw DPDK ping-pong, no DIOS: a thread on the second CPU echoes every UDP
    /// datagram back to its source over `link.b`; a thread on the first sends
    /// `size` bytes over `link.a` and busy-polls for the echo. Both through a
    /// `DPDKTransport` (the same framing and copy DIOS's wire gets). Returns
    /// the histogram, how many round trips had to be resent (lost frames), and
    /// why it stopped early, if it did (a link that takes or echoes nothing).
    func dpdkRawPingPong(
        _ cpus: [Int], _ size: Int, _ link: DPDKBenchSetup.Link, _ environment: DPDKEnvironment, iterations: Int,
        warmup: Int, _ clock: TSC
    ) -> (Histogram<UInt64>, Int, failure: String?) {
        let stop = DPDKBenchFlag()
        let (a, b) = (link.a, link.b)
        let (rawA, rawB) = (link.rawA, link.rawB)
        let echo = spawn(cpu: cpus[1]) {
            try? environment.registerCurrentThread()
            defer { environment.unregisterCurrentThread() }
            guard
                let t = try? DPDKTransport(port: b, queue: 0, localAddress: rawB, neighbours: [rawA.ipv4: a.mac.bytes])
            else {
                stop.ready.store(true, ordering: .releasing)
                return
            }
            stop.ready.store(true, ordering: .releasing)
            while !stop.value.load(ordering: .relaxed) {
                _ = t.receive { frame, source in _ = t.send(frame, to: source) }
            }
        }
        while !stop.ready.load(ordering: .acquiring) { usleep(100) }
        let total = warmup + iterations
        let (histogram, retries, failure) = onPinnedThread(cpu: cpus[0]) { () -> (Histogram<UInt64>, Int, String?) in
            try? environment.registerCurrentThread()
            defer { environment.unregisterCurrentThread() }
            var histogram = Self.newHistogram()
            guard
                let t = try? DPDKTransport(port: a, queue: 0, localAddress: rawA, neighbours: [rawB.ipv4: b.mac.bytes])
            else { return (histogram, 0, "no transport on port \(a.id)") }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
            defer { buffer.deallocate() }
            buffer.initializeMemory(as: UInt8.self, repeating: 1)
            let frame = UnsafeRawBufferPointer(buffer)
            let retry = UInt64(Double(100_000_000) / clock.nanosecondsPerTick)  // 100 ms in ticks
            var retries = 0
            for i in 0..<total {
                buffer.storeBytes(of: UInt64(i), toByteOffset: 0, as: UInt64.self)
                var resent = false
                var t0 = clinux_stamp_begin()
                while true {
                    // A send refused for 100 ms (no mbuf, tx queue full) is a link gone too.
                    while !t.send(frame, to: rawB) {
                        if clinux_rdtsc() &- t0 >= retry {
                            return (histogram, retries, "a send was refused for 100 ms (\(t.counters))")
                        }
                    }
                    var matched = false
                    while !matched && clinux_rdtsc() &- t0 < retry {
                        _ = t.receive { echoed, _ in
                            if echoed.count == size, echoed.loadUnaligned(as: UInt64.self) == UInt64(i) {
                                matched = true
                            }
                        }
                    }
                    if matched { break }
                    resent = true
                    retries += 1
                    if retries > 100 { return (histogram, retries, "no echo after 100 resends") }  // the link is gone
                    t0 = clinux_stamp_begin()
                }
                let t1 = clinux_stamp_end()
                if i >= warmup && !resent { _ = histogram.record(clock.nanoseconds(t1 &- t0)) }
            }
            return (histogram, retries, nil)
        }
        stop.value.store(true, ordering: .relaxed)
        pthread_join(echo, nil)
        return (histogram, retries, failure)
    }
    #endif
}

#if DIOS_DPDK
/// Flags between the raw ping-pong's threads.
final class DPDKBenchFlag: Sendable {
    let value = Atomic<Bool>(false)
    let ready = Atomic<Bool>(false)
}

/// The bench's EAL and its port pairs. Set up on one thread, then each port's
/// queue is polled by one thread at a time; hence `@unchecked Sendable`.
final class DPDKBenchSetup: @unchecked Sendable {
    struct Link: @unchecked Sendable {  // ports are Sendable; addresses are values
        let name: String
        let a: DPDKPort
        let b: DPDKPort
        /// The raw ping-pong's addresses and DIOS's (another UDP port, so a
        /// straggler of one run is dropped by the other as for another port).
        let rawA: PeerAddress, rawB: PeerAddress, diosA: PeerAddress, diosB: PeerAddress
    }

    let environment: DPDKEnvironment
    private(set) var links: [Link]
    let notes: [String]

    private init(environment: DPDKEnvironment, links: [Link], notes: [String]) {
        self.environment = environment
        self.links = links
        self.notes = notes
    }

    /// Starts the EAL on a thread pinned to `cpus[0]` (the EAL pins its main
    /// thread to its one lcore), inside `namespace` when given, with two memif
    /// ends and, when `veth` names two interfaces, an af_packet port on each
    /// (and when `xdp` does, an af_xdp port on each).
    static func start(
        cpus: [Int], namespace: String?, veth: (String, String)?, xdp: (String, String)?
    ) -> Swift.Result<DPDKBenchSetup, TransportError> {
        let pid = getpid()
        let socket = "/run/dios-bench-\(pid).memif"  // abstract: no file
        // DIOS_DPDK_LOG_LEVEL=debug (say) to see why a port does not start.
        let level = getenv("DIOS_DPDK_LOG_LEVEL").map { String(cString: $0) } ?? "warning"
        var arguments = [
            "dios", "--file-prefix", "dios-bench-\(pid)", "--no-pci", "--iova-mode=va", "--huge-unlink",
            "--no-telemetry",
            "-l", "\(cpus[0])", "--log-level", "lib.eal:\(level)", "--log-level", "pmd.net.*:\(level)",
            "--vdev", "net_memif0,role=server,id=0,socket=\(socket),mac=02:00:00:78:00:01",
            "--vdev", "net_memif1,role=client,id=0,socket=\(socket),mac=02:00:00:78:00:02",
        ]
        if let veth {
            arguments += [
                "--vdev", "net_af_packet0,iface=\(veth.0),qpairs=1", "--vdev",
                "net_af_packet1,iface=\(veth.1),qpairs=1",
            ]
        }
        if let xdp {
            arguments += ["--vdev", "net_af_xdp0,iface=\(xdp.0)", "--vdev", "net_af_xdp1,iface=\(xdp.1)"]
        }
        let frozen = arguments
        return onPinnedThread(cpu: cpus[0]) { () -> Swift.Result<DPDKBenchSetup, TransportError> in
            if let namespace, clinux_enter_netns(namespace) != 0 {
                return .failure(.configuration("cannot enter \(namespace)"))
            }
            let environment: DPDKEnvironment
            do throws(TransportError) {
                environment = try DPDKEnvironment.start(arguments: frozen)
            } catch {
                return .failure(error)
            }
            var links: [Link] = []
            var notes: [String] = []
            func address(_ text: String, _ port: UInt16) -> PeerAddress { PeerAddress(text, port: port)! }
            do throws(TransportError) {
                let server = try DPDKPort(environment: environment, name: "net_memif0")
                // The client's start fails until the server listens; it does already,
                // but the control channel runs on the EAL's interrupt thread: retry a little.
                var client: DPDKPort? = nil
                for attempt in 0..<30 {
                    do throws(TransportError) {
                        client = try DPDKPort(environment: environment, name: "net_memif1")
                        break
                    } catch {
                        if attempt == 29 { throw error }
                        usleep(100_000)
                    }
                }
                guard let client else { throw .configuration("memif client did not start") }
                guard server.waitForLink(timeoutMilliseconds: 5000), client.waitForLink(timeoutMilliseconds: 5000)
                else {
                    throw .configuration("the memif link did not come up in 5 s")
                }
                links.append(
                    Link(
                        name: "memif", a: server, b: client, rawA: address("10.78.0.1", 9000),
                        rawB: address("10.78.0.2", 9000),
                        diosA: address("10.78.0.1", 9100), diosB: address("10.78.0.2", 9100)))
            } catch {
                notes.append("dpdk-raw-memif/dios-memif skipped: \(error)")
            }
            // A port on each end of a veth pair (`net_<driver>0` and `1`), joined as `name` on 10.<subnet>.0.1 and .2.
            func vethLink(_ name: String, driver: String, subnet: Int) {
                do throws(TransportError) {
                    let a = try DPDKPort(environment: environment, name: "net_\(driver)0")
                    let b = try DPDKPort(environment: environment, name: "net_\(driver)1")
                    _ = a.waitForLink(timeoutMilliseconds: 2000)
                    _ = b.waitForLink(timeoutMilliseconds: 2000)
                    let (ipA, ipB) = ("10.\(subnet).0.1", "10.\(subnet).0.2")
                    links.append(
                        Link(
                            name: name, a: a, b: b, rawA: address(ipA, 9000), rawB: address(ipB, 9000),
                            diosA: address(ipA, 9100), diosB: address(ipB, 9100)))
                } catch {
                    notes.append("dpdk-raw-\(name)/dios-\(name) skipped: \(error)")
                }
            }
            if veth != nil { vethLink("veth", driver: "af_packet", subnet: 79) }
            if xdp != nil { vethLink("xdp", driver: "af_xdp", subnet: 80) }
            return .success(DPDKBenchSetup(environment: environment, links: links, notes: notes))
        }
    }

    /// Closes the ports, frees their pools, and cleans up the EAL (its runtime
    /// directory goes; `--huge-unlink` left no hugepage files). Call after every
    /// transport on them is gone or idle.
    func finish() {
        for link in links {
            link.a.close()
            link.b.close()
        }
        links = []  // the ports' pools are freed here, while the EAL still runs
        environment.cleanup()
    }
}
#endif
