public import DIOSCore
public import DIOSWire
import Foundation
public import Logging
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
/// security:
///   frames: authenticated       # authenticated (default) | encrypted | plain
///   key_file: local.key         # the cluster's secret; relative to this file;
///                               # default: this file's path with .key for .yaml
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
///     metrics:
///       listen: 127.0.0.1:9464  # Prometheus text at /metrics; none without it
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
        public var controlSocketMode: UInt16 = 0o600
        /// Where the node serves its metrics (`metrics: {listen: ...}`); nil: nowhere.
        public var metricsListen: PeerAddress? = nil
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
    /// Executables every node registers as program objects when it starts.
    public var programs: [String] = []
    /// What the wire does to frames between nodes.
    public var frames: FrameProtection = .authenticated
    /// The key file as written (nil: not named); `keyPath(for:)` resolves it.
    public var keyFile: String? = nil

    public static func load(path: String) throws(ConfigError) -> ClusterFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path) }
        return try parse(text)
    }

    /// Where the cluster's secret is for the cluster file at `path`: the key
    /// file it names (relative to its own folder), or the file's own path with
    /// `.key` in place of `.yaml`/`.yml`.
    public func keyPath(for path: String) -> String {
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        if let keyFile { return keyFile.hasPrefix("/") ? keyFile : "\(folder)/\(keyFile)" }
        for suffix in [".yaml", ".yml"] where path.hasSuffix(suffix) { return "\(path.dropLast(suffix.count)).key" }
        return "\(path).key"
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
        if let programs = raw.programs { file.programs = programs }
        if let idle = raw.idle { file.idle = try Setting.idle(idle) }
        if let level = raw.log_level { file.logLevel = try Setting.logLevel(level) }
        if let s = raw.session {
            if let w = s.window {
                guard w > 0 && w <= 4096 else { throw .invalid("session.window must be 1...4096, got \(w)") }
                file.session.window = w
            }
            if let us = s.retransmit_timeout_us {
                guard us > 0 else { throw .invalid("session.retransmit_timeout_us must be positive") }
                file.session.retransmitTimeout = .microseconds(us)
            }
            if let ms = s.heartbeat_ms {
                guard ms > 0 else { throw .invalid("session.heartbeat_ms must be positive") }
                file.session.heartbeatInterval = .milliseconds(ms)
            }
            if let ms = s.failure_timeout_ms {
                guard ms > 0 else { throw .invalid("session.failure_timeout_ms must be positive") }
                file.session.failureTimeout = .milliseconds(ms)
            }
            guard file.session.failureTimeout > file.session.heartbeatInterval * 2 else {
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
                delay: .microseconds(f.delay_us ?? 0), seed: f.seed ?? 1)
        }
        if let security = raw.security {
            if let frames = security.frames {
                guard let p = FrameProtection(rawValue: frames) else {
                    throw .invalid("security.frames must be authenticated, encrypted or plain, got \(frames)")
                }
                file.frames = p
            }
            if let key = security.key_file {
                guard !key.isEmpty else { throw .invalid("security.key_file must name a file") }
                file.keyFile = key
            }
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
        file.controlSocketMode = n.controlSocketMode
        file.metricsListen = n.metricsListen
        file.programs = programs
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
