// swift-tools-version: 6.2
//
// DIOS — a distributed operating system built as a user-mode multikernel.
//
// Layering: each module imports only modules below it (CI builds with
// `--explicit-target-dependency-import-check error`, so an import a target
// does not declare fails the build).
//
//   diosd, dios            executables: the node daemon and the command line
//   dios-sim, dios-dpdk-probe   the simulations' runner; a DPDK peer for tests
//   dios-swift-check       a task process in Swift, for the tests
//   DIOSBench              the benchmarks behind `dios bench`
//   DIOSExamples           the demo and check programs diosd can run
//   DIOSMetrics            a node's counters for Prometheus, served over HTTP
//   DIOSHost               running commands (`ip`), watching processes, sockets no client can jam
//   DIOS                   the task-facing API: TaskContext, transactions, Node
//   DIOSConfig             node and cluster files as plain values; one parser per setting
//   DIOSProcess            task processes: executables spawned as tasks, their channels served
//   DIOSKernel             a kernel instance: objects, reference tables, the calls
//   DIOSTransport          frames on kernel UDP sockets and DPDK queues
//   DIOSSimulation         seeded simulations of the wire's protocols (test support)
//   DIOSTaskProcess        the task API for Swift programs that are task processes (over libdios)
//   DIOSChannel            a task process's ring entries: decoded and checked
//   DIOSWire               frames, remote messages, sessions, the name service: codecs and protocols
//   DIOSMemory             hugepage arena, pools, stream rings: the one owner of raw memory
//   DIOSDevices            start-up probes of DPDK / RDMA / hugepages (C at the edge)
//   DIOSCore               pure types: names, references, rights, flags, errors, policies
//   CSupport/C*            small C shims (DPDK, verbs, libsodium's AES-GCM and HMAC, Linux
//                          bits Swift cannot reach, the task channel's layout); libdios/ is the C ABI itself
//
// Package traits `DPDK` and `RDMA` (on by default) compile the shims against the
// Debian libraries; `--disable-default-traits` builds where they are missing.

import PackageDescription

// Debian's libdpdk.pc has a multi-line Description that SwiftPM rejects, so the DPDK
// shim names its include paths itself. Only the shim's .c file sees DPDK headers;
// its public header uses plain C types, so no Swift target needs these flags.
let dpdkCFlags = [
    "-I/usr/include/dpdk", "-I/usr/include/x86_64-linux-gnu/dpdk",
    "-include", "rte_config.h", "-march=corei7",
]
let dpdkLibraries: [LinkerSetting] = [
    "rte_eal", "rte_ethdev", "rte_mbuf", "rte_mempool", "rte_ring", "rte_net", "rte_kvargs",
].map { .linkedLibrary($0, .when(platforms: [.linux])) }

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    // Async functions run on their caller's executor (SE-0461): a task's calls
    // into the kernel stay on its instance's thread with no executor switch.
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "dios",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "DIOS", targets: ["DIOS"]),
        .library(name: "DIOSTaskProcess", targets: ["DIOSTaskProcess"]),
        .executable(name: "diosd", targets: ["diosd"]),
        .executable(name: "dios", targets: ["dios"]),
    ],
    traits: [
        .trait(name: "DPDK", description: "Build the DPDK shim against Debian's libdpdk-dev."),
        .trait(name: "RDMA", description: "Build the verbs shim against libibverbs-dev and librdmacm-dev."),
        .default(enabledTraits: ["DPDK", "RDMA"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
    ],
    targets: [
        // MARK: C at the edge
        .target(
            name: "CLinux",
            path: "CSupport/CLinux",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "CDPDK",
            path: "CSupport/CDPDK",
            cSettings: [.unsafeFlags(dpdkCFlags), .define("_GNU_SOURCE")],
            linkerSettings: dpdkLibraries
        ),
        // The channel to task processes: its layout (shared with libdios) and
        // the Linux calls that spawn, watch and wake them.
        .target(
            name: "CDIOSChannel",
            path: "CSupport/CDIOSChannel",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // libdios, the C ABI of task processes, as a module for the Swift library over it.
        .target(
            name: "CDIOSTask",
            dependencies: ["CDIOSChannel"],
            path: "libdios",
            exclude: ["build.sh"],
            sources: ["dios.c", "dios_streams.c"],
            publicHeadersPath: "include"
        ),
        // Frame authentication: AES-GCM and HMAC-SHA256 (for HKDF) from libsodium.
        .target(
            name: "CDIOSCrypto",
            path: "CSupport/CDIOSCrypto",
            linkerSettings: [.linkedLibrary("sodium", .when(platforms: [.linux]))]
        ),
        .target(
            name: "CRDMA",
            path: "CSupport/CRDMA",
            linkerSettings: [
                .linkedLibrary("ibverbs", .when(platforms: [.linux])),
                .linkedLibrary("rdmacm", .when(platforms: [.linux])),
            ]
        ),

        // MARK: Pure
        .target(
            name: "DIOSCore",
            swiftSettings: strict
        ),

        // Test support: a deterministic, seeded simulation of many replicas over
        // a lossy network, driving the same name-service code the kernel uses.
        .target(
            name: "DIOSSimulation",
            dependencies: ["DIOSCore", "DIOSWire"],
            swiftSettings: strict
        ),

        // The DIOS wire: frame header, reliable sessions, the fault stage. Pure
        // Swift over raw buffers, so the simulation and the fuzzer drive it as is.
        .target(
            name: "DIOSWire",
            dependencies: ["DIOSCore", "CDIOSCrypto"],
            swiftSettings: strict
        ),

        // The task-process channel's entries: decoded and bounds-checked, pure
        // Swift over plain numbers, so the fuzzer drives the decoder as is.
        .target(
            name: "DIOSChannel",
            dependencies: ["DIOSCore"],
            swiftSettings: strict
        ),

        // The TaskContext API for Swift programs that run as task processes, over libdios.
        .target(
            name: "DIOSTaskProcess",
            dependencies: ["DIOSCore", "DIOSChannel", "CDIOSTask"],
            swiftSettings: strict
        ),

        // MARK: Memory and devices
        .target(
            name: "DIOSMemory",
            dependencies: [
                "DIOSCore", "CLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DIOSDevices",
            dependencies: [
                "CLinux",
                .target(name: "CDPDK", condition: .when(traits: ["DPDK"])),
                .target(name: "CRDMA", condition: .when(traits: ["RDMA"])),
            ],
            swiftSettings: strict + [
                .define("DIOS_DPDK", .when(traits: ["DPDK"])),
                .define("DIOS_RDMA", .when(traits: ["RDMA"])),
            ]
        ),

        // Transports under the wire: kernel UDP sockets and DPDK queues.
        .target(
            name: "DIOSTransport",
            dependencies: [
                "DIOSWire", "CLinux",
                .target(name: "CDPDK", condition: .when(traits: ["DPDK"])),
            ],
            swiftSettings: strict + [.define("DIOS_DPDK", .when(traits: ["DPDK"]))]
        ),

        // MARK: Kernel and API
        .target(
            name: "DIOSKernel",
            dependencies: [
                "DIOSCore", "DIOSMemory", "DIOSWire", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // Task processes: spawning executables as tasks and serving their channels.
        .target(
            name: "DIOSProcess",
            dependencies: ["DIOSCore", "DIOSKernel", "DIOSChannel", "CDIOSChannel", "CDIOSCrypto", "CLinux"],
            swiftSettings: strict
        ),
        .target(
            name: "DIOSConfig",
            dependencies: [
                "DIOSCore", "DIOSWire", .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DIOS",
            dependencies: [
                "DIOSCore", "DIOSKernel", "DIOSMemory", "DIOSWire", "DIOSConfig", "DIOSProcess", "CLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict + [.enableExperimentalFeature("Lifetimes")]
        ),

        // MARK: Around the node
        .target(
            name: "DIOSHost",
            dependencies: ["DIOSConfig", "DIOSKernel"],
            swiftSettings: strict
        ),
        .target(
            name: "DIOSMetrics",
            dependencies: [
                "DIOS", "DIOSHost", "DIOSKernel", "DIOSWire",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DIOSExamples",
            dependencies: ["DIOS"],
            swiftSettings: strict
        ),
        .target(
            name: "DIOSBench",
            dependencies: [
                "DIOS", "DIOSDevices", "DIOSMemory", "DIOSConfig", "DIOSHost", "DIOSTransport", "DIOSWire",
                "DIOSKernel", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict + [.define("DIOS_DPDK", .when(traits: ["DPDK"]))]
        ),

        // MARK: Executables
        .executableTarget(
            name: "diosd",
            dependencies: [
                "DIOS", "DIOSDevices", "DIOSConfig", "DIOSExamples", "DIOSHost", "DIOSMetrics", "DIOSTransport",
                "DIOSWire", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict + [.define("DIOS_DPDK", .when(traits: ["DPDK"]))]
        ),
        .executableTarget(
            name: "dios",
            dependencies: [
                "DIOS", "DIOSBench", "DIOSDevices", "DIOSMemory", "DIOSConfig", "DIOSHost", "DIOSMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Runs seeds of the simulations in a release build (CI runs 1,000 per
        // simulation; `--seeds 100000` for the long local runs).
        // A task process in Swift for the tests, over DIOSTaskProcess.
        .executableTarget(
            name: "dios-swift-check",
            dependencies: ["DIOSCore", "DIOSTaskProcess"],
            path: "Tests/Programs/SwiftCheck",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "dios-sim",
            dependencies: ["DIOSSimulation", "DIOSCore"],
            swiftSettings: strict
        ),

        // A DPDK peer for tests and raw baselines: exchanges numbered frames with
        // another instance of itself, or measures ping-pong round trips, over one
        // DPDKTransport (or a UDP socket, for interop). No DIOS kernel logic.
        .executableTarget(
            name: "dios-dpdk-probe",
            dependencies: ["DIOSTransport", "DIOSWire"],
            swiftSettings: strict + [.define("DIOS_DPDK", .when(traits: ["DPDK"]))]
        ),

        // MARK: Tests
        .testTarget(name: "DIOSCoreTests", dependencies: ["DIOSCore"], swiftSettings: strict),
        .testTarget(
            name: "DIOSSimulationTests", dependencies: ["DIOSSimulation", "DIOSCore", "DIOSWire"], swiftSettings: strict
        ),
        .testTarget(
            name: "DIOSWireTests", dependencies: ["DIOSWire", "DIOSCore", "CDIOSCrypto"], swiftSettings: strict),
        .testTarget(
            name: "DIOSTransportTests", dependencies: ["DIOSTransport", "DIOSWire", "DIOSCore", "DIOSHost", "CLinux"],
            swiftSettings: strict + [.define("DIOS_DPDK", .when(traits: ["DPDK"]))]),
        .testTarget(name: "DIOSMemoryTests", dependencies: ["DIOSMemory"], swiftSettings: strict),
        .testTarget(
            name: "DIOSTests",
            dependencies: [
                "DIOS", "DIOSKernel", "DIOSMemory", "DIOSWire", "DIOSTransport", "DIOSConfig", "DIOSHost",
                "DIOSDevices", "DIOSMetrics",
                "CLinux",
            ],
            swiftSettings: strict + [.enableExperimentalFeature("Lifetimes")]
        ),
        .testTarget(
            name: "DIOSProcessTests",
            dependencies: [
                "DIOS", "DIOSCore", "DIOSProcess", "DIOSChannel", "DIOSHost", "DIOSTransport", "DIOSWire",
                "DIOSMemory", "CDIOSChannel",
                "CLinux",
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "DIOSDevicesTests", dependencies: ["DIOSDevices"], swiftSettings: strict),
        .testTarget(
            name: "DIOSConfigTests", dependencies: ["DIOSConfig", "DIOSHost", "DIOS", "DIOSWire"], swiftSettings: strict
        ),
    ]
)
