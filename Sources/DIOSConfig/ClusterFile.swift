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
/// name: local
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
/// nodes:
///   - id: 0
///     transport: udp            # udp (kernel sockets) | dpdk
///     address: 127.0.0.1
///     port: 7400                # instance k listens on port + k
///     cores: [0]
///     arena_mib: 64
///     control_socket: /tmp/dios-local-node0.sock
/// ```
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

        /// Where instance `k` of this node listens.
        public func address(ofInstance k: Int) -> PeerAddress {
            PeerAddress(ipv4: address.ipv4, port: address.port &+ UInt16(k))
        }
    }

    public var name = "dios"
    public var idle: IdlePolicy = .adaptive
    public var logLevel: Logger.Level = .notice
    public var session = SessionConfiguration()
    public var faults = FaultConfiguration()
    public var nodes: [NodeEntry] = []

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
        for n in nodes {
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
            file.nodes.append(entry)
        }
        guard Set(file.nodes.map(\.id)).count == file.nodes.count else { throw .invalid("node ids must be distinct") }
        var listening: Set<PeerAddress> = []
        for n in file.nodes {
            for k in n.cores.indices {
                guard listening.insert(n.address(ofInstance: k)).inserted else {
                    throw .invalid("node \(n.id) instance \(k) listens where another does: \(n.address(ofInstance: k))")
                }
            }
        }
        return file
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
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(
                decoder, known: ["id", "transport", "address", "port", "cores", "pin", "arena_mib", "control_socket"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            id = try c.decode(UInt16.self, forKey: AnyKey(stringValue: "id"))
            transport = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "transport"))
            address = try c.decode(String.self, forKey: AnyKey(stringValue: "address"))
            port = try c.decode(UInt16.self, forKey: AnyKey(stringValue: "port"))
            cores = try c.decodeIfPresent([Int].self, forKey: AnyKey(stringValue: "cores"))
            pin = try c.decodeIfPresent(Bool.self, forKey: AnyKey(stringValue: "pin"))
            arena_mib = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "arena_mib"))
            control_socket = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "control_socket"))
        }
    }

    init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["name", "idle", "log_level", "session", "faults", "nodes"])
        let c = try decoder.container(keyedBy: AnyKey.self)
        name = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "name"))
        idle = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "idle"))
        log_level = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "log_level"))
        session = try c.decodeIfPresent(RawSession.self, forKey: AnyKey(stringValue: "session"))
        faults = try c.decodeIfPresent(RawFaults.self, forKey: AnyKey(stringValue: "faults"))
        nodes = try c.decodeIfPresent([RawNode].self, forKey: AnyKey(stringValue: "nodes"))
    }
}
