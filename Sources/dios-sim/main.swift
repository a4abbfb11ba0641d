// dios-sim: runs seeds of the deterministic simulations in a release build,
// where they run about ten times faster than under `swift test`'s debug build.
//
//   swift run -c release dios-sim cluster --seeds 100000
//   swift run -c release dios-sim replicas --seeds 100000 --from 500
//
// `cluster` drives the node's own wire, name-service and scheduler-election
// code (ClusterSimulation); `replicas` the name-service replicas alone, over
// 3–50 instances (NameServiceSimulation). The first failing seed is printed
// with the command that replays it, and the exit status is 1.

import DIOSCore
import DIOSSimulation

#if canImport(Glibc)
import Glibc
#endif

func usage() -> Never {
    print("usage: dios-sim cluster|replicas [--seeds N] [--from FIRST]")
    exit(2)
}

var arguments = CommandLine.arguments.dropFirst()
guard let which = arguments.popFirst(), which == "cluster" || which == "replicas" else { usage() }
var seeds: UInt64 = 1000
var first: UInt64 = 0
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst().flatMap({ UInt64($0) }) else { usage() }
    switch flag {
    case "--seeds": seeds = value
    case "--from": first = value
    default: usage()
    }
}

var started = timespec()
clock_gettime(CLOCK_MONOTONIC, &started)
for seed in first..<(first + seeds) {
    var failure: (any Error & CustomStringConvertible)? = nil
    if which == "cluster" {
        do throws(ClusterSimulation.Failure) {
            try ClusterSimulation(seed: seed, configuration: .random(seed: seed)).run()
        } catch { failure = error }
    } else {
        var sim = NameServiceSimulation(seed: seed, configuration: .random(seed: seed)) { ORSetNameReplica(origin: $0) }
        do throws(SimulationFailure) { try sim.run() } catch { failure = error }
    }
    if let failure {
        print(failure)
        print("or: swift run -c release dios-sim \(which) --from \(seed) --seeds 1")
        exit(1)
    }
    if (seed - first + 1) % 1000 == 0 { print("\(seed - first + 1) seeds passed") }
}
var ended = timespec()
clock_gettime(CLOCK_MONOTONIC, &ended)
let seconds = Double(ended.tv_sec - started.tv_sec) + Double(ended.tv_nsec - started.tv_nsec) / 1e9
print("dios-sim \(which): \(seeds) seeds from \(first) passed in \(Int(seconds)) s")
