import CDIOSChannel
import DIOSChannel
import DIOSCore
import DIOSMemory
import DIOSProcess
import DIOSWire
import Foundation
import Testing

/// The channel's entries: the Swift layout is the C header's, every decode of
/// a bad entry is a typed error, and SHA-256 names programs correctly.
@Suite struct ChannelCodecTests {
    @Test func theLayoutIsTheCHeaders() {
        #expect(MemoryLayout<dios_sqe>.size == ChannelLayout.submissionSize)
        #expect(MemoryLayout<dios_cqe>.size == ChannelLayout.completionSize)
        #expect(MemoryLayout<dios_sqe>.offset(of: \dios_sqe.flags) == 12)
        #expect(MemoryLayout<dios_sqe>.offset(of: \dios_sqe.ref_slot) == 16)
        #expect(MemoryLayout<dios_sqe>.offset(of: \dios_sqe.arg) == 24)
        #expect(MemoryLayout<dios_cqe>.offset(of: \dios_cqe.value) == 16)
        typealias H = dios_channel_header
        #expect(MemoryLayout<H>.size <= ChannelLayout.submissionOffset)
        #expect(MemoryLayout<H>.offset(of: \H.pid) == ChannelLayout.Header.pid)
        #expect(MemoryLayout<H>.offset(of: \H.trusted) == ChannelLayout.Header.trusted)
        #expect(MemoryLayout<H>.offset(of: \H.instance_cpu) == ChannelLayout.Header.instanceCPU)
        #expect(MemoryLayout<H>.offset(of: \H.sq_tail) == ChannelLayout.Header.submissionTail)
        #expect(MemoryLayout<H>.offset(of: \H.sq_head) == ChannelLayout.Header.submissionHead)
        #expect(MemoryLayout<H>.offset(of: \H.cq_tail) == ChannelLayout.Header.completionTail)
        #expect(MemoryLayout<H>.offset(of: \H.cq_head) == ChannelLayout.Header.completionHead)
        #expect(MemoryLayout<H>.offset(of: \H.process_sleeping) == ChannelLayout.Header.processSleeping)
        #expect(MemoryLayout<H>.offset(of: \H.instance_sleeping) == ChannelLayout.Header.instanceSleeping)
        #expect(DIOS_CHANNEL_MAGIC == ChannelLayout.magic)
        #expect(Int(DIOS_CHANNEL_SIZE) == ChannelLayout.size)
        #expect(Int(DIOS_WINDOW_AREA) == ChannelLayout.windowArea)
        #expect(Int(DIOS_CHANNEL_SQ_OFFSET) == ChannelLayout.submissionOffset)
        #expect(Int(DIOS_RING_ENTRIES) == Int(ChannelLayout.ringEntries))
        #expect(Int(DIOS_CHANNEL_WINDOW_OFFSET) == ChannelLayout.windowOffset)
        #expect(UInt16(DIOS_OP_UNMAP_STREAM.rawValue) == ChannelOperation.allCases.last!.rawValue)
        #expect(UInt16(DIOS_OP_CREATE.rawValue) == ChannelOperation.create.rawValue)
    }

    /// The ring layout dios_channel.h gives libdios is the kernel's
    /// `StreamRing`: what one side writes by the header's offsets, the other
    /// reads through the ring, both ways.
    @Test func theRingLayoutIsTheKernels() {
        let size = StreamRing.byteSize(messageSize: 16, depth: 4)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 128)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let ring = StreamRing.initialize(at: memory, messageSize: 16, depth: 4)
        func u32(_ offset: UInt32) -> UInt32 { memory.load(fromByteOffset: Int(offset), as: UInt32.self) }
        func u64(_ offset: Int) -> UInt64 { memory.load(fromByteOffset: offset, as: UInt64.self) }
        #expect(u32(DIOS_RING_DEPTH) == 4 && u32(DIOS_RING_MAX_MESSAGE) == 16)
        #expect(Int(u32(DIOS_RING_STRIDE)) == ring.stride && Int(DIOS_RING_SLOTS) == StreamRing.headerSize)
        // The kernel publishes message 0 (5 bytes); the process sees it by the offsets.
        ring.reserve()!.storeBytes(of: 0xAB, as: UInt8.self)
        ring.publish(length: 5)
        #expect(u64(Int(DIOS_RING_TAIL)) == 1)
        #expect(u64(Int(DIOS_RING_SLOTS)) == 1 << 32 | 5)
        #expect(memory.load(fromByteOffset: Int(DIOS_RING_SLOTS) + 8, as: UInt8.self) == 0xAB)
        // The process releases it and publishes message 1 in slot 1; the kernel sees both.
        memory.storeBytes(of: UInt64(1), toByteOffset: Int(DIOS_RING_HEAD), as: UInt64.self)
        #expect(ring.released == 1 && !ring.hasMessage())
        memory.storeBytes(of: UInt64(2) << 32 | 7, toByteOffset: Int(DIOS_RING_SLOTS) + ring.stride, as: UInt64.self)
        memory.storeBytes(of: UInt64(2), toByteOffset: Int(DIOS_RING_TAIL), as: UInt64.self)
        #expect(ring.peek()?.1 == 7)
        ring.close()
        #expect(u32(DIOS_RING_CLOSED) != 0)
        #expect(DIOS_RING_HELD_ELSEWHERE == 1 << 31)
    }

    /// dios.h's error codes, as a C program sees them, are the kernel's.
    @Test func theCErrorCodesAreTheKernels() throws {
        let header = try String(contentsOfFile: CheckProgram.root + "/libdios/include/dios.h", encoding: .utf8)
        let codes = header.split(separator: "\n").compactMap { line -> Int32? in
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("DIOS_E_"), let eq = t.firstIndex(of: "=") else { return nil }
            return Int32(t[t.index(after: eq)...].prefix { $0 != "," }.trimmingCharacters(in: .whitespaces))
        }
        #expect(codes == ChannelErrorCode.allCases.map(\.rawValue))
    }

    @Test func anEntryRoundTripsThroughItsBytes() {
        let e = SubmissionEntry(
            userData: 0xFEED, operation: 5, flags: 1, ref: Ref(slot: 3, generation: 9), arguments: (16, 4096, 0, 0, 7))
        var bytes = [UInt8](repeating: 0, count: 64)
        bytes.withUnsafeMutableBytes { e.write(to: $0) }
        #expect(bytes.withUnsafeBytes { SubmissionEntry(bytes: $0) } == e)
        #expect(bytes.withUnsafeBytes { SubmissionEntry(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<63])) } == nil)
        let c = CompletionEntry(userData: 1, error: 8, detail: 2, values: (3, 4))
        var cb = [UInt8](repeating: 0, count: 32)
        cb.withUnsafeMutableBytes { c.write(to: $0) }
        #expect(cb.withUnsafeBytes { CompletionEntry(bytes: $0) } == c)
    }

    static func entry(_ op: ChannelOperation, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64)) -> SubmissionEntry {
        SubmissionEntry(userData: 1, operation: op.rawValue, flags: 0, ref: Ref(slot: 0, generation: 1), arguments: a)
    }

    @Test func everyOffsetAndCountIsCheckedAgainstTheWindow() throws {
        let w = UInt64(ChannelLayout.windowSize)
        #expect(
            try ChannelRequest.decode(Self.entry(.beginRead, (0, 4096, 0, 0, 0)))
                == .beginRead(
                    Ref(slot: 0, generation: 1), flags: [],
                    into: WindowRange(offset: 0, count: 4096, windowSize: Int(w))!))
        // Past the end, overflowing, or too many references: refused, typed.
        #expect(throws: ChannelEntryError.outsideWindow("read view", offset: w - 10, count: 11)) {
            try ChannelRequest.decode(Self.entry(.beginRead, (w - 10, 11, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.self) {
            try ChannelRequest.decode(Self.entry(.beginRead, (.max, 2, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.tooManyReferences(1025)) {
            try ChannelRequest.decode(Self.entry(.select, (0, 1025, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.outOfRange("select's reference count", 0)) {
            try ChannelRequest.decode(Self.entry(.select, (0, 0, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.outOfRange("write size", UInt64.max)) {
            try ChannelRequest.decode(Self.entry(.beginWrite, (.max, 0, 0, 0, 0)))
        }
        #expect(
            try ChannelRequest.decode(Self.entry(.mapStream, (1, 0, 0, 0, 0)))
                == .mapStream(Ref(slot: 0, generation: 1), writer: true))
        #expect(throws: ChannelEntryError.outOfRange("stream side", 2)) {
            try ChannelRequest.decode(Self.entry(.unmapStream, (2, 0, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.outOfRange("object kind to create", 3)) {
            try ChannelRequest.decode(Self.entry(.create, (3, 8, 0, 0, .max)))
        }
        #expect(throws: ChannelEntryError.outOfRange("rights", 32)) {
            try ChannelRequest.decode(Self.entry(.restrict, (32, 0, 0, 0, 0)))
        }
        #expect(throws: ChannelEntryError.unknownOperation(0)) {
            try ChannelRequest.decode(
                SubmissionEntry(userData: 0, operation: 0, flags: 0, ref: Ref(slot: 0, generation: 0)))
        }
        #expect(
            try ChannelRequest.decode(Self.entry(.run, (0, 2, 0x0001_0003, 0, 0)))
                == .run(
                    Ref(slot: 0, generation: 1), arguments: WindowRange(offset: 0, count: 16, windowSize: Int(w))!,
                    flags: [], on: .instance(InstanceID(node: 1, core: 3))))
        #expect(
            try ChannelRequest.decode(Self.entry(.run, (0, 0, 0xFFFF_0002, 0, 0)))
                == .run(
                    Ref(slot: 0, generation: 1), arguments: WindowRange(offset: 0, count: 0, windowSize: Int(w))!,
                    flags: [],
                    on: .sibling(core: 2)))
    }

    /// Every entry decodes or is refused with a typed error: 200,000 random
    /// entries (the fuzzer, Tests/Fuzz, runs the same decoder for longer).
    @Test func randomEntriesDecodeOrAreRefused() {
        var rng = SplitMix64(seed: 7)
        var decoded = 0
        for _ in 0..<200_000 {
            let op = UInt16(truncatingIfNeeded: rng.next() % 24)
            let small = rng.next() & 1 == 0
            func arg() -> UInt64 { small ? rng.next() % 8192 : rng.next() }
            let e = SubmissionEntry(
                userData: rng.next(), operation: op, flags: UInt32(truncatingIfNeeded: rng.next()),
                ref: Ref(slot: UInt32(truncatingIfNeeded: rng.next()), generation: 1),
                arguments: (arg(), arg(), arg(), arg(), arg()))
            if let r = try? ChannelRequest.decode(e) {
                decoded += 1
                if case .beginRead(_, _, let into) = r {
                    #expect(into.offset + into.count <= ChannelLayout.windowSize)
                }
            }
        }
        #expect(decoded > 10_000)
    }

    @Test func sha256MatchesTheStandardVectors() {
        func hex(_ b: [UInt8]) -> String {
            b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        #expect(hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        for _ in 0..<1000 { h.update([UInt8](repeating: 0x61, count: 1000)) }  // a million 'a's, in pieces
        #expect(hex(h.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
