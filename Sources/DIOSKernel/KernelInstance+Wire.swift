import CLinux
import DIOSCore
import DIOSMemory
package import DIOSWire

/// A stream handed over by another node, keyed as its messages name it.
struct RemoteEnd: Hashable {
    var peer: InstanceID
    var origin: ObjectID

    /// The four fields packed into one word for the hasher (`lookup` of a name
    /// held elsewhere finds its stand-in by this key).
    var packed: UInt64 {
        UInt64(peer.node) << 48 | UInt64(peer.core) << 32 | UInt64(origin.index) ^ UInt64(origin.generation)
            &* 0x9E37_79B9_7F4A_7C15
    }

    func hash(into hasher: inout Hasher) { hasher.combine(packed) }

    /// As `Name`'s: a multiply-xorshift with the table's seed, not SipHash.
    func _rawHashValue(seed: Int) -> Int { Name.mix(packed, seed: seed) }
}

/// What a task started by another node's instance gets when that node is lost.
package let lostTaskStatus: Int32 = -128

/// Instances on other nodes: the wire endpoint this instance polls, streams
/// bridged between a ring here and a session, tasks run on another node, and
/// what happens when a peer fails.
///
/// A bridged stream keeps the local data path unchanged: the task here writes
/// into (or reads from) a ring in its own instance's memory exactly as for a
/// local stream; the kernel moves messages between that ring and the session
/// (one copy each way: the session keeps a copy until it is acknowledged). A
/// ring that fills holds the writer (`.wouldBlock`); a receiver's full ring
/// holds the message in the session, whose credit then holds the sender. When
/// the peer fails, every bridged stream with it is closed with the reason and
/// its waiters wake: `beginRead`/`beginWrite` then fail with `.unreachable`.
extension KernelInstance {
    /// Connects the instance to other nodes. Call before the instance is polled.
    package func attachWire(_ endpoint: WireEndpoint) {
        checkThread()
        precondition(endpoint.local == id, "endpoint for \(endpoint.local) attached to instance \(id)")
        precondition(wire == nil, "a wire attached twice to instance \(id)")  // records keep its sessions unretained
        wire = endpoint
        wireRef = Unmanaged.passUnretained(endpoint)
    }

    /// The wire's sessions (for status).
    package var wireEndpoint: WireEndpoint? { wire }

    /// What an idle loop also sleeps on: frames arriving (when the transport can say).
    /// Nil without a wire, or when the wire has no descriptor to wait on.
    package var wireReadinessFD: Int32? {
        guard let wire else { return nil }
        return wire.transport.readinessFD ?? -1
    }

    /// Polls the wire: what arrived, the sessions' timers, and bridged
    /// streams' messages and control messages waiting to be sent. `quick`
    /// (from `select`'s spin, many times a microsecond) takes only what
    /// arrived, stamped with that time (read on an earlier, full poll).
    /// `clock`: for a full poll, the time just read (`poll` read it for its
    /// turn and nothing ran since), so as not to read the clock twice.
    func pollWire(quick: UInt64? = nil, clock: UInt64? = nil) -> Int {
        guard let wireRef else { return 0 }
        return wireRef._withUnsafeGuaranteedRef { wire in pollWire(wire, quick: quick, clock: clock) }
    }

    func pollWire(_ wire: WireEndpoint, quick: UInt64?, clock: UInt64?) -> Int {
        let now: UInt64
        if let quick {
            now = quick
        } else {
            now = clock ?? clinux_monotonic_ns()
            turnClock = now
        }
        // What a full poll sends (acks, answers, stream data) leaves in one
        // burst. A quick one (`spin`) mostly finds nothing: the endpoint holds
        // what it sends only once a frame has arrived. (The closures are
        // written in the call: held in constants, they would retain `self`.)
        let full = quick == nil
        if full { wire.hold() }
        defer { if full { wire.sendHeld() } }
        var work = wire.poll(
            now: now, timers: full, holdWhenReceiving: !full,
            deliver: { peer, bytes in self.deliverRemote(bytes, from: peer) },
            changed: { peer, change in self.peerChanged(peer, change) })
        if !leavingPeers.isEmpty { endLeavingSessions(wire, now: now) }
        if !frameWaiters.isEmpty { wakeFrameWaiters(wire) }
        guard full else { return work }
        if !remoteOutbox.isEmpty { work += flushRemoteOutbox(now: now) }
        if !bridges.isEmpty { work += pumpBridges(now: now) }
        return work
    }
}
