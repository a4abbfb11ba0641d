import CLinux
public import DIOSCore

/// One call on a reference, as the instance saw it: an event of the trace
/// that `dios trace` collects (see `TraceRing`).
public struct TraceEvent: Sendable, Equatable {
    /// When, in nanoseconds of the monotonic clock (every instance of a node
    /// reads the same clock).
    public var time: UInt64
    /// Who called: known at the begin calls. An end call names only its
    /// transaction; the export pairs it with the begin that opened it.
    public var task: TaskID?
    /// The object the reference names (all zero for a refused call whose
    /// reference named nothing).
    public var object: Name
    public var call: Call
    /// The bytes of the view (`beginRead`, `endRead`), asked for
    /// (`beginWrite`) or committed (`endWrite`).
    public var bytes: UInt32
    public var result: TraceResult
}

/// How a traced call ended.
public enum TraceResult: UInt8, Sendable, CaseIterable {
    case ok
    /// `endRead` of a weak read overlapped by a write, or an end on an object
    /// deleted meanwhile: the transaction did not hold.
    case inconsistent
    /// The call threw (`.wouldBlock` is not traced: a task polling an empty
    /// stream would fill the ring with it).
    case refused

    public var label: String {
        switch self {
        case .ok: "ok"
        case .inconsistent: "inconsistent"
        case .refused: "refused"
        }
    }
}

/// What one instance traced since its last dump, oldest first.
public struct InstanceTrace: Sendable {
    public let instance: InstanceID
    public let events: [TraceEvent]
    /// Events overwritten before a dump read them (the ring is bounded; a
    /// dump says what it lost rather than losing it silently).
    public let lost: UInt64
    /// The labels of the tasks the events name, as `run` gave them.
    public let labels: [TaskID: String]
}

/// An instance's trace: a fixed ring of events written by the instance's
/// thread alone, as it makes the calls, and read on that thread too (a dump is
/// a job on the instance, like every other question to it), so it needs no
/// lock and no atomics, and recording allocates nothing. When full, the
/// oldest events are overwritten and counted as lost.
final class TraceRing {
    let capacity: Int
    private let events: UnsafeMutablePointer<TraceEvent>
    /// Events recorded since the last drain (more than `capacity`: some lost).
    private var recorded: UInt64 = 0
    /// The labels of tasks that ended since the last drain, which the events
    /// may name (a task's record is reused once it ends).
    var ended: [TaskID: String] = [:]

    /// `capacity` is rounded up to a power of two.
    init(capacity: Int) {
        self.capacity = 1 << (Int.bitWidth - max(1, capacity - 1).leadingZeroBitCount)
        events = .allocate(capacity: self.capacity)
        events.initialize(
            repeating: TraceEvent(time: 0, task: nil, object: .zero, call: .create, bytes: 0, result: .ok),
            count: self.capacity)
    }

    deinit { events.deallocate() }

    @inline(__always)
    func record(_ event: TraceEvent) {
        events[Int(recorded & UInt64(capacity - 1))] = event
        recorded &+= 1
    }

    /// The events in order, and how many were overwritten; empties the ring.
    func drain() -> (events: [TraceEvent], lost: UInt64) {
        let kept = Int(min(recorded, UInt64(capacity)))
        let first = recorded - UInt64(kept)
        let out = (0..<kept).map { events[Int((first + UInt64($0)) & UInt64(capacity - 1))] }
        recorded = 0
        return (out, first)
    }
}

extension Name {
    /// All zero: no object.
    static let zero = Name(words: (0, 0, 0, 0))
}

extension KernelInstance {
    /// Starts recording calls (again, keeping what is recorded), in a ring of
    /// `capacity` events made now if there is none of that size.
    package func startTracing(capacity: Int) {
        checkThread()
        if traceRing == nil || traceRing!.capacity < capacity { traceRing = TraceRing(capacity: capacity) }
        tracing = true
    }

    /// Stops recording; what was recorded stays for `drainTrace`.
    package func stopTracing() {
        checkThread()
        tracing = false
    }

    /// What was recorded since the last drain, and empties the ring.
    package func drainTrace() -> InstanceTrace {
        checkThread()
        guard let ring = traceRing else { return InstanceTrace(instance: id, events: [], lost: 0, labels: [:]) }
        let (events, lost) = ring.drain()
        var labels: [TaskID: String] = [:]
        for case let task? in events.lazy.map(\.task) where labels[task] == nil {
            labels[task] = ring.ended[task] ?? label(of: task)
        }
        ring.ended = [:]
        return InstanceTrace(instance: id, events: events, lost: lost, labels: labels)
    }

    /// Records a begin call that returned `grant` (only while `tracing`).
    @inline(never)
    func traceBegin(_ call: Call, _ task: TaskID, _ grant: IOGrant, bytes: Int) {
        traceRing?.record(
            TraceEvent(
                time: clinux_monotonic_ns(), task: task, object: objects.records[Int(grant.object.index)].name,
                call: call, bytes: UInt32(truncatingIfNeeded: bytes), result: .ok))
    }

    /// Records a begin call that threw (only while `tracing`).
    @inline(never)
    func traceRefused(_ call: Call, _ task: TaskID, _ ref: Ref, _ error: CallError, bytes: Int) {
        guard error != .wouldBlock else { return }
        var object = Name.zero
        if let t = try? taskIndex(task), let entry = try? referenceEntry(t, ref), objects.exists(entry.object) {
            object = objects.records[Int(entry.object.index)].name
        }
        traceRing?.record(
            TraceEvent(
                time: clinux_monotonic_ns(), task: task, object: object, call: call,
                bytes: UInt32(truncatingIfNeeded: max(0, bytes)), result: .refused))
    }

    /// Records an end call (only while `tracing`). The record may be gone
    /// by now (deleted and reclaimed): then its name is not known.
    @inline(never)
    func traceEnd(_ call: Call, bytes: Int, held: Bool, name: Name) {
        traceRing?.record(
            TraceEvent(
                time: clinux_monotonic_ns(), task: nil, object: name, call: call,
                bytes: UInt32(truncatingIfNeeded: bytes), result: held ? .ok : .inconsistent))
    }

    /// The name of the object a grant is on, read before its end call may
    /// reclaim the record.
    @inline(never)
    func tracedName(_ grant: IOGrant) -> Name {
        objects.exists(grant.object) ? objects.records[Int(grant.object.index)].name : .zero
    }
}
