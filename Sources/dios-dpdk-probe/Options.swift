import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

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
               [--retry-ms MS] [--timeout-s S] [--link-timeout-s S] [--idle spin|yield|sleep] [--tx-batch N]
               [--kernel-socket] [--worker-thread]
               -- EAL arguments (e.g. --file-prefix p --no-pci --huge-unlink -l 0 --vdev net_memif0,...)
               dios-dpdk-probe --memif-refusal -- EAL arguments with net_memif0 (server) and net_memif1 (client)
               on one socket
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
                guard let v = value(), let idle = Idle(rawValue: v) else {
                    return fail("--idle is spin, yield or sleep")
                }
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
        guard let ip = o.localIP, let local = PeerAddress(ip, port: o.localPort) else {
            return fail("--ip is required")
        }
        o.local = local
        if o.role == .client && o.peer == nil { return fail("a client needs --peer") }
        if !o.kernelSocket && o.eal.isEmpty { return fail("DPDK needs EAL arguments after --") }
        return o
    }
}
