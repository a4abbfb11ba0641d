public import DIOSConfig
public import DIOSCore
public import DIOSProcess
public import Logging

/// How a node is set up.
public struct NodeConfiguration: Sendable {
    /// This node's number in the cluster.
    public var node: UInt16 = 0
    /// One kernel instance per entry, each polling on that CPU. Empty: one
    /// instance, not pinned.
    public var cores: [Int] = []
    /// Pin each instance's thread to its CPU.
    public var pin: Bool = true
    /// Bytes of hugepage memory for the node's arena (split evenly between instances).
    public var arenaSize: Int = 64 << 20
    /// What the polling loops do when idle.
    public var idlePolicy: IdlePolicy = .adaptive
    public var logger = Logger(label: "dios.node")
    /// Called on each instance's polling thread (with the instance's index)
    /// once it is pinned, before it polls: e.g. to register it with DPDK.
    public var instanceThreadStarted: (@Sendable (Int) -> Void)? = nil
    /// Called on each instance's polling thread as it ends.
    public var instanceThreadEnding: (@Sendable (Int) -> Void)? = nil
    /// Called on an instance's polling thread each time its replica takes in a
    /// name another instance created, with the instance and the name: from then
    /// on its `lookup` finds it. For measuring how fast names spread
    /// (`dios bench names`); nil costs nothing.
    public var nameApplied: (@Sendable (InstanceID, Name) -> Void)? = nil
    /// Whether a task's `beginWrite` on a stream read on another node hands out
    /// the transport frame that carries the message, so it is sent from where
    /// the task wrote it (on transports that lend frames: DPDK). False: every
    /// such message is written into the stream's ring and copied into a frame.
    public var writesInPlace = true
    /// Whether a message from another node stays in the frame it arrived in,
    /// the reading task's `beginRead` viewing it there (on transports that keep
    /// received frames: DPDK). False: it is copied into the stream's ring.
    public var readsInPlace = true
    /// How executables run as task processes (`Node.register(_ executable:)`):
    /// where their logs go, what environment they get.
    public var processes = ProcessOptions()

    public init() {}

    /// How many instances the node runs.
    public var instanceCount: Int { max(cores.count, 1) }
}

extension NodeConfiguration {
    /// The configuration a node file describes (`diosd --config FILE`), with
    /// `logger` for the node's messages.
    public init(_ file: NodeFile, logger: Logger) {
        self.init()
        node = file.node
        cores = file.cores
        pin = file.pin
        arenaSize = file.arenaMiB << 20
        idlePolicy = file.idle
        self.logger = logger
        processes = ProcessOptions(logDirectory: file.taskLogs)
    }
}
