import ArgumentParser
import DIOS
import DIOSDevices
import CLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// diosd: the DIOS node kernel. One process per node.
@main
struct Diosd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diosd",
        abstract: "The DIOS node kernel: boots a node and serves tasks until SIGINT/SIGTERM.")

    @Option(name: .long, help: "Node number in the cluster.")
    var node: UInt16 = 0

    @Option(name: .customLong("arena-mib"), help: "Hugepage arena size in MiB.")
    var arenaMiB: Int = 64

    @Option(name: .long, help: "Idle policy: busy or adaptive.")
    var idle: String = "adaptive"

    @Option(name: .long, help: "CPU to pin the instance to.")
    var cpu: Int?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "notice"

    @Flag(name: .long, help: "Run the demo of trusted and untrusted tasks, print what happened, and exit.")
    var demo = false

    @Option(name: .long, help: "Messages the demo's worker sends.")
    var messages: Int = 100

    func validate() throws {
        guard ["busy", "adaptive"].contains(idle) else { throw ValidationError("--idle must be busy or adaptive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard arenaMiB > 0 else { throw ValidationError("--arena-mib must be positive") }
        guard messages > 0 else { throw ValidationError("--messages must be positive") }
    }

    func run() async throws {
        // Handlers first: a SIGTERM that arrives while booting still stops the node cleanly.
        let signals = clinux_termination_signal_fd()
        guard signals >= 0 else { throw ValidationError("cannot install SIGINT/SIGTERM handlers") }
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var configuration = NodeConfiguration()
        configuration.node = node
        configuration.arenaSize = arenaMiB << 20
        configuration.idlePolicy = idle == "busy" ? .busy : .adaptive
        configuration.cpu = cpu
        configuration.logger = Logger(label: "diosd")

        clinux_line_buffer_stdout()  // line by line, also into pipes: supervisors wait for "up"
        let say: @Sendable (String) -> Void = { print($0) }
        for probe in DeviceProbe.all() { say("diosd: \(probe)") }
        let node: Node
        do {
            node = try Node(configuration)
        } catch {
            throw ValidationError("cannot map the arena: \(error)")
        }
        say("diosd: node \(self.node) up, instance \(node.instance.id), arena \(arenaMiB) MiB on \(node.arena.backing), idle \(configuration.idlePolicy)")

        if demo {
            do {
                try await Demo.run(on: node, messages: messages, say: say)
            } catch {
                node.shutdown()
                say("diosd: demo failed: \(error)")
                throw ExitCode.failure
            }
            let counters = await node.counters()
            say("diosd: instance counters: calls=\(counters.calls) messages in=\(counters.messagesIn) out=\(counters.messagesOut) polls=\(counters.polls) tasks started=\(counters.tasksStarted) exited=\(counters.tasksExited)")
            node.shutdown()
            say("diosd: node stopped cleanly")
            return
        }

        // Serve until SIGINT or SIGTERM.
        let signal = await waitForTerminationSignal(signals)
        say("diosd: signal \(signal), stopping")
        node.shutdown()
        say("diosd: node stopped cleanly")
    }
}

/// Waits on a thread of its own for SIGINT or SIGTERM, whichever thread it lands
/// on: the handlers installed by `clinux_termination_signal_fd` write to `fd`.
func waitForTerminationSignal(_ fd: Int32) async -> Int32 {
    await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
        let box = Unmanaged.passRetained(SignalBox(continuation: continuation, fd: fd)).toOpaque()
        var thread = pthread_t()
        pthread_create(
            &thread, nil,
            { arg in
                let box = Unmanaged<SignalBox>.fromOpaque(arg!).takeRetainedValue()
                var byte: UInt8 = 0
                while read(box.fd, &byte, 1) != 1 {}
                box.continuation.resume(returning: Int32(byte))
                return nil
            }, box)
    }
}

final class SignalBox: Sendable {
    let continuation: CheckedContinuation<Int32, Never>
    let fd: Int32
    init(continuation: CheckedContinuation<Int32, Never>, fd: Int32) {
        self.continuation = continuation
        self.fd = fd
    }
}
