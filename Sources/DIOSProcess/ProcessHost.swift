import CDIOSChannel
import CLinux
import DIOSCore
package import DIOSKernel

#if canImport(Glibc)
import Glibc
#endif

/// How a node hosts task processes.
public struct ProcessOptions: Sendable {
    /// Where each task's standard output and error go (one file per task).
    public var logDirectory: String
    /// The environment every task process gets (besides its channel's
    /// descriptors): by default a `PATH` and nothing of diosd's own.
    public var environment: [String]
    /// Where untrusted task processes get uids and gids of their own (when
    /// diosd runs as root): `base + instance × 4096 + task slot`.
    public var untrustedIDBase: Int32
    /// The node's record of its task processes.
    public var table: ProcessTable
    /// Where programs fetched from other nodes are kept, each in a file
    /// named by its name (the SHA-256 of its bytes).
    public var programDirectory: String

    public init(
        logDirectory: String = "/tmp/dios-tasks",
        environment: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        untrustedIDBase: Int32 = 0x30000,
        table: ProcessTable = ProcessTable(),
        programDirectory: String = "/tmp/dios-programs"
    ) {
        self.programDirectory = programDirectory
        self.logDirectory = logDirectory
        self.environment = environment
        self.untrustedIDBase = untrustedIDBase
        self.table = table
    }
}

/// Runs executables as task processes: the kernel's side of `run` of a
/// program object that is a file.
package enum ProcessHost {
    /// How many times a server looks for its process's next call before it
    /// suspends (each look a load and a pause: some microseconds in all), or,
    /// when the process shares the instance's CPU, a load and a yield of the
    /// CPU (the process cannot submit until it has it).
    static let serviceSpin = 512
    static let serviceYields = 32

    /// The task body for `executable`: it starts the process, serves its
    /// channel until the process ends, and returns its status.
    package static func entry(for executable: Executable, options: ProcessOptions) -> TaskEntry {
        { kernel, task in await serve(executable, options: options, kernel: kernel, task: task) }
    }

    /// `mkdir -p`: `path` and the folders above it (mode 0755), those there already kept.
    package static func makeDirectories(_ path: String) {
        var made = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            made += "/" + part
            mkdir(made, 0o755)
        }
    }

    /// The node's environment for task processes with the caller's entries
    /// added, a caller's entry replacing the node's of the same key.
    static func environment(_ base: [String], adding entries: [String]) -> [String] {
        func key(_ e: String) -> Substring { e.prefix { $0 != "=" } }
        let replaced = Set(entries.map(key))
        return base.filter { !replaced.contains(key($0)) } + entries
    }

    static func serve(_ executable: Executable, options: ProcessOptions, kernel: KernelInstance, task: TaskID) async
        -> Int32
    {
        let trusted = kernel.isTrusted(task)
        let channel: TaskChannel
        do { channel = try TaskChannel(trusted: trusted) } catch {
            kernel.logger.error(
                "task process not started", metadata: ["program": "\(executable.path)", "error": "\(error)"])
            return 127
        }
        let table = options.table
        table.hold(channels: 1)
        channel.released = { table.hold(channels: -1) }
        Self.makeDirectories(options.logDirectory)
        let logPath = "\(options.logDirectory)/task-\(kernel.id)-\(task.index).\(task.generation).log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else {
            kernel.logger.error("task process not started", metadata: ["log": "\(logPath)", "errno": "\(errno)"])
            return 127
        }
        if !trusted && getuid() != 0 {
            kernel.logger.warning(
                "an untrusted task process keeps diosd's uid (run diosd as root to give it its own)",
                metadata: ["program": "\(executable.path)", "exposed": "diosd's memory through /proc"])
        }
        let identity: (uid: Int32, gid: Int32)? =
            trusted || getuid() != 0
            ? nil
            : {
                let id = options.untrustedIDBase + Int32(kernel.index) * 4096 + Int32(task.index % 4096)
                return (id, id)
            }()
        // The CPU the instance is pinned to, if one: a process started from
        // its thread inherits it until it moves itself.
        var pinned: (Int32, Int32) = (-1, -1)
        let cpus = withUnsafeMutableBytes(of: &pinned) {
            clinux_affinity_cpus($0.baseAddress!.assumingMemoryBound(to: Int32.self), 2)
        }
        let instanceCPU = cpus == 1 ? pinned.0 : -1
        channel.setInstanceCPU(instanceCPU)
        let invocation = kernel.invocation(of: task)
        let process: TaskProcess
        do {
            process = try TaskProcess.spawn(
                path: executable.path, arguments: invocation.commandLine,
                environment: Self.environment(options.environment, adding: invocation.environment),
                channel: channel, log: log, untrusted: !trusted, identity: identity,
                arena: trusted ? kernel.arenaDescriptor : -1)
        } catch {
            close(log)
            kernel.logger.error(
                "task process not started", metadata: ["program": "\(executable.path)", "error": "\(error)"])
            return 127
        }
        close(log)
        table.hold(processes: 1)
        process.released = { table.hold(processes: -1) }
        let name = kernel.taskObjectName(task) ?? .random()
        options.table.add(
            .init(
                instance: kernel.id, task: task, taskName: name, program: executable.path,
                label: kernel.label(of: task), pid: process.pid,
                trusted: trusted, state: .running, status: nil, log: logPath, references: 0, calls: 0))
        process.watch(channel, kernel: kernel)
        channel.onPause = { paused in
            process.signal(paused ? SIGSTOP : SIGCONT)
            options.table.update(name) { $0.state = paused ? .paused : .running }
        }
        kernel.addChannel(channel, for: task, bell: channel.bellRead)

        var server = ChannelServer(kernel: kernel, task: task, channel: channel)
        func lookWhereItRuns() {
            channel.sharesCPU = instanceCPU >= 0 && cdios_process_may_run_on(process.pid, instanceCPU) == 1
        }
        lookWhereItRuns()
        serving: while true {
            if channel.processEnded { break }
            if kernel.isStopping(task) {
                process.signal(SIGKILL)
                break
            }
            do {
                try channel.flushHeld()
                while channel.held == nil, let entry = try channel.nextSubmission() {
                    let completion = await server.serve(entry)
                    try channel.complete(completion)
                    if kernel.isStopping(task) { continue serving }
                }
            } catch {
                kernel.logger.warning(
                    "task process ended for breaking its channel",
                    metadata: ["program": "\(executable.path)", "pid": "\(process.pid)", "error": "\(error)"])
                process.signal(SIGKILL)
                break
            }
            // A process calling synchronously submits its next call as soon as
            // it has this one's answer: look for it a little while before
            // suspending, unless the instance has other work. (Suspending and
            // being resumed by the loop costs a turn of it per call.)
            // Where it runs is looked at again after its first calls (a
            // program may move itself before them) and now and then.
            if server.served < 4 || server.served & 4095 == 0 { lookWhereItRuns() }
            if channel.sharesCPU {
                for _ in 0..<Self.serviceYields {
                    if channel.needsService { continue serving }
                    if kernel.hasOtherWork { break }
                    sched_yield()
                }
            } else {
                for _ in 0..<Self.serviceSpin {
                    if channel.needsService { continue serving }
                    if kernel.hasOtherWork { break }
                    clinux_cpu_relax()
                }
            }
            await kernel.waitForService(task)
        }
        // What it held goes: open transactions (and their holds) first, then
        // its channel; then the process itself, already ended or killed.
        server.abandonAll()
        kernel.unmapStreams(of: task)
        let references = kernel.referenceCount(of: task)
        while !channel.processEnded {
            await kernel.waitForService(task, ignoringStop: true)
            await Task.yield()  // it may still hold submissions: let the instance's other tasks run
        }
        kernel.removeChannel(for: task)
        let exit = process.waitForExit()
        if case .signalled = exit {
            kernel.endStreams(writtenBy: task, reason: "the task process writing it was \(exit)")
        }
        options.table.update(name) {
            $0.state = .exited
            $0.status = exit.status
            $0.references = references
            $0.calls = server.served
            $0.dataCalls = server.dataServed
        }
        return exit.status
    }
}
