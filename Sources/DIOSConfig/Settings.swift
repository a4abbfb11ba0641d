public import DIOSCore
public import DIOSWire
public import Logging

/// The settings a node file, a cluster file and the command lines all take,
/// each parsed here once: the same words mean the same thing everywhere, and
/// a bad value is refused with the same reason.
public enum Setting {
    /// A control socket's permission bits, written in octal ("0660"): owner
    /// and group bits only, the owner's read and write among them.
    public static func socketMode(_ text: String, key: String = "control_socket_mode") throws(ConfigError) -> UInt16 {
        guard let mode = UInt16(text, radix: 8), mode <= 0o777 else {
            throw .invalid("\(key) must be octal permission bits like \"0600\", got \(text)")
        }
        guard mode & 0o007 == 0 else {
            throw .invalid(
                "\(key) \(text) lets every user connect, and a connection can run programs: use 0600 or 0660")
        }
        guard mode & 0o600 == 0o600 else { throw .invalid("\(key) \(text) must let its owner read and write") }
        return mode
    }

    /// Where a TCP server listens, `"127.0.0.1:9464"`: a dotted IPv4 address
    /// and a port (0: any free one).
    public static func listenAddress(_ text: String, key: String) throws(ConfigError) -> PeerAddress {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]), let address = PeerAddress(parts[0], port: port) else {
            throw .invalid("\(key) must be a dotted IPv4 address and a port like \"127.0.0.1:9464\", got \(text)")
        }
        return address
    }

    /// A list of distinct CPU numbers, as YAML gives it. `key` names the
    /// setting in what a refusal says (`cores`, `node 1: cores`, `--cores`).
    public static func cores(_ list: [Int], key: String = "cores") throws(ConfigError) -> [Int] {
        guard !list.isEmpty, list.allSatisfy({ $0 >= 0 }), Set(list).count == list.count else {
            throw .invalid("\(key) must be distinct CPU numbers, got \(list)")
        }
        return list
    }

    /// A list of distinct CPU numbers as a command line gives it: `0,1`.
    public static func cores(_ text: String, key: String = "--cores") throws(ConfigError) -> [Int] {
        var list: [Int] = []
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let cpu = Int(field.trimmingPrefix(" ")) else {
                throw .invalid("\(key) must list distinct CPU numbers, e.g. 0,1; got \(text)")
            }
            list.append(cpu)
        }
        return try cores(list, key: key)
    }

    /// An idle policy by name, `busy` or `adaptive`, the adaptive one with the
    /// given spins, yields and longest sleep where set (defaults otherwise;
    /// the busy policy has none of these).
    public static func idle(
        _ name: String, spins: Int? = nil, yields: Int? = nil, maxSleep: Duration? = nil, key: String = "idle"
    ) throws(ConfigError) -> IdlePolicy {
        switch name {
        case "busy":
            return .busy
        case "adaptive":
            let defaults = IdlePolicy.adaptiveDefaults
            let s = spins ?? defaults.spins
            let y = yields ?? defaults.yields
            let sleep = maxSleep ?? defaults.maxSleep
            guard s >= 0, y >= 0, sleep > .zero else {
                throw .invalid("idle spins/yields must be >= 0 and max_sleep_us > 0")
            }
            return .adaptive(spins: s, yields: y, maxSleep: sleep)
        default:
            throw .invalid("\(key) must be busy or adaptive, got \(name)")
        }
    }

    /// A log level by swift-log's name: trace, debug, info, notice, warning,
    /// error, critical.
    public static func logLevel(_ name: String, key: String = "log_level") throws(ConfigError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: name) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalid("unknown \(key) \(name) (one of \(names))")
        }
        return level
    }
}
