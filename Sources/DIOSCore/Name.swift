/// A global, unguessable object name: 256 bits from the operating system's CSPRNG.
///
/// Names are values: storable, comparable and printable as 44 characters of
/// standard base64 (`Name(text)` parses them back). Knowing a name lets a trusted
/// task `lookup` the object; untrusted tasks only ever hold references.
public struct Name: Hashable, Sendable, Comparable {
    /// The 256 bits, most significant word first.
    public var words: (UInt64, UInt64, UInt64, UInt64)

    @inlinable
    public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// A fresh random name. `SystemRandomNumberGenerator` reads the kernel CSPRNG
    /// (`getrandom(2)` on Linux), so names cannot be guessed from earlier ones.
    public static func random() -> Name {
        var rng = SystemRandomNumberGenerator()
        return Name(words: (rng.next(), rng.next(), rng.next(), rng.next()))
    }

    /// A well-known name for infrastructure that must be found without being told
    /// (the scheduler, registered programs). Its first word is a reserved tag no
    /// random name is expected to carry; the label (at most 24 UTF-8 bytes) fills the rest.
    public static func wellKnown(_ label: String) -> Name {
        var bytes = [UInt8](repeating: 0, count: 32)
        let tag: [UInt8] = Array("DIOS/wk:".utf8)
        bytes.replaceSubrange(0..<8, with: tag)
        let utf8 = Array(label.utf8.prefix(24))
        bytes.replaceSubrange(8..<(8 + utf8.count), with: utf8)
        return Name(bytes: bytes)!
    }

    /// Whether this name was made by `wellKnown(_:)`.
    @inlinable public var isWellKnown: Bool { words.0 == Name.wellKnownTag }

    /// "DIOS/wk:" as a big-endian word (a literal: `lookup` asks on every local hit).
    @usableFromInline static let wellKnownTag: UInt64 = 0x4449_4F53_2F77_6B3A

    /// Builds a name from exactly 32 bytes (big-endian words), or nil.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var w: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { w[i / 8] = w[i / 8] << 8 | UInt64(b) }
        self.words = (w[0], w[1], w[2], w[3])
    }

    /// The 32 bytes, big-endian.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for word in [words.0, words.1, words.2, words.3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    public static func == (a: Name, b: Name) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    /// One folded word into the hasher, not four (`lookup` hashes a name once
    /// or twice per call, so this is most of its cost). A random name's words
    /// are already uniform; the multipliers keep well-known names (whose first
    /// word is a fixed tag) apart. Names that fold alike collide whatever the
    /// hasher's seed, which is acceptable because no untrusted party chooses
    /// the names tables hold: the kernel draws them from the CSPRNG, and only
    /// trusted tasks and kernel peers bring well-known ones.
    public func hash(into hasher: inout Hasher) { hasher.combine(folded) }

    /// The four words folded into one (see `hash(into:)`), each multiplied in
    /// after the last, so that names differing in one word, or in the same
    /// bits of two words, fold apart.
    @inlinable var folded: UInt64 {
        var h = words.0 &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ (h >> 29) ^ words.1) &* 0xC2B2_AE3D_27D4_EB4F
        h = (h ^ (h >> 29) ^ words.2) &* 0x1656_67B1_9E37_79F9
        return h ^ (h >> 29) ^ words.3
    }

    /// What `Dictionary` and `Set` hash a name by: the folded word mixed with
    /// the table's seed by a multiply and a shift (a few instructions), instead
    /// of SipHash over it (about 200: most of a `lookup` that hashes a name
    /// into two tables). This is Hashable's underscored customisation point,
    /// which the standard library's integers implement the same way; the same
    /// reasoning as for `hash(into:)` makes a keyless mix acceptable here.
    @inlinable public func _rawHashValue(seed: Int) -> Int {
        Self.mix(folded, seed: seed)
    }

    /// A multiply-xorshift of `value` and a table's `seed` (the finaliser of
    /// SplitMix64): every bit of the input moves every bit of the output.
    @inlinable public static func mix(_ value: UInt64, seed: Int) -> Int {
        var z = value ^ UInt64(UInt(bitPattern: seed))
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: z ^ (z >> 31))
    }

    public static func < (a: Name, b: Name) -> Bool {
        (a.words.0, a.words.1, a.words.2, a.words.3) < (b.words.0, b.words.1, b.words.2, b.words.3)
    }
}

/// Why a name's text form was rejected.
public enum NameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A name's text is exactly 44 characters.
    case wrongLength(Int)
    /// A character outside the base64 alphabet, at this offset.
    case invalidCharacter(offset: Int)
    /// The text does not end in the single `=` that 32 bytes of base64 carry,
    /// or its last data character has bits set that 32 bytes cannot produce.
    case notCanonical

    public var description: String {
        switch self {
        case .wrongLength(let n): "a name is 44 base64 characters, got \(n)"
        case .invalidCharacter(let offset): "invalid base64 character at offset \(offset)"
        case .notCanonical: "not the canonical base64 form of 32 bytes"
        }
    }
}

extension Name: CustomStringConvertible, LosslessStringConvertible {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The 44-character base64 text of the name.
    public var description: String {
        let b = bytes
        var out = [UInt8]()
        out.reserveCapacity(44)
        var i = 0
        while i + 3 <= 30 {  // 10 full groups cover bytes 0..<30
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out.append(Name.alphabet[Int(v >> 18 & 63)])
            out.append(Name.alphabet[Int(v >> 12 & 63)])
            out.append(Name.alphabet[Int(v >> 6 & 63)])
            out.append(Name.alphabet[Int(v & 63)])
            i += 3
        }
        let v = UInt32(b[30]) << 16 | UInt32(b[31]) << 8
        out.append(Name.alphabet[Int(v >> 18 & 63)])
        out.append(Name.alphabet[Int(v >> 12 & 63)])
        out.append(Name.alphabet[Int(v >> 6 & 63)])
        out.append(UInt8(ascii: "="))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the 44-character form; nil when malformed (`parse(_:)` says why).
    public init?(_ text: String) {
        guard let name = try? Name.parse(text) else { return nil }
        self = name
    }

    /// Parses the 44-character form, throwing a `NameError` that says what is wrong.
    public static func parse(_ text: some StringProtocol) throws(NameError) -> Name {
        let chars = Array(text.utf8)
        guard chars.count == 44 else { throw .wrongLength(chars.count) }
        guard chars[43] == UInt8(ascii: "=") else { throw .notCanonical }
        var sextets = [UInt32](repeating: 0, count: 43)
        for i in 0..<43 {
            guard let v = decode(chars[i]) else { throw .invalidCharacter(offset: i) }
            sextets[i] = v
        }
        // 43 sextets = 258 bits; the 2 lowest bits of the last one must be zero.
        guard sextets[42] & 0b11 == 0 else { throw .notCanonical }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var i = 0
        while i + 4 <= 40 {
            let v = sextets[i] << 18 | sextets[i + 1] << 12 | sextets[i + 2] << 6 | sextets[i + 3]
            bytes.append(UInt8(truncatingIfNeeded: v >> 16))
            bytes.append(UInt8(truncatingIfNeeded: v >> 8))
            bytes.append(UInt8(truncatingIfNeeded: v))
            i += 4
        }
        let v = sextets[40] << 18 | sextets[41] << 12 | sextets[42] << 6
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        return Name(bytes: bytes)!
    }

    private static func decode(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(c - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0") + 52)
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
