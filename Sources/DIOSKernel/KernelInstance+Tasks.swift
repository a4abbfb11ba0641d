import CLinux
package import DIOSCore
import DIOSMemory
import DIOSWire
import HeapModule
import Logging

#if canImport(Glibc)
import Glibc
#endif

// The instance's tasks: their records, starting and ending them, and their
// references.
extension KernelInstance {
    /// Creates a task record (and its task object) without starting anything:
    /// the caller's own thread then acts as that task. Used to attach a driver
    /// (a test, a benchmark, the node's boot code) to the instance.
    /// A driver that cannot get a task has nothing to fall back on, so this traps
    /// when the pool is exhausted; `run` uses `makeTask` and reports it instead.
    /// Nothing holds an attached task's task object, so it goes when the task exits.
    package func attachTask(trusted: Bool, label: String = "attached") -> TaskID {
        let task: TaskID
        do { task = try makeTask(trusted: trusted, label: label) } catch { preconditionFailure("attachTask: \(error)") }
        tasks[Int(task.index)].unheld = true
        return task
    }

    /// Wakes the instance if its loop sleeps (from any thread): something it
    /// polls, and that cannot wake it itself, has work for it.
    package func wake() { doorbell.ring() }

    /// A new task record and its task object, or `.outOfMemory` (changing nothing).
    func makeTask(trusted: Bool, label: String) throws(CallError) -> TaskID {
        checkThread()
        guard let object = makeObject(kind: .task, name: nameSource.fresh(), bufferSize: 64, maxWriteSize: 0, flags: [])
        else { throw .outOfMemory(requested: 64) }
        let task = insertTask(TaskRecord(trusted: trusted, object: object, label: label))
        objects.records[Int(object.index)].task = task
        counters.tasksStarted += 1
        return task
    }

    /// Starts a Swift task for `task` running `entry` on this instance's executor.
    package func start(_ task: TaskID, entry: @escaping TaskEntry) {
        checkThread()
        let kernel = self
        let handle = Task(executorPreference: executor) {
            let status = await entry(kernel, task)
            kernel.taskExited(task, status: status)
        }
        tasks[Int(task.index)].handle = handle
    }

    func insertTask(_ record: TaskRecord) -> TaskID {
        var record = record
        record.live = true
        if let slot = taskSlots.reusable() {
            record.generation = tasks[Int(slot)].generation
            tasks[Int(slot)] = record
            return TaskID(index: slot, generation: record.generation)
        }
        record.generation = SlotAllocator.firstGeneration
        tasks.append(record)
        return TaskID(index: UInt32(tasks.count - 1), generation: record.generation)
    }

    @inline(__always)
    func taskIndex(_ task: TaskID) throws(CallError) -> Int {
        let i = Int(task.index)
        guard i < tasks.count, tasks[i].generation == task.generation, tasks[i].live else { throw .taskStopped }
        if tasks[i].stopping { throw .taskStopped }
        clinux_crash_note_task(task.index, task.generation)  // named if the process dies (`Node.reportCrashes`)
        return i
    }

    /// The name of a task's task object.
    package func taskObjectName(_ task: TaskID) -> Name? {
        let i = Int(task.index)
        guard i < tasks.count, tasks[i].generation == task.generation, tasks[i].live else { return nil }
        return objects.records[Int(tasks[i].object.index)].name
    }

    /// Whether `task` runs trusted.
    package func isTrusted(_ task: TaskID) -> Bool {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation && tasks[i].trusted
    }

    /// The references delegated to `task` by `copy` or `run`, oldest first.
    package func delegated(_ task: TaskID) throws(CallError) -> [Ref] {
        checkThread()
        return tasks[try taskIndex(task)].delegated
    }

    /// Every live reference `task` holds, with its entry.
    package func references(of task: TaskID) throws(CallError) -> [(Ref, ReferenceEntry)] {
        checkThread()
        return tasks[try taskIndex(task)].refs.references
    }

    /// The entry behind one of `task`'s references; `.objectDeleted` once its
    /// object is gone, as for every call on it but `delete` and `select`.
    package func entry(_ task: TaskID, _ ref: Ref) throws(CallError) -> ReferenceEntry {
        checkThread()
        let entry = try referenceEntry(try taskIndex(task), ref)
        guard objects.isLive(entry.object) else { throw .objectDeleted }
        return entry
    }

    /// Marks a task finished: its task object becomes readable with the status,
    /// and its record is released. Objects it created stay (they are named).
    package func taskExited(_ task: TaskID, status: Int32) {
        checkThread()
        let i = Int(task.index)
        guard i < tasks.count, tasks[i].generation == task.generation, tasks[i].live else { return }
        // A trace names the task after its record is reused; no more labels
        // are kept than the ring has events to name them.
        if let traceRing, traceRing.ended.count < traceRing.capacity { traceRing.ended[task] = tasks[i].label }
        finishTaskObject(tasks[i].object, status: status)
        for w in tasks[i].pauseWaiters { w.resume() }
        if let proxy = tasks[i].proxy { send(.exited(proxy: proxy.object, status: status), to: proxy.instance) }
        if let proxy = tasks[i].remoteProxy {
            // What the task wrote to streams read there goes first, as far as the
            // session's window allows, so its exit does not overtake it.
            flushBridges()
            sendToPeer(.exited(proxy: proxy.object, status: status), to: proxy.peer)
        }
        // What was made for the task alone goes with it: the stream ends and
        // blob stand-ins made for a task started from another instance or node
        // (a stream's end drains to the other node first), and a task object
        // nothing here holds (the starter's proxy keeps the status).
        for end in tasks[i].madeEnds { retire(end) }
        if tasks[i].unheld { destroy(tasks[i].object) }
        tasks[i] = TaskRecord(generation: taskSlots.release(task.index, generation: tasks[i].generation))
        counters.tasksExited += 1
    }

    /// Tasks alive on this instance.
    public var taskCount: Int { tasks.count - taskSlots.freeCount }
    /// Objects alive on this instance.
    public var objectCount: Int { objects.liveCount }
}
