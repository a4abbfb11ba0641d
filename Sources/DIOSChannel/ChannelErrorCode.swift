public import DIOSCore

/// The error codes of the C ABI (`enum dios_error`), one per `CallError` case
/// and reference error, and two of the channel's own.
public enum ChannelErrorCode: Int32, Sendable, CaseIterable {
    case referenceInvalid = 1, referenceStale, missingRight, widening, tableFull, untrusted, wrongKind
    case wouldBlock, busy, objectDeleted, tooLarge, noSuchName, outOfMemory, invalidArgument
    case notInTransaction, taskStopped, unreachable, outsideView, badEntry, noChannel

    /// The code for a refused call and the number that qualifies it.
    public static func of(_ error: CallError) -> (ChannelErrorCode, UInt32) {
        switch error {
        case .reference(let r):
            switch r {
            case .invalid: (.referenceInvalid, 0)
            case .stale: (.referenceStale, 0)
            case .missingRight(_, let needed, _): (.missingRight, UInt32(needed.rawValue))
            case .widening(_, let requested, _): (.widening, UInt32(requested.rawValue))
            case .tableFull: (.tableFull, 0)
            }
        case .untrusted: (.untrusted, 0)
        case .wrongKind(_, let kind): (.wrongKind, UInt32(kind.rawValue))
        case .wouldBlock: (.wouldBlock, 0)
        case .busy: (.busy, 0)
        case .objectDeleted: (.objectDeleted, 0)
        case .tooLarge(_, let maximum): (.tooLarge, UInt32(clamping: maximum))
        case .noSuchName: (.noSuchName, 0)
        case .outOfMemory(let requested): (.outOfMemory, UInt32(clamping: requested))
        case .invalidArgument: (.invalidArgument, 0)
        case .notInTransaction: (.notInTransaction, 0)
        case .taskStopped: (.taskStopped, 0)
        case .unreachable(let i, _): (.unreachable, UInt32(i.node) << 16 | UInt32(i.core))
        case .outsideView(_, _, let size): (.outsideView, UInt32(clamping: size))
        }
    }
}

extension ChannelErrorCode {
    /// The `CallError` a process reports for this code from a call to
    /// `call` on `ref` (of `requested` bytes, for `name`): what the kernel
    /// knew and the code does not carry (the rights held, a peer's reason)
    /// is said to be unknown.
    public func callError(_ call: Call, ref: Ref, requested: Int = 0, name: Name = Name(words: (0, 0, 0, 0)))
        -> CallError
    {
        switch self {
        case .referenceInvalid: .reference(.invalid(ref))
        case .referenceStale: .reference(.stale(ref))
        case .missingRight: .reference(.missingRight(ref, needed: [], held: []))
        case .widening: .reference(.widening(ref, requested: [], held: []))
        case .tableFull: .reference(.tableFull)
        case .untrusted: .untrusted(call)
        case .wrongKind: .wrongKind(call, .blob)
        case .wouldBlock: .wouldBlock
        case .busy: .busy
        case .objectDeleted: .objectDeleted
        case .tooLarge: .tooLarge(requested: requested, maximum: 0)
        case .noSuchName: .noSuchName(name)
        case .outOfMemory: .outOfMemory(requested: requested)
        case .invalidArgument: .invalidArgument("the kernel refused an argument of \(call.rawValue)")
        case .notInTransaction: .notInTransaction
        case .taskStopped: .taskStopped
        case .unreachable: .unreachable(InstanceID(node: 0, core: 0), reason: "reported through the channel")
        case .outsideView: .outsideView(offset: 0, count: requested, viewSize: 0)
        case .badEntry: .invalidArgument("the kernel could not decode the \(call.rawValue) entry")
        case .noChannel: .invalidArgument("this process is not a DIOS task, or its channel is closed")
        }
    }
}
