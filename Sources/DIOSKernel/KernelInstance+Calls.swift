import CLinux
package import DIOSCore
import DIOSMemory

/// The calls that manage objects and tasks: create, lookup, run, pause, copy,
/// delete. Each validates everything before it changes anything, so a refused
/// call leaves the instance exactly as it was.
extension KernelInstance {
    /// `create`: a new object with a fresh name, and a reference with all rights.
    ///
    /// With `named`, a trusted task creates it under a well-known name instead
    /// (a service others find by `lookup`, such as the scheduler); refused
    /// (`.busy`) while this instance already holds an instance of that name.
    package func create(_ task: TaskID, _ spec: ObjectSpec, flags: Flags, named: Name? = nil) throws(CallError) -> (
        Name, Ref
    ) {
        checkThread()
        counters.calls += 1
        let t = try taskIndex(task)
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        if let named {
            guard tasks[t].trusted else { throw .untrusted(.create) }
            guard named.isWellKnown else {
                throw .invalidArgument("only well-known names can be chosen; others are made fresh")
            }
            guard names.first(of: named, where: { objects.isLive($0) }) == nil else { throw .busy }
        }
        let name = named ?? nameSource.fresh()
        let object: ObjectID?
        switch spec {
        case .blob(let size):
            guard size >= 0 else { throw .invalidArgument("blob size \(size)") }
            guard size <= BufferPool.maximumSize else { throw .outOfMemory(requested: size) }
            object = makeObject(kind: .blob, name: name, bufferSize: size, maxWriteSize: size, flags: flags)
            if let object {
                guard let shadow = pool.allocate(size) else {
                    destroy(object)
                    throw .outOfMemory(requested: 2 * size)
                }
                // A reused buffer holds a former object's bytes; a write's view shows the shadow.
                pool.address(of: shadow).initializeMemory(as: UInt8.self, repeating: 0, count: shadow.capacity)
                objects.records[Int(object.index)].shadow = shadow
                objects.records[Int(object.index)].length = size
            }
        case .stream(let messageSize, let depth):
            guard messageSize > 0 else { throw .invalidArgument("stream message size \(messageSize)") }
            guard depth > 0, depth <= 1 << 20 else { throw .invalidArgument("stream depth \(depth)") }
            // Before the ring's size is computed: a message size near Int.max
            // would overflow it (a trap, taking the whole instance down).
            guard messageSize <= BufferPool.maximumSize else { throw .outOfMemory(requested: messageSize) }
            let slots = 1 << (Int.bitWidth - (depth - 1).leadingZeroBitCount)  // next power of two
            let bytes = StreamRing.byteSize(messageSize: messageSize, depth: slots)
            guard bytes <= BufferPool.maximumSize else { throw .outOfMemory(requested: bytes) }
            object = makeObject(kind: .stream, name: name, bufferSize: bytes, maxWriteSize: messageSize, flags: flags)
            if let object, let buffer = objects.records[Int(object.index)].buffer {
                objects.records[Int(object.index)].ring = StreamRing.initialize(
                    at: pool.address(of: buffer), messageSize: messageSize, depth: slots)
            }
        case .timer(let after):
            object = makeObject(kind: .timer, name: name, bufferSize: 64, maxWriteSize: 8, flags: flags)
            if let object { arm(object, after: after.nanoseconds) }
        }
        guard let object else { throw .outOfMemory(requested: spec.byteSize) }
        let ref = try! insertRef(t, entry(for: object, rights: .all))  // capacity checked above
        publish(object)
        return (name, ref)
    }

    /// `lookup`: references to every reachable instance of `name` (trusted tasks
    /// only). On one instance, `.strong` and weak answer alike: the instance is the owner.
    package func lookup(_ task: TaskID, _ name: Name, flags: Flags) throws(CallError) -> [Ref] {
        var refs: [Ref] = []
        _ = try lookup(task, name, flags: flags, into: &refs)
        return refs
    }

    /// `lookup`, appending the references to `refs`; returns how many. With
    /// capacity in `refs`, a weak lookup allocates nothing once warm: the name
    /// is hashed into this instance's table (and into the replica when it may
    /// be held elsewhere), the hits are gathered into scratch arrays the
    /// instance keeps, and only then (every check passed, every stand-in made)
    /// are references made, so a refused lookup gives the task nothing.
    package func lookup(_ task: TaskID, _ name: Name, flags: Flags, into refs: inout [Ref]) throws(CallError) -> Int {
        checkThread()
        counters.calls += 1
        let t = try taskIndex(task)
        guard tasks[t].trusted else { throw .untrusted(.lookup) }
        // The scratch arrays are the instance's own (its properties are not
        // exclusivity-checked), appended to in place and emptied on the next
        // call, an element at a time: they hold one or two, and `removeLast()`
        // is a decrement where `removeAll(keepingCapacity:)` goes through the
        // general range replacement (about 80 instructions).
        while !lookupHere.isEmpty { lookupHere.removeLast() }
        while !lookupElsewhere.isEmpty { lookupElsewhere.removeLast() }
        if let first = names.primary(of: name), objects.isLive(first) { lookupHere.append(first) }
        if let more = names.others(of: name) {
            for object in more where objects.isLive(object) { lookupHere.append(object) }
        }
        // Only a well-known name (`create(named:)`) can have instances on
        // several instances; any other is drawn fresh where its one object was
        // made. So a fresh name found here has no instance elsewhere, and the
        // replica need not be asked.
        if replicating && (lookupHere.isEmpty || name.isWellKnown) {
            nameService.forEachInstance(of: name) { record in
                if record.owner.node == id.node
                    || (wireRef?._withUnsafeGuaranteedRef { $0.isReachable(record.owner) } ?? false)
                {
                    lookupElsewhere.append(record)
                }
            }
            // The replica keeps no order; the caller gets a stable one.
            if lookupElsewhere.count > 1 {
                lookupElsewhere.sort { ($0.owner, $0.object.index) < ($1.owner, $1.object.index) }
            }
            if flags.contains(.strong) {
                // Strong: only what the owner confirms now (another node's, by a remote call).
                let candidates = lookupElsewhere
                lookupElsewhere.removeAll(keepingCapacity: true)
                for record in candidates {
                    if record.owner.node != id.node {
                        let reply = try? peerCall(to: record.owner) {
                            .nameConfirm(name: name, object: record.object, call: $0)
                        }
                        guard reply?.ok == true else { continue }
                    }
                    lookupElsewhere.append(record)
                }
            }
        }
        let found = lookupHere.count + lookupElsewhere.count
        guard found > 0 else { throw .noSuchName(name) }
        guard tasks[t].refs.count + found <= tasks[t].refs.capacity else { throw .reference(.tableFull) }
        return try withUnsafeTemporaryAllocation(of: ObjectID.self, capacity: lookupElsewhere.count) {
            standIns throws(CallError) in
            for k in 0..<lookupElsewhere.count {
                let record = lookupElsewhere[k]
                guard let standIn = standIn(for: record, name: name) else { throw .outOfMemory(requested: record.size) }
                standIns[k] = standIn
            }
            for k in 0..<lookupHere.count {
                let object = lookupHere[k]
                refs.append(
                    try! insertRef(t, entry(for: object, rights: objects.records[Int(object.index)].lookupRights)))
            }
            for k in 0..<lookupElsewhere.count {
                var e = entry(for: standIns[k], rights: [.read, .write, .copy, .delete])
                e.proximity = lookupElsewhere[k].owner.node == id.node ? .localNode : .remoteMemory
                refs.append(try! insertRef(t, e))
            }
            return found
        }
    }

    /// A new reference for the caller to `ref`'s object with fewer rights: `copy`
    /// to the calling task itself. Widening is refused, changing nothing, and
    /// so is a reference to a deleted object (`.objectDeleted`), as I/O on it is.
    package func restrict(_ task: TaskID, _ ref: Ref, to rights: Rights) throws(CallError) -> Ref {
        checkThread()
        counters.calls += 1
        let t = try taskIndex(task)
        var entry = try referenceEntry(t, ref)
        guard objects.isLive(entry.object) else { throw .objectDeleted }
        guard entry.rights.isSuperset(of: rights) else {
            throw .reference(.widening(ref, requested: rights, held: entry.rights))
        }
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        entry.rights = rights
        return try insertRef(t, entry)
    }

    /// `copy`: delegates `refs` into the task behind `taskRef`, with `rights`
    /// (default: the rights each source holds). Rights can only be narrowed: a
    /// request for any right a source lacks refuses the whole call, and so does
    /// a source whose object was deleted (`.objectDeleted`): handing on a
    /// reference that every I/O call refuses would only pass the failure along.
    package func copy(
        _ task: TaskID, _ refs: [Ref], to taskRef: Ref, rights: Rights?, flags: Flags
    ) throws(CallError) -> [Ref] {
        checkThread()
        counters.calls += 1
        let (targetEntry, o) = try resolve(task, taskRef, [])
        guard targetEntry.kind == .task else { throw .wrongKind(.copy, targetEntry.kind) }
        guard objects.records[o].siblingInstance == nil, objects.records[o].remoteNode == nil else {
            throw .invalidArgument("copy to a task on another instance: pass the references to run instead")
        }
        let target = objects.records[o].task
        let c = Int(target.index)
        guard !objects.records[o].ready, c < tasks.count, tasks[c].generation == target.generation, tasks[c].live,
            !tasks[c].stopping
        else { throw .taskStopped }
        var entries: [ReferenceEntry] = []
        entries.reserveCapacity(refs.count)
        let t = try taskIndex(task)
        for ref in refs {
            let held: ReferenceEntry
            held = try referenceEntry(t, ref)
            guard objects.isLive(held.object) else { throw .objectDeleted }
            guard held.rights.contains(.copy) else {
                throw .reference(.missingRight(ref, needed: .copy, held: held.rights))
            }
            let wanted = rights ?? held.rights
            guard held.rights.isSuperset(of: wanted) else {
                throw .reference(.widening(ref, requested: wanted, held: held.rights))
            }
            var e = held
            e.rights = wanted
            entries.append(e)
        }
        guard tasks[c].refs.count + entries.count <= tasks[c].refs.capacity else { throw .reference(.tableFull) }
        var out: [Ref] = []
        out.reserveCapacity(entries.count)
        for e in entries {
            let ref = try! insertRef(c, e)
            tasks[c].delegated.append(ref)
            out.append(ref)
        }
        tasks[c].delegationWaiter?.resume()
        tasks[c].delegationWaiter = nil
        return out
    }

    /// Waits until something is delegated to `task` beyond the first `seen` references.
    package func waitForDelegation(_ task: TaskID, beyond seen: Int) async throws(CallError) -> [Ref] {
        checkThread()
        while true {
            let i = try taskIndex(task)
            if tasks[i].delegated.count > seen { return tasks[i].delegated }
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                if self.tasks[i].generation == task.generation && self.tasks[i].delegated.count <= seen
                    && !self.tasks[i].stopping
                {
                    self.tasks[i].delegationWaiter = c
                } else {
                    c.resume()
                }
            }
        }
    }

    /// `delete`: removes the object instance (needs the delete right) and the
    /// caller's reference; with `.referenceOnly`, drops just the reference.
    /// Deleting an object already deleted through another reference succeeds.
    /// Deleting a task object stops the task at its next kernel call.
    package func delete(_ task: TaskID, _ ref: Ref, flags: Flags) throws(CallError) {
        checkThread()
        counters.calls += 1
        let t = try taskIndex(task)
        let entry: ReferenceEntry
        entry = try referenceEntry(t, ref)
        if flags.contains(.referenceOnly) {
            _ = try? tasks[t].refs.remove(ref)
            return
        }
        guard entry.rights.contains(.delete) else {
            throw .reference(.missingRight(ref, needed: .delete, held: entry.rights))
        }
        guard objects.isLive(entry.object) else {
            // Already deleted through another reference: what was asked holds,
            // so the call succeeds and drops the dangling reference.
            _ = try? tasks[t].refs.remove(ref)
            return
        }
        if entry.kind == .task {
            let o = Int(entry.object.index)
            if let node = objects.records[o].remoteNode {
                if let target = objects.records[o].peerTask {
                    sendToPeer(.stop(task: target), to: node)
                } else {
                    objects.records[o].pendingStop = true
                }
            } else if let sibling = objects.records[o].siblingInstance {
                // Not started yet: `.started` finds the proxy gone and stops it.
                if let target = objects.records[o].peerTask { send(.stop(task: target), to: sibling) }
            } else {
                stop(objects.records[o].task)
            }  // not started yet: `.started` finds the proxy gone and stops it
        }
        _ = try? tasks[t].refs.remove(ref)
        destroy(entry.object)
    }

    /// Arms a timer object to fire `after` nanoseconds from now.
    func arm(_ object: ObjectID, after: UInt64) {
        let i = Int(object.index)
        let now = clinux_monotonic_ns()
        let (deadline, overflow) = now.addingReportingOverflow(after)
        objects.records[i].deadline = overflow ? .max : deadline
        objects.records[i].ready = false
        objects.records[i].length = 0
        timers.insert(TimerEntry(deadline: objects.records[i].deadline, object: object))
    }
}

extension ObjectSpec {
    /// The bytes the object's buffer needs.
    var byteSize: Int {
        switch self {
        case .blob(let size): size
        case .stream(let messageSize, let depth): StreamRing.byteSize(messageSize: messageSize, depth: depth)
        case .timer: 64
        }
    }
}
