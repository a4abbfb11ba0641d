// The cluster file as written, before `ClusterFile.parse` checks it.

struct RawClusterFile: Decodable {
    var name: String?
    var idle: String?
    var log_level: String?
    var session: RawSession?
    var faults: RawFaults?
    var nodes: [RawNode]?
    var veth: [[UInt16]]?
    var programs: [String]?
    var security: RawSecurity?

    struct RawSecurity: Decodable {
        var frames: String?
        var key_file: String?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["frames", "key_file"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            frames = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "frames"))
            key_file = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "key_file"))
        }
    }

    struct RawSession: Decodable {
        var window: Int?
        var retransmit_timeout_us: Int?
        var heartbeat_ms: Int?
        var failure_timeout_ms: Int?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(
                decoder, known: ["window", "retransmit_timeout_us", "heartbeat_ms", "failure_timeout_ms"])
            let c = try decoder.container(keyedBy: AnyKey.self)
            window = try c.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "window"))
            retransmit_timeout_us = try c.decodeIfPresent(
                Int.self, forKey: AnyKey(stringValue: "retransmit_timeout_us"))
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
        var control_socket_mode: String?
        var mac: String?
        var netns: String?
        var iface: String?
        var dpdk: RawDPDK?
        var metrics: RawMetrics?
        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(
                decoder,
                known: [
                    "id", "transport", "address", "port", "cores", "pin", "arena_mib", "control_socket",
                    "control_socket_mode", "mac",
                    "netns", "iface", "dpdk", "metrics",
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
            control_socket_mode = try c.decodeIfPresent(
                String.self, forKey: AnyKey(stringValue: "control_socket_mode"))
            mac = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "mac"))
            netns = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "netns"))
            iface = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "iface"))
            dpdk = try c.decodeIfPresent(RawDPDK.self, forKey: AnyKey(stringValue: "dpdk"))
            metrics = try c.decodeIfPresent(RawMetrics.self, forKey: AnyKey(stringValue: "metrics"))
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
        try rejectUnknownKeys(
            decoder,
            known: ["name", "idle", "log_level", "session", "faults", "veth", "nodes", "programs", "security"])
        let c = try decoder.container(keyedBy: AnyKey.self)
        name = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "name"))
        idle = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "idle"))
        log_level = try c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "log_level"))
        session = try c.decodeIfPresent(RawSession.self, forKey: AnyKey(stringValue: "session"))
        faults = try c.decodeIfPresent(RawFaults.self, forKey: AnyKey(stringValue: "faults"))
        nodes = try c.decodeIfPresent([RawNode].self, forKey: AnyKey(stringValue: "nodes"))
        veth = try c.decodeIfPresent([[UInt16]].self, forKey: AnyKey(stringValue: "veth"))
        programs = try c.decodeIfPresent([String].self, forKey: AnyKey(stringValue: "programs"))
        security = try c.decodeIfPresent(RawSecurity.self, forKey: AnyKey(stringValue: "security"))
    }
}
