import DIOSCore
import DIOSWire
import Synchronization

/// A bounded single-producer/single-consumer queue of kernel messages from one
/// instance to another on the same node. Kernel-to-kernel control (start a task
/// there, it exited, pause it, a ring was released) travels here; stream
/// payloads never do — they stay in their `StreamRing`.
///
/// Exactly one instance pushes and one pops; `head` and `tail` are each written
/// by one side only, so two atomics (and no lock) suffice. That single-writer
/// discipline (one pushing instance, one popping) is what makes the slot
/// pointer safe to share, hence `@unchecked Sendable`.
final class ControlQueue: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<KernelMessage?>
    private let capacity: Int
    private let head = Atomic<Int>(0)  // written by the consumer
    private let tail = Atomic<Int>(0)  // written by the producer

    init(capacity: Int = 1024) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0)
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: nil, count: capacity)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Appends a message; false when full (the sender keeps it and retries).
    func push(_ message: KernelMessage) -> Bool {
        let t = tail.load(ordering: .relaxed)
        guard t - head.load(ordering: .acquiring) < capacity else { return false }
        slots[t & (capacity - 1)] = message
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// The oldest message, or nil.
    func pop() -> KernelMessage? {
        let h = head.load(ordering: .relaxed)
        guard h != tail.load(ordering: .acquiring) else { return nil }
        let message = slots[h & (capacity - 1)].take()
        head.store(h + 1, ordering: .releasing)
        return message
    }

    /// Whether a message waits (one atomic load: cheap enough for every poll).
    var isEmpty: Bool { head.load(ordering: .relaxed) == tail.load(ordering: .acquiring) }
}

/// An object handed to another instance of the node: what that instance needs
/// to make a local end of it.
struct Handoff: Sendable {
    /// A stream: its ring in the arena, and who owns the ring's memory.
    var ringOffset: Int
    var owner: InstanceID
    var object: ObjectID
    var name: Name
    var rights: Rights
    var maxWriteSize: Int
}

/// Messages between the kernel instances of one node.
enum KernelMessage: Sendable {
    /// Start `program` there as a task; `proxy` is the task object on the sender
    /// that stands for it.
    case run(proxy: ObjectID, program: Name, trusted: Bool, arguments: [Handoff], label: String, invocation: Invocation)
    /// The task for `proxy` started as `task` (or could not start: `error`).
    case started(proxy: ObjectID, task: TaskID)
    case failedToStart(proxy: ObjectID, error: CallError)
    /// The task for `proxy` exited with `status`.
    case exited(proxy: ObjectID, status: Int32)
    /// Pause, resume or stop a task of the receiver.
    case pause(task: TaskID, resume: Bool)
    case stop(task: TaskID)
    /// Every end of the ring of the receiver's stream `object` is gone.
    case ringReleased(object: ObjectID)
    /// A name-service delta about the sender's own objects.
    case name(NameDelta)
    /// A call on a blob of the receiver's through a proxy on the sender, or
    /// its answer: the messages nodes exchange for blobs (`blobRead`,
    /// `blobData`, ...), with the bytes that follow them.
    case blob(RemoteMessage, body: [UInt8])
}

/// What the instances of one node share, fixed at boot: the doorbells that wake
/// them and the control queues between each ordered pair. Each instance's state
/// stays its own.
public final class NodeFabric: Sendable {
    public let instanceCount: Int
    let doorbells: [Doorbell]
    /// `queues[from][to]`; nil on the diagonal.
    let queues: [[ControlQueue?]]

    public init(instanceCount: Int) {
        precondition(instanceCount > 0)
        self.instanceCount = instanceCount
        doorbells = (0..<instanceCount).map { _ in Doorbell() }
        queues = (0..<instanceCount).map { from in
            (0..<instanceCount).map { to in from == to ? nil : ControlQueue() }
        }
    }
}
