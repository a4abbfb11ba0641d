public import DIOSCore
import DIOSWire

/// A seeded generator (the wire's SplitMix64): a seed replays a run exactly.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    var inner: SplitMix64
    public init(seed: UInt64) { inner = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { inner.next() }

    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// How hostile the simulated world is.
public struct SimulationConfiguration: Sendable {
    public var replicas = 5
    public var steps = 300
    /// Per message: dropped, delivered twice.
    public var loss = 0.05
    public var duplication = 0.05
    /// Delivery delay, in steps (uniform 1...maxDelay): later messages overtake earlier ones.
    public var maxDelay = 8
    /// Per step: a partition starts (replicas split in two) or, while one lasts, heals.
    public var partition = 0.02
    public var heal = 0.1
    /// Per step: a replica crashes and restarts empty (then recovers by anti-entropy).
    public var crash = 0.01
    /// Every this many steps, two connected replicas exchange their whole state.
    public var antiEntropyEvery = 10

    public init() {}

    /// A configuration drawn from `seed`: 3 to 50 replicas and every fault type.
    public static func random(seed: UInt64) -> SimulationConfiguration {
        var rng = SimulationRandom(seed: seed ^ 0xD105)
        var c = SimulationConfiguration()
        c.replicas = 3 + rng.below(48)
        c.steps = 100 + rng.below(300)
        c.loss = Double(rng.below(20)) / 100
        c.duplication = Double(rng.below(20)) / 100
        c.maxDelay = 1 + rng.below(20)
        c.partition = Double(rng.below(5)) / 100
        c.crash = Double(rng.below(3)) / 100
        c.antiEntropyEvery = 1 + rng.below(20)
        return c
    }
}

/// Why a simulated run failed: the invariant, where, and how to replay it.
public struct SimulationFailure: Error, CustomStringConvertible, Sendable {
    public var seed: UInt64
    public var step: Int
    public var message: String

    public var description: String {
        "simulation seed \(seed) failed at step \(step): \(message)\n"
            + "replay: DIOS_SIM_SEED=\(seed) swift test --filter NameServiceSimulationTests/replay"
    }
}

/// Many name-service replicas (the real `NameReplica` code) over a simulated
/// network that loses, duplicates, delays and reorders messages, partitions and
/// heals, and crashes replicas (they restart empty and catch up by
/// anti-entropy). Everything is drawn from one seed.
///
/// Checked throughout (wherever an instance could come back: each insertion
/// applied, each merge): a replica never again shows an instance whose removal
/// it has applied. Checked at the end (partitions healed, every pair
/// synchronised): all replicas hold the same state, and no instance any of them
/// holds a tombstone for is visible anywhere.
public struct NameServiceSimulation<Replica: NameReplica> {
    public let seed: UInt64
    public let configuration: SimulationConfiguration
    let makeReplica: (InstanceID) -> Replica

    var rng: SimulationRandom
    var replicas: [Replica] = []
    var counters: [UInt64] = []
    /// Removals each replica has applied (what it must never show again).
    var removedAt: [Set<InsertTag>] = []
    var tagName: [InsertTag: Name] = [:]
    var names: [Name] = []
    var inFlight: [(deliverAt: Int, from: Int, to: Int, delta: NameDelta)] = []
    var side: [Bool] = []  // partition side of each replica
    var partitioned = false
    var step = 0

    public init(seed: UInt64, configuration: SimulationConfiguration, makeReplica: @escaping (InstanceID) -> Replica) {
        self.seed = seed
        self.configuration = configuration
        self.makeReplica = makeReplica
        rng = SimulationRandom(seed: seed)
    }

    static func id(_ i: Int) -> InstanceID { InstanceID(node: UInt16(i), core: 0) }

    func connected(_ a: Int, _ b: Int) -> Bool { !partitioned || side[a] == side[b] }

    /// Runs the simulation; throws the first invariant that breaks.
    public mutating func run() throws(SimulationFailure) {
        let n = configuration.replicas
        replicas = (0..<n).map { makeReplica(Self.id($0)) }
        counters = Array(repeating: 0, count: n)
        removedAt = Array(repeating: [], count: n)
        side = Array(repeating: false, count: n)

        for s in 0..<configuration.steps {
            step = s
            perturb()
            try act()
            try deliver()
            if s % configuration.antiEntropyEvery == 0 { try antiEntropy() }
        }
        // Quiesce: heal, deliver what is left, synchronise every pair.
        partitioned = false
        step = configuration.steps
        while !inFlight.isEmpty {
            step += 1
            try deliver()
        }
        // Everyone into replica 0, then replica 0 into everyone: for a merge that
        // is a join (as it must be), that is every pair synchronised.
        for a in 1..<n { replicas[0].merge(replicas[a].state) }
        try checkNoResurrection(at: 0)
        let all = replicas[0].state
        for b in 1..<n {
            replicas[b].merge(all)
            try checkNoResurrection(at: b)
        }
        try checkConvergence()
    }

    mutating func perturb() {
        let n = configuration.replicas
        if partitioned {
            if rng.chance(configuration.heal) { partitioned = false }
        } else if rng.chance(configuration.partition) {
            partitioned = true
            for i in 0..<n { side[i] = rng.chance(0.5) }
        }
        if rng.chance(configuration.crash) {
            let victim = rng.below(n)
            replicas[victim] = makeReplica(Self.id(victim))
            // Its own insertions keep unique tags across the restart (the counter
            // is persisted with the instance's identity), and it forgets what it
            // had removed: a fresh replica may learn it again, never show it again.
            removedAt[victim] = []
            inFlight.removeAll { $0.to == victim }
        }
    }

    mutating func act() throws(SimulationFailure) {
        let n = configuration.replicas
        let actor = rng.below(n)
        if names.isEmpty || rng.chance(0.5) {
            let name = Name(words: (rng.next(), rng.next(), rng.next(), rng.next()))
            counters[actor] += 1
            let record = InstanceRecord(
                owner: Self.id(actor), object: ObjectID(index: UInt32(rng.below(1000)), generation: 1), kind: .blob,
                size: rng.below(4096), persistent: false)
            names.append(name)
            try broadcast(
                .insert(name, record, InsertTag(origin: Self.id(actor), counter: counters[actor])), from: actor)
        } else {
            let name = names[rng.below(names.count)]
            let seen = replicas[actor].observed(name)
            guard !seen.isEmpty else { return }
            try broadcast(.remove(name, seen[rng.below(seen.count)].0), from: actor)
        }
    }

    mutating func broadcast(_ delta: NameDelta, from origin: Int) throws(SimulationFailure) {
        try apply(delta, at: origin)
        for to in 0..<configuration.replicas where to != origin {
            if rng.chance(configuration.loss) { continue }
            let copies = rng.chance(configuration.duplication) ? 2 : 1
            for _ in 0..<copies {
                inFlight.append((step + 1 + rng.below(configuration.maxDelay), origin, to, delta))
            }
        }
    }

    /// Applies a delta at replica `i`. A removed instance can only come back
    /// through an insertion (or a merge), so that is where it is checked.
    mutating func apply(_ delta: NameDelta, at i: Int) throws(SimulationFailure) {
        replicas[i].apply(delta)
        switch delta {
        case .remove(let name, let tag):
            removedAt[i].insert(tag)
            tagName[tag] = name
        case .insert(let name, _, let tag):
            tagName[tag] = name
            if removedAt[i].contains(tag), replicas[i].observed(name).contains(where: { $0.0 == tag }) {
                throw SimulationFailure(
                    seed: seed, step: step, message: "replica \(i) shows instance \(tag) of \(name) after removing it")
            }
        }
    }

    mutating func deliver() throws(SimulationFailure) {
        var keep: [(deliverAt: Int, from: Int, to: Int, delta: NameDelta)] = []
        var due: [(from: Int, to: Int, delta: NameDelta)] = []
        for m in inFlight {
            if m.deliverAt <= step { due.append((m.from, m.to, m.delta)) } else { keep.append(m) }
        }
        inFlight = keep
        // Messages due together arrive in a random order.
        for k in due.indices.reversed() { due.swapAt(k, rng.below(k + 1)) }
        for m in due {
            if !connected(m.from, m.to) { continue }  // a partition drops what crosses it
            try apply(m.delta, at: m.to)
        }
    }

    mutating func antiEntropy() throws(SimulationFailure) {
        let n = configuration.replicas
        let a = rng.below(n)
        let b = rng.below(n)
        guard a != b, connected(a, b) else { return }
        replicas[b].merge(replicas[a].state)
        replicas[a].merge(replicas[b].state)
        try checkNoResurrection(at: a)
        try checkNoResurrection(at: b)
        for tag in replicas[a].state.tombstones { removedAt[a].insert(tag) }
        for tag in replicas[b].state.tombstones { removedAt[b].insert(tag) }
    }

    /// Replica `i` shows none of the instances whose removal it has applied.
    func checkNoResurrection(at i: Int) throws(SimulationFailure) {
        for tag in removedAt[i] {
            guard let name = tagName[tag] else { continue }
            if replicas[i].observed(name).contains(where: { $0.0 == tag }) {
                throw SimulationFailure(
                    seed: seed, step: step, message: "replica \(i) shows instance \(tag) of \(name) after removing it")
            }
        }
    }

    /// Every replica's final state, for comparing two runs of one seed.
    public var finalStates: [ReplicaState] { replicas.map(\.state) }

    func checkConvergence() throws(SimulationFailure) {
        let reference = replicas[0]
        for (i, replica) in replicas.enumerated().dropFirst() {
            guard replica.state == reference.state else {
                throw SimulationFailure(seed: seed, step: step, message: "replica \(i) did not converge with replica 0")
            }
            for name in names where replica.lookup(name) != reference.lookup(name) {
                throw SimulationFailure(
                    seed: seed, step: step, message: "replica \(i) answers lookup(\(name)) differently")
            }
        }
        // Removals that outlived their replica (a crash can take one that never
        // left it) are the tombstones the survivors hold; none may be visible.
        let tombstones = replicas.reduce(into: Set<InsertTag>()) { $0.formUnion($1.state.tombstones) }
        for (i, replica) in replicas.enumerated() {
            for name in names {
                for (tag, _) in replica.observed(name) where tombstones.contains(tag) {
                    throw SimulationFailure(
                        seed: seed, step: step, message: "replica \(i) still shows removed instance \(tag) of \(name)")
                }
            }
        }
    }
}
