import DIOSConfig
import DIOSKernel
import Foundation
import Testing

/// The real `diosd` binary, started as a process the way a user starts it.
@Suite(.serialized) struct DiosdProcessTests {
    static var diosd: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("diosd")
    }

    @Test func demoExchangesDataAndExitsCleanly() throws {
        let process = Process()
        process.environment = ChildProcess.environment
        process.executableURL = Self.diosd
        process.arguments = ["--demo", "--messages", "50", "--cores", "0,1"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("init: received all 50 results in order, sum of squares = 40425"))
        #expect(text.contains("worker: lookup a name — refused: lookup is for trusted tasks only"))
        #expect(text.contains("worker: write the read-only blob — refused"))
        #expect(text.contains("worker: run a program — refused: run is for trusted tasks only"))
        #expect(text.contains("endRead = false (retry)"))
        #expect(text.contains("init: worker exited with status 0"))
        #expect(text.contains("init: 50 round trips to instance 1 and back, all in order"))
        #expect(text.contains("diosd: node stopped cleanly"))
    }

    static var dios: URL { diosd.deletingLastPathComponent().appendingPathComponent("dios") }

    /// A core this process may not run on (here one past the last CPU it may
    /// use) stops the node before anything starts, saying which cores it may
    /// use; with `pin: false` the same list is taken as it is.
    @Test func aCoreTheProcessMayNotUseIsRefused() throws {
        let allowed = OSThread.allowedCPUs()
        try #require(!allowed.isEmpty)
        let outside = allowed.max()! + 1
        func start(_ extra: [String]) throws -> (Int32, String) {
            let process = Process()
            process.environment = ChildProcess.environment
            process.executableURL = Self.diosd
            process.arguments = ["--demo", "--messages", "5", "--cores", "\(allowed.min()!),\(outside)"] + extra
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dios-cores-\(getpid()).log")
            #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
            defer { try? FileManager.default.removeItem(at: log) }
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            process.waitUntilExit()
            try handle.close()
            return (process.terminationStatus, try String(contentsOf: log, encoding: .utf8))
        }
        let (status, text) = try start([])
        #expect(status == 1, "\(text)")
        #expect(text.contains("core \(outside) is not among the CPUs this process may run on"), "\(text)")
        #expect(!text.contains("node 0 up"), "\(text)")
        #expect(!text.contains("Usage:"), "\(text)")  // not a command-line mistake
        // Unpinned, the same cores are only a count of instances.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dios-unpinned-\(getpid()).yaml")
        try "node: 0\npin: false\narena_mib: 16\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let (unpinned, unpinnedText) = try start(["--config", file.path])
        #expect(unpinned == 0, "\(unpinnedText)")
        #expect(unpinnedText.contains("diosd: node stopped cleanly"), "\(unpinnedText)")
    }

    /// A two-instance node answers `dios status`, then SIGTERM stops it: exit 0,
    /// no hugepage file and no control socket left behind.
    @Test func twoCoreNodeReportsStatusAndStopsCleanlyOnSigterm() throws {
        let socket = "/tmp/dios-test-\(getpid()).sock"
        let process = Process()
        process.environment = ChildProcess.environment
        process.executableURL = Self.diosd
        process.arguments = ["--cores", "0,1", "--control-socket", socket]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        // A watchdog, so a node that never comes up fails the test instead of hanging it.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        defer { watchdog.cancel() }
        // Read until the node reports it is up, and where its arena lives.
        var text = ""
        let handle = out.fileHandleForReading
        while !text.contains("control socket") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let arenaFile = text.split(separator: "\n").first { $0.contains("node 0 up") }
            .flatMap { line in line.range(of: "hugepages (").map { line[$0.upperBound...].prefix { $0 != ")" } } }
            .map(String.init)
        #expect(arenaFile != nil, "\(text)")
        if let arenaFile { #expect(FileManager.default.fileExists(atPath: arenaFile)) }
        #expect(text.contains("2 instance(s) on cores 0,1"))

        let status = Process()
        status.environment = ChildProcess.environment
        status.executableURL = Self.dios
        status.arguments = ["status", "--socket", socket, "--json"]
        let statusOut = Pipe()
        status.standardOutput = statusOut
        try status.run()
        let statusText = String(decoding: statusOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        status.waitUntilExit()
        #expect(status.terminationStatus == 0)
        let lines = statusText.split(separator: "\n")
        #expect(lines.count == 2, "\(statusText)")
        // One JSON object per instance, through a real encoder.
        let objects = lines.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == 2)
        #expect(objects.first?["instance"] as? String == "0.0" && objects.first?["cpu"] as? Int == 0)
        #expect(objects.last?["instance"] as? String == "0.1" && objects.last?["cpu"] as? Int == 1)
        #expect(objects.allSatisfy { $0["frames_forged"] as? Int == 0 && $0["frames_replayed"] as? Int == 0 })

        process.terminate()  // SIGTERM
        process.waitUntilExit()
        text += String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("diosd: signal 15, stopping"))
        if let arenaFile { #expect(!FileManager.default.fileExists(atPath: arenaFile)) }
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    /// A control socket file left by a node that was killed (nobody listens)
    /// is replaced; a client that connects and hangs up without a request
    /// leaves the node running (SIGPIPE once ended it without a word); and a
    /// socket a running node listens on is not taken: a second node given it
    /// stops at once with a clear error, and the first still answers.
    @Test func aStaleControlSocketIsReplacedAndALiveOneIsNotTaken() throws {
        let socket = "/tmp/dios-test-\(getpid())-shared.sock"
        defer { unlink(socket) }
        // A stale socket file: bound, then closed without unlinking.
        let stale = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = SocketFile.attach(stale, to: socket) { bind($0, $1, $2) }
        close(stale)
        try #require(bound == 0 && SocketFile.isSocket(socket) && !SocketFile.isListening(socket))

        // Each node's output goes to a file, read while it runs: no pipe to
        // keep open or to fill.
        func node(_ name: String) throws -> (Process, String) {
            let log = "/tmp/dios-test-\(getpid())-\(name).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            defer { try? output.close() }
            let process = Process()
            process.environment = ChildProcess.environment
            process.executableURL = Self.diosd
            process.arguments = ["--cores", "0", "--control-socket", socket]
            process.standardOutput = output
            process.standardError = output
            try process.run()
            return (process, log)
        }
        func text(_ log: String) -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let (first, firstLog) = try node("first")
        defer {
            if first.isRunning { kill(first.processIdentifier, SIGKILL) }
            unlink(firstLog)
        }
        let deadline = Date().addingTimeInterval(20)
        while !text(firstLog).contains("control socket") && first.isRunning && Date() < deadline { usleep(20_000) }
        #expect(text(firstLog).contains("diosd: control socket \(socket)"), "\(text(firstLog))")
        #expect(SocketFile.isListening(socket))  // connects and hangs up at once
        usleep(300_000)
        #expect(first.isRunning, "a client that hung up ended the node: \(text(firstLog))")
        let status = DPDKClusterHost.run(Self.dios.path, ["status", "--socket", socket])
        #expect(status.status == 0 && status.output.contains("\n0.0 "), "\(status.output)")

        let (second, secondLog) = try node("second")
        defer {
            if second.isRunning { kill(second.processIdentifier, SIGKILL) }
            unlink(secondLog)
        }
        let secondDeadline = Date().addingTimeInterval(20)
        while second.isRunning && Date() < secondDeadline { usleep(20_000) }
        try #require(!second.isRunning, "the second node took the socket and runs: \(text(secondLog))")
        second.waitUntilExit()
        #expect(second.terminationStatus != 0, "\(text(secondLog))")
        #expect(text(secondLog).contains("control socket \(socket) is in use"), "\(text(secondLog))")
        #expect(SocketFile.isListening(socket), "the second node took the first one's socket")

        first.terminate()
        first.waitUntilExit()
        #expect(first.terminationStatus == 0, "\(text(firstLog))")
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}
