import ArgumentParser
import CLinux
import DIOS
import DIOSConfig
import DIOSDevices
import DIOSHost
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// `dios bench ipc --processes`: round trips between programs that are
/// processes, next to in-process tasks, in one run on the same two CPUs:
/// - `floor`: two threads bouncing a cache line (the hardware);
/// - `dios`: two in-process tasks (a task on each instance, two streams);
/// - `dios-proc-trusted`: two trusted task processes (`Bench/Programs/dios-ipc.c`
///   against libdios), which work their streams' rings in place;
/// - `dios-proc-untrusted`: the same program untrusted, every call through
///   its channel and every byte copied through its window;
/// - `uds-poll`: the same program's Linux version, a Unix socket pair between
///   two processes busy-polling (what a user would pick instead);
/// and the p50 from `run` to a task process's first call (`run-to-first-call`)
/// next to `posix_spawn` of the same binary to its `main` (`posix-spawn`).
/// The mechanisms take turns in rounds, so ratios are also taken round by round.
extension BenchIPC {
    /// The benchmark's C program, built from the source tree (or `--program`),
    /// with libdios; the directory holding it, writable by untrusted tasks.
    func processProgram() throws -> (program: String, directory: String) {
        let directory = "/tmp/dios-bench-ipc-\(getpid())"
        mkdir(directory, 0o1777)
        chmod(directory, 0o1777)  // untrusted task processes write their samples here
        if let program { return (program, directory) }
        let root = Self.sourceRoot
        guard access(root + "/Bench/Programs/dios-ipc.c", R_OK) == 0 else {
            throw ValidationError(
                "--processes needs Bench/Programs/dios-ipc.c from DIOS's source tree (looked in \(root)), or a "
                    + "built one: --program PATH (build it with libdios/build.sh and cc, as Bench/manycore.sh does)")
        }
        let script = """
            set -e
            '\(root)/libdios/build.sh' '\(directory)/libdios' >/dev/null
            export PKG_CONFIG_PATH='\(directory)/libdios/lib/pkgconfig'
            cc -std=c11 -O2 -Wall -Wextra -Werror -o '\(directory)/dios-ipc' '\(root)/Bench/Programs/dios-ipc.c' \
                $(pkg-config --cflags --libs dios)
            chmod -R a+rX '\(directory)'
            """
        let (status, output) = Host.run("/bin/sh", ["-c", script])
        guard status == 0 else { throw ValidationError("building dios-ipc failed:\n\(output)") }
        return (directory + "/dios-ipc", directory)
    }

    /// The source tree this `dios` was built from.
    static var sourceRoot: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
        return path
    }

    func runProcesses(_ cpus: [Int], _ sizes: [Int], _ clock: TSC) async throws {
        // The two may be one CPU (both processes on it, taking turns).
        let processCPUs = processCores.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [-1, -1]
        guard processCPUs.count == 2, processCPUs.allSatisfy({ $0 >= -1 }) else {
            throw ValidationError("--process-cores needs two CPUs, e.g. 2,3 (or 1,1)")
        }
        if processCores != nil { try requireAllowed(processCPUs) }
        let (programPath, directory) = try processProgram()
        let node = try makeNode(cpus)
        defer { node.shutdown() }
        let program = await node.register(try Executable(path: programPath))
        let echo = await node.register(label: "bench.ipc.echo", program: Self.echo)
        let maxSize = sizes.max()!
        let mechanisms = ["dios", "dios-proc-trusted", "dios-proc-untrusted", "uds-poll"]
        var samples: [String: [Int: [UInt64]]] = [:]
        var roundP50s: [String: [Int: [UInt64]]] = [:]
        let perRound = max(1, iterations / rounds)
        let warmupPerRound = warmup / rounds
        var sequence = 0
        for _ in 0..<rounds {
            for mechanism in mechanisms {
                for size in sizes {
                    sequence += 1
                    let out = "\(directory)/samples-\(sequence)"
                    let ns: [UInt64]
                    switch mechanism {
                    case "dios":
                        ns = try await node.withTask(on: 0) { task in
                            let (_, ping) = try task.create(.stream(messageSize: maxSize, depth: 64))
                            let (_, pong) = try task.create(.stream(messageSize: maxSize, depth: 64))
                            let e = try task.run(try task.lookup(echo)[0], arguments: [ping, pong], on: 1)
                            let h = try await Self.roundTrips(
                                task, ping, pong, echo: e, size: size, warmup: warmupPerRound, iterations: perRound,
                                clock)
                            try task.delete(ping)
                            try task.delete(pong)
                            return Self.values(h)
                        }
                    case "uds-poll":
                        let command = [
                            "uds", "\(perRound)", "\(warmupPerRound)", "\(size)", "\(cpus[0])", "\(cpus[1])", out,
                        ]
                        let (status, output) = Host.run(programPath, command)
                        guard status == 0 else { throw ValidationError("dios-ipc uds failed: \(output)") }
                        ns = try Self.readTicks(out, clock)
                    default:
                        let flags: Flags = mechanism == "dios-proc-untrusted" ? .untrusted : []
                        let statuses = try await node.withTask(on: 0) { task in
                            let (_, ping) = try task.create(.stream(messageSize: maxSize, depth: 64))
                            let (_, pong) = try task.create(.stream(messageSize: maxSize, depth: 64))
                            let p = try task.lookup(program)[0]
                            let e = try task.run(
                                p, arguments: [ping, pong], commandLine: ["echo", "\(processCPUs[1])"], flags: flags,
                                on: 1)
                            let pinger = try task.run(
                                p, arguments: [ping, pong],
                                commandLine: [
                                    "ping", "\(perRound)", "\(warmupPerRound)", "\(size)", "\(processCPUs[0])", out,
                                ],
                                flags: flags, on: 0)
                            let s = [try await task.exitStatus(of: pinger), try await task.exitStatus(of: e)]
                            try task.delete(ping)
                            try task.delete(pong)
                            return s
                        }
                        guard statuses == [0, 0] else {
                            throw ValidationError(
                                "\(mechanism): the processes exited with \(statuses); their logs are in "
                                    + "\(node.processes.all.suffix(2).map(\.log))"
                                    + (flags.isEmpty
                                        ? ""
                                        : " (an untrusted task runs as a uid of its own: the program, its folders "
                                            + "and libdios must be readable and executable by others)"))
                        }
                        ns = try Self.readTicks(out, clock)
                    }
                    unlink(out)
                    samples[mechanism, default: [:]][size, default: []] += ns
                    roundP50s[mechanism, default: [:]][size, default: []].append(Self.median(ns))
                }
            }
        }
        let spawns = try await spawnTimes(node, program, programPath, cpus, clock)
        let floor = try await interleaved(cpus, [Lane(mechanism: .floor, payload: 8, sizeIndex: 0)], sizes: [8], clock)[
            0]
        try report(cpus, processCPUs, sizes, mechanisms, samples, roundP50s, floor, spawns)
    }

    /// `count` samples each of `run` to the task process's first call and of
    /// `posix_spawn` of the same binary to its `main`, taking turns, both
    /// started from threads on the first CPU. Nanoseconds.
    func spawnTimes(
        _ node: Node, _ program: Name, _ path: String, _ cpus: [Int], _ clock: TSC, count: Int = 200
    ) async throws -> (run: [UInt64], spawn: [UInt64]) {
        var run: [UInt64] = []
        var spawn: [UInt64] = []
        for _ in 0..<count {
            run.append(
                try await node.withTask(on: 0) { task in
                    let (_, stream) = try task.create(.stream(messageSize: 8, depth: 4))
                    let p = try task.lookup(program)[0]
                    let t0 = clinux_stamp_begin()
                    let child = try task.run(p, arguments: [stream], commandLine: ["first-call"])
                    let message = try await task.read(stream)
                    _ = try await task.exitStatus(of: child)
                    try task.delete(stream)
                    let first = message.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    return clock.nanoseconds(first &- t0)
                })
            let started = onPinnedThread(cpu: cpus[0]) { Self.posixSpawnToMain(path) }
            spawn.append(clock.nanoseconds(try started.get()))
        }
        return (run, spawn)
    }

    /// Ticks from just before `posix_spawn` of `dios-ipc stamp` to its `main`.
    static func posixSpawnToMain(_ path: String) -> Swift.Result<UInt64, ValidationError> {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return .failure(ValidationError("pipe: errno \(errno)")) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        defer { posix_spawn_file_actions_destroy(&actions) }
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup("stamp"), nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let t0 = clinux_stamp_begin()
        let r = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard r == 0 else { return .failure(ValidationError("posix_spawn \(path): errno \(r)")) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let text = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        guard let atMain = UInt64(text) else { return .failure(ValidationError("dios-ipc stamp printed \(text)")) }
        return .success(atMain &- t0)
    }

    /// The samples a process wrote (u64 ticks each), in nanoseconds.
    static func readTicks(_ path: String, _ clock: TSC) throws -> [UInt64] {
        guard let f = fopen(path, "rb") else { throw ValidationError("no samples at \(path)") }
        defer { fclose(f) }
        var ticks: [UInt64] = []
        var chunk = [UInt64](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 8, 4096, f) }
            if n == 0 { break }
            ticks += chunk[0..<n]
        }
        guard !ticks.isEmpty else { throw ValidationError("no samples at \(path)") }
        return ticks.map { clock.nanoseconds($0) }
    }

    static func values(_ h: Histogram<UInt64>) -> [UInt64] {
        // The in-process lane records into a histogram; its per-round median
        // and its samples merge like the processes' raw ones.
        var all: [UInt64] = []
        for bucket in h.recordedValues() {
            all += Array(repeating: bucket.value, count: Int(bucket.count))
        }
        return all
    }

    static func median(_ values: [UInt64]) -> UInt64 {
        let v = values.sorted()
        return v.isEmpty ? 0 : v[(v.count - 1) / 2]
    }

    func report(
        _ cpus: [Int], _ processCPUs: [Int], _ sizes: [Int], _ mechanisms: [String],
        _ samples: [String: [Int: [UInt64]]], _ roundP50s: [String: [Int: [UInt64]]], _ floor: Result,
        _ spawns: (run: [UInt64], spawn: [UInt64])
    ) throws(CommandFailure) {
        func histogram(_ values: [UInt64]) -> Histogram<UInt64> {
            var h = Self.newHistogram()
            for v in values { _ = h.record(v) }
            return h
        }
        let floorP50 = Double(floor.histogram.valueAtPercentile(50))
        var rows: [(String, Int, Histogram<UInt64>)] = [("floor", 8, floor.histogram)]
        for m in mechanisms {
            for s in sizes { rows.append((m, s, histogram(samples[m]?[s] ?? []))) }
        }
        let runH = histogram(spawns.run)
        let spawnH = histogram(spawns.spawn)
        let place = processCPUs[0] < 0 ? "on its instance's CPU" : "on CPU \(processCPUs[0]) and \(processCPUs[1])"
        if let plot {
            try LatencyPlot.draw(
                rows.map { ("\($0.0) \($0.1) B", $0.2) } + [("run-to-first-call", runH), ("posix-spawn", spawnH)],
                title: "Round trips between tasks and task processes", axis: "round trip, or spawn to first call",
                to: plot)
            if !json { print("plot: \(plot)") }
        }
        if json {
            for (m, s, h) in rows {
                print(
                    #"{"mechanism":"\#(m)","payload":\#(s),"samples":\#(h.totalCount),"min_ns":\#(h.min),"#
                        + #""p50_ns":\#(h.valueAtPercentile(50)),"p99_ns":\#(h.valueAtPercentile(99)),"#
                        + #""p999_ns":\#(h.valueAtPercentile(99.9)),"#
                        + #""vs_floor_p50":\#(format(Double(h.valueAtPercentile(50)) / floorP50))}"#)
            }
            for (m, h) in [("run-to-first-call", runH), ("posix-spawn", spawnH)] {
                print(
                    #"{"mechanism":"\#(m)","samples":\#(h.totalCount),"min_ns":\#(h.min),"#
                        + #""p50_ns":\#(h.valueAtPercentile(50)),"p99_ns":\#(h.valueAtPercentile(99))}"#)
            }
            return
        }
        print(
            "IPC round trip between programs as processes and as tasks, CPU \(cpus[0]) and CPU \(cpus[1]), "
                + "\(max(1, iterations / rounds) * rounds) samples each, in \(rounds) rounds taking turns (ns; DIOS "
                + "idle \(idleWord))")
        print(HostDescription.current())
        print(
            "where: instance 0 on CPU \(cpus[0]) runs the pinging task, instance 1 on CPU \(cpus[1]) the echo; a task "
                + "process runs \(place); uds-poll's two processes on CPU \(cpus[0]) and \(cpus[1])")
        print(
            pad("mechanism", 21) + pad("payload", 9, right: true) + pad("min", 9, right: true)
                + pad("p50", 9, right: true) + pad("p99", 9, right: true) + pad("p99.9", 9, right: true)
                + pad("p50/floor", 11, right: true))
        for (m, s, h) in rows {
            print(
                pad(m, 21) + pad("\(s)", 9, right: true) + pad("\(h.min)", 9, right: true)
                    + pad("\(h.valueAtPercentile(50))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99))", 9, right: true)
                    + pad("\(h.valueAtPercentile(99.9))", 9, right: true)
                    + pad(format(Double(h.valueAtPercentile(50)) / floorP50) + "x", 11, right: true))
        }
        func p50(_ m: String, _ s: Int) -> Double { Double(Self.median(samples[m]?[s] ?? [])) }
        func ratio(_ a: String, _ b: String, _ s: Int) -> String {
            "\(a)/\(b) \(format(p50(a, s) / max(p50(b, s), 1)))x"
                + Self.roundByRound(roundP50s[a]?[s] ?? [], over: roundP50s[b]?[s] ?? [])
        }
        for s in sizes {
            print(
                "\(s) B: " + ratio("dios-proc-trusted", "dios", s) + "; " + ratio("dios-proc-untrusted", "dios", s)
                    + "; " + ratio("dios-proc-untrusted", "uds-poll", s))
        }
        print(
            "spawn: run-to-first-call p50 \(runH.valueAtPercentile(50)) ns (p99 \(runH.valueAtPercentile(99))), "
                + "posix-spawn p50 \(spawnH.valueAtPercentile(50)) ns (p99 \(spawnH.valueAtPercentile(99))), "
                + "run-to-first-call/posix-spawn "
                + "\(format(Double(runH.valueAtPercentile(50)) / Double(max(spawnH.valueAtPercentile(50), 1))))x "
                + "over \(runH.totalCount) each")
    }
}
