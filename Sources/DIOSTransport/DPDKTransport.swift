/// Whether this build can use DPDK: true when the package was built with the
/// `DPDK` trait (the default), so `DPDKEnvironment`, `DPDKPort` and `DPDKTransport` exist.
public enum DPDKSupport {
    public static var isBuilt: Bool {
        #if DIOS_DPDK
        true
        #else
        false
        #endif
    }

    /// Whether every unmapping in this process first waits for the DPDK bursts
    /// under way: the shim's `munmap` stands in for libc's (CSupport/CDPDK/cdpdk.c).
    /// It keeps a memif link that its peer's death tears down (on the EAL's
    /// interrupt thread) from unmapping a ring under a burst. False without
    /// DPDK, and in sanitizer builds, whose runtime must see each munmap.
    public static var munmapWaitsForBursts: Bool {
        #if DIOS_DPDK
        cdpdk_munmap_is_guarded() == 1
        #else
        false
        #endif
    }

    #if DIOS_DPDK
    /// For tests of that guard: runs `body` with the calling thread marked as
    /// inside a burst, as the transports' bursts are while DPDK runs.
    package static func markedAsInBurst<T>(_ body: () throws -> T) rethrows -> T {
        cdpdk_burst_hold_begin()
        defer { cdpdk_burst_hold_end() }
        return try body()
    }
    #endif
}

#if DIOS_DPDK
public import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: - The EAL

/// Where the process's one Environment Abstraction Layer stands. DPDK allows
/// `rte_eal_init` once per process, and nothing after `rte_eal_cleanup`.
private enum EALState {
    case idle
    case running(DPDKEnvironment)
    case failed(TransportError)
    case cleanedUp
}

private let ealState = Mutex<EALState>(.idle)
/// Whether `ealState` is `.running`, for readers on the data path (releasing a
/// frame checks it): a word every core may read without taking the lock.
private let ealRunning = Atomic<Bool>(false)

/// The DPDK Environment Abstraction Layer of this process: hugepage memory, the
/// lcores, and the Ethernet devices (`--vdev` virtual ones; PCI NICs unless
/// `--no-pci`). One per process, started once from an argument array:
///
///     let eal = try DPDKEnvironment.start(arguments: [
///         "dios", "--file-prefix", "node0", "--no-pci", "--huge-unlink",
///         "--vdev", "net_memif0,role=server,socket=/tmp/node0.sock", "-l", "0",
///     ])
///
/// Notes from Debian's DPDK 22.11: memif needs the EAL's multi-process channel,
/// so neither `--in-memory` nor `--no-shconf` works with it; `--huge-unlink`
/// leaves no hugepage files behind even after a crash; `--file-prefix` keeps
/// several processes apart; the runtime directory (`/var/run/dpdk/PREFIX`)
/// is removed by `cleanup()`, and after a crash stays for the caller to remove;
/// the memory is released when the process exits (see `cleanup()` for why not before);
/// memif's socket is abstract (no file) unless `socket-abstract=no`.
public final class DPDKEnvironment: Sendable {
    /// The arguments the EAL was started with.
    public let arguments: [String]

    private init(arguments: [String]) { self.arguments = arguments }

    /// Starts the EAL with `arguments` (the first is the program name, as argv[0]).
    /// Returns the running environment when called again with the same arguments.
    ///
    /// - Throws: `TransportError.dpdk` naming `rte_eal_init` with `rte_strerror`'s
    ///   message when the EAL does not start (no hugepages, a bad argument, not
    ///   root, an unknown `--vdev` driver); `.configuration` when it was started
    ///   with other arguments, or has been cleaned up.
    public static func start(arguments: [String]) throws(TransportError) -> DPDKEnvironment {
        let result: Result<DPDKEnvironment, TransportError> = ealState.withLock { state in
            switch state {
            case .running(let existing):
                guard existing.arguments == arguments else {
                    return .failure(.configuration(
                        "the DPDK EAL is already running with \(existing.arguments); one EAL per process"))
                }
                return .success(existing)
            case .failed(let error):
                return .failure(error)  // rte_eal_init may not be retried
            case .cleanedUp:
                return .failure(.configuration("the DPDK EAL was cleaned up; it cannot start again in this process"))
            case .idle:
                guard !arguments.isEmpty else { return .failure(.configuration("EAL arguments need argv[0]")) }
                // The EAL permutes argv and may keep pointers into it (vdev
                // arguments, the file prefix), so these C strings live for the
                // rest of the process: a few hundred bytes, once.
                let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
                for (i, argument) in arguments.enumerated() { argv[i] = strdup(argument) }
                argv[arguments.count] = nil
                var error: Int32 = 0
                let parsed = cdpdk_eal_init(Int32(arguments.count), argv, &error)
                guard parsed >= 0 else {
                    let failure = TransportError.dpdk(
                        call: "rte_eal_init", message: "\(Self.message(error)) (rte_errno \(error)); arguments: \(arguments)")
                    state = .failed(failure)
                    return .failure(failure)
                }
                let environment = DPDKEnvironment(arguments: arguments)
                state = .running(environment)
                ealRunning.store(true, ordering: .releasing)
                return .success(environment)
            }
        }
        return try result.get()
    }

    /// True from a successful `start` until `cleanup`.
    public var isRunning: Bool { ealRunning.load(ordering: .acquiring) }

    /// Ends this process's use of the EAL: from now on `isRunning` is false,
    /// so nothing frees mbufs or pools into it, and unless
    /// `keepRuntimeDirectory` its runtime directory (`/var/run/dpdk/PREFIX`,
    /// which DPDK leaves for secondary processes DIOS does not use) is
    /// removed. Idempotent. The EAL cannot start again in this process.
    ///
    /// It does not call `rte_eal_cleanup`: the memory stays mapped until the
    /// process exits, which releases it (`--huge-unlink` left no hugepage
    /// files to remove). DPDK 22.11's `rte_eal_cleanup` frees that memory
    /// while its interrupt thread may still read it: after a port's close
    /// (memif unregisters its sockets' callbacks) the thread rebuilds its wait
    /// set from interrupt handles in that memory, and a `diosd` that stopped
    /// cleanly then crashed in `rte_intr_fd_get` on `eal-intr-thread`, in 3 of
    /// 30 stops of a memif server at stop 18 (later DPDK stops the thread first).
    ///
    /// - Important: close every `DPDKPort` first (memif removes its socket
    ///   then); ports left open are not closed here.
    public func cleanup(keepRuntimeDirectory: Bool = false) {
        ealState.withLock { state in
            guard case .running = state else { return }
            let runtimeDirectory = cdpdk_runtime_dir().map { String(cString: $0) } ?? ""
            ealRunning.store(false, ordering: .releasing)
            state = .cleanedUp
            if !keepRuntimeDirectory && runtimeDirectory.hasPrefix("/") { Self.removeFlatDirectory(runtimeDirectory) }
        }
    }

    /// Unlinks the entries of `path` (the EAL's runtime directory holds only
    /// files and a socket, no subdirectories) and then the directory itself.
    private static func removeFlatDirectory(_ path: String) {
        guard let directory = opendir(path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { _ = unlink(path + "/" + name) }
        }
        closedir(directory)
        _ = rmdir(path)
    }

    /// Gives the calling thread a DPDK lcore id, so the mbufs its transport
    /// allocates and frees go through a per-lcore mempool cache rather than the
    /// pool's shared ring. Call it on each kernel-instance thread that polls a
    /// `DPDKTransport` (the EAL's main thread has one already). Idempotent.
    ///
    /// - Throws: `TransportError.dpdk` naming `rte_thread_register` when no lcore
    ///   id is free (RTE_MAX_LCORE), or the EAL is not running.
    public func registerCurrentThread() throws(TransportError) {
        guard isRunning else { throw .configuration("the DPDK EAL is not running") }
        guard cdpdk_lcore_id() == UInt32.max else { return }
        var error: Int32 = 0
        guard cdpdk_thread_register(&error) == 0 else {
            throw .dpdk(call: "rte_thread_register", message: "\(Self.message(error)) (rte_errno \(error))")
        }
    }

    /// The calling thread's lcore id; nil for a thread the EAL does not know.
    public var currentThreadLcore: Int? {
        let id = cdpdk_lcore_id()
        return id == UInt32.max ? nil : Int(id)
    }

    /// Releases the lcore id `registerCurrentThread` gave the calling thread.
    public func unregisterCurrentThread() {
        if isRunning { cdpdk_thread_unregister() }
    }

    /// How many Ethernet ports the EAL found.
    public var portCount: Int { Int(cdpdk_eth_dev_count_avail()) }

    /// The port id of the device `name` ("net_memif0", "net_af_packet0").
    public func portID(named name: String) throws(TransportError) -> UInt16 {
        var id: UInt16 = 0
        let r = name.withCString { cdpdk_port_by_name($0, &id) }
        guard r == 0 else {
            throw .configuration("no DPDK port named \(name) (ports: \(portNames().joined(separator: ", ")))")
        }
        return id
    }

    /// The names of the ports, by port id.
    public func portNames() -> [String] {
        var names = [String]()
        var buffer = [CChar](repeating: 0, count: 64)
        var next = cdpdk_port_next(0)
        while next >= 0, let id = UInt16(exactly: next) {
            if cdpdk_port_name(id, &buffer, UInt32(buffer.count)) == 0 {
                names.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            guard id < UInt16.max else { break }
            next = cdpdk_port_next(id + 1)
        }
        return names
    }

    /// `rte_strerror`'s text for a DPDK error number (positive or negative).
    static func message(_ error: Int32) -> String {
        String(cString: cdpdk_strerror(error < 0 ? -error : error))
    }
}

// MARK: - Ports

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
    /// For a link to one peer (memif): 0 in use; 1 the peer said it is leaving,
    /// so the link is left alone (DPDK 22.11's memif tears its rings down from
    /// the interrupt thread while queues may be polled: a node polling two
    /// queues crashed so once; a peer killed without a word still does that,
    /// and the shim's `munmap` guard makes the unmapping wait for the bursts
    /// under way, see `DPDKSupport.munmapWaitsForBursts`); 2 the link has
    /// gone down since. It is used again once it comes back up (the peer returned). 3: the queues are
    /// parked for a restart (`restartUnderTransports`), and each transport
    /// says so in `parked` at its next poll.
    private let quiet = Atomic<UInt8>(0)
    /// The restart the queues are parked for, and per queue the last one its
    /// transport acknowledged (a poll that saw state 3: it is out of the
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
        guard let pool = "dios_mbufs_\(id)".withCString({
            cdpdk_pktmbuf_pool_create($0, UInt32(count - 1), 256, 2048 + 128, cdpdk_port_socket_id(id), &error)
        }) else {
            throw .dpdk(call: "rte_pktmbuf_pool_create", message: "\(DPDKEnvironment.message(error)) for \(count - 1) mbufs on \(name)")
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
        if isPointToPoint { _ = quiet.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing) }
    }

    /// Whether `queue` may be polled and sent on now. While the peer is away
    /// this follows the link: down (the peer has gone), then up (it is back).
    /// Each transport asks before every burst on its queue, and bursts only
    /// on a yes: `restartUnderTransports` relies on that.
    @inline(__always)
    public func isInUse(queue: UInt16) -> Bool {
        let state = quiet.load(ordering: .acquiring)
        return state == 0 || returned(from: state, queue: queue)
    }

    private func returned(from state: UInt8, queue: UInt16) -> Bool {
        if state == 3 {
            // Parked for a restart: this queue's transport is between bursts
            // now and starts none until the state changes.
            let generation = parkGeneration.load(ordering: .acquiring)
            parked.withLock { $0[Int(queue)] = generation }
            return false
        }
        let up = isLinkUp
        if state == 1 && !up { _ = quiet.compareExchange(expected: 1, desired: 2, ordering: .acquiringAndReleasing) }
        if state == 2 && up { return quiet.compareExchange(expected: 2, desired: 0, ordering: .acquiringAndReleasing).exchanged }
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
    public func waitForLink(timeoutMilliseconds: Int, restartingEvery restartMilliseconds: Int) throws(TransportError) -> Int? {
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
        let previous = quiet.load(ordering: .acquiring)
        guard previous != 3 else { return false }
        let generation = parkGeneration.add(1, ordering: .acquiringAndReleasing).newValue
        guard quiet.compareExchange(expected: previous, desired: 3, ordering: .acquiringAndReleasing).exchanged else {
            return false  // a transport moved it (the link came back, or went): decide again later
        }
        // Only this call leaves state 3, and always for 2: used again once
        // the link is up. (Not back to what it was: a peer's `peerLeaving`
        // meanwhile found 3 and did not say 1.)
        defer { quiet.store(2, ordering: .releasing) }
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
            guard r == 0 else { throw .dpdk(call: "rte_eth_dev_stop", message: "\(DPDKEnvironment.message(r)) on \(name)") }
            let s = cdpdk_port_start(id)
            guard s == 0 else { throw .dpdk(call: "rte_eth_dev_start", message: "\(DPDKEnvironment.message(s)) on \(name)") }
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

// MARK: - The transport

/// The DIOS wire over one RX/TX queue pair of a DPDK port: each frame travels as
/// one Ethernet/IPv4/UDP datagram, so DPDK nodes and kernel-socket nodes
/// (`UDPTransport`) talk to each other.
///
/// - `send` copies the frame into a fresh mbuf behind the headers it writes; the
///   destination MAC comes from a static neighbour table (no ARP resolution: an
///   unknown neighbour is refused and counted, never broadcast).
/// - `receive` hands on UDP payloads in place, in the mbufs (no copy), drops and
///   counts anything else, and answers ARP requests for the local address so
///   ordinary hosts can reach the node.
///
/// One per (port, queue), used from one thread only. Polled: `readinessFD` is nil.
///
/// With several queues on one port (a node of several instances, each with
/// its queue pair), the device decides which queue an arriving packet lands on
/// (memif: the queue matching the peer's sending queue; af_packet: a fanout
/// hash), not the UDP port that names the instance. A `DPDKSteering` shared by
/// the node's transports hands such a packet's mbuf to the instance it is for,
/// without copying it; without one, it is dropped as `wrongPort`.
public final class DPDKTransport: FrameTransport {
    /// What the transport did with frames and packets; all counts since creation.
    public struct Counters: Sendable, Equatable {
        /// Frames handed to the device.
        public var sent: UInt64 = 0
        /// Of those, frames sent from an mbuf lent by `allocateFrame` (no copy).
        public var sentInPlace: UInt64 = 0
        /// Frames refused because the TX queue was full (or the link down).
        public var sendQueueFull: UInt64 = 0
        /// Frames refused because the destination has no neighbour-table entry.
        public var unknownNeighbour: UInt64 = 0
        /// Frames refused because they exceed `maxFrameSize`.
        public var oversize: UInt64 = 0
        /// Frames refused because the mbuf pool was empty.
        public var noMbuf: UInt64 = 0
        /// Frames handed to `receive`'s body.
        public var received: UInt64 = 0
        /// Of those, frames kept past `receive` (`keepReceived`): read in place.
        public var kept: UInt64 = 0
        /// Received packets dropped, by reason (`EthernetUDP.DropReason`), plus
        /// multi-segment packets counted as malformed.
        public var dropped: [EthernetUDP.DropReason: UInt64] = [:]
        /// ARP replies sent for the local address.
        public var arpReplies: UInt64 = 0
        /// Packets for another instance of the node, handed to it.
        public var handedOver: UInt64 = 0

        /// All dropped packets.
        public var droppedTotal: UInt64 { dropped.values.reduce(0, +) }
    }

    public let port: DPDKPort
    public let queue: UInt16
    public let localAddress: PeerAddress
    public let maxFrameSize = EthernetUDP.maxPayload
    public var readinessFD: Int32? { nil }
    @exclusivity(unchecked) public private(set) var counters = Counters()
    /// Frames `send` collects before one `rte_eth_tx_burst` (1: each goes at once).
    public let txBatch: Int
    /// Packets one `receive` takes from the device at most.
    public let rxBurst: Int

    @exclusivity(unchecked) private var neighbours: [UInt32: EthernetAddress]
    /// The entry of `neighbours` the last frame went to: a run of frames
    /// usually goes to one peer, and hashing the address (SipHash) costs more
    /// than the rest of the lookup. Forgotten whenever `neighbours` changes.
    @exclusivity(unchecked) private var lastNeighbour: (ipv4: UInt32, mac: EthernetAddress)? = nil
    private let rxMbufs: UnsafeMutablePointer<OpaquePointer?>
    private let txMbufs: UnsafeMutablePointer<OpaquePointer?>
    @exclusivity(unchecked) private var txPending = 0
    /// Room for frames kept between `hold()` and `flush()` (at least `txBatch`).
    private let txCapacity: Int
    @exclusivity(unchecked) private var holding = false
    @exclusivity(unchecked) private var identification: UInt16 = 0
    @exclusivity(unchecked) private var receiving = false
    /// While `receive`'s body runs: the frame it has (index in `rxMbufs`, and
    /// its packet's bytes), for `keepReceived`.
    @exclusivity(unchecked) private var handing = -1
    @exclusivity(unchecked) private var handingBytes = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Mbufs of the burst `receive` is handling that are no longer its to free
    /// (kept, handed to a sibling, sent back as an ARP reply).
    @exclusivity(unchecked) private var taken = 0
    /// The node's handoff between its instances' queues, and this one's place in it.
    public let steering: DPDKSteering?
    public let instance: Int

    /// A transport on `queue` of `port`, reachable at `localAddress`.
    ///
    /// - Parameters:
    ///   - neighbours: IPv4 address (host order) → the MAC to send to for it
    ///     (6 bytes): peers on the link, or the gateway's MAC for each remote peer.
    ///   - steering: for a node of several instances on this port, the handoff
    ///     between them; `instance` is this transport's place in it, and
    ///     `localAddress.port` must be `steering.basePort + instance`.
    ///   - txBatch: with more than 1, `send` queues frames and the burst goes out
    ///     when `txBatch` frames wait, at the next `receive`, or at `flushTX()`.
    ///     Between `hold()` and `flush()` frames wait for `flush()` (or until
    ///     32 wait), whatever `txBatch` is.
    ///     A frame a full TX ring then refuses is dropped and counted in
    ///     `sendQueueFull` though `send` returned true, as on a wire.
    /// - Throws: `TransportError.configuration` for a queue the port lacks, a
    ///   neighbour MAC that is not 6 bytes, or a bad batch size.
    public init(
        port: DPDKPort, queue: Int, localAddress: PeerAddress, neighbours: [UInt32: [UInt8]],
        steering: DPDKSteering? = nil, instance: Int = 0, txBatch: Int = 1, rxBurst: Int = 32
    ) throws(TransportError) {
        if let steering {
            guard (0..<steering.instances).contains(instance), Int(localAddress.port) == Int(steering.basePort) + instance else {
                throw .configuration(
                    "instance \(instance) at port \(localAddress.port) is not one of the steering's \(steering.instances) from port \(steering.basePort)")
            }
        }
        guard (0..<port.queueCount).contains(queue) else {
            throw .configuration("queue \(queue) is not one of \(port.name)'s \(port.queueCount) queue(s)")
        }
        guard (1...512).contains(txBatch), (1...512).contains(rxBurst) else {
            throw .configuration("txBatch and rxBurst must be in 1...512")
        }
        var table = [UInt32: EthernetAddress]()
        for (ipv4, bytes) in neighbours {
            guard let mac = EthernetAddress(bytes: bytes) else {
                throw .configuration(
                    "neighbour \(PeerAddress(ipv4: ipv4, port: 0).ipv4Text): a MAC has 6 bytes, not \(bytes.count)")
            }
            table[ipv4] = mac
        }
        self.port = port
        self.queue = UInt16(queue)
        self.localAddress = localAddress
        self.neighbours = table
        self.txBatch = txBatch
        self.rxBurst = rxBurst
        self.steering = steering
        self.instance = instance
        rxMbufs = .allocate(capacity: rxBurst)
        rxMbufs.initialize(repeating: nil, count: rxBurst)
        txCapacity = max(txBatch, 32)
        txMbufs = .allocate(capacity: txCapacity)
        txMbufs.initialize(repeating: nil, count: txCapacity)
    }

    deinit {
        flushTX()
        rxMbufs.deallocate()
        txMbufs.deallocate()
    }

    /// Adds or replaces the MAC for `ipv4`. False (table unchanged) unless `mac` has 6 bytes.
    @discardableResult
    public func setNeighbour(_ ipv4: UInt32, mac: [UInt8]) -> Bool {
        guard let address = EthernetAddress(bytes: mac) else { return false }
        neighbours[ipv4] = address
        lastNeighbour = nil
        return true
    }

    /// The MAC to send to for `ipv4` (see `lastNeighbour`).
    @inline(__always)
    private func destinationMAC(for ipv4: UInt32) -> EthernetAddress? {
        if let last = lastNeighbour, last.ipv4 == ipv4 { return last.mac }
        guard let mac = neighbours[ipv4] else { return nil }
        lastNeighbour = (ipv4, mac)
        return mac
    }

    /// The MAC frames to `ipv4` are sent to, if known.
    public func neighbour(_ ipv4: UInt32) -> EthernetAddress? { neighbours[ipv4] }

    public func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
        guard frame.count <= maxFrameSize else {
            counters.oversize &+= 1
            return false
        }
        guard let destinationMAC = destinationMAC(for: peer.ipv4) else {
            counters.unknownNeighbour &+= 1
            return false
        }
        guard let mbuf = cdpdk_pktmbuf_alloc(port.pool) else {
            counters.noMbuf &+= 1
            return false
        }
        let length = EthernetUDP.headerSize + frame.count  // ≤ 1514, within the 2048-byte data room
        guard cdpdk_mbuf_set_len(mbuf, UInt16(length)) == 0, let data = cdpdk_mbuf_data(mbuf) else {
            cdpdk_pktmbuf_free(mbuf)
            counters.noMbuf &+= 1
            return false
        }
        // `data` has `length` writable bytes: set_len checked them against the tailroom.
        writeHeaders(at: data, to: peer, mac: destinationMAC, payloadLength: frame.count)
        if let base = frame.baseAddress, !frame.isEmpty {
            (data + EthernetUDP.headerSize).copyMemory(from: base, byteCount: frame.count)
        }
        return queueForDevice(mbuf)
    }

    /// The Ethernet, IPv4 and UDP headers in front of a `payloadLength`-byte frame for `peer`.
    @inline(__always)
    private func writeHeaders(at data: UnsafeMutableRawPointer, to peer: PeerAddress, mac: EthernetAddress, payloadLength: Int) {
        EthernetUDP.writeHeaders(
            to: data, sourceMAC: port.mac, destinationMAC: mac, source: localAddress, destination: peer,
            payloadLength: payloadLength, identification: identification)
        identification &+= 1
    }

    /// Queues a packet for the device: it goes in the next burst, which leaves
    /// once `txBatch` packets wait (between `hold()` and `flush()`, `txCapacity`).
    @inline(__always)
    private func queueForDevice(_ mbuf: OpaquePointer) -> Bool {
        txMbufs[txPending] = mbuf
        txPending += 1
        guard txPending >= (holding ? txCapacity : txBatch) else { return true }
        return flushTX()
    }

    // MARK: In-place frames

    /// An mbuf to write a frame in: `bytes` is its data past the Ethernet, IPv4
    /// and UDP headers, which `sendFrame` writes in front.
    public func allocateFrame() -> TransportFrame? {
        guard let mbuf = cdpdk_pktmbuf_alloc(port.pool) else {
            counters.noMbuf &+= 1
            return nil
        }
        // Fresh, its data length is 0 until the first `sendFrame` sets it.
        guard Int(cdpdk_mbuf_capacity(mbuf)) >= EthernetUDP.headerSize + maxFrameSize, let data = cdpdk_mbuf_data(mbuf)
        else {
            cdpdk_pktmbuf_free(mbuf)
            counters.noMbuf &+= 1
            return nil
        }
        return TransportFrame(handle: mbuf, bytes: data + EthernetUDP.headerSize, capacity: maxFrameSize)
    }

    /// Queues the frame's mbuf itself for the device, with a reference of the
    /// device's own (the driver drops it once the packet is out), so the caller's
    /// stays valid for a resend. The headers are written on the first send only:
    /// a resend must not touch bytes a device may still be reading.
    public func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
        guard length <= maxFrameSize else {
            counters.oversize &+= 1
            return false
        }
        guard let destinationMAC = destinationMAC(for: peer.ipv4) else {
            counters.unknownNeighbour &+= 1
            return false
        }
        let mbuf = frame.handle
        let total = EthernetUDP.headerSize + length
        guard cdpdk_mbuf_data_len(mbuf) == 0 || Int(cdpdk_mbuf_data_len(mbuf)) == total else { return false }
        if cdpdk_mbuf_data_len(mbuf) == 0 {  // the first send
            guard cdpdk_mbuf_set_len(mbuf, UInt16(total)) == 0 else { return false }
            writeHeaders(at: frame.bytes - EthernetUDP.headerSize, to: peer, mac: destinationMAC, payloadLength: length)
        }
        _ = cdpdk_mbuf_refcnt_update(mbuf, 1)
        counters.sentInPlace &+= 1
        return queueForDevice(mbuf)
    }

    /// True when only the frame's owner holds its mbuf (no device still has it queued).
    public func isIdle(_ frame: TransportFrame) -> Bool {
        cdpdk_mbuf_refcnt_read(frame.handle) == 1
    }

    /// Frees the frame's mbuf, unless the EAL has been cleaned up: its memory is
    /// gone with it (a session let go after `DPDKEnvironment.cleanup()`).
    public func releaseFrame(_ frame: TransportFrame) {
        guard port.environment.isRunning else { return }
        cdpdk_pktmbuf_free(frame.handle)
    }

    public func peerLeaving(_ address: PeerAddress) { port.peerLeaving() }

    /// Keeps the mbuf `receive` is handing over, when `bytes` lies in its
    /// packet: it is left out of the burst's free (and counted in `kept`).
    public func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? {
        guard handing >= 0, let mbuf = rxMbufs[handing], let start = handingBytes.baseAddress,
            bytes >= start && bytes < start + handingBytes.count
        else { return nil }
        rxMbufs[handing] = nil
        taken += 1
        counters.kept &+= 1
        return mbuf
    }

    /// Frees a kept mbuf, unless the EAL has been cleaned up (its memory is gone with it).
    public func releaseReceived(_ handle: OpaquePointer) {
        guard port.environment.isRunning else { return }
        cdpdk_pktmbuf_free(handle)
    }

    public func hold() { holding = true }

    public func flush() {
        holding = false
        flushTX()
    }

    /// Hands the frames `send` has queued to the device. Returns false when the
    /// TX ring refused some (those are freed and counted in `sendQueueFull`).
    @discardableResult
    public func flushTX() -> Bool {
        guard txPending > 0 else { return true }
        let pending = txPending
        // A leaving peer's link is left alone: what waits for it is dropped (lost on the wire).
        let sent = port.isInUse(queue: queue) ? Int(cdpdk_tx_burst(port.id, queue, txMbufs, UInt16(pending))) : 0
        counters.sent &+= UInt64(sent)
        if sent < pending {
            // The device took a prefix; the rest are still ours.
            cdpdk_pktmbuf_free_bulk(txMbufs + sent, UInt32(pending - sent))
            counters.sendQueueFull &+= UInt64(pending - sent)
        }
        txMbufs.update(repeating: nil, count: pending)
        txPending = 0
        return sent == pending
    }

    /// Takes up to `rxBurst` packets, hands each UDP datagram for `localAddress`
    /// to `body` (the payload in place in its mbuf, valid only during the call),
    /// answers ARP requests, drops and counts the rest, then frees the mbufs.
    /// Returns how many frames `body` got. `body` may call `send`, not `receive`
    /// (a nested call returns 0).
    public func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        flushTX()
        guard !receiving else { return 0 }
        receiving = true
        defer { receiving = false }
        // Packets the node's other instances took for us first, then the device's.
        var count = 0
        if let steering {
            for from in 0..<steering.instances where from != instance {
                while count < rxBurst, let mbuf = steering.take(from: from, to: instance) {
                    rxMbufs[count] = mbuf
                    count += 1
                }
            }
        }
        if count < rxBurst && port.isInUse(queue: queue) {
            count += Int(cdpdk_rx_burst(port.id, queue, rxMbufs + count, UInt16(rxBurst - count)))
        }
        // Nearly every poll of an idle link ends here.
        guard count > 0 else { return 0 }
        var delivered = 0
        taken = 0
        for i in 0..<count {
            guard let mbuf = rxMbufs[i] else { continue }
            // One segment only: a 1514-byte frame always fits one 2048-byte buffer.
            guard cdpdk_mbuf_is_contiguous(mbuf) == 1, let data = cdpdk_mbuf_data(mbuf) else {
                counters.dropped[.malformed, default: 0] &+= 1
                continue
            }
            // The mbuf's data: `data_len` bytes at `data`, owned by us until freed below.
            let packet = UnsafeMutableRawBufferPointer(start: data, count: Int(cdpdk_mbuf_data_len(mbuf)))
            switch EthernetUDP.classify(UnsafeRawBufferPointer(packet), mac: port.mac, local: localAddress, siblings: steering?.ports) {
            case .frame(let payload, let source):
                counters.received &+= 1
                delivered += 1
                handing = i
                handingBytes = UnsafeRawBufferPointer(packet)
                body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(packet)[payload]), source)
                handing = -1
            case .arpRequest:
                // Reply in the request's own mbuf; the device owns it once taken.
                EthernetUDP.rewriteARPRequestAsReply(packet, mac: port.mac, ipv4: localAddress.ipv4)
                var reply: OpaquePointer? = mbuf
                if cdpdk_tx_burst(port.id, queue, &reply, 1) == 1 {
                    rxMbufs[i] = nil
                    taken += 1
                    counters.arpReplies &+= 1
                }
            case .sibling(let to):
                // classify only says .sibling when there is a steering.
                if steering!.hand(mbuf, from: instance, to: Int(to - steering!.basePort)) {
                    rxMbufs[i] = nil  // the sibling frees it
                    taken += 1
                    counters.handedOver &+= 1
                } else {
                    counters.dropped[.siblingBusy, default: 0] &+= 1
                }
            case .drop(let reason):
                counters.dropped[reason, default: 0] &+= 1
            }
        }
        // Frees what is still ours; the ARP replies the device took are nil here.
        // (None left when each message stays in its frame to be read there.)
        if taken < count { cdpdk_pktmbuf_free_bulk(rxMbufs, UInt32(count)) }
        return delivered
    }
}

// MARK: - Steering between a node's instances

/// The handoff between the transports of one node's instances on one port.
/// Each instance owns a queue pair, but the device picks the queue an arriving
/// packet lands on; the transport that finds a packet for a sibling (by UDP
/// port: instance k listens on `basePort + k`) hands its mbuf over through a
/// single-producer/single-consumer ring for that ordered pair, and the sibling
/// takes it at its next `receive`, before its own burst. Nothing is copied;
/// the sibling frees the mbuf. A full ring drops the packet (counted as
/// `siblingBusy`; the session above retransmits).
///
/// Once `arm(wakers:)` has run, `wakers[k]` is called after a packet is
/// handed to instance k (its kernel instance may be asleep: DPDK queues cannot
/// wake it); before, the sibling finds the packet at its next poll.
public final class DPDKSteering: @unchecked Sendable {  // each ring: one producer thread, one consumer thread
    public let basePort: UInt16
    public let instances: Int
    public var ports: ClosedRange<UInt16> { basePort...(basePort + UInt16(instances - 1)) }
    /// Written once by `arm`, before `armed` is set; read only after.
    private var wakers: [@Sendable () -> Void] = []
    private let armed = Atomic<Bool>(false)
    private let rings: [MbufRing]

    public init(basePort: UInt16, instances: Int, capacity: Int = 1024) throws(TransportError) {
        guard instances >= 1, Int(basePort) + instances <= 65_536 else {
            throw .configuration("\(instances) instance(s) from port \(basePort)")
        }
        self.basePort = basePort
        self.instances = instances
        rings = (0..<(instances * instances)).map { _ in MbufRing(capacity: capacity) }
    }

    deinit { drain() }

    /// Sets how to wake each instance (while they may already poll: they read
    /// the wakers only once `armed` says they are all in place). Once only.
    public func arm(wakers: [@Sendable () -> Void]) {
        precondition(wakers.count == instances && !armed.load(ordering: .acquiring), "arm once, with a waker per instance")
        self.wakers = wakers
        armed.store(true, ordering: .releasing)
    }

    /// Hands `mbuf` from instance `from` to instance `to`; false when that ring is full.
    func hand(_ mbuf: OpaquePointer, from: Int, to: Int) -> Bool {
        guard rings[from * instances + to].push(UInt64(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(mbuf))))) else {
            return false
        }
        if armed.load(ordering: .acquiring) { wakers[to]() }
        return true
    }

    /// The oldest mbuf handed from `from` to `to`, if any.
    func take(from: Int, to: Int) -> OpaquePointer? {
        guard let bits = rings[from * instances + to].pop() else { return nil }
        return OpaquePointer(bitPattern: UInt(bits))
    }

    /// Frees every mbuf still waiting (after the instances stopped, before the
    /// port closes).
    public func drain() {
        for ring in rings {
            while let bits = ring.pop() {
                var mbuf = OpaquePointer(bitPattern: UInt(bits))
                cdpdk_pktmbuf_free_bulk(&mbuf, 1)
            }
        }
    }
}

/// A single-producer/single-consumer ring of 64-bit words: the producer writes
/// a slot, then publishes `tail` with release order; the consumer reads `tail`
/// with acquire order, then the slot. Each side caches the other's index and
/// reads the shared one only when its copy says full or empty.
final class MbufRing: @unchecked Sendable {
    private let memory: UnsafeMutableRawPointer
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: UInt64
    // Lines: 0 tail + the producer's cached head, 64 head + the consumer's cached tail.
    private var tail: UnsafeMutablePointer<UInt64> { memory.assumingMemoryBound(to: UInt64.self) }
    private var cachedHead: UnsafeMutablePointer<UInt64> { (memory + 8).assumingMemoryBound(to: UInt64.self) }
    private var head: UnsafeMutablePointer<UInt64> { (memory + 64).assumingMemoryBound(to: UInt64.self) }
    private var cachedTail: UnsafeMutablePointer<UInt64> { (memory + 72).assumingMemoryBound(to: UInt64.self) }

    init(capacity: Int) {
        var size = 1
        while size < capacity { size <<= 1 }
        memory = .allocate(byteCount: 128, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = UInt64(size - 1)
    }

    deinit {
        memory.deallocate()
        slots.deallocate()
    }

    func push(_ value: UInt64) -> Bool {
        let t = tail.pointee
        if t &- cachedHead.pointee > mask {
            cachedHead.pointee = clinux_load_acquire_u64(head)
            if t &- cachedHead.pointee > mask { return false }
        }
        slots[Int(t & mask)] = value
        clinux_store_release_u64(tail, t &+ 1)
        return true
    }

    func pop() -> UInt64? {
        let h = head.pointee
        if h == cachedTail.pointee {
            cachedTail.pointee = clinux_load_acquire_u64(tail)
            if h == cachedTail.pointee { return nil }
        }
        let value = slots[Int(h & mask)]
        clinux_store_release_u64(head, h &+ 1)
        return value
    }
}
#endif
