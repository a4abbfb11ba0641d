import DIOSCore
import DIOSMemory

/// Talking to the other instances of the node: control messages through the
/// fabric's queues, doorbells for rings shared with them, and the calls that
/// reach another instance (`run` on another core, pausing or stopping a task
/// there). Nothing here touches another instance's state: a request is a
/// message, and the other instance acts on it in its own polling loop.
extension KernelInstance {
    /// Sends a control message to instance `to`, keeping it in the outbox (in
    /// order) while that instance's queue is full.
    func send(_ message: KernelMessage, to: Int) {
        precondition(to != index && to >= 0 && to < fabric.instanceCount, "no such peer instance")
        if outbox[to].isEmpty, fabric.queues[index][to]!.push(message) {
            fabric.doorbells[to].ring()
            return
        }
        outbox[to].append(message)
    }

    /// Wakes the instance holding the writer (or reader) side of a shared ring,
    /// if it sleeps. One atomic load when it does not; nothing on a node whose
    /// instances never sleep (busy polling).
    @inline(__always)
    func wakePeer(of ring: StreamRing, writer: Bool) {
        guard peersMaySleep else { return }
        let peer = ring.claimant(writer: writer)
        if peer != 0 && peer != claimID { bells[Int(peer) - 1]._withUnsafeGuaranteedRef { $0.ring() } }
    }

    func wakePeers(of ring: StreamRing) {
        wakePeer(of: ring, writer: true)
        wakePeer(of: ring, writer: false)
    }

    /// Flushes the outbox and handles every message waiting from other instances.
    /// Returns the messages handled.
    func drainControl() -> Int {
        guard fabric.instanceCount > 1 else { return 0 }
        var handled = 0
        for peer in 0..<fabric.instanceCount where peer != index {
            while let message = outbox[peer].first, fabric.queues[index][peer]!.push(message) {
                outbox[peer].removeFirst()
                fabric.doorbells[peer].ring()
            }
            let queue = fabric.queues[peer][index]!
            while let message = queue.pop() {
                handle(message, from: peer)
                handled += 1
            }
        }
        return handled
    }

    /// Whether another instance has sent something (checked while `select` spins).
    @inline(__always)
    func hasControlMessages() -> Bool {
        for k in 0..<(fabric.instanceCount - 1) where !inbound[k]._withUnsafeGuaranteedRef({ $0.isEmpty }) {
            return true
        }
        return false
    }

    func handle(_ message: KernelMessage, from peer: Int) {
        switch message {
        case .run(let proxy, let program, let trusted, let arguments, let label, let invocation):
            startForPeer(
                proxy: proxy, from: peer, program: program, trusted: trusted, arguments: arguments, label: label,
                invocation: invocation)
        case .started(let proxy, let task):
            // A proxy deleted meanwhile stops the task.
            let live = objects.isLive(proxy)
            proxyStarted(proxy, task, live: live) { stop, resume in
                self.send(stop ? .stop(task: task) : .pause(task: task, resume: resume), to: peer)
            }
        case .failedToStart(let proxy, let error):
            logger.warning("task did not start on instance \(peer): \(error)")
            finishTaskObject(proxy, status: -1)
        case .exited(let proxy, let status):
            finishTaskObject(proxy, status: status)
        case .pause(let task, let resume):
            setPaused(task, paused: !resume)
        case .stop(let task):
            stop(task)
        case .name(let delta):
            if applyName(delta, from: InstanceID(node: id.node, core: UInt16(peer))) { relayName(delta) }
        case .blob(let message, let body):
            body.withUnsafeBytes {
                handleBlobMessage(message, body: $0, from: InstanceID(node: id.node, core: UInt16(peer)))
            }
        case .ringReleased(let object):
            let i = Int(object.index)
            guard objects.exists(object), objects.records[i].awaitingEnds else { return }
            objects.records[i].awaitingEnds = false
            if let buffer = objects.records[i].buffer { pool.free(buffer) }
            objects.records[i].buffer = nil
            objects.release(object)
        }
    }

    /// A task started for `proxy` (on another instance or node) is `task`: the
    /// proxy learns it, and a stop or pause asked for meanwhile is passed on
    /// through `tell(stop, resume)`. A proxy that is not `live` any more stops it.
    func proxyStarted(_ proxy: ObjectID, _ task: TaskID, live: Bool, tell: (_ stop: Bool, _ resume: Bool) -> Void) {
        guard live else {
            tell(true, false)
            return
        }
        let p = Int(proxy.index)
        objects.records[p].peerTask = task
        if objects.records[p].pendingStop {
            tell(true, false)
        } else if let resume = objects.records[p].pendingPause {
            tell(false, resume)
        }
        objects.records[p].pendingPause = nil
    }

    /// Marks a task object (a local task's, or the proxy of one on another
    /// instance) finished with `status`: it becomes readable, holding the status.
    func finishTaskObject(_ object: ObjectID, status: Int32) {
        guard objects.isLive(object) else { return }
        let o = Int(object.index)
        objects.records[o].ready = true
        objects.records[o].length = 8
        if let buffer = objects.records[o].buffer {
            pool.address(of: buffer).storeBytes(of: Int64(status), as: Int64.self)
        }
        objects.records[o].version &+= 2
        markDirty(object)
    }

    /// `run` onto instance `target`: a proxy task object here stands for the task
    /// there; the arguments (streams) are handed over as rings shared with it.
    func runOnSibling(
        _ t: Int, _ programEntry: ReferenceEntry, arguments: [ReferenceEntry], flags: Flags, label: String,
        invocation: Invocation, on target: Int
    ) throws(CallError) -> Ref {
        guard target >= 0 && target < fabric.instanceCount else {
            throw .invalidArgument("no instance \(target) on this node (it has \(fabric.instanceCount))")
        }
        for e in arguments where e.kind != .stream {
            throw .wrongKind(.run, e.kind)  // only streams are shared between instances so far
        }
        // A stream holding messages in received frames takes them in first
        // (see `handoff`), which cannot be done under an open read of one.
        for e in arguments
        where objects.records[Int(e.object.index)].heldFrames > 0 && objects.records[Int(e.object.index)].readerOpen {
            throw .busy
        }
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        let programName = objects.records[Int(programEntry.object.index)].name
        guard let proxy = makeObject(kind: .task, name: nameSource.fresh(), bufferSize: 64, maxWriteSize: 0, flags: [])
        else {
            throw .outOfMemory(requested: 64)
        }
        objects.records[Int(proxy.index)].siblingInstance = target
        let handoffs = arguments.map { handoff(for: $0) }
        send(
            .run(
                proxy: proxy, program: programName, trusted: !flags.contains(.untrusted), arguments: handoffs,
                label: label, invocation: invocation),
            to: target)
        var entry = entry(for: proxy, rights: .all)
        entry.proximity = .localNode
        return try! insertRef(t, entry)
    }

    /// Describes a stream for another instance, counting the new end on its ring.
    func handoff(for entry: ReferenceEntry) -> Handoff {
        let i = Int(entry.object.index)
        let ring = objects.records[i].ring!
        // Messages held in this instance's received frames: copied into the
        // ring, whose other side may now be another instance.
        releaseHeldFrames(of: i, copyIn: true)
        objects.records[i].crossInstance = true
        ring.adjustEnds(by: 1)
        let owner = objects.records[i].ringOwner
        return Handoff(
            ringOffset: ring.base - pool.arena.base,
            owner: owner.map { InstanceID(node: id.node, core: UInt16($0.instance)) } ?? id,
            object: owner?.object ?? entry.object, name: objects.records[i].name, rights: entry.rights,
            maxWriteSize: entry.maxWriteSize)
    }

    /// Handles `.run` from a peer: starts the program here with the handed-over streams.
    func startForPeer(
        proxy: ObjectID, from peer: Int, program: Name, trusted: Bool, arguments: [Handoff], label: String,
        invocation: Invocation
    ) {
        let programObject = names.first(of: program) {
            objects.isLive($0) && objects.records[Int($0.index)].kind == .program
        }
        guard let programObject, let registered = objects.records[Int(programObject.index)].program,
            let body = programs[registered]
        else {
            for h in arguments { StreamRing.attach(at: pool.arena.address(at: h.ringOffset)).adjustEnds(by: -1) }
            send(.failedToStart(proxy: proxy, error: .noSuchName(program)), to: peer)
            return
        }
        let child: TaskID
        do { child = try makeTask(trusted: trusted, label: label) } catch {
            for h in arguments { StreamRing.attach(at: pool.arena.address(at: h.ringOffset)).adjustEnds(by: -1) }
            send(.failedToStart(proxy: proxy, error: error), to: peer)
            return
        }
        let c = Int(child.index)
        tasks[c].proxy = (peer, proxy)
        tasks[c].unheld = true
        tasks[c].invocation = invocation
        for h in arguments {
            var record = ObjectRecord()
            record.kind = .stream
            record.name = h.name
            record.maxWriteSize = h.maxWriteSize
            record.ring = StreamRing.attach(at: pool.arena.address(at: h.ringOffset))
            record.crossInstance = true
            record.ringOwner = (Int(h.owner.core), h.object)
            let end = objects.insert(record)
            tasks[c].madeEnds.append(end)
            var entry = entry(for: end, rights: h.rights)
            entry.proximity = .localNode
            if let ref = try? insertRef(c, entry) { tasks[c].delegated.append(ref) }
        }
        start(child, entry: body)
        send(.started(proxy: proxy, task: child), to: peer)
    }
}
