import ArgumentParser
import DIOS
import DIOSMetrics
import Foundation

// Information flow from the command line: start and stop recording calls on
// references on running nodes, dump what they recorded as one trace file
// (Chrome trace JSON, which Perfetto's UI opens), and ask a trace file who
// read and wrote an object.

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Record the calls tasks make on references, on running nodes, and dump them as a trace file.",
        discussion: """
            dios trace start --socket /tmp/dios-local-node0.sock --socket /tmp/dios-local-node1.sock
            ... run something ...
            dios trace dump --socket ... --socket ... --out trace.json   (open it in ui.perfetto.dev)
            dios trace stop --socket ... --socket ...
            Tracing is off until started; each instance keeps the last EVENTS calls (a dump says how many it lost).
            """,
        subcommands: [Start.self, Stop.self, Dump.self])

    struct Nodes: ParsableArguments {
        @Option(help: "A node's control socket (repeatable: every node of the trace).")
        var socket: [String] = ["/tmp/dios-node0.sock"]
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start recording on every instance of the nodes.")
        @OptionGroup var nodes: Nodes
        @Option(help: "Events kept per instance (the oldest are overwritten).") var events = 1 << 16
        func run() throws {
            for s in nodes.socket {
                print(try ControlClient.request("trace start \(events)", socket: s), terminator: "")
            }
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop recording (what was recorded stays).")
        @OptionGroup var nodes: Nodes
        func run() throws {
            for s in nodes.socket { print(try ControlClient.request("trace stop", socket: s), terminator: "") }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write what the nodes recorded since the last dump as one trace file, and empty their rings.")
        @OptionGroup var nodes: Nodes
        @Option(help: "The trace file to write (Chrome trace JSON).") var out = "dios-trace.json"
        func run() throws {
            var spans: [TraceFile.Span] = []
            var lost = 0
            for s in nodes.socket {
                let reply = try ControlClient.request("trace dump", socket: s)
                struct Reply: Decodable {
                    var lost: Int
                    var spans: [TraceFile.Span]
                }
                guard let decoded = try? JSONDecoder().decode(Reply.self, from: Data(reply.utf8)) else {
                    throw ValidationError("\(s): \(reply.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                spans += decoded.spans
                lost += decoded.lost
            }
            try TraceFile.file(TraceFile.events(spans)).write(to: URL(fileURLWithPath: out))
            print("\(out): \(spans.count) spans from \(nodes.socket.count) node(s); \(lost) events lost to full rings")
        }
    }
}

struct FlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flow",
        abstract: "Which tasks, on which instances, read or wrote an object, and what its writers had read before.")
    @Argument(help: "The object's name (or the start of it), as the trace shows it.") var object: String
    @Option(help: "A trace file from dios trace dump.") var trace = "dios-trace.json"

    func run() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: trace))
        let flow: TraceFile.Flow
        do throws(TraceFileError) { flow = try TraceFile.flow(of: object, in: data) } catch {
            throw ValidationError("\(trace): \(error)")
        }
        print("object \(flow.object)")
        for a in flow.accesses {
            let who = "task \(a.task)\(a.label.isEmpty ? "" : " (\(a.label))") on instance \(a.node).\(a.instance)"
            var did: [String] = []
            if a.writes > 0 { did.append("wrote \(a.writes)× (\(a.bytesWritten) B)") }
            if a.reads > 0 { did.append("read \(a.reads)× (\(a.bytesRead) B)") }
            print("  \(who): \(did.joined(separator: ", "))")
            if a.writes > 0 {
                print(
                    a.readBefore.isEmpty
                        ? "    had read nothing else before writing it"
                        : "    had read before writing it: \(a.readBefore.joined(separator: ", "))")
            }
        }
    }
}
