public import DIOSCore
import DIOSKernel

/// A task's view of its kernel: the eleven DIOS calls.
///
/// A program receives one when it starts. It holds only the task's identity;
/// every reference is a slot number that the kernel checks against the task's
/// table on each call, so a task cannot forge, widen or reuse a reference it
/// does not hold. A refused call throws a `CallError` and changes nothing.
///
/// Calls complete locally and synchronously, except `select` (and the
/// conveniences built on it), which suspends the task until a reference is
/// ready: I/O that cannot proceed now throws `.wouldBlock`, and the task
/// selects on the reference to wait, as DIOS builds asynchronous work.
///
/// A context belongs to its kernel instance's thread: use it from the task it
/// was given to (a program's body), not from other threads.
public struct TaskContext: Sendable {
    @usableFromInline let kernel: KernelInstance
    /// This task.
    public let task: TaskID

    init(kernel: KernelInstance, task: TaskID) {
        self.kernel = kernel
        self.task = task
    }

    /// Whether this task may `lookup` and `run`.
    public var isTrusted: Bool { kernel.isTrusted(task) }

    /// The kernel instance this task runs on.
    public var instance: InstanceID { kernel.id }

    // MARK: - The eleven calls

    /// `create`: a new object with a fresh, unshared name, and a reference to it
    /// with every right.
    public func create(_ spec: ObjectSpec, flags: Flags = []) throws(CallError) -> (name: Name, ref: Ref) {
        let (name, ref) = try kernel.create(task, spec, flags: flags)
        return (name, ref)
    }

    /// `lookup` (trusted tasks only): references to all reachable instances of
    /// the named object. `.strong` confirms with the owning instances.
    public func lookup(_ name: Name, flags: Flags = []) throws(CallError) -> [Ref] {
        try kernel.lookup(task, name, flags: flags)
    }

    /// `lookup`, appending to `refs` (returns how many were found). A weak lookup
    /// of this instance's own objects into an array with room allocates nothing.
    public func lookup(_ name: Name, flags: Flags = [], into refs: inout [Ref]) throws(CallError) -> Int {
        try kernel.lookup(task, name, flags: flags, into: &refs)
    }

    /// `beginRead`: a read view into the object's own buffer. Weak by default
    /// (validated by `endRead`); `.strong` holds the object shared.
    @inlinable
    public func beginRead(_ ref: Ref, flags: Flags = []) throws(CallError) -> ReadTransaction {
        ReadTransaction(
            kernel: Unmanaged.passUnretained(kernel), grant: try kernel.beginRead(task, ref, flags: flags), ref: ref)
    }

    /// `endRead`: whether what was read is consistent (false: a write was
    /// committed meanwhile, or the object was deleted — read again).
    @inlinable
    public func endRead(_ transaction: consuming ReadTransaction) -> Bool {
        transaction.end()
    }

    /// `beginWrite`: a writable view of `size` bytes into the target buffer
    /// (a blob's: its second buffer, holding its committed bytes to start
    /// with; nothing of it is seen until `endWrite`). `.strong` holds the
    /// object exclusively.
    @inlinable
    public func beginWrite(_ ref: Ref, size: Int, flags: Flags = []) throws(CallError) -> WriteTransaction {
        WriteTransaction(
            kernel: Unmanaged.passUnretained(kernel), grant: try kernel.beginWrite(task, ref, size: size, flags: flags),
            ref: ref)
    }

    /// `endWrite`: publishes the write; true when committed.
    @inlinable
    public func endWrite(_ transaction: consuming WriteTransaction) -> Bool {
        transaction.end()
    }

    /// `run` (trusted tasks only): starts the program object as a new task and
    /// returns a reference to it. `arguments` are delegated to the new task (with
    /// the rights held) before it first runs; `.untrusted` starts it untrusted.
    ///
    /// `instance` chooses the node's instance (its core) to run on; by default
    /// the task runs on the caller's own instance. On another instance the
    /// reference is to a proxy that becomes readable when the task exits, and
    /// only streams can be passed as arguments (they become rings shared by the
    /// two instances).
    ///
    /// `commandLine` is what a program that is an executable gets as its
    /// arguments (`argv[1...]`), and `environment` (`KEY=VALUE` entries) is
    /// added to its node's environment for task processes; closure programs
    /// ignore both. `label` names the task in logs and `dios ps`.
    public func run(
        _ program: Ref, arguments: [Ref] = [], commandLine: [String] = [], environment: [String] = [],
        flags: Flags = [], on instance: Int? = nil, label: String? = nil
    ) throws(CallError) -> Ref {
        try kernel.run(
            task, program, arguments: arguments, flags: flags, label: label,
            invocation: Invocation(commandLine: commandLine, environment: environment), on: instance)
    }

    /// `create` under a well-known name (trusted tasks only): a service that
    /// others find with `lookup(name)`. `.busy` while this instance already has one.
    public func create(_ spec: ObjectSpec, named name: Name, flags: Flags = []) throws(CallError) -> Ref {
        try kernel.create(task, spec, flags: flags, named: name).1
    }

    /// The instances this one can reach now: its node's, and those of other
    /// nodes it has a live session with (membership, from heartbeats).
    public func reachableInstances() -> [InstanceID] { kernel.reachableInstances() }

    /// `copy` to this task itself: another reference to the same object with
    /// fewer rights (for handing on). Asking for a right not held is refused,
    /// and so is a reference whose object was deleted (`.objectDeleted`).
    public func restrict(_ ref: Ref, to rights: Rights) throws(CallError) -> Ref {
        try kernel.restrict(task, ref, to: rights)
    }

    /// `run` on any instance of the cluster, this node's or another's.
    ///
    /// On another node, the reference is to a proxy that becomes readable (with
    /// the exit status) when the task exits, or with `lostTaskStatus` when that
    /// node fails. Only streams made here, not yet shared, can be passed: the
    /// task there gets a stream's read end and this side writes; or, when the
    /// reference passed cannot read (`restrict(ref, to: [.write, .copy])`) or `flags`
    /// has `.writable`, its write end, and this side reads. Their messages
    /// cross the wire in order, or their loss is reported: when the other node
    /// fails, the stream's calls fail with `.unreachable`.
    public func run(
        _ program: Ref, arguments: [Ref] = [], commandLine: [String] = [], environment: [String] = [],
        flags: Flags = [], on instance: InstanceID, label: String? = nil
    ) throws(CallError) -> Ref {
        let invocation = Invocation(commandLine: commandLine, environment: environment)
        if instance.node == kernel.id.node {
            return try kernel.run(
                task, program, arguments: arguments, flags: flags, label: label, invocation: invocation,
                on: Int(instance.core))
        }
        return try kernel.run(
            task, program, arguments: arguments, flags: flags, label: label, invocation: invocation, onNode: instance)
    }

    /// The command line and environment `run` gave this task (a closure
    /// program may read them too).
    public var invocation: Invocation { kernel.invocation(of: task) }

    /// The index of this task's instance within its node.
    public var instanceIndex: Int { kernel.index }

    /// `pause`: the task stops being scheduled at its next kernel call;
    /// with `.resume`, it runs again.
    public func pause(_ task: Ref, flags: Flags = []) throws(CallError) {
        try kernel.pause(self.task, task, flags: flags)
    }

    /// `copy`: delegates references into another task's table, with `rights`
    /// (default: as held). Rights can only be restricted; asking for more refuses
    /// the whole call. Returns the references as the target task numbers them.
    @discardableResult
    public func copy(_ refs: [Ref], to task: Ref, rights: Rights? = nil, flags: Flags = []) throws(CallError) -> [Ref] {
        try kernel.copy(self.task, refs, to: task, rights: rights, flags: flags)
    }

    /// `delete`: removes the object instance and this reference to it (needs the
    /// delete right); with `.referenceOnly`, drops just the reference.
    public func delete(_ ref: Ref, flags: Flags = []) throws(CallError) {
        try kernel.delete(task, ref, flags: flags)
    }

    /// `select`: the first of `refs` that is readable (with `.writable`: writable),
    /// waiting until one is. With a timer among them, this is a timeout. A
    /// reference whose object was deleted counts as ready, so that its waiters
    /// wake; the call they make next says `.objectDeleted`.
    ///
    /// Inlinable: when a reference is ready now (or becomes ready while the
    /// kernel spins on it) the call completes synchronously, and inlined into
    /// the caller it then costs no async frame; only a task that must suspend
    /// goes through `suspendingSelect`.
    @inlinable
    public func select(_ refs: [Ref], flags: Flags = []) async throws(CallError) -> Ref {
        if let n = try kernel.selectNow(task, refs, flags: flags) { return refs[n] }
        return try await suspendingSelect(refs, flags: flags)
    }

    /// `select`'s slow path: suspends the task until a reference is ready.
    @usableFromInline
    func suspendingSelect(_ refs: [Ref], flags: Flags) async throws(CallError) -> Ref {
        refs[try await kernel.select(task, refs, flags: flags, spun: !kernel.isPaused(task))]
    }

    // MARK: - Conveniences over the calls

    /// `pause(task, flags: .resume)`.
    public func resume(_ task: Ref) throws(CallError) {
        try pause(task, flags: .resume)
    }

    /// What this task's table says about a reference: kind, rights, proximity,
    /// maximum write size, persistence; `.objectDeleted` once its object is gone.
    public func describe(_ ref: Ref) throws(CallError) -> ReferenceEntry {
        try kernel.entry(task, ref)
    }

    /// References delegated to this task (by `copy` or `run`), oldest first.
    public func delegated() throws(CallError) -> [Ref] {
        try kernel.delegated(task)
    }

    /// Waits until at least `count` references have been delegated to this task.
    public func awaitDelegated(count: Int) async throws(CallError) -> [Ref] {
        var refs = try kernel.delegated(task)
        while refs.count < count { refs = try await kernel.waitForDelegation(task, beyond: refs.count) }
        return refs
    }

    /// Lets other tasks on the instance run, and stops here while paused.
    public func yield() async throws(CallError) {
        try await kernel.waitWhilePaused(task)
        await Task.yield()
        try await kernel.waitWhilePaused(task)
    }

    /// Writes one message (or a whole blob): waits until `ref` is writable, then
    /// `beginWrite`, copy `bytes` in, `endWrite`. Returns `endWrite`'s answer.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>, to ref: Ref, flags: Flags = []) async throws(CallError) -> Bool {
        while true {
            do {
                let tx = try beginWrite(ref, size: bytes.count, flags: flags)
                try tx.copy(from: bytes)
                return endWrite(tx)
            } catch .wouldBlock {
                _ = try await select([ref], flags: flags.union(.writable))
            }
        }
    }

    /// Reads one message (or a blob's bytes, retried until consistent): waits
    /// until `ref` is readable, then `beginRead`, copy out, `endRead`. An
    /// inconsistent read yields before it is retried: the write it overlapped
    /// may be finished only by another task on this instance, or by a message
    /// this instance has yet to poll (a sibling's commit or dropped write).
    public func read(_ ref: Ref, flags: Flags = []) async throws(CallError) -> [UInt8] {
        while true {
            do {
                let tx = try beginRead(ref, flags: flags)
                let bytes = tx.withUnsafeBytes { Array($0) }
                if endRead(tx) { return bytes }
                try await yield()
            } catch .wouldBlock {
                _ = try await select([ref], flags: flags)
            }
        }
    }

    /// Waits for the task `task` names to end and returns its status: what
    /// its program returned (0, or 1 for a closure that threw), a task
    /// process's exit code, or 128 plus the signal that killed it.
    public func exitStatus(of task: Ref) async throws(CallError) -> Int64 {
        let bytes = try await read(task)
        guard bytes.count >= 8 else { throw .invalidArgument("a task's value is its 8-byte status") }
        return bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }

    /// Turns this instance's trace on or off: for the benchmarks that weigh
    /// tracing in the same run as without it. Users switch a node's tracing
    /// with `Node.startTracing` and `dios trace`.
    package func traceThisInstance(_ on: Bool) {
        if on { kernel.startTracing(capacity: 1 << 16) } else { kernel.stopTracing() }
    }
}
