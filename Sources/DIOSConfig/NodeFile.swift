public import DIOSCore
public import DIOSWire
import Foundation
public import Logging
import Yams

/// A node's configuration file (YAML), as `diosd --config FILE` reads it:
///
/// ```yaml
/// node: 0
/// cores: [0, 1]          # one kernel instance per core
/// pin: true
/// arena_mib: 128
/// idle:
///   policy: adaptive     # busy | adaptive
///   spins: 2000
///   yields: 200
///   max_sleep_us: 50000
/// log_level: notice
/// control_socket: /tmp/dios-node0.sock
/// control_socket_mode: "0600"      # who may connect: owner and group bits only
/// programs: [/usr/local/bin/kvd]   # executables registered at boot (`dios run`)
/// task_logs: /tmp/dios-tasks       # task processes' output, a file per task
/// metrics:
///   listen: "127.0.0.1:9464"       # Prometheus text at /metrics; no endpoint without it
/// ```
///
/// Every key is optional; unknown keys are refused, so a typo is not silently ignored.
public struct NodeFile: Sendable, Equatable {
    public var node: UInt16 = 0
    public var cores: [Int] = []
    public var pin = true
    public var arenaMiB = 64
    public var idle: IdlePolicy = .adaptive
    public var logLevel: Logger.Level = .notice
    public var controlSocket: String? = nil
    /// The control socket's permission bits: its owner (the node's user) only,
    /// by default; never others (a connection can run programs).
    public var controlSocketMode: UInt16 = 0o600
    /// Executables registered as program objects when the node starts.
    public var programs: [String] = []
    /// Where task processes' output goes.
    public var taskLogs = "/tmp/dios-tasks"
    /// Where the node serves its metrics (Prometheus text, `GET /metrics`); nil: nowhere.
    public var metricsListen: PeerAddress? = nil

    public init() {}

    /// Parses the YAML text of a node file.
    public static func parse(_ text: String) throws(ConfigError) -> NodeFile {
        let raw: RawNodeFile
        do {
            raw = try YAMLDecoder().decode(RawNodeFile.self, from: text)
        } catch let error as DecodingError {
            throw .invalid(describe(error))
        } catch {
            throw .invalid("\(error)")
        }
        var file = NodeFile()
        if let node = raw.node { file.node = node }
        if let cores = raw.cores { file.cores = try Setting.cores(cores) }
        if let pin = raw.pin { file.pin = pin }
        if let arena = raw.arena_mib {
            guard arena > 0 else { throw .invalid("arena_mib must be positive, got \(arena)") }
            file.arenaMiB = arena
        }
        if let idle = raw.idle {
            file.idle = try Setting.idle(
                idle.policy ?? "adaptive", spins: idle.spins, yields: idle.yields,
                maxSleep: idle.max_sleep_us.map { .microseconds($0) }, key: "idle.policy")
        }
        if let level = raw.log_level { file.logLevel = try Setting.logLevel(level) }
        file.controlSocket = raw.control_socket
        if let mode = raw.control_socket_mode { file.controlSocketMode = try Setting.socketMode(mode) }
        if let programs = raw.programs { file.programs = programs }
        if let logs = raw.task_logs { file.taskLogs = logs }
        if let metrics = raw.metrics {
            file.metricsListen = try Setting.listenAddress(metrics.listen, key: "metrics.listen")
        }
        return file
    }

    /// Reads and parses a node file.
    public static func load(path: String) throws(ConfigError) -> NodeFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path) }
        return try parse(text)
    }

    /// What went wrong in a file's terms: where (`idle.policy`, `nodes[1].cores[0]`)
    /// and what was wanted there, not the decoder's type names.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, let c):
            return "\(path(c.codingPath)): expected \(expected(type))"
        case .valueNotFound(let type, let c):
            return "\(path(c.codingPath)): no value; expected \(expected(type))"
        case .dataCorrupted(let c):
            var why = c.debugDescription
            if let underlying = c.underlyingError {  // the parser's own words, with the line
                if why.hasSuffix(".") { why.removeLast() }
                why += ": \(underlying)"
            }
            return c.codingPath.isEmpty ? why : "\(path(c.codingPath)): \(why)"
        case .keyNotFound(let key, let c):
            return c.codingPath.isEmpty
                ? "missing key \(key.stringValue)" : "\(path(c.codingPath)): missing key \(key.stringValue)"
        @unknown default:
            return "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text.isEmpty ? "the file" : text
    }

    /// A decoded type as a kind of YAML value.
    static func expected(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is any FixedWidthInteger.Type:
            let t = type as! any FixedWidthInteger.Type
            return "an integer from \(t.min) to \(t.max)"
        case is any BinaryFloatingPoint.Type: return "a number"
        default:
            // Yams names its node kinds: Node.Mapping, Node.Sequence, Node.Scalar.
            let name = String(describing: type)
            if name.hasSuffix("Mapping") || name.hasPrefix("Dictionary") { return "a mapping (key: value lines)" }
            if name.hasSuffix("Sequence") || name.hasPrefix("Array") { return "a list" }
            if name.hasSuffix("Scalar") { return "a single value, not a list or mapping" }
            return "a \(name)"
        }
    }
}

/// Why a configuration file was refused.
public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read \(path)"
        case .invalid(let why): "invalid configuration: \(why)"
        }
    }
}

/// The file as written: snake_case keys, all optional, nothing else allowed.
private struct RawNodeFile: Decodable {
    var node: UInt16?
    var cores: [Int]?
    var pin: Bool?
    var arena_mib: Int?
    var idle: RawIdle?
    var log_level: String?
    var control_socket: String?
    var control_socket_mode: String?
    var programs: [String]?
    var task_logs: String?
    var metrics: RawMetrics?

    struct RawIdle: Decodable {
        var policy: String?
        var spins: Int?
        var yields: Int?
        var max_sleep_us: Int?

        init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["policy", "spins", "yields", "max_sleep_us"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            policy = try c.decodeIfPresent(String.self, forKey: .policy)
            spins = try c.decodeIfPresent(Int.self, forKey: .spins)
            yields = try c.decodeIfPresent(Int.self, forKey: .yields)
            max_sleep_us = try c.decodeIfPresent(Int.self, forKey: .max_sleep_us)
        }

        enum CodingKeys: String, CodingKey { case policy, spins, yields, max_sleep_us }
    }

    init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(
            decoder,
            known: [
                "node", "cores", "pin", "arena_mib", "idle", "log_level", "control_socket", "control_socket_mode",
                "programs", "task_logs", "metrics",
            ])
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decodeIfPresent(UInt16.self, forKey: .node)
        cores = try c.decodeIfPresent([Int].self, forKey: .cores)
        pin = try c.decodeIfPresent(Bool.self, forKey: .pin)
        arena_mib = try c.decodeIfPresent(Int.self, forKey: .arena_mib)
        idle = try c.decodeIfPresent(RawIdle.self, forKey: .idle)
        log_level = try c.decodeIfPresent(String.self, forKey: .log_level)
        control_socket = try c.decodeIfPresent(String.self, forKey: .control_socket)
        control_socket_mode = try c.decodeIfPresent(String.self, forKey: .control_socket_mode)
        programs = try c.decodeIfPresent([String].self, forKey: .programs)
        task_logs = try c.decodeIfPresent(String.self, forKey: .task_logs)
        metrics = try c.decodeIfPresent(RawMetrics.self, forKey: .metrics)
    }

    enum CodingKeys: String, CodingKey {
        case node, cores, pin, arena_mib, idle, log_level, control_socket, control_socket_mode, programs, task_logs
        case metrics
    }
}

/// `metrics: {listen: "127.0.0.1:9464"}`, in a node file and in a cluster file's node entry.
struct RawMetrics: Decodable {
    var listen: String
    init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["listen"])
        let c = try decoder.container(keyedBy: AnyKey.self)
        listen = try c.decode(String.self, forKey: AnyKey(stringValue: "listen"))
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

func rejectUnknownKeys(_ decoder: any Decoder, known: Set<String>) throws {
    let all = try decoder.container(keyedBy: AnyKey.self)
    for key in all.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(
            .init(codingPath: decoder.codingPath + [key], debugDescription: "unknown key \(key.stringValue)"))
    }
}
