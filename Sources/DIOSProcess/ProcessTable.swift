public import DIOSCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

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
        /// Of those, the data path's: reads and writes (begin, end, whole,
        /// abandoned). A trusted process working mapped streams makes none.
        public var dataCalls: UInt64 = 0
    }

    private let entries = Mutex<[Entry]>([])
    private let held = Mutex<(channels: Int, processes: Int)>((0, 0))
    /// How many ended entries are kept (the oldest go first, and their logs with them).
    public let keepEnded: Int

    public init(keepEnded: Int = 256) { self.keepEnded = keepEnded }

    public var all: [Entry] { entries.withLock { $0 } }

    public func entry(named name: Name) -> Entry? { entries.withLock { $0.last { $0.taskName == name } } }

    public func entry(labelled label: String) -> Entry? { entries.withLock { $0.last { $0.label == label } } }

    /// Channels (each a memfd, its mapping and a doorbell pipe) and process
    /// handles (each a pidfd and a watcher) this node holds now: both 0 once
    /// every task process has ended and been reaped.
    public var resourcesHeld: (channels: Int, processes: Int) { held.withLock { $0 } }

    func hold(channels: Int = 0, processes: Int = 0) {
        held.withLock {
            $0.channels += channels
            $0.processes += processes
        }
    }

    func add(_ e: Entry) {
        entries.withLock { list in list.append(e) }
    }

    /// Changes an entry; the oldest ended entries beyond `keepEnded` go.
    func update(_ name: Name, _ body: (inout Entry) -> Void) {
        entries.withLock { list in
            if let n = list.lastIndex(where: { $0.taskName == name }) { body(&list[n]) }
            var ended = list.lazy.filter { $0.state == .exited }.count
            while ended > keepEnded, let n = list.firstIndex(where: { $0.state == .exited }) {
                unlink(list[n].log)
                list.remove(at: n)
                ended -= 1
            }
        }
    }
}
