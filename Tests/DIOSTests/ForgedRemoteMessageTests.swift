import DIOS
import DIOSKernel
import DIOSWire
import Testing

/// What arrives from another node is input like any other: random bytes, and
/// well-formed messages naming objects, tasks and proxies that are not the
/// sender's, must be refused without a trap and without changing anything.
@Suite struct ForgedRemoteMessageTests {
    @Test(arguments: 0..<5)
    func forgedMessagesChangeNothing(seed: UInt64) throws {
        let kernel = try StandaloneInstance(arenaSize: 8 << 20, label: "forged")
        let task = kernel.attach(trusted: true)
        var objects: [ObjectID] = []
        for i in 0..<6 {
            let (_, ref) =
                i % 2 == 0 ? try task.create(.stream(messageSize: 16, depth: 4)) : try task.create(.blob(size: 32))
            objects.append(try task.describe(ref).object)
        }
        objects.append(ObjectID(index: 999_999, generation: 1))  // never issued
        let tasks = [task.task, TaskID(index: 77, generation: 3)]
        let stranger = InstanceID(node: 9, core: 0)
        var random = SplitMix64(seed: seed)
        let before = kernel.instance.stateFingerprint()
        for _ in 0..<2_000 {
            let object = objects[Int(random.next() % UInt64(objects.count))]
            let t = tasks[Int(random.next() % UInt64(tasks.count))]
            let flag = random.next() % 2 == 0
            var bytes: [UInt8]
            switch random.next() % 9 {
            case 0: bytes = (0..<Int(random.next() % 80)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                bytes = [UInt8](repeating: 0, count: RemoteMessage.streamDataPrefix)
                bytes.withUnsafeMutableBytes {
                    RemoteMessage.encodeStreamData(origin: object, senderIsOrigin: flag, into: $0.baseAddress!)
                }
                bytes += [UInt8](repeating: 7, count: Int(random.next() % 40))
            case 2: bytes = RemoteMessage.streamClosed(origin: object, senderIsOrigin: flag).encoded()
            case 3: bytes = RemoteMessage.started(proxy: object, task: t).encoded()
            case 4: bytes = RemoteMessage.exited(proxy: object, status: 3).encoded()
            case 5: bytes = RemoteMessage.failedToStart(proxy: object, reason: "forged").encoded()
            case 6: bytes = RemoteMessage.pause(task: t, resume: flag).encoded()
            case 7: bytes = RemoteMessage.stop(task: t).encoded()
            default:
                bytes = RemoteMessage.run(proxy: object, program: .random(), trusted: true, label: "x", streams: [])
                    .encoded()
            }
            let accepted = bytes.withUnsafeBytes { kernel.instance.deliverRemote($0, from: stranger) }
            #expect(accepted)  // consumed (refused), never held back for a retry
        }
        #expect(kernel.instance.stateFingerprint() == before)
        #expect(kernel.instance.counters.remoteRefused > 0)
        kernel.detach(task)
    }
}
