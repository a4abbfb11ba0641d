import DIOSWire

/// The cluster's scheduler service and its bootstrap (DESIGN §7).
///
/// Placement policy is a later issue; here the scheduler runs, is found by its
/// well-known name, and answers a ping. It publishes a 16-byte blob named
/// `Scheduler.name`: its instance (node u16, core u16), then a heartbeat counter
/// (u64) it advances every `beat`. Pinging it is a weak remote read of that blob
/// that validates with the owner.
///
/// Exactly one: every node runs a bootstrapper on its first instance, and it
/// and the scheduler follow `SchedulerElection` (the cluster simulation runs
/// the same rules).
public enum Scheduler {
    public static let name = SchedulerElection.name
    static let program = Name.wellKnown("dios.scheduler.program")
    static let bootstrapProgram = Name.wellKnown("dios.scheduler.bootstrap")
    static let beat = Duration.milliseconds(20)  // also written in nanoseconds when re-arming

    /// Registers the scheduler's programs on every instance of `node` and starts
    /// the bootstrapper on its first instance. `grace`: how long a booting node
    /// waits for sessions to come up before it may start a scheduler itself.
    public static func bootstrap(_ node: Node, grace: Duration = .seconds(1)) async throws {
        await node.register(program, label: "scheduler", program: run)
        await node.register(bootstrapProgram, label: "scheduler bootstrap") { task in
            try await Self.keepOneRunning(task, grace: grace)
        }
        try await node.withTask(label: "boot") { task in
            _ = try task.run(try task.lookup(bootstrapProgram)[0])
        }
    }

    /// The scheduler's body: publish, beat, and step down for a lower instance.
    @Sendable static func run(_ task: TaskContext) async throws {
        let me = task.instance
        let blob = try task.create(.blob(size: 16), named: name)
        let (_, timer) = try task.create(.timer(after: beat))
        var count: UInt64 = 0
        while true {
            count += 1
            do throws(CallError) {
                let w = try task.beginWrite(blob, size: 16)
                try w.store(UInt32(me.node) << 16 | UInt32(me.core))
                try w.store(count, toByteOffset: 8)
                _ = task.endWrite(w)
            } catch {
                guard error == .wouldBlock else { throw error }  // a ping holds it: beat next time
            }
            _ = try await task.select([timer])
            let rearm = try task.beginWrite(timer, size: 8)
            try rearm.store(UInt64(20_000_000).littleEndian)
            _ = task.endWrite(rearm)
            if count % 5 == 0, SchedulerElection.shouldStepDown(me: me, owners: try owners(task)) {
                try task.delete(blob)  // another scheduler runs on a lower instance: it stays, this one goes
                return
            }
        }
    }

    /// Every 100 ms: if no scheduler is reachable and this node is the lowest
    /// reachable one, start one here.
    static func keepOneRunning(_ task: TaskContext, grace: Duration) async throws {
        let (_, timer) = try task.create(.timer(after: grace))
        let period = UInt64(100_000_000)
        var started: Ref? = nil
        while true {
            _ = try await task.select([timer])
            let rearm = try task.beginWrite(timer, size: 8)
            try rearm.store(period.littleEndian)
            _ = task.endWrite(rearm)
            if let s = started {  // readable once it exited (stepped down, or failed)
                do throws(CallError) {
                    let r = try task.beginRead(s)
                    _ = task.endRead(r)
                    started = nil
                } catch {
                    if error != .wouldBlock { started = nil }
                }
            }
            let start = SchedulerElection.shouldStart(
                me: task.instance, owners: try owners(task), reachable: task.reachableInstances(),
                running: started != nil)
            if start { started = try task.run(try task.lookup(program)[0]) }
        }
    }

    /// The instances holding a scheduler, as `lookup` sees them.
    static func owners(_ task: TaskContext) throws(CallError) -> [InstanceID] {
        var found: [InstanceID] = []
        do throws(CallError) {
            for ref in try task.lookup(name) {
                found.append(try task.describe(ref).owner)
                try task.delete(ref, flags: .referenceOnly)
            }
        } catch {
            if case .noSuchName = error { return [] }
            throw error
        }
        return found
    }

    /// Pings the scheduler: which instance runs it and its heartbeat count, read
    /// from its blob under a strong (shared) hold, so a heartbeat cannot
    /// overlap the read; nil when none is reachable.
    public static func ping(_ task: TaskContext) throws(CallError) -> (instance: InstanceID, beats: UInt64)? {
        let refs: [Ref]
        do throws(CallError) { refs = try task.lookup(name) } catch {
            if case .noSuchName = error { return nil }
            throw error
        }
        defer { for ref in refs { try? task.delete(ref, flags: .referenceOnly) } }
        for _ in 0..<100 {
            for ref in refs {
                let r: ReadTransaction
                do throws(CallError) { r = try task.beginRead(ref, flags: .strong) } catch {
                    if error == .wouldBlock { continue }  // a heartbeat is being written: read again
                    throw error
                }
                let who = try r.load(as: UInt32.self)
                let beats = try r.load(fromByteOffset: 8, as: UInt64.self)
                if task.endRead(r) { return (InstanceID(node: UInt16(who >> 16), core: UInt16(who & 0xFFFF)), beats) }
            }
        }
        return nil
    }
}
