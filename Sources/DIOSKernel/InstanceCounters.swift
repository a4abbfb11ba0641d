/// What an instance has done, for `dios status` and the metrics.
public struct InstanceCounters: Sendable, Equatable {
    public init() {}
    public var calls: UInt64 = 0
    /// Stream messages read by tasks here, each once (wherever it was written).
    public var messagesIn: UInt64 = 0
    /// Of the messages from other nodes delivered into streams here, those left
    /// in the frame they arrived in (read in place, not copied).
    public var readInPlace: UInt64 = 0
    /// Stream messages written by tasks here, each once (wherever it is read).
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
