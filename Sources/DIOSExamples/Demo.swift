public import DIOS

/// The demo the README's first command runs: a trusted task and an untrusted
/// worker exchange data through a blob and a stream, and the kernel refuses
/// what the worker has no right to do. Every line it prints comes from a call's
/// real result.
public enum Demo {
    static let workerName = Name.wellKnown("dios.demo.worker")
    static let echoName = Name.wellKnown("dios.demo.echo")

    public static func run(on node: Node, messages: Int, say: @escaping @Sendable (String) -> Void) async throws {
        await node.register(workerName, label: "worker", program: worker(say: say))
        await node.register(echoName, label: "echo", program: echo)
        try await node.withTask(label: "init") { task in
            say("init: trusted task on instance \(task.instance)")
            // A blob with the job's parameters, and a stream for the results.
            let (blobName, blob) = try task.create(.blob(size: 64))
            let w = try task.beginWrite(blob, size: 8)
            try w.store(UInt64(messages).littleEndian)
            say("init: wrote count=\(messages) into blob \(blobName) (committed: \(task.endWrite(w)))")
            let (_, results) = try task.create(.stream(messageSize: 16, depth: 8))

            // Start the worker untrusted; hand it read-only parameters and a write-only stream.
            let program = try task.lookup(workerName)[0]
            let worker = try task.run(program, flags: .untrusted)
            let given = try task.copy([blob], to: worker, rights: [.read])
            try task.copy([results], to: worker, rights: [.write])
            say(
                "init: started untrusted worker, delegated blob \(given[0]) with rights "
                    + "\(try task.describe(blob).rights) → r----, stream → -w---"
            )

            // Collect the results: select over the stream and a timeout.
            let (_, timeout) = try task.create(.timer(after: .seconds(10)))
            var sum: UInt64 = 0
            for expected in 0..<UInt64(messages) {
                guard try await task.select([results, timeout]) == results else {
                    say("init: timed out waiting for the worker")
                    throw CallError.wouldBlock
                }
                let r = try task.beginRead(results)
                let (i, square) = (
                    try r.load(fromByteOffset: 0, as: UInt64.self), try r.load(fromByteOffset: 8, as: UInt64.self)
                )
                _ = task.endRead(r)
                guard i == expected, square == i * i else {
                    say("init: expected #\(expected), got #\(i) = \(square)")
                    throw CallError.invalidArgument("results out of order")
                }
                sum += square
                if i < 3 || i == UInt64(messages) - 1 { say("init: received #\(i): \(i)² = \(square)") }
            }
            say("init: received all \(messages) results in order, sum of squares = \(sum)")

            // Weak consistency: a write committed between beginRead and endRead is detected.
            let read = try task.beginRead(blob)
            let w2 = try task.beginWrite(blob, size: 8)
            try w2.store(UInt64(0).littleEndian)
            _ = task.endWrite(w2)
            say("init: weak read interleaved with a committed write → endRead = \(task.endRead(read)) (retry)")
            let again = try task.beginRead(blob)
            say("init: retried read → value \(try again.load(as: UInt64.self)), endRead = \(task.endRead(again))")

            // Wait for the worker to exit and read its status.
            _ = try await task.select([worker])
            let status = try task.beginRead(worker)
            say("init: worker exited with status \(try status.load(as: Int64.self))")
            _ = task.endRead(status)
        }
        if node.instances.count > 1 { try await crossCore(on: node, messages: messages, say: say) }
    }

    /// Init on instance 0 and an echo task on instance 1 (another core): two
    /// streams whose rings both instances share; every message goes there and back.
    public static func crossCore(on node: Node, messages: Int, say: @escaping @Sendable (String) -> Void) async throws {
        try await node.withTask(on: 0, label: "init") { task in
            let (_, there) = try task.create(.stream(messageSize: 64, depth: 16))
            let (_, back) = try task.create(.stream(messageSize: 64, depth: 16))
            let echo = try task.run(try task.lookup(echoName)[0], arguments: [there, back], on: 1)
            say(
                "init: started echo on instance 1 (\(try task.describe(echo).proximity)), streams shared between the "
                    + "cores"
            )
            var sum: UInt64 = 0
            for i in 0..<UInt64(messages) {
                try await task.write(withUnsafeBytes(of: i) { Array($0) }, to: there)
                let reply = try await task.read(back)
                let value = reply.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                guard value == i * 3 else { throw CallError.invalidArgument("echo answered \(value) to \(i)") }
                sum += value
            }
            try await task.write([], to: there)  // empty: the end
            _ = try await task.select([echo])
            say("init: \(messages) round trips to instance 1 and back, all in order (sum \(sum))")
        }
    }

    /// Answers each message on the first stream with three times its value on the second.
    static let echo: Program = { task in
        let refs = try task.delegated()
        while true {
            let message = try await task.read(refs[0])
            if message.isEmpty { return }
            let value = message.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            try await task.write(withUnsafeBytes(of: value * 3) { Array($0) }, to: refs[1])
        }
    }

    static func worker(say: @escaping @Sendable (String) -> Void) -> Program {
        { task in
            let refs = try await task.awaitDelegated(count: 2)
            let (parameters, results) = (refs[0], refs[1])
            say("worker: untrusted task started, holds \(refs.count) references")
            let count = UInt64(
                littleEndian: try await task.read(parameters).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            say("worker: read count=\(count) from the blob")
            for i in 0..<count {
                while true {
                    do {
                        let w = try task.beginWrite(results, size: 16)
                        try w.store(i, toByteOffset: 0)
                        try w.store(i * i, toByteOffset: 8)
                        _ = task.endWrite(w)
                        break
                    } catch CallError.wouldBlock {
                        _ = try await task.select([results], flags: .writable)  // stream full: wait, drop nothing
                    }
                }
            }
            say("worker: wrote \(count) messages")
            // What an untrusted task may not do: each is refused and changes nothing.
            for (what, attempt) in [
                ("lookup a name", { () throws(CallError) in _ = try task.lookup(workerName) }),
                ("write the read-only blob", { () throws(CallError) in _ = try task.beginWrite(parameters, size: 8) }),
                ("run a program", { () throws(CallError) in _ = try task.run(parameters) }),
            ] as [(String, () throws(CallError) -> Void)] {
                do throws(CallError) {
                    try attempt()
                    say("worker: \(what) — unexpectedly allowed")
                } catch {
                    say("worker: \(what) — refused: \(error)")
                }
            }
        }
    }
}
