import DIOS
import Foundation
import Testing

// README: begin echo
/// Echoes `count` messages from `input` to `output`, waiting whenever either
/// is not ready. Nothing here allocates per message: the arrays `select`
/// takes are made once, and every error is caught typed.
func echo(_ task: TaskContext, _ count: Int, from input: Ref, to output: Ref) async throws(CallError) {
    let inputs = [input], outputs = [output]
    for _ in 0..<count {
        _ = try await task.select(inputs)  // a message is waiting
        let r = try task.beginRead(input)  // held across the waits below
        while true {
            var full = false
            do throws(CallError) {
                let w = try task.beginWrite(output, size: r.count)
                try r.withUnsafeBytes { bytes throws(CallError) in try w.copy(from: bytes) }
                _ = task.endWrite(w)
            } catch .wouldBlock {
                full = true  // decide in the `do` ...
            }
            guard full else { break }
            _ = try await task.select(outputs, flags: .writable)  // ... and wait after it
        }
        _ = task.endRead(r)
    }
}
// README: end echo

/// The README's code compiles (it is this file's) and does what it says; the
/// README holds it word for word, so the two cannot drift apart.
@Suite struct ReadmeExampleTests {
    static func readmeBlock(_ name: String) throws -> String {
        let file = URL(fileURLWithPath: #filePath)
        let text = try String(contentsOf: file, encoding: .utf8)
        let begin = try #require(text.range(of: "// README: begin \(name)\n"))
        let end = try #require(text.range(of: "// README: end \(name)\n"))
        return String(text[begin.upperBound..<end.lowerBound])
    }

    @Test func theReadmeHoldsTheExampleWordForWord() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let block = try Self.readmeBlock("echo")
        #expect(readme.contains("```swift\n" + block + "```\n"))
    }

    /// Writes `value` if `stream` has room now. Typed throws, out of the
    /// test's (untyped) closure: the form the README gives, because a
    /// `catch .wouldBlock` whose other errors fall through to an untyped
    /// async closure crashes Swift 6.3.1 ("Found outside of lifetime use?!"),
    /// as this very helper did when written inline.
    static func tryWrite(_ task: TaskContext, _ value: UInt64, to stream: Ref) throws(CallError) -> Bool {
        do throws(CallError) {
            let w = try task.beginWrite(stream, size: 8)
            try w.store(value)
            return task.endWrite(w)
        } catch .wouldBlock {
            return false
        }
    }

    @Test func theEchoCarriesEveryMessageThroughFullRings() async throws {
        var configuration = NodeConfiguration()
        configuration.cores = [0]
        configuration.arenaSize = 8 << 20
        let node = try Node(configuration)
        defer { node.shutdown() }
        let count = 2_000
        let echoer = await node.register(label: "echo") { task in
            let refs = try task.delegated()
            try await echo(task, count, from: refs[0], to: refs[1])
        }
        let received = try await node.withTask { task in
            // Depth 2 each way: the echo finds its output full again and again.
            let (_, input) = try task.create(.stream(messageSize: 8, depth: 2))
            let (_, output) = try task.create(.stream(messageSize: 8, depth: 2))
            let child = try task.run(try task.lookup(echoer)[0], arguments: [input, output])
            var next: UInt64 = 0
            var sent: UInt64 = 0
            while next < UInt64(count) {
                if sent < UInt64(count), try Self.tryWrite(task, sent, to: input) {
                    sent += 1
                    continue
                }
                let bytes = try await task.read(output)
                guard bytes.count == 8, bytes.withUnsafeBytes({ $0.loadUnaligned(as: UInt64.self) }) == next else {
                    break
                }
                next += 1
            }
            _ = try await task.select([child])
            return next
        }
        #expect(received == UInt64(count))
    }
}
