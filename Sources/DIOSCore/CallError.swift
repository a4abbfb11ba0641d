/// The eleven calls that a task makes, for error messages and counters.
public enum Call: String, Sendable, CaseIterable {
    case create, lookup, beginRead, endRead, beginWrite, endWrite, run, pause, copy, delete, select
}

/// Why a call failed. A failed call changes nothing in the kernel.
public enum CallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reference is invalid, stale, lacks a right, or a copy tried to widen it.
    case reference(ReferenceError)
    /// `lookup` and `run` are for trusted tasks only.
    case untrusted(Call)
    /// The reference names an object of another kind than the call works on.
    case wrongKind(Call, ObjectKind)
    /// The object cannot do this now (an empty or full stream, a held object, an
    /// unexpired timer); retry, or `select` on the reference to wait.
    case wouldBlock
    /// The caller already has an unfinished transaction that excludes this one
    /// (a second writer on the same object).
    case busy
    /// The object was deleted (by another holder) after the reference was made.
    case objectDeleted
    /// A write larger than the reference's maximum write size.
    case tooLarge(requested: Int, maximum: Int)
    /// `lookup` found no reachable instance of the name.
    case noSuchName(Name)
    /// The memory pools have no buffer of the size asked for.
    case outOfMemory(requested: Int)
    /// A call argument was out of range; the text says which.
    case invalidArgument(String)
    /// The transaction is not the caller's open one (already ended, or another task's).
    case notInTransaction
    /// The task is being stopped (the node is shutting down or the task was deleted).
    case taskStopped
    /// The instance at the other end (on another node) stopped answering or
    /// restarted: what was in flight to it is lost, and the text says why.
    case unreachable(InstanceID, reason: String)
    /// A transaction's checked accessor was asked for `count` bytes at `offset`
    /// of a view of `viewSize` bytes: nothing was read or written.
    case outsideView(offset: Int, count: Int, viewSize: Int)

    public var description: String {
        switch self {
        case .reference(let e): e.description
        case .untrusted(let call): "\(call.rawValue) is for trusted tasks only"
        case .wrongKind(let call, let kind): "\(call.rawValue) does not apply to a \(kind)"
        case .wouldBlock: "the object is not ready; select on it to wait"
        case .busy: "another transaction holds the object"
        case .objectDeleted: "the object was deleted"
        case .tooLarge(let r, let m): "write of \(r) bytes exceeds the maximum of \(m)"
        case .noSuchName(let n): "no reachable instance of \(n)"
        case .outOfMemory(let r): "no buffer of \(r) bytes left in the pools"
        case .invalidArgument(let s): "invalid argument: \(s)"
        case .notInTransaction: "no such open transaction"
        case .taskStopped: "the task is being stopped"
        case .unreachable(let i, let reason): "instance \(i) is unreachable: \(reason)"
        case .outsideView(let offset, let count, let size):
            "\(count) bytes at offset \(offset) lie outside the view of \(size) bytes"
        }
    }
}
