public import DIOSCore
public import DIOSKernel
public import DIOSMemory
public import Logging

/// A program a task runs: registered with a node under a name, started by `run`.
/// Throwing ends the task with status 1; returning, with status 0.
public typealias Program = @Sendable (TaskContext) async throws -> Void

/// How a node is set up.
public struct NodeConfiguration: Sendable {
    /// This node's number in the cluster.
    public var node: UInt16 = 0
    /// Bytes of hugepage memory for the node's arena.
    public var arenaSize: Int = 64 << 20
    /// What the polling loop does when idle.
    public var idlePolicy: IdlePolicy = .adaptive
    /// The CPU to pin the instance's thread to (nil: not pinned).
    public var cpu: Int? = nil
    public var logger = Logger(label: "dios.node")

    public init() {}
}

/// A DIOS node in this process: a hugepage arena, a kernel instance over it and
/// the thread that polls the instance.
///
/// Code outside the node reaches the kernel through `withTask`, which runs a
/// closure as a task on the instance's thread, or by registering programs and
/// running them from such a task.
public final class Node: Sendable {
    public let configuration: NodeConfiguration
    public let arena: HugepageArena
    public let instance: KernelInstance
    private let loop: PollLoop

    /// Maps the arena, creates the instance and starts polling.
    public init(_ configuration: NodeConfiguration = NodeConfiguration()) throws(ArenaError) {
        self.configuration = configuration
        HugepageArena.removeStaleFiles()
        arena = try HugepageArena(
            size: configuration.arenaSize, label: "node\(configuration.node)", logger: configuration.logger)
        let pool = BufferPool(arena: arena, offset: 0, length: arena.size)
        instance = KernelInstance(
            id: InstanceID(node: configuration.node, core: 0), pool: pool, logger: configuration.logger)
        loop = PollLoop(instance: instance, policy: configuration.idlePolicy, cpu: configuration.cpu)
        loop.start()
    }

    /// Stops the node: every task is told to stop and given time to finish, then
    /// the polling thread exits. The arena is unmapped (and its hugepage file
    /// removed) when the node is released.
    public func shutdown() {
        loop.stop()
    }

    /// Runs `body` as a task on the node's instance and returns its result.
    /// The task is trusted unless `trusted` is false.
    public func withTask<T: Sendable>(
        trusted: Bool = true, label: String = "attached",
        _ body: @escaping @Sendable (TaskContext) async throws -> T
    ) async throws -> T {
        let kernel = instance
        return try await Task(executorPreference: kernel.executor) {
            let task = kernel.attachTask(trusted: trusted, label: label)
            defer { kernel.taskExited(task, status: 0) }
            return try await body(TaskContext(kernel: kernel, task: task))
        }.value
    }

    /// Registers `program` under `name` (a random one by default) and returns the name.
    @discardableResult
    public func register(_ name: Name = .random(), label: String, program: @escaping Program) async -> Name {
        let kernel = instance
        let logger = configuration.logger
        let entry: @Sendable (KernelInstance, TaskID) async -> Int32 = { kernel, task in
            do {
                try await program(TaskContext(kernel: kernel, task: task))
                return 0
            } catch {
                logger.info("task ended with an error", metadata: ["program": "\(label)", "error": "\(error)"])
                return 1
            }
        }
        await Task(executorPreference: kernel.executor) {
            _ = kernel.registerProgram(name, entry: entry)
        }.value
        return name
    }

    /// Counters of the node's instance, read on its thread.
    public func counters() async -> InstanceCounters {
        let kernel = instance
        return await Task(executorPreference: kernel.executor) { kernel.counters }.value
    }
}
