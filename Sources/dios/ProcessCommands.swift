import ArgumentParser
import DIOS
import DIOSBench
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Programs as processes from the command line: run one anywhere in the
// cluster, list, follow and kill task processes, register programs.

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an executable (or a registered program's name) as a DIOS task process; print its output "
            + "and exit with its status.",
        discussion: """
            The program is registered with the node (named by the SHA-256 of its bytes) and started by `run` on the \
            instance given, as a child of that node's diosd, with its references and channel. Its standard output \
            and error are shown as it runs (for a task on this node). Example:
              dios run ./hello --on 0.1 -- world
            Its environment is the node's for task processes (a PATH) plus what --env and --pass-env add.
            """)
    @Argument(help: "The executable's path, or a program name from `dios program list`.") var program: String
    @Option(help: "The instance to run on, NODE.CORE (default: this node's first).") var on: String?
    @Flag(help: "Start it untrusted: confined to its channel, no lookup or run.") var untrusted = false
    @Option(
        name: .customLong("env"),
        help: "An environment entry KEY=VALUE for the program, added to its node's (repeatable).")
    var environment: [String] = []
    @Option(
        name: .customLong("pass-env"),
        help: "A variable of this shell's environment to pass on, by name (repeatable).")
    var passed: [String] = []
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
    @Argument(parsing: .postTerminator, help: "Arguments for the program, after --.") var arguments: [String] = []

    func run() throws {
        // A path is sent absolute (the node resolves it); anything else is a program's name.
        let target =
            FileManager.default.fileExists(atPath: program)
            ? URL(fileURLWithPath: program).standardizedFileURL.path : program
        let shell = ProcessInfo.processInfo.environment
        var entries = environment
        for name in passed {
            guard let value = shell[name] else { throw ValidationError("--pass-env \(name): not set here") }
            entries.append("\(name)=\(value)")
        }
        if let why = Invocation(commandLine: arguments, environment: entries).refusal { throw ValidationError(why) }
        var fields: [String: Any] = [
            "program": target, "args": arguments, "env": entries, "untrusted": untrusted,
        ]
        if let on { fields["on"] = on }
        let body = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        let fd = try ControlClient.connect("run " + String(decoding: body, as: UTF8.self), socket: socket)
        defer { close(fd) }
        var reader = FrameReader(fd: fd)
        while let header = reader.line() {
            if header.hasPrefix("O "), let n = Int(header.dropFirst(2)) {
                let bytes = reader.bytes(n)
                var done = 0
                while done < bytes.count {  // straight to descriptor 1: the output is unbuffered
                    let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    done += n
                }
            } else if header.hasPrefix("S "), let status = Int32(header.dropFirst(2)) {
                throw ExitCode(status)
            } else if header.hasPrefix("E ") {
                throw CommandFailure(String(header.dropFirst(2)))
            } else {
                throw CommandFailure("unexpected reply from the node: \(header)")
            }
        }
        throw CommandFailure("the node closed the connection before the task ended")
    }
}

/// Reads the run reply's frames: header lines and the bytes they announce.
struct FrameReader {
    let fd: Int32
    private var buffered: [UInt8] = []
    private var closed = false

    init(fd: Int32) { self.fd = fd }

    private mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else {
            closed = true
            return false
        }
        buffered += chunk[0..<n]
        return true
    }

    mutating func line() -> String? {
        while true {
            if let end = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: buffered[..<end], as: UTF8.self)
                buffered.removeSubrange(...end)
                return text
            }
            if closed || !fill() { return nil }
        }
    }

    mutating func bytes(_ n: Int) -> [UInt8] {
        while buffered.count < n && !closed && fill() {}
        let take = min(n, buffered.count)
        defer { buffered.removeSubrange(..<take) }
        return Array(buffered[..<take])
    }
}

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The node's task processes: program, pid, trusted, state, references, calls.")
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
    @Flag(help: "Print the node's JSON lines as they come.") var json = false

    func run() throws {
        let reply = try ControlClient.request("ps", socket: socket)
        if json {
            print(reply, terminator: "")
            return
        }
        print(
            pad("task", 46) + pad("instance", 9) + pad("pid", 8, right: true) + pad("trusted", 9, right: true)
                + pad("state", 12, right: true) + pad("refs", 6, right: true) + pad("calls", 9, right: true)
                + "  program")
        for line in reply.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                continue
            }
            func field(_ key: String) -> String { object[key].map { "\($0)" } ?? "-" }
            var state = field("state")
            if let status = object["status"] { state += " \(status)" }
            print(
                pad(field("task"), 46) + pad(field("instance"), 9) + pad(field("pid"), 8, right: true)
                    + pad((object["trusted"] as? Bool) == true ? "yes" : "no", 9, right: true)
                    + pad(state, 12, right: true) + pad(field("references"), 6, right: true)
                    + pad(field("calls"), 9, right: true) + "  " + field("program"))
        }
    }
}

struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "Kill a task process (SIGKILL); its caller sees status 137.")
    @Argument(help: "The task, as `dios ps` names it.") var task: String
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"

    func run() throws {
        let reply = try ControlClient.request("kill \(task)", socket: socket)
        print(reply, terminator: "")
        if reply.contains("\"error\"") { throw ExitCode.failure }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A task process's output so far.")
    @Argument(help: "The task, as `dios ps` names it.") var task: String
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"

    func run() throws {
        print(try ControlClient.request("logs \(task)", socket: socket), terminator: "")
    }
}

struct ProgramCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "program", abstract: "Register executables as program objects, or list them.",
        subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an executable with a running node; prints its name (the SHA-256 of its bytes).")
        @Argument(help: "The executable.") var path: String
        @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
        func run() throws {
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            let reply = try ControlClient.request("program add \(absolute)", socket: socket)
            print(reply, terminator: "")
            if reply.contains("\"error\"") { throw ExitCode.failure }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The programs a running node has registered.")
        @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
        func run() throws { print(try ControlClient.request("program list", socket: socket), terminator: "") }
    }
}
