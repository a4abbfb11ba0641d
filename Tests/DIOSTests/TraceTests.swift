import DIOS
import DIOSMetrics
import Foundation
import Testing

/// Information flow: each instance records the calls on references while
/// tracing is on, and a trace file (Chrome trace JSON) says who read and
/// wrote what, from what.
@Suite(.serialized) struct TraceTests {
    static func node() throws -> Node {
        var configuration = NodeConfiguration()
        configuration.arenaSize = 8 << 20
        configuration.cores = [0, 1]
        configuration.pin = false
        configuration.idlePolicy = .adaptive
        return try Node(configuration)
    }

    /// A task copies a blob into a stream that another task reads: the trace
    /// names both tasks, both objects and the copy, and a bad call is
    /// recorded as refused; with tracing off nothing is recorded.
    @Test func aTraceSaysWhoWroteWhatFromWhat() async throws {
        let node = try Self.node()
        defer { node.shutdown() }
        let (source, stream) = try await node.withTask(on: 0, label: "setup") { task in
            let (source, blob) = try task.create(.blob(size: 16))
            let w = try task.beginWrite(blob, size: 16)
            try w.store(UInt64(42))
            _ = task.endWrite(w)
            let (stream, _) = try task.create(.stream(messageSize: 16, depth: 8))
            return (source, stream)
        }
        // Off: nothing recorded.
        #expect(await node.drainTrace().allSatisfy { $0.events.isEmpty })

        await node.startTracing()
        try await node.withTask(on: 0, label: "copier") { task in
            let blob = try #require(try task.lookup(source).first)
            let out = try #require(try task.lookup(stream).first)
            let r = try task.beginRead(blob)
            let value = try r.load(as: UInt64.self)
            _ = task.endRead(r)
            for i in 0..<3 {
                let w = try task.beginWrite(out, size: 8)
                try w.store(value + UInt64(i))
                _ = task.endWrite(w)
            }
            #expect(throws: CallError.self) { _ = try task.beginWrite(out, size: 1 << 20) }  // over the message size
        }
        try await node.withTask(on: 0, label: "consumer") { task in
            let input = try #require(try task.lookup(stream).first)
            for _ in 0..<3 {
                let r = try task.beginRead(input)
                _ = task.endRead(r)
            }
        }
        await node.stopTracing()
        try await node.withTask(on: 0, label: "after") { task in
            _ = try task.lookup(stream)
            let r = try task.beginRead(try #require(try task.lookup(source).first))
            _ = task.endRead(r)
        }
        let traces = await node.drainTrace()
        let events = traces[0].events
        // 1 read + 3 writes + 3 reads, a begin and an end each, and one refusal.
        #expect(events.count == 15, "\(events.map(\.call))")
        #expect(events.filter { $0.result == .refused }.map(\.call) == [.beginWrite])
        #expect(traces[0].labels.values.sorted() == ["consumer", "copier"])
        #expect(traces[1].events.isEmpty)

        let spans = TraceFile.spans(traces)
        #expect(spans.filter { $0.call == "write" && $0.object == "\(stream)" }.map(\.bytes) == [8, 8, 8])
        #expect(spans.allSatisfy { $0.call == "beginWrite" || $0.end != nil })
        let file = try TraceFile.file(TraceFile.events(spans))
        let flow = try TraceFile.flow(of: String("\(stream)".prefix(12)), in: file)
        #expect(flow.object == "\(stream)")
        let copier = try #require(flow.accesses.first { $0.label == "copier" })
        #expect(copier.writes == 3 && copier.bytesWritten == 24 && copier.reads == 0)
        #expect(copier.readBefore == ["\(source)"])
        let consumer = try #require(flow.accesses.first { $0.label == "consumer" })
        #expect(consumer.reads == 3 && consumer.writes == 0 && consumer.bytesRead == 24)
        #expect(throws: TraceFileError.noSuchObject("nothing")) { try TraceFile.flow(of: "nothing", in: file) }
        #expect(throws: TraceFileError.notATrace) { try TraceFile.flow(of: "x", in: Data("[1]".utf8)) }
    }

    /// The ring is bounded: a trace longer than it keeps the newest events
    /// and says how many it lost.
    @Test func aFullRingKeepsTheNewestAndCountsTheRest() async throws {
        let node = try Self.node()
        defer { node.shutdown() }
        await node.startTracing(capacity: 8)
        try await node.withTask(on: 1) { task in
            let (_, blob) = try task.create(.blob(size: 8))
            for i in 0..<10 {
                let w = try task.beginWrite(blob, size: 8)
                try w.store(UInt64(i))
                _ = task.endWrite(w)
            }
        }
        let trace = await node.drainTrace()[1]
        #expect(trace.events.count == 8 && trace.lost == 12)
        #expect(trace.events.map(\.call) == Array(repeating: [Call.beginWrite, .endWrite], count: 4).flatMap { $0 })
        #expect(zip(trace.events, trace.events.dropFirst()).allSatisfy { $0.time <= $1.time })
        #expect(await node.drainTrace()[1].events.isEmpty)
    }
}

/// Tracing a two-node run, as a user does: `dios trace start`, a stream from
/// a task on node 0 to a checker on node 1, `dios trace dump` of both nodes
/// into one file, and `dios flow` of the stream.
@Suite(.serialized) struct ClusterTraceTests {
    @Test func aTraceOfTwoNodesLinksTheWriterToTheRemoteReader() throws {
        let cluster = try DiosdClusterTests.Cluster(nodes: 2)
        try cluster.start(0)
        try cluster.start(1)
        try #require(cluster.waitFor(0, "control socket") && cluster.waitFor(1, "control socket"))
        let sockets = ["--socket", cluster.socket(0), "--socket", cluster.socket(1)]
        let started = try BenchOutputTests.runJSON(["trace", "start"] + sockets)
        #expect(started.status == 0 && started.objects.count == 2, "\(started.text)")
        let count = 200
        let reply = DiosdClusterTests.Cluster.request(cluster.socket(0), "stream 1.0 \(count)")
        #expect(reply.contains("\(count) messages arrived in order"), "\(reply)")

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dios-trace-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let dumped = try BenchOutputTests.runJSON(["trace", "dump", "--out", file.path] + sockets)
        #expect(dumped.status == 0, "\(dumped.text)")
        let data = try Data(contentsOf: file)

        // The Chrome trace event format, as its viewers read it: an object with
        // traceEvents, each with a phase, a process and a thread, and a time
        // (complete events a duration; flows an id).
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let events = try #require(root["traceEvents"] as? [[String: Any]])
        for e in events {
            let ph = try #require(e["ph"] as? String)
            #expect(["X", "i", "M", "s", "f"].contains(ph) && e["pid"] is Int && e["name"] is String, "\(e)")
            if ph != "M" { #expect(e["ts"] is Double && e["tid"] is Int, "\(e)") }
            if ph == "X" { #expect((e["dur"] as? Double ?? -1) >= 0, "\(e)") }
            if ph == "s" || ph == "f" { #expect(e["id"] is Int, "\(e)") }
        }
        // The stream: written on node 0, read on node 1, under one name; the
        // writes and the remote reads are joined by flows.
        let writes = events.filter {
            $0["ph"] as? String == "X" && $0["name"] as? String == "write" && $0["pid"] as? Int == 0
        }
        let streamName = try #require(
            Dictionary(grouping: writes) { ($0["args"] as? [String: Any])?["object"] as? String ?? "" }
                .first { $0.value.count >= count }?.key, "\(writes.count) writes on node 0")
        let reads = events.filter {
            $0["ph"] as? String == "X" && $0["name"] as? String == "read" && $0["pid"] as? Int == 1
                && ($0["args"] as? [String: Any])?["object"] as? String == streamName
        }
        #expect(reads.count >= count)
        let flowsFromNode0 = events.filter { $0["ph"] as? String == "s" && $0["pid"] as? Int == 0 }.count
        let flowsIntoNode1 = events.filter { $0["ph"] as? String == "f" && $0["pid"] as? Int == 1 }.count
        #expect(flowsFromNode0 >= count && flowsIntoNode1 >= count)

        let flow = try BenchOutputTests.runJSON(["flow", String(streamName.prefix(16)), "--trace", file.path])
        #expect(flow.status == 0, "\(flow.text)")
        // The demo's messages and its closing one.
        #expect(flow.text.contains("(stream demo) on instance 0.0: wrote \(count + 1)×"), "\(flow.text)")
        #expect(flow.text.contains("on instance 1.0: read \(count + 1)×"), "\(flow.text)")
        #expect(cluster.stop(0) == 0)
        #expect(cluster.stop(1) == 0)
    }
}
