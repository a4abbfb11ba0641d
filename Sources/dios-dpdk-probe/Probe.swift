// dios-dpdk-probe — one end of a DPDK link, for tests and raw baselines.
//
// Two instances (a server and a client, each its own process with its own EAL)
// exchange frames over one DPDKTransport: no DIOS kernel, sessions or tasks.
//
//   exchange (default): the client sends --frames numbered frames of varying size
//     (16...1472 bytes), each one only after the previous came back (ping-pong,
//     resent after --retry-ms), and checks every echo byte for byte; the server
//     checks order and content and echoes. Both print `key=value` summaries and
//     exit 0 only when every frame arrived once, in order, intact.
//   --pingpong N: the client times N round trips of --size bytes after --warmup
//     untimed ones, busy-polling, and prints min/p50/p99/max in ns; the server
//     echoes whatever arrives.
//   --memif-refusal: no exchange; the start-up race between a memif client and
//     its server, reproduced with both in this process (see `memifRefusal`).
//
// Example over memif (two shells):
//   dios-dpdk-probe --role server --ip 10.0.0.1 --port 9000 --neighbour 10.0.0.2=02:00:00:00:00:02 \
//     -- --file-prefix a --no-pci --huge-unlink -l 0 \
//     --vdev net_memif0,role=server,socket=/tmp/m.sock,mac=02:00:00:00:00:01
//   dios-dpdk-probe --role client --ip 10.0.0.2 --port 9000 --peer 10.0.0.1:9000 \
//     --neighbour 10.0.0.1=02:00:00:00:00:01 --pingpong 100000 -- --file-prefix b --no-pci --huge-unlink -l 1 \
//     --vdev net_memif0,role=client,socket=/tmp/m.sock,mac=02:00:00:00:00:02
//
// Exit status: 0 success, 1 the exchange failed, 2 bad arguments, 3 the transport did not start.

import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT/SIGTERM; the loops stop and the EAL is cleaned up.
let stopRequested = Atomic<Bool>(false)

@main
enum DPDKProbe {
    static func main() {
        guard let options = Options.parse(Array(CommandLine.arguments.dropFirst())), let local = options.local else {
            exit(2)
        }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }

        if options.kernelSocket {
            do {
                let transport = try UDPTransport(bind: local)
                exit(run(transport, options) { "transport=udp-socket local=\(transport.localAddress)" })
            } catch {
                warn("\(error)")
                exit(3)
            }
        }

        #if DIOS_DPDK
        let environment: DPDKEnvironment
        do {
            environment = try DPDKEnvironment.start(arguments: ["dios-dpdk-probe"] + options.eal)
        } catch {
            warn("\(error)")
            exit(3)
        }
        // Everything DPDK lives in this call, so it is released before the EAL is.
        let status =
            options.memifRefusal
            ? memifRefusal(environment)
            : options.workerThread
                ? onWorkerThread { runDPDK(environment, options, local) }
                : runDPDK(environment, options, local)
        environment.cleanup()
        exit(status)
        #else
        warn("built without the DPDK trait: only --kernel-socket works")
        exit(3)
        #endif
    }

    /// Runs `body` on a new pthread (not an EAL lcore, as a kernel instance's
    /// thread is not) and returns its result.
    static func onWorkerThread(_ body: @escaping @Sendable () -> Int32) -> Int32 {
        final class Job: @unchecked Sendable {  // handed to one thread, read after join
            let body: @Sendable () -> Int32
            var status: Int32 = 3
            init(_ body: @escaping @Sendable () -> Int32) { self.body = body }
        }
        let job = Job(body)
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                let job = Unmanaged<Job>.fromOpaque(context).takeUnretainedValue()
                job.status = job.body()
                return nil
            }, Unmanaged.passUnretained(job).toOpaque())
        guard started == 0 else {
            warn("pthread_create: \(String(cString: strerror(started)))")
            return 3
        }
        pthread_join(thread, nil)
        return withExtendedLifetime(job) { job.status }
    }

    #if DIOS_DPDK
    /// `--memif-refusal`, with two memif devices on one socket in this EAL:
    /// `net_memif0` the server, `net_memif1` the client. The client starts
    /// while the server is probed (its socket listens) but not started, as
    /// when a client node starts while its server node is still coming up:
    /// the server refuses it, and the client's link stays down even once the
    /// server has started. `DPDKPort.waitForLink(timeoutMilliseconds:
    /// restartingEvery:)` must then bring it up. Prints `key=value`s; exit 0
    /// when all of that happened.
    static func memifRefusal(_ environment: DPDKEnvironment) -> Int32 {
        do {
            let client = try DPDKPort(environment: environment, name: "net_memif1")
            defer { client.close() }
            usleep(300_000)
            let refused = !client.isLinkUp
            let server = try DPDKPort(environment: environment, name: "net_memif0")
            defer {
                server.close()
                // The client hears of the server's going in the EAL's interrupt
                // thread, which tears its connection down there; closing the
                // client meanwhile raced that thread (a crash in it, once, on a
                // loaded machine), and DPDK 22.11 offers nothing to wait on but
                // the link. So: its link down first, then a grace for the rest.
                var waited = 0
                while client.isLinkUp && waited < 200 {
                    usleep(10_000)
                    waited += 1
                }
                usleep(100_000)
            }
            usleep(500_000)
            let stayedDown = !client.isLinkUp
            let restarts = try client.waitForLink(timeoutMilliseconds: 10_000, restartingEvery: 500)
            let up = restarts != nil && server.waitForLink(timeoutMilliseconds: 2_000)
            say(
                "memif-refusal: refused=\(refused) stayed_down=\(stayedDown) "
                    + "restarts=\(restarts.map(String.init) ?? "none") link_up=\(up)"
            )
            return refused && stayedDown && (restarts ?? 0) >= 1 && up ? 0 : 1
        } catch {
            warn("\(error)")
            return 3
        }
    }

    static func runDPDK(_ environment: DPDKEnvironment, _ o: Options, _ local: PeerAddress) -> Int32 {
        do {
            if o.workerThread { try environment.registerCurrentThread() }
            defer { if o.workerThread { environment.unregisterCurrentThread() } }
            guard let name = o.device ?? environment.portNames().first else {
                warn("the EAL found no Ethernet port (pass --vdev)")
                return 3
            }
            let port = try DPDKPort(environment: environment, name: name)
            defer { port.close() }
            let transport = try DPDKTransport(
                port: port, queue: 0, localAddress: local, neighbours: o.neighbours, txBatch: o.txBatch)
            // The refusals the transport owes: no neighbour, too large. Counted, never sent.
            if o.role == .client {
                let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: EthernetUDP.maxPayload + 1, alignment: 8)
                defer { probe.deallocate() }
                probe.initializeMemory(as: UInt8.self, repeating: 0)
                let unknown = PeerAddress(ipv4: 0xC000_0201, port: 9)  // 192.0.2.1, TEST-NET-1
                let refusedUnknown = !transport.send(UnsafeRawBufferPointer(rebasing: probe[0..<64]), to: unknown)
                let refusedOversize = o.peer.map { !transport.send(UnsafeRawBufferPointer(probe), to: $0) } ?? true
                say("client: refuses unknown neighbour=\(refusedUnknown) oversize=\(refusedOversize)")
            }
            say("\(o.role?.rawValue ?? "?"): \(name) started, waiting for link")
            guard port.waitForLink(timeoutMilliseconds: o.linkTimeoutSeconds * 1000) else {
                warn("link of \(name) not up after \(o.linkTimeoutSeconds) s")
                return 3
            }
            let lcore = environment.currentThreadLcore.map(String.init) ?? "none"
            say("\(o.role?.rawValue ?? "?"): \(name) up, mac \(port.mac), local \(local), lcore \(lcore)")
            return run(transport, o) {
                let c = transport.counters
                let drops = c.dropped.sorted { $0.key.rawValue < $1.key.rawValue }
                    .map { "drop_\($0.key.rawValue)=\($0.value)" }.joined(separator: " ")
                let stats =
                    port.statistics.map {
                        "port_rx=\($0.rxPackets) port_tx=\($0.txPackets) port_rx_missed=\($0.rxMissed)"
                    } ?? ""
                return "transport=dpdk device=\(name) sent=\(c.sent) received=\(c.received) "
                    + "send_queue_full=\(c.sendQueueFull) unknown_neighbour=\(c.unknownNeighbour) "
                    + "oversize=\(c.oversize) "
                    + "no_mbuf=\(c.noMbuf) arp_replies=\(c.arpReplies) \(drops) \(stats)"
            }
        } catch {
            warn("\(error)")
            return 3
        }
    }
    #endif
}
