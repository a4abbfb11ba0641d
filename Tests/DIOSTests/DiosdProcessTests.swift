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
        #expect(lines.first?.contains(#""instance":"0.0","cpu":0"#) == true)
        #expect(lines.last?.contains(#""instance":"0.1","cpu":1"#) == true)

        process.terminate()  // SIGTERM
        process.waitUntilExit()
        text += String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("diosd: signal 15, stopping"))
        if let arenaFile { #expect(!FileManager.default.fileExists(atPath: arenaFile)) }
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}
