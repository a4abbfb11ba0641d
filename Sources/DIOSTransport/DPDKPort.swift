#if DIOS_DPDK
import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: - Ports

/// Where a port's link stands with the transports that poll its queues.
/// Moves: `.inUse` → `.peerLeaving` (the peer said so) → `.down` (the link
/// went) → `.inUse` (it came back); and from any of them → `.parked` → `.down`
/// for a restart under the transports.
enum LinkUse: UInt8, AtomicRepresentable {
    /// Polled and sent on.
    case inUse
    /// A point-to-point peer (memif) said it is leaving: the link is left
    /// alone until it has gone down and come back up. DPDK 22.11's memif tears
    /// its rings down from the interrupt thread while queues may be polled;
    /// a peer killed without a word still does that, and the shim's `munmap`
    /// guard makes the unmapping wait for the bursts under way (see
    /// `DPDKSupport.munmapWaitsForBursts`).
    case peerLeaving
    /// The link has gone down since: used again once it is up (the peer returned).
    case down
    /// The queues are parked for a restart (`restartUnderTransports`); each
    /// transport says so in `parked` at its next poll.
    case parked
}

/// One started DPDK Ethernet port with `queueCount` RX/TX queue pairs (one per
/// kernel instance) and the mbuf pool its queues receive into. Create the
/// `DPDKTransport`s on its queues; the port stays open while any exists.
///
/// Thread safety: the properties never change after `init`; each queue is used
/// by one thread (its transport's), DPDK's per-queue bursts need no locks, and
/// the pool's default ring is multi-producer/multi-consumer. Hence `@unchecked Sendable`.
public final class DPDKPort: @unchecked Sendable {
    public let environment: DPDKEnvironment
    /// The DPDK port id.
    public let id: UInt16
    /// The device name ("net_memif0").
    public let name: String
    /// RX/TX queue pairs: transports use queues 0..<queueCount.
    public let queueCount: Int
    /// The port's own MAC address, which its transports send from and accept.
    public let mac: EthernetAddress
    /// The mbuf pool (a `struct rte_mempool *`), freed when the port is deinitialised.
    let pool: OpaquePointer
    private let stopped = Mutex(false)
    /// Where the link stands with its queues (see `LinkUse`).
    private let use = Atomic<LinkUse>(.inUse)
    /// The restart the queues are parked for, and per queue the last one its
    /// transport acknowledged (a poll that saw `.parked`: it is out of the
    /// device's way until the state changes).
    private let parkGeneration = Atomic<UInt32>(0)
    private let parked: Mutex<[UInt32]>
    /// Whether the link reaches one peer only (memif).
    public var isPointToPoint: Bool { name.hasPrefix("net_memif") }

    /// Looks up the port `name`, creates its mbuf pool, configures `queues` RX/TX
    /// queue pairs and starts it.
    ///
    /// - Parameters:
    ///   - mbufs: pool size; by default enough for every descriptor of every queue
    ///     plus bursts in flight, rounded to 2^k − 1 as the mempool prefers.
    /// - Throws: `TransportError.configuration` for an unknown device or a bad
    ///   count, `.dpdk` naming the DPDK call that failed and its `rte_strerror`.
    public init(
        environment: DPDKEnvironment, name: String, queues: Int = 1,
        rxDescriptors: Int = 1024, txDescriptors: Int = 1024, mbufs: Int? = nil
    ) throws(TransportError) {
        guard environment.isRunning else { throw .configuration("the DPDK EAL is not running") }
        guard (1...1024).contains(queues) else { throw .configuration("queue count \(queues) is not in 1...1024") }
        guard (1...32768).contains(rxDescriptors), (1...32768).contains(txDescriptors) else {
            throw .configuration("descriptor counts must be in 1...32768")
        }
        let id = try environment.portID(named: name)
        var wanted = queues * (rxDescriptors + txDescriptors + 2 * 64) + 1024
        if let mbufs { wanted = mbufs }
        guard (64...(1 << 22)).contains(wanted) else { throw .configuration("mbuf count \(wanted) is not in 64...4M") }
        var count = 1
        while count - 1 < wanted { count <<= 1 }
        var error: Int32 = 0
        // 2048 bytes of data behind DPDK's 128 bytes of headroom: a 1514-byte
        // frame fits one segment (RTE_MBUF_DEFAULT_BUF_SIZE).
        guard
            let pool = "dios_mbufs_\(id)".withCString({
                cdpdk_pktmbuf_pool_create($0, UInt32(count - 1), 256, 2048 + 128, cdpdk_port_socket_id(id), &error)
            })
        else {
            throw .dpdk(
                call: "rte_pktmbuf_pool_create",
                message: "\(DPDKEnvironment.message(error)) for \(count - 1) mbufs on \(name)")
        }
        var step: UnsafePointer<CChar>? = nil
        let r = cdpdk_port_setup(id, UInt16(queues), UInt16(rxDescriptors), UInt16(txDescriptors), pool, &step)
        guard r == 0 else {
            cdpdk_mempool_free(pool)
            let call = step.map { String(cString: $0) } ?? "port setup"
            throw .dpdk(call: call, message: "\(DPDKEnvironment.message(r)) on \(name) with \(queues) queue pair(s)")
        }
        var macBytes = [UInt8](repeating: 0, count: 6)
        guard cdpdk_port_mac(id, &macBytes) == 0, let mac = EthernetAddress(bytes: macBytes) else {
            _ = cdpdk_port_stop(id)
            _ = cdpdk_port_close(id)
            cdpdk_mempool_free(pool)
            throw .dpdk(call: "rte_eth_macaddr_get", message: "no MAC address for \(name)")
        }
        self.environment = environment
        self.id = id
        self.name = name
        self.queueCount = queues
        self.mac = mac
        self.pool = pool
        self.parked = Mutex([UInt32](repeating: 0, count: queues))
    }

    /// Stops and closes the port (later bursts on it do nothing). The pool stays
    /// until the port object goes, so transports still holding it cannot touch
    /// freed memory. Idempotent; also done on deinit.
    public func close() {
        stopped.withLock { stopped in
            guard !stopped else { return }
            stopped = true
            guard environment.isRunning else { return }  // the EAL closed it already
            _ = cdpdk_port_stop(id)
            _ = cdpdk_port_close(id)
        }
    }

    deinit {
        close()
        if environment.isRunning { cdpdk_mempool_free(pool) }
    }

    /// Whether the link is up now (memif: the peer has connected).
    public var isLinkUp: Bool { cdpdk_port_link_up(id) == 1 }

    /// The peer at the far end is leaving: on a point-to-point link, stop
    /// polling and sending until it has gone and come back (`isInUse`).
    public func peerLeaving() {
        // From "in use" only: a link already left alone stays so (a restart
        // under way ends with it left alone until the link is up).
        if isPointToPoint {
            _ = use.compareExchange(expected: .inUse, desired: .peerLeaving, ordering: .acquiringAndReleasing)
        }
    }

    /// Whether `queue` may be polled and sent on now. While the peer is away
    /// this follows the link: down (the peer has gone), then up (it is back).
    /// Each transport asks before every burst on its queue, and bursts only
    /// on a yes: `restartUnderTransports` relies on that.
    @inline(__always)
    public func isInUse(queue: UInt16) -> Bool {
        let state = use.load(ordering: .acquiring)
        return state == .inUse || returned(from: state, queue: queue)
    }

    private func returned(from state: LinkUse, queue: UInt16) -> Bool {
        if state == .parked {
            // Parked for a restart: this queue's transport is between bursts
            // now and starts none until the state changes.
            let generation = parkGeneration.load(ordering: .acquiring)
            parked.withLock { $0[Int(queue)] = generation }
            return false
        }
        let up = isLinkUp
        if state == .peerLeaving && !up {
            _ = use.compareExchange(expected: .peerLeaving, desired: .down, ordering: .acquiringAndReleasing)
        }
        if state == .down && up {
            return use.compareExchange(expected: .down, desired: .inUse, ordering: .acquiringAndReleasing).exchanged
        }
        return false
    }

    /// Polls the link every millisecond until it is up or `timeoutMilliseconds` pass.
    public func waitForLink(timeoutMilliseconds: Int) -> Bool {
        for _ in 0...max(0, timeoutMilliseconds) {
            if isLinkUp { return true }
            usleep(1000)
        }
        return isLinkUp
    }

    /// Waits for the link as `waitForLink(timeoutMilliseconds:)` does, but
    /// stops and starts the port again whenever it has stayed down for
    /// `restartMilliseconds`. Returns how many restarts it took, or nil when
    /// the link was still down after `timeoutMilliseconds`.
    ///
    /// For a memif client. A memif server listens from the moment its EAL
    /// probes the device but takes a client only once its port has started;
    /// a client that connects in between is refused ("ID not found" in the
    /// memif log), and DPDK 22.11's client never connects again by itself. A
    /// restart connects it anew.
    public func waitForLink(timeoutMilliseconds: Int, restartingEvery restartMilliseconds: Int) throws(TransportError)
        -> Int?
    {
        precondition(restartMilliseconds > 0, "restart interval")
        var restarts = 0
        var waited = 0
        while true {
            let slice = min(restartMilliseconds, max(0, timeoutMilliseconds - waited))
            if waitForLink(timeoutMilliseconds: slice) { return restarts }
            waited += slice
            guard waited < timeoutMilliseconds else { return nil }
            try restart()
            restarts += 1
        }
    }

    /// Stops the port and starts it again while transports poll its queues:
    /// for a memif client whose server went away, as DPDK 22.11's client never
    /// connects again by itself (not even to a server that is back).
    ///
    /// DPDK does not stop a port under rx/tx, so the queues are parked first:
    /// the transport of each queue acknowledges at its next poll
    /// (`isInUse(queue:)`) and leaves the device alone from then on. Once every
    /// queue has, the port restarts, and the queues stay left alone until the
    /// link is up (as after a peer's `peerLeaving`). Every queue must have a
    /// transport that polls it.
    ///
    /// - Returns: false, restarting nothing, when some queue did not
    ///   acknowledge within `acknowledgeWithin` milliseconds (the queues are
    ///   then left alone until the link is up, as after a restart), or when a
    ///   transport changed the link's state meanwhile (it came up, or went).
    /// - Throws: what `restart()` throws, such as a failed `rte_eth_dev_start`
    ///   (a memif client whose server is not back yet): the queues are then
    ///   left alone behind the down link, and a later call tries again.
    public func restartUnderTransports(acknowledgeWithin milliseconds: Int = 1_000) throws(TransportError) -> Bool {
        let previous = use.load(ordering: .acquiring)
        guard previous != .parked else { return false }
        let generation = parkGeneration.add(1, ordering: .acquiringAndReleasing).newValue
        guard use.compareExchange(expected: previous, desired: .parked, ordering: .acquiringAndReleasing).exchanged
        else {
            return false  // a transport moved it (the link came back, or went): decide again later
        }
        // Only this call leaves `.parked`, and always for `.down`: used again
        // once the link is up. (Not back to what it was: a peer's
        // `peerLeaving` meanwhile found `.parked` and did not say so.)
        defer { use.store(.down, ordering: .releasing) }
        var waited = 0
        while !parked.withLock({ $0.allSatisfy { $0 == generation } }) {
            guard waited < milliseconds else { return false }
            usleep(1_000)
            waited += 1
        }
        try restart()
        return true
    }

    /// Stops the port and starts it again (its queues and pool stay). Before
    /// any transport polls its queues: DPDK does not stop a port under rx/tx
    /// (`restartUnderTransports` is for a port in use).
    public func restart() throws(TransportError) {
        try stopped.withLock { stopped throws(TransportError) in
            guard !stopped, environment.isRunning else { throw .configuration("\(name) is closed") }
            let r = cdpdk_port_stop(id)
            guard r == 0 else {
                throw .dpdk(call: "rte_eth_dev_stop", message: "\(DPDKEnvironment.message(r)) on \(name)")
            }
            let s = cdpdk_port_start(id)
            guard s == 0 else {
                throw .dpdk(call: "rte_eth_dev_start", message: "\(DPDKEnvironment.message(s)) on \(name)")
            }
        }
    }

    /// The port's counters as DPDK keeps them (`rte_eth_stats`).
    public struct Statistics: Sendable, Equatable {
        public var rxPackets: UInt64, txPackets: UInt64, rxBytes: UInt64, txBytes: UInt64
        /// Dropped by the device: RX queue full.
        public var rxMissed: UInt64
        public var rxErrors: UInt64, txErrors: UInt64
        /// RX mbuf allocation failures (pool empty).
        public var rxNoMbuf: UInt64
    }

    /// The port's counters, or nil when the driver does not keep them.
    public var statistics: Statistics? {
        var s = cdpdk_port_counters()
        guard cdpdk_port_stats(id, &s) == 0 else { return nil }
        return Statistics(
            rxPackets: s.ipackets, txPackets: s.opackets, rxBytes: s.ibytes, txBytes: s.obytes,
            rxMissed: s.imissed, rxErrors: s.ierrors, txErrors: s.oerrors, rxNoMbuf: s.rx_nombuf)
    }
}
#endif
