/// Why bytes from the network were refused. Decoding never traps and never
/// produces part of a value: it returns a whole delta or one of these.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, have: Int)
    case unknownType(UInt8)
    case unknownKind(UInt8)
    case invalidFlag(UInt8)
    case valueOutOfRange(String)
    case trailingBytes(Int)
    case badMagic(UInt16)
    case unsupportedVersion(UInt8)
    case lengthMismatch(declared: Int, actual: Int)

    public var description: String {
        switch self {
        case .truncated(let n, let h): "truncated: needs \(n) bytes, has \(h)"
        case .unknownType(let t): "unknown message type \(t)"
        case .unknownKind(let k): "unknown object kind \(k)"
        case .invalidFlag(let f): "invalid flag byte \(f)"
        case .valueOutOfRange(let what): "\(what) out of range"
        case .trailingBytes(let n): "\(n) bytes after the message"
        case .badMagic(let m): "not a DIOS frame (magic 0x\(String(m, radix: 16)))"
        case .unsupportedVersion(let v): "unsupported wire version \(v)"
        case .lengthMismatch(let d, let a): "header declares \(d) payload bytes, frame has \(a)"
        }
    }
}
