import CDIOSCrypto
import DIOSCore

#if canImport(Glibc)
import Glibc
#endif

/// The secret every node of a cluster holds (32 random bytes, from a key file
/// only its owner can read): frames are authenticated with keys derived from it,
/// so a host without it cannot make a frame any node takes.
public struct ClusterSecret: Sendable, Equatable {
    public static let size = 32
    public let bytes: [UInt8]

    /// Nil unless `bytes` is `size` long.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self.bytes = bytes
    }

    /// A new secret from the system's random source (getrandom).
    public static func generate() -> ClusterSecret {
        var random = SystemRandomNumberGenerator()
        return ClusterSecret(bytes: (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) })!
    }
}

/// What the wire does to every frame between nodes.
public enum FrameProtection: String, Sendable, Equatable, CaseIterable {
    /// An AES-256-GCM tag over header and payload (the default): nobody
    /// without the secret makes or alters a frame, and none is taken twice.
    case authenticated
    /// As `authenticated`, and the payload is encrypted as well.
    case encrypted
    /// No tag: every datagram that parses is believed. For a network where
    /// only the cluster's hosts can send, and as a benchmark's baseline.
    case plain
}

/// How a wire endpoint protects its frames: the cluster's secret and what to
/// do with it.
public struct WireSecurity: Sendable, Equatable {
    public var secret: ClusterSecret
    public var protection: FrameProtection
    /// Where this process's frame counters start: the wall clock in
    /// nanoseconds, so a restarted node's counters are past every one it used
    /// before and a frame recorded from its earlier run is refused as a replay.
    public var counterStart: UInt64

    public init(secret: ClusterSecret, protection: FrameProtection = .authenticated, counterStart: UInt64? = nil) {
        self.secret = secret
        self.protection = protection
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.counterStart = counterStart ?? (UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec))
    }

    /// The bytes a protected frame carries after its payload: the sender's
    /// frame counter (u64, big-endian: the AEAD nonce) and the 16-byte tag.
    public static let trailerSize = 8 + Int(DIOS_AEAD_TAG_SIZE)

    /// Why this machine cannot protect frames (nil: it can). Checked by a
    /// node before it starts, so it fails with this rather than at its first frame.
    public static var unavailable: String? { dios_aead_unavailable().map { String(cString: $0) } }

    /// The trailer a frame under `security` carries (none when plain).
    public static func trailer(_ security: WireSecurity?) -> Int {
        guard let security, security.protection != .plain else { return 0 }
        return trailerSize
    }
}

/// Why a frame was refused before its session saw it.
public enum FrameRefusal: Error, Equatable, Sendable {
    /// Its tag does not check under the key of the epoch it names.
    case forged
    /// Its counter was taken before, or is older than the replay window.
    case replayed
}

/// One AES-256-GCM key ready for use (its schedule computed once).
/// Noncopyable: the context it owns is freed once.
struct AEADKey: ~Copyable {
    let context: OpaquePointer

    init(_ key: [UInt8]) {
        guard let context = key.withUnsafeBufferPointer({ dios_aead_new($0.baseAddress) }) else {
            fatalError("no AES-256-GCM here: \(WireSecurity.unavailable ?? "out of memory")")
        }
        self.context = context
    }

    deinit { dios_aead_free(context) }
}

/// One session's frame protection: the key its frames are sealed with (from
/// this end's epoch), the keys frames from the peer are opened with (from the
/// epoch each names), its frame counter, and the window of the peer's
/// counters already taken. Derived keys are cached, so the HKDF runs when an
/// epoch changes, not per frame. Created with the session; allocates nothing
/// per frame.
///
/// Keys are per direction and sender epoch: HKDF-SHA256 of the secret with
/// the sender, the receiver and the sender's epoch. The IV is the sender's
/// frame counter, which never repeats within one key (it only grows, across
/// the session's epochs too), so no key sees an IV twice: resent frames are
/// sealed again under a new counter.
final class FrameSealer {
    let protection: FrameProtection
    private let secret: [UInt8]
    private let local: InstanceID
    private let peer: InstanceID

    private var sealKey: AEADKey
    private var sealEpoch: UInt32
    /// The open key of the peer's epoch (the last whose frame opened), and
    /// one more for any other epoch a frame names: a peer that restarted, or
    /// a forger naming made-up ones, which can only ever replace this one.
    private var currentKey: AEADKey
    private var currentEpoch: UInt32 = 0
    private var otherKey: AEADKey
    private var otherEpoch: UInt32 = 0

    /// The next counter this end seals with.
    private(set) var counter: UInt64
    /// The highest peer counter taken, and which of the 128 below it were.
    private var highest: UInt64 = 0
    private var seen: (UInt64, UInt64) = (0, 0)

    init(_ security: WireSecurity, local: InstanceID, peer: InstanceID, epoch: UInt32) {
        precondition(security.protection != .plain, "a sealer for plain frames")
        protection = security.protection
        secret = security.secret.bytes
        self.local = local
        self.peer = peer
        counter = max(security.counterStart, 1)
        sealEpoch = epoch
        sealKey = AEADKey(Self.derive(secret, from: local, to: peer, epoch: epoch))
        // Epoch 0 names no incarnation: no frame is opened under these.
        currentKey = AEADKey(Self.derive(secret, from: peer, to: local, epoch: 0))
        otherKey = AEADKey(Self.derive(secret, from: peer, to: local, epoch: 0))
    }

    /// HKDF-SHA256 (RFC 5869) of `key`: `length` bytes.
    static func hkdf(_ key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let ok = out.withUnsafeMutableBufferPointer {
            dios_hkdf_sha256(key, key.count, salt, salt.count, info, info.count, $0.baseAddress, length)
        }
        precondition(ok == 0, "HKDF-SHA256 failed")
        return out
    }

    static func derive(_ secret: [UInt8], from sender: InstanceID, to receiver: InstanceID, epoch: UInt32) -> [UInt8] {
        let salt = Array("dios frame key v1".utf8)
        var info: [UInt8] = []
        for v in [sender.node, sender.core, receiver.node, receiver.core] { info += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        info += [UInt8(epoch >> 24), UInt8(epoch >> 16 & 0xFF), UInt8(epoch >> 8 & 0xFF), UInt8(epoch & 0xFF)]
        return hkdf(secret, salt: salt, info: info, length: Int(DIOS_AEAD_KEY_SIZE))
    }

    /// This end started a new epoch: later frames are sealed under its key.
    func rekey(epoch: UInt32) {
        guard epoch != sealEpoch else { return }
        sealKey = AEADKey(Self.derive(secret, from: local, to: peer, epoch: epoch))
        sealEpoch = epoch
    }

    /// The 12-byte IV of `counter`: four zero bytes, then the counter
    /// big-endian. (Three 32-bit words: a tuple with a 64-bit one would put
    /// padding where the counter's high half belongs.)
    @inline(__always)
    private static func iv(_ counter: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: counter >> 32).bigEndian, UInt32(truncatingIfNeeded: counter).bigEndian)
    }

    /// Seals the frame at `frame` (`length` bytes: header and payload) in
    /// place, appending the trailer, and returns the counter it used.
    @inline(__always)
    func seal(_ frame: UnsafeMutableRawPointer, length: Int) -> UInt64 {
        let used = counter
        counter &+= 1
        let trailer = frame + length
        trailer.storeBytes(of: used.bigEndian, as: UInt64.self)
        var iv = Self.iv(used)
        let clear = protection == .encrypted ? FrameHeader.size : length
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            dios_aead_seal(
                sealKey.context, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                frame.assumingMemoryBound(to: UInt8.self), clear, length - clear,
                (trailer + 8).assumingMemoryBound(to: UInt8.self))
        }
        precondition(ok == 0, "AES-GCM seal failed")
        return used
    }

    /// Turns a frame this end encrypted under `counter` back into plain
    /// text (before it is sealed again to be resent): it is opened as the
    /// peer would, under its own tag, still in its trailer. Nothing to do for
    /// frames only authenticated.
    func unseal(_ frame: UnsafeMutableRawPointer, length: Int, counter used: UInt64) {
        guard protection == .encrypted, length > FrameHeader.size else { return }
        var iv = Self.iv(used)
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            dios_aead_open(
                sealKey.context, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                frame.assumingMemoryBound(to: UInt8.self), FrameHeader.size, length - FrameHeader.size,
                (frame + length + 8).assumingMemoryBound(to: UInt8.self))
        }
        precondition(ok == 0, "a frame this end sealed did not open: its bytes changed after it was sent")
    }

    /// Opens a frame from the peer in place (`frame`, trailer included):
    /// checks that its counter was not taken before, then its tag under the
    /// key of the epoch it names, and decrypts its payload if encrypted.
    /// Returns the frame without its trailer. Nothing of the frame is believed
    /// before the tag checks: a forged or replayed one changes nothing but a
    /// counter (and, for a made-up epoch, which key the cache holds).
    func open(_ frame: UnsafeMutableRawBufferPointer) -> Swift.Result<UnsafeRawBufferPointer, FrameRefusal> {
        let trailer = WireSecurity.trailerSize
        guard frame.count >= FrameHeader.size + trailer else { return .failure(.forged) }
        let length = frame.count - trailer
        let base = frame.baseAddress!
        let epoch = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        let used = UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: length, as: UInt64.self))
        // Cheap refusals first: a counter already taken needs no AES.
        guard fresh(used) else { return .failure(.replayed) }
        guard epoch != 0 else { return .failure(.forged) }  // names no incarnation: no member sends it
        if epoch != currentEpoch && epoch != otherEpoch {
            otherKey = AEADKey(Self.derive(secret, from: peer, to: local, epoch: epoch))
            otherEpoch = epoch
        }
        let context = epoch == currentEpoch ? currentKey.context : otherKey.context
        var iv = Self.iv(used)
        let clear = protection == .encrypted ? FrameHeader.size : length
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            dios_aead_open(
                context, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                base.assumingMemoryBound(to: UInt8.self), clear, length - clear,
                (base + length + 8).assumingMemoryBound(to: UInt8.self))
        }
        guard ok == 0 else { return .failure(.forged) }
        take(used)
        if epoch != currentEpoch {
            // An epoch proven by a frame of it becomes the current one.
            swap(&currentKey, &otherKey)
            swap(&currentEpoch, &otherEpoch)
        }
        return .success(UnsafeRawBufferPointer(start: base, count: length))
    }

    // MARK: The replay window

    /// Whether `counter` may still be taken: above every one taken, or within
    /// the 128 below the highest and not taken yet.
    @inline(__always)
    private func fresh(_ c: UInt64) -> Bool {
        if c > highest { return true }
        let back = highest - c
        guard back < 128 else { return false }
        return back < 64 ? seen.0 & (1 << back) == 0 : seen.1 & (1 << (back - 64)) == 0
    }

    @inline(__always)
    private func take(_ c: UInt64) {
        if c > highest {
            let shift = c - highest
            if shift >= 128 {
                seen = (0, 0)
            } else if shift >= 64 {
                seen = (0, seen.0 << (shift - 64))
            } else {
                seen = (seen.0 << shift, seen.1 << shift | (shift == 0 ? 0 : seen.0 >> (64 - shift)))
            }
            seen.0 |= 1
            highest = c
        } else {
            let back = highest - c
            if back < 64 { seen.0 |= 1 << back } else { seen.1 |= 1 << (back - 64) }
        }
    }
}
