// dios-dpdk-probe — one end of a DPDK link, for tests and raw baselines.
//
// Two instances (a server and a client, each its own process with its own EAL)
// exchange frames over one DPDKTransport: no DIOS kernel, sessions or tasks.
//
//   exchange (default): the client sends --frames numbered frames of varying size
//     (16...1472 bytes), each one only after the previous came back (ping-pong,
//     resent after --retry-ms), and checks every echo byte for byte; the server
//     checks order and content and echoes. Both print `key=value` summaries and
//     exit 0 only when every frame arrived once, in order, intact.
//   --pingpong N: the client times N round trips of --size bytes after --warmup
//     untimed ones, busy-polling, and prints min/p50/p99/max in ns; the server
//     echoes whatever arrives.
//   --memif-refusal: no exchange; the start-up race between a memif client and
//     its server, reproduced with both in this process (see `memifRefusal`).
//
// Example over memif (two shells):
//   dios-dpdk-probe --role server --ip 10.0.0.1 --port 9000 --neighbour 10.0.0.2=02:00:00:00:00:02 \
//     -- --file-prefix a --no-pci --huge-unlink -l 0 --vdev net_memif0,role=server,socket=/tmp/m.sock,mac=02:00:00:00:00:01
//   dios-dpdk-probe --role client --ip 10.0.0.2 --port 9000 --peer 10.0.0.1:9000 --neighbour 10.0.0.1=02:00:00:00:00:01 \
//     --pingpong 100000 -- --file-prefix b --no-pci --huge-unlink -l 1 --vdev net_memif0,role=client,socket=/tmp/m.sock,mac=02:00:00:00:00:02
//
// Exit status: 0 success, 1 the exchange failed, 2 bad arguments, 3 the transport did not start.

#if canImport(Glibc)
import Glibc
#endif
import DIOSTransport
import DIOSWire
import Synchronization

/// Set by SIGINT/SIGTERM; the loops stop and the EAL is cleaned up.
let stopRequested = Atomic<Bool>(false)

struct Options: Sendable {
    enum Role: String { case server, client }
    var role: Role?
    var device: String?
    var local: PeerAddress?
    var localIP: String?
    var localPort: UInt16 = 9000
    var peer: PeerAddress?
    var neighbours: [UInt32: [UInt8]] = [:]
    var frames = 10_000
    var pingpong: Int?
    var warmup = 1_000
    var size = 64
    var retryMilliseconds = 100
    var timeoutSeconds = 30
    var linkTimeoutSeconds = 10
    var kernelSocket = false
    enum Idle: String { case spin, yield, sleep }
    /// What a poll loop does when a poll found nothing: spin (lowest latency, a
    /// whole core), sched_yield, or sleep ~20 µs (cheap, and robust on a busy
    /// machine: a sleeper is scheduled promptly on waking, a spinner is not).
    var idle = Idle.spin
    var txBatch = 1
    var workerThread = false
    /// `--memif-refusal`: the start-up race of a memif client and its server,
    /// in this one process (see `DPDKProbe.memifRefusal`).
    var memifRefusal = false
    var eal: [String] = []

    static let usage = """
        usage: dios-dpdk-probe --role server|client --ip A.B.C.D [--port P] [--peer A.B.C.D:P]
               [--neighbour A.B.C.D=MAC]... [--device NAME] [--frames N | --pingpong N [--warmup N] [--size BYTES]]
               [--retry-ms MS] [--timeout-s S] [--link-timeout-s S] [--idle spin|yield|sleep] [--tx-batch N] [--kernel-socket] [--worker-thread]
               -- EAL arguments (e.g. --file-prefix p --no-pci --huge-unlink -l 0 --vdev net_memif0,...)
               dios-dpdk-probe --memif-refusal -- EAL arguments with net_memif0 (server) and net_memif1 (client) on one socket
        """

    /// Parses the command line; nil (after printing why) when it is not usable.
    static func parse(_ arguments: [String]) -> Options? {
        var o = Options()
        var i = 0
        func fail(_ message: String) -> Options? {
            warn("\(message)\n\(usage)")
            return nil
        }
        func value() -> String? {
            i += 1
            return i < arguments.count ? arguments[i] : nil
        }
        func number(_ name: String, _ range: ClosedRange<Int>) -> Int? {
            guard let text = value(), let n = Int(text), range.contains(n) else { return nil }
            return n
        }
        while i < arguments.count {
            let argument = arguments[i]
            switch argument {
            case "--":
                o.eal = Array(arguments[(i + 1)...])
                i = arguments.count
                continue
            case "--role":
                guard let v = value(), let role = Role(rawValue: v) else { return fail("--role is server or client") }
                o.role = role
            case "--device":
                guard let v = value() else { return fail("--device needs a name") }
                o.device = v
            case "--ip":
                guard let v = value(), PeerAddress(v, port: 0) != nil else { return fail("--ip needs A.B.C.D") }
                o.localIP = v
            case "--port":
                guard let n = number(argument, 1...65535) else { return fail("--port needs 1...65535") }
                o.localPort = UInt16(n)
            case "--peer":
                guard let v = value(), let colon = v.lastIndex(of: ":"), let port = UInt16(v[v.index(after: colon)...]),
                    let peer = PeerAddress(v[..<colon], port: port)
                else { return fail("--peer needs A.B.C.D:PORT") }
                o.peer = peer
            case "--neighbour", "--neighbor":
                guard let v = value(), let equals = v.firstIndex(of: "="),
                    let ip = PeerAddress(v[..<equals], port: 0),
                    let mac = EthernetAddress(parsing: v[v.index(after: equals)...])
                else { return fail("--neighbour needs A.B.C.D=xx:xx:xx:xx:xx:xx") }
                o.neighbours[ip.ipv4] = mac.bytes
            case "--frames":
                guard let n = number(argument, 1...100_000_000) else { return fail("--frames needs a count") }
                o.frames = n
            case "--pingpong":
                guard let n = number(argument, 1...100_000_000) else { return fail("--pingpong needs a count") }
                o.pingpong = n
            case "--warmup":
                guard let n = number(argument, 0...100_000_000) else { return fail("--warmup needs a count") }
                o.warmup = n
            case "--size":
                guard let n = number(argument, 9...EthernetUDP.maxPayload) else {
                    return fail("--size needs 9...\(EthernetUDP.maxPayload)")
                }
                o.size = n
            case "--retry-ms":
                guard let n = number(argument, 1...60_000) else { return fail("--retry-ms needs 1...60000") }
                o.retryMilliseconds = n
            case "--timeout-s":
                guard let n = number(argument, 1...86_400) else { return fail("--timeout-s needs seconds") }
                o.timeoutSeconds = n
            case "--link-timeout-s":
                guard let n = number(argument, 0...3_600) else { return fail("--link-timeout-s needs seconds") }
                o.linkTimeoutSeconds = n
            case "--tx-batch":
                guard let n = number(argument, 1...512) else { return fail("--tx-batch needs 1...512") }
                o.txBatch = n
            case "--idle":
                guard let v = value(), let idle = Idle(rawValue: v) else { return fail("--idle is spin, yield or sleep") }
                o.idle = idle
            case "--kernel-socket": o.kernelSocket = true
            case "--worker-thread": o.workerThread = true
            case "--memif-refusal": o.memifRefusal = true
            case "--help", "-h":
                say(usage)
                exit(0)
            default:
                return fail("unknown argument \(argument)")
            }
            i += 1
        }
        if o.memifRefusal {
            guard !o.eal.isEmpty else { return fail("--memif-refusal needs EAL arguments after --") }
            o.local = PeerAddress("127.0.0.1", port: 0)
            return o
        }
        guard o.role != nil else { return fail("--role is required") }
        guard let ip = o.localIP, let local = PeerAddress(ip, port: o.localPort) else { return fail("--ip is required") }
        o.local = local
        if o.role == .client && o.peer == nil { return fail("a client needs --peer") }
        if !o.kernelSocket && o.eal.isEmpty { return fail("DPDK needs EAL arguments after --") }
        return o
    }
}

/// Writes a line to standard output at once (fd 1, unbuffered), so a parent
/// reading it from a file or pipe sees progress lines as they happen.
func say(_ line: String) {
    let text = line + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
}

/// Writes "dios-dpdk-probe: message" to standard error (fd 2, unbuffered).
func warn(_ message: String) {
    let line = "dios-dpdk-probe: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// Monotonic nanoseconds.
@inline(__always) func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// The frames of the exchange: sequence (8 bytes, little-endian), kind (1 byte:
/// 0 data, 1 done), then a pattern derived from the sequence. Sizes vary over
/// 16...1472 and every fifth frame is the largest a datagram carries.
enum Exchange {
    static let data: UInt8 = 0
    static let done: UInt8 = 1

    static func size(_ seq: UInt64) -> Int {
        seq % 5 == 0 ? EthernetUDP.maxPayload : 16 + Int((seq &* 7919) % UInt64(EthernetUDP.maxPayload - 16))
    }

    /// Writes the frame for `seq` into `buffer` (which holds `maxPayload` bytes); returns its length.
    static func write(_ seq: UInt64, kind: UInt8, length: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(length >= 9 && length <= buffer.count)
        buffer.storeBytes(of: seq.littleEndian, toByteOffset: 0, as: UInt64.self)
        buffer[8] = kind
        for i in 9..<length { buffer[i] = UInt8(truncatingIfNeeded: seq &* 31 &+ UInt64(i)) }
        return length
    }

    /// The sequence and kind of a frame, nil when it is shorter than 9 bytes.
    static func header(_ frame: UnsafeRawBufferPointer) -> (seq: UInt64, kind: UInt8)? {
        guard frame.count >= 9 else { return nil }
        return (UInt64(littleEndian: frame.loadUnaligned(as: UInt64.self)), frame[8])
    }

    /// True when `frame` is exactly the data frame for its sequence number.
    static func isIntact(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard let (seq, kind) = header(frame), kind == data, frame.count == size(seq) else { return false }
        for i in 9..<frame.count where frame[i] != UInt8(truncatingIfNeeded: seq &* 31 &+ UInt64(i)) { return false }
        return true
    }
}

/// Runs one role over `transport`; returns the exit status.
func run<T: FrameTransport>(_ transport: T, _ o: Options, describe: () -> String) -> Int32 {
    let deadline = now() + UInt64(o.timeoutSeconds) * 1_000_000_000
    let retry = UInt64(o.retryMilliseconds) * 1_000_000
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: EthernetUDP.maxPayload, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
    func idle() {
        switch o.idle {
        case .spin: break
        case .yield: sched_yield()
        case .sleep: nanosleep(&pause, nil)
        }
    }
    func expired() -> Bool { now() > deadline || stopRequested.load(ordering: .relaxed) }

    switch o.role {
    case .server?:
        // Echo each frame to its source. In exchange mode, check order and content.
        let checking = o.pingpong == nil
        var expected: UInt64 = 0
        var duplicates = 0, outOfOrder = 0, corrupt = 0, echoFailures = 0, frames = 0
        var doneAt: UInt64? = nil
        while !expired() {
            if let doneAt, now() - doneAt > 300_000_000 { break }  // linger for a lost DONE echo
            let n = transport.receive { frame, source in
                frames += 1
                guard let (seq, kind) = Exchange.header(frame) else {
                    corrupt += 1
                    return
                }
                if kind == Exchange.done {
                    if doneAt == nil { doneAt = now() }
                } else if checking {
                    guard Exchange.isIntact(frame) else {
                        corrupt += 1  // not echoed: the client resends
                        return
                    }
                    if seq == expected {
                        expected += 1
                    } else if seq < expected {
                        duplicates += 1  // a resend whose first copy got here: echo again
                    } else {
                        outOfOrder += 1
                    }
                }
                if !transport.send(frame, to: source) { echoFailures += 1 }
            }
            if n == 0 { idle() }
        }
        let ok = doneAt != nil && (!checking || (expected == UInt64(o.frames) && outOfOrder == 0 && corrupt == 0))
        say(
            "server: \(ok ? "ok" : "FAILED") frames_in=\(frames) in_order=\(expected) duplicates=\(duplicates) "
                + "out_of_order=\(outOfOrder) corrupt=\(corrupt) echo_failures=\(echoFailures) "
                + "done=\(doneAt != nil) \(describe())")
        return ok ? 0 : 1

    case .client?:
        guard let peer = o.peer else { return 2 }
        var retransmits = 0, stale = 0, corrupt = 0, sendRefusals = 0
        var timeouts = 0
        var rtts = [UInt64]()

        /// Sends `length` bytes of `buffer` and waits for the echo of `seq` (identical
        /// bytes), resending after `retry`. Returns the round trip of the copy that
        /// came back first, or nil at the deadline.
        func roundTrip(_ seq: UInt64, length: Int) -> UInt64? {
            let sent = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
            while !expired() {
                let start = now()  // the round trip includes the send (af_packet's is a system call)
                guard transport.send(sent, to: peer) else {
                    sendRefusals += 1  // TX ring full or link down: try again
                    idle()
                    continue
                }
                var matched = false
                while !matched && now() - start < retry {
                    let n = transport.receive { frame, _ in
                        guard let (echoSeq, _) = Exchange.header(frame), echoSeq == seq else {
                            stale += 1  // the echo of an earlier resend
                            return
                        }
                        if frame.count == sent.count, let a = frame.baseAddress, let b = sent.baseAddress,
                            memcmp(a, b, sent.count) == 0
                        {
                            matched = true
                        } else {
                            corrupt += 1
                        }
                    }
                    if n == 0 && !matched { idle() }
                }
                if matched { return now() - start }
                retransmits += 1
            }
            return nil
        }

        let started = now()
        var completed = 0
        if let count = o.pingpong {
            rtts.reserveCapacity(count)
            for i in 0..<(o.warmup + count) {
                let seq = UInt64(i)
                _ = Exchange.write(seq, kind: Exchange.data, length: o.size, into: buffer)
                guard let rtt = roundTrip(seq, length: o.size) else {
                    timeouts += 1
                    break
                }
                if i >= o.warmup { rtts.append(rtt) }
                completed += 1
            }
        } else {
            for i in 0..<o.frames {
                let seq = UInt64(i)
                let length = Exchange.write(seq, kind: Exchange.data, length: Exchange.size(seq), into: buffer)
                guard roundTrip(seq, length: length) != nil else {
                    timeouts += 1
                    break
                }
                completed += 1
            }
        }
        let elapsed = now() - started
        // Tell the server to finish; a few tries, since the DONE or its echo may be lost.
        let doneSeq = UInt64(o.pingpong.map { o.warmup + $0 } ?? o.frames)
        let doneLength = Exchange.write(doneSeq, kind: Exchange.done, length: 16, into: buffer)
        let doneEchoed = timeouts == 0 && roundTrip(doneSeq, length: doneLength) != nil
        let wanted = o.pingpong.map { o.warmup + $0 } ?? o.frames
        let ok = completed == wanted && corrupt == 0 && doneEchoed
        var line =
            "client: \(ok ? "ok" : "FAILED") frames=\(completed)/\(wanted) retransmits=\(retransmits) "
            + "stale_echoes=\(stale) corrupt=\(corrupt) send_refusals=\(sendRefusals) "
            + "done_echoed=\(doneEchoed) elapsed_ms=\(elapsed / 1_000_000) \(describe())"
        if o.pingpong != nil, !rtts.isEmpty {
            rtts.sort()
            func percentile(_ p: Double) -> UInt64 { rtts[min(rtts.count - 1, Int(Double(rtts.count) * p))] }
            let mean = rtts.reduce(0, +) / UInt64(rtts.count)
            line += "\npingpong size=\(o.size) n=\(rtts.count) min_ns=\(rtts[0]) p50_ns=\(percentile(0.50)) "
                + "p99_ns=\(percentile(0.99)) p999_ns=\(percentile(0.999)) max_ns=\(rtts[rtts.count - 1]) mean_ns=\(mean)"
        }
        say(line)
        return ok ? 0 : 1

    case nil:
        return 2
    }
}

@main
enum DPDKProbe {
    static func main() {
        guard let options = Options.parse(Array(CommandLine.arguments.dropFirst())), let local = options.local else {
            exit(2)
        }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }

        if options.kernelSocket {
            do {
                let transport = try UDPTransport(bind: local)
                exit(run(transport, options) { "transport=udp-socket local=\(transport.localAddress)" })
            } catch {
                warn("\(error)")
                exit(3)
            }
        }

        #if DIOS_DPDK
        let environment: DPDKEnvironment
        do {
            environment = try DPDKEnvironment.start(arguments: ["dios-dpdk-probe"] + options.eal)
        } catch {
            warn("\(error)")
            exit(3)
        }
        // Everything DPDK lives in this call, so it is released before the EAL is.
        let status =
            options.memifRefusal
            ? memifRefusal(environment)
            : options.workerThread
            ? onWorkerThread { runDPDK(environment, options, local) }
            : runDPDK(environment, options, local)
        environment.cleanup()
        exit(status)
        #else
        warn("built without the DPDK trait: only --kernel-socket works")
        exit(3)
        #endif
    }

    /// Runs `body` on a new pthread (not an EAL lcore, as a kernel instance's
    /// thread is not) and returns its result.
    static func onWorkerThread(_ body: @escaping @Sendable () -> Int32) -> Int32 {
        final class Job: @unchecked Sendable {  // handed to one thread, read after join
            let body: @Sendable () -> Int32
            var status: Int32 = 3
            init(_ body: @escaping @Sendable () -> Int32) { self.body = body }
        }
        let job = Job(body)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let job = Unmanaged<Job>.fromOpaque(context).takeUnretainedValue()
            job.status = job.body()
            return nil
        }, Unmanaged.passUnretained(job).toOpaque())
        guard started == 0 else {
            warn("pthread_create: \(String(cString: strerror(started)))")
            return 3
        }
        pthread_join(thread, nil)
        return withExtendedLifetime(job) { job.status }
    }

    #if DIOS_DPDK
    /// `--memif-refusal`, with two memif devices on one socket in this EAL:
    /// `net_memif0` the server, `net_memif1` the client. The client starts
    /// while the server is probed (its socket listens) but not started, as
    /// when a client node starts while its server node is still coming up:
    /// the server refuses it, and the client's link stays down even once the
    /// server has started. `DPDKPort.waitForLink(timeoutMilliseconds:
    /// restartingEvery:)` must then bring it up. Prints `key=value`s; exit 0
    /// when all of that happened.
    static func memifRefusal(_ environment: DPDKEnvironment) -> Int32 {
        do {
            let client = try DPDKPort(environment: environment, name: "net_memif1")
            defer { client.close() }
            usleep(300_000)
            let refused = !client.isLinkUp
            let server = try DPDKPort(environment: environment, name: "net_memif0")
            defer {
                server.close()
                // The client hears of the server's going in the EAL's interrupt
                // thread, which tears its connection down there; closing the
                // client meanwhile raced that thread (a crash in it, once, on a
                // loaded machine), and DPDK 22.11 offers nothing to wait on but
                // the link. So: its link down first, then a grace for the rest.
                var waited = 0
                while client.isLinkUp && waited < 200 {
                    usleep(10_000)
                    waited += 1
                }
                usleep(100_000)
            }
            usleep(500_000)
            let stayedDown = !client.isLinkUp
            let restarts = try client.waitForLink(timeoutMilliseconds: 10_000, restartingEvery: 500)
            let up = restarts != nil && server.waitForLink(timeoutMilliseconds: 2_000)
            say("memif-refusal: refused=\(refused) stayed_down=\(stayedDown) restarts=\(restarts.map(String.init) ?? "none") link_up=\(up)")
            return refused && stayedDown && (restarts ?? 0) >= 1 && up ? 0 : 1
        } catch {
            warn("\(error)")
            return 3
        }
    }

    static func runDPDK(_ environment: DPDKEnvironment, _ o: Options, _ local: PeerAddress) -> Int32 {
        do {
            if o.workerThread { try environment.registerCurrentThread() }
            defer { if o.workerThread { environment.unregisterCurrentThread() } }
            guard let name = o.device ?? environment.portNames().first else {
                warn("the EAL found no Ethernet port (pass --vdev)")
                return 3
            }
            let port = try DPDKPort(environment: environment, name: name)
            defer { port.close() }
            let transport = try DPDKTransport(
                port: port, queue: 0, localAddress: local, neighbours: o.neighbours, txBatch: o.txBatch)
            // The refusals the transport owes: no neighbour, too large. Counted, never sent.
            if o.role == .client {
                let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: EthernetUDP.maxPayload + 1, alignment: 8)
                defer { probe.deallocate() }
                probe.initializeMemory(as: UInt8.self, repeating: 0)
                let unknown = PeerAddress(ipv4: 0xC000_0201, port: 9)  // 192.0.2.1, TEST-NET-1
                let refusedUnknown = !transport.send(UnsafeRawBufferPointer(rebasing: probe[0..<64]), to: unknown)
                let refusedOversize = o.peer.map { !transport.send(UnsafeRawBufferPointer(probe), to: $0) } ?? true
                say("client: refuses unknown neighbour=\(refusedUnknown) oversize=\(refusedOversize)")
            }
            say("\(o.role?.rawValue ?? "?"): \(name) started, waiting for link")
            guard port.waitForLink(timeoutMilliseconds: o.linkTimeoutSeconds * 1000) else {
                warn("link of \(name) not up after \(o.linkTimeoutSeconds) s")
                return 3
            }
            let lcore = environment.currentThreadLcore.map(String.init) ?? "none"
            say("\(o.role?.rawValue ?? "?"): \(name) up, mac \(port.mac), local \(local), lcore \(lcore)")
            return run(transport, o) {
                let c = transport.counters
                let drops = c.dropped.sorted { $0.key.rawValue < $1.key.rawValue }
                    .map { "drop_\($0.key.rawValue)=\($0.value)" }.joined(separator: " ")
                let stats = port.statistics.map { "port_rx=\($0.rxPackets) port_tx=\($0.txPackets) port_rx_missed=\($0.rxMissed)" } ?? ""
                return "transport=dpdk device=\(name) sent=\(c.sent) received=\(c.received) "
                    + "send_queue_full=\(c.sendQueueFull) unknown_neighbour=\(c.unknownNeighbour) oversize=\(c.oversize) "
                    + "no_mbuf=\(c.noMbuf) arp_replies=\(c.arpReplies) \(drops) \(stats)"
            }
        } catch {
            warn("\(error)")
            return 3
        }
    }
    #endif
}
