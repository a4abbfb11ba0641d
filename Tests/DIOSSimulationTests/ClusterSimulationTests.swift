import DIOSSimulation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The node's own wire, name-service and scheduler-election code (sessions
/// with epochs, heartbeats and failure detection; the name-service protocol;
/// `SchedulerElection`) on a simulated cluster with loss, duplication,
/// reordering, delay, partitions and crashes.
@Suite struct ClusterSimulationTests {
    static func environment(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }

    /// 60 seeds per test run (3–8 nodes of 1–3 instances, every fault type; about 0.7 s
    /// each in a debug build); CI runs another 1,000 in a release build
    /// (`dios-sim cluster --seeds 1000`), and `DIOS_CLUSTER_SEEDS=N` runs more here.
    @Test func manySeeds() {
        let count = UInt64(Self.environment("DIOS_CLUSTER_SEEDS").flatMap { UInt64($0) } ?? 60)
        for seed in 0..<count {
            do throws(ClusterSimulation.Failure) {
                try ClusterSimulation(seed: seed, configuration: .random(seed: seed)).run()
            } catch {
                Issue.record("\(error)")
                return
            }
        }
    }

    /// `DIOS_SIM_SEED=N swift test --filter ClusterSimulationTests/replay`.
    @Test func replay() throws {
        let seed = UInt64(Self.environment("DIOS_SIM_SEED").flatMap { UInt64($0) } ?? 7)
        try ClusterSimulation(seed: seed, configuration: .random(seed: seed)).run()
    }

    /// Names of peers whose sessions ended are kept (the purge left out): the
    /// simulation must catch it.
    @Test func keepingAFailedPeersNamesIsCaught() {
        var caught = 0
        for seed in UInt64(0)..<15 {
            var sim = ClusterSimulation(seed: seed, configuration: .random(seed: seed))
            sim.forgetPurge = true
            do throws(ClusterSimulation.Failure) { try sim.run() } catch {
                if error.message.contains("session is down") || error.message.contains("objects, it holds") {
                    caught += 1
                }
            }
            if caught > 0 { break }  // one catch shows it; the rest would only hold a test thread
        }
        #expect(caught > 0)
    }

    /// An instance that does not pass its siblings' deltas on to the other
    /// nodes' instances it relays to: they miss those objects (or keep deleted
    /// ones). The simulation must catch it.
    @Test func notRelayingASiblingsDeltasIsCaught() {
        var caught = 0
        for seed in UInt64(0)..<30 {
            let configuration = ClusterSimulation.Configuration.random(seed: seed)
            guard configuration.perNode > 1 else { continue }
            var sim = ClusterSimulation(seed: seed, configuration: configuration)
            sim.forgetRelay = true
            do throws(ClusterSimulation.Failure) { try sim.run() } catch {
                if error.message.contains("objects, it holds") || error.message.contains("sees deleted") { caught += 1 }
            }
            if caught > 0 { break }  // one catch shows it; the rest would only hold a test thread
        }
        #expect(caught > 0)
    }

    /// A scheduler that never steps down for a lower one: after a partition
    /// heals (or nodes that booted apart meet), two run. The simulation must
    /// catch it.
    @Test func aSchedulerThatNeverStepsDownIsCaught() {
        var caught = 0
        for seed in UInt64(0)..<30 {
            var sim = ClusterSimulation(seed: seed, configuration: .random(seed: seed))
            sim.neverStepDown = true
            do throws(ClusterSimulation.Failure) { try sim.run() } catch {
                if error.message.contains("schedulers after healing") { caught += 1 }
            }
            if caught > 0 { break }  // one catch shows it; the rest would only hold a test thread
        }
        #expect(caught > 0)
    }
}
