import DIOSCore
import Testing

@Suite struct NameTests {
    @Test func roundTripsThroughText() throws {
        for _ in 0..<1000 {
            let name = Name.random()
            let text = name.description
            #expect(text.utf8.count == 44)
            #expect(text.hasSuffix("="))
            #expect(try Name.parse(text) == name)
            #expect(Name(text) == name)
        }
    }

    @Test func knownVector() throws {
        // 32 zero bytes and 32 0xFF bytes have fixed base64 forms.
        let zero = Name(bytes: [UInt8](repeating: 0, count: 32))!
        #expect(zero.description == String(repeating: "A", count: 43) + "=")
        let ones = Name(bytes: [UInt8](repeating: 0xFF, count: 32))!
        #expect(ones.description == String(repeating: "/", count: 42) + "8=")
        #expect(try Name.parse(ones.description).bytes == [UInt8](repeating: 0xFF, count: 32))
    }

    @Test func randomNamesDiffer() {
        var seen = Set<Name>()
        for _ in 0..<10_000 { seen.insert(Name.random()) }
        #expect(seen.count == 10_000)
    }

    static let malformed: [(String, NameError)] = {
        let a43 = String(repeating: "A", count: 43)
        let a42 = String(repeating: "A", count: 42)
        let a20 = String(repeating: "A", count: 20)
        let a22 = String(repeating: "A", count: 22)
        return [
            ("", .wrongLength(0)),
            (a43, .wrongLength(43)),
            (a43 + "AA", .wrongLength(45)),
            (a43 + "A", .notCanonical),
            (a20 + "*" + a22 + "=", .invalidCharacter(offset: 20)),
            (a42 + "B=", .notCanonical),  // stray low bits
            (String(repeating: "A", count: 41) + "\u{e9}=", .invalidCharacter(offset: 41)),  // non-ASCII
        ]
    }()

    @Test(arguments: malformed)
    func rejectsMalformedText(text: String, error: NameError) {
        #expect(throws: error) { try Name.parse(text) }
        #expect(Name(text) == nil)
    }

    @Test func wellKnownNamesAreStableAndTagged() {
        #expect(Name.wellKnown("dios.scheduler") == Name.wellKnown("dios.scheduler"))
        #expect(Name.wellKnown("dios.scheduler") != Name.wellKnown("dios.scheduler2"))
        #expect(Name.wellKnown("x").isWellKnown)
        #expect(!Name.random().isWellKnown)
    }

    /// Dictionaries hash names by `_rawHashValue(seed:)`, a keyless mix: names
    /// that differ in any one word, and well-known names that share their tag
    /// word, must still spread over a table's buckets, and the table's seed
    /// must change where they land.
    @Test func tablesHashNamesApart() {
        let base = Name.random()
        var variants: [Name] = []
        for k in 0..<4 {
            for bit in stride(from: 0, to: 64, by: 7) {
                var w = base.words
                switch k {
                case 0: w.0 ^= 1 << UInt64(bit)
                case 1: w.1 ^= 1 << UInt64(bit)
                case 2: w.2 ^= 1 << UInt64(bit)
                default: w.3 ^= 1 << UInt64(bit)
                }
                variants.append(Name(words: w))
            }
        }
        let wellKnown = (0..<1000).map { Name.wellKnown("service.\($0)") }
        for names in [variants, wellKnown] {
            // The low 10 bits pick a bucket of a 1024-bucket table.
            let buckets = Set(names.map { $0._rawHashValue(seed: 12345) & 1023 })
            #expect(buckets.count > names.count * 6 / 10, "\(buckets.count) buckets for \(names.count) names")
            #expect(Set(names.map { $0._rawHashValue(seed: 1) }).count == names.count)
        }
        #expect(base._rawHashValue(seed: 1) != base._rawHashValue(seed: 2))
        // And a dictionary keyed by them finds every one.
        var table: [Name: Int] = [:]
        for (i, n) in (variants + wellKnown).enumerated() { table[n] = i }
        #expect((variants + wellKnown).enumerated().allSatisfy { table[$1] == $0 })
    }
}
