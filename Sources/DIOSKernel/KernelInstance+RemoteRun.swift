import CLinux
package import DIOSCore
import DIOSMemory
import DIOSWire

// `run` across nodes: a task started on another node's instance, and its status coming back.
extension KernelInstance {
    /// `run` onto an instance of another node: a proxy task object here stands
    /// for the task there. Each argument must be a stream made here and not yet
    /// shared. The task there gets its write end (this side reads) when the
    /// reference handed over cannot read (see `restrict`) or `flags` has
    /// `.writable`; otherwise its read end (this side writes).
    func runOnNode(
        _ t: Int, _ programEntry: ReferenceEntry, arguments: [ReferenceEntry], refs: [Ref], flags: Flags,
        label: String, invocation: Invocation, on target: InstanceID
    ) throws(CallError) -> Ref {
        guard let wire, wire.session(for: target) != nil else {
            throw .invalidArgument("no instance \(target) in this node's cluster")
        }
        if let down = wire.session(for: target), !down.isUp {
            throw .unreachable(target, reason: "no session with it (not started, or failed)")
        }
        func handsWriteEnd(_ e: ReferenceEntry) -> Bool { flags.contains(.writable) || !e.rights.contains(.read) }
        for (e, ref) in zip(arguments, refs) {
            if e.kind == .blob {
                guard objects.records[Int(e.object.index)].bridge == .none else {
                    throw .invalidArgument("a blob held by another node cannot be handed on")
                }
                guard !e.rights.intersection([.read, .write]).isEmpty else {
                    throw .reference(.missingRight(ref, needed: .read, held: e.rights))
                }
                continue
            }
            guard e.kind == .stream else { throw .wrongKind(.run, e.kind) }
            let r = objects.records[Int(e.object.index)]
            guard r.ring != nil, !r.crossInstance, r.ringOwner == nil, r.bridge == .none else {
                throw .invalidArgument("stream \(r.name) is already shared; hand another node a stream of its own")
            }
            let needed: Rights = handsWriteEnd(e) ? .write : .read
            guard e.rights.contains(needed) else {
                throw .reference(.missingRight(ref, needed: needed, held: e.rights))
            }
        }
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        let programName = objects.records[Int(programEntry.object.index)].name
        guard let proxy = makeObject(kind: .task, name: nameSource.fresh(), bufferSize: 64, maxWriteSize: 0, flags: [])
        else {
            throw .outOfMemory(requested: 64)
        }
        objects.records[Int(proxy.index)].remoteNode = target
        var streams: [RemoteArgument] = []
        for e in arguments {
            let i = Int(e.object.index)
            if e.kind == .blob {
                let rights = e.rights.intersection([.read, .write])
                sharedBlobs[RemoteEnd(peer: target, origin: e.object), default: []].formUnion(rights)
                streams.append(
                    RemoteArgument(
                        object: e.object, kind: .blob, name: objects.records[i].name,
                        maxWriteSize: objects.records[i].maxWriteSize, depth: 1, writeEnd: false, rights: rights))
                continue
            }
            let ring = objects.records[i].ring!
            let writeEnd = handsWriteEnd(e)
            objects.records[i].bridge = writeEnd ? .receives : .sends
            objects.records[i].remotePeer = target
            objects.records[i].remoteSession = wire.session(for: target).map { Unmanaged.passUnretained($0) }
            objects.records[i].remoteOrigin = e.object
            objects.records[i].originHere = true
            objects.records[i].proxyOfBridge = proxy
            if !writeEnd { bridges.append(e.object) }
            streams.append(
                RemoteArgument(
                    object: e.object, name: objects.records[i].name, maxWriteSize: objects.records[i].maxWriteSize,
                    depth: Int(ring.depth), writeEnd: writeEnd))
        }
        sendToPeer(
            .run(
                proxy: proxy, program: programName, trusted: !flags.contains(.untrusted), label: label,
                streams: streams,
                invocation: invocation),
            to: target)
        var entry = entry(for: proxy, rights: .all)
        entry.proximity = .remoteMemory
        return try! insertRef(t, entry)
    }

    /// Handles `.run` from another node: starts the program here with a local
    /// ring for each stream, bridged to the peer.
    func startForRemote(
        peer: InstanceID, proxy: ObjectID, program: Name, trusted: Bool, label: String, streams: [RemoteArgument],
        invocation: Invocation
    ) {
        let programObject = names.first(of: program) {
            objects.isLive($0) && objects.records[Int($0.index)].kind == .program
        }
        let body: TaskEntry
        if let programObject, let registered = objects.records[Int(programObject.index)].program,
            let known = programs[registered]
        {
            body = known
        } else if let fetch = fetchProgram {
            // A program this node lacks: the task is made now (its streams
            // must exist before their messages arrive), and its body first
            // fetches the program from the node that asked for it.
            body = { kernel, task in
                if let why = await fetch(program, peer, kernel.index) {
                    kernel.logger.error(
                        "a program from another node did not start",
                        metadata: ["program": "\(program)", "from": "\(peer)", "error": "\(why)"])
                    return 127  // as a shell says of a command it cannot find
                }
                guard let entry = kernel.programEntry(named: program) else { return 127 }
                return await entry(kernel, task)
            }
        } else {
            sendToPeer(.failedToStart(proxy: proxy, reason: "no program \(program) on \(id)"), to: peer)
            return
        }
        let child: TaskID
        do { child = try makeTask(trusted: trusted, label: label) } catch {
            sendToPeer(.failedToStart(proxy: proxy, reason: error.description), to: peer)
            return
        }
        let c = Int(child.index)
        tasks[c].remoteProxy = (peer, proxy)
        tasks[c].unheld = true
        tasks[c].invocation = invocation
        for s in streams {
            if s.kind == .blob {
                guard
                    let proxy = makeObject(
                        kind: .blob, name: s.name, bufferSize: s.maxWriteSize, maxWriteSize: s.maxWriteSize, flags: [])
                else {
                    logger.warning("no memory for a blob proxy from \(peer); the task starts without it")
                    continue
                }
                let i = Int(proxy.index)
                objects.records[i].bridge = .blob
                objects.records[i].remotePeer = peer
                objects.records[i].remoteOrigin = s.object
                tasks[c].madeEnds.append(proxy)
                var entry = entry(for: proxy, rights: s.rights.intersection([.read, .write]).union(.delete))
                entry.proximity = .remoteMemory
                if let ref = try? insertRef(c, entry) { tasks[c].delegated.append(ref) }
                continue
            }
            let slots = 1 << (Int.bitWidth - (s.depth - 1).leadingZeroBitCount)
            let bytes = StreamRing.byteSize(messageSize: max(s.maxWriteSize, 1), depth: slots)
            guard bytes <= BufferPool.maximumSize,
                let end = makeObject(
                    kind: .stream, name: s.name, bufferSize: bytes, maxWriteSize: s.maxWriteSize, flags: [])
            else {
                logger.warning("no memory for a stream from \(peer); the task starts without it")
                continue
            }
            let i = Int(end.index)
            objects.records[i].ring = StreamRing.initialize(
                at: pool.address(of: objects.records[i].buffer!), messageSize: max(s.maxWriteSize, 1), depth: slots)
            objects.records[i].bridge = s.writeEnd ? .sends : .receives
            objects.records[i].remotePeer = peer
            objects.records[i].remoteSession = wire?.session(for: peer).map { Unmanaged.passUnretained($0) }
            objects.records[i].remoteOrigin = s.object
            objects.records[i].originHere = false
            remoteEnds[RemoteEnd(peer: peer, origin: s.object)] = end
            lastRemoteEnd = nil  // the hint never outlives a change to remoteEnds
            tasks[c].madeEnds.append(end)
            if s.writeEnd { bridges.append(end) }
            var entry = entry(for: end, rights: s.writeEnd ? [.write, .delete] : [.read, .delete])
            entry.proximity = .remoteMemory
            if let ref = try? insertRef(c, entry) { tasks[c].delegated.append(ref) }
        }
        start(child, entry: body)
        sendToPeer(.started(proxy: proxy, task: child), to: peer)
    }

    /// The body of the program registered here under `name`, if one is.
    package func programEntry(named name: Name) -> TaskEntry? {
        let object = names.first(of: name) { objects.isLive($0) && objects.records[Int($0.index)].kind == .program }
        guard let object, let registered = objects.records[Int(object.index)].program else { return nil }
        return programs[registered]
    }
}
