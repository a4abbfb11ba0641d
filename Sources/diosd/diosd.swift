import ArgumentParser
import CLinux
import DIOS
import DIOSConfig
import DIOSDevices
import DIOSExamples
import DIOSMetrics
import DIOSTransport
import DIOSWire
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// diosd: the DIOS node kernel. One process per node.
@main
struct Diosd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diosd",
        abstract: "The DIOS node kernel: boots a node and serves tasks until SIGINT/SIGTERM.")

    @Option(name: .long, help: "Node configuration file (YAML); see config/node.yaml.")
    var config: String?

    @Option(name: .long, help: "Node number in the cluster (overrides the file).")
    var node: UInt16?

    @Option(name: .long, help: "Comma-separated CPUs, one kernel instance each (overrides the file).")
    var cores: String?

    @Option(name: .customLong("arena-mib"), help: "Hugepage arena size in MiB (overrides the file).")
    var arenaMiB: Int?

    @Option(name: .long, help: "Idle policy: busy or adaptive (overrides the file).")
    var idle: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Option(name: .customLong("control-socket"), help: "Unix socket for dios status (overrides the file).")
    var controlSocket: String?

    @Option(name: .long, help: "Cluster file (YAML); with --node, boots that node of it. See config/cluster.yaml.")
    var cluster: String?

    @Option(
        name: .customLong("stream-to"),
        help:
            ArgumentHelp(
                "Cluster: stream --messages numbered messages to a task on each of these instances (e.g. 1.0,2.0), "
                    + "checked there.")
    )
    var streamTo: String?

    @Option(
        name: .long,
        help: "Cluster: read a stream from a task on this instance (e.g. 1.0) until that node is lost, and report it.")
    var watch: String?

    @Option(
        name: .customLong("blob-on"),
        help:
            ArgumentHelp(
                "Cluster: have a task on each of these instances (e.g. 1.0,2.0) read and write a blob held here, "
                    + "checking "
                    + "the consistency rules on both sides (after --stream-to).")
    )
    var blobOn: String?

    @Flag(name: .long, help: "Exit after --stream-to and --blob-on instead of serving.")
    var once = false

    @Flag(name: .long, help: "Run the demo of trusted and untrusted tasks, print what happened, and exit.")
    var demo = false

    @Option(name: .long, help: "Messages the demo's worker sends.")
    var messages: Int = 100

    func validate() throws {
        guard messages > 0 else { throw ValidationError("--messages must be positive") }
    }

    /// The node file, with the command line's overrides applied.
    func nodeFile(cluster: ClusterFile?) throws -> NodeFile {
        var file = NodeFile()
        if let cluster {
            guard let node else { throw ValidationError("--cluster needs --node") }
            do { file = try cluster.nodeFile(for: node) } catch { throw ValidationError("\(error)") }
        } else if let config {
            do { file = try NodeFile.load(path: config) } catch { throw ValidationError("\(config): \(error)") }
        }
        if let node { file.node = node }
        do throws(ConfigError) {
            if let cores { file.cores = try Setting.cores(cores) }
            if let idle { file.idle = try Setting.idle(idle, key: "--idle") }
            if let logLevel { file.logLevel = try Setting.logLevel(logLevel, key: "--log-level") }
        } catch .invalid(let why) {
            throw ValidationError(why)
        } catch {
            throw ValidationError("\(error)")
        }
        if let arenaMiB {
            guard arenaMiB > 0 else { throw ValidationError("--arena-mib must be positive") }
            file.arenaMiB = arenaMiB
        }
        if let controlSocket { file.controlSocket = controlSocket }
        return file
    }

    func run() async throws {
        // Handlers first: a SIGTERM that arrives while booting still stops the node cleanly.
        let signals = clinux_termination_signal_fd()
        guard signals >= 0 else { throw StartFailure("cannot install SIGINT/SIGTERM handlers") }
        // A write to a peer that has gone (a `dios status` that hung up early,
        // a closed stdout pipe) fails with EPIPE instead of killing the node:
        // left at its default, SIGPIPE ended diosd without a word.
        signal(SIGPIPE, SIG_IGN)
        // A task that crashes the node (a failed check, a bad access) is named in its log.
        Node.reportCrashes()
        var clusterFile: ClusterFile? = nil
        if let cluster {
            do { clusterFile = try ClusterFile.load(path: cluster) } catch {
                throw ValidationError("\(cluster): \(error)")
            }
        }
        let file = try nodeFile(cluster: clusterFile)
        try Self.checkCores(file)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = file.logLevel
            return handler
        }
        var configuration = NodeConfiguration(file, logger: Logger(label: "diosd"))

        clinux_line_buffer_stdout()  // line by line, also into pipes: supervisors wait for "up"
        let say: @Sendable (String) -> Void = { print($0) }
        for probe in DeviceProbe.all() { say("diosd: \(probe)") }
        var wires: [WireEndpoint] = []
        var dpdk: DPDKNode? = nil
        if let clusterFile, let cluster {
            // The secret first: a node that cannot authenticate starts nothing.
            let security: WireSecurity?
            do { security = try clusterFile.security(for: cluster) } catch { throw StartFailure("\(error)") }
            say(
                security == nil
                    ? "diosd: frames between nodes are plain (security.frames: plain)"
                    : "diosd: frames between nodes are \(clusterFile.frames) (key \(clusterFile.keyPath(for: cluster)))"
            )
            (wires, dpdk) = try Self.wires(
                clusterFile, node: file.node, instances: configuration.instanceCount, security: security, say: say)
        }
        if let dpdk {
            configuration.instanceThreadStarted = { dpdk.instanceThreadStarted($0, say: say) }
            configuration.instanceThreadEnding = { dpdk.instanceThreadEnding($0) }
        }
        let node: Node
        do {
            node = try Node(configuration, wires: wires)
        } catch {
            dpdk?.shutdown(say: say)
            throw StartFailure("cannot map the arena of \(file.arenaMiB) MiB: \(error)")
        }
        // However run ends: the polling threads stop (idempotent), then the
        // DPDK port and EAL go, after every use of them.
        defer {
            if let dpdk {
                node.shutdown()
                dpdk.shutdown(say: say)
            }
        }
        // A packet steered to an instance's queue from another's wakes it.
        // Weakly: the steering is reached from the node (its instances'
        // transports), and a strong capture kept the node alive past `run`,
        // and with it the arena's hugepage file.
        dpdk?.arm { [weak node] k in node?.instances[k].wake() }
        // A memif client links again to a server that went and came back.
        dpdk?.keepLinked(say: say)
        for path in file.programs {
            do {
                let program = try Executable(path: path)
                await node.register(program)
                say("diosd: program \(program.name) \(program.path)")
            } catch {
                node.shutdown()
                throw StartFailure("programs: \(error)")
            }
        }
        // Metrics, when asked for: read from the instances' counter boards on
        // the server's own threads. The registry is swift-metrics' backend too.
        var metricsServer: MetricsServer? = nil
        if let listen = file.metricsListen {
            let metrics = NodeMetrics(node: node)
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
            do {
                let server = try MetricsServer(listen: listen, metrics: metrics)
                try server.start()
                metricsServer = server
                say("diosd: metrics at http://\(server.address)/metrics")
            } catch {
                node.shutdown()
                throw StartFailure("\(error)")
            }
        }
        defer { metricsServer?.stop() }
        let cpus = file.cores.isEmpty ? "unpinned" : "cores \(file.cores.map(String.init).joined(separator: ","))"
        say(
            "diosd: node \(file.node) up, \(node.instances.count) instance(s) on \(cpus), arena \(file.arenaMiB) MiB "
                + "on \(node.arena.backing), idle \(configuration.idlePolicy)"
        )

        if clusterFile != nil {
            try await joinCluster(node, say: say)
            if streamTo != nil || blobOn != nil {
                let ok = try await runChecks(node, say: say)
                if once {
                    await node.leave()
                    node.shutdown()
                    say("diosd: node stopped cleanly")
                    if !ok { throw ExitCode.failure }
                    return
                }
            }
        }
        if demo {
            try await runDemo(node, say: say)
            return
        }
        // Serve until SIGINT or SIGTERM: the control socket for `dios status`.
        var control: ControlServer? = nil
        if let path = file.controlSocket {
            do {
                control = try ControlServer(path: path, node: node, mode: file.controlSocketMode)
            } catch {
                node.shutdown()
                throw StartFailure("\(error)")
            }
            control?.start()
            say("diosd: control socket \(path) (mode \(String(file.controlSocketMode, radix: 8)))")
        }
        let signal = await waitForTerminationSignal(signals)
        say("diosd: signal \(signal), stopping")
        control?.stop()
        if clusterFile != nil { await node.leave() }
        node.shutdown()
        say("diosd: node stopped cleanly")
    }
}

extension Diosd {
    /// A cluster node's start: the check programs other nodes' `--stream-to`
    /// and `--blob-on` run here, exactly one scheduler in the cluster (one is
    /// started here if none is found once the sessions had time to come up),
    /// and `--watch`.
    func joinCluster(_ node: Node, say: @escaping @Sendable (String) -> Void) async throws {
        await RemoteDemo.register(on: node)
        try await Scheduler.bootstrap(node, grace: .milliseconds(500))
        guard let watch else { return }
        guard let peer = Self.instanceID(watch) else { throw ValidationError("--watch takes an instance like 1.0") }
        Task {
            guard try await RemoteDemo.waitForPeers(node, [peer], seconds: 30) else {
                say("diosd: watch: \(peer) never became reachable")
                return
            }
            try await RemoteDemo.watch(on: node, peer: peer, say: say)
        }
    }

    /// `--stream-to` and `--blob-on`: whether every check passed.
    func runChecks(_ node: Node, say: @escaping @Sendable (String) -> Void) async throws -> Bool {
        let streamPeers = try Self.instanceIDs(streamTo, option: "--stream-to")
        let blobPeers = try Self.instanceIDs(blobOn, option: "--blob-on")
        let all = streamPeers + blobPeers.filter { !streamPeers.contains($0) }
        var ok = try await RemoteDemo.waitForPeers(node, all, seconds: 30)
        if !ok {
            say("diosd: not every one of \(all.map(String.init(describing:)).joined(separator: ",")) became reachable")
        }
        for peer in streamPeers where ok {
            do { ok = try await RemoteDemo.stream(on: node, to: peer, count: messages, say: say) } catch {
                say("diosd: stream to \(peer): FAILED: \(error)")
                ok = false
            }
        }
        for peer in blobPeers where ok {
            do { ok = try await RemoteDemo.blob(on: node, with: peer, say: say) } catch {
                say("diosd: blob on \(peer): FAILED: \(error)")
                ok = false
            }
        }
        return ok
    }

    /// `--demo`: runs it, prints each instance's counters, and stops the node.
    func runDemo(_ node: Node, say: @escaping @Sendable (String) -> Void) async throws {
        do {
            try await Demo.run(on: node, messages: messages, say: say)
        } catch {
            node.shutdown()
            say("diosd: demo failed: \(error)")
            throw ExitCode.failure
        }
        for (i, c) in await node.counters().enumerated() {
            say(
                "diosd: instance \(i) counters: calls=\(c.calls) messages in=\(c.messagesIn) out=\(c.messagesOut) "
                    + "polls=\(c.polls) tasks started=\(c.tasksStarted) exited=\(c.tasksExited)")
        }
        node.shutdown()
        say("diosd: node stopped cleanly")
    }
}

extension Diosd {
    /// "1.0" → node 1, core 0.
    static func instanceID(_ text: some StringProtocol) -> InstanceID? {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let n = UInt16(parts[0]), let c = UInt16(parts[1]) else { return nil }
        return InstanceID(node: n, core: c)
    }

    /// "1.0,2.0" → those instances (none when `text` is nil).
    /// Each instance is pinned to its core: a core this process may not run
    /// on (one the machine lacks, or outside the mask `taskset` or a cpuset
    /// gave it) would leave its instance unpinned, sharing CPUs unasked. The
    /// node does not start, and says which cores it may use.
    static func checkCores(_ file: NodeFile) throws {
        guard file.pin, !file.cores.isEmpty else { return }
        let allowed = OSThread.allowedCPUs()
        guard !allowed.isEmpty else { return }  // the mask could not be read: the threads will say
        let outside = file.cores.filter { !allowed.contains($0) }
        guard outside.isEmpty else {
            throw StartFailure(
                "\(outside.count == 1 ? "core" : "cores") \(OSThread.describe(outside)) "
                    + "\(outside.count == 1 ? "is" : "are") not among the CPUs this process may run on "
                    + "(\(OSThread.describe(allowed))): each instance is pinned to its core. "
                    + "List cores from those (cores in the node file, or --cores), or set pin: false")
        }
    }

    static func instanceIDs(_ text: String?, option: String) throws -> [InstanceID] {
        guard let text else { return [] }
        let ids = text.split(separator: ",").compactMap { instanceID($0) }
        guard !ids.isEmpty, ids.count == text.split(separator: ",").count else {
            throw ValidationError("\(option) takes instances like 1.0,2.0")
        }
        return ids
    }

    /// One wire endpoint per instance of node `id`: a UDP socket where the
    /// cluster file says, or for a DPDK node a DPDK transport on its port
    /// (started here, with the EAL), each behind the fault stage when the file
    /// switches it on. Returns the DPDK side too, for the node's threads and its end.
    static func wires(
        _ cluster: ClusterFile, node id: UInt16, instances: Int, security: WireSecurity?,
        say: @escaping @Sendable (String) -> Void
    ) throws -> (wires: [WireEndpoint], dpdk: DPDKNode?) {
        guard let entry = cluster.node(id) else { throw ValidationError("no node \(id) in the cluster file") }
        var dpdk: DPDKNode? = nil
        if entry.transport == "dpdk" {
            do { dpdk = try DPDKNode(cluster, node: id, say: say) } catch { throw StartFailure("node \(id): \(error)") }
        }
        var seed: UInt64 = 0
        _ = clinux_getrandom(&seed, 8)
        var wires: [WireEndpoint] = []
        for k in 0..<instances {
            let address = entry.address(ofInstance: k)
            let raw: any FrameTransport
            let described: String
            do throws(TransportError) {
                if let dpdk {
                    raw = try dpdk.transport(instance: k, address: address, neighbours: cluster.neighbours(of: id))
                    described = "dpdk \(dpdk.device) (mac \(dpdk.mac)) \(address)"
                } else {
                    raw = try UDPTransport(bind: address)
                    described = "udp \(address)"
                }
            } catch {
                dpdk?.shutdown(say: say)
                throw StartFailure("instance \(k): \(error)")
            }
            var transport = raw
            if cluster.faults.isActive {
                var faults = cluster.faults
                faults.seed &+= UInt64(id) << 16 | UInt64(k)
                transport = FaultyTransport(raw, faults: faults, clock: { clinux_monotonic_ns() })
                say(
                    "diosd: fault stage on \(address): loss \(faults.loss), duplicate \(faults.duplicate), reorder "
                        + "\(faults.reorder), delay \(faults.delay / 1000) us, seed \(faults.seed)"
                )
            }
            wires.append(
                WireEndpoint(
                    local: InstanceID(node: id, core: UInt16(k)), transport: transport, peers: cluster.peers(of: id),
                    configuration: cluster.session, now: clinux_monotonic_ns(), seed: seed &+ UInt64(k),
                    security: security))
            say("diosd: instance \(id).\(k) on \(described), \(cluster.peers(of: id).count) peer instance(s)")
        }
        return (wires, dpdk)
    }
}

/// Waits on a thread of its own for SIGINT or SIGTERM, whichever thread it lands
/// on: the handlers installed by `clinux_termination_signal_fd` write to `fd`.
func waitForTerminationSignal(_ fd: Int32) async -> Int32 {
    await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
        do throws(OSThread.StartError) {
            let thread = try OSThread.start {
                var byte: UInt8 = 0
                while read(fd, &byte, 1) != 1 {}
                continuation.resume(returning: Int32(byte))
            }
            pthread_detach(thread)  // nobody joins it: diosd exits once it has resumed
        } catch {
            fatalError("the thread waiting for a termination signal did not start: \(error)")
        }
    }
}

/// Why the node could not start, once its configuration was read: said
/// without the usage text, which is for mistakes on the command line.
struct StartFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
