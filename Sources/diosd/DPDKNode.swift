import DIOS
import DIOSConfig
import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The DPDK side of a `transport: dpdk` node: the process's EAL, the node's
/// port with a queue pair per instance, and the instances' transports; with
/// several instances, the steering that hands each packet to the instance its
/// UDP port names, whichever queue it landed on. The instance threads register
/// with the EAL as they start, so their mbufs go through per-lcore mempool caches.
///
/// Order at the end (`shutdown`, after the node's polling threads have stopped):
/// counters reported, the port stopped and closed, then the EAL cleaned up
/// (its runtime directory removed). Transports the instances still reference
/// then hold no mbufs (each `send` hands its frame to the device at once, each
/// `receive` frees its burst) and never touch the device again.
final class DPDKNode: @unchecked Sendable {  // set up before the instances poll; read after they stop
    #if DIOS_DPDK
    let environment: DPDKEnvironment
    let port: DPDKPort
    private(set) var transports: [DPDKTransport] = []
    let steering: DPDKSteering?
    #endif
    /// Once the node's instances exist (they may be polling already): how to
    /// wake instance k when a packet is steered to it.
    func arm(wake: @escaping @Sendable (Int) -> Void) {
        #if DIOS_DPDK
        guard let steering else { return }
        steering.arm(wakers: (0..<steering.instances).map { k in { wake(k) } })
        #endif
    }
    let device: String
    /// A memif client: its link is kept (`keepLinked`).
    let reconnects: Bool
    /// The thread keeping the link, and its stop.
    private var linkKeeper: pthread_t? = nil
    private let stopKeeping = StopFlag()
    private final class StopFlag: Sendable { let value = Atomic<Bool>(false) }

    /// Starts the EAL for node `id` of `cluster` and its port, and checks the
    /// port's MAC against the cluster file's.
    init(_ cluster: ClusterFile, node id: UInt16, say: (String) -> Void) throws(TransportError) {
        guard let entry = cluster.node(id), let settings = entry.dpdk else {
            throw .configuration("node \(id) is not a dpdk node")
        }
        device = settings.device
        reconnects = settings.driver == "memif" && settings.options["role"] == "client"
        #if DIOS_DPDK
        guard let arguments = cluster.ealArguments(for: id, cpus: Self.allowedCPUs()) else {
            throw .configuration("node \(id) is not a dpdk node")
        }
        // A memif server's socket file (socket-abstract=no) left by a run that
        // was killed would fail its bind ("Address already in use").
        if settings.driver == "memif", settings.options["role", default: "server"] == "server",
            settings.options["socket-abstract"] == "no"
        {
            let socket = settings.options["socket"] ?? "/run/memif.sock"
            if SocketFile.removeIfStale(socket) {
                say("diosd: removed \(socket), a memif socket nobody listened on (left by a run that was killed)")
            }
        }
        say("diosd: starting the DPDK EAL: \(arguments.dropFirst().joined(separator: " "))")
        environment = try DPDKEnvironment.start(arguments: arguments)
        if settings.driver == "memif", !DPDKSupport.munmapWaitsForBursts {
            say(
                "diosd: warning: unmapping does not wait for DPDK bursts in this build (sanitizer): a memif peer that "
                    + "dies mid-burst can crash this node"
            )
        }
        let instances = entry.cores.count
        do {
            port = try Self.openPort(environment, settings, queues: instances, say: say)
            steering = instances > 1 ? try DPDKSteering(basePort: entry.address.port, instances: instances) : nil
        } catch {
            environment.cleanup()
            throw error
        }
        if let mac = entry.mac, port.mac.bytes != mac {
            let found = port.mac
            port.close()
            environment.cleanup()
            throw .configuration(
                "node \(id): port \(settings.device) has MAC \(found), the cluster file says \(entry.macText ?? "")"
                    + (["af_packet", "af_xdp"].contains(settings.driver)
                        ? " (\(settings.driver) takes its interface's: create it with that address)" : ""))
        }
        #else
        throw .configuration("node \(id): this diosd was built without the DPDK trait; use transport: udp")
        #endif
    }

    #if DIOS_DPDK
    /// Opens and starts the node's port. A memif client cannot start until its
    /// server listens (`rte_eth_dev_start` fails): it tries again every 100 ms
    /// for up to `waitSeconds`, so nodes may start in any order.
    ///
    /// A memif client also waits for its link. A server listens from the
    /// moment its EAL probes the device but takes a client only once its port
    /// has started; a client that connects in between is refused ("ID not
    /// found" in the memif log), and DPDK 22.11's client never connects again
    /// by itself, leaving the node up with no link. So the client's port is
    /// started again every 2 s while its link stays down, within the same
    /// `waitSeconds` (the refusal is reproduced by `dios-dpdk-probe
    /// --memif-refusal`, whose test checks the restart).
    static func openPort(
        _ environment: DPDKEnvironment, _ settings: ClusterFile.DPDKSettings, queues: Int, waitSeconds: Int = 30,
        say: (String) -> Void
    ) throws(TransportError) -> DPDKPort {
        let client = settings.driver == "memif" && settings.options["role"] == "client"
        let socket = settings.options["socket"] ?? "/run/memif.sock"
        var tries = 0
        let port: DPDKPort
        while true {
            do {
                port = try DPDKPort(environment: environment, name: settings.device, queues: queues)
                break
            } catch {
                guard client, case .dpdk(let call, _) = error, call == "rte_eth_dev_start", tries < waitSeconds * 10
                else {
                    throw error
                }
                if tries == 0 {
                    say("diosd: \(settings.device): waiting for the memif server at \(socket)")
                }
                tries += 1
                usleep(100_000)
            }
        }
        guard client else { return port }
        let left = max(2_000, waitSeconds * 1_000 - tries * 100)
        do throws(TransportError) {
            guard let restarts = try port.waitForLink(timeoutMilliseconds: left, restartingEvery: 2_000) else {
                throw .configuration(
                    "\(settings.device): the memif server at \(socket) took the connection, but no link came up in "
                        + "\(left / 1_000) s (the memif log says why: add `--log-level, \"pmd.net.memif:debug\"` to "
                        + "the node's eal_args)"
                )
            }
            if restarts > 0 {
                say(
                    "diosd: \(settings.device): the memif server refused the first connection (it had not started its "
                        + "port); linked after \(restarts) restart(s)"
                )
            }
        } catch {
            port.close()
            throw error
        }
        return port
    }
    #endif

    /// Keeps a memif client's link: DPDK 22.11's memif client connects only
    /// when its port starts, so once its server has gone (stopped, or killed
    /// without a word) it would never link again, even to a server that is
    /// back. While the link is down, a thread of its own starts the port again
    /// every `retryMilliseconds` under the polling instances
    /// (`DPDKPort.restartUnderTransports`: their queues are parked first)
    /// until the server takes it, and the sessions above find their peer
    /// again. Until `shutdown`; nothing for any other port. Call it once the
    /// instances poll every queue of the port: a restart waits for each
    /// queue's transport to step aside.
    func keepLinked(every retryMilliseconds: Int = 2_000, say: @escaping @Sendable (String) -> Void) {
        #if DIOS_DPDK
        guard reconnects, linkKeeper == nil else { return }
        let (port, stop, device) = (self.port, self.stopKeeping, self.device)
        let step = 100  // ms between looks at the link
        do throws(OSThread.StartError) {
            linkKeeper = try OSThread.start {
                var downFor = 0
                var restarts = 0
                var lastError = ""
                while !stop.value.load(ordering: .acquiring) {
                    usleep(UInt32(step * 1_000))
                    if port.isLinkUp {
                        if downFor > 0 {
                            say(
                                "diosd: \(device): linked again after \(downFor / 1_000) s down (\(restarts) "
                                    + "restart(s) of the port)"
                            )
                        }
                        (downFor, restarts, lastError) = (0, 0, "")
                        continue
                    }
                    if downFor == 0 {
                        say(
                            "diosd: \(device): the memif link is down; starting the port again every "
                                + "\(retryMilliseconds / 1_000) s until the server takes it"
                        )
                    }
                    downFor += step
                    guard downFor % retryMilliseconds < step else { continue }
                    do throws(TransportError) {
                        if try port.restartUnderTransports() { restarts += 1 }
                    } catch {
                        // Said once: a server still away fails every restart alike.
                        if "\(error)" != lastError { say("diosd: \(device): restart: \(error)") }
                        lastError = "\(error)"
                    }
                }
            }
        } catch {
            say(
                "diosd: \(device): cannot keep the memif link (\(error)); a server that goes and returns will not be "
                    + "linked again"
            )
        }
        #endif
    }

    /// The transport of instance `k`, on queue `k` of the port.
    func transport(
        instance k: Int, address: PeerAddress, neighbours: [UInt32: [UInt8]]
    ) throws(TransportError) -> any FrameTransport {
        #if DIOS_DPDK
        let transport = try DPDKTransport(
            port: port, queue: k, localAddress: address, neighbours: neighbours, steering: steering, instance: k)
        transports.append(transport)
        return transport
        #else
        throw .configuration("built without the DPDK trait")
        #endif
    }

    /// The MAC frames leave from.
    var mac: String {
        #if DIOS_DPDK
        "\(port.mac)"
        #else
        "-"
        #endif
    }

    /// On an instance's polling thread, before it polls: an lcore id for it.
    func instanceThreadStarted(_ index: Int, say: (String) -> Void) {
        #if DIOS_DPDK
        do throws(TransportError) {
            try environment.registerCurrentThread()
        } catch {
            say("diosd: instance \(index) polls \(device) without an lcore id (no per-lcore mbuf cache): \(error)")
        }
        #endif
    }

    /// On an instance's polling thread, as it ends.
    func instanceThreadEnding(_ index: Int) {
        #if DIOS_DPDK
        environment.unregisterCurrentThread()
        #endif
    }

    /// After the node's polling threads have stopped: reports the transports'
    /// counters, closes the port and cleans up the EAL. Idempotent.
    func shutdown(say: (String) -> Void) {
        #if DIOS_DPDK
        if let keeper = linkKeeper {
            stopKeeping.value.store(true, ordering: .releasing)
            pthread_join(keeper, nil)
            linkKeeper = nil
        }
        guard environment.isRunning else { return }
        for (k, t) in transports.enumerated() {
            let c = t.counters
            let drops = c.dropped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
            say(
                "diosd: instance \(k) on \(device): frames sent \(c.sent), received \(c.received), \(c.kept) kept to "
                    + "be read in place, handed to a sibling \(c.handedOver), tx queue full \(c.sendQueueFull), no "
                    + "neighbour \(c.unknownNeighbour), no mbuf \(c.noMbuf), arp replies \(c.arpReplies), dropped "
                    + "\(c.droppedTotal)\(drops.isEmpty ? "" : " (\(drops.joined(separator: ", ")))")"
            )
        }
        transports = []
        steering?.drain()
        port.close()
        environment.cleanup()
        say("diosd: DPDK port \(device) closed, EAL cleaned up")
        #endif
    }

    /// The CPUs this process may run on, as the EAL's `-l` takes them ("0-1" or "0,2").
    static func allowedCPUs() -> String {
        let cpus = OSThread.allowedCPUs()
        return cpus.isEmpty ? "0" : OSThread.describe(cpus)
    }
}
