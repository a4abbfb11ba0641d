import CLinux
public import DIOSCore
public import DIOSKernel
public import DIOSMemory
import DIOSProcess
public import DIOSWire
import Logging
import Synchronization

/// A program a task runs: registered with a node under a name, started by `run`.
/// Throwing ends the task with status 1; returning, with status 0.
public typealias Program = @Sendable (TaskContext) async throws -> Void

/// One instance's view of a peer instance on another node.
public struct PeerStatus: Sendable, Equatable {
    public var peer: InstanceID
    /// A session with it is established (heard from within the failure timeout).
    public var reachable: Bool
    public var retransmits: UInt64
    public var messagesSent: UInt64
    public var messagesDelivered: UInt64
}

/// A DIOS node in this process: a hugepage arena, one kernel instance per
/// configured core — each with its own pool, objects and tasks, polled by its
/// own thread — and the fabric through which they exchange messages.
///
/// Code outside the node reaches the kernel through `withTask`, which runs a
/// closure as a task on an instance's thread, or by registering programs and
/// running them from such a task.
public final class Node: Sendable {
    public let configuration: NodeConfiguration
    public let arena: HugepageArena
    public let fabric: NodeFabric
    public let instances: [KernelInstance]
    private let loops: [PollLoop]
    private let registered = Mutex<[Executable]>([])

    /// The first instance.
    public var instance: KernelInstance { instances[0] }

    /// Maps the arena, creates the instances and starts polling.
    ///
    /// - Parameter wires: for a node in a cluster, one wire endpoint per
    ///   instance (in instance order), each over its own transport: the
    ///   instances reach the other nodes' instances through them.
    public init(_ configuration: NodeConfiguration = NodeConfiguration(), wires: [WireEndpoint] = []) throws(ArenaError)
    {
        precondition(wires.isEmpty || wires.count == configuration.instanceCount, "one wire endpoint per instance")
        self.configuration = configuration
        let count = configuration.instanceCount
        arena = try HugepageArena(
            size: configuration.arenaSize, label: "node\(configuration.node)", logger: configuration.logger)
        fabric = NodeFabric(instanceCount: count)
        let share = arena.size / count / HugepageArena.hugepageSize * HugepageArena.hugepageSize
        var instances: [KernelInstance] = []
        for i in 0..<count {
            let pool = BufferPool(arena: arena, offset: i * share, length: share)
            let instance = KernelInstance(
                id: InstanceID(node: configuration.node, core: UInt16(i)), pool: pool, fabric: fabric, index: i,
                logger: configuration.logger)
            if let hook = configuration.nameApplied {
                let id = instance.id
                instance.nameApplied = { hook(id, $0) }
            }
            switch configuration.idlePolicy {
            case .busy:
                instance.selectSpin = 1_000_000
                instance.peersMaySleep = false  // every instance of this node spins
            case .adaptive(let spins, _, _):
                instance.selectSpin = spins
            }
            instance.writesInPlace = configuration.writesInPlace
            instance.readsInPlace = configuration.readsInPlace
            if i < wires.count { instance.attachWire(wires[i]) }
            instances.append(instance)
        }
        self.instances = instances
        loops = instances.enumerated().map { i, instance in
            let cpu = configuration.cores.isEmpty || !configuration.pin ? nil : configuration.cores[i]
            var started: (@Sendable () -> Void)? = nil
            var ending: (@Sendable () -> Void)? = nil
            if let hook = configuration.instanceThreadStarted { started = { hook(i) } }
            if let hook = configuration.instanceThreadEnding { ending = { hook(i) } }
            return PollLoop(
                instance: instance, policy: configuration.idlePolicy, cpu: cpu, threadStarted: started,
                threadEnding: ending)
        }
        // Before the loops start, from this thread: every instance can serve
        // its programs to other nodes, and fetch theirs, from its first turn.
        let serve = Self.entry(for: ProgramFetch.server(self), label: "dios.program.fetch")
        for instance in instances {
            _ = instance.registerProgram(ProgramFetch.serverName, entry: serve)
            instance.fetchProgram = ProgramFetch.fetcher(self)
        }
        for loop in loops { loop.start() }
    }

    /// Stops the node: every task is told to stop and given time to finish, then
    /// the polling threads exit. The arena is unmapped (and its hugepage file
    /// removed) when the node is released.
    public func shutdown() {
        for loop in loops { loop.stop() }
    }

    /// Tells the instances of the other nodes that this node is stopping, then
    /// keeps polling for `grace` so the word gets there (it is sent, and resent
    /// if lost, like any message). They end their sessions with it at once —
    /// what depended on it learns now, not after the failure timeout — and stop
    /// using a link that reaches this node alone (memif) before it goes. Call
    /// before `shutdown()`; a node that just stops is found out by the timeout.
    public func leave(grace: Duration = .milliseconds(100)) async {
        for kernel in instances {
            await Task(executorPreference: kernel.executor) { kernel.announceLeaving() }.value
        }
        try? await Task.sleep(for: grace)
    }

    /// Stops every instance at once, as a crash would: tasks are neither told
    /// nor run again, and nothing more is sent or answered, so other nodes see
    /// this one fall silent. For failure tests that run nodes in one process.
    public func halt() {
        for loop in loops { loop.stop(drain: false) }
    }

    /// Makes a fatal signal (a failed runtime check in a task, a bad memory
    /// access) say on standard error which kernel instance's thread it hit
    /// and which task last called into that instance, before the process
    /// dies. In-process tasks are trusted code sharing the node's address
    /// space: a crash in one ends the node, and this is how its log says so.
    /// Signals are the process's: call once, from the executable (`diosd`
    /// does at start); earlier handlers, such as Swift's backtracer, still run.
    public static func reportCrashes() {
        clinux_install_crash_report()
    }

    /// Runs `body` as a task on instance `index` and returns its result.
    /// The task is trusted unless `trusted` is false.
    public func withTask<T: Sendable>(
        on index: Int = 0, trusted: Bool = true, label: String = "attached",
        _ body: @escaping @Sendable (TaskContext) async throws -> T
    ) async throws -> T {
        let kernel = instances[index]
        return try await Task(executorPreference: kernel.executor) {
            let task = kernel.attachTask(trusted: trusted, label: label)
            defer { kernel.taskExited(task, status: 0) }
            return try await body(TaskContext(kernel: kernel, task: task))
        }.value
    }

    /// Registers `program` under `name` (a random one by default) on every
    /// instance, so `run` can start it on any core, and returns the name.
    @discardableResult
    public func register(_ name: Name = .random(), label: String, program: @escaping Program) async -> Name {
        let entry = Self.entry(for: program, label: label, logger: configuration.logger)
        for kernel in instances {
            await Task(executorPreference: kernel.executor) {
                _ = kernel.registerProgram(name, entry: entry)
            }.value
        }
        return name
    }

    /// Registers an executable as a program object on every instance, under
    /// its name (the SHA-256 of its bytes), and returns the name. `run` of it
    /// starts the file as a task process on the chosen instance: trusted
    /// unless run with `.untrusted`, its exit status the task's. Registering
    /// the same bytes again changes nothing.
    @discardableResult
    public func register(_ executable: Executable) async -> Name {
        let entry = ProcessHost.entry(for: executable, options: configuration.processes)
        for kernel in instances {
            await Task(executorPreference: kernel.executor) {
                guard !kernel.hasProgram(executable.name) else { return }
                _ = kernel.registerProgram(executable.name, entry: entry)
            }.value
        }
        registered.withLock { list in
            if !list.contains(where: { $0.name == executable.name }) { list.append(executable) }
        }
        return executable.name
    }

    /// The executables registered with `register(_:)`, oldest first.
    public var executables: [Executable] { registered.withLock { $0 } }

    /// How many task-process channels each instance polls now.
    public func channelCounts() async -> [Int] {
        var counts: [Int] = []
        for kernel in instances {
            counts.append(await Task(executorPreference: kernel.executor) { kernel.channelCount }.value)
        }
        return counts
    }

    /// The node's task processes, live and recently ended.
    public var processes: ProcessTable { configuration.processes.table }

    /// The kernel's shape of a program: exit status 0 when it returns, 1 when it throws.
    static func entry(
        for program: @escaping Program, label: String, logger: Logger = Logger(label: "dios.node")
    ) -> @Sendable (KernelInstance, TaskID) async -> Int32 {
        { kernel, task in
            do {
                try await program(TaskContext(kernel: kernel, task: task))
                return 0
            } catch {
                logger.info("task ended with an error", metadata: ["program": "\(label)", "error": "\(error)"])
                return 1
            }
        }
    }

    /// What each instance knows of its peers on other nodes (empty lists for a
    /// node outside a cluster), read on each instance's own thread.
    public func peers() async -> [[PeerStatus]] {
        var all: [[PeerStatus]] = []
        for kernel in instances {
            all.append(
                await Task(executorPreference: kernel.executor) {
                    (kernel.wireEndpoint?.sessions ?? []).map {
                        PeerStatus(
                            peer: $0.peer, reachable: $0.isUp, retransmits: $0.counters.retransmits,
                            messagesSent: $0.counters.messagesSent, messagesDelivered: $0.counters.messagesDelivered)
                    }
                }.value)
        }
        return all
    }

    /// The names instance `index` knows (its own objects' and, from its replica,
    /// every reachable instance's), each with the instances holding it.
    public func names(on index: Int) async -> [(name: Name, owners: [InstanceID])] {
        let kernel = instances[index]
        return await Task(executorPreference: kernel.executor) { kernel.nameListing() }.value
    }

    /// Per instance, the frames its wire refused before any session saw them:
    /// malformed, misaddressed, from unknown senders, forged, replayed.
    public func frameCounters() async -> [EndpointCounters] {
        var all: [EndpointCounters] = []
        for kernel in instances {
            all.append(await Task(executorPreference: kernel.executor) { kernel.frameCounters }.value)
        }
        return all
    }

    /// Counters of every instance, each read on its own thread.
    public func counters() async -> [InstanceCounters] {
        var all: [InstanceCounters] = []
        for kernel in instances {
            all.append(await Task(executorPreference: kernel.executor) { kernel.counters }.value)
        }
        return all
    }
}

extension Node {
    /// Starts recording every instance's calls on references, each in a ring
    /// of `capacity` events (see `TraceRing`); a node starts with tracing off.
    public func startTracing(capacity: Int = 1 << 16) async {
        for kernel in instances {
            await Task(executorPreference: kernel.executor) { kernel.startTracing(capacity: capacity) }.value
        }
    }

    /// Stops recording; what was recorded waits for `drainTrace`.
    public func stopTracing() async {
        for kernel in instances { await Task(executorPreference: kernel.executor) { kernel.stopTracing() }.value }
    }

    /// Each instance's events since the last drain, read on its own thread.
    public func drainTrace() async -> [InstanceTrace] {
        var all: [InstanceTrace] = []
        for kernel in instances {
            all.append(await Task(executorPreference: kernel.executor) { kernel.drainTrace() }.value)
        }
        return all
    }
}
