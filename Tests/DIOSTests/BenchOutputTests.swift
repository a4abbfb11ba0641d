import DIOSDevices
import DIOSKernel
import Foundation
import Testing

/// `dios bench ipc --json`: the machine-readable form scripts and plots read
/// (issue 3: one JSON object per line with `mechanism`, `payload`, `min_ns`,
/// `p50_ns`, `p99_ns`, `p999_ns`, and `msgs_per_s` on throughput lines). A
/// short run of the real binary; the assertions are about the form and the
/// order of percentiles, never about how fast anything was.
@Suite(.serialized) struct BenchOutputTests {
    static var dios: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dios")
    }

    /// Runs `dios` with `arguments` (killed after `seconds`); its status and the JSON objects it printed, one per line.
    static func runJSON(_ arguments: [String], seconds: Int = 60) throws -> (
        status: Int32, objects: [[String: Any]], text: String
    ) {
        let process = Process()
        process.environment = ChildProcess.environment
        process.executableURL = dios
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let watchdog = Task {
            try await Task.sleep(for: .seconds(seconds))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        defer { watchdog.cancel() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let objects = text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        return (process.terminationStatus, objects, text)
    }

    /// Every latency object: a known mechanism, a payload, and min ≤ p50 ≤ p99 ≤ p99.9, all positive.
    static func checkLatencies(_ objects: [[String: Any]], _ text: String) -> Set<String> {
        var seen = Set<String>()
        for o in objects where o["msgs_per_s"] == nil && o["clock"] == nil {
            guard let mechanism = o["mechanism"] as? String, let payload = o["payload"] as? Int else {
                Issue.record("a line without mechanism or payload: \(o)")
                continue
            }
            let values = ["min_ns", "p50_ns", "p99_ns", "p999_ns"].compactMap { o[$0] as? Int }
            #expect(values.count == 4, "\(mechanism) \(payload): \(o)")
            #expect(values == values.sorted() && (values.first ?? 0) > 0, "\(mechanism) \(payload): \(o)")
            seen.insert("\(mechanism)/\(payload)")
        }
        #expect(!seen.isEmpty, "\(text)")
        return seen
    }

    @Test(.timeLimit(.minutes(2)))
    func localBenchPrintsOneJSONObjectPerMechanismAndPayload() throws {
        let (status, objects, text) = try Self.runJSON([
            "bench", "ipc", "--json", "--idle", "adaptive", "--iterations", "400", "--warmup", "40", "--rounds", "2",
            "--payloads", "8,64", "--throughput-messages", "20000",
        ])
        #expect(status == 0, "\(text)")
        #expect(objects.count == text.split(separator: "\n").count, "every line is one JSON object: \(text)")
        let seen = Self.checkLatencies(objects, text)
        var wanted: Set<String> = ["floor/8", "floor-c/8"]
        for mechanism in ["ring-raw", "dios", "uds-blocking", "uds-poll"] {
            for payload in [8, 64] { wanted.insert("\(mechanism)/\(payload)") }
        }
        #expect(seen == wanted, "\(text)")
        let throughput = objects.filter { $0["msgs_per_s"] != nil }
        #expect(throughput.count == 1, "\(text)")
        #expect(throughput.first?["mechanism"] as? String == "dios")
        #expect(throughput.first?["payload"] as? Int == 64)
        #expect((throughput.first?["msgs_per_s"] as? Int ?? 0) > 0, "\(text)")
        // How the clock was read, and what a stamp pair costs on this host.
        let clock = objects.filter { $0["clock"] != nil }
        #expect(clock.count == 1, "\(text)")
        let pair = (clock.first?["stamp_pair_min_ns"] as? Int ?? -1, clock.first?["stamp_pair_p50_ns"] as? Int ?? -1)
        #expect(pair.0 >= 0 && pair.1 >= pair.0 && (clock.first?["tsc_hz"] as? Int ?? 0) > 0, "\(text)")
    }

    /// `--plot FILE`: an SVG gnuplot drew, with a curve for every row the
    /// run measured, titled with the host; a file of another kind is refused
    /// before anything runs.
    @Test(
        .timeLimit(.minutes(2)),
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gnuplot"), "needs gnuplot-nox"))
    func thePlotDrawsEveryRow() throws {
        let path = "/tmp/dios-plot-test-\(getpid()).svg"
        defer { unlink(path) }
        let (status, objects, text) = try Self.runJSON([
            "bench", "ipc", "--json", "--idle", "adaptive", "--iterations", "400", "--warmup", "40", "--rounds", "2",
            "--payloads", "64", "--throughput-messages", "20000", "--plot", path,
        ])
        #expect(status == 0, "\(text)")
        let svg = try String(contentsOfFile: path, encoding: .utf8)
        #expect(svg.hasPrefix("<?xml") && svg.contains("<svg"), "\(svg.prefix(200))")
        let rows = objects.compactMap { o -> String? in
            guard o["msgs_per_s"] == nil, let m = o["mechanism"] as? String, let p = o["payload"] as? Int else {
                return nil
            }
            return "\(m) \(p) B"
        }
        #expect(rows.count == 6, "\(text)")
        for row in rows { #expect(svg.contains(row), "no curve for \(row)") }
        #expect(svg.contains(HostDescription.current().description.replacingOccurrences(of: "host: ", with: "")))
        let refused = try Self.runJSON(["bench", "ipc", "--plot", "/tmp/x.pdf"])
        #expect(refused.status != 0)
    }

    /// `--extra-calls N`: a `dios+calls` lane beside `dios` (the echo makes N
    /// sets of the four stream calls before replying), in JSON and in the
    /// table, with the line that turns the two into a cost per set.
    @Test(.timeLimit(.minutes(2)))
    func extraCallsAddALaneAndItsCostPerSet() throws {
        let common = [
            "bench", "ipc", "--idle", "adaptive", "--iterations", "400", "--warmup", "40", "--rounds", "2",
            "--payloads", "64", "--only", "dios", "--extra-calls", "3", "--throughput-messages", "20000",
        ]
        let (status, objects, text) = try Self.runJSON(common + ["--json"])
        #expect(status == 0, "\(text)")
        #expect(
            Self.checkLatencies(objects, text) == ["floor/8", "floor-c/8", "ring-raw/64", "dios/64", "dios+calls/64"],
            "\(text)")
        let table = try Self.runJSON(common)
        #expect(table.status == 0, "\(table.text)")
        let lines = table.text.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("dios+calls ") }, "\(table.text)")
        // The table names the machine under its title: figures from two hosts differ more than from two builds.
        #expect(lines.dropFirst().first.map(String.init) == HostDescription.current().description, "\(table.text)")
        // Then how the clock is read, and the check of the floor against the C floor.
        #expect(lines.dropFirst(2).first?.hasPrefix("clock: TSC at ") == true, "\(table.text)")
        #expect(
            lines.contains { $0.hasPrefix("floor-c ") } && lines.contains { $0.hasPrefix("floor check: ") },
            "\(table.text)")
        #expect(
            lines.contains {
                $0.hasPrefix("64 B: DIOS's four stream calls") && $0.contains(" ns a set") && $0.contains("the 3 sets")
            },
            "\(table.text)")
        let (refused, _, _) = try Self.runJSON(["bench", "ipc", "--extra-calls", "65"])
        #expect(refused != 0)
    }

    /// A CPU this process may not run on is refused before anything runs,
    /// locally and across nodes, as `diosd` refuses it: it used to run
    /// unpinned and print figures for a CPU it never ran on.
    @Test(.timeLimit(.minutes(1)))
    func aCPUTheProcessMayNotUseIsRefused() throws {
        let allowed = Set(OSThread.allowedCPUs())
        let outside = (0...1024).first { !allowed.contains($0) }!
        let first = allowed.min()!
        for arguments in [
            ["bench", "ipc", "--cores", "\(first),\(outside)"],
            ["bench", "ipc", "--remote", "--links", "lo", "--cores", "\(first),\(outside)"],
        ] {
            let process = Process()
            process.environment = ChildProcess.environment
            process.executableURL = Self.dios
            process.arguments = arguments
            let err = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = err
            try process.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus != 0, "\(arguments)")
            #expect(text.contains("CPU \(outside) is not among the CPUs this process may run on"), "\(text)")
        }
    }

    /// Across nodes on loopback only (no namespaces, no DPDK): kernel UDP,
    /// blocking and busy-polled, and DIOS over UDP, in the same form.
    @Test(.timeLimit(.minutes(2)))
    func remoteBenchOnLoopbackPrintsTheSameForm() throws {
        let (status, objects, text) = try Self.runJSON([
            "bench", "ipc", "--remote", "--links", "lo", "--json", "--idle", "adaptive", "--iterations", "300",
            "--warmup", "30", "--payloads", "64",
        ])
        #expect(status == 0, "\(text)")
        #expect(objects.count == text.split(separator: "\n").count, "every line is one JSON object: \(text)")
        let seen = Self.checkLatencies(objects, text)
        #expect(seen == ["udp-blocking-lo/64", "udp-poll-lo/64", "dios-udp-lo/64"], "\(text)")
    }

    /// `dios bench scale`: per step, throughput lines for DIOS and for bare
    /// rings (the pairs' messages, all of them, checked in order by each pair)
    /// and a round-trip line, the one-pair baseline first even when not asked for. Unpinned, so four
    /// instances fit on this machine; the ratios are printed, never judged.
    @Test(.timeLimit(.minutes(2)))
    func scaleBenchPrintsAThroughputAndARoundTripLinePerStep() throws {
        let (status, objects, text) = try Self.runJSON([
            "bench", "scale", "--no-pin", "--cores", "0,1,2,3", "--pairs", "2", "--idle", "adaptive",
            "--messages", "20000", "--iterations", "300", "--warmup", "30", "--json",
        ])
        #expect(status == 0, "\(text)")
        #expect(objects.count == text.split(separator: "\n").count, "every line is one JSON object: \(text)")
        #expect(objects.allSatisfy { $0["payload"] as? Int == 64 }, "\(text)")
        let throughput = objects.filter { $0["msgs_per_s"] != nil }
        // Each step: DIOS, then the bare rings on the same CPUs.
        #expect(
            throughput.compactMap { $0["mechanism"] as? String } == [
                "dios-scale", "ring-raw-scale", "dios-scale", "ring-raw-scale",
            ],
            "\(text)")
        #expect(throughput.compactMap { $0["pairs"] as? Int } == [1, 1, 2, 2], "\(text)")
        #expect(throughput.compactMap { $0["messages"] as? Int } == [20000, 20000, 40000, 40000], "\(text)")
        #expect(throughput.allSatisfy { ($0["msgs_per_s"] as? Int ?? 0) > 0 && $0["vs_one_pair"] != nil }, "\(text)")
        #expect(
            throughput.filter { $0["mechanism"] as? String == "dios-scale" }.allSatisfy { $0["vs_ring_raw"] != nil },
            "\(text)")
        let latencies = objects.filter { $0["msgs_per_s"] == nil }
        #expect(latencies.allSatisfy { $0["mechanism"] as? String == "dios-scale" }, "\(text)")
        #expect(latencies.compactMap { $0["samples"] as? Int } == [300, 600], "\(text)")
        #expect(Self.checkLatencies(latencies, text) == ["dios-scale/64"], "\(text)")
        // More pairs than the CPUs given hold, and CPUs named twice, are refused.
        #expect(try Self.runJSON(["bench", "scale", "--no-pin", "--cores", "0,1,2,3", "--pairs", "3"]).status != 0)
        #expect(try Self.runJSON(["bench", "scale", "--no-pin", "--cores", "0,1,1,3"]).status != 0)
    }

    /// Root and a hugetlbfs mount: what the DPDK rows need (CI has both).
    static var canRunDPDK: Bool {
        geteuid() == 0
            && ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8))?.contains(" hugetlbfs ") ?? false)
    }

    /// `--remote` over memif with a payload larger than one frame: DIOS
    /// fragments it and has its rows; the raw ping-pong cannot, so it has
    /// none (it used to try to send the frame forever, and the run never ended).
    @Test(.timeLimit(.minutes(2)), .enabled(if: BenchOutputTests.canRunDPDK, "needs root and hugepages"))
    func remoteBenchLeavesOutTheRawRowOfAPayloadOverOneFrame() throws {
        let (status, objects, text) = try Self.runJSON([
            "bench", "ipc", "--remote", "--links", "memif", "--json", "--idle", "adaptive", "--iterations", "300",
            "--warmup", "30", "--payloads", "64,4096",
        ])
        #expect(status == 0, "\(text)")
        #expect(
            Self.checkLatencies(objects, text)
                == [
                    "dpdk-raw-memif/64", "dios-memif/64", "dios-memif/4096", "dios-memif-copy/64",
                    "dios-memif-copy/4096", "dios-memif-auth/64", "dios-memif-auth/4096", "dios-memif-enc/64",
                    "dios-memif-enc/4096",
                ],
            "\(text)")
    }

    /// The network namespaces that exist (their names under /run/netns).
    static func namespaces() -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
    }

    /// The veth pair of `--remote` is not left behind: a run stopped by
    /// SIGTERM removes its namespaces before it exits (status 128 + 15), and
    /// a run removes those of earlier runs whose process is gone (killed with
    /// SIGKILL), never those of a live one.
    @Test(.timeLimit(.minutes(2)), .enabled(if: geteuid() == 0, "needs root (ip netns)"))
    func remoteBenchRemovesItsNamespacesOnSIGTERMAndThoseOfDeadRuns() throws {
        // A dead run's pair (no process has pid 4,000,000: pid_max is at most 4,194,304,
        // and this one is far above what a test machine reaches) and a live one's (pid 1).
        let dead = ["diosbench-a4000000", "diosbench-b4000000"]
        let live = "diosbench-a1"
        for name in dead + [live] { #expect(system("ip netns add \(name)") == 0) }
        defer { for name in dead + [live] { _ = system("ip netns del \(name) 2>/dev/null") } }

        let process = Process()
        process.environment = ChildProcess.environment
        process.executableURL = Self.dios
        process.arguments = [
            "bench", "ipc", "--remote", "--links", "veth", "--idle", "adaptive", "--iterations", "10000000",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let own = ["diosbench-a\(process.processIdentifier)", "diosbench-b\(process.processIdentifier)"]
        var made = false
        for _ in 0..<300 where !made {
            made = Self.namespaces().isSuperset(of: own)
            if !made { usleep(50_000) }
        }
        #expect(made, "the run made no veth pair: \(Self.namespaces())")
        #expect(Self.namespaces().isDisjoint(with: dead), "a dead run's namespaces were kept: \(Self.namespaces())")
        #expect(Self.namespaces().contains(live), "a live process's namespace was removed")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + SIGTERM)
        #expect(Self.namespaces().isDisjoint(with: own), "left behind: \(Self.namespaces())")
    }
}
