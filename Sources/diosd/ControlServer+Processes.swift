import DIOS
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// The control socket's requests about programs and task processes:
// `program add PATH`, `program list`, `ps`, `logs TASK`, `kill TASK`; `run`
// has a thread of its own (ProgramRun).
extension ControlServer {
    /// The reply to a process request, or nil when `request` is not one.
    func processRequest(_ request: String) -> String? {
        let words = request.split(separator: " ", maxSplits: 2).map(String.init)
        switch (words.first, words.count) {
        case ("program", 3) where words[1] == "add":
            return addProgram(words[2])
        case ("program", 2) where words[1] == "list":
            return node.executables.map { Self.json(["name": "\($0.name)", "path": $0.path, "bytes": $0.size]) }
                .joined()
        case ("ps", 1):
            return node.processes.all.map(Self.describe).joined()
        case ("logs", 2), ("kill", 2):
            guard let name = try? Name.parse(words[1]), let entry = node.processes.entry(named: name) else {
                return Self.json(["error": "no task process \(words[1]) (see dios ps)"])
            }
            if words[0] == "logs" {
                guard let log = try? String(contentsOfFile: entry.log, encoding: .utf8) else {
                    return Self.json(["error": "cannot read \(entry.log)"])
                }
                return log
            }
            guard entry.state != .exited else { return Self.json(["error": "task \(words[1]) has exited"]) }
            // Not reaped until its server sees it end, so the pid is still its own.
            guard kill(entry.pid, SIGKILL) == 0 else {
                return Self.json(["error": "kill \(entry.pid): \(String(cString: strerror(errno)))"])
            }
            return Self.json(["killed": words[1], "pid": Int(entry.pid)])
        default:
            return nil
        }
    }

    /// Registers the executable at `path` with every instance.
    func addProgram(_ path: String) -> String {
        let executable: Executable
        do { executable = try Executable(path: path) } catch { return Self.json(["error": "\(error)"]) }
        let node = self.node
        Self.wait { await node.register(executable) }
        return Self.json(["name": "\(executable.name)", "path": executable.path, "bytes": executable.size])
    }

    static func describe(_ e: ProcessTable.Entry) -> String {
        var fields: [String: Any] = [
            "task": "\(e.taskName)", "instance": "\(e.instance)", "program": e.program, "pid": Int(e.pid),
            "trusted": e.trusted, "state": e.state.rawValue, "references": e.references, "calls": Int(e.calls),
            "log": e.log,
        ]
        if let status = e.status { fields["status"] = Int(status) }
        return json(fields)
    }

    /// One JSON object and a newline.
    static func json(_ fields: [String: Any]) -> String {
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
        else {
            return "{}\n"
        }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// `run {"program": PATH or NAME, "args": [...], "env": ["K=V", ...], "on": "N.C", "untrusted": false}`:
/// starts the program as a task process and streams its output back while it
/// runs, as frames: `O <n>\n` and n bytes of output, then `S <status>\n` (or
/// `E <message>\n` when it could not start).
enum ProgramRun {
    struct Request: Decodable {
        var program: String
        var args: [String]?
        var env: [String]?
        var on: String?
        var untrusted: Bool?
    }

    static func serve(_ text: String, node: Node, client: Int32) {
        defer { close(client) }
        guard let request = try? JSONDecoder().decode(Request.self, from: Data(text.utf8)) else {
            send(client, "E the run request is not {\"program\": ..., \"args\": [...], \"on\": \"N.C\"}\n")
            return
        }
        let program: Executable
        if let name = try? Name.parse(request.program) {
            guard let known = node.executables.first(where: { $0.name == name }) else {
                send(client, "E no program \(name) on this node (dios program list)\n")
                return
            }
            program = known
        } else {
            do { program = try Executable(path: request.program) } catch {
                send(client, "E \(error)\n")
                return
            }
        }
        let here = node.configuration.node
        var target = InstanceID(node: here, core: 0)
        if let on = request.on {
            let parts = on.split(separator: ".")
            guard parts.count == 2, let n = UInt16(parts[0]), let c = UInt16(parts[1]) else {
                send(client, "E --on takes an instance like 0.1\n")
                return
            }
            target = InstanceID(node: n, core: c)
        }
        let on = target
        let label = "dios-run-\(UInt64.random(in: 0...UInt64.max))"
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                await node.register(program)
                let status = try await node.withTask(on: 0, label: "dios run") { task in
                    let p = try task.lookup(program.name)[0]
                    let child = try task.run(
                        p, commandLine: request.args ?? [], environment: request.env ?? [],
                        flags: request.untrusted == true ? .untrusted : [], on: on, label: label)
                    _ = try await task.select([child])
                    let tx = try task.beginRead(child)
                    let status = try tx.load(as: Int64.self)
                    _ = task.endRead(tx)
                    return status
                }
                outcome.set(.status(status))
            } catch {
                outcome.set(.failed("\(error)"))
            }
            done.signal()
        }
        // Follow the task's log while it runs (a task on another node logs there).
        var offset: off_t = 0
        var log: Int32 = -1
        defer { if log >= 0 { close(log) } }
        var finished = false
        while true {
            finished = done.wait(timeout: .now() + .milliseconds(20)) == .success
            if log < 0, let entry = node.processes.entry(labelled: label) {
                log = open(entry.log, O_RDONLY | O_CLOEXEC)
            }
            if log >= 0 { offset = forward(log, from: offset, to: client) }
            if finished { break }
        }
        switch outcome.value {
        case .status(let s):
            send(client, "S \(s)\n")
        case .failed(let why): send(client, "E \(why)\n")
        case nil: send(client, "E the run ended without a status\n")
        }
    }

    /// Sends what the log holds past `offset`; returns the new offset.
    static func forward(_ log: Int32, from offset: off_t, to client: Int32) -> off_t {
        var offset = offset
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = pread(log, &buffer, buffer.count, offset)
            guard n > 0 else { return offset }
            send(client, "O \(n)\n")
            _ = buffer.withUnsafeBytes { Glibc.send(client, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
            offset += off_t(n)
        }
    }

    static func send(_ client: Int32, _ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer {
            Glibc.send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL))
        }
    }

    enum Result {
        case status(Int64)
        case failed(String)
    }

    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result? = nil
        func set(_ r: Result) { lock.withLock { result = r } }
        var value: Result? { lock.withLock { result } }
    }
}
