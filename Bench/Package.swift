// swift-tools-version: 6.3
//
// DIOS benchmarks: a separate package so the root package stays free of the
// benchmark dependencies. Run from the repository root with
//
//   swift package --package-path Bench benchmark
//
// package-benchmark 1.38.1 enables the MallocInterposer trait for the malloc
// metrics. Its default RuntimeInterposer trait (ARC counters on Linux with
// Swift 6.3) is left off: it needs swift-runtime-interposer, which is not
// available offline, and these benchmarks do not report retain/release counts.
//
// The root package is taken with its traits off (no DPDK/RDMA shims): the
// benchmarks only need the DIOS library, so they build where libdpdk-dev and
// the verbs libraries are missing. (With default traits it builds too: the
// DIOS product does not link the C shims, and SwiftPM accepts the DPDK shim's
// unsafeFlags from a local path dependency.)

import PackageDescription

let package = Package(
    name: "DIOSBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "dios", path: "..", traits: []),
        .package(
            url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1",
            traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "DataPath",
            dependencies: [
                .product(name: "DIOS", package: "dios"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/DataPath",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // Instructions per call, for callgrind (callgrind.sh): not a benchmark.
        .executableTarget(
            name: "CallCost",
            dependencies: [.product(name: "DIOS", package: "dios")],
            path: "Profiles/CallCost",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
