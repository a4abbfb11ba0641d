public import DIOS
public import Foundation

/// Traces as files a standard viewer opens, and the questions `dios flow`
/// answers from them.
///
/// The format is the Chrome trace event format (JSON object form), which
/// Perfetto's UI (ui.perfetto.dev), `chrome://tracing` and Speedscope load:
/// a process per node (`pid`), a thread per instance (`tid`), and per
/// transaction one complete event (`ph: "X"`) from its begin call to its end
/// call, named `read` or `write`, its task, object, bytes and result in
/// `args`. A begin without an end (refused, or still open at the dump) is an
/// instant event (`ph: "i"`). The k-th message written on a stream and the
/// k-th read from it, on whichever instances and nodes, are joined by a flow
/// (`ph: "s"` / `"f"`), so the viewer draws an arrow from writer to reader.
public enum TraceFile {
    /// One transaction, or a lone call.
    public struct Span: Equatable, Sendable, Codable {
        public var node: Int
        public var instance: Int
        public var task: String
        public var label: String
        public var object: String
        /// `read` or `write`, or a lone call's name (`beginRead`, ...).
        public var call: String
        public var start: UInt64
        public var end: UInt64?
        public var bytes: UInt32
        public var result: String
    }

    /// The spans of a dump: begin and end calls paired per instance
    /// and object (a stream or a blob has one writer at a time and a stream
    /// one reader, so those pairs are exact; overlapping reads of one blob on
    /// one instance pair innermost first).
    public static func spans(_ traces: [InstanceTrace]) -> [Span] {
        var spans: [Span] = []
        for trace in traces {
            let node = Int(trace.instance.node)
            var open: [String: [Int]] = [:]  // "r|object" / "w|object" → indices into spans
            for event in trace.events {
                let object = event.object.description
                let task = event.task.map { "\($0.index).\($0.generation)" } ?? ""
                switch event.call {
                case .beginRead, .beginWrite:
                    let side = event.call == .beginRead ? "r|" : "w|"
                    spans.append(
                        Span(
                            node: node, instance: Int(trace.instance.core), task: task,
                            label: event.task.flatMap { trace.labels[$0] } ?? "", object: object,
                            call: event.result == .refused ? event.call.rawValue : (side == "r|" ? "read" : "write"),
                            start: event.time, end: nil, bytes: event.bytes, result: event.result.label))
                    if event.result != .refused { open[side + object, default: []].append(spans.count - 1) }
                case .endRead, .endWrite:
                    let side = event.call == .endRead ? "r|" : "w|"
                    if let i = open[side + object]?.popLast() {
                        spans[i].end = event.time
                        spans[i].result = event.result.label
                        if side == "w|" { spans[i].bytes = event.bytes }
                    } else {
                        spans.append(
                            Span(
                                node: node, instance: Int(trace.instance.core), task: "", label: "", object: object,
                                call: event.call.rawValue, start: event.time, end: nil, bytes: event.bytes,
                                result: event.result.label))
                    }
                default:
                    break
                }
            }
        }
        return spans
    }

    /// The trace events of `spans` (from one node or several), with the
    /// names of nodes and instances, as the `traceEvents` array's members.
    public static func events(_ spans: [Span]) -> [[String: Any]] {
        var out: [[String: Any]] = []
        var named = Set<String>()
        for s in spans where named.insert("\(s.node).\(s.instance)").inserted {
            if !named.contains("\(s.node)") {
                named.insert("\(s.node)")
                out.append(["ph": "M", "name": "process_name", "pid": s.node, "args": ["name": "node \(s.node)"]])
            }
            out.append([
                "ph": "M", "name": "thread_name", "pid": s.node, "tid": s.instance,
                "args": ["name": "instance \(s.node).\(s.instance)"],
            ])
        }
        for s in spans {
            var event: [String: Any] = [
                "name": s.call, "cat": "dios", "pid": s.node, "tid": s.instance, "ts": Double(s.start) / 1000,
                "args": [
                    "task": s.task, "label": s.label, "object": s.object, "bytes": Int(s.bytes), "result": s.result,
                ],
            ]
            if let end = s.end {
                event["ph"] = "X"
                event["dur"] = Double(end - min(end, s.start)) / 1000
            } else {
                event["ph"] = "i"
                event["s"] = "t"
            }
            out.append(event)
        }
        // Flows: the k-th write of an object to the k-th read of it, in time order.
        var writes: [String: [Span]] = [:]
        var reads: [String: [Span]] = [:]
        for s in spans.sorted(by: { $0.start < $1.start }) where s.result == "ok" && s.end != nil {
            if s.call == "write" { writes[s.object, default: []].append(s) }
            if s.call == "read" { reads[s.object, default: []].append(s) }
        }
        var id = 0
        for (object, written) in writes.sorted(by: { $0.key < $1.key }) {
            guard let read = reads[object] else { continue }
            for (w, r) in zip(written, read) where w.node != r.node || w.instance != r.instance || w.task != r.task {
                id += 1
                out.append([
                    "ph": "s", "name": "message", "cat": "flow", "id": id, "pid": w.node, "tid": w.instance,
                    "ts": Double(w.end ?? w.start) / 1000,
                ])
                out.append([
                    "ph": "f", "bp": "e", "name": "message", "cat": "flow", "id": id, "pid": r.node,
                    "tid": r.instance, "ts": Double(r.start) / 1000,
                ])
            }
        }
        return out
    }

    /// A whole trace file of `events`.
    public static func file(_ events: [[String: Any]]) throws -> Data {
        try JSONSerialization.data(
            withJSONObject: ["traceEvents": events, "displayTimeUnit": "ns"], options: [.sortedKeys])
    }

    /// Who touched an object, as a trace file tells it.
    public struct Flow: Equatable, Sendable {
        public struct Access: Equatable, Sendable {
            public var node: Int
            public var instance: Int
            public var task: String
            public var label: String
            public var reads: Int
            public var writes: Int
            public var bytesRead: Int
            public var bytesWritten: Int
            /// For a writer: the objects it had read before its first write
            /// of this one (what it may have written it from).
            public var readBefore: [String]
        }
        public var object: String
        public var accesses: [Access]
    }

    /// Which tasks, on which instances, read or wrote `object` (its name, or
    /// a prefix of it that names one object in the file), and what each
    /// writer had read before writing it.
    public static func flow(of object: String, in file: Data) throws(TraceFileError) -> Flow {
        guard let root = try? JSONSerialization.jsonObject(with: file) as? [String: Any],
            let events = root["traceEvents"] as? [[String: Any]]
        else { throw .notATrace }
        struct Seen {
            var node: Int, instance: Int, task: String, label: String, object: String, call: String, ts: Double
            var bytes: Int, ok: Bool
        }
        let seen: [Seen] = events.compactMap { e in
            guard let ph = e["ph"] as? String, ph == "X" || ph == "i", let args = e["args"] as? [String: Any],
                let name = e["name"] as? String, let object = args["object"] as? String
            else { return nil }
            return Seen(
                node: e["pid"] as? Int ?? 0, instance: e["tid"] as? Int ?? 0, task: args["task"] as? String ?? "",
                label: args["label"] as? String ?? "", object: object, call: name, ts: e["ts"] as? Double ?? 0,
                bytes: args["bytes"] as? Int ?? 0, ok: (args["result"] as? String) == "ok")
        }.sorted { $0.ts < $1.ts }
        let objects = Set(seen.map(\.object)).filter { $0.hasPrefix(object) }
        guard objects.count == 1, let target = objects.first else {
            throw objects.isEmpty ? .noSuchObject(object) : .ambiguous(object, objects.count)
        }
        var accesses: [String: Flow.Access] = [:]
        var order: [String] = []
        for s in seen where s.object == target && s.ok && (s.call == "read" || s.call == "write") {
            let key = "\(s.node).\(s.instance).\(s.task)"
            if accesses[key] == nil {
                order.append(key)
                accesses[key] = Flow.Access(
                    node: s.node, instance: s.instance, task: s.task, label: s.label, reads: 0, writes: 0,
                    bytesRead: 0, bytesWritten: 0, readBefore: [])
            }
            if s.call == "read" {
                accesses[key]!.reads += 1
                accesses[key]!.bytesRead += s.bytes
            } else {
                if accesses[key]!.writes == 0 {
                    var before: [String] = []
                    for r in seen
                    where r.ts < s.ts && r.ok && r.call == "read" && r.object != target && r.node == s.node
                        && r.instance == s.instance && r.task == s.task && !before.contains(r.object)
                    {
                        before.append(r.object)
                    }
                    accesses[key]!.readBefore = before
                }
                accesses[key]!.writes += 1
                accesses[key]!.bytesWritten += s.bytes
            }
        }
        return Flow(object: target, accesses: order.map { accesses[$0]! })
    }
}

/// Why a trace file could not answer.
public enum TraceFileError: Error, Equatable, CustomStringConvertible {
    case notATrace
    case noSuchObject(String)
    case ambiguous(String, Int)

    public var description: String {
        switch self {
        case .notATrace: "not a trace file (a JSON object with traceEvents, as dios trace dump writes)"
        case .noSuchObject(let o): "no object named \(o) in the trace"
        case .ambiguous(let o, let n): "\(o) names \(n) objects in the trace; give more of the name"
        }
    }
}
