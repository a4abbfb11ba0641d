import DIOS
import DIOSKernel
import DIOSTransport
import DIOSWire
import Testing

/// The replicated name service on a real (in-process) cluster: three nodes of
/// two instances each, talking over UDP on loopback. A name created on one
/// instance is found by `lookup` on every instance; deleted, it goes away
/// everywhere; the names of a node that stops answering drop out of `lookup`,
/// and come back when it returns.
@Suite(.serialized) struct NameServiceTests {
    final class Cluster: @unchecked Sendable {
        var nodes: [Node?] = []
        var addresses: [InstanceID: PeerAddress] = [:]
        let session = SessionConfiguration(retransmitTimeout: .milliseconds(1), failureTimeout: .milliseconds(400))

        init(nodes count: Int) throws {
            var sockets: [[UDPTransport]] = []
            for n in 0..<count {
                var row: [UDPTransport] = []
                for k in 0..<2 {
                    let t = try UDPTransport(bind: PeerAddress("127.0.0.1", port: 0)!)
                    addresses[InstanceID(node: UInt16(n), core: UInt16(k))] = t.localAddress
                    row.append(t)
                }
                sockets.append(row)
            }
            for n in 0..<count { nodes.append(try boot(n, sockets[n])) }
        }

        /// Boots node `n` on `sockets` (or on fresh sockets at its old addresses).
        func boot(_ n: Int, _ sockets: [UDPTransport]? = nil) throws -> Node {
            let sockets =
                try sockets
                ?? (0..<2).map { k in
                    try UDPTransport(bind: addresses[InstanceID(node: UInt16(n), core: UInt16(k))]!)
                }
            let peers = addresses.filter { $0.key.node != UInt16(n) }
            var configuration = NodeConfiguration()
            configuration.node = UInt16(n)
            configuration.cores = [0, 1]
            configuration.pin = false
            configuration.arenaSize = 16 << 20
            configuration.idlePolicy = .adaptive
            let wires = sockets.enumerated().map { k, socket in
                WireEndpoint(
                    local: InstanceID(node: UInt16(n), core: UInt16(k)), transport: socket, peers: peers,
                    configuration: session, now: monotonicNanoseconds(), seed: monotonicNanoseconds() &+ UInt64(k))
            }
            return try Node(configuration, wires: wires)
        }

        func restart(_ n: Int) throws { nodes[n] = try boot(n) }

        func stop(_ n: Int) {
            nodes[n]?.shutdown()
            nodes[n] = nil
        }

        deinit { for n in nodes { n?.shutdown() } }

        /// Who holds `name`, as `lookup` on instance `k` of node `n` sees it.
        func owners(of name: Name, from n: Int, _ k: Int, strong: Bool = false) async throws -> [InstanceID] {
            try await nodes[n]!.withTask(on: k) { task in
                var owners: [InstanceID] = []
                do throws(CallError) {
                    for ref in try task.lookup(name, flags: strong ? .strong : []) {
                        owners.append(try task.describe(ref).owner)
                    }
                } catch {
                    return []
                }
                return owners.sorted()
            }
        }

        /// Waits until every instance of the running nodes sees `expected` as the owners of `name`.
        func everyoneSees(_ name: Name, _ expected: [InstanceID], seconds: Double = 10) async throws -> Bool {
            let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
            var wrong: [String] = []
            var looks = 0
            // At least 25 looks, however long they take: a test thread held
            // by another test must not use up the time.
            while monotonicNanoseconds() < deadline || looks < 25 {
                looks += 1
                wrong = []
                for n in nodes.indices where nodes[n] != nil {
                    for k in 0..<2 {
                        let seen = try await owners(of: name, from: n, k)
                        if seen != expected { wrong.append("\(n).\(k) sees \(seen)") }
                    }
                }
                if wrong.isEmpty { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            print("everyoneSees: expected \(expected); \(wrong.joined(separator: ", "))")
            return false
        }
    }

    @Test func aNameCreatedOnOneInstanceIsFoundOnEveryInstance() async throws {
        let cluster = try Cluster(nodes: 3)
        let owner = InstanceID(node: 1, core: 1)
        // Once node 1's sessions are up, create a blob on instance 1.1.
        for k in 0..<2 {
            for _ in 0..<500 {
                if try await cluster.nodes[1]!.withTask(on: k, { task in task.reachableInstances().count == 6 }) {
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let (name, ref) = try await cluster.nodes[1]!.withTask(on: 1) { task in
            let (name, ref) = try task.create(.blob(size: 8))
            let w = try task.beginWrite(ref, size: 8)
            try w.store(UInt64(0xD105))
            _ = task.endWrite(w)
            return (name, ref)
        }
        _ = ref
        #expect(try await cluster.everyoneSees(name, [owner]))
        // 1.1 sent the delta to the instances it relays to (0.1, 2.1); its
        // sibling 1.0 relayed it to the others (0.0, 2.0).
        #expect(await cluster.nodes[1]!.counters()[0].namesRelayed == 2)
        #expect(await cluster.nodes[1]!.counters()[1].namesRelayed == 0)
        // Strong lookup confirms with the owner; the blob is read through the reference.
        #expect(try await cluster.owners(of: name, from: 0, 1, strong: true) == [owner])
        let read = try await cluster.nodes[2]!.withTask(on: 0) { task in
            let found = try task.lookup(name)
            #expect(try task.describe(found[0]).proximity == .remoteMemory)
            let r = try task.beginRead(found[0])
            let value = try r.load(as: UInt64.self)
            return (value, task.endRead(r))
        }
        #expect(read.0 == 0xD105 && read.1)
        // Deleted, it goes away everywhere (a tombstone each).
        try await cluster.nodes[1]!.withTask(on: 1) { task in
            let found = try task.lookup(name)
            try task.delete(found[0])
        }
        #expect(try await cluster.everyoneSees(name, []))
    }

    /// Three nodes boot at once, each with the scheduler bootstrap and no grace
    /// period (so several may start one): once connected there is exactly one,
    /// found by name and answering pings. When its node stops, the lowest
    /// surviving node starts another, and again there is exactly one.
    @Test func exactlyOneSchedulerRunsAndAnotherTakesOverWhenItsNodeFails() async throws {
        let cluster = try Cluster(nodes: 3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in cluster.nodes { group.addTask { try await Scheduler.bootstrap(node!, grace: .zero) } }
            try await group.waitForAll()
        }
        func settled(on expected: InstanceID) async throws -> Bool {
            // Every instance sees exactly `expected`, and still does a little later.
            guard try await cluster.everyoneSees(Scheduler.name, [expected]) else { return false }
            try await Task.sleep(for: .milliseconds(300))
            return try await cluster.everyoneSees(Scheduler.name, [expected], seconds: 1)
        }
        #expect(try await settled(on: InstanceID(node: 0, core: 0)))
        let pings = try await cluster.nodes[2]!.withTask(on: 1) { task in
            let first = try Scheduler.ping(task)
            try await Task.sleep(for: .milliseconds(200))
            return (first, try Scheduler.ping(task))
        }
        #expect(pings.0?.instance == InstanceID(node: 0, core: 0))
        #expect((pings.1?.beats ?? 0) > (pings.0?.beats ?? .max))  // it is alive: its heartbeat advances

        cluster.stop(0)
        #expect(try await settled(on: InstanceID(node: 1, core: 0)))
    }

    @Test func aStoppedNodesNamesDropOutAndComeBackWithIt() async throws {
        let cluster = try Cluster(nodes: 3)
        let name = try await cluster.nodes[2]!.withTask(on: 0) { task in try task.create(.blob(size: 8)).name }
        #expect(try await cluster.everyoneSees(name, [InstanceID(node: 2, core: 0)]))
        cluster.stop(2)
        #expect(try await cluster.everyoneSees(name, [], seconds: 5))  // its instances are unreachable
        try cluster.restart(2)
        // The restarted node has none of its old objects; what it creates now is seen.
        let fresh = try await cluster.nodes[2]!.withTask(on: 1) { task in try task.create(.blob(size: 8)).name }
        #expect(try await cluster.everyoneSees(fresh, [InstanceID(node: 2, core: 1)]))
        #expect(try await cluster.everyoneSees(name, []))
    }
}
