#if canImport(Glibc)
import Glibc
#endif
import CLinux
public import DIOSCore
public import DIOSMemory
import DIOSWire
import HeapModule
public import Logging

/// The body of a task: given its kernel and task id, runs to completion and
/// returns an exit status. The `DIOS` module wraps programs written against
/// `TaskContext` into this shape.
package typealias TaskEntry = @Sendable (KernelInstance, TaskID) async -> Int32

/// One kernel instance: the objects it holds, the reference tables of the tasks
/// it runs, its buffer pool, timers and waiters.
///
/// An instance is confined to one thread (its polling loop's, or the thread that
/// adopted it): every method below runs there and nowhere else, so nothing in it
/// is locked and no other instance ever reads it — instances only exchange
/// messages. Debug builds check the confinement on every call. That confinement
/// is why the class may be marked `@unchecked Sendable`: tasks carry a pointer to
/// their instance, and only ever use it from the instance's thread. It is also
/// why its mutable state is `@exclusivity(unchecked)`: one thread cannot overlap
/// its own accesses here, and the runtime checks were a quarter of the data path.
public final class KernelInstance: @unchecked Sendable {
    public let id: InstanceID
    public let logger: Logger
    @exclusivity(unchecked) package var pool: BufferPool
    @exclusivity(unchecked) var objects: ObjectStore
    @exclusivity(unchecked) var tasks: [TaskRecord] = []
    @exclusivity(unchecked) var freeTasks: [UInt32] = []
    /// name → instances of it held here. Becomes the name-service replica.
    @exclusivity(unchecked) var names = NameTable(reserve: 1024)
    @exclusivity(unchecked) var nameSource = NameSource()
    @exclusivity(unchecked) var programs: [TaskEntry?] = []
    @exclusivity(unchecked) var timers = Heap<TimerEntry>()
    @exclusivity(unchecked) var waiters: [Waiter] = []
    @exclusivity(unchecked) var dirty: [UInt32] = []
    package let executor: InstanceExecutor
    let doorbell: Doorbell
    @exclusivity(unchecked) package var counters = InstanceCounters()
    private var owner: pthread_t?
    /// The wire to instances on other nodes (nil: this node stands alone).
    @exclusivity(unchecked) var wire: WireEndpoint? = nil
    /// `wire` again, unretained (`wire` keeps it alive): the data path reaches
    /// it without a retain and release per message.
    @exclusivity(unchecked) var wireRef: Unmanaged<WireEndpoint>? = nil
    /// Streams whose messages the kernel sends to another node.
    @exclusivity(unchecked) var bridges: [ObjectID] = []
    /// Streams handed over by another node: (peer, its origin object) → ours.
    @exclusivity(unchecked) var remoteEnds: [RemoteEnd: ObjectID] = [:]
    /// The `remoteEnds` entry a stream message found last (a hint: see `bridgedStream`).
    @exclusivity(unchecked) var lastRemoteEnd: (key: RemoteEnd, object: ObjectID)? = nil
    /// Blobs here handed to tasks on other nodes: (peer, blob) → rights given.
    @exclusivity(unchecked) var sharedBlobs: [RemoteEnd: Rights] = [:]
    /// Strong read holds that peers have on blobs here.
    @exclusivity(unchecked) var remoteReadHolds: [RemoteEnd: Int32] = [:]
    /// The name-service protocol and the replica of every other instance's objects.
    @exclusivity(unchecked) var nameService: NameService
    /// Stand-ins for instances held elsewhere, by (owner, object).
    @exclusivity(unchecked) var standIns: [RemoteEnd: ObjectID] = [:]
    /// Told each name another instance created once this replica holds it.
    @exclusivity(unchecked) package var nameApplied: (@Sendable (Name) -> Void)? = nil
    /// `lookup`'s scratch: the hits on this instance and elsewhere, kept with
    /// their capacity so a lookup allocates nothing once warm.
    @exclusivity(unchecked) var lookupHere: [ObjectID] = []
    @exclusivity(unchecked) var lookupElsewhere: [InstanceRecord] = []
    /// The remote call a task of this instance waits on, if any.
    @exclusivity(unchecked) var pendingCall: PendingCall? = nil
    @exclusivity(unchecked) var nextCall: UInt32 = 0
    /// Control messages for other nodes waiting for room in their session.
    @exclusivity(unchecked) var remoteOutbox: [(peer: InstanceID, bytes: [UInt8])] = []
    @exclusivity(unchecked) var stopping = false
    /// The monotonic clock as read at the start of this poll turn on an
    /// instance with a wire (or by the last full wire poll of a spinning
    /// `select`): what a send from a task's call stamps its frame with.
    /// Reading the clock costs 45–70 ns on a VM, two a round trip over the
    /// wire; a stamp up to a turn old only brings a retransmission that much
    /// earlier (a duplicate the peer drops).
    @exclusivity(unchecked) var turnClock: UInt64 = clinux_monotonic_ns()

    /// The node's instances and the queues between them; `index` is this one's place.
    public let fabric: NodeFabric
    public let index: Int
    /// This instance's mark in a stream ring's writer/reader claim (never 0).
    let claimID: UInt32
    /// Messages for another instance whose queue was full, in order.
    @exclusivity(unchecked) var outbox: [[KernelMessage]]
    /// How long `select` spins on its references before suspending the task.
    @exclusivity(unchecked) package var selectSpin: Int = 2_000
    /// Whether `beginWrite` on a stream read on another node hands out the
    /// transport frame that will carry the message (where the transport lends
    /// frames: DPDK), instead of a ring slot that is copied into one.
    @exclusivity(unchecked) package var writesInPlace = true
    /// Whether a message from another node for a stream read here stays in the
    /// frame it arrived in (where the transport keeps frames: DPDK), the
    /// reader's `beginRead` viewing it there, instead of being copied into the
    /// stream's ring.
    @exclusivity(unchecked) package var readsInPlace = true
    /// Received frames this instance holds for messages not read yet, and the
    /// most it holds (beyond, messages are copied): a stream nobody reads must
    /// not take the transport's every buffer.
    @exclusivity(unchecked) package var framesHeld = 0
    package static let maxFramesHeld = 256
    /// Whether the node's other instances may sleep when idle (adaptive idle),
    /// so a ring shared with them must ring their doorbell; false when every
    /// instance busy-polls.
    @exclusivity(unchecked) package var peersMaySleep = true
    /// Peers that said they are leaving, in the poll now running.
    @exclusivity(unchecked) var leavingPeers: [InstanceID] = []
    /// Streams whose writer waits for frames to write in (`waitForFrame`).
    @exclusivity(unchecked) var frameWaiters: [ObjectID] = []
    /// Unretained views of the fabric's doorbells and of the queues into this
    /// instance. The data path rings peers and the spin loop checks queues; going
    /// through the (shared) fabric's arrays would retain and release objects that
    /// every core touches, bouncing their reference counts between caches.
    /// `fabric` keeps them alive.
    let bells: UnsafeMutablePointer<Unmanaged<Doorbell>>
    let inbound: UnsafeMutablePointer<Unmanaged<ControlQueue>>

    /// An instance over `pool`. It runs nothing until a loop polls it
    /// (`PollLoop`) or a thread adopts it (`adoptCurrentThread()`).
    ///
    /// - Parameters:
    ///   - fabric: the node's instances; by default a node of this instance alone.
    ///   - index: this instance's place in `fabric`.
    public init(id: InstanceID, pool: BufferPool, fabric: NodeFabric? = nil, index: Int = 0, logger: Logger? = nil) {
        let fabric = fabric ?? NodeFabric(instanceCount: 1)
        precondition(index >= 0 && index < fabric.instanceCount, "instance index outside the fabric")
        self.id = id
        self.nameService = NameService(local: id, siblings: fabric.instanceCount)
        self.pool = pool
        self.fabric = fabric
        self.index = index
        self.claimID = UInt32(index + 1)
        self.outbox = Array(repeating: [], count: fabric.instanceCount)
        self.objects = ObjectStore(reserve: 1024)
        self.logger = logger ?? Logger(label: "dios.instance.\(id)")
        self.doorbell = fabric.doorbells[index]
        self.executor = InstanceExecutor(doorbell: doorbell)
        let n = fabric.instanceCount
        bells = .allocate(capacity: n)
        for i in 0..<n { (bells + i).initialize(to: .passUnretained(fabric.doorbells[i])) }
        inbound = .allocate(capacity: max(n - 1, 1))
        var k = 0
        for peer in 0..<n where peer != index {
            (inbound + k).initialize(to: .passUnretained(fabric.queues[peer][index]!))
            k += 1
        }
        tasks.reserveCapacity(64)
        waiters.reserveCapacity(64)
        dirty.reserveCapacity(64)
    }

    deinit {
        bells.deallocate()
        inbound.deallocate()
    }

    /// Makes the calling thread the instance's thread: the polling loop does this
    /// when it starts; tests and benchmarks that drive an instance by hand do it too.
    public func adoptCurrentThread() { owner = pthread_self() }

    @inline(__always)
    func checkThread() {
        assert(owner.map { pthread_equal($0, pthread_self()) != 0 } ?? true, "kernel instance used off its thread")
    }

    // MARK: - Tasks

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
        if let slot = freeTasks.popLast() {
            record.generation = tasks[Int(slot)].generation
            tasks[Int(slot)] = record
            return TaskID(index: slot, generation: record.generation)
        }
        record.generation = 1
        tasks.append(record)
        return TaskID(index: UInt32(tasks.count - 1), generation: 1)
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
        finishTaskObject(tasks[i].object, status: status)
        for w in tasks[i].pauseWaiters { w.resume() }
        if let proxy = tasks[i].proxy { send(.exited(proxy: proxy.object, status: status), to: proxy.instance) }
        if let proxy = tasks[i].remoteProxy {
            // What the task wrote to streams read there goes first, as far as the
            // session's window allows, so its exit does not overtake it.
            flushBridges()
            sendRemote(.exited(proxy: proxy.object, status: status), to: proxy.peer)
        }
        // What was made for the task alone goes with it: the stream ends and
        // blob stand-ins made for a task started from another instance or node
        // (a stream's end drains to the other node first), and a task object
        // nothing here holds (the starter's proxy keeps the status).
        for end in tasks[i].madeEnds { retire(end) }
        if tasks[i].unheld { destroy(tasks[i].object) }
        tasks[i] = TaskRecord(generation: tasks[i].generation &+ 1)
        freeTasks.append(task.index)
        counters.tasksExited += 1
    }

    /// Tasks alive on this instance.
    public var taskCount: Int { tasks.count - freeTasks.count }
    /// Objects alive on this instance.
    public var objectCount: Int { objects.liveCount }

    // MARK: - Objects

    /// Creates an object record with a zeroed buffer from the pool, and names it.
    func makeObject(kind: ObjectKind, name: Name, bufferSize: Int, maxWriteSize: Int, flags: Flags) -> ObjectID? {
        guard let buffer = pool.allocate(bufferSize) else { return nil }
        // Reused buffers hold a former object's bytes: never hand those out.
        pool.address(of: buffer).initializeMemory(as: UInt8.self, repeating: 0, count: bufferSize)
        var record = ObjectRecord()
        record.kind = kind
        record.name = name
        record.buffer = buffer
        record.maxWriteSize = maxWriteSize
        record.persistent = flags.contains(.persistent)
        let id = objects.insert(record)
        names.insert(name, id)
        return id
    }

    /// Registers a program under `name` and returns the program object.
    package func registerProgram(_ name: Name, entry: @escaping TaskEntry) -> ObjectID {
        checkThread()
        programs.append(entry)
        var record = ObjectRecord()
        record.kind = .program
        record.name = name
        record.program = programs.count - 1
        record.ready = true
        let id = objects.insert(record)
        names.insert(name, id)
        return id
    }

    /// Removes an object's name and, once no transaction is open on it, its buffer and slot.
    func destroy(_ object: ObjectID) {
        let i = Int(object.index)
        guard objects.isLive(object) else { return }
        let name = objects.records[i].name
        unpublish(i)
        names.remove(name, object)
        if objects.records[i].bridge != .none && !objects.records[i].originHere {
            let key = RemoteEnd(peer: objects.records[i].remotePeer, origin: objects.records[i].remoteOrigin)
            if remoteEnds[key] == object {
                remoteEnds[key] = nil
                lastRemoteEnd = nil
            }
        }
        if let owner = objects.records[i].ownerElsewhere { standIns[RemoteEnd(peer: owner, origin: objects.records[i].remoteOrigin)] = nil }
        if objects.records[i].kind == .program, objects.records[i].program >= 0 {
            programs[objects.records[i].program] = nil
        }
        objects.records[i].deleted = true
        objects.records[i].version &+= 2
        markDirty(object)
        // A stream read on another node is drained to it first (the bridge pump
        // reclaims it once empty, after telling the other end it closed).
        if objects.records[i].bridge == .sends && objects.records[i].remoteFailure == nil { return }
        if objects.records[i].openTransactions == 0 { reclaim(object) }
    }

    /// Lets go of an end made for a task that exited (`madeEnds`) without
    /// closing the stream it belongs to: the stream is its creator's, who may
    /// hand it to another task. A stream end sending to another node drains
    /// there first.
    func retire(_ object: ObjectID) {
        guard objects.isLive(object) else { return }
        objects.records[Int(object.index)].keepStreamOpen = true
        destroy(object)
    }

    /// Frees a deleted object's buffer and slot. A stream ring shared with other
    /// instances is closed, and its memory kept until every end has let go.
    func reclaim(_ object: ObjectID) {
        let i = Int(object.index)
        if let ring = objects.records[i].ring, objects.records[i].crossInstance {
            if !objects.records[i].keepStreamOpen { ring.close() }
            let remaining = ring.adjustEnds(by: -1)
            if let owner = objects.records[i].ringOwner {
                // An attached end: the memory is the owner's to free.
                if remaining == 0 { send(.ringReleased(object: owner.object), to: owner.instance) }
                wakePeers(of: ring)
            } else if remaining > 0 {
                wakePeers(of: ring)
                objects.records[i].awaitingEnds = true
                return  // freed when `.ringReleased` arrives
            }
        }
        releaseHeldFrames(of: i, copyIn: false)
        if let buffer = objects.records[i].buffer { pool.free(buffer) }
        if let shadow = objects.records[i].shadow { pool.free(shadow) }
        objects.records[i].buffer = nil
        objects.records[i].shadow = nil
        objects.release(object)
    }

    func markDirty(_ object: ObjectID) {
        if !waiters.isEmpty { dirty.append(object.index) }
    }

    // MARK: - Reference helpers

    /// Resolves a reference of `task`, checking rights, and the object it names.
    @inline(__always)
    func resolve(_ task: TaskID, _ ref: Ref, _ rights: Rights) throws(CallError) -> (entry: ReferenceEntry, index: Int) {
        let t = try taskIndex(task)
        let entry: ReferenceEntry
        entry = try referenceEntry(t, ref, requiring: rights)
        guard objects.isLive(entry.object) else { throw .objectDeleted }
        return (entry, Int(entry.object.index))
    }

    func entry(for object: ObjectID, rights: Rights) -> ReferenceEntry {
        // Field by field: copying the whole record would retain and release its
        // references (ring, failure text) on every call that makes a reference.
        let i = Int(object.index)
        return ReferenceEntry(
            object: object, owner: objects.records[i].ownerElsewhere ?? id, kind: objects.records[i].kind, rights: rights,
            proximity: .localCore, maxWriteSize: objects.records[i].maxWriteSize, persistent: objects.records[i].persistent)
    }

    /// One of a task's references, checked to hold `rights`.
    @inline(__always)
    func referenceEntry(_ t: Int, _ ref: Ref, requiring rights: Rights = []) throws(CallError) -> ReferenceEntry {
        do throws(ReferenceError) { return try tasks[t].refs.entry(ref, requiring: rights) } catch { throw .reference(error) }
    }

    func insertRef(_ task: Int, _ entry: ReferenceEntry) throws(CallError) -> Ref {
        do throws(ReferenceError) { return try tasks[task].refs.insert(entry) } catch { throw .reference(error) }
    }
}

/// A task as the instance sees it.
struct TaskRecord {
    var generation: UInt32 = 1
    var live = false
    var trusted = false
    var refs = ReferenceTable()
    var object = ObjectID(index: 0, generation: 0)
    var label = ""
    var paused = false
    var stopping = false
    var pauseWaiters: [UnsafeContinuation<Void, Never>] = []
    var delegated: [Ref] = []
    var delegationWaiter: UnsafeContinuation<Void, Never>? = nil
    /// For a task started by another instance: its proxy object there.
    var proxy: (instance: Int, object: ObjectID)? = nil
    /// For a task started by an instance on another node: its proxy object there.
    var remoteProxy: (peer: InstanceID, object: ObjectID)? = nil
    /// Objects made for this task alone (ends of streams and stand-ins of blobs
    /// handed over with `run` from another instance or node): they go when it exits.
    var madeEnds: [ObjectID] = []
    /// Nothing here holds its task object (an attached task, or one started
    /// from another instance or node, whose proxy there keeps the status).
    var unheld = false
    var handle: Task<Void, Never>? = nil

    init(generation: UInt32) { self.generation = generation }

    init(trusted: Bool, object: ObjectID, label: String) {
        self.trusted = trusted
        self.object = object
        self.label = label
    }
}

struct TimerEntry: Comparable {
    var deadline: UInt64
    var object: ObjectID

    static func < (a: TimerEntry, b: TimerEntry) -> Bool { a.deadline < b.deadline }
    static func == (a: TimerEntry, b: TimerEntry) -> Bool { a.deadline == b.deadline && a.object == b.object }
}

/// A task suspended in `select` until one of `objects` changes.
struct Waiter {
    var task: TaskID
    var objects: [UInt32]
    var writable: Bool
    /// Some object is a ring shared with another instance: poll it.
    var shared: Bool
    var continuation: UnsafeContinuation<Void, Never>
}

/// What an instance has done, for `dios status` and the metrics.
public struct InstanceCounters: Sendable, Equatable {
    public init() {}
    public var calls: UInt64 = 0
    public var messagesIn: UInt64 = 0
    /// Of the messages from other nodes delivered into streams here, those left
    /// in the frame they arrived in (read in place, not copied).
    public var readInPlace: UInt64 = 0
    public var messagesOut: UInt64 = 0
    public var polls: UInt64 = 0
    public var idlePolls: UInt64 = 0
    public var tasksStarted: UInt64 = 0
    public var tasksExited: UInt64 = 0
    public var timersFired: UInt64 = 0
    /// `select` calls that had to suspend the task (the rest returned at once or while spinning).
    public var selectSuspends: UInt64 = 0
    /// Messages from other nodes refused: malformed, or for a stream gone here.
    public var remoteRefused: UInt64 = 0
    /// Name-service deltas of this node's other instances sent on to an
    /// instance of another node (one per delta and peer; see `NameService`).
    public var namesRelayed: UInt64 = 0
    /// Peers on other nodes that came up, and that failed.
    public var peersUp: UInt64 = 0
    public var peersDown: UInt64 = 0
}

extension KernelInstance {
    /// A summary of everything a call can change: each object's state and each
    /// task's table. Tests compare two of these to show a refused call changed nothing.
    package func stateFingerprint() -> [String] {
        checkThread()
        var out: [String] = []
        for i in objects.records.indices where objects.records[i].live {
            let r = objects.records[i]
            out.append(
                "o\(i)/\(r.generation) \(r.kind) v\(r.version) len\(r.length) sh\(r.sharedHolds) w\(r.writerOpen) "
                    + "x\(r.exclusive) rd\(r.readerOpen) open\(r.openTransactions) del\(r.deleted) "
                    + "q\(r.ring.map { "\($0.count)" } ?? "-") ready\(r.ready) dl\(r.deadline)")
        }
        for (i, t) in tasks.enumerated() where t.live {
            out.append("t\(i)/\(t.generation) p\(t.paused) s\(t.stopping) d\(t.delegated)")
            for (ref, e) in t.refs.references { out.append("  \(ref) \(e.object) \(e.rights) \(e.kind)") }
        }
        out.append("names \(names.count) free \(pool.buffersInUse) timers \(timers.count)")
        return out
    }
}
