import DIOSCore

/// A task as the instance sees it.
struct TaskRecord {
    var generation: UInt32 = 1
    var live = false
    var trusted = false
    var refs = ReferenceTable()
    var object = ObjectID(index: 0, generation: 0)
    var label = ""
    /// The arguments `run` gave an executable's task process.
    var invocation: Invocation = Invocation()
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
