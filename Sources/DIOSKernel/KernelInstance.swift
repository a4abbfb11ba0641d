import CLinux
public import DIOSCore
public import DIOSMemory
package import DIOSWire
import HeapModule
public import Logging

#if canImport(Glibc)
import Glibc
#endif

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
///
/// Words used for other instances throughout the kernel: **remote** means on
/// another node (reached over the wire: `remoteNode`, bridged streams);
/// **sibling** means another instance of this node (reached over the fabric:
/// `siblingInstance`, `runOnSibling`); **peer** means either (`sendToPeer`,
/// `peerCall`, `peerTask`, a blob held by a peer).
public final class KernelInstance: @unchecked Sendable {
    public let id: InstanceID
    public let logger: Logger
    @exclusivity(unchecked) package var pool: BufferPool
    @exclusivity(unchecked) var objects: ObjectStore
    @exclusivity(unchecked) var tasks: [TaskRecord] = []
    @exclusivity(unchecked) var taskSlots = SlotAllocator()
    /// name → instances of it held here. Becomes the name-service replica.
    @exclusivity(unchecked) var names = NameTable(reserve: 1024)
    @exclusivity(unchecked) var nameSource = NameSource()
    @exclusivity(unchecked) var programs: [TaskEntry?] = []
    /// How this node gets a program another node asks it to run and it
    /// lacks: fetches `name` from `peer` for instance `index`, registers it,
    /// and returns nil, or why it could not. Set by the node; nil: refused.
    @exclusivity(unchecked) package var fetchProgram: (@Sendable (Name, InstanceID, Int) async -> String?)? = nil
    @exclusivity(unchecked) var timers = Heap<TimerEntry>()
    @exclusivity(unchecked) var waiters: [Waiter] = []
    @exclusivity(unchecked) var dirty: [UInt32] = []
    package let executor: InstanceExecutor
    let doorbell: Doorbell
    @exclusivity(unchecked) package var counters = InstanceCounters()
    /// `counters` and a few sizes, as other threads may read them (see `CounterBoard`).
    public let board = CounterBoard()
    /// Whether calls are recorded in `traceRing` now (`startTracing`); off,
    /// the data path pays one test of this flag per call.
    @exclusivity(unchecked) var tracing = false
    @exclusivity(unchecked) var traceRing: TraceRing? = nil
    private var owner: pthread_t?
    /// The wire to instances on other nodes (nil: this node stands alone).
    @exclusivity(unchecked) var wire: WireEndpoint? = nil
    /// What this instance's wire endpoint refused before any session saw it
    /// (zero without a wire). Read on the instance's thread.
    package var frameCounters: EndpointCounters { wire?.counters ?? EndpointCounters() }
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
    @exclusivity(unchecked) var peerReadHolds: [RemoteEnd: Int32] = [:]
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
    /// Task processes' channels this instance polls, and the epoll set of
    /// their doorbells (-1 until the first).
    @exclusivity(unchecked) var channels: [ChannelSlot] = []
    @exclusivity(unchecked) var channelBells: Int32 = -1
    /// Sides of local streams that trusted task processes work themselves.
    @exclusivity(unchecked) var streamMaps: [StreamMap] = []
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
        if channelBells >= 0 { close(channelBells) }
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
}
