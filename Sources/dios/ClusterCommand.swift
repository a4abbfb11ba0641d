import ArgumentParser
import DIOSBench
import DIOSConfig
import DIOSHost
import DIOSMemory
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `dios cluster up|down|status FILE`: a local cluster, one `diosd` per node of
/// the cluster file, started in the background and stopped with everything it
/// made (its processes, control sockets, hugepage files, its state folder; for
/// DPDK nodes and nodes in network namespaces also the namespaces and their
/// veth pairs, the EALs' runtime directories and hugepage files, memif socket files).
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Start, inspect and stop a local cluster described by a cluster file.",
        subcommands: [Up.self, Down.self, ClusterStatus.self, Demo.self, Keygen.self])

    /// Where a cluster's pid and log files live.
    static func stateDirectory(_ file: ClusterFile) -> String { "/tmp/dios-cluster-\(file.name)" }

    static func load(_ path: String) throws -> ClusterFile {
        do { return try ClusterFile.load(path: path) } catch { throw ValidationError("\(path): \(error)") }
    }

    /// `diosd` next to this `dios` executable, unless given.
    static func diosdPath(_ given: String?) -> String {
        if let given { return given }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("diosd").path
    }

    /// Runs `ip` with `arguments`; its status and output.
    @discardableResult
    static func ip(_ arguments: [String]) -> (status: Int32, output: String) { Host.ip(arguments) }

    /// Creates the cluster's namespaces and veth pairs; on a failure removes
    /// what it made and throws.
    static func makeNetwork(_ cluster: ClusterFile, file: String) throws {
        guard !cluster.namespaces.isEmpty else { return }
        guard geteuid() == 0 else { throw CommandFailure("the cluster runs nodes in network namespaces: run as root") }
        guard Host.ipCommand != nil else { throw CommandFailure("no ip command: install iproute2") }
        let existing = Set(
            ip(["netns", "list"]).output.split(separator: "\n").compactMap {
                $0.split(separator: " ").first.map(String.init)
            })
        for ns in cluster.namespaces where existing.contains(ns) {
            throw CommandFailure("network namespace \(ns) exists already; dios cluster down \(file) first")
        }
        for command in cluster.networkSetup {
            let (status, output) = ip(command)
            guard status == 0 else {
                removeNetwork(cluster)
                throw CommandFailure("ip \(command.joined(separator: " ")) failed: \(output)")
            }
        }
    }

    /// Deletes the cluster's namespaces (and with them its veth pairs).
    static func removeNetwork(_ cluster: ClusterFile) {
        for command in cluster.networkTeardown { ip(command) }
    }

    /// Removes what stopped or killed DPDK nodes leave: EAL runtime
    /// directories, memif socket files, hugepage files named after their prefix.
    /// Only for the nodes in `only` when given, and then never a path that a
    /// node still running uses too (the memif socket file a server listens on).
    static func removeDPDKLeftovers(_ cluster: ClusterFile, only: Set<UInt16>? = nil) {
        let mount = hugetlbfsMount()
        let files = mount.flatMap { try? FileManager.default.contentsOfDirectory(atPath: $0) } ?? []
        let others = cluster.nodes.filter { node in only.map { !$0.contains(node.id) } ?? false }
        let inUse = Set(others.flatMap { cluster.leftovers(of: $0.id) })
        for node in cluster.nodes where node.dpdk != nil && (only?.contains(node.id) ?? true) {
            for path in cluster.leftovers(of: node.id) where !inUse.contains(path) {
                try? FileManager.default.removeItem(atPath: path)
            }
            let prefix = cluster.dpdkFilePrefix(node.id)
            for name in files where name.hasPrefix(prefix) {
                try? FileManager.default.removeItem(atPath: "\(mount!)/\(name)")
            }
        }
    }

    /// Where hugetlbfs is mounted (from /proc/mounts), if it is.
    static func hugetlbfsMount() -> String? {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2 && fields[2] == "hugetlbfs" { return String(fields[1]) }
        }
        return nil
    }

    static func pid(at path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// The process running node `id` of the cluster, from its pid file, if alive.
    static func running(_ cluster: ClusterFile, _ id: UInt16) -> Int32? {
        guard let pid = pid(at: "\(stateDirectory(cluster))/node\(id).pid"), Host.isRunning(pid) else { return nil }
        return pid
    }

    /// A cluster whose frames are protected needs its secret: made here when
    /// its key file is missing, refused (before anything starts) when the
    /// file is there but unfit.
    static func ensureKey(_ cluster: ClusterFile, path: String) throws {
        guard cluster.frames != .plain else { return }
        let key = cluster.keyPath(for: path)
        if access(key, F_OK) != 0 {
            do { try KeyFile.generate(key) } catch { throw CommandFailure("\(error)") }
            print("cluster \(cluster.name): made its key file \(key) (mode 0600)")
        }
        do { _ = try KeyFile.load(key) } catch { throw CommandFailure("\(error)") }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the cluster's secret: the key file its nodes authenticate frames with.",
            discussion: """
                Writes 32 random bytes, as hexadecimal, to the key file the cluster file names \
                (security.key_file; by default the cluster file's path with .key), mode 0600. \
                Every node must read the same key: copy the file to each machine. A cluster \
                running on the old key does not hear a node started on the new one.
                """)
        @Argument(help: "The cluster file, e.g. config/cluster.yaml.") var file: String
        @Flag(help: "Replace a key file that exists.") var force = false

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            let key = cluster.keyPath(for: URL(fileURLWithPath: file).standardizedFileURL.path)
            do { try KeyFile.generate(key, replacing: force) } catch { throw CommandFailure("\(error)") }
            print("cluster \(cluster.name): key file \(key) (mode 0600)")
        }
    }

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start every node of the cluster file in the background.",
            discussion: """
                With some nodes of the cluster running already (others stopped or killed), \
                starts only the others, in the network the first `up` made: a node that \
                failed comes back, and the running ones take it back.
                """)
        @Argument(help: "The cluster file, e.g. config/cluster.yaml.") var file: String
        @Option(help: "The diosd executable (default: next to dios).") var diosd: String?
        @Option(help: "Seconds to wait for each node to come up.") var timeout: Int = 30

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            let state = ClusterCommand.stateDirectory(cluster)
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let executable = ClusterCommand.diosdPath(diosd)
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw CommandFailure("no diosd at \(executable); build it (swift build) or pass --diosd")
            }
            // diosd reads the file again, from wherever ip netns exec starts it.
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            try ClusterCommand.ensureKey(cluster, path: path)
            let running = cluster.nodes.compactMap { node in
                ClusterCommand.running(cluster, node.id).map { (node.id, $0) }
            }
            let missing = cluster.nodes.filter { node in !running.contains { $0.0 == node.id } }
            guard !running.isEmpty else {
                try ClusterCommand.makeNetwork(cluster, file: file)
                do {
                    try start(missing, of: cluster, state: state, executable: executable, path: path)
                } catch {
                    // Leave nothing half up: what started is stopped, what was made is removed.
                    ClusterCommand.down(cluster, say: { _ in })
                    throw error
                }
                print(
                    "cluster \(cluster.name): \(cluster.nodes.count) node(s) up; stop with: dios cluster down \(file)")
                return
            }
            for (id, pid) in running { print("node \(id): already up (pid \(pid))") }
            guard !missing.isEmpty else {
                print("cluster \(cluster.name): every node already up; stop with: dios cluster down \(file)")
                return
            }
            // Back into the network the first `up` made, after what the
            // stopped nodes left (a killed node's arena and EAL files).
            let ids = Set(missing.map(\.id))
            HugepageArena.removeStaleFiles()
            ClusterCommand.removeDPDKLeftovers(cluster, only: ids)
            for node in missing { if let socket = node.controlSocket { unlink(socket) } }
            do {
                try start(missing, of: cluster, state: state, executable: executable, path: path)
            } catch {
                // The running nodes stay; the ones this started are stopped.
                for node in missing { ClusterCommand.stop(node, of: cluster, say: { _ in }) }
                throw error
            }
            print(
                "cluster \(cluster.name): \(missing.count) node(s) started again, \(running.count) already up; stop "
                    + "with: dios cluster down \(file)"
            )
        }

        private func start(
            _ nodes: [ClusterFile.NodeEntry], of cluster: ClusterFile, state: String, executable: String, path: String
        ) throws {
            // Where each node's log starts this time: a node started again
            // writes after what it wrote before (why it stopped).
            var starts: [UInt16: Int] = [:]
            for node in nodes {
                let pidFile = "\(state)/node\(node.id).pid"
                let log = "\(state)/node\(node.id).log"
                if !FileManager.default.fileExists(atPath: log) {
                    _ = FileManager.default.createFile(atPath: log, contents: nil)
                }
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                starts[node.id] = Int(try handle.seekToEnd())
                let command: (executable: String, arguments: [String])
                do { command = try cluster.launch(node: node.id, diosd: executable, path: path) } catch {
                    throw ValidationError("\(error)")
                }
                let process = Process()
                process.executableURL = URL(fileURLWithPath: command.executable)
                process.arguments = command.arguments
                process.standardOutput = handle
                process.standardError = handle
                try process.run()
                try "\(process.processIdentifier)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
            }
            for node in nodes {
                let log = "\(state)/node\(node.id).log"
                // This start's part of the log.
                func text() -> String {
                    let data = FileManager.default.contents(atPath: log) ?? Data()
                    return String(decoding: data.dropFirst(starts[node.id] ?? 0), as: UTF8.self)
                }
                var up = false
                for _ in 0..<(timeout * 20) {
                    if text().contains("diosd: node \(node.id) up") { up = true; break }
                    if let pid = ClusterCommand.pid(at: "\(state)/node\(node.id).pid"), !Host.isRunning(pid) { break }
                    usleep(50_000)
                }
                guard up else {
                    throw CommandFailure("node \(node.id) did not come up; its log (\(log)):\n\(text())")
                }
                let listen = node.cores.indices.map { "\(node.address(ofInstance: $0))" }.joined(separator: ", ")
                let device = node.dpdk.map { " (\($0.device))" } ?? ""
                let ns = node.netns.map { " in netns \($0)" } ?? ""
                print(
                    "node \(node.id): up\(ns), \(node.cores.count) instance(s) on \(node.transport)\(device) "
                        + "\(listen), log \(log)"
                )
            }
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every node and remove what the cluster made.")
        @Argument(help: "The cluster file.") var file: String

        func run() throws {
            ClusterCommand.down(try ClusterCommand.load(file), say: { print($0) })
        }
    }

    /// Stops every node (SIGTERM, SIGKILL after 5 s) and removes what the cluster made.
    static func down(_ cluster: ClusterFile, say: (String) -> Void) {
        let state = stateDirectory(cluster)
        for node in cluster.nodes { stop(node, of: cluster, say: say) }
        HugepageArena.removeStaleFiles()  // left by a node that was killed
        removeDPDKLeftovers(cluster)
        removeNetwork(cluster)
        try? FileManager.default.removeItem(atPath: state)
        say("cluster \(cluster.name): down")
    }

    /// Stops one node (SIGTERM, SIGKILL after 5 s) and removes its control socket.
    static func stop(_ node: ClusterFile.NodeEntry, of cluster: ClusterFile, say: (String) -> Void) {
        if let pid = running(cluster, node.id) {
            kill(pid, SIGTERM)
            var waited = 0
            while Host.isRunning(pid) && waited < 100 {
                usleep(50_000)
                waited += 1
            }
            if Host.isRunning(pid) {
                kill(pid, SIGKILL)
                say("node \(node.id): did not stop within 5 s, killed")
            } else {
                say("node \(node.id): stopped")
            }
        }
        if let socket = node.controlSocket { unlink(socket) }
    }

    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream numbered messages from the first node to a task on every other node, checked there.")
        @Argument(help: "The cluster file.") var file: String
        @Option(help: "Messages per stream.") var messages: Int = 100_000
        @Option(
            help: ArgumentHelp(
                "Stream the other way, from this executable run as a task process on every other node (as `PROGRAM "
                    + "stream COUNT`, writing numbered, checksummed 16-byte messages, as the tests' dios-check does); "
                    + "those nodes fetch it from the first."))
        var program: String?

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            guard let first = cluster.nodes.first, let socket = first.controlSocket else {
                throw ValidationError("the first node needs a control_socket")
            }
            let from = try program.map { path -> String in
                guard let resolved = realpath(path, nil) else { throw ValidationError("cannot read \(path)") }
                defer { free(resolved) }
                return " " + String(cString: resolved)
            }
            var failed = false
            for node in cluster.nodes.dropFirst() {
                let reply = try ControlClient.request("stream \(node.id).0 \(messages)\(from ?? "")", socket: socket)
                print(reply, terminator: "")
                if !reply.contains("in order") { failed = true }
            }
            if failed { throw ExitCode.failure }
        }
    }

    struct ClusterStatus: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Each node's status, through its control socket.")
        @Argument(help: "The cluster file.") var file: String

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            for node in cluster.nodes {
                guard let socket = node.controlSocket else {
                    print("node \(node.id): no control_socket in the cluster file")
                    continue
                }
                do {
                    let reply = try ControlClient.request("status", socket: socket)
                    for line in reply.split(separator: "\n") {
                        let f = ControlClient.fields(of: String(line))
                        print(
                            "node \(node.id) instance \(f["instance"] ?? "?"): tasks \(f["tasks"] ?? "?"), msgs in "
                                + "\(f["messages_in"] ?? "?") out \(f["messages_out"] ?? "?"), peers \(peers(f))"
                        )
                    }
                } catch {
                    print("node \(node.id): not answering (\(error))")
                }
            }
        }
    }
}
