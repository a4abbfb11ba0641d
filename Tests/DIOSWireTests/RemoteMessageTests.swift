import DIOSCore
import DIOSWire
import Testing

@Suite struct RemoteMessageTests {
    static let name = Name(words: (1, 2, 3, 4))
    static let samples: [RemoteMessage] = [
        .streamClosed(origin: ObjectID(index: 3, generation: 9), senderIsOrigin: true),
        .streamClosed(origin: ObjectID(index: 3, generation: 9), senderIsOrigin: false),
        .run(
            proxy: ObjectID(index: 1, generation: 2), program: name, trusted: true, label: "consumer ✓",
            streams: [
                RemoteArgument(
                    object: ObjectID(index: 5, generation: 1), name: name, maxWriteSize: 4096, depth: 256,
                    writeEnd: false),
                RemoteArgument(
                    object: ObjectID(index: 6, generation: 1), name: name, maxWriteSize: 64, depth: 8, writeEnd: true),
                RemoteArgument(
                    object: ObjectID(index: 7, generation: 2), kind: .blob, name: name, maxWriteSize: 100, depth: 1,
                    writeEnd: false, rights: [.read, .write]),
            ], invocation: Invocation(commandLine: ["stream", "1000000", "ü"], environment: ["LANG=C.UTF-8", "K=v=w"])),
        .started(proxy: ObjectID(index: 1, generation: 2), task: TaskID(index: 7, generation: 3)),
        .failedToStart(proxy: ObjectID(index: 1, generation: 2), reason: "no such program"),
        .exited(proxy: ObjectID(index: 1, generation: 2), status: -5),
        .pause(task: TaskID(index: 7, generation: 3), resume: true),
        .stop(task: TaskID(index: 7, generation: 3)),
        .blobRead(blob: ObjectID(index: 7, generation: 2), call: 41, strong: true),
        .blobRelease(blob: ObjectID(index: 7, generation: 2)),
        .blobValidate(blob: ObjectID(index: 7, generation: 2), call: 42, version: 1 << 40),
        .blobWrite(blob: ObjectID(index: 7, generation: 2), call: 43, strong: false),
        .blobReply(call: 44, status: .busy, ok: false),
        .nameDelta(.remove(name, InsertTag(origin: InstanceID(node: 1, core: 1), counter: 9))),
        .nameSync(
            reset: true,
            inserts: [
                .insert(
                    name,
                    InstanceRecord(
                        owner: InstanceID(node: 1, core: 1), object: ObjectID(index: 3, generation: 1), kind: .blob,
                        size: 64, persistent: false),
                    InsertTag(origin: InstanceID(node: 1, core: 1), counter: 10))
            ]),
        .nameConfirm(name: name, object: ObjectID(index: 3, generation: 1), call: 45),
        .leaving,
    ]

    func decode(_ bytes: [UInt8]) -> Result<RemoteMessage, WireError> {
        bytes.withUnsafeBytes { raw in
            do throws(WireError) { return .success(try RemoteMessage.decode(raw).0) } catch { return .failure(error) }
        }
    }

    @Test func roundTrips() {
        for m in Self.samples { #expect(decode(m.encoded()) == .success(m)) }
    }

    @Test func streamDataPayloadFollowsThePrefix() {
        var bytes = [UInt8](repeating: 0, count: RemoteMessage.streamDataPrefix)
        bytes.withUnsafeMutableBytes {
            RemoteMessage.encodeStreamData(
                origin: ObjectID(index: 4, generation: 5), senderIsOrigin: false, into: $0.baseAddress!)
        }
        bytes += [9, 8, 7]
        bytes.withUnsafeBytes { raw in
            let decoded = try? RemoteMessage.decode(raw)
            #expect(decoded?.0 == .streamData(origin: ObjectID(index: 4, generation: 5), senderIsOrigin: false))
            #expect(decoded?.payloadOffset == 9)
        }
    }

    /// Every truncation of every sample is refused with a typed error, and so is
    /// any extra byte.
    @Test func truncationsAndTrailingBytesAreRefused() {
        for m in Self.samples {
            let bytes = m.encoded()
            for n in 0..<bytes.count {
                if case .success = decode(Array(bytes.prefix(n))) { Issue.record("\(m) accepted at \(n) bytes") }
            }
            #expect(decode(bytes + [0]) == .failure(.trailingBytes(1)))
        }
        #expect(decode([99]) == .failure(.unknownType(99)))
    }
}
