import DIOS
import DIOSHost
import Foundation

/// The tests' task program, `Tests/Programs/dios-check.c`, built as a user
/// builds one: libdios from `libdios/build.sh`, then
/// `cc dios-check.c $(pkg-config --cflags --libs dios)`. Built once per run.
enum CheckProgram {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let directory = NSTemporaryDirectory() + "dios-process-tests-\(getpid())"

    /// The built program's path, or the build's output when it failed.
    static let built: Result<String, BuildFailure> = {
        let lib = directory + "/libdios"
        let program = directory + "/dios-check"
        let script = """
            set -e
            '\(root)/libdios/build.sh' '\(lib)' >/dev/null
            export PKG_CONFIG_PATH='\(lib)/lib/pkgconfig'
            cc -std=c11 -O2 -Wall -Wextra -Werror -o '\(program)' '\(root)/Tests/Programs/dios-check.c' \
                $(pkg-config --cflags --libs dios)
            cc -o '\(directory)/hello' '\(root)/examples/hello.c' $(pkg-config --cflags --libs dios)
            """
        let (status, output) = Host.run("/bin/sh", ["-c", script])
        return status == 0 ? .success(program) : .failure(BuildFailure(output: output))
    }()

    struct BuildFailure: Error, CustomStringConvertible {
        let output: String
        var description: String { "building dios-check failed:\n\(output)" }
    }

    static func executable() throws -> Executable { try Executable(path: try built.get()) }

    /// `examples/hello.c`, built as the README says.
    static func hello() throws -> String {
        _ = try built.get()
        return directory + "/hello"
    }

    /// A node of `instances` instances (adaptive idle: the test runner keeps a
    /// core), its task logs in a directory of its own.
    static func makeNode(instances: Int = 2, spins: Int? = nil, keepEnded: Int = 256) throws -> Node {
        var configuration = NodeConfiguration()
        configuration.cores = Array(0..<instances)
        configuration.pin = false
        configuration.arenaSize = 32 << 20
        configuration.idlePolicy = .adaptive
        if let spins { configuration.idlePolicy = .adaptive(spins: spins, yields: 10, maxSleep: .milliseconds(50)) }
        configuration.processes = ProcessOptions(
            logDirectory: directory + "/logs-\(UUID().uuidString)", table: ProcessTable(keepEnded: keepEnded))
        return try Node(configuration)
    }

    static func checksum(_ seq: UInt64) -> UInt64 { seq &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03 }
}

extension TaskContext {
    /// Reads up to `count` of `dios-check stream`'s numbered, checksummed
    /// messages, waiting on the stream or the writer's end; returns how many
    /// came in order before the first wrong one (or the end).
    ///
    /// Once the writer has ended, what it wrote may still be on its way (from
    /// another node): the wait is then on the stream alone, for at most
    /// `grace`. (Waiting on the ended writer would return at once, every
    /// time, and a task that never waits keeps its instance from polling the
    /// wire those messages arrive on.)
    func readChecked(
        _ stream: Ref, count: UInt64, from writer: Ref, grace: Duration = .seconds(10)
    ) async throws -> UInt64 {
        var next: UInt64 = 0
        var waitOn = [stream, writer]
        while next < count {
            do throws(CallError) {
                let tx = try beginRead(stream)
                let seq = tx.uncheckedLoad(fromByteOffset: 0, as: UInt64.self)
                let sum = tx.uncheckedLoad(fromByteOffset: 8, as: UInt64.self)
                _ = endRead(tx)
                guard seq == next, sum == CheckProgram.checksum(seq) else { return next }
                next += 1
            } catch .wouldBlock {
                let ready = try await select(waitOn)
                if ready == writer {
                    waitOn = [stream, try create(.timer(after: grace)).ref]
                } else if ready != stream {
                    return next  // the grace ran out
                }
            }
        }
        return next
    }

    /// Writes `count` messages as `dios-check stream` does (its `sink` checks
    /// them), waiting while the stream is full.
    func writeChecked(_ stream: Ref, count: UInt64) async throws {
        var seq: UInt64 = 0
        while seq < count {
            do throws(CallError) {
                let tx = try beginWrite(stream, size: 16)
                try tx.store(seq)
                try tx.store(CheckProgram.checksum(seq), toByteOffset: 8)
                guard endWrite(tx) else { throw CallError.objectDeleted }
                seq += 1
            } catch .wouldBlock {
                _ = try await select([stream], flags: .writable)
            }
        }
    }

    /// Waits for a task to end and returns its status.
    func status(of task: Ref) async throws -> Int64 {
        _ = try await select([task])
        let tx = try beginRead(task)
        let value = try tx.load(as: Int64.self)
        _ = endRead(tx)
        return value
    }
}

/// Every task process's log, oldest first.
func allLogs(_ node: Node) -> String {
    node.processes.all.map { (try? String(contentsOfFile: $0.log, encoding: .utf8)) ?? "" }.joined(separator: "\n")
}

/// The log of the newest task process the node ran.
func lastLog(_ node: Node) -> String {
    guard let path = node.processes.all.last?.log else { return "(no task process)" }
    return (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no log at \(path))"
}
