import DIOS
import DIOSHost
import Foundation
import Testing

/// A task process's life as its instance sees it: killed, paused, stopped
/// with its node, and nothing left behind.
@Suite(.serialized) struct LifecycleTests {
    /// The pid of the newest task process once it has started.
    static func pid(_ node: Node) async throws -> Int32 {
        for _ in 0..<2000 {
            if let e = node.processes.all.last, e.state != .exited { return e.pid }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw CancellationError()
    }

    @Test func killingAProcessInAStrongWriteReleasesItsHoldAndPublishesNothing() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let (status, afterKill, written) = try await node.withTask { task in
            let (_, blob) = try task.create(.blob(size: 64))
            let (_, said) = try task.create(.stream(messageSize: 64, depth: 4))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [blob, said], commandLine: ["hold"])
            _ = try await task.read(said)  // "holding": its strong write is open
            // Held exclusively: no writer gets in while it lives.
            var refused = false
            do throws(CallError) { _ = try task.beginWrite(blob, size: 64) } catch { refused = true }
            #expect(refused)
            kill(node.processes.all.last!.pid, SIGKILL)
            let status = try await task.status(of: child)
            let w = try task.beginWrite(blob, size: 64, flags: .strong)  // the hold went with it
            let committed = task.endWrite(w)
            return (status, committed, try await task.read(blob).first)
        }
        #expect(status == 128 + 9)
        #expect(afterKill)
        #expect(written == 0)  // its write was never published
    }

    @Test func killingAProcessMidStreamTellsTheReaderAfterWhatItWrote() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let (read, ending, status) = try await node.withTask { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 16))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["stream", "100000000"])
            var read: UInt64 = 0
            var ending: CallError? = nil
            while ending == nil {
                do throws(CallError) {
                    let tx = try task.beginRead(stream)
                    let seq = tx.uncheckedLoad(fromByteOffset: 0, as: UInt64.self)
                    _ = task.endRead(tx)
                    #expect(seq == read)
                    read += 1
                    if read == 1000 { kill(node.processes.all.last!.pid, SIGKILL) }
                } catch .wouldBlock {
                    _ = try await task.select([stream])
                } catch {
                    ending = error
                }
            }
            return (read, ending, try await task.status(of: child))
        }
        #expect(read >= 1000)
        guard case .unreachable(_, let reason) = ending else {
            Issue.record("the reader saw \(String(describing: ending)), not .unreachable")
            return
        }
        #expect(reason.contains("signal 9"))
        #expect(status == 137)
    }

    @Test func pauseStopsTheProcessAndResumeContinuesIt() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let states = try await node.withTask { task in
            let child = try task.run(try task.lookup(program)[0], commandLine: ["sleep"])
            let pid = try await Self.pid(node)
            try task.pause(child)
            let paused = Self.state(pid)
            let entry = node.processes.all.last?.state
            try task.resume(child)
            let resumed = Self.state(pid)
            kill(pid, SIGKILL)
            return (paused, entry, resumed, try await task.status(of: child))
        }
        #expect(states.0 == "T")
        #expect(states.1 == .paused)
        #expect(states.2 != "T")
        #expect(states.3 == 137)
    }

    /// A process's state letter from /proc (R, S, T, Z...).
    static func state(_ pid: Int32) -> String {
        for _ in 0..<1000 {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return "gone" }
            let letter = String(stat[stat.index(end, offsetBy: 2)])
            if letter != "R" { return letter }
            usleep(1000)
        }
        return "R"
    }

    @Test func deletingTheTaskEndsItsProcess() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let pid = try await node.withTask { task in
            let child = try task.run(try task.lookup(program)[0], commandLine: ["sleep"])
            let pid = try await Self.pid(node)
            try task.delete(child)
            return pid
        }
        for _ in 0..<2000 where node.processes.all.last?.state != .exited {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(node.processes.all.last?.status == 137)
        #expect(kill(pid, 0) != 0)
    }

    @Test func stoppingTheNodeEndsItsTaskProcessesFirst() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        let program = await node.register(try CheckProgram.executable())
        try await node.withTask { task in
            _ = try task.run(try task.lookup(program)[0], commandLine: ["sleep"])
        }
        let pid = try await Self.pid(node)
        #expect(Host.isRunning(pid))
        node.shutdown()
        #expect(!Host.isRunning(pid) && kill(pid, 0) != 0)  // ended and reaped
    }

    @Test func spawnAndKillCyclesLeaveNothingBehind() async throws {
        let node = try CheckProgram.makeNode(instances: 1)
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let cycles = 1000
        let statuses = try await node.withTask { task in
            let p = try task.lookup(program)[0]
            var statuses: [Int64: Int] = [:]
            for n in 0..<cycles {
                let child = try task.run(p, commandLine: n % 2 == 0 ? ["sleep"] : ["exit", "3"])
                if n % 2 == 0 { try task.delete(child, flags: .referenceOnly) }
                if n % 2 == 0 {
                    // Deleting the only reference leaves it running; kill it as a user would.
                    let pid = try await Self.pid(node)
                    kill(pid, SIGKILL)
                    continue
                }
                statuses[try await task.status(of: child), default: 0] += 1
                try task.delete(child)
            }
            return statuses
        }
        #expect(statuses == [3: cycles / 2])
        // The killed ones end on their own time: wait for the table to say so.
        for _ in 0..<5000 where node.processes.all.contains(where: { $0.state != .exited }) {
            try await Task.sleep(for: .milliseconds(1))
        }
        try await Task.sleep(for: .milliseconds(50))
        // Other suites run beside this one in the same process, so what this
        // node holds is counted by the node: every channel (memfd, mapping,
        // doorbell pipe) and every process handle (pidfd, released once the
        // process is reaped) gone, the instance polling no channel, and the
        // processes the table still lists gone and reaped.
        let held = node.processes.resourcesHeld
        #expect(held.channels == 0 && held.processes == 0, "\(held)")
        #expect(await node.channelCounts() == [0])
        let entries = node.processes.all
        #expect(entries.count == node.processes.keepEnded && entries.allSatisfy { $0.state == .exited })
        #expect(entries.allSatisfy { kill($0.pid, 0) != 0 })
        #expect(Self.children(of: entries.map(\.pid)) == 0)
        // The logs of the entries let go went with them.
        let logs = try FileManager.default.contentsOfDirectory(atPath: node.configuration.processes.logDirectory)
        #expect(logs.count == node.processes.keepEnded)
    }

    /// How many of `pids` are still this process's children (zombies included).
    static func children(of pids: [Int32]) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        var children = Set<Int32>()
        for t in tasks {
            let text = (try? String(contentsOfFile: "/proc/self/task/\(t)/children", encoding: .utf8)) ?? ""
            for p in text.split(separator: " ") { if let n = Int32(p) { children.insert(n) } }
        }
        return pids.filter(children.contains).count
    }
}
