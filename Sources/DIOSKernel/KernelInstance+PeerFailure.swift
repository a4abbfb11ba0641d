import CLinux
import DIOSCore
import DIOSMemory
import DIOSWire

// When a peer fails: its bridged streams closed with the reason, its tasks'
// waiters told, its stand-ins marked unreachable.
extension KernelInstance {
    /// A peer came up, or failed: on failure every stream bridged to it is
    /// closed with the reason (its waiters wake and see `.unreachable`), proxies
    /// of tasks there finish with `lostTaskStatus`, and tasks it started here stop.
    func peerChanged(_ peer: InstanceID, _ change: PeerChange) {
        switch change {
        case .up:
            logger.info("instance \(peer) is reachable")
            counters.peersUp &+= 1
            sendNameState(to: peer)
        case .down(let failure):
            logger.warning("instance \(peer) failed: \(failure)")
            counters.peersDown &+= 1
            let reason = failure.description
            for i in objects.records.indices where objects.records[i].live {
                let object = ObjectID(index: UInt32(i), generation: objects.records[i].generation)
                if objects.records[i].bridge != .none && objects.records[i].remotePeer == peer {
                    failBridge(object, reason: reason)
                } else if objects.records[i].remoteNode == peer && !objects.records[i].ready {
                    finishTaskObject(object, status: lostTaskStatus)
                }
            }
            releaseBlobs(of: peer, reason: reason)
            nameService.peerDown(peer)
            remoteEnds = remoteEnds.filter { $0.key.peer != peer }
            lastRemoteEnd = nil
            remoteOutbox.removeAll { $0.peer == peer }
            for i in tasks.indices where tasks[i].live && tasks[i].remoteProxy?.peer == peer {
                stop(TaskID(index: UInt32(i), generation: tasks[i].generation))
            }
        }
    }

    private func failBridge(_ object: ObjectID, reason: String) {
        let i = Int(object.index)
        guard objects.records[i].remoteFailure == nil else { return }
        objects.records[i].remoteFailure = reason
        objects.records[i].ring?.close()
        objects.records[i].version &+= 1
        markDirty(object)
        // Deleted while it still drained to the peer: nothing more will go.
        if objects.records[i].deleted && objects.records[i].openTransactions == 0 { reclaim(object) }
    }

    func failBridges(ofProxy proxy: ObjectID, reason: String) {
        for i in objects.records.indices where objects.records[i].live && objects.records[i].proxyOfBridge == proxy {
            failBridge(ObjectID(index: UInt32(i), generation: objects.records[i].generation), reason: reason)
        }
    }

    /// The error for a stream whose ring is closed: the peer's failure, or deletion.
    @inline(never)
    func closedStreamError(_ i: Int) -> CallError {
        if let reason = objects.records[i].remoteFailure {
            return .unreachable(objects.records[i].remotePeer, reason: reason)
        }
        return .objectDeleted
    }
}
