import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The frames of the exchange: sequence (8 bytes, little-endian), kind (1 byte:
/// 0 data, 1 done), then a pattern derived from the sequence. Sizes vary over
/// 16...1472 and every fifth frame is the largest a datagram carries.
enum Exchange {
    static let data: UInt8 = 0
    static let done: UInt8 = 1

    static func size(_ seq: UInt64) -> Int {
        seq % 5 == 0 ? EthernetUDP.maxPayload : 16 + Int((seq &* 7919) % UInt64(EthernetUDP.maxPayload - 16))
    }

    /// Writes the frame for `seq` into `buffer` (which holds `maxPayload` bytes); returns its length.
    static func write(_ seq: UInt64, kind: UInt8, length: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(length >= 9 && length <= buffer.count)
        buffer.storeBytes(of: seq.littleEndian, toByteOffset: 0, as: UInt64.self)
        buffer[8] = kind
        for i in 9..<length { buffer[i] = UInt8(truncatingIfNeeded: seq &* 31 &+ UInt64(i)) }
        return length
    }

    /// The sequence and kind of a frame, nil when it is shorter than 9 bytes.
    static func header(_ frame: UnsafeRawBufferPointer) -> (seq: UInt64, kind: UInt8)? {
        guard frame.count >= 9 else { return nil }
        return (UInt64(littleEndian: frame.loadUnaligned(as: UInt64.self)), frame[8])
    }

    /// True when `frame` is exactly the data frame for its sequence number.
    static func isIntact(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard let (seq, kind) = header(frame), kind == data, frame.count == size(seq) else { return false }
        for i in 9..<frame.count where frame[i] != UInt8(truncatingIfNeeded: seq &* 31 &+ UInt64(i)) { return false }
        return true
    }
}
