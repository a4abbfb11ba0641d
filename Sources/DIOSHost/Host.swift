public import DIOSConfig
import Foundation

/// What DIOS asks of the machine it runs on, in one place: running a command
/// (iproute2's `ip` above all) and watching a process. The cluster command, the
/// benchmarks that build veth pairs and the multi-process tests use these; the
/// plans they carry out (which namespaces, which `ip` commands) are plain values
/// in DIOSConfig.
public enum Host {
    /// The `ip` command (iproute2), if installed.
    public static let ipCommand: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Runs a command to completion: its exit status and its output (standard
    /// output and error together); status -1 when it cannot start. In
    /// `environment` when given, else in this process's.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    ) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Whether process `pid` runs: it exists and is not a zombie. A killed
    /// node is a zombie until reaped, and its reaper is not `dios` (which
    /// exits after `cluster up`) but whoever takes orphans, which may be slow to.
    public static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // /proc/PID/stat: "PID (COMMAND) STATE ...", where COMMAND may hold anything.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(after: end)...].drop { $0 == " " }.first != "Z"
    }

    /// Runs `ip` (iproute2) with `arguments`; status -1 when it is not installed.
    @discardableResult
    public static func ip(_ arguments: [String]) -> (status: Int32, output: String) {
        guard let ipCommand else { return (-1, "no ip command (install iproute2)") }
        return run(ipCommand, arguments)
    }
}

extension ClusterFile {
    /// How to start node `id` of the cluster file at `path`: `diosd` itself, or
    /// through `ip netns exec NS` (which execs it: the process id is diosd's).
    public func launch(
        node id: UInt16, diosd: String, path: String, extra: [String] = [], ip: String? = Host.ipCommand
    ) throws(ConfigError) -> (executable: String, arguments: [String]) {
        guard let n = node(id) else { throw .invalid("no node \(id) in cluster \(name)") }
        let arguments = ["--cluster", path, "--node", "\(id)"] + extra
        guard let ns = n.netns else { return (diosd, arguments) }
        guard let ip else {
            throw .invalid("node \(id) runs in netns \(ns), but there is no ip command (install iproute2)")
        }
        return (ip, ["netns", "exec", ns, diosd] + arguments)
    }
}
