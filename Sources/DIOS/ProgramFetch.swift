import DIOSCore
import DIOSKernel
import DIOSProcess

#if canImport(Glibc)
import Glibc
#endif

/// Programs that travel: a node asked to run a program it lacks fetches the
/// executable over DIOS from the node that asked, checks that its bytes hash
/// to the program's name, keeps it (`ProcessOptions.programDirectory`) and
/// registers it, then runs it. A run carries only the program's name; the
/// name is the SHA-256 of the bytes, so what arrives is the program or is
/// refused.
///
/// The fetch is itself a run: the node that lacks the program runs the fetch
/// server (a closure program every node registers under `serverName`) on the
/// node that asked, with a stream whose write end goes there. The server
/// writes the file's size (8 bytes), its bytes in chunks, and an empty
/// message.
enum ProgramFetch {
    /// The fetch server's well-known name.
    static let serverName = Name.wellKnown("dios.program.fetch")
    /// Bytes per message: small enough for a frame on every transport.
    static let chunk = 1024
    /// How long the reader waits for the rest once the server has ended.
    static let grace: Duration = .seconds(5)

    /// The fetch server: streams the executable named by its command line.
    /// Exits 1 when this node has no such executable (or cannot read it).
    static func server(_ node: Node) -> Program {
        { [weak node] task in
            let out = try task.delegated()[0]
            guard let node, let wanted = task.invocation.commandLine.first.flatMap({ try? Name.parse($0) }),
                let executable = node.executables.first(where: { $0.name == wanted })
            else { throw CallError.invalidArgument("no such executable here") }
            guard let file = fopen(executable.path, "rb") else {
                throw CallError.invalidArgument("cannot read \(executable.path)")
            }
            defer { fclose(file) }
            _ = try await task.write(withUnsafeBytes(of: UInt64(executable.size).littleEndian) { Array($0) }, to: out)
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, chunk, file) }
                if n == 0 { break }
                _ = try await task.write(buffer[0..<n], to: out)
            }
            _ = try await task.write([], to: out)
        }
    }

    /// The fetcher an instance calls for a program it lacks (see
    /// `KernelInstance.fetchProgram`): nil once the program is registered on
    /// every instance of the node, or why it is not.
    static func fetcher(_ node: Node) -> @Sendable (Name, InstanceID, Int) async -> String? {
        { [weak node] name, peer, index in
            guard let node else { return "the node is stopping" }
            if node.executables.contains(where: { $0.name == name }) { return nil }  // fetched meanwhile
            let fetched: Swift.Result<Executable, FetchError>
            do {
                fetched = try await node.withTask(on: index, label: "fetch \(name)") { task in
                    await fetch(name, from: peer, into: node.configuration.processes.programDirectory, task)
                }
            } catch {
                return "\(error)"
            }
            switch fetched {
            case .success(let executable):
                await node.register(executable)
                return nil
            case .failure(let why):
                return why.description
            }
        }
    }

    struct FetchError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs the fetch server on `peer` and writes what it sends to a file in
    /// `directory`, then checks it: its size as announced, its hash the name.
    static func fetch(
        _ name: Name, from peer: InstanceID, into directory: String, _ task: TaskContext
    ) async -> Swift.Result<Executable, FetchError> {
        ProcessHost.makeDirectories(directory)
        let final = "\(directory)/\(name.description.replacing("/", with: "_"))"
        let partial = "\(final).\(getpid()).\(UInt64.random(in: 0...UInt64.max)).part"
        guard let file = fopen(partial, "wb") else {
            return .failure(FetchError(description: "cannot write \(partial): \(String(cString: strerror(errno)))"))
        }
        var closed = false
        defer {
            if !closed { fclose(file) }
            unlink(partial)
        }
        do throws(CallError) {
            let server = try task.lookup(serverName)[0]
            let (_, stream) = try task.create(.stream(messageSize: chunk, depth: 256))
            defer { try? task.delete(stream) }
            let sender = try task.run(
                server, arguments: [stream], commandLine: [name.description], flags: .writable, on: peer,
                label: "dios.program.fetch")
            var waitOn = [stream, sender]
            var expected: Int? = nil
            var received = 0
            reading: while true {
                let message: [UInt8]
                do throws(CallError) {
                    let tx = try task.beginRead(stream)
                    message = tx.withUnsafeBytes { Array($0) }
                    _ = task.endRead(tx)
                } catch .wouldBlock {
                    let ready = try await task.select(waitOn)
                    if ready == sender {
                        // Ended: refused at once, or sent all (which may still be on its way).
                        let status = try await task.exitStatus(of: sender)
                        guard status == 0 else {
                            return .failure(
                                FetchError(description: "\(peer) has no such executable (status \(status))"))
                        }
                        waitOn = [stream, try task.create(.timer(after: grace)).ref]
                    } else if ready != stream {
                        let status = try await task.exitStatus(of: sender)
                        return .failure(
                            FetchError(description: "\(peer) sent \(received) bytes and ended with status \(status)"))
                    }
                    continue reading
                }
                guard let size = expected else {
                    guard message.count == 8 else { return .failure(FetchError(description: "no size from \(peer)")) }
                    expected = Int(UInt64(littleEndian: message.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
                    continue
                }
                if message.isEmpty {
                    guard received == size else {
                        return .failure(FetchError(description: "\(peer) sent \(received) of \(size) bytes"))
                    }
                    break reading
                }
                received += message.count
                guard received <= size, fwrite(message, 1, message.count, file) == message.count else {
                    return .failure(FetchError(description: "the program is not the \(size) bytes \(peer) announced"))
                }
            }
            _ = try await task.exitStatus(of: sender)
        } catch {
            return .failure(FetchError(description: "fetching from \(peer): \(error)"))
        }
        closed = true
        guard fclose(file) == 0, chmod(partial, 0o755) == 0 else {
            return .failure(FetchError(description: "cannot keep \(partial): \(String(cString: strerror(errno)))"))
        }
        // Reading and hashing a file of many MB is no instance's work: on the
        // instance's thread it would hold the poll loop, and with it the
        // heartbeats that tell other nodes this one is alive.
        let hashed = await Task.detached { Result { () throws(ExecutableError) in try Executable(path: partial) } }
            .value
        let executable: Executable
        do { executable = try hashed.get() } catch {
            return .failure(FetchError(description: "\(error)"))
        }
        guard executable.name == name else {
            return .failure(FetchError(description: "what \(peer) sent hashes to \(executable.name), not \(name)"))
        }
        do { return .success(try executable.moved(to: final)) } catch {
            return .failure(FetchError(description: "\(error)"))
        }
    }
}
