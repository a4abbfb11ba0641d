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

/// What a program that is an executable gets from the `run` that starts it:
/// its arguments (`argv[1...]`) and environment entries (`KEY=VALUE`), which
/// go with the run wherever it starts and are added to its node's own. A
/// closure program ignores both.
public struct Invocation: Sendable, Equatable {
    public var commandLine: [String]
    public var environment: [String]

    public init(commandLine: [String] = [], environment: [String] = []) {
        self.commandLine = commandLine
        self.environment = environment
    }

    /// The most arguments, and environment entries, one run carries.
    public static let maxEntries = 256
    /// The longest argument or entry, in UTF-8 bytes.
    public static let maxLength = 1024

    /// Nil when every argument and entry may be carried, else why not: too
    /// many or too long, a NUL byte, an entry that is not `KEY=VALUE`, or a
    /// `DIOS_` key (the kernel's own, naming the process's channel).
    public var refusal: String? {
        if commandLine.count > Self.maxEntries || environment.count > Self.maxEntries {
            return "a run carries at most \(Self.maxEntries) arguments and \(Self.maxEntries) environment entries"
        }
        for text in commandLine + environment {
            if text.utf8.count > Self.maxLength {
                return "an argument or environment entry of over \(Self.maxLength) bytes"
            }
            if text.utf8.contains(0) { return "an argument or environment entry holds a NUL byte" }
        }
        for entry in environment {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                return "environment entry \"\(entry.prefix(64))\" is not KEY=VALUE"
            }
            if entry[..<eq].hasPrefix("DIOS_") { return "environment key \(entry[..<eq]) is reserved for DIOS" }
        }
        return nil
    }
}
