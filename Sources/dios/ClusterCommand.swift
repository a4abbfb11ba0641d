import ArgumentParser
import DIOSConfig
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
        subcommands: [Up.self, Down.self, ClusterStatus.self, Demo.self])

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

    static func alive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    /// Runs `ip` with `arguments`; its status and output.
    @discardableResult
    static func ip(_ arguments: [String]) -> (status: Int32, output: String) { ClusterFile.ip(arguments) }

    /// Creates the cluster's namespaces and veth pairs; on a failure removes
    /// what it made and throws.
    static func makeNetwork(_ cluster: ClusterFile, file: String) throws {
        guard !cluster.namespaces.isEmpty else { return }
        guard geteuid() == 0 else { throw ValidationError("the cluster runs nodes in network namespaces: run as root") }
        guard ClusterFile.ipCommand != nil else { throw ValidationError("no ip command: install iproute2") }
        let existing = Set(ip(["netns", "list"]).output.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
        for ns in cluster.namespaces where existing.contains(ns) {
            throw ValidationError("network namespace \(ns) exists already; dios cluster down \(file) first")
        }
        for command in cluster.networkSetup {
            let (status, output) = ip(command)
            guard status == 0 else {
                removeNetwork(cluster)
                throw ValidationError("ip \(command.joined(separator: " ")) failed: \(output)")
            }
        }
    }

    /// Deletes the cluster's namespaces (and with them its veth pairs).
    static func removeNetwork(_ cluster: ClusterFile) {
        for command in cluster.networkTeardown { ip(command) }
    }

    /// Removes what stopped or killed DPDK nodes leave: EAL runtime
    /// directories, memif socket files, hugepage files named after their prefix.
    static func removeDPDKLeftovers(_ cluster: ClusterFile) {
        let mount = hugetlbfsMount()
        let files = mount.flatMap { try? FileManager.default.contentsOfDirectory(atPath: $0) } ?? []
        for node in cluster.nodes where node.dpdk != nil {
            for path in cluster.leftovers(of: node.id) { try? FileManager.default.removeItem(atPath: path) }
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
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start every node of the cluster file in the background.")
        @Argument(help: "The cluster file, e.g. config/cluster.yaml.") var file: String
        @Option(help: "The diosd executable (default: next to dios).") var diosd: String?
        @Option(help: "Seconds to wait for each node to come up.") var timeout: Int = 30

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            let state = ClusterCommand.stateDirectory(cluster)
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let executable = ClusterCommand.diosdPath(diosd)
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw ValidationError("no diosd at \(executable); build it (swift build) or pass --diosd")
            }
            for node in cluster.nodes {
                if let pid = ClusterCommand.pid(at: "\(state)/node\(node.id).pid"), ClusterCommand.alive(pid) {
                    throw ValidationError("node \(node.id) already runs (pid \(pid)); dios cluster down \(file) first")
                }
            }
            // diosd reads the file again, from wherever ip netns exec starts it.
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            try ClusterCommand.makeNetwork(cluster, file: file)
            do {
                try start(cluster, state: state, executable: executable, path: path)
            } catch {
                // Leave nothing half up: what started is stopped, what was made is removed.
                ClusterCommand.down(cluster, say: { _ in })
                throw error
            }
            print("cluster \(cluster.name): \(cluster.nodes.count) node(s) up; stop with: dios cluster down \(file)")
        }

        private func start(_ cluster: ClusterFile, state: String, executable: String, path: String) throws {
            for node in cluster.nodes {
                let pidFile = "\(state)/node\(node.id).pid"
                let log = "\(state)/node\(node.id).log"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
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
            for node in cluster.nodes {
                let log = "\(state)/node\(node.id).log"
                var up = false
                for _ in 0..<(timeout * 20) {
                    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    if text.contains("diosd: node \(node.id) up") { up = true; break }
                    if let pid = ClusterCommand.pid(at: "\(state)/node\(node.id).pid"), !ClusterCommand.alive(pid) { break }
                    usleep(50_000)
                }
                guard up else {
                    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    throw ValidationError("node \(node.id) did not come up; its log (\(log)):\n\(text)")
                }
                let listen = node.cores.indices.map { "\(node.address(ofInstance: $0))" }.joined(separator: ", ")
                let device = node.dpdk.map { " (\($0.device))" } ?? ""
                let ns = node.netns.map { " in netns \($0)" } ?? ""
                print("node \(node.id): up\(ns), \(node.cores.count) instance(s) on \(node.transport)\(device) \(listen), log \(log)")
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
        for node in cluster.nodes {
            if let pid = pid(at: "\(state)/node\(node.id).pid"), alive(pid) {
                kill(pid, SIGTERM)
                var waited = 0
                while alive(pid) && waited < 100 {
                    usleep(50_000)
                    waited += 1
                }
                if alive(pid) {
                    kill(pid, SIGKILL)
                    say("node \(node.id): did not stop within 5 s, killed")
                } else {
                    say("node \(node.id): stopped")
                }
            }
            if let socket = node.controlSocket { unlink(socket) }
        }
        HugepageArena.removeStaleFiles()  // left by a node that was killed
        removeDPDKLeftovers(cluster)
        removeNetwork(cluster)
        try? FileManager.default.removeItem(atPath: state)
        say("cluster \(cluster.name): down")
    }

    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream numbered messages from the first node to a task on every other node, checked there.")
        @Argument(help: "The cluster file.") var file: String
        @Option(help: "Messages per stream.") var messages: Int = 100_000

        func run() throws {
            let cluster = try ClusterCommand.load(file)
            guard let first = cluster.nodes.first, let socket = first.controlSocket else {
                throw ValidationError("the first node needs a control_socket")
            }
            var failed = false
            for node in cluster.nodes.dropFirst() {
                let reply = try ControlClient.request("stream \(node.id).0 \(messages)", socket: socket)
                print(reply, terminator: "")
                if !reply.contains("in order") { failed = true }
            }
            if failed { throw ExitCode.failure }
        }
    }

    struct ClusterStatus: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Each node's status, through its control socket.")
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
                        print("node \(node.id) instance \(f["instance"] ?? "?"): tasks \(f["tasks"] ?? "?"), msgs in \(f["messages_in"] ?? "?") out \(f["messages_out"] ?? "?"), peers \(peers(f))")
                    }
                } catch {
                    print("node \(node.id): not answering (\(error))")
                }
            }
        }
    }
}
