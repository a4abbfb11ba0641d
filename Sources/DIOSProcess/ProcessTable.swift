public import DIOSCore
import Synchronization

/// What a node knows of its task processes, live and ended: for `dios ps`,
/// `dios logs` and `dios kill`. Written by the instances' servers, read by
/// the control socket's thread.
public final class ProcessTable: Sendable {
    /// One task process.
    public struct Entry: Sendable, Equatable {
        public enum State: String, Sendable {
            case running, paused, exited
        }
        public var instance: InstanceID
        public var task: TaskID
        /// The name of its task object (what `dios kill` and `dios logs` take).
        public var taskName: Name
        public var program: String
        /// The label `run` gave it.
        public var label: String
        public var pid: Int32
        public var trusted: Bool
        public var state: State
        /// The exit status once ended (`ProcessExit.status`).
        public var status: Int32?
        public var log: String
        /// References in its table when last served.
        public var references: Int
        /// Submissions served.
        public var calls: UInt64
    }

    private let entries = Mutex<[Entry]>([])
    /// How many ended entries are kept (the oldest go first).
    public let keepEnded: Int

    public init(keepEnded: Int = 256) { self.keepEnded = keepEnded }

    public var all: [Entry] { entries.withLock { $0 } }

    public func entry(named name: Name) -> Entry? { entries.withLock { $0.last { $0.taskName == name } } }

    public func entry(labelled label: String) -> Entry? { entries.withLock { $0.last { $0.label == label } } }

    func add(_ e: Entry) {
        entries.withLock { list in
            list.append(e)
            let ended = list.lazy.filter { $0.state == .exited }.count
            if ended > keepEnded, let n = list.firstIndex(where: { $0.state == .exited }) { list.remove(at: n) }
        }
    }

    func update(_ name: Name, _ body: (inout Entry) -> Void) {
        entries.withLock { list in
            if let n = list.lastIndex(where: { $0.taskName == name }) { body(&list[n]) }
        }
    }
}
