/// How the fault stage impairs a link. All off by default.
public struct FaultConfiguration: Sendable, Equatable {
    /// Probability that a frame is dropped.
    public var loss: Double
    /// Probability that a frame is sent twice.
    public var duplicate: Double
    /// Probability that a frame is held back so later frames overtake it.
    public var reorder: Double
    /// Each frame is delayed by up to this long (uniformly).
    public var delay: Duration
    /// The seed: the same seed makes the same decisions for the same frames.
    public var seed: UInt64

    public init(loss: Double = 0, duplicate: Double = 0, reorder: Double = 0, delay: Duration = .zero, seed: UInt64 = 1)
    {
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.seed = seed
    }

    public var isActive: Bool { loss > 0 || duplicate > 0 || reorder > 0 || delay > .zero }
}

/// A seeded impairment stage on the real transport path: it wraps a transport
/// (kernel UDP or DPDK) and drops, duplicates, reorders and delays the frames
/// sent through it. This kernel has no `netem`, so links are impaired here,
/// where we control them; the decisions replay exactly for a seed.
public final class FaultyTransport: FrameTransport {
    public let inner: any FrameTransport
    public let faults: FaultConfiguration
    private var random: SplitMix64
    private let clock: () -> UInt64

    // Held frames: a fixed store, so impairment allocates nothing per frame.
    private let capacity = 256
    private let store: UnsafeMutableRawPointer
    private var held: [(due: UInt64, length: Int, to: PeerAddress)?]
    private var heldCount = 0

    public private(set) var dropped: UInt64 = 0
    public private(set) var duplicated: UInt64 = 0
    public private(set) var delayed: UInt64 = 0

    public init(_ inner: any FrameTransport, faults: FaultConfiguration, clock: @escaping () -> UInt64) {
        self.inner = inner
        self.faults = faults
        self.clock = clock
        random = SplitMix64(seed: faults.seed)
        store = .allocate(byteCount: capacity * inner.maxFrameSize, alignment: 64)
        held = Array(repeating: nil, count: capacity)
    }

    deinit { store.deallocate() }

    public var localAddress: PeerAddress { inner.localAddress }
    public var maxFrameSize: Int { inner.maxFrameSize }
    public var readinessFD: Int32? { inner.readinessFD }
    public func hold() { inner.hold() }
    public func flush() { inner.flush() }

    public func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
        impair(frame, to: peer) { inner.send(frame, to: peer) }
    }

    /// In-place frames pass through to the inner transport's buffers, under the
    /// same impairment: a frame held back (reordered, delayed) is copied aside,
    /// as a wire would keep it, and the sender keeps its own.
    public func allocateFrame() -> TransportFrame? { inner.allocateFrame() }
    public func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
        impair(UnsafeRawBufferPointer(start: frame.bytes, count: length), to: peer) {
            inner.sendFrame(frame, length: length, to: peer)
        }
    }
    public func isIdle(_ frame: TransportFrame) -> Bool { inner.isIdle(frame) }
    public func releaseFrame(_ frame: TransportFrame) { inner.releaseFrame(frame) }
    /// Frames are impaired on the way out; what arrives is the inner
    /// transport's own, kept as it keeps them.
    public func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? { inner.keepReceived(bytes) }
    public func releaseReceived(_ handle: OpaquePointer) { inner.releaseReceived(handle) }
    public func peerLeaving(_ address: PeerAddress) { inner.peerLeaving(address) }

    /// Drops, duplicates or holds back `frame`; `forward` sends one copy now.
    private func impair(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress, forward: () -> Bool) -> Bool {
        let now = clock()
        release(now: now)
        if random.unit() < faults.loss {
            dropped &+= 1
            return true  // lost on the wire: the sender cannot tell
        }
        let copies = random.unit() < faults.duplicate ? 2 : 1
        if copies == 2 { duplicated &+= 1 }
        for _ in 0..<copies {
            var hold: UInt64 = 0
            if faults.delay > .zero { hold = random.next() % (faults.delay.nanoseconds + 1) }
            if random.unit() < faults.reorder { hold += 20_000 + random.next() % 200_000 }
            if hold > 0, keep(frame, to: peer, until: now + hold) { continue }
            _ = forward()
        }
        return true
    }

    public func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        release(now: clock())
        return inner.receive(body)
    }

    private func keep(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress, until due: UInt64) -> Bool {
        guard heldCount < capacity, frame.count <= inner.maxFrameSize,
            let slot = held.firstIndex(where: { $0 == nil })
        else { return false }
        (store + slot * inner.maxFrameSize).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
        held[slot] = (due, frame.count, peer)
        heldCount += 1
        delayed &+= 1
        return true
    }

    /// Sends the held frames whose time has come.
    private func release(now: UInt64) {
        guard heldCount > 0 else { return }
        for slot in 0..<capacity {
            guard let h = held[slot], h.due <= now else { continue }
            _ = inner.send(UnsafeRawBufferPointer(start: store + slot * inner.maxFrameSize, count: h.length), to: h.to)
            held[slot] = nil
            heldCount -= 1
        }
    }
}
