import DIOSCore
public import DIOSKernel
public import DIOSMemory
import Logging

/// A kernel instance driven by the calling thread: tasks are attached to the
/// caller, and `poll()` turns its loop by hand. Benchmarks and unit tests of
/// the synchronous calls use it; everything else uses `Node`.
///
/// With `peers`, it is the first instance of a node whose other instances run
/// on polling threads of their own (pinned to `peerCores`, when given), so the
/// caller can measure a message path between cores without being a Swift task.
public final class StandaloneInstance {
    public let arena: HugepageArena
    public let instance: KernelInstance
    public let peers: [KernelInstance]
    private let loops: [PollLoop]

    /// - Parameters:
    ///   - peers: instances besides this one, each polled by its own thread.
    ///   - peerCores: CPUs for the peers' threads (empty: not pinned).
    ///   - idle: the peers' idle policy.
    ///   - programs: registered on every instance before anything polls them.
    public init(
        arenaSize: Int = 16 << 20, label: String = "standalone", peers: Int = 0, peerCores: [Int] = [],
        idle: IdlePolicy = .adaptive, programs: [(Name, Program)] = []
    ) throws(ArenaError) {
        precondition(peers >= 0 && (peerCores.isEmpty || peerCores.count == peers), "one core per peer")
        let arena = try HugepageArena(size: arenaSize, label: label)
        self.arena = arena
        let count = peers + 1
        let fabric = NodeFabric(instanceCount: count)
        let share = arena.size / count / HugepageArena.hugepageSize * HugepageArena.hugepageSize
        let all = (0..<count).map { i in
            KernelInstance(
                id: InstanceID(node: 0, core: UInt16(i)),
                pool: BufferPool(arena: arena, offset: i * share, length: share),
                fabric: fabric, index: i)
        }
        for kernel in all {
            if case .busy = idle { kernel.selectSpin = 1_000_000 }
            for (name, program) in programs {
                _ = kernel.registerProgram(name, entry: Node.entry(for: program, label: "\(name)"))
            }
        }
        instance = all[0]
        self.peers = Array(all.dropFirst())
        instance.adoptCurrentThread()
        loops = self.peers.enumerated().map { n, peer in
            PollLoop(instance: peer, policy: idle, cpu: peerCores.isEmpty ? nil : peerCores[n])
        }
        for loop in loops { loop.start() }
    }

    deinit {
        for loop in loops { loop.stop() }
    }

    /// Attaches a task to the calling thread and returns its context.
    public func attach(trusted: Bool = true, label: String = "attached") -> TaskContext {
        TaskContext(kernel: instance, task: instance.attachTask(trusted: trusted, label: label))
    }

    /// One turn of the polling loop: fire due timers, wake waiters, run queued
    /// jobs, handle messages from the peers.
    @discardableResult
    public func poll() -> Int { instance.poll() }

    /// Ends an attached task.
    public func detach(_ context: TaskContext) { instance.taskExited(context.task, status: 0) }
}
