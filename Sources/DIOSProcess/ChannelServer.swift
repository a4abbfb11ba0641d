import DIOSChannel
import DIOSCore
import DIOSKernel

/// Executes a task process's submissions against its kernel instance, as the
/// task: each decoded request becomes the same kernel call an in-process task
/// makes, checked the same way against the same table. Data crosses through
/// the channel's window: a read's bytes are copied into it, a write's taken
/// from it, so the process never sees the arena.
///
/// Open transactions live here, named to the process by a handle (a slot and
/// its generation), never by an address.
struct ChannelServer {
    let kernel: KernelInstance
    let task: TaskID
    let channel: TaskChannel
    private var open: [OpenTransaction?] = Array(repeating: nil, count: Self.maxOpen)
    private var generations: [UInt32] = Array(repeating: 1, count: Self.maxOpen)
    /// Submissions served, for `dios ps` and the tests.
    private(set) var served: UInt64 = 0
    /// Of those, reads and writes (the data path).
    private(set) var dataServed: UInt64 = 0

    /// The most transactions a task process holds open at once.
    static let maxOpen = 16

    private struct OpenTransaction {
        var grant: IOGrant
        var window: WindowRange
        var write: Bool
    }

    init(kernel: KernelInstance, task: TaskID, channel: TaskChannel) {
        self.kernel = kernel
        self.task = task
        self.channel = channel
    }

    /// Serves one submission and returns its completion.
    mutating func serve(_ entry: SubmissionEntry) async -> CompletionEntry {
        served &+= 1
        switch ChannelOperation(rawValue: entry.operation) {
        case .beginRead, .endRead, .beginWrite, .endWrite, .abandon, .read, .write: dataServed &+= 1
        default: break
        }
        let request: ChannelRequest
        do { request = try ChannelRequest.decode(entry) } catch {
            return CompletionEntry(
                userData: entry.userData, error: ChannelErrorCode.badEntry.rawValue, detail: UInt32(entry.operation))
        }
        do {
            let values = try await perform(request)
            return CompletionEntry(userData: entry.userData, values: values)
        } catch {
            let (code, detail) = ChannelErrorCode.of(error)
            return CompletionEntry(userData: entry.userData, error: code.rawValue, detail: detail)
        }
    }

    /// Ends every transaction still open (the process ended or was killed):
    /// reads are dropped, writes abandoned, holds released.
    mutating func abandonAll() {
        for n in open.indices {
            guard let t = open[n] else { continue }
            open[n] = nil
            if t.write { kernel.abandonWrite(t.grant) } else { kernel.abandonRead(t.grant) }
        }
    }

    // MARK: - The calls

    private mutating func perform(_ request: ChannelRequest) async throws(CallError) -> (UInt64, UInt64) {
        switch request {
        case .hello:
            return (UInt64(kernel.id.node) << 16 | UInt64(kernel.id.core), kernel.isTrusted(task) ? 1 : 0)
        case .create(let spec, let flags, let nameOut, let nameIn):
            let name: Name
            let ref: Ref
            if let nameIn {
                name = readName(nameIn)
                ref = try kernel.create(task, spec, flags: flags, named: name).1
            } else {
                (name, ref) = try kernel.create(task, spec, flags: flags)
            }
            writeName(name, nameOut)
            return (ref.word, 0)
        case .lookup(let nameRange, let flags, let out, let max):
            let refs = try kernel.lookup(task, readName(nameRange), flags: flags)
            writeRefs(refs.prefix(max), out)
            return (UInt64(refs.count), 0)
        case .beginRead(let ref, let flags, let into):
            let slot = try freeSlot()
            let grant = try kernel.beginRead(task, ref, flags: flags)
            guard grant.count <= into.count else {
                kernel.abandonRead(grant)
                throw .outsideView(offset: into.offset, count: grant.count, viewSize: into.count)
            }
            (channel.window + into.offset).copyMemory(from: grant.base, byteCount: grant.count)
            return (store(OpenTransaction(grant: grant, window: into, write: false), at: slot), UInt64(grant.count))
        case .read(let ref, let flags, let into, let wait):
            let grant = try await begin(wait: wait, ref, flags: flags) { () throws(CallError) in
                try kernel.beginRead(task, ref, flags: flags)
            }
            guard grant.count <= into.count else {
                kernel.abandonRead(grant)
                throw .outsideView(offset: into.offset, count: grant.count, viewSize: into.count)
            }
            (channel.window + into.offset).copyMemory(from: grant.base, byteCount: grant.count)
            let count = grant.count
            return (UInt64(count), kernel.endRead(grant) ? 1 : 0)
        case .write(let ref, let flags, let from, let wait):
            let grant = try await begin(wait: wait, ref, flags: flags.union(.writable)) { () throws(CallError) in
                try kernel.beginWrite(task, ref, size: from.count, flags: flags)
            }
            guard from.count <= grant.count else {
                kernel.abandonWrite(grant)
                throw .tooLarge(requested: from.count, maximum: grant.count)
            }
            grant.base.copyMemory(from: channel.window + from.offset, byteCount: from.count)
            return (kernel.endWrite(grant, length: from.count) ? 1 : 0, 0)
        case .endRead(let handle):
            let t = try take(handle, write: false)
            return (kernel.endRead(t.grant) ? 1 : 0, 0)
        case .beginWrite(let ref, let size, let flags, let from):
            let slot = try freeSlot()
            let held = try kernel.entry(task, ref)
            let grant = try kernel.beginWrite(task, ref, size: size, flags: flags)
            guard grant.count <= ChannelLayout.windowSize - from.offset else {
                kernel.abandonWrite(grant)
                throw .outsideView(offset: from.offset, count: grant.count, viewSize: from.count)
            }
            // A blob's view starts with its committed bytes, which only a
            // holder of the read right may see; a stream slot's old contents
            // are nobody's to see.
            let view = channel.window + from.offset
            if held.rights.contains(.read) && held.kind == .blob {
                view.copyMemory(from: grant.base, byteCount: grant.count)
            } else {
                view.initializeMemory(as: UInt8.self, repeating: 0, count: grant.count)
            }
            let window = WindowRange(
                offset: UInt64(from.offset), count: UInt64(grant.count), windowSize: ChannelLayout.windowSize)!
            return (store(OpenTransaction(grant: grant, window: window, write: true), at: slot), UInt64(grant.count))
        case .endWrite(let handle, let length):
            let (_, viewed) = try find(handle, write: true)
            guard length <= viewed.grant.count else {
                throw .outsideView(offset: 0, count: length, viewSize: viewed.grant.count)
            }
            let t = try take(handle, write: true)
            t.grant.base.copyMemory(from: channel.window + t.window.offset, byteCount: length)
            return (kernel.endWrite(t.grant, length: length) ? 1 : 0, 0)
        case .abandon(let handle):
            let t = try take(handle, write: nil)
            if t.write { kernel.abandonWrite(t.grant) } else { kernel.abandonRead(t.grant) }
            return (0, 0)
        case .run(let program, let arguments, let flags, let target):
            let refs = readRefs(arguments)
            let task: Ref
            switch target {
            case .here: task = try kernel.run(self.task, program, arguments: refs, flags: flags)
            case .sibling(let core): task = try kernel.run(self.task, program, arguments: refs, flags: flags, on: core)
            case .instance(let id) where id.node == kernel.id.node:
                task = try kernel.run(self.task, program, arguments: refs, flags: flags, on: Int(id.core))
            case .instance(let id):
                task = try kernel.run(self.task, program, arguments: refs, flags: flags, onNode: id)
            }
            return (task.word, 0)
        case .pause(let ref, let flags):
            try kernel.pause(task, ref, flags: flags)
            return (0, 0)
        case .copy(let target, let refsRange, let rights, let flags, let out):
            let copied = try kernel.copy(task, readRefs(refsRange), to: target, rights: rights, flags: flags)
            writeRefs(copied[...], out)
            return (UInt64(copied.count), 0)
        case .delete(let ref, let flags):
            try kernel.delete(task, ref, flags: flags)
            return (0, 0)
        case .select(let refsRange, let flags):
            let refs = readRefs(refsRange)
            if let n = try kernel.selectNow(task, refs, flags: flags) { return (UInt64(n), 0) }
            return (UInt64(try await kernel.select(task, refs, flags: flags, spun: true)), 0)
        case .restrict(let ref, let rights):
            return (try kernel.restrict(task, ref, to: rights).word, 0)
        case .describe(let ref):
            let e = try kernel.entry(task, ref)
            let packed =
                UInt64(e.kind.rawValue) | UInt64(e.rights.rawValue) << 8 | UInt64(e.proximity.rawValue) << 16
                | UInt64(e.persistent ? 1 : 0) << 24 | UInt64(e.owner.node) << 32 | UInt64(e.owner.core) << 48
            return (packed, UInt64(e.maxWriteSize))
        case .mapStream(let ref, let writer):
            let (offset, maxMessage) = try kernel.mapStream(task, ref, writer: writer)
            return (UInt64(offset), UInt64(maxMessage))
        case .unmapStream(let ref, let writer):
            try kernel.unmapStream(task, ref, writer: writer)
            return (0, 0)
        case .delegated(let out, let max):
            let refs = try kernel.delegated(task)
            writeRefs(refs.prefix(max), out)
            return (UInt64(refs.count), 0)
        }
    }

    /// `call`, and with `wait`, while it would block, a wait on `ref` (with
    /// `flags`' `.writable` for a write) and the call again: a whole read or
    /// write in one submission, which a process on its instance's CPU pays
    /// a pair of context switches for.
    private func begin(
        wait: Bool, _ ref: Ref, flags: Flags, _ call: () throws(CallError) -> IOGrant
    ) async throws(CallError) -> IOGrant {
        while true {
            do { return try call() } catch .wouldBlock where wait {
                let refs = [ref]
                let selectFlags = flags.intersection(.writable)
                if try kernel.selectNow(task, refs, flags: selectFlags) == nil {
                    _ = try await kernel.select(task, refs, flags: selectFlags, spun: true)
                }
            }
        }
    }

    // MARK: - Open transactions

    private func freeSlot() throws(CallError) -> Int {
        guard let n = open.firstIndex(where: { $0 == nil }) else {
            throw .invalidArgument("a task process holds at most \(Self.maxOpen) transactions open")
        }
        return n
    }

    private mutating func store(_ t: OpenTransaction, at slot: Int) -> UInt64 {
        open[slot] = t
        return UInt64(generations[slot]) << 32 | UInt64(slot)
    }

    private func find(_ handle: UInt64, write: Bool?) throws(CallError) -> (Int, OpenTransaction) {
        let slot = Int(handle & 0xFFFF_FFFF)
        guard slot < Self.maxOpen, UInt32(handle >> 32) == generations[slot], let t = open[slot] else {
            throw .notInTransaction
        }
        if let write, t.write != write { throw .notInTransaction }
        return (slot, t)
    }

    private mutating func take(_ handle: UInt64, write: Bool?) throws(CallError) -> OpenTransaction {
        let (slot, t) = try find(handle, write: write)
        open[slot] = nil
        generations[slot] &+= 1
        if generations[slot] == 0 { generations[slot] = 1 }
        return t
    }

    // MARK: - The window

    private func readName(_ r: WindowRange) -> Name {
        let p = UnsafeRawPointer(channel.window + r.offset)
        return Name(
            words: (
                p.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                p.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                p.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            ))
    }

    private func writeName(_ name: Name, _ r: WindowRange) {
        let p = channel.window + r.offset
        p.storeBytes(of: name.words.0, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: name.words.1, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: name.words.2, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: name.words.3, toByteOffset: 24, as: UInt64.self)
    }

    /// The references in `r`, copied out once.
    private func readRefs(_ r: WindowRange) -> [Ref] {
        let p = UnsafeRawPointer(channel.window + r.offset)
        return (0..<r.count / 8).map {
            Ref(
                slot: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt32.self),
                generation: p.loadUnaligned(fromByteOffset: $0 * 8 + 4, as: UInt32.self))
        }
    }

    /// Writes at most as many references as `r` holds.
    private func writeRefs(_ refs: ArraySlice<Ref>, _ r: WindowRange) {
        let p = channel.window + r.offset
        for (n, ref) in refs.prefix(r.count / 8).enumerated() {
            p.storeBytes(of: ref.slot, toByteOffset: n * 8, as: UInt32.self)
            p.storeBytes(of: ref.generation, toByteOffset: n * 8 + 4, as: UInt32.self)
        }
    }
}
