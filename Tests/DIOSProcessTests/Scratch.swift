import DIOS
import Foundation
import Testing

@Suite struct Scratch {
    @Test(arguments: [0, 1]) func timing(on instance: Int) async throws {
        let node = try CheckProgram.makeNode()
        defer { node.shutdown() }
        let program = await node.register(try CheckProgram.executable())
        let count: UInt64 = 20_000
        let clock = ContinuousClock()
        let start = clock.now
        let status = try await node.withTask(on: 0) { task in
            let (_, stream) = try task.create(.stream(messageSize: 16, depth: 64))
            let child = try task.run(
                try task.lookup(program)[0], arguments: [stream], commandLine: ["stream", "\(count)"], on: instance)
            var next: UInt64 = 0
            while next < count {
                do throws(CallError) {
                    let tx = try task.beginRead(stream)
                    _ = task.endRead(tx)
                    next += 1
                } catch .wouldBlock {
                    _ = try await task.select([stream, child])
                }
            }
            return try await task.status(of: child)
        }
        let c = await node.counters()
        print(
            "SCRATCH instance \(instance): \(clock.now - start) for \(count), status \(status), polls \(c.map(\.polls)) idle \(c.map(\.idlePolls)) suspends \(c.map(\.selectSuspends))"
        )
    }
}
