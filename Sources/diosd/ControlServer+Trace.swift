import DIOS
import DIOSMetrics
import Dispatch
import Foundation

// The control socket's trace requests: `trace start [EVENTS]`, `trace stop`,
// `trace dump`. Each instance records its calls on references in a ring of
// its own (`TraceRing`); a dump drains the rings and answers this node's
// spans, which `dios trace dump` merges across nodes into one trace file.
extension ControlServer {
    /// The reply to a trace request, or nil when `request` is not one.
    func traceRequest(_ request: String) -> String? {
        let words = request.split(separator: " ").map(String.init)
        guard words.first == "trace", words.count >= 2 else { return nil }
        let node = self.node
        switch (words[1], words.count) {
        case ("start", 2), ("start", 3):
            let capacity = words.count == 3 ? Int(words[2]) : 1 << 16
            guard let capacity, capacity >= 1, capacity <= 1 << 24 else {
                return Self.json(["error": "trace start EVENTS: a count of events per instance, 1 to 16777216"])
            }
            Self.wait { await node.startTracing(capacity: capacity) }
            return Self.json(["tracing": true, "events_per_instance": capacity])
        case ("stop", 2):
            Self.wait { await node.stopTracing() }
            return Self.json(["tracing": false])
        case ("dump", 2):
            let box = TraceBox()
            Self.wait { box.traces = await node.drainTrace() }
            let spans = TraceFile.spans(box.traces)
            let lost = box.traces.reduce(0) { $0 + $1.lost }
            guard let data = try? JSONEncoder().encode(spans) else { return Self.json(["error": "encoding spans"]) }
            return "{\"lost\":\(lost),\"spans\":" + String(decoding: data, as: UTF8.self) + "}\n"
        default:
            return Self.json(["error": "trace start [EVENTS], trace stop, or trace dump"])
        }
    }

    /// Runs `body` on the concurrency pool and waits for it (the control
    /// socket's threads are not the pool's).
    static func wait(_ body: @escaping @Sendable () async -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task {
            await body()
            done.signal()
        }
        done.wait()
    }
}

/// What a dump brought back across the semaphore.
private final class TraceBox: @unchecked Sendable {
    var traces: [InstanceTrace] = []
}
