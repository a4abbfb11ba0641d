import DIOSCore
import DIOSSimulation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The name-service replicas under a seeded, hostile simulated network.
@Suite struct NameServiceSimulationTests {
    static func environment(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }

    static func run<R: NameReplica>(seed: UInt64, _ make: @escaping (InstanceID) -> R) throws(SimulationFailure) {
        var sim = NameServiceSimulation(seed: seed, configuration: .random(seed: seed), makeReplica: make)
        try sim.run()
    }

    /// 200 seeds per test run (3–50 replicas, loss, duplication, reordering,
    /// delay, partitions, crashes); CI runs another 1,000 in a release build
    /// (`dios-sim replicas --seeds 1000`), and `DIOS_SIM_SEEDS=N` runs more here.
    @Test func manySeeds() {
        let count = UInt64(Self.environment("DIOS_SIM_SEEDS").flatMap { UInt64($0) } ?? 200)
        for seed in 0..<count {
            do throws(SimulationFailure) {
                try Self.run(seed: seed) { ORSetNameReplica(origin: $0) }
            } catch {
                Issue.record("\(error)")
                return
            }
        }
    }

    /// Replays one seed: `DIOS_SIM_SEED=N swift test --filter NameServiceSimulationTests/replay`.
    @Test func replay() throws {
        let seed = UInt64(Self.environment("DIOS_SIM_SEED").flatMap { UInt64($0) } ?? 42)
        try Self.run(seed: seed) { ORSetNameReplica(origin: $0) }
    }

    /// A replica that forgets tombstones when an insertion arrives late must be
    /// caught: the harness can fail.
    @Test func aReplicaThatIgnoresTombstonesIsCaught() {
        var caught = 0
        for seed in UInt64(0)..<50 {
            do throws(SimulationFailure) {
                try Self.run(seed: seed) { ForgetfulReplica(origin: $0) }
            } catch {
                caught += 1
            }
        }
        #expect(caught > 0)
    }

    @Test func aSeedReplaysExactly() throws {
        var first = NameServiceSimulation(seed: 7, configuration: .random(seed: 7)) { ORSetNameReplica(origin: $0) }
        var second = NameServiceSimulation(seed: 7, configuration: .random(seed: 7)) { ORSetNameReplica(origin: $0) }
        try first.run()
        try second.run()
        #expect(first.finalStates == second.finalStates)
    }
}

/// The deliberate bug: an insertion that arrives after its removal comes back.
struct ForgetfulReplica: NameReplica {
    var inner: ORSetNameReplica
    var live: [Name: [InsertTag: InstanceRecord]] = [:]

    init(origin: InstanceID) { inner = ORSetNameReplica(origin: origin) }

    func lookup(_ name: Name) -> [InstanceRecord] { observed(name).map(\.1) }
    func observed(_ name: Name) -> [(InsertTag, InstanceRecord)] {
        (live[name] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    mutating func apply(_ delta: NameDelta) -> Bool {
        switch delta {
        case .insert(let name, let record, let tag): live[name, default: [:]][tag] = record  // ignores tombstones
        case .remove(let name, let tag): live[name]?[tag] = nil
        }
        return inner.apply(delta)
    }

    var state: ReplicaState { inner.state }
    mutating func merge(_ state: ReplicaState) {
        for (tag, (name, record)) in state.inserts { _ = apply(.insert(name, record, tag)) }
        for tag in state.tombstones { if let name = state.inserts[tag]?.0 { _ = apply(.remove(name, tag)) } }
    }
}
