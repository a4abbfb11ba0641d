import DIOS
import DIOSConfig
import DIOSExamples
import DIOSWire
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The node's local control socket (a Unix stream socket): `dios status`
/// connects, sends `status`, and reads one JSON object per instance. It runs on
/// a thread of its own, never on an instance's.
final class ControlServer: @unchecked Sendable {
    let path: String
    let node: Node
    private let fd: Int32
    private var thread = pthread_t()

    /// Binds and listens at `path`, replacing a socket file nobody listens on
    /// (left by a node that was killed). Refused (`.inUse`) when a process
    /// listens there: another node has this control socket.
    init(path: String, node: Node) throws(ControlError) {
        self.path = path
        self.node = node
        guard SocketFile.fits(path) else { throw .pathTooLong(path) }
        guard !SocketFile.isListening(path) else { throw .inUse(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        SocketFile.removeIfStale(path)
        let bound = SocketFile.attach(fd, to: path) { bind($0, $1, $2) }
        guard bound == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw .system("bind/listen \(path)", e)
        }
        self.fd = fd
    }

    /// Serves requests until `stop()`.
    func start() {
        do throws(OSThread.StartError) { thread = try OSThread.start { self.serve() } } catch {
            fatalError("the control socket's thread did not start: \(error)")
        }
    }

    /// Stops accepting, waits for the thread, and removes the socket file.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        pthread_join(thread, nil)
        unlink(path)
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // closed by stop()
            }
            let request = Self.readRequest(client)
            if request.hasPrefix("run ") {
                // A run lasts as long as its task: it gets a thread of its own,
                // which answers and closes the connection.
                let node = self.node
                let text = String(request.dropFirst("run ".count))
                do throws(OSThread.StartError) {
                    pthread_detach(try OSThread.start { ProgramRun.serve(text, node: node, client: client) })
                } catch {
                    close(client)
                }
                continue
            }
            let reply: String
            if let processReply = processRequest(request) {
                reply = processReply
            } else if request == "status" {
                reply = statusLines()
            } else if request == "names" {
                reply = names()
            } else if request.hasPrefix("lookup ") {
                reply = lookup(String(request.dropFirst("lookup ".count)))
            } else if request.hasPrefix("stream ") {
                reply = stream(request)
            } else if request.hasPrefix("blob ") {
                reply = blob(request)
            } else {
                reply = Self.json([
                    "error":
                        "unknown request; try status, names, lookup NAME, ps, logs TASK, kill TASK, program add PATH, "
                        + "program list, run {...}, stream INSTANCE COUNT [PROGRAM], or blob INSTANCE"
                ])
            }
            // MSG_NOSIGNAL: a client gone before its reply gets none; the node stays.
            _ = reply.utf8CString.withUnsafeBufferPointer {
                send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL))
            }
            close(client)
        }
    }

    /// One request: a line of at most 64 KiB (a run's arguments can be long).
    private static func readRequest(_ client: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 16 {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
            if buffer[0..<n].contains(UInt8(ascii: "\n")) { break }
        }
        if let end = bytes.firstIndex(of: UInt8(ascii: "\n")) { bytes.removeSubrange(end...) }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `stream 1.0 100000`: streams that many numbered messages to a checking
    /// task on that instance of another node (see RemoteDemo) and replies with
    /// the outcome. Other requests wait until it is done.
    ///
    /// `stream 1.0 100000 PATH`: the messages come the other way, from the
    /// executable at PATH (run as `PATH stream COUNT`, as `dios-check` and
    /// `dios-swift-check` are) as a task process there; that node fetches
    /// the program from this one.
    private func stream(_ request: String) -> String {
        let words = request.split(separator: " ", maxSplits: 3)
        guard words.count >= 3, let peer = Diosd.instanceID(words[1]), let count = Int(words[2]), count > 0 else {
            return Self.json(["error": "usage: stream INSTANCE COUNT [PROGRAM], e.g. stream 1.0 100000"])
        }
        if words.count == 4 {
            let executable: Executable
            do { executable = try Executable(path: String(words[3])) } catch {
                return "diosd: stream from a task process on \(peer): FAILED, \(error)\n"
            }
            return remoteDemo("stream from a task process on", peer) { node, say in
                _ = try await RemoteDemo.stream(on: node, from: executable, on: peer, count: count, say: say)
            }
        }
        return remoteDemo("stream to", peer) { node, say in
            _ = try await RemoteDemo.stream(on: node, to: peer, count: count, say: say)
        }
    }

    /// `blob 1.0`: creates a blob here and has a task on that instance of another
    /// node read and write it, checking the consistency rules on both sides (see
    /// `RemoteDemo.blob`); replies `diosd: blob on 1.0: consistency rules held
    /// (...)`, or `diosd: blob on 1.0: FAILED, ` and the first rule seen broken.
    /// Other requests wait until it is done.
    private func blob(_ request: String) -> String {
        let words = request.split(separator: " ")
        guard words.count == 2, let peer = Diosd.instanceID(words[1]) else {
            return Self.json(["error": "usage: blob INSTANCE, e.g. blob 1.0"])
        }
        return remoteDemo("blob on", peer) { node, say in
            _ = try await RemoteDemo.blob(on: node, with: peer, say: say)
        }
    }

    /// Runs `body` (a demo with a task on `peer`) once `peer` is reachable,
    /// and returns the lines it said, or `diosd: WHAT PEER: FAILED, ...`.
    /// The control thread waits for it.
    private func remoteDemo(
        _ what: String, _ peer: InstanceID,
        _ body: @escaping @Sendable (Node, @escaping @Sendable (String) -> Void) async throws -> Void
    ) -> String {
        let node = self.node
        let done = DispatchSemaphore(value: 0)
        let lines = LinesBox()
        Task {
            let say: @Sendable (String) -> Void = { line in lines.append(line) }
            do {
                if try await RemoteDemo.waitForPeers(node, [peer], seconds: 10) {
                    try await body(node, say)
                } else {
                    say("diosd: \(what) \(peer): FAILED, it is not reachable")
                }
            } catch {
                say("diosd: \(what) \(peer): FAILED: \(error)")
            }
            done.signal()
        }
        done.wait()
        return lines.text
    }

    /// `names`: one JSON object per name the first instance knows, with its holders.
    private func names() -> String {
        let node = self.node
        let done = DispatchSemaphore(value: 0)
        let lines = LinesBox()
        Task {
            for entry in await node.names(on: 0) {
                lines.append(
                    String(Self.json(["name": "\(entry.name)", "instances": entry.owners.map { "\($0)" }]).dropLast()))
            }
            done.signal()
        }
        done.wait()
        return lines.text
    }

    /// `lookup NAME`: what `lookup` returns on each instance of this node.
    private func lookup(_ text: String) -> String {
        guard let name = try? Name.parse(text.trimmingCharacters(in: .whitespaces)) else {
            return Self.json(["error": "not a name: \(text)"])
        }
        let node = self.node
        let done = DispatchSemaphore(value: 0)
        let lines = LinesBox()
        Task {
            for i in node.instances.indices {
                let found: [[String: String]] =
                    (try? await node.withTask(on: i, label: "control lookup") { task in
                        var out: [[String: String]] = []
                        do throws(CallError) {
                            for ref in try task.lookup(name) {
                                let e = try task.describe(ref)
                                out.append(["owner": "\(e.owner)", "kind": "\(e.kind)", "proximity": "\(e.proximity)"])
                            }
                        } catch {}
                        return out
                    }) ?? []
                lines.append(String(Self.json(["instance": "\(node.instances[i].id)", "found": found]).dropLast()))
            }
            done.signal()
        }
        done.wait()
        return lines.text
    }

    final class LinesBox: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var text: String { lock.withLock { lines.map { $0 + "\n" }.joined() } }
    }

    /// One JSON object per instance, read on each instance's own thread.
    private func statusLines() -> String {
        let node = self.node
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox()
        Task {
            result.counters = await node.counters()
            result.peers = await node.peers()
            result.frames = await node.frameCounters()
            done.signal()
        }
        done.wait()
        var out = ""
        for (i, c) in result.counters.enumerated() {
            let idle = c.polls == 0 ? 0 : Double(c.idlePolls) / Double(c.polls)
            let cpu = node.configuration.cores.isEmpty ? -1 : node.configuration.cores[i]
            let peers = result.peers[i]
            let up = peers.filter(\.reachable).map { "\($0.peer)" }.joined(separator: " ")
            let down = peers.filter { !$0.reachable }.map { "\($0.peer)" }.joined(separator: " ")
            let resent = peers.reduce(0) { $0 + $1.retransmits }
            let f = result.frames[i]
            let fields: [String: Any] = [
                "instance": "\(node.instances[i].id)", "cpu": cpu, "tasks": c.tasksStarted - c.tasksExited,
                "peers_up": up, "peers_down": down, "frames_resent": resent,
                "frames_forged": f.forged, "frames_replayed": f.replayed,
                "frames_from_strangers": f.unknownPeer + f.misaddressed, "frames_malformed": f.malformed,
                "tasks_started": c.tasksStarted, "messages_in": c.messagesIn, "messages_out": c.messagesOut,
                "read_in_place": c.readInPlace, "names_relayed": c.namesRelayed, "calls": c.calls, "polls": c.polls,
                "idle_share": (idle * 1000).rounded() / 1000,
            ]
            out += Self.json(fields)
        }
        return out
    }

    final class ResultBox: @unchecked Sendable {
        var counters: [InstanceCounters] = []
        var peers: [[PeerStatus]] = []
        var frames: [EndpointCounters] = []
    }
}

/// Why the control socket could not be opened.
enum ControlError: Error, CustomStringConvertible {
    case pathTooLong(String)
    case inUse(String)
    case system(String, Int32)

    var description: String {
        switch self {
        case .pathTooLong(let p): "control socket path too long: \(p)"
        case .inUse(let p):
            "control socket \(p) is in use: another node listens there (give this one its own control_socket)"
        case .system(let what, let e): "\(what): \(String(cString: strerror(e)))"
        }
    }
}
