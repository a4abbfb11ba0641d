import CLinux
import DIOSCore
import DIOSMemory
import DIOSWire

// The bridge pump: messages moved between the rings of bridged streams and
// their sessions, each poll.
extension KernelInstance {
    func pumpBridges(now: UInt64) -> Int {
        guard let wireRef else { return 0 }
        var moved = 0
        var k = 0
        while k < bridges.count {
            let object = bridges[k]
            guard objects.exists(object) else {
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            // Nothing below creates an object, so the pointer stays valid.
            let r = objects.records.pointer(Int(object.index))
            guard r.pointee.bridge == .sends, let ring = r.pointee.ring, r.pointee.remoteFailure == nil else {
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            // Most polls find the ring empty (a message written is usually sent
            // from the writer's own call, `sendNow`): no call, no session.
            if ring.hasMessage() {
                moved += wireRef._withUnsafeGuaranteedRef { sendQueued(object, ring, $0, now: now) }
            }
            if r.pointee.deleted && !ring.hasMessage() {
                if !r.pointee.keepStreamOpen {
                    sendToPeer(
                        .streamClosed(origin: r.pointee.remoteOrigin, senderIsOrigin: r.pointee.originHere),
                        to: r.pointee.remotePeer)
                }
                r.pointee.bridge = .none
                if r.pointee.openTransactions == 0 { reclaim(object) }
                bridges.swapAt(k, bridges.count - 1)
                bridges.removeLast()
                continue
            }
            k += 1
        }
        return moved
    }
}
