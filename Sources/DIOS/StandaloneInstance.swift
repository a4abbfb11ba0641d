import DIOSCore
public import DIOSKernel
public import DIOSMemory
import Logging

/// A kernel instance driven by the calling thread, with no polling thread:
/// tasks are attached to the caller, and `poll()` turns the loop by hand.
/// Benchmarks and unit tests of the synchronous calls use it; everything else
/// uses `Node`.
public final class StandaloneInstance {
    public let arena: HugepageArena
    public let instance: KernelInstance

    public init(arenaSize: Int = 16 << 20, label: String = "standalone") throws(ArenaError) {
        arena = try HugepageArena(size: arenaSize, label: label)
        instance = KernelInstance(
            id: InstanceID(node: 0, core: 0), pool: BufferPool(arena: arena, offset: 0, length: arena.size))
        instance.adoptCurrentThread()
    }

    /// Attaches a task to the calling thread and returns its context.
    public func attach(trusted: Bool = true, label: String = "attached") -> TaskContext {
        TaskContext(kernel: instance, task: instance.attachTask(trusted: trusted, label: label))
    }

    /// One turn of the polling loop: fire due timers, wake waiters, run queued jobs.
    @discardableResult
    public func poll() -> Int { instance.poll() }

    /// Ends an attached task.
    public func detach(_ context: TaskContext) { instance.taskExited(context.task, status: 0) }
}
