import ArgumentParser
import DIOS
import DIOSBench
import DIOSDevices

/// dios: the DIOS command line.
@main
struct Dios: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dios",
        abstract: "The DIOS command line.",
        subcommands: [
            Status.self, Names.self, Lookup.self, NameCommand.self, Probe.self, Bench.self, ClusterCommand.self,
            RunCommand.self, Ps.self, KillCommand.self, Logs.self, ProgramCommand.self, TraceCommand.self,
            FlowCommand.self,
        ])
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-instance figures of a running node: tasks, messages, polls, idle share.")
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
    @Flag(help: "Print the node's JSON lines as they come.") var json = false

    func run() throws {
        let reply = try ControlClient.request("status", socket: socket)
        if json {
            print(reply, terminator: "")
            return
        }
        print(
            pad("instance", 10) + pad("cpu", 5, right: true) + pad("tasks", 7, right: true)
                + pad("msgs in", 12, right: true)
                + pad("msgs out", 12, right: true) + pad("polls", 14, right: true) + pad("idle", 8, right: true)
                + "  peers")
        for line in reply.split(separator: "\n") {
            let fields = ControlClient.fields(of: String(line))
            let idle = (Double(fields["idle_share"] ?? "0") ?? 0) * 100
            print(
                pad(fields["instance"] ?? "?", 10) + pad(fields["cpu"] ?? "?", 5, right: true)
                    + pad(fields["tasks"] ?? "?", 7, right: true) + pad(fields["messages_in"] ?? "?", 12, right: true)
                    + pad(fields["messages_out"] ?? "?", 12, right: true) + pad(fields["polls"] ?? "?", 14, right: true)
                    + pad(format(idle) + "%", 8, right: true) + "  " + peers(fields))
        }
    }
}

/// "up: 1.0 2.0; down: 3.0" from a status line's peer fields ("-" outside a cluster).
func peers(_ fields: [String: String]) -> String {
    let up = fields["peers_up"] ?? ""
    let down = fields["peers_down"] ?? ""
    if up.isEmpty && down.isEmpty { return "-" }
    return "up: \(up.isEmpty ? "none" : up)" + (down.isEmpty ? "" : "; down: \(down)")
        + ((fields["frames_resent"]).map { "; resent \($0)" } ?? "")
        + refused(fields)
}

/// "; refused 3 forged, 1 replayed" when the node's wire dropped frames it
/// could not believe (nothing when it dropped none).
func refused(_ fields: [String: String]) -> String {
    let counts = [
        ("forged", "frames_forged"), ("replayed", "frames_replayed"), ("from strangers", "frames_from_strangers"),
    ]
    .compactMap { label, key in fields[key].flatMap(Int.init).flatMap { $0 > 0 ? "\($0) \(label)" : nil } }
    return counts.isEmpty ? "" : "; refused " + counts.joined(separator: ", ")
}

struct Names: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What a running node's name-service replica holds: every name it knows and the instances holding it.")
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"
    @Flag(help: "Print the node's JSON lines as they come.") var json = false

    func run() throws {
        let reply = try ControlClient.request("names", socket: socket)
        if json || reply.contains("\"error\"") {
            print(reply, terminator: "")
            return
        }
        var count = 0
        for line in reply.split(separator: "\n") {
            guard let nameStart = line.range(of: #""name":""#), let listStart = line.range(of: #""instances":["#) else {
                continue
            }
            let name = line[nameStart.upperBound...].prefix { $0 != "\"" }
            let owners = line[listStart.upperBound...].prefix { $0 != "]" }.replacingOccurrences(of: "\"", with: "")
            print("\(name)  \(owners.replacingOccurrences(of: ",", with: " "))")
            count += 1
        }
        print("\(count) name(s)")
    }
}

struct Lookup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "lookup NAME on every instance of a running node: the instances each one finds.")
    @Argument(help: "The name (44 characters of base64).") var name: String
    @Option(help: "The node's control socket.") var socket = "/tmp/dios-node0.sock"

    func run() throws {
        print(try ControlClient.request("lookup \(name)", socket: socket), terminator: "")
    }
}

struct NameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "name", abstract: "Make or check object names.", subcommands: [New.self, Check.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print fresh random names.")
        @Option(name: .shortAndLong, help: "How many.") var count: Int = 1
        func run() {
            for _ in 0..<max(count, 0) { print(Name.random()) }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check that a text is a well-formed name.")
        @Argument(help: "The 44-character base64 name.") var text: String
        func run() throws {
            do {
                let name = try Name.parse(text)
                print("\(name) is a valid name\(name.isWellKnown ? " (well-known)" : "")")
            } catch {
                throw ValidationError("\(text): \(error)")
            }
        }
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what this machine offers DIOS: hugepages, DPDK, RDMA.")
    func run() {
        for probe in DeviceProbe.all() { print(probe) }
    }
}
