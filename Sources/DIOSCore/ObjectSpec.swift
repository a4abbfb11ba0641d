/// What `create` makes. Programs are registered with the node and tasks are made
/// by `run`, so neither appears here.
public enum ObjectSpec: Sendable, Equatable {
    /// A blob of `size` bytes (zero-filled); writes may be up to `size` bytes.
    case blob(size: Int)
    /// A stream carrying messages of up to `messageSize` bytes, `depth` of them in flight.
    case stream(messageSize: Int, depth: Int = 64)
    /// A timer that becomes readable `after` this long.
    case timer(after: Duration)

    public var kind: ObjectKind {
        switch self {
        case .blob: .blob
        case .stream: .stream
        case .timer: .timer
        }
    }
}

/// A task within the instance that runs it: slot plus generation.
public struct TaskID: Hashable, Sendable, CustomStringConvertible {
    public var index: UInt32
    public var generation: UInt32

    @inlinable public init(index: UInt32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }

    public var description: String { "task#\(index)/\(generation)" }
}

extension Duration {
    /// Whole nanoseconds, saturating; negative durations count as zero.
    @inlinable public var nanoseconds: UInt64 {
        let (s, a) = components
        if s < 0 { return 0 }
        let ns = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        if ns.overflow { return .max }
        return ns.partialValue &+ UInt64(max(a, 0) / 1_000_000_000)
    }
}
