import DIOSCore
import DIOSWire
import Testing

@Suite struct FrameHeaderTests {
    let sample = FrameHeader(
        type: .data, flags: FrameHeader.firstFragment, payloadLength: 3, source: InstanceID(node: 1, core: 2),
        destination: InstanceID(node: 3, core: 4), sourceEpoch: 0xDEAD_BEEF, destinationEpoch: 7,
        sequence: 0xFFFF_FFFF, ack: 12, credit: 140)

    func frame(_ h: FrameHeader, payload: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: FrameHeader.size + payload.count)
        bytes.withUnsafeMutableBytes { h.encode(into: $0.baseAddress!) }
        bytes.replaceSubrange(FrameHeader.size..., with: payload)
        return bytes
    }

    func decode(_ bytes: [UInt8]) -> Result<FrameHeader, WireError> {
        bytes.withUnsafeBytes { raw in
            do throws(WireError) { return .success(try FrameHeader.decode(raw)) } catch { return .failure(error) }
        }
    }

    @Test func roundTrip() {
        #expect(decode(frame(sample, payload: [1, 2, 3])) == .success(sample))
    }

    @Test func bigEndianLayout() {
        let bytes = frame(sample, payload: [1, 2, 3])
        #expect(Array(bytes[0..<4]) == [0xD1, 0x05, 1, 1])
        #expect(Array(bytes[16..<20]) == [0xDE, 0xAD, 0xBE, 0xEF])
    }

    @Test func refusesBadFrames() {
        let good = frame(sample, payload: [1, 2, 3])
        #expect(decode(Array(good.prefix(10))) == .failure(.truncated(needed: FrameHeader.size, have: 10)))
        var bad = good
        bad[0] = 0
        #expect(decode(bad) == .failure(.badMagic(0x0005)))
        bad = good
        bad[2] = 9
        #expect(decode(bad) == .failure(.unsupportedVersion(9)))
        bad = good
        bad[3] = 77
        #expect(decode(bad) == .failure(.unknownType(77)))
        bad = good
        bad[4] = 0x80
        #expect(decode(bad) == .failure(.invalidFlag(0x80)))
        #expect(decode(good + [9]) == .failure(.lengthMismatch(declared: 3, actual: 4)))
        #expect(decode(Array(good.dropLast())) == .failure(.lengthMismatch(declared: 3, actual: 2)))
        var ack = sample
        ack.type = .ack
        ack.flags = 0
        ack.payloadLength = 1
        if case .failure(.valueOutOfRange) = decode(frame(ack, payload: [0])) {
        } else {
            Issue.record("ack with payload accepted")
        }
    }

    /// Random bytes, and random corruptions of good frames, never trap: each
    /// decodes whole or fails with a typed error.
    @Test func randomInputNeverTraps() {
        var random = SplitMix64(seed: 42)
        let good = frame(sample, payload: [1, 2, 3])
        var accepted = 0
        for i in 0..<100_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = good
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            if case .success(let h) = decode(bytes) {
                accepted += 1
                #expect(Int(h.payloadLength) == bytes.count - FrameHeader.size)
            }
        }
        #expect(accepted > 0)  // corruptions of fields without checks decode fine
    }
}
