import CDIOSCrypto

/// SHA-256 (FIPS 180-4), for naming program objects by their bytes:
/// libsodium's, which hashes a build of a few MB in milliseconds even in a
/// debug build of DIOS. A value: copying it copies the state.
public struct SHA256: Sendable {
    /// libsodium's state, held here (`DIOS_SHA256_STATE_SIZE` bytes).
    private var state:
        (
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
        ) = (
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        )

    public init() {
        precondition(MemoryLayout.size(ofValue: state) == Int(DIOS_SHA256_STATE_SIZE))
        withUnsafeMutableBytes(of: &state) { dios_sha256_init($0.baseAddress) }
    }

    public mutating func update(_ bytes: some Collection<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            withUnsafeMutableBytes(of: &state) { dios_sha256_update($0.baseAddress, buffer.baseAddress, buffer.count) }
        }
        if done == nil { update(Array(bytes)) }
    }

    /// The 32-byte digest.
    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { digest in
            withUnsafeMutableBytes(of: &state) { dios_sha256_final($0.baseAddress, digest.baseAddress) }
        }
        return out
    }

    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finish()
    }
}
