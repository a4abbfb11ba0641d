import DIOS
import Foundation
import Testing

/// Trusted task processes read and write local streams in their own mapping
/// of the arena: one call maps a side, and the data path crosses no ring.
@Suite(.serialized) struct InPlaceStreamTests {
    static let count: UInt64 = 100_000

    /// Runs `inplace-stream` on `writerCore` and `inplace-sink` on
    /// `readerCore`, both given one stream made on instance 0; returns their
    /// exit statuses and their entries in the node's process table.
    func pair(
        writerCore: Int, readerCore: Int, flags: Flags = []
    ) async throws -> (Node, [Int64], [ProcessTable.Entry], [InstanceCounters]) {
        let node = try CheckProgram.makeNode(spins: 64)
        let program = await node.register(try CheckProgram.executable())
        let inArena = flags.contains(.untrusted) ? "0" : "1"
        let statuses = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let p = try task.lookup(program)[0]
            let reader = try task.run(
                p, arguments: [stream], commandLine: ["inplace-sink", "\(Self.count)", inArena], flags: flags,
                on: readerCore)
            let writer = try task.run(
                p, arguments: [stream], commandLine: ["inplace-stream", "\(Self.count)", inArena], flags: flags,
                on: writerCore)
            return [try await task.status(of: writer), try await task.status(of: reader)]
        }
        let entries = node.processes.all.filter { $0.state == .exited }
        return (node, statuses, entries, await node.counters())
    }

    /// Two trusted processes on two instances: every message is written and
    /// read in place (each view checked by the program to lie in its mapping
    /// of the arena), in order, and neither process submits a single read
    /// or write; the instances still count every message.
    @Test func twoTrustedProcessesStreamInPlaceWithNoEntryOnTheDataPath() async throws {
        let (node, statuses, entries, counters) = try await pair(writerCore: 0, readerCore: 1)
        defer { node.shutdown() }
        #expect(statuses == [0, 0], "\(allLogs(node))")
        #expect(entries.count == 2)
        for e in entries {
            #expect(e.dataCalls == 0, "\(e.label): \(e.dataCalls) reads and writes crossed its ring")
            // Its few calls: hello, delegated, the map, and selects while it waited.
            #expect(e.calls < Self.count / 4, "\(e.label): \(e.calls) submissions")
        }
        #expect(counters[0].messagesOut >= Self.count)
        #expect(counters[1].messagesIn >= Self.count)
        #expect(allLogs(node).contains("read \(Self.count) messages in place, in order"))
    }

    /// Both on one instance: the instance notices what the writer published
    /// without a doorbell between instances.
    @Test func twoTrustedProcessesOnOneInstanceStreamInPlace() async throws {
        let (node, statuses, entries, _) = try await pair(writerCore: 1, readerCore: 1)
        defer { node.shutdown() }
        #expect(statuses == [0, 0], "\(allLogs(node))")
        #expect(entries.allSatisfy { $0.dataCalls == 0 })
        #expect(allLogs(node).contains("read \(Self.count) messages in place, in order"))
    }

    /// Untrusted processes map nothing: the same program's every read and
    /// write crosses its channel, a copy in its window.
    @Test func untrustedProcessesStreamThroughTheirChannels() async throws {
        let (node, statuses, entries, _) = try await pair(writerCore: 0, readerCore: 1, flags: .untrusted)
        defer { node.shutdown() }
        #expect(statuses == [0, 0], "\(allLogs(node))")
        for e in entries { #expect(e.dataCalls >= 2 * Self.count, "\(e.label)") }
    }

    /// A stream deleted while a process writes it in place: the ring closes,
    /// the process gives its side back, and its next write gets the kernel's
    /// typed error; the stream's memory goes once the side is given back.
    @Test func aStreamDeletedUnderAMappedWriterEndsItsWritesWithATypedError() async throws {
        let node = try CheckProgram.makeNode(spins: 64)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let status = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let writer = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["inplace-stream", "1000000000", "1"],
                on: 1)
            // One message read shows the writer at work; then the ring fills
            // and the writer waits on it.
            _ = try await task.select([stream])
            let tx = try task.beginRead(stream)
            _ = task.endRead(tx)
            try await Task.sleep(for: .milliseconds(50))
            try task.delete(stream)
            return try await task.status(of: writer)
        }
        #expect(status == 1, "\(lastLog(node))")
        #expect(lastLog(node).contains("begin_write"), "\(lastLog(node))")
    }

    /// A trusted writer may write any byte of the ring it maps, headers
    /// too: a slot claiming its message lies at some other address, or is
    /// 2 GiB long, is read as what the slot holds, and the instance goes on.
    @Test func forgedSlotHeadersKeepTheKernelsReadsInTheirSlots() async throws {
        let node = try CheckProgram.makeNode(spins: 64)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let (status, first, second) = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let writer = try task.run(try task.lookup(program)[0], arguments: [stream], commandLine: ["forge"], on: 1)
            let status = try await task.status(of: writer)
            var read: [(count: Int, word: UInt64)] = []
            for _ in 0..<2 {
                let tx = try task.beginRead(stream)
                read.append((tx.count, try tx.load(as: UInt64.self)))
                _ = task.endRead(tx)
            }
            return (status, read[0], read[1])
        }
        #expect(status == 0, "\(lastLog(node))")
        let stride = lastLog(node).components(separatedBy: "stride ").last.flatMap { Int($0.prefix(while: \.isNumber)) }
        let slotBytes = try #require(stride)
        #expect(first.count == 16 && first.word == 0xdead_0000)
        #expect(slotBytes > 8 && second.count == slotBytes - 8)
        // The instance still serves: a fresh stream carries a message.
        let echoed = try await node.withTask(on: 0) { task in
            let (_, s) = try task.create(.stream(messageSize: 16, depth: 4))
            let w = try task.beginWrite(s, size: 8)
            try w.store(UInt64(7))
            _ = task.endWrite(w)
            let r = try task.beginRead(s)
            let value = try r.load(as: UInt64.self)
            _ = task.endRead(r)
            return value
        }
        #expect(echoed == 7)
    }
}
