import DIOSCore
import DIOSWire
import Testing

@Suite struct NameDeltaWireTests {
    func randomDelta(_ rng: inout SystemRandomNumberGenerator) -> NameDelta {
        let tag = InsertTag(origin: InstanceID(node: .random(in: 0...9), core: .random(in: 0...3)), counter: rng.next())
        if Bool.random() { return .remove(.random(), tag) }
        let record = InstanceRecord(
            owner: InstanceID(node: 1, core: 2), object: ObjectID(index: .random(in: 0...100), generation: 7),
            kind: ObjectKind.allCases.randomElement()!, size: .random(in: 0...1 << 40), persistent: .random())
        return .insert(.random(), record, tag)
    }

    @Test func roundTrips() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let delta = randomDelta(&rng)
            var bytes: [UInt8] = []
            delta.encode(into: &bytes)
            if case .insert = delta {
                #expect(bytes.count == NameDelta.insertSize)
            } else {
                #expect(bytes.count == NameDelta.removeSize)
            }
            #expect(try NameDelta.decode(bytes) == delta)
        }
    }

    @Test func everyTruncationIsRefused() throws {
        var bytes: [UInt8] = []
        NameDelta.insert(
            .random(),
            InstanceRecord(
                owner: .init(node: 0, core: 0), object: .init(index: 1, generation: 1), kind: .stream, size: 9,
                persistent: true), InsertTag(origin: .init(node: 0, core: 0), counter: 1)
        ).encode(into: &bytes)
        for n in 0..<bytes.count {
            #expect(throws: WireError.self) { try NameDelta.decode(bytes[0..<n]) }
        }
        #expect(throws: WireError.trailingBytes(1)) { try NameDelta.decode(bytes + [0]) }
    }

    @Test func badFieldsAreRefusedWithTheirReason() {
        var remove: [UInt8] = []
        NameDelta.remove(.random(), InsertTag(origin: .init(node: 0, core: 0), counter: 1)).encode(into: &remove)
        var bad = remove
        bad[0] = 9
        #expect(throws: WireError.unknownType(9)) { try NameDelta.decode(bad) }
        var insert: [UInt8] = []
        NameDelta.insert(
            .random(),
            InstanceRecord(
                owner: .init(node: 0, core: 0), object: .init(index: 1, generation: 1), kind: .blob, size: 1,
                persistent: false), InsertTag(origin: .init(node: 0, core: 0), counter: 1)
        ).encode(into: &insert)
        var badKind = insert
        badKind[45 + 12] = 200
        #expect(throws: WireError.unknownKind(200)) { try NameDelta.decode(badKind) }
        var badFlag = insert
        badFlag[45 + 13] = 2
        #expect(throws: WireError.invalidFlag(2)) { try NameDelta.decode(badFlag) }
    }

    /// Random bytes (and mutations of valid messages) decode to a delta or a
    /// typed error — never a crash.
    @Test func randomInputNeverCrashes() {
        var rng = SystemRandomNumberGenerator()
        var decoded = 0
        for i in 0..<100_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...100, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = []
                randomDelta(&rng).encode(into: &bytes)
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = .random(in: 0...255, using: &rng)
            }
            if (try? NameDelta.decode(bytes)) != nil { decoded += 1 }
        }
        #expect(decoded > 0)
    }
}
