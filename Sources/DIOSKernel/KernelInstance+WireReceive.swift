import CLinux
package import DIOSCore
import DIOSMemory
import DIOSWire

// Receiving from instances on other nodes: frames polled from the wire
// endpoint, handed to streams, blobs and the name service.
extension KernelInstance {
    /// Handles one message from an instance on another node. False when it is
    /// stream data whose ring is full: the session offers it again later.
    /// Anything malformed, or naming what is not its own, is refused and counted.
    package func deliverRemote(_ bytes: UnsafeRawBufferPointer, from peer: InstanceID) -> Bool {
        // Stream data, nearly every message: its 9-byte prefix read in place,
        // without building a `RemoteMessage` (the same checks as `decode`),
        // and delivered here, in one function (see `deliverStreamData`).
        if let (origin, senderIsOrigin) = RemoteMessage.peekStreamData(bytes) {
            return deliverStreamData(
                UnsafeRawBufferPointer(rebasing: bytes[RemoteMessage.streamDataPrefix...]), origin: origin,
                senderIsOrigin: senderIsOrigin, from: peer)
        }
        return deliverControl(bytes, from: peer)
    }

    /// `deliverRemote` of anything but stream data: decoded in full.
    @inline(never)
    private func deliverControl(_ bytes: UnsafeRawBufferPointer, from peer: InstanceID) -> Bool {
        let message: RemoteMessage
        let payloadOffset: Int
        do throws(WireError) { (message, payloadOffset) = try RemoteMessage.decode(bytes) } catch {
            counters.remoteRefused &+= 1
            logger.warning("refused a message from \(peer): \(error)")
            return true
        }
        switch message {
        case .streamData(let origin, let senderIsOrigin):  // `peekStreamData` takes these first
            return deliverStreamDataOutOfLine(
                UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...]), origin: origin,
                senderIsOrigin: senderIsOrigin,
                from: peer)
        case .streamClosed(let origin, let senderIsOrigin):
            if let object = bridgedStream(origin, senderIsOrigin: senderIsOrigin, from: peer) {
                objects.records[Int(object.index)].ring?.close()
                markDirty(object)
            }
        case .run(let proxy, let program, let trusted, let label, let streams, let invocation):
            startForRemote(
                peer: peer, proxy: proxy, program: program, trusted: trusted, label: label, streams: streams,
                invocation: invocation)
        case .started(let proxy, let task):
            let live = objects.isLive(proxy) && objects.records[Int(proxy.index)].remoteNode == peer
            proxyStarted(proxy, task, live: live) { stop, resume in
                self.sendToPeer(stop ? .stop(task: task) : .pause(task: task, resume: resume), to: peer)
            }
        case .failedToStart(let proxy, let reason):
            logger.warning("task did not start on \(peer): \(reason)")
            if objects.exists(proxy), objects.records[Int(proxy.index)].remoteNode == peer {
                failBridges(ofProxy: proxy, reason: "the task did not start: \(reason)")
                finishTaskObject(proxy, status: -1)
            }
        case .exited(let proxy, let status):
            if objects.exists(proxy), objects.records[Int(proxy.index)].remoteNode == peer {
                finishTaskObject(proxy, status: status)
            }
        case .pause(let task, let resume):
            if startedBy(peer, task) { setPaused(task, paused: !resume) }
        case .stop(let task):
            if startedBy(peer, task) { stop(task) }
        case .leaving:
            leavingPeers.append(peer)  // its session ends once the poll delivering this returns
        case .blobRead, .blobRelease, .blobValidate, .blobWrite, .blobCommit, .blobData, .blobReply:
            handleBlobMessage(message, body: UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...]), from: peer)
        case .nameDelta(let delta):
            applyName(delta, from: peer)
        case .nameSync(let reset, let inserts):
            applyNameSync(reset: reset, inserts: inserts, from: peer)
        case .nameConfirm(let name, let object, let call):
            confirmName(name, object, call: call, from: peer)
        }
        return true
    }

    /// Whether `task` is one that `peer` started here (only it may pause or stop it).
    private func startedBy(_ peer: InstanceID, _ task: TaskID) -> Bool {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation && tasks[i].live
            && tasks[i].remoteProxy?.peer == peer
    }

    @inline(never)
    private func deliverStreamDataOutOfLine(
        _ payload: UnsafeRawBufferPointer, origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID
    ) -> Bool {
        deliverStreamData(payload, origin: origin, senderIsOrigin: senderIsOrigin, from: peer)
    }

    /// A message of a stream from `peer` into the ring it feeds here. False when
    /// the ring is full (the session offers it again later). Inlined, with
    /// `bridgedStream`, into `deliverRemote`: the frame's way up is a chain
    /// of calls, each passing on what the one before found.
    @inline(__always)
    private func deliverStreamData(
        _ payload: UnsafeRawBufferPointer, origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID
    ) -> Bool {
        guard let object = bridgedStream(origin, senderIsOrigin: senderIsOrigin, from: peer) else {
            counters.remoteRefused &+= 1  // its stream is gone here: nobody will read it
            return true
        }
        let r = objects.records.pointer(Int(object.index))  // nothing below creates an object
        guard payload.count <= r.pointee.maxWriteSize, let ring = r.pointee.ring else {
            counters.remoteRefused &+= 1
            return true
        }
        guard let slot = ring.reserve() else { return false }
        if let base = payload.baseAddress, payload.count > 0 {
            // Zero-copy: the message stays in the frame it arrived in, the
            // reader viewing it there, when the transport keeps frames and the
            // ring is this instance's alone (a handle means nothing elsewhere).
            if readsInPlace && !r.pointee.crossInstance && framesHeld < Self.maxFramesHeld,
                let handle = wireRef?._withUnsafeGuaranteedRef({ $0.keepReceived(base) })
            {
                ring.publish(at: base, length: payload.count, handle: handle)
                r.pointee.heldFrames += 1
                framesHeld += 1
                counters.readInPlace &+= 1
            } else {
                slot.copyMemory(from: base, byteCount: payload.count)
                ring.publish(length: payload.count)
            }
        } else {
            ring.publish(length: payload.count)
        }
        r.pointee.version &+= 1
        markDirty(object)
        return true
    }

    /// Gives back to the wire a received frame that held a message of stream
    /// record `i` (read now, or the stream is going).
    func giveBackHeldFrame(_ handle: OpaquePointer, of i: Int) {
        objects.records[i].heldFrames -= 1
        framesHeld -= 1
        wireRef?._withUnsafeGuaranteedRef { $0.releaseReceived(handle) }
    }

    /// Gives back every received frame that holds a message of stream record
    /// `i`, with (`copyIn`) or without the message: its ring is about to be
    /// shared with another instance, or to go.
    func releaseHeldFrames(of i: Int, copyIn: Bool) {
        guard objects.records[i].heldFrames > 0, let ring = objects.records[i].ring else { return }
        if copyIn {
            ring.copyInHeldMessages { giveBackHeldFrame($0, of: i) }
        } else {
            ring.forEachHandle { giveBackHeldFrame($0, of: i) }
        }
    }

    /// The stream here that `peer`'s messages for `origin` feed, or nil.
    ///
    /// A stream the peer made (`senderIsOrigin`) is found through `remoteEnds`;
    /// the last one found is remembered, since one stream usually carries a run
    /// of messages and hashing the key costs more than the rest of the delivery.
    /// It is forgotten whenever `remoteEnds` changes, and checked
    /// again here: whichever way it was found, the record must say it is that
    /// peer's end of that origin, or the message is refused.
    @inline(__always)
    func bridgedStream(_ origin: ObjectID, senderIsOrigin: Bool, from peer: InstanceID) -> ObjectID? {
        let object: ObjectID
        if senderIsOrigin {
            let key = RemoteEnd(peer: peer, origin: origin)
            if let last = lastRemoteEnd, last.key == key, objects.exists(last.object) {
                object = last.object
            } else {
                guard let o = remoteEnds[key] else { return nil }
                lastRemoteEnd = (key, o)
                object = o
            }
        } else {
            object = origin
        }
        let i = Int(object.index)
        guard objects.exists(object), objects.records[i].kind == .stream, objects.records[i].remotePeer == peer,
            objects.records[i].remoteOrigin == origin, objects.records[i].bridge == .receives
        else { return nil }
        return object
    }
}
