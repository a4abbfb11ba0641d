import CDIOSTask
import DIOSChannel
public import DIOSCore

/// The task API for a Swift program that runs as a DIOS task process: the
/// calls of `TaskContext`, over the process's channel to its kernel instance
/// (through libdios, so a trusted process reads and writes local streams in
/// place, as a C program does).
///
/// The calls block where `TaskContext`'s suspend (`select`, `read`, `write`):
/// a task process is an ordinary program with threads of its own. Calls may be
/// made from any thread; those that cross the channel are serialised.
///
///     guard let task = ProcessTask.current else { fatalError("not started by DIOS") }
///     let out = try task.delegated()[0]
///     _ = try task.write(Array("hello".utf8), to: out)
public struct ProcessTask: Sendable {
    /// This process's task, or nil when it was not started by DIOS (it has no channel).
    public static var current: ProcessTask? { dios_is_task() != 0 ? ProcessTask() : nil }

    private init() {}

    /// Whether the task is trusted (may `lookup` and `run`, works local streams in place).
    public var isTrusted: Bool { dios_is_trusted() != 0 }

    /// Where this process maps its node's arena (trusted tasks only): the
    /// views of local streams lie in it.
    public var arena: UnsafeRawBufferPointer? {
        var base: UnsafeMutableRawPointer? = nil
        var size = 0
        guard dios_arena_span(&base, &size) == 0, let base else { return nil }
        return UnsafeRawBufferPointer(start: base, count: size)
    }

    // MARK: The eleven calls

    /// `create`: a new object; its name and a reference with every right.
    public func create(_ spec: ObjectSpec, flags: Flags = []) throws(CallError) -> (name: Name, ref: Ref) {
        var c = Self.spec(spec)
        var name = dios_name()
        var ref = dios_ref()
        try check(dios_create(&c, flags.rawValue, &name, &ref), .create)
        return (Self.name(name), Self.ref(ref))
    }

    /// `create` under a name of the caller's choosing.
    public func create(_ spec: ObjectSpec, named name: Name, flags: Flags = []) throws(CallError) -> Ref {
        var c = Self.spec(spec)
        var n = Self.cName(name)
        var ref = dios_ref()
        try check(dios_create_named(&c, &n, flags.rawValue, &ref), .create)
        return Self.ref(ref)
    }

    /// `lookup` (trusted tasks only): references to the reachable instances of `name`.
    public func lookup(_ name: Name, flags: Flags = []) throws(CallError) -> [Ref] {
        var n = Self.cName(name)
        var refs = [dios_ref](repeating: dios_ref(), count: 64)
        var found = 0
        try check(dios_lookup(&n, flags.rawValue, &refs, refs.count, &found), .lookup, name: name)
        return refs.prefix(min(found, refs.count)).map(Self.ref)
    }

    /// `beginRead`: a view of the object's bytes (a stream's next message).
    public func beginRead(_ ref: Ref, flags: Flags = []) throws(CallError) -> ProcessReadTransaction {
        var t = dios_txn()
        try check(dios_begin_read(Self.cRef(ref), flags.rawValue, &t), .beginRead, ref: ref)
        return ProcessReadTransaction(txn: t, ref: ref)
    }

    /// `endRead`: whether what was read is consistent (a stream's message is consumed).
    public func endRead(_ transaction: consuming ProcessReadTransaction) -> Bool { transaction.end() }

    /// `beginWrite`: a writable view of `size` bytes.
    public func beginWrite(_ ref: Ref, size: Int, flags: Flags = []) throws(CallError) -> ProcessWriteTransaction {
        guard size >= 0 else { throw .invalidArgument("a write of \(size) bytes") }
        var t = dios_txn()
        try check(dios_begin_write(Self.cRef(ref), size, flags.rawValue, &t), .beginWrite, ref: ref, size: size)
        return ProcessWriteTransaction(txn: t, ref: ref)
    }

    /// `endWrite`: publishes the write (its `length` bytes); true when committed.
    public func endWrite(_ transaction: consuming ProcessWriteTransaction) -> Bool { transaction.end() }

    /// `run` (trusted tasks only): starts a program as a new task, `arguments`
    /// delegated to it; on this instance, instance `core` of this node, or
    /// instance `core` of node `node`.
    public func run(
        _ program: Ref, arguments: [Ref] = [], flags: Flags = [], node: Int? = nil, core: Int? = nil
    ) throws(CallError) -> Ref {
        let args = arguments.map(Self.cRef)
        var task = dios_ref()
        let r = args.withUnsafeBufferPointer {
            dios_run(
                Self.cRef(program), $0.baseAddress, $0.count, flags.rawValue, Int32(node ?? -1), Int32(core ?? -1),
                &task)
        }
        try check(r, .run, ref: program)
        return Self.ref(task)
    }

    /// `pause` a task (with `.resume`, continue it).
    public func pause(_ task: Ref, flags: Flags = []) throws(CallError) {
        try check(dios_pause(Self.cRef(task), flags.rawValue), .pause, ref: task)
    }

    /// Continues a paused task.
    public func resume(_ task: Ref) throws(CallError) { try pause(task, flags: .resume) }

    /// `copy`: delegates `refs` to `task`, with `rights` narrowed (nil: as held).
    @discardableResult
    public func copy(_ refs: [Ref], to task: Ref, rights: Rights? = nil, flags: Flags = []) throws(CallError) -> [Ref] {
        let input = refs.map(Self.cRef)
        var out = [dios_ref](repeating: dios_ref(), count: refs.count)
        let r = input.withUnsafeBufferPointer {
            dios_copy(
                $0.baseAddress, $0.count, Self.cRef(task), rights.map { UInt32($0.rawValue) } ?? DIOS_RIGHTS_AS_HELD,
                flags.rawValue, &out)
        }
        try check(r, .copy, ref: task)
        return out.map(Self.ref)
    }

    /// `delete` the object (with `.referenceOnly`, drop only the reference).
    public func delete(_ ref: Ref, flags: Flags = []) throws(CallError) {
        try check(dios_delete(Self.cRef(ref), flags.rawValue), .delete, ref: ref)
    }

    /// `select`: waits until one of `refs` is readable (with `.writable`,
    /// writable) and returns it.
    public func select(_ refs: [Ref], flags: Flags = []) throws(CallError) -> Ref {
        guard !refs.isEmpty else { throw .invalidArgument("select needs at least one reference") }
        let c = refs.map(Self.cRef)
        var ready = 0
        try check(c.withUnsafeBufferPointer { dios_select($0.baseAddress, $0.count, flags.rawValue, &ready) }, .select)
        return refs[ready]
    }

    // MARK: Conveniences, as TaskContext has them

    /// A reference with fewer rights.
    public func restrict(_ ref: Ref, to rights: Rights) throws(CallError) -> Ref {
        var out = dios_ref()
        try check(dios_restrict(Self.cRef(ref), UInt32(rights.rawValue), &out), .copy, ref: ref)
        return Self.ref(out)
    }

    /// What the task's table says of a reference: its kind, rights and largest write.
    public func describe(_ ref: Ref) throws(CallError) -> (kind: ObjectKind, rights: Rights, maxWriteSize: Int) {
        var e = dios_entry()
        try check(dios_describe(Self.cRef(ref), &e), .select, ref: ref)
        return (
            ObjectKind(rawValue: UInt8(e.kind.rawValue)) ?? .blob,
            Rights(rawValue: UInt8(truncatingIfNeeded: e.rights)),
            Int(e.max_write_size)
        )
    }

    /// The references delegated to this task (by `run` or `copy`), oldest first.
    public func delegated() throws(CallError) -> [Ref] {
        var refs = [dios_ref](repeating: dios_ref(), count: ChannelLayout.maxReferencesPerCall)
        var count = 0
        try check(dios_delegated(&refs, refs.count, &count), .run)
        return refs.prefix(min(count, refs.count)).map(Self.ref)
    }

    /// Writes one message (or a whole blob), waiting while the reference is
    /// not writable; true when committed.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>, to ref: Ref, flags: Flags = []) throws(CallError) -> Bool {
        let array = Array(bytes)
        let r = array.withUnsafeBytes { dios_write(Self.cRef(ref), $0.baseAddress, $0.count, flags.rawValue) }
        try check(r, .beginWrite, ref: ref, size: array.count)
        return r == 1
    }

    /// Reads one message (or a blob's bytes, until consistent), waiting while
    /// there is nothing to read.
    public func read(_ ref: Ref, flags: Flags = []) throws(CallError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: ChannelLayout.windowArea)
        var length = 0
        let r = buffer.withUnsafeMutableBytes {
            dios_read(Self.cRef(ref), $0.baseAddress, $0.count, &length, flags.rawValue)
        }
        try check(r, .beginRead, ref: ref)
        return Array(buffer.prefix(length))
    }

    /// Waits for a task to end and returns its status.
    public func exitStatus(of task: Ref) throws(CallError) -> Int64 {
        let bytes = try read(task)
        guard bytes.count >= 8 else { throw .invalidArgument("a task's value is its 8-byte status") }
        return bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }

    // MARK: Between Swift and C

    static func cRef(_ r: Ref) -> dios_ref { dios_ref(slot: r.slot, generation: r.generation) }
    static func ref(_ r: dios_ref) -> Ref { Ref(slot: r.slot, generation: r.generation) }

    static func cName(_ n: Name) -> dios_name { dios_name(words: (n.words.0, n.words.1, n.words.2, n.words.3)) }
    static func name(_ n: dios_name) -> Name { Name(words: (n.words.0, n.words.1, n.words.2, n.words.3)) }

    static func spec(_ s: ObjectSpec) -> dios_spec {
        switch s {
        case .blob(let size): dios_spec(kind: DIOS_BLOB, depth: 0, size: UInt64(size), after_ns: 0)
        case .stream(let size, let depth):
            dios_spec(kind: DIOS_STREAM, depth: UInt32(depth), size: UInt64(size), after_ns: 0)
        case .timer(let after):
            dios_spec(
                kind: DIOS_TIMER, depth: 0, size: 0,
                after_ns: UInt64(max(0, after.components.seconds)) * 1_000_000_000
                    + UInt64(max(0, after.components.attoseconds / 1_000_000_000)))
        }
    }

    /// Throws the call's error for a negative result.
    func check(
        _ result: Int32, _ call: Call, ref: Ref = Ref(slot: 0, generation: 0), size: Int = 0,
        name: Name = Name(words: (0, 0, 0, 0))
    ) throws(CallError) {
        guard result < 0 else { return }
        throw Self.error(-result, call, ref: ref, size: size, name: name)
    }

    /// The `CallError` for a C error code, with what the process knows of the call.
    static func error(_ code: Int32, _ call: Call, ref: Ref, size: Int, name: Name) -> CallError {
        guard let c = ChannelErrorCode(rawValue: code) else { return .invalidArgument("unknown DIOS error \(code)") }
        return c.callError(call, ref: ref, requested: size, name: name)
    }
}
