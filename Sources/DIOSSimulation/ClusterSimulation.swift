import DIOSCore
import DIOSWire

/// A seeded simulation of a cluster's instances running the node's own wire,
/// name-service and scheduler-election code — `WireEndpoint` and `Session`
/// (epochs, heartbeats, retransmission, failure detection), `RemoteMessage`,
/// `NameService`, `SchedulerElection` — over a simulated network and clock
/// that lose, duplicate, delay and reorder frames, partition and heal, and
/// crash and restart instances.
///
/// A node has one or more instances. Its instances pass name deltas to each
/// other in order and without loss (the node's control rings), relay them to
/// the other nodes' instances as the kernel does (`NameService.relays(to:)`),
/// and crash, restart and fall into a partition together. Instance 0 of each
/// node runs a scheduler bootstrapper (a check every 100 ms, the first 50 ms
/// after it starts) and, when the election says so, a scheduler, published
/// under the scheduler's well-known name, that checks every 100 ms whether to
/// step down.
///
/// Checked after every step: an instance's replica holds names of another node
/// only while its session with the instance that relays that node to it is up
/// (so what `lookup` may return is never of a node known to be unreachable).
/// Checked at quiescence (partitions healed, crashed nodes restarted, time for
/// sessions to settle): every instance sees exactly every other instance's
/// live objects — deleted ones nowhere — and exactly one scheduler runs, the
/// one every instance's `lookup` finds.
public struct ClusterSimulation {
    public struct Configuration: Sendable, CustomStringConvertible {
        public var nodes = 4
        /// Instances per node.
        public var perNode = 1
        public var steps = 300
        public var loss = 0.05
        public var duplicate = 0.02
        /// Frames are delayed 0...maxDelay ns (later ones overtake earlier ones).
        public var maxDelay: UInt64 = 2_000_000
        public var partition = 0.01
        public var heal = 0.1
        public var crash = 0.01
        public var restart = 0.1

        public init() {}

        /// Drawn from `seed`: 3 to 8 nodes of 1 to 3 instances, and every fault type.
        public static func random(seed: UInt64) -> Configuration {
            var rng = SplitMix64(seed: seed ^ 0xC1A5)
            var c = Configuration()
            c.nodes = 3 + Int(rng.next() % 6)
            c.steps = 100 + Int(rng.next() % 200)
            c.loss = Double(rng.next() % 15) / 100
            c.duplicate = Double(rng.next() % 10) / 100
            c.maxDelay = rng.next() % 3_000_000
            c.partition = Double(rng.next() % 3) / 100
            c.crash = Double(rng.next() % 3) / 100
            c.perNode = 1 + Int(rng.next() % 3)
            return c
        }

        public var description: String {
            "\(nodes) nodes of \(perNode) instance(s), \(steps) steps, loss \(loss), duplicate \(duplicate), delay ≤ "
                + "\(maxDelay / 1000) µs, partition \(partition), crash \(crash)"
        }
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var seed: UInt64
        public var step: Int
        public var message: String
        public var description: String {
            "cluster simulation seed \(seed) failed at step \(step): \(message)\n"
                + "replay: DIOS_SIM_SEED=\(seed) swift test --filter ClusterSimulationTests/replay"
        }
    }

    public let seed: UInt64
    public let configuration: Configuration
    /// A deliberate bug for the test that shows the harness can fail: peers'
    /// names are not purged when their sessions end.
    public var forgetPurge = false
    /// Another: a scheduler never steps down for a lower one.
    public var neverStepDown = false
    /// Another: an instance does not relay its siblings' deltas to the other
    /// nodes (only what it creates itself, and its node's state when a session
    /// comes up).
    public var forgetRelay = false

    public init(seed: UInt64, configuration: Configuration) {
        self.seed = seed
        self.configuration = configuration
    }

    // MARK: The simulated world

    final class Network {
        struct Frame {
            var due: UInt64
            var order: UInt64
            var to: PeerAddress
            var bytes: [UInt8]
        }
        var now: UInt64 = 1_000_000_000
        var frames: [Frame] = []
        var order: UInt64 = 0
        var random: SplitMix64
        var loss: Double
        var duplicate: Double
        var maxDelay: UInt64
        /// Partition group of each address' instance; frames cross only within one.
        var group: [PeerAddress: Int] = [:]
        /// Addresses of crashed instances: frames to or from them vanish.
        var dead: Set<PeerAddress> = []

        init(seed: UInt64, _ c: Configuration) {
            random = SplitMix64(seed: seed)
            loss = c.loss
            duplicate = c.duplicate
            maxDelay = c.maxDelay
        }

        func send(_ frame: UnsafeRawBufferPointer, from: PeerAddress, to: PeerAddress) {
            guard !dead.contains(from), !dead.contains(to), group[from] == group[to] else { return }
            if random.unit() < loss { return }
            let copies = random.unit() < duplicate ? 2 : 1
            for _ in 0..<copies {
                order += 1
                let delay = maxDelay == 0 ? 0 : random.next() % (maxDelay + 1)
                frames.append(Frame(due: now + delay, order: order, to: to, bytes: Array(frame)))
            }
        }

        /// Frames due now for `address`, in due order.
        func take(for address: PeerAddress) -> [[UInt8]] {
            var mine: [Frame] = []
            frames.removeAll { f in
                guard f.to == address && f.due <= now else { return false }
                mine.append(f)
                return true
            }
            return mine.sorted { ($0.due, $0.order) < ($1.due, $1.order) }.map(\.bytes)
        }
    }

    final class Port: FrameTransport {
        let network: Network
        let localAddress: PeerAddress
        let maxFrameSize = 1472
        var readinessFD: Int32? { nil }
        init(_ network: Network, _ address: PeerAddress) {
            self.network = network
            localAddress = address
        }
        func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
            network.send(frame, from: localAddress, to: peer)
            return true
        }
        func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
            let frames = network.take(for: localAddress)
            for f in frames { f.withUnsafeBytes { body($0, localAddress) } }
            return frames.count
        }
    }

    /// One instance: its wire, its name service, and its own objects.
    final class Member {
        let endpoint: WireEndpoint
        /// Deltas from its siblings, in order (the node's control rings).
        var inbox: [(from: InstanceID, delta: NameDelta)] = []
        var names: NameService
        var own: [ObjectID: (Name, UInt64)] = [:]
        var nextObject: UInt32 = 1
        /// Object ids of a new incarnation differ from the old one's (as the
        /// kernel's generations make them), so a deleted id is never reused.
        let incarnation: UInt32
        var alive = true
        /// The scheduler this instance runs, if any (also in `own`).
        var scheduler: ObjectID? = nil
        /// When the bootstrapper (or the scheduler) next checks.
        var nextCheck: UInt64
        init(endpoint: WireEndpoint, names: NameService, incarnation: UInt32, now: UInt64) {
            self.endpoint = endpoint
            self.names = names
            self.incarnation = incarnation
            nextCheck = now + 50_000_000
        }

        /// Whether `lookup` here admits `instance`: a sibling, or one with a session up.
        func reachable(_ instance: InstanceID) -> Bool {
            instance.node == names.local.node || endpoint.isReachable(instance)
        }

        /// The instances holding a scheduler, as this instance's `lookup` sees them.
        func schedulerOwners(_ me: InstanceID) -> [InstanceID] {
            var owners = scheduler == nil ? [] : [me]
            for r in names.others.lookup(SchedulerElection.name) where reachable(r.owner) { owners.append(r.owner) }
            return owners.sorted()
        }
    }

    static let session = SessionConfiguration(
        window: 32, retransmitTimeout: .milliseconds(2), heartbeatInterval: .milliseconds(20),
        failureTimeout: .milliseconds(200))
}

/// An instance of an object: who holds it, and its id there.
struct RemoteEndKey: Hashable {
    var owner: InstanceID
    var object: ObjectID
}
