import DIOS
import DIOSConfig
import DIOSExamples
import DIOSHost
import DIOSWire
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The node's local control socket (a Unix stream socket): `dios status`
/// connects, sends `status`, and reads one JSON object per instance. It never
/// runs on an instance's thread.
///
/// No client can hold it up: each connection is served on a thread of its
/// own, at most `maxInFlight` at once (the next one is told the node is busy);
/// a request longer than `maxRequest` is refused, and a client that has not
/// sent its whole request within `requestDeadline` is cut off. So `status`
/// answers while slow requests (a `stream` to a node that is down waits up to
/// 30 s) are pending. Only the socket's owner (and its group, with mode 0660)
/// may connect: a connection can run programs.
final class ControlServer: @unchecked Sendable {
    let path: String
    let node: Node
    private var server: BoundedServer!

    static let maxInFlight = 256
    static let maxRequest = 1 << 16
    static let requestDeadline: Duration = .seconds(2)

    /// Binds and listens at `path`, replacing a socket file nobody listens on
    /// (left by a node that was killed). Refused (`.inUse`) when a process
    /// listens there: another node has this control socket.
    init(path: String, node: Node, mode: UInt16 = 0o600) throws(ControlError) {
        self.path = path
        self.node = node
        guard SocketFile.fits(path) else { throw .pathTooLong(path) }
        guard !SocketFile.isListening(path) else { throw .inUse(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        SocketFile.removeIfStale(path)
        // Bound under a umask that lets nobody else in, then given its mode,
        // then checked: a socket others could reach for even a moment, or
        // whose mode did not take, is not served.
        let old = umask(0o077)
        let bound = SocketFile.attach(fd, to: path) { bind($0, $1, $2) }
        umask(old)
        guard bound == 0, chmod(path, mode_t(mode)) == 0, listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw .system("bind/listen \(path)", e)
        }
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o777 == mode_t(mode), st.st_uid == geteuid() else {
            close(fd)
            unlink(path)
            throw .unsafe(path, mode: UInt16(st.st_mode & 0o777))
        }
        server = BoundedServer(
            listening: fd, maxInFlight: Self.maxInFlight,
            busy: {
                Self.reply(Self.json(["error": "busy: \(Self.maxInFlight) requests in flight; try again"]), to: $0)
            },
            handle: { [unowned self] in self.handle($0) })
    }

    /// Serves requests until `stop()`.
    func start() {
        do throws(OSThread.StartError) { try server.start() } catch {
            fatalError("the control socket's thread did not start: \(error)")
        }
    }

    /// Stops accepting, waits for the thread, and removes the socket file.
    func stop() {
        server.stop()
        unlink(path)
    }

    /// Sends `text` and closes the connection. MSG_NOSIGNAL: a client gone
    /// before its reply gets none; the node stays.
    static func reply(_ text: String, to client: Int32) {
        _ = text.utf8CString.withUnsafeBufferPointer { send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
        close(client)
    }

    /// Reads one request from `client`, answers it and closes the connection.
    private func handle(_ client: Int32) {
        let request: String
        switch Self.readRequest(client) {
        case .request(let text): request = text
        case .tooLong:
            return Self.reply(
                Self.json(["error": "a request is one line of at most \(Self.maxRequest) bytes"]), to: client)
        case .late:
            return Self.reply(Self.json(["error": "no whole request within \(Self.requestDeadline)"]), to: client)
        }
        if request.hasPrefix("run ") {
            // Answers (its output, while the task runs) and closes the connection itself.
            return ProgramRun.serve(String(request.dropFirst("run ".count)), node: node, client: client)
        }
        let reply: String
        if let processReply = processRequest(request) {
            reply = processReply
        } else if let traceReply = traceRequest(request) {
            reply = traceReply
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
                    + "program list, run {...}, trace start|stop|dump, stream INSTANCE COUNT [PROGRAM], or blob INSTANCE"
            ])
        }
        Self.reply(reply, to: client)
    }

    enum Request: Equatable {
        case request(String)
        /// No newline within `maxRequest` bytes.
        case tooLong
        /// Not all of it within `requestDeadline` (or the client left first).
        case late
    }

    /// One request: a line of at most `maxRequest` bytes (a run's arguments
    /// can be long), all of it within `requestDeadline` however slowly it comes.
    static func readRequest(_ client: Int32) -> Request {
        let newline = UInt8(ascii: "\n")
        let read = BoundedServer.read(client, limit: maxRequest + 1, deadline: requestDeadline) { bytes, from in
            bytes[from...].firstIndex(of: newline).map { $0 + 1 }
        }
        switch read {
        case .complete(let line): return .request(Self.text(line.dropLast()))
        // The client closed: a last line without a newline is still a request.
        case .closed(let bytes): return bytes.isEmpty ? .late : .request(Self.text(bytes))
        case .tooLong: return .tooLong
        case .late: return .late
        }
    }

    private static func text(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `stream 1.0 100000`: streams that many numbered messages to a checking
    /// task on that instance of another node (see RemoteDemo) and replies with
    /// the outcome (other requests are served meanwhile).
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
    case unsafe(String, mode: UInt16)

    var description: String {
        switch self {
        case .pathTooLong(let p): "control socket path too long: \(p)"
        case .inUse(let p):
            "control socket \(p) is in use: another node listens there (give this one its own control_socket)"
        case .system(let what, let e): "\(what): \(String(cString: strerror(e)))"
        case .unsafe(let p, let mode):
            "control socket \(p) has mode \(String(mode, radix: 8)) or another owner after it was made: not served"
        }
    }
}
