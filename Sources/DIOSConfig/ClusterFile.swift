public import DIOS
public import DIOSWire
public import Logging
import Foundation
import Yams

/// A cluster file (YAML): the nodes, where each listens, and how their
/// sessions behave. `diosd --cluster FILE --node N` boots node N of it, and
/// `dios cluster up FILE` boots them all on this machine.
///
/// ```yaml
/// name: local                   # letters, digits, '-', '_', '.'
/// idle: adaptive                # busy | adaptive, for every node
/// log_level: notice
/// session:
///   window: 128                 # frames in flight per pair of instances
///   retransmit_timeout_us: 2000
///   heartbeat_ms: 20
///   failure_timeout_ms: 1000    # a peer silent this long is declared failed
/// faults:                       # the seeded fault stage; all 0 (off) by default
///   loss: 0.05
///   duplicate: 0.01
///   reorder: 0.01
///   delay_us: 0
///   seed: 1
/// veth:                         # veth pairs `dios cluster up` creates: [node, node]
///   - [0, 1]
/// nodes:
///   - id: 0
///     transport: udp            # udp (kernel sockets) | dpdk
///     address: 127.0.0.1
///     port: 7400                # instance k listens on port + k
///     cores: [0]
///     arena_mib: 64
///     control_socket: /tmp/dios-local-node0.sock
///     mac: 02:00:00:00:00:01    # the node's Ethernet address (see below)
///     netns: dios-n0            # run in this network namespace (up creates it, down deletes it)
///     iface: dios0              # its end of a veth pair, in netns
///     dpdk:                     # transport: dpdk only
///       vdev: net_memif0,role=server,socket=/tmp/dios-memif.sock
///       eal_args: [--log-level, "lib.eal:warning"]
/// ```
///
/// DPDK nodes have no kernel stack to resolve addresses: each sends to its
/// peers' MACs from a static neighbour table. So in a cluster with any DPDK
/// node, every node names its `mac` and has an IPv4 address of its own: a
/// DPDK node's MAC is its port's (passed to memif as `mac=`; an af_packet or
/// af_xdp port has its interface's, which `dios cluster up` creates with it),
/// a UDP node's is its interface's on the link. A DPDK node of several
/// instances gives each a queue pair of its port (af_packet: `qpairs=N` is
/// added to the vdev; memif peers must run as many instances as each other)
/// and steers packets that land on another instance's queue to it
/// (`DPDKSteering`); an af_xdp node runs one instance so far (one socket, on queue 0).
/// `dpdk.vdev` defaults to `net_af_packet0,iface=IFACE` for a node with an
/// `iface`; `net_af_xdp0,iface=IFACE` puts an AF_XDP socket on it instead.
///
/// Unknown keys are refused, as in node files.
public struct ClusterFile: Sendable, Equatable {
    public struct NodeEntry: Sendable, Equatable {
        public var id: UInt16
        public var transport: String = "udp"
        public var address: PeerAddress
        public var cores: [Int] = [0]
        public var pin = false
        public var arenaMiB = 64
        public var controlSocket: String? = nil
        /// The node's Ethernet address (6 bytes): required in a cluster with DPDK nodes.
        public var mac: [UInt8]? = nil
        /// The network namespace the node runs in (`ip netns exec`), if any.
        public var netns: String? = nil
        /// The node's end of a veth pair, inside `netns`.
        public var iface: String? = nil
        /// What a `transport: dpdk` node's EAL and port need.
        public var dpdk: DPDKSettings? = nil

        public init(id: UInt16, address: PeerAddress) {
            self.id = id
            self.address = address
        }

        /// Where instance `k` of this node listens.
        public func address(ofInstance k: Int) -> PeerAddress {
            PeerAddress(ipv4: address.ipv4, port: address.port &+ UInt16(k))
        }

        /// "02:00:00:00:00:01", or nil without a mac.
        public var macText: String? { mac.map(ClusterFile.macText) }
    }

    /// A DPDK node's device and extra EAL arguments.
    public struct DPDKSettings: Sendable, Equatable {
        /// The `--vdev` device string, e.g. `net_memif0,role=server,socket=/tmp/x.sock`
        /// or `net_af_packet0,iface=veth0`.
        public var vdev: String
        /// More EAL arguments, after those diosd sets itself.
        public var ealArguments: [String] = []

        public init(vdev: String, ealArguments: [String] = []) {
            self.vdev = vdev
            self.ealArguments = ealArguments
        }

        /// The port's name: the vdev's first field ("net_memif0").
        public var device: String { String(vdev.prefix { $0 != "," }) }
        /// The device's driver kind: "memif", "af_packet", ...
        public var driver: String {
            var d = device.dropFirst("net_".count)
            while d.last?.isNumber == true { d = d.dropLast() }
            return String(d)
        }
        /// The vdev's `key=value` arguments.
        public var options: [String: String] {
            var all: [String: String] = [:]
            for field in vdev.split(separator: ",").dropFirst() {
                let kv = field.split(separator: "=", maxSplits: 1)
                all[String(kv[0])] = kv.count == 2 ? String(kv[1]) : ""
            }
            return all
        }
    }

    /// A veth pair between two nodes' interfaces, in their namespaces.
    public struct VethPair: Sendable, Equatable {
        public var a: UInt16, b: UInt16
        public init(a: UInt16, b: UInt16) {
            self.a = a
            self.b = b
        }
    }

    public var name = "dios"
    public var idle: IdlePolicy = .adaptive
    public var logLevel: Logger.Level = .notice
    public var session = SessionConfiguration()
    public var faults = FaultConfiguration()
    public var nodes: [NodeEntry] = []
    public var veth: [VethPair] = []

    public static func load(path: String) throws(ConfigError) -> ClusterFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path) }
        return try parse(text)
    }

    public static func parse(_ text: String) throws(ConfigError) -> ClusterFile {
        let raw: RawClusterFile
        do {
            raw = try YAMLDecoder().decode(RawClusterFile.self, from: text)
        } catch let error as DecodingError {
            throw .invalid(NodeFile.describe(error))
        } catch {
            throw .invalid("\(error)")
        }
        var file = ClusterFile()
        if let name = raw.name { file.name = name }
        if let idle = raw.idle {
            switch idle {
            case "busy": file.idle = .busy
            case "adaptive": file.idle = .adaptive
            default: throw .invalid("idle must be busy or adaptive, got \(idle)")
            }
        }
        if let level = raw.log_level {
            guard let parsed = Logger.Level(rawValue: level) else { throw .invalid("unknown log_level \(level)") }
            file.logLevel = parsed
        }
        if let s = raw.session {
            if let w = s.window {
                guard w > 0 && w <= 4096 else { throw .invalid("session.window must be 1...4096, got \(w)") }
                file.session.window = w
            }
            if let us = s.retransmit_timeout_us {
                guard us > 0 else { throw .invalid("session.retransmit_timeout_us must be positive") }
                file.session.retransmitTimeout = UInt64(us) * 1_000
            }
            if let ms = s.heartbeat_ms {
                guard ms > 0 else { throw .invalid("session.heartbeat_ms must be positive") }
                file.session.heartbeatInterval = UInt64(ms) * 1_000_000
            }
            if let ms = s.failure_timeout_ms {
                guard ms > 0 else { throw .invalid("session.failure_timeout_ms must be positive") }
                file.session.failureTimeout = UInt64(ms) * 1_000_000
            }
            guard file.session.failureTimeout > 2 * file.session.heartbeatInterval else {
                throw .invalid("session.failure_timeout_ms must exceed two heartbeats")
            }
        }
        if let f = raw.faults {
            for (key, p) in [("loss", f.loss), ("duplicate", f.duplicate), ("reorder", f.reorder)] {
                if let p, !(0...1).contains(p) { throw .invalid("faults.\(key) must be a probability, got \(p)") }
            }
            if let d = f.delay_us, d < 0 { throw .invalid("faults.delay_us must not be negative") }
            file.faults = FaultConfiguration(
                loss: f.loss ?? 0, duplicate: f.duplicate ?? 0, reorder: f.reorder ?? 0,
                delay: UInt64(f.delay_us ?? 0) * 1_000, seed: f.seed ?? 1)
        }
        guard let nodes = raw.nodes, !nodes.isEmpty else { throw .invalid("a cluster needs nodes") }
        guard !file.name.isEmpty, file.name.count <= 40, file.name.allSatisfy(Self.isNameCharacter) else {
            throw .invalid("name must be 1 to 40 letters, digits, '-', '_' or '.', got \(file.name)")
        }
        for n in nodes { file.nodes.append(try Self.node(n)) }
        guard Set(file.nodes.map(\.id)).count == file.nodes.count else { throw .invalid("node ids must be distinct") }
        var listening: Set<PeerAddress> = []
        for n in file.nodes {
            for k in n.cores.indices {
                guard listening.insert(n.address(ofInstance: k)).inserted else {
                    throw .invalid("node \(n.id) instance \(k) listens where another does: \(n.address(ofInstance: k))")
                }
            }
        }
        file.veth = try Self.vethPairs(raw.veth ?? [], nodes: file.nodes)
        try Self.checkDPDK(file.nodes)
        return file
    }

    static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".")
    }

    /// "02:00:00:00:00:01" → its six bytes; nil unless six hex octets.
    public static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    public static func macText(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    private static func node(_ n: RawClusterFile.RawNode) throws(ConfigError) -> NodeEntry {
        guard let address = PeerAddress(n.address, port: n.port) else {
            throw .invalid("node \(n.id): address must be dotted IPv4, got \(n.address)")
        }
        guard ["udp", "dpdk"].contains(n.transport ?? "udp") else {
            throw .invalid("node \(n.id): transport must be udp or dpdk, got \(n.transport ?? "")")
        }
        var entry = NodeEntry(id: n.id, address: address)
        entry.transport = n.transport ?? "udp"
        if let cores = n.cores {
            guard !cores.isEmpty, cores.allSatisfy({ $0 >= 0 }), Set(cores).count == cores.count else {
                throw .invalid("node \(n.id): cores must be distinct CPU numbers, got \(cores)")
            }
            entry.cores = cores
        }
        guard Int(n.port) + entry.cores.count <= 65_536, n.port > 0 else {
            throw .invalid("node \(n.id): ports \(n.port)+\(entry.cores.count) out of range")
        }
        if let pin = n.pin { entry.pin = pin }
        if let a = n.arena_mib {
            guard a > 0 else { throw .invalid("node \(n.id): arena_mib must be positive") }
            entry.arenaMiB = a
        }
        entry.controlSocket = n.control_socket
        if let text = n.mac {
            guard let mac = parseMAC(text), mac[0] & 1 == 0, mac != [0, 0, 0, 0, 0, 0] else {
                throw .invalid("node \(n.id): mac must be a unicast Ethernet address like 02:00:00:00:00:01, got \(text)")
            }
            entry.mac = mac
        }
        if let netns = n.netns {
            guard !netns.isEmpty, netns.count <= 64, netns.allSatisfy(isNameCharacter), netns != ".", netns != ".." else {
                throw .invalid("node \(n.id): netns must be 1 to 64 letters, digits, '-', '_' or '.', got \(netns)")
            }
            entry.netns = netns
        }
        if let iface = n.iface {
            guard !iface.isEmpty, iface.count <= 15, iface.allSatisfy(isNameCharacter), iface != "lo" else {
                throw .invalid("node \(n.id): iface must be an interface name of 1 to 15 letters, digits, '-', '_' or '.', got \(iface)")
            }
            guard entry.netns != nil else {
                throw .invalid("node \(n.id): iface \(iface) needs a netns (dios cluster up creates the interface in the node's namespace)")
            }
            entry.iface = iface
        }
        if entry.transport == "dpdk" {
            var vdev: String
            if let given = n.dpdk?.vdev {
                vdev = given
            } else if let iface = entry.iface {
                vdev = "net_af_packet0,iface=\(iface)"
            } else {
                throw .invalid("node \(n.id): transport dpdk needs dpdk.vdev (e.g. net_memif0,role=server,socket=/tmp/x.sock), or an iface for af_packet")
            }
            let settings = DPDKSettings(vdev: vdev, ealArguments: n.dpdk?.eal_args ?? [])
            let fields = vdev.split(separator: ",", omittingEmptySubsequences: false)
            guard settings.device.hasPrefix("net_"), settings.device.count > 4,
                settings.device.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
                !vdev.contains(where: \.isWhitespace), fields.dropFirst().allSatisfy({ $0.contains("=") && !$0.hasPrefix("=") })
            else {
                throw .invalid("node \(n.id): dpdk.vdev must be a device like net_memif0 or net_af_packet0 and key=value options, got \(vdev)")
            }
            if settings.driver == "af_packet" || settings.driver == "af_xdp" {
                guard let iface = settings.options["iface"] else {
                    throw .invalid("node \(n.id): dpdk.vdev \(vdev) needs iface=")
                }
                if let own = entry.iface, own != iface {
                    throw .invalid("node \(n.id): dpdk.vdev uses iface \(iface) but the node's iface is \(own)")
                }
                if settings.options["mac"] != nil {
                    throw .invalid("node \(n.id): \(settings.driver) takes its interface's MAC; set the node's mac, not mac= in dpdk.vdev")
                }
            }
            if settings.driver == "af_xdp" && entry.cores.count > 1 {
                throw .invalid(
                    "node \(n.id): an af_xdp node runs one instance so far (one AF_XDP socket, on queue 0), not \(entry.cores.count): DPDK 22.11's af_xdp takes its queues from the interface's combined channels, of which a veth has none; use af_packet for more")
            }
            if settings.driver == "af_packet" {
                // A queue pair (socket) per instance.
                if let qpairs = settings.options["qpairs"] {
                    guard qpairs == "\(entry.cores.count)" else {
                        throw .invalid("node \(n.id): dpdk.vdev says qpairs=\(qpairs), the node runs \(entry.cores.count) instance(s)")
                    }
                } else if entry.cores.count > 1 {
                    vdev += ",qpairs=\(entry.cores.count)"
                }
            }
            if let given = settings.options["mac"] {
                guard let bytes = parseMAC(given), bytes == entry.mac else {
                    throw .invalid("node \(n.id): dpdk.vdev says mac=\(given), the node's mac is \(entry.macText ?? "not set")")
                }
            }
            let reserved = ["--file-prefix", "--vdev", "-l", "--lcores", "-c", "--main-lcore", "--proc-type", "--in-memory", "--no-shconf"]
            for argument in settings.ealArguments {
                if let name = reserved.first(where: { argument == $0 || argument.hasPrefix($0 + "=") }) {
                    throw .invalid("node \(n.id): dpdk.eal_args must not set \(name): diosd sets it (see ClusterFile.ealArguments)")
                }
            }
            entry.dpdk = DPDKSettings(vdev: vdev, ealArguments: settings.ealArguments)
        } else if n.dpdk != nil {
            throw .invalid("node \(n.id): a dpdk mapping on a \(entry.transport) node (set transport: dpdk)")
        }
        return entry
    }

    private static func vethPairs(_ raw: [[UInt16]], nodes: [NodeEntry]) throws(ConfigError) -> [VethPair] {
        var pairs: [VethPair] = []
        var linked: Set<UInt16> = []
        for ends in raw {
            guard ends.count == 2, ends[0] != ends[1] else {
                throw .invalid("veth: each pair names two different nodes, like [0, 1], got \(ends)")
            }
            for id in ends {
                guard let n = nodes.first(where: { $0.id == id }) else { throw .invalid("veth \(ends): no node \(id)") }
                guard n.netns != nil, n.iface != nil, n.mac != nil else {
                    throw .invalid("veth \(ends): node \(id) needs netns, iface and mac (its end of the pair)")
                }
                guard linked.insert(id).inserted else {
                    throw .invalid("veth \(ends): node \(id) is on another veth pair already (one interface per node)")
                }
            }
            let a = nodes.first { $0.id == ends[0] }!, b = nodes.first { $0.id == ends[1] }!
            guard a.netns != b.netns else {
                throw .invalid("veth \(ends): both ends are in namespace \(a.netns!); a veth pair joins two namespaces")
            }
            pairs.append(VethPair(a: ends[0], b: ends[1]))
        }
        for n in nodes where n.iface != nil && !linked.contains(n.id) {
            throw .invalid("node \(n.id): iface \(n.iface!) is on no veth pair (add [\(n.id), PEER] to veth)")
        }
        var ifaces: Set<[String]> = []
        for n in nodes {
            if let netns = n.netns, let iface = n.iface, !ifaces.insert([netns, iface]).inserted {
                throw .invalid("node \(n.id): iface \(iface) in \(netns) is another node's too")
            }
        }
        return pairs
    }

    /// A DPDK node resolves nothing: every node needs a MAC and an address of its own.
    private static func checkDPDK(_ nodes: [NodeEntry]) throws(ConfigError) {
        guard let dpdk = nodes.first(where: { $0.transport == "dpdk" }) else { return }
        for n in nodes where n.mac == nil {
            throw .invalid(
                "node \(n.id): needs a mac: node \(dpdk.id) uses DPDK, whose neighbour table maps every peer's address to its MAC")
        }
        var owners: [UInt32: UInt16] = [:]
        var macs: [[UInt8]: UInt16] = [:]
        for n in nodes {
            if let other = owners.updateValue(n.id, forKey: n.address.ipv4) {
                throw .invalid(
                    "node \(n.id): address \(n.address.ipv4Text) is node \(other)'s too; with DPDK nodes every node needs an address of its own (neighbour tables map addresses to MACs)")
            }
            if let mac = n.mac, let other = macs.updateValue(n.id, forKey: mac) {
                throw .invalid("node \(n.id): mac \(n.macText!) is node \(other)'s too")
            }
        }
        // memif's sockets are abstract, so per network namespace, unless socket-abstract=no.
        var memif: [String: NodeEntry] = [:]
        for n in nodes {
            guard let d = n.dpdk, d.driver == "memif", d.options["socket-abstract"] != "no" else { continue }
            let socket = d.options["socket"] ?? "/run/memif.sock"
            if let other = memif.updateValue(n, forKey: socket), other.netns != n.netns {
                throw .invalid(
                    "node \(n.id): its memif socket \(socket) is abstract, so only nodes in one namespace share it (node \(other.id) is in \(other.netns ?? "the host's")); add socket-abstract=no or move them together")
            }
        }
    }

    public func node(_ id: UInt16) -> NodeEntry? { nodes.first { $0.id == id } }

    /// The node file for node `id` (cores, arena, socket, idle, logging).
    public func nodeFile(for id: UInt16) throws(ConfigError) -> NodeFile {
        guard let n = node(id) else { throw .invalid("no node \(id) in cluster \(name)") }
        var file = NodeFile()
        file.node = id
        file.cores = n.cores
        file.pin = n.pin
        file.arenaMiB = n.arenaMiB
        file.idle = idle
        file.logLevel = logLevel
        file.controlSocket = n.controlSocket
        return file
    }

    /// Every instance of the other nodes, and where it listens: the peers of
    /// node `id`'s instances. (Instances of one node talk through the fabric.)
    public func peers(of id: UInt16) -> [InstanceID: PeerAddress] {
        var peers: [InstanceID: PeerAddress] = [:]
        for n in nodes where n.id != id {
            for k in n.cores.indices { peers[InstanceID(node: n.id, core: UInt16(k))] = n.address(ofInstance: k) }
        }
        return peers
    }
}

private struct RawClusterFile: Decodable {
    var name: String?
    var idle: String?
    var log_level: String?
    var session: RawSession?
    var faults: RawFaults?
    var nodes: [RawNode]?
    var veth: [[UInt16]]?

    struct RawSession: Decodable {
        var window: Int?
        var retransmit_timeout_us: Int?
        var heartbeat_ms: Int?
        var failure_timeout_ms: Int?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["window", "retransmit_timeout_us", "heartbeat_ms", "failure_timeout_ms"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            window = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "window"))
            retransmit_timeout_us = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "retransmit_timeout_us"))
            heartbeat_ms = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "heartbeat_ms"))
            failure_timeout_ms = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "failure_timeout_ms"))
        }
    }

    struct RawFaults: Decodable {
        var loss: Double?
        var duplicate: Double?
        var reorder: Double?
        var delay_us: Int?
        var seed: UInt64?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["loss", "duplicate", "reorder", "delay_us", "seed"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            loss = try c.decodeIfPresent(Double.self, forKey: AnyKey(stringValue: "loss"))
            duplicate = try c.decodeIfPresent(Double.self, forKey: AnyKey(stringValue: "duplicate"))
            reorder = try c.decodeIfPresent(Double.self, forKey: AnyKey(stringValue: "reorder"))
            delay_us = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "delay_us"))
            seed = try c.decodeIfPresent(UInt64.self, forKey: AnyKey(stringValue: "seed"))
        }
    }

    struct RawNode: Decodable {
        var id: UInt16
        var transport: String?
        var address: String
        var port: UInt16
        var cores: [Int]?
        var pin: Bool?
        var arena_mib: Int?
        var control_socket: String?
        var mac: String?
        var netns: String?
        var iface: String?
        var dpdk: RawDPDK?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(
                decoder,
                known: [
                    "id", "transport", "address", "port", "cores", "pin", "arena_mib", "control_socket", "mac", "netns",
                    "iface", "dpdk",
                ])
            let c = try decoder.container(keyedBy: AnyKey.self)
            id = try c.decode(UInt16.self, forKey: AnyKey(stringValue: "id"))
            transport = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "transport"))
            address = try c.decode(String.self, forKey: AnyKey(stringValue: "address"))
            port = try c.decode(UInt16.self, forKey: AnyKey(stringValue: "port"))
            cores = try c.decodeIfPresent([Int].self, forKey: AnyKey(stringValue: "cores"))
            pin = try c.decodeIfPresent(Bool.self, forKey: AnyKey(stringValue: "pin"))
            arena_mib = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "arena_mib"))
            control_socket = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "control_socket"))
            mac = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "mac"))
            netns = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "netns"))
            iface = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "iface"))
            dpdk = try c.decodeIfPresent(RawDPDK.self, forKey: AnyKey(stringValue: "dpdk"))
        }
    }

    struct RawDPDK: Decodable {
        var vdev: String?
        var eal_args: [String]?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["vdev", "eal_args"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            vdev = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "vdev"))
            eal_args = try c.decodeIfPresent([String].self, forKey: AnyKey(stringValue: "eal_args"))
        }
    }

    init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["name", "idle", "log_level", "session", "faults", "veth", "nodes"])
        let c = try decoder.container(keyedBy: AnyKey.self)
        name = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "name"))
        idle = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "idle"))
        log_level = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "log_level"))
        session = try c.decodeIfPresent(RawSession.self, forKey: AnyKey(stringValue: "session"))
        faults = try c.decodeIfPresent(RawFaults.self, forKey: AnyKey(stringValue: "faults"))
        nodes = try c.decodeIfPresent([RawNode].self, forKey: AnyKey(stringValue: "nodes"))
        veth = try c.decodeIfPresent([[UInt16]].self, forKey: AnyKey(stringValue: "veth"))
    }
}
