import DIOSHost
import Foundation
import Testing

/// `dios run` and its companions against a real `diosd`, as a user runs them.
@Suite(.serialized) struct DiosRunTests {
    static var bin: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }

    /// A node of two instances with `dios-check` among its boot programs;
    /// returns it once its control socket is up.
    static func startNode(_ socket: String) throws -> (Process, FileHandle) {
        let logs = CheckProgram.directory + "/diosd-logs-\(UUID().uuidString)"
        let config = CheckProgram.directory + "/node-\(UUID().uuidString).yaml"
        try """
        node: 0
        cores: [0, 1]
        pin: false
        arena_mib: 32
        control_socket: \(socket)
        task_logs: \(logs)
        programs: [\(try CheckProgram.built.get())]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
        process.executableURL = bin.appendingPathComponent("diosd")
        process.arguments = ["--config", config]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var text = ""
        while !text.contains("control socket") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        #expect(text.contains("diosd: program "), "\(text)")
        return (process, out.fileHandleForReading)
    }

    static func dios(_ arguments: [String]) -> (status: Int32, output: String) {
        Host.run(bin.appendingPathComponent("dios").path, arguments)
    }

    @Test func diosRunRunsAUsersCProgramAnywhereOnTheNode() throws {
        let socket = "/tmp/dios-run-test-\(getpid()).sock"
        let (node, _) = try Self.startNode(socket)
        defer {
            if node.isRunning { node.terminate() }
            node.waitUntilExit()
        }
        let hello = try CheckProgram.hello()
        let onSibling = Self.dios(["run", hello, "--on", "0.1", "--socket", socket, "--", "world"])
        #expect(onSibling.status == 0, "\(onSibling.output)")
        #expect(onSibling.output.contains("hello, world: a trusted task process"))
        #expect(onSibling.output.contains("the blob on instance 0.1 keeps \"hello, world\""))
        let untrusted = Self.dios(["run", hello, "--untrusted", "--socket", socket])
        #expect(untrusted.status == 0, "\(untrusted.output)")
        #expect(untrusted.output.contains("an untrusted task process"))
        // The exit status is the program's; a registered program runs by its name.
        let list = Self.dios(["program", "list", "--socket", socket])
        let line = try #require(list.output.split(separator: "\n").first { $0.contains("dios-check") })
        let start = try #require(line.range(of: #""name":""#))
        let name = String(line[start.upperBound...].prefix { $0 != "\"" })
        let exit = Self.dios(["run", name, "--socket", socket, "--", "exit", "5"])
        #expect(exit.status == 5, "\(exit.output)")
        let ps = Self.dios(["ps", "--json", "--socket", socket])
        #expect(ps.output.split(separator: "\n").count == 3, "\(ps.output)")
        #expect(ps.output.contains(#""status":5"#))
        // The caller's environment, given and passed on by name.
        let env = Self.dios([
            "run", name, "--socket", socket, "--env", "GREETING=hi", "--pass-env", "HOME", "--", "env", "GREETING",
            "hi", "HOME", ProcessInfo.processInfo.environment["HOME"] ?? "",
        ])
        #expect(env.status == 0 && env.output.contains("the environment holds"), "\(env.output)")
        let reserved = Self.dios(["run", name, "--socket", socket, "--env", "DIOS_ARENA_FD=1"])
        #expect(reserved.status != 0 && reserved.output.contains("reserved for DIOS"), "\(reserved.output)")
        let missing = Self.dios(["run", "/nonexistent/program", "--socket", socket])
        #expect(missing.status != 0 && missing.output.contains("cannot read /nonexistent/program"))
    }

    @Test func aKilledDiosdTakesItsTaskProcessesWithIt() async throws {
        let socket = "/tmp/dios-run-kill-\(getpid()).sock"
        let (node, _) = try Self.startNode(socket)
        defer { node.waitUntilExit() }
        let runner = Process()
        runner.executableURL = Self.bin.appendingPathComponent("dios")
        runner.arguments = ["run", try CheckProgram.built.get(), "--socket", socket, "--", "sleep"]
        try runner.run()
        var pid: Int32? = nil
        for _ in 0..<500 where pid == nil {
            let ps = Self.dios(["ps", "--json", "--socket", socket]).output
            if let r = ps.range(of: #""pid":"#), ps.contains(#""state":"running""#) {
                pid = Int32(ps[r.upperBound...].prefix { $0.isNumber })
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let task = try #require(pid)
        #expect(Host.isRunning(task))
        kill(node.processIdentifier, SIGKILL)
        // Its parent thread gone, the kernel sends the task SIGKILL.
        for _ in 0..<500 where Host.isRunning(task) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!Host.isRunning(task))
        runner.waitUntilExit()
        #expect(runner.terminationStatus != 0)  // the node went before the task ended
        unlink(socket)
    }
}
